//! The read canary (`turnout canary`, `POST /canary`, `[canary]`): before the cutover, a growing
//! share of the read endpoint's traffic goes to green while green stays healthy, so that a new
//! major version's planner, collations or extensions meet real queries before the writes move. The
//! split itself is the read endpoint's ([`turnout_cutover::ReadSplit`]: haproxy weights, a pgbouncer
//! host list, a command); green as readers see it is the family's ([`GreenReads`]).
//!
//! Guarantees:
//! - **Bounded staleness.** Green gets reads only while its lag is known and within the plan's
//!   `max_lag`: a reader there sees a prefix of blue's commits no older than that. Above it green's
//!   share is 0 until it is back (`paused`, not a trip).
//! - **No application write on green.** While a canary runs green refuses the application's
//!   writes (`canary.fence_green`, on by default; turnout's apply writes through); the cutover lifts
//!   that inside its pause, and `--reads 0` lifts it when the canary made it.
//! - **Trip at once.** A threshold over at a check — the probe failing or slower than
//!   `canary.max_latency`, more failures per second on green than `canary.max_errors_per_second`,
//!   the split marking green down — sends the share to 0 at that check (within
//!   `canary.check_every`), raises the critical `canary` alert naming it, and holds at 0 until the
//!   operator asks again.
//! - **Journaled, and restored in doubt to 0.** Each change of the split is recorded, synced,
//!   before it is made and again once made: a restart restores the share that was live, or 0 when a
//!   change was under way.
//! - **Reads follow writes.** With a split configured, once a cutover completed the whole read
//!   endpoint goes to green, and once writes went back to blue, to blue — canary or not, after a
//!   restart too.
//!
//! One task owns the split and green's sessions; requests and the cutover's signal reach it over a
//! channel, so its changes never interleave; while a cutover or rollback runs it stands down (no
//! change of share, no fencing), and `turnout canary` is refused.
//!
//! Limits, stated plainly: the share is a share of new connections (pooled sessions keep their
//! server until they end; a drop to 0 ends green's on haproxy, pgbouncer recycles them as they are
//! released); lag is looked at once per check; while turnout is down after a crash nothing watches
//! green's lag (a graceful stop sends the reads to blue first).

use crate::canary_plan::{decide, restored, CanaryStatus, Check, Plan, Record, Seen, State};
use crate::config::Config;
use crate::error::{CanaryRefusal, Error};
use crate::pipeline::signals::Channels;
use crate::source::contract::canary::{self as reads, GreenReads, ProbeFailure};
use crate::state::StateStore;
use crate::status::{now_micros, Phase, Status};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use turnout_cutover::{CutoverError, GreenSeen};

/// How long one change of the split may take.
const SPLIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Steps shown on `/status`.
const STEPS_SHOWN: usize = 20;

/// What `turnout canary` asks (`POST /canary`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// Green's share of reads to start at (0: end the canary), percent.
    pub reads: u8,
    /// Added every `every_ms` while green stays healthy.
    #[serde(default)]
    pub step: Option<u8>,
    #[serde(default)]
    pub every_ms: Option<u64>,
    /// Where the ramp stops (default: `reads`, or 100 with a step).
    #[serde(default)]
    pub max: Option<u8>,
    /// The staleness allowed (default `canary.max_lag`).
    #[serde(default)]
    pub max_lag_ms: Option<u64>,
}

enum Command {
    Ask(Ask, oneshot::Sender<Result<Vec<String>, Error>>),
}

/// What woke the canary's task.
enum Event {
    Check,
    Ask(Ask, oneshot::Sender<Result<Vec<String>, Error>>),
    Stop,
}

