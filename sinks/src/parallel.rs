//! Parallel apply: several target sessions apply consecutive runs of a batch's transactions at once
//! and commit them in source order.
//!
//! Guarantees, on top of [`Sink`]'s:
//! - **Prefix**: a batch is cut into *parts*, consecutive runs of whole source transactions. Each part
//!   is one target transaction that records its last commit position, and parts commit strictly one
//!   after another in source order: a part's COMMIT is sent only after the part before it committed.
//!   So the target only ever shows a prefix of the source's commit order, and a crash loses a suffix
//!   of parts, never one in the middle.
//! - **No conflicting parts at once**: parts run side by side (a *wave*) only when no change of one
//!   shares a conflict key with a change of another — the table and the row's replica-identity key
//!   (old and new), the table and each of the target's unique keys over the row's new (and, when the
//!   source sent it, old) values ([`Conflicts::Keys`]). A table whose rows cannot be keyed (no key, or
//!   constraints between rows that keys do not describe) is touched by one part at a time; inserts
//!   into a table without a key commute with each other. A TRUNCATE, or a table whose target runs
//!   triggers for replicated rows, is a barrier: its transaction is a wave of its own.
//! - **What the keys miss, the target catches**: a row that does not match (the sinks' row count
//!   checks), a duplicate key, or a part waiting for a lock that a later part holds. A part that fails
//!   is rolled back with every part after it, and those are applied again by one session in one
//!   transaction: only an error there is returned. A part that is next to commit and still running
//!   [`STALL`] after a later part finished may be waiting for that part's lock while that part waits
//!   for its turn to commit — a wait no deadlock detector sees — so the later parts are rolled back
//!   and applied again the same way.
//! - With one session every batch goes through that session unchanged.
//!
//! Progress: every session records in the same place (PostgreSQL: one replication origin, which the
//! committing session sets up for its commit only; MySQL/MariaDB: one progress row), and commits never
//! overlap.

use crate::{Canceller, Committed, Durable, RowChange, Sink, SinkError, Transaction};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use turnout_decoders::event::Row;
use turnout_decoders::schema::{ReplicaIdentity, TableName, TableSchema};
use turnout_decoders::{Position, Timestamp, Value};

/// How long the part next to commit may run after a later part finished before the later parts are
/// rolled back (see the module docs).
pub const STALL: Duration = Duration::from_secs(1);

/// Parts are not cut smaller than this many row changes: below it the extra commit costs more than
/// applying side by side saves.
pub const MIN_PART_ROWS: usize = 100;

/// How changes of one table may conflict with changes another session applies at the same time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflicts {
    /// Changes conflict when they share the row's replica-identity key or the value of one of these
    /// column sets (the target's unique keys, by column name).
    Keys(Vec<Vec<String>>),
    /// Every change of the table conflicts with every other change of it.
    Table,
    /// A change of the table conflicts with every change: a barrier.
    Everything,
}

/// What a transaction (or a part) touches, for conflict checks. Keys are hashes: a collision can only
/// make two parts conflict that did not, never the other way.
#[derive(Debug, Default)]
struct Footprint {
    barrier: bool,
    tables: HashSet<TableName>,
    exclusive: HashSet<TableName>,
    keys: HashSet<u64>,
}

impl Footprint {
    fn is_empty(&self) -> bool {
        !self.barrier && self.tables.is_empty()
    }

    /// True when this and `other` may not be applied side by side.
    fn meets(&self, other: &Footprint) -> bool {
        if self.is_empty() || other.is_empty() {
            return false;
        }
        if self.barrier || other.barrier {
            return true;
        }
        if self.exclusive.iter().any(|t| other.tables.contains(t)) || other.exclusive.iter().any(|t| self.tables.contains(t)) {
            return true;
        }
        let (small, large) = if self.keys.len() <= other.keys.len() { (&self.keys, &other.keys) } else { (&other.keys, &self.keys) };
        small.iter().any(|k| large.contains(k))
    }

