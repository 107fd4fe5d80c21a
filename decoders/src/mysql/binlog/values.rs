//! One column value of a row image, decoded by its table-map type and metadata into a [`BinlogValue`]
//! (the binary row format of MySQL's `Field::pack`, as libbinlogevents `binary_log_funcs` and
//! mysqlbinlog's `log_event_print_value` read it): little-endian integers, packed NEWDECIMAL, the
//! big-endian MySQL 5.6 temporal formats (TIMESTAMP2, DATETIME2, TIME2) and the old ones, length-prefixed
//! strings, BLOBs and MySQL binary JSON.

use super::column::{ColumnMeta, FieldType};
use super::json;
use super::reader::Reader;
use super::table_map::TableColumn;
use super::BinlogError;
use std::fmt;

/// A decoded column value. Text columns come as [`BinlogValue::Bytes`]: the column's collation (from the
/// table map) decides whether and how they are text.
#[derive(Clone, Debug, PartialEq)]
pub enum BinlogValue {
    /// SQL NULL (a set bit in the row image's null bitmap).
    Null,
    /// A signed integer column (TINYINT … BIGINT; MEDIUMINT sign-extended).
    Int(i64),
    /// An UNSIGNED integer column (per the table map's SIGNEDNESS metadata).
    UInt(u64),
    Float(f32),
    Double(f64),
    /// DECIMAL/NUMERIC, exactly, with all `scale` digits: `-1234.5600`.
    Decimal(String),
    /// YEAR: 0 for the zero year, else 1901–2155.
    Year(u16),
    /// DATE; zero dates (`0000-00-00`) and partial zero dates (`2024-00-00`) are kept as they are.
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// TIME, which spans −838:59:59 … 838:59:59.
    Time {
        negative: bool,
        hours: u16,
        minutes: u8,
        seconds: u8,
        micros: u32,
    },
    /// DATETIME; the zero datetime is kept as it is.
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// TIMESTAMP: seconds since the epoch (UTC); 0 is the zero timestamp.
    Timestamp {
        seconds: u32,
        micros: u32,
    },
    /// BIT(n): `bits` = n, `bytes` big-endian, ⌈n/8⌉ of them.
    Bit {
        bits: u16,
        bytes: Vec<u8>,
    },
    /// ENUM: the 1-based index into the member list; 0 is the empty "error" value.
    Enum(u16),
    /// SET: bit i is member i.
    Set(u64),
    /// CHAR, VARCHAR, BINARY, VARBINARY, BLOB, TEXT (and MariaDB's JSON, a LONGTEXT): the bytes as stored.
    Bytes(Vec<u8>),
    /// MySQL's JSON type, decoded from its binary form into JSON text.
    Json(String),
    /// MySQL's JSON holding typed scalars: its text and the SQL that rebuilds it with their types.
    TypedJson {
        text: String,
        sql: String,
    },
    /// GEOMETRY: 4-byte SRID then WKB.
    Geometry(Vec<u8>),
}

