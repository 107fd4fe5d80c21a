//! The watch's mark ([`crate::watch`]): how a family proves its watch read a side's log up to now.

use crate::error::Error;
use std::future::Future;
use std::pin::Pin;
use turnout_decoders::Position;

/// A session on a watched side that writes marks: opened before the fence, so that a mark inside
/// the write pause costs one statement.
pub trait Marker: Send {
    /// Commits a mark on the side and returns its position in the side's log: a watch that read past
    /// it read everything committed there before.
    fn mark(&mut self) -> Pin<Box<dyn Future<Output = Result<Position, Error>> + Send + '_>>;
}

/// A watched side's log, opened ([`crate::source::family::Family::watch_stream`]).
#[derive(Debug)]
pub struct WatchStream<S> {
    /// The side's log without turnout's own changes.
    pub stream: S,
    /// The position it starts after.
    pub from: Position,
    /// What of the log could not be read since the watch last read (a slot made again): counted as
    /// a foreign write.
    pub unread: Option<String>,
}
