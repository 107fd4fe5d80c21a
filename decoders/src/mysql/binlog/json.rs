//! MySQL's binary JSON (MySQL source `sql-common/json_binary.cc`, "JSON binary format", WL#8132) decoded
//! into JSON text as MySQL prints it (`{"a": 1, "b": [true, null]}`). MariaDB stores JSON as LONGTEXT and
//! never writes this format.
//!
//! A document is a type byte and a value. Objects and arrays come in a small form (16-bit counts and
//! offsets) and a large one (32-bit); small scalars are inlined in the value entries; offsets count from
//! the start of their container. Hostile documents are bounded: nesting deeper than [`MAX_DEPTH`] and text
//! growing past a multiple of the input (shared offsets can make a small document expand exponentially)
//! are errors.

use super::values::{datetime_from_packed, decode_decimal, time_from_packed, BinlogValue};
use std::fmt::Write;

const SMALL_OBJECT: u8 = 0x00;
const LARGE_OBJECT: u8 = 0x01;
const SMALL_ARRAY: u8 = 0x02;
const LARGE_ARRAY: u8 = 0x03;
const LITERAL: u8 = 0x04;
const INT16: u8 = 0x05;
const UINT16: u8 = 0x06;
const INT32: u8 = 0x07;
const UINT32: u8 = 0x08;
const INT64: u8 = 0x09;
const UINT64: u8 = 0x0a;
const DOUBLE: u8 = 0x0b;
const STRING: u8 = 0x0c;
const OPAQUE: u8 = 0x0f;

const LITERAL_NULL: u8 = 0x00;
const LITERAL_TRUE: u8 = 0x01;
const LITERAL_FALSE: u8 = 0x02;

/// Deepest nesting accepted (MySQL refuses documents deeper than 100).
pub const MAX_DEPTH: usize = 100;

/// Decodes a binary JSON document into text. An empty document is JSON `null` (what MySQL writes for a
/// JSON column set to a JSON null in some partial images).
/// A JSON double as MySQL prints it (`my_gcvt` with its widest field, then `.0` where the text would
/// read as an integer): the shortest digits that round-trip, in fixed notation from 1e-15 up to
/// 1e15 and in exponent notation outside (`1e20`, `1e-16`, `-0.00000015`, `100.0`). A MariaDB green
/// keeps this text as it is, so it must be MySQL's own byte for byte.
pub(crate) fn double_text(d: f64) -> String {
    /// `MY_GCVT_MAX_FIELD_WIDTH`: DBL_DIG + 4 + max(5, MAX_DECPT_FOR_F_FORMAT).
    const WIDTH: i32 = 15 + 4 + 15;
    /// `MAX_DECPT_FOR_F_FORMAT` (DBL_DIG).
    const MAX_DECPT: i32 = 15;
    // Shortest round-trip digits and the decimal point's place: 0.d1d2… × 10^decpt. Where two
    // shortest strings are equally near (the double lies exactly halfway), dtoa takes the even last
    // digit and Rust's shortest form the upper one: the exact value rounded half-to-even to as many
    // digits is dtoa's choice whenever it round-trips.
    let shortest = format!("{:e}", d.abs());
    let len = shortest.split('e').next().unwrap_or("").bytes().filter(u8::is_ascii_digit).count();
    let even = format!("{:.*e}", len.saturating_sub(1), d.abs());
    let sci = if even.parse::<f64>().ok() == Some(d.abs()) { even } else { shortest };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let decpt = exp.parse::<i32>().unwrap_or(0) + 1;
    let len = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let width = if d < 0.0 { WIDTH - 1 } else { WIDTH };
    let exp_len = 1 + i32::from(decpt >= 101 || decpt <= -99) + i32::from(decpt >= 11 || decpt <= -9);
    let fixed_len = if decpt <= 0 {
        len - decpt + 2
    } else if decpt < len {
        len + 1
    } else {
        decpt
    };
    let have_space = fixed_len <= width;
    let force_e = decpt <= 0 && width <= 2 - decpt && width >= 3 + exp_len;
    // my_gcvt's choice of the fixed form, with its `(len > 1 || !force_e)` folded into `!force_e`.
    let fixed = (have_space || !(decpt > width || force_e || (decpt < -1 && decpt != -2)))
        && (!have_space || (decpt > -MAX_DECPT && (decpt <= MAX_DECPT || len > decpt)));
    let mut out = String::with_capacity(24);
    if d.is_sign_negative() {
        out.push('-');
    }
    if fixed {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', usize::try_from(-decpt).unwrap_or(0)));
            out.push_str(&digits);
        } else {
            for (i, c) in digits.chars().enumerate() {
                if i32::try_from(i).unwrap_or(i32::MAX) == decpt {
                    out.push('.');
                }
                out.push(c);
            }
            out.extend(std::iter::repeat_n('0', usize::try_from(decpt - len).unwrap_or(0)));
        }
        if !out.contains('.') {
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if len > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push_str(&(decpt - 1).to_string());
    }
    out
}

