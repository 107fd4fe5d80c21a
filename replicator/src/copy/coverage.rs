//! Which rows green already holds during a chunked copy, and what that makes of each streamed change.

use super::Chunk;
use crate::error::{CopyRefusal, Error};
use std::collections::HashMap;
use turnout_decoders::{TableName, Value};
use turnout_sinks::{RowChange, Transaction};

/// One table's chunks: where each starts (sorted, the first unbounded) and whether it is on green.
#[derive(Clone, Debug)]
enum Table {
    Whole(bool),
    Ranges { column: String, starts: Vec<Option<i128>>, done: Vec<bool> },
}

/// What to do with one change.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Apply it as it is.
    Apply,
    /// Drop it: its row is in a chunk not yet copied, whose copy will show the change.
    Drop,
    /// Apply this instead (a row moved into a copied chunk from one not yet copied: its new image).
    Replace(RowChange),
}

/// The chunks of the plan and which are on green. A table outside the plan is always applied.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    tables: HashMap<TableName, Table>,
}

impl Coverage {
    /// The coverage of `plan` with the chunks `done` (by id) on green.
    pub fn new(plan: &[Chunk], done: impl Fn(u32) -> bool) -> Coverage {
        let mut tables: HashMap<TableName, Table> = HashMap::new();
        let mut sorted: Vec<&Chunk> = plan.iter().collect();
        sorted.sort_by_key(|c| (c.table_name(), c.from));
        for c in sorted {
            let entry = tables.entry(c.table_name()).or_insert_with(|| match &c.column {
                None => Table::Whole(false),
                Some(column) => Table::Ranges { column: column.clone(), starts: Vec::new(), done: Vec::new() },
            });
            match entry {
                Table::Whole(d) => *d = done(c.id),
                Table::Ranges { starts, done: d, .. } => {
                    starts.push(c.from);
                    d.push(done(c.id));
                }
            }
        }
        Coverage { tables }
    }

    /// Marks `chunk` as on green.
    pub fn add(&mut self, chunk: &Chunk) {
        match self.tables.get_mut(&chunk.table_name()) {
            Some(Table::Whole(d)) => *d = true,
            Some(Table::Ranges { starts, done, .. }) => {
                if let Some(i) = starts.iter().position(|s| *s == chunk.from) {
                    done[i] = true;
                }
            }
            None => {}
        }
    }

    /// True when every chunk is on green.
    pub fn complete(&self) -> bool {
        self.tables.values().all(|t| match t {
            Table::Whole(d) => *d,
            Table::Ranges { done, .. } => done.iter().all(|d| *d),
        })
    }

    /// `transactions` with every change decided (see [`Verdict`]); positions and times unchanged.
    pub fn filter(&self, transactions: &[Transaction]) -> Result<Vec<Transaction>, Error> {
        transactions
            .iter()
            .map(|t| Ok(Transaction { xid: t.xid, commit_end: t.commit_end.clone(), commit_ts: t.commit_ts, changes: self.filter_changes(t.changes.iter())? }))
            .collect()
    }

