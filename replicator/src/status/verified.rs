//! What `/status` shows of the continuous verify (`verify.continuous`, see
//! [`crate::verify::continuous`]): its state and the last finished result per table.

use serde::Serialize;
use std::collections::BTreeMap;

/// The continuous verify as `/status` shows it.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Verified {
    /// `waiting` (for streaming, or for the next run), `running`, `paused` (a cutover or rollback
    /// runs), `failed` (the last run: see `error`; tried again after `interval`).
    pub state: &'static str,
    /// Whole runs finished since the sidecar started.
    pub runs: u64,
    /// Re-checks of what the stream changed finished since the sidecar started.
    pub rechecks: u64,
    /// The last run's kind: `whole`, or `changes` (only the chunks the stream changed).
    pub last_run: &'static str,
    /// `verify.rows_per_second`.
    pub rows_per_second: u64,
    /// When the kept result was last updated (a whole run, a re-check, or `turnout verify --live`
    /// finished), RFC 3339.
    pub finished_at: Option<String>,
    /// When the oldest snapshot of that result was taken (a whole run's): the age the cutover's gate
    /// reads.
    pub oldest_round_at: Option<String>,
    /// Source rows the sidecar's last run compared, and how long it took (seconds): their ratio
    /// stays within `rows_per_second`.
    pub last_run_rows: u64,
    pub last_run_seconds: f64,
    /// Per table, `schema.table`: the last finished run's result.
    pub tables: BTreeMap<String, TableVerified>,
    pub error: Option<String>,
}

/// One table in the last finished run.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct TableVerified {
    pub equal: bool,
    pub source_rows: u64,
    pub target_rows: u64,
    pub differing_chunks: u64,
    /// The first differing rows, as `(id=7) only on the target`.
    pub differences: Vec<String>,
}

impl Verified {
    /// The tables that differ in the last finished run.
    pub fn differing(&self) -> Vec<&str> {
        self.tables.iter().filter(|(_, t)| !t.equal).map(|(name, _)| name.as_str()).collect()
    }
}
