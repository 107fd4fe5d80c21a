//! HEARTBEAT_LOG_EVENT (0x1B; MySQL internals "HEARTBEAT_EVENT"): sent by the server on an idle binlog dump
//! every `master_heartbeat_period`; never in a binlog file. The body names the current binlog file; the
//! common header's `log_pos` is the position in it (MariaDB and MySQL alike).

use super::reader::Reader;
use super::BinlogError;

/// log file name (the body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub file_name: String,
}

impl Heartbeat {
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, BinlogError> {
        let n = r.remaining();
        Ok(Heartbeat { file_name: r.utf8(n, "log file name")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_file_name() {
        let h = Heartbeat::parse(&mut Reader::new(b"mysql-bin.000003", 19, 0x1B)).ok();
        assert_eq!(h, Some(Heartbeat { file_name: "mysql-bin.000003".into() }));
    }
}
