//! Logical decoding message (`M`), written by `pg_logical_emit_message`.

use super::super::cursor::Cursor;
use super::stream_xid;
use crate::error::DecodeError;
use crate::position::Lsn;
use bytes::Bytes;

/// `M`: [Int32 xid], Int8 flags (1 = transactional), Int64 LSN, String prefix, Int32 length, content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalMessage {
    pub xid: Option<u32>,
    pub transactional: bool,
    pub lsn: Lsn,
    pub prefix: String,
    pub content: Bytes,
}

impl LogicalMessage {
    pub(super) fn parse(c: &mut Cursor<'_>, in_stream: bool) -> Result<Self, DecodeError> {
        let xid = stream_xid(c, in_stream)?;
        let flags = c.u8("flags")?;
        let lsn = Lsn(c.u64("message LSN")?);
        let prefix = c.cstr("prefix")?;
        let n = c.length("content length")?;
        let content = c.bytes(n, "content")?;
        Ok(LogicalMessage { xid, transactional: flags & 1 == 1, lsn, prefix, content })
    }
}
