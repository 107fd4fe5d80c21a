//! The cutover procedure run by the sidecar (DESIGN.md "Cutover"), started by `POST /cutover`, the
//! same for every source; what differs per source (the fence, the sentinel, the counters) is a
//! [`Procedure`], which each source family provides ([`crate::source::family::Family::cutover`]):
//! [`crate::source::pg::cutover::PgCutover`] and [`crate::source::mysql::cutover::MySqlCutover`].
//!
//! Steps: wait until the snapshot is done and lag stays under `--when-lag` (up to `--timeout`) → move
//! every sequence / AUTO_INCREMENT counter on green ahead of blue (writes still flowing) → fence writes
//! on blue → write a sentinel (PostgreSQL: `pg_logical_emit_message(true, 'turnout.fence', <id>)`;
//! MySQL/MariaDB: row 2 of the heartbeat table, written by turnout's session, which `read_only`
//! exempts; Oracle MySQL then seals blue with `super_read_only` and the proof also covers its whole
//! `gtid_executed`, see [`Procedure::fenced_position`]) → read blue's (now final) counters once and top up any that overtook the margin, while
//! green applies the sentinel → wait until green has durably applied exactly the sentinel's
//! transaction (woken by the apply, not polled) → make green writable → switch traffic → stop forward
//! apply, reporting the measured write pause. Only the fence, the sentinel, one counter read and the
//! switch fall inside the pause; journal steps that recover like the step before them are not
//! fsynced inside it.
//!
//! Guarantees:
//! - Every step is journaled in the state store (synced) *before* it acts. A failure before the switch,
//!   or a write pause about to exceed `--max-pause`, undoes the fence; blue keeps serving.
//! - After a crash, [`recover()`] (run at start) settles the journal: a cutover that had not started its
//!   switch is undone (fence lifted); one that had started switching is completed (the sentinel was
//!   already proven, and every switch is idempotent). Never both databases writable, never neither.
//! - After a completed cutover this stream refuses to replicate again (blue is no longer the source of
//!   truth).

use crate::config::Config;
use crate::error::Error;
use crate::pipeline::signals::Channels;
use crate::source::Names;
use crate::state::StateStore;
use crate::status::foreign::Side;
pub use crate::status::Direction;
use crate::status::{Phase, Status};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use turnout_cutover::{ClientsMoved, TrafficSwitch};
use turnout_decoders::Position;

pub use crate::journal::{Journal, ReverseArm, Step};

pub mod again;
pub mod certificate;
mod gate;
mod record;
mod recover;
mod rehearse;
mod rogue;
use record::Record;
pub use recover::{armed_again, cut_over, open_window, recover, rolled_back, window_over, Resume};

/// The result of `$step` (a `Result<_, Error>` expression), evaluated again as long as `$retry`
/// ([`Retry::again`]) says its transient failure is worth another attempt.
macro_rules! retried {
    ($retry:expr, $controller:expr, $what:expr, $step:expr) => {
        loop {
            match $step {
                Err(e) if $retry.again($controller, $what, &e).await => {}
                result => break result,
            }
        }
    };
}
pub(crate) use crate::source::contract::procedure::Procedure;
use crate::source::family::Family;
pub use crate::source::pg::cutover::build;

/// The logical-message prefix of the cutover sentinel.
pub use crate::source::SENTINEL_PREFIX as FENCE_PREFIX;

/// What `POST /cutover` asks for. Unknown fields are refused: a request this sidecar does not
/// understand must not run as something else.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub when_lag_ms: u64,
    pub timeout_ms: u64,
    pub max_pause_ms: u64,
    #[serde(default)]
    pub dry_run: bool,
    /// Everything up to the proof, then undo the fence instead of switching.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rehearse: bool,
    /// Go on only after a passing live verify no older than `verify_max_age_ms` (the configured
    /// `cutover.verify` asks for it too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_max_age_ms: Option<u64>,
}

/// What `GET /cutover` shows: the steps printed so far and the outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub id: Option<String>,
    /// "running", "done", "failed" (fence undone, blue serving), "dry_run_ok", "dry_run_failed",
    /// "rehearsed" (the fence undone as planned), "rehearsal_failed"; none before any.
    pub outcome: Option<String>,
    pub lines: Vec<String>,
    pub write_pause_ms: Option<u64>,
    /// The optional request fields this sidecar understands: the command checks before it asks
    /// for a rehearsal or a gate, so that an older sidecar cannot run either as a plain cutover.
    #[serde(default)]
    pub accepts: Vec<String>,
}

/// What [`Progress::accepts`] lists: the fields of [`Request`] beyond [`Request::BASE`].
pub const ACCEPTS: [&str; 3] = ["rehearse", "verify", "verify_max_age_ms"];

