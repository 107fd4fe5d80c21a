//! MariaDB BINLOG_CHECKPOINT_EVENT (0xA1; MariaDB KB "BINLOG_CHECKPOINT_EVENT"): the oldest binlog file that
//! crash recovery still needs. Written at the start of each file and after the engines have durably
//! committed everything in older files.

use super::reader::Reader;
use super::BinlogError;

/// file name length u32 (post-header), file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinlogCheckpoint {
    pub file_name: String,
}

impl BinlogCheckpoint {
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, BinlogError> {
        let at = r.offset();
        let len = r.u32("file name length")?;
        let len = r.check_count(u64::from(len), at, "file name length", 1)?;
        let file_name = r.utf8(len, "file name")?;
        r.finish("the file name")?;
        Ok(BinlogCheckpoint { file_name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_is_length_prefixed() {
        let mut body = 16u32.to_le_bytes().to_vec();
        body.extend_from_slice(b"mysql-bin.000001");
        let c = BinlogCheckpoint::parse(&mut Reader::new(&body, 19, 0xA1)).ok();
        assert_eq!(c, Some(BinlogCheckpoint { file_name: "mysql-bin.000001".into() }));
    }

    #[test]
    fn a_length_past_the_end_is_an_error() {
        let mut body = 0xffff_fff0u32.to_le_bytes().to_vec();
        body.extend_from_slice(b"x");
        assert!(BinlogCheckpoint::parse(&mut Reader::new(&body, 19, 0xA1)).is_err());
    }
}
