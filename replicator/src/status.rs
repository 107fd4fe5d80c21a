//! The live status shared by the pipeline and the HTTP API (`/status`, `/metrics`): progress, which
//! the pipeline, the snapshot and the heartbeat write and everyone else only reads. Nothing waits on
//! it: the live verify's hold and the cutover's sentinels are the pipeline's
//! [`crate::pipeline::signals::Channels`]. Never holds secrets.

pub mod consumers;
mod copy;
pub mod foreign;
mod snapshot;
pub mod verified;
use copy::CopyTracker;
pub use copy::{CopyProgress, TableProgress};

pub use snapshot::Snapshot;

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use turnout_decoders::{Position, Timestamp};

/// The level of one alert. Ordered: ok < warning < critical.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    #[default]
    Ok,
    Warning,
    Critical,
}

impl AlertLevel {
    /// The value of `turnout_alert_state`: 0 ok, 1 warning, 2 critical.
    pub fn gauge(self) -> u8 {
        match self {
            AlertLevel::Ok => 0,
            AlertLevel::Warning => 1,
            AlertLevel::Critical => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AlertLevel::Ok => "ok",
            AlertLevel::Warning => "warning",
            AlertLevel::Critical => "critical",
        }
    }

    /// Index into per-level arrays of the levels above ok; none for ok.
    pub(crate) fn slot_index(self) -> Option<usize> {
        match self {
            AlertLevel::Ok => None,
            AlertLevel::Warning => Some(0),
            AlertLevel::Critical => Some(1),
        }
    }

    pub(crate) fn below(self) -> AlertLevel {
        match self {
            AlertLevel::Critical => AlertLevel::Warning,
            AlertLevel::Warning | AlertLevel::Ok => AlertLevel::Ok,
        }
    }
}

/// What the sidecar is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Snapshot,
    Streaming,
    Retrying,
    Stopped,
}

/// Which way changes flow: blue → green until a cutover, green → blue in the rollback window after
/// it (when the cutover armed the reverse stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Forward,
    Reverse,
}

impl Direction {
    /// What moving traffic this way is called: "cutover" or "rollback".
    pub fn what(self) -> &'static str {
        match self {
            Direction::Forward => "cutover",
            Direction::Reverse => "rollback",
        }
    }

    /// The side replicated from and the side replicated to.
    pub fn ends(self) -> (turnout_decoders::Side, turnout_decoders::Side) {
        use turnout_decoders::Side;
        match self {
            Direction::Forward => (Side::Blue, Side::Green),
            Direction::Reverse => (Side::Green, Side::Blue),
        }
    }
}

/// The replication slot as blue reports it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SlotHealth {
    /// WAL blue keeps for the slot (current position minus the slot's restart position).
    pub retained_bytes: u64,
    /// `pg_replication_slots.wal_status`: reserved, extended, unreserved or lost.
    pub wal_status: String,
    /// Bytes that can still be written before the slot is in danger of losing WAL (`safe_wal_size`);
    /// none when `max_slot_wal_keep_size` is unlimited.
    pub safe_wal_bytes: Option<i64>,
}

/// What lag in seconds is measured from.
#[derive(Debug, Default)]
struct LagModel {
    /// Received, not yet durable on green: (commit end, commit time on blue's clock), oldest first.
    pending: VecDeque<(Position, Timestamp)>,
    /// The newest heartbeat received (blue's clock).
    newest_heartbeat: Option<Timestamp>,
    /// The newest heartbeat received since the stream (re)started: every transaction received after
    /// it committed after it.
    stream_heartbeat: Option<Timestamp>,
    /// Commit time (blue's clock) of the newest transaction durable on green: with nothing pending,
    /// green holds everything blue committed up to it, so it bounds the lag as a heartbeat does.
    newest_durable_commit: Option<Timestamp>,
    /// Durable progress samples for the apply rate: (when, position).
    rate_from: Option<(Instant, Position)>,
    /// Smoothed durable progress, bytes per second.
    bytes_per_second: f64,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    direction: Direction,
    names: Option<crate::names::Names>,
    generation: u32,
    last_error: Option<ErrorReport>,
    tables: BTreeMap<String, TableProgress>,
    started: Instant,
}

