//! Turns the decoded event stream into whole committed transactions.
//!
//! Non-streamed transactions arrive complete between Begin and Commit (PostgreSQL sends them at
//! commit time, already without rolled-back subtransactions). Streamed transactions arrive in segments
//! whose changes carry their (sub)transaction id; they are buffered per top-level xid until Stream
//! Commit, and dropped at Stream Abort (the whole transaction, or one subtransaction's changes).
//!
//! Memory: changes held for transactions not yet committed are bounded by the memory budget. When a
//! change would exceed it, the largest buffered transaction is spilled to the state store (see
//! [`crate::spill`]) and from then on written there in chunks; at commit it comes out as a
//! [`Committed::Spilled`] to be applied chunk by chunk.
//!
//! Guarantee: only committed changes leave the assembler, in commit order; a rolled-back transaction or
//! savepoint never does.

use crate::error::Error;
use crate::spill::{Spilled, SpilledTransaction, CHUNK_ROWS};
use crate::state::StateStore;
use std::collections::HashMap;
use turnout_decoders::{ChangeEvent, Lsn, Position, Timestamp, Value};
use turnout_sinks::{RowChange, Transaction};

/// A transaction leaving the assembler at its commit.
#[derive(Debug)]
pub enum Committed {
    /// All changes in memory.
    Whole(Transaction),
    /// Changes in the state store, to be read back chunk by chunk.
    Spilled(SpilledTransaction),
}

impl Committed {
    pub fn commit_end(&self) -> Lsn {
        match self {
            Committed::Whole(t) => t.commit_end,
            Committed::Spilled(t) => t.commit_end,
        }
    }
}

/// Changes of one transaction not yet committed, with the (sub)transaction id that made each.
#[derive(Debug, Default)]
struct Buffer {
    changes: Vec<(u32, RowChange)>,
    /// Estimated bytes of `changes`.
    bytes: usize,
    spilled: Option<Spilled>,
}

/// Which buffer: the non-streamed transaction being received, or a streamed one by top-level xid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Current,
    Stream(u32),
}

/// Assembles transactions; see the module documentation.
#[derive(Debug)]
pub struct Assembler {
    /// The non-streamed transaction being received: xid, commit time from Begin, changes.
    current: Option<(u32, Timestamp, Buffer)>,
    streams: HashMap<u32, Buffer>,
    open_stream: Option<u32>,
    /// Estimated bytes of changes held in memory across all buffers.
    buffered_bytes: usize,
    memory_budget: usize,
    state: StateStore,
    next_spill_id: u64,
    spilled_bytes_total: u64,
}

