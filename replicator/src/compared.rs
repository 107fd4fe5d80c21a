//! What a live verify compared: its progress, kept in `state.dir/verify-live.json` so that a run
//! that stopped (or was killed) resumes where it was, and the last finished run's result, kept for
//! the cutover's verify gate. Data and files only, below the commands that write (`verify`) and read
//! (`cutover`) them; `verify::progress` is this module.
//!
//! Guarantees: the file is replaced atomically (written beside, synced, renamed), so it is always a
//! whole earlier state; a table's `watermark` only covers chunks compared completely, in key order,
//! so resuming from it never skips a row (it may compare again chunks that were done after it).

use crate::error::Error;
use crate::source::contract::compare::Key;
use crate::state::StoreError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file's format version.
const VERSION: u32 = 1;

/// How a row differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// On the source, not on the target.
    Missing,
    /// On the target, not on the source.
    Extra,
    /// On both, with different values.
    Changed,
}

/// One row that differs, named by its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDiff {
    pub kind: DiffKind,
    /// `(column, value)` of each key column.
    pub key: Vec<(String, String)>,
    /// The columns whose values differ (`Changed`).
    pub columns: Vec<String>,
    /// `(column, source value, target value)` of those columns: only with `--show-values`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(String, Option<String>, Option<String>)>,
}

impl RowDiff {
    /// `(id=7) only on the target`: the row's key and how it differs.
    pub fn describe(&self) -> String {
        let key: Vec<String> = self.key.iter().map(|(c, v)| format!("{c}={v}")).collect();
        let kind = match self.kind {
            DiffKind::Missing => "missing on the target",
            DiffKind::Extra => "only on the target",
            DiffKind::Changed => "changed",
        };
        format!("({}) {kind}", key.join(", "))
    }
}

/// Most rows recorded per table; beyond, only counted.
pub const MAX_RECORDED: usize = 100;

/// One table's comparison so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    /// `schema.table`, quoted as needed.
    pub table: String,
    /// Every row up to this key (inclusive) is compared; none: nothing yet.
    pub watermark: Option<Key>,
    pub done: bool,
    pub source_rows: u64,
    pub target_rows: u64,
    pub chunks: u64,
    /// Chunks whose counts or hash sums differed.
    pub differing_chunks: u64,
    /// The table has no key to compare in chunks: compared whole, differences not located.
    pub keyless: bool,
    pub differences: Vec<RowDiff>,
    /// Differing rows beyond [`MAX_RECORDED`].
    pub more_differences: u64,
    /// Each chunk compared, in key order: what the continuous verify re-checks alone when its keys
    /// change (see [`crate::verify::changes`]). Kept in memory only: a run resumed from its file has
    /// not all of them, and is never the base of a re-check.
    #[serde(skip)]
    pub bounds: Vec<Bound>,
}

/// One chunk compared: its upper key (none: to the end), its rows on each side, whether it differed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub upper: Option<Key>,
    pub source_rows: u64,
    pub target_rows: u64,
    pub differs: bool,
}

impl TableState {
    /// True when nothing differs.
    pub fn equal(&self) -> bool {
        self.differing_chunks == 0
    }

    /// Records a row that differs.
    pub fn record(&mut self, diff: RowDiff) {
        if self.differences.len() < MAX_RECORDED {
            self.differences.push(diff);
        } else {
            self.more_differences += 1;
        }
    }
}

/// A live verify's progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub version: u32,
    /// The source (host, port, database) compared; a file for another source is not resumed.
    pub source: String,
    pub chunk_rows: u64,
    pub tables: Vec<TableState>,
    /// The source position of each round's snapshots.
    pub positions: Vec<String>,
    /// When each round's snapshots were taken (microseconds since the epoch).
    #[serde(default)]
    pub rounds_at_us: Vec<i64>,
}

impl Saved {
    pub fn new(source: String, chunk_rows: u64, tables: &[String]) -> Saved {
        Saved {
            version: VERSION,
            source,
            chunk_rows,
            tables: tables.iter().map(|t| TableState { table: t.clone(), ..TableState::default() }).collect(),
            positions: Vec::new(),
            rounds_at_us: Vec::new(),
        }
    }

    /// Whether this progress is of the same comparison: same source, chunk size and tables.
    pub fn same_run(&self, other: &Saved) -> bool {
        self.version == other.version
            && self.source == other.source
            && self.chunk_rows == other.chunk_rows
            && self.tables.iter().map(|t| &t.table).eq(other.tables.iter().map(|t| &t.table))
    }

    /// Reads the progress file; none when absent. A file that cannot be read as progress is an error
    /// naming it (remove it, or run with `--restart`).
    pub fn load(path: &Path) -> Result<Option<Saved>, Error> {
        load_json(path, "a live verify's progress", "remove it or run with --restart")
    }

    /// Replaces the progress file atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        save_json(self, path)
    }
}

/// Reads `path` as JSON of `what`; none when absent. Unreadable content is an error naming the file
/// and `fix`.
fn load_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str, fix: &'static str) -> Result<Option<T>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::file("reading", path)(e).into()),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| StoreError::CorruptFile { path: path.to_path_buf(), what, reason: e.to_string(), fix }.into())
}