#[cfg(test)]
pub(crate) fn to_text(doc: &[u8]) -> Result<String, String> {
    print(doc).map(|(text, _)| text)
}

/// A JSON column's value: its text, or for a document holding typed scalars its text and the SQL
/// expression that rebuilds it with their types ([`super::json_typed`]); a typed scalar no expression
/// rebuilds (TIMESTAMP, BLOB, BIT, GEOMETRY) is an error naming it.
pub(crate) fn decode(doc: &[u8]) -> Result<BinlogValue, String> {
    let (text, typed) = print(doc)?;
    if typed.is_none() {
        return Ok(BinlogValue::Json(text));
    }
    let sql = to_tree(doc)?.to_sql().map_err(|e| format!("{e} (`{}`); store it on blue as a plain JSON string", abbreviate(&text)))?;
    Ok(BinlogValue::TypedJson { text, sql })
}

/// The text of a value turnout writes to green; a document holding a typed scalar (MySQL's
/// "opaque" DECIMAL, DATE, TIME, DATETIME or binary value, as `CAST(x AS JSON)` or `JSON_OBJECT('k', x)`
/// of such a column stores) is refused. Its text would be parsed back on green as a DOUBLE or a plain
/// string — `1.50` becoming `1.5`, a large DECIMAL losing digits, a date no longer a date — a difference
/// that the document's text would not even show.
pub(crate) fn to_text_exact(doc: &[u8]) -> Result<String, String> {
    let (text, typed) = print(doc)?;
    match typed {
        None => Ok(text),
        Some(t) => Err(format!(
            "the document holds a typed {} scalar, which green would store as {} (`{}`); store it on blue as a plain JSON \
             number or string (e.g. JSON_SET(doc, path, CAST(value AS CHAR)))",
            opaque_name(t),
            if t == 246 { "a DOUBLE" } else { "a string" },
            abbreviate(&text)
        )),
    }
}

/// The document as a typed tree ([`super::json_typed::Node`]), for a document whose text would lose
/// its scalars' types. Bounded like [`to_text_exact`]: nesting deeper than [`MAX_DEPTH`] and a tree far
/// larger than the document are errors.
pub(crate) fn to_tree(doc: &[u8]) -> Result<super::json_typed::Node, String> {
    let Some((&t, value)) = doc.split_first() else { return Ok(super::json_typed::Node::Null) };
    let mut budget = doc.len().saturating_mul(16).saturating_add(1024);
    tree(t, value, 0, &mut budget)
}

