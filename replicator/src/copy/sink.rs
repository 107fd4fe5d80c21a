//! [`Copying`]: the sink of a stream whose initial copy is chunked. It filters every change by the
//! [`Coverage`] and copies each round of chunks at its barrier (see the module docs of
//! [`crate::copy`]); once every chunk is on green it only passes transactions through.

use super::{load_plan, Chunk, Copier, Coverage, Progress};
use crate::error::Error;
use crate::state::StateStore;
use crate::status::{Phase, Status};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout_decoders::schema::TableSchema;
use turnout_decoders::{Position, Timestamp};
use turnout_sinks::{Canceller, Committed, Conflicts, Durable, RowChange, Sink, SinkError, Transaction};

/// A sink that fills green chunk by chunk while it applies the stream.
#[allow(missing_debug_implementations)]
pub struct Copying<K: Sink, C: Copier> {
    inner: K,
    copy: Option<Rounds<C>>,
}

/// How long the apply waits for a round's snapshot before it goes on streaming and lets the snapshot
/// finish in the background: PostgreSQL's slot waits for every transaction open on blue to end, and
/// MySQL's moment of blocked commits waits for running statements.
const OPEN_WAIT: Duration = Duration::from_secs(2);

type Opening<C> = tokio::task::JoinHandle<Result<(<C as Copier>::Round, Position), Error>>;

/// The chunks still to copy and the round open now.
struct Rounds<C: Copier> {
    copier: Arc<C>,
    /// A round's snapshot still being taken in the background.
    opening: Option<Opening<C>>,
    /// Rounds opened in the background that green had already passed: after two, the apply waits
    /// for the next one however long it takes (else a blue busy with long transactions could keep
    /// every round from being used).
    missed: u32,
    coverage: Coverage,
    remaining: VecDeque<Chunk>,
    /// The open round's snapshot and the log position it shows.
    round: Option<(C::Round, Position)>,
    per_round: usize,
    progress: Progress,
    status: Arc<Status>,
}

fn layer(e: Error) -> SinkError {
    SinkError::Layer { class: e.class(), source: Box::new(e) }
}

impl<K: Sink, C: Copier> Copying<K, C> {
    /// Wraps `inner`. When the state store holds a chunked copy's plan with chunks not yet on green,
    /// says what it keeps and opens the first round, copying `per_round` chunks per round.
    pub async fn open(inner: K, copier: C, state: &StateStore, status: &Arc<Status>, per_round: usize) -> Result<Copying<K, C>, Error> {
        let (plan, done) = load_plan(state)?;
        let mut remaining: VecDeque<Chunk> = plan.iter().filter(|c| !done.contains_key(&c.id)).cloned().collect();
        if remaining.is_empty() {
            return Ok(Copying { inner, copy: None });
        }
        copier.clear(&super::merged(remaining.make_contiguous())).await?;
        let coverage = Coverage::new(&plan, |id| done.contains_key(&id));
        let total_bytes: u64 = plan.iter().map(|c| c.bytes).sum();
        let kept_bytes: u64 = plan.iter().filter(|c| done.contains_key(&c.id)).map(|c| c.bytes).sum();
        let kept_rows: u64 = done.values().map(|d| d.rows).sum();
        status.copy_started(plan.len() as u64, total_bytes, done.len() as u64, kept_bytes, kept_rows);
        status.set_phase(Phase::Snapshot);
        if done.is_empty() {
            tracing::info!(chunks = plan.len(), bytes = total_bytes, "copying green chunk by chunk while streaming");
        } else {
            tracing::info!(
                kept = done.len(),
                kept_rows,
                remaining = remaining.len(),
                "resuming the chunked copy: {} of {} chunks ({kept_rows} rows) are already on green and kept; copying the other {}",
                done.len(),
                plan.len(),
                remaining.len()
            );
        }
        let mut rounds = Rounds {
            copier: Arc::new(copier),
            opening: None,
            missed: 0,
            coverage,
            remaining,
            round: None,
            per_round: per_round.max(1),
            progress: Progress::new(state.clone(), Arc::clone(status)),
            status: Arc::clone(status),
        };
        rounds.open().await?;
        Ok(Copying { inner, copy: Some(rounds) })
    }

    /// True while chunks remain to copy.
    pub fn copying(&self) -> bool {
        self.copy.is_some()
    }

