//! Alerts on replication lag and on the health of blue's replication slot: when an alert changes
//! level, and what is done about it.
//!
//! Every [`EVALUATION_INTERVAL`] the alert task reads [`Status`] and feeds two [`Debounced`] state
//! machines, `lag` and `slot`, each with the levels ok → warning → critical.
//!
//! **Lag** (enabled when `alerts.lag_warning` or `alerts.lag_critical` is set), on `lag_seconds` (blue's
//! clock, see [`Status::lag_seconds`]):
//! - a level is *entered* once lag has stayed strictly above that level's threshold for
//!   `alerts.min_duration` (default 0s: at the first evaluation above it). Rising may skip warning
//!   when lag was above the critical threshold for that long;
//! - a level is *left* once lag has stayed at or below [`CLEAR_FRACTION`] (80 %) of that level's
//!   threshold for `min_duration` (hysteresis: between 80 % and 100 % the level is kept). Critical
//!   falls to warning, or straight to ok when lag has also stayed at or below 80 % of the warning
//!   threshold for `min_duration`;
//! - an unknown lag (nothing measured yet: before the first heartbeat or transaction reaches turnout,
//!   e.g. during the initial snapshot) keeps the current level and restarts both clocks: it never
//!   raises nor clears an alert. Note that lag keeps growing while blue, green or turnout's stream is
//!   down (the newest heartbeat ages), so those outages alert too.
//!
//! **Slot** (always enabled), on [`SlotHealth`] as blue reports it (read about once a second):
//! - critical while `wal_status` is `lost` (blue removed WAL the slot needs; green can no longer be
//!   kept in sync);
//! - warning while `wal_status` is `unreserved`, or while `safe_wal_bytes` (blue's `safe_wal_size`) is
//!   below [`SLOT_WARNING_FRACTION`] (20 %) of the slot's WAL limit, taken as
//!   `retained_bytes + safe_wal_bytes` — that is `max_slot_wal_keep_size` to within one WAL segment,
//!   so turnout needs no extra query. With `max_slot_wal_keep_size = -1` (unlimited, the default)
//!   only `unreserved`/`lost` can raise it;
//! - warning is left once the status is `reserved` or `extended` again and the safe share is at least
//!   20 % / 80 % = 25 % (same hysteresis); critical is left when the status is no longer `lost`;
//! - `min_duration` applies the same way; unknown slot health keeps the level.
//!
//! Every change of level is logged (to warning: `warn`, to critical: `error`, back to ok: `info`),
//! recorded in [`Status`] (`/status` field `alerts`, `/metrics` `turnout_alert_state{alert}`: 0 ok,
//! 1 warning, 2 critical) and handed to [`notify`] — a POST to `alerts.webhook` and/or a run of
//! `alerts.command` — through a bounded queue: delivery never blocks evaluation, let alone
//! replication. Alert levels are not persisted: a restarted turnout starts at ok and reports a
//! condition that still holds again.

mod notify;

pub use crate::duration::rfc3339;

use crate::config::AlertsConfig;
use crate::duration::parse_duration;
use crate::error::Error;
use crate::names::Names;
use crate::status::foreign::{Side, Watched};
use crate::status::{now_micros, SlotHealth, Status};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often alerts are evaluated.
pub const EVALUATION_INTERVAL: Duration = Duration::from_millis(250);

/// A level is left once its measure stayed at or below this share of its threshold (hysteresis).
pub const CLEAR_FRACTION: f64 = 0.8;

/// The slot alert warns when less than this share of the slot's WAL limit is still safe to write.
pub const SLOT_WARNING_FRACTION: f64 = 0.2;

pub use crate::status::AlertLevel;

impl fmt::Display for AlertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one evaluation saw for one alert, for warning and critical: whether the condition to enter
/// the level holds, and whether the condition to leave it holds. Neither holding is the hysteresis
/// band, where the current level is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// `[warning, critical]`.
    pub enter: [bool; 2],
    /// `[warning, critical]`.
    pub clear: [bool; 2],
}

/// A change of level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: AlertLevel,
    pub to: AlertLevel,
}

