//! Decodes pgoutput streams captured from real PostgreSQL 15 (protocol 3) and 17 (protocol 4) servers
//! by `tests/examples/capture_pgoutput.rs`, and checks the events against the workload that produced them.

use bytes::{Buf, Bytes};
use std::collections::BTreeSet;
use turnout_decoders::pg::pgoutput;
use turnout_decoders::pg::PgOutputDecoder;
use turnout_decoders::schema::ColumnType;
use turnout_decoders::value::TemporalKind;
use turnout_decoders::{ChangeEvent, Lsn, Position, ReplicaIdentity, Value};

/// `(wal_start, payload)` records of a capture file.
fn load(major: u32) -> Vec<(Lsn, Bytes)> {
    // The directory cargo runs this from, not the one it was compiled in (a shared target directory
    // may hold a binary built from another checkout).
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = format!("{dir}/tests/fixtures/pg{major}.bin");
    let mut buf = Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")));
    let mut out = Vec::new();
    while buf.has_remaining() {
        let lsn = Lsn(buf.get_u64());
        let len = buf.get_u32() as usize;
        out.push((lsn, buf.split_to(len)));
    }
    out
}

fn decode_all(major: u32) -> Vec<ChangeEvent> {
    let mut decoder = PgOutputDecoder::new();
    load(major).iter().enumerate().filter_map(|(i, (_, data))| decoder.decode(data).unwrap_or_else(|e| panic!("pg{major} record {i}: {e}"))).collect()
}

fn tags(major: u32) -> BTreeSet<char> {
    load(major).iter().map(|(_, d)| char::from(d[0])).collect()
}

#[test]
fn captures_contain_every_message_type() {
    let expected: BTreeSet<char> = "BCORYIUDTMSEcAbPKrp".chars().collect();
    for major in [15, 17] {
        let have = tags(major);
        let missing: Vec<_> = expected.difference(&have).collect();
        assert!(missing.is_empty(), "pg{major} capture lacks {missing:?}");
    }
}

