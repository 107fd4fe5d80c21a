//! The way back of a composition, for the rollback window: green's change stream, converted by the
//! inverse of the type map ([`Convert::back_row`]), applied to blue exactly once by blue's own sink
//! with the position in blue's progress record. Nothing is copied: at the hand-off blue holds every
//! row green holds (the cutover proved it), and the stream begins there.
//!
//! Green's tables are blue's as the type map made them, kept by green's guard (see
//! `mysql_to_pg/back.rs`) to values blue holds: a row the application wrote on green goes back as
//! blue would hold it, or — where the guard was dropped — stops the stream naming the row and column.
//! DDL on green stops it too: its text is PostgreSQL's.

use super::{BlueTable, Convert, SourceSide, TargetSide};
use crate::config::Config;
use crate::error::{Error, SchemaRefusal};
use crate::journal::ReverseArm;
use crate::source::contract::compare::TableCheck;
use crate::source::contract::report::Report;
use crate::source::{Names, Source, SourceAdmin, SourceMessage};
use crate::state::StateStore;
use crate::status::Status;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use turnout_decoders::event::Row;
use turnout_decoders::schema::{TableName, TableSchema};
use turnout_decoders::{ChangeEvent, Position};
use turnout_sinks::{Durable, NoEarly};

/// The stream back: green's side `T` read, blue's side `S` applied to, through `C` inverted.
#[allow(missing_debug_implementations)]
pub(crate) struct Back<S, T, C> {
    back: Config,
    names: Names,
    hand_off: Position,
    /// The forward apply's replication origin on green: its writes never go back.
    forward: String,
    source: S,
    target: T,
    convert: Arc<C>,
}

impl<S: SourceSide, T: TargetSide, C: Convert> Back<S, T, C> {
    /// `back` is the configuration with blue and green swapped (its source is green); the sides are
    /// made of it unswapped, as the forward stream's are.
    pub(crate) fn new(back: &Config, arm: &ReverseArm) -> Result<Self, Error> {
        let forward = crate::config::reversed(back);
        Ok(Back {
            back: back.clone(),
            names: arm.names.clone(),
            hand_off: arm.position.clone(),
            forward: arm.forward_origin.clone(),
            source: S::new(&forward, &arm.names)?,
            target: T::new(&forward, &arm.names)?,
            convert: Arc::new(C::from_config(&forward)),
        })
    }

    /// Blue's selected tables, turnout's own left out: what the stream back carries.
    async fn tables(&self) -> Result<Vec<BlueTable>, Error> {
        Ok(self.source.select().await?.into_iter().filter(|t| !t.heartbeat).collect())
    }

    fn refuse(&self, what: &'static str) -> Error {
        SchemaRefusal::NotBuilt { what, from: T::ENGINE, to: S::ENGINE, fix: "run it with the forward configuration, or after the rollback window" }.into()
    }
}

impl<S: SourceSide, T: TargetSide, C: Convert> SourceAdmin for Back<S, T, C> {
    type Stream = Inverting<T::BackStream, C>;
    type Sink = S::BackSink;
    type Early = NoEarly;
    type Copier = super::family::Unbuilt;

    fn names(&self) -> &Names {
        &self.names
    }

    /// Blue opened to turnout's writes (its fence stays for applications) and the hand-off recorded
    /// as the stream's position unless it has one; every table still convertible.
    async fn prepare(&self, _state: &StateStore, _status: &Arc<Status>) -> Result<(), Error> {
        for table in self.tables().await? {
            self.convert.back_schema(&table)?;
        }
        self.source.open_for_back(&self.names.origin, &self.hand_off).await
    }

    async fn open_sink(&self) -> Result<S::BackSink, Error> {
        self.source.open_back_sink(&self.names.origin).await
    }

    fn open_early(&self) -> NoEarly {
        NoEarly
    }

    fn copier(&self) -> Result<super::family::Unbuilt, Error> {
        Ok(super::family::Unbuilt::of::<S, T>("a copy into blue"))
    }