/// Replaces `path` with `value` as JSON atomically: written beside, synced, renamed.
fn save_json<T: Serialize>(value: &T, path: &Path) -> Result<(), Error> {
    let fail = StoreError::file("writing", path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(&fail)?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(StoreError::encode("a verify record"))?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(&fail)?;
        f.write_all(&text).map_err(&fail)?;
        f.sync_all().map_err(&fail)?;
    }
    Ok(std::fs::rename(&tmp, path).map_err(&fail)?)
}

/// Where a live verify keeps its progress.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("verify-live.json")
}

/// Where the sidecar's continuous verify keeps its progress.
pub fn background_path(state_dir: &Path) -> PathBuf {
    state_dir.join("verify-background.json")
}

/// The continuous verify's re-check of what changed: never resumed, removed when it ends.
pub fn recheck_path(state_dir: &Path) -> PathBuf {
    state_dir.join("verify-recheck.json")
}

/// The last live verify that finished, kept for the cutover's gate (`turnout cutover --verify`) in
/// `state.dir/verify-last.json`. Replaced atomically by each verify that finishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub version: u32,
    /// The source compared (`host:port/database`).
    pub source: String,
    /// The target compared ([`address`] of its URL); empty in results of earlier versions, which
    /// the gate then refuses as of another target.
    #[serde(default)]
    pub target: String,
    /// Which way the sidecar replicated: in the rollback window green is the source.
    pub direction: crate::status::Direction,
    /// Every replicated table was compared (no `--table`).
    pub whole: bool,
    pub tables: Vec<TableState>,
    pub positions: Vec<String>,
    /// When each round's snapshots were taken; the oldest is the verify's age.
    pub rounds_at_us: Vec<i64>,
    pub finished_at_us: i64,
    /// A whole run's result with re-checks of what changed merged in (the continuous verify): when
    /// that whole run finished. None: one whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_run_finished_at_us: Option<i64>,
}

impl Finished {
    /// Reads the last result; none when no verify finished. A file that cannot be read as one (of
    /// another format) is an error naming it.
    pub fn load(state_dir: &Path) -> Result<Option<Finished>, Error> {
        load_json(&finished_path(state_dir), "a live verify's result", "run `turnout verify --live` again")
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), Error> {
        let _lock = lock_finished(state_dir)?;
        save_json(self, &finished_path(state_dir))
    }

    /// Saves this result only while the kept one is still the one that finished at `expected`
    /// (microseconds): a verify that finished meanwhile — an operator's `turnout verify --live` —
    /// is never replaced by a merge of an older one. Returns whether it saved. The check and the
    /// save hold the lock every save takes (`verify-last.lock`, across processes).
    pub fn save_over(&self, state_dir: &Path, expected: i64) -> Result<bool, Error> {
        let _lock = lock_finished(state_dir)?;
        if Finished::load(state_dir)?.is_none_or(|kept| kept.finished_at_us != expected) {
            return Ok(false);
        }
        save_json(self, &finished_path(state_dir))?;
        Ok(true)
    }
}

/// The lock around replacing the kept result (released when the file is dropped).
fn lock_finished(state_dir: &Path) -> Result<std::fs::File, Error> {
    let path = state_dir.join("verify-last.lock");
    let fail = StoreError::file("locking", &path);
    std::fs::create_dir_all(state_dir).map_err(&fail)?;
    let file = std::fs::File::options().create(true).truncate(false).write(true).open(&path).map_err(&fail)?;
    file.lock().map_err(&fail)?;
    Ok(file)
}

/// The format version of [`Finished`].
pub const FINISHED_VERSION: u32 = 1;

pub use crate::config::address;

fn finished_path(state_dir: &Path) -> PathBuf {
    state_dir.join("verify-last.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_survives_a_save_and_load_and_only_resumes_the_same_run() {
        let dir = tempfile::tempdir().expect("test step");
        let file = path(dir.path());
        assert_eq!(Saved::load(&file).expect("test step"), None);
        let mut saved = Saved::new("localhost:5432/app".into(), 1000, &["public.a".into(), "public.b".into()]);
        saved.tables[0].watermark = Some(vec!["42".into(), "x'y".into()]);
        saved.tables[0].record(RowDiff { kind: DiffKind::Changed, key: vec![("id".into(), "7".into())], columns: vec!["v".into()], values: Vec::new() });
        saved.save(&file).expect("test step");
        let back = Saved::load(&file).expect("test step").expect("test step");
        assert_eq!(back, saved);
        assert!(back.same_run(&Saved::new("localhost:5432/app".into(), 1000, &["public.a".into(), "public.b".into()])));
        assert!(!back.same_run(&Saved::new("localhost:5432/app".into(), 500, &["public.a".into(), "public.b".into()])));
        assert!(!back.same_run(&Saved::new("localhost:5432/app".into(), 1000, &["public.a".into()])));
        std::fs::write(&file, "{not json").expect("test step");
        assert!(Saved::load(&file).expect_err("an error").to_string().contains("--restart"));
    }

    #[test]
    fn recorded_differences_are_bounded() {
        let mut t = TableState::default();
        for i in 0..(MAX_RECORDED + 5) {
            t.record(RowDiff { kind: DiffKind::Missing, key: vec![("id".into(), i.to_string())], columns: Vec::new(), values: Vec::new() });
        }
        assert_eq!(t.differences.len(), MAX_RECORDED);
        assert_eq!(t.more_differences, 5);
    }
}
