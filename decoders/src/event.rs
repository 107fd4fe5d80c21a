//! The normalized change event: what every source decoder emits and every sink consumes.
//!
//! Ordering guarantee: events of one source arrive in the source's commit order. A transaction is
//! `Begin`, its changes, `Commit`; streamed (in-progress) transactions arrive as `StreamStart` …
//! `StreamStop` segments whose changes carry `xid`, closed by `StreamCommit` or `StreamAbort`. Only
//! committed transactions may reach a target.

use crate::position::{Lsn, Position, Timestamp};
use crate::schema::TableSchema;
use crate::value::Value;
use bytes::Bytes;
use std::sync::Arc;

/// One row's values, in the table's column order.
pub type Row = Vec<Value>;

/// A change from the source log.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeEvent {
    /// A transaction starts. `commit_position` is the LSN of its commit record (PostgreSQL knows it up
    /// front because it sends transactions at commit time).
    Begin { xid: u32, commit_position: Option<Position>, commit_ts: Timestamp },
    /// A transaction ends. `position` is the end of its commit record: resuming from it skips this
    /// transaction and sends every later one.
    Commit { position: Position, commit_lsn: Lsn, commit_ts: Timestamp },
    /// The transaction that follows was replayed on the source by a replication origin.
    Origin { name: String, origin_lsn: Lsn },
    /// The table's schema as of the following changes. Sent before the first change of a table and after
    /// every schema change.
    Relation(Arc<TableSchema>),
    /// A new row. `xid` is set inside streamed transactions.
    Insert { table: Arc<TableSchema>, xid: Option<u32>, after: Row },
    /// A changed row. `key` holds the old identity: the key columns in key order. `before` is the whole
    /// old row when the table has REPLICA IDENTITY FULL. `after` may contain [`Value::Unchanged`].
    Update { table: Arc<TableSchema>, xid: Option<u32>, key: Row, before: Option<Row>, after: Row },
    /// A deleted row, identified by `key`; `before` as for updates.
    Delete { table: Arc<TableSchema>, xid: Option<u32>, key: Row, before: Option<Row> },
    /// TRUNCATE of one or more tables in one statement.
    Truncate { tables: Vec<Arc<TableSchema>>, xid: Option<u32>, cascade: bool, restart_identity: bool },
    /// A logical message (`pg_logical_emit_message`). Transactional messages are part of their
    /// transaction; others stand alone at `position`.
    Message { xid: Option<u32>, transactional: bool, position: Position, prefix: String, content: Bytes },
    /// A turnout heartbeat written on the source at `ts` (source clock), seen at `position`.
    Heartbeat { position: Position, ts: Timestamp },
    /// A segment of an in-progress transaction starts.
    StreamStart { xid: u32, first_segment: bool },
    /// The current segment ends.
    StreamStop,
    /// A streamed transaction committed.
    StreamCommit { xid: u32, position: Position, commit_lsn: Lsn, commit_ts: Timestamp },
    /// A streamed transaction (`subxid == xid`) or one of its subtransactions was rolled back.
    /// `abort_lsn`/`abort_ts` are sent by PostgreSQL 16+ with parallel streaming.
    StreamAbort { xid: u32, subxid: u32, abort_lsn: Option<Lsn>, abort_ts: Option<Timestamp> },
    /// Two-phase: a prepared transaction's changes follow.
    BeginPrepare { xid: u32, gid: String, prepare_lsn: Lsn, end_lsn: Lsn, prepare_ts: Timestamp },
    /// Two-phase: the transaction was prepared (`streamed` for a Stream Prepare).
    Prepare { xid: u32, gid: String, prepare_lsn: Lsn, end_lsn: Lsn, prepare_ts: Timestamp, streamed: bool },
    /// Two-phase: COMMIT PREPARED.
    CommitPrepared { xid: u32, gid: String, commit_lsn: Lsn, end_lsn: Lsn, commit_ts: Timestamp },
    /// Two-phase: ROLLBACK PREPARED.
    RollbackPrepared {
        xid: u32,
        gid: String,
        prepare_end_lsn: Lsn,
        rollback_end_lsn: Lsn,
        prepare_ts: Timestamp,
        rollback_ts: Timestamp,
    },
}
