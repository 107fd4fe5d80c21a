//! Values as MySQL/MariaDB SQL literals — the one place a replicated value becomes SQL text.
//!
//! Rules, each exact: integers and decimals as their digits (DECIMAL text is the source's own, all
//! scale digits); floats in Rust's shortest round-trip form (a FLOAT column rounds the parsed double
//! back to the same `f32`); dates and times as quoted ISO text (zero dates included); ENUM and SET as
//! their index and bit mask, which select members exactly; every string, blob, BIT and geometry value
//! as a hex literal `X'…'` — a binary string, which MySQL stores byte for byte in any character set,
//! so no transcoding ever happens; MySQL's binary JSON as `CAST(CONVERT(X'…' USING utf8mb4) AS JSON)`.
//! A value that cannot occur in MySQL (NaN, ±Infinity, a PostgreSQL-only type) is an error.

use std::fmt::Write;
use turnout_decoders::schema::MySqlType;
use turnout_decoders::Value;

/// MySQL `FLOAT` (4-byte): equality against it must compare in single precision.
pub const FLOAT: u8 = 4;

/// MySQL `BIT(n)`.
const BIT: u8 = 16;
/// MySQL `ENUM`.
pub const ENUM: u8 = 247;

/// Whether `v` is an ENUM column's error value: index 0, the empty string a session that is not
/// strict stores for a value outside the list (`'xyz'` into `ENUM('abc','def')`). It is legal data on
/// blue, but a strict session (turnout's) may not assign it: the statement that writes it runs with
/// strict mode off for that statement only ([`relaxed`]) and must warn once per such value.
pub fn enum_error(ty: &MySqlType, v: &Value) -> bool {
    ty.code == ENUM && matches!(v, Value::UInt8(0) | Value::Int8(0) | Value::Int4(0) | Value::Int2(0))
}

/// The sink's `sql_mode` without its strict bit: what a statement writing an ENUM error value runs
/// with.
const RELAXED_MODE: &str = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";

/// `statement` (an `INSERT`, `REPLACE` or `UPDATE`) run with strict mode off for itself alone:
/// MariaDB's `SET STATEMENT sql_mode = … FOR`, Oracle MySQL's `SET_VAR` hint after its first word.
/// The session's own mode is never changed, so nothing else can be written non-strictly.
pub fn relaxed(statement: &str, mariadb: bool) -> String {
    if mariadb {
        return format!("SET STATEMENT sql_mode = '{RELAXED_MODE}' FOR {statement}");
    }
    match statement.split_once(' ') {
        Some((verb, rest)) => format!("{verb} /*+ SET_VAR(sql_mode = '{RELAXED_MODE}') */ {rest}"),
        None => statement.to_owned(),
    }
}
/// MySQL 9 VECTOR.
const VECTOR: u8 = 242;
/// MySQL's JSON (MariaDB's is LONGTEXT).
pub const JSON: u8 = 245;

fn hex(out: &mut String, bytes: &[u8]) {
    out.push_str("X'");
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
    out.push('\'');
}

/// `text` as a JSON document: `CAST(CONVERT(X'…' USING utf8mb4) AS JSON)`.
fn json_from_text(out: &mut String, text: &[u8]) {
    out.push_str("CAST(CONVERT(");
    hex(out, text);
    out.push_str(" USING utf8mb4) AS JSON)");
}

/// `ty` as JSON: a text column of a MariaDB side written into Oracle MySQL's JSON column.
pub fn as_json(ty: &MySqlType) -> MySqlType {
    MySqlType { code: JSON, charset: None, ..ty.clone() }
}

fn digits_only(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
}

/// `ty` as a green whose JSON is text takes its values: on MariaDB (JSON is LONGTEXT with a
/// `json_valid` check), a MySQL JSON column's document is written and compared as its exact text,
/// never parsed again — green then holds blue's text byte for byte.
pub fn for_green(ty: &MySqlType, json_is_text: bool) -> std::borrow::Cow<'_, MySqlType> {
    if json_is_text && ty.code == JSON {
        // LONGTEXT in utf8mb4_bin, as MariaDB declares its JSON.
        return std::borrow::Cow::Owned(MySqlType { code: 252, charset: Some(46), ..ty.clone() });
    }
    std::borrow::Cow::Borrowed(ty)
}

fn temporal_text(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b' '))
}

