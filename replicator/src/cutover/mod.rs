//! The cutover procedure run by the sidecar (DESIGN.md "Cutover"), started by `POST /cutover`, the
//! same for every source; what differs per source (the fence, the sentinel, the counters) is a
//! [`Procedure`]: [`pg::PgCutover`] and [`mysql::MySqlCutover`].
//!
//! Steps: wait until the snapshot is done and lag stays under `--when-lag` (up to `--timeout`) → move
//! every sequence / AUTO_INCREMENT counter on green ahead of blue (writes still flowing) → fence writes
//! on blue → write a sentinel (PostgreSQL: `pg_logical_emit_message(true, 'turnout.fence', <id>)`;
//! MySQL/MariaDB: row 2 of the heartbeat table, written by turnout's session, which `read_only`
//! exempts) → read blue's (now final) counters once and top up any that overtook the margin, while
//! green applies the sentinel → wait until green has durably applied exactly the sentinel's
//! transaction (woken by the apply, not polled) → make green writable → switch traffic → stop forward
//! apply, reporting the measured write pause. Only the fence, the sentinel, one counter read and the
//! switch fall inside the pause; journal steps that recover like the step before them are not
//! fsynced inside it.
//!
//! Guarantees:
//! - Every step is journaled in the state store (synced) *before* it acts. A failure before the switch,
//!   or a write pause about to exceed `--max-pause`, undoes the fence; blue keeps serving.
//! - After a crash, [`recover`] (run at start) settles the journal: a cutover that had not started its
//!   switch is undone (fence lifted); one that had started switching is completed (the sentinel was
//!   already proven, and every switch is idempotent). Never both databases writable, never neither.
//! - After a completed cutover this stream refuses to replicate again (blue is no longer the source of
//!   truth).

mod mysql;
mod pg;

use crate::config::{Config, SourceKind, Switch};
use crate::error::Error;
use crate::state::StateStore;
use crate::status::{Phase, Status};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use turnout_cutover::{BlueGreen, TrafficSwitch};

pub use pg::build;

/// The logical-message prefix of the cutover sentinel.
pub use crate::pipeline::assemble::SENTINEL_PREFIX as FENCE_PREFIX;

/// What a cutover does on the source's side. Errors are one line for the operator, naming the thing
/// and the fix. Every step is idempotent (a cutover resumed after a crash repeats the step it was in).
pub(crate) trait Procedure: Send {
    /// `pgbouncer`, `read-only` or `none`, as in `cutover.fence`.
    fn fence_kind(&self) -> &'static str;

    /// Refusals before anything changes (e.g. a server too old), and warnings to print (accounts the
    /// fence cannot stop).
    fn preflight(&mut self) -> impl Future<Output = Result<Vec<String>, String>> + Send;

    /// Checks, changing nothing, that the fence can be applied.
    fn check_fence(&mut self) -> impl Future<Output = Result<(), String>> + Send;

    /// Moves green's counters (sequences, AUTO_INCREMENT) ahead of blue's with a margin while writes
    /// still flow; returns what it did.
    fn counters_ahead(&mut self) -> impl Future<Output = Result<String, String>> + Send;

    /// Fences writes on blue within `budget`; returns what it did.
    fn fence(&mut self, budget: Duration) -> impl Future<Output = Result<String, String>> + Send;

    /// Commits the sentinel transaction carrying `id` on blue.
    fn write_sentinel(&mut self, id: &str) -> impl Future<Output = Result<(), String>> + Send;

    /// Inside the pause: reads blue's final counters once and tops up green's; returns what it did.
    fn top_up(&mut self) -> impl Future<Output = Result<String, String>> + Send;

    /// Makes green ready to take writes before traffic arrives; returns what it did, if anything.
    fn open_green(&mut self) -> impl Future<Output = Result<Option<String>, String>> + Send;

    /// Lifts the fence (safe after a failed or partial fence); returns what it did.
    fn undo(&mut self) -> impl Future<Output = Result<String, String>> + Send;
}

/// Where a cutover is; journaled before each step acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Waiting,
    Fencing,
    SequencesSynced,
    SentinelApplied,
    Switching,
    Done,
    Undone,
    Failed,
}