    async fn open_stream(&self, from: &Position) -> Result<Self::Stream, Error> {
        let tables = self.tables().await?;
        let inner = self.target.open_back_stream(&self.names, from, &self.forward, self.back.receive_timeout()).await?;
        Ok(Inverting::new(inner, Arc::clone(&self.convert), tables, (T::ENGINE, S::ENGINE)))
    }

    fn heartbeat(&self, status: Arc<Status>, shutdown: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.target.back_heartbeat(&self.names, self.back.heartbeat_interval(), status, shutdown)
    }

    async fn check(&self) -> Report {
        Report { sections: vec![("the stream back".into(), vec![])] }
    }

    async fn verify(&self, _only: Option<&str>) -> Result<Vec<TableCheck>, Error> {
        Err(self.refuse("verify of the stream back"))
    }

    async fn teardown(&self) -> Result<Vec<String>, Error> {
        let mut done = self.target.drop_back(&self.names).await?;
        done.extend(self.source.drop_back(&self.names.origin).await?);
        Ok(done)
    }
}

/// Whether green's column type (as its stream describes it) is the conversion's: the same type and,
/// where the stream says it, the same modifier.
fn same_type(green: &turnout_decoders::schema::ColumnType, made: &turnout_decoders::schema::ColumnType) -> bool {
    use turnout_decoders::schema::ColumnType::Pg;
    match (green, made) {
        (Pg { oid: a, modifier: m, .. }, Pg { oid: b, modifier: n, .. }) => a == b && (*m == -1 || m == n),
        _ => false,
    }
}

/// Green's stream with each event converted back to blue's types by `C`; DDL, and a table that is
/// not one of blue's, stop the stream.
#[allow(missing_debug_implementations)]
pub(crate) struct Inverting<S, C> {
    inner: S,
    convert: Arc<C>,
    engines: (&'static str, &'static str),
    catalog: HashMap<TableName, BlueTable>,
    /// Green's schema of each table seen, and blue's for it.
    schemas: HashMap<TableName, (Arc<TableSchema>, Arc<TableSchema>)>,
    /// The transactions that carried row changes and those that carried a TRUNCATE (by the xid a
    /// streamed one's changes name; `None` for one sent whole).
    rows_in: std::collections::HashSet<Option<turnout_decoders::event::TxId>>,
    truncate_in: std::collections::HashSet<Option<turnout_decoders::event::TxId>>,
}

impl<S, C: Convert> Inverting<S, C> {
    pub(crate) fn new(inner: S, convert: Arc<C>, tables: Vec<BlueTable>, engines: (&'static str, &'static str)) -> Self {
        Inverting {
            inner,
            convert,
            engines,
            catalog: tables.into_iter().map(|t| (t.name.clone(), t)).collect(),
            schemas: HashMap::new(),
            rows_in: Default::default(),
            truncate_in: Default::default(),
        }
    }

    /// Blue's table and schema for green's `green`. Green publishes blue's tables only: another is
    /// refused, never dropped.
    fn blue(&mut self, green: &Arc<TableSchema>) -> Result<(&BlueTable, Arc<TableSchema>), Error> {
        let Some(table) = self.catalog.get(&green.name) else {
            return Err(Error::Setup(format!("green's stream back carried {}, which is not one of blue's replicated tables", green.name)));
        };
        let blue = match self.schemas.get(&green.name) {
            Some((seen, blue)) if Arc::ptr_eq(seen, green) || **seen == **green => Arc::clone(blue),
            _ => {
                // Green's columns as the conversion made them: a column added, dropped, renamed or
                // retyped on green would carry values blue's column does not hold.
                let made = self.convert.green(table)?.schema;
                let same = green.columns.len() == made.columns.len()
                    && green.columns.iter().zip(&made.columns).all(|(g, m)| g.name == m.name && same_type(&g.ty, &m.ty));
                if !same {
                    return Err(SchemaRefusal::NotBuilt {
                        what: "carrying a table whose columns changed on green",
                        from: self.engines.0,
                        to: self.engines.1,
                        fix: "make green's table what the type map makes of blue's again, then restart",
                    }
                    .into());
                }
                let mut blue = self.convert.back_schema(table)?;
                for (b, g) in blue.columns.iter_mut().zip(&green.columns) {
                    b.is_key = g.is_key;
                }
                blue.replica_identity = green.replica_identity;
                blue.relation_id = green.relation_id;
                let blue = Arc::new(blue);
                self.schemas.insert(green.name.clone(), (Arc::clone(green), Arc::clone(&blue)));
                blue
            }
        };
        Ok((table, blue))
    }

