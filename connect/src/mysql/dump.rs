//! A binlog dump connection to a MySQL or MariaDB server that hands out each event's bytes exactly as
//! the server sent them, for `turnout_decoders::mysql` to parse — the only parse an event gets.
//!
//! The driver turnout uses for SQL sessions (mysql_async) parses every binlog event itself before
//! handing it out (and decompresses transaction payloads, ignoring its own failures), with no way to
//! get the packets underneath; this connection speaks the protocol directly instead, on mysql_common's
//! sans-IO packet types: handshake, TLS by the URL's `ssl-mode` (as [`super::conn`] reads it),
//! authentication (`caching_sha2_password` — fast, or full over TLS, a unix socket or the server's RSA
//! key — `mysql_native_password`, and `mysql_clear_password` where the URL enables it), then
//! `COM_REGISTER_SLAVE` and `COM_BINLOG_DUMP` / `COM_BINLOG_DUMP_GTID`.
//!
//! Errors are the driver's type (`mysql_async::Error`) so that one classification
//! (`turnout_sinks::error::classify_mysql`) serves every MySQL session: the network is transient, a
//! server error keeps its code, and what the server sent that makes no sense is named with its bytes.

use super::conn::{remember_session, TlsMode};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use mysql_async::{DriverError, Opts};
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, ComBinlogDump, ComBinlogDumpGtid, ComRegisterSlave, ErrPacket, HandshakePacket, HandshakeResponse, Sid, SslRequest, Tag,
};
use mysql_common::proto::MySerialize;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::transport::Transport;

type Result<T> = std::result::Result<T, mysql_async::Error>;

/// The largest payload of one protocol packet; a longer one continues in the next.
const MAX_PAYLOAD: usize = 0xFF_FFFF;
/// What the server may send in one packet, as announced at login (the dump thread sends events of any
/// size regardless, split into packets).
const MAX_PACKET: u32 = 1 << 30;
/// `utf8mb4_general_ci`, the session's character set (nothing turnout sends depends on it).
const COLLATION: u8 = 45;

/// Where the dump starts.
#[derive(Clone, Debug)]
pub enum DumpFrom {
    /// The first binlog the server has (`COM_BINLOG_DUMP` with an empty file name): MariaDB, which
    /// then seeks to `@slave_connect_state`.
    FirstLog,
    /// Every transaction not in this GTID set (`COM_BINLOG_DUMP_GTID`): MySQL. Each source (UUID and
    /// tag) with its closed intervals of transaction numbers; a set with a tagged source is sent in
    /// the tagged encoding (MySQL 8.3+).
    Gtids(turnout_decoders::gtid::MySqlSets),
}

/// A logged-in session that becomes a binlog dump with [`BinlogDump::start`].
pub struct BinlogDump {
    transport: Transport,
    read: BytesMut,
    /// The sequence number of the next packet written.
    seq: u8,
    capabilities: CapabilityFlags,
    connection_id: u32,
}

impl std::fmt::Debug for BinlogDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogDump").field("connection_id", &self.connection_id).field("private", &self.transport.is_private()).finish_non_exhaustive()
    }
}

/// A malformed or unexpected packet, named with its first bytes.
fn unexpected(packet: &[u8]) -> mysql_async::Error {
    DriverError::UnexpectedPacket { payload: packet[..packet.len().min(64)].to_vec() }.into()
}

fn tls_error(e: impl std::fmt::Display) -> mysql_async::Error {
    std::io::Error::other(format!("TLS handshake failed: {e}")).into()
}

