//! PostgreSQL frontend/backend protocol 3.0 framing (PostgreSQL documentation chapter 55, "Message
//! Formats"), without I/O: [`parse_backend`] takes complete messages off a receive buffer, and the
//! replication sub-protocol inside CopyData (55.4, "Streaming Replication Protocol") is read by
//! [`parse_replication`] and written by [`encode_standby_status`].

use super::cursor::Cursor;
use crate::error::{DecodeError, ServerError};
use crate::position::{Lsn, Timestamp};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest backend message accepted: PostgreSQL's own allocation limit (1 GiB) plus headers.
pub const MAX_MESSAGE_LEN: usize = (1 << 30) + 4096;

/// Authentication requests (`R`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthRequest {
    Ok,
    Cleartext,
    Md5 {
        salt: [u8; 4],
    },
    Sasl {
        mechanisms: Vec<String>,
    },
    SaslContinue(Bytes),
    SaslFinal(Bytes),
    /// Kerberos, GSS, SSPI …: not supported.
    Other(i32),
}

/// The backend messages this client acts on. Others are skipped by the caller.
#[derive(Clone, Debug, PartialEq)]
pub enum BackendMessage {
    Authentication(AuthRequest),
    ParameterStatus {
        name: String,
        value: String,
    },
    BackendKeyData,
    ReadyForQuery(u8),
    Error(ServerError),
    Notice(ServerError),
    RowDescription(Vec<String>),
    DataRow(Vec<Option<Bytes>>),
    CommandComplete(String),
    EmptyQuery,
    CopyBothResponse,
    CopyOutResponse,
    CopyInResponse,
    CopyData(Bytes),
    CopyDone,
    /// Any other message type, by tag.
    Other(u8),
}

/// Takes one complete backend message off the front of `buf`. `Ok(None)` means more bytes are needed.
/// The length prefix is checked before any buffer is reserved for it.
pub fn parse_backend(buf: &mut BytesMut) -> Result<Option<BackendMessage>, DecodeError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let malformed = |reason: String| DecodeError::Malformed { context: "backend", tag: char::from(tag), offset: 1, reason };
    let len = usize::try_from(len).map_err(|_| malformed(format!("negative length {len}")))?;
    if len < 4 {
        return Err(malformed(format!("length {len} is smaller than the length field itself")));
    }
    if len > MAX_MESSAGE_LEN {
        return Err(malformed(format!("length {len} exceeds the 1 GiB protocol limit")));
    }
    if buf.len() < 1 + len {
        buf.reserve(1 + len - buf.len());
        return Ok(None);
    }
    buf.advance(5);
    let body = buf.split_to(len - 4).freeze();
    parse_body(tag, body).map(Some)
}

fn parse_body(tag: u8, body: Bytes) -> Result<BackendMessage, DecodeError> {
    let mut c = Cursor::new(&body, 0, "backend", char::from(tag));
    let msg = match tag {
        b'R' => BackendMessage::Authentication(authentication(&mut c)?),
        b'S' => BackendMessage::ParameterStatus { name: c.cstr("parameter name")?, value: c.cstr("parameter value")? },
        b'K' => {
            let _ = c.bytes(c.remaining(), "key data")?;
            BackendMessage::BackendKeyData
        }
        b'Z' => BackendMessage::ReadyForQuery(c.u8("transaction status")?),
        b'E' => BackendMessage::Error(error_fields(&mut c)?),
        b'N' => BackendMessage::Notice(error_fields(&mut c)?),
        b'T' => {
            // Each field: name NUL + 18 bytes of attributes.
            let n = c.count16("field count", 19)?;
            let mut names = Vec::with_capacity(n);
            for _ in 0..n {
                names.push(c.cstr("field name")?);
                let _ = c.bytes(18, "field attributes")?;
            }
            BackendMessage::RowDescription(names)
        }
        b'D' => BackendMessage::DataRow(data_row(&mut c)?),
        b'C' => BackendMessage::CommandComplete(c.cstr("command tag")?),
        b'I' => BackendMessage::EmptyQuery,
        b'W' | b'H' | b'G' => {
            let _ = c.bytes(c.remaining(), "copy format")?;
            match tag {
                b'W' => BackendMessage::CopyBothResponse,
                b'H' => BackendMessage::CopyOutResponse,
                _ => BackendMessage::CopyInResponse,
            }
        }
        b'd' => BackendMessage::CopyData(c.bytes(c.remaining(), "copy data")?),
        b'c' => BackendMessage::CopyDone,
        other => {
            let _ = c.bytes(c.remaining(), "message body")?;
            BackendMessage::Other(other)
        }
    };
    c.finish()?;
    Ok(msg)
}

