//! Character strings in the type map: a `CHAR`'s padding, the character U+0000 PostgreSQL text
//! cannot hold, and a set other than UTF-8 (`latin1`, `cp1251`, `utf16`) decoded as blue itself
//! converts it.

use crate::config::convert::Becomes;
use crate::source::compose::charset::Encoding;
use crate::source::compose::Affected;
use bytes::Bytes;
use turnout_decoders::value::Utf8Bytes;
use turnout_decoders::Value;

/// What every reader of blue sees of a `CHAR` (`PAD_CHAR_TO_FULL_LENGTH` aside): the value without
/// its trailing spaces.
pub(super) fn unpadded(b: Bytes) -> Bytes {
    let end = b.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    b.slice(..end)
}

/// The bytes with their NUL bytes removed when the operator accepts it (`as = "without-nul"`).
pub(super) fn accepted(b: Bytes, accepted: Option<Becomes>) -> Bytes {
    if accepted == Some(Becomes::WithoutNul) && b.contains(&0) {
        Bytes::from(b.iter().copied().filter(|&c| c != 0).collect::<Vec<u8>>())
    } else {
        b
    }
}

/// The note and the affected values of a string column in `encoding` (UTF-8 when `None`); `char`
/// for a `CHAR`, whose padding blue strips on read.
pub(super) fn lossy(encoding: Option<&Encoding>, char: bool) -> (&'static str, Affected) {
    match (encoding.map(Encoding::every_byte), char) {
        (None, false) => ("NUL bytes refused; compared by PostgreSQL's collation", Affected::NulByte),
        (None, true) => ("as blue reads it, trailing spaces stripped; NUL bytes refused; compared by PostgreSQL's collation", Affected::NulByte),
        (Some(true), false) => ("its bytes as blue converts them; NUL bytes refused; compared by PostgreSQL's collation", Affected::NulByte),
        (Some(true), true) => (
            "as blue reads it, trailing spaces stripped, its bytes as blue converts them; NUL bytes refused; compared by PostgreSQL's collation",
            Affected::NulByte,
        ),
        (Some(false), false) => (
            "its bytes as blue converts them; NUL bytes and bytes the set converts to no character of its own refused; compared by \
             PostgreSQL's collation",
            Affected::NulOrUnconverted,
        ),
        (Some(false), true) => (
            "as blue reads it, trailing spaces stripped, its bytes as blue converts them; NUL bytes and bytes the set converts to no \
             character of its own refused; compared by PostgreSQL's collation",
            Affected::NulOrUnconverted,
        ),
    }
}

/// Why a value whose bytes spell no character of their own is refused.
const UNCONVERTED: &str = "bytes the column's character set converts to no character of their own (blue itself reads them as another \
                           character, or as ?); replace them on blue, convert the column to utf8mb4, or leave the table out";

/// A string column's bytes in a Unicode encoding wider than a byte (`utf16`, `ucs2`, `utf32`) as
/// the UTF-8 bytes of the same characters, the set then UTF-8's (`None`), so that a `CHAR`'s padding
/// and U+0000 are found as in UTF-8 (where the byte 0 and the byte 0x20 are part of no other
/// character); any other set's bytes as they are. Refused with the value and why.
pub(super) fn widened(b: Bytes, encoding: Option<&Encoding>) -> Result<(Bytes, Option<&Encoding>), (Value, &'static str)> {
    match encoding {
        Some(set) if !set.single_byte() => match set.decode(&b) {
            Ok(text) => Ok((Bytes::from(text.into_bytes()), None)),
            Err(_) => Err((Value::Bytes(b), UNCONVERTED)),
        },
        other => Ok((b, other)),
    }
}

/// A string column's bytes (UTF-8, or a single-byte set's) as green's text; refused with the value
/// and why.
pub(super) fn text(b: Bytes, encoding: Option<&Encoding>) -> Result<Value, (Value, &'static str)> {
    if b.contains(&0) {
        return Err((Value::Bytes(b), "PostgreSQL text cannot hold the byte 0 (the character U+0000); remove it on blue, or leave the table out"));
    }
    if let Some(set) = encoding {
        return match set.decode(&b) {
            Ok(text) => Ok(Value::Text(Utf8Bytes::from_string(text))),
            Err(_) => Err((Value::Bytes(b), UNCONVERTED)),
        };
    }
    match Utf8Bytes::try_from_bytes(b.clone()) {
        Ok(t) => Ok(Value::Text(t)),
        Err(_) => Err((Value::Bytes(b), "bytes that are not UTF-8 in a UTF-8 column: report it")),
    }
}
