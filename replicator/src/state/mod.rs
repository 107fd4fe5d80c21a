//! The state store: turnout's durable memory in `state.dir` (RocksDB, every write synced).
//!
//! It keeps the stream id (from which slot, publication and origin names derive), the applied
//! position, snapshot progress, spilled parts of large transactions and the cutover journal.
//! Guarantees: a write returns only after it is on disk (spilled data excepted, see
//! [`StateStore::spill_put`]); the applied position never moves backwards (a smaller value is
//! ignored). The source of truth for exactly-once apply is green's own progress record, written in the
//! same transaction as the data; the applied position here mirrors it for status and is checked
//! against it on start.
//!
//! Blocking work leaves the async runtime: the hot-path operations (recording the applied position —
//! a synced write — and spill writes and reads) run on one dedicated state-store thread fed through a
//! `crossbeam-channel`. Its queue is FIFO, so a spill read always sees the writes queued before it.

use crate::error::Error;
pub use crate::error::StoreError;
use rocksdb::{Options, WriteOptions, DB};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use turnout_decoders::{Lsn, Position};

const STREAM_ID: &[u8] = b"meta/stream_id";
const APPLIED: &[u8] = b"progress/applied";
const SNAPSHOT_STARTED: &[u8] = b"snapshot/started";
const SNAPSHOT_DONE: &[u8] = b"snapshot/done";
const TABLE_PREFIX: &str = "snapshot/table/";
const SCHEMA_COPIED: &[u8] = b"schema/copied";
const CHUNK_PREFIX: &str = "copy/chunk/";
const CHUNK_DONE_PREFIX: &str = "copy/done/";
const SELECTION: &[u8] = b"selection/last";

const SPILL_PREFIX: &str = "spill/";
const CUTOVER_JOURNAL: &[u8] = b"cutover/journal";
const ROLLBACK_JOURNAL: &[u8] = b"rollback/journal";
/// Every journal entry of every cutover and rollback, by id and sequence number: what a certificate
/// digests.
const JOURNAL_HISTORY_PREFIX: &str = "cutover/history/";
/// The last certificate of a cutover (rollback).
const CUTOVER_CERTIFICATE: &[u8] = b"cutover/certificate";
const ROLLBACK_CERTIFICATE: &[u8] = b"rollback/certificate";
const WATCH_PREFIX: &str = "watch/";
/// The generation this stream runs as after a rollback armed it again ([`crate::journal::Resumed`]).
const RESUMED: &[u8] = b"stream/resumed";
/// The read canary's record ([`crate::canary_plan::Record`]).
const CANARY: &[u8] = b"canary/record";
/// The consumers the last cutover handed over to green, and the last rollback back to blue
/// ([`crate::handover::Record`]).
const HANDOVER_FORWARD: &[u8] = b"handover/forward";
const HANDOVER_REVERSE: &[u8] = b"handover/reverse";

/// Work for the state-store thread.
type Job = Box<dyn FnOnce(&DB) + Send>;

/// The open state store. One process at a time: RocksDB's lock refuses a second opener. Clones share
/// the same open database and state-store thread; dropping the last clone finishes the queued work,
/// stops the thread and closes the database before it returns.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<DB>,
    jobs: crossbeam_channel::Sender<Job>,
    /// The first failed background spill write, reported by the next spill read.
    spill_failure: Arc<Mutex<Option<String>>>,
    _thread: Arc<StateThread>,
    /// `state.dir/turnout.lock`, locked for as long as any clone lives (dropped last, after the thread
    /// closed the database): a second process, or a second open in this one, is told the directory
    /// is in use.
    _lock: Arc<std::fs::File>,
}

