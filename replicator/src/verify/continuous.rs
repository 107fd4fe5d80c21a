//! The continuous verify (`[verify] continuous = true`): the sidecar runs `turnout verify --live`
//! itself, whole run after whole run, at most `verify.rows_per_second` source rows per second, with
//! `verify.interval` between runs. Each finished run replaces the result the cutover's gate reads
//! (`turnout cutover --verify`), so the gate is usually satisfied already when the operator asks; the
//! last result per table is on `/status` (`continuous_verify`), in the metrics and on the page, and a
//! difference raises the critical `verify` alert.
//!
//! A cutover or rollback pauses it: a run in progress is dropped (its snapshot sessions would hold
//! locks the cutover waits for) and resumes from its saved progress once the cutover ended. The run
//! compares every table again each time; chunks that changed are not tracked apart.

use super::live::{self, LiveOptions};
use crate::config::Config;
use crate::status::verified::TableVerified;
use crate::status::{Phase, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a running verify checks whether a cutover began.
const POLL: Duration = Duration::from_millis(100);

/// Shows a finished live verify's result (the continuous verify's or the operator's) on `/status`.
pub fn show(status: &Status, finished: &crate::compared::Finished) {
    status.update_verified(|v| {
        v.finished_at = Some(crate::duration::rfc3339(finished.finished_at_us));
        v.oldest_round_at = finished.rounds_at_us.iter().min().map(|us| crate::duration::rfc3339(*us));
        v.tables = finished
            .tables
            .iter()
            .map(|t| {
                let verified = TableVerified {
                    equal: t.equal(),
                    source_rows: t.source_rows,
                    target_rows: t.target_rows,
                    differing_chunks: t.differing_chunks,
                    differences: t.differences.iter().take(5).map(crate::compared::RowDiff::describe).collect(),
                };
                (plain(&t.table), verified)
            })
            .collect();
    });
}

/// `schema.table` from the verify's `"schema"."table"` (as the snapshot's table progress names it).
fn plain(quoted: &str) -> String {
    let (mut out, mut chars, mut inside) = (String::new(), quoted.chars().peekable(), false);
    while let Some(c) = chars.next() {
        match (c, inside) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.push('"');
            }
            ('"', _) => inside = !inside,
            (c, _) => out.push(c),
        }
    }
    out
}

/// Runs the continuous verify until `shutdown`. `busy` says whether a cutover or rollback runs.
pub async fn run(config: Arc<Config>, status: Arc<Status>, busy: impl Fn() -> bool + Send + Sync + 'static, mut shutdown: watch::Receiver<bool>) {
    let settings = match config.verify.settings() {
        Ok(s) => s,
        Err(e) => return tracing::error!("the continuous verify is off: {e}"),
    };
    status.update_verified(|v| (v.state, v.rows_per_second) = ("waiting", settings.rows_per_second));
    let state_dir = crate::config::reversed(&config).state.dir;
    // The last result kept, shown until the first run finishes.
    for dir in [&config.state.dir, &state_dir] {
        if let Ok(Some(finished)) = crate::compared::Finished::load(dir) {
            if finished.whole {
                show(&status, &finished);
            }
        }
    }
    let options = LiveOptions {
        table: None,
        chunk_rows: settings.chunk_rows,
        parallel: 1,
        max_snapshot_age: Duration::from_secs(60),
        slot_timeout: Duration::from_secs(30),
        restart: false,
        show_values: false,
        progress_every: Duration::ZERO,
        rows_per_second: Some(settings.rows_per_second),
        background: true,
    };
    let set = |state: &'static str, error: Option<String>| status.update_verified(|v| (v.state, v.error) = (state, error));
    loop {
        // Only while streaming with green whole, and never beside a cutover.
        while status.phase() != Phase::Streaming || status.copying() || busy() {
            set(if busy() { "paused" } else { "waiting" }, status.verified().and_then(|v| v.error));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
        set("running", None);
        let verify = live::run(&config, &options);
        tokio::pin!(verify);
        let outcome = loop {
            tokio::select! {
                r = &mut verify => break Some(r),
                _ = tokio::time::sleep(POLL) => if busy() { break None },
                _ = shutdown.wait_for(|s| *s) => return,
            }
        };
        match outcome {
            None => {
                tracing::info!("the continuous verify pauses for the cutover; it resumes from its progress afterwards");
                continue;
            }
            Some(Ok(report)) => {
                let differing = report.tables.iter().filter(|t| !t.equal()).count();
                tracing::info!(
                    tables = report.tables.len(),
                    differing,
                    rows = report.rows,
                    seconds = report.elapsed.as_secs_f64(),
                    "continuous verify: a whole run finished"
                );
                let dir = if report.direction == crate::status::Direction::Forward { &config.state.dir } else { &state_dir };
                match crate::compared::Finished::load(dir) {
                    Ok(Some(finished)) => show(&status, &finished),
                    other => tracing::warn!("the continuous verify's result could not be read back: {other:?}"),
                }
                status.update_verified(|v| {
                    v.runs += 1;
                    (v.last_run_rows, v.last_run_seconds) = (report.rows, report.elapsed.as_secs_f64());
                });
                set("waiting", None);
            }
            Some(Err(e)) => {
                tracing::warn!("the continuous verify failed: {e}; trying again in {:?}", settings.interval);
                set("failed", Some(e.to_string()));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_names_are_shown_plain() {
        assert_eq!(super::plain("\"public\".\"t\""), "public.t");
        assert_eq!(super::plain("\"app\".\"Odd \"\"Name\"\".x\""), "app.Odd \"Name\".x");
    }
}
