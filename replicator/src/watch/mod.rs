//! Watching for writes that are not turnout's: on **green before the cutover** (an application
//! pointed at green too early, a migration run on the wrong side) and on **blue in the rollback
//! window** (a client that bypassed the switch — a split brain).
//!
//! A watched side's log is read by the pipeline into a [`Recording`](turnout_sinks::record::Recording)
//! sink, after the stream dropped what turnout itself wrote there (PostgreSQL: the changes replayed
//! through turnout's replication origin). Every change left is a foreign write: recorded here in the
//! state store (synced, before the side's log is acknowledged past it), shown on `/status` and in
//! metrics, raised as the critical `rogue_writes` alert, and — until the operator acknowledges it
//! (`turnout rogue-writes --acknowledge`) — it refuses the cutover (green) or `turnout finish` (blue).
//!
//! Guarantees:
//! - A foreign write is counted once: a replay after a crash re-reads only what the record's position
//!   does not cover.
//! - The cutover's gate is read inside the write pause after green proved the sentinel, once the
//!   watch has read green's log past a mark written then ([`caught_up`]): no foreign write committed
//!   before the switch escapes it.

pub mod task;

use crate::error::{Error, WatchRefusal};
use crate::state::StateStore;
use crate::state::StoreError;
use crate::status::foreign::{Side, SHOWN};
use crate::status::Status;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;
use turnout_decoders::Position;
use turnout_sinks::record::{ForeignWrite, Ledger, LedgerError};

/// What the state store keeps of one side's watch.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Kept {
    pub seen: u64,
    pub acknowledged: u64,
    /// The oldest unacknowledged foreign writes (at most [`SHOWN`]).
    pub unacknowledged: Vec<ForeignWrite>,
    /// Every foreign write up to here is counted.
    pub through: Option<Position>,
}

/// One process's writers of the records: the watch task and an acknowledgement may meet.
static WRITING: Mutex<()> = Mutex::new(());

fn writing() -> std::sync::MutexGuard<'static, ()> {
    WRITING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `side` is watched in this sidecar: `[watch]` asks for it and the source family can.
pub fn wanted(config: &crate::config::Config, side: Side) -> bool {
    let asked = match side {
        Side::Green => config.watch.green,
        Side::Blue => config.watch.blue,
    };
    asked && crate::source::family::of(config).watches(side)
}

/// The state of a watch whose side's server cannot be watched at all (the watch is not built for
/// it): the side counts as not watched ([`watching`]).
pub const UNAVAILABLE: &str = "unavailable";

/// Whether `side` is watched now: [`wanted`], and its server is not one the watch is unavailable for.
pub fn watching(config: &crate::config::Config, status: &Status, side: Side) -> bool {
    wanted(config, side) && status.watched(side).is_none_or(|w| w.state != UNAVAILABLE)
}

/// Drops what the watches of `sides` hold on the servers, if anything (best effort).
pub async fn drop_objects(config: &crate::config::Config, forward: &crate::source::Names, sides: &[Side]) {
    for &side in sides {
        crate::source::family::of(config).drop_watch(config, forward, side).await;
    }
}

/// Moves what `/status` shows as read up to `at`, never back (nor to a position it cannot order
/// against where it stands: the watch then never shows itself caught up).
fn read_to(w: &mut crate::status::foreign::Watched, at: &Position) {
    if w.through.as_ref().is_none_or(|t| at.try_cmp(t).is_ok_and(std::cmp::Ordering::is_gt)) {
        w.through = Some(at.clone());
        w.read_through = Some(at.to_string());
    }
}

/// What the state store keeps of `side`'s watch.
pub fn load(state: &StateStore, side: Side) -> Result<Kept, Error> {
    match state.watch_record(side)? {
        None => Ok(Kept::default()),
        Some(bytes) => Ok(serde_json::from_slice(&bytes).map_err(StoreError::corrupt("watch record"))?),
    }
}

