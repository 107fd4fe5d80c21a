//! Early apply: a large source transaction that the source streams while it is still in progress
//! (PostgreSQL protocol 2+) is applied on a target session of its own as its changes arrive, and
//! committed there at its commit — as PostgreSQL's own `streaming = parallel` does. So is one the
//! source sends whole at its commit but too large to hold in memory: green applies its first
//! changes while the rest is still being received.
//!
//! Guarantees every implementation gives:
//! - **Nothing visible before the commit**: an early transaction's changes stay in an open target
//!   transaction until [`EarlyApply::commit`], which records the source commit position in that same
//!   target transaction (exactly-once as for [`crate::Sink`]). An abort rolls it back; a crash or a
//!   dropped session rolls it back on the target by itself.
//! - **Never a wrong result, only a slower one**: whenever early apply cannot follow the source
//!   exactly — no session free, a schema change inside the transaction, a subtransaction rolled back
//!   after its changes were applied, an error on the target, or its session holding a lock another
//!   target session waits for — the transaction is *given up*: its target transaction is rolled
//!   back and the caller applies it whole at its commit, from its own copy of the changes.
//! - Changes reach an early transaction only after every transaction the source committed before
//!   them is applied (the caller's ordering), so on the target they find the rows they found on
//!   the source.

use crate::{Committed, Durable, RowChange, SinkError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use turnout_decoders::event::TxId;
use turnout_decoders::schema::TableSchema;
use turnout_decoders::{Position, Timestamp};

/// While a target session waits this long, the early transactions holding locks it waits for are
/// looked for (and again after each such interval).
pub const BLOCK_CHECK: Duration = Duration::from_secs(1);

/// Runs `work` (target sessions applying); every [`BLOCK_CHECK`] while it runs, gives up the early
/// transactions of `early` that block a session on the target, so that `work` never waits for one.
pub async fn guarded<E: EarlyApply, T>(early: &mut E, work: impl Future<Output = T>) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            _ = tokio::time::sleep(BLOCK_CHECK), if early.open() > 0 => early.release_blockers().await,
        }
    }
}

/// Sessions that apply streamed, still in-progress source transactions (see the module docs).
pub trait EarlyApply: Send + 'static {
    /// True when this target applies streamed transactions early at all.
    fn enabled(&self) -> bool;

    /// Applies `changes` of in-progress transaction `xid`, each with the (sub)transaction id that made
    /// it, after checking the table schemas the source announced with them (`relations`). The first
    /// call for `xid` opens its session. `Ok(false)`: `xid` is not (or no longer) applied early; the
    /// caller applies it whole at its commit and sends nothing more for it.
    fn apply(&mut self, xid: TxId, relations: &[Arc<TableSchema>], changes: &[(TxId, RowChange)]) -> impl Future<Output = Result<bool, SinkError>> + Send;

    /// The source rolled back `subxid` of `xid` (`subxid == xid`: the whole transaction). `xid` is
    /// given up when changes of the rolled-back subtransaction were applied.
    fn abort(&mut self, xid: TxId, subxid: TxId) -> impl Future<Output = ()> + Send;

    /// True when every change of `xid` received so far is applied on its session.
    fn holds(&self, xid: TxId) -> bool;

    /// `xid` committed and was applied whole (or skipped): nothing of it stays open here.
    fn forget(&mut self, xid: TxId) -> impl Future<Output = ()> + Send;

    /// Commits `xid`'s target transaction, recording `commit_end` with it, and makes it durable. Only
    /// for a transaction [`EarlyApply::holds`]; the target's progress record must be free (see
    /// [`crate::Sink::release_progress`]).
    fn commit(&mut self, xid: TxId, commit_end: &Position, commit_ts: Timestamp) -> impl Future<Output = Result<(Committed, Durable), SinkError>> + Send;

    /// Gives up every open early transaction whose session holds a lock that another target session
    /// waits for.
    fn release_blockers(&mut self) -> impl Future<Output = ()> + Send;

    /// Number of early transactions open.
    fn open(&self) -> usize;

    /// The transactions given up since the last call, for any reason.
    fn take_given_up(&mut self) -> Vec<TxId>;
}

/// A target without early apply: every transaction is applied whole at its commit.
#[derive(Debug, Default)]
pub struct NoEarly;

impl EarlyApply for NoEarly {
    fn enabled(&self) -> bool {
        false
    }

    async fn apply(&mut self, _xid: TxId, _relations: &[Arc<TableSchema>], _changes: &[(TxId, RowChange)]) -> Result<bool, SinkError> {
        Ok(false)
    }

    async fn abort(&mut self, _xid: TxId, _subxid: TxId) {}

    fn holds(&self, _xid: TxId) -> bool {
        false
    }

    async fn forget(&mut self, _xid: TxId) {}

    async fn commit(&mut self, xid: TxId, _commit_end: &Position, _commit_ts: Timestamp) -> Result<(Committed, Durable), SinkError> {
        Err(SinkError::Progress(format!("internal: transaction {xid} was never applied early")))
    }

    async fn release_blockers(&mut self) {}

    fn open(&self) -> usize {
        0
    }

    fn take_given_up(&mut self) -> Vec<TxId> {
        Vec::new()
    }
}