    /// The changes to apply of `changes`.
    pub fn filter_changes<'a>(&self, changes: impl Iterator<Item = &'a RowChange>) -> Result<Vec<RowChange>, Error> {
        let mut out = Vec::new();
        for c in changes {
            match self.verdict(c)? {
                Verdict::Apply => out.push(c.clone()),
                Verdict::Drop => {}
                Verdict::Replace(r) => out.push(r),
            }
        }
        Ok(out)
    }

    /// What to do with `change`.
    pub fn verdict(&self, change: &RowChange) -> Result<Verdict, Error> {
        let (table, old, new) = match change {
            // TRUNCATE empties green's copied part too; blue's later chunks show the table empty.
            RowChange::Truncate { .. } => return Ok(Verdict::Apply),
            RowChange::Insert { table, after } => (table, None, Some(after)),
            RowChange::Update { table, key, after, .. } => (table, Some(key), Some(after)),
            RowChange::Delete { table, key, .. } => (table, Some(key), None),
        };
        let (column, starts, done) = match self.tables.get(&table.name) {
            None => return Ok(Verdict::Apply),
            Some(Table::Whole(true)) => return Ok(Verdict::Apply),
            Some(Table::Whole(false)) => return Ok(Verdict::Drop),
            Some(Table::Ranges { column, starts, done }) => (column, starts, done),
        };
        let at = table
            .columns
            .iter()
            .position(|c| c.name == *column)
            .ok_or_else(|| CopyRefusal::Unplaceable { table: table.name.to_string(), how: format!("column `{column}`, which its changes no longer carry") })?;
        let covered = |v: &Value| -> Result<bool, Error> {
            let key = integer(v).ok_or_else(|| CopyRefusal::Unplaceable {
                table: table.name.to_string(),
                how: format!("the integer column `{column}`, but a change carries {v:?} in it"),
            })?;
            Ok(done[starts.partition_point(|s| s.is_none_or(|s| s <= key)) - 1])
        };
        // The old row's key value: the key columns come in column order.
        let old_value = match old {
            Some(key) => {
                let i = table.key_indexes().position(|k| k == at).ok_or_else(|| CopyRefusal::Unplaceable {
                    table: table.name.to_string(),
                    how: format!("`{column}`, which is not part of its replica identity"),
                })?;
                Some(key.get(i).ok_or_else(|| CopyRefusal::Unplaceable {
                    table: table.name.to_string(),
                    how: format!("`{column}`, but a change to it lacks its key value"),
                })?)
            }
            None => None,
        };
        let new_value = match new.map(|row| row.get(at)) {
            Some(Some(Value::Unchanged)) | Some(None) => old_value,
            Some(Some(v)) => Some(v),
            None => None,
        };
        let old_in = old_value.map(covered).transpose()?;
        let new_in = new_value.map(covered).transpose()?;
        Ok(match (change, old_in, new_in) {
            (RowChange::Insert { .. }, _, Some(true)) | (RowChange::Delete { .. }, Some(true), _) => Verdict::Apply,
            (RowChange::Update { .. }, Some(true), Some(true)) => Verdict::Apply,
            // The row leaves what green holds for a chunk not yet copied, whose copy will show it.
            (RowChange::Update { table, key, before, .. }, Some(true), _) => {
                Verdict::Replace(RowChange::Delete { table: table.clone(), key: key.clone(), before: before.clone() })
            }
            (RowChange::Update { table, after, before, .. }, Some(false), Some(true)) => {
                // A value the source left out as unchanged is the old row's, when the source sent it.
                let after: Vec<Value> = match before {
                    Some(before) if before.len() == after.len() => {
                        after.iter().zip(before).map(|(a, b)| if matches!(a, Value::Unchanged) { b.clone() } else { a.clone() }).collect()
                    }
                    _ => after.clone(),
                };
                if after.iter().any(|v| matches!(v, Value::Unchanged)) {
                    return Err(CopyRefusal::Unrebuildable { table: table.name.to_string() }.into());
                }
                Verdict::Replace(RowChange::Insert { table: table.clone(), after })
            }
            _ => Verdict::Drop,
        })
    }
}

