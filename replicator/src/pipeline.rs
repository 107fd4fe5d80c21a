//! Streaming apply: source → decoder → assembler → batcher → green sink, and acknowledgements back to
//! blue only up to what green has durably committed.
//!
//! The batcher merges consecutive whole source transactions into one green transaction until a row or
//! time budget is reached, so green always shows a prefix of blue's commit order. One batch is applied
//! on green while the next is received and decoded; receiving pauses when the next batch is full, so
//! memory stays bounded. A transaction whose commit position is at or below green's recorded origin
//! position is skipped (exactly-once across restarts).

use crate::assemble::{Assembler, Committed};
use crate::spill::SpilledTransaction;
use crate::error::Error;
use crate::state::StateStore;
use crate::status::{Phase, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use turnout_decoders::pg::wire::StandbyPositions;
use turnout_decoders::pg::{ConnectOptions, PgConnection, PgOutputDecoder, ReplicationStream, StartReplication, StreamMessage};
use turnout_decoders::{ChangeEvent, Lsn, Position};
use turnout_sinks::pg::PgSink;
use turnout_sinks::Transaction;

/// Batching and memory budgets.
#[derive(Clone, Debug)]
pub struct Budgets {
    /// Apply a batch once it holds this many row changes.
    pub batch_rows: usize,
    /// Apply a batch at the latest this long after its first transaction arrived.
    pub batch_delay: Duration,
    /// Bytes of streamed (in-progress) transactions buffered in memory.
    pub memory: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets { batch_rows: 5_000, batch_delay: Duration::from_millis(50), memory: 256 * 1024 * 1024 }
    }
}

fn rows_of(t: &Transaction) -> usize {
    t.changes.len()
}

/// What an apply task hands back: the sink, transactions and rows applied, and the committed and (when
/// it flushed) durable positions.
type Applied = (PgSink, usize, usize, Result<(Lsn, Option<Lsn>), Error>);

/// Under load, green's WAL is flushed (and blue acknowledged) at most this often; when apply goes
/// idle it is flushed at once.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A batch being applied on green by its own task, which owns the sink until it finishes.
type Inflight = JoinHandle<Applied>;

/// Applies a spilled transaction chunk by chunk in one green transaction.
async fn apply_spilled(sink: &mut PgSink, tx: &SpilledTransaction, state: &StateStore) -> Result<Lsn, Error> {
    sink.begin().await.map_err(Error::Sink)?;
    for i in 0..tx.spilled.chunks() {
        let changes = match tx.spilled.read(state, i) {
            Ok(c) => c,
            Err(e) => {
                let _ = sink.rollback().await;
                return Err(e);
            }
        };
        let refs: Vec<&turnout_sinks::RowChange> = changes.iter().collect();
        sink.apply_part(&refs).await.map_err(Error::Sink)?;
    }
    Ok(sink.commit(tx.commit_end, tx.commit_ts).await.map_err(Error::Sink)?.position)
}

/// The sink, either idle here or busy applying a batch.
struct Applier {
    idle: Option<PgSink>,
    inflight: Option<Inflight>,
    /// When the apply in flight started.
    started: Instant,
    last_flush: Instant,
    /// Committed on green (visible, maybe not yet flushed).
    committed: Lsn,
    /// Committed and flushed on green: what blue may be told.
    durable: Lsn,
}

impl Applier {
    /// Hands the idle sink to a task running `work`, which gives it back with the committed and (when
    /// it flushed) durable positions; [`Applier::complete`] takes it back.
    fn launch<Fut>(&mut self, transactions: usize, rows: usize, work: impl FnOnce(PgSink) -> Fut) -> Result<(), Error>
    where
        Fut: std::future::Future<Output = (PgSink, Result<(Lsn, Option<Lsn>), Error>)> + Send + 'static,
    {
        let sink = self.idle.take().ok_or_else(|| Error::Setup("internal: the sink was asked to work while busy".into()))?;
        let work = work(sink);
        self.inflight = Some(tokio::spawn(async move {
            let (sink, result) = work.await;
            (sink, transactions, rows, result)
        }));
        Ok(())
    }

