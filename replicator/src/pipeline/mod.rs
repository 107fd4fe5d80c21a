//! Streaming apply: source → assembler → batcher → sink, and acknowledgements back to the source only
//! up to what green has durably committed. Generic over the [`Source`] and the [`Sink`]: nothing here
//! knows which databases it connects.
//!
//! - [`assemble`]: whole committed transactions out of the event stream (streamed ones buffered or
//!   spilled), schema changes and cutover sentinels attached to the transaction that carried them.
//! - [`batch`]: whole transactions merged into one green transaction (row, byte and time budgets).
//! - [`apply`]: one task at a time applies a batch, a spilled transaction, a segment of a streamed
//!   transaction still in progress (early apply), an early transaction's commit or a flush on green
//!   while the stream goes on being received.
//! - [`ack`]: only durable positions are recorded and acknowledged.
//! - [`hold`]: a live verify may hold the apply at one source position for a moment.
//! - [`changed`]: what the stream changed since a verify, for the continuous verify's re-checks.
//!
//! A transaction at or below the position green recorded is skipped (exactly-once across restarts).
//! On any error the apply in flight is cancelled and awaited before the error is returned.

pub mod ack;
pub mod apply;
pub mod assemble;
pub mod batch;
pub mod changed;
pub mod hold;
pub mod signals;

pub use batch::Budgets;

use crate::error::Error;
use crate::source::{Source, SourceMessage};
use crate::state::StateStore;
use crate::status::{Phase, Status};
use apply::{Applier, FLUSH_RETRY};
use assemble::{Assembled, Body, CommittedTransaction, Segment};
use batch::Batcher;
use hold::Stage;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use turnout_decoders::{ChangeEvent, TableSchema};
use turnout_sinks::early::guarded;
use turnout_sinks::{Durable, EarlyApply, Sink};

/// While receiving pauses (a full batch waits for a long apply), the source still hears from us this
/// often, so it does not time the stream out.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);

/// What a stream runs with besides its source and sink: the state store, the progress it shows, the
/// channels it signals on, and its budgets.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    pub state: &'a StateStore,
    pub status: &'a Arc<Status>,
    pub channels: &'a Arc<signals::Channels>,
    pub budgets: &'a Budgets,
}

/// Streams from `source` into `sink` until `shutdown` turns true or an error occurs. On shutdown the
/// transactions received are applied, the durable position acknowledged, and the stream closed.
pub async fn stream<S: Source, K: Sink, E: EarlyApply>(source: S, mut sink: K, early: E, env: Env<'_>, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let Env { state, status, channels, budgets } = env;
    // Where green stands now, as a durable proof (the recorded position is durable once flushed).
    let start = sink.flush().await.map_err(Error::Sink)?;
    // While a chunked copy has chunks left green is not whole: the phase stays `snapshot`.
    if !status.copying() {
        status.set_phase(Phase::Streaming);
    }
    status.stream_restarted();
    channels.changes.begin();
    status.set_error(None);
    status.set_applied(start.position());
    channels.sentinels.durable_advanced();
    let mut batcher = Batcher::new(budgets, state.clone(), start.position().clone(), early.enabled())?;
    batcher.assembler.track(channels.changes.enabled());
    let mut p = Pipeline {
        source,
        applier: Applier::new(sink, early, start),
        batcher,
        state: state.clone(),
        status: Arc::clone(status),
        channels: Arc::clone(channels),
        budgets: budgets.clone(),
        deferred: None,
        last_heartbeat: None,
        pending_segment: None,
    };
    match p.run(shutdown).await {
        Ok(()) => p.source.close().await,
        Err(e) => {
            p.applier.abort().await;
            Err(e)
        }
    }
}

struct Pipeline<S: Source, K: Sink, E: EarlyApply> {
    source: S,
    applier: Applier<K, E>,
    batcher: Batcher,
    state: StateStore,
    status: Arc<Status>,
    channels: Arc<signals::Channels>,
    budgets: Budgets,
    /// A transaction received while a live verify holds the apply before it.
    deferred: Option<CommittedTransaction>,
    /// Position of the newest heartbeat received: every transaction that commits before it has been
    /// received.
    last_heartbeat: Option<turnout_decoders::Position>,
    /// Changes of a transaction in progress, received while the lane was busy and before any commit
    /// accepted since: they go to green before anything accepted after them.
    pending_segment: Option<Segment>,
}