impl Step {
    /// The fence may be in place and the switch has not started: undo on recovery.
    fn fence_may_be_up(self) -> bool {
        matches!(self, Step::Fencing | Step::SentinelApplied | Step::SequencesSynced)
    }
}

/// The journal entry of the current (or last) cutover.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Journal {
    pub id: String,
    pub step: Step,
    pub fence: String,
    pub switch: String,
    /// Why it ended, for Undone/Failed; the summary for Done.
    pub message: Option<String>,
}

/// What `POST /cutover` asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub when_lag_ms: u64,
    pub timeout_ms: u64,
    pub max_pause_ms: u64,
    #[serde(default)]
    pub dry_run: bool,
}

/// What `GET /cutover` shows: the steps printed so far and the outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub id: Option<String>,
    /// "running", "done", "failed" (fence undone, blue serving), "dry_run_ok", "dry_run_failed"; none before any.
    pub outcome: Option<String>,
    pub lines: Vec<String>,
    pub write_pause_ms: Option<u64>,
}

/// The sidecar's cutover controller, shared with the HTTP API.
pub struct Controller {
    config: Arc<Config>,
    state: StateStore,
    status: Arc<Status>,
    progress: Mutex<Progress>,
    /// Turned true to stop forward apply after a completed cutover.
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Controller {
    pub fn new(config: Arc<Config>, state: StateStore, status: Arc<Status>, stop: watch::Sender<bool>) -> Arc<Controller> {
        let mut progress = Progress::default();
        if let Ok(Some(j)) = state.cutover_journal() {
            progress.id = Some(j.id.clone());
            progress.outcome = Some(match j.step {
                Step::Done => "done",
                Step::Undone | Step::Failed => "failed",
                _ => "interrupted",
            }
            .into());
            progress.lines.extend(j.message);
        }
        Arc::new(Controller { config, state, status, progress: Mutex::new(progress), stop })
    }

    /// The progress of the current or last cutover.
    pub fn progress(&self) -> Progress {
        lock(&self.progress).clone()
    }

    /// The token `POST /cutover` requires, if configured.
    pub fn token(&self) -> Option<&str> {
        self.config.cutover.token.as_ref().map(|t| t.expose())
    }

    fn say(&self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!(target: "turnout::cutover", "{line}");
        lock(&self.progress).lines.push(line);
    }

    fn journal(&self, journal: &mut Journal, step: Step, message: Option<String>) -> Result<(), Error> {
        journal.step = step;
        journal.message = message;
        // Steps recovered as the one before them (the fence may be up, the switch has not begun)
        // need no fsync inside the write pause.
        let sync = !(step.fence_may_be_up() && step != Step::Fencing);
        self.state.put_cutover_journal(journal, sync)
    }

    /// Starts a cutover in the background. Refused while one runs or after one completed.
    pub fn start(self: &Arc<Self>, request: Request) -> Result<String, String> {
        {
            let mut p = lock(&self.progress);
            match p.outcome.as_deref() {
                Some("running") => return Err("a cutover is already running".into()),
                Some("done") => return Err("this stream was already cut over to green".into()),
                _ => {}
            }
            *p = Progress { id: Some(new_id()), outcome: Some("running".into()), lines: Vec::new(), write_pause_ms: None };
        }
        let id = self.progress().id.unwrap_or_default();
        let this = Arc::clone(self);
        let run_id = id.clone();
        tokio::spawn(async move {
            let outcome = if request.dry_run {
                match this.dry_run(&request).await {
                    Ok(()) => "dry_run_ok",
                    Err(e) => {
                        this.say(format!("dry run failed: {e}"));
                        "dry_run_failed"
                    }
                }
            } else {
                match this.run(&run_id, &request).await {
                    Ok(()) => "done",
                    Err(e) => {
                        this.say(format!("cutover failed: {e}"));
                        "failed"
                    }
                }
            };
            lock(&this.progress).outcome = Some(outcome.into());
        });
        Ok(id)
    }

    /// Checks every precondition and prints the plan, changing nothing.
    async fn dry_run(&self, request: &Request) -> Result<(), Error> {
        match self.config.source_kind() {
            SourceKind::Pg => self.dry_run_with(pg::PgCutover::connect(&self.config).await?, request).await,
            SourceKind::MySql => self.dry_run_with(mysql::MySqlCutover::connect(&self.config).await?, request).await,
        }
    }

    async fn dry_run_with<P: Procedure>(&self, mut procedure: P, request: &Request) -> Result<(), Error> {
        let switch = build_switch(&self.config)?;
        self.say(format!("dry run: fence = {}, switch = {}", procedure.fence_kind(), switch.kind()));
        for warning in procedure.preflight().await.map_err(Error::Setup)? {
            self.say(format!("WARNING: {warning}"));
        }
        procedure.check_fence().await.map_err(Error::Setup)?;
        self.say("fence: ready");
        switch.check(Duration::from_secs(10)).await.map_err(cutover_error)?;
        self.say("switch: ready");
        let lag = self.status.lag_seconds();
        let phase = self.status.snapshot().phase;
        self.say(format!(
            "phase {phase:?}, lag {} (threshold {} ms)",
            lag.map_or("unknown".into(), |l| format!("{:.3} s", l)),
            request.when_lag_ms
        ));
        if phase != Phase::Streaming {
            return Err(Error::Setup("replication is not streaming yet (the snapshot must finish first)".into()));
        }
        Ok(())
    }

    async fn run(&self, id: &str, request: &Request) -> Result<(), Error> {
        match self.config.source_kind() {
            SourceKind::Pg => self.run_with(pg::PgCutover::connect(&self.config).await?, id, request).await,
            SourceKind::MySql => self.run_with(mysql::MySqlCutover::connect(&self.config).await?, id, request).await,
        }
    }

    async fn run_with<P: Procedure>(&self, mut procedure: P, id: &str, request: &Request) -> Result<(), Error> {
        let switch = build_switch(&self.config)?;
        let mut journal = Journal {
            id: id.to_owned(),
            step: Step::Waiting,
            fence: procedure.fence_kind().into(),
            switch: switch.kind().into(),
            message: None,
        };
        self.journal(&mut journal, Step::Waiting, None)?;
        match procedure.preflight().await {
            Ok(warnings) => warnings.into_iter().for_each(|w| self.say(format!("WARNING: {w}"))),
            Err(reason) => return self.fail(&mut journal, reason),
        }
        let threshold = Duration::from_millis(request.when_lag_ms);
        self.say(format!("waiting for the snapshot to finish and lag to stay under {} ms (up to {} s)", request.when_lag_ms, request.timeout_ms / 1000));
        if let Err(reason) = self.wait_for_lag(threshold, Duration::from_millis(request.timeout_ms)).await {
            return self.fail(&mut journal, reason);
        }
        // Checked (and console sessions opened) before writes pause.
        if let Err(e) = procedure.check_fence().await {
            return self.fail(&mut journal, format!("the fence is not ready: {e}"));
        }
        if let Err(e) = switch.check(Duration::from_secs(10)).await {
            return self.fail(&mut journal, format!("the switch is not ready: {e}"));
        }
        // Counters go ahead of blue before writes pause; inside the pause one read of blue checks them.
        match procedure.counters_ahead().await {
            Ok(line) => self.say(line),
            Err(reason) => return self.fail(&mut journal, reason),
        }
        // Fence. Journaled first: a crash from here on is undone on restart.
        self.journal(&mut journal, Step::Fencing, None)?;
        let pause_budget = Duration::from_millis(request.max_pause_ms);
        let fenced_at = Instant::now();
        match procedure.fence(pause_budget).await {
            Ok(line) => self.say(line),
            Err(e) => return self.undo(&mut procedure, &mut journal, format!("fencing failed: {e}")).await,
        }
        let deadline = fenced_at + pause_budget;
        // Sentinel: written after the fence, so every write acknowledged before it precedes it.
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), procedure.write_sentinel(id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return self.undo(&mut procedure, &mut journal, format!("writing the sentinel on blue failed: {e}")).await,
            Err(_) => return self.undo(&mut procedure, &mut journal, "writing the sentinel on blue took longer than --max-pause; the fence was undone".into()).await,
        }
        // Blue's counters are final once it is fenced: they are checked while green applies the
        // sentinel, not after.
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), procedure.top_up()).await {
            Ok(Ok(line)) => self.say(line),
            Ok(Err(e)) => return self.undo(&mut procedure, &mut journal, e).await,
            Err(_) => return self.undo(&mut procedure, &mut journal, pause_exceeded(request)).await,
        }
        self.journal(&mut journal, Step::SequencesSynced, None)?;
        let sentinel = match self.sentinel_applied(id, deadline).await {
            Ok(at) => at,
            Err(reason) => return self.undo(&mut procedure, &mut journal, reason).await,
        };
        self.say(format!("green applied the sentinel (commit {sentinel}) — every write committed on blue before the fence is on green"));
        self.journal(&mut journal, Step::SentinelApplied, Some(format!("sentinel {sentinel}")))?;
        if Instant::now() >= deadline {
            return self.undo(&mut procedure, &mut journal, pause_exceeded(request)).await;
        }
        // Switch. From here on a failure is completed, not undone: green has everything.
        self.journal(&mut journal, Step::Switching, None)?;
        let completed = |e: String| {
            Error::Setup(format!(
                "switching traffic to green failed after green was proven complete: {e}; blue stays fenced. Fix the cause and \
                 restart `turnout run` — it completes the switch from the journal"
            ))
        };
        if let Some(line) = procedure.open_green().await.map_err(completed)? {
            self.say(line);
        }
        let urls = BlueGreen { blue_url: self.config.source.url.expose(), green_url: self.config.target.url.expose() };
        let report = switch.to_green(urls, Duration::from_secs(30)).await.map_err(|e| completed(e.to_string()))?;
        let pause = fenced_at.elapsed();
        self.say(format!("switched traffic to green ({}): {}", switch.kind(), report.summary));
        // Forward apply stops: green now takes writes.
        let _ = self.stop.send(true);
        let summary = format!("cutover complete: write pause {} ms", pause.as_millis());
        self.journal(&mut journal, Step::Done, Some(summary.clone()))?;
        lock(&self.progress).write_pause_ms = Some(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
        self.say(summary);
        Ok(())
    }

    /// Waits until streaming with lag under `threshold` for several consecutive samples.
    async fn wait_for_lag(&self, threshold: Duration, timeout: Duration) -> Result<(), String> {
        const STABLE: u32 = 5;
        let deadline = Instant::now() + timeout;
        let mut under = 0;
        let mut last: Option<f64> = None;
        loop {
            let streaming = self.status.snapshot().phase == Phase::Streaming;
            let lag = self.status.lag_seconds();
            last = lag.or(last);
            under = if streaming && lag.is_some_and(|l| l < threshold.as_secs_f64()) { under + 1 } else { 0 };
            if under >= STABLE {
                self.say(format!("lag {:.3} s is under the threshold", lag.unwrap_or(0.0)));
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "lag did not stay under {} ms within {} s (last: {}); nothing was changed, blue keeps serving",
                    threshold.as_millis(),
                    timeout.as_secs(),
                    last.map_or("unknown".into(), |l| format!("{l:.3} s"))
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until green durably applied the sentinel's transaction.
    async fn sentinel_applied(&self, id: &str, deadline: Instant) -> Result<turnout_decoders::Position, String> {
        loop {
            let moved = self.status.applied_moved();
            if let Some(commit) = self.status.fence_commit(id) {
                if self.status.applied().is_some_and(|applied| applied >= commit) {
                    return Ok(commit);
                }
            }
            if Instant::now() >= deadline {
                return Err("green did not apply the sentinel within --max-pause; the fence was undone".into());
            }
            // Woken by the apply the moment green's durable position moves; the timeout only bounds
            // the wait by the deadline (the sentinel is recorded before its transaction is durable).
            let _ = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)), moved).await;
        }
    }

    async fn undo<P: Procedure>(&self, procedure: &mut P, journal: &mut Journal, reason: String) -> Result<(), Error> {
        match procedure.undo().await {
            Ok(line) => self.say(line),
            Err(e) => {
                let msg = format!("{reason}; UNDOING THE FENCE FAILED: {e} — blue may still refuse writes; fix and restart `turnout run`, which retries the undo");
                self.journal(journal, Step::Fencing, Some(msg.clone()))?;
                return Err(Error::Setup(msg));
            }
        }
        self.journal(journal, Step::Undone, Some(reason.clone()))?;
        Err(Error::Setup(reason))
    }

    fn fail(&self, journal: &mut Journal, reason: String) -> Result<(), Error> {
        self.journal(journal, Step::Failed, Some(reason.clone()))?;
        Err(Error::Setup(reason))
    }
}

