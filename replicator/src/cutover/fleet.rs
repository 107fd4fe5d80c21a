//! One pair of a fleet cutover ([`crate::fleet`]): ready before the fence and fenced only on the
//! coordinator's `go`; after the proof, journaled as holding, a vote in etcd and the hold for the
//! fleet's decision; what it did, written back for the coordinator.

use super::{Controller, Journal, Step};
use crate::error::Error;
use crate::fleet::etcd::{Decision, LeaseHandle, Ledger, Outcome, Prepared};
use crate::fleet::{now_ms, Held, Ticket};
use std::time::{Duration, Instant};

/// The vote's lease: a sidecar gone this long without renewing it loses its vote, and a decision
/// not yet made can then only be `abort`.
const VOTE_TTL_S: i64 = 5;

/// A pair's place in a fleet cutover while it runs.
pub(super) struct Pair {
    pub ticket: Ticket,
    pub ledger: Ledger,
    /// The vote's lease, granted before the fence and kept alive while the sidecar holds.
    lease: Option<LeaseHandle>,
    /// Every pair of the fleet (its record's), read once every pair was ready.
    pairs: Vec<String>,
}

impl Controller {
    /// Before the fence, with the checks done: the fleet's etcd reached and the vote's lease granted
    /// (so that inside the pause the vote is one write).
    pub(super) async fn fleet_join(&self, ticket: &Ticket) -> Result<Pair, Error> {
        let mut ledger = crate::fleet::ledger(&self.config, ticket).await?;
        let lease = ledger.lease(VOTE_TTL_S).await?;
        Ok(Pair { ticket: ticket.clone(), ledger, lease: Some(lease), pairs: Vec::new() })
    }

    /// Right before the fence (the stream the switch hands off to already armed): says this pair is
    /// ready and waits for the coordinator's `go` (every pair ready) within `timeout`, so that the
    /// fleet's fences go up together. An `abort` decided meanwhile, or no `go` in time, ends the
    /// cutover before anything is fenced.
    pub(super) async fn fleet_ready(&self, pair: &mut Pair, id: &str, timeout: Duration) -> Result<(), Error> {
        let Pair { ticket, ledger, pairs, .. } = pair;
        ledger.put(&format!("ready/{}", ticket.pair), id).await?;
        self.say(format!("ready as pair {:?} of fleet {:?} ({}); waiting for every pair to be ready", ticket.pair, ticket.fleet, ticket.id));
        let until = Instant::now() + timeout;
        let mut changes = ledger.changes().await;
        loop {
            let view = ledger.view().await?;
            match view.decision {
                Some(Decision::Preparing) if view.go => {
                    let listed = view.record.as_ref().and_then(|r| r["pairs"].as_array().cloned()).unwrap_or_default();
                    *pairs = listed.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect();
                    // The last vote commits only with every pair's: a record without this pair is not this fleet's.
                    if !pairs.contains(&ticket.pair) {
                        return Err(Error::Setup(format!(
                            "fleet cutover {}'s record in etcd does not list pair {:?}; nothing was changed",
                            ticket.id, ticket.pair
                        )));
                    }
                    break;
                }
                Some(Decision::Preparing) => {}
                Some(d) => return Err(Error::Setup(format!("the fleet decided {} before the fence; nothing was changed", d.as_str()))),
                None => return Err(Error::Setup(format!("fleet cutover {} has no decision key in etcd; nothing was changed", ticket.id))),
            }
            if Instant::now() >= until {
                return Err(Error::Setup(format!("not every pair of fleet {:?} was ready within {} s; nothing was changed", ticket.fleet, timeout.as_secs())));
            }
            changes.next(until).await;
        }
        self.say("every pair is ready: fencing");
        Ok(())
    }

    /// Fenced and proven: journals the hold (synced, before the vote exists), votes `prepared` under
    /// a lease and holds until the fleet decides, up to `hold_until` — then tries to abort the fleet
    /// itself. Returns the decision etcd holds. An error only before the vote was cast (the caller
    /// undoes the fence).
    pub(super) async fn fleet_hold(
        &self,
        pair: &mut Pair,
        journal: &mut Journal,
        fenced_at_ms: i64,
        hold_until_ms: i64,
        sentinel: String,
    ) -> Result<Decision, Error> {
        journal.fleet = Some(Held { ticket: pair.ticket.clone(), hold_until_ms });
        self.journal(journal, Step::Prepared, None)?;
        let name = pair.ticket.pair.clone();
        let prepared = Prepared { cutover: journal.id.clone(), fenced_at_ms, sentinel, hold_until_ms };
        let lease = pair.lease.as_ref().map_or(0, |l| l.id);
        match pair.ledger.vote(&name, &prepared, lease, &pair.pairs).await {
            Ok(true) => self.say("voted prepared, the last pair to: the fleet decided commit"),
            Ok(false) => self.say(format!("voted prepared; holding for the fleet's decision (at most {} ms)", hold_until_ms - now_ms())),
            // The vote may have been written (a lost answer): only the decision settles it now.
            Err(e) => self.say(format!("casting the vote failed ({e}); holding for the fleet's decision, which will not be commit without it")),
        }
        let say = |line: String| self.say(line);
        let decision = crate::fleet::await_decision(&mut pair.ledger, hold_until_ms, &say).await;
        self.say(format!("the fleet decided {}", decision.as_str()));
        Ok(decision)
    }

    /// Writes what this pair did for the coordinator (and `turnout fleet status`); its failure is
    /// only said: the decision, not this, is what every pair follows.
    /// `at_ms`: when it happened (default now).
    pub(super) async fn fleet_outcome(&self, pair: &mut Pair, did: &str, write_pause_ms: Option<u64>, at_ms: Option<i64>) {
        pair.lease = None;
        let outcome = Outcome { did: did.into(), at_ms: at_ms.unwrap_or_else(now_ms), write_pause_ms };
        let name = pair.ticket.pair.clone();
        if let Err(e) = pair.ledger.put(&format!("outcome/{name}"), serde_json::to_string(&outcome).unwrap_or_default()).await {
            self.say(format!("WARNING: writing this pair's outcome to etcd failed: {e}"));
        }
    }
}
