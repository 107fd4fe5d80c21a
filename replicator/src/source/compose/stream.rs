//! Blue's change stream seen through a [`Convert`]: every table schema and every row reaches the
//! pipeline as green holds it, or the stream stops naming what would not arrive exactly. Blue's own
//! DDL is never passed on as its text (it is in blue's dialect): an additive change is translated
//! from blue's catalog by the type map ([`super::ddl`]), anything else is refused.

use super::actions::Actions;
use super::{BlueColumn, BlueTable, Convert, GreenShape};
use crate::error::{Error, SchemaRefusal};
use crate::source::{Source, SourceMessage};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use turnout_decoders::event::Creates;
use turnout_decoders::event::Row;
use turnout_decoders::schema::{TableName, TableSchema};
use turnout_decoders::ChangeEvent;
use turnout_sinks::Durable;

/// Reads those of the named tables that blue's selection holds, as its catalog describes them now
/// ([`super::SourceSide::select`], with its checks of the whole selection), and the heartbeat table.
pub(crate) type Reread = Arc<dyn Fn(Vec<TableName>) -> BoxFuture<'static, Result<Vec<BlueTable>, Error>> + Send + Sync>;

/// Reads one of green's tables as it is ([`super::TargetSide::shapes`]).
pub(crate) type GreenShapes = Arc<dyn Fn(TableName) -> BoxFuture<'static, Result<Option<GreenShape>, Error>> + Send + Sync>;

/// Why `CREATE TABLE IF NOT EXISTS` of a table green lacks is not carried.
const IF_NOT_EXISTS: &str =
    "blue logs it also when the table existed, so green cannot tell it was created empty; create tables with a plain CREATE TABLE while turnout streams";

/// The statement recording on green that the stream made a table ([`super::TargetSide::record_created`]).
pub(crate) type RecordCreated = Arc<dyn Fn(&TableName) -> String + Send + Sync>;

/// `S` with each event converted by `C`.
#[allow(missing_debug_implementations)]
pub(crate) struct Converting<S, C> {
    inner: S,
    convert: Arc<C>,
    from: &'static str,
    to: &'static str,
    /// Blue's catalog of each selected table as of the stream's position: what rows are converted
    /// by. Read when the stream opened, cut back to the columns of an older table map, read again
    /// when blue's DDL reaches the stream.
    catalog: HashMap<TableName, BlueTable>,
    /// Reads blue's catalog again.
    reread: Reread,
    /// Reads green's tables as they are.
    shapes: GreenShapes,
    /// Records on green that the stream made a table.
    record: RecordCreated,
    /// Selected tables green lacked when the stream opened: each is made when the stream reaches
    /// blue's `CREATE TABLE` of it; a row or other DDL of one before that shows it existed before
    /// the stream's position, with rows green never got, and stops the stream.
    uncreated: std::collections::HashSet<TableName>,
    /// A DDL event received and not yet translated (kept across a cancelled [`Source::recv`] and
    /// from [`Source::try_recv`], which cannot wait for blue).
    pending: Option<SourceMessage>,
    /// The catalog's foreign keys with an action: a change must show blue acted as green will.
    actions: Actions,
    /// Blue's schema of each table seen, and green's for it.
    schemas: HashMap<TableName, (Arc<TableSchema>, Arc<TableSchema>)>,
    /// Each table as blue's catalog last showed it (at the start or at its last DDL event): what the
    /// catalog is cut back from for older rows, and restored to for newer ones after them.
    latest: HashMap<TableName, BlueTable>,
}

