//! A bounds-checked reader over one received message. Every read checks the remaining length first, so
//! truncated input becomes a [`DecodeError::Malformed`] naming the byte offset, never a panic; lengths
//! read from the wire are validated against what is actually left before anything is allocated.

use crate::error::DecodeError;
use bytes::Bytes;

pub(crate) struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
    context: &'static str,
    tag: char,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a Bytes, start: usize, context: &'static str, tag: char) -> Self {
        Cursor { buf, pos: start, context, tag }
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::Malformed { context: self.context, tag: self.tag, offset: self.pos, reason: reason.into() }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.error(format!("truncated: {what} needs {n} bytes, {} left", self.remaining())));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A zero-copy slice of `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(self.error(format!("truncated: {what} needs {n} bytes, {} left", self.remaining())));
        }
        let s = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(s)
    }

    /// A length read from the wire (`i32`), checked to be non-negative and to fit in what is left.
    pub(crate) fn length(&mut self, what: &str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.i32(what)?;
        let n = usize::try_from(n).map_err(|_| {
            let mut e = self.error(format!("{what} is negative ({n})"));
            if let DecodeError::Malformed { offset, .. } = &mut e {
                *offset = at;
            }
            e
        })?;
        if n > self.remaining() {
            return Err(DecodeError::Malformed {
                context: self.context,
                tag: self.tag,
                offset: at,
                reason: format!("{what} is {n} bytes but only {} are left", self.remaining()),
            });
        }
        Ok(n)
    }

    /// A count read from the wire (`i16`), checked to be non-negative and plausible given that each
    /// counted item needs at least `min_item_bytes` of the remaining input.
    pub(crate) fn count16(&mut self, what: &str, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.i16(what)?;
        self.check_count(i64::from(n), at, what, min_item_bytes)
    }

    /// As [`Cursor::count16`] for an `i32` count.
    pub(crate) fn count32(&mut self, what: &str, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.i32(what)?;
        self.check_count(i64::from(n), at, what, min_item_bytes)
    }

    fn check_count(&self, n: i64, at: usize, what: &str, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let bad = |reason: String| DecodeError::Malformed { context: self.context, tag: self.tag, offset: at, reason };
        let n = usize::try_from(n).map_err(|_| bad(format!("{what} is negative ({n})")))?;
        if n.saturating_mul(min_item_bytes) > self.remaining() {
            return Err(bad(format!("{what} is {n} but only {} bytes are left", self.remaining())));
        }
        Ok(n)
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self, what: &str) -> Result<String, DecodeError> {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(self.error(format!("truncated: {what} has no terminating NUL")));
        };
        let s = std::str::from_utf8(&rest[..nul]).map_err(|e| self.error(format!("{what} is not UTF-8: {e}")))?.to_owned();
        self.pos += nul + 1;
        Ok(s)
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{} unexpected trailing bytes", self.remaining())));
        }
        Ok(())
    }
}
