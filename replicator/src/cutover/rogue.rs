//! The cutover's and `turnout finish`'s gates on writes that are not turnout's ([`crate::watch`]).

use super::{lock, Controller, Direction};
use crate::cutover::certificate::RogueWrites;
use crate::source::contract::marker::Marker;
use crate::status::foreign::Side;
use std::time::{Duration, Instant};

/// How long `turnout finish` waits for blue's watch to read blue's log up to now.
const FINISH_CATCH_UP: Duration = Duration::from_secs(10);

impl Controller {
    /// The side this direction's watch covers, when it is watched: green before a cutover. A rollback
    /// is not gated (blue keeps whatever was written there), only recorded.
    fn gated_side(&self) -> Option<Side> {
        (self.direction == Direction::Forward && self.status.watched(Side::Green).is_some()).then_some(Side::Green)
    }

    /// Before the fence: no foreign write on green waits to be acknowledged, and the watch reads.
    pub(super) fn rogue_gate_before(&self) -> Result<(), String> {
        self.note_watch();
        if self.config.watch.green && self.direction == Direction::Forward && self.status.watched(Side::Green).is_none() {
            return Err("[watch] green is set but green is not watched yet; restart `turnout run` (the watch starts with it)".into());
        }
        let Some(side) = self.gated_side() else { return Ok(()) };
        crate::watch::refuse_outstanding(&self.status, side)?;
        let watched = self.status.watched(side).unwrap_or_default();
        if watched.state != "watching" {
            let why = watched.error.map(|e| format!(": {e}")).unwrap_or_default();
            return Err(format!("the watch for writes on {side} that are not turnout's is {}{why}; the cutover waits for it to read", watched.state));
        }
        Ok(())
    }

    /// Before the fence: a session on green for the mark inside the pause, when green is watched.
    pub(super) async fn rogue_marker(&self) -> Result<Option<Box<dyn Marker>>, String> {
        let Some(side) = self.gated_side() else { return Ok(None) };
        let marker = crate::with_family!(self.config, F => F::watch_marker(&self.config, side).await).map_err(|e| e.to_string())?;
        Ok(Some(marker))
    }

    /// Inside the pause, after the proof: the watch read green's log past a mark written now, and
    /// found nothing unacknowledged. None when green is not watched.
    pub(super) async fn rogue_gate_in_pause(&self, marker: Option<&mut Box<dyn Marker>>, deadline: Instant) -> Option<Result<(), String>> {
        let (side, marker) = (self.gated_side()?, marker?);
        let checked = async {
            let mark = marker.mark().await.map_err(|e| e.to_string())?;
            crate::watch::caught_up(&self.status, side, &mark, deadline).await?;
            crate::watch::refuse_outstanding(&self.status, side)
        };
        let result = checked.await;
        self.note_watch();
        Some(result)
    }

    /// `turnout finish`: blue's watch read blue's log up to now and found nothing unacknowledged.
    pub(super) async fn rogue_gate_finish(&self) -> Result<(), String> {
        // Not watched, or closed by a rollback's switch (blue takes the application's writes).
        if self.status.watched(Side::Blue).is_none_or(|w| w.state == "closed") {
            return Ok(());
        }
        let mark = async {
            let mut marker = crate::with_family!(self.config, F => F::watch_marker(&self.config, Side::Blue).await).map_err(|e| e.to_string())?;
            marker.mark().await.map_err(|e| e.to_string())
        };
        let caught_up = match mark.await {
            Ok(mark) => crate::watch::caught_up(&self.status, Side::Blue, &mark, Instant::now() + FINISH_CATCH_UP).await,
            Err(e) => Err(e),
        };
        if let Err(e) = caught_up {
            return Err(format!("{e}. Wait and try again, or set [watch] blue = false and restart `turnout run` to finish without the watch"));
        }
        crate::watch::refuse_outstanding(&self.status, Side::Blue)
    }

    /// `POST /rogue-writes/acknowledge`: acknowledges every foreign write seen so far, on every side.
    pub fn acknowledge_rogue_writes(&self) -> Result<Vec<String>, String> {
        let lines = crate::watch::acknowledge(&self.state, &self.status).map_err(|e| e.to_string())?;
        Ok(if lines.is_empty() { vec!["no writes that turnout did not make wait to be acknowledged".into()] } else { lines })
    }

    /// Puts what the watch of this direction's side saw into the certificate.
    fn note_watch(&self) {
        let side = match self.direction {
            Direction::Forward => Side::Green,
            Direction::Reverse => Side::Blue,
        };
        lock(&self.record).rogue_writes = Some(match crate::watch::summary(&self.status, side) {
            Some((seen, acknowledged)) => RogueWrites { watched: true, side: Some(side.name().into()), seen, acknowledged },
            None => RogueWrites { watched: false, side: None, seen: 0, acknowledged: 0 },
        });
    }
}