impl Request {
    /// The fields every sidecar understands, sent in every request.
    pub const BASE: [&str; 4] = ["when_lag_ms", "timeout_ms", "max_pause_ms", "dry_run"];
}

impl Progress {
    /// No cutover yet, in a sidecar that lists what it accepts.
    fn new() -> Progress {
        Progress { accepts: ACCEPTS.map(String::from).to_vec(), ..Progress::default() }
    }
}

/// The sidecar's cutover (or rollback) controller, shared with the HTTP API: one for each
/// direction.
pub struct Controller {
    /// Forward: a cutover to green; Reverse: a rollback to blue.
    direction: Direction,
    config: Arc<Config>,
    state: StateStore,
    status: Arc<Status>,
    /// The pipeline's sentinels (waited on with writes paused) and the live verify's hold.
    channels: Arc<Channels>,
    /// This generation's forward stream's names (the reverse stream's derive from them) and the
    /// sender that stops this direction's apply once traffic moved; both replaced when a rollback
    /// begins the next generation ([`Controller::begin_generation`]).
    generation: Mutex<(Names, watch::Sender<bool>)>,
    progress: Mutex<Progress>,
    /// What the current (or last) cutover did, for its certificate.
    record: Mutex<Record>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("direction", &self.direction).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Controller {
    pub fn new(
        direction: Direction,
        config: Arc<Config>,
        state: StateStore,
        status: Arc<Status>,
        channels: Arc<Channels>,
        names: Names,
        stop: watch::Sender<bool>,
    ) -> Arc<Controller> {
        let mut progress = Progress::new();
        if let Ok(Some(j)) = state.journal(direction) {
            progress.id = Some(j.id.clone());
            let rehearsed = j.message.as_deref().is_some_and(|m| m.starts_with(rehearse::COMPLETE));
            progress.outcome = Some(
                match j.step {
                    Step::Done => "done",
                    Step::Undone if rehearsed => "rehearsed",
                    Step::Undone | Step::Failed => "failed",
                    _ => "interrupted",
                }
                .into(),
            );
            progress.lines.extend(j.message);
        }
        let generation = Mutex::new((names, stop));
        Arc::new(Controller { direction, config, state, status, channels, generation, progress: Mutex::new(progress), record: Mutex::default() })
    }

    /// The next generation of the stream begins after a rollback armed it ([`crate::journal::Resumed`]):
    /// this controller works on its names and stops its apply through `stop`. A cutover may run
    /// again; a rollback's progress still shows the last one until the next begins.
    pub fn begin_generation(&self, names: Names, stop: watch::Sender<bool>) {
        *lock(&self.generation) = (names, stop);
        if self.direction == Direction::Forward {
            *lock(&self.progress) = Progress::new();
        }
    }

    /// This generation's forward stream's names.
    fn names(&self) -> Names {
        lock(&self.generation).0.clone()
    }

    /// Stops this direction's apply: traffic moved, or the window ended.
    fn stop(&self) {
        let _ = lock(&self.generation).1.send(true);
    }

    /// Which way this controller moves traffic.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The progress of the current or last cutover (rollback).
    pub fn progress(&self) -> Progress {
        lock(&self.progress).clone()
    }

    /// True while a cutover (rollback) runs.
    pub fn running(&self) -> bool {
        lock(&self.progress).outcome.as_deref() == Some("running")
    }

    /// The token `POST /cutover` (and `/rollback`, `/finish`) requires, if configured.
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

    /// Why a rollback cannot start now, if it cannot; the reverse stream the cutover armed if it can.
    fn rollback_allowed(&self) -> Result<ReverseArm, String> {
        let cutover = self.state.journal(Direction::Forward).map_err(|e| e.to_string())?;
        let arm = match cutover {
            Some(Journal { step: Step::Done, reverse: Some(arm), .. }) => arm,
            Some(Journal { step: Step::Done, .. }) => {
                return Err("the cutover armed no reverse stream (cutover.reverse = false): there is no way back to replay".into())
            }
            _ => return Err("there is nothing to roll back: no cutover to green completed".into()),
        };
        if let Some(why) = self.status.window().and_then(|w| w.spent()) {
            return Err(format!("the rollback window's budget is spent ({why}); it is ending, there is no way back to replay"));
        }
        match (&arm.ended, arm.finished) {
            (Some(why), _) => Err(format!("the rollback window ended on its own: {why}; there is no way back to replay")),
            (None, true) => Err("`turnout finish` already ended the rollback window".into()),
            (None, false) => Ok(arm),
        }
    }

