//! The compact binary encoding of row changes that large transactions are spilled in (the state
//! store keeps the bytes; this module only encodes and decodes them).
//!
//! A chunk is a count, then per change its (sub)transaction id, a kind byte (`I`, `U`, `D`, `T`), the
//! indexes of its tables in a table list the caller keeps, and its rows; every value is a tag byte and
//! its payload (see [`put_value`]). Decoding never trusts a length or count: damaged bytes are a
//! [`SinkError::Corrupt`], never a panic or an oversized allocation.

use crate::error::SinkError;
use crate::RowChange;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::sync::Arc;
use turnout_decoders::event::{Row, TxId};
use turnout_decoders::schema::TableSchema;
use turnout_decoders::value::{TemporalKind, Utf8Bytes, Value};

/// Appends one chunk of `(subtransaction, change)` pairs; tables are written as indexes into `tables`,
/// which grows with tables not seen before.
pub fn encode_chunk(buf: &mut BytesMut, changes: &[(TxId, RowChange)], tables: &mut Vec<Arc<TableSchema>>) {
    buf.put_u32(len32(changes.len()));
    for (sub, change) in changes {
        buf.put_u64(*sub);
        encode_change(buf, change, tables);
    }
}

/// Decodes a chunk written by [`encode_chunk`] with the same table list, keeping the changes whose
/// subtransaction `keep` accepts.
pub fn decode_chunk(mut buf: Bytes, tables: &[Arc<TableSchema>], keep: impl Fn(TxId) -> bool) -> Result<Vec<RowChange>, SinkError> {
    let n = get_u32(&mut buf)? as usize;
    // Every change takes at least 13 bytes.
    need(&buf, n.saturating_mul(13))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sub = get_u64(&mut buf)?;
        let change = decode_change(&mut buf, tables)?;
        if keep(sub) {
            out.push(change);
        }
    }
    if buf.has_remaining() {
        return Err(corrupt("trailing bytes after a chunk"));
    }
    Ok(out)
}

fn table_index(tables: &mut Vec<Arc<TableSchema>>, table: &Arc<TableSchema>) -> u32 {
    match tables.iter().position(|t| Arc::ptr_eq(t, table)) {
        Some(i) => len32(i),
        None => {
            tables.push(Arc::clone(table));
            len32(tables.len() - 1)
        }
    }
}

fn table(tables: &[Arc<TableSchema>], index: u32) -> Result<Arc<TableSchema>, SinkError> {
    usize::try_from(index).ok().and_then(|i| tables.get(i)).cloned().ok_or_else(|| corrupt("a table index is out of range"))
}

fn encode_change(buf: &mut BytesMut, change: &RowChange, tables: &mut Vec<Arc<TableSchema>>) {
    match change {
        RowChange::Insert { table, after } => {
            buf.put_u8(b'I');
            buf.put_u32(table_index(tables, table));
            put_row(buf, after);
        }
        RowChange::Update { table, key, before, after } => {
            buf.put_u8(b'U');
            buf.put_u32(table_index(tables, table));
            put_row(buf, key);
            put_opt_row(buf, before.as_ref());
            put_row(buf, after);
        }
        RowChange::Delete { table, key, before } => {
            buf.put_u8(b'D');
            buf.put_u32(table_index(tables, table));
            put_row(buf, key);
            put_opt_row(buf, before.as_ref());
        }
        RowChange::Truncate { tables: ts, cascade, restart_identity } => {
            buf.put_u8(b'T');
            buf.put_u32(len32(ts.len()));
            for t in ts {
                let i = table_index(tables, t);
                buf.put_u32(i);
            }
            buf.put_u8(u8::from(*cascade));
            buf.put_u8(u8::from(*restart_identity));
        }
    }
}