    /// Runs every round whose barrier lies in `batch` (applying what comes before each), and
    /// returns the part of `batch` after the last barrier, filtered.
    async fn through_barriers(&mut self, batch: &[Transaction]) -> Result<Vec<Transaction>, SinkError> {
        let Some(rounds) = self.copy.as_mut() else { return Ok(batch.to_vec()) };
        rounds.take_opened(&self.inner.applied()).await.map_err(layer)?;
        let mut rest = batch;
        while let Some(cut) = rounds.barrier(rest.iter().map(|t| &t.commit_end))? {
            let (before, after) = rest.split_at(cut);
            if !before.is_empty() {
                let _committed = self.inner.apply(&rounds.coverage.filter(before).map_err(layer)?).await?;
            }
            rounds.copy_round(&mut self.inner).await?;
            rest = after;
        }
        rounds.coverage.filter(rest).map_err(layer)
    }

    /// After a commit: opens the next round, or ends the copy when nothing remains.
    async fn after_commit(&mut self) -> Result<(), SinkError> {
        let Some(rounds) = self.copy.as_mut() else { return Ok(()) };
        let idle = rounds.round.is_none() && rounds.opening.is_none();
        if idle && !rounds.remaining.is_empty() {
            rounds.open().await.map_err(layer)?;
        }
        if idle && rounds.remaining.is_empty() {
            tracing::info!("the chunked copy is complete: every chunk is on green");
            rounds.status.copy_finished();
            rounds.status.set_phase(Phase::Streaming);
            self.copy = None;
        }
        Ok(())
    }
}

impl<C: Copier> Rounds<C> {
    /// Opens a round for the next chunks and nudges blue so that its barrier arrives. Waits up to
    /// [`OPEN_WAIT`] (nothing is applied meanwhile, so nothing past the round's position is); after
    /// that the snapshot is left to finish in the background ([`Rounds::take_opened`]).
    async fn open(&mut self) -> Result<(), Error> {
        let copier = Arc::clone(&self.copier);
        let mut task: Opening<C> = tokio::spawn(async move {
            let (round, position) = copier.open().await?;
            copier.nudge().await?;
            Ok((round, position))
        });
        let wait = if self.missed >= 2 { Duration::MAX } else { OPEN_WAIT };
        match tokio::time::timeout(wait, &mut task).await {
            Ok(joined) => {
                let (round, position) = joined.map_err(|e| Error::Internal(format!("a copy round failed to open: {e}")))??;
                tracing::debug!(%position, "opened a copy round");
                self.round = Some((round, position));
            }
            Err(_) => {
                tracing::info!(
                    "a chunked copy round's snapshot is still being taken after {OPEN_WAIT:?} (PostgreSQL waits for every transaction \
                     open on blue to end; MySQL for running statements): streaming goes on meanwhile"
                );
                self.opening = Some(task);
            }
        }
        Ok(())
    }

    /// Takes a round whose snapshot was finished in the background: kept when green has applied
    /// nothing past its position (`applied`), else dropped for a new one.
    async fn take_opened(&mut self, applied: &Position) -> Result<(), Error> {
        if !self.opening.as_ref().is_some_and(tokio::task::JoinHandle::is_finished) {
            return Ok(());
        }
        let Some(task) = self.opening.take() else { return Ok(()) };
        let (round, position) = task.await.map_err(|e| Error::Internal(format!("a copy round failed to open: {e}")))??;
        if applied.try_cmp(&position)?.is_le() {
            tracing::debug!(%position, "opened a copy round in the background");
            self.round = Some((round, position));
            self.missed = 0;
            return Ok(());
        }
        tracing::debug!(%position, %applied, "a copy round opened in the background is already passed; opening another");
        drop(round);
        self.missed += 1;
        self.open().await
    }

    /// Where in `positions` the open round's barrier lies: the first transaction past its position.
    /// A position that cannot be ordered against the round's stops the stream (never a guess).
    fn barrier<'a>(&self, positions: impl Iterator<Item = &'a Position>) -> Result<Option<usize>, SinkError> {
        let Some((_, at)) = self.round.as_ref() else { return Ok(None) };
        for (i, p) in positions.enumerate() {
            match p.try_cmp(at) {
                Ok(std::cmp::Ordering::Greater) => return Ok(Some(i)),
                Ok(_) => {}
                Err(_) => {
                    return Err(layer(Error::Resync(format!("a transaction at {p} cannot be ordered against the chunked copy round's snapshot at {at}"))))
                }
            }
        }
        Ok(None)
    }

    /// At the barrier: makes green durable up to the round's position, copies the round's chunks and
    /// covers them. The next round opens after the next commit.
    async fn copy_round<K: Sink>(&mut self, inner: &mut K) -> Result<(), SinkError> {
        let Some((round, position)) = self.round.take() else { return Ok(()) };
        let _durable = inner.flush().await?;
        let take = self.per_round.min(self.remaining.len());
        let chunks: Vec<Chunk> = self.remaining.drain(..take).collect();
        let started = Instant::now();
        self.copier.copy(round, chunks.clone(), &self.progress).await.map_err(layer)?;
        for c in &chunks {
            self.coverage.add(c);
        }
        let (done, total) = self.status.copy_chunks();
        tracing::info!(%position, seconds = started.elapsed().as_secs_f64(), "copied {} chunk(s) ({done} of {total})", chunks.len());
        Ok(())
    }

    /// Drops the open round (its snapshot predates a schema change).
    fn abandon(&mut self) {
        if let Some(task) = self.opening.take() {
            task.abort();
        }
        if self.round.take().is_some() {
            tracing::debug!("a schema change arrived while a copy round was open; opening another after it");
        }
    }
}

