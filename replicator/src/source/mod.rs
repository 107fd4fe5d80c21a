//! Sources: where changes come from. The pipeline sees a source only through [`Source`]; everything
//! specific to one database lives in its own module tree ([`pg`] for PostgreSQL).

pub(crate) mod compose;
pub mod contract;
pub mod drift;
pub mod family;
pub mod mysql;
pub mod pg;
pub mod progress;
#[cfg(test)]
pub mod stub;

use crate::error::Error;
use crate::source::contract::compare::TableCheck;
use crate::source::contract::report::Report;
use crate::state::StateStore;
use crate::status::Status;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;
use turnout_decoders::{ChangeEvent, Position};
use turnout_sinks::{Durable, Sink};

pub use crate::names::Names;

/// The heartbeat table on sources whose stream carries no messages (PostgreSQL 13, MySQL/MariaDB): one
/// row `(id = 1, at_us)` rewritten with blue's clock in microseconds every heartbeat interval, created
/// in the replicated schema before the snapshot and replicated like any table. On MySQL/MariaDB the row
/// `(id = 2, at_us)` is the cutover sentinel: `at_us` holds the cutover's id (a 64-bit number), and
/// the stream turns the change into the sentinel message the pipeline tracks.
pub const HEARTBEAT_TABLE: &str = "turnout_heartbeat";

/// The `id` of the heartbeat row.
pub const HEARTBEAT_ROW: i64 = 1;

/// The prefix of the transactional message that carries a cutover sentinel's id.
pub const SENTINEL_PREFIX: &str = "turnout.fence";

/// The prefix of the non-transactional message written right after the sentinel's commit on
/// PostgreSQL, so that the record at the fence is never a transaction's first (the pipeline ignores
/// it).
pub const FENCE_END_PREFIX: &str = "turnout.fence_end";

/// The logical-message prefix of a `TRUNCATE` of one partition, which PostgreSQL does not send when
/// partitions publish through their root ([`pg::truncate`]): its content is the partition's schema
/// and name, separated by a newline.
pub const TRUNCATE_PREFIX: &str = "turnout.truncate";

/// The `id` of the cutover sentinel row.
pub const SENTINEL_ROW: i64 = 2;

/// `(id, at_us)` of a row written to the heartbeat table, if `event` is such a write.
fn heartbeat_table_row(event: &ChangeEvent) -> Option<(i64, i64)> {
    use turnout_decoders::Value;
    let (table, row) = match event {
        ChangeEvent::Insert { table, after, .. } | ChangeEvent::Update { table, after, .. } => (table, after),
        _ => return None,
    };
    if table.name.name != HEARTBEAT_TABLE {
        return None;
    }
    let column = |name: &str| -> Option<i64> {
        let at = table.columns.iter().position(|c| c.name == name)?;
        match row.get(at)? {
            Value::Int2(v) => Some(i64::from(*v)),
            Value::Int4(v) => Some(i64::from(*v)),
            Value::Int8(v) => Some(*v),
            _ => None,
        }
    };
    Some((column("id")?, column("at_us")?))
}

/// Blue's clock from a change to the heartbeat row, if `event` is one.
pub fn heartbeat_from_table(event: &ChangeEvent) -> Option<turnout_decoders::Timestamp> {
    match heartbeat_table_row(event)? {
        (HEARTBEAT_ROW, us) => Some(turnout_decoders::Timestamp(us)),
        _ => None,
    }
}

/// The cutover id a change to the sentinel row carries (as the cutover prints it: 16 hex digits).
pub fn sentinel_from_table(event: &ChangeEvent) -> Option<String> {
    match heartbeat_table_row(event)? {
        // The id is stored as the signed 64-bit number with the same bits.
        (SENTINEL_ROW, id) => Some(format!("{:016x}", id.cast_unsigned())),
        _ => None,
    }
}

/// What a source hands the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceMessage {
    /// A decoded event, and how far the source's log reached when it was sent (if the source says).
    Event { event: ChangeEvent, log_end: Option<Position> },
    /// No event, only how far the source's log reaches now (a keepalive, or a message that only
    /// updated the decoder's caches).
    LogEnd(Position),
}

