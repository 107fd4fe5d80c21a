//! What the stream changed since a position: the tables and, for a table keyed by one integer
//! column, the keys. The continuous verify ([`crate::verify::continuous`]) re-checks only the chunks
//! holding those keys between its whole runs.
//!
//! The assembler notes what each transaction touches ([`Touched`]) as its changes arrive; the
//! pipeline records it here at the commit, under the commit's position ([`Changes::record`]). A
//! verify that compared everything up to position `P` then clears what it saw at or before `P`
//! ([`Changes::clear`]), and only that.
//!
//! Guarantees:
//! - Never less than what changed: a key set over [`KEYS_PER_TABLE`], a key that is not one integer
//!   column, a truncate or a changed table schema marks the whole table; a DDL statement of the
//!   source (MySQL family) marks every table. Rolled-back subtransactions' keys stay (over-counted).
//! - An entry is cleared only if it is still exactly what the verify read before it began and its
//!   position is at or before the verify's: a change recorded meanwhile stays.
//! - What a stream recorded is only valid for it: [`Changes::begin`] starts a new epoch, empty, each
//!   time a stream starts, and a verify's base from another epoch is not used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use turnout_decoders::schema::TableName;
use turnout_decoders::{ColumnType, Position, TableSchema, Value};
use turnout_sinks::RowChange;

/// Keys kept per transaction and per table; beyond, a whole table counts as changed.
pub const KEYS_PER_TABLE: usize = 10_000;

/// What one transaction touched.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Touched {
    tables: BTreeMap<String, Seen>,
    /// Schemas announced inside the transaction.
    schemas: Vec<std::sync::Arc<TableSchema>>,
    /// A DDL statement of the source: any table may have changed.
    everything: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Seen {
    /// The key column, when the table is keyed by one column.
    column: Option<String>,
    keys: BTreeSet<i128>,
    whole: bool,
}

/// The value of an integer column, as the verify orders it.
fn integer(v: &Value) -> Option<i128> {
    match v {
        Value::Int2(n) => Some(i128::from(*n)),
        Value::Int4(n) => Some(i128::from(*n)),
        Value::Int8(n) => Some(i128::from(*n)),
        Value::UInt8(n) => Some(i128::from(*n)),
        Value::Oid(n) => Some(i128::from(*n)),
        _ => None,
    }
}

impl Touched {
    fn seen(&mut self, table: &TableName) -> &mut Seen {
        self.tables.entry(table.quoted()).or_default()
    }

    /// Notes one row change.
    pub fn note(&mut self, change: &RowChange) {
        let (table, keys): (_, Vec<Option<i128>>) = match change {
            RowChange::Truncate { tables, .. } => {
                for t in tables {
                    self.seen(&t.name).whole = true;
                }
                return;
            }
            RowChange::Insert { table, after } => (table, vec![single(table).and_then(|i| after.get(i)).and_then(integer)]),
            RowChange::Update { table, key, after, .. } => {
                let old = key.first().and_then(integer);
                let new = match single(table).and_then(|i| after.get(i)) {
                    Some(v) if v.is_unchanged() => old,
                    Some(v) => integer(v),
                    None => None,
                };
                (table, vec![old, new])
            }
            RowChange::Delete { table, key, .. } => (table, vec![key.first().and_then(integer)]),
        };
        let column = single(table).map(|i| table.columns[i].name.clone());
        let seen = self.seen(&table.name);
        if seen.whole {
            return;
        }
        if seen.column.is_some() && seen.column != column {
            seen.whole = true;
            return;
        }
        seen.column = column;
        match keys.into_iter().collect::<Option<Vec<i128>>>() {
            Some(keys) if seen.column.is_some() => seen.keys.extend(keys),
            _ => seen.whole = true,
        }
        if seen.whole {
            seen.keys.clear();
        }
        // At most KEYS_PER_TABLE keys in all: beyond, the table with the most counts whole.
        if self.tables.values().map(|s| s.keys.len()).sum::<usize>() > KEYS_PER_TABLE {
            if let Some(most) = self.tables.values_mut().max_by_key(|s| s.keys.len()) {
                most.whole = true;
                most.keys.clear();
            }
        }
    }