/// Joins the state-store thread when the last [`StateStore`] clone goes.
struct StateThread {
    /// A sender the thread's queue waits on; replaced by a closed one on drop so the loop ends.
    stop: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    handle: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for StateThread {
    fn drop(&mut self) {
        self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// Takes `dir`'s lock file, or says who holds it.
fn lock_dir(dir: &Path) -> Result<std::fs::File, Error> {
    let path = dir.join("turnout.lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&path).map_err(StoreError::file("creating", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked { dir: dir.to_path_buf(), lock: path }.into()),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::file("locking", &path)(e).into()),
    }
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").field("path", &self.db.path()).finish()
    }
}

impl StateStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<StateStore, Error> {
        // Created readable by turnout's user only: it holds positions and spilled row data.
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(StoreError::file("creating state.dir", dir))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // Spilled transaction data passes through the memtables: keep them small so the state store's
        // own memory stays a fixed, small overhead next to apply.memory_budget.
        opts.set_write_buffer_size(8 << 20);
        opts.set_max_write_buffer_number(2);
        let lock = lock_dir(dir)?;
        let db = DB::open(&opts, dir.join("rocksdb")).map_err(StoreError::db(format!("opening the state store in {}", dir.display())))?;
        let db = Arc::new(db);
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let (stop, stopped) = crossbeam_channel::bounded::<Job>(0);
        let worker = Arc::clone(&db);
        let handle = std::thread::Builder::new()
            .name("turnout-state".into())
            .spawn(move || loop {
                crossbeam_channel::select! {
                    recv(queue) -> job => match job {
                        Ok(job) => job(&worker),
                        Err(_) => return,
                    },
                    // Every StateStore is gone: finish what is queued, then stop.
                    recv(stopped) -> _ => {
                        while let Ok(job) = queue.try_recv() {
                            job(&worker);
                        }
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::Thread(format!("cannot start: {e}")))?;
        let thread = StateThread { stop: Mutex::new(Some(stop)), handle: Mutex::new(Some(handle)) };
        Ok(StateStore { db, jobs, spill_failure: Arc::new(Mutex::new(None)), _thread: Arc::new(thread), _lock: Arc::new(lock) })
    }

    /// Runs `f` on the state-store thread and waits for its result without blocking the runtime.
    async fn on_thread<R: Send + 'static>(&self, f: impl FnOnce(&DB) -> Result<R, Error> + Send + 'static) -> Result<R, Error> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db| {
            let _ = reply.send(f(db));
        });
        self.jobs.send(job).map_err(|_| StoreError::Thread("has stopped".into()))?;
        result.await.map_err(|_| StoreError::Thread("stopped while working".into()))?
    }

    fn journal_key(direction: crate::status::Direction) -> &'static [u8] {
        match direction {
            crate::status::Direction::Forward => CUTOVER_JOURNAL,
            crate::status::Direction::Reverse => ROLLBACK_JOURNAL,
        }
    }

    /// The journal of the current or last cutover (`Forward`) or rollback (`Reverse`).
    pub fn journal(&self, direction: crate::status::Direction) -> Result<Option<crate::journal::Journal>, Error> {
        self.get(Self::journal_key(direction))?.map(|v| serde_json::from_slice(&v).map_err(|e| StoreError::corrupt("cutover journal")(e).into())).transpose()
    }

    /// Records a cutover (or rollback, as `journal.direction` says) step, synced before it returns
    /// when `sync` is set. Unsynced is only for a step whose loss in a crash changes nothing (it is
    /// recovered exactly as the synced step before it): it costs no fsync while writes are paused,
    /// and a later synced write makes it durable with everything before it.
    ///
    /// Each entry is also kept, in the same atomic write, in the history of its cutover
    /// ([`StateStore::journal_history`]), which its certificate digests.
    pub fn put_cutover_journal(&self, journal: &crate::journal::Journal, sync: bool) -> Result<(), Error> {
        let v = serde_json::to_vec(journal).map_err(StoreError::encode("the cutover journal"))?;
        let seq = self.scan(&Self::history_prefix(&journal.id))?.len();
        let mut batch = rocksdb::WriteBatch::default();
        batch.put(Self::journal_key(journal.direction), &v);
        batch.put(format!("{}{seq:08}", Self::history_prefix(&journal.id)), &v);
        let mut w = WriteOptions::default();
        w.set_sync(sync);
        self.db.write_opt(batch, &w).map_err(|e| StoreError::db("writing state")(e).into())
    }

    fn history_prefix(id: &str) -> String {
        format!("{JOURNAL_HISTORY_PREFIX}{id}/")
    }

    /// Every journal entry written for the cutover (or rollback) `id`, in the order written, as the
    /// bytes stored.
    pub fn journal_history(&self, id: &str) -> Result<Vec<Vec<u8>>, Error> {
        Ok(self.scan(&Self::history_prefix(id))?.into_iter().map(|(_, v)| v).collect())
    }

