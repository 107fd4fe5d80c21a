//! The continuous verify (`[verify] continuous = true`): the sidecar runs `turnout verify --live`
//! itself, run after run, at most `verify.rows_per_second` source rows per second, with
//! `verify.interval` between runs. Each finished run replaces the result the cutover's gate reads
//! (`turnout cutover --verify`), so the gate is usually satisfied already when the operator asks; the
//! last result per table is on `/status` (`continuous_verify`), in the metrics and on the page, and a
//! difference raises the critical `verify` alert.
//!
//! Between whole runs (a whole run begins once the last began `verify.whole_every` ago) a run
//! re-checks only the chunks the stream changed since the last run ([`super::changes`]); the
//! result it keeps still ages by the whole run's snapshots.
//!
//! A cutover or rollback pauses it: a run in progress is dropped (its snapshot sessions would hold
//! locks the cutover waits for) and a whole run resumes from its saved progress once the cutover
//! ended.

use super::live::{self, LiveOptions, LiveReport};
use crate::compared::Finished;
use crate::config::Config;
use crate::pipeline::changed::Taken;
use crate::pipeline::signals::Channels;
use crate::status::verified::{TableVerified, Verified};
use crate::status::{Phase, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often a running verify checks whether a cutover began.
const POLL: Duration = Duration::from_millis(100);

/// Shows a finished live verify's result (the continuous verify's or the operator's) on `/status`.
pub fn show(status: &Status, finished: &Finished) {
    status.update_verified(|v| fill(v, finished));
}

/// `v` showing `finished`: its times and each table's result.
fn fill(v: &mut Verified, finished: &Finished) {
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

/// The last whole run this task made, and the result kept since: what the next re-check of what
/// changed starts from, while the stream's [`crate::pipeline::changed::Changes`] are of the same epoch.
struct Chain {
    epoch: u64,
    began: Instant,
    /// Where the result is kept (the direction's state directory).
    dir: std::path::PathBuf,
    /// The whole run's positions and snapshot times.
    whole: (Vec<String>, Vec<i64>),
    last: Finished,
}

impl Chain {
    /// Whether the next run may re-check only what changed: the same stream, the whole run young
    /// enough, no DDL statement since, and the kept result still this task's (not replaced by an
    /// operator's `turnout verify --live`).
    fn usable(&self, taken: &Taken, whole_every: Duration) -> bool {
        self.epoch == taken.epoch
            && self.began.elapsed() < whole_every
            && taken.everything.is_none()
            && Finished::load(&self.dir).ok().flatten().is_some_and(|f| f.finished_at_us == self.last.finished_at_us)
    }
}

/// Whether the continuous verify re-checks only what changed between whole runs
/// (`verify.whole_every`): the stream must then keep what changes, from before it starts
/// ([`crate::pipeline::changed::Changes::enable`]).
pub fn rechecks(config: &Config) -> bool {
    config.verify.continuous && config.cutover.verify_max_age().and_then(|max_age| config.verify.settings(max_age)).is_ok_and(|s| !s.whole_every.is_zero())
}

/// The options of a background run: one worker at `verify.rows_per_second`.
fn background(settings: &crate::config::Continuous) -> LiveOptions {
    LiveOptions {
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
        recheck: None,
    }
}

/// A run that finished: whether it re-checked what changed, the changes taken before it began,
/// when it began, and the state directory of its direction.
struct Run<'a> {
    recheck: bool,
    taken: &'a Taken,
    began: Instant,
    dir: std::path::PathBuf,
}

/// Shows a finished run in `/status` and returns the chain the next run re-checks from. `/status`
/// changes once per finished run: a reader never sees a run counted without its tables and figures
/// (this task is the only one that changes it).
fn finished(status: &Status, changes: &Channels, chain: Option<Chain>, run: Run<'_>, report: &LiveReport) -> Option<Chain> {
    let mut shown = status.verified().unwrap_or_default();
    let chain = match (run.recheck, chain) {
        (true, Some(c)) => rechecked(&mut shown, changes, c, run.taken, report),
        _ => whole(&mut shown, changes, run.taken, report, run.began, run.dir),
    };
    (shown.last_run_rows, shown.last_run_seconds) = (report.rows, report.elapsed.as_secs_f64());
    (shown.state, shown.error) = ("waiting", None);
    status.update_verified(|v| *v = shown);
    chain
}

/// Runs the continuous verify until `shutdown`. `busy` says whether a cutover or rollback runs;
/// `changes` is what the stream changed (see [`super::changes`]).
pub async fn run(
    config: Arc<Config>,
    status: Arc<Status>,
    changes: Arc<Channels>,
    busy: impl Fn() -> bool + Send + Sync + 'static,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = match config.cutover.verify_max_age().and_then(|max_age| config.verify.settings(max_age)) {
        Ok(s) => s,
        Err(e) => return tracing::error!("the continuous verify is off: {e}"),
    };
    status.update_verified(|v| (v.state, v.rows_per_second) = ("waiting", settings.rows_per_second));
    let state_dir = crate::config::reversed(&config).state.dir;
    // The last result kept, shown until the first run finishes.
    for dir in [&config.state.dir, &state_dir] {
        if let Ok(Some(finished)) = Finished::load(dir) {
            if finished.whole {
                show(&status, &finished);
            }
        }
    }
    let options = background(&settings);
    let set = |state: &'static str, error: Option<String>| status.update_verified(|v| (v.state, v.error) = (state, error));
    let mut chain: Option<Chain> = None;
    loop {
        // Only while streaming with green whole, and never beside a cutover.
        while status.phase() != Phase::Streaming || status.copying() || busy() {
            set(if busy() { "paused" } else { "waiting" }, status.verified().and_then(|v| v.error));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
        let taken = changes.changes.taken();
        let recheck =
            chain.as_ref().filter(|c| changes.changes.enabled() && c.usable(&taken, settings.whole_every)).map(|c| super::changes::plan(&c.last, &taken));
        if recheck.as_ref().is_some_and(|r| r.plans.is_empty()) {
            // Nothing changed since the last run.
            set("waiting", None);
        } else {
            set("running", None);
            let began = Instant::now();
            let options = LiveOptions { recheck: recheck.clone(), ..options.clone() };
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
                    let dir = if report.direction == crate::status::Direction::Forward { config.state.dir.clone() } else { state_dir.clone() };
                    let run = Run { recheck: recheck.is_some(), taken: &taken, began, dir };
                    chain = finished(&status, &changes, chain.take(), run, &report);
                }
                Some(Err(e)) => {
                    tracing::warn!("the continuous verify failed: {e}; trying again in {:?}", settings.interval);
                    set("failed", Some(e.to_string()));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// A whole run finished: shown (in `shown`), what it covered cleared from the stream's changes, and
/// (unless it resumed an earlier run, whose first rounds may be of another stream) the start of a
/// chain.
fn whole(shown: &mut Verified, changes: &Channels, taken: &Taken, report: &LiveReport, began: Instant, dir: std::path::PathBuf) -> Option<Chain> {
    let differing = report.tables.iter().filter(|t| !t.equal()).count();
    tracing::info!(
        tables = report.tables.len(),
        differing,
        rows = report.rows,
        seconds = report.elapsed.as_secs_f64(),
        "continuous verify: a whole run finished"
    );
    (shown.runs, shown.last_run) = (shown.runs + 1, "whole");
    // What this run saved, with its chunks (re-reading the file could find an operator's verify
    // that finished meanwhile).
    let finished = report.kept.clone()?;
    fill(shown, &finished);
    let first = report.round_positions.first().filter(|_| !report.resumed)?;
    changes.changes.clear(taken, first, None);
    let whole = (finished.positions.clone(), finished.rounds_at_us.clone());
    Some(Chain { epoch: taken.epoch, began, dir, whole, last: finished })
}

/// A re-check of what changed finished: merged into the kept result, saved for the gate, shown (in
/// `shown`), and what it covered cleared.
fn rechecked(shown: &mut Verified, changes: &Channels, mut chain: Chain, taken: &Taken, report: &LiveReport) -> Option<Chain> {
    if report.direction != chain.last.direction {
        return None;
    }
    let Some(first) = report.round_positions.first() else {
        // Nothing was compared (every planned table is gone): nothing to merge.
        return Some(chain);
    };
    let merged = super::changes::merge(&chain.last, &chain.whole, report, crate::status::now_micros());
    match merged.save_over(&chain.dir, chain.last.finished_at_us) {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!("a live verify finished while the continuous verify re-checked what changed; the next run is whole");
            return None;
        }
        Err(e) => {
            tracing::warn!("the continuous verify's re-check could not be kept: {e}");
            return None;
        }
    }
    let differing = merged.tables.iter().filter(|t| !t.equal()).count();
    let chunks: u64 = report.tables.iter().map(|t| t.chunks).sum();
    tracing::info!(tables = report.tables.len(), chunks, differing, rows = report.rows, "continuous verify: what changed re-checked");
    fill(shown, &merged);
    (shown.rechecks, shown.last_run) = (shown.rechecks + 1, "changes");
    let compared = report.tables.iter().map(|t| t.table.clone()).collect();
    changes.changes.clear(taken, first, Some(&compared));
    chain.last = merged;
    Some(chain)
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_names_are_shown_plain() {
        assert_eq!(super::plain("\"public\".\"t\""), "public.t");
        assert_eq!(super::plain("\"app\".\"Odd \"\"Name\"\".x\""), "app.Odd \"Name\".x");
    }
}
