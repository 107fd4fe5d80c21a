//! Turns the decoded event stream into whole committed transactions.
//!
//! Non-streamed transactions arrive complete between Begin and Commit (PostgreSQL sends them at
//! commit time, already without rolled-back subtransactions). Streamed transactions arrive in segments
//! whose changes carry their (sub)transaction id; they are buffered per top-level xid until Stream
//! Commit, and dropped at Stream Abort (the whole transaction, or one subtransaction's changes).
//! Guarantee: only committed changes leave the assembler, in commit order; a rolled-back transaction or
//! savepoint never does.

use crate::error::Error;
use std::collections::HashMap;
use turnout_decoders::{ChangeEvent, Position};
use turnout_sinks::{RowChange, Transaction};

/// A streamed transaction being buffered: changes with the (sub)transaction id that made them.
#[derive(Debug, Default)]
struct Streamed {
    changes: Vec<(u32, RowChange)>,
    bytes: usize,
}

/// Assembles transactions; see the module documentation.
#[derive(Debug)]
pub struct Assembler {
    current: Option<Transaction>,
    streams: HashMap<u32, Streamed>,
    open_stream: Option<u32>,
    buffered_bytes: usize,
    memory_budget: usize,
}

/// A rough size of a change, for the memory budget.
fn change_size(c: &RowChange) -> usize {
    let row = |r: &[turnout_decoders::Value]| r.len() * 48;
    64 + match c {
        RowChange::Insert { after, .. } => row(after),
        RowChange::Update { key, before, after, .. } => row(key) + before.as_ref().map_or(0, |b| row(b)) + row(after),
        RowChange::Delete { key, before, .. } => row(key) + before.as_ref().map_or(0, |b| row(b)),
        RowChange::Truncate { tables, .. } => tables.len() * 8,
    }
}

impl Assembler {
    /// `memory_budget` bounds the bytes of buffered streamed transactions.
    pub fn new(memory_budget: usize) -> Self {
        Assembler { current: None, streams: HashMap::new(), open_stream: None, buffered_bytes: 0, memory_budget }
    }

    /// Bytes buffered for streamed transactions.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// True while a transaction has started but not committed (nothing received is applicable yet).
    pub fn in_transaction(&self) -> bool {
        self.current.is_some()
    }

    /// Feeds one event; returns a transaction when one commits.
    pub fn push(&mut self, event: ChangeEvent) -> Result<Option<Transaction>, Error> {
        let change = match event {
            ChangeEvent::Begin { xid, commit_ts, .. } => {
                self.current = Some(Transaction { xid, commit_end: turnout_decoders::Lsn::ZERO, commit_ts, changes: Vec::new() });
                return Ok(None);
            }
            ChangeEvent::Commit { position: Position::Pg(end), commit_ts, .. } => {
                let mut tx = self
                    .current
                    .take()
                    .ok_or_else(|| Error::Setup("protocol: Commit without Begin".into()))?;
                tx.commit_end = end;
                tx.commit_ts = commit_ts;
                return Ok(Some(tx));
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
                let s = self.streams.remove(&xid).unwrap_or_default();
                self.buffered_bytes = self.buffered_bytes.saturating_sub(s.bytes);
                return Ok(Some(Transaction { xid, commit_end: end, commit_ts, changes: s.changes.into_iter().map(|(_, c)| c).collect() }));
            }
            ChangeEvent::StreamAbort { xid, subxid, .. } => {
                if xid == subxid {
                    if let Some(s) = self.streams.remove(&xid) {
                        self.buffered_bytes = self.buffered_bytes.saturating_sub(s.bytes);
                    }
                } else if let Some(s) = self.streams.get_mut(&xid) {
                    let before = s.bytes;
                    s.changes.retain(|(sub, _)| *sub != subxid);
                    s.bytes = s.changes.iter().map(|(_, c)| change_size(c)).sum();
                    self.buffered_bytes = self.buffered_bytes.saturating_sub(before - s.bytes);
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
        match change {
            (Some(sub), c) => {
                let top = self.open_stream.unwrap_or(sub);
                let size = change_size(&c);
                self.buffered_bytes += size;
                if self.buffered_bytes > self.memory_budget {
                    return Err(Error::Setup(format!(
                        "streamed transactions need more than the memory budget of {} bytes; raise apply.memory_budget (spilling to the state store is not built yet)",
                        self.memory_budget
                    )));
                }
                let s = self.streams.entry(top).or_default();
                s.bytes += size;
                s.changes.push((sub, c));
            }
            (None, c) => match self.current.as_mut() {
                Some(tx) => tx.changes.push(c),
                None => return Err(Error::Setup("protocol: a row change outside any transaction".into())),
            },
        }
        Ok(None)
    }
}
