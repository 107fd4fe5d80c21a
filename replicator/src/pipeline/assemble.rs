//! Turns the decoded event stream into whole committed transactions.
//!
//! Non-streamed transactions arrive complete between Begin and Commit (PostgreSQL sends them at
//! commit time, already without rolled-back subtransactions). Streamed transactions arrive in segments
//! whose changes carry their (sub)transaction id; they are buffered per top-level xid until Stream
//! Commit, and dropped at Stream Abort (the whole transaction, or one subtransaction's changes).
//!
//! Memory: changes held for transactions not yet committed are bounded by the memory budget given to
//! the assembler. When a change would exceed it, the largest buffered transaction is spilled to the
//! state store (see [`crate::spill`]), and so is any single transaction above a quarter of it; from
//! then on its changes are written there in chunks, and at commit it comes out as a [`Body::Spilled`]
//! to be applied chunk by chunk.
//!
//! Early apply: when enabled, the changes of a streamed transaction also leave as they arrive, in
//! [`Segment`]s (at the end of each stream segment, or every [`CHUNK_ROWS`] rows), together with its
//! rollbacks ([`Assembled::Aborted`]), for a green session to apply before the commit. So do those of
//! a transaction sent whole (already committed on the source) once it is large enough to spill: from
//! its first spill on, every chunk written leaves as a segment too, and what arrived after the last
//! one leaves with the commit ([`CommittedTransaction::tail`]) — green applies it while the rest is
//! still being received. The buffer (or its spill) still keeps every change: a transaction whose
//! early apply is given up ([`Assembler::stop_early`]) is applied whole at its commit.
//!
//! Guarantees: only committed changes leave the assembler as transactions, in commit order; a rolled-back transaction
//! or savepoint never does — nor do the schema changes (Relation messages) announced inside a streamed
//! transaction, which leave with that transaction at its commit and are dropped at its abort. A
//! cutover sentinel is attached to the transaction that carried it. A commit for a transaction the
//! assembler never saw is a resync error, never an empty commit.

use super::changed::Touched;
use crate::error::{Error, Side};
use crate::spill::{Spilled, SpilledTransaction, CHUNK_ROWS};
use crate::state::StateStore;
use std::collections::HashMap;
use std::sync::Arc;
use turnout_decoders::event::TxId;
use turnout_decoders::schema::ReplicaIdentity;
use turnout_decoders::{ChangeEvent, Position, TableSchema, Timestamp, Value};
use turnout_sinks::{RowChange, Transaction};

pub use crate::source::SENTINEL_PREFIX;

/// Bytes counted for every transaction whatever its changes (the transaction, its lag entry and batch
/// slot), so that empty transactions — PostgreSQL 13/14 send one for every transaction that touched
/// no published table — count against the memory budget too.
pub const TRANSACTION_OVERHEAD: usize = 256;

/// A committed transaction's changes.
#[derive(Debug)]
pub enum Body {
    /// All changes in memory.
    Whole(Transaction),
    /// Changes in the state store, to be read back chunk by chunk.
    Spilled(SpilledTransaction),
}

impl Body {
    pub fn commit_end(&self) -> &Position {
        match self {
            Body::Whole(t) => &t.commit_end,
            Body::Spilled(t) => &t.commit_end,
        }
    }

    pub fn commit_ts(&self) -> Timestamp {
        match self {
            Body::Whole(t) => t.commit_ts,
            Body::Spilled(t) => t.commit_ts,
        }
    }

    /// Row changes of the transaction.
    pub fn rows(&self) -> usize {
        match self {
            Body::Whole(t) => t.changes.len(),
            Body::Spilled(t) => t.spilled.rows(),
        }
    }

    /// Drops the transaction without applying it (deleting its spilled chunks).
    pub fn discard(self, state: &StateStore) -> Result<(), Error> {
        match self {
            Body::Whole(_) => Ok(()),
            Body::Spilled(t) => t.spilled.discard(state),
        }
    }
}

/// A transaction leaving the assembler at its commit.
#[derive(Debug)]
pub struct CommittedTransaction {
    pub body: Body,
    /// The cutover sentinel id this transaction carried.
    pub sentinel: Option<String>,
    /// Schema changes announced inside the (streamed) transaction: to apply on green before it.
    pub relations: Vec<Arc<TableSchema>>,
    /// The source's own DDL statements `(database, statement)` in this transaction: to run on green
    /// before its changes.
    pub statements: Vec<(String, String)>,
    /// The source transaction id when its changes left (or could have left) in [`Segment`]s for early
    /// apply: a streamed transaction, or a large one sent whole.
    pub early_xid: Option<TxId>,
    /// Every change of this transaction left in [`Segment`]s, counting `tail` (early apply may hold it
    /// whole).
    pub segments_complete: bool,
    /// Changes of a large transaction sent whole that arrived after its last segment: to apply early
    /// before it commits.
    pub tail: Option<Segment>,
    /// The tables and keys this transaction changed.
    pub touched: Touched,
}