impl fmt::Display for BinlogValue {
    /// A MySQL-like literal, for messages and tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinlogValue::Null => f.write_str("NULL"),
            BinlogValue::Int(v) => write!(f, "{v}"),
            BinlogValue::UInt(v) => write!(f, "{v}"),
            BinlogValue::Float(v) => write!(f, "{v}"),
            BinlogValue::Double(v) => write!(f, "{v}"),
            BinlogValue::Decimal(v) | BinlogValue::Json(v) | BinlogValue::TypedJson { text: v, .. } => f.write_str(v),
            BinlogValue::Year(y) => write!(f, "{y:04}"),
            BinlogValue::Date { year, month, day } => write!(f, "{year:04}-{month:02}-{day:02}"),
            BinlogValue::Time { negative, hours, minutes, seconds, micros } => {
                write!(f, "{}{hours:02}:{minutes:02}:{seconds:02}", if *negative { "-" } else { "" })?;
                frac(f, *micros)
            }
            BinlogValue::DateTime { year, month, day, hour, minute, second, micros } => {
                write!(f, "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")?;
                frac(f, *micros)
            }
            BinlogValue::Timestamp { seconds, micros } => {
                write!(f, "@{seconds}")?;
                frac(f, *micros)
            }
            BinlogValue::Enum(i) => write!(f, "enum#{i}"),
            BinlogValue::Set(m) => write!(f, "set{m:#b}"),
            BinlogValue::Bit { bytes, .. } | BinlogValue::Bytes(bytes) | BinlogValue::Geometry(bytes) => {
                f.write_str("0x")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

fn frac(f: &mut fmt::Formatter<'_>, micros: u32) -> fmt::Result {
    if micros != 0 {
        write!(f, ".{micros:06}")?;
    }
    Ok(())
}

/// Reads one non-NULL value of `column` from a row image.
pub(crate) fn decode_value(r: &mut Reader<'_>, column: &TableColumn) -> Result<BinlogValue, BinlogError> {
    use FieldType::*;
    let unsigned = column.unsigned;
    let int = |r: &mut Reader<'_>, n: usize| -> Result<BinlogValue, BinlogError> {
        let raw = r.uint_le(n, "integer")?;
        Ok(if unsigned { BinlogValue::UInt(raw) } else { BinlogValue::Int(sign_extend(raw, n)) })
    };
    match (column.real_type(), &column.meta) {
        (Tiny, _) => int(r, 1),
        (Short, _) => int(r, 2),
        (Int24, _) => int(r, 3),
        (Long, _) => int(r, 4),
        (LongLong, _) => int(r, 8),
        (Float, _) => Ok(BinlogValue::Float(f32::from_le_bytes(array(r, "float")?))),
        (Double, _) => Ok(BinlogValue::Double(f64::from_le_bytes(array(r, "double")?))),
        (Null, _) => Ok(BinlogValue::Null),
        (Year, _) => {
            let y = r.u8("year")?;
            Ok(BinlogValue::Year(if y == 0 { 0 } else { 1900 + u16::from(y) }))
        }
        (NewDecimal, &ColumnMeta::NewDecimal { precision, scale }) => {
            let at = r.offset();
            let size = decimal_size(precision, scale).map_err(|e| r.error_at(at, e))?;
            let bytes = r.take(size, "decimal")?;
            decode_decimal(bytes, precision, scale).map(BinlogValue::Decimal).map_err(|e| r.error_at(at, e))
        }
        (Date | NewDate, _) => {
            let v = r.uint_le(3, "date")?;
            Ok(BinlogValue::Date { year: low16(v >> 9), month: low8((v >> 5) & 15), day: low8(v & 31) })
        }
        (Time, _) => time_v1(r),
        (Time2, &ColumnMeta::Fsp(fsp)) => time2(r, fsp),
        (DateTime, _) => datetime_v1(r),
        (DateTime2, &ColumnMeta::Fsp(fsp)) => datetime2(r, fsp),
        (Timestamp, _) => Ok(BinlogValue::Timestamp { seconds: r.u32("timestamp")?, micros: 0 }),
        (Timestamp2, &ColumnMeta::Fsp(fsp)) => timestamp2(r, fsp),
        (Bit, &ColumnMeta::Bit { bits, bytes }) => {
            let n = usize::from(bytes) + usize::from(bits > 0);
            let raw = r.take(n, "bit")?.to_vec();
            Ok(BinlogValue::Bit { bits: u16::from(bytes) * 8 + u16::from(bits), bytes: raw })
        }
        (Enum, &ColumnMeta::Enum { pack_length }) => match pack_length {
            1 | 2 => Ok(BinlogValue::Enum(low16(r.uint_le(usize::from(pack_length), "enum")?))),
            n => Err(r.error(format!("ENUM pack length {n}"))),
        },
        (Set, &ColumnMeta::Set { pack_length }) => match pack_length {
            1..=8 => Ok(BinlogValue::Set(r.uint_le(usize::from(pack_length), "set")?)),
            n => Err(r.error(format!("SET pack length {n}"))),
        },
        (String, &ColumnMeta::String { max_length }) | (VarChar | VarString, &ColumnMeta::VarChar { max_length }) => {
            let prefix = if max_length > 255 { 2 } else { 1 };
            Ok(BinlogValue::Bytes(blob(r, prefix)?.to_vec()))
        }
        (Blob | TinyBlob | MediumBlob | LongBlob | Vector, &ColumnMeta::Blob { length_bytes }) => {
            Ok(BinlogValue::Bytes(blob(r, usize::from(length_bytes))?.to_vec()))
        }
        (VarCharCompressed, &ColumnMeta::VarChar { max_length }) => {
            let at = r.offset();
            let stored = blob(r, if max_length > 255 { 2 } else { 1 })?;
            super::compressed::uncompress(stored).map(BinlogValue::Bytes).map_err(|e| r.error_at(at, format!("compressed VARCHAR value: {e}")))
        }
        (BlobCompressed, &ColumnMeta::Blob { length_bytes }) => {
            let at = r.offset();
            let stored = blob(r, usize::from(length_bytes))?;
            super::compressed::uncompress(stored).map(BinlogValue::Bytes).map_err(|e| r.error_at(at, format!("compressed BLOB value: {e}")))
        }
        (Geometry, &ColumnMeta::Blob { length_bytes }) => Ok(BinlogValue::Geometry(blob(r, usize::from(length_bytes))?.to_vec())),
        (Json, &ColumnMeta::Blob { length_bytes }) => {
            let at = r.offset();
            let doc = blob(r, usize::from(length_bytes))?;
            json::decode(doc).map_err(|e| r.error_at(at, format!("binary JSON: {e}")))
        }
        (Decimal, _) => Err(r.error("the pre-5.0 DECIMAL type has no binary row format")),
        (TypedArray, _) => Err(r.error("typed array columns (multi-valued index helpers) cannot be decoded")),
        (t, meta) => Err(r.error(format!("column type {t:?} with metadata {meta:?}"))),
    }
}

/// The pre-5.6 TIME: three bytes, signed, holding hhmmss as a decimal number.
fn time_v1(r: &mut Reader<'_>) -> Result<BinlogValue, BinlogError> {
    let v = sign_extend(r.uint_le(3, "time")?, 3);
    let a = v.unsigned_abs();
    Ok(BinlogValue::Time { negative: v < 0, hours: low16(a / 10000), minutes: low8(a / 100 % 100), seconds: low8(a % 100), micros: 0 })
}

/// The pre-5.6 DATETIME: eight bytes holding YYYYMMDDhhmmss as a decimal number.
fn datetime_v1(r: &mut Reader<'_>) -> Result<BinlogValue, BinlogError> {
    let at = r.offset();
    let v = r.u64("datetime")?;
    let (d, t) = (v / 1_000_000, v % 1_000_000);
    let year = u16::try_from(d / 10000).map_err(|_| r.error_at(at, format!("datetime {v} out of range")))?;
    Ok(BinlogValue::DateTime {
        year,
        month: low8(d / 100 % 100),
        day: low8(d % 100),
        hour: low8(t / 10000),
        minute: low8(t / 100 % 100),
        second: low8(t % 100),
        micros: 0,
    })
}

/// TIMESTAMP(fsp): big-endian seconds, then the fraction in as many bytes as `fsp` needs.
fn timestamp2(r: &mut Reader<'_>, fsp: u8) -> Result<BinlogValue, BinlogError> {
    let seconds = u32::from_be_bytes(array(r, "timestamp")?);
    let micros = match fsp {
        0 => 0,
        1 | 2 => r.uint_be(1, "timestamp fraction")? * 10000,
        3 | 4 => r.uint_be(2, "timestamp fraction")? * 100,
        5 | 6 => r.uint_be(3, "timestamp fraction")?,
        _ => return Err(r.error(format!("fractional precision {fsp}"))),
    };
    Ok(BinlogValue::Timestamp { seconds, micros: low32(micros) })
}

fn array<const N: usize>(r: &mut Reader<'_>, what: &str) -> Result<[u8; N], BinlogError> {
    let mut a = [0u8; N];
    a.copy_from_slice(r.take(N, what)?);
    Ok(a)
}

/// A length prefix of `prefix` bytes (1–4) and that many bytes.
fn blob<'a>(r: &mut Reader<'a>, prefix: usize) -> Result<&'a [u8], BinlogError> {
    if !(1..=4).contains(&prefix) {
        return Err(r.error(format!("length prefix of {prefix} bytes")));
    }
    let at = r.offset();
    let n = r.uint_le(prefix, "length")?;
    let n = r.check_count(n, at, "value length", 1)?;
    r.take(n, "value")
}

