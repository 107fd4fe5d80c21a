//! PostgreSQL values as pgoutput sends them → typed [`Value`]s, chosen by type OID.
//!
//! Text values are exactly what the server's output functions print (the replication connection sets
//! `DateStyle=ISO`, `IntervalStyle=postgres`, `TimeZone=UTC`, `extra_float_digits=3`,
//! `bytea_output=hex` and `client_encoding=UTF8`). Types without a typed form here become
//! [`Value::Unknown`] with their text: never dropped.

use crate::value::{TemporalKind, Utf8Bytes, Value};
use bytes::Bytes;

/// Built-in type OIDs (`pg_type.dat`).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const XID: u32 = 28;
    pub const CID: u32 = 29;
    pub const JSON: u32 = 114;
    pub const POINT: u32 = 600;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// The element type of a built-in array type, if `type_oid` is one this crate decodes.
pub fn array_element_type(type_oid: u32) -> Option<u32> {
    Some(match type_oid {
        1000 => oid::BOOL,
        1001 => oid::BYTEA,
        1002 => oid::CHAR,
        1003 => oid::NAME,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1009 => oid::TEXT,
        1016 => oid::INT8,
        1028 => oid::OID,
        199 => oid::JSON,
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1014 => oid::BPCHAR,
        1015 => oid::VARCHAR,
        1182 => oid::DATE,
        1183 => oid::TIME,
        1115 => oid::TIMESTAMP,
        1185 => oid::TIMESTAMPTZ,
        1187 => oid::INTERVAL,
        1270 => oid::TIMETZ,
        1231 => oid::NUMERIC,
        2951 => oid::UUID,
        3807 => oid::JSONB,
        _ => return None,
    })
}

/// Why a value could not be decoded.
pub type TypeError = String;

/// Decodes a value in text format.
pub fn decode_text(type_oid: u32, raw: Bytes) -> Result<Value, TypeError> {
    let text = Utf8Bytes::try_from_bytes(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    decode_str(type_oid, text)
}

fn decode_str(type_oid: u32, text: Utf8Bytes) -> Result<Value, TypeError> {
    let s = text.as_str();
    let parse_err = |what: &str| format!("'{}' is not a valid {what}", truncate_for_error(s));
    Ok(match type_oid {
        oid::BOOL => match s {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err(parse_err("bool")),
        },
        oid::INT2 => Value::Int2(s.parse().map_err(|_| parse_err("int2"))?),
        oid::INT4 => Value::Int4(s.parse().map_err(|_| parse_err("int4"))?),
        oid::INT8 => Value::Int8(s.parse().map_err(|_| parse_err("int8"))?),
        oid::OID | oid::XID | oid::CID => Value::Oid(s.parse().map_err(|_| parse_err("oid"))?),
        oid::FLOAT4 => Value::Float4(s.parse().map_err(|_| parse_err("float4"))?),
        oid::FLOAT8 => Value::Float8(s.parse().map_err(|_| parse_err("float8"))?),
        oid::NUMERIC => Value::Numeric(text),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR => Value::Text(text),
        oid::BYTEA => Value::Bytes(decode_bytea_hex(s)?),
        oid::JSON => Value::Json { jsonb: false, text },
        oid::JSONB => Value::Json { jsonb: true, text },
        oid::DATE => Value::Temporal(TemporalKind::Date, text),
        oid::TIME => Value::Temporal(TemporalKind::Time, text),
        oid::TIMETZ => Value::Temporal(TemporalKind::TimeTz, text),
        oid::TIMESTAMP => Value::Temporal(TemporalKind::Timestamp, text),
        oid::TIMESTAMPTZ => Value::Temporal(TemporalKind::TimestampTz, text),
        oid::INTERVAL => Value::Temporal(TemporalKind::Interval, text),
        oid::UUID => Value::Uuid(parse_uuid(s).ok_or_else(|| parse_err("uuid"))?),
        other => match array_element_type(other) {
            // Arrays with explicit bounds ("[0:1]={…}") keep their exact text.
            Some(elem) if s.starts_with('{') => Value::Array { element_type: elem, elements: parse_array(s, elem)? },
            _ => Value::Unknown { type_oid, text },
        },
    })
}

/// Decodes a value in binary format (`b`), for the types whose binary form is simple; others are kept
/// as [`Value::Binary`].
pub fn decode_binary(type_oid: u32, raw: Bytes) -> Result<Value, TypeError> {
    let fixed = |n: usize| -> Result<&[u8], TypeError> {
        if raw.len() == n {
            Ok(&raw[..])
        } else {
            Err(format!("binary value of type oid {type_oid} has {} bytes, expected {n}", raw.len()))
        }
    };
    Ok(match type_oid {
        oid::BOOL => Value::Bool(fixed(1)?[0] != 0),
        oid::INT2 => Value::Int2(i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| "int2")?)),
        oid::INT4 => Value::Int4(i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| "int4")?)),
        oid::INT8 => Value::Int8(i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| "int8")?)),
        oid::OID | oid::XID | oid::CID => Value::Oid(u32::from_be_bytes(fixed(4)?.try_into().map_err(|_| "oid")?)),
        oid::FLOAT4 => Value::Float4(f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| "float4")?)),
        oid::FLOAT8 => Value::Float8(f64::from_be_bytes(fixed(8)?.try_into().map_err(|_| "float8")?)),
        oid::UUID => Value::Uuid(fixed(16)?.try_into().map_err(|_| "uuid")?),
        oid::BYTEA => Value::Bytes(raw),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR | oid::JSON => decode_text(type_oid, raw)?,
        oid::JSONB if raw.first() == Some(&1) => decode_text(type_oid, raw.slice(1..))?,
        _ => Value::Binary { type_oid, data: raw },
    })
}