/// Shared status; cheap to update from the hot path (atomics for counters).
#[derive(Debug)]
pub struct Status {
    inner: Mutex<Inner>,
    /// Durable on green.
    applied: Mutex<Option<Position>>,
    /// How far the source's log reaches, as last reported by the stream or the heartbeat.
    source_end: Mutex<Option<Position>>,
    rows_applied: AtomicU64,
    transactions_applied: AtomicU64,
    buffered_bytes: AtomicU64,
    spilled_bytes: AtomicU64,
    early_committed: AtomicU64,
    early_given_up: AtomicU64,
    /// Blue's clock minus ours, microseconds (from the heartbeat round trips).
    clock_offset_us: AtomicI64,
    lag: Mutex<LagModel>,
    slot: Mutex<Option<SlotHealth>>,
    /// Level of each enabled alert (`lag`, `slot`), as the alert task last decided.
    alerts: Mutex<BTreeMap<String, AlertLevel>>,
    copy: Mutex<Option<CopyTracker>>,
    /// The rollback window's opening time and budget, in the reverse direction.
    window: Mutex<Option<(i64, crate::config::WindowBudget)>>,
    /// The watch for writes that are not turnout's, per watched side.
    watched: Mutex<BTreeMap<foreign::Side, foreign::Watched>>,
    /// The continuous verify, when on.
    verified: Mutex<Option<verified::Verified>>,
    /// The read canary, once one was asked for.
    canary: Mutex<Option<crate::canary_plan::CanaryStatus>>,
    /// Why the rollback window ended on its own, and the window alert's level then: for the alert
    /// task to deliver once.
    window_ended: Mutex<Option<(String, AlertLevel)>>,
    /// Blue's downstream consumers, as last looked at ([`crate::handover`]).
    consumers: Mutex<Option<Vec<consumers::Consumer>>>,
}

/// The rollback window, on `/status` while the reverse stream runs.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct WindowStatus {
    /// When the cutover armed the reverse stream (for a cutover of an earlier version, which did
    /// not record it: when `turnout run` started).
    pub opened_at: String,
    pub age_seconds: u64,
    /// `cutover.window_max`.
    pub max_age_seconds: Option<u64>,
    /// WAL green keeps for the reverse stream's slot (PostgreSQL); none where not measured.
    pub held_bytes: Option<u64>,
    /// `cutover.window_max_held`.
    pub max_held_bytes: Option<u64>,
    /// The larger share of either budget used (1.0: the window ends); none without a budget.
    pub used: Option<f64>,
}

impl WindowStatus {
    /// Why the window must end now, when a budget is spent.
    pub fn spent(&self) -> Option<String> {
        if let Some(max) = self.max_age_seconds.filter(|max| self.age_seconds >= *max) {
            return Some(format!("cutover.window_max ({max} s) passed: the window was open {} s", self.age_seconds));
        }
        match (self.held_bytes, self.max_held_bytes) {
            (Some(held), Some(max)) if held >= max => {
                Some(format!("green holds {held} bytes of WAL for the reverse stream, at or above cutover.window_max_held ({max} bytes)"))
            }
            _ => None,
        }
    }
}

/// The last error, what turnout does about it and what the operator can do.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorReport {
    pub message: String,
    /// `transient` (retried with backoff), `resync` (reconnected from the durable position) or
    /// `fatal` (stopped).
    pub class: &'static str,
    pub advice: String,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            inner: Mutex::new(Inner {
                phase: Phase::Starting,
                direction: Direction::Forward,
                names: None,
                generation: 1,
                last_error: None,
                tables: BTreeMap::new(),
                started: Instant::now(),
            }),
            applied: Mutex::new(None),
            source_end: Mutex::new(None),
            rows_applied: AtomicU64::new(0),
            transactions_applied: AtomicU64::new(0),
            buffered_bytes: AtomicU64::new(0),
            spilled_bytes: AtomicU64::new(0),
            early_committed: AtomicU64::new(0),
            early_given_up: AtomicU64::new(0),
            clock_offset_us: AtomicI64::new(0),
            lag: Mutex::new(LagModel::default()),
            slot: Mutex::new(None),
            alerts: Mutex::new(BTreeMap::new()),
            copy: Mutex::new(None),
            window: Mutex::new(None),
            watched: Mutex::new(BTreeMap::new()),
            verified: Mutex::new(None),
            canary: Mutex::new(None),
            window_ended: Mutex::new(None),
            consumers: Mutex::new(None),
        }
    }
}

