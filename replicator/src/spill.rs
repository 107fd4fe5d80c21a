//! Spilling the changes of large transactions to the state store, and reading them back.
//!
//! A transaction whose buffered changes would push the assembler past `apply.memory_budget` has its
//! changes written to the state store in chunks of at most [`CHUNK_ROWS`] rows, encoded with the compact
//! binary form below, and dropped from memory. At commit the chunks are read back one at a time and
//! applied in one green transaction, so memory holds one chunk whatever the transaction's size.
//!
//! Spilled data is not durable state: it can always be received again from the slot (nothing spilled is
//! acknowledged before it is committed on green), so it is written without the RocksDB write-ahead log
//! and cleared on start. A chunk that does not decode is reported as corrupt, never skipped.

use crate::error::Error;
use crate::state::StateStore;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::HashSet;
use std::sync::Arc;
use turnout_decoders::event::{Row, TxId};
use turnout_decoders::schema::TableSchema;
use turnout_decoders::value::{TemporalKind, Utf8Bytes, Value};
use turnout_decoders::{Position, Timestamp};
use turnout_sinks::RowChange;

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
        buf.put_u32(len32(changes.len()));
        for (sub, change) in changes {
            buf.put_u64(*sub);
            self.encode_change(&mut buf, change);
        }
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
        let data = state.spill_get(self.id, index).await?.ok_or_else(|| corrupt("a chunk is missing"))?;
        self.decode_chunk(Bytes::from(data))
    }

    /// Decodes one chunk as [`Spilled::write`] encoded it; never panics on damaged bytes.
    pub fn decode_chunk(&self, mut buf: Bytes) -> Result<Vec<RowChange>, Error> {
        let n = get_u32(&mut buf)? as usize;
        let mut out = Vec::with_capacity(n.min(CHUNK_ROWS));
        for _ in 0..n {
            let sub = get_u64(&mut buf)?;
            let change = self.decode_change(&mut buf)?;
            if !self.aborted.contains(&sub) {
                out.push(change);
            }
        }
        if buf.has_remaining() {
            return Err(corrupt("trailing bytes after a chunk"));
        }
        Ok(out)
    }

    /// Number of chunks written.
    pub fn chunks(&self) -> u32 {
        self.chunks
    }

    /// Deletes every chunk.
    pub fn discard(&self, state: &StateStore) -> Result<(), Error> {
        state.spill_delete(self.id)
    }

    fn table_index(&mut self, table: &Arc<TableSchema>) -> u32 {
        match self.tables.iter().position(|t| Arc::ptr_eq(t, table)) {
            Some(i) => len32(i),
            None => {
                self.tables.push(Arc::clone(table));
                len32(self.tables.len() - 1)
            }
        }
    }

    fn table(&self, index: u32) -> Result<Arc<TableSchema>, Error> {
        self.tables.get(index as usize).cloned().ok_or_else(|| corrupt("a table index is out of range"))
    }

    fn encode_change(&mut self, buf: &mut BytesMut, change: &RowChange) {
        match change {
            RowChange::Insert { table, after } => {
                buf.put_u8(b'I');
                buf.put_u32(self.table_index(table));
                put_row(buf, after);
            }
            RowChange::Update { table, key, before, after } => {
                buf.put_u8(b'U');
                buf.put_u32(self.table_index(table));
                put_row(buf, key);
                put_opt_row(buf, before.as_ref());
                put_row(buf, after);
            }
            RowChange::Delete { table, key, before } => {
                buf.put_u8(b'D');
                buf.put_u32(self.table_index(table));
                put_row(buf, key);
                put_opt_row(buf, before.as_ref());
            }
            RowChange::Truncate { tables, cascade, restart_identity } => {
                buf.put_u8(b'T');
                buf.put_u32(len32(tables.len()));
                for t in tables {
                    let i = self.table_index(t);
                    buf.put_u32(i);
                }
                buf.put_u8(u8::from(*cascade));
                buf.put_u8(u8::from(*restart_identity));
            }
        }
    }

    fn decode_change(&self, buf: &mut Bytes) -> Result<RowChange, Error> {
        Ok(match get_u8(buf)? {
            b'I' => RowChange::Insert { table: self.table(get_u32(buf)?)?, after: get_row(buf)? },
            b'U' => {
                let table = self.table(get_u32(buf)?)?;
                let key = get_row(buf)?;
                let before = get_opt_row(buf)?;
                RowChange::Update { table, key, before, after: get_row(buf)? }
            }
            b'D' => {
                let table = self.table(get_u32(buf)?)?;
                let key = get_row(buf)?;
                RowChange::Delete { table, key, before: get_opt_row(buf)? }
            }
            b'T' => {
                let n = get_u32(buf)? as usize;
                let mut tables = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    tables.push(self.table(get_u32(buf)?)?);
                }
                RowChange::Truncate { tables, cascade: get_u8(buf)? != 0, restart_identity: get_u8(buf)? != 0 }
            }
            other => return Err(corrupt(&format!("unknown change kind {other}"))),
        })
    }
}

