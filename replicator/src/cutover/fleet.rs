//! One pair of a fleet cutover ([`crate::fleet`]): joined before the fence (its ticket journaled,
//! its vote's lease granted); ready right before the fence and fenced only on the coordinator's
//! `go`; after the proof, journaled as holding, a vote in etcd and the hold for the fleet's
//! decision; then the switch (the fence checked first, and fenced and proven again if it was lost)
//! or the undo; what it did, written back for the coordinator.

use super::run::{Pause, Proof};
use super::{lock, Controller, Journal, Request, Step};
use crate::error::{Error, FleetRefusal};
use crate::fleet::etcd::{Changes, Decision, LeaseHandle, Ledger, Outcome, Prepared};
use crate::fleet::{now_ms, Held, Ticket};
use crate::source::contract::marker::Marker;
use crate::source::contract::procedure::Procedure;
use std::time::{Duration, Instant};
use turnout_cutover::TrafficSwitch;

/// The vote's lease: a sidecar gone this long without renewing it loses its vote, and a decision
/// not yet made can then only be `abort`.
const VOTE_TTL_S: i64 = 5;

/// How long a pair that will not vote (it failed before or after its fence) tries to abort the
/// fleet, so that the others need not wait out their holds.
const ABANDON_WAIT: Duration = Duration::from_secs(5);

/// A pair's place in a fleet cutover while it runs.
pub(super) struct Pair {
    pub ticket: Ticket,
    ledger: Ledger,
    /// The vote's lease, granted before the fence and kept alive while the sidecar holds.
    lease: LeaseHandle,
    /// Every pair of the fleet (its record's), read once every pair was ready.
    pairs: Vec<String>,
    /// The watch on the fleet's keys, open since before the ready wait.
    changes: Option<Changes>,
}

impl Controller {
    /// Before the fence, with the checks done (a cutover's or a rollback's): refuses one without a
    /// fence (nothing would hold writes while the fleet decides), reaches the fleet's
    /// etcd, grants the vote's lease and journals the ticket with the next step.
    pub(super) async fn fleet_join<P: Procedure>(&self, procedure: &P, journal: &mut Journal, ticket: &Ticket, request: &Request) -> Result<Pair, Error> {
        if procedure.fence_kind() == crate::config::Fence::None && !request.dry_run {
            return Err(FleetRefusal::NeedsFence.into());
        }
        ticket.validate()?;
        let mut ledger = crate::fleet::ledger(&self.config, ticket).await?;
        let lease = ledger.lease(VOTE_TTL_S).await?;
        journal.fleet = Some(Held { ticket: ticket.clone(), hold_until_ms: 0 });
        Ok(Pair { ticket: ticket.clone(), ledger, lease, pairs: Vec::new(), changes: None })
    }

    /// Right before the fence (the stream the switch hands off to already armed): says this pair is
    /// ready and waits for the coordinator's `go` (every pair ready) within `timeout`, so that the
    /// fleet's fences go up together; then checks once more that lag is under `--when-lag` (the
    /// wait may have been long). An `abort` decided meanwhile, no `go` in time, or lag grown, ends
    /// the cutover before anything is fenced.
    pub(super) async fn fleet_ready(&self, pair: &mut Pair, id: &str, request: &Request) -> Result<(), Error> {
        let timeout = Duration::from_millis(request.timeout_ms);
        let Pair { ticket, ledger, pairs, changes, .. } = pair;
        let watch = changes.insert(ledger.changes().await);
        ledger.put(&format!("ready/{}", ticket.pair), id).await?;
        self.say(format!("ready as pair {:?} of fleet {:?} ({}); waiting for every pair to be ready", ticket.pair, ticket.fleet, ticket.id));
        let until = Instant::now() + timeout;
        loop {
            let view = ledger.view().await?;
            match view.decision {
                Some(Decision::Preparing) if view.go => {
                    let listed = view.record.as_ref().and_then(|r| r["pairs"].as_array().cloned()).unwrap_or_default();
                    *pairs = listed.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect();
                    // The last vote commits only with every pair's: a record without this pair is not this fleet's.
                    if !pairs.contains(&ticket.pair) {
                        return Err(FleetRefusal::NotListed { id: ticket.id.clone(), pair: ticket.pair.clone() }.into());
                    }
                    break;
                }
                Some(Decision::Preparing) => {}
                Some(d) => return Err(FleetRefusal::DecidedEarly { decision: d.as_str() }.into()),
                None => return Err(FleetRefusal::Undecided { id: ticket.id.clone() }.into()),
            }
            if Instant::now() >= until {
                return Err(FleetRefusal::NotReady { fleet: ticket.fleet.clone(), timeout_s: timeout.as_secs() }.into());
            }
            watch.next(until).await;
        }
        let lag = self.status.lag_seconds();
        if !lag.is_some_and(|l| l * 1000.0 < request.when_lag_ms as f64) {
            let lag = lag.map_or("unknown".into(), |l| format!("{l:.3} s"));
            return Err(FleetRefusal::LagGrew { lag, when_lag_ms: request.when_lag_ms }.into());
        }
        self.say("every pair is ready: fencing");
        Ok(())
    }