/// The low `n` bytes of `raw` as a two's-complement number.
fn sign_extend(raw: u64, n: usize) -> i64 {
    let shift = 64usize.saturating_sub(n * 8).min(63);
    let shift = u32::try_from(shift).unwrap_or(0);
    i64::from_ne_bytes((raw << shift).to_ne_bytes()) >> shift
}

// Narrowing helpers for values already masked or divided into range.
fn low8(v: u64) -> u8 {
    u8::try_from(v & 0xff).unwrap_or(u8::MAX)
}
fn low16(v: u64) -> u16 {
    u16::try_from(v & 0xffff).unwrap_or(u16::MAX)
}
fn low32(v: u64) -> u32 {
    u32::try_from(v & 0xffff_ffff).unwrap_or(u32::MAX)
}

/// A MySQL "packed" time (`TIME_to_longlong_time_packed`): `(h << 12 | m << 6 | s) << 24 | micros`,
/// negated for negative times.
pub(crate) fn time_from_packed(packed: i64) -> BinlogValue {
    let a = packed.unsigned_abs();
    let hms = a >> 24;
    BinlogValue::Time {
        negative: packed < 0,
        hours: low16((hms >> 12) % 1024),
        minutes: low8((hms >> 6) % 64),
        seconds: low8(hms % 64),
        micros: low32(a % (1 << 24)),
    }
}