    fn certificate_key(direction: crate::status::Direction) -> &'static [u8] {
        match direction {
            crate::status::Direction::Forward => CUTOVER_CERTIFICATE,
            crate::status::Direction::Reverse => ROLLBACK_CERTIFICATE,
        }
    }

    /// The certificate of the last cutover (`Forward`) or rollback (`Reverse`), as written.
    pub fn certificate(&self, direction: crate::status::Direction) -> Result<Option<Vec<u8>>, Error> {
        self.get(Self::certificate_key(direction))
    }

    /// Keeps the certificate of the cutover (rollback) that just ended, synced.
    pub fn put_certificate(&self, direction: crate::status::Direction, json: &[u8]) -> Result<(), Error> {
        self.put(Self::certificate_key(direction), json)
    }

    /// What the watch of `side` for writes that are not turnout's has kept ([`crate::watch`]).
    pub fn watch_record(&self, side: crate::status::foreign::Side) -> Result<Option<Vec<u8>>, Error> {
        self.get(format!("{WATCH_PREFIX}{side}").as_bytes())
    }

    /// Replaces what the watch of `side` keeps, synced.
    pub fn put_watch_record(&self, side: crate::status::foreign::Side, json: &[u8]) -> Result<(), Error> {
        self.put(format!("{WATCH_PREFIX}{side}").as_bytes(), json)
    }

    fn spill_key(id: u64, chunk: u32) -> Vec<u8> {
        format!("{SPILL_PREFIX}{id:016x}/{chunk:08x}").into_bytes()
    }

    /// Queues one chunk of a spilled transaction for the state-store thread and returns at once. Not
    /// synced and not in the write-ahead log: spilled data is received again from the source after a
    /// crash (see [`crate::spill`]). A failed write is reported by the next [`StateStore::spill_get`].
    pub fn spill_put(&self, id: u64, chunk: u32, data: Vec<u8>) -> Result<(), Error> {
        let failure = Arc::clone(&self.spill_failure);
        let job: Job = Box::new(move |db| {
            let mut w = WriteOptions::default();
            w.disable_wal(true);
            if let Err(e) = db.put_opt(Self::spill_key(id, chunk), data, &w) {
                failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(format!("spilling a large transaction: {e}"));
            }
        });
        Ok(self.jobs.send(job).map_err(|_| StoreError::Thread("has stopped".into()))?)
    }

    /// Reads one chunk of a spilled transaction, after every write queued before.
    pub async fn spill_get(&self, id: u64, chunk: u32) -> Result<Option<Vec<u8>>, Error> {
        let data = self.on_thread(move |db| Ok(db.get(Self::spill_key(id, chunk)).map_err(|e| StoreError::Spill(format!("reading: {e}")))?)).await?;
        if let Some(failure) = self.spill_failure.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(StoreError::Spill(failure).into());
        }
        Ok(data)
    }

    /// Queues the deletion of every chunk of spilled transaction `id` (after the writes queued before).
    pub fn spill_delete(&self, id: u64) -> Result<(), Error> {
        let from = format!("{SPILL_PREFIX}{id:016x}/");
        let to = format!("{SPILL_PREFIX}{id:016x}0");
        self.queue_delete_range(from.into_bytes(), to.into_bytes())
    }

    /// Queues the deletion of all spilled data (on start: it belongs to transactions that will be
    /// received again).
    pub fn spill_clear(&self) -> Result<(), Error> {
        self.queue_delete_range(SPILL_PREFIX.as_bytes().to_vec(), b"spill0".to_vec())
    }

    fn queue_delete_range(&self, from: Vec<u8>, to: Vec<u8>) -> Result<(), Error> {
        let failure = Arc::clone(&self.spill_failure);
        let job: Job = Box::new(move |db| {
            let mut w = WriteOptions::default();
            w.disable_wal(true);
            let mut batch = rocksdb::WriteBatch::default();
            batch.delete_range(from, to);
            if let Err(e) = db.write_opt(batch, &w) {
                failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(format!("deleting spilled data: {e}"));
            }
        });
        Ok(self.jobs.send(job).map_err(|_| StoreError::Thread("has stopped".into()))?)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.put_with(key, value, true)
    }

    fn put_with(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), Error> {
        let mut w = WriteOptions::default();
        w.set_sync(sync);
        self.db.put_opt(key, value, &w).map_err(|e| StoreError::db("writing state")(e).into())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.db.get(key).map_err(|e| StoreError::db("reading state")(e).into())
    }

    fn delete(&self, key: &[u8]) -> Result<(), Error> {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.delete_opt(key, &w).map_err(|e| StoreError::db("writing state")(e).into())
    }

    fn get_position(&self, key: &[u8]) -> Result<Option<Position>, Error> {
        self.get(key)?.map(|v| decode_position(&v)).transpose()
    }

    /// This stream's id, created on first use. Slot, publication and origin are named `turnout_<id>`.
    pub fn stream_id(&self) -> Result<String, Error> {
        if let Some(v) = self.get(STREAM_ID)? {
            return Ok(String::from_utf8(v).map_err(StoreError::corrupt("stream id"))?);
        }
        let id = random_id();
        self.put(STREAM_ID, id.as_bytes())?;
        Ok(id)
    }

    /// The stream's current generation after a rollback armed it again, if one did.
    pub fn resumed(&self) -> Result<Option<crate::journal::Resumed>, Error> {
        self.get(RESUMED)?.map(|v| serde_json::from_slice(&v).map_err(|e| StoreError::corrupt("generation record")(e).into())).transpose()
    }

    /// The names of the current generation: `turnout_<id>`, or those the last rollback armed.
    pub fn names(&self) -> Result<crate::names::Names, Error> {
        Ok(match self.resumed()? {
            Some(resumed) => resumed.arm.names,
            None => crate::names::Names::for_stream(&self.stream_id()?),
        })
    }

    /// The names of every generation so far, the first first, and of the next one when a rollback
    /// armed it (what `teardown` drops: an interrupted rollback may have made its slot).
    pub fn every_generation(&self) -> Result<Vec<crate::names::Names>, Error> {
        let current = self.names()?;
        let mut names = vec![crate::names::Names::for_stream(&self.stream_id()?)];
        while names.len() < current.generation() as usize {
            let next = names[names.len() - 1].next_generation();
            names.push(next);
        }
        names.push(current.next_generation());
        Ok(names)
    }

    /// Begins the generation `resumed` describes, in one synced write: the applied position moves to
    /// its hand-off on blue (where green's new origin stands), the journals of the cutover and the
    /// rollback it follows are closed (their journal history stays; the next cutover's certificate
    /// replaces the last one), and the watch ledgers of
    /// the window that ended are cleared.
    pub fn begin_generation(&self, resumed: &crate::journal::Resumed) -> Result<(), Error> {
        let json = serde_json::to_vec(resumed).map_err(StoreError::encode("the generation record"))?;
        let mut batch = rocksdb::WriteBatch::default();
        batch.put(RESUMED, json);
        batch.put(APPLIED, encode_position(&resumed.arm.position)?);
        for key in [CUTOVER_JOURNAL, ROLLBACK_JOURNAL] {
            batch.delete(key);
        }
        for side in [crate::status::foreign::Side::Green, crate::status::foreign::Side::Blue] {
            batch.delete(format!("{WATCH_PREFIX}{side}"));
        }
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(batch, &w).map_err(|e| StoreError::db("writing state")(e).into())
    }

    /// The read canary's record, if a canary was ever asked for.
    pub fn canary(&self) -> Result<Option<crate::canary_plan::Record>, Error> {
        self.get(CANARY)?.map(|v| serde_json::from_slice(&v).map_err(|e| StoreError::corrupt("canary record")(e).into())).transpose()
    }

    /// Keeps the read canary's record (synced: a restart restores what was live, or 0 when in doubt).
    pub fn record_canary(&self, record: &crate::canary_plan::Record) -> Result<(), Error> {
        let json = serde_json::to_vec(record).map_err(StoreError::encode("the canary record"))?;
        self.put(CANARY, &json)
    }

    fn handover_key(direction: crate::status::Direction) -> &'static [u8] {
        match direction {
            crate::status::Direction::Forward => HANDOVER_FORWARD,
            crate::status::Direction::Reverse => HANDOVER_REVERSE,
        }
    }

    /// What the last cutover (`Forward`) or rollback (`Reverse`) handed over of the consumers it
    /// carried, if it carried any ([`crate::handover::Record`]).
    pub fn handover<R: serde::de::DeserializeOwned>(&self, direction: crate::status::Direction) -> Result<Option<R>, Error> {
        self.get(Self::handover_key(direction))?.map(|v| serde_json::from_slice(&v).map_err(|e| StoreError::corrupt("hand-over record")(e).into())).transpose()
    }

    /// Forgets the hand-over record of `direction` (a new cutover or rollback begins: it supersedes
    /// whatever an earlier attempt recorded), synced.
    pub fn clear_handover(&self, direction: crate::status::Direction) -> Result<(), Error> {
        self.delete(Self::handover_key(direction))
    }

    /// Keeps what a cutover (rollback) handed over, synced when `sync` is set — unsynced inside the
    /// write pause, where the switch's journal entry, synced, makes it durable before traffic moves.
    /// A cutover's record replaces the record of the rollback before it.
    pub fn put_handover<R: serde::Serialize>(&self, direction: crate::status::Direction, record: &R, sync: bool) -> Result<(), Error> {
        let json = serde_json::to_vec(record).map_err(StoreError::encode("the hand-over record"))?;
        let mut batch = rocksdb::WriteBatch::default();
        batch.put(Self::handover_key(direction), json);
        if direction == crate::status::Direction::Forward {
            batch.delete(HANDOVER_REVERSE);
        }
        let mut w = WriteOptions::default();
        w.set_sync(sync);
        self.db.write_opt(batch, &w).map_err(|e| StoreError::db("writing the hand-over record")(e).into())
    }

    /// The last position known to be durably applied on green, if any.
    pub fn applied(&self) -> Result<Option<Position>, Error> {
        self.get_position(APPLIED)
    }

    /// Records a durably applied position (synced); a position not beyond the stored one is ignored
    /// (progress never moves backwards). Blocks: from async code use [`StateStore::record_applied_async`].
    pub fn record_applied(&self, position: &Position) -> Result<Position, Error> {
        record_applied_in(&self.db, position)
    }

    /// [`StateStore::record_applied`] on the state-store thread.
    pub async fn record_applied_async(&self, position: &Position) -> Result<Position, Error> {
        let position = position.clone();
        self.on_thread(move |db| record_applied_in(db, &position)).await
    }

    /// The snapshot's consistent point once the whole snapshot is on green.
    pub fn snapshot_done(&self) -> Result<Option<Position>, Error> {
        self.get_position(SNAPSHOT_DONE)
    }

    /// True when a snapshot was started (a slot was created for it) and may be incomplete.
    pub fn snapshot_started(&self) -> Result<bool, Error> {
        Ok(self.get(SNAPSHOT_STARTED)?.is_some())
    }

    pub fn mark_snapshot_started(&self) -> Result<(), Error> {
        self.put(SNAPSHOT_STARTED, b"1")
    }

    pub fn mark_snapshot_done(&self, consistent_point: &Position) -> Result<(), Error> {
        self.put(SNAPSHOT_DONE, &encode_position(consistent_point)?)
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
            let (k, v) = item.map_err(StoreError::db("reading state"))?;
            let Some(name) = k.strip_prefix(TABLE_PREFIX.as_bytes()) else { break };
            let rows = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            out.push((String::from_utf8_lossy(name).into_owned(), rows));
        }
        Ok(out)
    }

    /// Records chunks of the chunked copy's plan — each chunk's JSON under its id (see
    /// [`crate::copy`]) — and forgets the chunks `forget` and their records, in one synced write. The
    /// plan is written before streaming starts; it gains chunks only for a table added to the
    /// selection, replacing that table's earlier chunks.
    pub fn put_chunks(&self, chunks: &[(u32, Vec<u8>)], forget: &[u32]) -> Result<(), Error> {
        let mut batch = rocksdb::WriteBatch::default();
        for id in forget {
            batch.delete(format!("{CHUNK_DONE_PREFIX}{id:08}").as_bytes());
            batch.delete(format!("{CHUNK_PREFIX}{id:08}").as_bytes());
        }
        for (id, json) in chunks {
            batch.put(format!("{CHUNK_PREFIX}{id:08}").as_bytes(), json);
        }
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(batch, &w).map_err(|e| StoreError::db("writing the chunk plan")(e).into())
    }

    /// The chunked copy's plan, in id order (empty when the copy is not chunked).
    pub fn chunks(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.scan(CHUNK_PREFIX).map(|v| v.into_iter().map(|(_, json)| json).collect())
    }

    /// Records that chunk `id` is committed on green (`json`: what it copied). Synced; called only
    /// after green's commit returned.
    pub fn mark_chunk_done(&self, id: u32, json: &[u8]) -> Result<(), Error> {
        self.put(format!("{CHUNK_DONE_PREFIX}{id:08}").as_bytes(), json)
    }

    /// The chunks recorded as committed on green: id and what each copied.
    pub fn chunks_done(&self) -> Result<Vec<(u32, Vec<u8>)>, Error> {
        let mut out = Vec::new();
        for (key, json) in self.scan(CHUNK_DONE_PREFIX)? {
            let id = key.parse::<u32>().map_err(StoreError::corrupt("chunk record"))?;
            out.push((id, json));
        }
        Ok(out)
    }

    /// The tables the last start replicated (`schema.table`), when recorded.
    pub fn last_selection(&self) -> Result<Option<Vec<String>>, Error> {
        self.get(SELECTION)?.map(|v| serde_json::from_slice(&v).map_err(|e| StoreError::corrupt("table selection record")(e).into())).transpose()
    }

    /// Records the tables this start replicates.
    pub fn record_selection(&self, tables: &[String]) -> Result<(), Error> {
        let json = serde_json::to_vec(tables).map_err(StoreError::encode("the table selection"))?;
        self.put(SELECTION, &json)
    }

    /// Every key under `prefix` (without it) with its value, in key order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator(prefix.as_bytes()) {
            let (k, v) = item.map_err(StoreError::db("reading state"))?;
            let Some(rest) = k.strip_prefix(prefix.as_bytes()) else { break };
            out.push((String::from_utf8_lossy(rest).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    /// Forgets an incomplete snapshot so it can be redone from scratch.
    pub fn reset_snapshot(&self) -> Result<(), Error> {
        for (name, _) in self.copied_tables()? {
            self.delete(format!("{TABLE_PREFIX}{name}").as_bytes())?;
        }
        for prefix in [CHUNK_PREFIX, CHUNK_DONE_PREFIX] {
            for (key, _) in self.scan(prefix)? {
                self.delete(format!("{prefix}{key}").as_bytes())?;
            }
        }
        self.delete(SNAPSHOT_DONE)?;
        self.delete(SNAPSHOT_STARTED)
    }
}

/// Positions are stored as `J` + JSON; a bare 8-byte value is a PostgreSQL LSN written by an earlier
/// version.
fn decode_position(v: &[u8]) -> Result<Position, Error> {
    match v.split_first() {
        Some((b'J', json)) => serde_json::from_slice(json).map_err(|e| StoreError::corrupt("position")(e).into()),
        _ => <[u8; 8]>::try_from(v)
            .map(|bytes| Position::Pg(Lsn(u64::from_be_bytes(bytes))))
            .map_err(|_| StoreError::Corrupt { what: "position", reason: format!("{} bytes, neither JSON nor an LSN", v.len()) }.into()),
    }
}

fn encode_position(p: &Position) -> Result<Vec<u8>, Error> {
    let mut out = vec![b'J'];
    serde_json::to_writer(&mut out, p).map_err(StoreError::encode("a position"))?;
    Ok(out)
}

fn record_applied_in(db: &DB, position: &Position) -> Result<Position, Error> {
    let current = db.get(APPLIED).map_err(StoreError::db("reading state"))?.map(|v| decode_position(&v)).transpose()?;
    match current {
        // Never moves back; a position that cannot be ordered against the record is refused.
        Some(c) if position.try_cmp(&c)?.is_le() => Ok(c),
        _ => {
            let mut w = WriteOptions::default();
            w.set_sync(true);
            db.put_opt(APPLIED, encode_position(position)?, &w).map_err(StoreError::db("writing state"))?;
            Ok(position.clone())
        }
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
            assert_eq!(s.applied().expect("read"), None);
            assert_eq!(s.record_applied(&Position::Pg(Lsn(100))).expect("write"), Position::Pg(Lsn(100)));
            assert_eq!(s.record_applied(&Position::Pg(Lsn(50))).expect("write"), Position::Pg(Lsn(100)));
        }
        let s = StateStore::open(dir.path()).expect("reopen");
        assert_eq!(s.applied().expect("read"), Some(Position::Pg(Lsn(100))));
        // A position of another log is refused, never silently kept behind the record.
        let other = Position::Binlog(turnout_decoders::BinlogPosition { file: "mysql-bin.000001".into(), offset: 4, gtids: Default::default() });
        assert!(matches!(s.record_applied(&other), Err(Error::Unordered(_))), "an unordered position must be an error");
        assert_eq!(s.applied().expect("read"), Some(Position::Pg(Lsn(100))));
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
        s.mark_snapshot_done(&Position::Pg(Lsn(7))).expect("w");
        assert_eq!(s.snapshot_done().expect("r"), Some(Position::Pg(Lsn(7))));
    }

    #[test]
    fn a_generation_begins_in_one_write_that_survives_reopen() {
        use crate::journal::{Journal, Resumed, ReverseArm, Step};
        use crate::status::{foreign::Side, Direction};
        let dir = tempfile::tempdir().expect("tmp");
        let next = {
            let s = StateStore::open(dir.path()).expect("open");
            let first = s.names().expect("names");
            assert_eq!(first, crate::names::Names::for_stream(&s.stream_id().expect("id")));
            s.record_applied(&Position::Pg(Lsn(500))).expect("applied");
            s.put_watch_record(Side::Blue, b"{}").expect("watch");
            let journal = |direction, id: &str| Journal {
                id: id.into(),
                direction,
                step: Step::Done,
                fence: "pgbouncer".into(),
                switch: "pgbouncer".into(),
                message: None,
                reverse: None,
                fleet: None,
                hold: None,
            };
            s.put_cutover_journal(&journal(Direction::Forward, "c1"), true).expect("cutover");
            s.put_cutover_journal(&journal(Direction::Reverse, "r1"), true).expect("rollback");
            let next = first.next_generation();
            let arm = ReverseArm {
                names: next.clone(),
                forward_origin: crate::names::Names::reverse_of(&first).origin,
                position: Position::Pg(Lsn(900)),
                finished: false,
                opened_at_us: 0,
                ended: None,
                sentinel: None,
            };
            s.begin_generation(&Resumed { arm, rollback: "r1".into(), at_us: 1, verify_required: Some("why".into()) }).expect("begin");
            next
        };
        let s = StateStore::open(dir.path()).expect("reopen");
        assert_eq!(s.names().expect("names"), next);
        assert_eq!(s.applied().expect("applied"), Some(Position::Pg(Lsn(900))), "the applied position is the hand-off");
        assert!(s.journal(Direction::Forward).expect("j").is_none() && s.journal(Direction::Reverse).expect("j").is_none());
        assert_eq!(s.journal_history("c1").expect("history").len(), 1, "the journal's history stays");
        assert_eq!(s.watch_record(Side::Blue).expect("watch"), None);
        let resumed = s.resumed().expect("resumed").expect("a generation");
        assert_eq!((resumed.rollback.as_str(), resumed.verify_required.as_deref()), ("r1", Some("why")));
        let every: Vec<String> = s.every_generation().expect("every").into_iter().map(|n| n.slot).collect();
        let after = next.next_generation().slot;
        assert_eq!(every, vec![crate::names::Names::for_stream(&s.stream_id().expect("id")).slot, next.slot, after], "the next one a rollback may arm too");
    }

    #[tokio::test]
    async fn spill_chunks_written_in_the_background_are_read_back_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = StateStore::open(dir.path()).expect("open");
        for chunk in 0..100u32 {
            s.spill_put(7, chunk, chunk.to_be_bytes().to_vec()).expect("queue");
        }
        for chunk in 0..100u32 {
            assert_eq!(s.spill_get(7, chunk).await.expect("read"), Some(chunk.to_be_bytes().to_vec()));
        }
        assert_eq!(s.record_applied_async(&Position::Pg(Lsn(9))).await.expect("record"), Position::Pg(Lsn(9)));
        s.spill_delete(7).expect("delete");
        assert_eq!(s.spill_get(7, 0).await.expect("read"), None);
    }

    #[test]
    fn a_position_written_by_an_earlier_version_still_reads() {
        assert_eq!(decode_position(&7u64.to_be_bytes()).expect("legacy"), Position::Pg(Lsn(7)));
        let binlog = Position::Binlog(turnout_decoders::BinlogPosition { file: "b.000001".into(), offset: 4, gtids: Default::default() });
        assert_eq!(decode_position(&encode_position(&binlog).expect("encode")).expect("decode"), binlog);
    }

    #[test]
    fn corrupt_position_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = StateStore::open(dir.path()).expect("open");
        s.put(APPLIED, b"xyz").expect("w");
        assert!(s.applied().is_err());
    }
}