fn tree(t: u8, data: &[u8], depth: usize, budget: &mut usize) -> Result<super::json_typed::Node, String> {
    use super::json_typed::Node;
    // Shared offsets can make a small document expand: each node costs a share of the budget.
    *budget = budget.checked_sub(8).ok_or("the document expands to far more nodes than its size allows")?;
    Ok(match t {
        SMALL_OBJECT | LARGE_OBJECT | SMALL_ARRAY | LARGE_ARRAY => container_tree(t, data, depth, budget)?,
        LITERAL => match *data.first().ok_or("truncated literal")? {
            LITERAL_NULL => Node::Null,
            LITERAL_TRUE => Node::Bool(true),
            LITERAL_FALSE => Node::Bool(false),
            other => return Err(format!("unknown literal 0x{other:02x}")),
        },
        INT16 => Node::Int(i64::from(i16::from_le_bytes(fixed(data)?))),
        UINT16 => Node::UInt(u64::from(u16::from_le_bytes(fixed(data)?))),
        INT32 => Node::Int(i64::from(i32::from_le_bytes(fixed(data)?))),
        UINT32 => Node::UInt(u64::from(u32::from_le_bytes(fixed(data)?))),
        INT64 => Node::Int(i64::from_le_bytes(fixed(data)?)),
        UINT64 => Node::UInt(u64::from_le_bytes(fixed(data)?)),
        DOUBLE => Node::Double(f64::from_le_bytes(fixed(data)?)),
        STRING => {
            let (len, skip) = var_len(data)?;
            Node::Str(String::from_utf8_lossy(data.get(skip..skip.saturating_add(len)).ok_or("truncated string")?).into_owned())
        }
        OPAQUE => {
            let (field_type, v) = opaque_parts(data)?;
            // A TIMESTAMP scalar stays opaque here: no SQL expression rebuilds it with its type.
            let scalar = if field_type == 7 { None } else { opaque_scalar(field_type, v)? };
            match scalar {
                None => Node::Opaque(field_type, v.to_vec()),
                Some(Scalar::Decimal { text, precision, scale }) => Node::Decimal { text, precision, scale },
                Some(Scalar::Date(t)) => Node::Date(t),
                Some(Scalar::DateTime(t)) => Node::DateTime(t),
                Some(Scalar::Time(t)) => Node::Time(t),
            }
        }
        other => return Err(format!("unknown value type 0x{other:02x}")),
    })
}

/// An object or array (type `t`) as a tree, each value within the document's `budget`.
fn container_tree(t: u8, data: &[u8], depth: usize, budget: &mut usize) -> Result<super::json_typed::Node, String> {
    use super::json_typed::Node;
    if depth >= MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH}"));
    }
    let large = matches!(t, LARGE_OBJECT | LARGE_ARRAY);
    let object = matches!(t, SMALL_OBJECT | LARGE_OBJECT);
    let w = if large { 4 } else { 2 };
    let count = to_usize(le(data, 0, w, "element count")?)?;
    let size = to_usize(le(data, w, w, "container size")?)?;
    let data = data.get(..size).ok_or_else(|| format!("container of {size} bytes, {} left", data.len()))?;
    let (key_entry, value_entry, keys_at) = (w + 2, 1 + w, 2 * w);
    let values_at = keys_at.saturating_add(if object { count.saturating_mul(key_entry) } else { 0 });
    let end = values_at.saturating_add(count.saturating_mul(value_entry));
    if end > size {
        return Err(format!("{count} elements do not fit in a container of {size} bytes"));
    }
    let mut keys = Vec::new();
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        if object {
            let at = keys_at + i * key_entry;
            let offset = to_usize(le(data, at, w, "key offset")?)?;
            let len = to_usize(le(data, at + w, 2, "key length")?)?;
            let key = data.get(offset..offset.saturating_add(len)).ok_or("key outside its object")?;
            keys.push(String::from_utf8_lossy(key).into_owned());
        }
        let at = values_at + i * value_entry;
        let vt = *data.get(at).ok_or("truncated value entry")?;
        let v = if inlined(vt, large) {
            data.get(at + 1..at + 1 + w).ok_or("truncated inlined value")?
        } else {
            let offset = to_usize(le(data, at + 1, w, "value offset")?)?;
            if offset < end {
                return Err(format!("value offset {offset} points into the container's header"));
            }
            data.get(offset..).ok_or("value outside its container")?
        };
        values.push(tree(vt, v, depth + 1, budget)?);
    }
    Ok(if object { Node::Object(keys.into_iter().zip(values).collect()) } else { Node::Array(values) })
}

