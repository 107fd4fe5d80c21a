//! A sink that applies nothing: it hands every row change it is given to a [`Ledger`] as a
//! [`ForeignWrite`]. turnout watches a side with it for writes that are not its own — green before
//! the cutover, blue in the rollback window: the stream feeding it has already dropped the changes
//! turnout wrote (by replication origin or GTID domain), so whatever reaches this sink was written
//! by someone else.
//!
//! Guarantees: a position is [`Committed`] (and [`Durable`]) only after the ledger has durably
//! recorded every foreign write up to it, so acknowledging the watched side's log never loses one;
//! after a crash the writes of an unacknowledged stretch may be handed to the ledger again (the
//! ledger counts a write once by its commit position and place in the transaction).

use crate::{Canceller, Committed, Durable, RowChange, Sink, SinkError, Transaction};
use std::sync::Arc;
use turnout_decoders::schema::TableSchema;
use turnout_decoders::{Position, Timestamp, Value};

/// One row change on the watched side that turnout did not write.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForeignWrite {
    /// `schema.table`.
    pub table: String,
    /// `insert`, `update`, `delete` or `truncate`.
    pub kind: String,
    /// The row's key as `(column=value, …)` (the old key of an update or delete); empty for a
    /// truncate.
    pub key: String,
    /// Just past the commit of the transaction that made it, on the watched side's log.
    pub commit: String,
    /// Its place among that transaction's changes.
    pub index: u32,
    /// When the transaction committed, microseconds since the Unix epoch on the watched side's clock.
    pub committed_at_us: i64,
}

/// Why a [`Ledger`] could not keep what it was given (its store's own error).
pub type LedgerError = Box<dyn std::error::Error + Send + Sync>;

/// Where foreign writes are kept. Must be durable when [`Ledger::record`] returns.
pub trait Ledger: Send + Sync + 'static {
    /// Records `writes` (possibly none) and that the watched log was read through `through`.
    fn record(&self, writes: &[ForeignWrite], through: &Position) -> Result<(), LedgerError>;
}

/// The recording sink over a [`Ledger`].
pub struct Recording {
    ledger: Arc<dyn Ledger>,
    applied: Position,
    /// A transaction opened with [`Sink::begin`]: its writes so far.
    open: Option<Vec<ForeignWrite>>,
    /// DDL statements of the transaction applied next (they run before its changes): counted with it,
    /// at its commit.
    ddl: Vec<ForeignWrite>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording").field("applied", &self.applied.to_string()).finish_non_exhaustive()
    }
}

impl Recording {
    /// Records into `ledger`, the watched log read through `applied` already.
    pub fn new(ledger: Arc<dyn Ledger>, applied: Position) -> Recording {
        Recording { ledger, applied, open: None, ddl: Vec::new() }
    }

    /// The DDL statements waiting for their transaction, placed in it: numbered first, at its commit.
    fn take_ddl(&mut self, commit: &Position, commit_ts: Timestamp) -> Vec<ForeignWrite> {
        let mut ddl = std::mem::take(&mut self.ddl);
        for (i, w) in ddl.iter_mut().enumerate() {
            (w.commit, w.committed_at_us, w.index) = (commit.to_string(), commit_ts.0, u32::try_from(i).unwrap_or(u32::MAX));
        }
        ddl
    }

    fn record(&mut self, writes: &[ForeignWrite], through: &Position) -> Result<Committed, SinkError> {
        self.ledger.record(writes, through).map_err(|e| SinkError::Progress(format!("recording foreign writes: {e}")))?;
        if through.try_cmp(&self.applied)?.is_gt() {
            self.applied = through.clone();
        }
        Ok(Committed::new(self.applied.clone()))
    }
}

/// The foreign writes of `changes`, numbered from `first` within a transaction committed at `commit`.
pub fn foreign_writes<'a>(changes: impl IntoIterator<Item = &'a RowChange>, first: u32, commit: &Position, commit_ts: Timestamp) -> Vec<ForeignWrite> {
    let mut out = Vec::new();
    let mut index = first;
    for change in changes {
        let mut push = |table: &TableSchema, kind: &str, key: String| {
            out.push(ForeignWrite {
                table: format!("{}.{}", table.name.schema, table.name.name),
                kind: kind.into(),
                key,
                commit: commit.to_string(),
                index,
                committed_at_us: commit_ts.0,
            });
            index += 1;
        };
        match change {
            RowChange::Insert { table, after } => push(table, "insert", key_of_row(table, after)),
            RowChange::Update { table, key, .. } => push(table, "update", key_text(table, key)),
            RowChange::Delete { table, key, .. } => push(table, "delete", key_text(table, key)),
            RowChange::Truncate { tables, .. } => {
                for table in tables {
                    push(table, "truncate", String::new());
                }
            }
        }
    }
    out
}