/// An integer key value.
fn integer(v: &Value) -> Option<i128> {
    Some(match v {
        Value::Int2(i) => i128::from(*i),
        Value::Int4(i) => i128::from(*i),
        Value::Int8(i) => i128::from(*i),
        Value::UInt8(u) => i128::from(*u),
        Value::Oid(u) => i128::from(*u),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use turnout_decoders::schema::{Column, ColumnType, ReplicaIdentity, TableSchema};

    fn schema() -> Arc<TableSchema> {
        let column = |name: &str, is_key: bool| Column { name: name.into(), ty: ColumnType::pg(20, -1), is_key };
        Arc::new(TableSchema {
            relation_id: 1,
            name: TableName::new("public", "t"),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![column("v", false), column("id", true)],
            foreign_key_checks: true,
        })
    }

    fn chunk(id: u32, from: Option<i128>, to: Option<i128>) -> Chunk {
        Chunk { id, schema: "public".into(), table: "t".into(), column: Some("id".into()), from, to, bytes: 0 }
    }

    /// Chunks (…, 10) done, [10, 20) not, [20, …) done.
    fn coverage() -> Coverage {
        Coverage::new(&[chunk(2, Some(20), None), chunk(0, None, Some(10)), chunk(1, Some(10), Some(20))], |id| id != 1)
    }

    fn row(id: i64) -> Vec<Value> {
        vec![Value::Text("x".into()), Value::Int8(id)]
    }

    #[test]
    fn changes_to_rows_green_holds_apply_and_others_drop() {
        let (c, t) = (coverage(), schema());
        let insert = |id| RowChange::Insert { table: t.clone(), after: row(id) };
        assert_eq!(c.verdict(&insert(-5)).expect("v"), Verdict::Apply);
        assert_eq!(c.verdict(&insert(9)).expect("v"), Verdict::Apply);
        assert_eq!(c.verdict(&insert(10)).expect("v"), Verdict::Drop);
        assert_eq!(c.verdict(&insert(19)).expect("v"), Verdict::Drop);
        assert_eq!(c.verdict(&insert(20)).expect("v"), Verdict::Apply);
        let delete = |id| RowChange::Delete { table: t.clone(), key: vec![Value::Int8(id)], before: None };
        assert_eq!(c.verdict(&delete(15)).expect("v"), Verdict::Drop);
        assert_eq!(c.verdict(&delete(25)).expect("v"), Verdict::Apply);
        assert_eq!(c.verdict(&RowChange::Truncate { tables: vec![t.clone()], cascade: false, restart_identity: false }).expect("v"), Verdict::Apply);
    }

    #[test]
    fn updates_follow_the_row_across_chunks() {
        let (c, t) = (coverage(), schema());
        let update = |old, new: Vec<Value>| RowChange::Update { table: t.clone(), key: vec![Value::Int8(old)], before: None, after: new };
        // Held → held: green updates the row it holds.
        assert_eq!(c.verdict(&update(5, row(6))).expect("v"), Verdict::Apply);
        assert_eq!(c.verdict(&update(5, row(25))).expect("v"), Verdict::Apply);
        // Held → not held: green deletes it; the later chunk's copy shows the row where it went.
        let gone = RowChange::Delete { table: t.clone(), key: vec![Value::Int8(5)], before: None };
        assert_eq!(c.verdict(&update(5, row(15))).expect("v"), Verdict::Replace(gone));
        // Not held → not held: the copy will show it.
        assert_eq!(c.verdict(&update(12, row(13))).expect("v"), Verdict::Drop);
        // Not held → held: the new image is inserted.
        assert_eq!(c.verdict(&update(12, row(25))).expect("v"), Verdict::Replace(RowChange::Insert { table: t.clone(), after: row(25) }));
        // The key column unchanged-TOAST (never, for an integer) or absent: the old key decides.
        let unchanged = vec![Value::Unchanged, Value::Unchanged];
        assert_eq!(c.verdict(&update(12, unchanged.clone())).expect("v"), Verdict::Drop);
        assert_eq!(c.verdict(&update(3, unchanged)).expect("v"), Verdict::Apply);
        // A move into held rows without every value cannot be rebuilt: refused, naming the table.
        let partial = vec![Value::Unchanged, Value::Int8(25)];
        let e = c.verdict(&update(12, partial.clone())).expect_err("refused").to_string();
        assert!(e.contains("public.t") && e.contains("consistent"), "{e}");
        // Unless the old row was sent whole (REPLICA IDENTITY FULL): its value fills the gap.
        let full =
            RowChange::Update { table: t.clone(), key: vec![Value::Int8(12)], before: Some(vec![Value::Text("old".into()), Value::Int8(12)]), after: partial };
        let rebuilt = vec![Value::Text("old".into()), Value::Int8(25)];
        assert_eq!(c.verdict(&full).expect("v"), Verdict::Replace(RowChange::Insert { table: t.clone(), after: rebuilt }));
    }

    #[test]
    fn whole_tables_and_tables_outside_the_plan() {
        let t = schema();
        let whole = Chunk { column: None, from: None, to: None, ..chunk(0, None, None) };
        let mut c = Coverage::new(std::slice::from_ref(&whole), |_| false);
        let insert = RowChange::Insert { table: t.clone(), after: vec![Value::Text("x".into()), Value::Text("not an integer".into())] };
        assert_eq!(c.verdict(&insert).expect("v"), Verdict::Drop);
        assert!(!c.complete());
        c.add(&whole);
        assert_eq!(c.verdict(&insert).expect("v"), Verdict::Apply);
        assert!(c.complete());
        assert_eq!(Coverage::default().verdict(&insert).expect("v"), Verdict::Apply);
    }

    #[test]
    fn a_key_that_is_not_an_integer_is_an_error_never_a_guess() {
        let t = schema();
        let insert = RowChange::Insert { table: t.clone(), after: vec![Value::Text("x".into()), Value::Text("7".into())] };
        assert!(coverage().verdict(&insert).is_err());
    }
}