/// A MySQL packed datetime (`TIME_to_longlong_datetime_packed`): `((year * 13 + month) << 5 | day) << 17 |
/// h << 12 | m << 6 | s`, shifted by 24 with the microseconds below.
pub(crate) fn datetime_from_packed(packed: i64) -> BinlogValue {
    let a = packed.unsigned_abs();
    let ymdhms = a >> 24;
    let ymd = ymdhms >> 17;
    let ym = ymd >> 5;
    let hms = ymdhms % (1 << 17);
    BinlogValue::DateTime {
        year: low16(ym / 13),
        month: low8(ym % 13),
        day: low8(ymd % 32),
        hour: low8(hms >> 12),
        minute: low8((hms >> 6) % 64),
        second: low8(hms % 64),
        micros: low32(a % (1 << 24)),
    }
}

/// TIME2 (`my_time_packed_from_binary`): 3 bytes big-endian offset by 0x800000, then the fraction; negative
/// values store the fraction complemented so the bytes sort.
fn time2(r: &mut Reader<'_>, fsp: u8) -> Result<BinlogValue, BinlogError> {
    const INT_OFS: i64 = 0x80_0000;
    let int = |r: &mut Reader<'_>| -> Result<i64, BinlogError> { Ok(i64::try_from(r.uint_be(3, "time")?).unwrap_or(0) - INT_OFS) };
    let packed = match fsp {
        0 => int(r)? << 24,
        1 | 2 => {
            let (mut i, mut frac) = (int(r)?, i64::try_from(r.uint_be(1, "time fraction")?).unwrap_or(0));
            if i < 0 && frac != 0 {
                i += 1;
                frac -= 0x100;
            }
            (i << 24) + frac * 10000
        }
        3 | 4 => {
            let (mut i, mut frac) = (int(r)?, i64::try_from(r.uint_be(2, "time fraction")?).unwrap_or(0));
            if i < 0 && frac != 0 {
                i += 1;
                frac -= 0x10000;
            }
            (i << 24) + frac * 100
        }
        5 | 6 => i64::try_from(r.uint_be(6, "time")?).unwrap_or(0) - 0x8000_0000_0000,
        _ => return Err(r.error(format!("fractional precision {fsp}"))),
    };
    Ok(time_from_packed(packed))
}

