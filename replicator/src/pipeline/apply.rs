//! Apply: the sink, either idle or owned by one task that applies a batch, a spilled transaction or a
//! flush on green while the stream goes on being received.
//!
//! Guarantees: at most one task works on green at a time, in the order started; a task hands the sink
//! back with what it committed and, when it flushed, what is durable. [`Applier::abort`] cancels the
//! statement running on green and waits for the task, so no apply session outlives a failed pipeline.

use super::assemble::TRANSACTION_OVERHEAD;
use crate::error::Error;
use crate::spill::SpilledTransaction;
use crate::state::StateStore;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use turnout_decoders::Position;
use turnout_sinks::{Canceller, Durable, RowChange, Sink, Transaction};

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

type Applied<K> = (K, Result<Outcome, Error>);

/// The sink and the task (if any) applying on green.
#[allow(missing_debug_implementations)]
pub struct Applier<K: Sink> {
    idle: Option<K>,
    inflight: Option<JoinHandle<Applied<K>>>,
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

impl<K: Sink> Applier<K> {
    /// Takes the sink; `durable` is its starting point (a flush made before streaming).
    pub fn new(sink: K, durable: Durable) -> Applier<K> {
        let canceller = sink.canceller();
        Applier {
            idle: Some(sink),
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

    /// Hands the idle sink to a task running `work`.
    fn launch<Fut>(&mut self, bytes: usize, work: impl FnOnce(K) -> Fut) -> Result<(), Error>
    where
        Fut: std::future::Future<Output = Applied<K>> + Send + 'static,
    {
        let sink = self.idle.take().ok_or_else(|| Error::Setup("internal: the sink was asked to work while busy".into()))?;
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
        self.launch(bytes, move |mut sink| async move {
            let r = async {
                let committed = sink.apply(&batch).await.map_err(Error::Sink)?.position().clone();
                let durable = Some(sink.flush().await.map_err(Error::Sink)?);
                Ok(Outcome { transactions: batch.len(), rows, committed, durable })
            }
            .await;
            (sink, r)
        })
    }

    /// Starts applying a spilled transaction chunk by chunk in one green transaction (the sink must be
    /// idle); its chunks are deleted after, and green is flushed.
    pub fn start_spilled(&mut self, tx: SpilledTransaction, state: StateStore) -> Result<(), Error> {
        let rows = tx.spilled.rows();
        tracing::info!(rows, chunks = tx.spilled.chunks(), commit = %tx.commit_end, "applying a spilled transaction");
        self.last_flush = Instant::now();
        self.launch(TRANSACTION_OVERHEAD, move |mut sink| async move {
            let r = async {
                let committed = apply_spilled(&mut sink, &tx, &state).await?;
                tx.spilled.discard(&state)?;
                let durable = sink.flush().await.map_err(Error::Sink)?;
                Ok(Outcome { transactions: 1, rows, committed, durable: Some(durable) })
            }
            .await;
            (sink, r)
        })
    }

    /// Starts flushing green's WAL (the sink must be idle) so that every commit becomes durable.
    pub fn start_flush(&mut self) -> Result<(), Error> {
        let committed = self.committed.clone();
        self.last_flush = Instant::now();
        self.launch(0, move |mut sink| async move {
            let r = sink
                .flush()
                .await
                .map(|d| Outcome { transactions: 0, rows: 0, committed, durable: Some(d) })
                .map_err(Error::Sink);
            (sink, r)
        })
    }

    /// True when commits exist that are not yet flushed.
    pub fn unflushed(&self) -> bool {
        self.committed > *self.durable.position()
    }

    /// A flush should start now: commits are unflushed and no flush ran within [`FLUSH_RETRY`].
    pub fn flush_wanted(&self) -> bool {
        self.unflushed() && self.last_flush.elapsed() >= FLUSH_RETRY
    }

    /// Waits for the task in flight to finish (pending forever when none: for `select!`).
    pub async fn finished(&mut self) -> Result<Applied<K>, Error> {
        match self.inflight.as_mut() {
            Some(handle) => {
                let done = handle.await;
                self.inflight = None;
                done.map_err(|e| Error::Setup(format!("internal: the apply task failed: {e}")))
            }
            None => std::future::pending().await,
        }
    }

    /// Takes the sink back from a finished task; returns what it did.
    pub fn take_back(&mut self, (sink, result): Applied<K>) -> Result<Outcome, Error> {
        self.idle = Some(sink);
        self.inflight_bytes = 0;
        let outcome = result?;
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(committed = %outcome.committed, durable = ?outcome.durable.as_ref().map(|d| d.position().to_string()), rows = outcome.rows, ms, "batch committed");
        if outcome.committed > self.committed {
            self.committed = outcome.committed.clone();
        }
        if let Some(d) = &outcome.durable {
            if *d.position() > *self.durable.position() {
                self.durable = d.clone();
            }
        }
        Ok(outcome)
    }

    /// The idle sink (the caller waited for the task in flight).
    pub fn sink(&mut self) -> Result<&mut K, Error> {
        self.idle.as_mut().ok_or_else(|| Error::Setup("internal: the sink is busy".into()))
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
    sink.begin().await.map_err(Error::Sink)?;
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
