//! Blue's change stream seen through a [`Convert`]: every table schema and every row reaches the
//! pipeline as green holds it, or the stream stops naming what would not arrive exactly. Blue's own
//! DDL is refused here: its text is in blue's dialect.

use super::actions::Actions;
use super::{BlueColumn, BlueTable, Convert};
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
    /// Blue's catalog of each selected table when the stream opened: what rows are converted by.
    catalog: HashMap<TableName, BlueTable>,
    /// The catalog's foreign keys with an action: a change must show blue acted as green will.
    actions: Actions,
    /// Blue's schema of each table seen, and green's for it.
    schemas: HashMap<TableName, (Arc<TableSchema>, Arc<TableSchema>)>,
}

impl<S: Source, C: Convert> Converting<S, C> {
    pub(crate) fn new(inner: S, convert: Arc<C>, tables: Vec<BlueTable>, actions: Actions, from: &'static str, to: &'static str) -> Converting<S, C> {
        let catalog = tables.into_iter().map(|t| (t.name.clone(), t)).collect();
        Converting { inner, convert, from, to, catalog, actions, schemas: HashMap::new() }
    }

    /// The catalog's table of `blue` (the stream's description), checked to have the same columns.
    fn table(&self, blue: &TableSchema) -> Result<&BlueTable, Error> {
        let Some(table) = self.catalog.get(&blue.name) else {
            return Err(SchemaRefusal::NotBuilt {
                what: "carrying a table created on blue while streaming",
                from: self.from,
                to: self.to,
                fix: "start over (turnout teardown, turnout run) to copy it",
            }
            .into());
        };
        let names = blue.columns.len() == table.columns.len() && blue.columns.iter().zip(&table.columns).all(|(b, c)| b.name == c.name);
        if !names {
            return Err(SchemaRefusal::NotExact {
                at: blue.name.to_string(),
                value: format!("the columns {}", blue.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")),
                to: self.to,
                green_type: format!("the columns {}", table.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")),
                fix: "blue's table changed since the stream opened; make the same change on green in its own dialect, then restart",
            }
            .into());
        }
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
        Ok(table)
    }

    /// Green's schema for blue's `blue`, converted once per schema blue sends: the catalog's types,
    /// the stream's key (the rows' key values are laid out by it).
    fn green(&mut self, blue: &Arc<TableSchema>) -> Result<Arc<TableSchema>, Error> {
        if let Some((seen, green)) = self.schemas.get(&blue.name) {
            if Arc::ptr_eq(seen, blue) || **seen == **blue {
                return Ok(Arc::clone(green));
            }
        }
        let mut green = self.convert.green(self.table(blue)?)?.schema;
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
    let same = match (column.single_byte.as_deref(), column.foreign_collations.as_deref()) {
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
            single_byte: Some(Arc::new(crate::source::compose::charset::tests::latin1())),
            ..BlueColumn::own("v", "varchar(10)")
        };
        assert_eq!(encoding_of(&binlog(Some(8), &[]), &latin1), None);
        assert_eq!(encoding_of(&binlog(Some(255), &[]), &latin1), Some(255), "utf8mb4 under a latin1 catalog");
        assert_eq!(encoding_of(&binlog(Some(255), &[]), &BlueColumn::own("n", "int")), None, "not a character column");
    }
}
