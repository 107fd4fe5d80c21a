//! The binlog event checksum: CRC-32 (ISO-HDLC, the zlib `crc32()` the server uses), stored as the last
//! four bytes of an event, little-endian, when the format description says `BINLOG_CHECKSUM_ALG_CRC32`.

/// Checksum algorithm byte of a format description event (`enum_binlog_checksum_alg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumAlg {
    /// `BINLOG_CHECKSUM_ALG_OFF` (0), or a server too old to write the algorithm byte.
    Off,
    /// `BINLOG_CHECKSUM_ALG_CRC32` (1).
    Crc32,
    /// `BINLOG_CHECKSUM_ALG_UNDEF` (255): the algorithm is not known yet (before the first real FDE).
    Undefined,
    /// Any other value: events cannot be delimited reliably.
    Other(u8),
}

impl ChecksumAlg {
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => ChecksumAlg::Off,
            1 => ChecksumAlg::Crc32,
            255 => ChecksumAlg::Undefined,
            other => ChecksumAlg::Other(other),
        }
    }

    /// Bytes of checksum at the end of every event.
    pub fn trailer_len(self) -> usize {
        match self {
            ChecksumAlg::Crc32 => 4,
            _ => 0,
        }
    }
}

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i: u32 = 0;
    while i < 256 {
        let mut c = i;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i as usize] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = table();

/// CRC-32 of `bytes` (polynomial 0x04C11DB7 reflected, initial and final XOR 0xFFFFFFFF).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c = TABLE[usize::from(c.to_le_bytes()[0] ^ b)] ^ (c >> 8);
    }
    !c
}

/// True when the last four bytes of `event` are the CRC-32 of the bytes before them.
pub(crate) fn has_valid_trailer(event: &[u8]) -> bool {
    let Some(split) = event.len().checked_sub(4) else { return false };
    let (body, trailer) = event.split_at(split);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(trailer);
    u32::from_le_bytes(stored) == crc32(body)
}

/// Offset of the low byte of the header's flags field.
const FLAGS_OFFSET: usize = 17;
/// `LOG_EVENT_BINLOG_IN_USE_F`: set in the format description of a binlog file that is still open.
const BINLOG_IN_USE: u8 = 0x01;

/// The CRC-32 the server stores in a format description event: computed with the in-use flag cleared,
/// so that clearing the flag when the file is closed leaves the checksum valid (MySQL and MariaDB
/// `Format_description_log_event::write`).
pub(crate) fn format_description_crc(event_without_trailer: &[u8]) -> u32 {
    match event_without_trailer.get(FLAGS_OFFSET) {
        Some(&flags) if flags & BINLOG_IN_USE != 0 => {
            let mut copy = event_without_trailer.to_vec();
            if let Some(b) = copy.get_mut(FLAGS_OFFSET) {
                *b &= !BINLOG_IN_USE;
            }
            crc32(&copy)
        }
        _ => crc32(event_without_trailer),
    }
}

/// True when the last four bytes of a format description event are its checksum (in-use flag cleared).
pub(crate) fn has_valid_format_description_trailer(event: &[u8]) -> bool {
    let Some(split) = event.len().checked_sub(4) else { return false };
    let (body, trailer) = event.split_at(split);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(trailer);
    u32::from_le_bytes(stored) == format_description_crc(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_trailer_is_valid_only_when_it_is_the_crc_of_what_precedes_it() {
        let mut event = b"some event bytes".to_vec();
        let crc = crc32(&event);
        event.extend_from_slice(&crc.to_le_bytes());
        assert!(has_valid_trailer(&event));
        event[0] ^= 1;
        assert!(!has_valid_trailer(&event));
        assert!(!has_valid_trailer(b"abc"));
    }

    #[test]
    fn a_format_description_checksum_ignores_the_in_use_flag() {
        let mut event = vec![0u8; 40];
        let crc = crc32(&event);
        event.extend_from_slice(&crc.to_le_bytes());
        assert!(has_valid_format_description_trailer(&event));
        // The open file: flag set after the checksum was computed without it.
        event[FLAGS_OFFSET] |= BINLOG_IN_USE;
        assert!(!has_valid_trailer(&event));
        assert!(has_valid_format_description_trailer(&event));
        // Any other flag bit still breaks it.
        event[FLAGS_OFFSET] |= 0x02;
        assert!(!has_valid_format_description_trailer(&event));
    }
}
