//! The read canary's plan, its record in the state store, what `/status` shows of it, and the rule
//! that decides green's share of reads at each check ([`crate::canary`] runs it) — pure data and
//! logic, below the state store and the status, so every rule is tested here.
//!
//! The rule, in order:
//! 1. A canary ended, or followed by the cutover (all reads go where the writes went), changes no
//!    more by the plan.
//! 2. Tripped: 0 until the operator asks again (`turnout canary`).
//! 3. A threshold over now: trip — 0 at once, naming it.
//! 4. Lag unknown or above the plan's `max_lag`: paused — 0 until green catches up (not a trip).
//! 5. Otherwise the plan's share, raised by `step` every `every` of healthy running up to `max`
//!    (the clock of a step starts again when a pause ends).

use serde::{Deserialize, Serialize};

/// The canary on `/status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CanaryStatus {
    /// `running`, `paused`, `tripped`, `ended`, `cut-over` or `rolled-back`.
    pub state: State,
    /// The share of new read connections the split sends to green now, percent.
    pub green_percent: u8,
    /// The share the plan gives while green is healthy.
    pub scheduled_percent: u8,
    /// A change of the split was under way when turnout stopped, or failed: the live share is not
    /// known for sure (the next check sets it again).
    pub in_doubt: bool,
    pub plan: Option<Plan>,
    pub tripped: Option<String>,
    /// `haproxy`, `pgbouncer` or `command`.
    pub split: &'static str,
    /// The canary made green refuse the application's writes.
    pub green_fenced: bool,
    pub started_at: Option<String>,
    pub last_check: Option<Check>,
    /// The split's last failure, until a change succeeds.
    pub error: Option<String>,
    /// The newest changes of the share.
    pub steps: Vec<Step>,
}

/// What the last check saw.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Check {
    pub at: String,
    pub lag_ms: Option<u64>,
    pub probe_ms: Option<f64>,
    pub probe_error: Option<String>,
    /// Green's failures per second since the check before (its own count and the split's).
    pub failures_per_second: Option<f64>,
    /// Green's health as the split checks it (haproxy `status`).
    pub split_status: Option<String>,
}

/// Changes kept in the record's journal (the oldest go first).
pub const STEPS_KEPT: usize = 500;

/// What the operator asked (`turnout canary`, `POST /canary`); the default is no plan (a record
/// made only to follow the writes or to start at 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Green's share of reads to start at, percent.
    pub reads: u8,
    /// Added every `every_ms` of healthy running (0: hold at `reads`).
    pub step: u8,
    pub every_ms: u64,
    /// Where the ramp stops.
    pub max: u8,
    /// The staleness allowed: above it green's share is 0.
    pub max_lag_ms: u64,
}

/// Where a canary stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Green's share follows the plan.
    Running,
    /// Green lags more than the plan allows, or its lag is unknown: share 0 until it catches up.
    Paused,
    /// A threshold tripped: share 0 until the operator asks again.
    Tripped,
    /// `--reads 0`: all reads on blue.
    Ended,
    /// The cutover moved the writes: all reads follow them to green.
    CutOver,
    /// Writes went back to blue after the cutover: all reads follow them.
    RolledBack,
}

impl State {
    /// `running`, `paused`, … as on `/status`.
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Paused => "paused",
            State::Tripped => "tripped",
            State::Ended => "ended",
            State::CutOver => "cut-over",
            State::RolledBack => "rolled-back",
        }
    }
}

/// One change of green's share, as journaled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Microseconds since the epoch, this machine's clock.
    pub at_us: i64,
    /// Green's share from then on, percent.
    pub share: u8,
    pub why: String,
}

/// The canary as kept in the state store (synced at every change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub plan: Plan,
    pub state: State,
    /// The share the plan gives now, what green gets while healthy.
    pub scheduled: u8,
    /// When `scheduled` was last raised, the plan began or a pause ended: the next step is due
    /// `every` after it.
    pub stepped_at_us: i64,
    /// The share the split was last set to, confirmed.
    pub live: u8,
    /// A change of the split begun and not confirmed: after a crash the live share is in doubt.
    pub setting: Option<u8>,
    /// What tripped the canary.
    pub tripped: Option<String>,
    /// The canary made green refuse the application's writes (and lifts that when it ends).
    pub fenced: bool,
    pub started_at_us: i64,
    /// Every change of the share, the newest last ([`STEPS_KEPT`] at most).
    pub steps: Vec<Step>,
}

