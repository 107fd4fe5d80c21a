//! Recovery at start: settles a cutover or rollback a crash interrupted, from its journal (see
//! [`super`]), and says where replication goes on.

use super::{build_switch, switch_to, Journal, ReverseArm, Step};
use crate::config::Config;
use crate::error::{Error, Lifecycle};
use crate::source::contract::procedure::Procedure;
use crate::source::Names;
use crate::state::StateStore;
use crate::status::Direction;
use std::future::Future;

/// The reverse stream of a completed cutover whose rollback window is still open.
pub fn open_window(state: &StateStore) -> Result<Option<ReverseArm>, Error> {
    Ok(match state.journal(Direction::Forward)? {
        Some(Journal { step: Step::Done, reverse: Some(arm), .. }) if !arm.finished => Some(arm),
        _ => None,
    })
}

/// Whether the rollback window ended: `turnout finish` or its budget ended it, or a rollback
/// completed.
pub fn window_over(state: &StateStore) -> Result<bool, Error> {
    Ok(window_finished(state)? || matches!(state.journal(Direction::Reverse)?, Some(Journal { step: Step::Done, .. })))
}

/// Whether `turnout finish` (or the window's budget) ended the rollback window: writes stay on green.
pub fn window_finished(state: &StateStore) -> Result<bool, Error> {
    Ok(matches!(state.journal(Direction::Forward)?, Some(Journal { step: Step::Done, reverse: Some(arm), .. }) if arm.finished))
}

/// The next generation a completed rollback armed and the rollback's id, until that generation
/// begins ([`super::again::begin`]).
pub fn armed_again(state: &StateStore) -> Result<Option<(ReverseArm, String)>, Error> {
    Ok(match state.journal(Direction::Reverse)? {
        Some(Journal { step: Step::Done, reverse: Some(arm), id, .. }) => Some((arm, id)),
        _ => None,
    })
}

/// Whether a rollback completed (until the next generation begins).
pub fn rolled_back(state: &StateStore) -> Result<bool, Error> {
    Ok(matches!(state.journal(Direction::Reverse)?, Some(Journal { step: Step::Done, .. })))
}

/// Whether a cutover of this stream completed.
pub fn cut_over(state: &StateStore) -> Result<bool, Error> {
    Ok(matches!(state.journal(Direction::Forward)?, Some(Journal { step: Step::Done, .. })))
}

/// Where `turnout run` goes on after settling the journals.
#[derive(Debug)]
pub enum Resume {
    /// Replicate blue → green.
    Forward,
    /// The rollback window after a cutover: replicate green → blue.
    Reverse(ReverseArm),
    /// A rollback completed and armed blue → green replication again (`cutover.iterate`): begin
    /// the next generation ([`super::again::begin`]) from this arm, after the rollback of this id.
    Again(ReverseArm, String),
}

/// Settles a cutover or rollback interrupted by a crash (see the module documentation) and says where
/// replication goes on. An error when this stream must not replicate again (cut over without a way
/// back, the rollback window finished, or rolled back).
pub(crate) async fn recover<F: crate::source::family::Family>(config: &Config, state: &StateStore, names: &Names) -> Result<Resume, Error> {
    recover_with(config, state, Direction::Forward, F::cutover(config, names, config.cutover.reverse)).await?;
    let Some(cutover) = state.journal(Direction::Forward)? else { return Ok(Resume::Forward) };
    // A rollback interrupted with green fenced (or switching) is settled whatever became of the
    // window since: it is what keeps green from staying fenced.
    if cutover.step == Step::Done && cutover.reverse.is_some() && state.journal(Direction::Reverse)?.is_some() {
        // Whatever the configuration says now, an interrupted rollback may have armed the next
        // generation: undoing it drops that too (each thing if it exists).
        recover_with(config, state, Direction::Reverse, F::rollback(config, names, F::ITERATES)).await?;
    }
    // A completed rollback says where things stand, whatever `turnout finish` did after it.
    if let Some((again, id)) = armed_again(state)? {
        return Ok(Resume::Again(again, id));
    }
    if let Some(rollback) = state.journal(Direction::Reverse)?.filter(|r| r.step == Step::Done) {
        return Err(Lifecycle::RolledBack { id: rollback.id, message: rollback.message.unwrap_or_default() }.into());
    }
    let arm = match (cutover.step, cutover.reverse) {
        (Step::Done, Some(arm)) if !arm.finished => arm,
        (Step::Done, arm) => {
            let why = match arm.as_ref().map(|a| a.ended.as_deref()) {
                Some(Some(ended)) => format!("; the rollback window ended on its own: {ended}"),
                Some(None) => "; `turnout finish` ended its rollback window".to_owned(),
                None => String::new(),
            };
            return Err(Lifecycle::CutOver { id: cutover.id, message: cutover.message.unwrap_or_default(), window: why }.into());
        }
        _ => return Ok(Resume::Forward),
    };
    Ok(Resume::Reverse(arm))
}

