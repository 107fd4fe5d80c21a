//! The PostgreSQL change stream as a [`Source`]: `START_REPLICATION` with pgoutput on turnout's slot,
//! decoded by [`PgOutputDecoder`], acknowledged through standby status updates.
//!
//! Acknowledgement: [`Source::acknowledge`] reports the durable position as write/flush/apply;
//! [`Source::acknowledge_idle`] may report the newest message received (XLogData start or a
//! heartbeat's position) when the pipeline has nothing pending; the replication client additionally
//! raises an idle report to the newest keepalive's WAL end (see [`turnout_connect::pg::client`]).
//! Reported positions never move back.

use super::origin_filter::OriginFilter;
use crate::error::Error;
use crate::source::{Source, SourceMessage};
use std::time::Duration;
use turnout_connect::pg::{ConnectOptions, PgConnection, ReplicationStream, StartReplication, StreamMessage};
use turnout_decoders::pg::wire::StandbyPositions;
use turnout_decoders::pg::PgOutputDecoder;
use turnout_decoders::{ChangeEvent, DecodeError, Lsn, Position};
use turnout_sinks::Durable;

/// A running logical-replication stream from blue.
#[derive(Debug)]
pub struct PgSource {
    stream: ReplicationStream,
    decoder: PgOutputDecoder,
    /// The newest XLogData start, or heartbeat message position, received.
    last_start: Lsn,
    /// Silence longer than this means the connection is dead (blue sends keepalives well within it).
    receive_timeout: Duration,
    /// On the reverse stream: drops what turnout's forward apply wrote.
    filter: Option<OriginFilter>,
}

impl PgSource {
    /// Starts streaming `publication` from `slot`, sending every transaction that commits after
    /// `from` (the position durable on green). With `skip_origin`, no row change replayed through
    /// that replication origin is passed on (see [`OriginFilter`]).
    pub async fn start(
        source: &ConnectOptions,
        slot: &str,
        publication: &str,
        from: Lsn,
        receive_timeout: Duration,
        skip_origin: Option<&str>,
    ) -> Result<PgSource, Error> {
        // PostgreSQL 16+ also drops them on the server, with every other origin's; before 16 the
        // stream takes transactions whole ([`Opening::Replicate`]).
        Self::open(source, slot, publication, from, receive_timeout, skip_origin, Opening::Replicate { origin_none: skip_origin.is_some() }).await
    }

    /// [`PgSource::start`] for the watch for writes that are not turnout's ([`crate::watch`]): only
    /// the changes replayed through `own_origin` are dropped, on the client — a change another
    /// origin replayed (someone else's subscription) is not turnout's either. Large transactions are
    /// not streamed in progress: a transaction's origin is known to the server only at its commit,
    /// so the first segment of a streamed one carries none and turnout's own would pass the filter.
    pub async fn watching(
        source: &ConnectOptions,
        slot: &str,
        publication: &str,
        from: Lsn,
        receive_timeout: Duration,
        own_origin: &str,
    ) -> Result<PgSource, Error> {
        Self::open(source, slot, publication, from, receive_timeout, Some(own_origin), Opening::Watch).await
    }

    async fn open(
        source: &ConnectOptions,
        slot: &str,
        publication: &str,
        from: Lsn,
        receive_timeout: Duration,
        skip_origin: Option<&str>,
        opening: Opening,
    ) -> Result<PgSource, Error> {
        let conn = PgConnection::connect(source, true).await.map_err(Error::Source)?;
        let mut start = StartReplication::new(slot, vec![publication.to_owned()]);
        start.start = from;
        match opening {
            Opening::Replicate { origin_none } => {
                start.origin_none = origin_none;
                // Before PostgreSQL 16 the origin is dropped on the client only, by the Origin
                // message, which a transaction streamed in progress sends only at its commit: its
                // first segments would pass. Such a stream takes transactions whole.
                if origin_none && conn.server_version_num().is_some_and(|v| v < 160_000) {
                    start.streaming = false;
                }
            }
            Opening::Watch => start.streaming = false,
        }
        let mut stream = conn.start_replication(&start).await.map_err(Error::Source)?;
        stream.set_positions(StandbyPositions { write: from, flush: from, apply: from });
        tracing::debug!(start = %from, "streaming");
        Ok(PgSource { stream, decoder: PgOutputDecoder::new(), last_start: from, receive_timeout, filter: skip_origin.map(OriginFilter::new) })
    }

    fn handle(&mut self, msg: StreamMessage) -> Result<SourceMessage, Error> {
        match msg {
            StreamMessage::Data { wal_start, wal_end, data, .. } => {
                self.last_start = self.last_start.max(wal_start);
                let log_end = Position::Pg(wal_end);
                match self.decoder.decode(&data).map_err(Error::Source)? {
                    Some(event) if self.filter.as_mut().is_some_and(|f| !f.keep(&event)) => Ok(SourceMessage::LogEnd(log_end)),
                    Some(event) => {
                        if let ChangeEvent::Heartbeat { position: Position::Pg(at), .. } = &event {
                            self.last_start = self.last_start.max(*at);
                        }
                        Ok(SourceMessage::Event { event, log_end: Some(log_end) })
                    }
                    None => Ok(SourceMessage::LogEnd(log_end)),
                }
            }
            StreamMessage::Keepalive { wal_end, .. } => Ok(SourceMessage::LogEnd(Position::Pg(wal_end))),
        }
    }

    fn report(&mut self, at: Lsn) {
        self.stream.set_positions(StandbyPositions { write: at, flush: at, apply: at });
    }
}

/// How a stream is opened: to replicate (with PostgreSQL 16's server-side `origin = none` or not),
/// or to watch for writes that are not turnout's.
#[derive(Clone, Copy, Debug)]
enum Opening {
    Replicate { origin_none: bool },
    Watch,
}

/// The LSN of a durable position (a PostgreSQL stream only ever applies PostgreSQL positions).
fn lsn_of(durable: &Durable) -> Option<Lsn> {
    durable.position().lsn()
}

impl Source for PgSource {
    async fn recv(&mut self) -> Result<SourceMessage, Error> {
        let msg = tokio::time::timeout(self.receive_timeout, self.stream.recv())
            .await
            .map_err(|_| {
                Error::Source(DecodeError::Closed(format!(
                    " (nothing received for {:?}, not even a keepalive: the connection is presumed dead; source.receive_timeout)",
                    self.receive_timeout
                )))
            })?
            .map_err(Error::Source)?;
        self.handle(msg)
    }

    fn try_recv(&mut self) -> Result<Option<SourceMessage>, Error> {
        match self.stream.try_recv_buffered().map_err(Error::Source)? {
            Some(msg) => self.handle(msg).map(Some),
            None => Ok(None),
        }
    }

    fn acknowledge(&mut self, durable: &Durable) {
        if let Some(at) = lsn_of(durable) {
            self.report(at);
        }
    }

    fn acknowledge_idle(&mut self, durable: &Durable) {
        let Some(at) = lsn_of(durable) else { return };
        let to = self.last_start.max(at);
        if self.stream.reported().flush < to {
            self.report(to);
        }
    }

    async fn keepalive(&mut self) -> Result<(), Error> {
        self.stream.send_status(false).await.map_err(Error::Source)
    }

    async fn close(self) -> Result<(), Error> {
        self.stream.close().await.map_err(Error::Source)
    }
}