impl Record {
    /// A new canary of `plan` at `now_us`, nothing live yet.
    pub fn new(plan: Plan, now_us: i64) -> Record {
        Record {
            scheduled: plan.reads,
            plan,
            state: State::Running,
            stepped_at_us: now_us,
            live: 0,
            setting: None,
            tripped: None,
            fenced: false,
            started_at_us: now_us,
            steps: Vec::new(),
        }
    }

    /// Journals a change of the share.
    pub fn step(&mut self, at_us: i64, share: u8, why: String) {
        self.steps.push(Step { at_us, share, why });
        if self.steps.len() > STEPS_KEPT {
            let extra = self.steps.len() - STEPS_KEPT;
            self.steps.drain(..extra);
        }
    }

    /// Whether the plan no longer moves the share (ended, or following the writes).
    pub fn over(&self) -> bool {
        matches!(self.state, State::Ended | State::CutOver | State::RolledBack)
    }
}

/// The share to set again after a restart, and why: the one that was live, or 0 when a change was
/// under way when turnout stopped (the split may hold either).
pub fn restored(r: &Record) -> (u8, String) {
    match r.setting {
        Some(doubt) => (0, format!("restart: the change to {doubt} % was under way when turnout stopped, so the live share is in doubt")),
        None => (r.live, "restart: the share that was live".to_owned()),
    }
}

/// What one check saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    /// Green's lag in milliseconds; `None` when unknown (treated as too much).
    pub lag_ms: Option<u64>,
    /// A threshold over, named with its value and limit.
    pub trip: Option<String>,
}

