//! MariaDB's compressed columns (`VARCHAR … COMPRESSED`, `BLOB … COMPRESSED`): the binlog carries a
//! value as the server stores it, a header byte followed by the data (MariaDB `Field_longstr::compress`,
//! `field_comp.cc`):
//!
//! - an empty value is zero bytes, without a header;
//! - header `0x00`: the rest is the value, stored uncompressed (too short to gain);
//! - header `0x8N` / `0x8N | 0x08`: method 8 (zlib); the low 3 bits `N` (1–4) are how many big-endian
//!   bytes of original length follow, then the zlib stream — or, with bit 3 set
//!   (`column_compression_zlib_wrap = OFF`), a raw deflate stream.
//!
//! The decompressed length must equal the stored original length, and output is bounded by it.

use std::io::Read;

/// The only compression method MariaDB has (its id in the header's upper four bits).
const ZLIB: u8 = 8;

/// A compressed column's stored bytes as the value they hold.
pub(crate) fn uncompress(stored: &[u8]) -> Result<Vec<u8>, String> {
    let Some((&header, rest)) = stored.split_first() else { return Ok(Vec::new()) };
    match header >> 4 {
        0 if header == 0 => return Ok(rest.to_vec()),
        ZLIB => {}
        method => return Err(format!("header byte 0x{header:02x}: compression method {method} is not zlib (8), the only one MariaDB writes")),
    }
    let length_bytes = usize::from(header & 0x07);
    if !(1..=4).contains(&length_bytes) || rest.len() < length_bytes {
        return Err(format!("header byte 0x{header:02x} gives {length_bytes} length bytes and {} bytes follow", rest.len()));
    }
    let (length, data) = rest.split_at(length_bytes);
    let original = length.iter().fold(0u64, |n, b| n << 8 | u64::from(*b));
    let mut out = Vec::with_capacity(usize::try_from(original).unwrap_or(0).min(1 << 20));
    let limit = original + 1;
    let read = if header & 0x08 != 0 {
        flate2::read::DeflateDecoder::new(data).take(limit).read_to_end(&mut out)
    } else {
        flate2::read::ZlibDecoder::new(data).take(limit).read_to_end(&mut out)
    };
    read.map_err(|e| format!("inflating: {e}"))?;
    if out.len() as u64 != original {
        return Err(format!("inflated to {} bytes where the header says {original}", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ok(stored: &[u8]) -> Vec<u8> {
        uncompress(stored).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(stored: &[u8]) -> String {
        uncompress(stored).err().unwrap_or_else(|| panic!("{stored:?} was accepted"))
    }

    /// `value` as MariaDB stores it compressed: two bytes of original length (so `value` is shorter
    /// than 64 KiB), zlib or raw deflate.
    fn stored(value: &[u8], raw: bool) -> Vec<u8> {
        let len = u16::try_from(value.len()).unwrap_or_else(|e| panic!("{e}"));
        let mut out = vec![0x80 | if raw { 0x08 } else { 0 } | 2];
        out.extend_from_slice(&len.to_be_bytes());
        let written = if raw {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(value).and_then(|()| e.finish())
        } else {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(value).and_then(|()| e.finish())
        };
        out.extend(written.unwrap_or_else(|e| panic!("{e}")));
        out
    }

    #[test]
    fn empty_uncompressed_zlib_and_raw_deflate_values() {
        assert_eq!(ok(&[]), b"");
        assert_eq!(ok(&[0, b'h', b'i']), b"hi");
        assert_eq!(ok(&[0]), b"");
        let value = b"abc".repeat(300);
        assert_eq!(ok(&stored(&value, false)), value);
        assert_eq!(ok(&stored(&value, true)), value);
    }

    #[test]
    fn wrong_methods_lengths_and_streams_are_errors() {
        assert!(err(&[0x90, 1, 0]).contains("method 9"));
        assert!(err(&[0x01, b'x']).contains("method 0"));
        err(&[0x80]); // zero length bytes
        err(&[0x85, 0, 0, 0, 0, 1]); // five length bytes
        err(&[0x82, 0]); // the length cut short
        let mut longer = stored(b"0123456789", false);
        longer[2] = 5; // the header claims 5 bytes, the stream holds 10
        assert!(err(&longer).contains("header says 5"));
        let mut cut = stored(&b"x".repeat(1000), false);
        cut.truncate(cut.len() - 4);
        err(&cut); // a truncated stream
        err(&[0x81, 3, 1, 2, 3]); // garbage after the header
    }
}