/// One alert's level, debounced by `min_duration`: a condition must hold without interruption at
/// every evaluation for `min_duration` before the level changes. Pure: time is passed in.
#[derive(Clone, Debug)]
pub struct Debounced {
    level: AlertLevel,
    min_duration: Duration,
    /// Since when the entry condition of `[warning, critical]` has held without interruption.
    enter_since: [Option<Instant>; 2],
    /// Since when the clear condition of `[warning, critical]` has held without interruption.
    clear_since: [Option<Instant>; 2],
}

impl Debounced {
    /// Starts at ok.
    pub fn new(min_duration: Duration) -> Self {
        Debounced { level: AlertLevel::Ok, min_duration, enter_since: [None; 2], clear_since: [None; 2] }
    }

    #[cfg(test)]
    pub fn level(&self) -> AlertLevel {
        self.level
    }

    /// Feeds one evaluation made at `now` (never earlier than the previous one); returns the change
    /// of level it causes, if any. `None` (unknown) keeps the level and restarts every clock.
    pub fn observe(&mut self, now: Instant, seen: Option<Observation>) -> Option<Transition> {
        let Some(seen) = seen else {
            self.enter_since = [None; 2];
            self.clear_since = [None; 2];
            return None;
        };
        for i in 0..2 {
            self.enter_since[i] = if seen.enter[i] { self.enter_since[i].or(Some(now)) } else { None };
            self.clear_since[i] = if seen.clear[i] { self.clear_since[i].or(Some(now)) } else { None };
        }
        let held = |since: Option<Instant>| since.is_some_and(|t| now.saturating_duration_since(t) >= self.min_duration);
        let from = self.level;
        let mut to = from;
        for level in [AlertLevel::Critical, AlertLevel::Warning] {
            if level > from && level.slot_index().is_some_and(|i| held(self.enter_since[i])) {
                to = level;
                break;
            }
        }
        if to == from {
            // Fall while the level reached has also cleared for min_duration.
            while let Some(i) = to.slot_index() {
                if !held(self.clear_since[i]) {
                    break;
                }
                to = to.below();
            }
        }
        if to == from {
            return None;
        }
        self.level = to;
        Some(Transition { from, to })
    }
}

/// Lag thresholds in seconds; at least one is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LagThresholds {
    pub warning: Option<f64>,
    pub critical: Option<f64>,
}

impl LagThresholds {
    /// The threshold of `level`, in seconds.
    pub fn threshold(&self, level: AlertLevel) -> Option<f64> {
        match level {
            AlertLevel::Ok => None,
            AlertLevel::Warning => self.warning,
            AlertLevel::Critical => self.critical,
        }
    }

    /// Enter above a threshold; clear at or below [`CLEAR_FRACTION`] of it. A level without a
    /// threshold is never entered and always clear. Unknown lag is unknown.
    pub fn observe(&self, lag_seconds: Option<f64>) -> Option<Observation> {
        let lag = lag_seconds?;
        let mut seen = Observation::default();
        for (i, threshold) in [self.warning, self.critical].into_iter().enumerate() {
            seen.enter[i] = threshold.is_some_and(|t| lag > t);
            seen.clear[i] = threshold.is_none_or(|t| lag <= t * CLEAR_FRACTION);
        }
        Some(seen)
    }
}

/// The slot's WAL limit as blue applies it (`retained_bytes + safe_wal_bytes`, ≈
/// `max_slot_wal_keep_size`), and the share of it still safe to write; none when unlimited.
fn slot_safe_share(slot: &SlotHealth) -> Option<(f64, f64)> {
    let safe = slot.safe_wal_bytes?;
    let limit = slot.retained_bytes as f64 + safe.max(0) as f64;
    if limit <= 0.0 {
        return Some((limit, 0.0));
    }
    Some((limit, safe as f64 / limit))
}

/// The slot rule of the module documentation; unknown health is unknown.
pub fn slot_observation(slot: Option<&SlotHealth>) -> Option<Observation> {
    let slot = slot?;
    let lost = slot.wal_status == "lost";
    let unreserved = lost || slot.wal_status == "unreserved";
    let share = slot_safe_share(slot).map(|(_, share)| share);
    Some(Observation {
        enter: [unreserved || share.is_some_and(|s| s < SLOT_WARNING_FRACTION), lost],
        clear: [!unreserved && share.is_none_or(|s| s >= SLOT_WARNING_FRACTION / CLEAR_FRACTION), !lost],
    })
}