/// Appends `v` as a literal for a column of type `ty`; the error says why it cannot be written.
pub fn push(out: &mut String, ty: &MySqlType, v: &Value) -> Result<(), String> {
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Bool(b) => out.push_str(if *b { "1" } else { "0" }),
        Value::Int2(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Int4(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Int8(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt8(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Oid(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float4(f) if f.is_finite() => {
            // The single-precision value exactly, as a double: the server reads the literal as a
            // double, and f32's shortest form can round past FLT_MAX (3.4028235e38 > 3.40282347e38).
            let _ = write!(out, "{:?}", f64::from(*f));
        }
        Value::Float8(f) if f.is_finite() => {
            let _ = write!(out, "{f:?}");
        }
        Value::Float4(_) | Value::Float8(_) => return Err("NaN and infinities do not exist in MySQL".into()),
        Value::Numeric(t) if digits_only(t.as_str()) => out.push_str(t.as_str()),
        Value::Numeric(t) => return Err(format!("'{}' is not a MySQL decimal", t.as_str())),
        Value::Temporal(_, t) if temporal_text(t.as_str()) => {
            out.push('\'');
            out.push_str(t.as_str());
            out.push('\'');
        }
        Value::Temporal(_, t) => return Err(format!("'{}' is not a MySQL date or time", t.as_str())),
        // A BIT value as its number: a binary string compared with a BIT column is read as a
        // DECIMAL in strict mode ("Truncated incorrect DECIMAL value").
        Value::Bytes(b) if ty.code == BIT && b.len() <= 8 => {
            let n = b.iter().fold(0u64, |n, byte| (n << 8) | u64::from(*byte));
            let _ = write!(out, "{n}");
        }
        // Text into Oracle MySQL's JSON (from a MariaDB side, whose JSON is text): parsed there, as
        // the application's own text would be; a binary string would be refused.
        Value::Bytes(b) if ty.code == JSON => {
            super::json_text::exact_in_mysql(b)?;
            json_from_text(out, b);
        }
        Value::Text(t) if ty.code == JSON => {
            super::json_text::exact_in_mysql(t.as_bytes())?;
            json_from_text(out, t.as_bytes());
        }
        Value::Bytes(b) => hex(out, b),
        Value::Text(t) => hex(out, t.as_bytes()),
        Value::Json { text, .. } if ty.code == JSON => json_from_text(out, text.as_bytes()),
        // Built by its SQL, which keeps every scalar's type (decoded and checked by the decoder).
        Value::TypedJson { sql, .. } if ty.code == JSON => out.push_str(sql.as_str()),
        Value::TypedJson { .. } => {
            return Err("the JSON document holds typed DECIMAL, DATE, TIME or DATETIME scalars, and green keeps JSON as text (MariaDB), \
                        which would make them plain numbers and strings; store them on blue as plain JSON numbers or strings"
                .into())
        }
        Value::Json { text, .. } => hex(out, text.as_bytes()),
        Value::Unchanged => return Err("the source did not send this column (MySQL needs binlog_row_image = FULL)".into()),
        Value::Uuid(_) | Value::Array { .. } | Value::Unknown { .. } | Value::Binary { .. } => {
            return Err("a PostgreSQL value cannot be written to MySQL".into())
        }
    }
    Ok(())
}

/// Whether `ty` is a character string (CHAR, VARCHAR, TEXT with a character set): compared under
/// its collation, where `'foo'`, `'FOO'` and `'foo '` can be equal.
fn collated(ty: &MySqlType) -> bool {
    ty.charset.is_some() && matches!(ty.code, 15 | 253 | 254 | 252)
}

/// `col = lit` for a key comparison, or `col <=> lit` when `whole_row` (a row of a table without a
/// key, found by every column). A FLOAT column is compared with the literal rounded to single
/// precision, as the column holds it. A whole-row match compares character columns **byte for byte**
/// (`CAST(col AS BINARY)`): under the column's collation `'foo'` would match `'Foo'` or `'foo '`, and
/// green would delete or change a different row than blue did. A key needs no such care: the key's
/// own collation makes at most one row match.
pub fn push_equals(out: &mut String, column: &str, ty: &MySqlType, v: &Value, whole_row: bool) -> Result<(), String> {
    // MySQL's JSON compares by value (`{"a": 1}` equals `{"a": 1.0}`): a whole-row match compares its
    // text instead, the literal's normalised the same way.
    if whole_row && ty.code == JSON && !matches!(v, Value::Null) {
        out.push_str("CAST(");
        out.push_str(column);
        out.push_str(" AS BINARY) <=> CAST(");
        push(out, ty, v)?;
        out.push_str(" AS BINARY)");
        return Ok(());
    }
    // MySQL's VECTOR takes no comparison at all ("Incorrect arguments to <=>"): its bytes do.
    if (whole_row && collated(ty) && matches!(v, Value::Text(_) | Value::Bytes(_) | Value::Json { .. })) || ty.code == VECTOR {
        out.push_str("CAST(");
        out.push_str(column);
        out.push_str(" AS BINARY)");
    } else {
        out.push_str(column);
    }
    out.push_str(if whole_row { " <=> " } else { " = " });
    if ty.code == FLOAT && !matches!(v, Value::Null) {
        out.push_str("CAST(");
        push(out, ty, v)?;
        out.push_str(" AS FLOAT)");
    } else {
        push(out, ty, v)?;
    }
    Ok(())
}

/// Quotes an identifier with backticks.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::value::TemporalKind;

    fn lit(v: Value) -> String {
        let mut s = String::new();
        push(&mut s, &MySqlType::default(), &v).expect("literal");
        s
    }

    #[test]
    fn every_kind_becomes_an_exact_literal() {
        assert_eq!(lit(Value::UInt8(u64::MAX)), "18446744073709551615");
        assert_eq!(lit(Value::Int8(i64::MIN)), "-9223372036854775808");
        assert_eq!(lit(Value::Int8(0)), "0", "YEAR 0 as the number, never '0' (which is 2000)");
        assert_eq!(lit(Value::Float8(-2.25e-300)), "-2.25e-300");
        assert_eq!(lit(Value::Float4(0.1)), "0.10000000149011612", "the f32 exactly");
        assert_eq!(lit(Value::Float4(-f32::MAX)), "-3.4028234663852886e38", "not past FLT_MAX");
        assert_eq!(lit(Value::Float8(1e308)), "1e308");
        assert_eq!(lit(Value::Numeric("-12345678.91".into())), "-12345678.91");
        assert_eq!(lit(Value::Temporal(TemporalKind::Date, "0000-00-00".into())), "'0000-00-00'");
        assert_eq!(lit(Value::Temporal(TemporalKind::Time, "-838:59:59.000001".into())), "'-838:59:59.000001'");
        assert_eq!(lit(Value::Bytes(bytes::Bytes::from_static(b"caf\xe9"))), "X'636166E9'");
        assert_eq!(lit(Value::Bytes(bytes::Bytes::new())), "X''");
        assert_eq!(lit(Value::Null), "NULL");
        let json = MySqlType { code: 245, ..MySqlType::default() };
        let mut s = String::new();
        push(&mut s, &json, &Value::Json { jsonb: false, text: "[1]".into() }).expect("json");
        assert_eq!(s, "CAST(CONVERT(X'5B315D' USING utf8mb4) AS JSON)");
        // A MariaDB side's JSON arrives as text; into MySQL's JSON it is parsed, never a binary string
        // (which MySQL refuses: "Cannot create a JSON value from a string with CHARACTER SET 'binary'").
        let longtext = MySqlType { code: 252, charset: Some(46), ..MySqlType::default() };
        let mut s = String::new();
        push(&mut s, &as_json(&longtext), &Value::Bytes(bytes::Bytes::from_static(b"[1]"))).expect("text into json");
        assert_eq!(s, "CAST(CONVERT(X'5B315D' USING utf8mb4) AS JSON)");
        // A green whose JSON is text (MariaDB) takes blue's text as it is, and finds a row by it
        // byte for byte.
        let text = for_green(&json, true);
        let mut s = String::new();
        push(&mut s, &text, &Value::Json { jsonb: false, text: "[1]".into() }).expect("json as text");
        assert_eq!(s, "X'5B315D'");
        let mut s = String::new();
        push_equals(&mut s, "`j`", &text, &Value::Json { jsonb: false, text: "[1]".into() }, true).expect("json as text");
        assert_eq!(s, "CAST(`j` AS BINARY) <=> X'5B315D'");
        assert_eq!(*for_green(&json, false), json);
    }

    #[test]
    fn bit_values_are_numbers_so_they_compare_with_bit_columns() {
        let bit = MySqlType { code: BIT, meta: 64, ..MySqlType::default() };
        let mut s = String::new();
        push(&mut s, &bit, &Value::Bytes(bytes::Bytes::from_static(&[0xFF; 8]))).expect("bit");
        assert_eq!(s, "18446744073709551615");
        let mut s = String::new();
        push_equals(&mut s, "`b`", &bit, &Value::Bytes(bytes::Bytes::from_static(&[0x10, 0x01])), false).expect("bit");
        assert_eq!(s, "`b` = 4097");
    }

    #[test]
    fn values_mysql_cannot_hold_are_refused() {
        let mut s = String::new();
        let t = MySqlType::default();
        assert!(push(&mut s, &t, &Value::Float8(f64::NAN)).is_err());
        assert!(push(&mut s, &t, &Value::Numeric("1; DROP TABLE t".into())).is_err());
        assert!(push(&mut s, &t, &Value::Temporal(TemporalKind::Date, "2024'".into())).is_err());
        assert!(push(&mut s, &t, &Value::Unchanged).is_err());
    }

    #[test]
    fn float_keys_compare_in_single_precision() {
        let mut s = String::new();
        push_equals(&mut s, "`f`", &MySqlType { code: FLOAT, ..MySqlType::default() }, &Value::Float4(0.1), true).expect("eq");
        assert_eq!(s, "`f` <=> CAST(0.10000000149011612 AS FLOAT)");
        let text = MySqlType { code: 15, charset: Some(45), ..MySqlType::default() };
        let mut s = String::new();
        push_equals(&mut s, "`n`", &text, &Value::Text("foo".into()), true).expect("eq");
        assert_eq!(s, "CAST(`n` AS BINARY) <=> X'666F6F'", "a whole-row match is byte-exact");
        let mut s = String::new();
        push_equals(&mut s, "`n`", &text, &Value::Text("foo".into()), false).expect("eq");
        assert_eq!(s, "`n` = X'666F6F'");
        assert_eq!(ident("a`b"), "`a``b`");
    }
}