/// An authentication request ('R'): what the server asks for, or that it is satisfied.
fn authentication(c: &mut Cursor<'_>) -> Result<AuthRequest, DecodeError> {
    Ok(match c.i32("authentication code")? {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => {
            let s = c.bytes(4, "md5 salt")?;
            AuthRequest::Md5 { salt: [s[0], s[1], s[2], s[3]] }
        }
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let m = c.cstr("SASL mechanism")?;
                if m.is_empty() {
                    break;
                }
                mechanisms.push(m);
            }
            AuthRequest::Sasl { mechanisms }
        }
        11 => AuthRequest::SaslContinue(c.bytes(c.remaining(), "SASL data")?),
        12 => AuthRequest::SaslFinal(c.bytes(c.remaining(), "SASL data")?),
        other => {
            // GSS continue messages carry data; skip it.
            let _ = c.bytes(c.remaining(), "authentication data")?;
            AuthRequest::Other(other)
        }
    })
}

/// A data row ('D'): each column's bytes, `None` for NULL.
fn data_row(c: &mut Cursor<'_>) -> Result<Vec<Option<Bytes>>, DecodeError> {
    let n = c.count16("column count", 4)?;
    let mut cols = Vec::with_capacity(n);
    for _ in 0..n {
        let at = c.offset();
        let len = c.i32("column length")?;
        if len == -1 {
            cols.push(None);
        } else {
            let len = usize::try_from(len).map_err(|_| DecodeError::Malformed {
                context: "backend",
                tag: 'D',
                offset: at,
                reason: format!("negative column length {len}"),
            })?;
            cols.push(Some(c.bytes(len, "column value")?));
        }
    }
    Ok(cols)
}

fn error_fields(c: &mut Cursor<'_>) -> Result<ServerError, DecodeError> {
    let mut e = ServerError::default();
    loop {
        let code = c.u8("error field type")?;
        if code == 0 {
            break;
        }
        let value = c.cstr("error field")?;
        match code {
            b'V' => e.severity = value,
            b'S' if e.severity.is_empty() => e.severity = value,
            b'C' => e.code = value,
            b'M' => e.message = value,
            b'D' => e.detail = Some(value),
            b'H' => e.hint = Some(value),
            _ => {}
        }
    }
    Ok(e)
}

/// A message of the streaming replication sub-protocol, carried in CopyData.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationFrame {
    /// `w` XLogData: Int64 start of the data in WAL, Int64 current end of WAL on the server, Int64 send
    /// time, then the output plugin's bytes (one pgoutput message).
    XLogData { wal_start: Lsn, wal_end: Lsn, send_time: Timestamp, data: Bytes },
    /// `k` Primary keepalive: Int64 current end of WAL, Int64 send time, Byte1 1 when the server wants
    /// a standby status update at once (or it will time the connection out).
    Keepalive { wal_end: Lsn, send_time: Timestamp, reply_requested: bool },
}

/// Parses the payload of one CopyData message of a replication stream.
pub fn parse_replication(data: &Bytes) -> Result<ReplicationFrame, DecodeError> {
    let Some(&tag) = data.first() else {
        return Err(DecodeError::Malformed { context: "replication", tag: '?', offset: 0, reason: "empty CopyData".into() });
    };
    let mut c = Cursor::new(data, 1, "replication", char::from(tag));
    let frame = match tag {
        b'w' => {
            let wal_start = Lsn(c.u64("WAL start")?);
            let wal_end = Lsn(c.u64("WAL end")?);
            let send_time = Timestamp::from_pg_micros(c.i64("send time")?);
            let data = c.bytes(c.remaining(), "WAL data")?;
            ReplicationFrame::XLogData { wal_start, wal_end, send_time, data }
        }
        b'k' => ReplicationFrame::Keepalive {
            wal_end: Lsn(c.u64("WAL end")?),
            send_time: Timestamp::from_pg_micros(c.i64("send time")?),
            reply_requested: c.u8("reply requested")? == 1,
        },
        other => {
            return Err(DecodeError::Malformed {
                context: "replication",
                tag: char::from(other),
                offset: 0,
                reason: format!("unknown replication message type 0x{other:02x}"),
            })
        }
    };
    c.finish()?;
    Ok(frame)
}

