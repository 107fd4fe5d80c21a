//! libFuzzer target for the pgoutput wire parser and the stateful pgoutput decoder: whatever the bytes,
//! parsing and decoding must return a value or an error, never panic, and a decoded row must have the
//! shape its table announced.
//!
//! Each input is used four ways:
//! 1. as one message for `pgoutput::parse`, outside and inside a streamed transaction;
//! 2. as one message for a fresh `PgOutputDecoder`;
//! 3. as one message for a decoder that already knows every table and type of the captured streams
//!    (`decoders/tests/fixtures/pg*.bin`), outside and then inside a streamed transaction, so that
//!    captured Insert/Update/Delete seeds reach the typed value decoding;
//! 4. as a sequence of messages — first byte the count, then per message a big-endian `u16` length
//!    and the payload — for a fresh and for a primed decoder, so Relation, Type, Stream Start and Stop
//!    followed by row changes exercise the relation cache and the stream state.

#![no_main]

use bytes::{Buf, Bytes};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use turnout_decoders::pg::pgoutput::{self, PgOutputMessage};
use turnout_decoders::pg::PgOutputDecoder;
use turnout_decoders::ChangeEvent;

/// Captured streams: records of `u64 wal_start | u32 length | payload`, big-endian.
const CAPTURES: [&[u8]; 2] = [
    include_bytes!("../../decoders/tests/fixtures/pg17.bin"),
    include_bytes!("../../decoders/tests/fixtures/pg15.bin"),
];

/// Stream Start of transaction 1, first segment.
const STREAM_START: &[u8] = b"S\x00\x00\x00\x01\x01";

/// The Type and Relation messages of the captures, in capture order, each in its out-of-stream form.
fn schema_messages() -> &'static [Bytes] {
    static MESSAGES: OnceLock<Vec<Bytes>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let mut out = Vec::new();
        for capture in CAPTURES {
            let mut buf = Bytes::from_static(capture);
            let mut in_stream = false;
            while buf.remaining() >= 12 {
                let _wal_start = buf.get_u64();
                let len = buf.get_u32() as usize;
                let data = buf.split_to(len.min(buf.remaining()));
                match pgoutput::parse(&data, in_stream) {
                    Ok(PgOutputMessage::StreamStart(_)) => in_stream = true,
                    Ok(PgOutputMessage::StreamStop) => in_stream = false,
                    Ok(PgOutputMessage::Relation(_) | PgOutputMessage::Type(_)) if in_stream => {
                        // Drop the leading transaction id.
                        let mut plain = data[..1].to_vec();
                        plain.extend_from_slice(&data[5..]);
                        out.push(Bytes::from(plain));
                    }
                    Ok(PgOutputMessage::Relation(_) | PgOutputMessage::Type(_)) => out.push(data),
                    _ => {}
                }
            }
        }
        out
    })
}

/// A decoder whose caches hold every captured table and type.
fn primed() -> PgOutputDecoder {
    let mut decoder = PgOutputDecoder::new();
    for data in schema_messages() {
        if let Err(e) = decoder.decode(data) {
            panic!("captured schema message does not decode: {e}");
        }
    }
    decoder
}

/// Decodes one message and checks what a successful decode promises.
fn decode(decoder: &mut PgOutputDecoder, data: &Bytes) {
    let Ok(Some(event)) = decoder.decode(data) else { return };
    match &event {
        ChangeEvent::Insert { table, after, .. } => assert_eq!(after.len(), table.columns.len()),
        ChangeEvent::Update { table, key, before, after, .. } => {
            assert_eq!(after.len(), table.columns.len());
            assert_eq!(before.as_ref().map_or(after.len(), Vec::len), table.columns.len());
            assert_eq!(key.len(), table.key_indexes().count());
        }
        ChangeEvent::Delete { table, key, before, .. } => {
            assert_eq!(before.as_ref().map_or(table.columns.len(), Vec::len), table.columns.len());
            assert_eq!(key.len(), table.key_indexes().count());
        }
        ChangeEvent::StreamStart { .. } => assert!(decoder.in_stream()),
        ChangeEvent::StreamStop => assert!(!decoder.in_stream()),
        ChangeEvent::Relation(schema) => {
            assert!(decoder.relation(schema.relation_id).is_some_and(|cached| cached == schema));
        }
        _ => {}
    }
}

/// Splits `data` into messages: first byte the count, then per message a big-endian `u16` length and
/// that many bytes (fewer for the last one if the input ends early).
fn messages(data: &Bytes) -> Vec<Bytes> {
    let mut rest = data.clone();
    if !rest.has_remaining() {
        return Vec::new();
    }
    let count = rest.get_u8();
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        if rest.remaining() < 2 {
            break;
        }
        let len = usize::from(rest.get_u16());
        out.push(rest.split_to(len.min(rest.remaining())));
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let data = Bytes::copy_from_slice(input);

    for in_stream in [false, true] {
        if let Ok(msg) = pgoutput::parse(&data, in_stream) {
            assert_eq!(Some(&msg.tag()), data.first());
        }
    }

    decode(&mut PgOutputDecoder::new(), &data);

    let mut decoder = primed();
    decode(&mut decoder, &data);
    decode(&mut decoder, &Bytes::from_static(STREAM_START));
    decode(&mut decoder, &data);

    let sequence = messages(&data);
    for mut decoder in [PgOutputDecoder::new(), primed()] {
        for message in &sequence {
            decode(&mut decoder, message);
        }
    }
});
