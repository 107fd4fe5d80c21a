//! The PostgreSQL connector: TCP (optionally TLS), startup, authentication (trust, cleartext, md5,
//! SCRAM-SHA-256), simple queries, replication commands and the `START_REPLICATION` copy-both stream
//! with keepalive replies and caller-controlled acknowledgements.
//!
//! tokio-postgres has no replication mode, so this speaks the protocol directly on postgres-protocol's
//! message writers and the sans-IO [`wire`] parser of `turnout-decoders`.
//!
//! **Acknowledgement guarantee**: a [`ReplicationStream`] reports to the server only the write, flush and
//! apply positions its caller set with [`ReplicationStream::set_positions`]. The one exception lets an
//! idle slot advance: when the caller's flush position is at or past the start of every XLogData
//! received so far (nothing received is pending), the flush position reported may be raised to the
//! WAL end of the newest keepalive, which the server sends only after every transaction committed
//! before that point. Reported positions never move backwards.

use super::conninfo::{ConnectOptions, SslMode};
use super::tls;
use crate::transport::Transport;
use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use turnout_decoders::error::{DecodeError, ServerError};
use turnout_decoders::pg::wire::{self, AuthRequest, BackendMessage, ReplicationFrame, StandbyPositions};
use turnout_decoders::position::{Lsn, Timestamp};

/// One row of a simple-query result, as text (`None` = SQL NULL).
pub type TextRow = Vec<Option<String>>;

/// The result of `IDENTIFY_SYSTEM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemId {
    pub system_id: String,
    pub timeline: u32,
    pub xlog_pos: Lsn,
    pub database: Option<String>,
}

/// The result of `CREATE_REPLICATION_SLOT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    pub slot_name: String,
    /// The slot's consistent point: streaming from here continues exactly where the exported snapshot
    /// ends.
    pub consistent_point: Lsn,
    /// The exported snapshot (`SET TRANSACTION SNAPSHOT '…'`), valid until this connection runs its next
    /// command.
    pub snapshot_name: Option<String>,
}

/// How to create a logical slot.
#[derive(Clone, Debug, Default)]
pub struct SlotOptions {
    /// Dropped when the connection closes.
    pub temporary: bool,
    /// Export a snapshot consistent with the slot's starting point.
    pub export_snapshot: bool,
    /// Decode prepared transactions at PREPARE time (PostgreSQL 15+).
    pub two_phase: bool,
}

/// Options for `START_REPLICATION … LOGICAL` with pgoutput.
#[derive(Clone, Debug)]
pub struct StartReplication {
    pub slot: String,
    /// `0/0` starts from the slot's confirmed position.
    pub start: Lsn,
    pub publications: Vec<String>,
    /// pgoutput protocol version; `None` picks the highest the server speaks (1 on 13, 2 on 14, 3 on 15,
    /// 4 on 16+).
    pub proto_version: Option<u8>,
    /// Stream large in-progress transactions (protocol 2+; `parallel` on 16+, which adds abort LSNs).
    pub streaming: bool,
    /// Receive logical messages (14+).
    pub messages: bool,
    /// Decode two-phase transactions at PREPARE (protocol 3+).
    pub two_phase: bool,
    /// How often to send a standby status update unasked.
    pub status_interval: Duration,
    /// Send only changes that carry no replication origin (`origin 'none'`, PostgreSQL 16+; ignored on
    /// older servers, where the consumer filters by the Origin message instead).
    pub origin_none: bool,
}

impl StartReplication {
    /// Defaults: highest protocol, streaming and messages where supported, no two-phase, 10 s status.
    pub fn new(slot: impl Into<String>, publications: Vec<String>) -> Self {
        StartReplication {
            slot: slot.into(),
            start: Lsn::ZERO,
            publications,
            proto_version: None,
            streaming: true,
            messages: true,
            two_phase: false,
            status_interval: Duration::from_secs(10),
            origin_none: false,
        }
    }
}

/// Quotes a string literal for SQL (single quotes doubled).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

use turnout_decoders::schema::quote_ident;

