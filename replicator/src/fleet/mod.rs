//! Fleets: N blue → green pairs cut over as one decision, kept by etcd (decision record 0015).
//!
//! A coordinator (`turnout fleet cutover`, [`crate::control::fleet`]) asks every pair's sidecar for a cutover
//! carrying a [`Ticket`]. Each sidecar, once its checks before the fence passed, says it is ready
//! and fences only when the coordinator says `go` (so the fences go up together); fenced and
//! proven, it journals that it holds, votes `prepared` in etcd and **holds** — fenced, proven, not
//! switched — until the fleet's decision key reads `commit` (it switches) or `abort` (it undoes its
//! fence). The coordinator turns the decision from `preparing` to `commit` in one etcd transaction
//! only while every vote reads `prepared`; anyone may turn it to `abort`. A sidecar whose hold runs
//! out tries the abort itself; whichever transaction wins, every pair follows the one value — the
//! fleet ends all switched or all back on blue. A sidecar that cannot read the decision does not
//! guess: it keeps holding (blue fenced) and says so until etcd answers; killed while holding, it
//! settles from its journal and the decision when it restarts ([`settle`]).

pub mod config;
pub mod etcd;

use crate::error::{Error, FleetRefusal};
use etcd::{Changes, Decision, Ledger};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// What a sidecar's cutover request carries when it is one pair of a fleet cutover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    /// The fleet's name.
    pub fleet: String,
    /// The fleet cutover's id (its keys in etcd).
    pub id: String,
    /// This pair's name in the fleet.
    pub pair: String,
}

impl Ticket {
    /// Refuses a ticket whose names could not be the fleet's keys (empty, or with a `/`).
    pub fn validate(&self) -> Result<(), Error> {
        let ok = |s: &str| !s.is_empty() && !s.contains('/') && s.chars().all(|c| c.is_ascii_graphic());
        if ok(&self.fleet) && ok(&self.id) && ok(&self.pair) {
            Ok(())
        } else {
            Err(FleetRefusal::BadTicket { ticket: format!("{self:?}") }.into())
        }
    }
}

/// A fleet vote a sidecar journaled before casting it: what a restart settles from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub ticket: Ticket,
    /// Until when the sidecar holds before it tries to abort the fleet itself (milliseconds since
    /// the epoch); 0 before it voted (journaled when it joined, before its fence).
    pub hold_until_ms: i64,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    crate::status::now_micros() / 1000
}

/// The sidecar's ledger for `ticket`, from its `[fleet.etcd]`; refused without one.
pub async fn ledger(config: &crate::config::Config, ticket: &Ticket) -> Result<Ledger, Error> {
    let Some(etcd) = &config.fleet.etcd else {
        return Err(FleetRefusal::NoEtcd { pair: ticket.pair.clone(), fleet: ticket.fleet.clone() }.into());
    };
    Ok(Ledger::new(etcd::connect(etcd).await?, &ticket.fleet, &ticket.id).with_members(etcd))
}

/// Waits for the fleet's decision to be made, up to `until` (watching the keys with `changes`,
/// opened before any read of them); then tries to abort the fleet itself, and follows whichever
/// transaction won. While etcd cannot be reached — or the decision key is missing, which nobody
/// may read as either outcome — it keeps trying, past the hold, saying so through `say` (at most
/// every 5 s), and never guesses: the decision it returns is the one etcd holds.
///
/// With `voter`, the pair that voted: its vote gone while the fleet still prepares (its lease
/// expired — the sidecar stalled longer than the lease's time to live) returns `Preparing`, before
/// the hold ran out, so that the pair votes again rather than letting the fleet abort for want of it.
pub async fn await_decision(ledger: &mut Ledger, mut changes: Changes, until: Instant, say: &(dyn Fn(String) + Sync), voter: Option<&str>) -> Decision {
    const REPEAT: Duration = Duration::from_secs(5);
    let mut said: Option<Instant> = None;
    let mut say_again = |line: String| {
        if said.is_none_or(|at| at.elapsed() >= REPEAT) {
            say(line);
            said = Some(Instant::now());
        }
    };
    loop {
        match ledger.view().await {
            Ok(view) => {
                match view.decision {
                    Some(Decision::Commit) => return Decision::Commit,
                    Some(Decision::Abort) => return Decision::Abort,
                    _ if Instant::now() >= until => {}
                    _ if voter.is_some_and(|pair| !view.votes.contains_key(pair)) => return Decision::Preparing,
                    _ => {
                        changes.next(until).await;
                        continue;
                    }
                }
                // The hold ran out without a decision: abort the fleet, unless it was just decided.
                match ledger.abort().await {
                    Ok((decision, _)) if decision != Decision::Preparing => {
                        if decision == Decision::Abort {
                            say("the hold ran out without the fleet's decision: this pair aborted the fleet".into());
                        }
                        return decision;
                    }
                    Ok(_) => {}
                    Err(e) => say_again(format!("aborting the fleet after the hold failed ({e}); trying again — the fence stays until etcd answers")),
                }
            }
            Err(e) => {
                say_again(format!("the fleet's decision cannot be read ({e}); this pair holds — it never switches or undoes on a guess — and tries again"))
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// At restart, for a journal that holds a fleet vote: the fleet's decision, waited for as the hold
/// would have (the abort tried once the hold ran out). An error only when etcd cannot be reached
/// at first (or `[fleet.etcd]` is gone): the fence stays, and the next restart asks again.
pub async fn settle(config: &crate::config::Config, held: &Held) -> Result<Decision, Error> {
    let mut ledger = ledger(config, &held.ticket).await?;
    let changes = ledger.changes().await;
    // One read first: an unreachable etcd fails the restart instead of waiting for ever.
    ledger.view().await?;
    let left = Duration::from_millis(u64::try_from(held.hold_until_ms - now_ms()).unwrap_or(0));
    let say = |line: String| tracing::warn!("{line}");
    Ok(await_decision(&mut ledger, changes, Instant::now() + left, &say, None).await)
}

/// At restart, for a journal of a pair that joined a fleet and did not vote (its fence is being
/// undone): aborts the fleet, bounded and best effort, so that the others need not wait out their
/// holds.
pub async fn abandon(config: &crate::config::Config, ticket: &Ticket) {
    let aborted = tokio::time::timeout(Duration::from_secs(5), async { ledger(config, ticket).await?.abort().await }).await;
    match aborted {
        Ok(Ok((decision, _))) => {
            tracing::warn!(fleet = %ticket.fleet, "this pair will not vote after its restart; the fleet's decision is {}", decision.as_str())
        }
        _ => tracing::warn!(fleet = %ticket.fleet, "this pair will not vote after its restart; aborting the fleet failed (its holds abort it)"),
    }
}
