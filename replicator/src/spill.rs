//! Spilling the changes of large transactions to the state store, and reading them back.
//!
//! A transaction whose buffered changes would push the assembler past `apply.memory_budget` has its
//! changes written to the state store in chunks of at most [`CHUNK_ROWS`] rows, encoded with
//! [`turnout_sinks::codec`], and dropped from memory. At commit the chunks are read back one at a time and
//! applied in one green transaction, so memory holds one chunk whatever the transaction's size.
//!
//! Spilled data is not durable state: it can always be received again from the slot (nothing spilled is
//! acknowledged before it is committed on green), so it is written without the RocksDB write-ahead log
//! and cleared on start. A chunk that does not decode is reported as corrupt, never skipped.

use crate::error::Error;
use crate::state::StateStore;
use crate::state::StoreError;
use bytes::{Bytes, BytesMut};
use std::collections::HashSet;
use std::sync::Arc;
use turnout_decoders::event::TxId;
use turnout_decoders::schema::TableSchema;
use turnout_decoders::{Position, Timestamp};
use turnout_sinks::{codec, RowChange};

/// Rows per spilled chunk: the unit read back and applied at a time.
pub const CHUNK_ROWS: usize = 5_000;

/// The spilled part of one transaction: where its chunks are and what they need to decode.
#[derive(Debug)]
pub struct Spilled {
    id: u64,
    chunks: u32,
    rows: usize,
    bytes: usize,
    /// Tables referenced by the chunks, by index.
    tables: Vec<Arc<TableSchema>>,
    /// Subtransactions rolled back after some of their changes were spilled.
    aborted: HashSet<TxId>,
}

impl Spilled {
    pub fn new(id: u64) -> Self {
        Spilled { id, chunks: 0, rows: 0, bytes: 0, tables: Vec::new(), aborted: HashSet::new() }
    }

    /// Rows written so far (including those of subtransactions rolled back later).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Encoded bytes written so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Writes one chunk of `(subtransaction, change)` pairs.
    pub fn write(&mut self, state: &StateStore, changes: &[(TxId, RowChange)]) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut buf = BytesMut::with_capacity(changes.len() * 64);
        codec::encode_chunk(&mut buf, changes, &mut self.tables);
        state.spill_put(self.id, self.chunks, buf.to_vec())?;
        self.chunks += 1;
        self.rows += changes.len();
        self.bytes += buf.len();
        Ok(())
    }

    /// Remembers that `subxid` rolled back: its spilled changes are skipped when read.
    pub fn abort_subtransaction(&mut self, subxid: TxId) {
        self.aborted.insert(subxid);
    }

    /// Reads chunk `index` back (changes of rolled-back subtransactions left out).
    pub async fn read(&self, state: &StateStore, index: u32) -> Result<Vec<RowChange>, Error> {
        let data = state.spill_get(self.id, index).await?.ok_or_else(|| StoreError::Spill("a chunk is missing".into()))?;
        self.decode_chunk(Bytes::from(data))
    }

    /// Decodes one chunk as [`Spilled::write`] encoded it; never panics on damaged bytes.
    pub fn decode_chunk(&self, buf: Bytes) -> Result<Vec<RowChange>, Error> {
        codec::decode_chunk(buf, &self.tables, |sub| !self.aborted.contains(&sub)).map_err(|e| StoreError::Spill(e.to_string()).into())
    }

    /// Number of chunks written.
    pub fn chunks(&self) -> u32 {
        self.chunks
    }

    /// Deletes every chunk.
    pub fn discard(&self, state: &StateStore) -> Result<(), Error> {
        state.spill_delete(self.id)
    }
}

/// A committed transaction whose changes are (partly) in the state store.
#[derive(Debug)]
pub struct SpilledTransaction {
    pub commit_end: Position,
    pub commit_ts: Timestamp,
    pub spilled: Spilled,
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::schema::{Column, ColumnType, ReplicaIdentity, TableName};
    use turnout_decoders::Value;

    fn schema(name: &str) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            relation_id: 1,
            name: TableName::new("public", name),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![Column { name: "id".into(), ty: ColumnType::pg(23, -1), is_key: true }],
            foreign_key_checks: true,
        })
    }

    #[tokio::test]
    async fn chunks_round_trip_and_skip_rolled_back_subtransactions() {
        let dir = tempfile::tempdir().expect("tmp");
        let state = StateStore::open(dir.path()).expect("open");
        let (a, b) = (schema("a"), schema("b"));
        let changes = [
            (7, RowChange::Insert { table: Arc::clone(&a), after: vec![Value::Int4(1)] }),
            (8, RowChange::Update { table: Arc::clone(&b), key: vec![Value::Int4(2)], before: None, after: vec![Value::Int4(3)] }),
            (7, RowChange::Delete { table: Arc::clone(&a), key: vec![Value::Int4(1)], before: Some(vec![Value::Int4(1)]) }),
            (7, RowChange::Truncate { tables: vec![Arc::clone(&a), Arc::clone(&b)], cascade: true, restart_identity: false }),
        ];
        let mut s = Spilled::new(3);
        s.write(&state, &changes[..2]).expect("state store");
        s.write(&state, &changes[2..]).expect("state store");
        assert_eq!((s.chunks(), s.rows()), (2, 4));
        let mut all: Vec<RowChange> = Vec::new();
        for i in 0..s.chunks() {
            all.extend(s.read(&state, i).await.expect("state store"));
        }
        assert_eq!(all, changes.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>());
        assert!(matches!(&all[0], RowChange::Insert { table, .. } if Arc::ptr_eq(table, &a)));
        s.abort_subtransaction(8);
        assert_eq!(s.read(&state, 0).await.expect("state store"), vec![changes[0].1.clone()]);
        s.discard(&state).expect("state store");
        assert!(s.read(&state, 0).await.is_err());
    }
}
