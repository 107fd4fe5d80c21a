//! Blue's change stream seen through a [`Convert`]: every table schema and every row reaches the
//! pipeline as green holds it, or the stream stops naming what would not arrive exactly. Blue's own
//! DDL is refused here: its text is in blue's dialect.

use super::Convert;
use crate::error::{Error, SchemaRefusal};
use crate::source::{Source, SourceMessage};
use std::collections::HashMap;
use std::sync::Arc;
use turnout_decoders::event::Row;
use turnout_decoders::schema::{TableName, TableSchema};
use turnout_decoders::ChangeEvent;
use turnout_sinks::Durable;

/// `S` with each event converted by `C`.
#[allow(missing_debug_implementations)]
pub(crate) struct Converting<S, C> {
    inner: S,
    convert: Arc<C>,
    from: &'static str,
    to: &'static str,
    /// Blue's schema of each table seen, and green's for it.
    schemas: HashMap<TableName, (Arc<TableSchema>, Arc<TableSchema>)>,
}

impl<S: Source, C: Convert> Converting<S, C> {
    pub(crate) fn new(inner: S, convert: Arc<C>, from: &'static str, to: &'static str) -> Converting<S, C> {
        Converting { inner, convert, from, to, schemas: HashMap::new() }
    }

    /// Green's schema for blue's `blue`, converted once per schema blue sends.
    fn green(&mut self, blue: &Arc<TableSchema>) -> Result<Arc<TableSchema>, Error> {
        if let Some((seen, green)) = self.schemas.get(&blue.name) {
            if Arc::ptr_eq(seen, blue) || **seen == **blue {
                return Ok(Arc::clone(green));
            }
        }
        let green = Arc::new(self.convert.schema(blue)?);
        self.schemas.insert(blue.name.clone(), (Arc::clone(blue), Arc::clone(&green)));
        Ok(green)
    }

    fn row(&self, green: &TableSchema, row: Row) -> Result<Row, Error> {
        self.convert.row(green, row)
    }

    /// The old key's values (key columns only, in column order) as green holds them.
    fn key(&self, green: &TableSchema, key: Row) -> Result<Row, Error> {
        let columns = green.key_indexes().map(|i| green.columns[i].clone()).collect();
        self.convert.row(&TableSchema { columns, ..green.clone() }, key)
    }

    fn event(&mut self, event: ChangeEvent) -> Result<ChangeEvent, Error> {
        Ok(match event {
            ChangeEvent::Relation(blue) => ChangeEvent::Relation(self.green(&blue)?),
            ChangeEvent::Insert { table, xid, after } => {
                let green = self.green(&table)?;
                let after = self.row(&green, after)?;
                ChangeEvent::Insert { table: green, xid, after }
            }
            ChangeEvent::Update { table, xid, key, before, after } => {
                let green = self.green(&table)?;
                let key = self.key(&green, key)?;
                let before = before.map(|b| self.row(&green, b)).transpose()?;
                let after = self.row(&green, after)?;
                ChangeEvent::Update { table: green, xid, key, before, after }
            }
            ChangeEvent::Delete { table, xid, key, before } => {
                let green = self.green(&table)?;
                let key = self.key(&green, key)?;
                let before = before.map(|b| self.row(&green, b)).transpose()?;
                ChangeEvent::Delete { table: green, xid, key, before }
            }
            ChangeEvent::Truncate { tables, xid, cascade, restart_identity } => {
                let tables = tables.iter().map(|t| self.green(t)).collect::<Result<_, _>>()?;
                ChangeEvent::Truncate { tables, xid, cascade, restart_identity }
            }
            ChangeEvent::Ddl { statement, tables, .. } => {
                let names = tables.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                tracing::error!(statement = %statement, tables = %names, "blue's DDL cannot be carried to green");
                return Err(SchemaRefusal::NotBuilt {
                    what: "carrying blue's DDL while streaming",
                    from: self.from,
                    to: self.to,
                    fix: "make the same change on green in its own dialect, then turnout teardown and turnout run to start over",
                }
                .into());
            }
            other => other,
        })
    }
}

impl<S: Source, C: Convert> Source for Converting<S, C> {
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

impl<S: Source, C: Convert> Converting<S, C> {
    fn message(&mut self, message: SourceMessage) -> Result<SourceMessage, Error> {
        Ok(match message {
            SourceMessage::Event { event, log_end } => SourceMessage::Event { event: self.event(event)?, log_end },
            end @ SourceMessage::LogEnd(_) => end,
        })
    }
}
