//! Applying change batches to a green target, with exactly-once progress recorded in the target's own
//! transaction.
//!
//! The [`Sink`] trait is the contract every target implements (PostgreSQL in [`pg`]); the pipeline
//! drives it without knowing which database it writes to. [`Committed`] and [`Durable`] are proofs
//! only a sink can make: their fields are private to this crate, so no other code can claim a position
//! is on green, and only a [`Durable`] position may be acknowledged to the source.

pub mod codec;
pub mod early;
pub mod error;
pub mod mysql;
pub mod parallel;
pub mod pg;
pub mod record;

pub use early::{EarlyApply, NoEarly};
pub use error::SinkError;
pub use parallel::{Conflicts, Parallel};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use turnout_decoders::event::{Row, TxId};
use turnout_decoders::schema::TableSchema;
use turnout_decoders::{Position, Timestamp};

/// One row change inside a committed transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum RowChange {
    Insert {
        table: Arc<TableSchema>,
        after: Row,
    },
    /// `key` holds the old key columns; `before` the whole old row under REPLICA IDENTITY FULL.
    Update {
        table: Arc<TableSchema>,
        key: Row,
        before: Option<Row>,
        after: Row,
    },
    Delete {
        table: Arc<TableSchema>,
        key: Row,
        before: Option<Row>,
    },
    Truncate {
        tables: Vec<Arc<TableSchema>>,
        cascade: bool,
        restart_identity: bool,
    },
}

/// A committed source transaction, ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    pub xid: TxId,
    /// Just past the source commit: the position recorded on the target once applied.
    pub commit_end: Position,
    pub commit_ts: Timestamp,
    pub changes: Vec<RowChange>,
}

/// Proof that everything up to `position` is committed on the target (visible, possibly not yet on
/// its disk). Only a sink makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Committed {
    position: Position,
}

impl Committed {
    pub(crate) fn new(position: Position) -> Committed {
        Committed { position }
    }

    /// The position committed on the target.
    pub fn position(&self) -> &Position {
        &self.position
    }
}

/// Proof that everything up to `position` is committed on the target **and flushed to its disk**: the
/// only position that may be acknowledged to the source. Only a sink makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Durable {
    position: Position,
}

impl Durable {
    pub(crate) fn new(position: Position) -> Durable {
        Durable { position }
    }

    /// The position durable on the target.
    pub fn position(&self) -> &Position {
        &self.position
    }
}

/// Cancels whatever a sink is running on its target, from outside the task that drives the sink (the
/// pipeline takes one before it hands the sink to an apply task). PostgreSQL: a cancel request for
/// the session's backend.
pub struct Canceller(Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>);

impl Canceller {
    pub fn new(cancel: impl Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static) -> Canceller {
        Canceller(Box::new(cancel))
    }

    /// A canceller that does nothing (a target with nothing to cancel).
    pub fn none() -> Canceller {
        Canceller::new(|| Box::pin(async {}))
    }

    /// Asks the target to stop what the sink's session runs now; returns when the request was sent.
    pub async fn cancel(&self) {
        (self.0)().await
    }
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Canceller")
    }
}

