//! The binlog decoder over binlog files captured from a real MariaDB 10.11 (see
//! `tests/fixtures/mariadb/scenario.txt`): transactions and their positions and GTID states, table
//! schemas from table maps, values in the model, TRUNCATE and additive DDL, and the refusals (XA,
//! DDL that is not additive), event by event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use turnout_decoders::mysql::binlog::split_file;
use turnout_decoders::mysql::decoder::{BinlogDecoder, OwnWrites};
use turnout_decoders::schema::ColumnType;
use turnout_decoders::value::TemporalKind;
use turnout_decoders::{ChangeEvent, GtidState, Position, ReplicaIdentity, TableSchema, Value};

const FILES: [&str; 4] = ["mysql-bin.000001", "mysql-bin.000002", "mysql-bin.000003", "mysql-bin.000004"];

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()))
        .join("tests/fixtures/mariadb")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What decoding one file produced: per event, its change events or its error.
type Outcome = Vec<Result<Vec<ChangeEvent>, String>>;

/// Decodes `file`; tables of `fx` replicate once `armed` — after the transaction with GTID sequence
/// `arm_after` (the schema's creation: CREATE DATABASE and seven CREATE TABLEs), as after a snapshot.
fn decode(decoder: &mut BinlogDecoder, file: &str, armed: &AtomicBool, arm_after: u64) -> Outcome {
    let bytes = fixture(file);
    let mut out = Vec::new();
    for raw in split_file(&bytes) {
        let r = decoder.decode(raw.expect("event")).map(|d| d.events).map_err(|e| e.to_string());
        if let Ok(events) = &r {
            for e in events {
                if let ChangeEvent::Commit { position: Position::Binlog(b), .. } = e {
                    if let GtidState::MariaDb(d) = &b.gtids {
                        if d.get(&0).is_some_and(|g| g.sequence >= arm_after) {
                            armed.store(true, Ordering::SeqCst);
                        }
                    }
                }
            }
        }
        out.push(r);
    }
    out
}

fn decoder(armed: &Arc<AtomicBool>) -> BinlogDecoder {
    let a = Arc::clone(armed);
    BinlogDecoder::new(GtidState::None, Box::new(move |t| t.schema == "fx" && a.load(Ordering::SeqCst)))
}

fn events(outcome: &Outcome) -> Vec<ChangeEvent> {
    outcome.iter().filter_map(|r| r.as_ref().ok()).flatten().cloned().collect()
}

fn inserts_into<'a>(events: &'a [ChangeEvent], table: &str) -> Vec<&'a Vec<Value>> {
    events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Insert { table: t, after, .. } if t.name.name == table => Some(after),
            _ => None,
        })
        .collect()
}

fn column(schema: &TableSchema, name: &str) -> usize {
    schema.columns.iter().position(|c| c.name == name).unwrap_or_else(|| panic!("no column {name}"))
}

fn temporal(kind: TemporalKind, text: &str) -> Value {
    Value::Temporal(kind, text.into())
}