/// Applies the rule to `r` for what was `seen` at `now_us`: updates its state and schedule and
/// returns the share to set and why, when the split must change (or a trip or pause must be
/// journaled even though the share is already 0).
pub fn decide(r: &mut Record, seen: &Seen, now_us: i64) -> Option<(u8, String)> {
    if r.over() {
        return None;
    }
    if r.state == State::Tripped {
        return (r.live != 0).then(|| (0, format!("tripped: {}", r.tripped.clone().unwrap_or_default())));
    }
    if let Some(why) = &seen.trip {
        r.state = State::Tripped;
        r.tripped = Some(why.clone());
        return Some((0, format!("tripped: {why}")));
    }
    let lagging = seen.lag_ms.is_none_or(|lag| lag > r.plan.max_lag_ms);
    if lagging {
        let was = r.state;
        r.state = State::Paused;
        let lag = seen.lag_ms.map_or_else(|| "unknown".to_owned(), |l| format!("{l} ms"));
        return (was != State::Paused || r.live != 0).then(|| (0, format!("paused: green's lag {lag} is over {} ms", r.plan.max_lag_ms)));
    }
    if r.state == State::Paused {
        r.state = State::Running;
        r.stepped_at_us = now_us;
        return Some((r.scheduled, format!("resumed: green's lag is within {} ms again", r.plan.max_lag_ms)));
    }
    let due =
        r.plan.step > 0 && r.scheduled < r.plan.max && now_us - r.stepped_at_us >= i64::try_from(r.plan.every_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
    if due {
        r.scheduled = r.scheduled.saturating_add(r.plan.step).min(r.plan.max);
        r.stepped_at_us = now_us;
        return Some((r.scheduled, format!("ramp: green healthy for {} s", r.plan.every_ms / 1000)));
    }
    (r.live != r.scheduled).then(|| (r.scheduled, "the plan's share".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn plan() -> Plan {
        Plan { reads: 5, step: 10, every_ms: 60_000, max: 30, max_lag_ms: 200 }
    }

    fn healthy() -> Seen {
        Seen { lag_ms: Some(50), trip: None }
    }

    /// Runs the rule and applies its share as the split would.
    fn tick(r: &mut Record, seen: &Seen, now: i64) -> Option<u8> {
        let change = decide(r, seen, now);
        if let Some((share, why)) = &change {
            r.live = *share;
            r.step(now, *share, why.clone());
        }
        change.map(|(s, _)| s)
    }

    #[test]
    fn the_share_ramps_by_step_every_interval_up_to_the_max() {
        let mut r = Record::new(plan(), 0);
        assert_eq!(tick(&mut r, &healthy(), 0), Some(5));
        assert_eq!(tick(&mut r, &healthy(), 30 * S), None, "not due yet");
        assert_eq!(tick(&mut r, &healthy(), 60 * S), Some(15));
        assert_eq!(tick(&mut r, &healthy(), 120 * S), Some(25));
        assert_eq!(tick(&mut r, &healthy(), 180 * S), Some(30), "capped at max");
        assert_eq!(tick(&mut r, &healthy(), 600 * S), None);
        assert_eq!(r.steps.iter().map(|s| s.share).collect::<Vec<_>>(), [5, 15, 25, 30]);
    }

    #[test]
    fn lag_pauses_at_zero_and_the_ramp_clock_starts_again_after() {
        let mut r = Record::new(plan(), 0);
        tick(&mut r, &healthy(), 0);
        let behind = Seen { lag_ms: Some(900), trip: None };
        assert_eq!(tick(&mut r, &behind, 10 * S), Some(0));
        assert_eq!(r.state, State::Paused);
        assert_eq!(tick(&mut r, &behind, 11 * S), None, "journaled once");
        assert_eq!(tick(&mut r, &Seen::default(), 12 * S), None, "unknown lag is lag too");
        assert_eq!(tick(&mut r, &healthy(), 70 * S), Some(5), "back to the plan's share, not a step up");
        assert_eq!(tick(&mut r, &healthy(), 120 * S), None, "a step is due a whole interval after the pause ended");
        assert_eq!(tick(&mut r, &healthy(), 130 * S), Some(15));
    }

    #[test]
    fn a_trip_sends_the_share_to_zero_and_keeps_it_there() {
        let mut r = Record::new(plan(), 0);
        tick(&mut r, &healthy(), 0);
        let slow = Seen { lag_ms: Some(10), trip: Some("the probe took 900 ms, over canary.max_latency 500 ms".into()) };
        assert_eq!(tick(&mut r, &slow, S), Some(0));
        assert_eq!((r.state, r.tripped.as_deref()), (State::Tripped, slow.trip.as_deref()));
        assert!(r.steps.last().is_some_and(|s| s.why.contains("canary.max_latency")));
        assert_eq!(tick(&mut r, &healthy(), 1000 * S), None, "healthy again: still 0 until asked again");
        // Tripped before any share went live: journaled all the same.
        let mut r = Record::new(plan(), 0);
        assert_eq!(tick(&mut r, &slow, 0), Some(0));
    }

    #[test]
    fn an_ended_or_followed_canary_is_left_alone() {
        for state in [State::Ended, State::CutOver, State::RolledBack] {
            let mut r = Record::new(plan(), 0);
            r.state = state;
            assert_eq!(tick(&mut r, &Seen { lag_ms: None, trip: Some("x".into()) }, S), None);
            assert_eq!(r.state, state);
        }
    }

    #[test]
    fn a_restart_restores_the_live_share_or_zero_when_a_change_was_in_doubt() {
        let mut r = Record::new(plan(), 0);
        tick(&mut r, &healthy(), 0);
        assert_eq!(restored(&r).0, 5);
        r.setting = Some(15);
        let (share, why) = restored(&r);
        assert_eq!(share, 0);
        assert!(why.contains("in doubt") && why.contains("15"), "{why}");
    }

    #[test]
    fn the_journal_keeps_the_newest_steps() {
        let mut r = Record::new(plan(), 0);
        for i in 0..(STEPS_KEPT as i64 + 10) {
            r.step(i, 1, String::new());
        }
        assert_eq!((r.steps.len(), r.steps[0].at_us), (STEPS_KEPT, 10));
    }
}