async fn recover_with<P: Procedure, F: Future<Output = Result<P, Error>>>(
    config: &Config,
    state: &StateStore,
    direction: Direction,
    connect: F,
) -> Result<(), Error> {
    let Some(mut journal) = state.journal(direction)? else { return Ok(()) };
    let (what, from) = (direction.what(), direction.ends().0);
    let (step, committed) = settle_fleet(config, state, &mut journal, direction).await?;
    match step {
        step if step.fence_may_be_up() => {
            let mut procedure = connect.await?;
            let failed = format!("{what} {} was interrupted with writes fenced on {from} and undoing the fence failed", journal.id);
            let undone = procedure.undo().await;
            // Given back whether the undo succeeded or not: queued sessions would only time out.
            if let Err(e) = super::hold::release_hold(&mut journal, None).await {
                tracing::warn!("{e}");
            }
            if let Err(e) = undone {
                state.put_cutover_journal(&journal, true)?;
                return Err(Error::during(failed)(e));
            }
            tracing::warn!(id = %journal.id, "a {what} was interrupted before its switch; the fence on {from} was undone");
            journal.step = Step::Undone;
            journal.message = Some("interrupted before the switch; the fence was undone when turnout restarted".into());
            state.put_cutover_journal(&journal, true)
        }
        Step::Switching => complete_switch(config, state, &mut journal, direction, connect.await?, committed).await,
        // A hold the run journaled and did not give back (its release failed).
        _ if journal.hold.as_ref().is_some_and(|slot| !slot.released) => {
            match super::hold::release_hold(&mut journal, None).await {
                Ok(_) => tracing::warn!(id = %journal.id, "an earlier {what}'s hold on haproxy was given back"),
                Err(e) => tracing::warn!("{e}"),
            }
            state.put_cutover_journal(&journal, true)
        }
        _ => Ok(()),
    }
}

/// The step to settle from, and whether a fleet committed. One pair of a fleet, holding: the
/// fleet's decision says whether it switches or undoes, and is journaled (synced) before either, so
/// that a second restart need not ask etcd again — an undo at once, a switch once the fence is
/// found still up. A pair that joined a fleet and was interrupted before its vote will not vote:
/// it aborts the fleet, so the others need not wait.
async fn settle_fleet(config: &Config, state: &StateStore, journal: &mut Journal, direction: Direction) -> Result<(Step, bool), Error> {
    let (what, from) = (direction.what(), direction.ends().0);
    match (journal.step, journal.fleet.clone()) {
        (Step::Prepared, Some(held)) => {
            let unread = format!(
                "{what} {} holds a vote of fleet {:?} with {from} fenced; {from} stays fenced until the fleet's decision can be read — \
                 restart `turnout run` once etcd answers",
                journal.id, held.ticket.fleet
            );
            let decision = crate::fleet::settle(config, &held).await.map_err(Error::during(unread))?;
            tracing::warn!(id = %journal.id, "a {what} was interrupted while holding for fleet {:?}, which decided {}", held.ticket.fleet, decision.as_str());
            journal.message = Some(format!("fleet {:?} decided {}", held.ticket.fleet, decision.as_str()));
            if decision == crate::fleet::etcd::Decision::Commit {
                return Ok((Step::Switching, true));
            }
            journal.step = Step::Fencing;
            state.put_cutover_journal(journal, true)?;
            Ok((Step::Fencing, false))
        }
        (Step::Prepared, None) => {
            Err(Error::Internal(format!("{what} {} is journaled as holding for a fleet without its ticket; {from} stays fenced", journal.id)))
        }
        (step, Some(held)) if step.fence_may_be_up() => {
            crate::fleet::abandon(config, &held.ticket).await;
            Ok((step, false))
        }
        (step, _) => Ok((step, false)),
    }
}

/// Completes a switch the journal says was under way (or a fleet committed while this sidecar was
/// down).
async fn complete_switch<P: Procedure>(
    config: &Config,
    state: &StateStore,
    journal: &mut Journal,
    direction: Direction,
    mut procedure: P,
    committed: bool,
) -> Result<(), Error> {
    let (what, (from, to)) = (direction.what(), direction.ends());
    let switch = build_switch(config)?;
    let interrupted = format!("{what} {} was interrupted while switching; completing the switch failed", journal.id);
    // A fleet committed while this sidecar was down: its proof holds only while the fence does, and
    // nothing here can prove again. Checked before `Switching` is journaled (after it, the switch
    // itself may have lifted a pgbouncer fence).
    if committed {
        if !procedure.fenced().await? {
            return Err(Lifecycle::FenceLostAfterCommit { fleet: journal.fleet.as_ref().map(|h| h.ticket.fleet.clone()).unwrap_or_default(), from, to }.into());
        }
        journal.step = Step::Switching;
        state.put_cutover_journal(journal, true)?;
    }
    procedure.open_green().await.map_err(Error::during(interrupted.clone()))?;
    switch_to(&switch, config, direction).await.map_err(Error::during(interrupted))?;
    if let Err(e) = super::hold::release_hold(journal, None).await {
        tracing::warn!("{e}");
    }
    tracing::warn!(id = %journal.id, "a {what} was interrupted while switching; the switch to {to} was completed");
    // A login the fence or the reload cut would hold pgbouncer's clients for server_login_retry.
    if let turnout_cutover::ClientsMoved::Unstuck { took, retry, restored } = switch.clients_moved(super::CLIENTS_MOVED_CAP).await {
        let after = if restored { "then back" } else { "NOT back (see above)" };
        tracing::warn!(
            "pgbouncer held its clients behind a cut login: server_login_retry set to 0 until they had a connection to {to} ({} ms), {after} to {retry}",
            took.as_millis()
        );
    }
    journal.step = Step::Done;
    journal.message = Some("the switch was completed when turnout restarted".into());
    state.put_cutover_journal(journal, true)
}