    /// Starts a cutover (rollback) in the background. Refused while one runs or after one completed.
    pub fn start(self: &Arc<Self>, request: Request) -> Result<String, String> {
        {
            // Under the progress lock, as `end_window` checks and ends the window: a rollback and
            // the window's end never both go ahead.
            let mut p = lock(&self.progress);
            if self.direction == Direction::Reverse {
                self.rollback_allowed()?;
            }
            if p.outcome.as_deref() == Some("running") {
                return Err(format!("a {} is already running", self.direction.what()));
            }
            // Between a rollback that armed the next generation and the moment it begins, nothing
            // starts: the journals and names are about to change.
            let beginning = crate::cutover::armed_again(&self.state).map_err(|e| e.to_string())?.is_some()
                || self.state.names().map_err(|e| e.to_string())? != self.names();
            if beginning {
                return Err("the stream's next generation is beginning after the rollback; try again in a moment".into());
            }
            // The journal says what completed in this generation (a progress may show the last
            // generation's rollback).
            let journal = self.state.journal(self.direction).map_err(|e| format!("reading the journal: {e}"))?;
            match (journal.as_ref().map(|j| j.step), self.direction) {
                (Some(Step::Done), Direction::Forward) => return Err("this stream was already cut over to green".into()),
                (Some(Step::Done), Direction::Reverse) => return Err("traffic was already rolled back to blue".into()),
                _ => {}
            }
            // A fence a failed undo may have left up is settled first: a new run would overwrite the
            // journal that tells the restart to undo it.
            if let Some(journal) = journal {
                if journal.step.unsettled() {
                    return Err(format!(
                        "{} {} was left unsettled ({:?}: {}); restart `turnout run`, which settles it from the journal, before starting another",
                        self.direction.what(),
                        journal.id,
                        journal.step,
                        journal.message.unwrap_or_default()
                    ));
                }
            }
            *p = Progress { id: Some(new_id()), outcome: Some("running".into()), ..Progress::new() };
            *lock(&self.record) = Record::started(request.rehearse);
        }
        // A live verify's hold must not keep the sentinel from being applied.
        self.channels.hold.release();
        let id = self.progress().id.unwrap_or_default();
        let this = Arc::clone(self);
        let run_id = id.clone();
        // The read canary stands down until this ends (it must not fence green again, nor move reads).
        let moving = (!request.dry_run).then(|| crate::pipeline::signals::Moving::begin(&self.channels));
        tokio::spawn(async move {
            let _moving = moving;
            let outcome = if request.dry_run {
                match this.dry_run(&request).await {
                    Ok(()) => "dry_run_ok",
                    Err(e) => {
                        this.say(format!("dry run failed: {e}"));
                        "dry_run_failed"
                    }
                }
            } else {
                let what = if request.rehearse { "rehearsal" } else { this.direction.what() };
                let outcome = match this.run(&run_id, &request).await {
                    Ok(()) if request.rehearse => "rehearsed",
                    Ok(()) => "done",
                    Err(e) => {
                        this.say(format!("{what} failed: {e}"));
                        if request.rehearse {
                            "rehearsal_failed"
                        } else {
                            "failed"
                        }
                    }
                };
                this.certify(&run_id);
                outcome
            };
            lock(&this.progress).outcome = Some(outcome.into());
        });
        Ok(id)
    }

    /// `turnout finish`: ends the rollback window — stops the reverse stream and drops its slot and
    /// publication on green and its origin on blue. Journaled first: after a crash halfway the
    /// sidecar no longer replicates, and `turnout teardown` drops what is left. Returns one line per
    /// thing done.
    /// Refused while blue's watch has foreign writes not acknowledged, or cannot show it read blue's
    /// log up to now ([`crate::watch`]).
    pub async fn finish(&self) -> Result<Vec<String>, String> {
        self.rogue_gate_finish().await?;
        self.end_window(None).await
    }

    /// Journals the window's end, unless a rollback runs or left green unsettled; returns the
    /// reverse stream it ends. Under the progress lock, as `start` checks whether a rollback may
    /// begin: a rollback and the window's end never both go ahead.
    fn close_window(&self, why: Option<String>) -> Result<ReverseArm, String> {
        let progress = lock(&self.progress);
        if progress.outcome.as_deref() == Some("running") {
            return Err("a rollback is running; wait for it to end".into());
        }
        if let Some(rollback) = self.state.journal(Direction::Reverse).map_err(|e| e.to_string())? {
            if rollback.step.unsettled() {
                return Err(format!(
                    "rollback {} was left unsettled ({:?}); restart `turnout run`, which settles it, before ending the window",
                    rollback.id, rollback.step
                ));
            }
            if rollback.step == Step::Done && rollback.reverse.is_some() {
                return Err(format!(
                    "rollback {} armed replication blue → green again (cutover.iterate): the stream goes on as its next generation, and \
                     the window's objects go as it begins; there is no window to finish",
                    rollback.id
                ));
            }
        }
        let mut journal = self.state.journal(Direction::Forward).map_err(|e| e.to_string())?;
        let arm = match journal.as_mut() {
            Some(Journal { step: Step::Done, reverse: Some(arm), .. }) => {
                if why.is_some() && arm.finished {
                    return Err("the rollback window was already ended".into());
                }
                arm.finished = true;
                arm.ended = why.or(arm.ended.take());
                arm.clone()
            }
            _ => return Err("there is no rollback window to finish: no cutover with a reverse stream completed".into()),
        };
        if let Some(journal) = &journal {
            self.state.put_cutover_journal(journal, true).map_err(|e| e.to_string())?;
        }
        Ok(arm)
    }