    /// A schema announced inside the transaction.
    pub fn schema(&mut self, schema: &std::sync::Arc<TableSchema>) {
        self.schemas.push(std::sync::Arc::clone(schema));
    }

    /// A DDL statement of the source.
    pub fn statement(&mut self) {
        self.everything = true;
    }
}

/// The key column's index, when the table is keyed by exactly one column of an integer type (whose
/// order is its values': an ENUM's or SET's number is not).
fn single(table: &TableSchema) -> Option<usize> {
    let mut keys = table.key_indexes();
    match (keys.next(), keys.next()) {
        (Some(i), None) if integer_type(&table.columns[i].ty) => Some(i),
        _ => None,
    }
}

/// `smallint`, `integer`, `bigint` (and domains over them: pgoutput names the base type);
/// MySQL-family TINYINT, SMALLINT, MEDIUMINT, INT and BIGINT, signed or not.
fn integer_type(ty: &ColumnType) -> bool {
    match ty {
        ColumnType::Pg { oid, .. } => matches!(oid, 20 | 21 | 23),
        ColumnType::MySql(m) => matches!(m.code, 1 | 2 | 3 | 8 | 9),
    }
}

/// One table's changes since the last verify cleared them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dirty {
    /// The key column, when only keys are recorded.
    pub column: Option<String>,
    /// Each key and the position of the last commit that changed it.
    pub keys: BTreeMap<i128, Position>,
    /// The whole table changed, last at this position (none: not known yet, never cleared).
    pub whole: Option<Option<Position>>,
}

/// What changed since the verify last cleared it, in one epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Taken {
    pub epoch: u64,
    /// Per table, `schema.table` quoted as [`TableName::quoted`].
    pub tables: BTreeMap<String, Dirty>,
    /// A DDL statement of the source changed any table, last at this position.
    pub everything: Option<Position>,
}

#[derive(Debug, Default)]
struct Inner {
    taken: Taken,
    /// Tables whose schema changed outside a transaction: marked whole at the next commit.
    pending: BTreeSet<String>,
    /// Each table's schema as last announced in this epoch.
    schemas: HashMap<String, String>,
}

/// The stream's changes since the verify last cleared them (see the module doc).
#[derive(Debug, Default)]
pub struct Changes {
    inner: Mutex<Inner>,
}

fn at_or_before(a: &Position, b: &Position) -> bool {
    matches!(a.partial_cmp(b), Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal))
}

impl Changes {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A stream starts: a new epoch, with nothing recorded.
    pub fn begin(&self) {
        let mut inner = self.lock();
        let epoch = inner.taken.epoch + 1;
        *inner = Inner { taken: Taken { epoch, ..Taken::default() }, ..Inner::default() };
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.lock().taken.epoch
    }

    /// A table's schema as the source announced it: a changed one marks the table whole at the next
    /// commit (the first in an epoch only sets what later ones compare with).
    pub fn schema(&self, schema: &TableSchema) {
        Self::schema_in(&mut self.lock(), schema);
    }

    fn schema_in(inner: &mut Inner, schema: &TableSchema) {
        let name = schema.name.quoted();
        let shape = format!("{:?}", schema.columns);
        if inner.schemas.insert(name.clone(), shape.clone()).is_some_and(|before| before != shape) {
            inner.pending.insert(name);
        }
    }