fn pause_exceeded(request: &Request) -> String {
    format!("the write pause would exceed --max-pause {} ms; the fence was undone", request.max_pause_ms)
}

fn new_id() -> String {
    format!("{:016x}", crate::status::now_micros().unsigned_abs() ^ u64::from(std::process::id()).rotate_left(40))
}

fn cutover_error(e: turnout_cutover::CutoverError) -> Error {
    Error::Setup(e.to_string())
}

/// The traffic switch the configuration asks for.
pub fn build_switch(config: &Config) -> Result<TrafficSwitch, Error> {
    let c = &config.cutover;
    Ok(match c.switch {
        Switch::Pgbouncer => build(config)?.1,
        Switch::Haproxy => {
            let h = c.haproxy.as_ref().ok_or_else(|| Error::config("cutover.haproxy", "is missing"))?;
            TrafficSwitch::HaProxy {
                admin_socket: h.admin_socket.clone().ok_or_else(|| Error::config("cutover.haproxy.admin_socket", "is missing"))?,
                backend: h.backend.clone().unwrap_or_default(),
            }
        }
        Switch::Command => TrafficSwitch::Command { argv: c.command.as_ref().map(|c| c.argv.clone()).unwrap_or_default() },
        Switch::None => TrafficSwitch::None,
    })
}

