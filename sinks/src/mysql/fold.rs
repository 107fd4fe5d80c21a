//! The net effect of a batch's changes to independent tables (see [`TableInfo::independent`]): per
//! row, whether it must exist on green before the batch and what it holds after. Such a table's
//! changes are applied as one multi-row `DELETE` of every row that existed before and one multi-row
//! `INSERT` of every row that exists after — two statements per table instead of one per row.
//!
//! Why this is the same as applying the changes one by one: within one green transaction only the
//! final state is visible; with no foreign key, no unique key other than the primary key, no trigger
//! and no system versioning, nothing observes the order of changes to different rows, and replacing
//! a row (DELETE + INSERT of the full new row) leaves the same row as updating it. Divergence is still
//! caught: the DELETE must remove exactly the rows blue changed or deleted (they existed), and the
//! INSERT fails on a row that exists when blue's did not. Rows are told apart by the literal text of
//! their key, so only keys whose literals are canonical fold (integers, DECIMAL, dates and times,
//! binary strings); a character key (collations make `'a'` and `'A '` the same row) does not.
//!
//! [`TableInfo::independent`]: super::catalog::TableInfo

use super::literal::push;
use super::mysql_type;
use crate::error::SinkError;
use crate::RowChange;
use std::collections::HashMap;
use std::sync::Arc;
use turnout_decoders::schema::{ColumnType, ReplicaIdentity, TableSchema};
use turnout_decoders::Value;

type Row = Vec<Value>;

/// One row's net change.
#[derive(Debug)]
pub(super) struct Entry {
    /// The row existed before the batch (blue updated or deleted it first).
    pub existed: bool,
    /// The key columns' values, in key order.
    pub key: Row,
    /// The row after the batch, if it exists then.
    pub after: Option<Row>,
}

