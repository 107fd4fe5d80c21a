//! Fuzz target: the PostgreSQL backend-message framing and the replication CopyData frames
//! (`pg::wire`), fed arbitrary bytes in arbitrary chunk sizes. The parser must never panic, never
//! allocate what a hostile length asks for, and never loop: each call either consumes bytes, asks for
//! more, or fails.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use turnout_decoders::pg::wire;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a chunk size, so messages arrive split at every possible point.
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match wire::parse_backend(&mut buf) {
                Ok(Some(wire::BackendMessage::CopyData(payload))) => {
                    let _ = wire::parse_replication(&payload);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
            assert!(buf.len() < before, "a message was returned without consuming bytes");
        }
    }
    // Every input is also a replication frame on its own.
    let _ = wire::parse_replication(&Bytes::copy_from_slice(rest));
});
