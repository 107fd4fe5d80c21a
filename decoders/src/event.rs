//! The normalized change event: what every source decoder emits and every sink consumes.
//!
//! Ordering guarantee: events of one source arrive in the source's commit order. A transaction is
//! `Begin`, its changes, `Commit`; streamed (in-progress) transactions arrive as `StreamStart` …
//! `StreamStop` segments whose changes carry `xid`, closed by `StreamCommit` or `StreamAbort`. Only
//! committed transactions may reach a target.

use crate::position::{Position, Timestamp};
use crate::schema::TableSchema;
use crate::value::Value;
use bytes::Bytes;
use std::sync::Arc;

/// One row's values, in the table's column order.
pub type Row = Vec<Value>;

/// A transaction id as the source numbers it (PostgreSQL xid, a MySQL/MariaDB GTID's sequence number).
pub type TxId = u64;

/// Whether a [`ChangeEvent::Ddl`] creates its table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Creates {
    /// It does not (`ALTER TABLE`, `CREATE INDEX`, …).
    #[default]
    No,
    /// `CREATE TABLE`: the table did not exist, and is created empty.
    New,
    /// `CREATE TABLE IF NOT EXISTS`: created empty, or — logged all the same — left as it was,
    /// rows and all, when it existed.
    IfNotExists,
}

/// A change from the source log.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeEvent {
    /// A transaction starts. `commit_position` is where its commit ends when the source knows it up
    /// front (PostgreSQL sends transactions at commit time).
    Begin { xid: TxId, commit_position: Option<Position>, commit_ts: Timestamp },
    /// A transaction ends. `position` is just past its commit: resuming from it skips this transaction
    /// and sends every later one.
    Commit { position: Position, commit_ts: Timestamp },
    /// The transaction that follows was replayed on the source by a replication origin (PostgreSQL),
    /// or written by a session of another server (MySQL/MariaDB `server_id`).
    Origin { name: String, origin_position: Option<Position> },
    /// The table's schema as of the following changes. Sent before the first change of a table and after
    /// every schema change.
    Relation(Arc<TableSchema>),
    /// A new row. `xid` is set inside streamed transactions.
    Insert { table: Arc<TableSchema>, xid: Option<TxId>, after: Row },
    /// A changed row. `key` holds the old identity: the key columns in key order. `before` is the whole
    /// old row when the table has REPLICA IDENTITY FULL. `after` may contain [`Value::Unchanged`].
    Update { table: Arc<TableSchema>, xid: Option<TxId>, key: Row, before: Option<Row>, after: Row },
    /// A deleted row, identified by `key`; `before` as for updates.
    Delete { table: Arc<TableSchema>, xid: Option<TxId>, key: Row, before: Option<Row> },
    /// TRUNCATE of one or more tables in one statement.
    Truncate { tables: Vec<Arc<TableSchema>>, xid: Option<TxId>, cascade: bool, restart_identity: bool },
    /// A DDL statement of the source to run on the target as it is (MySQL/MariaDB: blue's own `ALTER
    /// TABLE … ADD …`), in `database`, touching `tables`. Part of its transaction. `creates` says
    /// whether it creates its one table (passed on only to a stream that makes the table from the
    /// source's catalog itself, [`crate::mysql::decoder::BinlogDecoder::creating_tables`]).
    Ddl { database: String, statement: String, tables: Vec<crate::schema::TableName>, creates: Creates },
    /// A message in the log (`pg_logical_emit_message`; turnout's cutover sentinel on any source).
    /// Transactional messages are part of their transaction; others stand alone at `position`.
    Message { xid: Option<TxId>, transactional: bool, position: Position, prefix: String, content: Bytes },
    /// A turnout heartbeat written on the source at `ts` (source clock), seen at `position`.
    Heartbeat { position: Position, ts: Timestamp },
    /// A segment of an in-progress transaction starts.
    StreamStart { xid: TxId, first_segment: bool },
    /// The current segment ends.
    StreamStop,
    /// A streamed transaction committed.
    StreamCommit { xid: TxId, position: Position, commit_ts: Timestamp },
    /// A streamed transaction (`subxid == xid`) or one of its subtransactions was rolled back.
    /// `abort_position`/`abort_ts` are sent by PostgreSQL 16+ with parallel streaming.
    StreamAbort { xid: TxId, subxid: TxId, abort_position: Option<Position>, abort_ts: Option<Timestamp> },
    /// Two-phase: a prepared transaction's changes follow.
    BeginPrepare { xid: TxId, gid: String, prepare_position: Position, end_position: Position, prepare_ts: Timestamp },
    /// Two-phase: the transaction was prepared (`streamed` for a Stream Prepare).
    Prepare { xid: TxId, gid: String, prepare_position: Position, end_position: Position, prepare_ts: Timestamp, streamed: bool },
    /// Two-phase: COMMIT PREPARED.
    CommitPrepared { xid: TxId, gid: String, commit_position: Position, end_position: Position, commit_ts: Timestamp },
    /// Two-phase: ROLLBACK PREPARED.
    RollbackPrepared { xid: TxId, gid: String, prepare_end_position: Position, rollback_end_position: Position, prepare_ts: Timestamp, rollback_ts: Timestamp },
}