/// A table's folded changes.
#[derive(Debug)]
pub(super) struct FoldedTable {
    pub schema: Arc<TableSchema>,
    pub entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

/// Folded changes of a batch, per table.
#[derive(Debug, Default)]
pub(super) struct Fold {
    tables: Vec<FoldedTable>,
    rows: usize,
}

/// Whether every key column's literal is canonical: equal literals ⇔ the same row.
pub(super) fn canonical_keys(schema: &TableSchema) -> bool {
    schema.replica_identity != ReplicaIdentity::Full
        && schema.key_indexes().next().is_some()
        && schema.key_indexes().all(|i| match &schema.columns[i].ty {
            // TINY SHORT LONG LONGLONG INT24 YEAR, DECIMAL, DATE NEWDATE TIMESTAMP2 DATETIME2 TIME2, and
            // strings without a character set (BINARY/VARBINARY/BLOB).
            ColumnType::MySql(t) => match t.code {
                1 | 2 | 3 | 8 | 9 | 13 | 246 | 10 | 14 | 17 | 18 | 19 => true,
                15 | 253 | 254 | 252 => t.charset.is_none(),
                _ => false,
            },
            _ => false,
        })
}

fn key_text(schema: &TableSchema, key: &[Value]) -> Result<String, SinkError> {
    let mut text = String::new();
    for (k, i) in schema.key_indexes().enumerate() {
        if k > 0 {
            text.push(',');
        }
        push(&mut text, mysql_type(schema, i), key.get(k).unwrap_or(&Value::Null)).map_err(|reason| SinkError::Value {
            table: schema.name.to_string(),
            column: schema.columns[i].name.clone(),
            reason,
        })?;
    }
    Ok(text)
}

fn key_of(schema: &TableSchema, row: &[Value]) -> Row {
    schema.key_indexes().map(|i| row.get(i).cloned().unwrap_or(Value::Null)).collect()
}

impl FoldedTable {
    fn entry(&mut self, key: Row, existed: bool) -> Result<&mut Entry, SinkError> {
        let text = key_text(&self.schema, &key)?;
        let at = match self.index.get(&text) {
            Some(&at) => at,
            None => {
                self.entries.push(Entry { existed, key, after: None });
                self.index.insert(text, self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        Ok(&mut self.entries[at])
    }

    fn insert(&mut self, after: &Row) -> Result<(), SinkError> {
        let key = key_of(&self.schema, after);
        self.entry(key, false)?.after = Some(after.clone());
        Ok(())
    }

    fn delete(&mut self, key: &Row) -> Result<(), SinkError> {
        self.entry(key.clone(), true)?.after = None;
        Ok(())
    }
}

impl Fold {
    /// Rows folded so far.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// Whether `schema` can join the fold as it is: a table folded under other columns (a schema
    /// change inside the batch) needs the fold applied first.
    pub(super) fn accepts(&self, schema: &TableSchema) -> bool {
        self.tables.iter().find(|t| t.schema.name == schema.name).is_none_or(|t| t.schema.columns == schema.columns)
    }

    /// Adds one change of an independent table with [`canonical_keys`].
    pub(super) fn add(&mut self, change: &RowChange) -> Result<(), SinkError> {
        let schema = match change {
            RowChange::Insert { table, .. } | RowChange::Update { table, .. } | RowChange::Delete { table, .. } => table,
            RowChange::Truncate { .. } => return Ok(()),
        };
        let at = match self.tables.iter().position(|t| t.schema.name == schema.name) {
            Some(at) => at,
            None => {
                self.tables.push(FoldedTable { schema: Arc::clone(schema), entries: Vec::new(), index: HashMap::new() });
                self.tables.len() - 1
            }
        };
        let table = &mut self.tables[at];
        match change {
            RowChange::Insert { after, .. } => table.insert(after)?,
            RowChange::Update { key, after, .. } => {
                let new_key = key_of(&table.schema, after);
                if key_text(&table.schema, &new_key)? == key_text(&table.schema, key)? {
                    table.entry(key.clone(), true)?.after = Some(after.clone());
                } else {
                    // The key moved: the old row goes, a new one comes.
                    table.delete(key)?;
                    table.insert(after)?;
                }
            }
            RowChange::Delete { key, .. } => table.delete(key)?,
            RowChange::Truncate { .. } => {}
        }
        self.rows += 1;
        Ok(())
    }

    /// Everything folded, emptying the fold.
    pub(super) fn take(&mut self) -> Vec<FoldedTable> {
        self.rows = 0;
        std::mem::take(&mut self.tables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::schema::{Column, MySqlType};
    use turnout_decoders::TableName;

    fn table(key_code: u8, charset: Option<u16>) -> Arc<TableSchema> {
        let ty = |code, charset| ColumnType::MySql(MySqlType { code, meta: 0, unsigned: false, charset, members: Vec::new() });
        Arc::new(TableSchema {
            relation_id: 1,
            name: TableName::new("db", "t"),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![Column { name: "id".into(), ty: ty(key_code, charset), is_key: true }, Column { name: "v".into(), ty: ty(3, None), is_key: false }],
            foreign_key_checks: true,
        })
    }

    fn net(changes: &[RowChange]) -> Vec<(bool, Row, Option<Row>)> {
        let mut fold = Fold::default();
        for c in changes {
            fold.add(c).expect("add");
        }
        fold.take().into_iter().flat_map(|t| t.entries).map(|e| (e.existed, e.key, e.after)).collect()
    }

    #[test]
    fn each_row_folds_to_whether_it_existed_and_what_it_holds_after() {
        let t = table(3, None);
        let row = |id: i32, v: i32| vec![Value::Int4(id), Value::Int4(v)];
        let ins = |id, v| RowChange::Insert { table: Arc::clone(&t), after: row(id, v) };
        let upd = |id, new_id, v| RowChange::Update { table: Arc::clone(&t), key: vec![Value::Int4(id)], before: None, after: row(new_id, v) };
        let del = |id| RowChange::Delete { table: Arc::clone(&t), key: vec![Value::Int4(id)], before: None };
        let got = net(&[upd(1, 1, 10), del(2), ins(2, 20), ins(3, 30), del(3), ins(4, 40), upd(4, 4, 41), upd(5, 6, 60), del(7)]);
        let k = |id| vec![Value::Int4(id)];
        assert_eq!(
            got,
            vec![
                (true, k(1), Some(row(1, 10))),
                (true, k(2), Some(row(2, 20))),
                (false, k(3), None),
                (false, k(4), Some(row(4, 41))),
                (true, k(5), None),
                (false, k(6), Some(row(6, 60))),
                (true, k(7), None),
            ]
        );
    }

    #[test]
    fn only_keys_whose_literals_are_canonical_fold() {
        assert!(canonical_keys(&table(3, None)));
        assert!(canonical_keys(&table(246, None)));
        assert!(canonical_keys(&table(15, None)), "VARBINARY");
        assert!(!canonical_keys(&table(15, Some(45))), "a VARCHAR under a collation");
        assert!(!canonical_keys(&table(5, None)), "DOUBLE");
        let mut keyless = (*table(3, None)).clone();
        keyless.replica_identity = ReplicaIdentity::Full;
        assert!(!canonical_keys(&keyless));
    }
}