/// `(a=1, b='x')` from a whole row's key columns.
fn key_of_row(table: &TableSchema, row: &[Value]) -> String {
    let key: Vec<Value> = table.key_indexes().map(|i| row.get(i).cloned().unwrap_or(Value::Null)).collect();
    key_text(table, &key)
}

/// `(a=1, b='x')` from the key columns' values, in key order.
fn key_text(table: &TableSchema, key: &[Value]) -> String {
    let parts: Vec<String> = table.key_indexes().zip(key).map(|(i, v)| format!("{}={}", table.columns[i].name, value_text(v))).collect();
    format!("({})", parts.join(", "))
}

/// A key value as an operator reads it: numbers bare, everything else quoted.
fn value_text(v: &Value) -> String {
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match v {
        Value::Null => "NULL".into(),
        Value::Unchanged => "(unchanged)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int2(n) => n.to_string(),
        Value::Int4(n) => n.to_string(),
        Value::Int8(n) => n.to_string(),
        Value::UInt8(n) => n.to_string(),
        Value::Oid(n) => n.to_string(),
        Value::Float4(n) => n.to_string(),
        Value::Float8(n) => n.to_string(),
        Value::Numeric(s) => s.to_string(),
        Value::Text(s) | Value::Json { text: s, .. } | Value::TypedJson { text: s, .. } | Value::Temporal(_, s) | Value::Unknown { text: s, .. } => {
            quoted(s.as_str())
        }
        Value::Bytes(b) => format!("'\\x{}'", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        Value::Uuid(u) => quoted(&uuid_text(u)),
        other => quoted(&format!("{other:?}")),
    }
}

fn uuid_text(u: &[u8; 16]) -> String {
    let hex: String = u.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

impl Sink for Recording {
    fn applied(&self) -> Position {
        self.applied.clone()
    }

    async fn apply(&mut self, batch: &[Transaction]) -> Result<Committed, SinkError> {
        let Some(last) = batch.last() else { return Ok(Committed::new(self.applied.clone())) };
        // Each transaction's writes are recorded through its own commit: a ledger that stops
        // counting at a position (a watch closed at a switch) judges each by its commit, not by
        // where the batch ends.
        for t in batch {
            let mut writes = self.take_ddl(&t.commit_end, t.commit_ts);
            if t.commit_end.try_cmp(&self.applied)?.is_gt() {
                let first = u32::try_from(writes.len()).unwrap_or(u32::MAX);
                writes.extend(foreign_writes(&t.changes, first, &t.commit_end, t.commit_ts));
                if !writes.is_empty() {
                    let _ = self.record(&writes, &t.commit_end)?;
                }
            }
        }
        self.record(&[], &last.commit_end)
    }

    async fn begin(&mut self) -> Result<(), SinkError> {
        self.open = Some(std::mem::take(&mut self.ddl));
        Ok(())
    }

    async fn apply_part(&mut self, changes: &[&RowChange]) -> Result<(), SinkError> {
        let open = self.open.as_mut().ok_or_else(|| SinkError::Progress("a part arrived outside a transaction".into()))?;
        // The commit position is known only at the commit: filled in there.
        let first = u32::try_from(open.len()).unwrap_or(u32::MAX);
        open.extend(foreign_writes(changes.iter().copied(), first, &Position::Pg(turnout_decoders::Lsn(0)), Timestamp(0)));
        Ok(())
    }

    async fn commit(&mut self, commit_end: &Position, commit_ts: Timestamp) -> Result<Committed, SinkError> {
        let mut writes = self.open.take().unwrap_or_default();
        if commit_end.try_cmp(&self.applied)?.is_le() {
            writes.clear();
        }
        for (i, w) in writes.iter_mut().enumerate() {
            (w.commit, w.committed_at_us, w.index) = (commit_end.to_string(), commit_ts.0, u32::try_from(i).unwrap_or(u32::MAX));
        }
        self.record(&writes, commit_end)
    }

    async fn rollback(&mut self) -> Result<(), SinkError> {
        self.open = None;
        Ok(())
    }

    async fn flush(&mut self) -> Result<Durable, SinkError> {
        // Every commit was recorded durably before it returned.
        Ok(Durable::new(self.applied.clone()))
    }

    async fn schema_changes(&mut self, _schema: &TableSchema) -> Result<Vec<String>, SinkError> {
        Ok(Vec::new())
    }

    async fn apply_schema_changes(&mut self, _statements: &[String]) -> Result<(), SinkError> {
        Ok(())
    }

    /// DDL on the watched side that turnout did not run is a foreign write of its own kind, counted
    /// with the transaction that carries it (applied next), at its commit.
    async fn apply_source_ddl(&mut self, database: &str, statement: &str) -> Result<(), SinkError> {
        let shown: String = statement.chars().take(200).collect();
        self.ddl.push(ForeignWrite { table: database.to_owned(), kind: "ddl".into(), key: shown, commit: String::new(), index: 0, committed_at_us: 0 });
        Ok(())
    }

    fn canceller(&self) -> Canceller {
        Canceller::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use turnout_decoders::schema::{Column, ColumnType, ReplicaIdentity, TableName};
    use turnout_decoders::Lsn;

    #[derive(Default)]
    struct Kept(Mutex<(Vec<ForeignWrite>, Option<Position>)>);

    impl Ledger for Kept {
        fn record(&self, writes: &[ForeignWrite], through: &Position) -> Result<(), LedgerError> {
            let mut k = self.0.lock().expect("test");
            k.0.extend_from_slice(writes);
            k.1 = Some(through.clone());
            Ok(())
        }
    }

    fn table() -> Arc<TableSchema> {
        let column = |name: &str, is_key: bool| Column { name: name.into(), ty: ColumnType::Pg { oid: 23, modifier: -1, name: None }, is_key };
        Arc::new(TableSchema {
            relation_id: 1,
            name: TableName::new("app", "orders"),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![column("note", false), column("id", true), column("region", true)],
            foreign_key_checks: true,
        })
    }

    fn text(s: &str) -> Value {
        Value::Text(turnout_decoders::value::Utf8Bytes::from(s))
    }

    #[tokio::test]
    async fn every_change_is_recorded_with_its_key_and_commit_and_replays_are_not() {
        let kept = Arc::new(Kept::default());
        let mut sink = Recording::new(kept.clone(), Position::Pg(Lsn(100)));
        let t = table();
        let batch = vec![
            Transaction {
                xid: 1,
                commit_end: Position::Pg(Lsn(90)),
                commit_ts: Timestamp(5),
                changes: vec![RowChange::Insert { table: t.clone(), after: vec![text("old"), Value::Int4(1), text("eu")] }],
            },
            Transaction {
                xid: 2,
                commit_end: Position::Pg(Lsn(200)),
                commit_ts: Timestamp(7),
                changes: vec![
                    RowChange::Insert { table: t.clone(), after: vec![text("x"), Value::Int4(2), text("o'k")] },
                    RowChange::Delete { table: t.clone(), key: vec![Value::Int4(3), text("us")], before: None },
                ],
            },
        ];
        let committed = sink.apply(&batch).await.expect("test");
        assert_eq!(committed.position(), &Position::Pg(Lsn(200)));
        let k = kept.0.lock().expect("test").clone();
        assert_eq!(k.0.len(), 2, "the transaction at or below the position already read is not recorded again: {:?}", k.0);
        assert_eq!(k.0[0].key, "(id=2, region='o''k')");
        assert_eq!((k.0[0].kind.as_str(), k.0[0].index, k.0[0].committed_at_us), ("insert", 0, 7));
        assert_eq!(k.0[1].key, "(id=3, region='us')");
        assert_eq!((k.0[1].kind.as_str(), k.0[1].index, k.0[1].table.as_str()), ("delete", 1, "app.orders"));
        assert_eq!(k.0[1].commit, Position::Pg(Lsn(200)).to_string());
        assert_eq!(sink.flush().await.expect("test").position(), &Position::Pg(Lsn(200)));
    }

    #[tokio::test]
    async fn a_transaction_in_parts_is_recorded_at_its_commit_position() {
        let kept = Arc::new(Kept::default());
        let mut sink = Recording::new(kept.clone(), Position::Pg(Lsn(0)));
        let t = table();
        sink.begin().await.expect("test");
        let first = RowChange::Update { table: t.clone(), key: vec![Value::Int4(9), text("eu")], before: None, after: vec![] };
        let second = RowChange::Truncate { tables: vec![t.clone()], cascade: false, restart_identity: false };
        sink.apply_part(&[&first]).await.expect("test");
        sink.apply_part(&[&second]).await.expect("test");
        let committed = sink.commit(&Position::Pg(Lsn(500)), Timestamp(11)).await.expect("test");
        assert_eq!(committed.position(), &Position::Pg(Lsn(500)));
        let k = kept.0.lock().expect("test").clone();
        assert_eq!(k.0.iter().map(|w| (w.kind.as_str(), w.index)).collect::<Vec<_>>(), vec![("update", 0), ("truncate", 1)]);
        assert!(k.0.iter().all(|w| w.commit == Position::Pg(Lsn(500)).to_string() && w.committed_at_us == 11));
        assert_eq!(k.1, Some(Position::Pg(Lsn(500))));
        // A rolled-back transaction records nothing.
        sink.begin().await.expect("test");
        sink.apply_part(&[&first]).await.expect("test");
        sink.rollback().await.expect("test");
        assert_eq!(kept.0.lock().expect("test").0.len(), 2);
    }
}
