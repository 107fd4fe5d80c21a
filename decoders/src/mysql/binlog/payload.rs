//! MySQL's TRANSACTION_PAYLOAD_EVENT (0x28, `binlog_transaction_compression = ON`, MySQL 8.0.20+): one
//! event holding every event of a transaction, compressed (libbinlogevents `Transaction_payload_event`).
//!
//! Body: header fields, each `type, length, value` as length-encoded integers — 1 the payload's size,
//! 2 the compression type (0 zstd, 255 none), 3 the uncompressed size — ended by a field of type 0;
//! then the payload. Decompressed, the payload is a run of whole events (19-byte header each) **without
//! checksums** (the enclosing event carries one), never another payload, format description or rotate.
//!
//! The whole transaction is decompressed into memory (bounded by the uncompressed size the header
//! announces, which must match).

use super::header::HEADER_LEN;
use super::reader::Reader;
use super::BinlogError;
use std::io::Read;

/// `Transaction_payload_event` compression types.
const ZSTD: u64 = 0;
const NONE: u64 = 255;

/// A transaction payload event, its payload still compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionPayload {
    /// 0 zstd, 255 none.
    pub compression: u64,
    /// The uncompressed size the header announces (0 when absent).
    pub uncompressed_size: u64,
    pub payload: Vec<u8>,
}

impl TransactionPayload {
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, BinlogError> {
        let (mut size, mut compression, mut uncompressed_size) = (None, None, 0);
        loop {
            let field = r.lenenc("payload header field type")?;
            if field == 0 {
                break;
            }
            let len = r.lenenc_count("payload header field length", 1)?;
            let mut value = r.sub(len, "payload header field")?;
            match field {
                1 => size = Some(value.lenenc("payload size")?),
                2 => compression = Some(value.lenenc("compression type")?),
                3 => uncompressed_size = value.lenenc("uncompressed size")?,
                _ => {
                    let _unknown = value.rest();
                }
            }
        }
        let at = r.offset();
        let (Some(size), Some(compression)) = (size, compression) else {
            return Err(r.error_at(at, "the payload header lacks the payload size or the compression type"));
        };
        let size = usize::try_from(size).map_err(|_| r.error_at(at, format!("payload size {size}")))?;
        let payload = r.take(size, "payload")?.to_vec();
        let _after = r.rest();
        Ok(TransactionPayload { compression, uncompressed_size, payload })
    }

    /// The events the payload holds, each exactly one event's bytes (header and body, no checksum).
    pub fn events(&self) -> Result<Vec<Vec<u8>>, String> {
        let data = match self.compression {
            NONE => self.payload.clone(),
            ZSTD => {
                let limit = if self.uncompressed_size > 0 { self.uncompressed_size } else { u64::MAX - 1 };
                let mut out = Vec::with_capacity(usize::try_from(self.uncompressed_size).unwrap_or(0).min(64 << 20));
                zstd::stream::read::Decoder::new(&self.payload[..])
                    .and_then(|d| d.take(limit + 1).read_to_end(&mut out))
                    .map_err(|e| format!("decompressing the zstd payload: {e}"))?;
                if self.uncompressed_size > 0 && out.len() as u64 != self.uncompressed_size {
                    return Err(format!("the payload decompressed to {} bytes where its header says {}", out.len(), self.uncompressed_size));
                }
                out
            }
            other => return Err(format!("compression type {other} (turnout knows zstd, 0, and none, 255)")),
        };
        let mut events = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let size = rest.get(9..13).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or("an event header cut short in the payload")?;
            let size = usize::try_from(size).map_err(|_| "an event size")?;
            if size < HEADER_LEN || size > rest.len() {
                return Err(format!("an event of {size} bytes in a payload with {} left", rest.len()));
            }
            events.push(rest[..size].to_vec());
            rest = &rest[size..];
        }
        Ok(events)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A payload event body around `events` (each a whole event without checksum), zstd-compressed.
    pub(crate) fn payload_body(events: &[Vec<u8>], compress: bool) -> Vec<u8> {
        let raw: Vec<u8> = events.concat();
        let payload = if compress { zstd::stream::encode_all(&raw[..], 3).unwrap_or_else(|e| panic!("{e}")) } else { raw.clone() };
        let mut b = Vec::new();
        // Each value a length-encoded integer: one byte below 251, else 0xfc and two bytes.
        let field = |b: &mut Vec<u8>, t: u8, v: usize| {
            let value: Vec<u8> = match u8::try_from(v) {
                Ok(small) if small < 251 => vec![small],
                _ => [vec![0xfc], u16::try_from(v).unwrap_or_else(|e| panic!("{e}")).to_le_bytes().to_vec()].concat(),
            };
            b.push(t);
            b.push(u8::try_from(value.len()).unwrap_or_else(|e| panic!("{e}")));
            b.extend(value);
        };
        field(&mut b, 1, payload.len());
        field(&mut b, 2, if compress { 0 } else { 255 });
        field(&mut b, 3, raw.len());
        b.push(0);
        b.extend(payload);
        b
    }

    fn fake_event(type_code: u8, body: &[u8]) -> Vec<u8> {
        let mut e = vec![0; HEADER_LEN];
        e[4] = type_code;
        e[9..13].copy_from_slice(&u32::try_from(HEADER_LEN + body.len()).unwrap_or(0).to_le_bytes());
        e.extend_from_slice(body);
        e
    }

    #[test]
    fn zstd_and_uncompressed_payloads_give_back_their_events() {
        let events = vec![fake_event(2, b"BEGIN-ish"), fake_event(0x10, &7u64.to_le_bytes())];
        for compress in [true, false] {
            let body = payload_body(&events, compress);
            let p = TransactionPayload::parse(&mut Reader::new(&body, 19, 0x28)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.events().unwrap_or_else(|e| panic!("{e}")), events);
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        let events = vec![fake_event(2, b"x")];
        let mut body = payload_body(&events, true);
        // The uncompressed size field says one byte more.
        let at = body.iter().position(|&b| b == 3).unwrap_or(0) + 2;
        body[at] += 1;
        let p = TransactionPayload::parse(&mut Reader::new(&body, 19, 0x28)).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.events().expect_err("a wrong size").contains("header says"));
        let unknown = TransactionPayload { compression: 7, uncompressed_size: 0, payload: vec![] };
        assert!(unknown.events().expect_err("an unknown compression").contains("compression type 7"));
        let cut = TransactionPayload { compression: NONE, uncompressed_size: 0, payload: fake_event(2, b"abc")[..20].to_vec() };
        assert!(cut.events().is_err());
        assert!(TransactionPayload::parse(&mut Reader::new(&[1, 1, 5, 0], 19, 0x28)).is_err(), "no compression type");
    }
}
