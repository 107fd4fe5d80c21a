//! MariaDB GTID_EVENT (0xA2; MariaDB KB "GTID_EVENT", server `Gtid_log_event`): starts every event group
//! (instead of a `BEGIN` query) or marks a standalone statement such as DDL. The GTID is
//! `domain_id-server_id-seq_no`, the server id coming from the common header.

use super::reader::Reader;
use super::BinlogError;

/// flags2 bits.
pub mod gtid_flags {
    /// No terminating COMMIT/XID event follows: the group is one statement (DDL, non-transactional).
    pub const STANDALONE: u8 = 1;
    /// A commit id follows: groups with the same commit id were group-committed together.
    pub const GROUP_COMMIT_ID: u8 = 2;
    /// The group can be rolled back (transactional engines only).
    pub const TRANSACTIONAL: u8 = 4;
    pub const ALLOW_PARALLEL: u8 = 8;
    /// The transaction waited on a row lock of another transaction.
    pub const WAITED: u8 = 16;
    pub const DDL: u8 = 32;
    /// The group is an `XA PREPARE`d transaction; the XA id follows.
    pub const PREPARED_XA: u8 = 64;
    /// The group is `XA COMMIT`/`XA ROLLBACK`; the XA id follows.
    pub const COMPLETED_XA: u8 = 128;
}

/// flags_extra bits (MariaDB 10.8+).
pub mod gtid_flags_extra {
    /// An extra-engines count byte follows.
    pub const MULTI_ENGINE: u8 = 1;
    pub const START_ALTER: u8 = 2;
    /// A start-alter sequence number follows.
    pub const COMMIT_ALTER: u8 = 4;
    /// A start-alter sequence number follows.
    pub const ROLLBACK_ALTER: u8 = 8;
    /// A thread id follows (MariaDB 11.5+).
    pub const THREAD_ID: u8 = 16;
}

/// `GTID_HEADER_LEN`: the body is zero-padded to at least this length.
const MIN_BODY_LEN: usize = 19;

/// An XA transaction id (`XID`: formatID, gtrid, bqual).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XaId {
    pub format_id: u32,
    pub gtrid: Vec<u8>,
    pub bqual: Vec<u8>,
}

/// seq_no u64, domain_id u32, flags2 u8, then: commit_id u64 if `GROUP_COMMIT_ID`; XA id (format_id u32,
/// gtrid_length u8, bqual_length u8, data) if `PREPARED_XA|COMPLETED_XA`; then optionally flags_extra u8
/// with its fields; zero padding to 19 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MariaGtid {
    pub seq_no: u64,
    pub domain_id: u32,
    pub flags: u8,
    pub commit_id: Option<u64>,
    pub xa_id: Option<XaId>,
    /// 0 when the event has no flags_extra byte.
    pub flags_extra: u8,
    pub extra_engines: Option<u8>,
    pub start_alter_seq_no: Option<u64>,
    pub thread_id: Option<u32>,
}