impl<S: Source, C: Convert> Converting<S, C> {
    /// `inner` converted by `convert` from the catalog `tables`, of which green lacks `uncreated`;
    /// `ends` names the engines.
    pub(crate) fn new(
        inner: S,
        convert: Arc<C>,
        (tables, uncreated): (Vec<BlueTable>, std::collections::HashSet<TableName>),
        (reread, shapes, record): (Reread, GreenShapes, RecordCreated),
        actions: Actions,
        ends: (&'static str, &'static str),
    ) -> Converting<S, C> {
        let catalog: HashMap<TableName, BlueTable> = tables.into_iter().map(|t| (t.name.clone(), t)).collect();
        let latest = catalog.clone();
        let (from, to) = ends;
        Converting { inner, convert, from, to, catalog, reread, shapes, record, uncreated, pending: None, actions, schemas: HashMap::new(), latest }
    }

    /// Refuses a change to `table` while green lacks it (see [`Converting::uncreated`]).
    fn not_uncreated(&self, table: &TableName) -> Result<(), Error> {
        if self.uncreated.contains(table) {
            return Err(crate::error::CopyRefusal::AddedAfterCopy { tables: table.to_string() }.into());
        }
        Ok(())
    }

    /// Checks `blue` (the stream's description of a table) against the catalog: the same columns,
    /// or a prefix of them (rows from before an added column, the catalog then cut back to them,
    /// see [`super::ddl::as_of`]), each in the encoding the catalog says.
    fn align(&mut self, blue: &TableSchema) -> Result<(), Error> {
        self.not_uncreated(&blue.name)?;
        let Some(table) = self.catalog.get(&blue.name) else {
            return Err(SchemaRefusal::NotBuilt {
                what: "carrying rows of a table blue created other than by a plain CREATE TABLE the stream carried",
                from: self.from,
                to: self.to,
                fix: "start over (turnout teardown, turnout run) to copy it",
            }
            .into());
        };
        let names: Vec<&str> = blue.columns.iter().map(|c| c.name.as_str()).collect();
        if !columns_are(table, &names) {
            // Rows of blue's newest shape after older ones cut the catalog back: the newest again.
            let latest = self.latest.get(&blue.name).unwrap_or(table);
            let newest = columns_are(latest, &names);
            let was = if newest { Some(latest.clone()) } else { super::ddl::as_of(latest, &names) };
            let Some(was) = was else {
                return Err(SchemaRefusal::NotExact {
                    at: blue.name.to_string(),
                    value: format!("the columns {}", names.join(", ")),
                    to: self.to,
                    green_type: format!("the columns {}", table.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")),
                    fix: "blue's table changed outside what the stream carries; start over (turnout teardown, turnout run)",
                }
                .into());
            };
            if newest {
                tracing::info!(table = %blue.name, columns = %names.join(", "), "rows of blue's newest shape again: converted by its catalog");
            } else {
                // Green may hold the columns cut already (a table made from a catalog read after
                // them): a row of the older shape leaves them to green's default.
                super::ddl::older_rows_fill(self.convert.as_ref(), latest, names.len())?;
                tracing::info!(table = %blue.name, columns = %names.join(", "), "rows from before blue added columns: converted by the catalog as it was then");
            }
            self.catalog.insert(blue.name.clone(), was);
        }
        let table = self.checked(blue)?;
        if let Some((c, id)) = blue.columns.iter().zip(&table.columns).find_map(|(b, c)| Some((c, encoding_of(&b.ty, c)?))) {
            return Err(SchemaRefusal::NotExact {
                at: format!("{}.{}", blue.name, c.name),
                value: format!("text the binlog says is in collation id {id}"),
                to: self.to,
                green_type: format!("the catalog's {} (a column converted outside the binlog)", c.charset.as_deref().unwrap_or("character set")),
                fix: "blue's column changed character set since the stream opened: start over (turnout teardown, turnout run)",
            }
            .into());
        }
        Ok(())
    }

    /// Green's schema for blue's `blue`, converted once per schema blue sends: the catalog's types,
    /// the stream's key (the rows' key values are laid out by it).
    fn green(&mut self, blue: &Arc<TableSchema>) -> Result<Arc<TableSchema>, Error> {
        if let Some((seen, green)) = self.schemas.get(&blue.name) {
            if Arc::ptr_eq(seen, blue) || **seen == **blue {
                return Ok(Arc::clone(green));
            }
        }
        self.align(blue)?;
        let mut green = self.convert.green(self.checked(blue)?)?.schema;
        for (g, b) in green.columns.iter_mut().zip(&blue.columns) {
            g.is_key = b.is_key;
        }
        green.replica_identity = blue.replica_identity;
        green.relation_id = blue.relation_id;
        green.foreign_key_checks = blue.foreign_key_checks;
        let green = Arc::new(green);
        self.schemas.insert(blue.name.clone(), (Arc::clone(blue), Arc::clone(&green)));
        Ok(green)
    }

    /// The catalog's table of a schema [`Converting::green`] already checked.
    fn checked(&self, blue: &TableSchema) -> Result<&BlueTable, Error> {
        self.catalog.get(&blue.name).ok_or_else(|| Error::Setup(format!("{} reached the stream without its schema", blue.name)))
    }

    fn row(&self, blue: &TableSchema, row: Row) -> Result<Row, Error> {
        self.convert.row(self.checked(blue)?, row)
    }

    /// The old key's values (the stream's key columns, in column order) as green holds them.
    fn key(&self, blue: &TableSchema, key: Row) -> Result<Row, Error> {
        let columns: Vec<usize> = blue.key_indexes().collect();
        self.convert.key(self.checked(blue)?, &columns, key)
    }

    fn event(&mut self, event: ChangeEvent) -> Result<ChangeEvent, Error> {
        Ok(match event {
            ChangeEvent::Relation(blue) => ChangeEvent::Relation(self.green(&blue)?),
            ChangeEvent::Insert { table, xid, after } => {
                let green = self.green(&table)?;
                let after = self.row(&table, after)?;
                ChangeEvent::Insert { table: green, xid, after }
            }
            ChangeEvent::Update { table, xid, key, before, after } => {
                let green = self.green(&table)?;
                self.actions.update(&table, self.checked(&table)?, before.as_ref(), &after)?;
                let key = self.key(&table, key)?;
                let before = before.map(|b| self.row(&table, b)).transpose()?;
                let after = self.row(&table, after)?;
                ChangeEvent::Update { table: green, xid, key, before, after }
            }
            ChangeEvent::Delete { table, xid, key, before } => {
                let green = self.green(&table)?;
                self.actions.delete(&table, self.checked(&table)?, before.as_ref())?;
                let key = self.key(&table, key)?;
                let before = before.map(|b| self.row(&table, b)).transpose()?;
                ChangeEvent::Delete { table: green, xid, key, before }
            }
            ChangeEvent::Truncate { tables, xid, cascade, restart_identity } => {
                let tables = tables.iter().map(|t| self.green(t)).collect::<Result<_, _>>()?;
                ChangeEvent::Truncate { tables, xid, cascade, restart_identity }
            }
            ChangeEvent::Ddl { .. } => return Err(Error::Internal("blue's DDL reached the conversion untranslated".into())),
            other => other,
        })
    }
}

impl<S: Source, C: Convert> Source for Converting<S, C> {
    async fn recv(&mut self) -> Result<SourceMessage, Error> {
        if self.pending.is_none() {
            let message = self.inner.recv().await?;
            if !is_ddl(&message) {
                return self.message(message);
            }
            self.pending = Some(message);
        }
        self.translate_pending().await
    }