    /// Ends the rollback window as [`Controller::finish`] does, for `why` when its budget ran out
    /// (`cutover.window_max`, `cutover.window_max_held`): then a rollback is refused naming it.
    pub async fn end_window(&self, why: Option<String>) -> Result<Vec<String>, String> {
        let arm = self.close_window(why.clone())?;
        if let Some(why) = why {
            self.status.window_ended(why);
        }
        self.stop();
        self.status.clear_window();
        let mut done = vec!["ended the rollback window: the reverse stream stops".to_string()];
        done.extend(crate::rollback::drop_reverse(&self.config, &arm.names).await.map_err(|e| e.to_string())?);
        // What blue's watch read (the forward slot, PostgreSQL) goes with the window.
        crate::watch::drop_objects(&self.config, &self.names(), &[Side::Blue]).await;
        self.status.set_phase(Phase::Stopped);
        Ok(done)
    }

    /// Checks every precondition and prints the plan, changing nothing.
    async fn dry_run(&self, request: &Request) -> Result<(), Error> {
        crate::with_family!(self.config, F => self.dry_run_with(self.connect::<F>().await?, request).await)
    }

    /// This direction's procedure of the family `F`, connected; a transient failure is retried.
    async fn connect<F: Family>(&self) -> Result<F::Cutover, Error> {
        let mut retry = Retry::default();
        retried!(retry, self, "connecting", self.procedure::<F>().await)
    }

    /// This direction's procedure of the family `F`: the cutover (arming the reverse stream when
    /// configured) or the rollback.
    async fn procedure<F: Family>(&self) -> Result<F::Cutover, Error> {
        match self.direction {
            Direction::Forward => F::cutover(&self.config, &self.names(), self.reverse_names().is_some()).await,
            Direction::Reverse => F::rollback(&self.config, &self.names(), self.reverse_names().is_some()).await,
        }
    }

    /// The stream the switch hands off to, if configured: a cutover arms the reverse stream
    /// (`cutover.reverse`); a rollback arms blue → green replication again as the next generation
    /// (`cutover.iterate`, where the family can, [`Family::ITERATES`]).
    fn reverse_names(&self) -> Option<Names> {
        again_names(&self.config, self.direction, &self.names())
    }

    async fn dry_run_with<P: Procedure>(&self, mut procedure: P, request: &Request) -> Result<(), Error> {
        let switch = build_switch(&self.config)?;
        self.say(format!("dry run: fence = {}, switch = {}", procedure.fence_kind(), switch.kind()));
        if self.direction == Direction::Reverse {
            self.rollback_allowed().map_err(Error::Setup)?;
            refuse_no_inverse(&switch).map_err(Error::Setup)?;
        }
        let mut retry = Retry::default();
        let warnings = retried!(retry, self, "the pre-checks", procedure.preflight().await)?;
        for warning in warnings {
            self.say(format!("WARNING: {warning}"));
        }
        retried!(retry, self, "checking the fence", procedure.check_fence().await)?;
        self.say("fence: ready");
        switch.check(Duration::from_secs(10)).await.map_err(cutover_error)?;
        self.say("switch: ready");
        let lag = self.status.lag_seconds();
        let phase = self.status.phase();
        self.say(format!("phase {phase:?}, lag {} (threshold {} ms)", lag.map_or("unknown".into(), |l| format!("{:.3} s", l)), request.when_lag_ms));
        if phase != Phase::Streaming {
            return Err(Error::Setup("replication is not streaming yet (the snapshot must finish first)".into()));
        }
        self.verify_gate(request).await.map_err(Error::Setup)?;
        Ok(())
    }

    async fn run(&self, id: &str, request: &Request) -> Result<(), Error> {
        crate::with_family!(self.config, F => self.run_with(self.connect::<F>().await?, id, request).await)
    }