    fn absorb(&mut self, other: Footprint) {
        self.barrier |= other.barrier;
        self.tables.extend(other.tables);
        self.exclusive.extend(other.exclusive);
        self.keys.extend(other.keys);
    }

    fn touch(&mut self, table: &TableName) {
        if !self.tables.contains(table) {
            self.tables.insert(table.clone());
        }
    }

    fn exclusive(&mut self, table: &TableName) {
        if !self.exclusive.contains(table) {
            self.exclusive.insert(table.clone());
        }
    }

    /// Adds the key of `values` in key set `set` of `table`; a value the source did not send leaves
    /// the key out: an unchanged TOAST value did not change, and a generated column MariaDB leaves out
    /// of its row images is computed by green, where two parts that would collide on it meet its
    /// unique index (a duplicate key or a lock wait), never a silent overwrite.
    fn key<'a>(&mut self, table: &TableName, set: usize, mut values: impl Iterator<Item = Option<&'a Value>>) {
        let mut h = DefaultHasher::new();
        table.hash(&mut h);
        set.hash(&mut h);
        let whole = values.all(|v| match v {
            Some(v) if !v.is_unchanged() => {
                hash_value(v, &mut h);
                true
            }
            _ => false,
        });
        if whole {
            self.keys.insert(h.finish());
        }
    }

    /// Adds one row change of a table keyed as `keying` says: `key` is the old replica-identity key
    /// (updates, deletes), `before` the old row when the source sent it whole, `after` the new row
    /// (inserts, updates).
    fn row(&mut self, table: &TableSchema, keying: &Keying, key: Option<&Row>, before: Option<&Row>, after: Option<&Row>) {
        self.touch(&table.name);
        let (full, identity, sets) = match keying {
            Keying::Barrier => {
                self.barrier = true;
                return;
            }
            Keying::Table => return self.exclusive(&table.name),
            Keying::Keys { full, identity, sets } => (*full, identity, sets),
        };
        // Under REPLICA IDENTITY FULL the old key is the whole old row.
        let old_row = before.or(if full { key } else { None });
        if key.is_some() && identity.is_empty() && (old_row.is_none() || sets.is_empty()) {
            // An update or delete of a row nothing identifies but all its values.
            return self.exclusive(&table.name);
        }
        if !identity.is_empty() {
            if let Some(k) = key {
                self.key(&table.name, usize::MAX, k.iter().map(Some));
            }
            if let Some(a) = after {
                self.key(&table.name, usize::MAX, identity.iter().map(|&i| a.get(i)));
            }
        }
        for (n, at) in sets.iter().enumerate() {
            for row in [after, old_row].into_iter().flatten() {
                self.key(&table.name, n, at.iter().map(|&i| row.get(i)));
            }
        }
    }

    fn of(tx: &Transaction, keyings: &mut Keyings) -> Footprint {
        let mut f = Footprint::default();
        for c in &tx.changes {
            match c {
                RowChange::Truncate { .. } => f.barrier = true,
                RowChange::Insert { table, after } => f.row(table, keyings.of(table), None, None, Some(after)),
                RowChange::Update { table, key, before, after } => f.row(table, keyings.of(table), Some(key), before.as_ref(), Some(after)),
                RowChange::Delete { table, key, before } => f.row(table, keyings.of(table), Some(key), before.as_ref(), None),
            }
        }
        f
    }
}

/// How the rows of one table (as one schema announced it) are keyed: its [`Conflicts`] rule with the
/// column positions resolved.
#[derive(Debug)]
enum Keying {
    Barrier,
    Table,
    /// `identity`: the replica-identity columns (none under FULL); `sets`: green's unique keys.
    Keys {
        full: bool,
        identity: Vec<usize>,
        sets: Vec<Vec<usize>>,
    },
}

