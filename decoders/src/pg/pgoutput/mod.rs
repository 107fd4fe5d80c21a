//! The pgoutput plugin's messages (PostgreSQL documentation, "Logical Replication Message Formats",
//! protocol versions 1–4), parsed without I/O.
//!
//! Each XLogData payload carries exactly one message. [`parse`] reads it into a [`PgOutputMessage`]
//! that borrows column data from the input buffer (zero copy). Inside a streamed transaction (between
//! Stream Start and Stream Stop) data messages carry the transaction id first; the caller says whether it
//! is inside one.

mod dml;
mod message;
mod relation;
mod stream;
mod twophase;
mod txn;

pub use dml::{Delete, Insert, OldTuple, Truncate, TupleData, TupleValue, Update};
pub use message::LogicalMessage;
pub use relation::{Relation, RelationColumn, TypeMessage};
pub use stream::{StreamAbort, StreamCommit, StreamStart};
pub use twophase::{BeginPrepare, CommitPrepared, Prepare, RollbackPrepared};
pub use txn::{Begin, Commit, Origin};

use super::cursor::Cursor;
use crate::error::DecodeError;
use bytes::Bytes;

/// One pgoutput message.
#[derive(Clone, Debug, PartialEq)]
pub enum PgOutputMessage {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin),
    Relation(Relation),
    Type(TypeMessage),
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    Truncate(Truncate),
    Message(LogicalMessage),
    StreamStart(StreamStart),
    StreamStop,
    StreamCommit(StreamCommit),
    StreamAbort(StreamAbort),
    BeginPrepare(BeginPrepare),
    /// Prepare (`P`) and Stream Prepare (`p`) share one layout; `streamed` tells them apart.
    Prepare(Prepare),
    CommitPrepared(CommitPrepared),
    RollbackPrepared(RollbackPrepared),
}

impl PgOutputMessage {
    /// The message type byte.
    pub fn tag(&self) -> u8 {
        match self {
            PgOutputMessage::Begin(_) => b'B',
            PgOutputMessage::Commit(_) => b'C',
            PgOutputMessage::Origin(_) => b'O',
            PgOutputMessage::Relation(_) => b'R',
            PgOutputMessage::Type(_) => b'Y',
            PgOutputMessage::Insert(_) => b'I',
            PgOutputMessage::Update(_) => b'U',
            PgOutputMessage::Delete(_) => b'D',
            PgOutputMessage::Truncate(_) => b'T',
            PgOutputMessage::Message(_) => b'M',
            PgOutputMessage::StreamStart(_) => b'S',
            PgOutputMessage::StreamStop => b'E',
            PgOutputMessage::StreamCommit(_) => b'c',
            PgOutputMessage::StreamAbort(_) => b'A',
            PgOutputMessage::BeginPrepare(_) => b'b',
            PgOutputMessage::Prepare(p) if p.streamed => b'p',
            PgOutputMessage::Prepare(_) => b'P',
            PgOutputMessage::CommitPrepared(_) => b'K',
            PgOutputMessage::RollbackPrepared(_) => b'r',
        }
    }
}

/// Parses one pgoutput message. `in_stream` is true between Stream Start and Stream Stop, where data
/// messages carry a leading transaction id.
///
/// Never panics and never allocates more than the input's size: malformed or truncated input is a
/// [`DecodeError::Malformed`] naming the tag and byte offset.
pub fn parse(data: &Bytes, in_stream: bool) -> Result<PgOutputMessage, DecodeError> {
    let Some(&tag) = data.first() else {
        return Err(DecodeError::Malformed { context: "pgoutput", tag: '?', offset: 0, reason: "empty message".into() });
    };
    let mut c = Cursor::new(data, 1, "pgoutput", char::from(tag));
    let msg = match tag {
        b'B' => PgOutputMessage::Begin(Begin::parse(&mut c)?),
        b'C' => PgOutputMessage::Commit(Commit::parse(&mut c)?),
        b'O' => PgOutputMessage::Origin(Origin::parse(&mut c)?),
        b'R' => PgOutputMessage::Relation(Relation::parse(&mut c, in_stream)?),
        b'Y' => PgOutputMessage::Type(TypeMessage::parse(&mut c, in_stream)?),
        b'I' => PgOutputMessage::Insert(Insert::parse(&mut c, in_stream)?),
        b'U' => PgOutputMessage::Update(Update::parse(&mut c, in_stream)?),
        b'D' => PgOutputMessage::Delete(Delete::parse(&mut c, in_stream)?),
        b'T' => PgOutputMessage::Truncate(Truncate::parse(&mut c, in_stream)?),
        b'M' => PgOutputMessage::Message(LogicalMessage::parse(&mut c, in_stream)?),
        b'S' => PgOutputMessage::StreamStart(StreamStart::parse(&mut c)?),
        b'E' => PgOutputMessage::StreamStop,
        b'c' => PgOutputMessage::StreamCommit(StreamCommit::parse(&mut c)?),
        b'A' => PgOutputMessage::StreamAbort(StreamAbort::parse(&mut c)?),
        b'b' => PgOutputMessage::BeginPrepare(BeginPrepare::parse(&mut c)?),
        b'P' => PgOutputMessage::Prepare(Prepare::parse(&mut c, false)?),
        b'p' => PgOutputMessage::Prepare(Prepare::parse(&mut c, true)?),
        b'K' => PgOutputMessage::CommitPrepared(CommitPrepared::parse(&mut c)?),
        b'r' => PgOutputMessage::RollbackPrepared(RollbackPrepared::parse(&mut c)?),
        _ => {
            return Err(DecodeError::Malformed {
                context: "pgoutput",
                tag: char::from(tag),
                offset: 0,
                reason: format!("unknown message type byte 0x{tag:02x}"),
            })
        }
    };
    c.finish()?;
    Ok(msg)
}

/// Reads the transaction id that leads data messages inside a streamed transaction.
fn stream_xid(c: &mut Cursor<'_>, in_stream: bool) -> Result<Option<u32>, DecodeError> {
    if in_stream {
        Ok(Some(c.u32("streamed transaction id")?))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
