//! Streaming apply: source → decoder → assembler → batcher → green sink, and acknowledgements back to
//! blue only up to what green has durably committed.
//!
//! The batcher merges consecutive whole source transactions into one green transaction until a row or
//! time budget is reached, so green always shows a prefix of blue's commit order. One batch is applied
//! on green while the next is received and decoded; receiving pauses when the next batch is full, so
//! memory stays bounded. A transaction whose commit position is at or below green's recorded origin
//! position is skipped (exactly-once across restarts).

use crate::assemble::Assembler;
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
use turnout_decoders::{ChangeEvent, Lsn};
use turnout_sinks::pg::PgSink;
use turnout_sinks::{SinkError, Transaction};

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

/// A batch being applied on green by its own task, which owns the sink until it finishes.
type Inflight = JoinHandle<(PgSink, usize, usize, Result<Lsn, SinkError>)>;

/// The sink, either idle here or busy applying a batch.
struct Applier {
    idle: Option<PgSink>,
    inflight: Option<Inflight>,
}

impl Applier {
    /// Starts applying `batch` (the sink must be idle).
    fn start(&mut self, batch: Vec<Transaction>) -> Result<(), Error> {
        let mut sink = self.idle.take().ok_or_else(|| Error::Setup("internal: apply started while another runs".into()))?;
        let rows = batch.iter().map(rows_of).sum();
        tracing::debug!(transactions = batch.len(), rows, first = %batch[0].commit_end, "applying batch");
        self.inflight = Some(tokio::spawn(async move {
            let r = sink.apply(&batch).await.map(|d| d.position);
            (sink, batch.len(), rows, r)
        }));
        Ok(())
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
        done: Result<(PgSink, usize, usize, Result<Lsn, SinkError>), tokio::task::JoinError>,
        stream: &mut ReplicationStream,
        state: &StateStore,
        status: &Status,
    ) -> Result<(), Error> {
        let (sink, transactions, rows, result) = done.map_err(|e| Error::Setup(format!("internal: the apply task failed: {e}")))?;
        self.idle = Some(sink);
        let durable = result.map_err(Error::Sink)?;
        tracing::debug!(durable = %durable, "batch committed");
        state.record_applied(durable)?;
        status.set_applied(durable);
        status.add_applied(transactions as u64, rows as u64);
        stream.set_positions(StandbyPositions { write: durable, flush: durable, apply: durable });
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
        let data = match msg {
            StreamMessage::Data { wal_end, data, .. } => {
                status.set_source_wal_end(wal_end);
                data
            }
            StreamMessage::Keepalive { wal_end, .. } => {
                status.set_source_wal_end(wal_end);
                return Ok(());
            }
        };
        let Some(event) = self.decoder.decode(&data).map_err(Error::Source)? else { return Ok(()) };
        tracing::trace!(?event, "event");
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
        if let Some(tx) = self.assembler.push(event)? {
            if tx.commit_end > self.applied_floor {
                self.applied_floor = tx.commit_end;
                self.batch_rows += rows_of(&tx);
                self.batch.push(tx);
                self.deadline.get_or_insert_with(|| Instant::now() + budgets.batch_delay);
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
    status.set_error(None);
    status.set_applied(start_at);
    let mut b = Batcher {
        decoder: PgOutputDecoder::new(),
        assembler: Assembler::new(budgets.memory),
        batch: Vec::new(),
        batch_rows: 0,
        deadline: None,
        applied_floor: start_at,
    };
    let mut applier = Applier { idle: Some(sink), inflight: None };
    loop {
        if b.due(budgets) && applier.inflight.is_none() {
            applier.start(b.take())?;
        }
        // Receiving pauses while the next batch is full and the current one is still being applied.
        let receive = b.batch_rows < budgets.batch_rows;
        let wait_until = b.deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                applier.finish(&mut stream, state, status).await?;
                if !b.batch.is_empty() {
                    applier.start(b.take())?;
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
