//! The way back, PostgreSQL → MySQL/MariaDB: the inverse of the type map for the rollback window,
//! and the **reversibility guard** that keeps green to what blue can take back.
//!
//! Every green type is blue's type widened at most by a `CHECK` (the type map's range checks and
//! the guard below), so every row the application can write on green has one exact value on blue:
//! the inverse never rounds, pads or cuts. What no `CHECK` can express is named by
//! [`unguarded`] before a cutover with a way back, which then refuses:
//! - a character column (not an `ENUM` or `SET`) in a single-byte set (`latin1`): green's text holds
//!   characters the set has not;
//! - a `JSON` column: green's `jsonb` holds numbers of any precision and documents nested deeper
//!   than MySQL's 100 levels, which blue would round or refuse, and no `CHECK` PostgreSQL can state
//!   tells them apart (jsonpath's `.double()` keeps 15 digits only);
//! - a primary or unique key over a character column whose collation is not binary without
//!   padding (`utf8mb4_0900_ai_ci`, `utf8mb4_general_ci`, even MariaDB's `utf8mb4_bin`, which
//!   ignores trailing spaces): green keeps `'a'`, `'A'` and `'a '` apart, blue would refuse the second
//!   as a duplicate and the stream back would stop.
//!
//! The guard, added to green's column `CHECK` when the table is created:
//!
//! | blue | guard on green | why |
//! | --- | --- | --- |
//! | `DECIMAL(p,s)` | not `NaN` | a constrained `numeric` still holds it |
//! | `DATE` | `0001-01-01 … 9999-12-31` | PostgreSQL holds years to 5874897 and BC |
//! | `DATETIME(p)` | `0001-01-01 … 9999-12-31 23:59:59.999999` | as for `DATE`; `infinity` is out too |
//! | `TIMESTAMP(p)` | `1970-01-01 00:00:01 … 2038-01-19 03:14:07.999999` UTC | MySQL's TIMESTAMP range |
//! | `TIME(p)` | `−838:59:59 … 838:59:59`, no day, month or year part, no digit below blue's precision | an interval holds more; MySQL would round the rest |
//! | `TINYTEXT`, `TEXT`, `MEDIUMTEXT` | `octet_length` ≤ 255, 65,535, 16,777,215 | blue's length in bytes (UTF-8 on both) |
//! | `TINYBLOB`, `BLOB`, `MEDIUMBLOB` | the same | |
//! | `utf8mb3` text | no character beyond U+FFFF | 3-byte UTF-8 |
//! | `ascii` text | no character beyond U+007F | |
//! | `CHAR(n)` | no trailing space | MySQL strips trailing spaces when a CHAR is read |

use super::{BlueType, FROM};
use crate::error::{Error, SchemaRefusal};
use crate::source::compose::{BlueColumn, BlueTable};
use turnout_decoders::schema::{Column, ColumnType, MySqlType, ReplicaIdentity, TableSchema};
use turnout_decoders::value::{TemporalKind, Utf8Bytes};
use turnout_decoders::Value;

/// The guard's conditions for `column` (`{}` is the column), beyond the type map's own range check.
pub(super) fn guard(blue: &BlueType, column: &BlueColumn) -> Vec<String> {
    let (name, args, _) = super::split_type(&column.column_type);
    let mut out = Vec::new();
    match blue {
        // A constrained numeric still holds NaN.
        BlueType::Decimal { .. } => out.push("{} <> 'NaN'".to_owned()),
        BlueType::Date => out.push("{} BETWEEN '0001-01-01' AND '9999-12-31'".to_owned()),
        BlueType::DateTime { .. } => out.push("{} BETWEEN '0001-01-01' AND '9999-12-31 23:59:59.999999'".to_owned()),
        BlueType::Timestamp { .. } => out.push("{} BETWEEN '1970-01-01 00:00:01+00' AND '2038-01-19 03:14:07.999999+00'".to_owned()),
        BlueType::Time => {
            out.push(
                "{} BETWEEN '-838:59:59' AND '838:59:59' AND date_part('year', {}) = 0 AND date_part('month', {}) = 0 AND date_part('day', {}) = 0".to_owned(),
            );
            let fsp = args.first().copied().unwrap_or(0).min(6);
            if fsp < 6 {
                out.push(format!("extract(microseconds FROM {{}})::bigint % {} = 0", 10u64.pow(6 - fsp)));
            }
        }
        BlueType::Char { .. } => out.push("right({}, 1) <> ' '".to_owned()),
        // PostgreSQL's −0 equals 0 but is written back as a decimal literal, which blue stores as 0.
        BlueType::Float { .. } => out.push("{}::text <> '-0'".to_owned()),
        BlueType::Set { members } => out.push(set_order(members)),
        _ => {}
    }
    let bytes = match name.as_str() {
        "tinytext" | "tinyblob" => Some(255),
        "text" | "blob" => Some(65_535),
        "mediumtext" | "mediumblob" => Some(16_777_215),
        _ => None,
    };
    if let Some(n) = bytes {
        out.push(format!("octet_length({{}}) <= {n}"));
    }
    if matches!(blue, BlueType::Text { .. } | BlueType::Char { .. }) {
        match column.charset.as_deref() {
            Some("utf8mb3" | "utf8") => out.push(r"{} !~ '[\U00010000-\U0010FFFF]'".to_owned()),
            Some("ascii") => out.push(r"{} !~ '[^\x01-\x7F]'".to_owned()),
            _ => {}
        }
    }
    out
}