    /// Records what a transaction committed at `at` touched.
    pub fn record(&self, touched: &Touched, at: &Position) {
        let mut inner = self.lock();
        for schema in &touched.schemas {
            Self::schema_in(&mut inner, schema);
        }
        let pending = std::mem::take(&mut inner.pending);
        let taken = &mut inner.taken;
        if touched.everything {
            taken.everything = Some(at.clone());
        }
        for name in pending {
            taken.tables.entry(name).or_default().whole = Some(Some(at.clone()));
        }
        for (name, seen) in &touched.tables {
            let dirty = taken.tables.entry(name.clone()).or_default();
            let mismatch = dirty.column.is_some() && dirty.column != seen.column;
            if seen.whole || mismatch || dirty.keys.len() + seen.keys.len() > KEYS_PER_TABLE {
                dirty.whole = Some(Some(at.clone()));
                dirty.keys.clear();
                continue;
            }
            if dirty.whole.is_some() {
                // Already whole: the newest position is what a verify must pass.
                dirty.whole = Some(Some(at.clone()));
                continue;
            }
            dirty.column.clone_from(&seen.column);
            for k in &seen.keys {
                dirty.keys.insert(*k, at.clone());
            }
        }
    }

    /// What changed since the verify last cleared it.
    pub fn taken(&self) -> Taken {
        let inner = self.lock();
        let mut taken = inner.taken.clone();
        for name in &inner.pending {
            taken.tables.entry(name.clone()).or_default().whole = Some(None);
        }
        taken
    }