impl Status {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn set_phase(&self, phase: Phase) {
        self.with(|i| i.phase = phase);
    }

    /// Starts over for the reverse stream after a cutover: its positions are green's, so everything
    /// measured of the forward stream (positions, lag, counters, slot, alerts) is forgotten.
    pub fn start_reverse(&self) {
        self.start_direction(Direction::Reverse);
    }

    /// Starts over for the stream that goes on from blue after a rollback armed it again: everything
    /// measured of the reverse stream, the rollback window and the window's watches is forgotten.
    pub fn start_again(&self) {
        self.start_direction(Direction::Forward);
        self.clear_window();
        lock(&self.watched).clear();
    }

    fn start_direction(&self, direction: Direction) {
        self.with(|i| {
            i.phase = Phase::Starting;
            i.direction = direction;
            i.names = None;
            i.last_error = None;
            i.tables.clear();
            i.started = Instant::now();
        });
        *lock(&self.applied) = None;
        *lock(&self.source_end) = None;
        for counter in [&self.rows_applied, &self.transactions_applied, &self.buffered_bytes, &self.spilled_bytes, &self.early_committed, &self.early_given_up]
        {
            counter.store(0, Ordering::Relaxed);
        }
        self.clock_offset_us.store(0, Ordering::Relaxed);
        *lock(&self.lag) = LagModel::default();
        *lock(&self.slot) = None;
        lock(&self.alerts).clear();
    }

    /// What the sidecar is doing now.
    pub fn phase(&self) -> Phase {
        self.with(|i| i.phase)
    }

    /// Which way changes flow now.
    pub fn direction(&self) -> Direction {
        self.with(|i| i.direction)
    }

    /// Which generation of the stream runs ([`Snapshot::generation`]).
    pub fn set_generation(&self, generation: u32) {
        self.with(|i| i.generation = generation);
    }

    pub fn set_names(&self, names: crate::names::Names) {
        self.with(|i| i.names = Some(names));
    }

    pub fn set_error(&self, error: Option<ErrorReport>) {
        self.with(|i| i.last_error = error);
    }

    /// Records the durable position on green: transactions up to it stop counting as lag. Never
    /// moves back.
    pub fn set_applied(&self, position: &Position) {
        {
            let mut applied = lock(&self.applied);
            match applied.as_ref() {
                // Kept only when known to be at or past it: the proof then finds any unordered pair.
                Some(a) if a.try_cmp(position).is_ok_and(std::cmp::Ordering::is_ge) => return,
                _ => *applied = Some(position.clone()),
            }
        }
        let mut lag = lock(&self.lag);
        // A pending transaction not known to be covered stays pending (counted as lag).
        while lag.pending.front().is_some_and(|(end, _)| end.try_cmp(position).is_ok_and(std::cmp::Ordering::is_le)) {
            if let Some((_, ts)) = lag.pending.pop_front() {
                if lag.newest_durable_commit.is_none_or(|c| ts > c) {
                    lag.newest_durable_commit = Some(ts);
                }
            }
        }
        let now = Instant::now();
        match lag.rate_from.take() {
            None => lag.rate_from = Some((now, position.clone())),
            Some((at, from)) => {
                let secs = now.duration_since(at).as_secs_f64();
                if secs >= 0.5 {
                    if let Some(bytes) = position.bytes_since(&from) {
                        let rate = bytes as f64 / secs;
                        // Smooth over a few seconds.
                        lag.bytes_per_second = if lag.bytes_per_second == 0.0 { rate } else { 0.7 * lag.bytes_per_second + 0.3 * rate };
                    }
                    lag.rate_from = Some((now, position.clone()));
                } else {
                    lag.rate_from = Some((at, from));
                }
            }
        }
    }