impl Keying {
    fn new(table: &TableSchema, rule: Option<&Conflicts>) -> Keying {
        let sets = match rule {
            Some(Conflicts::Everything) => return Keying::Barrier,
            Some(Conflicts::Table) | None => return Keying::Table,
            Some(Conflicts::Keys(sets)) => sets,
        };
        let at: Option<Vec<Vec<usize>>> = sets.iter().map(|set| set.iter().map(|c| table.columns.iter().position(|col| &col.name == c)).collect()).collect();
        // A unique key over a column the source does not send cannot be keyed.
        let Some(sets) = at else { return Keying::Table };
        let full = table.replica_identity == ReplicaIdentity::Full;
        Keying::Keys { full, identity: if full { Vec::new() } else { table.key_indexes().collect() }, sets }
    }
}

/// Keyings resolved once per schema for one batch (the same `Arc` serves all its rows).
struct Keyings<'a> {
    rules: &'a HashMap<TableName, Conflicts>,
    resolved: HashMap<*const TableSchema, Keying>,
}

impl<'a> Keyings<'a> {
    fn new(rules: &'a HashMap<TableName, Conflicts>) -> Keyings<'a> {
        Keyings { rules, resolved: HashMap::new() }
    }

    fn of(&mut self, table: &Arc<TableSchema>) -> &Keying {
        let rules = self.rules;
        self.resolved.entry(Arc::as_ptr(table)).or_insert_with(|| Keying::new(table, rules.get(&table.name)))
    }
}

/// Hashes a value for a conflict key. Text is hashed without trailing spaces and in ASCII lower case,
/// so that values a case-insensitive or PAD SPACE collation takes as equal (MySQL's defaults) share a
/// key; that can only add conflicts.
fn hash_value(v: &Value, h: &mut impl Hasher) {
    std::mem::discriminant(v).hash(h);
    let text = |t: &str, h: &mut dyn Hasher| {
        for b in t.trim_end_matches(' ').bytes() {
            h.write_u8(b.to_ascii_lowercase());
        }
        h.write_u8(0xff);
    };
    match v {
        Value::Null | Value::Unchanged => {}
        Value::Bool(b) => b.hash(h),
        Value::Int2(i) => i.hash(h),
        Value::Int4(i) => i.hash(h),
        Value::Int8(i) => i.hash(h),
        Value::UInt8(i) => i.hash(h),
        Value::Oid(i) => i.hash(h),
        Value::Float4(f) => f.to_bits().hash(h),
        Value::Float8(f) => f.to_bits().hash(h),
        Value::Numeric(t) | Value::Text(t) | Value::Json { text: t, .. } | Value::TypedJson { text: t, .. } => text(t.as_str(), h),
        Value::Temporal(kind, t) => {
            kind.hash(h);
            text(t.as_str(), h);
        }
        Value::Bytes(b) => b.hash(h),
        Value::Uuid(u) => u.hash(h),
        Value::Array { element_type, elements } => {
            element_type.hash(h);
            elements.len().hash(h);
            for e in elements {
                hash_value(e, h);
            }
        }
        Value::Unknown { type_oid, text: t } => {
            type_oid.hash(h);
            text(t.as_str(), h);
        }
        Value::Binary { type_oid, data } => {
            type_oid.hash(h);
            data.hash(h);
        }
    }
}

/// Cuts `batch` into waves of parts (ranges of transactions): the parts of a wave conflict with none
/// of each other, hold at least [`MIN_PART_ROWS`] changes each but the last, and number at most
/// `sessions`.
fn plan(batch: &[Transaction], rules: &HashMap<TableName, Conflicts>, sessions: usize) -> Vec<Vec<Range<usize>>> {
    let total: usize = batch.iter().map(|t| t.changes.len()).sum();
    let target = (total / sessions.max(1)).max(MIN_PART_ROWS);
    let mut waves: Vec<Vec<Range<usize>>> = Vec::new();
    let mut wave: Vec<Range<usize>> = Vec::new();
    // Everything the closed parts of the wave touch, and the open part.
    let mut closed = Footprint::default();
    let mut part = 0..0;
    let mut part_rows = 0;
    let mut open = Footprint::default();
    let mut keyings = Keyings::new(rules);
    let end_wave = |waves: &mut Vec<Vec<Range<usize>>>, wave: &mut Vec<Range<usize>>, part: &Range<usize>| {
        if !part.is_empty() {
            wave.push(part.clone());
        }
        if !wave.is_empty() {
            waves.push(std::mem::take(wave));
        }
    };
    for (i, tx) in batch.iter().enumerate() {
        let f = Footprint::of(tx, &mut keyings);
        let rows = tx.changes.len();
        if f.barrier {
            end_wave(&mut waves, &mut wave, &part);
            waves.push(std::iter::once(i..i + 1).collect());
            (closed, open, part, part_rows) = (Footprint::default(), Footprint::default(), i + 1..i + 1, 0);
        } else if f.meets(&closed) {
            end_wave(&mut waves, &mut wave, &part);
            (closed, open, part, part_rows) = (Footprint::default(), f, i..i + 1, rows);
        } else if part_rows >= target && wave.len() + 1 < sessions && !f.meets(&open) {
            wave.push(part);
            closed.absorb(std::mem::replace(&mut open, f));
            (part, part_rows) = (i..i + 1, rows);
        } else {
            part.end = i + 1;
            open.absorb(f);
            part_rows += rows;
        }
    }
    end_wave(&mut waves, &mut wave, &part);
    waves
}

/// Where a part of a wave stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Its changes are being applied.
    Running,
    /// Applied, its transaction open, waiting for its turn to commit.
    Ready,
    /// Committed, rolled back or failed.
    Done,
}

