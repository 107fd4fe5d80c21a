//! The end of a rehearsal (`turnout cutover --rehearse`): everything up to the proof has run as in a
//! real cutover; here the fence is undone instead of traffic switched, and what was measured is
//! reported. The write pause the application saw runs from the fence to the end of the undo, where
//! a real cutover's runs to the end of the switch.
//!
//! Guarantees: the same as a cutover up to its switch — the journal's steps are the cutover's, so a
//! crash at any point of a rehearsal is undone by the restart (blue serves), and a completed one
//! ends `undone`; what the rehearsal armed for the reverse stream is dropped after the fence is
//! lifted, and a failure to drop it is a finding (it would stop the real cutover).

use super::{lock, Controller, Journal, PauseTimeline, Request, Step};
use crate::error::{Error, Lifecycle};
use crate::source::contract::procedure::Procedure;
use crate::state::StoreError;
use std::time::{Duration, Instant};

/// How a completed rehearsal's journal message begins (a restart tells it from a failure by it).
pub(super) const COMPLETE: &str = "rehearsal complete";

impl Controller {
    /// Undoes the fence after a rehearsal's proof and reports the pause and the findings.
    pub(super) async fn end_rehearsal<P: Procedure>(
        &self,
        procedure: &mut P,
        journal: &mut Journal,
        mut phases: PauseTimeline,
        fenced_at: Instant,
        request: &Request,
    ) -> Result<(), Error> {
        let (from, to) = self.direction.ends();
        match procedure.lift_fence().await {
            Ok(line) => {
                self.say(line);
                self.give_back_hold(journal).await;
            }
            Err(e) => {
                // Sessions queued behind the hold would only wait out haproxy's timeout.
                self.give_back_hold(journal).await;
                let refusal = Lifecycle::RehearsalUndoFailed { from, cause: e.to_string() };
                self.journal(journal, Step::Fencing, Some(refusal.to_string()))?;
                return Err(refusal.into());
            }
        }
        phases.mark("undo");
        let pause = fenced_at.elapsed();
        self.record_pause(&phases, pause);
        // After the pause: what the rehearsal armed for the reverse stream.
        match procedure.disarm_reverse().await {
            Ok(Some(line)) => self.say(line),
            Ok(None) => {}
            Err(e) => {
                let finding = format!(
                    "dropping what the rehearsal armed for the reverse stream failed ({e}): the real one would find it in its way; \
                     `turnout teardown` (after stopping `turnout run`) or dropping it by hand clears it"
                );
                self.say(format!("FINDING: {finding}"));
                lock(&self.record).findings.push(finding);
            }
        }
        let budget = Duration::from_millis(request.max_pause_ms);
        if pause * 2 > budget {
            lock(&self.record).findings.push(format!(
                "the pause took {} ms, more than half of --max-pause {} ms: a slower moment could make the real {} undo itself; \
                 raise --max-pause or find the slow step above",
                pause.as_millis(),
                budget.as_millis(),
                self.direction.what()
            ));
        }
        let summary = format!(
            "{COMPLETE}: writes on {from} were paused {} ms ({phases}); {to} proved complete; the fence is undone and traffic \
             stays on {from} (a real {} switches traffic where this one undid the fence)",
            pause.as_millis(),
            self.direction.what()
        );
        let findings = {
            let mut record = lock(&self.record);
            record.rehearsed = true;
            record.findings.len()
        };
        self.journal(journal, Step::Undone, Some(summary.clone()))?;
        lock(&self.progress).write_pause_ms = Some(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
        self.say(summary);
        self.say(match findings {
            0 => format!("nothing found that would block or slow the real {}", self.direction.what()),
            n => format!("{n} findings would block or slow the real {} (FINDING and WARNING lines above)", self.direction.what()),
        });
        Ok(())
    }

    /// Keeps the pause and its steps for the certificate.
    pub(super) fn record_pause(&self, phases: &PauseTimeline, pause: Duration) {
        let mut record = lock(&self.record);
        let micros = |d: &Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        record.steps = phases.steps.iter().map(|(step, took)| super::certificate::StepTime { step: (*step).into(), us: micros(took) }).collect();
        record.pause_us = Some(micros(&pause));
    }

    /// Writes the certificate of the cutover `id` that just ended (nothing when it ended before its
    /// first journal entry, e.g. it could not connect) and keeps it in the state store.
    pub(super) fn certify(&self, id: &str) {
        let journal = match self.state.journal(self.direction) {
            Ok(Some(journal)) if journal.id == id => journal,
            _ => return,
        };
        let entries = match self.state.journal_history(id) {
            Ok(entries) => entries,
            Err(e) => {
                self.say(format!("WARNING: no certificate: reading the journal failed: {e}"));
                return;
            }
        };
        let stream = match self.direction {
            crate::status::Direction::Forward => self.names().slot,
            crate::status::Direction::Reverse => crate::source::Names::reverse_of(&self.names()).slot,
        };
        let mut certificate = lock(&self.record).certificate(&self.config, &journal, &entries, stream);
        let key = super::certificate::signing_key(&self.config.cutover).unwrap_or_else(|e| {
            self.say(format!("WARNING: the certificate is not signed: {e}"));
            None
        });
        certificate.seal(key.as_ref());
        let stored = serde_json::to_vec_pretty(&certificate)
            .map_err(|e| StoreError::encode("the certificate")(e).into())
            .and_then(|json| self.state.put_certificate(self.direction, &json));
        match stored {
            Ok(()) => self.say(format!(
                "certificate written: sha256 {}{} (`turnout {} --report FILE` saves it)",
                certificate.digest,
                if certificate.signature.is_some() { ", signed" } else { "" },
                self.direction.what()
            )),
            Err(e) => self.say(format!("WARNING: keeping the certificate failed: {e}")),
        }
    }

    /// The certificate of the last cutover (rollback, rehearsal), as kept.
    pub fn certificate(&self) -> Result<Option<Vec<u8>>, Error> {
        self.state.certificate(self.direction)
    }
}