fn save(state: &StateStore, side: Side, kept: &Kept) -> Result<(), Error> {
    let json = serde_json::to_vec(kept).map_err(StoreError::encode("the watch record"))?;
    state.put_watch_record(side, &json)
}

/// Shows `kept` on `/status` for `side`.
pub fn show(status: &Status, side: Side, kept: &Kept) {
    status.update_watch(side, |w| {
        w.seen = kept.seen;
        w.acknowledged = kept.acknowledged;
        w.unacknowledged = kept.unacknowledged.clone();
        if let Some(at) = &kept.through {
            read_to(w, at);
        }
    });
}

/// The watch's [`Ledger`]: foreign writes into the state store (synced), then onto `/status`.
pub struct StoreLedger {
    pub side: Side,
    pub state: StateStore,
    pub status: Arc<Status>,
}

impl StoreLedger {
    /// Records where a watch that never read before starts (synced), so a restart reads on from
    /// there — never from wherever the side's log ends by then.
    pub fn begin_at(&self, start: &Position) -> Result<(), Error> {
        let _writing = writing();
        let mut kept = load(&self.state, self.side)?;
        if kept.through.is_none() {
            kept.through = Some(start.clone());
            save(&self.state, self.side, &kept)?;
        }
        Ok(())
    }

    /// Counts `writes`, read through `through`, once: synced into the state store, then shown.
    fn count(&self, writes: &[ForeignWrite], through: &Position) -> Result<(), Error> {
        // turnout's heartbeat row (written on blue without an origin until the forward stream's
        // heartbeat stops after a cutover) is its own.
        let heartbeat = |w: &ForeignWrite| w.table.rsplit('.').next() == Some(crate::source::HEARTBEAT_TABLE);
        let writes: Vec<ForeignWrite> = writes.iter().filter(|w| !heartbeat(w)).cloned().collect();
        // After the switch only what committed before the watch closed is foreign.
        let closed = self
            .status
            .watched(self.side)
            .is_some_and(|w| w.state == "closed" && w.closed_at.as_ref().is_none_or(|at| through.try_cmp(at).is_ok_and(std::cmp::Ordering::is_gt)));
        if writes.is_empty() || closed {
            return Ok(());
        }
        let _writing = writing();
        let mut kept = load(&self.state, self.side)?;
        if kept.through.as_ref().is_some_and(|t| through.try_cmp(t).is_ok_and(std::cmp::Ordering::is_le)) {
            // Already counted before a crash or a reconnect.
            return Ok(());
        }
        kept.seen += writes.len() as u64;
        let room = SHOWN.saturating_sub(kept.unacknowledged.len());
        kept.unacknowledged.extend(writes.iter().take(room).cloned());
        kept.through = Some(through.clone());
        save(&self.state, self.side, &kept)?;
        for w in writes.iter().take(5) {
            tracing::error!(side = %self.side, table = %w.table, key = %w.key, kind = %w.kind, "a write on {} that turnout did not make: {} {} {}", self.side, w.kind, w.table, w.key);
        }
        show(&self.status, self.side, &kept);
        Ok(())
    }
}

impl StoreLedger {
    /// [`Ledger::record`] with turnout's error.
    pub fn record_writes(&self, writes: &[ForeignWrite], through: &Position) -> Result<(), Error> {
        // Most calls carry nothing (turnout's own transactions, filtered): they only move the position.
        if !writes.is_empty() {
            self.count(writes, through)?;
        }
        // With nothing to count, how far the log was read is only shown: replaying it adds nothing.
        self.status.update_watch(self.side, |w| read_to(w, through));
        Ok(())
    }
}

impl Ledger for StoreLedger {
    fn record(&self, writes: &[ForeignWrite], through: &Position) -> Result<(), LedgerError> {
        Ok(self.record_writes(writes, through)?)
    }
}