    /// Fenced and proven: the fleet's decision, then the switch or the undo. On `commit` the fence
    /// is checked first; if it was lost while holding (a proxy or server restarted), the pair fences
    /// and proves again before it switches — it cannot undo once the fleet committed.
    pub(super) async fn fleet_finish<P: Procedure>(
        &self,
        procedure: &mut P,
        journal: &mut Journal,
        (switch, marker): (&TrafficSwitch, Option<&mut Box<dyn Marker>>),
        mut pause: Pause,
        pair: &mut Pair,
        (id, request): (&str, &Request),
    ) -> Result<(), Error> {
        let fenced_at_ms = now_ms() - i64::try_from(pause.fenced_at.elapsed().as_millis()).unwrap_or(0);
        let decision = match self.fleet_hold(pair, journal, fenced_at_ms, pause.deadline).await {
            Ok(decision) => decision,
            // No vote was cast: the fleet cannot commit without this pair.
            Err(e) => {
                let e = self.undo(procedure, journal, Error::during("journaling this pair's hold failed before its vote")(e)).await;
                self.fleet_abandon(pair, &e).await;
                return Err(e);
            }
        };
        pause.phases.mark("fleet decided");
        if decision != Decision::Commit {
            let why = Error::from(FleetRefusal::Aborted { fleet: pair.ticket.fleet.clone() });
            let e = self.undo(procedure, journal, why).await;
            self.fleet_outcome(pair, "undone", None, None).await;
            return Err(e);
        }
        if let Err(e) = self.still_fenced(procedure, id, request, &mut pause).await {
            let e = Error::during(format!(
                "fleet {:?} committed, but this pair's fence was lost while it held and proving again failed: traffic stays where it was, fenced \
                 — fix the cause and restart `turnout run`",
                pair.ticket.fleet
            ))(e);
            self.say(e.to_string());
            self.fleet_outcome(pair, "fence lost after commit: not switched", None, None).await;
            return Err(e);
        }
        let switched = self.switch_over(procedure, journal, switch, marker, pause).await;
        let did = if switched.is_ok() { "switched" } else { "switch failed: completed by the next `turnout run`" };
        let write_pause_ms = lock(&self.progress).write_pause_ms;
        // When traffic moved: the fleet's pause ends at its last pair's switch.
        let switched_at_ms = write_pause_ms.map(|ms| fenced_at_ms + i64::try_from(ms).unwrap_or(0));
        self.fleet_outcome(pair, did, write_pause_ms, switched_at_ms).await;
        switched
    }

    /// After the fleet's commit: the fence must still be up for the proof to hold. If it is not,
    /// fences again and proves again (a new sentinel, the counters topped up) within `--max-pause`.
    async fn still_fenced<P: Procedure>(&self, procedure: &mut P, id: &str, request: &Request, pause: &mut Pause) -> Result<(), Error> {
        if procedure.fenced().await? {
            return Ok(());
        }
        let from = self.direction.ends().0;
        self.say(format!("the fence on {from} was lost while holding: fencing and proving again before the switch"));
        let budget = Duration::from_millis(request.max_pause_ms);
        self.say(procedure.fence(budget).await?);
        let deadline = Instant::now() + budget;
        let Proof { sentinel, counters: (line, _), .. } = self.prove(procedure, &format!("{id}-again"), deadline, request, &mut pause.phases).await?;
        self.say(line);
        self.say(format!("proven again (commit {sentinel})"));
        // The gap without a fence may have carried a definition changed outside the log.
        procedure.definitions_unchanged(crate::source::contract::procedure::AFTER_COMMIT).await?;
        pause.phases.mark("fenced and proven again");
        Ok(())
    }