/// A rough size of a change in memory: value payloads plus per-value and per-change overhead.
fn change_size(c: &RowChange) -> usize {
    fn value(v: &Value) -> usize {
        40 + match v {
            Value::Numeric(t) | Value::Text(t) | Value::Temporal(_, t) => t.as_bytes().len(),
            Value::Json { text, .. } | Value::Unknown { text, .. } => text.as_bytes().len(),
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
        })
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
        let Some(buffer) = self.buffer(which) else { return Ok(()) };
        if buffer.spilled.is_none() {
            tracing::info!(?which, rows = buffer.changes.len(), "a transaction exceeds apply.memory_budget; spilling it to the state store");
        }
        let spilled = buffer.spilled.get_or_insert_with(|| Spilled::new(id));
        let before = spilled.bytes();
        for chunk in buffer.changes.chunks(CHUNK_ROWS) {
            spilled.write(&state, chunk)?;
        }
        let written = spilled.bytes() - before;
        buffer.changes.clear();
        let freed = std::mem::take(&mut buffer.bytes);
        if id == self.next_spill_id {
            self.next_spill_id += 1;
        }
        self.buffered_bytes -= freed;
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
    fn add(&mut self, which: Which, sub: u32, change: RowChange) -> Result<(), Error> {
        let size = change_size(&change);
        let Some(buffer) = self.buffer(which) else {
            return Err(Error::Setup("protocol: a row change outside any transaction".into()));
        };
        buffer.changes.push((sub, change));
        buffer.bytes += size;
        let full_chunk = buffer.spilled.is_some() && buffer.changes.len() >= CHUNK_ROWS;
        self.buffered_bytes += size;
        if full_chunk {
            self.spill(which)?;
        }
        while self.buffered_bytes > self.memory_budget {
            let Some(largest) = self.largest() else { break };
            self.spill(largest)?;
        }
        Ok(())
    }

    /// Ends a buffer at its commit.
    fn commit(&mut self, which: Which, xid: u32, commit_end: Lsn, commit_ts: Timestamp) -> Result<Committed, Error> {
        if self.buffer(which).is_some_and(|b| b.spilled.is_some()) {
            self.spill(which)?;
        }
        let buffer = match which {
            Which::Current => self.current.take().map(|(_, _, b)| b),
            Which::Stream(x) => self.streams.remove(&x),
        }
        .unwrap_or_default();
        self.buffered_bytes -= buffer.bytes;
        Ok(match buffer.spilled {
            Some(spilled) => Committed::Spilled(SpilledTransaction { xid, commit_end, commit_ts, spilled }),
            None => Committed::Whole(Transaction { xid, commit_end, commit_ts, changes: buffer.changes.into_iter().map(|(_, c)| c).collect() }),
        })
    }

    /// Drops a whole buffer (rolled back).
    fn discard(&mut self, which: Which) -> Result<(), Error> {
        let buffer = match which {
            Which::Current => self.current.take().map(|(_, _, b)| b),
            Which::Stream(x) => self.streams.remove(&x),
        };
        if let Some(b) = buffer {
            self.buffered_bytes -= b.bytes;
            if let Some(s) = b.spilled {
                s.discard(&self.state)?;
            }
        }
        Ok(())
    }

    /// Feeds one event; returns a transaction when one commits.
    pub fn push(&mut self, event: ChangeEvent) -> Result<Option<Committed>, Error> {
        let (sub, change) = match event {
            ChangeEvent::Begin { xid, commit_ts, .. } => {
                self.discard(Which::Current)?;
                self.current = Some((xid, commit_ts, Buffer::default()));
                return Ok(None);
            }
            ChangeEvent::Commit { position: Position::Pg(end), commit_ts, .. } => {
                let Some((xid, _, _)) = self.current else {
                    return Err(Error::Setup("protocol: Commit without Begin".into()));
                };
                return self.commit(Which::Current, xid, end, commit_ts).map(Some);
            }
            ChangeEvent::StreamStart { xid, .. } => {
                self.open_stream = Some(xid);
                self.streams.entry(xid).or_default();
                return Ok(None);
            }
            ChangeEvent::StreamStop => {
                self.open_stream = None;
                return Ok(None);
            }
            ChangeEvent::StreamCommit { xid, position: Position::Pg(end), commit_ts, .. } => {
                return self.commit(Which::Stream(xid), xid, end, commit_ts).map(Some);
            }
            ChangeEvent::StreamAbort { xid, subxid, .. } => {
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
                }
                return Ok(None);
            }
            ChangeEvent::BeginPrepare { .. }
            | ChangeEvent::Prepare { .. }
            | ChangeEvent::CommitPrepared { .. }
            | ChangeEvent::RollbackPrepared { .. } => {
                return Err(Error::Setup("protocol: two-phase messages arrived but two-phase decoding was not requested".into()))
            }
            ChangeEvent::Relation(_)
            | ChangeEvent::Origin { .. }
            | ChangeEvent::Message { .. }
            | ChangeEvent::Heartbeat { .. } => return Ok(None),
            ChangeEvent::Insert { table, xid, after } => (xid, RowChange::Insert { table, after }),
            ChangeEvent::Update { table, xid, key, before, after } => (xid, RowChange::Update { table, key, before, after }),
            ChangeEvent::Delete { table, xid, key, before } => (xid, RowChange::Delete { table, key, before }),
            ChangeEvent::Truncate { tables, xid, cascade, restart_identity } => {
                (xid, RowChange::Truncate { tables, cascade, restart_identity })
            }
        };
        match sub {
            Some(sub) => {
                let top = self.open_stream.unwrap_or(sub);
                self.streams.entry(top).or_default();
                self.add(Which::Stream(top), sub, change)?;
            }
            None => self.add(Which::Current, 0, change)?,
        }
        Ok(None)
    }
}
