//! What the stream changed since a position: the tables and, for a table keyed by one integer
//! column, the keys. The continuous verify ([`crate::verify::continuous`]) re-checks only the chunks
//! holding those keys between its whole runs.
//!
//! The assembler notes what each transaction touches ([`Touched`]) as its changes arrive; the
//! pipeline records it here at the commit, under the commit's position ([`Changes::record`]). A
//! verify that compared everything up to position `P` then clears what it saw at or before `P`
//! ([`Changes::clear`]), and only that.
//!
//! Only kept when the continuous verify re-checks between whole runs ([`Changes::enable`], before
//! any stream starts); otherwise nothing is noted or recorded.
//!
//! Guarantees:
//! - Never less than what changed: a key set over [`KEYS_PER_TABLE`] (or [`KEYS_IN_ALL`] across
//!   tables), a key that is not one integer column, a truncate, or a table schema announced for the
//!   first time in the epoch or changed marks the whole table; a DDL statement of the source (MySQL
//!   family) marks every table. Rolled-back subtransactions' keys stay (over-counted).
//! - A verify that compared from position `P` on clears a key only if it compared the key's chunk
//!   (the key was planned) or its whole table, and the key's last change is at or before `P`; a
//!   whole-table mark only if it compared the table whole and the mark is at or before `P`.
//! - What a stream recorded is only valid for it: [`Changes::begin`] starts a new epoch, empty, each
//!   time a stream starts, and a verify's base from another epoch is not used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use turnout_decoders::{ColumnType, Position, TableSchema, Value};
use turnout_sinks::RowChange;

/// Keys kept per transaction and per table; beyond, a whole table counts as changed.
pub const KEYS_PER_TABLE: usize = 10_000;

/// Keys kept across all tables; beyond, the table being recorded counts as changed whole.
pub const KEYS_IN_ALL: usize = 100_000;

/// What one transaction touched.
#[derive(Clone, Debug, Default)]
pub struct Touched {
    /// Per table schema (by identity: one `Arc` per announced shape), what its changes touched.
    tables: Vec<(Arc<TableSchema>, Seen)>,
    /// Keys in `tables`.
    keys: usize,
    /// Schemas announced inside the transaction.
    schemas: Vec<Arc<TableSchema>>,
    /// A DDL statement of the source: any table may have changed.
    everything: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Seen {
    /// The key column, when the table is keyed by one integer column.
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
        _ => None,
    }
}

impl Touched {
    fn seen(&mut self, table: &Arc<TableSchema>) -> &mut Seen {
        let at = match self.tables.iter().position(|(t, _)| Arc::ptr_eq(t, table)) {
            Some(at) => at,
            None => {
                let column = single(table).map(|i| table.columns[i].name.clone());
                self.tables.push((Arc::clone(table), Seen { column, ..Seen::default() }));
                self.tables.len() - 1
            }
        };
        &mut self.tables[at].1
    }

    /// Notes one row change.
    pub fn note(&mut self, change: &RowChange) {
        // The keys a change touched (an update: the old and the new), when all are known.
        let (table, keys): (_, Option<Vec<i128>>) = match change {
            RowChange::Truncate { tables, .. } => {
                for t in tables {
                    self.whole(t);
                }
                return;
            }
            RowChange::Insert { table, after } => (table, single(table).and_then(|i| after.get(i)).and_then(integer).map(|k| vec![k])),
            RowChange::Update { table, key, after, .. } => {
                let old = key.first().and_then(integer);
                let new = match single(table).and_then(|i| after.get(i)) {
                    Some(v) if v.is_unchanged() => old,
                    Some(v) => integer(v),
                    None => None,
                };
                (table, old.zip(new).map(|(o, n)| vec![o, n]))
            }
            RowChange::Delete { table, key, .. } => (table, key.first().and_then(integer).map(|k| vec![k])),
        };
        let seen = self.seen(table);
        if seen.whole {
            return;
        }
        let keys = keys.filter(|_| seen.column.is_some());
        let known = keys.is_some();
        let before = seen.keys.len();
        seen.keys.extend(keys.into_iter().flatten());
        let (added, over) = (seen.keys.len() - before, seen.keys.len() > KEYS_PER_TABLE);
        self.keys += added;
        if !known || over || self.keys > KEYS_PER_TABLE {
            self.whole(table);
        }
    }

    /// Marks `table` changed whole.
    fn whole(&mut self, table: &Arc<TableSchema>) {
        let seen = self.seen(table);
        let dropped = seen.keys.len();
        (seen.whole, seen.keys) = (true, BTreeSet::new());
        self.keys -= dropped.min(self.keys);
    }