    /// A verify compared `tables` (all of them when none) at positions no earlier than `at`: clears
    /// what of `seen` (read before it began) is unchanged since and at or before `at`.
    pub fn clear(&self, seen: &Taken, at: &Position, tables: Option<&BTreeSet<String>>) {
        let mut inner = self.lock();
        let taken = &mut inner.taken;
        if taken.epoch != seen.epoch {
            return;
        }
        if tables.is_none()
            && taken.everything.is_some()
            && taken.everything == seen.everything
            && seen.everything.as_ref().is_some_and(|p| at_or_before(p, at))
        {
            taken.everything = None;
        }
        for (name, before) in &seen.tables {
            if tables.is_some_and(|only| !only.contains(name)) {
                continue;
            }
            let Some(now) = taken.tables.get_mut(name) else { continue };
            if now.whole.is_some() && now.whole == before.whole && before.whole.as_ref().is_some_and(|p| p.as_ref().is_some_and(|p| at_or_before(p, at))) {
                now.whole = None;
            }
            for (key, was) in &before.keys {
                if now.keys.get(key) == Some(was) && at_or_before(was, at) {
                    now.keys.remove(key);
                }
            }
            if now.whole.is_none() && now.keys.is_empty() {
                taken.tables.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use turnout_decoders::position::Lsn;
    use turnout_decoders::schema::{Column, ReplicaIdentity};

    fn table(keys: &[&str]) -> Arc<TableSchema> {
        let columns = ["id", "k2", "note"]
            .iter()
            .map(|name| Column { name: (*name).into(), ty: ColumnType::Pg { oid: 20, modifier: -1, name: None }, is_key: keys.contains(name) })
            .collect();
        Arc::new(TableSchema {
            relation_id: 1,
            name: TableName { schema: "public".into(), name: "t".into() },
            replica_identity: ReplicaIdentity::Default,
            columns,
            foreign_key_checks: true,
        })
    }

    /// The table's name as the verify and this module key it.
    const T: &str = "\"public\".\"t\"";

    fn at(n: u64) -> Position {
        Position::Pg(Lsn(n))
    }

    fn row(id: i64) -> Vec<Value> {
        vec![Value::Int8(id), Value::Int8(0), Value::Null]
    }

    #[test]
    fn keys_of_one_integer_column_are_recorded_and_anything_else_marks_the_table() {
        let t = table(&["id"]);
        let mut touched = Touched::default();
        touched.note(&RowChange::Insert { table: Arc::clone(&t), after: row(5) });
        touched.note(&RowChange::Update { table: Arc::clone(&t), key: vec![Value::Int8(6)], before: None, after: row(7) });
        touched.note(&RowChange::Delete { table: Arc::clone(&t), key: vec![Value::Int8(9)], before: None });
        let changes = Changes::default();
        changes.begin();
        changes.record(&touched, &at(10));
        let taken = changes.taken();
        let dirty = &taken.tables[T];
        assert_eq!(dirty.column.as_deref(), Some("id"));
        assert_eq!(dirty.keys.keys().copied().collect::<Vec<_>>(), vec![5, 6, 7, 9]);
        assert_eq!(dirty.whole, None);

        // Two key columns, or a key that is not an integer: the whole table.
        let mut touched = Touched::default();
        touched.note(&RowChange::Insert { table: table(&["id", "k2"]), after: row(1) });
        assert!(touched.tables[T].whole);
        let mut touched = Touched::default();
        touched.note(&RowChange::Insert {
            table: Arc::clone(&t),
            after: vec![Value::Text(turnout_decoders::Utf8Bytes::from_string("x")), Value::Null, Value::Null],
        });
        assert!(touched.tables[T].whole);
        // A key whose number is not its order (a MySQL ENUM's index): the whole table.
        let mut enumerated = (*t).clone();
        enumerated.columns[0].ty = ColumnType::MySql(turnout_decoders::schema::MySqlType { code: 247, ..Default::default() });
        let mut touched = Touched::default();
        touched.note(&RowChange::Insert { table: Arc::new(enumerated), after: vec![Value::UInt8(2), Value::Null, Value::Null] });
        assert!(touched.tables[T].whole);
        let mut touched = Touched::default();
        touched.note(&RowChange::Truncate { tables: vec![Arc::clone(&t)], cascade: false, restart_identity: false });
        assert!(touched.tables[T].whole);
    }

    #[test]
    fn too_many_keys_mark_the_table_whole() {
        let t = table(&["id"]);
        let mut touched = Touched::default();
        for id in 0..=i64::try_from(KEYS_PER_TABLE).expect("fits") {
            touched.note(&RowChange::Insert { table: Arc::clone(&t), after: row(id) });
        }
        assert!(touched.tables[T].whole && touched.tables[T].keys.is_empty());
    }

    #[test]
    fn a_verify_clears_only_what_it_read_and_compared_past() {
        let t = table(&["id"]);
        let changes = Changes::default();
        changes.begin();
        let one = |id| {
            let mut touched = Touched::default();
            touched.note(&RowChange::Insert { table: Arc::clone(&t), after: row(id) });
            touched
        };
        changes.record(&one(1), &at(10));
        changes.record(&one(2), &at(20));
        let seen = changes.taken();
        // Recorded after the verify read: key 1 again (at 15, before the verify's position) and 3.
        changes.record(&one(1), &at(15));
        changes.record(&one(3), &at(16));
        changes.clear(&seen, &at(18), None);
        let left: Vec<i128> = changes.taken().tables[T].keys.keys().copied().collect();
        assert_eq!(left, vec![1, 2, 3], "1 changed since it was read, 2 is after the verify's position, 3 was not read");

        // Another epoch: nothing cleared by what was read in the last one.
        let seen = changes.taken();
        changes.begin();
        changes.record(&one(4), &at(30));
        changes.clear(&seen, &at(100), None);
        assert_eq!(changes.taken().tables[T].keys.len(), 1);
        let seen = changes.taken();
        changes.clear(&seen, &at(100), None);
        assert!(changes.taken().tables.is_empty());
    }

    #[test]
    fn a_changed_schema_marks_its_table_at_the_next_commit() {
        let t = table(&["id"]);
        let changes = Changes::default();
        changes.begin();
        changes.schema(&t);
        assert!(changes.taken().tables.is_empty(), "the first schema of an epoch is not a change");
        let mut wider = (*t).clone();
        wider.columns.push(Column { name: "added".into(), ty: ColumnType::Pg { oid: 25, modifier: -1, name: None }, is_key: false });
        changes.schema(&wider);
        assert_eq!(changes.taken().tables[T].whole, Some(None), "marked, at no position yet");
        changes.record(&Touched::default(), &at(40));
        assert_eq!(changes.taken().tables[T].whole, Some(Some(at(40))));
        let seen = changes.taken();
        changes.clear(&seen, &at(40), None);
        assert!(changes.taken().tables.is_empty());
    }
}