/// A sink made of several sessions of one stream on the same target (see the module docs).
pub struct Parallel<K: Sink> {
    /// `None` only while a part runs on that session.
    sessions: Vec<Option<K>>,
    applied: Position,
    rules: HashMap<TableName, Conflicts>,
    stall: Duration,
    /// Parts applied again by one session since the start (conflicts the keys missed, stalls).
    redone: u64,
    /// The session that committed last: its flush covers every commit (and may need no round trip).
    last: usize,
}

impl<K: Sink> std::fmt::Debug for Parallel<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel").field("sessions", &self.sessions.len()).field("applied", &self.applied.to_string()).finish_non_exhaustive()
    }
}

impl<K: Sink> Parallel<K> {
    /// Sessions of one stream, all recording progress in the same place; at least one.
    pub fn new(sessions: Vec<K>) -> Result<Parallel<K>, SinkError> {
        let applied = Position::latest(sessions.iter().map(Sink::applied))?.ok_or_else(|| SinkError::Config("apply.sessions must be at least 1".into()))?;
        Ok(Parallel { sessions: sessions.into_iter().map(Some).collect(), applied, rules: HashMap::new(), stall: STALL, redone: 0, last: 0 })
    }

    /// Sets how long the next part to commit may run after a later part finished (tests).
    pub fn with_stall(mut self, stall: Duration) -> Parallel<K> {
        self.stall = stall;
        self
    }

    /// Number of sessions.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Parts applied again by one session since the start.
    pub fn redone(&self) -> u64 {
        self.redone
    }

    /// Session `i`, told the position recorded so far.
    fn session(&mut self, i: usize) -> Result<&mut K, SinkError> {
        let applied = self.applied.clone();
        let s = self.sessions.get_mut(i).and_then(Option::as_mut).ok_or_else(|| SinkError::Progress(format!("internal: apply session {i} is busy")))?;
        s.advanced(&applied)?;
        Ok(s)
    }

    fn committed(&mut self, c: &Committed) -> Result<(), SinkError> {
        if c.position().try_cmp(&self.applied)?.is_gt() {
            self.applied = c.position().clone();
        }
        Ok(())
    }