/// A connection to a PostgreSQL server, optionally in logical replication mode
/// (`replication=database`), which accepts both replication commands and simple SQL queries.
pub struct PgConnection {
    transport: Transport,
    read_buf: BytesMut,
    write_buf: BytesMut,
    parameters: HashMap<String, String>,
    host: String,
    port: u16,
    tls: bool,
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection").field("host", &self.host).field("port", &self.port).field("tls", &self.tls).finish()
    }
}

impl PgConnection {
    /// Connects and authenticates. With `replication` the session is a walsender for logical replication
    /// of `opts.database`.
    pub async fn connect(opts: &ConnectOptions, replication: bool) -> Result<Self, DecodeError> {
        let io_err = |what: &'static str| {
            let host = opts.host.clone();
            let port = opts.port;
            move |source: std::io::Error| DecodeError::Io { what, host: host.clone(), port, source }
        };
        let tcp = tokio::time::timeout(opts.connect_timeout, TcpStream::connect((opts.host.as_str(), opts.port)))
            .await
            .map_err(|_| {
                io_err("timed out connecting to")(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?} (connect_timeout)", opts.connect_timeout),
                ))
            })?
            .map_err(io_err("cannot connect to"))?;
        let _ = tcp.set_nodelay(true);
        let (transport, tls) = negotiate_tls(tcp, opts).await?;
        let mut conn = PgConnection {
            transport,
            read_buf: BytesMut::with_capacity(64 * 1024),
            write_buf: BytesMut::with_capacity(1024),
            parameters: HashMap::new(),
            host: opts.host.clone(),
            port: opts.port,
            tls,
        };
        conn.startup(opts, replication).await?;
        Ok(conn)
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// A server parameter reported at startup (`server_version`, `server_encoding`, …).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// `server_version_num`-style number (150018 for 15.18) from the startup report.
    pub fn server_version_num(&self) -> Option<u32> {
        let v = self.parameter("server_version")?;
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Some(if major >= 10 { major * 10000 + minor } else { major * 10000 + minor * 100 })
    }

    async fn startup(&mut self, opts: &ConnectOptions, replication: bool) -> Result<(), DecodeError> {
        let mut params: Vec<(&str, &str)> = vec![
            ("user", &opts.user),
            ("database", &opts.database),
            ("application_name", &opts.application_name),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("extra_float_digits", "3"),
            ("bytea_output", "hex"),
        ];
        if replication {
            params.push(("replication", "database"));
        }
        frontend::startup_message(params.iter().copied(), &mut self.write_buf).map_err(|e| DecodeError::Protocol(e.to_string()))?;
        self.flush().await?;
        let auth_err = |reason: String| DecodeError::Auth { user: opts.user.clone(), reason };
        let password = || {
            opts.password
                .as_deref()
                .ok_or_else(|| auth_err("the server asks for a password but the URL has none; add it as postgres://user:PASSWORD@host/db".into()))
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.read_message().await? {
                BackendMessage::Authentication(AuthRequest::Ok) => {}
                BackendMessage::Authentication(AuthRequest::Cleartext) => {
                    frontend::password_message(password()?.as_bytes(), &mut self.write_buf).map_err(|e| DecodeError::Protocol(e.to_string()))?;
                    self.flush().await?;
                }
                BackendMessage::Authentication(AuthRequest::Md5 { salt }) => {
                    let hash = postgres_protocol::authentication::md5_hash(opts.user.as_bytes(), password()?.as_bytes(), salt);
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf).map_err(|e| DecodeError::Protocol(e.to_string()))?;
                    self.flush().await?;
                }
                BackendMessage::Authentication(AuthRequest::Sasl { mechanisms }) => {
                    if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                        return Err(auth_err(format!("the server offers SASL mechanisms {mechanisms:?}; only SCRAM-SHA-256 is supported")));
                    }
                    let s = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut self.write_buf).map_err(|e| DecodeError::Protocol(e.to_string()))?;
                    self.flush().await?;
                    scram = Some(s);
                }
                BackendMessage::Authentication(AuthRequest::SaslContinue(data)) => {
                    let s = scram.as_mut().ok_or_else(|| DecodeError::Protocol("SASL continue without SASL start".into()))?;
                    s.update(&data).map_err(|e| auth_err(format!("SCRAM: {e}")))?;
                    frontend::sasl_response(s.message(), &mut self.write_buf).map_err(|e| DecodeError::Protocol(e.to_string()))?;
                    self.flush().await?;
                }
                BackendMessage::Authentication(AuthRequest::SaslFinal(data)) => {
                    let s = scram.as_mut().ok_or_else(|| DecodeError::Protocol("SASL final without SASL start".into()))?;
                    s.finish(&data).map_err(|e| auth_err(format!("SCRAM server signature check failed: {e}")))?;
                }
                BackendMessage::Authentication(AuthRequest::Other(code)) => {
                    return Err(auth_err(format!(
                        "the server asks for authentication method {code} (GSS/SSPI/Kerberos), which turnout does not support; use scram-sha-256 or md5 in pg_hba.conf"
                    )));
                }
                BackendMessage::ParameterStatus { name, value } => {
                    self.parameters.insert(name, value);
                }
                BackendMessage::BackendKeyData | BackendMessage::Notice(_) | BackendMessage::Other(_) => {}
                BackendMessage::ReadyForQuery(_) => return Ok(()),
                BackendMessage::Error(e) => return Err(DecodeError::Server(e)),
                other => return Err(DecodeError::Protocol(format!("during startup: {other:?}"))),
            }
        }
    }

    /// Writes out the send buffer. Cancel-safe: bytes leave the buffer only once written, so a
    /// cancelled flush is completed by the next one and no message is ever cut short.
    async fn flush(&mut self) -> Result<(), DecodeError> {
        while !self.write_buf.is_empty() {
            let n = self.transport.write_buf(&mut self.write_buf).await.map_err(|e| self.io_error("writing to", e))?;
            if n == 0 {
                return Err(DecodeError::Closed(format!(" ({}:{})", self.host, self.port)));
            }
        }
        self.transport.flush().await.map_err(|e| self.io_error("writing to", e))
    }

    fn io_error(&self, what: &'static str, source: std::io::Error) -> DecodeError {
        DecodeError::Io { what, host: self.host.clone(), port: self.port, source }
    }

    /// Reads one backend message, waiting for more bytes as needed.
    async fn read_message(&mut self) -> Result<BackendMessage, DecodeError> {
        loop {
            if let Some(m) = wire::parse_backend(&mut self.read_buf)? {
                return Ok(m);
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes into the receive buffer. Cancel-safe.
    async fn fill(&mut self) -> Result<(), DecodeError> {
        if self.read_buf.capacity() - self.read_buf.len() < 8192 {
            self.read_buf.reserve(64 * 1024);
        }
        let n = self.transport.read_buf(&mut self.read_buf).await.map_err(|e| self.io_error("reading from", e))?;
        if n == 0 {
            return Err(DecodeError::Closed(format!(" ({}:{})", self.host, self.port)));
        }
        Ok(())
    }

    /// Runs one simple query (one or more statements) and returns the rows of the last result set as
    /// text. A server error is returned after the server is ready again, so the connection stays usable.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<TextRow>, DecodeError> {
        frontend::query(sql, &mut self.write_buf).map_err(|e| DecodeError::Protocol(e.to_string()))?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error: Option<ServerError> = None;
        loop {
            match self.read_message().await? {
                BackendMessage::RowDescription(_) => rows.clear(),
                BackendMessage::DataRow(cols) => rows.push(cols.into_iter().map(|c| c.map(|b| String::from_utf8_lossy(&b).into_owned())).collect()),
                BackendMessage::CommandComplete(_) | BackendMessage::EmptyQuery | BackendMessage::Notice(_) => {}
                BackendMessage::ParameterStatus { name, value } => {
                    self.parameters.insert(name, value);
                }
                BackendMessage::Error(e) => error = Some(e),
                BackendMessage::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(DecodeError::Server(e)),
                        None => Ok(rows),
                    }
                }
                BackendMessage::CopyOutResponse | BackendMessage::CopyInResponse | BackendMessage::CopyBothResponse => {
                    return Err(DecodeError::Protocol(format!("'{sql}' started a COPY; use the dedicated method")));
                }
                _ => {}
            }
        }
    }

    /// `IDENTIFY_SYSTEM` (replication connections only).
    pub async fn identify_system(&mut self) -> Result<SystemId, DecodeError> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = rows.first().ok_or_else(|| DecodeError::Protocol("IDENTIFY_SYSTEM returned no row".into()))?;
        let col = |i: usize| row.get(i).cloned().flatten();
        Ok(SystemId {
            system_id: col(0).unwrap_or_default(),
            timeline: col(1).and_then(|t| t.parse().ok()).unwrap_or(0),
            xlog_pos: parse_lsn_col(col(2))?,
            database: col(3),
        })
    }

    /// `CREATE_REPLICATION_SLOT … LOGICAL pgoutput`, with the syntax of the server's version.
    pub async fn create_logical_slot(&mut self, name: &str, options: &SlotOptions) -> Result<SlotInfo, DecodeError> {
        let version = self.server_version_num().unwrap_or(0);
        let temporary = if options.temporary { " TEMPORARY" } else { "" };
        let sql = if version >= 150000 {
            let mut opts = vec![if options.export_snapshot { "SNAPSHOT 'export'" } else { "SNAPSHOT 'nothing'" }];
            if options.two_phase {
                opts.push("TWO_PHASE");
            }
            format!("CREATE_REPLICATION_SLOT {}{temporary} LOGICAL pgoutput ({})", quote_ident(name), opts.join(", "))
        } else {
            let snap = if options.export_snapshot { "EXPORT_SNAPSHOT" } else { "NOEXPORT_SNAPSHOT" };
            format!("CREATE_REPLICATION_SLOT {}{temporary} LOGICAL pgoutput {snap}", quote_ident(name))
        };
        let rows = self.simple_query(&sql).await?;
        let row = rows.first().ok_or_else(|| DecodeError::Protocol("CREATE_REPLICATION_SLOT returned no row".into()))?;
        Ok(SlotInfo {
            slot_name: row.first().cloned().flatten().unwrap_or_else(|| name.to_owned()),
            consistent_point: parse_lsn_col(row.get(1).cloned().flatten())?,
            snapshot_name: row.get(2).cloned().flatten(),
        })
    }

    /// `DROP_REPLICATION_SLOT name WAIT`.
    pub async fn drop_slot(&mut self, name: &str) -> Result<(), DecodeError> {
        self.simple_query(&format!("DROP_REPLICATION_SLOT {} WAIT", quote_ident(name))).await.map(|_| ())
    }

    /// The pgoutput protocol version this server speaks best.
    pub fn best_proto_version(&self) -> u8 {
        match self.server_version_num().unwrap_or(0) {
            v if v >= 160000 => 4,
            v if v >= 150000 => 3,
            v if v >= 140000 => 2,
            _ => 1,
        }
    }

    /// Starts logical replication. The connection becomes the returned stream.
    pub async fn start_replication(mut self, start: &StartReplication) -> Result<ReplicationStream, DecodeError> {
        let version = self.server_version_num().unwrap_or(0);
        let proto = start.proto_version.unwrap_or_else(|| self.best_proto_version());
        let publications = start.publications.iter().map(|p| quote_ident(p)).collect::<Vec<_>>().join(",");
        let mut options = vec![format!("\"proto_version\" '{proto}'"), format!("\"publication_names\" {}", quote_literal(&publications))];
        if start.streaming && proto >= 2 {
            let mode = if proto >= 4 { "parallel" } else { "on" };
            options.push(format!("\"streaming\" '{mode}'"));
        }
        if start.messages && version >= 140000 {
            options.push("\"messages\" 'true'".into());
        }
        if start.two_phase && proto >= 3 {
            options.push("\"two_phase\" 'true'".into());
        }
        if start.origin_none && version >= 160000 {
            options.push("\"origin\" 'none'".into());
        }
        let sql = format!("START_REPLICATION SLOT {} LOGICAL {} ({})", quote_ident(&start.slot), start.start, options.join(", "));
        frontend::query(&sql, &mut self.write_buf).map_err(|e| DecodeError::Protocol(e.to_string()))?;
        self.flush().await?;
        loop {
            match self.read_message().await? {
                BackendMessage::CopyBothResponse => break,
                BackendMessage::Notice(_) | BackendMessage::ParameterStatus { .. } => {}
                BackendMessage::Error(e) => {
                    // Wait for ReadyForQuery so the error is complete; the connection is given up anyway.
                    return Err(DecodeError::Server(e));
                }
                other => return Err(DecodeError::Protocol(format!("after START_REPLICATION: {other:?}"))),
            }
        }
        Ok(ReplicationStream {
            conn: self,
            positions: StandbyPositions::default(),
            reported: StandbyPositions { write: start.start, flush: start.start, apply: start.start },
            max_data_start: Lsn::ZERO,
            idle_wal_end: None,
            status_interval: start.status_interval,
            next_status: Instant::now() + start.status_interval,
            replies_to_requests: 0,
            reply_pending: false,
            proto_version: proto,
        })
    }

    /// Sends Terminate and closes the connection.
    pub async fn close(mut self) {
        frontend::terminate(&mut self.write_buf);
        let _ = self.flush().await;
        let _ = self.transport.shutdown().await;
    }
}