    /// Starts applying `batch` (the sink must be idle).
    fn start(&mut self, batch: Vec<Transaction>) -> Result<(), Error> {
        let rows = batch.iter().map(rows_of).sum();
        tracing::debug!(transactions = batch.len(), rows, first = %batch[0].commit_end, "applying batch");
        self.started = Instant::now();
        let flush = self.flush_due();
        self.launch(batch.len(), rows, move |mut sink| async move {
            let r = async {
                let committed = sink.apply(&batch).await.map_err(Error::Sink)?.position;
                let durable = if flush { Some(sink.flush().await.map_err(Error::Sink)?.position) } else { None };
                Ok((committed, durable))
            }
            .await;
            (sink, r)
        })
    }

    /// True (and the clock restarted) when the next apply should also flush green's WAL.
    fn flush_due(&mut self) -> bool {
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.last_flush = Instant::now();
            return true;
        }
        false
    }

    /// Starts flushing green's WAL (the sink must be idle) so that every commit becomes durable.
    fn start_flush(&mut self) -> Result<(), Error> {
        let committed = self.committed;
        self.last_flush = Instant::now();
        self.launch(0, 0, move |mut sink| async move {
            let r = sink.flush().await.map(|d| (committed, Some(d.position))).map_err(Error::Sink);
            (sink, r)
        })
    }

    /// True when commits exist that are not yet flushed.
    fn unflushed(&self) -> bool {
        self.committed > self.durable
    }

    /// A flush should start now: commits are unflushed and no flush ran within the last interval
    /// (so a flush that cannot catch up is retried at that pace, not in a loop).
    fn flush_wanted(&self) -> bool {
        self.unflushed() && self.last_flush.elapsed() >= FLUSH_EVERY / 10
    }

    /// Starts applying a spilled transaction (the sink must be idle); its chunks are deleted after.
    fn start_spilled(&mut self, tx: SpilledTransaction, state: StateStore) -> Result<(), Error> {
        let rows = tx.spilled.rows();
        tracing::info!(rows, chunks = tx.spilled.chunks(), commit = %tx.commit_end, "applying a spilled transaction");
        self.started = Instant::now();
        self.last_flush = Instant::now();
        self.launch(1, rows, move |mut sink| async move {
            let r = async {
                let committed = apply_spilled(&mut sink, &tx, &state).await?;
                tx.spilled.discard(&state)?;
                Ok((committed, Some(sink.flush().await.map_err(Error::Sink)?.position)))
            }
            .await;
            (sink, r)
        })
    }

    /// Waits for the batch in flight (if any) and records it as durable.
    async fn finish(&mut self, stream: &mut ReplicationStream, state: &StateStore, status: &Status) -> Result<(), Error> {
        let Some(handle) = self.inflight.take() else { return Ok(()) };
        let done = handle.await;
        self.complete(done, stream, state, status)
    }

    /// Takes the sink back from a finished apply task and records what it made durable.
    fn complete(
        &mut self,
        done: Result<Applied, tokio::task::JoinError>,
        stream: &mut ReplicationStream,
        state: &StateStore,
        status: &Status,
    ) -> Result<(), Error> {
        let (sink, transactions, rows, result) = done.map_err(|e| Error::Setup(format!("internal: the apply task failed: {e}")))?;
        self.idle = Some(sink);
        let (committed, durable) = result?;
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(%committed, ?durable, rows, ms, "batch committed");
        self.committed = self.committed.max(committed);
        status.add_applied(transactions as u64, rows as u64);
        if let Some(durable) = durable {
            // Only what green has flushed is recorded and acknowledged.
            self.durable = self.durable.max(durable);
            state.record_applied(self.durable)?;
            status.set_applied(self.durable);
            stream.set_positions(StandbyPositions { write: self.durable, flush: self.durable, apply: self.durable });
        }
        Ok(())
    }

    /// The idle sink, after waiting for the batch in flight.
    async fn sink(&mut self, stream: &mut ReplicationStream, state: &StateStore, status: &Status) -> Result<&mut PgSink, Error> {
        self.finish(stream, state, status).await?;
        self.idle.as_mut().ok_or_else(|| Error::Setup("internal: no sink".into()))
    }
}

