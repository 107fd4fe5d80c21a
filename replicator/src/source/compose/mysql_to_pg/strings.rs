//! Character strings in the type map: a `CHAR`'s padding, the byte 0 PostgreSQL text cannot hold,
//! and `latin1` decoded as blue itself converts it.

use crate::config::convert::Becomes;
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

/// A string column's bytes (UTF-8, or `latin1`) as green's text; refused with the value and why.
pub(super) fn text(b: Bytes, latin1: bool) -> Result<Value, (Value, &'static str)> {
    if b.contains(&0) {
        return Err((Value::Bytes(b), "PostgreSQL text cannot hold the byte 0; remove it on blue, or leave the table out"));
    }
    if latin1 {
        return Ok(Value::Text(Utf8Bytes::from_string(b.iter().map(|&c| latin1_char(c)).collect::<String>())));
    }
    match Utf8Bytes::try_from_bytes(b.clone()) {
        Ok(t) => Ok(Value::Text(t)),
        Err(_) => Err((Value::Bytes(b), "bytes that are not UTF-8 in a UTF-8 column: report it")),
    }
}

/// MySQL's `latin1` byte as a character: Windows-1252, whose five unassigned bytes (0x81, 0x8D, 0x8F,
/// 0x90, 0x9D) MySQL maps to the C1 controls of the same number, as `CONVERT(… USING utf8mb4)` does on
/// blue (every byte is checked against the server's own conversion in the tests). A bijection: every
/// latin1 string arrives exactly and could go back.
pub(super) fn latin1_char(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}',
        '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}', '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
        '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
    ];
    match byte {
        0x80..=0x9F => HIGH[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}