    /// Learns how every table of `batch` may conflict.
    async fn learn(&mut self, batch: &[Transaction]) -> Result<(), SinkError> {
        for c in batch.iter().flat_map(|t| &t.changes) {
            let (RowChange::Insert { table, .. } | RowChange::Update { table, .. } | RowChange::Delete { table, .. }) = c else { continue };
            if !self.rules.contains_key(&table.name) {
                let rule = self.session(0)?.conflicts(table).await?;
                tracing::debug!(table = %table.name, ?rule, "conflict keys");
                self.rules.insert(table.name.clone(), rule);
            }
        }
        Ok(())
    }

    /// Rolls back every part from `from` on that is waiting to commit.
    async fn roll_back_from(&mut self, from: usize, state: &mut [Part]) {
        for (j, part) in state.iter_mut().enumerate().skip(from) {
            if *part == Part::Ready {
                *part = Part::Done;
                if let Some(s) = self.sessions[j].as_mut() {
                    if let Err(e) = s.rollback().await {
                        tracing::debug!("rolling back a part on session {j}: {e}");
                    }
                }
            }
        }
    }

    /// Commits the parts that are ready, in order from `head`, up to the first still running or
    /// `redo`. A part that fails to commit is applied again with the parts after it in one session
    /// (`redo` moves to it, and the later parts are rolled back).
    async fn commit_ready(
        &mut self,
        batch: &[Transaction],
        parts: &[Range<usize>],
        state: &mut [Part],
        head: &mut usize,
        redo: &mut usize,
    ) -> Result<(), SinkError> {
        while *head < *redo && state[*head] == Part::Ready {
            let last = &batch[parts[*head].end - 1];
            let session = self.session(*head)?;
            let result = session.commit(&last.commit_end, last.commit_ts).await;
            state[*head] = Part::Done;
            match result {
                Ok(c) => {
                    self.committed(&c)?;
                    self.last = *head;
                    *head += 1;
                }
                Err(e) => {
                    tracing::info!(part = *head, "a part failed to commit beside others; applying it and the parts after it again in one session: {e}");
                    *redo = *head;
                    self.roll_back_from(*redo, state).await;
                }
            }
        }
        Ok(())
    }

