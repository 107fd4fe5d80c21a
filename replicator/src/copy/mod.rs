//! The chunked initial copy (`snapshot.mode = "chunked"`): green is filled chunk by chunk **while the
//! change stream runs**, each chunk recorded as done only once it is committed on green, so a restart
//! copies only the chunks not yet done and blue's log is released as the stream advances.
//!
//! # The method: rounds at a barrier in the stream
//!
//! A chunk is a range `[from, to)` of a table's leading primary-key column when that column is an
//! integer (the first chunk open below, the last open above), or the whole table otherwise. The plan
//! is fixed before streaming starts and kept in the state store.
//!
//! The stream starts at once, at a position `P0` of blue's log, and every change is filtered by
//! [`Coverage`]: a change to a row in a chunk not yet copied is dropped; every other change is
//! applied. The chunks are copied in **rounds**, one after another:
//!
//! 1. A round opens a snapshot of blue and learns the exact log position `S` it shows: PostgreSQL
//!    creates a temporary logical slot that exports its snapshot (`S` = its consistent point, as
//!    PostgreSQL's own table synchronisation does); MySQL/MariaDB block commits for a moment to start
//!    consistent snapshots and read the binlog position and GTID state (`S`). The snapshot shows
//!    exactly the transactions that commit at or before `S`. It then writes a tiny transaction on blue
//!    (a *nudge*) so that one transaction past `S` reaches the stream.
//! 2. The sink ([`Copying`]) applies transactions at or before `S` as usual. At the first transaction
//!    past `S` — the **barrier** — it flushes green (every transaction up to `S` is durable there),
//!    then copies the round's chunks from the snapshot, each in one green transaction that first
//!    deletes whatever green holds in the chunk's range and then inserts the chunk's rows. Each chunk
//!    is recorded as done in the state store after its commit returned. Only then are the chunks
//!    added to the coverage and the transaction past `S` applied.
//!
//! # Why green ends equal to blue
//!
//! Take any row `r` of a chunk `c` copied at `S`. Every change to `r` committed at or before `S` is in
//! the snapshot, so it is in the copied row; every such change the stream carried was applied before
//! the barrier, while `c` was not covered, so it was dropped — never applied twice. Every change to
//! `r` committed after `S` comes after the barrier, when `c` is covered, so it is applied on top of the
//! copied row — never missed. A row that moves into `c` from a chunk not yet copied (an UPDATE of its
//! key) is inserted from its new image; one that moves out of `c` into a chunk not yet copied is
//! deleted on green, and that chunk's copy brings it where it went.
//!
//! A crash at any moment loses nothing: green's progress record and data commit together (the
//! sink's guarantee), a chunk's rows and its delete commit together, and the state store records a
//! chunk only after its commit. After a restart, a chunk committed but not recorded is copied again
//! — its delete removes the rows of the earlier attempt in the same transaction. A chunk recorded is
//! covered from the start, and every transaction the stream sends again after the restart lies past
//! every recorded chunk's `S` (the barrier made green durable up to `S` before the chunk committed).
//!
//! While chunks remain, the phase stays `snapshot` (a cutover is refused), streamed transactions are
//! applied whole at their commit (never early), and a schema change abandons an open round (the next
//! round's snapshot is taken after it). A change that moves a row from a chunk not yet copied into
//! one copied, with a TOASTed value PostgreSQL did not send, cannot be rebuilt: replication stops
//! naming the table.

mod coverage;
mod sink;

pub use coverage::Coverage;
pub use sink::Copying;

use crate::error::{CopyRefusal, Error};
use crate::state::StateStore;
use crate::state::StoreError;
use crate::status::Status;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use turnout_decoders::{Position, TableName};

/// One unit of the chunked copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub id: u32,
    pub schema: String,
    pub table: String,
    /// The key column the range is of; none: the whole table is one chunk.
    pub column: Option<String>,
    /// Inclusive lower bound; none: unbounded below.
    pub from: Option<i128>,
    /// Exclusive upper bound; none: unbounded above.
    pub to: Option<i128>,
    /// Blue's size estimate for the chunk (progress and ETA only).
    pub bytes: u64,
}