    fn try_recv(&mut self) -> Result<Option<SourceMessage>, Error> {
        if self.pending.is_some() {
            return Ok(None);
        }
        match self.inner.try_recv()? {
            Some(message) if is_ddl(&message) => {
                self.pending = Some(message);
                Ok(None)
            }
            message => message.map(|m| self.message(m)).transpose(),
        }
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

/// Whether `table`'s columns are `names`, in that order.
fn columns_are(table: &BlueTable, names: &[&str]) -> bool {
    names.len() == table.columns.len() && names.iter().zip(&table.columns).all(|(n, c)| *n == c.name)
}

/// Whether `message` carries blue's DDL.
fn is_ddl(message: &SourceMessage) -> bool {
    matches!(message, SourceMessage::Event { event: ChangeEvent::Ddl { .. }, .. })
}

impl<S: Source, C: Convert> Converting<S, C> {
    fn message(&mut self, message: SourceMessage) -> Result<SourceMessage, Error> {
        Ok(match message {
            SourceMessage::Event { event, log_end } => SourceMessage::Event { event: self.event(event)?, log_end },
            end @ SourceMessage::LogEnd(_) => end,
        })
    }

    /// The pending DDL event as green's statements: blue's catalog read again, what it gained over
    /// the stream's translated by [`super::ddl::carried`], and the stream's catalog moved on to it.
    /// The event stays pending until translated.
    async fn translate_pending(&mut self) -> Result<SourceMessage, Error> {
        let Some(SourceMessage::Event { event: ChangeEvent::Ddl { tables, .. }, .. }) = &self.pending else {
            return Err(Error::Internal("a DDL event to translate went missing".into()));
        };
        let now = (self.reread)(tables.clone()).await?;
        let Some(SourceMessage::Event { event: ChangeEvent::Ddl { database, statement, tables, creates }, log_end }) = self.pending.take() else {
            return Err(Error::Internal("a DDL event to translate went missing".into()));
        };
        let mut statements = Vec::new();
        let mut moved = Vec::new();
        for name in &tables {
            let not_carried = |change: &str, why: &str| -> Error {
                SchemaRefusal::DdlNotCarried {
                    table: name.to_string(),
                    change: change.into(),
                    why: why.into(),
                    fix: "start over (turnout teardown, turnout run)",
                }
                .into()
            };
            let Some(table) = now.iter().find(|t| t.name == *name) else {
                return Err(not_carried(
                    "a table the stream does not hold as named",
                    "blue's catalog has no selected table of that name now (dropped or renamed since, or named in another letter case)",
                ));
            };
            if creates == Creates::No {
                self.not_uncreated(name)?;
            }
            let carried = match (self.catalog.get(name), (self.shapes)(name.clone()).await?, creates) {
                // An ALTER, or IF NOT EXISTS of a table green holds: what blue's gained, if anything.
                (Some(was), Some(green), _) => super::ddl::carried(self.convert.as_ref(), was, &green, table)?,
                // A table green lacks gets green's only from a CREATE TABLE that surely made it
                // empty: IF NOT EXISTS is logged also when the table existed, rows and all.
                (_, None, Creates::IfNotExists) => return Err(not_carried("CREATE TABLE IF NOT EXISTS of a table green lacks", IF_NOT_EXISTS)),
                // Created empty; the stream's catalog holds it already when the stream opened after it.
                (_, None, Creates::New) => {
                    let mut carried = super::ddl::created(self.convert.as_ref(), table)?;
                    carried.statements.push((self.record)(name));
                    self.actions.created(table, self.catalog.values())?;
                    self.uncreated.remove(name);
                    tracing::info!(table = %name, "blue created a table while streaming: green's made by the type map");
                    carried
                }
                (None, Some(_), Creates::New | Creates::IfNotExists) => {
                    return Err(not_carried(
                        "created a table green already has",
                        "green has a table of that name turnout did not make from blue's catalog; drop it on green, or leave the table out (tables.exclude)",
                    ))
                }
                (None, _, Creates::No) => return Err(not_carried(
                    "a table the stream does not hold as named",
                    "blue's statement names a table that is not among the selected tables the stream converts by (renamed, or named in another letter case)",
                )),
                (Some(_), None, Creates::No) => return Err(not_carried("a table green does not have", "green has no such table")),
            };
            for what in &carried.left_out {
                tracing::warn!(table = %name, "{what}");
            }
            statements.extend(carried.statements);
            moved.push(table.clone());
        }
        tracing::info!(blue = %statement, green = %statements.join("; "), "blue's DDL translated for green");
        for table in moved {
            self.schemas.remove(&table.name);
            self.latest.insert(table.name.clone(), table.clone());
            self.catalog.insert(table.name.clone(), table);
        }
        Ok(SourceMessage::Event { event: ChangeEvent::Ddl { database, statement: statements.join(";\n"), tables, creates }, log_end })
    }
}

/// MySQL's `latin1` collations, by the id a binlog table map carries: what a UTF-8 column's must not
/// be when blue's other collations were not read.
const LATIN1_COLLATIONS: [u16; 8] = [5, 8, 15, 31, 47, 48, 49, 94];

/// The binlog's collation id of `column` (`ty`) when it is not encoded as the catalog says: a column
/// converted between character sets outside the binlog would otherwise be decoded by the wrong one.
/// A column the table map gives no character set for is not compared; one the catalog has in a
/// single-byte set must carry one of that set's collations, and one in UTF-8 none of blue's other
/// sets'.
fn encoding_of(ty: &turnout_decoders::schema::ColumnType, column: &BlueColumn) -> Option<u16> {
    let (turnout_decoders::schema::ColumnType::MySql(t), Some(_)) = (ty, column.charset.as_deref()) else { return None };
    let collation = t.charset?;
    if !t.members.is_empty() {
        return None;
    }
    let same = match (column.encoding.as_deref(), column.foreign_collations.as_deref()) {
        (Some(set), _) => set.collations.contains(&collation),
        (None, Some(foreign)) => !foreign.contains(&collation),
        (None, None) => !LATIN1_COLLATIONS.contains(&collation),
    };
    (!same).then_some(collation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::schema::{ColumnType, MySqlType};

    fn binlog(collation: Option<u16>, members: &[&str]) -> ColumnType {
        ColumnType::MySql(MySqlType { code: 15, meta: 40, unsigned: false, charset: collation, members: members.iter().map(|m| (*m).to_owned()).collect() })
    }

    #[test]
    fn a_binlog_column_in_another_set_than_the_catalogs_is_named_by_its_collation() {
        let utf8 = BlueColumn { charset: Some("utf8mb4".into()), foreign_collations: Some(Arc::new(vec![8, 51, 1032])), ..BlueColumn::own("v", "varchar(10)") };
        assert_eq!(encoding_of(&binlog(Some(255), &[]), &utf8), None, "utf8mb4_0900_ai_ci");
        assert_eq!(encoding_of(&binlog(Some(51), &[]), &utf8), Some(51), "cp1251_general_ci under a UTF-8 catalog");
        assert_eq!(encoding_of(&binlog(Some(1032), &[]), &utf8), Some(1032), "MariaDB's latin1 nopad");
        assert_eq!(encoding_of(&binlog(None, &[]), &utf8), None, "no character set in the table map");
        assert_eq!(encoding_of(&binlog(Some(51), &["a"]), &utf8), None, "an ENUM carries its index");
        let unread = BlueColumn { charset: Some("utf8mb4".into()), ..BlueColumn::own("v", "varchar(10)") };
        assert_eq!(encoding_of(&binlog(Some(8), &[]), &unread), Some(8), "latin1 without blue's list");
        let latin1 = BlueColumn {
            charset: Some("latin1".into()),
            encoding: Some(Arc::new(crate::source::compose::charset::tests::latin1())),
            ..BlueColumn::own("v", "varchar(10)")
        };
        assert_eq!(encoding_of(&binlog(Some(8), &[]), &latin1), None);
        assert_eq!(encoding_of(&binlog(Some(255), &[]), &latin1), Some(255), "utf8mb4 under a latin1 catalog");
        assert_eq!(encoding_of(&binlog(Some(255), &[]), &BlueColumn::own("n", "int")), None, "not a character column");
    }
}
