//! Apply: the sink and the early apply sessions (a [`Lane`]), either idle or owned by one task that
//! applies a batch, a spilled transaction, a segment of a streamed transaction still in progress, an
//! early transaction's commit, or a flush on green while the stream goes on being received.
//!
//! Guarantees: at most one task works on green at a time, in the order started; a task hands the lane
//! back with what it committed and, when it flushed, what is durable. While a batch or a spilled
//! transaction applies, an early transaction whose session holds a lock green's apply waits for is
//! given up every [`turnout_sinks::early::BLOCK_CHECK`] (it is applied whole at its commit), so early apply can never stall
//! the stream. [`Applier::abort`] cancels the statement running on green and waits for the task, so
//! no apply session outlives a failed pipeline.

use super::assemble::{Segment, TRANSACTION_OVERHEAD};
use crate::error::Error;
use crate::spill::SpilledTransaction;
use crate::state::StateStore;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use turnout_decoders::event::TxId;
use turnout_decoders::{Position, Timestamp};
use turnout_sinks::early::guarded;
use turnout_sinks::{Canceller, Durable, EarlyApply, RowChange, Sink, Transaction};

/// Green's apply session and the early apply sessions: they work one at a time, in stream order.
#[derive(Debug)]
pub struct Lane<K, E> {
    pub sink: K,
    pub early: E,
}

/// A flush that could not catch up is retried at this pace, not in a loop.
pub const FLUSH_RETRY: Duration = Duration::from_millis(10);

/// What a task did: transactions and rows applied, the position committed and, when it flushed, the
/// durable proof.
#[derive(Debug)]
pub struct Outcome {
    pub transactions: usize,
    pub rows: usize,
    pub committed: Position,
    pub durable: Option<Durable>,
}

impl Outcome {
    fn new(transactions: usize, rows: usize, committed: Position, durable: Option<Durable>) -> Outcome {
        Outcome { transactions, rows, committed, durable }
    }
}

type Applied<K, E> = (Lane<K, E>, Result<Outcome, Error>);

/// The sink and the task (if any) applying on green.
#[allow(missing_debug_implementations)]
pub struct Applier<K: Sink, E: EarlyApply> {
    idle: Option<Lane<K, E>>,
    inflight: Option<JoinHandle<Applied<K, E>>>,
    /// Bytes held by the batch in flight (counted against the memory budget until it is applied).
    pub inflight_bytes: usize,
    canceller: Canceller,
    started: Instant,
    pub last_flush: Instant,
    /// Committed on green (visible, maybe not yet flushed).
    pub committed: Position,
    /// Committed and flushed on green: what the source may be told.
    pub durable: Durable,
}

impl<K: Sink, E: EarlyApply> Applier<K, E> {
    /// Takes the sink and the early apply sessions; `durable` is the sink's starting point (a flush
    /// made before streaming).
    pub fn new(sink: K, early: E, durable: Durable) -> Applier<K, E> {
        let canceller = sink.canceller();
        Applier {
            idle: Some(Lane { sink, early }),
            inflight: None,
            inflight_bytes: 0,
            canceller,
            started: Instant::now(),
            last_flush: Instant::now(),
            committed: durable.position().clone(),
            durable,
        }
    }

    /// True while a task owns the sink.
    pub fn busy(&self) -> bool {
        self.inflight.is_some()
    }

    /// Hands the idle lane to a task running `work`.
    fn launch<Fut>(&mut self, bytes: usize, work: impl FnOnce(Lane<K, E>) -> Fut) -> Result<(), Error>
    where
        Fut: std::future::Future<Output = Applied<K, E>> + Send + 'static,
    {
        let sink = self.idle.take().ok_or_else(|| Error::Internal("the sink was asked to work while busy".into()))?;
        self.started = Instant::now();
        self.inflight_bytes = bytes;
        self.inflight = Some(tokio::spawn(work(sink)));
        Ok(())
    }

    /// Starts applying `batch` (the sink must be idle), then flushes green so it is durable: the source is
    /// acknowledged, and lag measured, without a fixed delay.
    pub fn start(&mut self, batch: Vec<Transaction>, bytes: usize) -> Result<(), Error> {
        let rows: usize = batch.iter().map(|t| t.changes.len()).sum();
        tracing::debug!(transactions = batch.len(), rows, bytes, first = %batch[0].commit_end, "applying batch");
        self.last_flush = Instant::now();
        self.launch(bytes, move |mut lane| async move {
            let Lane { sink, early } = &mut lane;
            let work = async {
                let committed = sink.apply(&batch).await.map_err(Error::Sink)?.position().clone();
                let durable = Some(sink.flush().await.map_err(Error::Sink)?);
                Ok(Outcome::new(batch.len(), rows, committed, durable))
            };
            let r = guarded(early, work).await;
            (lane, r)
        })
    }

    /// Starts applying a spilled transaction chunk by chunk in one green transaction (the sink must be
    /// idle); its chunks are deleted after, and green is flushed.
    pub fn start_spilled(&mut self, tx: SpilledTransaction, state: StateStore) -> Result<(), Error> {
        let rows = tx.spilled.rows();
        tracing::info!(rows, chunks = tx.spilled.chunks(), commit = %tx.commit_end, "applying a spilled transaction");
        self.last_flush = Instant::now();
        self.launch(TRANSACTION_OVERHEAD, move |mut lane| async move {
            let Lane { sink, early } = &mut lane;
            let work = async {
                let committed = apply_spilled(sink, &tx, &state).await?;
                tx.spilled.discard(&state)?;
                let durable = sink.flush().await.map_err(Error::Sink)?;
                Ok(Outcome::new(1, rows, committed, Some(durable)))
            };
            let r = guarded(early, work).await;
            (lane, r)
        })
    }