/// A stream of decoded changes from one source's log, in log order.
///
/// Guarantees every implementation gives:
/// - Events arrive in the source's commit order (see [`turnout_decoders::event`]); nothing received
///   is dropped or reordered.
/// - [`Source::recv`] is cancel-safe: dropping its future (e.g. in `select!`) loses no message.
/// - The source's log is released only up to a [`Durable`] position passed to
///   [`Source::acknowledge`] — a proof only a sink can make — or, when the pipeline has nothing
///   pending at all, up to what it received ([`Source::acknowledge_idle`]); never beyond, and never
///   backwards.
pub trait Source: Send + 'static {
    /// The next message, waiting for it.
    fn recv(&mut self) -> impl Future<Output = Result<SourceMessage, Error>> + Send;

    /// A message already received and buffered, without waiting; `None` when nothing is buffered.
    fn try_recv(&mut self) -> Result<Option<SourceMessage>, Error>;

    /// Everything up to `durable` is durable on the target: the source may release its log up to
    /// there.
    fn acknowledge(&mut self, durable: &Durable);

    /// Nothing received is pending anywhere in the pipeline (no open, buffered, batched, in-flight or
    /// unflushed transaction), and `durable` is durable on the target: the source may release its log
    /// up to everything it has sent so far (heartbeats, transactions with nothing to apply).
    fn acknowledge_idle(&mut self, durable: &Durable);

    /// Tells the source the consumer is alive while receiving pauses (a long apply), so it does not
    /// time the stream out.
    fn keepalive(&mut self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Ends the stream cleanly after reporting the last acknowledged position.
    fn close(self) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Everything a source needs besides its change stream: table selection, preparing the source and
/// green (publication and slot; binlog checks), the consistent snapshot, heartbeats, the preflight
/// check, verify digests and teardown. `turnout run`, `check`, `verify` and `teardown` drive a source
/// only through this trait.
pub trait SourceAdmin: Send + Sync + 'static {
    /// The change stream.
    type Stream: Source;
    /// Green's apply session.
    type Sink: Sink;
    /// Green's sessions for streamed transactions applied before their commit.
    type Early: turnout_sinks::EarlyApply;
    /// The source's side of the chunked initial copy.
    type Copier: crate::copy::Copier;

    /// Names of what turnout creates for this stream.
    fn names(&self) -> &Names;

    /// Everything before streaming, idempotent: selects the tables, prepares the source, and — unless
    /// an earlier run completed it — copies the schema and either a consistent snapshot to green,
    /// ending with green's progress record at the snapshot's consistent point, or (a chunked copy,
    /// see [`crate::copy`]) the plan of chunks, with green's progress record where the stream
    /// starts. An interrupted consistent snapshot is redone from scratch; a chunked copy resumes.
    fn prepare(&self, state: &StateStore, status: &Arc<Status>) -> impl Future<Output = Result<(), Error>> + Send;

    /// Opens green's apply session, bound to turnout's progress record there.
    fn open_sink(&self) -> impl Future<Output = Result<Self::Sink, Error>> + Send;

    /// Green's early apply sessions (opened when first needed).
    fn open_early(&self) -> Self::Early;

    /// The chunked copy's rounds (used while the state store's copy plan has chunks left).
    fn copier(&self) -> Result<Self::Copier, Error>;

    /// Starts the change stream just after `from` (the position durable on green).
    fn open_stream(&self, from: &Position) -> impl Future<Output = Result<Self::Stream, Error>> + Send;

    /// Writes heartbeats on the source and samples its health for lag and alerts until `shutdown`
    /// turns true; failures are retried, never fatal.
    fn heartbeat(&self, status: Arc<Status>, shutdown: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static;

    /// While the stream runs: watches for a change to the source that its log does not carry and
    /// that would make green differ (PostgreSQL: a partition detached, attached or created), and
    /// returns the error naming it and the fix — replication then stops. Never returns for a source
    /// whose log carries everything; failures to look are retried, never fatal.
    fn watch(&self) -> impl Future<Output = Error> + Send {
        std::future::pending()
    }

    /// The read-only preflight of the source and green.
    fn check(&self) -> impl Future<Output = Report> + Send;

    /// Compares every replicated table (or `only`, `schema.table`) on the source and green.
    fn verify(&self, only: Option<&str>) -> impl Future<Output = Result<Vec<TableCheck>, Error>> + Send;

    /// Drops what turnout created on both sides; returns one line per thing done.
    fn teardown(&self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
}

/// Runs `beat` — a heartbeat writer that returns only when it fails — until `shutdown` turns true,
/// starting it again a second after each failure (blue restarting, a lost connection).
pub async fn keep_beating<F, Fut, E>(mut beat: F, mut shutdown: watch::Receiver<bool>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    loop {
        let result = tokio::select! {
            r = beat() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        if let Err(e) = result {
            tracing::debug!("heartbeat on blue failed: {e}; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