impl Chunk {
    pub fn table_name(&self) -> TableName {
        TableName::new(self.schema.clone(), self.table.clone())
    }

    /// The SQL condition selecting the chunk's rows (`None`: every row), with `quote` quoting the
    /// column name for the server's dialect.
    pub fn condition(&self, quote: impl Fn(&str) -> String) -> Option<String> {
        let column = quote(self.column.as_deref()?);
        match (self.from, self.to) {
            (None, None) => None,
            (Some(f), None) => Some(format!("{column} >= {f}")),
            (None, Some(t)) => Some(format!("{column} < {t}")),
            (Some(f), Some(t)) => Some(format!("{column} >= {f} AND {column} < {t}")),
        }
    }
}

impl std::fmt::Display for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)?;
        if let Some(c) = &self.column {
            let bound = |b: Option<i128>| b.map_or_else(|| "…".to_string(), |v| v.to_string());
            write!(f, " {c} [{}, {})", bound(self.from), bound(self.to))?;
        }
        Ok(())
    }
}

/// What one chunk put on green.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copied {
    pub rows: u64,
    pub bytes: u64,
}

/// Splits one table into chunks: by `column` between `min` and `max` (the smallest and largest key
/// now) into about `bytes / chunk_bytes` even ranges, the first open below and the last open above
/// so rows inserted later outside `[min, max]` still belong to a chunk; or one chunk for the whole
/// table when there is no integer key column or no row. Ids continue from `next_id`.
pub fn split(table: &TableName, key: Option<(&str, i128, i128)>, bytes: u64, chunk_bytes: u64, next_id: &mut u32) -> Vec<Chunk> {
    let mut id = || {
        let i = *next_id;
        *next_id += 1;
        i
    };
    let whole = |id| Chunk { id, schema: table.schema.clone(), table: table.name.clone(), column: None, from: None, to: None, bytes };
    let Some((column, min, max)) = key else { return vec![whole(id())] };
    let parts = i128::from(bytes.div_ceil(chunk_bytes.max(1)).clamp(1, 100_000));
    let step = (max - min) / parts + 1;
    let mut out = Vec::new();
    let mut from = None;
    let mut bound = min + step;
    while bound <= max {
        out.push(Chunk { id: id(), schema: table.schema.clone(), table: table.name.clone(), column: Some(column.into()), from, to: Some(bound), bytes: 0 });
        from = Some(bound);
        bound += step;
    }
    out.push(Chunk { id: id(), schema: table.schema.clone(), table: table.name.clone(), column: Some(column.into()), from, to: None, bytes: 0 });
    let each = bytes / out.len() as u64;
    for c in &mut out {
        c.bytes = each;
    }
    out
}

/// Records the plan in the state store.
pub fn save_plan(state: &StateStore, chunks: &[Chunk]) -> Result<(), Error> {
    replace_chunks(state, chunks, &[])
}

/// Records `chunks` and forgets the chunks `forget`, in one synced write.
fn replace_chunks(state: &StateStore, chunks: &[Chunk], forget: &[u32]) -> Result<(), Error> {
    let encoded: Result<Vec<(u32, Vec<u8>)>, Error> =
        chunks.iter().map(|c| serde_json::to_vec(c).map(|j| (c.id, j)).map_err(|e| StoreError::encode("a chunk")(e).into())).collect();
    state.put_chunks(&encoded?, forget)
}

/// The plan and what is done of it, from the state store.
pub fn load_plan(state: &StateStore) -> Result<(Vec<Chunk>, std::collections::BTreeMap<u32, Copied>), Error> {
    let corrupt = |e: serde_json::Error| Error::from(StoreError::corrupt("chunk record")(e));
    let chunks: Vec<Chunk> = state.chunks()?.iter().map(|j| serde_json::from_slice(j).map_err(corrupt)).collect::<Result<_, _>>()?;
    let mut done = std::collections::BTreeMap::new();
    for (id, json) in state.chunks_done()? {
        done.insert(id, serde_json::from_slice(&json).map_err(corrupt)?);
    }
    Ok((chunks, done))
}

/// The first chunk id free after `plan`.
pub fn next_id(plan: &[Chunk]) -> u32 {
    plan.iter().map(|c| c.id + 1).max().unwrap_or(0)
}

