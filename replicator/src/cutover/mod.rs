//! The cutover procedure run by the sidecar (`docs/src/guide/cutover.md`), started by `POST /cutover`, the
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
use crate::error::{Error, Lifecycle};
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
use turnout_cutover::TrafficSwitch;

pub use crate::journal::{Journal, ReverseArm, Step};

pub mod again;
pub mod certificate;
mod fleet;
mod gate;
mod hold;
mod ready;
mod record;
mod recover;
mod rehearse;
mod rogue;
use record::Record;
pub(crate) use recover::recover;
pub use recover::{armed_again, cut_over, open_window, rolled_back, window_finished, window_over, Resume};

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
mod run;
mod window;
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
    /// One pair of a fleet cutover: fence on the fleet's `go`, hold after the proof for its decision
    /// ([`crate::fleet`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::Ticket>,
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
pub const ACCEPTS: [&str; 4] = ["rehearse", "verify", "verify_max_age_ms", "fleet"];

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
    /// The current run's session holding the server traffic moves from, when new sessions are held
    /// through the pause ([`hold`]).
    held: Mutex<Option<turnout_cutover::HeldSession>>,
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
        Arc::new(Controller {
            direction,
            config,
            state,
            status,
            channels,
            generation,
            progress: Mutex::new(progress),
            record: Mutex::default(),
            held: Mutex::default(),
        })
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

    /// `GET /handover`: blue's consumers and what the last cutover handed over ([`crate::handover::view`]).
    pub async fn handover(&self) -> serde_json::Value {
        crate::handover::view(&self.config, &self.state).await
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

    /// Starts a cutover (rollback) in the background. Refused while one runs or after one completed.
    pub fn start(self: &Arc<Self>, request: Request) -> Result<String, Error> {
        {
            // Under the progress lock, as `end_window` checks and ends the window: a rollback and
            // the window's end never both go ahead.
            let mut p = lock(&self.progress);
            if self.direction == Direction::Reverse {
                self.rollback_allowed()?;
            }
            if p.outcome.as_deref() == Some("running") {
                return Err(Lifecycle::Running { what: self.direction.what() }.into());
            }
            // Between a rollback that armed the next generation and the moment it begins, nothing
            // starts: the journals and names are about to change.
            let beginning = crate::cutover::armed_again(&self.state)?.is_some() || self.state.names()? != self.names();
            if beginning {
                return Err(Lifecycle::GenerationBeginning.into());
            }
            // The journal says what completed in this generation (a progress may show the last
            // generation's rollback).
            let journal = self.state.journal(self.direction)?;
            match (journal.as_ref().map(|j| j.step), self.direction) {
                (Some(Step::Done), Direction::Forward) => return Err(Lifecycle::AlreadyCutOver.into()),
                (Some(Step::Done), Direction::Reverse) => return Err(Lifecycle::AlreadyRolledBack.into()),
                _ => {}
            }
            // A fence a failed undo may have left up is settled first: a new run would overwrite the
            // journal that tells the restart to undo it.
            if let Some(journal) = journal {
                if journal.step.unsettled() {
                    return Err(Lifecycle::Unsettled {
                        what: self.direction.what(),
                        id: journal.id,
                        step: format!("{:?}", journal.step),
                        message: journal.message.unwrap_or_default(),
                    }
                    .into());
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
            // The family is picked once, for the whole run.
            let outcome = crate::with_family!(this.config, F => this.carry_out::<F>(&run_id, &request).await);
            lock(&this.progress).outcome = Some(outcome.into());
        });
        Ok(id)
    }

    /// The run `start` began, with the source family `F`: its outcome as `/cutover` shows it.
    async fn carry_out<F: Family>(&self, run_id: &str, request: &Request) -> &'static str {
        if request.dry_run {
            return match self.dry_run::<F>(request).await {
                Ok(()) => "dry_run_ok",
                Err(e) => {
                    self.say(format!("dry run failed: {e}"));
                    "dry_run_failed"
                }
            };
        }
        let what = if request.rehearse { "rehearsal" } else { self.direction.what() };
        let outcome = match self.run::<F>(run_id, request).await {
            Ok(()) if request.rehearse => "rehearsed",
            Ok(()) => "done",
            Err(e) => {
                self.say(format!("{what} failed: {e}"));
                if request.rehearse {
                    "rehearsal_failed"
                } else {
                    "failed"
                }
            }
        };
        self.certify(run_id);
        outcome
    }

    /// Checks every precondition and prints the plan, changing nothing.
    async fn dry_run<F: Family>(&self, request: &Request) -> Result<(), Error> {
        if let Some(ticket) = &request.fleet {
            let mut ledger = crate::fleet::ledger(&self.config, ticket).await?;
            ledger.view().await.map_err(Error::during("reading the fleet's keys in etcd"))?;
            ledger.probe(&ticket.pair).await.map_err(Error::during("writing this pair's keys in etcd"))?;
            self.say(format!("the fleet's etcd answers and takes this pair's keys (pair {:?} of fleet {:?})", ticket.pair, ticket.fleet));
        }
        self.dry_run_with(self.connect::<F>().await?, request).await
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
            self.rollback_allowed()?;
            refuse_no_inverse(&switch)?;
        }
        let mut retry = Retry::default();
        let warnings = retried!(retry, self, "the pre-checks", procedure.preflight().await)?;
        for warning in warnings {
            self.say(format!("WARNING: {warning}"));
        }
        // Compared only: the cutover carries what differs after its lag wait, or refuses naming it.
        if let Some(line) = retried!(retry, self, "comparing the definitions", procedure.settle_definitions(false).await)? {
            self.say(line);
        }
        retried!(retry, self, "checking the fence", procedure.check_fence().await)?;
        self.say("fence: ready");
        if let Some(line) = check_switch(&switch, &self.config, self.direction, request).await? {
            self.say(line);
        }
        self.say("switch: ready");
        let lag = self.status.lag_seconds();
        let phase = self.status.phase();
        self.say(format!("phase {phase:?}, lag {} (threshold {} ms)", lag.map_or("unknown".into(), |l| format!("{:.3} s", l)), request.when_lag_ms));
        if phase != Phase::Streaming {
            return Err(Lifecycle::NotStreaming.into());
        }
        self.verify_gate(request).await?;
        Ok(())
    }
}