    fn key(&self, table: &BlueTable, green: &TableSchema, key: Row) -> Result<Row, Error> {
        let columns: Vec<usize> = green.key_indexes().collect();
        self.convert.back_key(table, &columns, key)
    }

    /// Refuses a transaction that mixes a TRUNCATE with other changes: MySQL commits a TRUNCATE on
    /// its own, so blue could not take it as one transaction with its position.
    fn one_kind(&mut self, xid: Option<turnout_decoders::event::TxId>, truncate: bool) -> Result<(), Error> {
        let (mine, other) = if truncate { (&mut self.truncate_in, &self.rows_in) } else { (&mut self.rows_in, &self.truncate_in) };
        mine.insert(xid);
        if other.contains(&xid) {
            return Err(SchemaRefusal::NotBuilt {
                what: "a transaction on green that mixes TRUNCATE with other changes, carried back",
                from: self.engines.0,
                to: self.engines.1,
                fix: "MySQL commits a TRUNCATE on its own; run TRUNCATE in a transaction of its own on green",
            }
            .into());
        }
        Ok(())
    }

    /// The event as blue takes it.
    fn event(&mut self, event: ChangeEvent) -> Result<ChangeEvent, Error> {
        match &event {
            ChangeEvent::Begin { .. } | ChangeEvent::Commit { .. } => {
                self.rows_in.remove(&None);
                self.truncate_in.remove(&None);
            }
            ChangeEvent::StreamCommit { xid, .. } | ChangeEvent::StreamAbort { xid, .. } => {
                self.rows_in.remove(&Some(*xid));
                self.truncate_in.remove(&Some(*xid));
            }
            ChangeEvent::Insert { xid, .. } | ChangeEvent::Update { xid, .. } | ChangeEvent::Delete { xid, .. } => self.one_kind(*xid, false)?,
            ChangeEvent::Truncate { xid, .. } => self.one_kind(*xid, true)?,
            _ => {}
        }
        Ok(match event {
            ChangeEvent::Relation(green) => ChangeEvent::Relation(self.blue(&green)?.1),
            ChangeEvent::Insert { table: green, xid, after } => {
                let (table, blue) = self.blue(&green)?;
                let table = table.clone();
                ChangeEvent::Insert { table: blue, xid, after: self.convert.back_row(&table, after)? }
            }
            ChangeEvent::Update { table: green, xid, key, before, after } => {
                let (table, blue) = self.blue(&green)?;
                let table = table.clone();
                let key = self.key(&table, &green, key)?;
                let before = before.map(|b| self.convert.back_row(&table, b)).transpose()?;
                ChangeEvent::Update { table: blue, xid, key, before, after: self.convert.back_row(&table, after)? }
            }
            ChangeEvent::Delete { table: green, xid, key, before } => {
                let (table, blue) = self.blue(&green)?;
                let table = table.clone();
                let key = self.key(&table, &green, key)?;
                let before = before.map(|b| self.convert.back_row(&table, b)).transpose()?;
                ChangeEvent::Delete { table: blue, xid, key, before }
            }
            ChangeEvent::Truncate { tables, xid, cascade, restart_identity } => {
                let mut blue = Vec::new();
                for green in &tables {
                    blue.push(self.blue(green)?.1);
                }
                ChangeEvent::Truncate { tables: blue, xid, cascade, restart_identity }
            }
            ChangeEvent::Ddl { statement, .. } => {
                tracing::error!(statement = %statement, "green's DDL cannot be carried back to blue");
                return Err(SchemaRefusal::NotBuilt {
                    what: "carrying green's DDL back",
                    from: self.engines.0,
                    to: self.engines.1,
                    fix: "make the same change on blue in its own dialect, then restart",
                }
                .into());
            }
            other => other,
        })
    }