/// The guard of a `SET`: its members in blue's order, each at most once (blue stores a bit mask and
/// prints it so: green's `'z,x'` or `'x,x'` would come back as `'x,z'` and `'x'`).
fn set_order(members: &[String]) -> String {
    let escape = |m: &str| {
        let mut out = String::new();
        for ch in m.chars() {
            if "\\^$.|?*+()[]{}".contains(ch) {
                out.push('\\');
            }
            out.push(ch);
        }
        out.replace('\'', "''")
    };
    let parts: String = members.iter().map(|m| format!("(?:{}(?:,(?=.)|$))?", escape(m))).collect();
    format!("{{}} ~ '^{parts}$'")
}

/// Whether blue compares `column` byte for byte, without padding (`utf8mb4_0900_bin`, MariaDB's
/// `*_nopad_bin`): only then does a key green keeps unique stay unique on blue.
pub(super) fn exact_collation(column: &BlueColumn) -> bool {
    match column.collation.as_deref() {
        None => true,
        Some(c) => c == "binary" || (c.ends_with("_bin") && (c.contains("0900") || c.contains("nopad"))),
    }
}

/// See [`crate::source::compose::Convert::unguarded`].
pub(super) fn unguarded(table: &BlueTable) -> Vec<String> {
    let mut out = Vec::new();
    for c in table.columns.iter().filter(|c| matches!(BlueType::of(table, c), BlueType::Float { .. }) && c.column_type.contains('(')) {
        out.push(format!(
            "{}.{}: {} on blue rounds to its digits, which green's floating point does not keep to; make it FLOAT or DOUBLE on blue, or set \
             cutover.reverse = false",
            table.name, c.name, c.column_type
        ));
    }
    for c in table.columns.iter().filter(|c| matches!(BlueType::of(table, c), BlueType::Json)) {
        out.push(format!(
            "{}.{}: JSON on blue keeps numbers as doubles and 64-bit integers and nests at most 100 deep, and green's jsonb holds \
             numbers of any precision nested deeper (a document written on green could come back rounded, or stop the stream back); \
             set cutover.reverse = false",
            table.name, c.name
        ));
    }
    // An ENUM's or a SET's text is kept to its members by green's CHECK, whatever its set.
    let members = |c: &BlueColumn| matches!(BlueType::of(table, c), BlueType::Enum { .. } | BlueType::Set { .. });
    // `ascii` text is kept to ASCII by the guard.
    for (c, set) in table.columns.iter().filter(|c| !members(c)).filter_map(|c| Some((c, c.encoding.as_deref().filter(|s| !s.ascii())?))) {
        let why = if set.single_byte() {
            format!("green's text holds characters {} has not", set.name)
        } else {
            format!("the stream back writes green's text as UTF-8 and does not encode it in {}", set.name)
        };
        out.push(format!("{}.{}: {} on blue, and {why}; convert the column to utf8mb4 on blue, or set cutover.reverse = false", table.name, c.name, set.name));
    }
    let primary = ("PRIMARY".to_owned(), table.key.clone());
    let unique = table.indexes.iter().filter(|i| i.unique).map(|i| (i.name.clone(), i.columns.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>()));
    for (index, columns) in std::iter::once(primary).chain(unique) {
        for name in columns {
            let Some(c) = table.columns.iter().find(|c| c.name == name) else { continue };
            if c.charset.is_some() && !exact_collation(c) && !matches!(BlueType::of(table, c), BlueType::Enum { .. } | BlueType::Set { .. }) {
                out.push(format!(
                    "{}: key {index} compares {} by {} on blue (case, accents or trailing spaces ignored), so two rows green keeps apart \
                     could be one on blue; give the column a binary collation without padding (utf8mb4_0900_bin, utf8mb4_nopad_bin) on blue, \
                     or set cutover.reverse = false",
                    table.name,
                    c.name,
                    c.collation.as_deref().unwrap_or("its collation")
                ));
            }
        }
    }
    out
}

