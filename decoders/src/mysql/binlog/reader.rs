//! A bounds-checked little-endian reader over one binlog event. Every read checks the remaining length
//! first, so truncated input becomes a [`BinlogError::Malformed`] naming the event type and the byte
//! offset inside the event, never a panic; lengths and counts read from the bytes are checked against
//! what is actually left before anything is allocated.

use super::error::BinlogError;

#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` inside the event, for error messages.
    base: usize,
    event_type: u8,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, whose first byte is at `base` inside an event of type `event_type`.
    pub(crate) fn new(buf: &'a [u8], base: usize, event_type: u8) -> Self {
        Reader { buf, pos: 0, base, event_type }
    }

    /// The byte offset inside the event of the next byte to read.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn error(&self, reason: impl Into<String>) -> BinlogError {
        self.error_at(self.offset(), reason)
    }

    pub(crate) fn error_at(&self, offset: usize, reason: impl Into<String>) -> BinlogError {
        BinlogError::Malformed { event_type: self.event_type, offset, reason: reason.into() }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], BinlogError> {
        if self.remaining() < n {
            return Err(self.error(format!("truncated: {what} needs {n} bytes, {} left", self.remaining())));
        }
        let s = self.buf.get(self.pos..self.pos + n).ok_or_else(|| self.error(format!("truncated: {what}")))?;
        self.pos += n;
        Ok(s)
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        s
    }

    /// A reader over the next `n` bytes, which this reader skips.
    pub(crate) fn sub(&mut self, n: usize, what: &str) -> Result<Reader<'a>, BinlogError> {
        let base = self.offset();
        let buf = self.take(n, what)?;
        Ok(Reader { buf, pos: 0, base, event_type: self.event_type })
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], BinlogError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, BinlogError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, BinlogError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, BinlogError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, BinlogError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, BinlogError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// An unsigned little-endian integer of `n` (at most 8) bytes.
    pub(crate) fn uint_le(&mut self, n: usize, what: &str) -> Result<u64, BinlogError> {
        if n > 8 {
            return Err(self.error(format!("{what}: an integer of {n} bytes")));
        }
        Ok(le_uint(self.take(n, what)?))
    }

    /// An unsigned big-endian integer of `n` (at most 8) bytes.
    pub(crate) fn uint_be(&mut self, n: usize, what: &str) -> Result<u64, BinlogError> {
        if n > 8 {
            return Err(self.error(format!("{what}: an integer of {n} bytes")));
        }
        Ok(self.take(n, what)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A length-encoded integer (MySQL "Protocol::LengthEncodedInteger"): one byte below 0xfb, else
    /// 0xfc + 2 bytes, 0xfd + 3 bytes, 0xfe + 8 bytes. 0xfb (NULL) and 0xff are errors here.
    pub(crate) fn lenenc(&mut self, what: &str) -> Result<u64, BinlogError> {
        let at = self.offset();
        match self.u8(what)? {
            b @ 0..=0xfa => Ok(u64::from(b)),
            0xfc => self.uint_le(2, what),
            0xfd => self.uint_le(3, what),
            0xfe => self.uint_le(8, what),
            b => Err(self.error_at(at, format!("{what}: 0x{b:02x} is not a length-encoded integer"))),
        }
    }

    /// A length-encoded count of items that each need at least `min_item_bytes` of what is left.
    pub(crate) fn lenenc_count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize, BinlogError> {
        let at = self.offset();
        let n = self.lenenc(what)?;
        self.check_count(n, at, what, min_item_bytes)
    }

    /// Checks a count `n` read at `at`: each item needs at least `min_item_bytes` of what is left.
    pub(crate) fn check_count(&self, n: u64, at: usize, what: &str, min_item_bytes: usize) -> Result<usize, BinlogError> {
        let too_many = || self.error_at(at, format!("{what} is {n} but only {} bytes are left", self.remaining()));
        let n = usize::try_from(n).map_err(|_| too_many())?;
        if n.saturating_mul(min_item_bytes) > self.remaining() {
            return Err(too_many());
        }
        Ok(n)
    }

    /// A length-encoded length followed by that many bytes.
    pub(crate) fn lenenc_bytes(&mut self, what: &str) -> Result<&'a [u8], BinlogError> {
        let n = self.lenenc_count(what, 1)?;
        self.take(n, what)
    }

    /// A one-byte length followed by that many bytes.
    pub(crate) fn u8_bytes(&mut self, what: &str) -> Result<&'a [u8], BinlogError> {
        let n = self.u8(what)?;
        self.take(usize::from(n), what)
    }

    /// Bytes up to a NUL, which is consumed.
    pub(crate) fn cstr(&mut self, what: &str) -> Result<&'a [u8], BinlogError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(self.error(format!("truncated: {what} has no terminating NUL")));
        };
        let s = self.take(nul, what)?;
        self.pos += 1;
        Ok(s)
    }

    /// `n` bytes that must be UTF-8 (identifiers are written in the server's system character set, utf8).
    pub(crate) fn utf8(&mut self, n: usize, what: &str) -> Result<String, BinlogError> {
        let at = self.offset();
        let bytes = self.take(n, what)?;
        utf8(bytes).map_err(|e| self.error_at(at, format!("{what} is not UTF-8: {e}")))
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self, what: &str) -> Result<(), BinlogError> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{} unexpected trailing bytes after {what}", self.remaining())));
        }
        Ok(())
    }
}

pub(crate) fn utf8(bytes: &[u8]) -> Result<String, std::str::Utf8Error> {
    std::str::from_utf8(bytes).map(str::to_owned)
}

/// A little-endian unsigned integer of up to 8 bytes (longer input keeps the low 8).
pub(crate) fn le_uint(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_encoded_integers_of_every_width_are_read() {
        let bytes = [0xfa, 0xfc, 0x34, 0x12, 0xfd, 1, 2, 3, 0xfe, 1, 0, 0, 0, 0, 0, 0, 0x80];
        let mut r = Reader::new(&bytes, 0, 0x13);
        assert_eq!(r.lenenc("a").ok(), Some(0xfa));
        assert_eq!(r.lenenc("b").ok(), Some(0x1234));
        assert_eq!(r.lenenc("c").ok(), Some(0x030201));
        assert_eq!(r.lenenc("d").ok(), Some(0x8000_0000_0000_0001));
        assert!(r.is_empty());
        assert!(Reader::new(&[0xfb], 0, 0x13).lenenc("null").is_err());
        assert!(Reader::new(&[0xff], 0, 0x13).lenenc("err").is_err());
    }

    #[test]
    fn a_count_larger_than_the_bytes_left_is_an_error_at_its_offset() {
        // 2^40 items of at least one byte each.
        let bytes = [0xfe, 0, 0, 0, 0, 0, 1, 0, 0, 7];
        let mut r = Reader::new(&bytes, 19, 0x13);
        match r.lenenc_count("column count", 1) {
            Err(BinlogError::Malformed { offset, reason, .. }) => {
                assert_eq!(offset, 19);
                assert!(reason.contains("1099511627776"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn big_and_little_endian_integers_of_any_width_are_read() {
        let bytes = [1, 2, 3];
        assert_eq!(Reader::new(&bytes, 0, 0).uint_le(3, "x").ok(), Some(0x030201));
        assert_eq!(Reader::new(&bytes, 0, 0).uint_be(3, "x").ok(), Some(0x010203));
        assert!(Reader::new(&bytes, 0, 0).uint_be(4, "x").is_err());
    }
}