    /// A source transaction was received (commit end and commit time on blue's clock).
    pub fn transaction_received(&self, commit_end: &Position, commit_ts: Timestamp) {
        if lock(&self.applied).as_ref().is_none_or(|a| !a.try_cmp(commit_end).is_ok_and(std::cmp::Ordering::is_ge)) {
            let mut lag = lock(&self.lag);
            // A binlog's timestamps are whole seconds and mark when a statement began, up to a second
            // (or a long transaction) before its commit; the commit came after the heartbeat received
            // before it, whose time is exact — the later of the two is the closer bound.
            let ts = match (commit_end, lag.stream_heartbeat) {
                (Position::Binlog(_), Some(h)) => commit_ts.max(h),
                _ => commit_ts,
            };
            lag.pending.push_back((commit_end.clone(), ts));
        }
    }

    /// A heartbeat written on blue at `ts` (blue's clock) was received.
    pub fn heartbeat_received(&self, ts: Timestamp) {
        let mut lag = lock(&self.lag);
        if lag.newest_heartbeat.is_none_or(|h| ts > h) {
            lag.newest_heartbeat = Some(ts);
        }
        if lag.stream_heartbeat.is_none_or(|h| ts > h) {
            lag.stream_heartbeat = Some(ts);
        }
    }

    /// Forgets received-but-unapplied transactions (the stream restarted; they will be received again,
    /// and may have committed before the heartbeats seen so far).
    pub fn stream_restarted(&self) {
        let mut lag = lock(&self.lag);
        lag.pending.clear();
        lag.stream_heartbeat = None;
    }

    /// Blue's clock minus this machine's, in microseconds.
    pub fn set_clock_offset(&self, micros: i64) {
        self.clock_offset_us.store(micros, Ordering::Relaxed);
    }

    pub fn set_slot(&self, slot: Option<SlotHealth>) {
        *lock(&self.slot) = slot;
    }

    /// The slot as blue last reported it.
    pub fn slot(&self) -> Option<SlotHealth> {
        lock(&self.slot).clone()
    }

    /// The reverse stream runs in a rollback window opened at `opened_at_us` with `budget`.
    pub fn set_window(&self, opened_at_us: i64, budget: crate::config::WindowBudget) {
        *lock(&self.window) = Some((opened_at_us, budget));
    }

    /// The rollback window ended (or the reverse stream stopped): nothing more to show.
    pub fn clear_window(&self) {
        *lock(&self.window) = None;
        lock(&self.alerts).remove("window");
    }

    /// The rollback window ended on its own (its budget, `why`): the alert task says so once.
    pub fn window_ended(&self, why: String) {
        let level = lock(&self.alerts).get("window").copied().unwrap_or(AlertLevel::Ok);
        *lock(&self.window_ended) = Some((why, level));
    }

    /// Why the window ended on its own and the alert's level then, once.
    pub fn take_window_ended(&self) -> Option<(String, AlertLevel)> {
        lock(&self.window_ended).take()
    }

    /// The rollback window now; none outside it.
    pub fn window(&self) -> Option<WindowStatus> {
        let (opened_at_us, budget) = (*lock(&self.window))?;
        let age = u64::try_from(now_micros().saturating_sub(opened_at_us) / 1_000_000).unwrap_or(0);
        let held = lock(&self.slot).as_ref().map(|slot| slot.retained_bytes);
        let max_age = budget.max_age.map(|d| d.as_secs());
        let shares = [max_age.map(|max| age as f64 / max.max(1) as f64), held.zip(budget.max_held_bytes).map(|(held, max)| held as f64 / max.max(1) as f64)];
        Some(WindowStatus {
            opened_at: crate::duration::rfc3339(opened_at_us),
            age_seconds: age,
            max_age_seconds: max_age,
            held_bytes: held,
            max_held_bytes: budget.max_held_bytes,
            used: shares.into_iter().flatten().reduce(f64::max),
        })
    }

    /// Changes what `/status` shows of `side`'s watch.
    pub fn update_watch(&self, side: foreign::Side, f: impl FnOnce(&mut foreign::Watched)) {
        f(lock(&self.watched).entry(side).or_default());
    }