fn decode_change(buf: &mut Bytes, tables: &[Arc<TableSchema>]) -> Result<RowChange, SinkError> {
    Ok(match get_u8(buf)? {
        b'I' => RowChange::Insert { table: table(tables, get_u32(buf)?)?, after: get_row(buf)? },
        b'U' => {
            let table = table(tables, get_u32(buf)?)?;
            let key = get_row(buf)?;
            let before = get_opt_row(buf)?;
            RowChange::Update { table, key, before, after: get_row(buf)? }
        }
        b'D' => {
            let table = table(tables, get_u32(buf)?)?;
            let key = get_row(buf)?;
            RowChange::Delete { table, key, before: get_opt_row(buf)? }
        }
        b'T' => {
            let n = get_u32(buf)? as usize;
            let mut ts = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                ts.push(table(tables, get_u32(buf)?)?);
            }
            RowChange::Truncate { tables: ts, cascade: get_u8(buf)? != 0, restart_identity: get_u8(buf)? != 0 }
        }
        other => return Err(corrupt(&format!("unknown change kind {other}"))),
    })
}

/// A length or index as the encoding's `u32`. Every one is bounded far below 4 GiB by the sources
/// themselves (1 GiB per PostgreSQL value, 1,664 columns per row) and by the chunk size.
#[allow(clippy::cast_possible_truncation)]
fn len32(n: usize) -> u32 {
    n as u32
}

fn corrupt(what: &str) -> SinkError {
    SinkError::Corrupt(what.to_owned())
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
    buf.put_u8(value_tag(v));
    match v {
        Value::Bool(b) => buf.put_u8(u8::from(*b)),
        Value::Int2(i) => buf.put_i16(*i),
        Value::Int4(i) => buf.put_i32(*i),
        Value::Int8(i) => buf.put_i64(*i),
        Value::Oid(o) => buf.put_u32(*o),
        Value::Float4(f) => buf.put_u32(f.to_bits()),
        Value::Float8(f) => buf.put_u64(f.to_bits()),
        Value::Numeric(t) => put_bytes(buf, t.as_bytes()),
        Value::Text(t) => put_bytes(buf, t.as_bytes()),
        Value::Bytes(b) => put_bytes(buf, b),
        Value::Json { jsonb, text } => {
            buf.put_u8(u8::from(*jsonb));
            put_bytes(buf, text.as_bytes());
        }
        Value::Temporal(kind, text) => {
            buf.put_u8(temporal_tag(*kind));
            put_bytes(buf, text.as_bytes());
        }
        Value::Uuid(u) => buf.put_slice(u),
        Value::Array { element_type, elements } => {
            buf.put_u32(*element_type);
            put_row(buf, elements);
        }
        Value::Unknown { type_oid, text } => {
            buf.put_u32(*type_oid);
            put_bytes(buf, text.as_bytes());
        }
        Value::Binary { type_oid, data } => {
            buf.put_u32(*type_oid);
            put_bytes(buf, data);
        }
        Value::UInt8(u) => buf.put_u64(*u),
        Value::TypedJson { text, sql } => {
            put_bytes(buf, text.as_bytes());
            put_bytes(buf, sql.as_bytes());
        }
        Value::Null | Value::Unchanged => {}
    }
}

/// The byte that says which kind of value follows.
fn value_tag(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Unchanged => 1,
        Value::Bool(..) => 2,
        Value::Int2(..) => 3,
        Value::Int4(..) => 4,
        Value::Int8(..) => 5,
        Value::Oid(..) => 6,
        Value::Float4(..) => 7,
        Value::Float8(..) => 8,
        Value::Numeric(..) => 9,
        Value::Text(..) => 10,
        Value::Bytes(..) => 11,
        Value::Json { .. } => 12,
        Value::Temporal(..) => 13,
        Value::Uuid(..) => 14,
        Value::Array { .. } => 15,
        Value::Unknown { .. } => 16,
        Value::Binary { .. } => 17,
        Value::UInt8(..) => 18,
        Value::TypedJson { .. } => 19,
    }
}

fn need(buf: &Bytes, n: usize) -> Result<(), SinkError> {
    if buf.remaining() < n {
        return Err(corrupt("truncated"));
    }
    Ok(())
}

