//! Byte-built edge cases for the pgoutput parser. Captured streams from real servers are decoded in
//! `decoders/tests/fixtures.rs`.

use super::*;
use crate::position::Lsn;
use bytes::{BufMut, BytesMut};

fn msg(build: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::new();
    build(&mut b);
    b.freeze()
}

fn cstr(b: &mut BytesMut, s: &str) {
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

fn relation(b: &mut BytesMut, in_stream: bool) {
    b.put_u8(b'R');
    if in_stream {
        b.put_u32(77);
    }
    b.put_u32(16384);
    cstr(b, "public");
    cstr(b, "t");
    b.put_u8(b'd');
    b.put_i16(2);
    b.put_u8(1);
    cstr(b, "id");
    b.put_u32(23);
    b.put_i32(-1);
    b.put_u8(0);
    cstr(b, "body");
    b.put_u32(25);
    b.put_i32(-1);
}

#[test]
fn relation_in_and_out_of_streams() {
    let r = parse(&msg(|b| relation(b, false)), false).expect("parses");
    let PgOutputMessage::Relation(r) = r else { panic!("not a relation") };
    assert_eq!((r.relation_id, r.name.as_str(), r.columns.len(), r.xid), (16384, "t", 2, None));
    assert_eq!(r.columns[0].flags, 1);
    let r = parse(&msg(|b| relation(b, true)), true).expect("parses");
    assert!(matches!(r, PgOutputMessage::Relation(Relation { xid: Some(77), .. })));
}

#[test]
fn update_with_key_tuple_and_unchanged_toast() {
    let data = msg(|b| {
        b.put_u8(b'U');
        b.put_u32(16384);
        b.put_u8(b'K');
        b.put_i16(2);
        b.put_u8(b't');
        b.put_i32(1);
        b.put_slice(b"1");
        b.put_u8(b'n');
        b.put_u8(b'N');
        b.put_i16(2);
        b.put_u8(b't');
        b.put_i32(1);
        b.put_slice(b"2");
        b.put_u8(b'u');
    });
    let PgOutputMessage::Update(u) = parse(&data, false).expect("parses") else { panic!("not an update") };
    assert!(matches!(u.old, Some(OldTuple::Key(_))));
    assert_eq!(u.new.0[1], TupleValue::Unchanged);
}

#[test]
fn update_with_old_tuple_and_without() {
    let with_old = msg(|b| {
        b.put_u8(b'U');
        b.put_u32(1);
        b.put_u8(b'O');
        b.put_i16(1);
        b.put_u8(b'n');
        b.put_u8(b'N');
        b.put_i16(1);
        b.put_u8(b'b');
        b.put_i32(2);
        b.put_slice(&[0, 7]);
    });
    let PgOutputMessage::Update(u) = parse(&with_old, false).expect("parses") else { panic!() };
    assert!(matches!(u.old, Some(OldTuple::Old(_))));
    assert_eq!(u.new.0[0], TupleValue::Binary(Bytes::from_static(&[0, 7])));
    let plain = msg(|b| {
        b.put_u8(b'U');
        b.put_u32(1);
        b.put_u8(b'N');
        b.put_i16(0);
    });
    let PgOutputMessage::Update(u) = parse(&plain, false).expect("parses") else { panic!() };
    assert_eq!(u.old, None);
}

#[test]
fn truncate_flags_and_ids() {
    let data = msg(|b| {
        b.put_u8(b'T');
        b.put_u32(2);
        b.put_u8(3);
        b.put_u32(10);
        b.put_u32(11);
    });
    let PgOutputMessage::Truncate(t) = parse(&data, false).expect("parses") else { panic!() };
    assert!(t.cascade && t.restart_identity);
    assert_eq!(t.relation_ids, vec![10, 11]);
}

#[test]
fn stream_abort_with_and_without_abort_info() {
    let short = msg(|b| {
        b.put_u8(b'A');
        b.put_u32(5);
        b.put_u32(6);
    });
    let PgOutputMessage::StreamAbort(a) = parse(&short, false).expect("parses") else { panic!() };
    assert_eq!((a.xid, a.subxid, a.abort_lsn), (5, 6, None));
    let long = msg(|b| {
        b.put_u8(b'A');
        b.put_u32(5);
        b.put_u32(5);
        b.put_u64(0x100);
        b.put_i64(0);
    });
    let PgOutputMessage::StreamAbort(a) = parse(&long, false).expect("parses") else { panic!() };
    assert_eq!(a.abort_lsn, Some(Lsn(0x100)));
    let odd = msg(|b| {
        b.put_u8(b'A');
        b.put_u32(5);
        b.put_u32(5);
        b.put_u32(1);
    });
    assert!(parse(&odd, false).is_err());
}

#[test]
fn two_phase_messages_parse() {
    let gid = |b: &mut BytesMut| cstr(b, "gid-1");
    let bp = msg(|b| {
        b.put_u8(b'b');
        b.put_u64(1);
        b.put_u64(2);
        b.put_i64(3);
        b.put_u32(4);
        gid(b);
    });
    assert!(matches!(parse(&bp, false), Ok(PgOutputMessage::BeginPrepare(BeginPrepare { xid: 4, .. }))));
    for tag in [b'P', b'p', b'K'] {
        let m = msg(|b| {
            b.put_u8(tag);
            b.put_u8(0);
            b.put_u64(1);
            b.put_u64(2);
            b.put_i64(3);
            b.put_u32(4);
            gid(b);
        });
        let parsed = parse(&m, false).expect("parses");
        assert_eq!(parsed.tag(), tag);
    }
    let rp = msg(|b| {
        b.put_u8(b'r');
        b.put_u8(0);
        b.put_u64(1);
        b.put_u64(2);
        b.put_i64(3);
        b.put_i64(4);
        b.put_u32(5);
        gid(b);
    });
    assert!(matches!(parse(&rp, false), Ok(PgOutputMessage::RollbackPrepared(RollbackPrepared { xid: 5, .. }))));
}

#[test]
fn every_truncation_of_a_valid_message_is_an_error_with_offset() {
    let full = msg(|b| relation(b, false));
    for cut in 1..full.len() {
        let err = parse(&full.slice(..cut), false).expect_err("truncated must fail");
        match err {
            crate::DecodeError::Malformed { tag: 'R', offset, .. } => assert!(offset <= cut, "offset {offset} > {cut}"),
            other => panic!("unexpected {other}"),
        }
    }
}

#[test]
fn hostile_lengths_and_counts_are_rejected_without_allocating() {
    // Column count 32767 with no bytes behind it.
    let data = msg(|b| {
        b.put_u8(b'I');
        b.put_u32(1);
        b.put_u8(b'N');
        b.put_i16(i16::MAX);
    });
    assert!(matches!(parse(&data, false), Err(crate::DecodeError::Malformed { tag: 'I', offset: 6, .. })));
    // Negative value length.
    let data = msg(|b| {
        b.put_u8(b'I');
        b.put_u32(1);
        b.put_u8(b'N');
        b.put_i16(1);
        b.put_u8(b't');
        b.put_i32(-5);
    });
    let err = parse(&data, false).expect_err("negative length");
    assert!(err.to_string().contains("negative"), "{err}");
    // Message content length larger than the message.
    let data = msg(|b| {
        b.put_u8(b'M');
        b.put_u8(1);
        b.put_u64(1);
        cstr(b, "p");
        b.put_i32(i32::MAX);
    });
    assert!(parse(&data, false).is_err());
    // Truncate count of two billion relations.
    let data = msg(|b| {
        b.put_u8(b'T');
        b.put_i32(i32::MAX);
        b.put_u8(0);
    });
    assert!(parse(&data, false).is_err());
}

#[test]
fn unknown_tags_and_trailing_bytes_are_errors() {
    assert!(matches!(parse(&Bytes::from_static(b"Z"), false), Err(crate::DecodeError::Malformed { tag: 'Z', .. })));
    assert!(parse(&Bytes::new(), false).is_err());
    assert!(matches!(parse(&Bytes::from_static(b"E\0"), false), Err(crate::DecodeError::Malformed { tag: 'E', offset: 1, .. })));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256), in_stream: bool) {
        let _ = parse(&Bytes::from(data), in_stream);
    }
}
