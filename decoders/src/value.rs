//! Typed column values.
//!
//! Values keep the source's exact text where a lossless typed form would cost precision or range (numeric,
//! temporal types, JSON): the text came from the server's own output function with `DateStyle=ISO`,
//! `IntervalStyle=postgres`, `TimeZone=UTC` and `extra_float_digits=3`, so it round-trips exactly.
//! Text-backed values share the receive buffer (`Bytes`) instead of copying.

use bytes::Bytes;
use std::fmt;

/// Bytes known to be valid UTF-8, sharing the buffer they were received in.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Validates `bytes` as UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }

    /// Copies a string.
    pub fn from_string(s: impl Into<String>) -> Self {
        Utf8Bytes(Bytes::from(s.into()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only constructed from validated UTF-8 (see `try_from_bytes` / `from_string`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

/// Which temporal type a [`Value::Temporal`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemporalKind {
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
}

/// One column value of a row change.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A TOASTed column whose value the source did not send because the change did not touch it
    /// (pgoutput tuple kind `u`). A sink must leave the target's current value in place.
    Unchanged,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    /// An unsigned 64-bit integer (MySQL `BIGINT UNSIGNED` and narrower unsigned types).
    UInt8(u64),
    /// `oid`, `xid`, `cid` and other unsigned 32-bit types.
    Oid(u32),
    Float4(f32),
    Float8(f64),
    /// `numeric` as the source printed it, including `NaN` and `±Infinity`.
    Numeric(Utf8Bytes),
    /// `text`, `varchar`, `bpchar`, `name`, `char`, `citext` …
    Text(Utf8Bytes),
    /// `bytea`, decoded from the server's hex output.
    Bytes(Bytes),
    /// `json` (`jsonb == false`) or `jsonb`, as text.
    Json {
        jsonb: bool,
        text: Utf8Bytes,
    },
    /// An Oracle MySQL JSON document holding typed scalars (DECIMAL, DATE, TIME, DATETIME), which its
    /// text alone would not rebuild: the text as MySQL prints it, and the SQL expression that builds
    /// the same document, every scalar with its type (`mysql::binlog::json_typed`).
    TypedJson {
        text: Utf8Bytes,
        sql: Utf8Bytes,
    },
    /// Dates, times, timestamps and intervals as the source printed them (ISO, UTC).
    Temporal(TemporalKind, Utf8Bytes),
    Uuid([u8; 16]),
    /// An array; elements are values of the element type, nested arrays for more dimensions.
    Array {
        element_type: u32,
        elements: Vec<Value>,
    },
    /// Any other type (enums, domains, ranges, geometric, extension types …) as the source printed it.
    /// Never dropped: a sink can write the text back through the type's input function.
    Unknown {
        type_oid: u32,
        text: Utf8Bytes,
    },
    /// A value sent in binary format (pgoutput tuple kind `b`) of a type this crate does not decode.
    Binary {
        type_oid: u32,
        data: Bytes,
    },
}

impl Value {
    /// True for [`Value::Unchanged`].
    pub fn is_unchanged(&self) -> bool {
        matches!(self, Value::Unchanged)
    }
}