/// Positions reported in a standby status update. The receiver of the update treats `flush` as the
/// position up to which the client no longer needs WAL: for a logical slot it becomes
/// `confirmed_flush_lsn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StandbyPositions {
    pub write: Lsn,
    pub flush: Lsn,
    pub apply: Lsn,
}

/// Writes a standby status update (`r`) as the payload of a CopyData message (frame included).
pub fn encode_standby_status(p: StandbyPositions, now: Timestamp, reply_requested: bool, out: &mut BytesMut) {
    out.put_u8(b'd');
    out.put_i32(4 + 1 + 8 * 4 + 1);
    out.put_u8(b'r');
    out.put_u64(p.write.0);
    out.put_u64(p.flush.0);
    out.put_u64(p.apply.0);
    out.put_i64(now.to_pg_micros());
    out.put_u8(u8::from(reply_requested));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut buf = BytesMut::from(&b"Z\0\0\0\x05"[..]);
        assert_eq!(parse_backend(&mut buf).expect("ok"), None);
        buf.extend_from_slice(b"I");
        assert_eq!(parse_backend(&mut buf).expect("ok"), Some(BackendMessage::ReadyForQuery(b'I')));
        assert!(buf.is_empty());
    }

    #[test]
    fn absurd_lengths_are_rejected_before_allocating() {
        for header in [&b"d\xff\xff\xff\xff"[..], b"d\x7f\xff\xff\xff", b"d\0\0\0\x02"] {
            let mut buf = BytesMut::from(header);
            let err = parse_backend(&mut buf).expect_err("must fail");
            assert!(matches!(err, DecodeError::Malformed { tag: 'd', offset: 1, .. }), "{err}");
            assert!(buf.capacity() < 4096);
        }
    }

    #[test]
    fn error_response_fields_are_kept() {
        let mut body = BytesMut::new();
        body.put_u8(b'E');
        let fields = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"x\"\0\0";
        body.put_i32(4 + i32::try_from(fields.len()).expect("small"));
        body.put_slice(fields);
        let Some(BackendMessage::Error(e)) = parse_backend(&mut body).expect("parses") else { panic!("not an error") };
        assert_eq!(e.code, "28P01");
        assert_eq!(e.severity, "FATAL");
    }

    #[test]
    fn keepalive_and_status_update_round_trip() {
        let mut k = BytesMut::new();
        k.put_u8(b'k');
        k.put_u64(0x16_B374_D848);
        k.put_i64(1);
        k.put_u8(1);
        let frame = parse_replication(&k.freeze()).expect("parses");
        assert_eq!(frame, ReplicationFrame::Keepalive { wal_end: Lsn(0x16_B374_D848), send_time: Timestamp::from_pg_micros(1), reply_requested: true });
        let mut out = BytesMut::new();
        let p = StandbyPositions { write: Lsn(3), flush: Lsn(2), apply: Lsn(1) };
        encode_standby_status(p, Timestamp::from_pg_micros(7), false, &mut out);
        assert_eq!(out.len(), 1 + 4 + 34);
        assert_eq!(&out[5..6], b"r");
        assert_eq!(&out[14..22], &2u64.to_be_bytes());
    }

    #[test]
    fn truncated_xlogdata_names_the_offset() {
        let err = parse_replication(&Bytes::from_static(b"w\0\0\0\0\0\0\0\x01\0\0")).expect_err("truncated");
        assert!(matches!(err, DecodeError::Malformed { tag: 'w', offset: 9, .. }), "{err}");
    }
}