#[test]
fn transactions_commit_at_their_binlog_position_with_their_gtid() {
    let armed = Arc::new(AtomicBool::new(false));
    let mut d = decoder(&armed);
    let outcome = decode(&mut d, FILES[0], &armed, 8);
    let commits: Vec<(u64, u64)> = events(&outcome)
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Commit { position: Position::Binlog(b), .. } => match &b.gtids {
                GtidState::MariaDb(d) => Some((d[&0].sequence, b.offset)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    // GTIDs 1..=21 commit in order at strictly increasing offsets (the schema's DDL included).
    assert_eq!(commits.iter().map(|(s, _)| *s).take(21).collect::<Vec<_>>(), (1..=21).collect::<Vec<_>>());
    assert!(commits.windows(2).all(|w| w[1].1 > w[0].1), "{commits:?}");
    // GTID 22 is the XA transaction: refused, naming what to do.
    let err = outcome.iter().find_map(|r| r.as_ref().err()).expect("XA refused");
    assert!(err.contains("XA"), "{err}");
}

#[test]
fn table_maps_become_schemas_and_rows_become_model_values() {
    let armed = Arc::new(AtomicBool::new(false));
    let mut d = decoder(&armed);
    let events = events(&decode(&mut d, FILES[0], &armed, 8));
    let ints = events
        .iter()
        .find_map(|e| match e {
            ChangeEvent::Relation(s) if s.name.name == "ints" => Some(s.clone()),
            _ => None,
        })
        .expect("ints announced");
    assert_eq!(ints.replica_identity, ReplicaIdentity::Default);
    assert_eq!(ints.key_indexes().collect::<Vec<_>>(), vec![0]);
    let ColumnType::MySql(bu) = &ints.columns[column(&ints, "bu")].ty else { panic!("MySQL type") };
    assert!(bu.unsigned && bu.code == 8);
    let rows = inserts_into(&events, "ints");
    assert_eq!(rows[0][column(&ints, "bu")], Value::UInt8(u64::MAX));
    assert_eq!(rows[0][column(&ints, "b")], Value::Int8(i64::MIN));
    assert_eq!(rows[0][column(&ints, "y")], Value::Int8(0), "YEAR 0 stays 0");
    assert_eq!(rows[1][column(&ints, "y")], Value::Int8(2155));
    assert!(rows[2][1..].iter().all(|v| *v == Value::Null));

    let nums = inserts_into(&events, "nums");
    assert_eq!(nums[0][1], Value::Float4(1.5));
    assert_eq!(nums[0][2], Value::Float8(-2.25e-300));
    assert_eq!(nums[0][3], Value::Numeric("12345678901234567890123456789012345.123456789012345678901234567890".into()));
    assert_eq!(nums[0][4], Value::Numeric("-12345678.91".into()));
    assert_eq!(nums[1][8], Value::Bytes(bytes::Bytes::from_static(&[0xff; 8])));

    let t = inserts_into(&events, "temporal");
    assert_eq!(t[0][1], temporal(TemporalKind::Date, "2024-02-29"));
    assert_eq!(t[0][5], temporal(TemporalKind::Time, "-12:34:56.789012"));
    assert_eq!(t[0][12], temporal(TemporalKind::Timestamp, "2024-01-02 03:04:05.123456"));
    assert_eq!(t[0][13], temporal(TemporalKind::TimestampTz, "2038-01-19 03:14:07"));
    assert_eq!(t[0][14], temporal(TemporalKind::TimestampTz, "2024-02-29 12:34:56.789000"));
    assert_eq!(t[1][1], temporal(TemporalKind::Date, "0000-00-00"));
    assert_eq!(t[1][13], temporal(TemporalKind::TimestampTz, "0000-00-00 00:00:00"));
    assert_eq!(t[2][1], temporal(TemporalKind::Date, "2024-00-00"));

    let s = inserts_into(&events, "strs");
    assert_eq!(s[0][2], Value::Bytes(bytes::Bytes::from("😀 héllo".as_bytes().to_vec())));
    assert_eq!(s[0][3], Value::Bytes(bytes::Bytes::from_static(b"caf\xe9")), "latin1 bytes as stored");
    let e = inserts_into(&events, "enums");
    assert_eq!((e[0][1].clone(), e[0][2].clone()), (Value::UInt8(2), Value::UInt8(0b101)), "ENUM by index, SET by bits");
}

/// The events of file 1 after the XA transaction (which a stream refuses), preceded by the file's
/// format description.
fn file1_after_xa() -> Vec<Vec<u8>> {
    use turnout_decoders::mysql::binlog::{parse_event, BinlogEvent, FormatDescription};
    let bytes = fixture(FILES[0]);
    let raws: Vec<Vec<u8>> = split_file(&bytes).map(|r| r.expect("event").to_vec()).collect();
    let mut fde = FormatDescription::default_v4();
    let mut xa_end = 0;
    for (i, raw) in raws.iter().enumerate() {
        match parse_event(raw, &fde).expect("parse").event {
            BinlogEvent::FormatDescription(f) => fde = f,
            BinlogEvent::Query(q) if q.sql_text().starts_with("XA COMMIT") => xa_end = i,
            _ => {}
        }
    }
    assert!(xa_end > 0, "the capture holds an XA COMMIT");
    std::iter::once(raws[0].clone()).chain(raws[xa_end + 1..].iter().cloned()).collect()
}

#[test]
fn truncate_and_additive_ddl_are_replicated_and_the_new_shape_announced() {
    let armed = Arc::new(AtomicBool::new(true));
    let mut d = decoder(&armed);
    let mut events = Vec::new();
    for raw in file1_after_xa() {
        events.extend(d.decode(&raw).expect("decodes").events);
    }
    for f in &FILES[1..] {
        events.extend(self::events(&decode(&mut d, f, &armed, 0)));
    }
    assert!(events.iter().any(|e| matches!(e, ChangeEvent::Truncate { tables, .. } if tables[0].name.name == "docs")));
    let ddl = events.iter().position(|e| matches!(e, ChangeEvent::Ddl { statement, .. } if statement.contains("ADD COLUMN extra"))).expect("ALTER replicated");
    let ChangeEvent::Ddl { database, tables, .. } = &events[ddl] else { unreachable!() };
    assert_eq!((database.as_str(), tables[0].name.as_str()), ("fx", "strs"));
    // The next table map of strs announces the added column, before the rows that use it.
    let after: Vec<usize> = events[ddl..]
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Relation(s) if s.name.name == "strs" => Some(s.columns.len()),
            _ => None,
        })
        .collect();
    assert_eq!(after.first(), Some(&16));
    let inserted = inserts_into(&events[ddl..], "strs");
    assert_eq!(inserted[0].len(), 16);
    assert_eq!(inserted[0][15], Value::Int8(7), "the new column's default");
    // Positions follow the files through rotations.
    for f in &FILES[1..] {
        assert!(events.iter().any(|e| matches!(e, ChangeEvent::Commit { position: Position::Binlog(b), .. } if b.file == *f)), "{f}");
    }
}