fn first_insert<'a>(events: &'a [ChangeEvent], table: &str) -> &'a [Value] {
    events
        .iter()
        .find_map(|e| match e {
            ChangeEvent::Insert { table: t, after, .. } if t.name.name == table => Some(after.as_slice()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no insert into {table}"))
}

#[test]
fn typed_values_match_what_was_inserted() {
    for major in [15, 17] {
        let events = decode_all(major);
        let row = first_insert(&events, "items");
        assert_eq!(row[0], Value::Int4(1));
        assert_eq!(row[1], Value::Text("tab\there\nnewline \\ backslash \"q\"".into()));
        assert_eq!(row[2], Value::Int2(-32768));
        assert_eq!(row[3], Value::Int8(i64::MAX));
        assert_eq!(row[4], Value::Numeric("NaN".into()));
        assert_eq!(row[5], Value::Float8(f64::NEG_INFINITY));
        assert_eq!(row[6], Value::Bool(true));
        let Value::Array { elements, .. } = &row[7] else { panic!("tags is {:?}", row[7]) };
        assert_eq!(elements[1], Value::Null);
        assert_eq!(elements[2], Value::Text("NULL".into()));
        assert_eq!(elements[3], Value::Text("with \"quote\"".into()));
        assert!(matches!(&row[8], Value::Array { elements, .. } if elements.len() == 2));
        assert_eq!(row[9], Value::Json { jsonb: true, text: r#"{"k": [1, 2.5, null]}"#.into() });
        assert_eq!(row[10], Value::Json { jsonb: false, text: r#"{"raw":  true}"#.into() });
        assert!(matches!(&row[11], Value::Unknown { text, .. } if text.as_str() == "happy"));
        assert_eq!(row[12], Value::Temporal(TemporalKind::TimestampTz, "2024-02-29 07:04:56.789+00".into()));
        assert_eq!(row[14], Value::Temporal(TemporalKind::Interval, "1 year 2 mons 3 days 04:05:06.7".into()));
        assert_eq!(row[15], Value::Bytes(Bytes::from_static(&[0, 0xff, 0x10])));
        assert!(matches!(row[16], Value::Uuid(u) if u[0] == 0xa0));
        assert_eq!(row[17], Value::Text("ab ".into()));
    }
}

#[test]
fn enum_columns_carry_the_type_name_from_the_type_message() {
    let events = decode_all(17);
    let schema = events
        .iter()
        .find_map(|e| match e {
            ChangeEvent::Relation(s) if s.name.name == "items" => Some(s),
            _ => None,
        })
        .expect("items relation");
    let mood = schema.columns.iter().find(|c| c.name == "mood").expect("mood column");
    let ColumnType::Pg { name, .. } = &mood.ty else { panic!("not a PostgreSQL column") };
    assert_eq!(name.as_ref().map(ToString::to_string).as_deref(), Some("public.mood"));
    assert_eq!(schema.key_indexes().collect::<Vec<_>>(), vec![0]);
}

#[test]
fn updates_carry_key_old_row_and_unchanged_toast_as_sent() {
    for major in [15, 17] {
        let events = decode_all(major);
        let updates: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ChangeEvent::Update { table, key, before, after, .. } => Some((table.name.name.as_str(), key, before, after)),
                _ => None,
            })
            .collect();
        // Key change on items: the old key (2) arrives in a K tuple.
        assert!(updates
            .iter()
            .any(|(t, key, before, after)| *t == "items" && key == &&vec![Value::Int4(2)] && before.is_none() && after[0] == Value::Int4(102)));
        // REPLICA IDENTITY FULL: the whole old row, and every column is key.
        let full = updates.iter().find(|(t, ..)| *t == "full_t").expect("full_t update");
        assert_eq!(full.2.as_deref(), Some(&[Value::Int4(1), Value::Text("one".into())][..]));
        assert_eq!(full.1.len(), 2);
        // The TOASTed blob was not touched by the update: Unchanged.
        let toast = updates.iter().find(|(t, ..)| *t == "toasty").expect("toasty update");
        assert_eq!(toast.3[1], Value::Int4(1));
        assert_eq!(toast.3[2], Value::Unchanged);
    }
}

#[test]
fn truncate_flags_and_full_identity_are_decoded() {
    let events = decode_all(15);
    let truncates: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Truncate { tables, cascade, restart_identity, .. } => Some((tables, *cascade, *restart_identity)),
            _ => None,
        })
        .collect();
    assert_eq!(truncates.len(), 2);
    assert!(truncates[0].1 && truncates[0].2);
    assert_eq!(truncates[0].0.len(), 2);
    assert!(!truncates[1].1 && !truncates[1].2);
    assert_eq!(truncates[1].0[0].replica_identity, ReplicaIdentity::Full);
}

#[test]
fn streamed_transactions_commit_abort_and_prepare() {
    for major in [15, 17] {
        let events = decode_all(major);
        let mut streamed_inserts: std::collections::HashMap<u64, usize> = Default::default();
        let mut commits = Vec::new();
        let mut aborts = Vec::new();
        let mut stream_prepares = Vec::new();
        for e in &events {
            match e {
                ChangeEvent::Insert { xid: Some(x), .. } => *streamed_inserts.entry(*x).or_default() += 1,
                ChangeEvent::StreamCommit { xid, .. } => commits.push(*xid),
                ChangeEvent::StreamAbort { xid, abort_position, .. } => aborts.push((*xid, abort_position.clone())),
                ChangeEvent::Prepare { streamed: true, xid, .. } => stream_prepares.push(*xid),
                _ => {}
            }
        }
        // Committed and prepared streamed transactions arrive whole; the aborted one only up to the
        // last segment sent before its rollback.
        assert_eq!(commits.len(), 1);
        assert_eq!(stream_prepares.len(), 1);
        assert_eq!(aborts.len(), 1);
        assert_eq!(streamed_inserts[&commits[0]], 3000, "pg{major}");
        assert_eq!(streamed_inserts[&stream_prepares[0]], 3000, "pg{major}");
        assert!((1..=3000).contains(&streamed_inserts[&aborts[0].0]), "pg{major}");
        // Protocol 4 with parallel streaming sends the abort LSN; protocol 3 does not.
        assert_eq!(aborts[0].1.is_some(), major >= 17, "pg{major}");
    }
}

#[test]
fn two_phase_origin_and_messages_are_decoded() {
    let events = decode_all(15);
    let gids: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::CommitPrepared { gid, .. } => Some(format!("commit {gid}")),
            ChangeEvent::RollbackPrepared { gid, .. } => Some(format!("rollback {gid}")),
            _ => None,
        })
        .collect();
    assert_eq!(gids, vec!["commit fx_commit", "rollback fx_rollback", "commit fx_stream"]);
    assert!(events.iter().any(
        |e| matches!(e, ChangeEvent::Origin { name, origin_position } if name == "fixture_origin" && *origin_position == Some(Position::Pg(Lsn(0xABCDEF))))
    ));
    let msgs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Message { transactional, content, .. } => Some((*transactional, content.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(msgs, vec![(true, Bytes::from_static(b"transactional")), (false, Bytes::from_static(b"bare"))]);
    // The rolled-back insert of id 99 never appears.
    assert!(!events
        .iter()
        .any(|e| matches!(e, ChangeEvent::Insert { table, after, .. } if table.name.name == "items" && after.first() == Some(&Value::Int4(99)))));
}

#[test]
fn commit_positions_increase_in_commit_order() {
    let events = decode_all(17);
    let mut last = Lsn::ZERO;
    for e in &events {
        if let ChangeEvent::Commit { position: turnout_decoders::Position::Pg(p), .. } = e {
            assert!(*p > last, "{p} after {last}");
            last = *p;
        }
    }
    assert!(last > Lsn::ZERO);
}

#[test]
fn every_truncated_captured_message_fails_cleanly() {
    // A sample of every message type, cut at every length: an error naming the tag, never a panic.
    let records = load(17);
    let mut seen = BTreeSet::new();
    for (_, data) in &records {
        if !seen.insert(data[0]) {
            continue;
        }
        for cut in 0..data.len() {
            let in_stream = matches!(data[0], b'I' | b'R') && cut > 0;
            let _ = pgoutput::parse(&data.slice(..cut), in_stream);
            // A prefix must never be accepted as a whole message. (Stream Abort legitimately has a
            // shorter protocol-3 form, and Stream Stop has no body.)
            if cut > 0 && !matches!(data[0], b'E' | b'A') {
                if let Ok(m) = pgoutput::parse(&data.slice(..cut), false) {
                    panic!("prefix of {} bytes of a {}-byte '{}' parsed as {m:?}", cut, data.len(), char::from(data[0]));
                }
            }
        }
    }
}
