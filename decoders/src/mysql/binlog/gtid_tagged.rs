//! MySQL 8.3+ GTID_TAGGED_LOG_EVENT (0x2A): the GTID event of a transaction committed with a tag
//! (`SET gtid_next = 'AUTOMATIC:<tag>'`), in the MySQL serialization library's format
//! (`libs/mysql/serialization`, `Gtid_event::define_fields` in `libs/mysql/binlog/event/control_events.h`).
//! Untagged transactions keep GTID_LOG_EVENT (0x21); a binlog may hold both.
//!
//! The body has no post-header: one message — `varlen(format version = 1)`, `varlen(message size)`,
//! `varlen(last non-ignorable field id)`, then `varlen(field id)` + field data in ascending id order.
//! A field equal to its default may be left out (the original timestamp and server version when they
//! equal the immediate ones, the commit group ticket when unset). Fields:
//!
//! | id | field | encoding |
//! |---|---|---|
//! | 0 | gtid flags | varlen |
//! | 1 | source UUID | 16 varlens, one per byte |
//! | 2 | gno | signed varlen |
//! | 3 | tag | varlen length, then the bytes (≤ 32) |
//! | 4, 5 | last committed, sequence number | signed varlen |
//! | 6, 7 | immediate, original commit timestamp (µs) | varlen |
//! | 8 | transaction length | varlen |
//! | 9, 10 | immediate, original server version | varlen |
//! | 11 | commit group ticket | varlen |
//!
//! A varlen takes 1 to 9 bytes, little-endian: the first byte's trailing one-bits, plus one, is the
//! byte count, and the value is the bytes shifted right by that count (9 bytes: `0xFF`, then a raw
//! u64). Signed values are zig-zagged. A field id the decoder does not know is an error when the
//! message says fields up to it may not be ignored; otherwise the rest of the message is skipped.
//! The message is bounded by the event's data, not only by its declared size (MySQL's size can be
//! one byte short for fields of 125–127 bytes).

use super::gtid_mysql::{MysqlGtid, Uuid};
use super::reader::Reader;
use super::BinlogError;

/// The serialization format version MySQL writes (the first varlen of the message).
const FORMAT_VERSION: u64 = 1;
/// The highest field id of the event as this decoder knows it.
const LAST_KNOWN_FIELD: u64 = 11;

/// An unsigned varlen of the MySQL serialization format.
pub(crate) fn varlen(r: &mut Reader<'_>, what: &str) -> Result<u64, BinlogError> {
    let at = r.offset();
    let first = r.u8(what)?;
    let n = first.trailing_ones() as usize + 1;
    if n == 9 {
        return r.u64(what);
    }
    let rest = r.take(n - 1, what).map_err(|_| r.error_at(at, format!("truncated: {what} needs {n} bytes")))?;
    let mut bytes = [0u8; 8];
    bytes[0] = first;
    bytes[1..n].copy_from_slice(rest);
    Ok(u64::from_le_bytes(bytes) >> n)
}

/// A signed (zig-zag) varlen.
fn signed_varlen(r: &mut Reader<'_>, what: &str) -> Result<i64, BinlogError> {
    let u = varlen(r, what)?;
    let magnitude = (u >> 1).cast_signed();
    Ok(if u & 1 == 0 { magnitude } else { -magnitude - 1 })
}

/// A varlen that must fit `max`.
fn bounded(r: &mut Reader<'_>, what: &str, max: u64) -> Result<u64, BinlogError> {
    let at = r.offset();
    let v = varlen(r, what)?;
    if v > max {
        return Err(r.error_at(at, format!("{what} {v} is out of range")));
    }
    Ok(v)
}

/// A signed varlen that must not be negative.
fn non_negative(r: &mut Reader<'_>, what: &str) -> Result<i64, BinlogError> {
    let at = r.offset();
    let v = signed_varlen(r, what)?;
    if v < 0 {
        return Err(r.error_at(at, format!("{what} {v} is negative")));
    }
    Ok(v)
}

/// Writes `v` as a varlen (the byte-built test events).
#[cfg(test)]
pub(crate) fn put_varlen(out: &mut Vec<u8>, v: u64) {
    let bits = 64 - v.leading_zeros() as usize;
    let n = if bits <= 56 { bits.max(1).div_ceil(7) } else { 9 };
    if n == 9 {
        out.push(0xFF);
        out.extend_from_slice(&v.to_le_bytes());
        return;
    }
    let encoded = (v << n) | ((1u64 << (n - 1)) - 1);
    out.extend_from_slice(&encoded.to_le_bytes()[..n]);
}