/// MySQL's `enum_field_types` for blue's type, as the binlog would describe the column.
fn mysql_type(blue: &BlueType) -> MySqlType {
    let ty = |code: u8, unsigned: bool| MySqlType { code, meta: 0, unsigned, charset: None, members: Vec::new() };
    // Any collation of a character set: the sink only asks whether a column is collated.
    let text = |code: u8| MySqlType { charset: Some(45), ..ty(code, false) };
    match blue {
        BlueType::Int { bytes: 1, unsigned } => ty(1, *unsigned),
        BlueType::Int { bytes: 2, unsigned } => ty(2, *unsigned),
        BlueType::Int { bytes: 3, unsigned } => ty(9, *unsigned),
        BlueType::Int { bytes: 4, unsigned } => ty(3, *unsigned),
        BlueType::Int { unsigned, .. } => ty(8, *unsigned),
        BlueType::Counter => ty(8, true),
        BlueType::Decimal { unsigned, .. } => ty(246, *unsigned),
        BlueType::Float { double: false, unsigned } => MySqlType { meta: 4, ..ty(4, *unsigned) },
        BlueType::Float { double: true, unsigned } => MySqlType { meta: 8, ..ty(5, *unsigned) },
        BlueType::Date => ty(10, false),
        BlueType::DateTime { .. } => ty(18, false),
        BlueType::Timestamp { .. } => ty(17, false),
        BlueType::Time => ty(19, false),
        BlueType::Year => ty(13, false),
        BlueType::Text { chars: Some(_), .. } => text(15),
        BlueType::Text { chars: None, .. } => text(252),
        BlueType::Char { .. } => text(254),
        BlueType::Bytes { fixed: true, .. } => ty(254, false),
        BlueType::Bytes { length: Some(_), .. } => ty(15, false),
        BlueType::Bytes { .. } => ty(252, false),
        BlueType::Enum { members } => MySqlType { members: members.clone(), ..text(247) },
        BlueType::Set { members } => MySqlType { members: members.clone(), ..text(248) },
        BlueType::Point { .. } => ty(255, false),
        BlueType::Json => ty(245, false),
        BlueType::Bit { bits } => MySqlType { meta: u16::try_from(((bits / 8) << 8) | (bits % 8)).unwrap_or(0), ..ty(16, false) },
        BlueType::Other(_) => ty(0, false),
    }
}

/// See [`crate::source::compose::Convert::back_schema`].
pub(super) fn schema(table: &BlueTable) -> TableSchema {
    let keyless = table.key.is_empty();
    let columns = table
        .columns
        .iter()
        .map(|c| Column { name: c.name.clone(), ty: ColumnType::MySql(mysql_type(&BlueType::of(table, c))), is_key: keyless || table.key.contains(&c.name) })
        .collect();
    let replica_identity = if keyless { ReplicaIdentity::Full } else { ReplicaIdentity::Default };
    // Green checked its foreign keys at the end of each statement; blue would check row by row, in
    // green's order, and refuse a statement that is valid as a whole (a tree deleted parent first).
    TableSchema { relation_id: 0, name: table.name.clone(), replica_identity, columns, foreign_key_checks: false }
}

