//! The binlog decoder over binlog files captured from a real Oracle MySQL 9.7
//! (`tests/fixtures/mysql97/scenario.txt`, made by `tests/examples/capture_binlog.rs --mysql`): every
//! event MySQL writes for the scenario decodes — GTIDs and previous GTIDs, table maps with full
//! metadata, rows, binary JSON, VECTOR, zstd transaction payloads, rotates, files with and without
//! checksums, JSON updates logged as partial diffs (applied to the before image) — and exactly two are
//! refused, naming the fix: JSON holding typed (opaque) scalars, which green would store as other types,
//! and a partial JSON diff in a minimal row image, which lacks the document it applies to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use turnout_decoders::mysql::binlog::split_file;
use turnout_decoders::mysql::binlog::{parse_event, BinlogEvent, FormatDescription};
use turnout_decoders::mysql::decoder::{BinlogDecoder, OwnWrites};
use turnout_decoders::{ChangeEvent, GtidState, Position, Value};

const FILES: [&str; 4] = ["mysql-bin.000001", "mysql-bin.000002", "mysql-bin.000003", "mysql-bin.000004"];

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()))
        .join("tests/fixtures/mysql97")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Per event of every file, in order: its change events or its error.
fn decode_all() -> Vec<Result<Vec<ChangeEvent>, String>> {
    // Tables of `fx` replicate once the schema exists (CREATE DATABASE and seven CREATE TABLEs: GTIDs 1–8),
    // `mj` once it was created (GTID 26, scenario.txt), as after a snapshot.
    let armed = Arc::new(AtomicBool::new(false));
    let mj = Arc::new(AtomicBool::new(false));
    let (a, m) = (Arc::clone(&armed), Arc::clone(&mj));
    let mut d =
        BinlogDecoder::new(GtidState::None, Box::new(move |t| t.schema == "fx" && a.load(Ordering::SeqCst) && (t.name != "mj" || m.load(Ordering::SeqCst))));
    let mut out = Vec::new();
    for file in FILES {
        for raw in split_file(&fixture(file)) {
            let r = d.decode(raw.expect("event")).map(|x| x.events).map_err(|e| e.to_string());
            if let Ok(events) = &r {
                for e in events {
                    if let ChangeEvent::Commit { position: Position::Binlog(b), .. } = e {
                        if let GtidState::MySql(sets) = &b.gtids {
                            let last = sets.values().flatten().map(|(_, last)| *last).max().unwrap_or(0);
                            armed.fetch_or(last >= 8, Ordering::SeqCst);
                            mj.fetch_or(last >= 26, Ordering::SeqCst);
                        }
                    }
                }
            }
            out.push(r);
        }
    }
    out
}

fn inserted(events: &[ChangeEvent], table: &str) -> Vec<Vec<Value>> {
    events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Insert { table: t, after, .. } if t.name.name == table => Some(after.clone()),
            _ => None,
        })
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::Json { text, .. } => text.as_str().to_owned(),
        other => panic!("not JSON: {other:?}"),
    }
}

