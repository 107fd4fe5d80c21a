//! FORMAT_DESCRIPTION_EVENT (0x0F; MySQL internals "FORMAT_DESCRIPTION_EVENT", libbinlogevents
//! `Format_description_event`): the first event of every binlog file and of every dump. It says how long the
//! common header and each event type's post-header are, and — since MySQL 5.6.1 / MariaDB 5.3 — which
//! checksum algorithm the following events carry.
//!
//! It is parsed without a prior format description: its own checksum trailer is present exactly when the
//! server version is new enough to write the algorithm byte.

use super::checksum::{format_description_crc, has_valid_format_description_trailer, ChecksumAlg};
use super::event_type;
use super::header::HEADER_LEN;
use super::reader::Reader;
use super::BinlogError;

/// Length of the server version field.
const SERVER_VERSION_LEN: usize = 50;
/// binlog_version u16 + `server_version[50]` + create_timestamp u32 + header_length u8.
const FIXED_LEN: usize = 2 + SERVER_VERSION_LEN + 4 + 1;

/// binlog_version u16, `server_version char[50]` (NUL-padded), create_timestamp u32, common_header_len u8,
/// post_header_len u8[number of event types], then (new servers) checksum_alg u8 and the event's CRC32.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatDescription {
    pub binlog_version: u16,
    /// E.g. `10.11.6-MariaDB-log` or `8.0.36`.
    pub server_version: String,
    pub create_timestamp: u32,
    /// Always 19 for binlog version 4.
    pub header_length: u8,
    /// Post-header length of event type `t` at index `t - 1`.
    pub post_header_lengths: Vec<u8>,
    /// The checksum of every following event (and of this one, when CRC32).
    pub checksum: ChecksumAlg,
}

impl FormatDescription {
    /// What to assume before the first format description: binlog version 4, 19-byte headers, the
    /// post-header lengths of MySQL 5.6+/MariaDB, no checksums.
    pub fn default_v4() -> Self {
        FormatDescription {
            binlog_version: 4,
            server_version: String::new(),
            create_timestamp: 0,
            header_length: 19,
            post_header_lengths: Vec::new(),
            checksum: ChecksumAlg::Off,
        }
    }

    /// The post-header length this format announces for `type_code`, or the usual one of binlog version 4
    /// when the announcement does not cover that type.
    pub fn post_header_len(&self, type_code: u8) -> usize {
        let announced = usize::from(type_code).checked_sub(1).and_then(|i| self.post_header_lengths.get(i)).map(|&n| usize::from(n));
        announced.unwrap_or_else(|| default_post_header_len(type_code))
    }

    /// True when the server that wrote the events is MariaDB.
    pub fn is_mariadb(&self) -> bool {
        self.server_version.contains("MariaDB")
    }