fn parse_lsn_col(v: Option<String>) -> Result<Lsn, DecodeError> {
    let v = v.ok_or_else(|| DecodeError::Protocol("expected an LSN, got NULL".into()))?;
    v.parse().map_err(|e| DecodeError::Protocol(format!("{e}")))
}

async fn negotiate_tls(mut tcp: TcpStream, opts: &ConnectOptions) -> Result<(Transport, bool), DecodeError> {
    if opts.ssl_mode == SslMode::Disable {
        return Ok((Transport::Plain(tcp), false));
    }
    let io_err = |source| DecodeError::Io { what: "negotiating TLS with", host: opts.host.clone(), port: opts.port, source };
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    tcp.write_all(&buf).await.map_err(io_err)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(io_err)?;
    match answer[0] {
        b'S' => {
            let config = tls::client_config(opts)?;
            let connector = tokio_rustls::TlsConnector::from(config);
            let stream =
                connector.connect(tls::server_name(opts)?, tcp).await.map_err(|e| DecodeError::Tls { host: opts.host.clone(), reason: e.to_string() })?;
            Ok((Transport::Tls(Box::new(stream)), true))
        }
        b'N' if opts.ssl_mode == SslMode::Prefer => Ok((Transport::Plain(tcp), false)),
        b'N' => Err(DecodeError::Tls {
            host: opts.host.clone(),
            reason: "the server does not accept TLS connections but sslmode requires TLS; enable ssl on the server or use sslmode=prefer".into(),
        }),
        other => Err(DecodeError::Protocol(format!("unexpected answer 0x{other:02x} to SSLRequest"))),
    }
}

