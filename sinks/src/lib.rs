//! Applying change batches to a green target, with exactly-once progress recorded in the target's own
//! transaction.
//!
//! Durability contract: [`pg::PgSink::apply`] applies a batch of whole, committed source transactions
//! in **one** target transaction that also records the batch's last commit position (PostgreSQL:
//! the replication origin, `pg_replication_origin_xact_setup`), and returns [`Committed`] once the
//! target committed. Commits are asynchronous (`synchronous_commit = off`, as PostgreSQL's own apply
//! workers run); [`pg::PgSink::flush`] makes them durable and returns [`Durable`] — only that position
//! may be acknowledged to the source. Because data and position share one transaction, a target crash
//! loses both together and they are received again. Applying a transaction at or below the recorded
//! position is skipped, so replaying after a crash never applies anything twice.

pub mod error;
pub mod pg;

pub use error::SinkError;

use turnout_decoders::event::Row;
use turnout_decoders::schema::TableSchema;
use turnout_decoders::{Lsn, Timestamp};
use std::sync::Arc;

/// One row change inside a committed transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum RowChange {
    Insert { table: Arc<TableSchema>, after: Row },
    /// `key` holds the old key columns; `before` the whole old row under REPLICA IDENTITY FULL.
    Update { table: Arc<TableSchema>, key: Row, before: Option<Row>, after: Row },
    Delete { table: Arc<TableSchema>, key: Row, before: Option<Row> },
    Truncate { tables: Vec<Arc<TableSchema>>, cascade: bool, restart_identity: bool },
}

/// A committed source transaction, ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    pub xid: u32,
    /// The end of the commit record: the position recorded on the target once applied.
    pub commit_end: Lsn,
    pub commit_ts: Timestamp,
    pub changes: Vec<RowChange>,
}

/// Everything up to `position` is committed on the target (visible, possibly not yet on its disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Committed {
    pub position: Lsn,
}

/// Proof that everything up to `position` is committed on the target and flushed to its disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Durable {
    pub position: Lsn,
}
