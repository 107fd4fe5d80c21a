//! MySQL 5.7/8.0 GTID events (libbinlogevents `Gtid_event`, `Previous_gtids_event`; MySQL internals
//! "GTID_EVENT"): GTID_LOG_EVENT (0x21) and ANONYMOUS_GTID_LOG_EVENT (0x22) start every transaction,
//! PREVIOUS_GTIDS_LOG_EVENT (0x23) opens every binlog file with the GTID set of all earlier files.
//! MariaDB never writes these; they are tested with byte-built events.
//!
//! Tagged GTIDs (MySQL 8.3+): their events are GTID_TAGGED_LOG_EVENT (0x2A, [`super::gtid_tagged`]);
//! a GTID set holding (or a server that ever saw) a tag is written in the tagged encoding (below).

use super::reader::Reader;
use super::BinlogError;
use std::fmt;

/// A server UUID (the `source_id` of a MySQL GTID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// `LOGICAL_TIMESTAMP_TYPECODE`: the logical clock fields follow.
const LOGICAL_TIMESTAMP_TYPECODE: u8 = 2;
/// Bit 55 of the immediate commit timestamp: an original commit timestamp follows.
const ENCODED_COMMIT_TIMESTAMP_BIT: u64 = 1 << 55;
/// Bit 31 of the immediate server version: an original server version follows.
const ENCODED_SERVER_VERSION_BIT: u32 = 1 << 31;

/// flags u8, `source uuid [16]`, gno i64; then (5.7+) lt_type u8 = 2, last_committed i64, sequence_number
/// i64; (8.0.1+) immediate_commit_timestamp u56 with bit 55 announcing original_commit_timestamp u56;
/// (8.0.2+) transaction_length (length-encoded); (8.0.14+) immediate_server_version u32 with bit 31
/// announcing original_server_version u32. Later additions are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlGtid {
    /// False for ANONYMOUS_GTID_LOG_EVENT (gtid_mode=OFF): uuid and gno are then zero.
    pub assigned: bool,
    /// Bit 0: `FLAG_MAY_HAVE_SBR` (the transaction may contain statement-based events).
    pub flags: u8,
    pub uuid: Uuid,
    pub gno: i64,
    /// The tag of a tagged GTID (GTID_TAGGED_LOG_EVENT), lowercase.
    pub tag: Option<String>,
    pub last_committed: Option<i64>,
    pub sequence_number: Option<i64>,
    /// Microseconds since the epoch when this server committed.
    pub immediate_commit_timestamp: Option<u64>,
    /// Microseconds since the epoch when the originating server committed.
    pub original_commit_timestamp: Option<u64>,
    pub transaction_length: Option<u64>,
    pub immediate_server_version: Option<u32>,
    pub original_server_version: Option<u32>,
}

impl MysqlGtid {
    /// A GTID event's first fields, without the later ones (a MySQL 5.6 event; built events).
    pub fn new(assigned: bool, flags: u8, uuid: Uuid, gno: i64) -> MysqlGtid {
        MysqlGtid {
            assigned,
            flags,
            uuid,
            gno,
            tag: None,
            last_committed: None,
            sequence_number: None,
            immediate_commit_timestamp: None,
            original_commit_timestamp: None,
            transaction_length: None,
            immediate_server_version: None,
            original_server_version: None,
        }
    }

    pub(crate) fn parse(r: &mut Reader<'_>, assigned: bool) -> Result<Self, BinlogError> {
        let flags = r.u8("flags")?;
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(r.take(16, "source uuid")?);
        let gno = r.i64("gno")?;
        let mut gtid = MysqlGtid::new(assigned, flags, Uuid(uuid), gno);
        if r.is_empty() {
            return Ok(gtid);
        }
        let at = r.offset();
        let lt = r.u8("logical timestamp type code")?;
        if lt != LOGICAL_TIMESTAMP_TYPECODE {
            return Err(r.error_at(at, format!("logical timestamp type code {lt}, expected {LOGICAL_TIMESTAMP_TYPECODE}")));
        }
        gtid.last_committed = Some(r.i64("last committed")?);
        gtid.sequence_number = Some(r.i64("sequence number")?);
        if r.is_empty() {
            return Ok(gtid);
        }
        let immediate = r.uint_le(7, "immediate commit timestamp")?;
        if immediate & ENCODED_COMMIT_TIMESTAMP_BIT != 0 {
            gtid.immediate_commit_timestamp = Some(immediate & !ENCODED_COMMIT_TIMESTAMP_BIT);
            gtid.original_commit_timestamp = Some(r.uint_le(7, "original commit timestamp")?);
        } else {
            gtid.immediate_commit_timestamp = Some(immediate);
            gtid.original_commit_timestamp = Some(immediate);
        }
        if r.is_empty() {
            return Ok(gtid);
        }
        gtid.transaction_length = Some(r.lenenc("transaction length")?);
        if r.is_empty() {
            return Ok(gtid);
        }
        let immediate = r.u32("immediate server version")?;
        if immediate & ENCODED_SERVER_VERSION_BIT != 0 {
            gtid.immediate_server_version = Some(immediate & !ENCODED_SERVER_VERSION_BIT);
            gtid.original_server_version = Some(r.u32("original server version")?);
        } else {
            gtid.immediate_server_version = Some(immediate);
            gtid.original_server_version = Some(immediate);
        }
        // Newer fields (commit group ticket, ...) are not decoded.
        let _newer = r.rest();
        Ok(gtid)
    }
}