/// A target that applies whole source transactions exactly once.
///
/// Guarantees every implementation gives:
/// - **Ordering**: batches are applied in the order given, each batch's transactions in commit order,
///   so the target always shows a prefix of the source's commit history at batch boundaries.
/// - **Atomicity and exactly-once**: a batch (or a spilled transaction between [`Sink::begin`] and
///   [`Sink::commit`]) is applied in **one** target transaction that also records the position of its
///   last commit; a crash loses both together. Transactions at or below the recorded position are
///   skipped, so replaying after a crash or a reconnect never applies anything twice.
/// - **Durability**: [`Committed`] says the target committed (possibly asynchronously);
///   [`Sink::flush`] makes every commit so far durable and returns [`Durable`].
/// - **Exactness**: values are never changed on the way (no cast that truncates or rounds).
/// - After an error the open target transaction is rolled back and the recorded position has not
///   moved; the sink may be used again or dropped.
pub trait Sink: Send + 'static {
    /// The position recorded on the target: replication resumes just after it.
    fn applied(&self) -> Position;

    /// Applies `batch` (whole source transactions in commit order) in one target transaction and
    /// records the last commit position with it. Returns only after the target committed.
    fn apply(&mut self, batch: &[Transaction]) -> impl Future<Output = Result<Committed, SinkError>> + Send;

    /// Opens a target transaction for a source transaction too large to hold at once: then
    /// [`Sink::apply_part`] for each part in order, then [`Sink::commit`] (or [`Sink::rollback`]).
    /// Nothing is visible, and the recorded position does not move, until the commit succeeds.
    fn begin(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// [`Sink::begin`] for a source transaction whose commit position is known (a spilled one,
    /// applied after its commit): a layer that must act at a position of the stream (the chunked
    /// copy's barrier) acts before the transaction opens.
    fn begin_at(&mut self, commit_end: &Position) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = commit_end;
        self.begin()
    }

    /// Applies changes inside the transaction [`Sink::begin`] opened; on error it is rolled back.
    fn apply_part(&mut self, changes: &[&RowChange]) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Records `commit_end` as the applied position and commits the open transaction.
    fn commit(&mut self, commit_end: &Position, commit_ts: Timestamp) -> impl Future<Output = Result<Committed, SinkError>> + Send;

    /// Rolls back the transaction [`Sink::begin`] opened.
    fn rollback(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Makes every commit so far durable on the target and returns the durable position.
    fn flush(&mut self) -> impl Future<Output = Result<Durable, SinkError>> + Send;

    /// The DDL the target needs before rows of `schema` can apply (a column added on the source);
    /// an error naming the table, the column and the fix when no safe DDL exists.
    fn schema_changes(&mut self, schema: &TableSchema) -> impl Future<Output = Result<Vec<String>, SinkError>> + Send;

    /// Runs DDL from [`Sink::schema_changes`] in its own transaction.
    fn apply_schema_changes(&mut self, statements: &[String]) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Runs one of the source's own DDL statements in `database` — an additive `ALTER TABLE … ADD …`
    /// from a MySQL/MariaDB binlog — outside any batch. Replaying one that is already applied (after a
    /// crash before the position moved on) must succeed. Targets that cannot run the source's SQL
    /// refuse it, naming the statement.
    fn apply_source_ddl(&mut self, database: &str, statement: &str) -> impl Future<Output = Result<(), SinkError>> + Send {
        let reason = format!("cannot run the source's DDL in {database}: `{statement}`; apply the change on green yourself and restart");
        async move { Err(SinkError::Schema { table: String::new(), reason }) }
    }

    /// A way to cancel what this sink's session runs, usable while the sink is busy elsewhere.
    fn canceller(&self) -> Canceller;

    /// How changes of `table` may conflict with changes applied at the same time by another session
    /// (see [`Parallel`]). The default, [`Conflicts::Table`], lets one session at a time touch the
    /// table.
    fn conflicts(&mut self, table: &TableSchema) -> impl Future<Output = Result<Conflicts, SinkError>> + Send {
        let _ = table;
        async { Ok(Conflicts::Table) }
    }

    /// Lets go of the target's progress record so that another session of the stream — one applying
    /// a transaction early ([`EarlyApply`]) — can commit through it; [`Sink::bind_progress`] takes it
    /// back. Nothing to do for a sink that holds the record only while it commits.
    fn release_progress(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }

    /// Takes back the progress record [`Sink::release_progress`] let go of.
    fn bind_progress(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }

    /// Another session of the same stream recorded `position` on the target: this session's idea
    /// of the recorded position moves up to it (a position never moves back). A position that
    /// cannot be ordered against the recorded one is an error.
    fn advanced(&mut self, position: &Position) -> Result<(), SinkError> {
        let _ = position;
        Ok(())
    }

    /// Forgets what this session cached about the target's tables (another session changed them).
    fn forget_schema(&mut self) {}
}
