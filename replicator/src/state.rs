//! The state store: turnout's durable memory in `state.dir` (RocksDB, every write synced).
//!
//! It keeps the stream id (from which slot, publication and origin names derive), the applied
//! position, snapshot progress and the cutover journal. Guarantees: a write returns only after it is
//! on disk; the applied position never moves backwards (a smaller value is ignored). The source of
//! truth for exactly-once apply is green's replication origin, written in the same transaction as the
//! data; the applied position here mirrors it for status and is checked against it on start.

use crate::error::Error;
use rocksdb::{Options, WriteOptions, DB};
use std::path::Path;
use std::sync::Arc;
use turnout_decoders::Lsn;

const STREAM_ID: &[u8] = b"meta/stream_id";
const APPLIED: &[u8] = b"progress/applied";
const SNAPSHOT_STARTED: &[u8] = b"snapshot/started";
const SNAPSHOT_DONE: &[u8] = b"snapshot/done";
const TABLE_PREFIX: &str = "snapshot/table/";
const SCHEMA_COPIED: &[u8] = b"schema/copied";

const SPILL_PREFIX: &str = "spill/";
const CUTOVER_JOURNAL: &[u8] = b"cutover/journal";

/// The open state store. One process at a time: RocksDB's lock refuses a second opener. Clones share
/// the same open database.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<DB>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").field("path", &self.db.path()).finish()
    }
}

impl StateStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<StateStore, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::State(format!("cannot create state.dir {}: {e}", dir.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // Spilled transaction data passes through the memtables: keep them small so the state store's
        // own memory stays a fixed, small overhead next to apply.memory_budget.
        opts.set_write_buffer_size(8 << 20);
        opts.set_max_write_buffer_number(2);
        let db = DB::open(&opts, dir.join("rocksdb")).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("lock") {
                Error::State(format!("state.dir {} is in use by another turnout process ({msg})", dir.display()))
            } else {
                Error::State(format!("cannot open the state store in {}: {msg}", dir.display()))
            }
        })?;
        Ok(StateStore { db: Arc::new(db) })
    }

    /// The journal of the current or last cutover.
    pub fn cutover_journal(&self) -> Result<Option<crate::cutover::Journal>, Error> {
        self.get(CUTOVER_JOURNAL)?
            .map(|v| serde_json::from_slice(&v).map_err(|e| Error::State(format!("corrupt cutover journal: {e}"))))
            .transpose()
    }

    /// Records a cutover step (synced before it returns).
    pub fn put_cutover_journal(&self, journal: &crate::cutover::Journal) -> Result<(), Error> {
        let v = serde_json::to_vec(journal).map_err(|e| Error::State(format!("encoding the cutover journal: {e}")))?;
        self.put(CUTOVER_JOURNAL, &v)
    }

    fn spill_key(id: u64, chunk: u32) -> Vec<u8> {
        format!("{SPILL_PREFIX}{id:016x}/{chunk:08x}").into_bytes()
    }

    /// Writes one chunk of a spilled transaction. Not synced and not in the write-ahead log: spilled
    /// data is received again from the slot after a crash (see [`crate::spill`]).
    pub fn spill_put(&self, id: u64, chunk: u32, data: &[u8]) -> Result<(), Error> {
        let mut w = WriteOptions::default();
        w.disable_wal(true);
        self.db.put_opt(Self::spill_key(id, chunk), data, &w).map_err(|e| Error::State(format!("spilling a large transaction: {e}")))
    }

    /// Reads one chunk of a spilled transaction.
    pub fn spill_get(&self, id: u64, chunk: u32) -> Result<Option<Vec<u8>>, Error> {
        self.db.get(Self::spill_key(id, chunk)).map_err(|e| Error::State(format!("reading a spilled transaction: {e}")))
    }

    /// Deletes every chunk of spilled transaction `id`.
    pub fn spill_delete(&self, id: u64) -> Result<(), Error> {
        let from = format!("{SPILL_PREFIX}{id:016x}/");
        let to = format!("{SPILL_PREFIX}{id:016x}0");
        self.delete_range(from.as_bytes(), to.as_bytes())
    }

    /// Deletes all spilled data (on start: it belongs to transactions that will be received again).
    pub fn spill_clear(&self) -> Result<(), Error> {
        self.delete_range(SPILL_PREFIX.as_bytes(), b"spill0")
    }

    fn delete_range(&self, from: &[u8], to: &[u8]) -> Result<(), Error> {
        let mut w = WriteOptions::default();
        w.disable_wal(true);
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_range(from, to);
        self.db.write_opt(batch, &w).map_err(|e| Error::State(format!("deleting spilled data: {e}")))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.put_opt(key, value, &w).map_err(|e| Error::State(format!("writing state: {e}")))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.db.get(key).map_err(|e| Error::State(format!("reading state: {e}")))
    }

    fn delete(&self, key: &[u8]) -> Result<(), Error> {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.delete_opt(key, &w).map_err(|e| Error::State(format!("writing state: {e}")))
    }

    fn get_lsn(&self, key: &[u8]) -> Result<Option<Lsn>, Error> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 8] = v.as_slice().try_into().map_err(|_| Error::State("corrupt position in the state store".into()))?;
                Ok(Some(Lsn(u64::from_be_bytes(bytes))))
            }
        }
    }

    /// This stream's id, created on first use. Slot, publication and origin are named `turnout_<id>`.
    pub fn stream_id(&self) -> Result<String, Error> {
        if let Some(v) = self.get(STREAM_ID)? {
            return String::from_utf8(v).map_err(|_| Error::State("corrupt stream id".into()));
        }
        let id = random_id();
        self.put(STREAM_ID, id.as_bytes())?;
        Ok(id)
    }

    /// The last position known to be applied on green (`0/0` if none).
    pub fn applied(&self) -> Result<Lsn, Error> {
        Ok(self.get_lsn(APPLIED)?.unwrap_or(Lsn::ZERO))
    }

    /// Records an applied position; a position below the stored one is ignored (progress never moves
    /// backwards). Returns the stored position.
    pub fn record_applied(&self, lsn: Lsn) -> Result<Lsn, Error> {
        let current = self.applied()?;
        if lsn > current {
            self.put(APPLIED, &lsn.0.to_be_bytes())?;
            return Ok(lsn);
        }
        Ok(current)
    }

    /// The snapshot's consistent point once the whole snapshot is on green.
    pub fn snapshot_done(&self) -> Result<Option<Lsn>, Error> {
        self.get_lsn(SNAPSHOT_DONE)
    }

    /// True when a snapshot was started (a slot was created for it) and may be incomplete.
    pub fn snapshot_started(&self) -> Result<bool, Error> {
        Ok(self.get(SNAPSHOT_STARTED)?.is_some())
    }

    pub fn mark_snapshot_started(&self) -> Result<(), Error> {
        self.put(SNAPSHOT_STARTED, b"1")
    }

    pub fn mark_snapshot_done(&self, consistent_point: Lsn) -> Result<(), Error> {
        self.put(SNAPSHOT_DONE, &consistent_point.0.to_be_bytes())
    }

    /// True once turnout created green's tables itself (pg_dump pre-data); kept across snapshot retries
    /// so a retry still creates the indexes and constraints.
    pub fn schema_copied(&self) -> Result<bool, Error> {
        Ok(self.get(SCHEMA_COPIED)?.is_some())
    }

    pub fn mark_schema_copied(&self) -> Result<(), Error> {
        self.put(SCHEMA_COPIED, b"1")
    }

    /// Records that one table's snapshot copy is complete on green.
    pub fn mark_table_copied(&self, table: &str, rows: u64) -> Result<(), Error> {
        self.put(format!("{TABLE_PREFIX}{table}").as_bytes(), &rows.to_be_bytes())
    }

    /// Tables whose copy completed, with their row counts.
    pub fn copied_tables(&self) -> Result<Vec<(String, u64)>, Error> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator(TABLE_PREFIX.as_bytes()) {
            let (k, v) = item.map_err(|e| Error::State(format!("reading state: {e}")))?;
            let Some(name) = k.strip_prefix(TABLE_PREFIX.as_bytes()) else { break };
            let rows = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            out.push((String::from_utf8_lossy(name).into_owned(), rows));
        }
        Ok(out)
    }

    /// Forgets an incomplete snapshot so it can be redone from scratch.
    pub fn reset_snapshot(&self) -> Result<(), Error> {
        for (name, _) in self.copied_tables()? {
            self.delete(format!("{TABLE_PREFIX}{name}").as_bytes())?;
        }
        self.delete(SNAPSHOT_DONE)?;
        self.delete(SNAPSHOT_STARTED)
    }
}