/// The canary's handle: requests go to its task.
#[derive(Debug)]
pub struct Canary {
    tx: Option<mpsc::Sender<Command>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Canary {
    /// Starts the canary's task when `[canary]` names a split (and restores what a restart left);
    /// `channels.reads_follow` says when a cutover or rollback completed its switch. Without a split
    /// the handle refuses every request.
    pub(crate) fn start<F: crate::source::family::Family>(
        config: Arc<Config>,
        state: StateStore,
        status: Arc<Status>,
        channels: Arc<Channels>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Canary, Error> {
        let Some(settings) = config.canary()? else { return Ok(Canary { tx: None, task: std::sync::Mutex::new(None) }) };
        let (tx, rx) = mpsc::channel(8);
        let task = Task { config: Arc::clone(&config), settings, state, status, channels, record: None, last: Counts::default(), error: None, check: None };
        let green = F::canary_green(&config)?;
        let handle = tokio::spawn(task.run(green, rx, shutdown));
        Ok(Canary { tx: Some(tx), task: std::sync::Mutex::new(Some(handle)) })
    }

    /// Once the operator's signal came: waits (up to [`SPLIT_TIMEOUT`]) until the task has sent a
    /// running canary's reads to blue — nothing watches green's lag once turnout is gone.
    pub async fn stopped(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            if tokio::time::timeout(SPLIT_TIMEOUT, task).await.is_err() {
                tracing::warn!("read canary: sending the reads to blue did not finish before turnout stopped");
            }
        }
    }

    /// Asks the canary's task; the answer is what it did, line by line, or why it refused.
    pub async fn ask(&self, ask: Ask) -> Result<Vec<String>, Error> {
        let Some(tx) = &self.tx else {
            return Err(CanaryRefusal::NotConfigured.into());
        };
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Internal("the canary's task stopped".into());
        tx.send(Command::Ask(ask, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Counters of the check before, for rates.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    at: Option<Instant>,
    green: Option<u64>,
    split: Option<u64>,
}

struct Task {
    config: Arc<Config>,
    settings: crate::config::Canary,
    state: StateStore,
    status: Arc<Status>,
    channels: Arc<Channels>,
    record: Option<Record>,
    last: Counts,
    error: Option<String>,
    check: Option<Check>,
}

impl Task {
    async fn run<G: GreenReads>(mut self, mut green: G, mut rx: mpsc::Receiver<Command>, mut shutdown: watch::Receiver<bool>) {
        let channels = Arc::clone(&self.channels);
        match self.state.canary() {
            Ok(record) => self.record = record,
            Err(e) => tracing::error!("the read canary cannot read its record: {e}; it starts from nothing"),
        }
        self.restore().await;
        let mut ticker = tokio::time::interval(self.settings.check_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                _ = ticker.tick() => Event::Check,
                () = channels.reads_follow.notified() => Event::Check,
                command = rx.recv() => match command {
                    Some(Command::Ask(ask, reply)) => Event::Ask(ask, reply),
                    None => return,
                },
                _ = shutdown.wait_for(|stop| *stop) => Event::Stop,
            };
            match event {
                Event::Ask(ask, reply) => {
                    let answer = self.ask(&mut green, ask).await;
                    let _ = reply.send(answer);
                }
                Event::Check => self.tick(&mut green).await,
                Event::Stop => {
                    self.stopping().await;
                    return;
                }
            }
            self.publish();
        }
    }

    /// After a restart: the share that was live again, or 0 when a change was under way. Without a
    /// record (no canary yet), every read to blue — unless the writes are on green, which the first
    /// check follows.
    async fn restore(&mut self) {
        if self.record.is_none() {
            if !writes_on_green(&self.state).unwrap_or(true) {
                let mut record = Record::new(Plan::default(), now_micros());
                record.state = State::Ended;
                record.live = 100;
                self.record = Some(record);
                self.set(0, "start: no canary asked for, every read to blue".into()).await;
                self.publish();
            }
            return;
        }
        let Some(r) = &self.record else { return };
        let (share, why) = restored(r);
        self.set(share, why).await;
        self.publish();
    }

    /// One check: reads follow writes once the writes moved; otherwise the plan's rule on what
    /// green looks like now.
    async fn tick<G: GreenReads>(&mut self, green: &mut G) {
        // A cutover or rollback runs: it lifts green's fence and moves the writes; nothing here may
        // fence green again or move reads until it ended.
        if self.channels.moving.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return;
        }
        let followed = self.follow_writes().await;
        // What the split says of green, read once per check.
        let by_split = self.settings.split.green_seen(SPLIT_TIMEOUT).await;
        self.reassert(by_split.as_ref().ok().and_then(|g| g.percent)).await;
        if followed {
            return;
        }
        let Some(r) = &self.record else { return };
        if r.over() {
            // An end whose change failed is tried again.
            if r.state == State::Ended && (r.live != 0 || r.setting.is_some()) {
                self.set(0, "ended (--reads 0), again".into()).await;
            }
            return;
        }
        let kept = self.keep_fence(green).await;
        let mut seen = self.look(green, by_split).await;
        seen.trip = seen.trip.or(kept);
        let now = now_micros();
        let Some(r) = self.record.as_mut() else { return };
        let change = decide(r, &seen, now);
        if let Some((share, why)) = change {
            if share == 0 && why.starts_with("tripped") && r.live != 0 {
                tracing::error!("read canary: {why}; green's share of reads goes to 0");
            }
            self.set(share, why).await;
        } else if let Err(e) = self.state.record_canary(r) {
            tracing::error!("read canary: keeping its record failed: {e}");
        }
    }

    /// Moves the whole read endpoint where the writes are once a cutover (rollback) completed.
    /// True when the writes are on green, or followed back to blue (the plan then moves nothing).
    async fn follow_writes(&mut self) -> bool {
        let on_green = match writes_on_green(&self.state) {
            Ok(on_green) => on_green,
            Err(e) => {
                tracing::warn!("read canary: cannot read the cutover's journal: {e}");
                return true;
            }
        };
        let state = self.record.as_ref().map(|r| r.state);
        let (share, new, why) = match (on_green, state) {
            (true, _) => (100, State::CutOver, "the cutover moved the writes: every read follows them to green"),
            (false, Some(State::CutOver | State::RolledBack)) => (0, State::RolledBack, "the writes went back to blue: every read follows them"),
            (false, _) => return false,
        };
        let record = self.record.get_or_insert_with(|| Record::new(Plan::default(), now_micros()));
        let changed = record.state != new || record.live != share || record.setting.is_some();
        record.state = new;
        if on_green {
            // The cutover lifted green's fence before its switch.
            record.fenced = false;
        }
        if changed {
            tracing::info!("read canary: {why}");
            self.set(share, why.to_owned()).await;
        }
        true
    }

    /// While the canary keeps green from the application's writes: that it still does — a restart
    /// of a MySQL-family green forgets `read_only` — setting it again if not. What trips the canary
    /// when it cannot be kept.
    async fn keep_fence<G: GreenReads>(&mut self, green: &mut G) -> Option<String> {
        if !self.record.as_ref().is_some_and(|r| r.fenced && !r.over()) {
            return None;
        }
        match reads::fence(green).await {
            Ok(None) => None,
            Ok(Some(line)) => {
                tracing::warn!("read canary: green took the application's writes again (restarted?): {line}");
                None
            }
            Err(e) => Some(format!("green's fence on the application's writes cannot be kept: {e}")),
        }
    }

    /// Sets the live share again where the split shows (`shown`) another one (haproxy reloaded, an
    /// operator's change): the journal, not the split, is what the canary answers for.
    async fn reassert(&mut self, shown: Option<u8>) {
        let Some(r) = self.record.as_ref().filter(|r| r.setting.is_none()) else { return };
        let live = r.live;
        if let Some(shown) = shown.filter(|p| *p != live) {
            tracing::warn!("read canary: the split gives green {shown} % of reads, not the live {live} % (haproxy reloaded?); setting it again");
            self.set(live, format!("the split showed {shown} %, not the live {live} %: set again")).await;
        }
    }

    /// Green's lag and health now (`seen_by_split`: what the split says of green), and what of it
    /// trips the canary.
    async fn look<G: GreenReads>(&mut self, green: &mut G, seen_by_split: Result<GreenSeen, CutoverError>) -> Seen {
        let s = &self.settings;
        let streaming = streams_forward(&self.status);
        let lag_ms = self
            .status
            .lag_seconds()
            .filter(|_| streaming)
            .and_then(|l| Duration::try_from_secs_f64(l).ok())
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        // The probe is cut off once it is over the limit: that is already the answer.
        let probe = reads::probe(green, &s.probe, s.max_latency + Duration::from_millis(50)).await;
        let failures = reads::failures(green).await;
        let now = Instant::now();
        let split_errors = seen_by_split.as_ref().ok().and_then(|g| g.errors);
        let rate = |prev: Option<u64>, cur: Option<u64>| match (prev, cur, self.last.at) {
            (Some(p), Some(c), Some(at)) => Some(c.saturating_sub(p) as f64 / now.duration_since(at).as_secs_f64().max(0.001)),
            _ => None,
        };
        let (green_rate, split_rate) = (rate(self.last.green, failures), rate(self.last.split, split_errors));
        self.last = Counts { at: Some(now), green: failures, split: split_errors };
        let failures_per_second = match (green_rate, split_rate) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        let split_status = match &seen_by_split {
            Ok(g) => g.status.clone(),
            Err(e) => Some(format!("unreadable: {e}")),
        };
        let mut trip = None;
        match &probe {
            Err(ProbeFailure::NoAnswer(_)) => {
                trip = Some(format!("green's probe gave no answer within canary.max_latency ({} ms)", s.max_latency.as_millis()));
            }
            Err(e) => trip = Some(format!("green's probe failed: {e}")),
            Ok(took) if *took > s.max_latency => {
                trip = Some(format!("green's probe took {} ms, over canary.max_latency ({} ms)", took.as_millis(), s.max_latency.as_millis()));
            }
            Ok(_) => {}
        }
        if let (None, Some(rate)) = (&trip, failures_per_second) {
            if rate > s.max_errors_per_second {
                let part = |name: &str, r: Option<f64>| r.map(|r| format!("{name} {r:.1}/s"));
                let parts: Vec<String> = [part("on green", green_rate), part("connections the split saw fail", split_rate)].into_iter().flatten().collect();
                trip = Some(format!("{rate:.1} failures/s ({}), over canary.max_errors_per_second ({})", parts.join(", "), s.max_errors_per_second));
            }
        }
        if let (None, Some(status)) = (&trip, &split_status) {
            if status.starts_with("DOWN") {
                trip = Some(format!("the {} split marks green {status} (its health check fails)", s.split.kind()));
            }
        }
        self.check = Some(Check {
            at: crate::duration::rfc3339(now_micros()),
            lag_ms,
            probe_ms: probe.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
            probe_error: probe.err().map(|e| e.to_string()),
            failures_per_second,
            split_status,
        });
        Seen { lag_ms, trip }
    }

    /// Sets the split to `share`, journaling the change before (in doubt until done) and after.
    async fn set(&mut self, share: u8, why: String) {
        let Some(r) = self.record.as_mut() else { return };
        r.setting = Some(share);
        if let Err(e) = self.state.record_canary(r) {
            self.error = Some(e.to_string());
            // Reads back to blue go ahead all the same: that is the safe way.
            if share != 0 {
                tracing::error!("read canary: keeping its record failed, so the split is not changed: {e}");
                return;
            }
            tracing::error!("read canary: keeping its record failed: {e}; reads go to blue all the same");
        }
        let urls = self.config.blue_green();
        match self.settings.split.set(share, urls, SPLIT_TIMEOUT).await {
            Ok(done) => {
                r.live = self.settings.split.nearest(share);
                r.setting = None;
                r.step(now_micros(), r.live, why.clone());
                tracing::info!("read canary: green's share of reads is {} % ({why}): {done}", r.live);
                self.error = None;
            }
            Err(e) => {
                tracing::error!("read canary: setting green's share of reads to {share} % failed: {e}; tried again at the next check");
                self.error = Some(e.to_string());
            }
        }
        if let Err(e) = self.state.record_canary(r) {
            tracing::error!("read canary: keeping its record failed: {e}");
        }
    }

    /// turnout stops: nothing watches green's lag from now on, so a running canary's reads go to blue
    /// (the record keeps its plan: a restart restores 0 and the next healthy check the plan's share).
    async fn stopping(&mut self) {
        if self.record.as_ref().is_some_and(|r| !r.over() && (r.live != 0 || r.setting.is_some())) {
            self.set(0, "turnout stopping: nothing watches green's lag meanwhile".into()).await;
        }
    }

    /// `turnout canary`: a new plan, a change of plan, or the end (`--reads 0`).
    async fn ask<G: GreenReads>(&mut self, green: &mut G, ask: Ask) -> Result<Vec<String>, Error> {
        if self.channels.moving.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return Err(CanaryRefusal::TrafficMoving.into());
        }
        if writes_on_green(&self.state)? {
            return Err(CanaryRefusal::WritesMoved.into());
        }
        if ask.reads == 0 {
            return self.end(green).await;
        }
        let plan = self.plan(&ask).map_err(CanaryRefusal::BadPlan)?;
        if !streams_forward(&self.status) {
            return Err(CanaryRefusal::NotStreaming {
                direction: self.status.direction().what(),
                phase: serde_json::to_value(self.status.phase()).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            }
            .into());
        }
        let urls = self.config.blue_green();
        self.settings.split.check(urls, SPLIT_TIMEOUT).await?;
        let probe =
            reads::probe(green, &self.settings.probe, self.settings.max_latency).await.map_err(|e| CanaryRefusal::ProbeFails { cause: e.to_string() })?;
        let mut lines = vec![format!("green's probe answered in {} ms", probe.as_millis())];
        if reads::failures(green).await.is_none() {
            lines.push("green keeps no count of failures turnout can read (MariaDB without performance_schema): the probe and the split's own checks are the health signals".into());
        }
        let mut fenced = self.record.as_ref().is_some_and(|r| r.fenced && !r.over());
        if self.settings.fence_green && !fenced {
            match reads::fence(green).await.map_err(Error::during("keeping green from the application's writes"))? {
                Some(line) => {
                    lines.push(line);
                    fenced = true;
                }
                None => lines.push("green already refused the application's writes".into()),
            }
        }
        let now = now_micros();
        let mut record = Record::new(plan.clone(), now);
        record.fenced = fenced;
        if let Some(old) = self.record.take() {
            record.live = old.live;
            record.steps = old.steps;
        }
        record.step(now, record.live, format!("asked: {}", describe(&plan)));
        self.record = Some(record);
        self.last = Counts::default();
        self.tick(green).await;
        let r = self.record.as_ref().ok_or_else(|| Error::Internal("the canary's record is missing".into()))?;
        lines.push(match r.state {
            State::Paused => format!("paused: green lags more than {} ms; its share stays 0 until it catches up", plan.max_lag_ms),
            State::Tripped => format!("tripped at once: {}", r.tripped.clone().unwrap_or_default()),
            _ => format!("green's share of reads is {} % ({})", r.live, describe(&plan)),
        });
        if let Some(e) = &self.error {
            lines.push(format!("the split failed: {e}"));
            return Err(CanaryRefusal::SplitFailed { done: lines }.into());
        }
        Ok(lines)
    }

    /// The plan `ask` gives, checked.
    fn plan(&self, ask: &Ask) -> Result<Plan, String> {
        let step = ask.step.unwrap_or(0);
        let max = ask.max.unwrap_or(if step > 0 { 100 } else { ask.reads });
        if ask.reads > 100 || max > 100 || step > 100 {
            return Err("shares are percentages, 0 to 100".into());
        }
        if max < ask.reads {
            return Err(format!("--max ({max} %) is below --reads ({} %)", ask.reads));
        }
        let every_ms = ask.every_ms.unwrap_or(120_000);
        if step > 0 && every_ms < 1000 {
            return Err("--every must be at least 1s".into());
        }
        let max_lag_ms = ask.max_lag_ms.unwrap_or_else(|| u64::try_from(self.settings.max_lag.as_millis()).unwrap_or(u64::MAX));
        // Shares the split can give (pgbouncer: steps of 5 %), so the plan never asks for one it
        // cannot reach.
        let split = &self.settings.split;
        Ok(Plan { reads: split.nearest(ask.reads), step: split.nearest(step), every_ms, max: split.nearest(max), max_lag_ms })
    }

    /// `--reads 0`: every read to blue, the canary's fence on green lifted.
    async fn end<G: GreenReads>(&mut self, green: &mut G) -> Result<Vec<String>, Error> {
        let Some(r) = self.record.as_mut().filter(|r| !r.over()) else { return Ok(vec!["no read canary runs".into()]) };
        r.state = State::Ended;
        self.set(0, "ended (--reads 0)".into()).await;
        if let Some(e) = &self.error {
            return Err(CanaryRefusal::EndFailed { cause: e.to_string() }.into());
        }
        let mut lines = vec!["green's share of reads is 0 %: every read goes to blue".to_owned()];
        if let Some(r) = self.record.as_mut().filter(|r| r.fenced) {
            lines.push(green.unfence().await.map_err(Error::during("lifting the canary's fence on green"))?);
            r.fenced = false;
            self.state.record_canary(r)?;
        }
        Ok(lines)
    }

    fn publish(&self) {
        self.status.set_canary(self.record.as_ref().map(|r| CanaryStatus {
            state: r.state,
            green_percent: r.live,
            scheduled_percent: r.scheduled,
            in_doubt: r.setting.is_some(),
            plan: (r.plan.reads > 0).then(|| r.plan.clone()),
            tripped: r.tripped.clone(),
            split: self.settings.split.kind(),
            green_fenced: r.fenced,
            started_at: Some(crate::duration::rfc3339(r.started_at_us)),
            last_check: self.check.clone(),
            error: self.error.clone(),
            steps: r.steps.iter().rev().take(STEPS_SHOWN).rev().cloned().collect(),
        }));
    }
}

/// The canary's metrics (Prometheus text).
pub(crate) fn metrics(c: &CanaryStatus, out: &mut String) {
    use std::fmt::Write;
    let gauges: [(&str, &str, Option<f64>); 5] = [
        ("turnout_canary_green_read_percent", "Share of the read endpoint's new connections the canary sends to green.", Some(f64::from(c.green_percent))),
        (
            "turnout_canary_tripped",
            "1 while a tripped threshold holds the canary's share at 0 (alert canary), else 0.",
            Some(f64::from(u8::from(c.state == State::Tripped))),
        ),
        ("turnout_canary_paused", "1 while green's lag holds the canary's share at 0, else 0.", Some(f64::from(u8::from(c.state == State::Paused)))),
        (
            "turnout_canary_probe_seconds",
            "How long the canary's last probe on green took.",
            c.last_check.as_ref().and_then(|k| k.probe_ms).map(|ms| ms / 1000.0),
        ),
        (
            "turnout_canary_green_failures_per_second",
            "Failures on green per second at the canary's last check (its own count and the split's).",
            c.last_check.as_ref().and_then(|k| k.failures_per_second),
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
    }
}

/// `5 % of reads, +10 % every 120 s up to 50 %, lag at most 200 ms`.
fn describe(plan: &Plan) -> String {
    let ramp = if plan.step > 0 { format!(", +{} % every {} s up to {} %", plan.step, plan.every_ms / 1000, plan.max) } else { String::new() };
    format!("{} % of reads{ramp}, lag at most {} ms", plan.reads, plan.max_lag_ms)
}

/// Whether the forward stream runs (green then has a lag that means something).
fn streams_forward(status: &Status) -> bool {
    status.phase() == Phase::Streaming && status.direction() == crate::status::Direction::Forward
}

/// Whether the application's writes go to green: a cutover completed and no rollback after it.
fn writes_on_green(state: &StateStore) -> Result<bool, Error> {
    Ok(crate::cutover::cut_over(state)? && !crate::cutover::rolled_back(state)?)
}

/// Leaves the read endpoint safe when turnout lets go of it (`turnout teardown`): every read where
/// the writes are (green after a completed cutover, else blue), and the canary's fence on green
/// lifted when it made one. What it did, line by line; nothing without `canary.split`.
pub async fn settle(config: &Config, state: &StateStore) -> Vec<String> {
    let Ok(Some(settings)) = config.canary() else { return Vec::new() };
    let record = state.canary().ok().flatten();
    let on_green = writes_on_green(state).unwrap_or(false);
    let mut lines = Vec::new();
    let share = if on_green { 100 } else { 0 };
    let urls = config.blue_green();
    lines.push(match settings.split.set(share, urls, SPLIT_TIMEOUT).await {
        Ok(done) => format!("read endpoint: every read to {} ({done})", if on_green { "green" } else { "blue" }),
        Err(e) => format!("setting the read endpoint's split to {share} % green failed: {e}; set it by hand"),
    });
    if record.is_some_and(|r| r.fenced && !r.over()) && !on_green {
        let lifted = crate::source::family::of(config).unfence_green(config).await;
        lines.push(match lifted {
            Ok(line) => line,
            Err(e) => format!("lifting the read canary's fence on green failed: {e}"),
        });
    }
    lines
}
