//! MariaDB GTID_LIST_EVENT (0xA3; MariaDB KB "GTID_LIST_EVENT"): at the start of every binlog file, the last
//! GTID of every (domain, server) pair in all earlier files — the binlog state the file starts from.

use super::reader::Reader;
use super::BinlogError;

/// One entry: domain_id u32, server_id u32, seq_no u64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GtidListEntry {
    pub domain_id: u32,
    pub server_id: u32,
    pub seq_no: u64,
}

/// count u32 (low 28 bits; the high 4 are flags), then `count` entries of 16 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GtidList {
    /// The high four bits of the count word (`FLAG_UNTIL_REACHED`, `FLAG_IGN_GTIDS`).
    pub flags: u8,
    pub gtids: Vec<GtidListEntry>,
}

impl GtidList {
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, BinlogError> {
        let at = r.offset();
        let word = r.u32("count")?;
        let flags = u8::try_from(word >> 28).unwrap_or(0);
        let count = r.check_count(u64::from(word & 0x0FFF_FFFF), at, "GTID count", 16)?;
        let mut gtids = Vec::with_capacity(count);
        for _ in 0..count {
            gtids.push(GtidListEntry { domain_id: r.u32("domain id")?, server_id: r.u32("server id")?, seq_no: r.u64("sequence number")? });
        }
        // An empty list is padded with two zero bytes (`Gtid_list_log_event::get_data_size`).
        let _padding = r.rest();
        Ok(GtidList { flags, gtids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_a_count_whose_top_bits_are_flags() {
        let mut body = (0x1000_0002u32).to_le_bytes().to_vec();
        for (d, s, n) in [(0u32, 1u32, 7u64), (2, 3, 9)] {
            body.extend_from_slice(&d.to_le_bytes());
            body.extend_from_slice(&s.to_le_bytes());
            body.extend_from_slice(&n.to_le_bytes());
        }
        let l = GtidList::parse(&mut Reader::new(&body, 19, 0xA3)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.flags, 1);
        assert_eq!(l.gtids[1], GtidListEntry { domain_id: 2, server_id: 3, seq_no: 9 });
    }

    #[test]
    fn an_empty_list_is_padded() {
        let body = [0, 0, 0, 0, 0, 0];
        let l = GtidList::parse(&mut Reader::new(&body, 19, 0xA3)).ok();
        assert_eq!(l, Some(GtidList { flags: 0, gtids: vec![] }));
    }

    #[test]
    fn a_count_past_the_end_is_an_error() {
        let body = 0x0FFF_FFFFu32.to_le_bytes();
        assert!(GtidList::parse(&mut Reader::new(&body, 19, 0xA3)).is_err());
    }
}