/// One source's intervals of a GTID set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GtidSetEntry {
    pub uuid: Uuid,
    /// The tag of a tagged source (lowercase); `None` when untagged.
    pub tag: Option<String>,
    /// Half-open intervals `[start, end)` of gnos.
    pub intervals: Vec<(i64, i64)>,
}

/// The top byte of the first u64 in the tagged encoding (`Gtid_format::tagged`).
const TAGGED_FORMAT: u64 = 1;

/// A GTID set in binary (`Gtid_set::encode`), as PREVIOUS_GTIDS_LOG_EVENT carries it. The first u64
/// says the format: untagged, the number of sources; tagged (top byte 1), the number of sources in
/// bits 8–55. Then per source: `uuid [16]`, in the tagged format its tag (varlen length, bytes; 0 when
/// untagged), n_intervals u64, (start i64, end i64) per half-open interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousGtids {
    pub sets: Vec<GtidSetEntry>,
}

impl PreviousGtids {
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, BinlogError> {
        let at = r.offset();
        let header = r.u64("number of sids")?;
        let (tagged, n) = match header >> 56 {
            0 => (false, header),
            TAGGED_FORMAT => (true, (header >> 8) & ((1 << 48) - 1)),
            format => return Err(r.error_at(at, format!("GTID set encoding format {format} is not known"))),
        };
        let n = r.check_count(n, at, "number of sids", if tagged { 25 } else { 24 })?;
        let mut sets = Vec::with_capacity(n);
        for _ in 0..n {
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(r.take(16, "sid")?);
            let tag = if tagged { tag(r)? } else { None };
            let at = r.offset();
            let k = r.u64("number of intervals")?;
            let k = r.check_count(k, at, "number of intervals", 16)?;
            let mut intervals = Vec::with_capacity(k);
            for _ in 0..k {
                let at = r.offset();
                let start = r.i64("interval start")?;
                let end = r.i64("interval end")?;
                if start < 1 || end <= start {
                    return Err(r.error_at(at, format!("invalid GTID interval [{start}, {end})")));
                }
                intervals.push((start, end));
            }
            sets.push(GtidSetEntry { uuid: Uuid(uuid), tag, intervals });
        }
        r.finish("the GTID set")?;
        Ok(PreviousGtids { sets })
    }
}

/// A source's tag in the tagged encoding: a varlen length (0: untagged) and the bytes.
fn tag(r: &mut Reader<'_>) -> Result<Option<String>, BinlogError> {
    let at = r.offset();
    let len = super::gtid_tagged::varlen(r, "tag length")?;
    if len == 0 {
        return Ok(None);
    }
    if len > crate::gtid::TAG_MAX_LEN as u64 {
        return Err(r.error_at(at, format!("a tag of {len} bytes")));
    }
    let bytes = r.take(usize::try_from(len).unwrap_or(usize::MAX), "tag")?;
    let text = std::str::from_utf8(bytes).map_err(|_| r.error_at(at, "the tag is not UTF-8"))?;
    crate::gtid::tag_text(text).map(Some).map_err(|e| r.error_at(at, e))
}

impl PreviousGtids {
    /// The set as a GTID state.
    pub fn state(&self) -> crate::gtid::GtidState {
        let mut state = crate::gtid::GtidState::None;
        for set in &self.sets {
            let tsid = crate::gtid::Tsid { uuid: set.uuid.0, tag: set.tag.clone().unwrap_or_default() };
            for &(start, end) in &set.intervals {
                state.push_mysql_interval(&tsid, start.cast_unsigned(), (end - 1).cast_unsigned());
            }
        }
        state
    }
}

impl fmt::Display for PreviousGtids {
    /// The GTID set in MySQL's text form: `uuid:1-5:7:tag:1-3,uuid2:3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.state().fmt(f)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const UUID: [u8; 16] = [0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62];

    /// A MySQL 8.0.36 GTID_LOG_EVENT body with original timestamps and versions differing from the
    /// immediate ones.
    pub(crate) fn gtid_body() -> Vec<u8> {
        let mut b = vec![1];
        b.extend_from_slice(&UUID);
        b.extend_from_slice(&23i64.to_le_bytes());
        b.push(LOGICAL_TIMESTAMP_TYPECODE);
        b.extend_from_slice(&5i64.to_le_bytes());
        b.extend_from_slice(&6i64.to_le_bytes());
        let immediate = 1_700_000_000_000_001u64 | ENCODED_COMMIT_TIMESTAMP_BIT;
        b.extend_from_slice(&immediate.to_le_bytes()[..7]);
        b.extend_from_slice(&1_700_000_000_000_000u64.to_le_bytes()[..7]);
        b.extend_from_slice(&[0xfc, 0x2c, 0x01]);
        b.extend_from_slice(&(80036u32 | ENCODED_SERVER_VERSION_BIT).to_le_bytes());
        b.extend_from_slice(&80035u32.to_le_bytes());
        b
    }