/// Decoding and batching state of one stream.
struct Batcher {
    decoder: PgOutputDecoder,
    assembler: Assembler,
    batch: Vec<Transaction>,
    batch_rows: usize,
    deadline: Option<Instant>,
    /// Commit position of the newest transaction accepted: anything at or below is skipped.
    applied_floor: Lsn,
    /// A cutover sentinel seen in the transaction being received.
    fence: Option<String>,
    /// The newest XLogData start (or heartbeat position) received.
    last_start: Lsn,
}

impl Batcher {
    fn due(&self, budgets: &Budgets) -> bool {
        !self.batch.is_empty() && (self.batch_rows >= budgets.batch_rows || self.deadline.is_some_and(|d| Instant::now() >= d))
    }

    fn take(&mut self) -> Vec<Transaction> {
        self.batch_rows = 0;
        self.deadline = None;
        std::mem::take(&mut self.batch)
    }

    /// Decodes one message and batches the transaction it completes. Schema changes are applied on
    /// green first, after every batch received before them.
    async fn on_message(
        &mut self,
        msg: StreamMessage,
        applier: &mut Applier,
        stream: &mut ReplicationStream,
        state: &StateStore,
        status: &Status,
        budgets: &Budgets,
    ) -> Result<(), Error> {
        let (wal_start, data) = match msg {
            StreamMessage::Data { wal_start, wal_end, data, .. } => {
                status.set_source_wal_end(wal_end);
                (wal_start, data)
            }
            StreamMessage::Keepalive { wal_end, .. } => {
                status.set_source_wal_end(wal_end);
                return Ok(());
            }
        };
        let Some(event) = self.decoder.decode(&data).map_err(Error::Source)? else { return Ok(()) };
        tracing::trace!(?event, "event");
        self.last_start = self.last_start.max(wal_start);
        if let ChangeEvent::Heartbeat { ts, position } = &event {
            status.heartbeat_received(*ts);
            let Position::Pg(message_lsn) = *position;
            self.last_start = self.last_start.max(message_lsn);
        }
        if let ChangeEvent::Relation(schema) = &event {
            let ddl = applier.sink(stream, state, status).await?.schema_changes(schema).await.map_err(Error::Sink)?;
            if !ddl.is_empty() {
                // Rows batched or in flight use the old shape: apply them before any DDL.
                if !self.batch.is_empty() {
                    applier.start(self.take())?;
                    applier.finish(stream, state, status).await?;
                }
                tracing::info!(table = %schema.name, "applying schema change on green: {}", ddl.join("; "));
                applier.sink(stream, state, status).await?.apply_schema_changes(&ddl).await.map_err(Error::Sink)?;
            }
        }
        if let Some(ts) = crate::heartbeat::from_table(&event) {
            status.heartbeat_received(ts);
        }
        if let ChangeEvent::Message { prefix, content, transactional: true, .. } = &event {
            if prefix == crate::cutover::FENCE_PREFIX {
                self.fence = Some(String::from_utf8_lossy(content).into_owned());
            }
        }
        let committed = self.assembler.push(event)?;
        if let Some(c) = &committed {
            if let Some(id) = self.fence.take() {
                status.fence_seen(&id, c.commit_end());
                // A cutover is waiting with writes paused: apply at once, not after the batch delay.
                self.deadline = Some(Instant::now());
            }
        }
        status.set_buffered(self.assembler.buffered_bytes() as u64, self.assembler.spilled_bytes_total());
        match committed {
            None => {}
            Some(c) if c.commit_end() <= self.applied_floor => {
                if let Committed::Spilled(tx) = c {
                    tx.spilled.discard(state)?;
                }
            }
            Some(Committed::Whole(tx)) => {
                status.transaction_received(tx.commit_end, tx.commit_ts);
                self.applied_floor = tx.commit_end;
                self.batch_rows += rows_of(&tx);
                self.batch.push(tx);
                self.deadline.get_or_insert_with(|| Instant::now() + budgets.batch_delay);
            }
            Some(Committed::Spilled(tx)) => {
                // Applied after everything before it, alone, while the stream goes on being received.
                status.transaction_received(tx.commit_end, tx.commit_ts);
                self.applied_floor = tx.commit_end;
                applier.finish(stream, state, status).await?;
                if !self.batch.is_empty() {
                    applier.start(self.take())?;
                    applier.finish(stream, state, status).await?;
                }
                applier.start_spilled(tx, state.clone())?;
            }
        }
        Ok(())
    }
}

