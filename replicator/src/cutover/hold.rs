//! New sessions held through the write pause (`cutover.haproxy.frontend`, MySQL and MariaDB behind
//! haproxy; [`turnout_cutover::SessionHold`]): opened before the fence, the slot journaled and then
//! taken just before it, given back after the switch, the undo, or a restart's settling.
//!
//! Guarantee: from the moment the fenced server's limit is lowered, the journal names it and the
//! limit it had, so whatever ends the run — a switch, an undo, a crash and the restart after it —
//! gives it back; a failure to give it back is said with the command that does it by hand.

use super::{lock, Controller, Direction, Journal};
use crate::config::Config;
use crate::error::Error;
use crate::journal::HeldSlot;
use std::time::Duration;
use turnout_cutover::HeldSession;
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
        lock(&self.held).as_ref().map(|h| HeldSlot { server: h.server.to_owned(), limit: h.limit })
    }

    /// Lowers the held server's limit to 1: new sessions queue from here on. The caller journaled
    /// [`Controller::hold_slot`] first; within the fence's stretch (`Fencing`), so an error is undone
    /// by the caller.
    pub(super) async fn take_hold(&self) -> Result<(), Error> {
        let (Some(slot), Some(hold)) = (self.hold_slot(), self.config.session_hold()) else { return Ok(()) };
        hold.take(&slot.server, HOLD_TIMEOUT).await.map_err(Error::during("holding new sessions failed"))
    }

    /// After the switch or the fence's undo: the held server's limit back, said either way (the
    /// run goes on: traffic has moved, or the fence is down), and then turnout's session ended, so
    /// haproxy serves the sessions queued behind it.
    pub(super) async fn give_back_hold(&self, journal: &Journal) {
        let held = lock(&self.held).take();
        match release_hold(&self.config, journal, held).await {
            Ok(Some(line)) => self.say(line),
            Ok(None) => {}
            Err(e) => self.say(format!("WARNING: {e}")),
        }
    }

    /// Ends the held session, if there is one (at the end of every run).
    pub(super) async fn end_hold(&self) {
        let held = lock(&self.held).take();
        if let Some(held) = held {
            held.end().await;
        }
    }
}

/// Gives the held server its limit back, if `journal` says one was lowered, and ends `held` (the
/// session holding it, when this process still has it); the line to say. A failure names the
/// command that gives it back by hand. Idempotent.
pub(super) async fn release_hold(config: &Config, journal: &Journal, mut held: Option<HeldSession>) -> Result<Option<String>, Error> {
    let (Some(slot), Some(hold)) = (&journal.hold, config.session_hold()) else {
        if let Some(held) = held {
            held.end().await;
        }
        return Ok(None);
    };
    let mut tries = 0;
    loop {
        match hold.release(&slot.server, slot.limit, held.take(), HOLD_TIMEOUT).await {
            Ok(()) => {
                return Ok(Some(format!("haproxy server {}/{} has its session limit back ({})", hold.backend, slot.server, limit_text(slot.limit))));
            }
            Err(e) if tries < 2 && e.class() == turnout_decoders::ErrorClass::Transient => tries += 1,
            Err(e) => {
                return Err(Error::during(format!(
                    "giving haproxy server {0}/{1} its session limit back failed: it still takes one session at a time; run `set maxconn \
                     server {0}/{1} {2}` on haproxy's admin socket",
                    hold.backend, slot.server, slot.limit
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