/// Acknowledges the foreign writes of each side in `seen` — the count the operator saw listed —
/// provided that side's count is still that: writes that arrived since were not seen, and are not
/// acknowledged. Returns one line per side with writes acknowledged.
pub fn acknowledge(state: &StateStore, status: &Status, seen: &BTreeMap<Side, u64>) -> Result<Vec<String>, Error> {
    let _writing = writing();
    let mut lines = Vec::new();
    for (&side, &listed) in seen {
        let mut kept = load(state, side)?;
        if kept.seen != listed {
            return Err(WatchRefusal::Relisted { seen: kept.seen, side, listed }.into());
        }
        let outstanding = kept.seen.saturating_sub(kept.acknowledged);
        if outstanding == 0 {
            continue;
        }
        let named = status.watched(side).map(|w| w.describe()).unwrap_or_default();
        kept.acknowledged = kept.seen;
        kept.unacknowledged.clear();
        save(state, side, &kept)?;
        show(status, side, &kept);
        tracing::warn!(side = %side, "the operator acknowledged {outstanding} writes on {side} that turnout did not make: {named}");
        lines.push(format!("acknowledged {outstanding} writes on {side} that turnout did not make: {named}"));
    }
    Ok(lines)
}

/// Shows what the state store kept of each side's watch on `/status`, whether or not the side is
/// watched now: a write recorded and not acknowledged still refuses.
pub fn show_kept(state: &StateStore, status: &Status) -> Result<(), Error> {
    for side in [Side::Green, Side::Blue] {
        let kept = load(state, side)?;
        if kept.seen > 0 {
            show(status, side, &kept);
            status.update_watch(side, |w| {
                if w.state.is_empty() {
                    w.state = "off";
                }
            });
        }
    }
    Ok(())
}

/// Why a cutover (`Side::Green`) or `turnout finish` (`Side::Blue`) may not go on: foreign writes
/// not acknowledged, or a watch that is not reading.
pub fn refuse_outstanding(status: &Status, side: Side) -> Result<(), Error> {
    let Some(watched) = status.watched(side) else { return Ok(()) };
    if watched.outstanding() > 0 {
        let what = match side {
            Side::Green => "green differs from blue wherever they landed: reconcile them on green (or run `turnout verify`)",
            Side::Blue => "blue holds writes the application made past the switch (a split brain): carry them to green or accept their loss",
        };
        return Err(WatchRefusal::Outstanding { count: watched.outstanding(), side, writes: watched.describe(), what }.into());
    }
    Ok(())
}