/// The rollback window warns once half of a budget (`cutover.window_max`, `cutover.window_max_held`)
/// is used, and is critical from this share; at the whole budget the window ends.
pub const WINDOW_WARNING_SHARE: f64 = 0.5;
pub const WINDOW_CRITICAL_SHARE: f64 = 0.8;

/// The window rule: the larger share of either budget used; unknown without a budget.
pub fn window_observation(window: Option<&crate::status::WindowStatus>) -> Option<Observation> {
    let used = window?.used?;
    Some(Observation {
        enter: [used >= WINDOW_WARNING_SHARE, used >= WINDOW_CRITICAL_SHARE],
        clear: [used < WINDOW_WARNING_SHARE * CLEAR_FRACTION, used < WINDOW_CRITICAL_SHARE * CLEAR_FRACTION],
    })
}

/// The rules `[alerts]` configures.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRules {
    /// None: no lag threshold is configured, the lag alert is off.
    pub lag: Option<LagThresholds>,
    pub min_duration: Duration,
}

impl AlertRules {
    /// From a validated `[alerts]`; errors name the field.
    pub fn from_config(config: &AlertsConfig) -> Result<AlertRules, Error> {
        let seconds = |field: &str, value: &Option<String>| {
            value.as_deref().map(|v| parse_duration(v).map(|d| d.as_secs_f64()).map_err(|e| Error::config(field, e))).transpose()
        };
        let warning = seconds("alerts.lag_warning", &config.lag_warning)?;
        let critical = seconds("alerts.lag_critical", &config.lag_critical)?;
        let min_duration = match &config.min_duration {
            Some(v) => parse_duration(v).map_err(|e| Error::config("alerts.min_duration", e))?,
            None => Duration::ZERO,
        };
        let lag = (warning.is_some() || critical.is_some()).then_some(LagThresholds { warning, critical });
        Ok(AlertRules { lag, min_duration })
    }
}

/// What a webhook receives (as JSON) and a command reads on stdin, for one change of level.
#[derive(Clone, Debug, Serialize)]
pub struct AlertEvent {
    /// `lag`, `slot`, `window`, `rogue_writes`, `verify` or `canary`.
    pub alert: &'static str,
    pub previous: AlertLevel,
    pub state: AlertLevel,
    /// When the change was decided: RFC 3339, UTC, this machine's clock.
    pub time: String,
    /// One line for humans.
    pub message: String,
    /// As on `/status` when the change was decided.
    pub lag_seconds: Option<f64>,
    pub lag_bytes: u64,
    /// `lag`, in seconds: rising, the threshold of the level entered; falling, the threshold of the
    /// lowest level left (lag is now at or below [`CLEAR_FRACTION`] of it). `slot`, in bytes: the
    /// `safe_wal_bytes` below which the warning fires, when the slot has a limit. None otherwise.
    pub threshold: Option<f64>,
    /// `seconds`, `bytes`, (`window`) `share`, (`rogue_writes`) `writes` or (`verify`) `tables`.
    pub threshold_unit: &'static str,
    /// The slot, publication and origin of this stream.
    pub names: Option<Names>,
    /// The slot as blue last reported it.
    pub slot: Option<SlotHealth>,
}

impl AlertEvent {
    fn lag(t: Transition, thresholds: &LagThresholds, min_duration: Duration, status: &Status) -> AlertEvent {
        let s = status.snapshot();
        // Rising: the level entered. Falling: the lowest level left with a threshold (the clear
        // point crossed last).
        let reference = if t.to > t.from {
            t.to
        } else {
            [AlertLevel::Warning, AlertLevel::Critical].into_iter().find(|l| *l > t.to && *l <= t.from && thresholds.threshold(*l).is_some()).unwrap_or(t.from)
        };
        let threshold = thresholds.threshold(reference);
        let lag = s.lag_seconds.map_or_else(|| "unknown".to_string(), seconds);
        let limit = threshold.map_or_else(String::new, seconds);
        let held = if min_duration.is_zero() { String::new() } else { format!(" for at least {min_duration:?}") };
        let message = if t.to > t.from {
            format!("replication lag {lag} is above the {reference} threshold {limit}{held}")
        } else {
            let clear = threshold.map_or_else(String::new, |t| seconds(t * CLEAR_FRACTION));
            format!("replication lag {lag} is at or below {clear} ({:.0}% of the {reference} threshold {limit}){held}", CLEAR_FRACTION * 100.0)
        };
        AlertEvent::new("lag", t, message, threshold, "seconds", s)
    }

