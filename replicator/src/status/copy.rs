//! The initial copy's progress on `/status`: per table (consistent copy) and per chunk (the chunked
//! copy, with its estimate of the time left).

use super::{lock, Status};
use serde::Serialize;
use std::time::Instant;

/// Per-table snapshot progress.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TableProgress {
    pub rows: u64,
    pub bytes: u64,
    pub done: bool,
}

/// The chunked initial copy's progress (`snapshot.mode = "chunked"`), in `/status` as `copy`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyProgress {
    pub chunks_total: u64,
    pub chunks_done: u64,
    /// Chunks found already on green when this process started (kept, not copied again).
    pub chunks_kept: u64,
    /// Rows and bytes on green from the chunks done (kept ones included).
    pub rows: u64,
    pub bytes: u64,
    /// Blue's size estimate of every chunk, and of those done.
    pub estimated_bytes_total: u64,
    pub estimated_bytes_done: u64,
    /// Seconds until every chunk is done at this process's pace so far; none before the first chunk.
    pub eta_seconds: Option<f64>,
    /// True once every chunk is on green.
    pub complete: bool,
}

/// [`CopyProgress`] and when this process's part of it started.
#[derive(Debug)]
pub(super) struct CopyTracker {
    progress: CopyProgress,
    started: Instant,
    /// Estimated bytes done when this process started.
    kept_estimate: u64,
}

impl Status {
    pub fn table_started(&self, table: &str) {
        self.with(|i| {
            i.tables.entry(table.to_owned()).or_default();
        });
    }

    pub fn table_progress(&self, table: &str, rows: u64, bytes: u64) {
        self.with(|i| {
            let t = i.tables.entry(table.to_owned()).or_default();
            t.rows += rows;
            t.bytes += bytes;
        });
    }

    pub fn table_done(&self, table: &str) {
        self.with(|i| i.tables.entry(table.to_owned()).or_default().done = true);
    }

    /// A chunked copy of `total` chunks (`bytes` estimated) starts or resumes with `kept` chunks
    /// (`kept_bytes` estimated, `kept_rows` rows) already on green.
    pub fn copy_started(&self, total: u64, bytes: u64, kept: u64, kept_bytes: u64, kept_rows: u64) {
        let progress = CopyProgress {
            chunks_total: total,
            chunks_done: kept,
            chunks_kept: kept,
            rows: kept_rows,
            estimated_bytes_total: bytes,
            estimated_bytes_done: kept_bytes,
            ..CopyProgress::default()
        };
        *lock(&self.copy) = Some(CopyTracker { progress, started: Instant::now(), kept_estimate: kept_bytes });
    }

    /// One chunk of `estimate` bytes is on green with `rows` rows and `bytes` bytes.
    pub fn chunk_done(&self, estimate: u64, rows: u64, bytes: u64) {
        if let Some(t) = lock(&self.copy).as_mut() {
            t.progress.chunks_done += 1;
            t.progress.rows += rows;
            t.progress.bytes += bytes;
            t.progress.estimated_bytes_done += estimate;
        }
    }

    /// Chunks done and in all.
    pub fn copy_chunks(&self) -> (u64, u64) {
        lock(&self.copy).as_ref().map_or((0, 0), |t| (t.progress.chunks_done, t.progress.chunks_total))
    }

    /// Every chunk is on green.
    pub fn copy_finished(&self) {
        if let Some(t) = lock(&self.copy).as_mut() {
            t.progress.complete = true;
        }
    }

    /// True while a chunked copy has chunks left: the stream runs, but green is not yet whole.
    pub fn copying(&self) -> bool {
        lock(&self.copy).as_ref().is_some_and(|t| !t.progress.complete)
    }

    pub(super) fn copy_progress(&self) -> Option<CopyProgress> {
        let guard = lock(&self.copy);
        let t = guard.as_ref()?;
        let mut p = t.progress.clone();
        let done_here = p.estimated_bytes_done.saturating_sub(t.kept_estimate);
        if !p.complete && done_here > 0 {
            let rate = done_here as f64 / t.started.elapsed().as_secs_f64().max(0.001);
            p.eta_seconds = Some(p.estimated_bytes_total.saturating_sub(p.estimated_bytes_done) as f64 / rate);
        }
        Some(p)
    }
}