/// Records the new `chunks` of `tables`, added to the selection after the initial copy, and forgets
/// the chunks `plan` had of them (a table selected again is copied afresh), in one synced write: a
/// crash leaves either the old chunks or the new ones.
pub fn save_added(state: &StateStore, plan: &[Chunk], chunks: &[Chunk], tables: &[TableName]) -> Result<(), Error> {
    let earlier: Vec<u32> = plan.iter().filter(|c| tables.contains(&c.table_name())).map(|c| c.id).collect();
    replace_chunks(state, chunks, &earlier)?;
    let names: Vec<String> = tables.iter().map(ToString::to_string).collect();
    tracing::info!(
        chunks = chunks.len(),
        "the table selection now includes {}: copying it to green chunk by chunk while the other tables stream",
        names.join(", ")
    );
    Ok(())
}

/// Forgets the chunks of `plan` not yet on green whose table is no longer in `selected` (left out,
/// dropped or renamed on blue): nothing copies them. Chunks already on green stay recorded, so that a
/// table selected again is known as one turnout copied.
pub fn forget_unselected(state: &StateStore, selected: &[TableName]) -> Result<(), Error> {
    let (plan, done) = load_plan(state)?;
    let gone: Vec<u32> = plan.iter().filter(|c| !done.contains_key(&c.id) && !selected.contains(&c.table_name())).map(|c| c.id).collect();
    if !gone.is_empty() {
        tracing::info!(chunks = gone.len(), "forgetting chunks not yet copied of tables no longer selected");
        state.put_chunks(&[], &gone)?;
    }
    Ok(())
}

/// The refusal of a table added to the selection whose columns on green differ from blue's.
pub fn definitions_differ(table: &TableName, blue: &str, green: &str) -> Error {
    CopyRefusal::DefinitionsDiffer { table: table.to_string(), blue: blue.to_owned(), green: green.to_owned() }.into()
}

/// The refusal of a table added to the selection whose green copy holds rows turnout did not copy.
pub fn green_has_rows(table: &TableName) -> Error {
    CopyRefusal::AddedHasRows { table: table.to_string() }.into()
}

/// Where a copier reports each chunk it committed on green: recorded in the state store (synced),
/// then counted in the status.
#[derive(Clone, Debug)]
pub struct Progress {
    state: StateStore,
    status: Arc<Status>,
}

impl Progress {
    pub fn new(state: StateStore, status: Arc<Status>) -> Progress {
        Progress { state, status }
    }

    /// The status, where copiers count rows as they read them (`Status::table_progress`).
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// `chunk` is committed on green with what it copied. Call only after green's commit returned.
    pub fn done(&self, chunk: &Chunk, copied: Copied) -> Result<(), Error> {
        let json = serde_json::to_vec(&copied).map_err(StoreError::encode("a chunk record"))?;
        self.state.mark_chunk_done(chunk.id, &json)?;
        self.status.chunk_done(chunk.bytes, copied.rows, copied.bytes);
        Ok(())
    }
}

/// A source's side of the chunked copy (see the module docs).
pub trait Copier: Send + Sync + 'static {
    /// Blue's snapshot a round copies from, held open until the round is copied or dropped.
    type Round: Send + 'static;

    /// Opens a snapshot of blue and returns it with the log position it shows exactly: every
    /// transaction committed at or before the position, and none after.
    fn open(&self) -> impl Future<Output = Result<(Self::Round, Position), Error>> + Send;

    /// Commits a transaction on blue that the stream carries (turnout's heartbeat table or a
    /// transactional message), so that a transaction past an open round's position arrives.
    fn nudge(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Copies `chunks` from `round` into green, several at once: each in one green transaction that
    /// deletes green's rows in the chunk's range first, reported to `progress` after its commit.
    fn copy(&self, round: Self::Round, chunks: Vec<Chunk>, progress: &Progress) -> impl Future<Output = Result<(), Error>> + Send;

    /// Before streaming: deletes, in one durable green transaction, whatever green holds in the
    /// ranges of `chunks` (chunks not yet recorded: rows of a copy committed but not recorded before a
    /// crash, which the stream's changes must not meet), and lets go of what an earlier process left
    /// on blue for its rounds.
    fn clear(&self, chunks: &[Chunk]) -> impl Future<Output = Result<(), Error>> + Send;
}

