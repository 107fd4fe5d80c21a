//! Two-phase commit (protocol 3+): Begin Prepare (`b`), Prepare (`P`), Commit Prepared (`K`),
//! Rollback Prepared (`r`) and Stream Prepare (`p`).

use super::super::cursor::Cursor;
use crate::error::DecodeError;
use crate::position::{Lsn, Timestamp};

/// `b`: Int64 prepare LSN, Int64 end LSN, Int64 prepare timestamp, Int32 xid, String GID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeginPrepare {
    pub prepare_lsn: Lsn,
    pub end_lsn: Lsn,
    pub prepare_ts: Timestamp,
    pub xid: u32,
    pub gid: String,
}

impl BeginPrepare {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(BeginPrepare {
            prepare_lsn: Lsn(c.u64("prepare LSN")?),
            end_lsn: Lsn(c.u64("end LSN")?),
            prepare_ts: Timestamp::from_pg_micros(c.i64("prepare timestamp")?),
            xid: c.u32("xid")?,
            gid: c.cstr("gid")?,
        })
    }
}

/// `P` / `p`: Int8 flags, Int64 prepare LSN, Int64 end LSN, Int64 prepare timestamp, Int32 xid,
/// String GID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepare {
    pub streamed: bool,
    pub flags: u8,
    pub prepare_lsn: Lsn,
    pub end_lsn: Lsn,
    pub prepare_ts: Timestamp,
    pub xid: u32,
    pub gid: String,
}

impl Prepare {
    pub(super) fn parse(c: &mut Cursor<'_>, streamed: bool) -> Result<Self, DecodeError> {
        Ok(Prepare {
            streamed,
            flags: c.u8("flags")?,
            prepare_lsn: Lsn(c.u64("prepare LSN")?),
            end_lsn: Lsn(c.u64("end LSN")?),
            prepare_ts: Timestamp::from_pg_micros(c.i64("prepare timestamp")?),
            xid: c.u32("xid")?,
            gid: c.cstr("gid")?,
        })
    }
}

/// `K`: Int8 flags, Int64 commit LSN, Int64 end LSN, Int64 commit timestamp, Int32 xid, String GID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPrepared {
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_ts: Timestamp,
    pub xid: u32,
    pub gid: String,
}

impl CommitPrepared {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(CommitPrepared {
            flags: c.u8("flags")?,
            commit_lsn: Lsn(c.u64("commit LSN")?),
            end_lsn: Lsn(c.u64("end LSN")?),
            commit_ts: Timestamp::from_pg_micros(c.i64("commit timestamp")?),
            xid: c.u32("xid")?,
            gid: c.cstr("gid")?,
        })
    }
}

/// `r`: Int8 flags, Int64 prepare end LSN, Int64 rollback end LSN, Int64 prepare timestamp,
/// Int64 rollback timestamp, Int32 xid, String GID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackPrepared {
    pub flags: u8,
    pub prepare_end_lsn: Lsn,
    pub rollback_end_lsn: Lsn,
    pub prepare_ts: Timestamp,
    pub rollback_ts: Timestamp,
    pub xid: u32,
    pub gid: String,
}

impl RollbackPrepared {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(RollbackPrepared {
            flags: c.u8("flags")?,
            prepare_end_lsn: Lsn(c.u64("prepare end LSN")?),
            rollback_end_lsn: Lsn(c.u64("rollback end LSN")?),
            prepare_ts: Timestamp::from_pg_micros(c.i64("prepare timestamp")?),
            rollback_ts: Timestamp::from_pg_micros(c.i64("rollback timestamp")?),
            xid: c.u32("xid")?,
            gid: c.cstr("gid")?,
        })
    }
}