    fn slot(t: Transition, status: &Status) -> AlertEvent {
        let s = status.snapshot();
        let name = s.names.as_ref().map_or("turnout's slot", |n| n.slot.as_str()).to_owned();
        let (threshold, message) = match &s.slot {
            None => (None, format!("slot {name}: health unknown")),
            Some(slot) => {
                let limits = slot_safe_share(slot);
                let threshold = limits.map(|(limit, _)| limit * SLOT_WARNING_FRACTION);
                let safe = slot.safe_wal_bytes.map_or_else(|| "unlimited".to_string(), mib);
                let message = match t.to {
                    AlertLevel::Critical => format!(
                        "slot {name} is lost: blue removed WAL it still needs, so green can no longer be kept in sync; \
                         run `turnout teardown` and start again (raise max_slot_wal_keep_size first)"
                    ),
                    AlertLevel::Warning => format!(
                        "slot {name} nears max_slot_wal_keep_size: {} of WAL retained, {safe} left before blue may remove WAL \
                         it needs (wal_status {})",
                        mib(i64::try_from(slot.retained_bytes).unwrap_or(i64::MAX)),
                        slot.wal_status
                    ),
                    AlertLevel::Ok => format!("slot {name} is safe again: {safe} left (wal_status {})", slot.wal_status),
                };
                (threshold, message)
            }
        };
        AlertEvent::new("slot", t, message, threshold, "bytes", s)
    }

    fn window(t: Transition, status: &Status) -> AlertEvent {
        let s = status.snapshot();
        let window = s.window.clone().unwrap_or_default();
        let used = window.used.map_or_else(|| "an unknown share".into(), |u| format!("{:.0}%", u * 100.0));
        let message = match t.to {
            AlertLevel::Ok => format!("the rollback window has used {used} of its budget"),
            level => format!(
                "the rollback window has used {used} of its budget (open {} s of cutover.window_max {}; green holds {} of WAL for the \
                 reverse stream, cutover.window_max_held {}): at the whole budget it ends on its own and rollback is no longer possible — \
                 decide: `turnout rollback` or `turnout finish` ({level})",
                window.age_seconds,
                window.max_age_seconds.map_or("unset".into(), |m| format!("{m} s")),
                window.held_bytes.map_or("an unmeasured amount".into(), |h| mib(i64::try_from(h).unwrap_or(i64::MAX))),
                window.max_held_bytes.map_or("unset".into(), |m| mib(i64::try_from(m).unwrap_or(i64::MAX))),
                level = level.name()
            ),
        };
        let threshold = window.used.map(|_| if t.to == AlertLevel::Critical { WINDOW_CRITICAL_SHARE } else { WINDOW_WARNING_SHARE });
        AlertEvent::new("window", t, message, threshold, "share", s)
    }

    /// The `window` alert when the window ended on its own: critical, naming the budget.
    fn window_ended(why: &str, from: AlertLevel, status: &Status) -> AlertEvent {
        let message = format!(
            "the rollback window ended on its own: {why}. The reverse stream stopped and what it used was dropped; rollback to blue \
             is no longer possible and green is the source of truth"
        );
        AlertEvent::new("window", Transition { from, to: AlertLevel::Critical }, message, Some(1.0), "share", status.snapshot())
    }

