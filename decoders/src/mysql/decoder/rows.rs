//! A row event into [`ChangeEvent`]s: the table's schema from its TABLE_MAP, and each binlog value
//! as turnout's [`Value`].

use super::*;

/// A table's schema from its table map (binlog_row_metadata = FULL).
pub(super) fn schema_of(name: &TableName, tm: &TableMap) -> Result<TableSchema, DecodeError> {
    if let Some(code) = tm.unknown_type {
        return Err(bad(
            "binlog",
            format!("{name} has a column of type {code}, which turnout cannot decode; leave the table out with tables.exclude = [\"{name}\"] or change the column's type on blue"),
        ));
    }
    let key: Vec<usize> = tm.primary_key.as_ref().map(|k| k.iter().map(|(i, _)| *i).collect()).unwrap_or_default();
    let mut columns = Vec::with_capacity(tm.columns.len());
    for (i, c) in tm.columns.iter().enumerate() {
        let Some(col_name) = c.name.clone() else {
            return Err(bad("binlog", format!("the table map of {name} has no column names; set binlog_row_metadata = FULL on blue")));
        };
        let real = c.real_type().uncompressed();
        let meta = match &c.meta {
            ColumnMeta::None | ColumnMeta::TypedArray { .. } => 0,
            ColumnMeta::Float { pack_length } | ColumnMeta::Enum { pack_length } | ColumnMeta::Set { pack_length } => u16::from(*pack_length),
            ColumnMeta::VarChar { max_length } | ColumnMeta::String { max_length } => *max_length,
            ColumnMeta::Bit { bits, bytes } => u16::from(*bytes) * 8 + u16::from(*bits),
            ColumnMeta::NewDecimal { precision, scale } => (u16::from(*precision) << 8) | u16::from(*scale),
            ColumnMeta::Blob { length_bytes } => u16::from(*length_bytes),
            ColumnMeta::Fsp(f) => u16::from(*f),
        };
        let members = c.members.as_ref().map(|m| m.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()).unwrap_or_default();
        let ty = MySqlType { code: real.code(), meta, unsigned: c.unsigned, charset: c.collation.and_then(|x| u16::try_from(x).ok()), members };
        columns.push(Column { name: col_name, ty: ColumnType::MySql(ty), is_key: key.is_empty() || key.contains(&i) });
    }
    Ok(TableSchema {
        relation_id: tm.table_id,
        name: name.clone(),
        replica_identity: if key.is_empty() { ReplicaIdentity::Full } else { ReplicaIdentity::Default },
        columns,
        foreign_key_checks: true,
    })
}

/// A row of a rows event as a change event.
pub(super) fn row_event(schema: &Arc<TableSchema>, tm: &TableMap, change: binlog::RowChange) -> Result<ChangeEvent, DecodeError> {
    // A column absent from an image is `Unchanged`: MariaDB 11 leaves generated columns out even
    // under binlog_row_image = FULL, and green computes those itself. Any other absent column (a
    // session with binlog_row_image = MINIMAL) makes the sink refuse the row when it would need the
    // value, naming the column; a key column is refused here, as the row could not be found.
    let row = |image: RowImage| -> Result<Row, DecodeError> {
        let key_missing: Vec<String> = image.absent_columns().filter(|i| schema.columns.get(*i).is_some_and(|c| c.is_key)).map(|i| tm.column_name(i)).collect();
        if !key_missing.is_empty() && schema.replica_identity != ReplicaIdentity::Full {
            return Err(bad(
                "binlog",
                format!("a row image of {} lacks key columns {}; set binlog_row_image = FULL on blue", schema.name, key_missing.join(", ")),
            ));
        }
        image
            .into_columns()
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Some(v) => value(&tm.columns[i].real_type(), v).map(|v| padded(schema.columns.get(i).map(|c| &c.ty), v)),
                None => Ok(Value::Unchanged),
            })
            .collect()
    };
    let key_of = |r: &Row| -> Row { schema.key_indexes().map(|i| r[i].clone()).collect() };
    let full = schema.replica_identity == ReplicaIdentity::Full;
    Ok(match change {
        binlog::RowChange::Insert { after } => ChangeEvent::Insert { table: Arc::clone(schema), xid: None, after: row(after)? },
        binlog::RowChange::Update { before, after } => {
            let before = row(before)?;
            let after = row(after)?;
            ChangeEvent::Update { table: Arc::clone(schema), xid: None, key: key_of(&before), before: full.then_some(before), after }
        }
        binlog::RowChange::Delete { before } => {
            let before = row(before)?;
            ChangeEvent::Delete { table: Arc::clone(schema), xid: None, key: key_of(&before), before: full.then_some(before) }
        }
    })
}

