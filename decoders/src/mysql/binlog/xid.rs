//! XID_EVENT (0x10; MySQL internals "XID_EVENT"), the commit of a transaction on a transactional engine, and
//! XA_PREPARE_LOG_EVENT (0x26), the end of an `XA PREPARE`d event group (MySQL 5.7+, MariaDB 10.5+).

use super::reader::Reader;
use super::BinlogError;

/// xid u64: the storage engine's transaction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Xid {
    pub xid: u64,
}

impl Xid {
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, BinlogError> {
        let xid = r.u64("xid")?;
        r.finish("the xid")?;
        Ok(Xid { xid })
    }
}

/// one_phase u8, format_id u32, gtrid_length u32, bqual_length u32, then gtrid and bqual bytes
/// (libbinlogevents `XA_prepare_event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XaPrepare {
    /// `XA COMMIT ... ONE PHASE` rather than `XA PREPARE`.
    pub one_phase: bool,
    pub format_id: u32,
    pub gtrid: Vec<u8>,
    pub bqual: Vec<u8>,
}

impl XaPrepare {
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, BinlogError> {
        let one_phase = r.u8("one phase")? != 0;
        let format_id = r.u32("format id")?;
        let gtrid_length = r.u32("gtrid length")?;
        let bqual_length = r.u32("bqual length")?;
        let gtrid_len = usize::try_from(gtrid_length).map_err(|_| r.error("gtrid length"))?;
        let bqual_len = usize::try_from(bqual_length).map_err(|_| r.error("bqual length"))?;
        if gtrid_len > 64 || bqual_len > 64 {
            return Err(r.error(format!("gtrid length {gtrid_len} / bqual length {bqual_len} exceed 64")));
        }
        let gtrid = r.take(gtrid_len, "gtrid")?.to_vec();
        let bqual = r.take(bqual_len, "bqual")?.to_vec();
        r.finish("the XA id")?;
        Ok(XaPrepare { one_phase, format_id, gtrid, bqual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xid_is_eight_little_endian_bytes() {
        let body = 0x0102_0304_0506_0708u64.to_le_bytes();
        assert_eq!(Xid::parse(&mut Reader::new(&body, 19, 0x10)).ok(), Some(Xid { xid: 0x0102_0304_0506_0708 }));
        assert!(Xid::parse(&mut Reader::new(&body[..7], 19, 0x10)).is_err());
    }

    #[test]
    fn an_xa_prepare_carries_the_xa_id() {
        let mut body = vec![0];
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(b"abc");
        let xa = XaPrepare::parse(&mut Reader::new(&body, 19, 0x26)).ok();
        assert_eq!(xa, Some(XaPrepare { one_phase: false, format_id: 1, gtrid: b"ab".to_vec(), bqual: b"c".to_vec() }));
    }
}
