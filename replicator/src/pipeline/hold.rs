//! A hold on the apply at one source position, for `turnout verify --live`: green is made to show
//! exactly the transactions blue's verify snapshot shows, for as long as it takes verify to take its
//! snapshots of green, and then applying goes on.
//!
//! The exchange (each step over `POST /verify/hold`):
//! 1. **arm** (optional) — the pipeline accepts no transaction it has not accepted yet (the batch in
//!    flight completes; the stream keeps being kept alive). Everything accepted so far committed on
//!    blue before verify's snapshot is taken, so it belongs on green.
//! 2. **at** a position (the consistent point of verify's temporary slot on blue) — transactions whose
//!    commit ends at or before it are applied; at the first one beyond it, or at a heartbeat beyond it
//!    (nothing before it is still to come), everything accepted is applied and the hold is
//!    **reached**: green shows blue's snapshot exactly. Without arming first, the pipeline may already
//!    have accepted a transaction beyond the position: the hold has **passed** it and ends (verify then
//!    starts over, arming first).
//! 3. **release** — after verify's green sessions took their snapshots, applying goes on.
//!
//! Guarantees: a hold never changes what is applied or in which order, only when. Every stage
//! expires (each step gives its time to live, at most [`MAX_TTL`]), so a verify that dies never
//! stops replication for longer than that. One hold at a time.

use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use turnout_decoders::Position;

/// The longest any stage may last.
pub const MAX_TTL: Duration = Duration::from_secs(120);

/// How long green stays held once the position is reached: verify only begins its green sessions'
/// transactions then.
pub const REACHED_TTL: Duration = Duration::from_secs(5);

/// Where a hold stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Stage {
    /// No hold: apply as usual.
    #[default]
    Idle,
    /// Accept nothing new until the position is known. `holder` names the verify that armed it (it
    /// may arm again to extend the time to live while blue creates its slot).
    Armed { until: Instant, holder: String },
    /// Apply up to `position` and stop before anything beyond it.
    At { position: Position, until: Instant },
    /// Green shows exactly the source's transactions up to `position`; `committed` is the last one
    /// applied.
    Reached { position: Position, committed: Position, until: Instant },
    /// The pipeline had accepted a transaction beyond `position` (not armed): applying as usual.
    Passed { position: Position, until: Instant },
}

/// Why a step of the hold was refused or gave up; each is answered `409 Conflict`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HoldError {
    /// Another live verify holds the apply (its hold is at `stage`).
    #[error("another live verify's hold is {stage}; try again when it is done")]
    Busy { stage: &'static str },
    /// The hold left `at` (it expired or was released) before green reached the position.
    #[error("the hold is {stage} before green reached {position}")]
    Ended { stage: &'static str, position: Position },
    /// The pipeline that obeys the hold stopped.
    #[error("the pipeline is gone")]
    PipelineGone,
    /// Green did not reach the position in time.
    #[error("green did not reach {position} within {within:?} (is replication running and blue reachable?)")]
    NotReached { position: Position, within: Duration },
}

/// How a hold at a position ended for its waiter.
#[derive(Clone, Debug, PartialEq)]
pub enum Reach {
    /// Green holds there; the last source position applied.
    Reached(Position),
    /// The pipeline had applied beyond it: start over, armed.
    Passed,
}

impl Stage {
    fn until(&self) -> Option<Instant> {
        match self {
            Stage::Idle => None,
            Stage::Armed { until, .. } | Stage::At { until, .. } | Stage::Reached { until, .. } | Stage::Passed { until, .. } => Some(*until),
        }
    }

    /// The stage's name, for `/status`.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Idle => "idle",
            Stage::Armed { .. } => "armed",
            Stage::At { .. } => "at",
            Stage::Reached { .. } => "reached",
            Stage::Passed { .. } => "passed",
        }
    }
}

/// The hold shared by the HTTP API (which moves it through its stages) and the pipeline (which obeys
/// it and reports when it is reached).
#[derive(Debug)]
pub struct Hold {
    stage: watch::Sender<Stage>,
}

impl Default for Hold {
    fn default() -> Self {
        Hold { stage: watch::Sender::new(Stage::Idle) }
    }
}

fn deadline(ttl: Duration) -> Instant {
    Instant::now() + ttl.min(MAX_TTL)
}

impl Hold {
    /// The stage now; an expired stage is Idle (and is reset, waking whoever waits).
    pub fn current(&self) -> Stage {
        let stage = self.stage.borrow().clone();
        if stage.until().is_some_and(|u| Instant::now() >= u) {
            tracing::warn!(stage = stage.name(), "a live verify's hold on the apply expired; applying goes on");
            self.stage.send_if_modified(|s| {
                let expired = s.until().is_some_and(|u| Instant::now() >= u);
                if expired {
                    *s = Stage::Idle;
                }
                expired
            });
            return Stage::Idle;
        }
        stage
    }

    /// When the current stage expires.
    pub fn expires(&self) -> Option<Instant> {
        self.stage.borrow().until()
    }

    /// Watches stage changes (the pipeline wakes on them).
    pub fn subscribe(&self) -> watch::Receiver<Stage> {
        self.stage.subscribe()
    }