/// Streams from `slot` into `sink` until `shutdown` turns true or an error occurs. On shutdown the
/// batches received are applied, the durable position acknowledged, and the stream closed.
#[allow(clippy::too_many_arguments)]
pub async fn stream(
    source: &ConnectOptions,
    slot: &str,
    publication: &str,
    sink: PgSink,
    state: &StateStore,
    status: &Arc<Status>,
    budgets: &Budgets,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let start_at = sink.applied();
    let conn = PgConnection::connect(source, true).await.map_err(Error::Source)?;
    let mut start = StartReplication::new(slot, vec![publication.to_owned()]);
    start.start = start_at;
    let mut stream = conn.start_replication(&start).await.map_err(Error::Source)?;
    stream.set_positions(StandbyPositions { write: start_at, flush: start_at, apply: start_at });
    tracing::debug!(start = %start_at, "streaming");
    status.set_phase(Phase::Streaming);
    status.stream_restarted();
    status.set_error(None);
    status.set_applied(start_at);
    let mut b = Batcher {
        decoder: PgOutputDecoder::new(),
        assembler: Assembler::new(budgets.memory, state.clone())?,
        batch: Vec::new(),
        batch_rows: 0,
        deadline: None,
        applied_floor: start_at,
        fence: None,
        last_start: start_at,
    };
    let mut applier =
        Applier { idle: Some(sink), inflight: None, started: Instant::now(), last_flush: Instant::now(), committed: start_at, durable: start_at };
    // While receiving pauses (a full batch waits for a long apply), blue still hears from us, so its
    // wal_sender_timeout does not end the stream.
    let mut status_tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        if b.due(budgets) && applier.inflight.is_none() {
            applier.start(b.take())?;
        }
        if applier.inflight.is_none() && b.batch.is_empty() && applier.flush_wanted() {
            applier.start_flush()?;
        }
        // Nothing received is waiting to be applied or flushed and no transaction is open: everything
        // before the newest message received is durable on green, so blue may release that WAL (an idle
        // slot keeps advancing on heartbeats, and a shutting-down blue gets the confirmation it waits for).
        let idle = applier.inflight.is_none() && b.batch.is_empty() && !applier.unflushed() && b.assembler.is_idle();
        if idle && b.last_start > applier.durable && stream.reported().flush < b.last_start {
            let at = b.last_start;
            stream.set_positions(StandbyPositions { write: at, flush: at, apply: at });
        }
        // Receiving pauses while the next batch is full and the current one is still being applied.
        let receive = b.batch_rows < budgets.batch_rows;
        let mut wait_until = b.deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        if applier.unflushed() {
            wait_until = wait_until.min(applier.last_flush + FLUSH_EVERY / 10);
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                applier.finish(&mut stream, state, status).await?;
                if !b.batch.is_empty() {
                    applier.start(b.take())?;
                    applier.finish(&mut stream, state, status).await?;
                }
                if applier.unflushed() {
                    applier.start_flush()?;
                    applier.finish(&mut stream, state, status).await?;
                }
                status.set_phase(Phase::Stopped);
                stream.close().await.map_err(Error::Source)?;
                return Ok(());
            }
            done = async {
                match applier.inflight.as_mut() {
                    Some(handle) => handle.await,
                    None => std::future::pending().await,
                }
            }, if applier.inflight.is_some() => {
                applier.inflight = None;
                applier.complete(done, &mut stream, state, status)?;
                stream.send_status(false).await.map_err(Error::Source)?;
            }
            _ = tokio::time::sleep_until(wait_until), if applier.inflight.is_none() => {}
            _ = status_tick.tick(), if !receive => {
                stream.send_status(false).await.map_err(Error::Source)?;
            }
            msg = stream.recv(), if receive => {
                let msg = msg.map_err(Error::Source)?;
                b.on_message(msg, &mut applier, &mut stream, state, status, budgets).await?;
                // Everything already received is handled without going back through select!.
                while b.batch_rows < budgets.batch_rows {
                    if b.due(budgets) && applier.inflight.is_none() {
                        applier.start(b.take())?;
                    }
                    match stream.try_recv_buffered().map_err(Error::Source)? {
                        Some(msg) => b.on_message(msg, &mut applier, &mut stream, state, status, budgets).await?,
                        None => break,
                    }
                }
            }
        }
    }
}