/// DATETIME2 (`my_datetime_packed_from_binary`): 5 bytes big-endian offset by 0x8000000000 (sign bit, 17
/// bits year*13+month, 5 day, 5 hour, 6 minute, 6 second), then the fraction.
fn datetime2(r: &mut Reader<'_>, fsp: u8) -> Result<BinlogValue, BinlogError> {
    let int = i64::try_from(r.uint_be(5, "datetime")?).unwrap_or(0) - 0x80_0000_0000;
    let frac = match fsp {
        0 => 0,
        1 | 2 => sign_extend(r.uint_be(1, "datetime fraction")?, 1) * 10000,
        3 | 4 => sign_extend(r.uint_be(2, "datetime fraction")?, 2) * 100,
        5 | 6 => sign_extend(r.uint_be(3, "datetime fraction")?, 3),
        _ => return Err(r.error(format!("fractional precision {fsp}"))),
    };
    // A DATETIME2 MySQL writes stays far below the overflow; bytes that are not one must not wrap.
    let packed = (int << 24).checked_add(frac).ok_or_else(|| r.error("a DATETIME2 value out of range"))?;
    Ok(datetime_from_packed(packed))
}

/// Bytes for 0–9 leftover decimal digits (`dig2bytes`).
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
const DIGITS_PER_GROUP: u8 = 9;
const POW10: [u32; 10] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000];

/// Bytes of a packed decimal of `precision` digits, `scale` of them after the point (`decimal_bin_size`).
pub(crate) fn decimal_size(precision: u8, scale: u8) -> Result<usize, String> {
    if precision == 0 || scale > precision || precision > 81 {
        return Err(format!("DECIMAL({precision},{scale}) is not a valid precision and scale"));
    }
    let intg = precision - scale;
    let size = |digits: u8| usize::from(digits / DIGITS_PER_GROUP) * 4 + DIG2BYTES[usize::from(digits % DIGITS_PER_GROUP)];
    Ok(size(intg) + size(scale))
}