    async fn run_with<P: Procedure>(&self, mut procedure: P, id: &str, request: &Request) -> Result<(), Error> {
        let switch = build_switch(&self.config)?;
        let (from, to) = self.direction.sides();
        let mut journal = Journal {
            id: id.to_owned(),
            direction: self.direction,
            step: Step::Waiting,
            fence: procedure.fence_kind().into(),
            switch: switch.kind().into(),
            message: None,
            reverse: None,
        };
        self.journal(&mut journal, Step::Waiting, None)?;
        if self.direction == Direction::Reverse {
            if let Err(reason) = refuse_no_inverse(&switch) {
                return self.fail(&mut journal, reason);
            }
        }
        // Before the fence every step changes nothing or is idempotent: a transient failure is retried.
        let mut retry = Retry::default();
        let preflight = retried!(retry, self, "the pre-checks", procedure.preflight().await);
        lock(&self.record).inventory = procedure.inventory();
        match preflight {
            Ok(warnings) => {
                for w in warnings {
                    self.say(format!("WARNING: {w}"));
                    if request.rehearse {
                        lock(&self.record).findings.push(w);
                    }
                }
            }
            Err(e) => return self.fail(&mut journal, e.to_string()),
        }
        if request.rehearse && procedure.fence_kind() == "none" {
            return self.fail(
                &mut journal,
                "a rehearsal needs a fence to rehearse (cutover.fence = \"none\"): with none, turnout cannot pause writes and lift the pause".into(),
            );
        }
        let sides = procedure.identify().await;
        lock(&self.record).sides = Some(sides);
        let threshold = Duration::from_millis(request.when_lag_ms);
        self.say(format!("waiting for the snapshot to finish and lag to stay under {} ms (up to {} s)", request.when_lag_ms, request.timeout_ms / 1000));
        if let Err(reason) = self.wait_for_lag(threshold, Duration::from_millis(request.timeout_ms)).await {
            return self.fail(&mut journal, reason);
        }
        if let Err(reason) = self.verify_gate(request).await {
            return self.fail(&mut journal, reason);
        }
        let mut marker = match self.rogue_gate_before().await {
            Ok(marker) => marker,
            Err(reason) => return self.fail(&mut journal, reason),
        };
        // Checked (and console sessions opened) before writes pause.
        let fence_ready = retried!(retry, self, "checking the fence", procedure.check_fence().await);
        if let Err(e) = fence_ready {
            return self.fail(&mut journal, format!("the fence is not ready: {e}"));
        }
        if let Err(e) = switch.check(Duration::from_secs(10)).await {
            return self.fail(&mut journal, format!("the switch is not ready: {e}"));
        }
        // Counters go ahead before writes pause; inside the pause one read checks them.
        let counters = retried!(retry, self, "moving the counters ahead", procedure.counters_ahead().await);
        match counters {
            Ok(line) => {
                lock(&self.record).counters.push(line.clone());
                self.say(line);
            }
            Err(e) => return self.fail(&mut journal, e.to_string()),
        }
        // What would block or slow the real one, read as late as possible before the fence.
        if request.rehearse {
            for finding in procedure.findings().await {
                self.say(format!("FINDING: {finding}"));
                lock(&self.record).findings.push(finding);
            }
        }
        // The window may have ended since the rollback began.
        if self.direction == Direction::Reverse {
            if let Err(reason) = self.rollback_allowed() {
                return self.fail(&mut journal, reason);
            }
        }
        // The reverse stream, armed before writes pause: its slot's consistent point on green is the
        // hand-off position. Nothing commits on green for the application before the switch, and
        // whatever turnout's forward apply commits after that point carries its origin and never goes
        // back to blue. Journaled first: a crash from here on is undone (and what was made dropped) on
        // restart; the position is in every journal entry after.
        self.journal(&mut journal, Step::Fencing, None)?;
        if !procedure.arms_reverse_after_proof() {
            if let Err(e) = self.arm_reverse(&mut procedure, &mut journal).await {
                return self.undo(&mut procedure, &mut journal, e).await;
            }
        }
        let pause_budget = Duration::from_millis(request.max_pause_ms);
        let fenced_at = Instant::now();
        let mut phases = PauseTimeline::new(fenced_at);
        match procedure.fence(pause_budget).await {
            Ok(line) => self.say(line),
            Err(e) => return self.undo(&mut procedure, &mut journal, format!("fencing failed: {e}")).await,
        }
        phases.mark("fence");
        let deadline = fenced_at + pause_budget;
        // Sentinel: written after the fence, so every write acknowledged before it precedes it.
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), procedure.write_sentinel(id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return self.undo(&mut procedure, &mut journal, format!("writing the sentinel on {from} failed: {e}")).await,
            Err(_) => {
                return self
                    .undo(&mut procedure, &mut journal, format!("writing the sentinel on {from} took longer than --max-pause; the fence was undone"))
                    .await
            }
        }
        phases.mark("sentinel");
        // The fenced side's counters are final: they are read and checked while the other side
        // applies the sentinel, at the same time, not after.
        let fenced = procedure.fenced_position();
        let (counters, sentinel) = tokio::join!(
            tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), procedure.top_up()),
            self.sentinel_applied(id, fenced.as_ref(), deadline)
        );
        // The sentinel's failure first: it says why (an account that wrote after it), where the
        // counters' at the same deadline would only say the pause ran out.
        let (sentinel, proved_at) = match sentinel {
            Ok(at) => at,
            Err(reason) => return self.undo(&mut procedure, &mut journal, reason).await,
        };
        match counters {
            Ok(Ok((line, topped_up))) => {
                let mut record = lock(&self.record);
                record.counters.push(line.clone());
                if request.rehearse && topped_up > 0 {
                    record.findings.push(format!(
                        "{topped_up} counters on {from} moved past the margin set before the fence: the real cutover tops them up inside the write pause, one statement each"
                    ));
                }
                drop(record);
                self.say(line);
            }
            Ok(Err(e)) => return self.undo(&mut procedure, &mut journal, e.to_string()).await,
            Err(_) => return self.undo(&mut procedure, &mut journal, pause_exceeded(request)).await,
        }
        self.journal(&mut journal, Step::SequencesSynced, None)?;
        phases.mark(if to == "green" { "counters and green applied" } else { "counters and blue applied" });
        self.say(format!("{to} applied the sentinel (commit {sentinel}) — every write committed on {from} before the fence is on {to}"));
        {
            let mut record = lock(&self.record);
            record.sentinel = Some(sentinel.to_string());
            record.fenced = fenced.as_ref().map(ToString::to_string);
            record.applied = Some(proved_at.to_string());
        }
        // Blue's watch in the window begins at the sentinel (see `ReverseArm::sentinel`); a reverse
        // stream armed after the proof gets it below.
        let note_sentinel = |journal: &mut Journal| {
            if let (Direction::Forward, Some(arm)) = (self.direction, journal.reverse.as_mut()) {
                arm.sentinel = Some(sentinel.clone());
            }
        };
        note_sentinel(&mut journal);
        self.journal(&mut journal, Step::SentinelApplied, Some(format!("sentinel {sentinel}")))?;
        if procedure.arms_reverse_after_proof() && self.reverse_names().is_some() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.arm_reverse(&mut procedure, &mut journal)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return self.undo(&mut procedure, &mut journal, e).await,
                Err(_) => return self.undo(&mut procedure, &mut journal, pause_exceeded(request)).await,
            }
            note_sentinel(&mut journal);
            phases.mark("reverse armed");
        }
        if let Some(watched) = self.rogue_gate_in_pause(marker.as_mut(), deadline).await {
            match watched {
                Ok(()) => phases.mark("green watched"),
                Err(reason) => return self.undo(&mut procedure, &mut journal, reason).await,
            }
        }
        if Instant::now() >= deadline {
            return self.undo(&mut procedure, &mut journal, pause_exceeded(request)).await;
        }
        if request.rehearse {
            return self.end_rehearsal(&mut procedure, &mut journal, phases, fenced_at, request).await;
        }
        // A rollback that armed the next generation marks where blue's watch stops counting.
        let closing = match (self.direction, marker.as_mut(), &journal.reverse) {
            (Direction::Reverse, Some(marker), Some(_)) => {
                let mark = self.mark_closing(marker, deadline).await;
                phases.mark("blue marked");
                mark
            }
            _ => None,
        };
        // Switch. From here on a failure is completed, not undone: the other side has everything.
        self.journal(&mut journal, Step::Switching, None)?;
        // The side that takes the application's writes from here on: they are not foreign there.
        crate::watch::close(&self.status, if self.direction == Direction::Forward { Side::Green } else { Side::Blue }, closing);
        phases.mark("journal");
        let completed = format!(
            "switching traffic to {to} failed after {to} was proven complete; {from} stays fenced. Fix the cause below and restart \
             `turnout run` — it completes the switch from the journal"
        );
        if let Some(line) = procedure.open_green().await.map_err(Error::during(completed.clone()))? {
            self.say(line);
        }
        phases.mark(if to == "green" { "green opened" } else { "blue opened" });
        let report = switch_to(&switch, &self.config, self.direction).await.map_err(Error::during(completed))?;
        phases.mark("switch");
        let pause = fenced_at.elapsed();
        self.say(format!("switched traffic to {to} ({}): {}", switch.kind(), report.summary));
        let summary = format!("{} complete: write pause {} ms ({})", self.direction.what(), pause.as_millis(), phases);
        self.record_pause(&phases, pause);
        self.journal(&mut journal, Step::Done, Some(summary.clone()))?;
        // Reads follow the writes (a read canary's split, when configured).
        self.channels.reads_follow.notify_one();
        // The clients the fence held reconnect now (pgbouncer logs in to the other side for them):
        // this direction's teardown and the next stream's connections wait until they have, so the
        // two do not compete for the machine. Bounded; the next stream loses nothing by waiting.
        match switch.clients_moved(CLIENTS_MOVED_CAP).await {
            ClientsMoved::Moved(took) => self.say(format!("every client the fence held had a connection to {to} {} ms after the switch", took.as_millis())),
            ClientsMoved::StillWaiting => self.say(format!(
                "pgbouncer still held clients waiting for a connection to {to} {} s after the switch (a full pool?); going on",
                CLIENTS_MOVED_CAP.as_secs()
            )),
            ClientsMoved::Unobserved => {}
        }
        // This direction's apply stops: the other side now takes writes (and, after a cutover, the
        // sidecar finds the reverse stream in the journal written just before).
        self.stop();
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
            let streaming = self.status.phase() == Phase::Streaming;
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

    /// The origin whose writes the stream this switch arms never passes on: the forward apply's on
    /// green (a cutover arming the reverse stream), or the reverse apply's on blue (a rollback arming
    /// the next generation): they came from the side that stream writes to.
    fn handed_from(&self) -> String {
        match self.direction {
            Direction::Forward => self.names().origin,
            Direction::Reverse => Names::reverse_of(&self.names()).origin,
        }
    }

    /// Arms the stream the switch hands off to, if configured, and records it in the journal
    /// (written by the next step). Returns the reason to undo on failure.
    async fn arm_reverse<P: Procedure>(&self, procedure: &mut P, journal: &mut Journal) -> Result<(), String> {
        let Some(names) = self.reverse_names() else { return Ok(()) };
        match procedure.arm_reverse().await {
            Ok(Some((line, position))) => {
                self.say(line);
                journal.reverse = Some(ReverseArm {
                    names,
                    forward_origin: self.handed_from(),
                    position,
                    finished: false,
                    opened_at_us: crate::status::now_micros(),
                    ended: None,
                    sentinel: None,
                });
                Ok(())
            }
            Ok(None) => {
                if self.direction == Direction::Reverse {
                    self.say("WARNING: this rollback arms no stream blue → green (the log says why): replication stops after it");
                }
                Ok(())
            }
            // The way back is the emergency path: a rollback that cannot arm the next generation
            // still goes back, without it (what it made is dropped, each thing if it exists).
            Err(e) if self.direction == Direction::Reverse => {
                let dropped = match procedure.disarm_reverse().await {
                    Ok(_) => String::new(),
                    Err(d) => format!("; dropping what it made failed too ({d}): `turnout teardown` drops it"),
                };
                self.say(format!("WARNING: this rollback arms no stream blue → green: {e}{dropped}. The rollback goes on; replication stops after it"));
                Ok(())
            }
            Err(e) => Err(format!("preparing reverse replication failed: {e}")),
        }
    }

    /// Waits until green durably applied the sentinel's transaction and, where the fenced side knows
    /// everything it committed (`fenced`), holds all of that too.
    /// Returns the sentinel's commit position and the durable position that proved it.
    async fn sentinel_applied(&self, id: &str, fenced: Option<&Position>, deadline: Instant) -> Result<(Position, Position), String> {
        let (from, to) = self.direction.sides();
        // A position the proof cannot order is no proof: the fence is undone, naming both.
        let reached = |a: &Position, b: &Position| {
            a.reached(b).map_err(|e| format!("the proof cannot order {to}'s applied position against {from}'s ({e}); the fence was undone"))
        };
        loop {
            let moved = self.channels.sentinels.durable_moved();
            let applied = self.status.applied();
            if let (Some(commit), Some(applied)) = (self.channels.sentinels.commit(id), applied.as_ref()) {
                let holds_all = match fenced {
                    Some(f) => reached(applied, f)?,
                    None => true,
                };
                if reached(applied, &commit)? && holds_all {
                    return Ok((commit, applied.clone()));
                }
            }
            if Instant::now() >= deadline {
                let sentinel_in = match (self.channels.sentinels.commit(id), applied.as_ref()) {
                    (Some(commit), Some(applied)) => reached(applied, &commit)?,
                    _ => false,
                };
                if let (Some(fenced), Some(applied), true) = (fenced, &applied, sentinel_in) {
                    // The sentinel arrived but not everything the fenced side committed: a write after
                    // it (an account read_only does not stop) that green never received.
                    return Err(format!(
                        "{to} applied the sentinel but not everything {from} committed before super_read_only ({from}: {fenced}; {to} \
                         applied: {applied}) — an account that read_only does not stop (CONNECTION_ADMIN, SUPER) wrote after the \
                         sentinel; the fence was undone. Revoke those privileges from application accounts (turnout check names them)"
                    ));
                }
                return Err(format!("{to} did not apply the sentinel within --max-pause; the fence was undone"));
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
                let from = self.direction.sides().0;
                let msg =
                    format!("{reason}; UNDOING THE FENCE FAILED: {e} — {from} may still refuse writes; fix and restart `turnout run`, which retries the undo");
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

/// The names of the stream a switch in `direction` arms when `config` asks for one: the reverse
/// stream of a cutover (`cutover.reverse`), or the next generation after a rollback
/// (`cutover.iterate`, where the family can).
pub(crate) fn again_names(config: &Config, direction: Direction, names: &Names) -> Option<Names> {
    match direction {
        Direction::Forward => config.cutover.reverse.then(|| Names::reverse_of(names)),
        Direction::Reverse => (config.cutover.iterate && crate::with_family!(config, F => F::ITERATES)).then(|| names.next_generation()),
    }
}

/// How long a completed cutover waits for pgbouncer to give the held clients their connections to
/// the other side before it stops this direction's apply: usually tens of ms; the writes flow
/// meanwhile, so only the command's answer waits.
const CLIENTS_MOVED_CAP: Duration = Duration::from_secs(2);

/// Where the write pause went: each step's share, in order, as the summary line prints it.
struct PauseTimeline {
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl PauseTimeline {
    fn new(start: Instant) -> PauseTimeline {
        PauseTimeline { last: start, steps: Vec::new() }
    }

    /// The step that just ended.
    fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, now.duration_since(self.last)));
        self.last = now;
    }
}

impl std::fmt::Display for PauseTimeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.steps.iter().map(|(step, took)| format!("{step} {:.1}", took.as_secs_f64() * 1000.0)).collect();
        write!(f, "{} ms", parts.join(", "))
    }
}