/// Changes of a streamed transaction still in progress, for early apply.
#[derive(Debug)]
pub struct Segment {
    pub xid: TxId,
    /// Table schemas announced with these changes.
    pub relations: Vec<Arc<TableSchema>>,
    /// The changes, each with the (sub)transaction id that made it.
    pub changes: Vec<(TxId, RowChange)>,
    /// Estimated bytes of `changes`.
    pub bytes: usize,
}

impl Segment {
    /// Appends `later`, a segment of the same transaction received after this one.
    pub fn absorb(&mut self, later: Segment) {
        debug_assert_eq!(self.xid, later.xid);
        self.relations.extend(later.relations);
        self.changes.extend(later.changes);
        self.bytes += later.bytes;
    }
}

/// What the assembler hands on.
// Moved once per transaction: boxing the large variant would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Assembled {
    /// A table's schema announced outside any in-progress transaction: apply on green now, after
    /// everything received before it.
    Schema(Arc<TableSchema>),
    /// A committed transaction.
    Transaction(CommittedTransaction),
    /// Changes of a streamed transaction in progress (early apply only).
    Segment(Segment),
    /// A streamed transaction (`subxid == xid`) or one of its subtransactions rolled back (early apply
    /// only).
    Aborted { xid: TxId, subxid: TxId },
}

/// Changes of one transaction not yet committed, with the (sub)transaction id that made each.
#[derive(Debug, Default)]
struct Buffer {
    changes: Vec<(TxId, RowChange)>,
    /// Estimated bytes of `changes`.
    bytes: usize,
    spilled: Option<Spilled>,
    sentinel: Option<String>,
    relations: Vec<Arc<TableSchema>>,
    statements: Vec<(String, String)>,
    /// Changes are also handed out for early apply: everything received so far was handed out or
    /// is in `segment`.
    early: bool,
    /// Changes and schemas received since the last [`Segment`] was handed out.
    segment: Vec<(TxId, RowChange)>,
    segment_relations: Vec<Arc<TableSchema>>,
    segment_bytes: usize,
    /// The tables and keys changed so far.
    touched: Touched,
}

/// Which buffer: the non-streamed transaction being received, or a streamed one by top-level xid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Current,
    Stream(TxId),
}

/// Assembles transactions; see the module documentation.
#[derive(Debug)]
pub struct Assembler {
    /// The non-streamed transaction being received: xid, commit time from Begin, changes.
    current: Option<(TxId, Timestamp, Buffer)>,
    streams: HashMap<TxId, Buffer>,
    open_stream: Option<TxId>,
    /// Estimated bytes of changes held in memory across all buffers.
    buffered_bytes: usize,
    memory_budget: usize,
    state: StateStore,
    next_spill_id: u64,
    spilled_bytes_total: u64,
    /// Streamed transactions are handed out in segments as well.
    early: bool,
    /// Estimated bytes of segments not yet handed out.
    segment_bytes: usize,
    /// Each transaction notes what it touched ([`Touched`]), for the continuous verify.
    track: bool,
}

/// A rough size of a change in memory: value payloads plus per-value and per-change overhead.
pub fn change_size(c: &RowChange) -> usize {
    fn value(v: &Value) -> usize {
        40 + match v {
            Value::Numeric(t) | Value::Text(t) | Value::Temporal(_, t) => t.as_bytes().len(),
            Value::Json { text, .. } | Value::Unknown { text, .. } => text.as_bytes().len(),
            Value::TypedJson { text, sql } => text.as_bytes().len() + sql.as_bytes().len(),
            Value::Bytes(b) | Value::Binary { data: b, .. } => b.len(),
            Value::Array { elements, .. } => elements.iter().map(value).sum(),
            _ => 0,
        }
    }
    let row = |r: &[Value]| 24 + r.iter().map(value).sum::<usize>();
    96 + match c {
        RowChange::Insert { after, .. } => row(after),
        RowChange::Update { key, before, after, .. } => row(key) + before.as_ref().map_or(0, |b| row(b)) + row(after),
        RowChange::Delete { key, before, .. } => row(key) + before.as_ref().map_or(0, |b| row(b)),
        RowChange::Truncate { tables, .. } => tables.len() * 8,
    }
}

