//! The common event header of binlog version 4 (MySQL internals, "Binlog Event Header"; `LOG_EVENT_HEADER_LEN`
//! = 19 bytes), which starts every event.

use super::reader::Reader;
use super::BinlogError;

/// Length of the version-4 common header.
pub const HEADER_LEN: usize = 19;

/// `LOG_EVENT_ARTIFICIAL_F`: the event was made up by the server (e.g. the fake ROTATE a binlog dump starts
/// with), it is not in any binlog file.
pub const FLAG_ARTIFICIAL: u16 = 0x20;

/// timestamp u32, type u8, server_id u32, event_size u32, log_pos u32, flags u16 — all little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// Seconds since the epoch when the statement began (0 in artificial events).
    pub timestamp: u32,
    pub type_code: u8,
    /// The server that originally wrote the event; part of a MariaDB GTID.
    pub server_id: u32,
    /// Size of the whole event: header, body and checksum.
    pub event_size: u32,
    /// Position of the *next* event in the binlog file (0 in artificial events).
    pub log_pos: u32,
    pub flags: u16,
}

impl EventHeader {
    /// Reads the header from the first 19 bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, BinlogError> {
        let type_code = bytes.get(4).copied().unwrap_or(0);
        let mut r = Reader::new(bytes, 0, type_code);
        Ok(EventHeader {
            timestamp: r.u32("timestamp")?,
            type_code: r.u8("event type")?,
            server_id: r.u32("server id")?,
            event_size: r.u32("event size")?,
            log_pos: r.u32("log position")?,
            flags: r.u16("flags")?,
        })
    }

    /// True for events the server made up rather than read from a binlog file.
    pub fn is_artificial(&self) -> bool {
        self.flags & FLAG_ARTIFICIAL != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_little_endian_in_order() {
        let bytes = [1, 0, 0, 0, 0x10, 2, 0, 0, 0, 31, 0, 0, 0, 0x40, 0x01, 0, 0, 0x20, 0];
        let h = EventHeader::parse(&bytes).ok();
        assert_eq!(h, Some(EventHeader { timestamp: 1, type_code: 0x10, server_id: 2, event_size: 31, log_pos: 0x140, flags: 0x20 }));
        assert!(h.is_some_and(|h| h.is_artificial()));
    }

    #[test]
    fn a_short_header_is_an_error() {
        for n in 0..HEADER_LEN {
            assert!(EventHeader::parse(&[0; HEADER_LEN][..n]).is_err());
        }
    }
}