/// Parses the body of a GTID_TAGGED_LOG_EVENT into the same shape as an untagged GTID event, with
/// its tag.
pub(crate) fn parse(r: &mut Reader<'_>) -> Result<MysqlGtid, BinlogError> {
    let start = r.offset();
    let available = r.remaining();
    let at = r.offset();
    let version = varlen(r, "serialization format version")?;
    if version != FORMAT_VERSION {
        return Err(r.error_at(at, format!("serialization format version {version}, expected {FORMAT_VERSION}")));
    }
    let at = r.offset();
    let declared = varlen(r, "message size")?;
    let last_non_ignorable = varlen(r, "last non-ignorable field id")?;
    if last_non_ignorable > LAST_KNOWN_FIELD + 1 {
        return Err(
            r.error_at(at, format!("fields up to id {} may not be ignored, and this decoder knows ids up to {LAST_KNOWN_FIELD}", last_non_ignorable - 1))
        );
    }
    let consumed = r.offset() - start;
    // The declared size covers the whole message. It ends there — or at the event's end when the
    // declaration is one byte short of it (MySQL's size for fields of 125–127 bytes) — and never
    // beyond the event.
    let declared = usize::try_from(declared).unwrap_or(usize::MAX);
    let size = if declared.saturating_add(1) == available { available } else { declared };
    if size > available || size < consumed {
        return Err(r.error_at(at, format!("message size {declared} does not fit the event's {available} bytes")));
    }
    let mut f = r.sub(size - consumed, "the GTID event's fields")?;
    let mut gtid = MysqlGtid::new(true, 0, Uuid([0; 16]), 0);
    let mut last = None;
    let mut has_uuid = false;
    while !f.is_empty() {
        let at = f.offset();
        let id = varlen(&mut f, "field id")?;
        if last.is_some_and(|l| id <= l) {
            return Err(f.error_at(at, format!("field id {id} after field id {}", last.unwrap_or_default())));
        }
        last = Some(id);
        match id {
            0 => gtid.flags = u8::try_from(bounded(&mut f, "gtid flags", 0xFF)?).unwrap_or_default(),
            1 => {
                has_uuid = true;
                gtid.uuid = uuid(&mut f)?;
            }
            2 => gtid.gno = non_negative(&mut f, "gno")?,
            3 => gtid.tag = Some(tag(&mut f)?),
            4 => gtid.last_committed = Some(non_negative(&mut f, "last committed")?),
            5 => gtid.sequence_number = Some(non_negative(&mut f, "sequence number")?),
            6 => gtid.immediate_commit_timestamp = Some(varlen(&mut f, "immediate commit timestamp")?),
            7 => gtid.original_commit_timestamp = Some(varlen(&mut f, "original commit timestamp")?),
            8 => gtid.transaction_length = Some(varlen(&mut f, "transaction length")?),
            9 => gtid.immediate_server_version = Some(u32::try_from(bounded(&mut f, "immediate server version", u64::from(u32::MAX))?).unwrap_or_default()),
            10 => gtid.original_server_version = Some(u32::try_from(bounded(&mut f, "original server version", u64::from(u32::MAX))?).unwrap_or_default()),
            11 => {
                varlen(&mut f, "commit group ticket")?;
            }
            _ if id < last_non_ignorable => return Err(f.error_at(at, format!("field id {id} is not known and may not be ignored"))),
            // A newer writer's field: it and what follows may be ignored.
            _ => {
                f.rest();
            }
        }
    }
    // MySQL's transaction numbers run from 1 to 2^63 - 2.
    if gtid.tag.is_none() || !has_uuid || gtid.gno < 1 || gtid.gno == i64::MAX {
        return Err(r.error_at(start, "a tagged GTID event without a source, a tag or a valid transaction number"));
    }
    // Left out when equal to the immediate values.
    gtid.original_commit_timestamp = gtid.original_commit_timestamp.or(gtid.immediate_commit_timestamp);
    gtid.original_server_version = gtid.original_server_version.or(gtid.immediate_server_version);
    // Anything after the message (there should be nothing) is not part of the event.
    r.rest();
    Ok(gtid)
}

/// The source's UUID: sixteen bytes, each a variable-length integer.
fn uuid(f: &mut Reader<'_>) -> Result<Uuid, BinlogError> {
    let mut uuid = Uuid([0; 16]);
    for byte in uuid.0.iter_mut() {
        *byte = u8::try_from(bounded(f, "source uuid byte", 0xFF)?).unwrap_or_default();
    }
    Ok(uuid)
}