/// One value of green's `column` as blue holds it, as blue's own binlog would carry it; refused
/// naming the row and column when it has no exact value on blue.
pub(super) fn value(table: &BlueTable, column: &BlueColumn, value: Value, key: &str) -> Result<Value, Error> {
    let blue = BlueType::of(table, column);
    let refuse = |value: &Value, why: &'static str| -> Error {
        SchemaRefusal::NotExact {
            at: format!("{}.{} ({key}) on green", table.name, column.name),
            value: super::shown(value),
            to: FROM,
            green_type: column.column_type.clone(),
            fix: why,
        }
        .into()
    };
    let unguarded = "green's guard for this column is missing (dropped, or the table predates it): a write on green went beyond what blue holds";
    let integer = |v: &Value| -> Option<i128> {
        match v {
            Value::Int2(n) => Some(i128::from(*n)),
            Value::Int4(n) => Some(i128::from(*n)),
            Value::Int8(n) => Some(i128::from(*n)),
            Value::Numeric(t) => t.as_str().parse().ok(),
            _ => None,
        }
    };
    Ok(match (&blue, value) {
        (_, Value::Null) => Value::Null,
        (_, Value::Unchanged) => Value::Unchanged,
        (BlueType::Int { unsigned: true, .. } | BlueType::Counter, v) => {
            let n = integer(&v).ok_or_else(|| refuse(&v, unguarded))?;
            Value::UInt8(u64::try_from(n).map_err(|_| refuse(&v, unguarded))?)
        }
        (BlueType::Int { .. } | BlueType::Year, v) => {
            let n = integer(&v).ok_or_else(|| refuse(&v, unguarded))?;
            Value::Int8(i64::try_from(n).map_err(|_| refuse(&v, unguarded))?)
        }
        (BlueType::Decimal { .. }, Value::Numeric(t)) => Value::Numeric(t),
        (BlueType::Float { double: false, .. }, v @ Value::Float4(_)) | (BlueType::Float { double: true, .. }, v @ Value::Float8(_)) => v,
        (BlueType::Date, Value::Temporal(TemporalKind::Date, t)) => Value::Temporal(TemporalKind::Date, t),
        (BlueType::DateTime { .. }, Value::Temporal(TemporalKind::Timestamp, t)) => Value::Temporal(TemporalKind::Timestamp, t),
        // Green's session prints UTC (`+00`); blue's sink writes in UTC.
        (BlueType::Timestamp { .. }, Value::Temporal(TemporalKind::TimestampTz, t)) => match t.as_str().strip_suffix("+00") {
            Some(utc) => Value::Temporal(TemporalKind::Timestamp, Utf8Bytes::from_string(utc.to_owned())),
            None => return Err(refuse(&Value::Temporal(TemporalKind::TimestampTz, t), "a time stamp green did not print in UTC: report it")),
        },
        (BlueType::Time, Value::Temporal(TemporalKind::Interval, t)) if t.as_str().bytes().all(|b| b.is_ascii_digit() || matches!(b, b':' | b'.' | b'-')) => {
            Value::Temporal(TemporalKind::Time, t)
        }
        (BlueType::Text { encoding, .. } | BlueType::Char { encoding, .. }, Value::Text(t))
            if encoding.as_deref().is_none_or(super::super::charset::Encoding::ascii) =>
        {
            Value::Bytes(t.as_bytes().clone())
        }
        (BlueType::Bytes { .. }, Value::Bytes(b)) => Value::Bytes(b),
        // pgoutput's text of a type the decoder does not know arrives as `Unknown`.
        (BlueType::Point { .. }, Value::Text(t) | Value::Unknown { text: t, .. }) => {
            super::points::geometry(t.as_str()).ok_or_else(|| refuse(&Value::Text(t.clone()), unguarded))?
        }
        (BlueType::Bit { bits }, Value::Text(t) | Value::Unknown { text: t, .. }) => {
            super::bits::bytes(t.as_str(), *bits).ok_or_else(|| refuse(&Value::Text(t.clone()), unguarded))?
        }
        // Blue parses the document as it parses any JSON text written to it.
        (BlueType::Json, Value::Json { text, .. }) => Value::Json { jsonb: false, text },
        (BlueType::Enum { members }, Value::Text(t)) => match t.as_str() {
            "" => Value::UInt8(0),
            m => members
                .iter()
                .position(|x| x == m)
                .and_then(|i| u64::try_from(i + 1).ok())
                .map(Value::UInt8)
                .ok_or_else(|| refuse(&Value::Text(t.clone()), unguarded))?,
        },
        (BlueType::Set { members }, Value::Text(t)) => {
            set_mask(members, t.as_str()).map(Value::UInt8).ok_or_else(|| refuse(&Value::Text(t.clone()), unguarded))?
        }
        (_, other) => return Err(refuse(&other, unguarded)),
    })
}