/// A committed transaction whose changes are (partly) in the state store.
#[derive(Debug)]
pub struct SpilledTransaction {
    pub xid: TxId,
    pub commit_end: Position,
    pub commit_ts: Timestamp,
    pub spilled: Spilled,
}

/// A length or index as the encoding's `u32`. Every one is bounded far below 4 GiB by PostgreSQL
/// itself (1 GiB per value, 1,664 columns per row) and by [`CHUNK_ROWS`].
#[allow(clippy::cast_possible_truncation)]
fn len32(n: usize) -> u32 {
    n as u32
}

fn corrupt(what: &str) -> Error {
    Error::State(format!("spilled transaction data is corrupt ({what}); restart turnout to receive it again from the slot"))
}

fn put_row(buf: &mut BytesMut, row: &Row) {
    buf.put_u32(len32(row.len()));
    for v in row {
        put_value(buf, v);
    }
}

fn put_opt_row(buf: &mut BytesMut, row: Option<&Row>) {
    match row {
        None => buf.put_u8(0),
        Some(r) => {
            buf.put_u8(1);
            put_row(buf, r);
        }
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_u32(len32(b.len()));
    buf.put_slice(b);
}

fn temporal_tag(kind: TemporalKind) -> u8 {
    match kind {
        TemporalKind::Date => 0,
        TemporalKind::Time => 1,
        TemporalKind::TimeTz => 2,
        TemporalKind::Timestamp => 3,
        TemporalKind::TimestampTz => 4,
        TemporalKind::Interval => 5,
    }
}

/// Appends `v` in the spill encoding: a tag byte, then the payload.
pub fn put_value(buf: &mut BytesMut, v: &Value) {
    match v {
        Value::Null => buf.put_u8(0),
        Value::Unchanged => buf.put_u8(1),
        Value::Bool(b) => {
            buf.put_u8(2);
            buf.put_u8(u8::from(*b));
        }
        Value::Int2(i) => {
            buf.put_u8(3);
            buf.put_i16(*i);
        }
        Value::Int4(i) => {
            buf.put_u8(4);
            buf.put_i32(*i);
        }
        Value::Int8(i) => {
            buf.put_u8(5);
            buf.put_i64(*i);
        }
        Value::Oid(o) => {
            buf.put_u8(6);
            buf.put_u32(*o);
        }
        Value::Float4(f) => {
            buf.put_u8(7);
            buf.put_u32(f.to_bits());
        }
        Value::Float8(f) => {
            buf.put_u8(8);
            buf.put_u64(f.to_bits());
        }
        Value::Numeric(t) => {
            buf.put_u8(9);
            put_bytes(buf, t.as_bytes());
        }
        Value::Text(t) => {
            buf.put_u8(10);
            put_bytes(buf, t.as_bytes());
        }
        Value::Bytes(b) => {
            buf.put_u8(11);
            put_bytes(buf, b);
        }
        Value::Json { jsonb, text } => {
            buf.put_u8(12);
            buf.put_u8(u8::from(*jsonb));
            put_bytes(buf, text.as_bytes());
        }
        Value::Temporal(kind, text) => {
            buf.put_u8(13);
            buf.put_u8(temporal_tag(*kind));
            put_bytes(buf, text.as_bytes());
        }
        Value::Uuid(u) => {
            buf.put_u8(14);
            buf.put_slice(u);
        }
        Value::Array { element_type, elements } => {
            buf.put_u8(15);
            buf.put_u32(*element_type);
            put_row(buf, elements);
        }
        Value::Unknown { type_oid, text } => {
            buf.put_u8(16);
            buf.put_u32(*type_oid);
            put_bytes(buf, text.as_bytes());
        }
        Value::Binary { type_oid, data } => {
            buf.put_u8(17);
            buf.put_u32(*type_oid);
            put_bytes(buf, data);
        }
        Value::UInt8(u) => {
            buf.put_u8(18);
            buf.put_u64(*u);
        }
    }
}

fn need(buf: &Bytes, n: usize) -> Result<(), Error> {
    if buf.remaining() < n {
        return Err(corrupt("truncated"));
    }
    Ok(())
}

fn get_u8(buf: &mut Bytes) -> Result<u8, Error> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn get_u32(buf: &mut Bytes) -> Result<u32, Error> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}