    #[test]
    fn a_mysql_8_gtid_has_logical_clock_timestamps_length_and_versions() {
        let g = MysqlGtid::parse(&mut Reader::new(&gtid_body(), 19, 0x21), true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.uuid.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562");
        assert_eq!((g.gno, g.last_committed, g.sequence_number), (23, Some(5), Some(6)));
        assert_eq!(g.immediate_commit_timestamp, Some(1_700_000_000_000_001));
        assert_eq!(g.original_commit_timestamp, Some(1_700_000_000_000_000));
        assert_eq!(g.transaction_length, Some(300));
        assert_eq!((g.immediate_server_version, g.original_server_version), (Some(80036), Some(80035)));
    }

    #[test]
    fn a_mysql_5_6_gtid_stops_after_the_gno() {
        let b = &gtid_body()[..25];
        let g = MysqlGtid::parse(&mut Reader::new(b, 19, 0x22), false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((g.gno, g.last_committed, g.immediate_commit_timestamp), (23, None, None));
    }

    #[test]
    fn every_truncation_inside_a_field_is_an_error() {
        let body = gtid_body();
        // Field boundaries where a 5.6/5.7/8.0.1/8.0.2 server would legitimately stop.
        let boundaries = [25, 42, 56, 59];
        for n in 0..body.len() {
            let res = MysqlGtid::parse(&mut Reader::new(&body[..n], 19, 0x21), true);
            assert_eq!(res.is_ok(), boundaries.contains(&n), "length {n}: {res:?}");
        }
    }

    pub(crate) fn previous_gtids_body() -> Vec<u8> {
        let mut b = 2u64.to_le_bytes().to_vec();
        b.extend_from_slice(&UUID);
        b.extend_from_slice(&2u64.to_le_bytes());
        for (s, e) in [(1i64, 6i64), (7, 8)] {
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&e.to_le_bytes());
        }
        b.extend_from_slice(&[0xaa; 16]);
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&3i64.to_le_bytes());
        b.extend_from_slice(&10i64.to_le_bytes());
        b
    }

    #[test]
    fn previous_gtids_decode_to_a_gtid_set() {
        let p = PreviousGtids::parse(&mut Reader::new(&previous_gtids_body(), 19, 0x23)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa:3-9");
    }

    #[test]
    fn a_huge_interval_count_is_an_error_not_an_allocation() {
        let mut b = 1u64.to_le_bytes().to_vec();
        b.extend_from_slice(&UUID);
        b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(PreviousGtids::parse(&mut Reader::new(&b, 19, 0x23)).is_err());
        for n in 0..previous_gtids_body().len() {
            assert!(PreviousGtids::parse(&mut Reader::new(&previous_gtids_body()[..n], 19, 0x23)).is_err());
        }
    }

    /// The PREVIOUS_GTIDS_LOG_EVENT body a MySQL 9.6.0 server wrote for
    /// `55778904-0299-11f1-b1b8-4ef0c4956feb:1-13:mytag:1-2` (checksum removed): the tagged encoding.
    pub(crate) fn tagged_previous_gtids_body() -> Vec<u8> {
        let uuid = [0x55, 0x77, 0x89, 0x04, 0x02, 0x99, 0x11, 0xf1, 0xb1, 0xb8, 0x4e, 0xf0, 0xc4, 0x95, 0x6f, 0xeb];
        let mut b = vec![0x01, 0x02, 0, 0, 0, 0, 0, 0x01];
        for (tag, end) in [(&b""[..], 14u64), (&b"mytag"[..], 3)] {
            b.extend_from_slice(&uuid);
            b.push(u8::try_from(tag.len() << 1).unwrap_or_default());
            b.extend_from_slice(tag);
            b.extend_from_slice(&1u64.to_le_bytes());
            b.extend_from_slice(&1u64.to_le_bytes());
            b.extend_from_slice(&end.to_le_bytes());
        }
        b
    }

    #[test]
    fn a_tagged_previous_gtids_decodes_each_tag_as_a_source() {
        let body = tagged_previous_gtids_body();
        let p = PreviousGtids::parse(&mut Reader::new(&body, 19, 0x23)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.to_string(), "55778904-0299-11f1-b1b8-4ef0c4956feb:1-13:mytag:1-2");
        assert_eq!(p.sets[1].tag.as_deref(), Some("mytag"));
        for n in 0..body.len() {
            assert!(PreviousGtids::parse(&mut Reader::new(&body[..n], 19, 0x23)).is_err(), "length {n}");
        }
        let mut unknown = body.clone();
        unknown[7] = 2;
        assert!(PreviousGtids::parse(&mut Reader::new(&unknown, 19, 0x23)).is_err(), "format 2 is not known");
        let mut bad_tag = body;
        bad_tag[66] = b'-';
        assert!(PreviousGtids::parse(&mut Reader::new(&bad_tag, 19, 0x23)).is_err());
    }
}