    /// `side`'s watch, if it is watched.
    pub fn watched(&self, side: foreign::Side) -> Option<foreign::Watched> {
        lock(&self.watched).get(&side).cloned()
    }

    /// Every side's watch.
    pub fn watches(&self) -> BTreeMap<foreign::Side, foreign::Watched> {
        lock(&self.watched).clone()
    }

    /// Changes what `/status` shows of the continuous verify (turning it on).
    pub fn update_verified(&self, f: impl FnOnce(&mut verified::Verified)) {
        f(lock(&self.verified).get_or_insert_with(Default::default));
    }

    /// The continuous verify, when on.
    pub fn verified(&self) -> Option<verified::Verified> {
        lock(&self.verified).clone()
    }

    /// Shows the read canary as it stands.
    pub fn set_canary(&self, canary: Option<crate::canary_plan::CanaryStatus>) {
        *lock(&self.canary) = canary;
    }

    pub fn canary(&self) -> Option<crate::canary_plan::CanaryStatus> {
        lock(&self.canary).clone()
    }

    /// Records the current level of alert `name`.
    pub fn set_alert(&self, name: &str, level: AlertLevel) {
        lock(&self.alerts).insert(name.to_owned(), level);
    }

    /// Lag in seconds against blue's clock; see [`Snapshot::lag_seconds`].
    pub fn lag_seconds(&self) -> Option<f64> {
        let blue_now = now_micros() + self.clock_offset_us.load(Ordering::Relaxed);
        let lag = lock(&self.lag);
        let reference = match lag.pending.front() {
            Some((_, ts)) => *ts,
            None => lag.newest_heartbeat.max(lag.newest_durable_commit)?,
        };
        Some((blue_now - reference.0).max(0) as f64 / 1e6)
    }

    /// The position durable on green, once known.
    pub fn applied(&self) -> Option<Position> {
        lock(&self.applied).clone()
    }

    /// How far the source's log reaches (never moves back within one log).
    pub fn set_source_end(&self, position: &Position) {
        let mut end = lock(&self.source_end);
        if end.as_ref().is_none_or(|e| !position.try_cmp(e).is_ok_and(std::cmp::Ordering::is_le)) {
            *end = Some(position.clone());
        }
    }

    pub fn add_applied(&self, transactions: u64, rows: u64) {
        self.transactions_applied.fetch_add(transactions, Ordering::Relaxed);
        self.rows_applied.fetch_add(rows, Ordering::Relaxed);
    }

    /// A transaction applied early is being committed.
    pub fn early_committed(&self) {
        self.early_committed.fetch_add(1, Ordering::Relaxed);
    }

    /// A transaction's early apply was given up.
    pub fn early_given_up(&self) {
        self.early_given_up.fetch_add(1, Ordering::Relaxed);
    }

    /// Memory held for uncommitted transactions, and bytes spilled so far.
    pub fn set_buffered(&self, buffered: u64, spilled_total: u64) {
        self.buffered_bytes.store(buffered, Ordering::Relaxed);
        self.spilled_bytes.store(spilled_total, Ordering::Relaxed);
    }

    /// Blue's downstream consumers, as just looked at.
    pub fn set_consumers(&self, consumers: Vec<consumers::Consumer>) {
        *lock(&self.consumers) = Some(consumers);
    }