/// `chunks` with adjacent ranges of one table merged (fewer statements for [`Copier::clear`]).
pub fn merged(chunks: &[Chunk]) -> Vec<Chunk> {
    let mut sorted: Vec<&Chunk> = chunks.iter().collect();
    sorted.sort_by(|a, b| (&a.schema, &a.table, a.from).cmp(&(&b.schema, &b.table, b.from)));
    let mut out: Vec<Chunk> = Vec::new();
    for c in sorted {
        match out.last_mut() {
            Some(last) if last.schema == c.schema && last.table == c.table && last.column == c.column && last.to.is_some() && last.to == c.from => {
                last.to = c.to;
            }
            _ => out.push(c.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TableName {
        TableName::new("public", "t")
    }

    #[test]
    fn ranges_cover_every_key_once_with_open_ends() {
        let mut next = 7;
        let chunks = split(&t(), Some(("id", 1, 100)), 10 << 20, 1 << 20, &mut next);
        assert_eq!(chunks.len(), 10, "{chunks:?}");
        assert_eq!(chunks[0].from, None);
        assert_eq!(chunks.last().and_then(|c| c.to), None);
        for w in chunks.windows(2) {
            assert_eq!(w[0].to, w[1].from, "adjacent ranges meet");
        }
        assert_eq!(chunks.iter().map(|c| c.id).collect::<Vec<_>>(), (7..17).collect::<Vec<_>>());
        assert_eq!(next, 17);
        // Every key from far below to far above falls in exactly one chunk.
        for key in [-1_000_000, 0, 1, 10, 11, 50, 99, 100, 101, i128::from(i64::MAX)] {
            let n = chunks.iter().filter(|c| c.from.is_none_or(|f| key >= f) && c.to.is_none_or(|to| key < to)).count();
            assert_eq!(n, 1, "key {key}");
        }
    }

    #[test]
    fn a_small_table_an_empty_one_or_a_key_of_one_value_is_one_chunk() {
        let mut next = 0;
        assert_eq!(split(&t(), Some(("id", 1, 100)), 10, 1 << 20, &mut next).len(), 1);
        assert_eq!(split(&t(), None, 10 << 30, 1 << 20, &mut next)[0].column, None);
        let one = split(&t(), Some(("id", 5, 5)), 10 << 30, 1 << 20, &mut next);
        assert_eq!((one.len(), one[0].from, one[0].to), (1, None, None));
        let extreme = split(&t(), Some(("id", i128::from(i64::MIN), i128::from(i64::MAX))), 100 << 20, 1 << 20, &mut next);
        assert_eq!(extreme.len(), 100);
    }

    #[test]
    fn adjacent_ranges_merge_and_gaps_stay() {
        let mut next = 0;
        let chunks = split(&t(), Some(("id", 1, 100)), 10 << 20, 1 << 20, &mut next);
        let gap: Vec<Chunk> = chunks.iter().filter(|c| c.id != 4).cloned().collect();
        let m = merged(&gap);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!((m[0].from, m[0].to, m[1].from, m[1].to), (None, chunks[4].from, chunks[4].to, None));
        assert_eq!(merged(&chunks).len(), 1);
    }

    #[test]
    fn conditions_quote_the_column_and_leave_open_ends_open() {
        let c = Chunk { id: 0, schema: "s".into(), table: "t".into(), column: Some("i\"d".into()), from: Some(-5), to: Some(9), bytes: 0 };
        let q = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
        assert_eq!(c.condition(q).as_deref(), Some("\"i\"\"d\" >= -5 AND \"i\"\"d\" < 9"));
        assert_eq!(Chunk { from: None, ..c.clone() }.condition(q).as_deref(), Some("\"i\"\"d\" < 9"));
        assert_eq!(Chunk { to: None, ..c.clone() }.condition(q).as_deref(), Some("\"i\"\"d\" >= -5"));
        assert_eq!(Chunk { column: None, ..c }.condition(q), None);
    }
}