    /// A schema announced inside the transaction.
    pub fn schema(&mut self, schema: &Arc<TableSchema>) {
        self.schemas.push(Arc::clone(schema));
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

/// `smallint`, `integer`, `bigint` (pgoutput names a domain column by the domain's own type: such
/// keys count as not integer); MySQL-family TINYINT, SMALLINT, MEDIUMINT, INT and BIGINT, signed or
/// not.
fn integer_type(ty: &ColumnType) -> bool {
    match ty {
        ColumnType::Pg { oid, .. } => matches!(oid, 20 | 21 | 23),
        ColumnType::MySql(m) => matches!(m.code, 1 | 2 | 3 | 8 | 9),
    }
}

/// One table's changes since the verify last cleared them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dirty {
    /// The key column, when keys are recorded.
    pub column: Option<String>,
    /// Each key and the position of the last commit that changed it.
    pub keys: BTreeMap<i128, Arc<Position>>,
    /// The whole table changed, last at this position (none: not known yet, never cleared). Later
    /// changes by key do not move it: they are recorded as keys.
    pub whole: Option<Option<Arc<Position>>>,
}

/// What changed since the verify last cleared it, in one epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Taken {
    pub epoch: u64,
    /// Per table, `schema.table` quoted as [`turnout_decoders::TableName::quoted`].
    pub tables: BTreeMap<String, Dirty>,
    /// A DDL statement of the source changed any table, last at this position.
    pub everything: Option<Arc<Position>>,
}

#[derive(Debug, Default)]
struct Inner {
    taken: Taken,
    /// Keys recorded across tables.
    keys: usize,
    /// Tables whose schema was announced outside a transaction: marked whole at the next commit.
    pending: BTreeSet<String>,
    /// Each table's schema as last announced in this epoch.
    schemas: HashMap<String, String>,
}

/// The stream's changes since the verify last cleared them (see the module doc).
#[derive(Debug, Default)]
pub struct Changes {
    enabled: AtomicBool,
    inner: Mutex<Inner>,
}

/// Whether `a` is known to be at or before `b`: a change that cannot be ordered against a verify's
/// position is never taken as covered by it (it stays to be checked again).
fn at_or_before(a: &Position, b: &Position) -> bool {
    a.try_cmp(b).is_ok_and(std::cmp::Ordering::is_le)
}

impl Changes {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps what changes from now on: called before any stream starts (a stream already running
    /// would have noted nothing).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::SeqCst);
    }

    /// Whether changes are kept.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
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

    /// A table's schema as the source announced it outside a transaction: the first in an epoch, or
    /// a changed one, marks the table whole at the next commit.
    pub fn schema(&self, schema: &TableSchema) {
        if self.enabled() {
            Self::schema_in(&mut self.lock(), schema);
        }
    }

    fn schema_in(inner: &mut Inner, schema: &TableSchema) {
        let name = schema.name.quoted();
        let shape = format!("{:?}", schema.columns);
        if inner.schemas.insert(name.clone(), shape.clone()).is_none_or(|before| before != shape) {
            inner.pending.insert(name);
        }
    }

