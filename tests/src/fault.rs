//! A sink that fails on purpose: wraps a real [`Sink`] and makes its Nth batch, Nth commit or Nth
//! flush fail with a transient error (as a lost connection would), before the target sees it — or,
//! for a commit, after the target committed but before the caller learns it (the reply was lost).
//! Counts are shared by every sink made from one [`FaultPlan`], so a plan spans reconnects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use turnout_decoders::{Position, TableSchema, Timestamp};
use turnout_sinks::{Canceller, Committed, Durable, RowChange, Sink, SinkError, Transaction};

/// Which calls fail: the Nth (1-based) of each kind, counted across every sink of the plan; 0 = never.
#[derive(Debug, Default)]
pub struct FaultPlan {
    pub fail_batch: usize,
    /// The commit succeeds on the target but the caller gets an error (a reply lost in the network).
    pub fail_after_commit: usize,
    pub fail_flush: usize,
    batches: AtomicUsize,
    commits: AtomicUsize,
    flushes: AtomicUsize,
    /// Faults injected so far.
    pub injected: AtomicUsize,
}

impl FaultPlan {
    pub fn new(fail_batch: usize, fail_after_commit: usize, fail_flush: usize) -> Arc<FaultPlan> {
        Arc::new(FaultPlan { fail_batch, fail_after_commit, fail_flush, ..FaultPlan::default() })
    }

    fn hit(&self, counter: &AtomicUsize, nth: usize, what: &str) -> Result<(), SinkError> {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if nth != 0 && n == nth {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(SinkError::Unavailable { context: format!("{what} #{n}"), reason: "injected fault".into() });
        }
        Ok(())
    }
}

/// A [`Sink`] failing as its [`FaultPlan`] says.
#[derive(Debug)]
pub struct FaultySink<S> {
    inner: S,
    plan: Arc<FaultPlan>,
}

impl<S: Sink> FaultySink<S> {
    pub fn new(inner: S, plan: Arc<FaultPlan>) -> Self {
        FaultySink { inner, plan }
    }
}

impl<S: Sink + std::fmt::Debug> Sink for FaultySink<S> {
    fn applied(&self) -> Position {
        self.inner.applied()
    }

    async fn apply(&mut self, batch: &[Transaction]) -> Result<Committed, SinkError> {
        self.plan.hit(&self.plan.batches, self.plan.fail_batch, "batch")?;
        let committed = self.inner.apply(batch).await?;
        self.plan.hit(&self.plan.commits, self.plan.fail_after_commit, "commit")?;
        Ok(committed)
    }

    async fn begin(&mut self) -> Result<(), SinkError> {
        self.inner.begin().await
    }

    async fn apply_part(&mut self, changes: &[&RowChange]) -> Result<(), SinkError> {
        self.inner.apply_part(changes).await
    }

    async fn commit(&mut self, commit_end: &Position, commit_ts: Timestamp) -> Result<Committed, SinkError> {
        let committed = self.inner.commit(commit_end, commit_ts).await?;
        self.plan.hit(&self.plan.commits, self.plan.fail_after_commit, "commit")?;
        Ok(committed)
    }

    async fn rollback(&mut self) -> Result<(), SinkError> {
        self.inner.rollback().await
    }

    async fn flush(&mut self) -> Result<Durable, SinkError> {
        self.plan.hit(&self.plan.flushes, self.plan.fail_flush, "flush")?;
        self.inner.flush().await
    }

    async fn schema_changes(&mut self, schema: &TableSchema) -> Result<Vec<String>, SinkError> {
        self.inner.schema_changes(schema).await
    }

    async fn apply_schema_changes(&mut self, statements: &[String]) -> Result<(), SinkError> {
        self.inner.apply_schema_changes(statements).await
    }

    fn canceller(&self) -> Canceller {
        self.inner.canceller()
    }

    async fn conflicts(&mut self, table: &TableSchema) -> Result<turnout_sinks::Conflicts, SinkError> {
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