    fn message(&mut self, message: SourceMessage) -> Result<SourceMessage, Error> {
        Ok(match message {
            SourceMessage::Event { event, log_end } => SourceMessage::Event { event: self.event(event)?, log_end },
            end @ SourceMessage::LogEnd(_) => end,
        })
    }
}

impl<S: Source, C: Convert> Source for Inverting<S, C> {
    async fn recv(&mut self) -> Result<SourceMessage, Error> {
        let message = self.inner.recv().await?;
        self.message(message)
    }

    fn try_recv(&mut self) -> Result<Option<SourceMessage>, Error> {
        self.inner.try_recv()?.map(|m| self.message(m)).transpose()
    }

    fn acknowledge(&mut self, durable: &Durable) {
        self.inner.acknowledge(durable);
    }

    fn acknowledge_idle(&mut self, durable: &Durable) {
        self.inner.acknowledge_idle(durable);
    }

    async fn keepalive(&mut self) -> Result<(), Error> {
        self.inner.keepalive().await
    }

    async fn close(self) -> Result<(), Error> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::compose::mysql_to_pg::MySqlToPg;
    use crate::source::compose::BlueColumn;
    use turnout_decoders::{Lsn, Timestamp, Value};

    fn orders() -> BlueTable {
        let name = TableName { schema: "app".into(), name: "orders".into() };
        BlueTable::own(name, vec![BlueColumn::own("id", "int"), BlueColumn::own("n", "int")], "id")
    }

    fn inverting() -> (Inverting<(), MySqlToPg>, Arc<TableSchema>) {
        let t = orders();
        let green = Arc::new(MySqlToPg::default().green(&t).expect("mapped").schema);
        (Inverting::new((), Arc::new(MySqlToPg::default()), vec![t], ("PostgreSQL", "MySQL/MariaDB")), green)
    }

    fn begin() -> ChangeEvent {
        ChangeEvent::Begin { xid: 7, commit_position: None, commit_ts: Timestamp(0) }
    }

    fn commit() -> ChangeEvent {
        ChangeEvent::Commit { position: Position::Pg(Lsn(16)), commit_ts: Timestamp(0) }
    }

    #[test]
    fn a_truncate_in_a_transaction_of_its_own_goes_back_and_one_mixed_with_rows_is_refused() {
        let (mut back, green) = inverting();
        let insert = || ChangeEvent::Insert { table: Arc::clone(&green), xid: None, after: vec![Value::Int4(1), Value::Int4(2)] };
        let truncate = || ChangeEvent::Truncate { tables: vec![Arc::clone(&green)], xid: None, cascade: false, restart_identity: false };
        for event in [begin(), insert(), commit(), begin(), truncate(), commit()] {
            back.event(event).expect("each kind in a transaction of its own");
        }
        back.event(begin()).expect("begin");
        back.event(insert()).expect("a row");
        let refused = back.event(truncate()).expect_err("a TRUNCATE after rows").to_string();
        assert!(refused.contains("mixes TRUNCATE with other changes"), "{refused}");
        back.event(commit()).expect("commit");
        back.event(begin()).expect("begin");
        back.event(truncate()).expect("a TRUNCATE first");
        assert!(back.event(insert()).is_err(), "rows after a TRUNCATE in one transaction");
    }

    #[test]
    fn a_column_retyped_or_added_on_green_stops_the_stream_back() {
        let (mut back, green) = inverting();
        back.event(ChangeEvent::Relation(Arc::clone(&green))).expect("green's table as the type map made it");
        let mut retyped = (*green).clone();
        retyped.columns[1].ty = turnout_decoders::schema::ColumnType::pg(turnout_decoders::pg::types::oid::INT8, -1);
        let refused = back.event(ChangeEvent::Relation(Arc::new(retyped))).expect_err("retyped").to_string();
        assert!(refused.contains("whose columns changed on green"), "{refused}");
        let mut added = (*green).clone();
        added.columns.push(turnout_decoders::schema::Column { name: "extra".into(), ty: turnout_decoders::schema::ColumnType::pg(23, -1), is_key: false });
        assert!(back.event(ChangeEvent::Relation(Arc::new(added))).is_err(), "a column added on green");
    }
}
