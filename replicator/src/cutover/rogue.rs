//! The cutover's and `turnout finish`'s gates on writes that are not turnout's ([`crate::watch`]).
//!
//! Whatever the configuration says now, a foreign write recorded and not acknowledged refuses: turning
//! a watch off does not make what it saw go away. Only a side that is watched now is also read up to a
//! mark — before the fence (so the pause does not wait for a watch far behind) and inside the pause.

use super::{lock, Controller, Direction};
use crate::cutover::certificate::RogueWrites;
use crate::error::{Error, WatchRefusal};
use crate::source::contract::marker::Marker;
use crate::status::foreign::Side;
use std::time::{Duration, Instant};

/// How long `turnout finish` waits for blue's watch to read blue's log up to now.
const FINISH_CATCH_UP: Duration = Duration::from_secs(10);

/// The longest a rollback's closing mark on blue may take inside the pause; without it blue's watch
/// closes where it has read.
const CLOSING_MARK_WAIT: Duration = Duration::from_millis(200);

/// How long the cutover waits, before the fence, for green's watch to read green's log up to now.
const BEFORE_FENCE_CATCH_UP: Duration = Duration::from_secs(60);

impl Controller {
    /// Whether `side` is watched in this sidecar now (asked for, and not unavailable on its server).
    fn watches(&self, side: Side) -> bool {
        crate::watch::watching(&self.config, &self.status, side)
    }

