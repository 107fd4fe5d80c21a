//! Streaming apply: source → decoder → assembler → batcher → green sink, and acknowledgements back to
//! blue only up to what green has durably committed.
//!
//! The batcher merges consecutive whole source transactions into one green transaction until a row,
//! byte or time budget is reached, so green always shows a prefix of blue's commit order. A
//! transaction whose commit position is at or below green's recorded origin position is skipped
//! (exactly-once across restarts).

use crate::assemble::Assembler;
use crate::error::Error;
use crate::state::StateStore;
use crate::status::{Phase, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use turnout_decoders::pg::wire::StandbyPositions;
use turnout_decoders::pg::{ConnectOptions, PgConnection, PgOutputDecoder, StartReplication, StreamMessage};
use turnout_decoders::Lsn;
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

/// Streams from `slot` into `sink` until `shutdown` turns true or an error occurs. On shutdown the
/// current batch is applied, the durable position acknowledged, and the stream closed.
#[allow(clippy::too_many_arguments)]
pub async fn stream(
    source: &ConnectOptions,
    slot: &str,
    publication: &str,
    sink: &mut PgSink,
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
    let mut decoder = PgOutputDecoder::new();
    let mut assembler = Assembler::new(budgets.memory);
    let mut batch: Vec<Transaction> = Vec::new();
    let mut batch_rows = 0usize;
    let mut deadline: Option<Instant> = None;
    loop {
        let flush_now = batch_rows >= budgets.batch_rows || deadline.is_some_and(|d| Instant::now() >= d);
        if flush_now && !batch.is_empty() {
            let durable = apply(sink, &mut batch, state, status).await?;
            stream.set_positions(StandbyPositions { write: durable, flush: durable, apply: durable });
            stream.send_status(false).await.map_err(Error::Source)?;
            batch_rows = 0;
            deadline = None;
        }
        let wait_until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if !batch.is_empty() {
                    let durable = apply(sink, &mut batch, state, status).await?;
                    stream.set_positions(StandbyPositions { write: durable, flush: durable, apply: durable });
                }
                status.set_phase(Phase::Stopped);
                stream.close().await.map_err(Error::Source)?;
                return Ok(());
            }
            _ = tokio::time::sleep_until(wait_until) => {}
            msg = stream.recv() => {
                match msg.map_err(Error::Source)? {
                    StreamMessage::Data { wal_end, data, .. } => {
                        status.set_source_wal_end(wal_end);
                        if let Some(event) = decoder.decode(&data).map_err(Error::Source)? {
                            tracing::trace!(?event, "event");
                            if let turnout_decoders::ChangeEvent::Relation(schema) = &event {
                                let ddl = sink.schema_changes(schema).await.map_err(Error::Sink)?;
                                if !ddl.is_empty() {
                                    // Rows already batched use the old shape: apply them first.
                                    if !batch.is_empty() {
                                        let durable = apply(sink, &mut batch, state, status).await?;
                                        stream.set_positions(StandbyPositions { write: durable, flush: durable, apply: durable });
                                        batch_rows = 0;
                                        deadline = None;
                                    }
                                    tracing::info!(table = %schema.name, "applying schema change on green: {}", ddl.join("; "));
                                    sink.apply_schema_changes(&ddl).await.map_err(Error::Sink)?;
                                }
                            }
                            if let Some(tx) = assembler.push(event)? {
                                if tx.commit_end > sink.applied() {
                                    batch_rows += rows_of(&tx);
                                    batch.push(tx);
                                    deadline.get_or_insert_with(|| Instant::now() + budgets.batch_delay);
                                }
                            }
                        }
                    }
                    StreamMessage::Keepalive { wal_end, .. } => status.set_source_wal_end(wal_end),
                }
            }
        }
    }
}

async fn apply(sink: &mut PgSink, batch: &mut Vec<Transaction>, state: &StateStore, status: &Status) -> Result<Lsn, Error> {
    let rows: usize = batch.iter().map(rows_of).sum();
    tracing::debug!(transactions = batch.len(), rows, first = %batch[0].commit_end, "applying batch");
    let durable = sink.apply(batch).await.map_err(Error::Sink)?;
    tracing::debug!(durable = %durable.position, "batch committed");
    state.record_applied(durable.position)?;
    status.set_applied(durable.position);
    status.add_applied(batch.len() as u64, rows as u64);
    batch.clear();
    Ok(durable.position)
}
