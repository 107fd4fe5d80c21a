//! Streamed in-progress transactions (protocol 2+): Stream Start (`S`), Stream Stop (`E`, no body),
//! Stream Commit (`c`) and Stream Abort (`A`).

use super::super::cursor::Cursor;
use crate::error::DecodeError;
use crate::position::{Lsn, Timestamp};

/// `S`: Int32 xid, Int8 1 when this is the transaction's first segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamStart {
    pub xid: u32,
    pub first_segment: bool,
}

impl StreamStart {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(StreamStart { xid: c.u32("xid")?, first_segment: c.u8("first segment flag")? == 1 })
    }
}

/// `c`: Int32 xid, Int8 flags, Int64 commit LSN, Int64 end LSN, Int64 commit timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamCommit {
    pub xid: u32,
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_ts: Timestamp,
}

impl StreamCommit {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(StreamCommit {
            xid: c.u32("xid")?,
            flags: c.u8("flags")?,
            commit_lsn: Lsn(c.u64("commit LSN")?),
            end_lsn: Lsn(c.u64("end LSN")?),
            commit_ts: Timestamp::from_pg_micros(c.i64("commit timestamp")?),
        })
    }
}

/// `A`: Int32 xid, Int32 subtransaction xid; with protocol 4 and `streaming = parallel` also Int64 abort
/// LSN and Int64 abort timestamp. Their presence is read from the message length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamAbort {
    pub xid: u32,
    pub subxid: u32,
    pub abort_lsn: Option<Lsn>,
    pub abort_ts: Option<Timestamp>,
}

impl StreamAbort {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        let xid = c.u32("xid")?;
        let subxid = c.u32("subtransaction xid")?;
        let (abort_lsn, abort_ts) = match c.remaining() {
            0 => (None, None),
            _ => (Some(Lsn(c.u64("abort LSN")?)), Some(Timestamp::from_pg_micros(c.i64("abort timestamp")?))),
        };
        Ok(StreamAbort { xid, subxid, abort_lsn, abort_ts })
    }
}