    /// Records what a transaction committed at `at` touched.
    pub fn record(&self, touched: &Touched, at: &Position) {
        if !self.enabled() {
            return;
        }
        let at = Arc::new(at.clone());
        let mut inner = self.lock();
        for schema in &touched.schemas {
            Self::schema_in(&mut inner, schema);
        }
        let pending = std::mem::take(&mut inner.pending);
        if touched.everything {
            inner.taken.everything = Some(Arc::clone(&at));
        }
        for name in pending {
            let dirty = inner.taken.tables.entry(name).or_default();
            dirty.whole = Some(Some(Arc::clone(&at)));
        }
        for (table, seen) in &touched.tables {
            let Inner { taken, keys, .. } = &mut *inner;
            let dirty = taken.tables.entry(table.name.quoted()).or_default();
            let mismatch = dirty.column.is_some() && dirty.column != seen.column;
            let over = dirty.keys.len() + seen.keys.len() > KEYS_PER_TABLE || *keys + seen.keys.len() > KEYS_IN_ALL;
            if seen.whole || mismatch || over {
                *keys -= dirty.keys.len().min(*keys);
                dirty.keys.clear();
                dirty.whole = Some(Some(Arc::clone(&at)));
                continue;
            }
            dirty.column.clone_from(&seen.column);
            for k in &seen.keys {
                if dirty.keys.insert(*k, Arc::clone(&at)).is_none() {
                    *keys += 1;
                }
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

    /// A verify compared `compared` (every table when none) from position `at` on, having planned
    /// from `seen` (read before it began: a table it marks whole was compared whole, a key it holds
    /// had its chunk compared): clears what that covered (see the module doc).
    pub fn clear(&self, seen: &Taken, at: &Position, compared: Option<&BTreeSet<String>>) {
        let mut inner = self.lock();
        let Inner { taken, keys, .. } = &mut *inner;
        if taken.epoch != seen.epoch {
            return;
        }
        let covered = |p: &Option<Arc<Position>>| p.as_ref().is_some_and(|p| at_or_before(p, at));
        if compared.is_none() && taken.everything.is_some() && covered(&taken.everything) {
            taken.everything = None;
        }
        for (name, now) in taken.tables.iter_mut() {
            let whole = compared.is_none() || seen.tables.get(name).is_some_and(|b| b.whole.is_some());
            if compared.is_some_and(|c| !c.contains(name)) {
                continue;
            }
            if whole && now.whole.as_ref().is_some_and(covered) {
                now.whole = None;
            }
            let planned = seen.tables.get(name).map(|b| &b.keys);
            let before = now.keys.len();
            now.keys.retain(|k, p| !((whole || planned.is_some_and(|b| b.contains_key(k))) && at_or_before(p, at)));
            *keys -= (before - now.keys.len()).min(*keys);
        }
        taken.tables.retain(|_, d| d.whole.is_some() || !d.keys.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use turnout_decoders::position::Lsn;
    use turnout_decoders::schema::{Column, ReplicaIdentity, TableName};

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
        changes.enable();
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
        assert!(touched.tables[0].1.whole);
        let mut touched = Touched::default();
        touched.note(&RowChange::Insert {
            table: Arc::clone(&t),
            after: vec![Value::Text(turnout_decoders::Utf8Bytes::from_string("x")), Value::Null, Value::Null],
        });
        assert!(touched.tables[0].1.whole);
        // A key whose number is not its order (a MySQL ENUM's index): the whole table.
        let mut enumerated = (*t).clone();
        enumerated.columns[0].ty = ColumnType::MySql(turnout_decoders::schema::MySqlType { code: 247, ..Default::default() });
        let mut touched = Touched::default();
        touched.note(&RowChange::Insert { table: Arc::new(enumerated), after: vec![Value::UInt8(2), Value::Null, Value::Null] });
        assert!(touched.tables[0].1.whole);
        let mut touched = Touched::default();
        touched.note(&RowChange::Truncate { tables: vec![Arc::clone(&t)], cascade: false, restart_identity: false });
        assert!(touched.tables[0].1.whole);
    }

    #[test]
    fn too_many_keys_mark_the_table_whole() {
        let t = table(&["id"]);
        let mut touched = Touched::default();
        for id in 0..=i64::try_from(KEYS_PER_TABLE).expect("fits") {
            touched.note(&RowChange::Insert { table: Arc::clone(&t), after: row(id) });
        }
        assert!(touched.tables[0].1.whole && touched.tables[0].1.keys.is_empty());
    }

    #[test]
    fn a_verify_clears_only_what_it_read_and_compared_past() {
        let t = table(&["id"]);
        let changes = Changes::default();
        changes.enable();
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
        let left = |changes: &Changes| changes.taken().tables.get(T).map(|d| d.keys.keys().copied().collect::<Vec<i128>>()).unwrap_or_default();
        let compared: BTreeSet<String> = [T.to_owned()].into();
        changes.clear(&seen, &at(18), Some(&compared));
        assert_eq!(left(&changes), vec![2, 3], "1's chunk was compared after its last change; 2 changed after the verify's position; 3 was not planned");
        // A whole run compares every row: what changed before its position is covered.
        changes.clear(&changes.taken(), &at(18), None);
        assert_eq!(left(&changes), vec![2]);

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
        changes.enable();
        changes.begin();
        changes.schema(&t);
        changes.record(&Touched::default(), &at(30));
        assert_eq!(changes.taken().tables[T].whole, Some(Some(Arc::new(at(30)))), "a table announced for the first time in the epoch");
        let seen = changes.taken();
        changes.clear(&seen, &at(30), None);
        assert!(changes.taken().tables.is_empty());
        let mut wider = (*t).clone();
        wider.columns.push(Column { name: "added".into(), ty: ColumnType::Pg { oid: 25, modifier: -1, name: None }, is_key: false });
        changes.schema(&wider);
        assert_eq!(changes.taken().tables[T].whole, Some(None), "marked, at no position yet");
        changes.record(&Touched::default(), &at(40));
        assert_eq!(changes.taken().tables[T].whole, Some(Some(Arc::new(at(40)))));
        let seen = changes.taken();
        changes.clear(&seen, &at(40), None);
        assert!(changes.taken().tables.is_empty());
    }
}