    /// Starts applying a segment of a streamed transaction still in progress on its early session
    /// (the lane must be idle).
    pub fn start_segment(&mut self, segment: Segment) -> Result<(), Error> {
        let committed = self.committed.clone();
        tracing::debug!(xid = segment.xid, rows = segment.changes.len(), "applying a streamed transaction's changes early");
        self.launch(segment.bytes, move |mut lane| async move {
            let r = lane.early.apply(segment.xid, &segment.relations, &segment.changes).await.map_err(Error::Sink);
            (lane, r.map(|_| Outcome::new(0, 0, committed, None)))
        })
    }

    /// Starts committing early transaction `xid` at `commit_end` (the lane must be idle and every
    /// transaction before it applied): green's session lets go of the progress record for that
    /// commit and takes it back after.
    pub fn start_early_commit(&mut self, xid: TxId, commit_end: Position, commit_ts: Timestamp, rows: usize) -> Result<(), Error> {
        self.last_flush = Instant::now();
        self.launch(TRANSACTION_OVERHEAD, move |mut lane| async move {
            let r = async {
                lane.sink.release_progress().await.map_err(Error::Sink)?;
                let done = lane.early.commit(xid, &commit_end, commit_ts).await;
                let bound = lane.sink.bind_progress().await;
                let (committed, durable) = done.map_err(Error::Sink)?;
                bound.map_err(Error::Sink)?;
                lane.sink.advanced(committed.position()).map_err(Error::Sink)?;
                Ok(Outcome::new(1, rows, committed.position().clone(), Some(durable)))
            }
            .await;
            (lane, r)
        })
    }

    /// Starts flushing green's WAL (the sink must be idle) so that every commit becomes durable.
    pub fn start_flush(&mut self) -> Result<(), Error> {
        let committed = self.committed.clone();
        self.last_flush = Instant::now();
        self.launch(0, move |mut lane| async move {
            let r = lane.sink.flush().await.map(|d| Outcome::new(0, 0, committed, Some(d))).map_err(Error::Sink);
            (lane, r)
        })
    }

    /// True when commits exist that are not yet flushed (or, failing closed, when the two positions
    /// cannot be ordered: the flush's own bookkeeping then reports the fault).
    pub fn unflushed(&self) -> bool {
        !matches!(self.committed.try_cmp(self.durable.position()), Ok(o) if o.is_le())
    }

    /// A flush should start now: commits are unflushed and no flush ran within [`FLUSH_RETRY`].
    pub fn flush_wanted(&self) -> bool {
        self.unflushed() && self.last_flush.elapsed() >= FLUSH_RETRY
    }

    /// Waits for the task in flight to finish (pending forever when none: for `select!`).
    pub async fn finished(&mut self) -> Result<Applied<K, E>, Error> {
        match self.inflight.as_mut() {
            Some(handle) => {
                let done = handle.await;
                self.inflight = None;
                done.map_err(|e| Error::Internal(format!("the apply task failed: {e}")))
            }
            None => std::future::pending().await,
        }
    }

    /// Takes the sink back from a finished task; returns what it did.
    pub fn take_back(&mut self, (lane, result): Applied<K, E>) -> Result<Outcome, Error> {
        self.idle = Some(lane);
        self.inflight_bytes = 0;
        let outcome = result?;
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(committed = %outcome.committed, durable = ?outcome.durable.as_ref().map(|d| d.position().to_string()), rows = outcome.rows, ms, "batch committed");
        if outcome.committed.try_cmp(&self.committed)?.is_gt() {
            self.committed = outcome.committed.clone();
        }
        if let Some(d) = &outcome.durable {
            if d.position().try_cmp(self.durable.position())?.is_gt() {
                self.durable = d.clone();
            }
        }
        Ok(outcome)
    }

    /// The idle sink (the caller waited for the task in flight).
    pub fn sink(&mut self) -> Result<&mut K, Error> {
        self.lane().map(|l| &mut l.sink)
    }

    /// The idle lane (the caller waited for the task in flight).
    pub fn lane(&mut self) -> Result<&mut Lane<K, E>, Error> {
        self.idle.as_mut().ok_or_else(|| Error::Internal("the sink is busy".into()))
    }

    /// The idle early apply sessions (the caller waited for the task in flight).
    pub fn early(&mut self) -> Result<&mut E, Error> {
        self.lane().map(|l| &mut l.early)
    }

    /// Stops the task in flight, if any: cancels the statement it runs on green, then drops the task
    /// (closing its session) and waits until it is gone. Used when the pipeline fails, so no apply
    /// session keeps running — or keeps green's progress record busy — behind the retry.
    pub async fn abort(&mut self) {
        if let Some(handle) = self.inflight.take() {
            self.canceller.cancel().await;
            handle.abort();
            let _ = handle.await;
            tracing::debug!("stopped the apply in flight");
        }
    }
}

/// Applies a spilled transaction chunk by chunk in one green transaction.
async fn apply_spilled<K: Sink>(sink: &mut K, tx: &SpilledTransaction, state: &StateStore) -> Result<Position, Error> {
    sink.begin_at(&tx.commit_end).await.map_err(Error::Sink)?;
    for i in 0..tx.spilled.chunks() {
        let changes = match tx.spilled.read(state, i).await {
            Ok(c) => c,
            Err(e) => {
                let _ = sink.rollback().await;
                return Err(e);
            }
        };
        let refs: Vec<&RowChange> = changes.iter().collect();
        sink.apply_part(&refs).await.map_err(Error::Sink)?;
    }
    Ok(sink.commit(&tx.commit_end, tx.commit_ts).await.map_err(Error::Sink)?.position().clone())
}