    /// Parses a whole FORMAT_DESCRIPTION_EVENT (header included), verifying its checksum when it has one.
    pub(crate) fn parse_event(event: &[u8]) -> Result<Self, BinlogError> {
        let t = event_type::FORMAT_DESCRIPTION;
        let body = event.get(HEADER_LEN..).unwrap_or_default();
        let mut r = Reader::new(body, HEADER_LEN, t);
        let binlog_version = r.u16("binlog version")?;
        if binlog_version != 4 {
            return Err(r.error_at(HEADER_LEN, format!("binlog version {binlog_version}; only version 4 is supported")));
        }
        let raw_version = r.take(SERVER_VERSION_LEN, "server version")?;
        let end = raw_version.iter().position(|&b| b == 0).unwrap_or(SERVER_VERSION_LEN);
        let server_version = String::from_utf8_lossy(raw_version.get(..end).unwrap_or_default()).into_owned();
        let create_timestamp = r.u32("create timestamp")?;
        let header_length = r.u8("common header length")?;
        if usize::from(header_length) != HEADER_LEN {
            return Err(r.error(format!("common header length {header_length}; binlog version 4 has 19")));
        }
        let rest = r.rest();
        let (post_header_lengths, checksum) = if has_checksum_byte(&server_version) {
            // ... post-header lengths, algorithm byte, 4 bytes of CRC (present even when the algorithm is off).
            let Some(n) = rest.len().checked_sub(5) else {
                return Err(BinlogError::Malformed {
                    event_type: t,
                    offset: HEADER_LEN + FIXED_LEN,
                    reason: format!("{} bytes after the common header length; the checksum algorithm and CRC need 5", rest.len()),
                });
            };
            let alg = ChecksumAlg::from_code(rest.get(n).copied().unwrap_or(0));
            if alg == ChecksumAlg::Crc32 && !has_valid_format_description_trailer(event) {
                let split = event.len().saturating_sub(4);
                let mut stored = [0u8; 4];
                stored.copy_from_slice(event.get(split..).unwrap_or(&[0; 4]));
                return Err(BinlogError::Checksum {
                    event_type: t,
                    stored: u32::from_le_bytes(stored),
                    computed: format_description_crc(event.get(..split).unwrap_or_default()),
                });
            }
            (rest.get(..n).unwrap_or_default().to_vec(), alg)
        } else {
            (rest.to_vec(), ChecksumAlg::Off)
        };
        // The format description's own post-header length is START_V3_HEADER_LEN (56) + 1 + the number of
        // event types: a cheap consistency check that catches a cut or misframed event.
        let n = post_header_lengths.len();
        let own = post_header_lengths.get(usize::from(t) - 1).map(|&b| usize::from(b));
        if !matches!(own, Some(own) if FIXED_LEN + n > 255 || own == FIXED_LEN + n) {
            return Err(BinlogError::Malformed {
                event_type: t,
                offset: HEADER_LEN + FIXED_LEN,
                reason: format!("{n} post-header lengths, and the format description's own is {own:?}, not {}", FIXED_LEN + n),
            });
        }
        if let ChecksumAlg::Other(code) = checksum {
            return Err(BinlogError::Malformed { event_type: t, offset: event.len().saturating_sub(5), reason: format!("unknown checksum algorithm {code}") });
        }
        Ok(FormatDescription { binlog_version, server_version, create_timestamp, header_length, post_header_lengths, checksum })
    }
}

/// The usual post-header lengths of binlog version 4 (MySQL 5.6+, MariaDB 10.x).
fn default_post_header_len(type_code: u8) -> usize {
    match type_code {
        event_type::QUERY => 13,
        event_type::ROTATE => 8,
        event_type::FORMAT_DESCRIPTION => 0x54,
        event_type::TABLE_MAP => 8,
        event_type::WRITE_ROWS_V1 | event_type::UPDATE_ROWS_V1 | event_type::DELETE_ROWS_V1 => 8,
        event_type::WRITE_ROWS_V2 | event_type::UPDATE_ROWS_V2 | event_type::DELETE_ROWS_V2 | event_type::PARTIAL_UPDATE_ROWS => 10,
        event_type::MARIADB_GTID => 19,
        event_type::MARIADB_GTID_LIST | event_type::MARIADB_BINLOG_CHECKPOINT => 4,
        event_type::MYSQL_GTID | event_type::MYSQL_ANONYMOUS_GTID => 42,
        _ => 0,
    }
}