#[test]
fn a_skipped_domain_passes_on_nothing_but_its_gtids_still_enter_the_state() {
    // Every transaction of the capture is in domain 0: skipping it, a decoder passes on no change,
    // yet after every event it holds the same GTID state and binlog file as one that skips nothing.
    let armed = Arc::new(AtomicBool::new(false));
    let mut plain = decoder(&armed);
    let a = Arc::clone(&armed);
    let mut skipping = BinlogDecoder::new(GtidState::None, Box::new(move |t| t.schema == "fx" && a.load(Ordering::SeqCst)))
        .dropping(OwnWrites { domains: vec![0], tags: vec![] });
    let bytes = fixture(FILES[0]);
    let (mut commits, mut compared) = (0, 0);
    for raw in split_file(&bytes) {
        let raw = raw.expect("event");
        let Ok(decoded) = plain.decode(raw) else { break };
        commits += decoded.events.iter().filter(|e| matches!(e, ChangeEvent::Commit { .. })).count();
        // Tables replicate once the schema exists (eight transactions), as after a snapshot.
        if matches!(plain.gtids(), GtidState::MariaDb(d) if d.get(&0).is_some_and(|g| g.sequence >= 8)) {
            armed.store(true, Ordering::SeqCst);
        }
        let skipped = skipping.decode(raw).expect("a skipped transaction is never refused where a passed one is not");
        assert!(skipped.events.is_empty(), "a skipped transaction passed on {:?}", skipped.events);
        assert_eq!(skipping.gtids(), plain.gtids());
        assert_eq!(skipping.file(), plain.file());
        assert_eq!(skipped.log_end.is_some(), decoded.log_end.is_some());
        compared += 1;
    }
    assert!(commits > 10 && compared > 50, "the capture decoded only {commits} commits in {compared} events");
    // Another domain is not skipped.
    armed.store(false, Ordering::SeqCst);
    let mut other = decoder(&armed).dropping(OwnWrites { domains: vec![7], tags: vec![] });
    let passed: usize = split_file(&bytes)
        .map_while(|raw| {
            let decoded = other.decode(raw.expect("event")).ok();
            if matches!(other.gtids(), GtidState::MariaDb(d) if d.get(&0).is_some_and(|g| g.sequence >= 8)) {
                armed.store(true, Ordering::SeqCst);
            }
            decoded
        })
        .map(|d| d.events.len())
        .sum();
    assert!(passed > commits, "a decoder skipping domain 7 passed on only {passed} events");
}