impl MariaGtid {
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, BinlogError> {
        if r.remaining() < MIN_BODY_LEN {
            return Err(r.error(format!("truncated: a GTID event body has at least {MIN_BODY_LEN} bytes, {} here", r.remaining())));
        }
        let seq_no = r.u64("sequence number")?;
        let domain_id = r.u32("domain id")?;
        let flags = r.u8("flags")?;
        let commit_id = if flags & gtid_flags::GROUP_COMMIT_ID != 0 { Some(r.u64("commit id")?) } else { None };
        let xa_id = if flags & (gtid_flags::PREPARED_XA | gtid_flags::COMPLETED_XA) != 0 {
            let format_id = r.u32("XA format id")?;
            let gtrid_len = r.u8("XA gtrid length")?;
            let bqual_len = r.u8("XA bqual length")?;
            if gtrid_len > 64 || bqual_len > 64 {
                return Err(r.error(format!("XA gtrid length {gtrid_len} / bqual length {bqual_len} exceed 64")));
            }
            let gtrid = r.take(usize::from(gtrid_len), "XA gtrid")?.to_vec();
            let bqual = r.take(usize::from(bqual_len), "XA bqual")?.to_vec();
            Some(XaId { format_id, gtrid, bqual })
        } else {
            None
        };
        let mut gtid = MariaGtid { seq_no, domain_id, flags, commit_id, xa_id, flags_extra: 0, extra_engines: None, start_alter_seq_no: None, thread_id: None };
        if !r.is_empty() {
            // Either flags_extra or the zero padding up to 19 bytes, whose first byte reads as "no extras".
            let extra = r.u8("extra flags")?;
            gtid.flags_extra = extra;
            if extra & gtid_flags_extra::MULTI_ENGINE != 0 {
                gtid.extra_engines = Some(r.u8("extra engines")?);
            }
            if extra & (gtid_flags_extra::COMMIT_ALTER | gtid_flags_extra::ROLLBACK_ALTER) != 0 {
                gtid.start_alter_seq_no = Some(r.u64("start alter sequence number")?);
            }
            if extra & gtid_flags_extra::THREAD_ID != 0 {
                gtid.thread_id = Some(r.u32("thread id")?);
            }
        }
        // What is left is zero padding, or fields of a newer server version.
        let _padding = r.rest();
        Ok(gtid)
    }

    /// True when no COMMIT or XID event ends this group: it is one statement.
    pub fn is_standalone(&self) -> bool {
        self.flags & gtid_flags::STANDALONE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(seq: u64, domain: u32, flags: u8) -> Vec<u8> {
        let mut b = seq.to_le_bytes().to_vec();
        b.extend_from_slice(&domain.to_le_bytes());
        b.push(flags);
        b
    }

    #[test]
    fn a_plain_gtid_is_padded_to_nineteen_bytes() {
        let mut b = body(42, 0, gtid_flags::TRANSACTIONAL | gtid_flags::ALLOW_PARALLEL);
        b.extend_from_slice(&[0; 6]);
        let g = MariaGtid::parse(&mut Reader::new(&b, 19, 0xA2)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((g.seq_no, g.domain_id, g.commit_id, g.flags_extra), (42, 0, None, 0));
        assert!(!g.is_standalone());
    }

    #[test]
    fn a_group_commit_id_follows_the_flags() {
        let mut b = body(7, 3, gtid_flags::GROUP_COMMIT_ID | gtid_flags::STANDALONE | gtid_flags::DDL);
        b.extend_from_slice(&99u64.to_le_bytes());
        let g = MariaGtid::parse(&mut Reader::new(&b, 19, 0xA2)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.commit_id, Some(99));
        assert!(g.is_standalone());
    }

    #[test]
    fn an_xa_gtid_carries_the_xa_id_and_extra_flags() {
        let mut b = body(8, 0, gtid_flags::PREPARED_XA);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[3, 2]);
        b.extend_from_slice(b"trxbq");
        b.push(gtid_flags_extra::MULTI_ENGINE | gtid_flags_extra::COMMIT_ALTER);
        b.push(2);
        b.extend_from_slice(&5u64.to_le_bytes());
        let g = MariaGtid::parse(&mut Reader::new(&b, 19, 0xA2)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.xa_id, Some(XaId { format_id: 1, gtrid: b"trx".to_vec(), bqual: b"bq".to_vec() }));
        assert_eq!((g.extra_engines, g.start_alter_seq_no), (Some(2), Some(5)));
    }

    #[test]
    fn a_truncated_commit_id_is_an_error() {
        let mut b = body(7, 3, gtid_flags::GROUP_COMMIT_ID);
        b.extend_from_slice(&[1, 2, 3]);
        assert!(MariaGtid::parse(&mut Reader::new(&b, 19, 0xA2)).is_err());
        let mut b = body(7, 3, gtid_flags::PREPARED_XA);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[60, 0]);
        b.extend_from_slice(&[0; 10]);
        assert!(MariaGtid::parse(&mut Reader::new(&b, 19, 0xA2)).is_err());
    }
}