fn opaque_name(field_type: u8) -> &'static str {
    match field_type {
        246 => "DECIMAL",
        10 => "DATE",
        7 | 12 => "DATETIME",
        11 => "TIME",
        _ => "binary",
    }
}

fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// The document's text and the type of the first opaque scalar it holds.
fn print(doc: &[u8]) -> Result<(String, Option<u8>), String> {
    let Some((&t, value)) = doc.split_first() else { return Ok(("null".into(), None)) };
    let mut w = Writer { out: String::new(), budget: doc.len().saturating_mul(16).saturating_add(1024), typed: None };
    w.value(t, value, 0)?;
    Ok((w.out, w.typed))
}

struct Writer {
    out: String,
    budget: usize,
    /// The field type of the first opaque (typed) scalar met.
    typed: Option<u8>,
}

fn le(bytes: &[u8], at: usize, n: usize, what: &str) -> Result<u64, String> {
    let b = bytes.get(at..at.saturating_add(n)).ok_or_else(|| format!("truncated {what}"))?;
    Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn to_usize(v: u64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("offset {v} out of range"))
}

/// Types stored inside a value entry instead of at an offset.
fn inlined(t: u8, large: bool) -> bool {
    match t {
        LITERAL | INT16 | UINT16 => true,
        INT32 | UINT32 => large,
        _ => false,
    }
}

impl Writer {
    fn push(&mut self, s: &str) -> Result<(), String> {
        if self.out.len().saturating_add(s.len()) > self.budget {
            return Err("the document expands to far more text than its size allows".into());
        }
        self.out.push_str(s);
        Ok(())
    }

