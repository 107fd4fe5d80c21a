//! The live status shared by the pipeline and the HTTP API (`/status`, `/metrics`). Never holds
//! secrets.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use turnout_decoders::Lsn;

/// What the sidecar is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Snapshot,
    Streaming,
    Retrying,
    Stopped,
}

/// Per-table snapshot progress.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TableProgress {
    pub rows: u64,
    pub bytes: u64,
    pub done: bool,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    names: Option<crate::setup::Names>,
    last_error: Option<String>,
    tables: BTreeMap<String, TableProgress>,
    started: Instant,
}

/// Shared status; cheap to update from the hot path (atomics for counters).
#[derive(Debug)]
pub struct Status {
    inner: Mutex<Inner>,
    applied: AtomicU64,
    /// Updated for every message received: an atomic, not the lock.
    source_wal_end: AtomicU64,
    rows_applied: AtomicU64,
    transactions_applied: AtomicU64,
    buffered_bytes: AtomicU64,
    spilled_bytes: AtomicU64,
}

/// The JSON of `/status`.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub phase: Phase,
    pub applied_lsn: String,
    pub source_wal_end: String,
    pub lag_bytes: u64,
    pub rows_applied: u64,
    pub transactions_applied: u64,
    pub rows_per_second: f64,
    /// Estimated bytes of not-yet-committed transactions held in memory.
    pub buffered_bytes: u64,
    /// Bytes of large transactions written to the state store since start.
    pub spilled_bytes_total: u64,
    pub names: Option<crate::setup::Names>,
    pub tables: BTreeMap<String, TableProgress>,
    pub last_error: Option<String>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            inner: Mutex::new(Inner {
                phase: Phase::Starting,
                names: None,
                last_error: None,
                tables: BTreeMap::new(),
                started: Instant::now(),
            }),
            applied: AtomicU64::new(0),
            source_wal_end: AtomicU64::new(0),
            rows_applied: AtomicU64::new(0),
            transactions_applied: AtomicU64::new(0),
            buffered_bytes: AtomicU64::new(0),
            spilled_bytes: AtomicU64::new(0),
        }
    }
}

impl Status {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn set_phase(&self, phase: Phase) {
        self.with(|i| i.phase = phase);
    }

    pub fn set_names(&self, names: crate::setup::Names) {
        self.with(|i| i.names = Some(names));
    }

    pub fn set_error(&self, error: Option<String>) {
        self.with(|i| i.last_error = error);
    }

    pub fn set_applied(&self, lsn: Lsn) {
        self.applied.fetch_max(lsn.0, Ordering::Relaxed);
    }

    pub fn applied(&self) -> Lsn {
        Lsn(self.applied.load(Ordering::Relaxed))
    }

    pub fn set_source_wal_end(&self, lsn: Lsn) {
        self.source_wal_end.fetch_max(lsn.0, Ordering::Relaxed);
    }

    pub fn add_applied(&self, transactions: u64, rows: u64) {
        self.transactions_applied.fetch_add(transactions, Ordering::Relaxed);
        self.rows_applied.fetch_add(rows, Ordering::Relaxed);
    }

    /// Memory held for uncommitted transactions, and bytes spilled so far.
    pub fn set_buffered(&self, buffered: u64, spilled_total: u64) {
        self.buffered_bytes.store(buffered, Ordering::Relaxed);
        self.spilled_bytes.store(spilled_total, Ordering::Relaxed);
    }

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

    /// A consistent copy for `/status`.
    pub fn snapshot(&self) -> Snapshot {
        let applied = self.applied();
        let rows = self.rows_applied.load(Ordering::Relaxed);
        let source_wal_end = Lsn(self.source_wal_end.load(Ordering::Relaxed));
        self.with(|i| {
            let secs = i.started.elapsed().as_secs_f64().max(0.001);
            Snapshot {
                phase: i.phase,
                applied_lsn: applied.to_string(),
                source_wal_end: source_wal_end.to_string(),
                lag_bytes: source_wal_end.bytes_since(applied),
                rows_applied: rows,
                transactions_applied: self.transactions_applied.load(Ordering::Relaxed),
                rows_per_second: rows as f64 / secs,
                buffered_bytes: self.buffered_bytes.load(Ordering::Relaxed),
                spilled_bytes_total: self.spilled_bytes.load(Ordering::Relaxed),
                names: i.names.clone(),
                tables: i.tables.clone(),
                last_error: i.last_error.clone(),
            }
        })
    }
}