/// True when `server_version` is at least MySQL 5.6.1 or MariaDB 5.3, the first versions whose format
/// description carries the checksum algorithm byte.
fn has_checksum_byte(server_version: &str) -> bool {
    let mut parts = server_version.split(|c: char| !c.is_ascii_digit()).take(3).map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let minimum = if server_version.contains("MariaDB") { (5, 3, 0) } else { (5, 6, 1) };
    version >= minimum
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::checksum::crc32;
    use super::*;

    /// A FORMAT_DESCRIPTION_EVENT as `server_version` would write it, with `alg` and a correct CRC.
    pub(crate) fn fde_bytes(server_version: &str, alg: u8) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&4u16.to_le_bytes());
        let mut version = [0u8; SERVER_VERSION_LEN];
        version[..server_version.len()].copy_from_slice(server_version.as_bytes());
        body.extend_from_slice(&version);
        body.extend_from_slice(&0u32.to_le_bytes());
        body.push(19);
        let mut lengths = vec![0u8; 0xa4];
        for t in 1..=0xa4u8 {
            lengths[usize::from(t - 1)] = u8::try_from(default_post_header_len(t)).unwrap_or(0);
        }
        lengths[usize::from(event_type::FORMAT_DESCRIPTION - 1)] = u8::try_from(FIXED_LEN + 0xa4).unwrap_or(0);
        body.extend_from_slice(&lengths);
        body.push(alg);
        let size = u32::try_from(HEADER_LEN + body.len() + 4).unwrap_or(0);
        let mut event = Vec::new();
        event.extend_from_slice(&0u32.to_le_bytes());
        event.push(event_type::FORMAT_DESCRIPTION);
        event.extend_from_slice(&1u32.to_le_bytes());
        event.extend_from_slice(&size.to_le_bytes());
        event.extend_from_slice(&size.to_le_bytes());
        event.extend_from_slice(&0u16.to_le_bytes());
        event.extend_from_slice(&body);
        let crc = crc32(&event);
        event.extend_from_slice(&crc.to_le_bytes());
        event
    }

    #[test]
    fn a_mariadb_format_description_announces_crc32() {
        let fde = FormatDescription::parse_event(&fde_bytes("10.11.6-MariaDB-log", 1));
        let fde = fde.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fde.checksum, ChecksumAlg::Crc32);
        assert_eq!(fde.server_version, "10.11.6-MariaDB-log");
        assert_eq!(fde.post_header_lengths.len(), 0xa4);
        assert_eq!(fde.post_header_len(event_type::QUERY), 13);
    }

    #[test]
    fn a_format_description_with_checksums_off_still_ends_in_four_crc_bytes() {
        let fde = FormatDescription::parse_event(&fde_bytes("8.0.36", 0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fde.checksum, ChecksumAlg::Off);
        assert_eq!(fde.post_header_lengths.len(), 0xa4);
    }

    #[test]
    fn a_corrupt_format_description_is_a_checksum_error() {
        let mut bytes = fde_bytes("10.11.6-MariaDB-log", 1);
        bytes[30] ^= 0x40;
        assert!(matches!(FormatDescription::parse_event(&bytes), Err(BinlogError::Checksum { .. })));
    }

    #[test]
    fn a_format_description_cut_short_is_inconsistent() {
        let mut bytes = fde_bytes("10.11.6-MariaDB-log", 0);
        bytes.drain(100..110);
        let size = u32::try_from(bytes.len()).unwrap_or(0).to_le_bytes();
        bytes[9..13].copy_from_slice(&size);
        assert!(FormatDescription::parse_event(&bytes).is_err());
    }

    #[test]
    fn checksum_byte_presence_follows_the_server_version() {
        assert!(has_checksum_byte("5.6.1"));
        assert!(!has_checksum_byte("5.6.0-log"));
        assert!(!has_checksum_byte("5.5.40"));
        assert!(has_checksum_byte("5.5.40-MariaDB"));
        assert!(!has_checksum_byte("5.2.1-MariaDB"));
        assert!(has_checksum_byte("8.0.36"));
        assert!(has_checksum_byte("10.11.6-MariaDB-log"));
    }

    #[test]
    fn an_old_server_has_no_checksum_trailer() {
        let mut bytes = fde_bytes("5.5.40", 1);
        // Without the algorithm byte and CRC every remaining byte is a post-header length.
        bytes.truncate(bytes.len() - 5);
        let size = u32::try_from(bytes.len()).unwrap_or(0).to_le_bytes();
        bytes[9..13].copy_from_slice(&size);
        let fde = FormatDescription::parse_event(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fde.checksum, ChecksumAlg::Off);
        assert_eq!(fde.post_header_lengths.len(), 0xa4);
    }
}