/// Settles a cutover interrupted by a crash (see the module documentation). Returns an error when
/// this stream was cut over and must not replicate again.
pub async fn recover(config: &Config, state: &StateStore) -> Result<(), Error> {
    match config.source_kind() {
        SourceKind::Pg => recover_with(config, state, pg::PgCutover::connect).await,
        SourceKind::MySql => recover_with(config, state, mysql::MySqlCutover::connect).await,
    }
}

async fn recover_with<'c, P: Procedure, F: Future<Output = Result<P, Error>>>(
    config: &'c Config,
    state: &StateStore,
    connect: impl FnOnce(&'c Config) -> F,
) -> Result<(), Error> {
    let Some(mut journal) = state.cutover_journal()? else { return Ok(()) };
    match journal.step {
        Step::Done => Err(Error::Setup(format!(
            "this stream was cut over to green (cutover {}: {}); blue is no longer the source. Run `turnout teardown` \
             before replicating again",
            journal.id,
            journal.message.clone().unwrap_or_default()
        ))),
        step if step.fence_may_be_up() => {
            let mut procedure = connect(config).await?;
            procedure.undo().await.map_err(|e| {
                Error::Setup(format!("cutover {} was interrupted with writes fenced on blue and undoing the fence failed: {e}", journal.id))
            })?;
            tracing::warn!(id = %journal.id, "a cutover was interrupted before its switch; the fence on blue was undone");
            journal.step = Step::Undone;
            journal.message = Some("interrupted before the switch; the fence was undone when turnout restarted".into());
            state.put_cutover_journal(&journal, true)
        }
        Step::Switching => {
            let switch = build_switch(config)?;
            let interrupted = |e: String| Error::Setup(format!("cutover {} was interrupted while switching; completing the switch failed: {e}", journal.id));
            let mut procedure = connect(config).await?;
            procedure.open_green().await.map_err(interrupted)?;
            let urls = BlueGreen { blue_url: config.source.url.expose(), green_url: config.target.url.expose() };
            switch.to_green(urls, Duration::from_secs(30)).await.map_err(|e| interrupted(e.to_string()))?;
            tracing::warn!(id = %journal.id, "a cutover was interrupted while switching; the switch to green was completed");
            journal.step = Step::Done;
            journal.message = Some("the switch was completed when turnout restarted".into());
            state.put_cutover_journal(&journal, true)?;
            Err(Error::Setup(format!("cutover {} completed on restart: traffic is on green; this stream no longer replicates", journal.id)))
        }
        _ => Ok(()),
    }
}
