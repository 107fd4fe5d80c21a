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
        let f = PreparedFields::parse(c, "prepare")?;
        Ok(Prepare { streamed, flags: f.flags, prepare_lsn: f.lsn, end_lsn: f.end_lsn, prepare_ts: f.ts, xid: f.xid, gid: f.gid })
    }
}

/// The layout shared by Prepare, Stream Prepare and Commit Prepared: Int8 flags, Int64 LSN, Int64 end
/// LSN, Int64 timestamp, Int32 xid, String GID.
struct PreparedFields {
    flags: u8,
    lsn: Lsn,
    end_lsn: Lsn,
    ts: Timestamp,
    xid: u32,
    gid: String,
}

impl PreparedFields {
    fn parse(c: &mut Cursor<'_>, kind: &'static str) -> Result<Self, DecodeError> {
        Ok(PreparedFields {
            flags: c.u8("flags")?,
            lsn: Lsn(c.u64(if kind == "commit" { "commit LSN" } else { "prepare LSN" })?),
            end_lsn: Lsn(c.u64("end LSN")?),
            ts: Timestamp::from_pg_micros(c.i64(if kind == "commit" { "commit timestamp" } else { "prepare timestamp" })?),
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
        let f = PreparedFields::parse(c, "commit")?;
        Ok(CommitPrepared { flags: f.flags, commit_lsn: f.lsn, end_lsn: f.end_lsn, commit_ts: f.ts, xid: f.xid, gid: f.gid })
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