impl<C: Copier> Drop for Rounds<C> {
    fn drop(&mut self) {
        if let Some(task) = self.opening.take() {
            task.abort();
        }
    }
}

impl<K: Sink, C: Copier> Sink for Copying<K, C> {
    fn applied(&self) -> Position {
        self.inner.applied()
    }

    async fn apply(&mut self, batch: &[Transaction]) -> Result<Committed, SinkError> {
        if self.copy.is_none() {
            return self.inner.apply(batch).await;
        }
        let rest = self.through_barriers(batch).await?;
        let committed = self.inner.apply(&rest).await?;
        self.after_commit().await?;
        Ok(committed)
    }

    /// Only for a transaction whose commit position is unknown: while chunks remain, the pipeline
    /// opens transactions with [`Sink::begin_at`] (streamed transactions are never applied early).
    async fn begin(&mut self) -> Result<(), SinkError> {
        if self.copy.is_some() {
            return Err(SinkError::Progress("internal: a transaction of unknown position was opened during the chunked copy".into()));
        }
        self.inner.begin().await
    }

    async fn begin_at(&mut self, commit_end: &Position) -> Result<(), SinkError> {
        if let Some(rounds) = self.copy.as_mut() {
            rounds.take_opened(&self.inner.applied()).await.map_err(layer)?;
            if rounds.barrier(std::iter::once(commit_end))?.is_some() {
                rounds.copy_round(&mut self.inner).await?;
            }
        }
        self.inner.begin_at(commit_end).await
    }

    async fn apply_part(&mut self, changes: &[&RowChange]) -> Result<(), SinkError> {
        let Some(rounds) = self.copy.as_ref() else { return self.inner.apply_part(changes).await };
        let kept = rounds.coverage.filter_changes(changes.iter().copied()).map_err(layer)?;
        let refs: Vec<&RowChange> = kept.iter().collect();
        self.inner.apply_part(&refs).await
    }

    async fn commit(&mut self, commit_end: &Position, commit_ts: Timestamp) -> Result<Committed, SinkError> {
        let committed = self.inner.commit(commit_end, commit_ts).await?;
        self.after_commit().await?;
        Ok(committed)
    }

    async fn rollback(&mut self) -> Result<(), SinkError> {
        self.inner.rollback().await
    }

    async fn flush(&mut self) -> Result<Durable, SinkError> {
        self.inner.flush().await
    }

    async fn schema_changes(&mut self, schema: &TableSchema) -> Result<Vec<String>, SinkError> {
        self.inner.schema_changes(schema).await
    }

    async fn apply_schema_changes(&mut self, statements: &[String]) -> Result<(), SinkError> {
        if let Some(rounds) = self.copy.as_mut() {
            rounds.abandon();
        }
        self.inner.apply_schema_changes(statements).await?;
        self.after_commit().await
    }

    async fn apply_source_ddl(&mut self, database: &str, statement: &str) -> Result<(), SinkError> {
        if let Some(rounds) = self.copy.as_mut() {
            rounds.abandon();
        }
        self.inner.apply_source_ddl(database, statement).await?;
        self.after_commit().await
    }

    fn canceller(&self) -> Canceller {
        self.inner.canceller()
    }

    async fn conflicts(&mut self, table: &TableSchema) -> Result<Conflicts, SinkError> {
        self.inner.conflicts(table).await
    }

    async fn release_progress(&mut self) -> Result<(), SinkError> {
        self.inner.release_progress().await
    }

    async fn bind_progress(&mut self) -> Result<(), SinkError> {
        self.inner.bind_progress().await
    }

    fn advanced(&mut self, position: &Position) -> Result<(), SinkError> {
        self.inner.advanced(position)
    }

    fn forget_schema(&mut self) {
        self.inner.forget_schema()
    }
}