    /// A consistent copy for `/status`.
    pub fn snapshot(&self) -> Snapshot {
        let lag_seconds = self.lag_seconds();
        let (apply_bytes_per_second, pending_transactions) = {
            let lag = lock(&self.lag);
            (lag.bytes_per_second, lag.pending.len())
        };
        let slot = lock(&self.slot).clone();
        let alerts = lock(&self.alerts).clone();
        let applied = self.applied();
        let rows = self.rows_applied.load(Ordering::Relaxed);
        let source_end = lock(&self.source_end).clone();
        let lag_bytes = match (&source_end, &applied) {
            (Some(end), Some(applied)) => end.bytes_since(applied).unwrap_or(0),
            _ => 0,
        };
        let show = |p: &Option<Position>| p.as_ref().map(ToString::to_string).unwrap_or_default();
        let verify_hold = "idle";
        let copy = self.copy_progress();
        let window = self.window();
        let rogue_writes = self.watches();
        let continuous_verify = self.verified();
        let canary = self.canary();
        let consumers = lock(&self.consumers).clone();
        self.with(|i| {
            let secs = i.started.elapsed().as_secs_f64().max(0.001);
            Snapshot {
                phase: i.phase,
                direction: i.direction,
                traffic: "unknown",
                settling: false,
                applied_position: show(&applied),
                source_position: show(&source_end),
                lag_bytes,
                lag_seconds,
                predicted_drain_seconds: (apply_bytes_per_second > 0.0).then(|| lag_bytes as f64 / apply_bytes_per_second),
                apply_bytes_per_second,
                slot,
                rows_applied: rows,
                transactions_applied: self.transactions_applied.load(Ordering::Relaxed),
                rows_per_second: rows as f64 / secs,
                buffered_bytes: self.buffered_bytes.load(Ordering::Relaxed),
                pending_transactions,
                spilled_bytes_total: self.spilled_bytes.load(Ordering::Relaxed),
                early_committed_total: self.early_committed.load(Ordering::Relaxed),
                early_given_up_total: self.early_given_up.load(Ordering::Relaxed),
                names: i.names.clone(),
                generation: i.generation,
                tables: i.tables.clone(),
                copy,
                last_error: i.last_error.clone(),
                alerts,
                verify_hold,
                window,
                rogue_writes,
                continuous_verify,
                canary,
                consumers,
            }
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// This machine's clock, microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::Lsn;

    fn ago(secs: i64) -> Timestamp {
        Timestamp(now_micros() - secs * 1_000_000)
    }

    #[test]
    fn lag_is_the_oldest_pending_commit_then_the_newest_durable_commit_or_heartbeat() {
        let status = Status::default();
        assert_eq!(status.lag_seconds(), None);
        status.heartbeat_received(ago(60));
        status.transaction_received(&Position::Pg(Lsn(100)), ago(40));
        status.transaction_received(&Position::Pg(Lsn(200)), ago(20));
        let lag = status.lag_seconds().expect("lag");
        assert!((40.0..41.0).contains(&lag), "oldest pending commit is 40 s old, lag {lag}");
        status.set_applied(&Position::Pg(Lsn(200)));
        // Nothing pending: green holds everything up to the commit 20 s ago, newer than the heartbeat.
        let lag = status.lag_seconds().expect("lag");
        assert!((20.0..21.0).contains(&lag), "newest durable commit is 20 s old, lag {lag}");
        status.heartbeat_received(ago(5));
        let lag = status.lag_seconds().expect("lag");
        assert!((5.0..6.0).contains(&lag), "newest heartbeat is 5 s old, lag {lag}");
    }

    #[test]
    fn a_binlog_transaction_counts_from_the_exact_heartbeat_before_it_not_its_whole_second() {
        let binlog = |offset| Position::Binlog(turnout_decoders::BinlogPosition { file: "b.000001".into(), offset, gtids: Default::default() });
        let status = Status::default();
        // The heartbeat row says 0.2 s ago, exactly; the transaction after it carries the whole second
        // its statement began in, here 0.9 s ago.
        status.heartbeat_received(Timestamp(now_micros() - 200_000));
        status.transaction_received(&binlog(100), Timestamp(now_micros() - 900_000));
        let lag = status.lag_seconds().expect("lag");
        assert!((0.2..0.5).contains(&lag), "lag {lag}");
        // After a restart, transactions received again may be older than any heartbeat seen so far.
        status.stream_restarted();
        status.transaction_received(&binlog(100), Timestamp(now_micros() - 900_000));
        let lag = status.lag_seconds().expect("lag");
        assert!((0.9..1.2).contains(&lag), "lag {lag}");
        // PostgreSQL's commit times are exact: a heartbeat never moves them.
        let pg = Status::default();
        pg.heartbeat_received(Timestamp(now_micros() - 200_000));
        pg.transaction_received(&Position::Pg(Lsn(100)), Timestamp(now_micros() - 900_000));
        assert!(pg.lag_seconds().expect("lag") >= 0.9);
    }
}