pub(super) fn frac(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    }
}

/// A `BINARY(n)` value with the trailing zero bytes the binlog leaves out put back: the server stores
/// and compares all `n` bytes, so `X'00'` would neither find nor write the row holding `0x00000000`.
pub(super) fn padded(ty: Option<&ColumnType>, v: Value) -> Value {
    match (ty, v) {
        (Some(ColumnType::MySql(t)), Value::Bytes(b)) if t.code == 254 && matches!(t.charset, None | Some(63)) && b.len() < usize::from(t.meta) => {
            let mut full = b.to_vec();
            full.resize(usize::from(t.meta), 0);
            Value::Bytes(Bytes::from(full))
        }
        (_, v) => v,
    }
}

/// A binlog value in the model (see `MySqlType` and the sink's literal rules).
pub(super) fn value(field: &FieldType, v: BinlogValue) -> Result<Value, DecodeError> {
    let temporal = |kind, s: String| Value::Temporal(kind, Utf8Bytes::from_string(s));
    Ok(match v {
        BinlogValue::Null => Value::Null,
        BinlogValue::Int(i) => Value::Int8(i),
        BinlogValue::UInt(u) => Value::UInt8(u),
        BinlogValue::Float(f) => Value::Float4(f),
        BinlogValue::Double(f) => Value::Float8(f),
        BinlogValue::Decimal(d) => Value::Numeric(Utf8Bytes::from_string(d)),
        BinlogValue::Year(y) => Value::Int8(i64::from(y)),
        BinlogValue::Date { year, month, day } => temporal(TemporalKind::Date, format!("{year:04}-{month:02}-{day:02}")),
        BinlogValue::Time { negative, hours, minutes, seconds, micros } => {
            temporal(TemporalKind::Time, format!("{}{hours:02}:{minutes:02}:{seconds:02}{}", if negative { "-" } else { "" }, frac(micros)))
        }
        BinlogValue::DateTime { year, month, day, hour, minute, second, micros } => {
            temporal(TemporalKind::Timestamp, format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}{}", frac(micros)))
        }
        BinlogValue::Timestamp { seconds, micros } => temporal(TemporalKind::TimestampTz, utc_datetime(seconds, micros)),
        BinlogValue::Bit { bytes, .. } => Value::Bytes(Bytes::from(bytes)),
        BinlogValue::Enum(i) => Value::UInt8(u64::from(i)),
        BinlogValue::Set(m) => Value::UInt8(m),
        BinlogValue::Bytes(b) | BinlogValue::Geometry(b) => Value::Bytes(Bytes::from(b)),
        BinlogValue::Json(text) => {
            let _ = field;
            Value::Json { jsonb: false, text: Utf8Bytes::from_string(text) }
        }
        BinlogValue::TypedJson { text, sql } => Value::TypedJson { text: Utf8Bytes::from_string(text), sql: Utf8Bytes::from_string(sql) },
    })
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC for seconds since the epoch; 0 is MySQL's zero timestamp.
pub(super) fn utc_datetime(seconds: u32, micros: u32) -> String {
    if seconds == 0 && micros == 0 {
        return "0000-00-00 00:00:00".into();
    }
    let days = i64::from(seconds / 86_400);
    let rem = seconds % 86_400;
    let (year, month, day) = crate::calendar::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}{}", rem / 3600, rem % 3600 / 60, rem % 60, frac(micros))
}