fn random_id() -> String {
    use std::io::Read;
    let mut buf = [0u8; 4];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        buf = t.to_le_bytes()[..4].try_into().unwrap_or_default();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_position_survives_reopen_and_never_moves_back() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let s = StateStore::open(dir.path()).expect("open");
            assert_eq!(s.applied().expect("read"), Lsn::ZERO);
            assert_eq!(s.record_applied(Lsn(100)).expect("write"), Lsn(100));
            assert_eq!(s.record_applied(Lsn(50)).expect("write"), Lsn(100));
        }
        let s = StateStore::open(dir.path()).expect("reopen");
        assert_eq!(s.applied().expect("read"), Lsn(100));
    }

    #[test]
    fn stream_id_is_stable_and_a_second_opener_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = StateStore::open(dir.path()).expect("open");
        let id = s.stream_id().expect("id");
        assert_eq!(id.len(), 8);
        assert_eq!(s.stream_id().expect("id"), id);
        let err = StateStore::open(dir.path()).expect_err("locked");
        assert!(err.to_string().contains("in use by another turnout"), "{err}");
    }

    #[test]
    fn snapshot_progress_is_recorded_and_reset() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = StateStore::open(dir.path()).expect("open");
        s.mark_snapshot_started().expect("w");
        s.mark_table_copied("public.a", 10).expect("w");
        s.mark_table_copied("public.b", 20).expect("w");
        assert_eq!(s.copied_tables().expect("r"), vec![("public.a".into(), 10), ("public.b".into(), 20)]);
        s.reset_snapshot().expect("reset");
        assert!(s.copied_tables().expect("r").is_empty());
        assert!(!s.snapshot_started().expect("r"));
        s.mark_snapshot_done(Lsn(7)).expect("w");
        assert_eq!(s.snapshot_done().expect("r"), Some(Lsn(7)));
    }

    #[test]
    fn corrupt_position_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = StateStore::open(dir.path()).expect("open");
        s.put(APPLIED, b"xyz").expect("w");
        assert!(s.applied().is_err());
    }
}