/// The names of the stream a switch in `direction` arms when `config` asks for one: the reverse
/// stream of a cutover (`cutover.reverse`), or the next generation after a rollback
/// (`cutover.iterate`, where the family can).
pub(crate) fn again_names(config: &Config, direction: Direction, names: &Names) -> Option<Names> {
    match direction {
        Direction::Forward => config.cutover.reverse.then(|| Names::reverse_of(names)),
        Direction::Reverse => (config.cutover.iterate && crate::source::family::of(config).iterates()).then(|| names.next_generation()),
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

fn pause_exceeded(request: &Request) -> Error {
    Lifecycle::PauseExceeded { max_pause_ms: request.max_pause_ms }.into()
}

fn new_id() -> String {
    format!("{:016x}", crate::status::now_micros().unsigned_abs() ^ u64::from(std::process::id()).rotate_left(40))
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
        if e.reaction().0 != crate::error::Reaction::Retry || self.failures + 1 >= Self::ATTEMPTS {
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

/// Moves traffic the way `direction` goes: to green for a cutover, back to blue for a rollback —
/// and, with `cutover.command.ready_url`, waits until the application says it writes there.
async fn switch_to(switch: &TrafficSwitch, config: &Config, direction: Direction) -> Result<turnout_cutover::SwitchReport, Error> {
    let urls = config.blue_green();
    let readiness = ready::Readiness::of(config)?;
    let mut report = match direction {
        Direction::Forward => switch.to_green(urls, Duration::from_secs(30)).await,
        Direction::Reverse => switch.to_blue(urls, Duration::from_secs(30)).await,
    }?;
    if let Some(readiness) = readiness {
        let took = readiness.wait(direction).await?;
        report.summary.push_str(&format!("; the application answered ready {} ms after it", took.as_millis()));
        report.took += took;
    }
    Ok(report)
}

/// Checks, changing nothing, that the switch can run and (with `cutover.command.ready_url`) that the
/// application answers that it writes to the side traffic moves from. A readiness wait longer than
/// the request's `--max-pause` is said: it comes after the proof, where nothing is undone, so the
/// pause can run past the budget while the application moves.
async fn check_switch(switch: &TrafficSwitch, config: &Config, direction: Direction, request: &Request) -> Result<Option<String>, Error> {
    switch.check(Duration::from_secs(10)).await?;
    let Some(readiness) = ready::Readiness::of(config)? else { return Ok(None) };
    let mut line = readiness.check(direction).await?;
    let budget = Duration::from_millis(request.max_pause_ms);
    if readiness.timeout() > budget {
        line.push_str(&format!(
            "; WARNING: cutover.command.ready_timeout ({} ms) exceeds --max-pause ({} ms): the wait for the application comes after the \
             proof, where nothing is undone, so the pause may run that long",
            readiness.timeout().as_millis(),
            budget.as_millis()
        ));
    }
    Ok(Some(line))
}

/// A rollback must be able to move traffic back: the command switch has none without
/// `cutover.command.back_argv`.
fn refuse_no_inverse(switch: &TrafficSwitch) -> Result<(), Error> {
    match switch {
        TrafficSwitch::Command { back: None, .. } => Err(Lifecycle::NoInverse.into()),
        _ => Ok(()),
    }
}
