//! The MySQL/MariaDB change stream as a [`Source`]: turnout registers as a replica with its own
//! `server_id` and reads blue's binlog from a GTID state, decoding it with [`BinlogDecoder`].
//!
//! MariaDB: `@mariadb_slave_capability = 4` (real GTID events instead of fake `BEGIN` queries),
//! `@slave_connect_state` = the GTID state durable on green (the server starts just after it; strict
//! mode refuses a state its binlogs do not have), `@master_heartbeat_period` so an idle server still
//! sends heartbeats, then a binlog dump. Events arrive through mysql_async's binlog stream and are
//! re-serialized to their exact bytes, which [`BinlogDecoder`] parses (checksums verified).
//!
//! Acknowledgement: a binlog has no slot; the durable position lives in green's progress row, so
//! acknowledging is a no-op and the server keeps its binlogs by its own retention (`check` warns when
//! that is short).

use crate::error::{Error, Side};
use crate::source::SENTINEL_PREFIX;
use crate::source::{Source, SourceMessage};
use bytes::Bytes;
use mysql_async::prelude::Queryable;
use std::collections::VecDeque;
use std::time::Duration;
use turnout_connect::mysql::{BinlogDump, DumpFrom};
use turnout_decoders::mysql::decoder::{BinlogDecoder, OwnWrites, TableSelector};
use turnout_decoders::{BinlogPosition, ChangeEvent, DecodeError, GtidState, Position};
use turnout_sinks::Durable;

/// A running binlog dump from blue.
pub struct MySqlSource {
    /// The side read.
    side: Side,
    stream: BinlogDump,
    decoder: BinlogDecoder,
    queue: VecDeque<SourceMessage>,
    receive_timeout: Duration,
}

impl std::fmt::Debug for MySqlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSource").field("decoder", &self.decoder).finish_non_exhaustive()
    }
}

/// A driver error on `side` (the side the stream reads), with its code and retry class (the
/// connection's failures are transient).
pub fn source_error(side: Side, context: &str, e: mysql_async::Error) -> Error {
    super::sql_error(side, context, e)
}

/// What a stream of turnout's own drops, how it treats what it cannot replicate, and which side it
/// reads.
#[derive(Clone, Debug)]
pub struct Reading {
    /// Transactions dropped whole: turnout's own writes on the side read (an apply's and its
    /// cutover's), by GTID domain (MariaDB) or tag (Oracle MySQL).
    pub skip: OwnWrites,
    /// The watch for writes that are not turnout's: what a stream refuses is passed on as DDL, to be
    /// counted, instead of stopping it.
    pub watching: bool,
    /// The side whose binlog is read (green for the reverse stream and the watch of green): its
    /// errors name it.
    pub side: Side,
    /// A plain `CREATE TABLE` of a selected table is passed on, for a target that makes the table
    /// from blue's catalog itself (across engines; see [`BinlogDecoder::creating_tables`]).
    pub creating_tables: bool,
}

impl Default for Reading {
    /// Blue's binlog, every transaction passed on.
    fn default() -> Reading {
        Reading { skip: OwnWrites::default(), watching: false, side: Side::Blue, creating_tables: false }
    }
}

impl MySqlSource {
    /// Starts reading blue's binlog just after `gtids`, as replica `server_id`, passing on every
    /// transaction.
    pub async fn start(
        opts: mysql_async::Opts,
        server_id: u32,
        gtids: GtidState,
        selects: TableSelector,
        receive_timeout: Duration,
    ) -> Result<MySqlSource, Error> {
        Self::start_reading(opts, server_id, gtids, selects, Reading::default(), receive_timeout).await
    }