    fn value(&mut self, t: u8, data: &[u8], depth: usize) -> Result<(), String> {
        match t {
            SMALL_OBJECT | LARGE_OBJECT | SMALL_ARRAY | LARGE_ARRAY => {
                if depth >= MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH}"));
                }
                self.container(data, matches!(t, LARGE_OBJECT | LARGE_ARRAY), matches!(t, SMALL_OBJECT | LARGE_OBJECT), depth)
            }
            LITERAL => self.literal(*data.first().ok_or("truncated literal")?),
            INT16 => self.push(&i16::from_le_bytes(fixed(data)?).to_string()),
            UINT16 => self.push(&u16::from_le_bytes(fixed(data)?).to_string()),
            INT32 => self.push(&i32::from_le_bytes(fixed(data)?).to_string()),
            UINT32 => self.push(&u32::from_le_bytes(fixed(data)?).to_string()),
            INT64 => self.push(&i64::from_le_bytes(fixed(data)?).to_string()),
            UINT64 => self.push(&u64::from_le_bytes(fixed(data)?).to_string()),
            DOUBLE => {
                let d = f64::from_le_bytes(fixed(data)?);
                if !d.is_finite() {
                    return Err(format!("double {d} is not a JSON number"));
                }
                self.push(&double_text(d))
            }
            STRING => {
                let (len, skip) = var_len(data)?;
                let s = data.get(skip..skip.saturating_add(len)).ok_or("truncated string")?;
                self.string(s)
            }
            OPAQUE => self.opaque(data),
            other => Err(format!("unknown value type 0x{other:02x}")),
        }
    }

    fn literal(&mut self, v: u8) -> Result<(), String> {
        match v {
            LITERAL_NULL => self.push("null"),
            LITERAL_TRUE => self.push("true"),
            LITERAL_FALSE => self.push("false"),
            other => Err(format!("unknown literal 0x{other:02x}")),
        }
    }

    /// element count, total size, key entries (objects: offset, u16 length), value entries (type, offset or
    /// inlined value), then keys and values.
    fn container(&mut self, data: &[u8], large: bool, object: bool, depth: usize) -> Result<(), String> {
        let w = if large { 4 } else { 2 };
        let count = to_usize(le(data, 0, w, "element count")?)?;
        let size = to_usize(le(data, w, w, "container size")?)?;
        let data = data.get(..size).ok_or_else(|| format!("container of {size} bytes, {} left", data.len()))?;
        let key_entry = w + 2;
        let value_entry = 1 + w;
        let keys_at = 2 * w;
        let values_at = keys_at.saturating_add(if object { count.saturating_mul(key_entry) } else { 0 });
        let end = values_at.saturating_add(count.saturating_mul(value_entry));
        if end > size {
            return Err(format!("{count} elements do not fit in a container of {size} bytes"));
        }
        self.push(if object { "{" } else { "[" })?;
        for i in 0..count {
            if i > 0 {
                self.push(", ")?;
            }
            if object {
                let at = keys_at + i * key_entry;
                let offset = to_usize(le(data, at, w, "key offset")?)?;
                let len = to_usize(le(data, at + w, 2, "key length")?)?;
                let key = data.get(offset..offset.saturating_add(len)).ok_or("key outside its object")?;
                self.string(key)?;
                self.push(": ")?;
            }
            let at = values_at + i * value_entry;
            let t = *data.get(at).ok_or("truncated value entry")?;
            if inlined(t, large) {
                let v = data.get(at + 1..at + 1 + w).ok_or("truncated inlined value")?;
                self.value(t, v, depth + 1)?;
            } else {
                let offset = to_usize(le(data, at + 1, w, "value offset")?)?;
                if offset < end {
                    return Err(format!("value offset {offset} points into the container's header"));
                }
                let v = data.get(offset..).ok_or("value outside its container")?;
                self.value(t, v, depth + 1)?;
            }
        }
        self.push(if object { "}" } else { "]" })
    }

    /// A JSON string with MySQL's escapes.
    fn string(&mut self, bytes: &[u8]) -> Result<(), String> {
        let s = String::from_utf8_lossy(bytes);
        let mut out = String::with_capacity(s.len() + 2);
        escape_into(&mut out, &s);
        self.push(&out)
    }

    /// field type u8, length (variable), data: DECIMAL as a number, temporal types as quoted strings, other
    /// types as `"base64:typeNN:..."` like MySQL.
    fn opaque(&mut self, data: &[u8]) -> Result<(), String> {
        let (field_type, v) = opaque_parts(data)?;
        self.typed.get_or_insert(field_type);
        let text = match opaque_scalar(field_type, v)? {
            Some(Scalar::Decimal { text, .. }) => text,
            Some(Scalar::Date(t) | Scalar::DateTime(t) | Scalar::Time(t)) => format!("\"{t}\""),
            None => format!("\"base64:type{field_type}:{}\"", base64(v)),
        };
        self.push(&text)
    }
}

/// An opaque value's field type and bytes: field type u8, length (variable), data.
fn opaque_parts(data: &[u8]) -> Result<(u8, &[u8]), String> {
    let (&field_type, rest) = data.split_first().ok_or("truncated opaque value")?;
    let (len, skip) = var_len(rest)?;
    Ok((field_type, rest.get(skip..skip.saturating_add(len)).ok_or("truncated opaque value")?))
}

/// An opaque scalar MySQL writes as a number or a date/time string.
enum Scalar {
    Decimal { text: String, precision: u8, scale: u8 },
    Date(String),
    DateTime(String),
    Time(String),
}

/// Decodes an opaque value of `field_type`: DECIMAL, DATE, DATETIME/TIMESTAMP and TIME as their text
/// (`None` for any other type, which MySQL prints as base64).
fn opaque_scalar(field_type: u8, v: &[u8]) -> Result<Option<Scalar>, String> {
    let packed = || -> Result<i64, String> { Ok(i64::from_le_bytes(fixed(v)?)) };
    Ok(Some(match field_type {
        246 => {
            let (&precision, tail) = v.split_first().ok_or("truncated opaque decimal")?;
            let (&scale, digits) = tail.split_first().ok_or("truncated opaque decimal")?;
            Scalar::Decimal { text: decode_decimal(digits, precision, scale)?, precision, scale }
        }
        10 => {
            let BinlogValue::DateTime { year, month, day, .. } = datetime_from_packed(packed()?) else {
                return Err("unreachable: packed date".into());
            };
            Scalar::Date(format!("{year:04}-{month:02}-{day:02}"))
        }
        7 | 12 => {
            let BinlogValue::DateTime { year, month, day, hour, minute, second, micros } = datetime_from_packed(packed()?) else {
                return Err("unreachable: packed datetime".into());
            };
            Scalar::DateTime(format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}"))
        }
        11 => {
            let BinlogValue::Time { negative, hours, minutes, seconds, micros } = time_from_packed(packed()?) else {
                return Err("unreachable: packed time".into());
            };
            Scalar::Time(format!("{}{hours:02}:{minutes:02}:{seconds:02}.{micros:06}", if negative { "-" } else { "" }))
        }
        _ => return Ok(None),
    }))
}