/// The tag: its length, then that many bytes of UTF-8, checked as MySQL checks a tag.
fn tag(f: &mut Reader<'_>) -> Result<String, BinlogError> {
    let at = f.offset();
    let len = bounded(f, "tag length", crate::gtid::TAG_MAX_LEN as u64)?;
    let bytes = f.take(usize::try_from(len).unwrap_or(usize::MAX), "tag")?;
    let text = std::str::from_utf8(bytes).map_err(|_| f.error_at(at, "the tag is not UTF-8"))?;
    crate::gtid::tag_text(text).map_err(|e| f.error_at(at, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The 60-byte body of a GTID_TAGGED_LOG_EVENT a MySQL 9.6.0 server wrote for
    /// `55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3` (checksum removed).
    pub(crate) const SERVER_BODY: [u8; 60] = [
        0x02, 0x78, 0x00, 0x00, 0x00, 0x02, 0xaa, 0xee, 0x25, 0x02, 0x08, 0x04, 0x65, 0x02, 0x22, 0xc5, 0x03, 0xc5, 0x02, 0xe1, 0x02, 0x9c, 0xc1, 0x03, 0x11,
        0x03, 0x55, 0x02, 0xde, 0xad, 0x03, 0x04, 0x0c, 0x06, 0x0a, 0x6d, 0x79, 0x74, 0x61, 0x67, 0x08, 0x00, 0x0a, 0x04, 0x0c, 0x7f, 0x1c, 0xf3, 0xb8, 0x14,
        0x24, 0x4a, 0x06, 0x10, 0xa1, 0x04, 0x12, 0x43, 0x0f, 0x0b,
    ];

    fn parsed(body: &[u8]) -> Result<MysqlGtid, BinlogError> {
        parse(&mut Reader::new(body, 19, 0x2A))
    }

    #[test]
    fn a_servers_tagged_gtid_event_decodes_every_field() {
        let g = parsed(&SERVER_BODY).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.uuid.to_string(), "55778904-0299-11f1-b1b8-4ef0c4956feb");
        assert_eq!((g.tag.as_deref(), g.gno), (Some("mytag"), 3));
        assert_eq!((g.last_committed, g.sequence_number), (Some(0), Some(1)));
        assert_eq!(g.immediate_commit_timestamp, Some(1_770_368_687_207_196));
        assert_eq!(g.original_commit_timestamp, g.immediate_commit_timestamp, "left out: the same");
        assert_eq!(g.transaction_length, Some(296));
        assert_eq!((g.immediate_server_version, g.original_server_version), (Some(90600), Some(90600)));
    }

    #[test]
    fn varlens_of_every_width_round_trip() {
        for v in [0u64, 1, 5, 60, 127, 128, 0x89, 1 << 14, (1 << 21) - 1, 1 << 40, (1 << 56) - 1, 1 << 56, u64::MAX] {
            let mut b = Vec::new();
            put_varlen(&mut b, v);
            let mut r = Reader::new(&b, 0, 0x2A);
            assert_eq!(varlen(&mut r, "v").ok(), Some(v), "{v}: {b:02x?}");
            assert!(r.is_empty());
        }
        let mut b = Vec::new();
        put_varlen(&mut b, 128);
        assert_eq!(b, [0x01, 0x02], "MySQL's encoding of 128");
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        for n in 0..SERVER_BODY.len() {
            assert!(parsed(&SERVER_BODY[..n]).is_err(), "length {n}");
        }
    }

    /// A message of `fields` with a correct size.
    fn message(fields: &[u8], last_non_ignorable: u64) -> Vec<u8> {
        let mut b = vec![0x02];
        let total = 1 + 1 + 1 + fields.len();
        put_varlen(&mut b, (total + usize::from(total > 127)) as u64);
        put_varlen(&mut b, last_non_ignorable);
        b.extend_from_slice(fields);
        b
    }

    #[test]
    fn an_unknown_field_is_skipped_only_where_the_message_allows() {
        let mut fields = SERVER_BODY[3..].to_vec();
        fields.extend_from_slice(&[0x1a, 0x02]); // id 13 = 1
        assert!(parsed(&message(&fields, 0)).is_ok(), "ignorable");
        assert!(parsed(&message(&fields, 14)).is_err(), "not ignorable");
        // Out of order, repeated, or without a tag: malformed.
        let mut swapped = SERVER_BODY[3..].to_vec();
        swapped.extend_from_slice(&[0x00, 0x00]);
        assert!(parsed(&message(&swapped, 0)).is_err());
        let untagged: Vec<u8> = SERVER_BODY[3..33].iter().chain(&SERVER_BODY[40..]).copied().collect();
        assert!(parsed(&message(&untagged, 0)).is_err());
        let sourceless: Vec<u8> = SERVER_BODY[3..5].iter().chain(&SERVER_BODY[31..]).copied().collect();
        assert!(parsed(&message(&sourceless, 0)).is_err(), "no UUID field");
    }

    #[test]
    fn a_bad_tag_or_a_negative_number_is_an_error() {
        let mut bad = SERVER_BODY;
        bad[35] = b'9'; // "9ytag"
        assert!(parsed(&bad).is_err());
        let mut negative = SERVER_BODY;
        negative[32] = 0x0e; // zig-zag 7: gno -4
        assert!(parsed(&negative).is_err());
    }
}