/// Waits until `side`'s watch has read its log through `mark` (a position written on `side` just
/// before), up to `deadline`. Errs naming where the watch stands when it does not get there.
pub async fn caught_up(status: &Status, side: Side, mark: &Position, deadline: Instant) -> Result<(), Error> {
    loop {
        let watched = status.watched(side).unwrap_or_default();
        match watched.through.as_ref().map(|t| t.reached(mark)) {
            Some(Ok(true)) => return Ok(()),
            Some(Err(e)) => return Err(Error::during(format!("{}'s watch ordering where it read against the mark", side.name()))(e)),
            _ => {}
        }
        if Instant::now() >= deadline {
            let at = watched.read_through.unwrap_or_else(|| "nowhere yet".into());
            let why = watched.error.map(|e| format!(" ({e})")).unwrap_or_default();
            return Err(WatchRefusal::NotCaughtUp { side, at, mark: mark.to_string(), why }.into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Ends the counting on `side` at `at` — a mark written on `side` at the switch — or, without one,
/// where the watch has read: the application's writes go there from now on (a switch to that side).
/// Writes the watch reads afterwards are counted only when they committed before `at`.
pub fn close(status: &Status, side: Side, at: Option<Position>) {
    // A watch unavailable on the side's server stays so: the side was not watched.
    if status.watched(side).is_some_and(|w| w.state != UNAVAILABLE) {
        status.update_watch(side, |w| {
            w.state = "closed";
            w.closed_at = at.or_else(|| w.through.clone());
        });
    }
}

/// How far `side`'s log is shown free of uncounted foreign writes: how far the watch read, and once
/// it closed no further than where it closed (none when it is not watched or never read).
pub fn counted_through(status: &Status, side: Side) -> Option<Position> {
    let w = status.watched(side)?;
    match (w.through, w.closed_at) {
        // Only as far as both say: a watch that read past the mark is counted to the mark, one that
        // did not (or whose position does not compare with it) to where it read.
        (Some(through), Some(closed)) if w.state == "closed" => {
            Some(if closed.try_cmp(&through).is_ok_and(std::cmp::Ordering::is_le) { closed } else { through })
        }
        (through, _) => through,
    }
}

/// What a certificate says of the watch on `side`: none when `side` is not watched.
pub fn summary(status: &Status, side: Side) -> Option<(u64, u64)> {
    status.watched(side).map(|w| (w.seen, w.acknowledged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::Lsn;

    fn write(key: &str) -> ForeignWrite {
        ForeignWrite { table: "public.t".into(), kind: "insert".into(), key: key.into(), commit: "0/10".into(), index: 0, committed_at_us: 0 }
    }

    #[tokio::test]
    async fn writes_are_counted_once_refuse_until_acknowledged_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("test");
        let status = Arc::new(Status::default());
        {
            let state = StateStore::open(dir.path()).expect("test");
            let ledger = StoreLedger { side: Side::Green, state: state.clone(), status: Arc::clone(&status) };
            assert!(refuse_outstanding(&status, Side::Green).is_ok());
            ledger.record(&[], &Position::Pg(Lsn(5))).expect("test");
            ledger.record(&[write("(id=1)"), write("(id=2)")], &Position::Pg(Lsn(10))).expect("test");
            // A replay of what was counted (a reconnect from an older position) counts nothing.
            ledger.record(&[write("(id=1)")], &Position::Pg(Lsn(10))).expect("test");
            let e = refuse_outstanding(&status, Side::Green).expect_err("test").to_string();
            assert!(e.starts_with("2 writes on green") && e.contains("public.t (id=1) insert, public.t (id=2) insert") && e.contains("--acknowledge"), "{e}");
            assert!(refuse_outstanding(&status, Side::Blue).is_ok(), "blue is not watched");
            let deadline = Instant::now() + Duration::from_millis(50);
            assert!(caught_up(&status, Side::Green, &Position::Pg(Lsn(10)), deadline).await.is_ok());
            let e = caught_up(&status, Side::Green, &Position::Pg(Lsn(11)), deadline).await.expect_err("test").to_string();
            assert!(e.contains("not to 0/B"), "{e}");
        }
        let state = StateStore::open(dir.path()).expect("test");
        let kept = load(&state, Side::Green).expect("test");
        assert_eq!((kept.seen, kept.acknowledged, kept.unacknowledged.len()), (2, 0, 2));
        let fresh = Status::default();
        show(&fresh, Side::Green, &kept);
        assert!(refuse_outstanding(&fresh, Side::Green).is_err(), "a restart still refuses");
        let stale = BTreeMap::from([(Side::Green, 1)]);
        let e = acknowledge(&state, &fresh, &stale).expect_err("a count that moved is refused").to_string();
        assert!(e.contains("2 writes on green") && e.contains("not the 1 you listed"), "{e}");
        let listed = BTreeMap::from([(Side::Green, 2)]);
        let lines = acknowledge(&state, &fresh, &listed).expect("test");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(refuse_outstanding(&fresh, Side::Green).is_ok());
        assert_eq!(load(&state, Side::Green).expect("test").acknowledged, 2);
        assert!(acknowledge(&state, &fresh, &listed).expect("test").is_empty(), "nothing left to acknowledge");
    }
}
