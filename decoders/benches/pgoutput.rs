//! Throughput of the pgoutput wire parser and of the stateful decoder over streams captured from real
//! PostgreSQL 17 and 15 servers (`tests/fixtures/pg17.bin`, `pg15.bin`), in messages per second.
//!
//! Run with `cargo bench -p turnout-decoders --bench pgoutput`.

use bytes::{Buf, Bytes};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use turnout_decoders::pg::pgoutput::{self, PgOutputMessage};
use turnout_decoders::pg::PgOutputDecoder;

/// The payloads of a capture file: records of `u64 wal_start | u32 length | payload`, big-endian.
fn load(major: u32) -> Vec<Bytes> {
    // The directory cargo runs this from, not the one it was compiled in (a shared target directory
    // may hold a binary built from another checkout).
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = format!("{dir}/tests/fixtures/pg{major}.bin");
    let mut buf = match std::fs::read(&path) {
        Ok(b) => Bytes::from(b),
        Err(e) => panic!("{path}: {e}"),
    };
    let mut out = Vec::new();
    while buf.remaining() >= 12 {
        let _wal_start = buf.get_u64();
        let len = buf.get_u32() as usize;
        assert!(len <= buf.remaining(), "{path}: truncated record");
        out.push(buf.split_to(len));
    }
    assert!(!buf.has_remaining(), "{path}: trailing bytes");
    out
}

/// Wire-parses every message, tracking Stream Start / Stream Stop as the decoder does. Returns the
/// number of messages parsed.
fn parse_all(messages: &[Bytes]) -> usize {
    let mut in_stream = false;
    let mut parsed = 0;
    for data in messages {
        match pgoutput::parse(black_box(data), in_stream) {
            Ok(msg) => {
                match msg {
                    PgOutputMessage::StreamStart(_) => in_stream = true,
                    PgOutputMessage::StreamStop => in_stream = false,
                    _ => {}
                }
                black_box(msg);
                parsed += 1;
            }
            Err(e) => panic!("capture does not parse: {e}"),
        }
    }
    parsed
}

/// Decodes every message with a fresh decoder. Returns the number of events produced.
fn decode_all(messages: &[Bytes]) -> usize {
    let mut decoder = PgOutputDecoder::new();
    let mut events = 0;
    for data in messages {
        match decoder.decode(black_box(data)) {
            Ok(event) => events += usize::from(black_box(event).is_some()),
            Err(e) => panic!("capture does not decode: {e}"),
        }
    }
    events
}

fn bench(c: &mut Criterion) {
    for major in [17, 15] {
        let messages = load(major);
        // Fail fast, outside the measurement, if the capture stopped decoding.
        assert_eq!(parse_all(&messages), messages.len());
        decode_all(&messages);

        let mut group = c.benchmark_group(format!("pgoutput/pg{major}"));
        group.sample_size(20);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(5));
        group.throughput(Throughput::Elements(messages.len() as u64));
        group.bench_function("parse", |b| b.iter(|| parse_all(black_box(&messages))));
        group.bench_function("decode", |b| b.iter(|| decode_all(black_box(&messages))));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