    /// The `rogue_writes` alert of `side`: critical while writes that are not turnout's wait there
    /// to be acknowledged, naming tables and keys.
    fn rogue_writes(t: Transition, side: Side, watched: &Watched, status: &Status) -> AlertEvent {
        let message = match t.to {
            AlertLevel::Ok => format!("no write on {side} that turnout did not make waits to be acknowledged"),
            _ => format!(
                "{} writes on {side} did not come from turnout: {}; {} until they are reconciled and acknowledged \
                 (`turnout rogue-writes --acknowledge`)",
                watched.outstanding(),
                watched.describe(),
                match side {
                    Side::Green => "green differs from blue; the cutover is refused",
                    Side::Blue => "a client bypassed the switch (a split brain); `turnout finish` is refused",
                }
            ),
        };
        let count = watched.outstanding() as f64;
        AlertEvent::new("rogue_writes", t, message, (t.to != AlertLevel::Ok).then_some(count), "writes", status.snapshot())
    }

    /// The `canary` alert: critical while a tripped threshold holds the read canary's share at 0.
    fn canary(t: Transition, canary: &crate::canary_plan::CanaryStatus, status: &Status) -> AlertEvent {
        let message = match t.to {
            AlertLevel::Ok => format!("the read canary is no longer tripped (now {}, green's share of reads {} %)", canary.state.name(), canary.green_percent),
            _ => format!(
                "the read canary tripped: {}; green's share of reads went to 0 and stays there until `turnout canary` is run again",
                canary.tripped.as_deref().unwrap_or("a threshold")
            ),
        };
        AlertEvent::new("canary", t, message, None, "share", status.snapshot())
    }

    /// The `verify` alert: critical while the continuous verify's last whole run found differences.
    fn verify(t: Transition, verified: &crate::status::verified::Verified, status: &Status) -> AlertEvent {
        let differing = verified.differing();
        let message = match t.to {
            AlertLevel::Ok => "the continuous verify's last run found blue and green equal".to_string(),
            _ => {
                let named: Vec<String> = differing.iter().map(|table| format!("{table}: {}", verified.tables[*table].differences.join(", "))).collect();
                format!(
                    "the continuous verify found {} tables differing on green — {}; find the cause (`turnout verify --live --show-values`), \
                     repair green; `turnout cutover --verify` refuses until a run finds them equal",
                    differing.len(),
                    named.join("; ")
                )
            }
        };
        let count = differing.len() as f64;
        AlertEvent::new("verify", t, message, (t.to != AlertLevel::Ok).then_some(count), "tables", status.snapshot())
    }

    fn new(
        alert: &'static str,
        t: Transition,
        message: String,
        threshold: Option<f64>,
        threshold_unit: &'static str,
        s: crate::status::Snapshot,
    ) -> AlertEvent {
        AlertEvent {
            alert,
            previous: t.from,
            state: t.to,
            time: rfc3339(now_micros()),
            message,
            lag_seconds: s.lag_seconds,
            lag_bytes: s.lag_bytes,
            threshold,
            threshold_unit,
            names: s.names,
            slot: s.slot,
        }
    }

    /// Logs the change at the level it deserves.
    fn log(&self) {
        let (alert, from, to, msg) = (self.alert, self.previous.name(), self.state.name(), &self.message);
        match self.state {
            AlertLevel::Critical => tracing::error!(alert, from, to, "alert {alert} {from} → {to}: {msg}"),
            AlertLevel::Warning => tracing::warn!(alert, from, to, "alert {alert} {from} → {to}: {msg}"),
            AlertLevel::Ok => tracing::info!(alert, from, to, "alert {alert} {from} → {to}: {msg}"),
        }
    }
}