impl BinlogDump {
    /// Connects and logs in as the URL's account, within `timeout`. The session is remembered as one
    /// of this process's own (`conn::own_sessions`).
    pub async fn connect(opts: &Opts, timeout: Duration) -> Result<BinlogDump> {
        let login = Self::login(opts);
        let dump = tokio::time::timeout(timeout, login).await.map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no login to {}:{} within {timeout:?}", opts.ip_or_hostname(), opts.tcp_port()))
        })??;
        Ok(dump)
    }

    async fn login(opts: &Opts) -> Result<BinlogDump> {
        let transport = match opts.socket() {
            Some(path) => Transport::Unix(UnixStream::connect(path).await?),
            None => {
                let tcp = TcpStream::connect((opts.ip_or_hostname(), opts.tcp_port())).await?;
                tcp.set_nodelay(true)?;
                Transport::Plain(tcp)
            }
        };
        let mut dump = BinlogDump { transport, read: BytesMut::with_capacity(64 * 1024), seq: 0, capabilities: CapabilityFlags::empty(), connection_id: 0 };
        let packet = dump.read_packet().await?;
        if packet.first() == Some(&0xFF) {
            // Refused before the handshake (too many connections, a blocked host): no capabilities yet.
            return Err(dump.server_error(&packet, CapabilityFlags::empty()));
        }
        let handshake = ParseBuf(&packet).parse::<HandshakePacket>(()).map_err(|_| unexpected(&packet))?;
        dump.connection_id = handshake.connection_id();
        // Known as turnout's own from the moment the server names it, before the login completes
        // (a cutover listing the account's sessions meanwhile must not take it for a client's).
        remember_session(opts, dump.connection_id);
        let version = handshake.maria_db_server_version_parsed().or_else(|| handshake.server_version_parsed()).unwrap_or((0, 0, 0));
        let mut nonce = handshake.scramble_1_ref().to_vec();
        nonce.extend_from_slice(handshake.scramble_2_ref().unwrap_or_default());
        // Twenty bytes, less the terminating zero some servers count (as the server itself reads it).
        nonce.resize(20, 0);
        let mut wanted = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CapabilityFlags::CLIENT_DEPRECATE_EOF;
        if opts.db_name().is_some() {
            wanted |= CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        }
        let server = handshake.capabilities();
        dump.capabilities = wanted & server;
        let plugin = match handshake.auth_plugin() {
            Some(AuthPlugin::CachingSha2Password) => AuthPlugin::CachingSha2Password,
            _ => AuthPlugin::MysqlNativePassword,
        };
        drop(handshake);
        let mut dump = dump.start_tls(opts, server).await?;

        let data = plugin.gen_data(opts.pass(), &nonce);
        let response = HandshakeResponse::new(
            data.as_ref().map(|d| {
                let mut bytes = Vec::new();
                d.serialize(&mut bytes);
                bytes
            }),
            version,
            opts.user().map(str::as_bytes),
            opts.db_name().map(str::as_bytes),
            Some(plugin.clone()),
            dump.capabilities,
            None,
            MAX_PACKET,
        );
        dump.write_struct(&response).await?;
        dump.authenticate(opts, plugin.into_owned(), nonce).await?;
        Ok(dump)
    }

    /// TLS as the URL's `ssl-mode` says: `PREFERRED` when the server offers it, `REQUIRED` and
    /// `VERIFY_IDENTITY` always (a server without TLS is an error, never a downgrade). A unix socket
    /// stays as it is.
    async fn start_tls(mut self, opts: &Opts, server: CapabilityFlags) -> Result<BinlogDump> {
        let mode = TlsMode::of(opts);
        if mode == TlsMode::Disabled || matches!(self.transport, Transport::Unix(_)) {
            return Ok(self);
        }
        if !server.contains(CapabilityFlags::CLIENT_SSL) {
            return match mode {
                TlsMode::Preferred => Ok(self),
                _ => Err(DriverError::NoClientSslFlagFromServer.into()),
            };
        }
        self.capabilities |= CapabilityFlags::CLIENT_SSL;
        self.write_struct(&SslRequest::new(self.capabilities, MAX_PACKET, COLLATION)).await?;
        let ssl = opts.ssl_opts().ok_or_else(|| tls_error("no TLS options"))?;
        let config = match mode {
            TlsMode::VerifyIdentity | TlsMode::VerifyCa => {
                let mut roots = rustls::RootCertStore::empty();
                if !ssl.disable_built_in_roots() {
                    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                }
                for root in ssl.root_certs() {
                    let pem = root.read().await?;
                    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
                        roots.add(cert.map_err(tls_error)?).map_err(tls_error)?;
                    }
                }
                crate::tls::verifying(roots).map_err(tls_error)?
            }
            _ => crate::tls::encrypt_only().map_err(tls_error)?,
        };
        let name = crate::tls::server_name(ssl.tls_hostname_override().unwrap_or(opts.ip_or_hostname())).map_err(tls_error)?;
        let BinlogDump { transport, read, seq, capabilities, connection_id } = self;
        let Transport::Plain(tcp) = transport else {
            return Err(tls_error("the connection is not plain TCP"));
        };
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(tls_error)?;
        Ok(BinlogDump { transport: Transport::Tls(Box::new(stream)), read, seq, capabilities, connection_id })
    }

    /// Answers the server until it accepts (OK) or refuses (its error) the login.
    async fn authenticate(&mut self, opts: &Opts, mut plugin: AuthPlugin<'static>, mut nonce: Vec<u8>) -> Result<()> {
        let mut switched = false;
        loop {
            let packet = self.read_packet().await?;
            match packet.first() {
                Some(0x00) => return Ok(()),
                Some(0xFF) => return Err(self.server_error(&packet, self.capabilities)),
                Some(0xFE) if !switched => {
                    switched = true;
                    let switch = ParseBuf(&packet).parse::<AuthSwitchRequest>(()).map_err(|_| unexpected(&packet))?;
                    nonce = switch.plugin_data().to_vec();
                    plugin = switch.auth_plugin().clone().into_owned();
                    match &plugin {
                        AuthPlugin::CachingSha2Password | AuthPlugin::MysqlNativePassword => {}
                        AuthPlugin::MysqlClearPassword if opts.enable_cleartext_plugin() => {}
                        AuthPlugin::MysqlClearPassword => return Err(DriverError::CleartextPluginDisabled.into()),
                        other => return Err(DriverError::UnknownAuthPlugin { name: String::from_utf8_lossy(other.as_bytes()).into_owned() }.into()),
                    }
                    let mut bytes = Vec::new();
                    if let Some(data) = plugin.gen_data(opts.pass(), &nonce) {
                        data.serialize(&mut bytes);
                    }
                    self.write_packet(&bytes).await?;
                }
                // caching_sha2_password: 3 = the server's cache knew the password, 4 = send it whole.
                Some(0x01) if matches!(plugin, AuthPlugin::CachingSha2Password) => match packet.get(1) {
                    Some(0x03) => {}
                    Some(0x04) => {
                        let mut pass = opts.pass().unwrap_or_default().as_bytes().to_vec();
                        pass.push(0);
                        if self.transport.is_private() {
                            self.write_packet(&pass).await?;
                        } else {
                            self.write_packet(&[0x02]).await?;
                            let key = self.read_packet().await?;
                            if key.first() != Some(&0x01) {
                                return Err(unexpected(&key));
                            }
                            for (i, byte) in pass.iter_mut().enumerate() {
                                *byte ^= nonce[i % nonce.len()];
                            }
                            let pem = key.slice(1..);
                            let encrypted = std::panic::catch_unwind(|| mysql_common::crypto::encrypt(&pass, &pem)).map_err(|_| unexpected(&key))?;
                            self.write_packet(&encrypted).await?;
                        }
                    }
                    _ => return Err(unexpected(&packet)),
                },
                _ => return Err(unexpected(&packet)),
            }
        }
    }

    /// The connection id the server gave this session.
    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// Runs one statement that returns no rows (a `SET`).
    pub async fn execute(&mut self, sql: &str) -> Result<()> {
        self.seq = 0;
        let mut body = Vec::with_capacity(sql.len() + 1);
        body.push(0x03); // COM_QUERY
        body.extend_from_slice(sql.as_bytes());
        self.write_packet(&body).await?;
        self.expect_ok().await
    }

    /// Registers as replica `server_id` and asks for the binlog from `from`; the events follow
    /// through [`BinlogDump::next_event`]. Checksums are asked for on every event.
    pub async fn start(&mut self, server_id: u32, from: &DumpFrom) -> Result<()> {
        self.execute("SET @master_binlog_checksum = 'ALL', @source_binlog_checksum = 'ALL'").await?;
        self.seq = 0;
        self.write_struct(&ComRegisterSlave::new(server_id)).await?;
        self.expect_ok().await?;
        self.seq = 0;
        match from {
            DumpFrom::FirstLog => self.write_struct(&ComBinlogDump::new(server_id).with_filename(&b""[..]).with_pos(4)).await,
            DumpFrom::Gtids(sets) => {
                let mut sids: Vec<Sid<'static>> = Vec::with_capacity(sets.len());
                for (tsid, intervals) in sets {
                    // The wire's intervals are half-open: [first, last + 1).
                    let mut sid =
                        Sid::new(tsid.uuid).with_intervals(intervals.iter().map(|(a, b)| mysql_common::packets::GnoInterval::new(*a, b + 1)).collect());
                    if !tsid.tag.is_empty() {
                        let tag = Tag::new(tsid.tag.clone()).map_err(|e| mysql_async::Error::Other(format!("GTID tag '{}': {e}", tsid.tag).into()))?;
                        sid = sid.with_tag(tag);
                    }
                    sids.push(sid);
                }
                self.write_struct(&ComBinlogDumpGtid::new(server_id).with_pos(4).with_sids(sids)).await
            }
        }
    }

    /// The next event, as the server sent it (header, body and checksum); `None` when the server
    /// ended the dump.
    pub async fn next_event(&mut self) -> Result<Option<Bytes>> {
        let packet = self.read_packet().await?;
        self.event(packet)
    }

    /// The next event if its bytes already arrived (reading what the socket holds without waiting):
    /// `Ok(None)` when nothing complete is there yet.
    pub fn try_next_event(&mut self) -> Result<Option<Option<Bytes>>> {
        loop {
            if let Some(packet) = self.take_packet() {
                return self.event(packet).map(Some);
            }
            match self.transport.read_buf(&mut self.read).now_or_never() {
                None => return Ok(None),
                Some(Ok(0)) => return Err(DriverError::ConnectionClosed.into()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Ends the session (the server ends the dump thread when the connection closes).
    pub async fn close(mut self) {
        let _ = self.transport.shutdown().await;
    }

    fn event(&self, packet: Bytes) -> Result<Option<Bytes>> {
        match packet.first() {
            Some(0x00) => Ok(Some(packet.slice(1..))),
            Some(0xFF) => Err(self.server_error(&packet, self.capabilities)),
            Some(0xFE) if packet.len() < 8 => Ok(None),
            _ => Err(unexpected(&packet)),
        }
    }

    async fn expect_ok(&mut self) -> Result<()> {
        let packet = self.read_packet().await?;
        match packet.first() {
            Some(0x00) => Ok(()),
            Some(0xFF) => Err(self.server_error(&packet, self.capabilities)),
            _ => Err(unexpected(&packet)),
        }
    }

    fn server_error(&self, packet: &[u8], capabilities: CapabilityFlags) -> mysql_async::Error {
        match ParseBuf(packet).parse::<ErrPacket>(capabilities) {
            Ok(ErrPacket::Error(e)) => e.into(),
            _ => unexpected(packet),
        }
    }

    async fn write_struct(&mut self, value: &impl MySerialize) -> Result<()> {
        let mut body = Vec::new();
        value.serialize(&mut body);
        self.write_packet(&body).await
    }

    /// Writes `body` as one logical packet: frames of at most 16 MiB − 1, and an empty one after a
    /// body that fills its last frame exactly.
    async fn write_packet(&mut self, body: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(body.len() + 4);
        let mut last_len = usize::MAX;
        for chunk in body.chunks(MAX_PAYLOAD) {
            frame(&mut out, chunk, &mut self.seq);
            last_len = chunk.len();
        }
        if body.is_empty() || last_len == MAX_PAYLOAD {
            frame(&mut out, &[], &mut self.seq);
        }
        self.transport.write_all(&out).await?;
        self.transport.flush().await?;
        Ok(())
    }

    async fn read_packet(&mut self) -> Result<Bytes> {
        loop {
            if let Some(packet) = self.take_packet() {
                return Ok(packet);
            }
            if self.transport.read_buf(&mut self.read).await? == 0 {
                return Err(DriverError::ConnectionClosed.into());
            }
        }
    }

    /// The next whole logical packet in the read buffer (frames of 16 MiB − 1 joined), if one is there.
    fn take_packet(&mut self) -> Option<Bytes> {
        let (frames, end) = complete_packet(&self.read)?;
        let mut buf = self.read.split_to(end).freeze();
        let mut seq = 0;
        if frames == 1 {
            seq = buf[3];
            buf.advance(4);
            self.seq = seq.wrapping_add(1);
            return Some(buf);
        }
        let mut body = BytesMut::with_capacity(end);
        while buf.has_remaining() {
            let len = usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16;
            seq = buf[3];
            buf.advance(4);
            body.extend_from_slice(&buf.split_to(len));
        }
        self.seq = seq.wrapping_add(1);
        Some(body.freeze())
    }
}

/// Appends one frame: 3-byte length, sequence number, payload.
fn frame(out: &mut Vec<u8>, payload: &[u8], seq: &mut u8) {
    // At most 16 MiB − 1: the low three bytes are the whole length.
    out.extend_from_slice(&payload.len().to_le_bytes()[..3]);
    out.push(*seq);
    out.extend_from_slice(payload);
    *seq = seq.wrapping_add(1);
}

/// How many frames the first logical packet in `buf` takes and where it ends, when it is all there.
fn complete_packet(buf: &[u8]) -> Option<(usize, usize)> {
    let mut at = 0;
    let mut frames = 0;
    loop {
        let header = buf.get(at..at + 4)?;
        let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        if buf.len() < at + 4 + len {
            return None;
        }
        at += 4 + len;
        frames += 1;
        if len < MAX_PAYLOAD {
            return Some((frames, at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_whole_only_when_every_frame_arrived() {
        let mut out = Vec::new();
        let mut seq = 7;
        frame(&mut out, b"abc", &mut seq);
        assert_eq!(seq, 8);
        assert_eq!(complete_packet(&out), Some((1, 7)));
        assert_eq!(complete_packet(&out[..6]), None);
        assert_eq!(complete_packet(&out[..3]), None);
    }

    #[test]
    fn a_packet_of_sixteen_mebibytes_continues_in_the_next_frame() {
        let body = vec![9u8; MAX_PAYLOAD + 5];
        let mut out = Vec::new();
        let mut seq = 0;
        for chunk in body.chunks(MAX_PAYLOAD) {
            frame(&mut out, chunk, &mut seq);
        }
        assert_eq!(complete_packet(&out), Some((2, out.len())));
        assert_eq!(complete_packet(&out[..out.len() - 1]), None);
        // Exactly 16 MiB − 1: an empty frame closes it.
        let mut exact = Vec::new();
        frame(&mut exact, &body[..MAX_PAYLOAD], &mut seq);
        assert_eq!(complete_packet(&exact), None);
        frame(&mut exact, &[], &mut seq);
        assert_eq!(complete_packet(&exact), Some((2, exact.len())));
    }
}
