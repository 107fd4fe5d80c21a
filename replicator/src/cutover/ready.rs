//! The application's own word that it moved (`cutover.command.ready_url`).
//!
//! Across engines no proxy can move a client: the application changes data layer itself, often by a
//! flag its instances read on their own time. A switch command that sets the flag returns before
//! they have flipped, so the fence alone would end while some still write to the fenced side (they
//! are refused there, which is safe but is not a finished switch). With `ready_url`, the switch is
//! done only when the application says so: after the command, turnout asks `GET ready_url` every
//! [`POLL`] until it answers 2xx with `ready_green` (a rollback: `ready_blue`) as its whole body,
//! trimmed — the fenced side stays fenced all that time, and the wait is part of the write pause.
//! If the answer does not come within `ready_timeout`, the switch fails as any switch does after the
//! proof: the fence holds and `turnout run` completes the switch from the journal.
//!
//! Before the fence the endpoint is asked once: it must answer with the word of the side traffic
//! moves from (`ready_blue` before a cutover, `ready_green` before a rollback) — an endpoint that
//! answers anything else (a generic health page, the other side's word) could not tell turnout when
//! the application has moved, and the switch would wait out `ready_timeout` after the proof.

use crate::config::{Config, ReadyConfig};
use crate::cutover::Direction;
use crate::error::{Error, Lifecycle, ReadyMismatch};
use std::time::{Duration, Instant};

/// How often the endpoint is asked while the application moves.
const POLL: Duration = Duration::from_millis(20);

/// The longest a single request may take (the whole wait is bounded by `ready_timeout`).
const REQUEST: Duration = Duration::from_secs(2);

/// Longest part of an answer quoted in an error.
const QUOTED: usize = 40;

/// Longest answer read; a longer one is not a word the configuration names.
const LONGEST: usize = 1024;

/// A checked `cutover.command.ready_url` and the words it answers with.
pub(super) struct Readiness {
    config: ReadyConfig,
}

impl Readiness {
    /// The readiness `config` asks for, if any.
    pub(super) fn of(config: &Config) -> Result<Option<Readiness>, Error> {
        Ok(config.cutover.command.as_ref().map(|c| c.ready()).transpose()?.flatten().map(|config| Readiness { config }))
    }

    /// The word that says the application writes to the side `direction` moves traffic to.
    fn word(&self, direction: Direction) -> &str {
        match direction {
            Direction::Forward => &self.config.green,
            Direction::Reverse => &self.config.blue,
        }
    }

    /// The word that says the application writes to the side `direction` moves traffic from.
    fn now(&self, direction: Direction) -> &str {
        match direction {
            Direction::Forward => &self.config.blue,
            Direction::Reverse => &self.config.green,
        }
    }

    /// The fields that name [`Self::now`] and [`Self::word`].
    fn fields(direction: Direction) -> (&'static str, &'static str) {
        match direction {
            Direction::Forward => ("cutover.command.ready_blue", "cutover.command.ready_green"),
            Direction::Reverse => ("cutover.command.ready_green", "cutover.command.ready_blue"),
        }
    }

    /// Before the fence: the endpoint answers with the word of the side traffic moves from.
    pub(super) async fn check(&self, direction: Direction) -> Result<String, Error> {
        let (now, then) = (self.now(direction), self.word(direction));
        let (now_field, then_field) = Self::fields(direction);
        let (from, to) = direction.ends();
        let refused = |answer: String| -> Error {
            let (expected, then) = (format!("'{now}' ({now_field})"), format!("'{then}' ({then_field})"));
            Lifecycle::NotReadyBefore(Box::new(ReadyMismatch { from, to, expected, then, answer })).into()
        };
        match self.ask().await {
            Answer::Says(said) if said == now => Ok(format!("readiness: the application answers '{now}' ({now_field})")),
            Answer::Says(said) => Err(refused(format!("'{}'", quote(&said)))),
            Answer::Not(why) => Err(refused(why)),
        }
    }

    /// How long the application has to answer after the command.
    pub(super) fn timeout(&self) -> std::time::Duration {
        self.config.timeout
    }

    /// After the switch command: asks until the application gives the word of the side traffic
    /// moved to, or `ready_timeout` passes. Returns how long it took.
    pub(super) async fn wait(&self, direction: Direction) -> Result<Duration, Error> {
        let started = Instant::now();
        let word = self.word(direction);
        loop {
            let last = match self.ask().await {
                Answer::Says(said) if said == word => return Ok(started.elapsed()),
                Answer::Says(said) => format!("'{}'", quote(&said)),
                Answer::Not(why) => why,
            };
            if started.elapsed() >= self.config.timeout {
                let (from, to) = direction.ends();
                return Err(Lifecycle::NotReady { word: word.to_owned(), from, to, waited_ms: started.elapsed().as_millis(), last }.into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One `GET`: the trimmed body of a 2xx answer, or why there was none.
    async fn ask(&self) -> Answer {
        match self.config.target.send("GET", &[], bytes::Bytes::new(), REQUEST).await {
            Ok(answer) if answer.body.len() > LONGEST => Answer::Not(format!("an answer of {} bytes (HTTP {})", answer.body.len(), answer.status)),
            Ok(answer) if (200..300).contains(&answer.status) => Answer::Says(String::from_utf8_lossy(&answer.body).trim().to_owned()),
            Ok(answer) => Answer::Not(format!("HTTP {}", answer.status)),
            Err(e) => Answer::Not(e.to_string()),
        }
    }
}

/// What one request got.
enum Answer {
    Says(String),
    Not(String),
}

/// At most [`QUOTED`] characters of an answer, control characters shown as `?`.
fn quote(said: &str) -> String {
    let shown: String = said.chars().take(QUOTED).map(|c| if c.is_control() { '?' } else { c }).collect();
    if said.chars().count() > QUOTED {
        format!("{shown}…")
    } else {
        shown
    }
}