impl Assembler {
    /// `memory_budget` bounds the bytes of changes held for uncommitted transactions; beyond it they
    /// are spilled to `state`. Spilled data of an earlier run is cleared.
    pub fn new(memory_budget: usize, state: StateStore) -> Result<Self, Error> {
        state.spill_clear()?;
        Ok(Assembler {
            current: None,
            streams: HashMap::new(),
            open_stream: None,
            buffered_bytes: 0,
            memory_budget,
            state,
            next_spill_id: 0,
            spilled_bytes_total: 0,
            early: false,
            segment_bytes: 0,
            track: false,
        })
    }

    /// Notes what each transaction touched (see [`super::changed`]).
    pub fn track(&mut self, track: bool) {
        self.track = track;
    }

    /// Hands out the changes of streamed transactions as they arrive as well (see the module docs).
    pub fn with_early(mut self, early: bool) -> Self {
        self.early = early;
        self
    }

    /// Stops handing out changes of streamed transaction `xid`: it is applied whole at its commit.
    pub fn stop_early(&mut self, xid: TxId) {
        let current = self.current.as_mut().filter(|(x, _, _)| *x == xid).map(|(_, _, b)| b);
        if let Some(b) = current.or_else(|| self.streams.get_mut(&xid)) {
            b.early = false;
            b.segment.clear();
            b.segment_relations.clear();
            self.segment_bytes -= std::mem::take(&mut b.segment_bytes);
        }
    }

    /// Estimated bytes of segments not yet handed out.
    pub fn segment_bytes(&self) -> usize {
        self.segment_bytes
    }

    /// The buffer of streamed transaction `xid`, created at its first event.
    fn stream(&mut self, xid: TxId) -> &mut Buffer {
        let early = self.early;
        self.streams.entry(xid).or_insert_with(|| Buffer { early, ..Buffer::default() })
    }

    /// Hands out what streamed transaction `xid` received since its last segment, if anything.
    fn take_segment(&mut self, xid: TxId) -> Option<Assembled> {
        self.segment_of(Which::Stream(xid)).map(Assembled::Segment)
    }

    /// What `which` received since its last segment, if anything.
    fn segment_of(&mut self, which: Which) -> Option<Segment> {
        let xid = match which {
            Which::Current => self.current.as_ref()?.0,
            Which::Stream(x) => x,
        };
        let b = self.buffer(which)?;
        if !b.early || (b.segment.is_empty() && b.segment_relations.is_empty()) {
            return None;
        }
        let bytes = std::mem::take(&mut b.segment_bytes);
        let segment = Segment { xid, relations: std::mem::take(&mut b.segment_relations), changes: std::mem::take(&mut b.segment), bytes };
        self.segment_bytes -= bytes;
        Some(segment)
    }