/// Appends `s` as a quoted JSON string with MySQL's escapes (`"`, `\\`, `\b \f \n \r \t`, other control
/// characters as `\u00XX`).
pub(crate) fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn fixed<const N: usize>(data: &[u8]) -> Result<[u8; N], String> {
    let mut a = [0u8; N];
    a.copy_from_slice(data.get(..N).ok_or_else(|| format!("truncated {N}-byte number"))?);
    Ok(a)
}

/// A string or opaque length: 7 bits per byte, least significant first, high bit = more bytes (at most 5).
fn var_len(data: &[u8]) -> Result<(usize, usize), String> {
    let mut len: u64 = 0;
    for i in 0..5 {
        let b = *data.get(i).ok_or("truncated length")?;
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let len = u32::try_from(len).map_err(|_| format!("length {len} exceeds 4 GiB"))?;
            return Ok((to_usize(u64::from(len))?, i + 1));
        }
    }
    Err("length longer than 5 bytes".into())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk.first().copied().unwrap_or(0), chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
                out.push(char::from(ALPHABET[idx]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny encoder for tests: builds documents in the small or large form.
    #[derive(Clone)]
    pub(crate) enum J {
        Null,
        Bool(bool),
        I16(i16),
        U16(u16),
        I32(i32),
        U32(u32),
        I64(i64),
        U64(u64),
        Double(f64),
        Str(String),
        Opaque(u8, Vec<u8>),
        Array(Vec<J>, bool),
        Object(Vec<(String, J)>, bool),
    }

    fn var_len_bytes(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = u8::try_from(n & 0x7f).unwrap_or(0);
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    impl J {
        fn type_byte(&self) -> u8 {
            match self {
                J::Null | J::Bool(_) => LITERAL,
                J::I16(_) => INT16,
                J::U16(_) => UINT16,
                J::I32(_) => INT32,
                J::U32(_) => UINT32,
                J::I64(_) => INT64,
                J::U64(_) => UINT64,
                J::Double(_) => DOUBLE,
                J::Str(_) => STRING,
                J::Opaque(..) => OPAQUE,
                J::Array(_, large) => {
                    if *large {
                        LARGE_ARRAY
                    } else {
                        SMALL_ARRAY
                    }
                }
                J::Object(_, large) => {
                    if *large {
                        LARGE_OBJECT
                    } else {
                        SMALL_OBJECT
                    }
                }
            }
        }

        /// The value's bytes without its type byte.
        fn body(&self) -> Vec<u8> {
            match self {
                J::Null => vec![LITERAL_NULL],
                J::Bool(b) => vec![if *b { LITERAL_TRUE } else { LITERAL_FALSE }],
                J::I16(v) => v.to_le_bytes().to_vec(),
                J::U16(v) => v.to_le_bytes().to_vec(),
                J::I32(v) => v.to_le_bytes().to_vec(),
                J::U32(v) => v.to_le_bytes().to_vec(),
                J::I64(v) => v.to_le_bytes().to_vec(),
                J::U64(v) => v.to_le_bytes().to_vec(),
                J::Double(v) => v.to_le_bytes().to_vec(),
                J::Str(s) => {
                    let mut out = Vec::new();
                    var_len_bytes(s.len(), &mut out);
                    out.extend_from_slice(s.as_bytes());
                    out
                }
                J::Opaque(t, data) => {
                    let mut out = vec![*t];
                    var_len_bytes(data.len(), &mut out);
                    out.extend_from_slice(data);
                    out
                }
                J::Array(items, large) => container(items.iter().map(|v| (None, v)).collect(), *large),
                J::Object(items, large) => container(items.iter().map(|(k, v)| (Some(k.as_str()), v)).collect(), *large),
            }
        }

        pub(crate) fn encode(&self) -> Vec<u8> {
            let mut out = vec![self.type_byte()];
            out.extend_from_slice(&self.body());
            out
        }
    }

    fn put(out: &mut Vec<u8>, v: usize, w: usize) {
        out.extend_from_slice(&v.to_le_bytes()[..w]);
    }

    fn container(items: Vec<(Option<&str>, &J)>, large: bool) -> Vec<u8> {
        let w = if large { 4 } else { 2 };
        let object = items.first().is_some_and(|(k, _)| k.is_some());
        let n = items.len();
        let header = 2 * w + if object { n * (w + 2) } else { 0 } + n * (1 + w);
        let mut tail = Vec::new();
        let mut key_entries = Vec::new();
        for (k, _) in &items {
            if let Some(k) = k {
                put(&mut key_entries, header + tail.len(), w);
                put(&mut key_entries, k.len(), 2);
                tail.extend_from_slice(k.as_bytes());
            }
        }
        let mut value_entries = Vec::new();
        for (_, v) in &items {
            value_entries.push(v.type_byte());
            if inlined(v.type_byte(), large) {
                let mut b = v.body();
                b.resize(w, 0);
                value_entries.extend_from_slice(&b);
            } else {
                put(&mut value_entries, header + tail.len(), w);
                tail.extend_from_slice(&v.body());
            }
        }
        let mut out = Vec::new();
        put(&mut out, n, w);
        put(&mut out, header + tail.len(), w);
        out.extend_from_slice(&key_entries);
        out.extend_from_slice(&value_entries);
        out.extend_from_slice(&tail);
        out
    }

    fn text(j: &J) -> String {
        to_text(&j.encode()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_scalar_type_prints_like_mysql() {
        assert_eq!(text(&J::Null), "null");
        assert_eq!(text(&J::Bool(true)), "true");
        assert_eq!(text(&J::I16(-5)), "-5");
        assert_eq!(text(&J::U16(65535)), "65535");
        assert_eq!(text(&J::I32(i32::MIN)), "-2147483648");
        assert_eq!(text(&J::U32(u32::MAX)), "4294967295");
        assert_eq!(text(&J::I64(i64::MIN)), "-9223372036854775808");
        assert_eq!(text(&J::U64(u64::MAX)), "18446744073709551615");
        assert_eq!(text(&J::Double(2.5)), "2.5");
        // MySQL's own text (checked against MySQL 9.7's CAST(… AS CHAR)): fixed notation from 1e-15
        // to below 1e15 (`.0` where it would read as an integer), exponent notation outside.
        for (d, mysql) in [
            (-1.5e-7, "-0.00000015"),
            (1e300, "1e300"),
            (1e20, "1e20"),
            (1e15, "1e15"),
            (1e14, "100000000000000.0"),
            (123456789012345.6, "123456789012345.6"),
            (1e-15, "0.000000000000001"),
            (1e-16, "1e-16"),
            (1.25e-300, "1.25e-300"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (2.0, "2.0"),
            (-3.5, "-3.5"),
            (f64::MAX, "1.7976931348623157e308"),
            (5e-324, "5e-324"),
            (0.30000000000000004, "0.30000000000000004"),
            // Exactly 21015318875215.3125, halfway: dtoa's even digit.
            (21_015_318_875_215.312, "21015318875215.312"),
        ] {
            assert_eq!(double_text(d), mysql, "{d:e}");
        }
        assert_eq!(text(&J::Str("a\"b\\c\n\u{1}é".into())), r#""a\"b\\c\n\u0001é""#);
        assert_eq!(to_text(&[]).ok().as_deref(), Some("null"));
    }

    #[test]
    fn small_and_large_containers_with_inlined_and_offset_values_decode() {
        for large in [false, true] {
            let doc = J::Object(
                vec![
                    ("a".into(), J::Array(vec![J::I16(1), J::Double(2.5), J::Null, J::Bool(false), J::I32(70000)], large)),
                    ("b".into(), J::Str("x".into())),
                    ("c".into(), J::Object(vec![("d".into(), J::U64(7))], !large)),
                    ("e".into(), J::Array(vec![], large)),
                ],
                large,
            );
            assert_eq!(text(&doc), r#"{"a": [1, 2.5, null, false, 70000], "b": "x", "c": {"d": 7}, "e": []}"#);
        }
    }

    #[test]
    fn a_long_string_has_a_multi_byte_length() {
        let s = "y".repeat(300);
        assert_eq!(text(&J::Array(vec![J::Str(s.clone())], false)), format!("[\"{s}\"]"));
    }

    #[test]
    fn opaque_values_print_as_mysql_prints_them() {
        // DECIMAL(5,2) 123.45: precision, scale, packed digits.
        let dec = J::Opaque(246, vec![5, 2, 0x80, 123, 45]);
        // A packed DATETIME 2024-02-29 12:34:56.000007.
        let ymd: i64 = ((2024 * 13 + 2) << 5) | 29;
        let packed = (((ymd << 17) | (12 << 12) | (34 << 6) | 56) << 24) + 7;
        let dt = J::Opaque(12, packed.to_le_bytes().to_vec());
        let date = J::Opaque(10, ((ymd << 17) << 24).to_le_bytes().to_vec());
        let time = J::Opaque(11, (-((((1i64 << 12) | (2 << 6) | 3) << 24) + 500_000)).to_le_bytes().to_vec());
        let blob = J::Opaque(252, b"hi!?".to_vec());
        let doc = J::Array(vec![dec, dt, date, time, blob], false);
        assert_eq!(text(&doc), r#"[123.45, "2024-02-29 12:34:56.000007", "2024-02-29", "-01:02:03.500000", "base64:type252:aGkhPw=="]"#);
        // Written to green they would change type: refused, naming the first one.
        let err = to_text_exact(&doc.encode()).expect_err("typed scalars refused");
        assert!(err.contains("typed DECIMAL scalar") && err.contains("a DOUBLE"), "{err}");
        let plain = J::Array(vec![J::Str("2024-02-29".into())], false);
        assert_eq!(to_text_exact(&plain.encode()).expect("a plain document"), text(&plain));
    }

    #[test]
    fn hostile_documents_are_errors() {
        // Unknown type, truncated container, an offset into the header, a count too large for the size.
        assert!(to_text(&[0x0e]).is_err());
        assert!(to_text(&[SMALL_ARRAY, 1, 0]).is_err());
        assert!(to_text(&[SMALL_ARRAY, 1, 0, 7, 0, STRING, 1, 0]).is_err());
        assert!(to_text(&[SMALL_ARRAY, 0xff, 0xff, 7, 0, 0, 0, 0]).is_err());
        // Nesting past the limit.
        let mut deep = J::Null;
        for _ in 0..MAX_DEPTH + 1 {
            deep = J::Array(vec![deep], false);
        }
        assert!(to_text(&deep.encode()).is_err());
        // Each array's two elements point at the same child: 2^40 leaves from a few hundred bytes.
        let mut doc: Vec<u8> = vec![SMALL_ARRAY, 0, 0, 4, 0];
        for _ in 0..40 {
            let child = doc.clone();
            let mut body = Vec::new();
            put(&mut body, 2, 2);
            put(&mut body, 10 + child.len() - 1, 2);
            for _ in 0..2 {
                body.push(child[0]);
                put(&mut body, 10, 2);
            }
            body.extend_from_slice(&child[1..]);
            doc = vec![SMALL_ARRAY];
            doc.extend_from_slice(&body);
        }
        assert!(to_text(&doc).is_err());
    }

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
