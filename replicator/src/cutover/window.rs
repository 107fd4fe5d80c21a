//! The rollback window after a cutover: whether a rollback may start ([`Controller::rollback_allowed`]),
//! and its end — by `turnout finish` ([`Controller::finish`]) or on its own, when its budget is spent
//! or the reverse stream cannot go on ([`Controller::end_window`]).
//!
//! Guarantees: the window's end is journaled before anything is dropped, so a crash halfway leaves
//! a sidecar that no longer replicates back and a `turnout teardown` that drops what is left; a
//! rollback is refused once the window ended, and `finish` while blue's watch holds writes not
//! acknowledged ([`crate::watch`]).

use super::*;

impl Controller {
    /// Where the application's traffic is, from the journals (`/status`'s `traffic`): `unsettled`
    /// while a cutover or rollback is between its fence and its settled end; `green` once a
    /// cutover is done and no rollback since is (in the window, or cut over without a way back);
    /// `blue` otherwise.
    pub fn traffic(&self) -> &'static str {
        let journal = |d| self.state.journal(d).ok().flatten();
        let (forward, reverse) = (journal(Direction::Forward), journal(Direction::Reverse));
        if forward.iter().chain(reverse.iter()).any(|j| j.step.unsettled()) {
            return "unsettled";
        }
        let rolled_back = reverse.as_ref().is_some_and(|j| j.step == Step::Done);
        let in_window = self.status.direction() == Direction::Reverse && !rolled_back;
        let cut_over = forward.as_ref().is_some_and(|j| j.step == Step::Done) && reverse.is_none();
        if in_window || cut_over {
            "green"
        } else {
            "blue"
        }
    }

    /// Why a rollback cannot start now, if it cannot; the reverse stream the cutover armed if it can.
    pub(super) fn rollback_allowed(&self) -> Result<ReverseArm, Error> {
        let cutover = self.state.journal(Direction::Forward)?;
        let arm = match cutover {
            Some(Journal { step: Step::Done, reverse: Some(arm), .. }) => arm,
            Some(Journal { step: Step::Done, .. }) => return Err(Lifecycle::NoWayBack.into()),
            _ => return Err(Lifecycle::NothingToRollBack.into()),
        };
        if let Some(why) = self.status.window().and_then(|w| w.spent()) {
            return Err(Lifecycle::WindowSpent { why }.into());
        }
        match (&arm.ended, arm.finished) {
            (Some(why), _) => Err(Lifecycle::WindowEnded { why: why.clone() }.into()),
            (None, true) => Err(Lifecycle::Finished.into()),
            (None, false) => Ok(arm),
        }
    }

    /// `turnout finish`: ends the rollback window — stops the reverse stream and drops its slot and
    /// publication on green and its origin on blue. Journaled first: after a crash halfway the
    /// sidecar no longer replicates, and `turnout teardown` drops what is left. Returns one line per
    /// thing done.
    /// Refused while blue's watch has foreign writes not acknowledged, or cannot show it read blue's
    /// log up to now ([`crate::watch`]).
    pub async fn finish(&self) -> Result<Vec<String>, Error> {
        self.rogue_gate_finish().await?;
        self.end_window(None).await
    }

    /// Journals the window's end, unless a rollback runs or left green unsettled; returns the
    /// reverse stream it ends. Under the progress lock, as `start` checks whether a rollback may
    /// begin: a rollback and the window's end never both go ahead.
    fn close_window(&self, why: Option<String>) -> Result<ReverseArm, Error> {
        let progress = lock(&self.progress);
        if progress.outcome.as_deref() == Some("running") {
            return Err(Lifecycle::RollbackRunning.into());
        }
        if let Some(rollback) = self.state.journal(Direction::Reverse)? {
            if rollback.step.unsettled() {
                return Err(Lifecycle::RollbackUnsettled { id: rollback.id, step: format!("{:?}", rollback.step) }.into());
            }
            if rollback.step == Step::Done && rollback.reverse.is_some() {
                return Err(Lifecycle::Iterated { id: rollback.id }.into());
            }
        }
        let mut journal = self.state.journal(Direction::Forward)?;
        let arm = match journal.as_mut() {
            Some(Journal { step: Step::Done, reverse: Some(arm), .. }) => {
                if why.is_some() && arm.finished {
                    return Err(Lifecycle::AlreadyEnded.into());
                }
                arm.finished = true;
                arm.ended = why.or(arm.ended.take());
                arm.clone()
            }
            _ => return Err(Lifecycle::NoWindow.into()),
        };
        if let Some(journal) = &journal {
            self.state.put_cutover_journal(journal, true)?;
        }
        Ok(arm)
    }

    /// Ends the rollback window as [`Controller::finish`] does, for `why` when its budget ran out
    /// (`cutover.window_max`, `cutover.window_max_held`): then a rollback is refused naming it.
    pub async fn end_window(&self, why: Option<String>) -> Result<Vec<String>, Error> {
        let arm = self.close_window(why.clone())?;
        if let Some(why) = why {
            self.status.window_ended(why);
        }
        self.stop();
        self.status.clear_window();
        let mut done = vec!["ended the rollback window: the reverse stream stops".to_string()];
        done.extend(crate::rollback::drop_reverse(&self.config, &arm.names).await?);
        // What blue's watch read (the forward slot, PostgreSQL) goes with the window.
        crate::watch::drop_objects(&self.config, &self.names(), &[Side::Blue]).await;
        self.status.set_phase(Phase::Stopped);
        Ok(done)
    }
}
