//! Begin (`B`), Commit (`C`) and Origin (`O`).

use super::super::cursor::Cursor;
use crate::error::DecodeError;
use crate::position::{Lsn, Timestamp};

/// `B`: Int64 final LSN of the transaction, Int64 commit timestamp, Int32 xid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Begin {
    pub final_lsn: Lsn,
    pub commit_ts: Timestamp,
    pub xid: u32,
}

impl Begin {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(Begin { final_lsn: Lsn(c.u64("final LSN")?), commit_ts: Timestamp::from_pg_micros(c.i64("commit timestamp")?), xid: c.u32("xid")? })
    }
}

/// `C`: Int8 flags (unused), Int64 commit LSN, Int64 end LSN, Int64 commit timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_ts: Timestamp,
}

impl Commit {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(Commit {
            flags: c.u8("flags")?,
            commit_lsn: Lsn(c.u64("commit LSN")?),
            end_lsn: Lsn(c.u64("end LSN")?),
            commit_ts: Timestamp::from_pg_micros(c.i64("commit timestamp")?),
        })
    }
}

/// `O`: Int64 commit LSN on the origin server, String origin name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub origin_lsn: Lsn,
    pub name: String,
}

impl Origin {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(Origin { origin_lsn: Lsn(c.u64("origin LSN")?), name: c.cstr("origin name")? })
    }
}