/// The bit mask of a `SET`'s text (members comma-separated); `None` for a part that is no member.
fn set_mask(members: &[String], text: &str) -> Option<u64> {
    if text.is_empty() {
        return Some(0);
    }
    text.split(',').try_fold(0u64, |mask, part| {
        let i = members.iter().position(|m| m == part)?;
        Some(mask | 1u64.checked_shl(u32::try_from(i).ok()?)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::TableName;

    fn table(columns: Vec<BlueColumn>, key: &str) -> BlueTable {
        BlueTable {
            name: TableName { schema: "app".into(), name: "t".into() },
            columns,
            key: vec![key.into()],
            heartbeat: false,
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            next_auto_increment: None,
        }
    }

    fn column(name: &str, ty: &str, charset: Option<&str>, collation: Option<&str>) -> BlueColumn {
        let encoding = (charset == Some("latin1")).then(|| std::sync::Arc::new(crate::source::compose::charset::tests::latin1()));
        BlueColumn { charset: charset.map(Into::into), encoding, collation: collation.map(Into::into), nullable: true, ..BlueColumn::own(name, ty) }
    }

    #[test]
    fn every_value_green_takes_goes_back_as_blue_holds_it() {
        let t = table(
            vec![
                column("id", "bigint unsigned", None, None),
                column("u", "int unsigned", None, None),
                column("ts", "timestamp(3)", None, None),
                column("e", "enum('a','b')", Some("utf8mb4"), Some("utf8mb4_0900_ai_ci")),
                column("s", "set('x','y','z')", Some("utf8mb4"), Some("utf8mb4_0900_ai_ci")),
                column("tm", "time", None, None),
            ],
            "id",
        );
        let v = |i: usize, v: Value| value(&t, &t.columns[i], v, "id = 1").expect("converts");
        assert_eq!(v(0, Value::Int8(7)), Value::UInt8(7));
        assert_eq!(v(1, Value::Int8(4_294_967_295)), Value::UInt8(4_294_967_295));
        assert_eq!(
            v(2, Value::Temporal(TemporalKind::TimestampTz, "2024-02-29 10:00:00.125+00".into())),
            Value::Temporal(TemporalKind::Timestamp, "2024-02-29 10:00:00.125".into())
        );
        assert_eq!(v(3, Value::Text("b".into())), Value::UInt8(2));
        assert_eq!(v(3, Value::Text("".into())), Value::UInt8(0), "blue's error value");
        assert_eq!(v(4, Value::Text("x,z".into())), Value::UInt8(0b101));
        assert_eq!(v(5, Value::Temporal(TemporalKind::Interval, "-838:59:59".into())), Value::Temporal(TemporalKind::Time, "-838:59:59".into()));
        let refused = |i: usize, v: Value| value(&t, &t.columns[i], v, "id = 1").expect_err("refused").to_string();
        assert!(refused(1, Value::Int8(-1)).contains("app.t.u (id = 1)"), "a negative value into an unsigned column");
        assert!(refused(3, Value::Text("c".into())).contains("guard"));
        assert!(refused(5, Value::Temporal(TemporalKind::Interval, "1 day 02:00:00".into())).contains("guard"));
    }

    #[test]
    fn keys_compared_by_a_collation_and_latin1_text_are_named_as_unguarded() {
        let key = |collation: &str| table(vec![column("code", "varchar(10)", Some("utf8mb4"), Some(collation))], "code");
        assert_eq!(unguarded(&key("utf8mb4_0900_ai_ci")).len(), 1);
        assert_eq!(unguarded(&key("utf8mb4_bin")).len(), 1, "MariaDB's and MySQL 5.7's utf8mb4_bin pads");
        assert!(unguarded(&key("utf8mb4_0900_bin")).is_empty());
        assert!(unguarded(&key("utf8mb4_nopad_bin")).is_empty());
        let latin1 = table(vec![column("id", "int", None, None), column("name", "text", Some("latin1"), Some("latin1_swedish_ci"))], "id");
        assert!(unguarded(&latin1)[0].contains("app.t.name: latin1"));
        let utf16 = crate::source::compose::charset::Encoding::unicode("utf16", vec![54]).map(std::sync::Arc::new);
        let wide = table(vec![column("id", "int", None, None), BlueColumn { encoding: utf16, ..column("name", "text", Some("utf16"), None) }], "id");
        assert!(unguarded(&wide)[0].contains("app.t.name: utf16 on blue, and the stream back writes green's text as UTF-8"), "{:?}", unguarded(&wide));
        // An ENUM in latin1 is kept to its members on green: nothing to name.
        let rating = table(vec![column("id", "int", None, None), column("rating", "enum('g','pg')", Some("latin1"), Some("latin1_swedish_ci"))], "id");
        assert!(unguarded(&rating).is_empty(), "{:?}", unguarded(&rating));
    }

    #[test]
    fn the_guard_keeps_green_to_blue_s_ranges() {
        let t = table(vec![column("tm", "time(2)", None, None), column("b", "text", Some("utf8mb3"), None)], "tm");
        let time = guard(&BlueType::of(&t, &t.columns[0]), &t.columns[0]);
        assert!(time.iter().any(|g| g.contains("% 10000 = 0")), "{time:?}");
        let text = guard(&BlueType::of(&t, &t.columns[1]), &t.columns[1]);
        assert!(text.contains(&"octet_length({}) <= 65535".to_owned()) && text.iter().any(|g| g.contains("U00010000")), "{text:?}");
    }
}