    /// Commits a mark on `side` through `marker` and waits until the watch read past it, all by
    /// `deadline`.
    async fn read_up_to_now(&self, side: Side, marker: &mut Box<dyn Marker>, deadline: Instant) -> Result<(), Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mark = match tokio::time::timeout(left, marker.mark()).await {
            Ok(mark) => mark?,
            Err(_) => return Err(WatchRefusal::MarkSlow { side, left_ms: left.as_millis() }.into()),
        };
        crate::watch::caught_up(&self.status, side, &mark, deadline).await
    }

    /// Before the fence (a cutover): no foreign write on green waits to be acknowledged and, when
    /// green is watched, the watch has read green up to now. Returns the session for the mark inside
    /// the pause.
    /// A rollback that arms the next generation gets a session on blue instead, for the mark where
    /// blue's watch closes ([`Controller::mark_closing`]).
    pub(super) async fn rogue_gate_before(&self) -> Result<Option<Box<dyn Marker>>, Error> {
        self.note_watch();
        if self.direction != Direction::Forward {
            return Ok(self.closing_marker().await);
        }
        crate::watch::refuse_outstanding(&self.status, Side::Green)?;
        // Asked for: a green its watch is unavailable for refuses too, until the operator turns it off.
        if !crate::watch::wanted(&self.config, Side::Green) {
            return Ok(None);
        }
        let watched = self.status.watched(Side::Green).unwrap_or_default();
        if watched.state == crate::watch::UNAVAILABLE {
            let why = watched.error.unwrap_or_default();
            return Err(WatchRefusal::Unavailable { why }.into());
        }
        if watched.state != "watching" {
            let why = watched.error.map(|e| format!(": {e}")).unwrap_or_default();
            let state = if watched.state.is_empty() { "not started" } else { watched.state };
            return Err(WatchRefusal::NotReading { state, why }.into());
        }
        let mut marker =
            crate::source::family::of(&self.config).watch_marker(&self.config, Side::Green).await.map_err(Error::during("writing the watch's mark"))?;
        self.read_up_to_now(Side::Green, &mut marker, Instant::now() + BEFORE_FENCE_CATCH_UP).await?;
        crate::watch::refuse_outstanding(&self.status, Side::Green)?;
        Ok(Some(marker))
    }

    /// Inside the pause, after the proof: the watch read green's log past a mark written now, and
    /// found nothing unacknowledged, all by `deadline`. None when green is not watched.
    pub(super) async fn rogue_gate_in_pause(&self, marker: Option<&mut Box<dyn Marker>>, deadline: Instant) -> Option<Result<(), Error>> {
        // A rollback's marker is blue's, for where its watch closes.
        let marker = marker.filter(|_| self.direction == Direction::Forward)?;
        let result = match self.read_up_to_now(Side::Green, marker, deadline).await {
            Ok(()) => crate::watch::refuse_outstanding(&self.status, Side::Green),
            Err(e) => Err(e),
        };
        self.note_watch();
        Some(result)
    }

    /// A session on blue for the mark where its watch closes, when this rollback arms the next
    /// generation and blue is watched. Without one the watch closes where it has read at the switch.
    async fn closing_marker(&self) -> Option<Box<dyn Marker>> {
        if self.reverse_names().is_none() || !self.watches(Side::Blue) {
            return None;
        }
        let opened = tokio::time::timeout(FINISH_CATCH_UP, crate::source::family::of(&self.config).watch_marker(&self.config, Side::Blue))
            .await
            .unwrap_or_else(|_| Err(WatchRefusal::ConnectSlow { side: Side::Blue }.into()));
        match opened {
            Ok(marker) => Some(marker),
            Err(e) => {
                self.say(format!("WARNING: no session on blue for the watch's closing mark ({e}); blue's watch closes where it has read at the switch"));
                None
            }
        }
    }

    /// Inside a rollback's pause, just before the switch: a mark on blue where its watch stops
    /// counting, read after the switch ([`crate::cutover::again`] needs the window counted up to the
    /// next generation's hand-off, which precedes it). None (the watch closes where it has read) when
    /// it cannot be written by `deadline`, or within [`CLOSING_MARK_WAIT`].
    pub(super) async fn mark_closing(&self, marker: &mut Box<dyn Marker>, deadline: Instant) -> Option<turnout_decoders::Position> {
        let left = deadline.saturating_duration_since(Instant::now()).min(CLOSING_MARK_WAIT);
        match tokio::time::timeout(left, marker.mark()).await {
            Ok(Ok(mark)) => Some(mark),
            Ok(Err(e)) => {
                self.say(format!("WARNING: writing the watch's closing mark on blue failed ({e}); it closes where it has read"));
                None
            }
            Err(_) => None,
        }
    }

    /// `turnout finish`: no foreign write on blue waits to be acknowledged and, when blue is watched
    /// (and no rollback's switch closed the watch), the watch read blue up to now.
    pub(super) async fn rogue_gate_finish(&self) -> Result<(), Error> {
        if let Err(e) = self.read_blue_up_to_now().await {
            return Err(WatchRefusal::FinishUnproven { cause: Box::new(e) }.into());
        }
        crate::watch::refuse_outstanding(&self.status, Side::Blue)
    }

    /// When blue is watched (and no rollback's switch closed the watch): a mark on blue, and the watch
    /// read past it, within [`FINISH_CATCH_UP`] — before the window ends, by `finish` or its budget.
    pub async fn read_blue_up_to_now(&self) -> Result<(), Error> {
        let closed = self.status.watched(Side::Blue).is_some_and(|w| w.state == "closed");
        if !self.watches(Side::Blue) || closed {
            return Ok(());
        }
        let deadline = Instant::now() + FINISH_CATCH_UP;
        let opened = tokio::time::timeout(FINISH_CATCH_UP, crate::source::family::of(&self.config).watch_marker(&self.config, Side::Blue))
            .await
            .unwrap_or_else(|_| Err(WatchRefusal::ConnectSlow { side: Side::Blue }.into()));
        match opened {
            Ok(mut marker) => self.read_up_to_now(Side::Blue, &mut marker, deadline).await,
            Err(e) => Err(e),
        }
    }

    /// `POST /rogue-writes/acknowledge`: acknowledges the foreign writes of each side in `seen`,
    /// provided that side's count is still the one the operator saw.
    pub fn acknowledge_rogue_writes(&self, seen: &std::collections::BTreeMap<Side, u64>) -> Result<Vec<String>, Error> {
        let lines = crate::watch::acknowledge(&self.state, &self.status, seen)?;
        Ok(if lines.is_empty() { vec!["no writes that turnout did not make wait to be acknowledged".into()] } else { lines })
    }

    /// Puts what the watch of this direction's side saw into the certificate.
    fn note_watch(&self) {
        let side = match self.direction {
            Direction::Forward => Side::Green,
            Direction::Reverse => Side::Blue,
        };
        lock(&self.record).rogue_writes = Some(match crate::watch::summary(&self.status, side) {
            Some((seen, acknowledged)) if self.watches(side) || seen > 0 => {
                RogueWrites { watched: self.watches(side), side: Some(side.name().into()), seen, acknowledged }
            }
            _ => RogueWrites { watched: false, side: None, seen: 0, acknowledged: 0 },
        });
    }
}
