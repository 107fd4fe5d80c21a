//! New sessions held through the write pause (`cutover.haproxy.frontend`, MySQL and MariaDB behind
//! haproxy; [`turnout_cutover::SessionHold`]): opened before the fence, the slot journaled and then
//! taken just before it, given back after the switch, the undo, or a restart's settling.
//!
//! Guarantee: from the moment the fenced server's limit is lowered, the journal names it and the
//! limit it had, so whatever ends the run — a switch, an undo, a crash and the restart after it —
//! gives it back; a failure to give it back is said with the command that does it by hand.

use super::{lock, Controller, Direction, Journal, Step};
use crate::error::Error;
use crate::journal::HeldSlot;
use std::time::Duration;
use turnout_cutover::{HeldSession, SessionHold};
use turnout_decoders::Side;

/// Bound on each haproxy command and on opening the held session.
const HOLD_TIMEOUT: Duration = Duration::from_secs(5);

impl Controller {
    /// Before the fence: turnout's own session through the frontend, on the server traffic moves
    /// from (checked), and that server's limit, kept for the run. Nothing without
    /// `cutover.haproxy.frontend`.
    pub(super) async fn open_hold(&self) -> Result<(), Error> {
        let Some(hold) = self.config.session_hold() else { return Ok(()) };
        let (side, url, field) = match self.direction {
            Direction::Forward => (Side::Blue, self.config.source.url.expose(), "source.url"),
            Direction::Reverse => (Side::Green, self.config.target.url.expose(), "target.url"),
        };
        let held = hold.open(side, url, field, HOLD_TIMEOUT).await.map_err(Error::during("new sessions cannot be held through the pause"))?;
        self.say(format!(
            "new sessions will wait in haproxy's queue through the pause: turnout holds server {}/{} through frontend {} (its session limit {})",
            hold.backend,
            held.server,
            hold.frontend,
            limit_text(held.limit)
        ));
        let earlier = lock(&self.held).replace(held);
        if let Some(earlier) = earlier {
            earlier.end().await;
        }
        Ok(())
    }

    /// What the journal keeps of the held session before its server's limit is lowered.
    pub(super) fn hold_slot(&self) -> Option<HeldSlot> {
        let hold = self.config.session_hold()?;
        lock(&self.held).as_ref().map(|h| HeldSlot {
            admin_socket: hold.admin_socket.clone(),
            backend: hold.backend.clone(),
            server: h.server.to_owned(),
            limit: h.limit,
            released: false,
        })
    }

    /// Just before the hold's slot is journaled: the held session still answers, or is opened
    /// again (haproxy's or the server's idle timeouts may have ended it since [`Self::open_hold`]):
    /// a dead one would leave the limit of 1 to the application's first session.
    pub(super) async fn hold_still_open(&self) -> Result<(), Error> {
        let held = lock(&self.held).take();
        let Some(mut held) = held else { return Ok(()) };
        if held.alive().await {
            *lock(&self.held) = Some(held);
            return Ok(());
        }
        held.end().await;
        self.open_hold().await
    }

    /// Lowers the held server's limit to 1: new sessions queue from here on. The caller journaled
    /// [`Controller::hold_slot`] first; within the fence's stretch (`Fencing`), so an error is undone
    /// by the caller.
    pub(super) async fn take_hold(&self) -> Result<(), Error> {
        let Some(slot) = self.hold_slot() else { return Ok(()) };
        hold_of(&slot).take(&slot.server, HOLD_TIMEOUT).await.map_err(Error::during("holding new sessions failed"))
    }

    /// After the switch or the fence's undo (whether the undo succeeded or not): the held server's
    /// limit back, said either way (the run goes on: traffic has moved, or the fence is down), and
    /// turnout's session ended, so haproxy serves the sessions queued behind it. Marks the slot
    /// given back in `journal` (written by the caller's next step); one not given back is given
    /// back by the next run or restart.
    pub(super) async fn give_back_hold(&self, journal: &mut Journal) {
        let held = lock(&self.held).take();
        match release_hold(journal, held).await {
            Ok(Some(line)) => self.say(line),
            Ok(None) => {}
            Err(e) => self.say(format!("WARNING: {e}")),
        }
    }

    /// A slot an earlier run of this direction journaled and did not give back (its release failed,
    /// or it ended in a way that skipped it), given back now, before this run reads the limit again.
    pub(super) async fn give_back_earlier_hold(&self) -> Result<(), Error> {
        let Some(mut earlier) = self.state.journal(self.direction)? else { return Ok(()) };
        if earlier.hold.as_ref().is_some_and(|slot| !slot.released) && !earlier.step.fence_may_be_up() && earlier.step != Step::Switching {
            if let Some(line) = release_hold(&mut earlier, None).await? {
                self.say(format!("an earlier {}'s hold: {line}", self.direction.what()));
            }
            self.state.put_cutover_journal(&earlier, true)?;
        }
        Ok(())
    }

    /// Ends the held session, if there is one (at the end of every run).
    pub(super) async fn end_hold(&self) {
        let held = lock(&self.held).take();
        if let Some(held) = held {
            held.end().await;
        }
    }
}

/// The haproxy the slot was taken on.
fn hold_of(slot: &HeldSlot) -> SessionHold {
    SessionHold { admin_socket: slot.admin_socket.clone(), backend: slot.backend.clone(), frontend: String::new() }
}

/// Gives the held server its limit back, if `journal` names one not given back yet, marks it given
/// back there, and ends `held` (the session holding it, when this process still has it); the line
/// to say. Needs only the journal: the configuration may have changed since. A failure names the
/// command that gives it back by hand. Idempotent.
pub(super) async fn release_hold(journal: &mut Journal, mut held: Option<HeldSession>) -> Result<Option<String>, Error> {
    let Some(slot) = journal.hold.as_mut().filter(|slot| !slot.released) else {
        if let Some(held) = held {
            held.end().await;
        }
        return Ok(None);
    };
    let hold = hold_of(slot);
    let mut tries = 0;
    loop {
        match hold.release(&slot.server, slot.limit, held.take(), HOLD_TIMEOUT).await {
            Ok(()) => {
                slot.released = true;
                return Ok(Some(format!("haproxy server {}/{} has its session limit back ({})", slot.backend, slot.server, limit_text(slot.limit))));
            }
            Err(e) if tries < 3 => {
                tries += 1;
                tracing::warn!("giving haproxy server {}/{} its session limit back: {e}; trying again", slot.backend, slot.server);
                tokio::time::sleep(Duration::from_millis(200 << tries)).await;
            }
            Err(e) => {
                return Err(Error::during(format!(
                    "giving haproxy server {0}/{1} its session limit back failed: its limit may still be 1 (or 1000000); run `set maxconn \
                     server {0}/{1} {2}` on haproxy's admin socket ({3}); the next run or restart tries again",
                    slot.backend,
                    slot.server,
                    slot.limit,
                    slot.admin_socket.display()
                ))(e));
            }
        }
    }
}

fn limit_text(limit: u32) -> String {
    if limit == 0 {
        "none".into()
    } else {
        limit.to_string()
    }
}