/// A message of a logical replication stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamMessage {
    /// One output-plugin message (for pgoutput: parse with [`turnout_decoders::pg::pgoutput::parse`]).
    Data { wal_start: Lsn, wal_end: Lsn, send_time: Timestamp, data: Bytes },
    /// A keepalive. If the server requested a reply, it has already been sent.
    Keepalive { wal_end: Lsn, send_time: Timestamp, reply_requested: bool },
}

/// A running `START_REPLICATION` stream. See the module documentation for what it acknowledges.
pub struct ReplicationStream {
    conn: PgConnection,
    positions: StandbyPositions,
    reported: StandbyPositions,
    max_data_start: Lsn,
    idle_wal_end: Option<Lsn>,
    status_interval: Duration,
    next_status: Instant,
    replies_to_requests: u64,
    /// A keepalive asked for a reply that has not been sent yet.
    reply_pending: bool,
    proto_version: u8,
}

impl std::fmt::Debug for ReplicationStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationStream")
            .field("positions", &self.positions)
            .field("reported", &self.reported)
            .field("proto_version", &self.proto_version)
            .finish_non_exhaustive()
    }
}

impl ReplicationStream {
    /// The pgoutput protocol version in use.
    pub fn proto_version(&self) -> u8 {
        self.proto_version
    }