    /// Step 1, or extending it (same `holder`). Refused while another hold is in progress.
    pub fn arm(&self, ttl: Duration, holder: &str) -> Result<(), HoldError> {
        match self.current() {
            Stage::Idle => {}
            Stage::Armed { holder: h, .. } if h == holder => {}
            other => return Err(HoldError::Busy { stage: other.name() }),
        }
        self.stage.send_replace(Stage::Armed { until: deadline(ttl), holder: holder.to_owned() });
        Ok(())
    }

    /// Step 2: hold at `position`, armed or not. Refused while another hold is at a position.
    pub fn at(&self, position: Position, ttl: Duration) -> Result<(), HoldError> {
        match self.current() {
            Stage::Idle | Stage::Passed { .. } | Stage::Armed { .. } => {
                self.stage.send_replace(Stage::At { position, until: deadline(ttl) });
                Ok(())
            }
            other => Err(HoldError::Busy { stage: other.name() }),
        }
    }

    /// Waits until the hold at `position` is reached (or passed). Errors when the hold expired or was
    /// released first, or `within` passes.
    pub async fn wait_reached(&self, position: &Position, within: Duration) -> Result<Reach, HoldError> {
        let mut rx = self.stage.subscribe();
        let reached = tokio::time::timeout(within, async {
            loop {
                match self.current() {
                    Stage::Reached { position: p, committed, .. } if p == *position => return Ok(Reach::Reached(committed)),
                    Stage::Passed { position: p, .. } if p == *position => return Ok(Reach::Passed),
                    Stage::At { position: p, .. } if p == *position => {}
                    other => return Err(HoldError::Ended { stage: other.name(), position: position.clone() }),
                }
                // Wakes on every change; expiry is noticed by `current` on the next turn.
                let until = self.expires().unwrap_or_else(Instant::now);
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return Err(HoldError::PipelineGone) },
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
        })
        .await;
        reached.unwrap_or_else(|_| Err(HoldError::NotReached { position: position.clone(), within }))
    }

    /// Step 3, or giving up at any step: applying goes on.
    pub fn release(&self) {
        self.stage.send_replace(Stage::Idle);
    }

    /// The pipeline reports it had accepted a transaction beyond `position` before it was told to hold
    /// there. Ignored unless holding at `position`.
    pub fn passed(&self, position: &Position) {
        self.stage.send_if_modified(|s| match s {
            Stage::At { position: p, .. } if p == position => {
                *s = Stage::Passed { position: p.clone(), until: deadline(REACHED_TTL) };
                true
            }
            _ => false,
        });
    }

    /// The pipeline reports green at `position` (everything up to `committed` applied); it stays
    /// held for [`REACHED_TTL`] at most. Ignored unless holding at `position`.
    pub fn reached(&self, position: &Position, committed: Position) {
        self.stage.send_if_modified(|s| match s {
            Stage::At { position: p, .. } if p == position => {
                *s = Stage::Reached { position: p.clone(), committed, until: deadline(REACHED_TTL) };
                true
            }
            _ => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::Lsn;

    fn pos(n: u64) -> Position {
        Position::Pg(Lsn(n))
    }

    #[tokio::test]
    async fn a_hold_goes_armed_at_reached_and_released() {
        let hold = Hold::default();
        hold.at(pos(2), Duration::from_secs(5)).expect("at without arming");
        assert!(hold.at(pos(3), Duration::from_secs(5)).is_err(), "one hold at a position at a time");
        hold.passed(&pos(2));
        assert_eq!(hold.wait_reached(&pos(2), Duration::from_secs(1)).await, Ok(Reach::Passed));
        hold.release();
        hold.arm(Duration::from_secs(5), "a").expect("test step");
        hold.arm(Duration::from_secs(5), "a").expect("the holder extends its hold");
        assert!(hold.arm(Duration::from_secs(5), "b").is_err(), "one hold at a time");
        hold.at(pos(5), Duration::from_secs(5)).expect("test step");
        hold.reached(&pos(4), pos(3));
        assert!(matches!(hold.current(), Stage::At { .. }), "a report for another position is ignored");
        let waiter = async { hold.wait_reached(&pos(5), Duration::from_secs(5)).await };
        let report = async {
            tokio::task::yield_now().await;
            hold.reached(&pos(5), pos(4));
        };
        let (got, ()) = tokio::join!(waiter, report);
        assert_eq!(got, Ok(Reach::Reached(pos(4))));
        hold.release();
        assert_eq!(hold.current(), Stage::Idle);
        hold.arm(Duration::from_secs(5), "b").expect("test step");
    }

    #[tokio::test(start_paused = true)]
    async fn every_stage_expires() {
        let hold = Hold::default();
        hold.arm(Duration::from_secs(2), "a").expect("test step");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(hold.current(), Stage::Idle);
        hold.arm(Duration::from_secs(1000), "a").expect("test step");
        assert!(hold.expires().expect("test step") <= Instant::now() + MAX_TTL, "time to live is capped");
        hold.at(pos(1), Duration::from_secs(2)).expect("test step");
        let got = hold.wait_reached(&pos(1), Duration::from_secs(60)).await;
        assert_eq!(got, Err(HoldError::Ended { stage: "idle", position: pos(1) }), "a waiter learns that the hold expired");
    }
}