    /// True when no transaction is open or buffered (everything received has been handed out).
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.streams.is_empty()
    }

    /// Estimated bytes of uncommitted changes held in memory.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Bytes written to the state store for large transactions since start.
    pub fn spilled_bytes_total(&self) -> u64 {
        self.spilled_bytes_total
    }

    fn buffer(&mut self, which: Which) -> Option<&mut Buffer> {
        match which {
            Which::Current => self.current.as_mut().map(|(_, _, b)| b),
            Which::Stream(xid) => self.streams.get_mut(&xid),
        }
    }

    /// Writes everything `which` holds in memory to the state store.
    fn spill(&mut self, which: Which) -> Result<(), Error> {
        let id = self.next_spill_id;
        let state = self.state.clone();
        let early = self.early;
        let Some(buffer) = self.buffer(which) else { return Ok(()) };
        if buffer.spilled.is_none() {
            tracing::info!(?which, rows = buffer.changes.len(), "a transaction exceeds apply.memory_budget; spilling it to the state store");
            // Sent whole, it is committed on the source: green may apply it while the rest arrives.
            if which == Which::Current {
                buffer.early = early;
            }
        }
        // A large transaction sent whole hands what it spills on as a segment (moved, not copied).
        let to_segment = which == Which::Current && buffer.early;
        let spilled = buffer.spilled.get_or_insert_with(|| Spilled::new(id));
        let before = spilled.bytes();
        for chunk in buffer.changes.chunks(CHUNK_ROWS) {
            spilled.write(&state, chunk)?;
        }
        let written = spilled.bytes() - before;
        let freed = std::mem::take(&mut buffer.bytes);
        if to_segment {
            buffer.segment.append(&mut buffer.changes);
            buffer.segment_bytes += freed;
        } else {
            buffer.changes.clear();
        }
        if id == self.next_spill_id {
            self.next_spill_id += 1;
        }
        self.buffered_bytes -= freed;
        if to_segment {
            self.segment_bytes += freed;
        }
        self.spilled_bytes_total += written as u64;
        Ok(())
    }

    /// The buffer holding the most bytes in memory.
    fn largest(&self) -> Option<Which> {
        let current = self.current.as_ref().map(|(_, _, b)| (Which::Current, b.bytes));
        let streams = self.streams.iter().map(|(xid, b)| (Which::Stream(*xid), b.bytes));
        current.into_iter().chain(streams).filter(|(_, bytes)| *bytes > 0).max_by_key(|(_, bytes)| *bytes).map(|(w, _)| w)
    }

    /// Adds a change to `which` and keeps memory within the budget.
    fn add(&mut self, which: Which, sub: TxId, change: RowChange) -> Result<(), Error> {
        let size = change_size(&change);
        let track = self.track;
        let Some(buffer) = self.buffer(which) else {
            return Err(Error::Resync("the source sent a row change outside any transaction".into()));
        };
        if track {
            buffer.touched.note(&change);
        }
        buffer.changes.push((sub, change));
        buffer.bytes += size;
        let full_chunk = buffer.spilled.is_some() && buffer.changes.len() >= CHUNK_ROWS;
        // One transaction may hold at most a quarter of the budget in memory, so a whole committed
        // one can move on to the batcher without pushing the pipeline past its budget.
        let too_large = buffer.bytes > self.memory_budget / 4;
        self.buffered_bytes += size;
        if full_chunk || too_large {
            self.spill(which)?;
        }
        while self.buffered_bytes > self.memory_budget {
            let Some(largest) = self.largest() else { break };
            self.spill(largest)?;
        }
        Ok(())
    }

    /// Ends a buffer at its commit. A buffer that does not exist (a commit for a transaction never
    /// seen on this stream) is a resync error: committing it empty would record its position on green
    /// without its changes.
    fn commit(&mut self, which: Which, xid: TxId, commit_end: Position, commit_ts: Timestamp) -> Result<Assembled, Error> {
        if self.buffer(which).is_some_and(|b| b.spilled.is_some()) {
            self.spill(which)?;
        }
        // The rest of a large transaction sent whole, applied early just before its commit.
        let tail = match which {
            Which::Current => self.segment_of(which),
            Which::Stream(_) => None,
        };
        let buffer = match which {
            Which::Current => self.current.take().map(|(_, _, b)| b),
            Which::Stream(x) => self.streams.remove(&x),
        }
        .ok_or_else(|| Error::Resync(format!("the source committed transaction {xid} (ending at {commit_end}) whose changes never arrived on this stream")))?;
        self.buffered_bytes -= buffer.bytes;
        self.segment_bytes -= buffer.segment_bytes;
        let early_xid = match which {
            Which::Stream(x) => Some(x),
            Which::Current => buffer.early.then_some(xid),
        };
        let segments_complete = buffer.early && buffer.segment.is_empty() && buffer.segment_relations.is_empty();
        let body = match buffer.spilled {
            Some(spilled) => Body::Spilled(SpilledTransaction { commit_end, commit_ts, spilled }),
            None => Body::Whole(Transaction { xid, commit_end, commit_ts, changes: buffer.changes.into_iter().map(|(_, c)| c).collect() }),
        };
        Ok(Assembled::Transaction(CommittedTransaction {
            body,
            sentinel: buffer.sentinel,
            relations: buffer.relations,
            statements: buffer.statements,
            early_xid,
            segments_complete,
            tail,
            touched: buffer.touched,
        }))
    }

    /// The buffer a message without its own transaction id belongs to: the open stream segment's
    /// transaction, else the current one.
    fn enclosing(&mut self, xid: Option<TxId>) -> Option<&mut Buffer> {
        match xid.or(self.open_stream) {
            Some(x) => Some(self.stream(self.open_stream.unwrap_or(x))),
            None => self.current.as_mut().map(|(_, _, b)| b),
        }
    }

    /// Drops a whole buffer (rolled back).
    fn discard(&mut self, which: Which) -> Result<(), Error> {
        let buffer = match which {
            Which::Current => self.current.take().map(|(_, _, b)| b),
            Which::Stream(x) => self.streams.remove(&x),
        };
        if let Some(b) = buffer {
            self.buffered_bytes -= b.bytes;
            self.segment_bytes -= b.segment_bytes;
            if let Some(s) = b.spilled {
                s.discard(&self.state)?;
            }
        }
        Ok(())
    }

    /// Feeds one event; returns a schema to apply now or a transaction when one commits.
    pub fn push(&mut self, event: ChangeEvent) -> Result<Option<Assembled>, Error> {
        let (sub, change) = match event {
            ChangeEvent::Begin { xid, commit_ts, .. } => {
                self.discard(Which::Current)?;
                self.current = Some((xid, commit_ts, Buffer::default()));
                return Ok(None);
            }
            ChangeEvent::Commit { position, commit_ts } => {
                let Some((xid, _, _)) = self.current else {
                    return Err(Error::Resync(format!("the source sent a commit (ending at {position}) without a begin")));
                };
                return self.commit(Which::Current, xid, position, commit_ts).map(Some);
            }
            ChangeEvent::StreamStart { xid, .. } => {
                self.open_stream = Some(xid);
                self.stream(xid);
                return Ok(None);
            }
            ChangeEvent::StreamStop => {
                return Ok(self.open_stream.take().and_then(|xid| self.take_segment(xid)));
            }
            ChangeEvent::StreamCommit { xid, position, commit_ts } => {
                return self.commit(Which::Stream(xid), xid, position, commit_ts).map(Some);
            }
            ChangeEvent::StreamAbort { xid, subxid, .. } => return self.abort_stream(xid, subxid),
            ChangeEvent::BeginPrepare { .. } | ChangeEvent::Prepare { .. } | ChangeEvent::CommitPrepared { .. } | ChangeEvent::RollbackPrepared { .. } => {
                return Err(Error::Unexpected { side: Side::Blue, what: "two-phase messages, though two-phase decoding was not requested".into() })
            }
            ChangeEvent::Relation(schema) => return Ok(self.relation(schema)),
            ChangeEvent::Message { xid, transactional: true, prefix, content, .. } if prefix == SENTINEL_PREFIX => {
                let id = String::from_utf8_lossy(&content).into_owned();
                match self.enclosing(xid) {
                    Some(buffer) => buffer.sentinel = Some(id),
                    None => return Err(Error::Resync("the source sent a transactional message outside any transaction".into())),
                }
                return Ok(None);
            }
            // A partition's TRUNCATE, which pgoutput does not send when partitions publish through
            // their root: a TRUNCATE of that partition, at its place in the transaction.
            ChangeEvent::Message { xid, transactional: true, prefix, content, .. } if prefix == crate::source::TRUNCATE_PREFIX => {
                let Some(name) = crate::source::pg::truncate::partition(&content) else {
                    return Err(Error::Unexpected {
                        side: Side::Blue,
                        what: format!("a truncate message with content {:?}", String::from_utf8_lossy(&content)),
                    });
                };
                let table =
                    Arc::new(TableSchema { relation_id: 0, name, replica_identity: ReplicaIdentity::Default, columns: Vec::new(), foreign_key_checks: true });
                (xid, RowChange::Truncate { tables: vec![table], cascade: false, restart_identity: false })
            }
            ChangeEvent::Ddl { database, statement, .. } => {
                match self.enclosing(None) {
                    Some(buffer) => {
                        buffer.touched.statement();
                        buffer.statements.push((database, statement));
                    }
                    None => return Err(Error::Resync("the source sent a DDL statement outside any transaction".into())),
                }
                return Ok(None);
            }
            ChangeEvent::Origin { .. } | ChangeEvent::Message { .. } | ChangeEvent::Heartbeat { .. } => return Ok(None),
            ChangeEvent::Insert { table, xid, after } => (xid, RowChange::Insert { table, after }),
            ChangeEvent::Update { table, xid, key, before, after } => (xid, RowChange::Update { table, key, before, after }),
            ChangeEvent::Delete { table, xid, key, before } => (xid, RowChange::Delete { table, key, before }),
            ChangeEvent::Truncate { tables, xid, cascade, restart_identity } => (xid, RowChange::Truncate { tables, cascade, restart_identity }),
        };
        self.row(sub, change)
    }

    /// A streamed transaction `xid` aborted, whole (`subxid == xid`) or one subtransaction of it.
    fn abort_stream(&mut self, xid: TxId, subxid: TxId) -> Result<Option<Assembled>, Error> {
        let early = self.streams.get(&xid).is_some_and(|b| b.early);
        if xid == subxid {
            self.discard(Which::Stream(xid))?;
        } else if let Some(s) = self.streams.get_mut(&xid) {
            let before = s.bytes;
            s.changes.retain(|(sub, _)| *sub != subxid);
            s.bytes = s.changes.iter().map(|(_, c)| change_size(c)).sum();
            if let Some(spilled) = s.spilled.as_mut() {
                spilled.abort_subtransaction(subxid);
            }
            self.buffered_bytes -= before - s.bytes;
            let segment_before = s.segment_bytes;
            s.segment.retain(|(sub, _)| *sub != subxid);
            s.segment_bytes = s.segment.iter().map(|(_, c)| change_size(c)).sum();
            self.segment_bytes -= segment_before - s.segment_bytes;
        }
        Ok(early.then_some(Assembled::Aborted { xid, subxid }))
    }

    /// A table's schema. Inside a streamed transaction a schema change belongs to that transaction:
    /// it may still roll back.
    fn relation(&mut self, schema: Arc<TableSchema>) -> Option<Assembled> {
        match self.open_stream {
            Some(x) => {
                let b = self.stream(x);
                if b.early {
                    b.segment_relations.push(Arc::clone(&schema));
                }
                b.touched.schema(&schema);
                b.relations.push(schema);
                None
            }
            None => Some(Assembled::Schema(schema)),
        }
    }

    /// A row change, of the streamed (sub)transaction `sub` or of the current transaction.
    fn row(&mut self, sub: Option<TxId>, change: RowChange) -> Result<Option<Assembled>, Error> {
        match sub {
            Some(sub) => {
                let top = self.open_stream.unwrap_or(sub);
                let b = self.stream(top);
                if b.early {
                    let size = change_size(&change);
                    b.segment.push((sub, change.clone()));
                    b.segment_bytes += size;
                    self.segment_bytes += size;
                }
                self.add(Which::Stream(top), sub, change)?;
                if self.streams.get(&top).is_some_and(|b| b.segment.len() >= CHUNK_ROWS) {
                    return Ok(self.take_segment(top));
                }
                Ok(None)
            }
            None => {
                if self.current.is_none() {
                    return Err(Error::Resync("the source sent a row change outside any transaction".into()));
                }
                self.add(Which::Current, 0, change)?;
                Ok(self.segment_of(Which::Current).map(Assembled::Segment))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use turnout_decoders::schema::{Column, ColumnType, ReplicaIdentity, TableName};
    use turnout_decoders::Lsn;

    fn table(columns: usize) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            relation_id: 1,
            name: TableName::new("public", "t"),
            replica_identity: ReplicaIdentity::Default,
            columns: (0..columns).map(|i| Column { name: format!("c{i}"), ty: ColumnType::pg(23, -1), is_key: i == 0 }).collect(),
            foreign_key_checks: true,
        })
    }

    fn assembler() -> (tempfile::TempDir, Assembler) {
        let dir = tempfile::tempdir().expect("tmp");
        let state = StateStore::open(dir.path()).expect("state");
        (dir, Assembler::new(1 << 20, state).expect("assembler"))
    }

    fn insert(xid: Option<TxId>) -> ChangeEvent {
        ChangeEvent::Insert { table: table(1), xid, after: vec![Value::Int4(1)] }
    }

    fn sentinel(xid: Option<TxId>, id: &str) -> ChangeEvent {
        ChangeEvent::Message {
            xid,
            transactional: true,
            position: Position::Pg(Lsn(1)),
            prefix: SENTINEL_PREFIX.into(),
            content: Bytes::copy_from_slice(id.as_bytes()),
        }
    }

    fn stream_commit(xid: TxId, end: u64) -> ChangeEvent {
        ChangeEvent::StreamCommit { xid, position: Position::Pg(Lsn(end)), commit_ts: Timestamp(0) }
    }

    fn committed(out: Option<Assembled>) -> CommittedTransaction {
        match out {
            Some(Assembled::Transaction(t)) => t,
            other => panic!("expected a committed transaction, got {other:?}"),
        }
    }

    #[test]
    fn a_stream_commit_for_a_transaction_never_seen_is_a_resync_not_an_empty_commit() {
        let (_dir, mut a) = assembler();
        let err = a.push(stream_commit(77, 100)).expect_err("unknown transaction");
        assert!(matches!(err, Error::Resync(_)), "{err}");
        let err = a.push(ChangeEvent::Commit { position: Position::Pg(Lsn(5)), commit_ts: Timestamp(0) }).expect_err("no begin");
        assert!(matches!(err, Error::Resync(_)), "{err}");
    }

    #[test]
    fn a_sentinel_belongs_to_the_transaction_that_carried_it() {
        let (_dir, mut a) = assembler();
        // Streamed transaction 10 carries the sentinel; transaction 20 commits first.
        a.push(ChangeEvent::StreamStart { xid: 10, first_segment: true }).expect("start");
        a.push(insert(Some(10))).expect("insert");
        a.push(sentinel(Some(10), "fence-1")).expect("sentinel");
        a.push(ChangeEvent::StreamStop).expect("stop");
        a.push(ChangeEvent::Begin { xid: 20, commit_position: None, commit_ts: Timestamp(0) }).expect("begin");
        a.push(insert(None)).expect("insert");
        let other = committed(a.push(ChangeEvent::Commit { position: Position::Pg(Lsn(50)), commit_ts: Timestamp(0) }).expect("commit"));
        assert_eq!(other.sentinel, None, "the sentinel was matched to the next commit, not its own transaction");
        let own = committed(a.push(stream_commit(10, 60)).expect("commit"));
        assert_eq!(own.sentinel.as_deref(), Some("fence-1"));
    }

    #[test]
    fn a_schema_change_inside_a_streamed_transaction_leaves_only_with_its_commit() {
        let (_dir, mut a) = assembler();
        // Announced outside any stream: apply now.
        assert!(matches!(a.push(ChangeEvent::Relation(table(1))).expect("relation"), Some(Assembled::Schema(_))));
        // Inside a stream that aborts: never handed on.
        a.push(ChangeEvent::StreamStart { xid: 30, first_segment: true }).expect("start");
        assert!(a.push(ChangeEvent::Relation(table(2))).expect("relation").is_none());
        a.push(ChangeEvent::StreamStop).expect("stop");
        a.push(ChangeEvent::StreamAbort { xid: 30, subxid: 30, abort_position: None, abort_ts: None }).expect("abort");
        assert!(a.is_idle());
        // Inside a stream that commits: handed on with it.
        a.push(ChangeEvent::StreamStart { xid: 31, first_segment: true }).expect("start");
        assert!(a.push(ChangeEvent::Relation(table(2))).expect("relation").is_none());
        a.push(ChangeEvent::StreamStop).expect("stop");
        let t = committed(a.push(stream_commit(31, 70)).expect("commit"));
        assert_eq!(t.relations.len(), 1);
        assert_eq!(t.relations[0].columns.len(), 2);
    }

    fn early_assembler() -> (tempfile::TempDir, Assembler) {
        let (dir, a) = assembler();
        (dir, a.with_early(true))
    }

    fn segment(out: Option<Assembled>) -> Segment {
        match out {
            Some(Assembled::Segment(s)) => s,
            other => panic!("expected a segment, got {other:?}"),
        }
    }

    #[test]
    fn with_early_apply_a_streamed_transaction_leaves_in_segments_and_whole_at_commit() {
        let (_dir, mut a) = early_assembler();
        a.push(ChangeEvent::StreamStart { xid: 10, first_segment: true }).expect("start");
        assert!(a.push(ChangeEvent::Relation(table(1))).expect("relation").is_none());
        for _ in 0..3 {
            assert!(a.push(insert(Some(10))).expect("insert").is_none());
        }
        assert!(a.segment_bytes() > 0);
        let s = segment(a.push(ChangeEvent::StreamStop).expect("stop"));
        assert_eq!((s.xid, s.changes.len(), s.relations.len()), (10, 3, 1));
        assert_eq!(a.segment_bytes(), 0, "a segment handed out still counts as held");
        // A segment of CHUNK_ROWS rows leaves before the stream segment ends.
        a.push(ChangeEvent::StreamStart { xid: 10, first_segment: false }).expect("start");
        let mut handed = 0;
        for _ in 0..CHUNK_ROWS + 1 {
            if let Some(out) = a.push(insert(Some(11))).expect("insert") {
                handed += segment(Some(out)).changes.len();
            }
        }
        assert_eq!(handed, CHUNK_ROWS);
        let last = segment(a.push(ChangeEvent::StreamStop).expect("stop"));
        assert_eq!(last.changes, vec![(11, RowChange::Insert { table: table(1), after: vec![Value::Int4(1)] })]);
        let t = committed(a.push(stream_commit(10, 90)).expect("commit"));
        assert_eq!(t.early_xid, Some(10));
        assert!(t.segments_complete);
        assert_eq!(t.body.rows(), CHUNK_ROWS + 4, "the transaction itself keeps every change");
    }

    fn begin(xid: TxId) -> ChangeEvent {
        ChangeEvent::Begin { xid, commit_position: None, commit_ts: Timestamp(0) }
    }

    fn commit(end: u64) -> ChangeEvent {
        ChangeEvent::Commit { position: Position::Pg(Lsn(end)), commit_ts: Timestamp(0) }
    }

    /// Pushes `n` inserts of the transaction sent whole; returns the segments they let out.
    fn push_whole(a: &mut Assembler, n: usize) -> Vec<Segment> {
        (0..n).filter_map(|_| a.push(insert(None)).expect("insert")).map(|out| segment(Some(out))).collect()
    }

    #[test]
    fn a_large_transaction_sent_whole_leaves_in_segments_once_it_spills_and_its_rest_at_commit() {
        let (_dir, mut a) = early_assembler();
        // Small: whole at commit, nothing early.
        a.push(begin(39)).expect("begin");
        assert!(push_whole(&mut a, 10).is_empty());
        let small = committed(a.push(commit(50)).expect("commit"));
        assert_eq!((small.early_xid, small.tail.is_some(), small.segments_complete), (None, false, false));
        // Large (the test budget spills at ~1,600 rows): every chunk spilled leaves as a segment.
        a.push(begin(40)).expect("begin");
        let total = 2 * CHUNK_ROWS + 123;
        let segments = push_whole(&mut a, total);
        assert!(segments.len() >= 2, "{} segments", segments.len());
        assert!(segments.iter().all(|s| s.xid == 40 && !s.changes.is_empty()));
        let handed: usize = segments.iter().map(|s| s.changes.len()).sum();
        let t = committed(a.push(commit(100)).expect("commit"));
        let tail = t.tail.as_ref().expect("the rest leaves with the commit");
        assert_eq!(handed + tail.changes.len(), total, "every change leaves early exactly once");
        assert_eq!((t.early_xid, t.segments_complete), (Some(40), true));
        assert!(matches!(t.body, Body::Spilled(_)), "the spill keeps the whole transaction for a fallback");
        assert_eq!(t.body.rows(), total);
        assert_eq!(a.segment_bytes(), 0);
        assert!(a.is_idle());
    }

    #[test]
    fn a_large_transaction_sent_whole_and_given_up_is_applied_whole() {
        let (_dir, mut a) = early_assembler();
        a.push(begin(50)).expect("begin");
        let mut first = Vec::new();
        while first.is_empty() {
            first = push_whole(&mut a, 1);
        }
        let pushed = first[0].changes.len();
        a.stop_early(50);
        assert!(push_whole(&mut a, 2 * CHUNK_ROWS).is_empty(), "a transaction given up leaves no more segments");
        let t = committed(a.push(commit(60)).expect("commit"));
        assert!(t.tail.is_none() && !t.segments_complete);
        assert_eq!(t.body.rows(), pushed + 2 * CHUNK_ROWS);
        // Without early apply, nothing leaves early.
        let (_dir2, mut plain) = assembler();
        plain.push(begin(51)).expect("begin");
        assert!(push_whole(&mut plain, 2 * CHUNK_ROWS).is_empty());
        let t = committed(plain.push(commit(70)).expect("commit"));
        assert_eq!((t.early_xid, t.tail.is_some()), (None, false));
    }

    #[test]
    fn a_rolled_back_subtransaction_leaves_the_pending_segment_and_is_reported() {
        let (_dir, mut a) = early_assembler();
        a.push(ChangeEvent::StreamStart { xid: 20, first_segment: true }).expect("start");
        a.push(insert(Some(20))).expect("insert");
        a.push(insert(Some(21))).expect("insert");
        let out = a.push(ChangeEvent::StreamAbort { xid: 20, subxid: 21, abort_position: None, abort_ts: None }).expect("abort");
        assert!(matches!(out, Some(Assembled::Aborted { xid: 20, subxid: 21 })), "{out:?}");
        let s = segment(a.push(ChangeEvent::StreamStop).expect("stop"));
        assert_eq!(s.changes.iter().map(|(sub, _)| *sub).collect::<Vec<_>>(), vec![20]);
        let out = a.push(ChangeEvent::StreamAbort { xid: 20, subxid: 20, abort_position: None, abort_ts: None }).expect("abort");
        assert!(matches!(out, Some(Assembled::Aborted { xid: 20, subxid: 20 })), "{out:?}");
        assert!(a.is_idle());
        assert_eq!(a.segment_bytes(), 0);
    }

    #[test]
    fn a_transaction_given_up_stops_leaving_in_segments_and_is_not_complete_at_commit() {
        let (_dir, mut a) = early_assembler();
        a.push(ChangeEvent::StreamStart { xid: 30, first_segment: true }).expect("start");
        a.push(insert(Some(30))).expect("insert");
        a.stop_early(30);
        a.push(insert(Some(30))).expect("insert");
        assert!(a.push(ChangeEvent::StreamStop).expect("stop").is_none());
        assert_eq!(a.segment_bytes(), 0);
        let t = committed(a.push(stream_commit(30, 100)).expect("commit"));
        assert!(!t.segments_complete);
        // Without early apply nothing leaves but the commit.
        let (_dir2, mut plain) = assembler();
        plain.push(ChangeEvent::StreamStart { xid: 40, first_segment: true }).expect("start");
        plain.push(insert(Some(40))).expect("insert");
        assert!(plain.push(ChangeEvent::StreamStop).expect("stop").is_none());
        assert!(plain.push(ChangeEvent::StreamAbort { xid: 40, subxid: 40, abort_position: None, abort_ts: None }).expect("abort").is_none());
    }
}