    /// Sets the positions this stream may report. `flush` must be a position up to which every
    /// transaction received is durably applied on the target.
    pub fn set_positions(&mut self, positions: StandbyPositions) {
        self.positions = positions;
    }

    /// The positions last reported to the server.
    pub fn reported(&self) -> StandbyPositions {
        self.reported
    }

    /// How many standby status updates were sent because a keepalive asked for one.
    pub fn replies_to_requests(&self) -> u64 {
        self.replies_to_requests
    }

    /// What may be reported now: the caller's positions, raised to the newest keepalive's WAL end
    /// when nothing received is pending, never below what was already reported.
    fn reportable(&self) -> StandbyPositions {
        let mut p = self.positions;
        if let Some(idle_end) = self.idle_wal_end {
            if p.flush >= self.max_data_start && idle_end > p.flush {
                p.write = p.write.max(idle_end);
                p.flush = idle_end;
                p.apply = p.apply.max(idle_end);
            }
        }
        StandbyPositions { write: p.write.max(self.reported.write), flush: p.flush.max(self.reported.flush), apply: p.apply.max(self.reported.apply) }
    }

    /// Sends a standby status update now.
    pub async fn send_status(&mut self, reply_requested: bool) -> Result<(), DecodeError> {
        let p = self.reportable();
        wire::encode_standby_status(p, Timestamp::now(), reply_requested, &mut self.conn.write_buf);
        self.conn.flush().await?;
        self.reported = p;
        self.next_status = Instant::now() + self.status_interval;
        Ok(())
    }