fn get_u64(buf: &mut Bytes) -> Result<u64, Error> {
    need(buf, 8)?;
    Ok(buf.get_u64())
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, Error> {
    let n = get_u32(buf)? as usize;
    need(buf, n)?;
    Ok(buf.split_to(n))
}

fn get_text(buf: &mut Bytes) -> Result<Utf8Bytes, Error> {
    Utf8Bytes::try_from_bytes(get_bytes(buf)?).map_err(|_| corrupt("text is not UTF-8"))
}

fn get_row(buf: &mut Bytes) -> Result<Row, Error> {
    let n = get_u32(buf)? as usize;
    // Every value takes at least its tag byte: a count beyond the remaining bytes is corrupt.
    need(buf, n)?;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        row.push(get_value(buf)?);
    }
    Ok(row)
}

fn get_opt_row(buf: &mut Bytes) -> Result<Option<Row>, Error> {
    match get_u8(buf)? {
        0 => Ok(None),
        1 => Ok(Some(get_row(buf)?)),
        other => Err(corrupt(&format!("bad optional-row flag {other}"))),
    }
}

/// Reads one value written by [`put_value`].
pub fn get_value(buf: &mut Bytes) -> Result<Value, Error> {
    Ok(match get_u8(buf)? {
        0 => Value::Null,
        1 => Value::Unchanged,
        2 => Value::Bool(get_u8(buf)? != 0),
        3 => {
            need(buf, 2)?;
            Value::Int2(buf.get_i16())
        }
        4 => {
            need(buf, 4)?;
            Value::Int4(buf.get_i32())
        }
        5 => {
            need(buf, 8)?;
            Value::Int8(buf.get_i64())
        }
        6 => Value::Oid(get_u32(buf)?),
        7 => Value::Float4(f32::from_bits(get_u32(buf)?)),
        8 => {
            need(buf, 8)?;
            Value::Float8(f64::from_bits(buf.get_u64()))
        }
        9 => Value::Numeric(get_text(buf)?),
        10 => Value::Text(get_text(buf)?),
        11 => Value::Bytes(get_bytes(buf)?),
        12 => {
            let jsonb = get_u8(buf)? != 0;
            Value::Json { jsonb, text: get_text(buf)? }
        }
        13 => {
            let kind = match get_u8(buf)? {
                0 => TemporalKind::Date,
                1 => TemporalKind::Time,
                2 => TemporalKind::TimeTz,
                3 => TemporalKind::Timestamp,
                4 => TemporalKind::TimestampTz,
                5 => TemporalKind::Interval,
                other => return Err(corrupt(&format!("unknown temporal kind {other}"))),
            };
            Value::Temporal(kind, get_text(buf)?)
        }
        14 => {
            need(buf, 16)?;
            let mut u = [0u8; 16];
            buf.copy_to_slice(&mut u);
            Value::Uuid(u)
        }
        15 => {
            let element_type = get_u32(buf)?;
            Value::Array { element_type, elements: get_row(buf)? }
        }
        16 => {
            let type_oid = get_u32(buf)?;
            Value::Unknown { type_oid, text: get_text(buf)? }
        }
        17 => {
            let type_oid = get_u32(buf)?;
            Value::Binary { type_oid, data: get_bytes(buf)? }
        }
        18 => Value::UInt8(get_u64(buf)?),
        other => return Err(corrupt(&format!("unknown value tag {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use turnout_decoders::schema::{Column, ColumnType, ReplicaIdentity, TableName};

    fn text() -> impl Strategy<Value = Utf8Bytes> {
        ".{0,20}".prop_map(Utf8Bytes::from_string)
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(Value::Unchanged),
            any::<bool>().prop_map(Value::Bool),
            any::<i16>().prop_map(Value::Int2),
            any::<i32>().prop_map(Value::Int4),
            any::<i64>().prop_map(Value::Int8),
            any::<u64>().prop_map(Value::UInt8),
            any::<u32>().prop_map(Value::Oid),
            any::<f32>().prop_map(Value::Float4),
            any::<f64>().prop_map(Value::Float8),
            text().prop_map(Value::Numeric),
            text().prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| Value::Bytes(Bytes::from(b))),
            (any::<bool>(), text()).prop_map(|(jsonb, text)| Value::Json { jsonb, text }),
            text().prop_map(|t| Value::Temporal(TemporalKind::Interval, t)),
            text().prop_map(|t| Value::Temporal(TemporalKind::TimestampTz, t)),
            any::<[u8; 16]>().prop_map(Value::Uuid),
            (any::<u32>(), text()).prop_map(|(type_oid, text)| Value::Unknown { type_oid, text }),
            (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..8))
                .prop_map(|(type_oid, d)| Value::Binary { type_oid, data: Bytes::from(d) }),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 32, 6, |inner| {
            (any::<u32>(), proptest::collection::vec(inner, 0..6))
                .prop_map(|(element_type, elements)| Value::Array { element_type, elements })
        })
    }

    /// Floats compare by bits so NaN round-trips count as equal.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float4(x), Value::Float4(y)) => x.to_bits() == y.to_bits(),
            (Value::Float8(x), Value::Float8(y)) => x.to_bits() == y.to_bits(),
            (Value::Array { element_type: t1, elements: e1 }, Value::Array { element_type: t2, elements: e2 }) => {
                t1 == t2 && e1.len() == e2.len() && e1.iter().zip(e2).all(|(x, y)| same(x, y))
            }
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn values_round_trip(v in value()) {
            let mut buf = BytesMut::new();
            put_value(&mut buf, &v);
            let mut bytes = buf.freeze();
            let back = get_value(&mut bytes).expect("decodes");
            prop_assert!(same(&v, &back), "{v:?} != {back:?}");
            prop_assert!(!bytes.has_remaining());
        }

        #[test]
        fn truncated_or_garbage_input_is_an_error_not_a_panic(v in value(), cut in 0usize..64, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = BytesMut::new();
            put_value(&mut buf, &v);
            let whole = buf.freeze();
            if cut < whole.len() {
                let mut part = whole.slice(..cut);
                prop_assert!(get_value(&mut part).is_err());
            }
            let mut junk = Bytes::from(junk);
            let _ = get_value(&mut junk);
        }
    }

    fn schema(name: &str) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            relation_id: 1,
            name: TableName::new("public", name),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![Column { name: "id".into(), ty: ColumnType::pg(23, -1), is_key: true }],
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