    /// Journals the hold (synced, before the vote exists), votes `prepared` under the lease and
    /// holds until the fleet decides, up to `deadline` — then tries to abort the fleet itself.
    /// Returns the decision etcd holds. An error only before the vote was cast.
    async fn fleet_hold(&self, pair: &mut Pair, journal: &mut Journal, fenced_at_ms: i64, deadline: Instant) -> Result<Decision, Error> {
        let hold_until_ms = now_ms() + i64::try_from(deadline.saturating_duration_since(Instant::now()).as_millis()).unwrap_or(0);
        journal.fleet = Some(Held { ticket: pair.ticket.clone(), hold_until_ms });
        self.journal(journal, Step::Prepared, None)?;
        let name = pair.ticket.pair.clone();
        let sentinel = lock(&self.record).sentinel.clone().unwrap_or_default();
        let prepared = Prepared { cutover: journal.id.clone(), fenced_at_ms, sentinel, hold_until_ms };
        match pair.ledger.vote(&name, &prepared, pair.lease.id, &pair.pairs, deadline).await {
            // This vote was the last one and committed the fleet: nothing to wait for.
            Ok(Some(Decision::Commit)) => {
                self.say("voted prepared, the last pair to: the fleet decided commit");
                return Ok(Decision::Commit);
            }
            // Decided before this vote (no key written then: nothing contradicts the decision).
            Ok(Some(decision)) => {
                self.say(format!("the fleet had decided {} before this pair's vote, which was not cast", decision.as_str()));
                return Ok(decision);
            }
            Ok(None) => self.say(format!("voted prepared; holding for the fleet's decision (at most {} ms)", (hold_until_ms - now_ms()).max(0))),
            // The vote may have been written (a lost answer): only the decision settles it now.
            Err(e) => self.say(format!("casting the vote failed ({e}); holding for the fleet's decision")),
        }
        let say = |line: String| self.say(line);
        let mut changes = match pair.changes.take() {
            Some(changes) => changes,
            None => pair.ledger.changes().await,
        };
        loop {
            let decision = crate::fleet::await_decision(&mut pair.ledger, changes, deadline, &say, Some(&name)).await;
            if decision != Decision::Preparing {
                self.say(format!("the fleet decided {}", decision.as_str()));
                return Ok(decision);
            }
            // The vote expired with its lease while the fleet still prepares: cast again, under a
            // new lease, within the hold.
            self.say(format!("this pair's vote expired with its lease (a stall longer than {VOTE_TTL_S} s?) while the fleet prepares: voting again"));
            changes = pair.ledger.changes().await;
            match pair.ledger.lease(VOTE_TTL_S).await {
                Ok(lease) => pair.lease = lease,
                Err(e) => self.say(format!("a new lease for the vote was refused ({e}); holding for the fleet's decision")),
            }
            match pair.ledger.vote(&name, &prepared, pair.lease.id, &pair.pairs, deadline).await {
                Ok(Some(decision)) => {
                    self.say(format!("voted again: the fleet decided {}", decision.as_str()));
                    return Ok(decision);
                }
                Ok(None) => self.say("voted again; holding for the fleet's decision"),
                Err(e) => {
                    self.say(format!("voting again failed ({e}); holding for the fleet's decision"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A pair that will not vote (its checks, its fence or its proof failed): aborts the fleet,
    /// bounded and best effort, so that the others need not wait out their holds; and says what
    /// it did.
    pub(super) async fn fleet_abandon(&self, pair: &mut Pair, why: &Error) {
        let aborted = tokio::time::timeout(ABANDON_WAIT, pair.ledger.abort()).await;
        if let Ok(Ok((decision, _))) = aborted {
            self.say(format!("this pair will not vote ({why}): the fleet's decision is {}", decision.as_str()));
        }
        self.fleet_outcome(pair, "undone", None, None).await;
    }

    /// Writes what this pair did for the coordinator (and `turnout fleet status`), at `at_ms` (default
    /// now); its failure is only said: the decision, not this, is what every pair follows.
    async fn fleet_outcome(&self, pair: &mut Pair, did: &str, write_pause_ms: Option<u64>, at_ms: Option<i64>) {
        let outcome = Outcome { did: did.into(), at_ms: at_ms.unwrap_or_else(now_ms), write_pause_ms };
        let name = pair.ticket.pair.clone();
        if let Err(e) = pair.ledger.put(&format!("outcome/{name}"), serde_json::to_string(&outcome).unwrap_or_default()).await {
            self.say(format!("WARNING: writing this pair's outcome to etcd failed: {e}"));
        }
    }
}