impl<S: Source, K: Sink, E: EarlyApply> Pipeline<S, K, E> {
    async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY);
        let mut hold = self.channels.hold.subscribe();
        loop {
            self.obey_hold().await?;
            self.start_due()?;
            if !self.applier.busy() && self.batcher.is_empty() && self.applier.flush_wanted() {
                self.applier.start_flush()?;
            }
            if self.pending_segment.is_none() {
                ack::when_idle(&mut self.source, &self.applier, &self.batcher);
            }
            let receive = self.may_receive();
            let mut wait_until = self.batcher.deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if self.applier.unflushed() {
                wait_until = wait_until.min(self.applier.last_flush + FLUSH_RETRY);
            }
            if let Some(expires) = self.channels.hold.expires() {
                wait_until = wait_until.min(expires);
            }
            let busy = self.applier.busy();
            tokio::select! {
                biased;
                _ = shutdown.changed() => return self.drain().await,
                done = self.applier.finished(), if busy => {
                    // What arrived while green worked joins the next batch, which goes to green
                    // before this one's position is recorded: the synced state-store write
                    // overlaps green's work instead of delaying it.
                    let durable = self.take_back(done?)?;
                    self.receive_ready().await?;
                    self.start_due()?;
                    self.acknowledge(durable).await?;
                    self.source.keepalive().await?;
                }
                _ = tokio::time::sleep_until(wait_until), if !busy => {}
                _ = hold.changed() => {}
                _ = keepalive.tick(), if !receive => self.source.keepalive().await?,
                msg = self.source.recv(), if receive => {
                    self.on_message(msg?).await?;
                    // Everything already received is handled without going back through select!.
                    while self.may_receive() {
                        self.start_due()?;
                        match self.source.try_recv()? {
                            Some(msg) => self.on_message(msg).await?,
                            None => break,
                        }
                    }
                }
            }
        }
    }

    /// Handles every message already received, without waiting for more, while receiving may go on.
    async fn receive_ready(&mut self) -> Result<(), Error> {
        while self.may_receive() {
            match self.source.try_recv()? {
                Some(msg) => self.on_message(msg).await?,
                None => break,
            }
        }
        Ok(())
    }

    /// Receiving goes on while the batch has room and everything held stays within the memory budget,
    /// and no hold stops it.
    fn may_receive(&self) -> bool {
        self.batcher.rows() < self.budgets.batch_rows
            && self.held_bytes() < self.budgets.memory
            && self.deferred.is_none()
            && matches!(self.channels.hold.current(), Stage::Idle | Stage::At { .. } | Stage::Passed { .. })
    }

    /// True when a live verify's hold keeps `tx` from being accepted now.
    fn held_back(&self, tx: &CommittedTransaction) -> bool {
        match self.channels.hold.current() {
            Stage::Idle | Stage::Passed { .. } => false,
            Stage::Armed { .. } | Stage::Reached { .. } => true,
            // A transaction the hold's position cannot be ordered against is held: the caller
            // finds the fault when it compares them.
            Stage::At { position, .. } => !matches!(tx.body.commit_end().try_cmp(&position), Ok(o) if o.is_le()),
        }
    }

    /// Follows a live verify's hold: accepts the transaction held back once the hold allows it, and
    /// when holding at a position that the stream has passed (a transaction or heartbeat beyond it
    /// arrived), applies everything accepted and reports green there.
    async fn obey_hold(&mut self) -> Result<(), Error> {
        if self.deferred.as_ref().is_some_and(|tx| !self.held_back(tx)) {
            if let Some(tx) = self.deferred.take() {
                self.on_commit(tx).await?;
            }
        }
        let Stage::At { position, .. } = self.channels.hold.current() else { return Ok(()) };
        if self.batcher.applied_floor.try_cmp(&position)?.is_gt() {
            // Accepted before the hold was known (it was not armed): green cannot show the position.
            self.channels.hold.passed(&position);
            return Ok(());
        }
        let beyond = match self.deferred.as_ref() {
            Some(tx) => tx.body.commit_end().try_cmp(&position)?.is_gt(),
            None => false,
        };
        let heartbeat = match self.last_heartbeat.as_ref() {
            Some(h) => h.reached(&position)?,
            None => false,
        };
        let passed = beyond || heartbeat;
        if passed {
            self.apply_batch_now().await?;
            tracing::info!(%position, committed = %self.applier.committed, "green holds at a live verify's position");
            self.channels.hold.reached(&position, self.applier.committed.clone());
        }
        Ok(())
    }

    /// Estimated bytes of changes received and not yet applied.
    fn held_bytes(&self) -> usize {
        self.batcher.memory() + self.applier.inflight_bytes + self.pending_segment.as_ref().map_or(0, |s| s.bytes)
    }

    /// Starts the pending segment, or else a batch that is due, when the lane is free.
    fn start_due(&mut self) -> Result<(), Error> {
        if !self.applier.busy() {
            if let Some(segment) = self.pending_segment.take() {
                self.applier.start_segment(segment)?;
            } else if self.batcher.due(&self.budgets) {
                let (batch, bytes) = self.batcher.take();
                self.applier.start(batch, bytes)?;
            }
        }
        self.status.set_buffered(self.held_bytes() as u64, self.batcher.assembler.spilled_bytes_total());
        Ok(())
    }

    /// Takes back the sink from a finished task and records what became durable.
    async fn completed(&mut self, done: (apply::Lane<K, E>, Result<apply::Outcome, Error>)) -> Result<(), Error> {
        let durable = self.take_back(done)?;
        self.acknowledge(durable).await
    }

    /// Takes back the sink from a finished task; returns what became durable on green.
    fn take_back(&mut self, done: (apply::Lane<K, E>, Result<apply::Outcome, Error>)) -> Result<Option<Durable>, Error> {
        let outcome = self.applier.take_back(done)?;
        self.gave_up()?;
        self.status.add_applied(outcome.transactions as u64, outcome.rows as u64);
        Ok(outcome.durable)
    }

    /// Records `durable` in the state store, then acknowledges it to the source.
    async fn acknowledge(&mut self, durable: Option<Durable>) -> Result<(), Error> {
        match durable {
            Some(d) => ack::durable(&mut self.source, &d, &self.state, &self.status, &self.channels.sentinels).await,
            None => Ok(()),
        }
    }

    /// Waits for the task in flight, if any, then applies the pending segment, if any.
    async fn finish(&mut self) -> Result<(), Error> {
        loop {
            if self.applier.busy() {
                let done = self.applier.finished().await?;
                self.completed(done).await?;
            }
            match self.pending_segment.take() {
                Some(segment) => self.applier.start_segment(segment)?,
                None => return Ok(()),
            }
        }
    }

    /// Applies the batch being filled and waits for it.
    async fn apply_batch_now(&mut self) -> Result<(), Error> {
        self.finish().await?;
        if !self.batcher.is_empty() {
            let (batch, bytes) = self.batcher.take();
            self.applier.start(batch, bytes)?;
            self.finish().await?;
        }
        Ok(())
    }

    /// On shutdown: applies everything received, flushes, acknowledges.
    async fn drain(&mut self) -> Result<(), Error> {
        self.apply_batch_now().await?;
        if self.applier.unflushed() {
            self.applier.start_flush()?;
            self.finish().await?;
        }
        self.status.set_phase(Phase::Stopped);
        Ok(())
    }

    /// Brings green's table in step with `schema` (a column added on the source), after everything
    /// received before it is applied.
    async fn apply_schema(&mut self, schema: &TableSchema) -> Result<(), Error> {
        self.finish().await?;
        let ddl = self.applier.sink()?.schema_changes(schema).await.map_err(Error::Sink)?;
        if !ddl.is_empty() {
            // Rows batched use the old shape: apply them before any DDL.
            self.apply_batch_now().await?;
            tracing::info!(table = %schema.name, "applying schema change on green: {}", ddl.join("; "));
            let lane = self.applier.lane()?;
            let r = guarded(&mut lane.early, lane.sink.apply_schema_changes(&ddl)).await;
            self.gave_up()?;
            r.map_err(Error::Sink)?;
        }
        Ok(())
    }

    async fn on_message(&mut self, msg: SourceMessage) -> Result<(), Error> {
        let event = match msg {
            SourceMessage::LogEnd(end) => {
                self.status.set_source_end(&end);
                return Ok(());
            }
            SourceMessage::Event { event, log_end } => {
                if let Some(end) = log_end {
                    self.status.set_source_end(&end);
                }
                event
            }
        };
        tracing::trace!(?event, "event");
        if let ChangeEvent::Heartbeat { ts, position } = &event {
            self.status.heartbeat_received(*ts);
            self.last_heartbeat = Some(position.clone());
        }
        if let Some(ts) = crate::source::heartbeat_from_table(&event) {
            self.status.heartbeat_received(ts);
        }
        match self.batcher.assembler.push(event)? {
            None => {}
            Some(Assembled::Schema(schema)) => {
                self.channels.changes.schema(&schema);
                self.apply_schema(&schema).await?;
            }
            Some(Assembled::Transaction(tx)) => self.on_commit(tx).await?,
            Some(Assembled::Segment(segment)) => self.on_segment(segment).await?,
            Some(Assembled::Aborted { xid, subxid }) => {
                self.finish().await?;
                self.applier.early()?.abort(xid, subxid).await;
                self.gave_up()?;
            }
        }
        Ok(())
    }

    /// Stops handing out changes of the streamed transactions given up since the last call (the lane
    /// is idle).
    fn gave_up(&mut self) -> Result<(), Error> {
        for xid in self.applier.early()?.take_given_up() {
            self.batcher.assembler.stop_early(xid);
            if self.pending_segment.as_ref().is_some_and(|s| s.xid == xid) {
                self.pending_segment = None;
            }
            self.status.early_given_up();
        }
        Ok(())
    }

    /// Applies changes of a streamed transaction still in progress on its early session, after every
    /// transaction committed before them.
    ///
    /// While the lane is busy and no commit was accepted since, the changes wait as the pending
    /// segment (later ones of the same transaction join it) and receiving goes on: green then gets
    /// fewer, larger pieces instead of the stream waiting for each. A commit accepted after them is
    /// applied after them ([`Pipeline::start_due`], [`Pipeline::finish`]).
    async fn on_segment(&mut self, segment: Segment) -> Result<(), Error> {
        if self.applier.busy() && self.batcher.is_empty() {
            match &mut self.pending_segment {
                None => {
                    self.pending_segment = Some(segment);
                    return Ok(());
                }
                Some(pending) if pending.xid == segment.xid => {
                    pending.absorb(segment);
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        self.apply_batch_now().await?;
        self.applier.start_segment(segment)
    }

    /// Commits a streamed transaction applied early, after everything before it; false when it was
    /// not applied early (it is then applied whole like any other).
    async fn commit_early(&mut self, xid: turnout_decoders::event::TxId, body: &Body, complete: bool) -> Result<bool, Error> {
        self.apply_batch_now().await?;
        let early = self.applier.early()?;
        if !complete || !early.holds(xid) {
            early.forget(xid).await;
            return Ok(false);
        }
        self.applier.start_early_commit(xid, body.commit_end().clone(), body.commit_ts(), body.rows())?;
        self.status.early_committed();
        Ok(true)
    }

    async fn on_commit(&mut self, tx: CommittedTransaction) -> Result<(), Error> {
        self.channels.changes.record(&tx.touched, tx.body.commit_end());
        if tx.body.commit_end().try_cmp(&self.batcher.applied_floor)?.is_gt() && self.held_back(&tx) {
            self.deferred = Some(tx);
            return Ok(());
        }
        let CommittedTransaction { body, sentinel, relations, statements, early_xid, segments_complete, tail, touched: _ } = tx;
        if body.commit_end().try_cmp(&self.batcher.applied_floor)?.is_le() {
            if let Some(xid) = early_xid {
                self.finish().await?;
                self.applier.early()?.forget(xid).await;
            }
            return body.discard(&self.state);
        }
        // Schema changes made inside this transaction apply on green just before it.
        for schema in &relations {
            self.apply_schema(schema).await?;
        }
        // The source's own DDL (MySQL/MariaDB) runs on green after everything before it.
        for (database, statement) in &statements {
            self.apply_batch_now().await?;
            tracing::info!(%database, "applying blue's DDL on green: {statement}");
            let lane = self.applier.lane()?;
            let r = guarded(&mut lane.early, lane.sink.apply_source_ddl(database, statement)).await;
            self.gave_up()?;
            r.map_err(Error::Sink)?;
        }
        if let Some(id) = sentinel {
            self.channels.sentinels.seen(&id, body.commit_end());
            // A cutover is waiting with writes paused: apply at once, not after the batch delay.
            self.batcher.hurry();
        }
        self.status.transaction_received(body.commit_end(), body.commit_ts());
        self.batcher.applied_floor = body.commit_end().clone();
        if let Some(xid) = early_xid {
            if let Some(tail) = tail {
                self.on_segment(tail).await?;
            }
            if self.commit_early(xid, &body, segments_complete).await? {
                return body.discard(&self.state);
            }
        }
        match body {
            Body::Whole(t) => self.batcher.push(t, &self.budgets),
            Body::Spilled(t) => {
                // Applied after everything before it, alone, while the stream goes on being received.
                self.apply_batch_now().await?;
                self.applier.start_spilled(t, self.state.clone())?;
            }
        }
        Ok(())
    }
}
