//! Batching: whole committed source transactions merged into one green transaction, so green always
//! shows a prefix of the source's commit order. A batch starts as soon as green is idle (after
//! `apply.batch_delay`, zero by default); while green applies one, the next gathers up to the row and
//! byte budgets — batches are as large as the backlog, and as small as one transaction when there is
//! none.
//!
//! Memory: everything received and not yet applied counts against `apply.memory_budget` in bytes —
//! changes of open transactions in the assembler (which spills beyond half the budget), whole
//! transactions waiting in the batch, and the batch in flight — every transaction with a fixed
//! overhead, so that even empty transactions count. Receiving pauses while the total reaches the
//! budget; a batch is due once it holds a quarter of it.

use super::assemble::{change_size, Assembler, TRANSACTION_OVERHEAD};
use crate::error::Error;
use crate::state::StateStore;
use std::time::Duration;
use tokio::time::Instant;
use turnout_decoders::Position;
use turnout_sinks::Transaction;

/// Batching and memory budgets.
#[derive(Clone, Debug)]
pub struct Budgets {
    /// Apply a batch once it holds this many row changes.
    pub batch_rows: usize,
    /// How long a batch may wait for more transactions while green is idle. Zero (the default): apply
    /// at once when green is idle; under backlog transactions gather while the previous batch applies.
    pub batch_delay: Duration,
    /// Bytes of everything received and not yet applied.
    pub memory: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets { batch_rows: 5_000, batch_delay: Duration::ZERO, memory: 256 * 1024 * 1024 }
    }
}

impl Budgets {
    /// The assembler's share: changes of transactions still open.
    pub fn assembler(&self) -> usize {
        self.memory / 2
    }

    /// A batch is applied once it holds this many bytes.
    pub fn batch_bytes(&self) -> usize {
        (self.memory / 4).max(1)
    }
}

/// Estimated bytes a transaction holds in memory.
pub fn transaction_bytes(t: &Transaction) -> usize {
    TRANSACTION_OVERHEAD + t.changes.iter().map(change_size).sum::<usize>()
}

/// Decoding state and the batch being filled.
#[derive(Debug)]
pub struct Batcher {
    pub assembler: Assembler,
    batch: Vec<Transaction>,
    rows: usize,
    bytes: usize,
    deadline: Option<Instant>,
    /// Commit position of the newest transaction accepted: anything at or below is skipped.
    pub applied_floor: Position,
}

impl Batcher {
    /// `early`: streamed transactions also leave the assembler in segments, for early apply.
    pub fn new(budgets: &Budgets, state: StateStore, applied: Position, early: bool) -> Result<Batcher, Error> {
        Ok(Batcher {
            assembler: Assembler::new(budgets.assembler(), state)?.with_early(early),
            batch: Vec::new(),
            rows: 0,
            bytes: 0,
            deadline: None,
            applied_floor: applied,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes held here: open transactions in the assembler (and their segments not yet handed out)
    /// and the batch.
    pub fn memory(&self) -> usize {
        self.assembler.buffered_bytes() + self.assembler.segment_bytes() + self.bytes
    }

    /// When the batch must be applied at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Makes the batch due now (a cutover waits for a sentinel with writes paused).
    pub fn hurry(&mut self) {
        self.deadline = Some(Instant::now());
    }

    /// The batch should be applied now.
    pub fn due(&self, budgets: &Budgets) -> bool {
        !self.batch.is_empty() && (self.rows >= budgets.batch_rows || self.bytes >= budgets.batch_bytes() || self.deadline.is_some_and(|d| Instant::now() >= d))
    }

    /// Adds a whole committed transaction.
    pub fn push(&mut self, tx: Transaction, budgets: &Budgets) {
        self.rows += tx.changes.len();
        self.bytes += transaction_bytes(&tx);
        self.batch.push(tx);
        self.deadline.get_or_insert_with(|| Instant::now() + budgets.batch_delay);
    }

    /// Takes the batch and its size in bytes.
    pub fn take(&mut self) -> (Vec<Transaction>, usize) {
        self.rows = 0;
        self.deadline = None;
        (std::mem::take(&mut self.batch), std::mem::take(&mut self.bytes))
    }
}