    /// Applies one wave: its parts side by side, committed in order (see the module docs).
    async fn apply_wave(&mut self, batch: &[Transaction], parts: &[Range<usize>]) -> Result<(), SinkError> {
        if let [only] = parts {
            let c = self.session(0)?.apply(&batch[only.clone()]).await?;
            self.committed(&c)?;
            self.last = 0;
            return Ok(());
        }
        let n = parts.len();
        let mut running = FuturesUnordered::new();
        for (j, range) in parts.iter().enumerate() {
            self.session(j)?;
            let mut s = self.sessions[j].take().ok_or_else(|| SinkError::Progress(format!("internal: apply session {j} is busy")))?;
            let txs = &batch[range.clone()];
            running.push(async move {
                let changes: Vec<&RowChange> = txs.iter().flat_map(|t| t.changes.iter()).collect();
                let r = match s.begin().await {
                    Ok(()) => s.apply_part(&changes).await,
                    Err(e) => Err(e),
                };
                (j, s, r)
            });
        }
        let mut state = vec![Part::Running; n];
        let mut head = 0;
        // Parts from `redo` on are applied again by one session.
        let mut redo = n;
        let mut waiting_since: Option<Instant> = None;
        loop {
            self.commit_ready(batch, parts, &mut state, &mut head, &mut redo).await?;
            if running.is_empty() {
                break;
            }
            let stalled = head < redo && state[head] == Part::Running && state[head + 1..redo].contains(&Part::Ready);
            waiting_since = if stalled { waiting_since.or_else(|| Some(Instant::now())) } else { None };
            let stall_at = waiting_since.map(|t| t + self.stall);
            tokio::select! {
                Some((j, s, r)) = running.next() => {
                    self.sessions[j] = Some(s);
                    match r {
                        Ok(()) if j >= redo => {
                            state[j] = Part::Ready;
                            self.roll_back_from(j, &mut state).await;
                        }
                        Ok(()) => state[j] = Part::Ready,
                        Err(e) => {
                            state[j] = Part::Done;
                            if j < redo {
                                tracing::info!(part = j, "a part failed beside others; applying it and the parts after it again in one session: {e}");
                                redo = j;
                                self.roll_back_from(redo, &mut state).await;
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(stall_at.unwrap_or_else(Instant::now)), if stall_at.is_some() => {
                    tracing::info!(part = head, "the part next to commit is still running {:?} after a later part finished; rolling back the later parts", self.stall);
                    redo = head + 1;
                    self.roll_back_from(redo, &mut state).await;
                }
            }
        }
        if redo < n {
            self.redone += (n - redo) as u64;
            let range = parts[redo].start..parts[n - 1].end;
            let c = self.session(0)?.apply(&batch[range]).await?;
            self.committed(&c)?;
            self.last = 0;
        }
        Ok(())
    }
}

impl<K: Sink> Sink for Parallel<K> {
    fn applied(&self) -> Position {
        self.applied.clone()
    }

    async fn apply(&mut self, batch: &[Transaction]) -> Result<Committed, SinkError> {
        let mut skip = 0;
        for t in batch {
            if t.commit_end.try_cmp(&self.applied)?.is_gt() {
                break;
            }
            skip += 1;
        }
        let batch = &batch[skip..];
        if batch.is_empty() {
            return Ok(Committed::new(self.applied.clone()));
        }
        if self.sessions.len() == 1 {
            let c = self.session(0)?.apply(batch).await?;
            self.committed(&c)?;
            self.last = 0;
            return Ok(c);
        }
        self.learn(batch).await?;
        let waves = plan(batch, &self.rules, self.sessions.len());
        tracing::debug!(waves = waves.len(), parts = waves.iter().map(Vec::len).sum::<usize>(), transactions = batch.len(), "applying in parts");
        for wave in &waves {
            self.apply_wave(batch, wave).await?;
        }
        Ok(Committed::new(self.applied.clone()))
    }

    async fn begin(&mut self) -> Result<(), SinkError> {
        self.session(0)?.begin().await
    }

    async fn apply_part(&mut self, changes: &[&RowChange]) -> Result<(), SinkError> {
        self.session(0)?.apply_part(changes).await
    }

    async fn commit(&mut self, commit_end: &Position, commit_ts: Timestamp) -> Result<Committed, SinkError> {
        let c = self.session(0)?.commit(commit_end, commit_ts).await?;
        self.committed(&c)?;
        self.last = 0;
        Ok(c)
    }

    async fn rollback(&mut self) -> Result<(), SinkError> {
        self.session(0)?.rollback().await
    }

    async fn flush(&mut self) -> Result<Durable, SinkError> {
        let last = self.last;
        self.session(last)?.flush().await
    }

    async fn schema_changes(&mut self, schema: &TableSchema) -> Result<Vec<String>, SinkError> {
        self.session(0)?.schema_changes(schema).await
    }

    async fn apply_schema_changes(&mut self, statements: &[String]) -> Result<(), SinkError> {
        let r = self.session(0)?.apply_schema_changes(statements).await;
        self.forget_schema();
        r
    }

    async fn apply_source_ddl(&mut self, database: &str, statement: &str) -> Result<(), SinkError> {
        let r = self.session(0)?.apply_source_ddl(database, statement).await;
        self.forget_schema();
        r
    }

    fn canceller(&self) -> Canceller {
        let all: Arc<Vec<Canceller>> = Arc::new(self.sessions.iter().flatten().map(Sink::canceller).collect());
        Canceller::new(move || {
            let all = Arc::clone(&all);
            Box::pin(async move {
                for c in all.iter() {
                    c.cancel().await;
                }
            })
        })
    }

    async fn release_progress(&mut self) -> Result<(), SinkError> {
        for s in self.sessions.iter_mut().flatten() {
            s.release_progress().await?;
        }
        Ok(())
    }

    async fn bind_progress(&mut self) -> Result<(), SinkError> {
        for s in self.sessions.iter_mut().flatten() {
            s.bind_progress().await?;
        }
        Ok(())
    }

    fn advanced(&mut self, position: &Position) -> Result<(), SinkError> {
        if position.try_cmp(&self.applied)?.is_gt() {
            self.applied = position.clone();
        }
        for s in self.sessions.iter_mut().flatten() {
            s.advanced(position)?;
        }
        Ok(())
    }

    fn forget_schema(&mut self) {
        self.rules.clear();
        for s in self.sessions.iter_mut().flatten() {
            s.forget_schema();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::event::TxId;
    use turnout_decoders::schema::{Column, ColumnType};
    use turnout_decoders::Lsn;

    fn table(name: &str, identity: ReplicaIdentity, keys: &[&str], columns: &[&str]) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            relation_id: 1,
            name: TableName { schema: "public".into(), name: name.into() },
            replica_identity: identity,
            columns: columns.iter().map(|c| Column { name: (*c).into(), ty: ColumnType::pg(25, -1), is_key: keys.contains(c) }).collect(),
            foreign_key_checks: true,
        })
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn tx(n: u64, changes: Vec<RowChange>) -> Transaction {
        Transaction { xid: n as TxId, commit_end: Position::Pg(Lsn(n * 100)), commit_ts: Timestamp(0), changes }
    }

    fn insert(t: &Arc<TableSchema>, id: i32, email: &str) -> RowChange {
        RowChange::Insert { table: Arc::clone(t), after: vec![Value::Int4(id), text(email)] }
    }

    fn update(t: &Arc<TableSchema>, id: i32, email: Value) -> RowChange {
        RowChange::Update { table: Arc::clone(t), key: vec![Value::Int4(id)], before: None, after: vec![Value::Int4(id), email] }
    }

    fn delete(t: &Arc<TableSchema>, id: i32) -> RowChange {
        RowChange::Delete { table: Arc::clone(t), key: vec![Value::Int4(id)], before: None }
    }

    fn users() -> (Arc<TableSchema>, HashMap<TableName, Conflicts>) {
        let t = table("users", ReplicaIdentity::Default, &["id"], &["id", "email"]);
        let rules = HashMap::from([(t.name.clone(), Conflicts::Keys(vec![vec!["id".into()], vec!["email".into()]]))]);
        (t, rules)
    }

    /// Many transactions on distinct rows, `rows` changes each.
    fn distinct(t: &Arc<TableSchema>, n: i32, rows: i32) -> Vec<Transaction> {
        (0..n).map(|i| tx(i as u64 + 1, (0..rows).map(|r| insert(t, i * 1000 + r, &format!("u{i}-{r}"))).collect())).collect()
    }

    #[test]
    fn independent_transactions_split_into_as_many_parts_as_sessions() {
        let (t, rules) = users();
        let batch = distinct(&t, 40, 10);
        let waves = plan(&batch, &rules, 4);
        assert_eq!(waves, vec![vec![0..10, 10..20, 20..30, 30..40]]);
    }

    #[test]
    fn parts_are_consecutive_and_cover_the_batch_in_order() {
        let (t, rules) = users();
        let mut batch = distinct(&t, 30, 20);
        // Every fifth transaction touches a row of the one before it.
        for i in (5..30).step_by(5) {
            batch[i as usize].changes.push(update(&t, (i - 1) * 1000, text("moved")));
        }
        for sessions in 1..6 {
            let flat: Vec<Range<usize>> = plan(&batch, &rules, sessions).into_iter().flatten().collect();
            assert_eq!(flat.first().map(|r| r.start), Some(0));
            assert_eq!(flat.last().map(|r| r.end), Some(batch.len()));
            assert!(flat.windows(2).all(|w| w[0].end == w[1].start), "{flat:?}");
        }
    }

    #[test]
    fn a_transaction_touching_an_earlier_parts_row_starts_a_new_wave() {
        let (t, rules) = users();
        let mut batch = distinct(&t, 20, 10);
        // Transaction 15 deletes a row transaction 2 inserted.
        batch[15].changes.push(delete(&t, 2000));
        let waves = plan(&batch, &rules, 2);
        assert_eq!(waves, vec![vec![0..10, 10..15], vec![15..20]]);
    }

    #[test]
    fn a_unique_value_freed_and_taken_later_is_a_conflict() {
        let (t, rules) = users();
        let mut batch = distinct(&t, 20, 10);
        // Transaction 3 gives row 3000 the email of row 1000; transaction 12 takes the freed "x".
        batch[3].changes.push(update(&t, 1000, text("x")));
        batch[12].changes.push(update(&t, 2001, text("X ")));
        let waves = plan(&batch, &rules, 2);
        assert_eq!(waves, vec![vec![0..10, 10..12], vec![12..20]], "'x' and 'X ' share a key (case and trailing spaces folded)");
    }

    #[test]
    fn truncate_and_trigger_tables_are_barriers() {
        let (t, mut rules) = users();
        let audited = table("audited", ReplicaIdentity::Default, &["id"], &["id", "email"]);
        rules.insert(audited.name.clone(), Conflicts::Everything);
        let mut batch = distinct(&t, 30, 10);
        batch[10].changes = vec![RowChange::Truncate { tables: vec![Arc::clone(&t)], cascade: false, restart_identity: false }];
        batch[20].changes = vec![insert(&audited, 1, "a")];
        let waves = plan(&batch, &rules, 2);
        assert_eq!(waves, vec![vec![0..10], vec![10..11], vec![11..20], vec![20..21], vec![21..30]]);
    }

    #[test]
    fn keyless_tables_take_inserts_side_by_side_but_not_deletes() {
        let log = table("log", ReplicaIdentity::Full, &[], &["id", "email"]);
        let rules = HashMap::from([(log.name.clone(), Conflicts::Keys(Vec::new()))]);
        let mut batch = distinct(&log, 20, 10);
        let waves = plan(&batch, &rules, 2);
        assert_eq!(waves, vec![vec![0..10, 10..20]]);
        let old = vec![Value::Int4(1), text("u0-1")];
        batch[12].changes.push(RowChange::Delete { table: Arc::clone(&log), key: old, before: None });
        let waves = plan(&batch, &rules, 2);
        assert_eq!(waves, vec![vec![0..10, 10..12], vec![12..20]]);
    }

    #[test]
    fn a_table_the_target_cannot_key_is_applied_by_one_part_at_a_time() {
        let (t, _) = users();
        let rules = HashMap::from([(t.name.clone(), Conflicts::Table)]);
        let batch = distinct(&t, 20, 10);
        assert_eq!(plan(&batch, &rules, 4), vec![vec![0..20]]);
    }

    #[test]
    fn a_hot_row_keeps_everything_in_one_part() {
        let (t, rules) = users();
        let batch: Vec<Transaction> = (0..50).map(|i| tx(i as u64 + 1, vec![update(&t, 1, Value::Null), insert(&t, 10 + i, "e")])).collect();
        assert_eq!(plan(&batch, &rules, 4), vec![vec![0..50]]);
    }

    #[test]
    fn small_batches_stay_in_one_part() {
        let (t, rules) = users();
        let batch = distinct(&t, 8, 5);
        assert_eq!(plan(&batch, &rules, 4), vec![vec![0..8]]);
    }

    #[test]
    fn unchanged_values_are_left_out_of_unique_keys() {
        let (t, rules) = users();
        let mut batch = distinct(&t, 20, 10);
        // Two updates that leave a TOASTed email unchanged do not share its key.
        batch[1].changes.push(update(&t, 1001, Value::Unchanged));
        batch[15].changes.push(update(&t, 15_002, Value::Unchanged));
        assert_eq!(plan(&batch, &rules, 2), vec![vec![0..10, 10..20]]);
    }
}