    /// Receives the next message, sending periodic status updates and answering keepalives that
    /// request a reply. Cancel-safe between messages.
    pub async fn recv(&mut self) -> Result<StreamMessage, DecodeError> {
        loop {
            self.answer_pending_reply().await?;
            if Instant::now() >= self.next_status {
                self.send_status(false).await?;
            }
            if let Some(msg) = self.try_recv_buffered()? {
                // Answer at once, before handing the keepalive to the caller.
                self.answer_pending_reply().await?;
                return Ok(msg);
            }
            match tokio::time::timeout_at(self.next_status, self.conn.fill()).await {
                Ok(r) => r?,
                Err(_) => self.send_status(false).await?,
            }
        }
    }

    /// Sends the status update a keepalive asked for, if one is owed.
    async fn answer_pending_reply(&mut self) -> Result<(), DecodeError> {
        if self.reply_pending {
            self.send_status(false).await?;
            self.replies_to_requests += 1;
            self.reply_pending = false;
        }
        Ok(())
    }

    /// The next message if it is already fully received, without any I/O. A keepalive that requests a
    /// reply is answered by the next [`ReplicationStream::recv`] call, which the caller makes as soon as
    /// this returns `None`.
    pub fn try_recv_buffered(&mut self) -> Result<Option<StreamMessage>, DecodeError> {
        while let Some(msg) = wire::parse_backend(&mut self.conn.read_buf)? {
            match msg {
                BackendMessage::CopyData(data) => match wire::parse_replication(&data)? {
                    ReplicationFrame::XLogData { wal_start, wal_end, send_time, data } => {
                        self.max_data_start = self.max_data_start.max(wal_start);
                        self.idle_wal_end = None;
                        return Ok(Some(StreamMessage::Data { wal_start, wal_end, send_time, data }));
                    }
                    ReplicationFrame::Keepalive { wal_end, send_time, reply_requested } => {
                        self.idle_wal_end = Some(wal_end);
                        self.reply_pending |= reply_requested;
                        return Ok(Some(StreamMessage::Keepalive { wal_end, send_time, reply_requested }));
                    }
                },
                BackendMessage::Error(e) => return Err(DecodeError::Server(e)),
                // The server ends the stream on shutdown (CopyDone, or straight to CommandComplete).
                BackendMessage::CopyDone | BackendMessage::CommandComplete(_) | BackendMessage::ReadyForQuery(_) => {
                    return Err(DecodeError::Closed(" (the server ended the replication stream)".into()))
                }
                BackendMessage::Notice(_) | BackendMessage::ParameterStatus { .. } => {}
                other => return Err(DecodeError::Protocol(format!("inside the replication stream: {other:?}"))),
            }
        }
        Ok(None)
    }

    /// Ends streaming cleanly (CopyDone), after a final status update, and closes the connection.
    pub async fn close(mut self) -> Result<(), DecodeError> {
        self.send_status(false).await?;
        frontend::copy_done(&mut self.conn.write_buf);
        self.conn.flush().await?;
        self.conn.close().await;
        Ok(())
    }
}