#[test]
fn every_event_of_a_mysql_9_7_binlog_decodes_and_only_minimal_partial_json_is_refused() {
    let outcome = decode_all();
    let errors: Vec<&String> = outcome.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("PARTIAL_UPDATE_ROWS") && errors[0].contains("binlog_row_image = FULL"), "{}", errors[0]);
    let events: Vec<ChangeEvent> = outcome.iter().filter_map(|r| r.as_ref().ok()).flatten().cloned().collect();

    // A document holding a typed DECIMAL: its text, and the SQL that rebuilds it with its type.
    let (typed, mj): (Vec<Vec<Value>>, Vec<Vec<Value>>) = inserted(&events, "mj").into_iter().partition(|r| matches!(r[1], Value::TypedJson { .. }));
    assert_eq!(typed.len(), 1, "{typed:?}");
    assert!(matches!(&typed[0][1], Value::TypedJson { sql, .. } if sql.as_str().contains(" AS DECIMAL(")), "{:?}", typed[0][1]);

    // Binary JSON as text: an unsigned 64-bit integer, a non-ASCII string, a 70 kB document.
    assert_eq!(mj.len(), 2);
    let one = text(&mj[0][1]);
    assert!(one.contains("18446744073709551615") && one.contains("é") && one.contains("3.5"), "{one}");
    assert!(text(&mj[1][1]).len() > 70_000);
    assert!(matches!(&mj[0][2], Value::Bytes(b) if b.len() == 12), "VECTOR(3): three 4-byte floats: {:?}", mj[0][2]);

    // JSON_SET, JSON_REMOVE and JSON_REPLACE logged as diffs (PARTIAL_JSON, full row images) come out as
    // the whole documents blue stored, as MySQL's `SELECT j` printed them after each statement.
    let updated: Vec<(i64, String)> = events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Update { table, after, .. } if table.name.name == "mj" => match &after[0] {
                Value::Int8(id) => Some((*id, text(&after[1]))),
                other => panic!("id {other:?}"),
            },
            _ => None,
        })
        .collect();
    let long = |s: &str| s.to_owned();
    assert_eq!(
        updated,
        [
            (1, long(r#"{"a": {"b": [1, -2, 3.5, "é", null, true, false]}, "k": 18446744073709551615, "n": 1}"#)),
            (1, long(r#"{"a": {"b": [7, -2, 3.5, "é", null, true, false, {"z": 1}], "new": "x"}, "k": 18446744073709551615, "n": 1}"#)),
            (1, long(r#"{"a": {"b": [7, -2, 3.5, "é", null, true, false], "new": "x"}, "n": 1}"#)),
            (3, long(r#"{"big": "small"}"#)),
        ]
    );

    // The compressed transactions' rows arrive like any others.
    let ints: Vec<&Value> = inserted(&events, "ints").iter().map(|r| r[0].clone()).collect::<Vec<_>>().leak().iter().collect();
    assert!(ints.contains(&&Value::Int8(60)) && ints.contains(&&Value::Int8(61)), "{ints:?}");
    let strs = inserted(&events, "strs");
    assert!(strs.iter().any(|r| r[0] == Value::Int8(62) && matches!(&r[9], Value::Bytes(b) if b.len() == 60_000)), "no compressed 60 kB row");

    // Commits in GTID order, each at a later offset within its file, every state a MySQL GTID set.
    // (Tagged transactions count in their own source: the number of transactions grows.)
    let commits: Vec<(String, u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Commit { position: Position::Binlog(b), .. } => match &b.gtids {
                GtidState::MySql(sets) => Some((b.file.clone(), b.offset, sets.values().flatten().map(|(first, last)| last - first + 1).sum())),
                other => panic!("not a MySQL GTID set: {other:?}"),
            },
            _ => None,
        })
        .collect();
    assert!(commits.len() > 20, "{commits:?}");
    assert!(commits.windows(2).all(|w| w[1].2 > w[0].2 && (w[1].0 != w[0].0 || w[1].1 > w[0].1)), "{commits:?}");
    // The first compressed transaction commits where its payload event ends (mysqlbinlog: end_log_pos
    // 155395). The first file has no name: only a ROTATE names a file, and a dump starts with one.
    assert!(commits.iter().any(|(f, o, _)| f.is_empty() && *o == 155_395), "{commits:?}");
    assert!(commits.iter().any(|(f, _, _)| f == "mysql-bin.000004"), "the last file's change: {commits:?}");
}

/// The ids of `ints` rows inserted in `events`.
fn int_ids(events: &[ChangeEvent]) -> Vec<Value> {
    inserted(events, "ints").into_iter().map(|r| r[0].clone()).collect()
}

#[test]
fn tagged_transactions_decode_into_their_own_source_and_a_decoder_can_drop_a_tag_whole() {
    // Every event of every file, through one decoder that replicates `fx` from the start.
    let decode = |own: OwnWrites| {
        let mut d = BinlogDecoder::new(GtidState::None, Box::new(|t| t.schema == "fx")).dropping(own);
        let mut events = Vec::new();
        for file in FILES {
            for raw in split_file(&fixture(file)) {
                // The scenario's two refusals (typed JSON, a minimal partial diff) come before the
                // tagged transactions and leave the decoder reading on.
                if let Ok(decoded) = d.decode(raw.expect("event")) {
                    events.extend(decoded.events);
                }
            }
        }
        (events, d.gtids().to_string())
    };
    let (all, state) = decode(OwnWrites::default());
    let ids = int_ids(&all);
    for id in [70, 71, 72, 73] {
        assert!(ids.contains(&Value::Int8(id)), "row {id} of the tagged scenario: {ids:?}");
    }
    // The tagged transactions (a row, two statements, a compressed one, DDL) are fx_tag:1-4, apart
    // from the server's untagged numbers.
    assert!(state.contains(":fx_tag:1-4"), "{state}");
    let tagged_commit = all.iter().find_map(|e| match e {
        ChangeEvent::Commit { position, .. } if position.to_string().contains("fx_tag:1)") => Some(position.clone()),
        _ => None,
    });
    assert!(tagged_commit.is_some(), "the first tagged transaction's commit names its tag");
    // Dropping the tag: none of its rows, its GTIDs still in the state; the untagged row after it.
    let (dropped, dropped_state) = decode(OwnWrites { domains: vec![], tags: vec!["fx_tag".into()] });
    let ids = int_ids(&dropped);
    assert!(ids.contains(&Value::Int8(73)) && ![70, 71, 72].iter().any(|id| ids.contains(&Value::Int8(*id))), "{ids:?}");
    let updated_71 = |events: &[ChangeEvent]| {
        events.iter().any(|e| matches!(e, ChangeEvent::Update { table, after, .. } if table.name.name == "ints" && after[0] == Value::Int8(71)))
    };
    assert!(updated_71(&all) && !updated_71(&dropped), "the tagged UPDATE is dropped too");
    assert_eq!(dropped_state, state, "dropped transactions still enter the GTID state");
    // The files after them open with PREVIOUS_GTIDS in the tagged encoding.
    let mut fde = FormatDescription::default_v4();
    let mut previous = None;
    for raw in split_file(&fixture(FILES[1])) {
        match parse_event(raw.expect("event"), &fde).expect("parses").event {
            BinlogEvent::FormatDescription(f) => fde = f,
            BinlogEvent::PreviousGtids(p) => previous = Some(p.to_string()),
            _ => {}
        }
    }
    let previous = previous.expect("a PREVIOUS_GTIDS event");
    assert!(previous.ends_with(":fx_tag:1-4"), "{previous}");
}