    /// [`MySqlSource::start`], dropping the transactions `reading` names (turnout's own) and, for
    /// the watch for writes that are not turnout's, passing on what a stream refuses (see
    /// [`BinlogDecoder::watching`]).
    pub async fn start_reading(
        opts: mysql_async::Opts,
        server_id: u32,
        gtids: GtidState,
        selects: TableSelector,
        reading: Reading,
        receive_timeout: Duration,
    ) -> Result<MySqlSource, Error> {
        let side = reading.side;
        // The setting the side's DDL ran with where its binlog does not say (MariaDB).
        let mut conn = turnout_connect::mysql::conn::open(&opts).await.map_err(|e| source_error(side, &format!("connecting to {side}"), e))?;
        let explicit_defaults: Option<i64> = conn
            .query_first("SELECT @@GLOBAL.explicit_defaults_for_timestamp")
            .await
            .map_err(|e| source_error(side, "reading explicit_defaults_for_timestamp", e))?;
        let _ = conn.disconnect().await;
        let mut stream =
            BinlogDump::connect(&opts, receive_timeout).await.map_err(|e| source_error(side, &format!("connecting to {side} for the binlog"), e))?;
        // Heartbeats at a third of the receive timeout, so a healthy idle stream is never mistaken for a
        // dead one.
        let heartbeat_ns = (receive_timeout / 3).as_nanos().max(1_000_000_000);
        let gtid_text = gtids.to_string();
        let from = match &gtids {
            GtidState::MariaDb(_) | GtidState::None => {
                stream
                    .execute(&format!(
                        "SET @mariadb_slave_capability = 4, @slave_connect_state = '{}', @slave_gtid_strict_mode = 1, \
                         @slave_gtid_ignore_duplicates = 0, @master_heartbeat_period = {heartbeat_ns}",
                        gtid_text.replace('\'', "")
                    ))
                    .await
                    .map_err(|e| source_error(side, "preparing the binlog dump", e))?;
                DumpFrom::FirstLog
            }
            GtidState::MySql(sets) => {
                // COM_BINLOG_DUMP_GTID: the server sends every transaction not in the set (MySQL 8.4
                // reads the heartbeat period from `source_`, older servers from `master_`).
                stream
                    .execute(&format!("SET @source_heartbeat_period = {heartbeat_ns}, @master_heartbeat_period = {heartbeat_ns}"))
                    .await
                    .map_err(|e| source_error(side, "preparing the binlog dump", e))?;
                DumpFrom::Gtids(sets.clone())
            }
        };
        stream.start(server_id, &from).await.map_err(|e| source_error(side, &format!("requesting {side}'s binlog"), e))?;
        tracing::debug!(server_id, from = %gtid_text, "reading the binlog");
        Ok(MySqlSource {
            side,
            stream,
            decoder: BinlogDecoder::new(gtids, selects)
                .dropping(reading.skip)
                .watching(reading.watching)
                .creating_tables(reading.creating_tables)
                .replicating(opts.db_name().map(str::to_owned).into_iter().collect())
                .with_explicit_defaults_for_timestamp(explicit_defaults.map(|v| v != 0)),
            queue: VecDeque::new(),
            receive_timeout,
        })
    }

    /// Decodes the dump's next item into the queue; a read error or the dump's end is an error.
    fn take(&mut self, next: Result<Option<Bytes>, mysql_async::Error>) -> Result<(), Error> {
        match next {
            Ok(Some(raw)) => self.decode(&raw),
            Err(e) => Err(source_error(self.side, &format!("reading {}'s binlog", self.side), e)),
            Ok(None) => Err(Error::Source(DecodeError::Closed(format!(" ({} ended the binlog dump)", self.side)))),
        }
    }

    /// Decodes one event from the dump into the queue.
    fn decode(&mut self, raw: &[u8]) -> Result<(), Error> {
        let decoded = self.decoder.decode(raw).map_err(Error::Source)?;
        let mut log_end = decoded.log_end;
        for event in decoded.events {
            let sentinel = crate::source::sentinel_from_table(&event);
            self.queue.push_back(SourceMessage::Event { event, log_end: log_end.take() });
            if let Some(id) = sentinel {
                // The sentinel row's change becomes the sentinel message of its transaction.
                let position = Position::Binlog(BinlogPosition { file: self.decoder.file().to_owned(), offset: 0, gtids: self.decoder.gtids().clone() });
                let event = ChangeEvent::Message { xid: None, transactional: true, position, prefix: SENTINEL_PREFIX.into(), content: id.into_bytes().into() };
                self.queue.push_back(SourceMessage::Event { event, log_end: None });
            }
        }
        if let Some(end) = log_end {
            self.queue.push_back(SourceMessage::LogEnd(end));
        }
        Ok(())
    }
}

impl Source for MySqlSource {
    async fn recv(&mut self) -> Result<SourceMessage, Error> {
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Ok(m);
            }
            let next = tokio::time::timeout(self.receive_timeout, self.stream.next_event()).await.map_err(|_| {
                Error::Source(DecodeError::Closed(format!(
                    " (nothing from blue's binlog for {:?}, not even a heartbeat: the connection is presumed dead; source.receive_timeout)",
                    self.receive_timeout
                )))
            })?;
            self.take(next)?;
        }
    }

    /// Decodes events that already arrived (polls the dump without waiting), so the pipeline takes
    /// everything received in one go instead of one event per wake-up.
    fn try_recv(&mut self) -> Result<Option<SourceMessage>, Error> {
        while self.queue.is_empty() {
            match self.stream.try_next_event().transpose() {
                None => return Ok(None),
                Some(next) => self.take(next)?,
            }
        }
        Ok(self.queue.pop_front())
    }

    fn acknowledge(&mut self, _durable: &Durable) {}

    fn acknowledge_idle(&mut self, _durable: &Durable) {}

    async fn keepalive(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn close(self) -> Result<(), Error> {
        // Closing the dump connection ends it; a clean close is not required by the server.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.close()).await;
        Ok(())
    }
}