fn pause_exceeded(request: &Request) -> String {
    format!("the write pause would exceed --max-pause {} ms; the fence was undone", request.max_pause_ms)
}

fn new_id() -> String {
    format!("{:016x}", crate::status::now_micros().unsigned_abs() ^ u64::from(std::process::id()).rotate_left(40))
}

fn cutover_error(e: turnout_cutover::CutoverError) -> Error {
    Error::Cutover(e)
}

/// Retries a step before the fence after a transient failure — a lost connection, a server
/// restarting, a lock wait timed out ([`Error::class`]): nothing is fenced yet, and each such step
/// changes nothing or is idempotent. At most [`Retry::ATTEMPTS`] attempts per cutover, waiting 0.5 s
/// and doubling; refusals and other fatal errors are never retried.
#[derive(Debug, Default)]
struct Retry {
    failures: u32,
}

impl Retry {
    const ATTEMPTS: u32 = 5;

    /// Whether to try `what` again after `e`; says so and waits first.
    async fn again(&mut self, controller: &Controller, what: &str, e: &Error) -> bool {
        if e.class() != turnout_decoders::ErrorClass::Transient || self.failures + 1 >= Self::ATTEMPTS {
            return false;
        }
        let wait = Duration::from_millis(500 << self.failures);
        self.failures += 1;
        controller.say(format!("{what} failed on a transient error, retrying in {} ms: {e}", wait.as_millis()));
        tokio::time::sleep(wait).await;
        true
    }
}

/// The traffic switch the configuration asks for.
pub fn build_switch(config: &Config) -> Result<TrafficSwitch, Error> {
    match config.plain_switch()? {
        Some(switch) => Ok(switch),
        None => Ok(build(config)?.1),
    }
}

/// Moves traffic the way `direction` goes: to green for a cutover, back to blue for a rollback.
async fn switch_to(switch: &TrafficSwitch, config: &Config, direction: Direction) -> Result<turnout_cutover::SwitchReport, turnout_cutover::CutoverError> {
    let urls = config.blue_green();
    match direction {
        Direction::Forward => switch.to_green(urls, Duration::from_secs(30)).await,
        Direction::Reverse => switch.to_blue(urls, Duration::from_secs(30)).await,
    }
}

/// A rollback must be able to move traffic back: the command switch has no inverse.
fn refuse_no_inverse(switch: &TrafficSwitch) -> Result<(), String> {
    match switch {
        TrafficSwitch::Command { .. } => Err("the command switch has no inverse, so turnout cannot move traffic back to blue; use \
             cutover.switch = \"pgbouncer\" or \"haproxy\", or point the application at blue yourself and run `turnout finish`"
            .into()),
        _ => Ok(()),
    }
}