fn truncate_for_error(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `\x` followed by pairs of hex digits.
fn decode_bytea_hex(s: &str) -> Result<Bytes, TypeError> {
    let hex = s.strip_prefix("\\x").ok_or_else(|| "bytea is not in hex format (the connection sets bytea_output=hex)".to_string())?;
    if hex.len() % 2 != 0 {
        return Err("bytea hex has an odd number of digits".into());
    }
    let mut out = Vec::with_capacity(hex.len() / 2);
    for pair in hex.as_bytes().chunks_exact(2) {
        let hi = hex_digit(pair[0]).ok_or("bytea has a non-hex digit")?;
        let lo = hex_digit(pair[1]).ok_or("bytea has a non-hex digit")?;
        out.push((hi << 4) | lo);
    }
    Ok(Bytes::from(out))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (the server's output form).
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    if digits.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

/// Parses an array literal such as `{1,NULL,"a \"q\"",{2,3}}` into element values of `elem`.
pub fn parse_array(s: &str, elem: u32) -> Result<Vec<Value>, TypeError> {
    let mut p = ArrayParser { s: s.as_bytes(), pos: 0, elem, depth: 0 };
    let v = p.array()?;
    if p.pos != p.s.len() {
        return Err(format!("array literal has trailing text at byte {}", p.pos));
    }
    Ok(v)
}

/// Arrays deeper than this are refused (PostgreSQL's own limit, MAXDIM, is 6).
const MAX_ARRAY_DEPTH: usize = 6;

struct ArrayParser<'a> {
    s: &'a [u8],
    pos: usize,
    elem: u32,
    depth: usize,
}

impl ArrayParser<'_> {
    fn err(&self, what: &str) -> TypeError {
        format!("malformed array literal at byte {}: {what}", self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn array(&mut self) -> Result<Vec<Value>, TypeError> {
        if self.peek() != Some(b'{') {
            return Err(self.err("expected '{'"));
        }
        self.depth += 1;
        if self.depth > MAX_ARRAY_DEPTH {
            return Err(self.err("more than 6 dimensions"));
        }
        self.pos += 1;
        let mut out = Vec::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(out);
        }
        loop {
            match self.peek() {
                Some(b'{') => {
                    let inner = self.array()?;
                    out.push(Value::Array { element_type: self.elem, elements: inner });
                }
                Some(b'"') => out.push(self.quoted()?),
                Some(_) => out.push(self.unquoted()?),
                None => return Err(self.err("unterminated")),
            }
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(out);
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn quoted(&mut self) -> Result<Value, TypeError> {
        self.pos += 1;
        let mut buf = Vec::new();
        loop {
            match self.peek() {
                Some(b'\\') => {
                    let b = *self.s.get(self.pos + 1).ok_or_else(|| self.err("dangling backslash"))?;
                    buf.push(b);
                    self.pos += 2;
                }
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b) => {
                    buf.push(b);
                    self.pos += 1;
                }
                None => return Err(self.err("unterminated quoted element")),
            }
        }
        self.element(buf)
    }

    fn unquoted(&mut self) -> Result<Value, TypeError> {
        let start = self.pos;
        let mut buf = Vec::new();
        while let Some(b) = self.peek() {
            match b {
                b',' | b'}' => break,
                b'\\' => {
                    let b = *self.s.get(self.pos + 1).ok_or_else(|| self.err("dangling backslash"))?;
                    buf.push(b);
                    self.pos += 2;
                }
                _ => {
                    buf.push(b);
                    self.pos += 1;
                }
            }
        }
        if self.pos == start {
            return Err(self.err("empty element"));
        }
        if buf.eq_ignore_ascii_case(b"NULL") && !self.s[start..self.pos].contains(&b'\\') {
            return Ok(Value::Null);
        }
        self.element(buf)
    }

    fn element(&self, buf: Vec<u8>) -> Result<Value, TypeError> {
        let text = Utf8Bytes::try_from_bytes(Bytes::from(buf)).map_err(|e| format!("array element is not UTF-8: {e}"))?;
        decode_str(self.elem, text)
    }
}

/// The coordinates of a `point`'s text, `(x,y)`, when both are finite.
pub fn point_coordinates(text: &str) -> Option<(f64, f64)> {
    let (x, y) = text.trim().strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    let (x, y) = (x.trim().parse::<f64>().ok()?, y.trim().parse::<f64>().ok()?);
    (x.is_finite() && y.is_finite()).then_some((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(oid: u32, s: &str) -> Value {
        decode_text(oid, Bytes::copy_from_slice(s.as_bytes())).expect("decodes")
    }

    #[test]
    fn scalars_decode_by_oid() {
        assert_eq!(t(oid::BOOL, "t"), Value::Bool(true));
        assert_eq!(t(oid::INT2, "-32768"), Value::Int2(i16::MIN));
        assert_eq!(t(oid::INT8, "9223372036854775807"), Value::Int8(i64::MAX));
        assert_eq!(t(oid::FLOAT8, "-Infinity"), Value::Float8(f64::NEG_INFINITY));
        assert!(matches!(t(oid::FLOAT4, "NaN"), Value::Float4(f) if f.is_nan()));
        assert_eq!(t(oid::NUMERIC, "NaN"), Value::Numeric("NaN".into()));
        assert_eq!(t(oid::BYTEA, "\\x00ff10"), Value::Bytes(Bytes::from_static(&[0, 0xff, 0x10])));
        assert_eq!(
            t(oid::UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Value::Uuid([0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11])
        );
        assert_eq!(t(16_400, "happy"), Value::Unknown { type_oid: 16_400, text: "happy".into() });
    }

    #[test]
    fn arrays_keep_nulls_quotes_and_nesting() {
        let v = t(1009, r#"{a,NULL,"NULL","with \"quote\"","x,y",{}}"#);
        // An empty inner array is a nested Array value.
        let Value::Array { elements, .. } = v else { panic!("not an array") };
        assert_eq!(elements[0], Value::Text("a".into()));
        assert_eq!(elements[1], Value::Null);
        assert_eq!(elements[2], Value::Text("NULL".into()));
        assert_eq!(elements[3], Value::Text("with \"quote\"".into()));
        assert_eq!(elements[4], Value::Text("x,y".into()));
        let v = t(1007, "{{1,2},{3,NULL}}");
        let Value::Array { elements, .. } = v else { panic!("not an array") };
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[1], Value::Array { element_type: oid::INT4, elements: vec![Value::Int4(3), Value::Null] });
    }

    #[test]
    fn arrays_with_explicit_bounds_keep_their_text() {
        assert_eq!(t(1007, "[0:1]={1,2}"), Value::Unknown { type_oid: 1007, text: "[0:1]={1,2}".into() });
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for (oid, s) in [(oid::INT4, "x"), (oid::BOOL, "yes"), (oid::BYTEA, "\\x0"), (oid::UUID, "zz"), (1007, "{1,"), (1007, "{1}}")] {
            assert!(decode_text(oid, Bytes::copy_from_slice(s.as_bytes())).is_err(), "{oid} {s}");
        }
        assert!(decode_text(oid::TEXT, Bytes::from_static(&[0xff, 0xfe])).is_err());
        let deep = "{".repeat(100) + &"}".repeat(100);
        assert!(decode_text(1007, Bytes::from(deep)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn text_arrays_round_trip_through_the_literal_form(items in proptest::collection::vec(proptest::option::of("[ -~\t\n]{0,12}"), 0..8)) {
            let literal = format!("{{{}}}", items.iter().map(|i| match i {
                None => "NULL".to_string(),
                Some(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
            }).collect::<Vec<_>>().join(","));
            let Value::Array { elements, .. } = t(1009, &literal) else { panic!("not an array") };
            let back: Vec<Option<String>> = elements.into_iter().map(|v| match v {
                Value::Null => None,
                Value::Text(s) => Some(s.as_str().to_owned()),
                other => panic!("unexpected {other:?}"),
            }).collect();
            proptest::prop_assert_eq!(back, items);
        }

        #[test]
        fn arbitrary_text_never_panics(oid in proptest::sample::select(vec![16u32, 17, 20, 21, 23, 700, 701, 1007, 1009, 2950]), s in ".{0,40}") {
            let _ = decode_text(oid, Bytes::from(s));
        }
    }
}