fn get_u8(buf: &mut Bytes) -> Result<u8, SinkError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn get_u32(buf: &mut Bytes) -> Result<u32, SinkError> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}

fn get_u64(buf: &mut Bytes) -> Result<u64, SinkError> {
    need(buf, 8)?;
    Ok(buf.get_u64())
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, SinkError> {
    let n = get_u32(buf)? as usize;
    need(buf, n)?;
    Ok(buf.split_to(n))
}

fn get_text(buf: &mut Bytes) -> Result<Utf8Bytes, SinkError> {
    Utf8Bytes::try_from_bytes(get_bytes(buf)?).map_err(|_| corrupt("text is not UTF-8"))
}

fn get_row(buf: &mut Bytes) -> Result<Row, SinkError> {
    let n = get_u32(buf)? as usize;
    // Every value takes at least its tag byte: a count beyond the remaining bytes is corrupt.
    need(buf, n)?;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        row.push(get_value(buf)?);
    }
    Ok(row)
}

fn get_opt_row(buf: &mut Bytes) -> Result<Option<Row>, SinkError> {
    match get_u8(buf)? {
        0 => Ok(None),
        1 => Ok(Some(get_row(buf)?)),
        other => Err(corrupt(&format!("bad optional-row flag {other}"))),
    }
}

/// Reads one value written by [`put_value`].
pub fn get_value(buf: &mut Bytes) -> Result<Value, SinkError> {
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
        19 => Value::TypedJson { text: get_text(buf)?, sql: get_text(buf)? },
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
            (text(), text()).prop_map(|(text, sql)| Value::TypedJson { text, sql }),
            text().prop_map(|t| Value::Temporal(TemporalKind::Interval, t)),
            text().prop_map(|t| Value::Temporal(TemporalKind::TimestampTz, t)),
            any::<[u8; 16]>().prop_map(Value::Uuid),
            (any::<u32>(), text()).prop_map(|(type_oid, text)| Value::Unknown { type_oid, text }),
            (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..8)).prop_map(|(type_oid, d)| Value::Binary { type_oid, data: Bytes::from(d) }),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 32, 6, |inner| {
            (any::<u32>(), proptest::collection::vec(inner, 0..6)).prop_map(|(element_type, elements)| Value::Array { element_type, elements })
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
            foreign_key_checks: true,
        })
    }

    #[test]
    fn chunks_round_trip_with_shared_tables_and_leave_out_what_keep_rejects() {
        let (a, b) = (schema("a"), schema("b"));
        let changes = [
            (7, RowChange::Insert { table: Arc::clone(&a), after: vec![Value::Int4(1)] }),
            (8, RowChange::Update { table: Arc::clone(&b), key: vec![Value::Int4(2)], before: None, after: vec![Value::UInt8(u64::MAX)] }),
            (7, RowChange::Delete { table: Arc::clone(&a), key: vec![Value::Int4(1)], before: Some(vec![Value::Int4(1)]) }),
            (7, RowChange::Truncate { tables: vec![Arc::clone(&a), Arc::clone(&b)], cascade: true, restart_identity: false }),
        ];
        let mut tables = Vec::new();
        let mut buf = BytesMut::new();
        encode_chunk(&mut buf, &changes, &mut tables);
        assert_eq!(tables.len(), 2);
        let bytes = buf.freeze();
        let all = decode_chunk(bytes.clone(), &tables, |_| true).expect("decodes");
        assert_eq!(all, changes.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>());
        assert!(matches!(&all[0], RowChange::Insert { table, .. } if Arc::ptr_eq(table, &a)));
        assert_eq!(decode_chunk(bytes.clone(), &tables, |sub| sub != 8).expect("decodes").len(), 3);
        for cut in 0..bytes.len() {
            assert!(decode_chunk(bytes.slice(..cut), &tables, |_| true).is_err(), "cut at {cut}");
        }
        assert!(decode_chunk(bytes, &tables[..1], |_| true).is_err(), "a table index beyond the list");
    }
}