/// Decodes the packed NEWDECIMAL format (`bin2decimal`): groups of 9 digits in 4 big-endian bytes, a shorter
/// leading integer group and trailing fraction group, the sign bit of the first byte inverted, and every
/// byte complemented for negative numbers. The text has exactly `scale` fraction digits.
pub(crate) fn decode_decimal(bytes: &[u8], precision: u8, scale: u8) -> Result<String, String> {
    let size = decimal_size(precision, scale)?;
    let bytes = bytes.get(..size).ok_or_else(|| format!("decimal needs {size} bytes, {} here", bytes.len()))?;
    let negative = bytes.first().is_some_and(|b| b & 0x80 == 0);
    let mask = if negative { 0xff } else { 0 };
    let mut buf: Vec<u8> = bytes.iter().map(|b| b ^ mask).collect();
    if let Some(b) = buf.first_mut() {
        *b ^= 0x80;
    }
    let intg = precision - scale;
    let mut pos = 0usize;
    let mut group = |digits: u8| -> Result<u32, String> {
        let n = if digits == DIGITS_PER_GROUP { 4 } else { DIG2BYTES[usize::from(digits)] };
        let chunk = buf.get(pos..pos + n).ok_or("decimal is truncated")?;
        pos += n;
        let v = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        if v >= POW10[usize::from(digits)] {
            return Err(format!("decimal group {v} has more than {digits} digits"));
        }
        Ok(v)
    };
    let mut int_part = String::new();
    let lead = intg % DIGITS_PER_GROUP;
    if lead > 0 {
        int_part.push_str(&group(lead)?.to_string());
    }
    for _ in 0..intg / DIGITS_PER_GROUP {
        int_part.push_str(&format!("{:09}", group(DIGITS_PER_GROUP)?));
    }
    let mut frac_part = String::new();
    for _ in 0..scale / DIGITS_PER_GROUP {
        frac_part.push_str(&format!("{:09}", group(DIGITS_PER_GROUP)?));
    }
    let tail = scale % DIGITS_PER_GROUP;
    if tail > 0 {
        frac_part.push_str(&format!("{:0width$}", group(tail)?, width = usize::from(tail)));
    }
    let int_part = int_part.trim_start_matches('0');
    let is_zero = int_part.is_empty() && frac_part.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(usize::from(precision) + 3);
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(if int_part.is_empty() { "0" } else { int_part });
    if scale > 0 {
        out.push('.');
        out.push_str(&frac_part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(field_type: FieldType, meta: ColumnMeta, unsigned: bool) -> TableColumn {
        TableColumn { field_type, meta, nullable: true, name: None, unsigned, collation: None, members: None, geometry_type: None, visible: None }
    }

    fn value(t: FieldType, meta: ColumnMeta, unsigned: bool, bytes: &[u8]) -> Result<BinlogValue, BinlogError> {
        let mut r = Reader::new(bytes, 0, 0x17);
        let v = decode_value(&mut r, &column(t, meta, unsigned))?;
        r.finish("the value")?;
        Ok(v)
    }

    #[test]
    fn integers_are_little_endian_and_sign_follows_the_signedness_metadata() {
        use FieldType::*;
        assert_eq!(value(Tiny, ColumnMeta::None, false, &[0x80]).ok(), Some(BinlogValue::Int(-128)));
        assert_eq!(value(Tiny, ColumnMeta::None, true, &[0xff]).ok(), Some(BinlogValue::UInt(255)));
        assert_eq!(value(Int24, ColumnMeta::None, false, &[0, 0, 0x80]).ok(), Some(BinlogValue::Int(-8_388_608)));
        assert_eq!(value(Int24, ColumnMeta::None, true, &[0xff, 0xff, 0xff]).ok(), Some(BinlogValue::UInt(16_777_215)));
        assert_eq!(value(LongLong, ColumnMeta::None, true, &[0xff; 8]).ok(), Some(BinlogValue::UInt(u64::MAX)));
        assert_eq!(value(LongLong, ColumnMeta::None, false, &[0xff; 8]).ok(), Some(BinlogValue::Int(-1)));
        assert_eq!(value(Year, ColumnMeta::None, false, &[0]).ok(), Some(BinlogValue::Year(0)));
        assert_eq!(value(Year, ColumnMeta::None, false, &[255]).ok(), Some(BinlogValue::Year(2155)));
    }

    fn dec(bytes: &[u8], p: u8, s: u8) -> Option<String> {
        decode_decimal(bytes, p, s).ok()
    }

    #[test]
    fn packed_decimals_decode_exactly() {
        // The example of MySQL's decimal.c: 1234567890.1234 as DECIMAL(14,4).
        let pos = [0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2];
        assert_eq!(dec(&pos, 14, 4).as_deref(), Some("1234567890.1234"));
        let neg: Vec<u8> = pos.iter().map(|b| b ^ 0xff).collect();
        assert_eq!(dec(&neg, 14, 4).as_deref(), Some("-1234567890.1234"));
        // DECIMAL(10,2) -12345678.91: 8 int digits (4 bytes), 2 frac digits (1 byte).
        let mut b = vec![0x80, 0xBC, 0x61, 0x4E, 91];
        b.iter_mut().for_each(|x| *x ^= 0xff);
        assert_eq!(dec(&b, 10, 2).as_deref(), Some("-12345678.91"));
        assert_eq!(dec(&[0x80, 0, 0, 0, 0], 10, 2).as_deref(), Some("0.00"));
        assert_eq!(dec(&[0x80, 0, 0, 0, 1], 10, 2).as_deref(), Some("0.01"));
        assert_eq!(decimal_size(65, 30).ok(), Some(30));
        assert!(dec(&[0x80, 0, 0, 0, 100], 10, 2).is_none(), "a 2-digit group holding 100");
        assert!(dec(&[0x80], 10, 2).is_none());
        assert!(decimal_size(2, 3).is_err());
    }

    #[test]
    fn datetime2_decodes_each_fractional_precision() {
        // 2024-02-29 12:34:56: ym = 2024*13+2 = 26314.
        let ymd: u64 = (26314 << 5) | 29;
        let int = (ymd << 17) | (12 << 12) | (34 << 6) | 56;
        let head = (int + 0x80_0000_0000).to_be_bytes();
        let head = &head[3..];
        let dt = |micros| BinlogValue::DateTime { year: 2024, month: 2, day: 29, hour: 12, minute: 34, second: 56, micros };
        let cases: [(u8, &[u8], u32); 4] = [(0, &[], 0), (2, &[12], 120_000), (4, &[0x04, 0xD2], 123_400), (6, &[0x01, 0xE2, 0x40], 123_456)];
        for (fsp, tail, micros) in cases {
            let bytes = [head, tail].concat();
            assert_eq!(value(FieldType::DateTime2, ColumnMeta::Fsp(fsp), false, &bytes).ok(), Some(dt(micros)), "fsp {fsp}");
        }
        let zero = value(FieldType::DateTime2, ColumnMeta::Fsp(0), false, &[0x80, 0, 0, 0, 0]).ok();
        assert_eq!(zero.map(|v| v.to_string()).as_deref(), Some("0000-00-00 00:00:00"));
        // Found by the binlog fuzz target: the smallest bytes with a negative fraction overflowed the packed form.
        let e = value(FieldType::DateTime2, ColumnMeta::Fsp(5), false, &[0, 0, 0, 0, 0, 0x80, 0, 0]);
        assert!(e.is_err_and(|e| e.to_string().contains("out of range")));
    }

    #[test]
    fn negative_time2_fractions_are_stored_complemented() {
        let t = |fsp: u8, bytes: &[u8]| value(FieldType::Time2, ColumnMeta::Fsp(fsp), false, bytes).ok().map(|v| v.to_string());
        // From the table in my_time_packed_from_binary.
        assert_eq!(t(2, &[0x7f, 0xff, 0xff, 0xff]).as_deref(), Some("-00:00:00.010000"));
        assert_eq!(t(2, &[0x7f, 0xff, 0xff, 0x00]).as_deref(), Some("-00:00:01"));
        assert_eq!(t(2, &[0x7f, 0xff, 0xfe, 0xf6]).as_deref(), Some("-00:00:01.100000"));
        // -00:00:01.5 at fsp 3: int part -2, fraction 0x10000 - 5000.
        assert_eq!(t(3, &[0x7f, 0xff, 0xfe, 0xec, 0x78]).as_deref(), Some("-00:00:01.500000"));
        // -12:34:56.789012 at fsp 6: the 6 bytes are one number offset by 0x800000000000.
        let packed: i64 = (((12 << 12) | (34 << 6) | 56) << 24) + 789_012;
        let stored = u64::try_from(0x8000_0000_0000i64 - packed).unwrap_or(0).to_be_bytes();
        assert_eq!(t(6, &stored[2..]).as_deref(), Some("-12:34:56.789012"));
        assert_eq!(t(0, &[0x80, 0xc8, 0xae]).as_deref(), Some("12:34:46"));
    }

    #[test]
    fn old_temporal_formats_decode() {
        use FieldType::*;
        let date = (2024u64 << 9) | (2 << 5) | 29;
        let b = date.to_le_bytes();
        assert_eq!(value(Date, ColumnMeta::None, false, &b[..3]).ok().map(|v| v.to_string()).as_deref(), Some("2024-02-29"));
        let b = 20_240_229_123_456u64.to_le_bytes();
        let v = value(DateTime, ColumnMeta::None, false, &b).ok().map(|v| v.to_string());
        assert_eq!(v.as_deref(), Some("2024-02-29 12:34:56"));
        let b = (-123_456i32).to_le_bytes();
        assert_eq!(value(Time, ColumnMeta::None, false, &b[..3]).ok().map(|v| v.to_string()).as_deref(), Some("-12:34:56"));
        assert!(value(DateTime, ColumnMeta::None, false, &u64::MAX.to_le_bytes()).is_err());
    }

    #[test]
    fn timestamp2_is_big_endian_seconds_and_a_fraction() {
        let v = value(FieldType::Timestamp2, ColumnMeta::Fsp(3), false, &[0x7f, 0xff, 0xff, 0xff, 0x00, 0x7b]);
        assert_eq!(v.ok(), Some(BinlogValue::Timestamp { seconds: 2_147_483_647, micros: 12_300 }));
    }

    #[test]
    fn strings_have_a_length_prefix_sized_by_the_maximum_length() {
        use FieldType::*;
        let v = value(VarChar, ColumnMeta::VarChar { max_length: 255 }, false, &[2, b'h', b'i']);
        assert_eq!(v.ok(), Some(BinlogValue::Bytes(b"hi".to_vec())));
        let v = value(VarChar, ColumnMeta::VarChar { max_length: 256 }, false, &[2, 0, b'h', b'i']);
        assert_eq!(v.ok(), Some(BinlogValue::Bytes(b"hi".to_vec())));
        let v = value(String, ColumnMeta::String { max_length: 1020 }, false, &[1, 0, b'x']);
        assert_eq!(v.ok(), Some(BinlogValue::Bytes(b"x".to_vec())));
        let v = value(Blob, ColumnMeta::Blob { length_bytes: 3 }, false, &[1, 0, 0, 7]);
        assert_eq!(v.ok(), Some(BinlogValue::Bytes(vec![7])));
    }

    #[test]
    fn a_blob_length_larger_than_the_event_is_an_error() {
        let v = value(FieldType::Blob, ColumnMeta::Blob { length_bytes: 4 }, false, &[0xff, 0xff, 0xff, 0x7f, 1, 2]);
        assert!(matches!(v, Err(BinlogError::Malformed { offset: 0, .. })), "{v:?}");
        assert!(value(FieldType::Blob, ColumnMeta::Blob { length_bytes: 5 }, false, &[0; 8]).is_err());
    }

    #[test]
    fn bits_enums_and_sets_decode() {
        use FieldType::*;
        let v = value(Bit, ColumnMeta::Bit { bits: 2, bytes: 1 }, false, &[0x03, 0xff]);
        assert_eq!(v.ok(), Some(BinlogValue::Bit { bits: 10, bytes: vec![0x03, 0xff] }));
        let v = value(String, ColumnMeta::Enum { pack_length: 2 }, false, &[0x2c, 0x01]);
        assert_eq!(v.ok(), Some(BinlogValue::Enum(300)));
        let v = value(String, ColumnMeta::Set { pack_length: 8 }, false, &[0xff; 8]);
        assert_eq!(v.ok(), Some(BinlogValue::Set(u64::MAX)));
        assert!(value(String, ColumnMeta::Set { pack_length: 9 }, false, &[0; 9]).is_err());
    }

    #[test]
    fn a_mysql_json_column_decodes_its_binary_document_to_text() {
        use super::super::json::tests::J;
        let doc = J::Object(vec![("k".into(), J::Array(vec![J::I16(1), J::Str("v".into())], true))], false).encode();
        let mut bytes = u32::try_from(doc.len()).unwrap_or(0).to_le_bytes().to_vec();
        bytes.extend_from_slice(&doc);
        let v = value(FieldType::Json, ColumnMeta::Blob { length_bytes: 4 }, false, &bytes);
        assert_eq!(v.ok(), Some(BinlogValue::Json(r#"{"k": [1, "v"]}"#.into())));
        bytes[4] = 0x0e;
        assert!(value(FieldType::Json, ColumnMeta::Blob { length_bytes: 4 }, false, &bytes).is_err());
    }

    #[test]
    fn floats_are_little_endian_ieee() {
        let v = value(FieldType::Float, ColumnMeta::Float { pack_length: 4 }, false, &1.5f32.to_le_bytes());
        assert_eq!(v.ok(), Some(BinlogValue::Float(1.5)));
        let v = value(FieldType::Double, ColumnMeta::Float { pack_length: 8 }, false, &(-2.25f64).to_le_bytes());
        assert_eq!(v.ok(), Some(BinlogValue::Double(-2.25)));
    }
}