/// `1.5s`, `0.8s`, `30s`: at most millisecond precision, no trailing zeros.
fn seconds(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Evaluates the alerts every [`EVALUATION_INTERVAL`] until `shutdown` turns true. Never fails:
/// problems (an unusable `[alerts]` entry, a delivery failure) are logged.
pub async fn run(config: AlertsConfig, status: Arc<Status>, mut shutdown: watch::Receiver<bool>) {
    let rules = match AlertRules::from_config(&config) {
        Ok(rules) => rules,
        Err(e) => {
            tracing::error!("alerts are off: {e}");
            return;
        }
    };
    let deliver = notify::spawn(&config);
    let mut lag = rules.lag.map(|thresholds| (thresholds, Debounced::new(rules.min_duration)));
    let mut slot = Debounced::new(rules.min_duration);
    let mut window = Debounced::new(rules.min_duration);
    let mut rogue: std::collections::BTreeMap<Side, Option<AlertLevel>> = std::collections::BTreeMap::new();
    let mut verify: Option<AlertLevel> = None;
    let mut canary: Option<AlertLevel> = None;
    if lag.is_some() {
        status.set_alert("lag", AlertLevel::Ok);
    }
    status.set_alert("slot", AlertLevel::Ok);
    if status.window().is_some_and(|w| w.used.is_some()) {
        status.set_alert("window", AlertLevel::Ok);
    }
    let mut ticker = tokio::time::interval(EVALUATION_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        // The window's end stops this stream: it is said on the way out too.
        if let Some((why, from)) = status.take_window_ended() {
            report(&status, &deliver, AlertEvent::window_ended(&why, from, &status));
        }
        if stopping {
            return;
        }
        let now = Instant::now();
        if let Some((thresholds, machine)) = &mut lag {
            if let Some(t) = machine.observe(now, thresholds.observe(status.lag_seconds())) {
                report(&status, &deliver, AlertEvent::lag(t, thresholds, rules.min_duration, &status));
            }
        }
        if let Some(t) = slot.observe(now, slot_observation(status.slot().as_ref())) {
            report(&status, &deliver, AlertEvent::slot(t, &status));
        }
        if let Some(t) = window.observe(now, window_observation(status.window().as_ref())) {
            report(&status, &deliver, AlertEvent::window(t, &status));
        }
        // Not debounced: one foreign write, one differing table, is already the whole condition.
        for (side, watched) in status.watches() {
            if let Some(t) = flip(rogue.entry(side).or_insert(None), watched.outstanding() > 0) {
                report(&status, &deliver, AlertEvent::rogue_writes(t, side, &watched, &status));
            }
        }
        if let Some(level) = rogue.values().flatten().max() {
            status.set_alert("rogue_writes", *level);
        }
        if let Some(c) = status.canary() {
            if let Some(t) = flip(&mut canary, c.state == crate::canary_plan::State::Tripped) {
                report(&status, &deliver, AlertEvent::canary(t, &c, &status));
            }
            status.set_alert("canary", canary.unwrap_or(AlertLevel::Ok));
        }
        if let Some(verified) = status.verified().filter(|v| v.finished_at.is_some()) {
            if let Some(t) = flip(&mut verify, !verified.differing().is_empty()) {
                report(&status, &deliver, AlertEvent::verify(t, &verified, &status));
            }
            status.set_alert("verify", verify.unwrap_or(AlertLevel::Ok));
        }
    }
}

/// An alert critical exactly while its condition holds (`critical`), not debounced: the change of
/// level from `last` (ok before the first reading), if any; `last` becomes the new level.
fn flip(last: &mut Option<AlertLevel>, critical: bool) -> Option<Transition> {
    let to = if critical { AlertLevel::Critical } else { AlertLevel::Ok };
    let from = last.replace(to).unwrap_or(AlertLevel::Ok);
    (from != to).then_some(Transition { from, to })
}

fn report(status: &Status, deliver: &Option<notify::Queue>, event: AlertEvent) {
    event.log();
    status.set_alert(event.alert, event.state);
    if let Some(queue) = deliver {
        queue.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertLevel::{Critical, Ok as Fine, Warning};

    const LAG: LagThresholds = LagThresholds { warning: Some(10.0), critical: Some(30.0) };

    /// Feeds lag samples one second apart; returns the level after each.
    fn levels(min: Duration, samples: &[Option<f64>]) -> Vec<AlertLevel> {
        let start = Instant::now();
        let mut m = Debounced::new(min);
        samples
            .iter()
            .enumerate()
            .map(|(i, lag)| {
                m.observe(start + Duration::from_secs(i as u64), LAG.observe(*lag));
                m.level()
            })
            .collect()
    }

    #[test]
    fn without_min_duration_levels_follow_thresholds_at_once() {
        let got = levels(Duration::ZERO, &[Some(1.0), Some(10.0), Some(10.5), Some(31.0), Some(1.0)]);
        assert_eq!(got, [Fine, Fine, Warning, Critical, Fine]);
    }

    #[test]
    fn a_level_is_entered_only_after_lag_stayed_above_for_min_duration() {
        let min = Duration::from_secs(2);
        // A one-sample spike never fires; three samples in a row (two seconds) do.
        let got = levels(min, &[Some(12.0), Some(1.0), Some(12.0), Some(12.0), Some(12.0)]);
        assert_eq!(got, [Fine, Fine, Fine, Fine, Warning]);
        // Above critical from the start: warning is skipped once critical has held as long.
        let got = levels(min, &[Some(40.0), Some(40.0), Some(40.0)]);
        assert_eq!(got, [Fine, Fine, Critical]);
        // Warning held long enough before critical did: both are reported in turn.
        let got = levels(min, &[Some(12.0), Some(12.0), Some(35.0), Some(35.0), Some(35.0)]);
        assert_eq!(got, [Fine, Fine, Warning, Warning, Critical]);
    }

    #[test]
    fn hysteresis_keeps_a_level_until_lag_is_at_or_below_80_percent_of_its_threshold() {
        // Warning at 10 s: 9 s (between 8 and 10) keeps it; 8 s (exactly 80 %) clears it.
        let got = levels(Duration::ZERO, &[Some(11.0), Some(9.0), Some(9.9), Some(8.0)]);
        assert_eq!(got, [Warning, Warning, Warning, Fine]);
        // Critical at 30 s: 25 s keeps critical; 20 s falls to warning (above 8), 5 s to ok.
        let got = levels(Duration::ZERO, &[Some(31.0), Some(25.0), Some(20.0), Some(5.0)]);
        assert_eq!(got, [Critical, Critical, Warning, Fine]);
    }

    #[test]
    fn leaving_a_level_also_waits_min_duration_and_may_fall_two_levels_at_once() {
        let min = Duration::from_secs(2);
        let got = levels(min, &[Some(40.0), Some(40.0), Some(40.0), Some(1.0), Some(1.0), Some(40.0), Some(1.0), Some(1.0), Some(1.0)]);
        assert_eq!(got, [Fine, Fine, Critical, Critical, Critical, Critical, Critical, Critical, Fine]);
        let start = Instant::now();
        let mut m = Debounced::new(min);
        for i in 0..3 {
            m.observe(start + Duration::from_secs(i), LAG.observe(Some(40.0)));
        }
        let t = (3..6).find_map(|i| m.observe(start + Duration::from_secs(i), LAG.observe(Some(1.0))));
        assert_eq!(t, Some(Transition { from: Critical, to: Fine }));
    }

    #[test]
    fn unknown_lag_neither_raises_nor_clears_and_restarts_the_clocks() {
        let min = Duration::from_secs(1);
        let got = levels(min, &[Some(12.0), Some(12.0), None, Some(1.0), None, Some(1.0), Some(1.0)]);
        assert_eq!(got, [Fine, Warning, Warning, Warning, Warning, Warning, Fine]);
        let got = levels(min, &[Some(12.0), None, Some(12.0), Some(12.0)]);
        assert_eq!(got, [Fine, Fine, Fine, Warning]);
        assert_eq!(levels(Duration::ZERO, &[None, None]), [Fine, Fine]);
    }

    #[test]
    fn only_the_configured_thresholds_count() {
        let critical_only = LagThresholds { warning: None, critical: Some(5.0) };
        let mut m = Debounced::new(Duration::ZERO);
        let now = Instant::now();
        assert_eq!(m.observe(now, critical_only.observe(Some(4.9))), None);
        assert_eq!(m.observe(now, critical_only.observe(Some(6.0))), Some(Transition { from: Fine, to: Critical }));
        assert_eq!(m.observe(now, critical_only.observe(Some(4.1))), None);
        assert_eq!(m.observe(now, critical_only.observe(Some(4.0))), Some(Transition { from: Critical, to: Fine }));
    }

    fn slot(retained: u64, status: &str, safe: Option<i64>) -> SlotHealth {
        SlotHealth { retained_bytes: retained, wal_status: status.into(), safe_wal_bytes: safe }
    }

    fn slot_level(samples: &[SlotHealth]) -> AlertLevel {
        let mut m = Debounced::new(Duration::ZERO);
        for s in samples {
            m.observe(Instant::now(), slot_observation(Some(s)));
        }
        m.level()
    }

    #[test]
    fn slot_warns_near_its_wal_limit_with_hysteresis_and_is_critical_when_lost() {
        const MB: u64 = 1 << 20;
        let mb = |n: u64| i64::try_from(n * MB).expect("small");
        assert_eq!(slot_level(&[slot(10 * MB, "reserved", None)]), Fine, "no limit, reserved");
        assert_eq!(slot_level(&[slot(70 * MB, "extended", Some(mb(30)))]), Fine, "30% left");
        assert_eq!(slot_level(&[slot(81 * MB, "extended", Some(mb(19)))]), Warning, "19% left");
        // Back to 22% left: inside the band (20–25%), still warning; 26% clears.
        assert_eq!(slot_level(&[slot(81 * MB, "extended", Some(mb(19))), slot(78 * MB, "extended", Some(mb(22)))]), Warning);
        assert_eq!(slot_level(&[slot(81 * MB, "extended", Some(mb(19))), slot(74 * MB, "extended", Some(mb(26)))]), Fine);
        assert_eq!(slot_level(&[slot(120 * MB, "unreserved", Some(-mb(20)))]), Warning, "past the limit");
        assert_eq!(slot_level(&[slot(0, "unreserved", None)]), Warning, "unreserved without figures");
        assert_eq!(slot_level(&[slot(120 * MB, "lost", Some(-mb(20)))]), Critical);
        let mut m = Debounced::new(Duration::ZERO);
        m.observe(Instant::now(), slot_observation(Some(&slot(0, "lost", None))));
        assert_eq!(m.observe(Instant::now(), slot_observation(None)), None, "unknown health keeps critical");
        assert_eq!(m.level(), Critical);
    }

    #[test]
    fn rules_come_from_the_config_with_field_names_in_errors() {
        let config = AlertsConfig { lag_warning: Some("1s".into()), lag_critical: Some("3s".into()), min_duration: Some("500ms".into()), ..Default::default() };
        let rules = AlertRules::from_config(&config).expect("valid");
        assert_eq!(rules.lag, Some(LagThresholds { warning: Some(1.0), critical: Some(3.0) }));
        assert_eq!(rules.min_duration, Duration::from_millis(500));
        let off = AlertRules::from_config(&AlertsConfig::default()).expect("valid");
        assert_eq!((off.lag, off.min_duration), (None, Duration::ZERO));
        let bad = AlertsConfig { min_duration: Some("soon".into()), ..Default::default() };
        let err = AlertRules::from_config(&bad).expect_err("bad");
        assert!(err.to_string().contains("alerts.min_duration"), "{err}");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123_456), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1_000), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn the_event_json_has_the_documented_fields() {
        let status = Status::default();
        status.set_slot(Some(slot(1, "reserved", None)));
        let event = AlertEvent::lag(Transition { from: Fine, to: Warning }, &LAG, Duration::ZERO, &status);
        let v = serde_json::to_value(&event).expect("json");
        for field in ["alert", "previous", "state", "time", "message", "lag_seconds", "lag_bytes", "threshold", "threshold_unit", "names", "slot"] {
            assert!(v.get(field).is_some(), "{field} missing in {v}");
        }
        assert_eq!((v["alert"].as_str(), v["previous"].as_str(), v["state"].as_str()), (Some("lag"), Some("ok"), Some("warning")));
        assert_eq!(v["threshold"].as_f64(), Some(10.0));
        // Falling two levels at once refers to the warning threshold, whose clear point was crossed.
        let event = AlertEvent::lag(Transition { from: Critical, to: Fine }, &LAG, Duration::from_millis(500), &status);
        assert_eq!(event.threshold, Some(10.0));
        assert!(event.message.contains("lag unknown is at or below 8s (80% of the warning threshold 10s) for at least 500ms"), "{}", event.message);
        assert_eq!((seconds(2.4000000000000004), seconds(0.5), seconds(30.0)), ("2.4s".into(), "0.5s".into(), "30s".into()));
    }
}
