//! Unit tests of the binlog decoder on byte-built events (the captured-binlog tests are in
//! `decoders/tests/`).

use super::rows::utc_datetime;
use super::*;

#[test]
fn a_transaction_without_a_gtid_event_is_refused_naming_the_capability() {
    use super::binlog::{event_type, EventHeader, Query, StatusVars};
    // What MariaDB sends a replica that did not set @mariadb_slave_capability = 4: a fake BEGIN.
    let query = Query {
        thread_id: 1,
        exec_time: 0,
        error_code: 0,
        status_vars_raw: Vec::new(),
        status: StatusVars::default(),
        schema: "app".into(),
        sql: b"BEGIN".to_vec(),
    };
    let header = EventHeader { timestamp: 1, type_code: event_type::QUERY, server_id: 1, event_size: 0, log_pos: 100, flags: 0 };
    let mut d = BinlogDecoder::new(GtidState::None, Box::new(|_| true));
    let err = d.apply(Event { header, event: BinlogEvent::Query(query) }).expect_err("refused");
    assert!(err.to_string().contains("@mariadb_slave_capability = 4"), "{err}");
}

/// A QUERY event of session 9 in database `app` ending at `log_pos`.
fn query_event(sql: &str, log_pos: u32) -> Event {
    use super::binlog::{event_type, EventHeader, Query, StatusVars};
    Event {
        header: EventHeader { timestamp: 1, type_code: event_type::QUERY, server_id: 1, event_size: 0, log_pos, flags: 0 },
        event: BinlogEvent::Query(Query {
            thread_id: 9,
            exec_time: 0,
            error_code: 0,
            status_vars_raw: Vec::new(),
            status: StatusVars::default(),
            schema: "app".into(),
            sql: sql.as_bytes().to_vec(),
        }),
    }
}

#[test]
fn watching_passes_on_as_ddl_what_a_stream_refuses_and_ends_its_transaction() {
    use super::binlog::{event_type, EventHeader};
    let gtid = |seq: u32| Event {
        header: EventHeader { timestamp: 1, type_code: event_type::MARIADB_GTID, server_id: 1, event_size: 0, log_pos: 50 * seq, flags: 0 },
        event: BinlogEvent::MariaGtid(super::binlog::MariaGtid {
            seq_no: u64::from(seq),
            domain_id: 0,
            flags: super::binlog::gtid_flags::STANDALONE,
            commit_id: None,
            xa_id: None,
            flags_extra: 0,
            extra_engines: None,
            start_alter_seq_no: None,
            thread_id: None,
        }),
    };
    let query = |sql: &str, seq: u32| query_event(sql, 50 * seq + 25);
    let drop_table = "DROP TABLE t";
    // A replicating stream refuses it.
    let mut d = BinlogDecoder::new(GtidState::None, Box::new(|t| t.schema == "app"));
    d.apply(gtid(1)).expect("gtid");
    assert!(d.apply(query(drop_table, 1)).is_err());
    // The watch counts it: a DDL event, and the standalone statement's commit.
    let mut d = BinlogDecoder::new(GtidState::None, Box::new(|t| t.schema == "app")).watching(true);
    d.apply(gtid(1)).expect("gtid");
    let events = d.apply(query(drop_table, 1)).expect("passed on").events;
    assert!(matches!(&events[..], [ChangeEvent::Ddl { statement, .. }, ChangeEvent::Commit { .. }] if statement == drop_table), "{events:?}");
    // The next transaction reads on.
    let events = d.apply(gtid(2)).expect("next transaction").events;
    assert!(matches!(&events[..], [ChangeEvent::Begin { .. }]), "{events:?}");
}

#[test]
fn a_column_type_nobody_knows_stops_only_a_replicated_table() {
    let map = |table: &str| TableMap {
        table_id: 7,
        flags: 0,
        schema: "app".into(),
        table: table.into(),
        columns: Vec::new(),
        primary_key: None,
        unknown_metadata: Vec::new(),
        unknown_type: Some(130),
    };
    let mut d = BinlogDecoder::new(GtidState::None, Box::new(|t| t.name == "replicated"));
    let mut out = Decoded::default();
    d.table_map(&mut out, map("elsewhere")).expect("a table turnout does not replicate passes");
    let err = d.table_map(&mut out, map("replicated")).expect_err("refused");
    assert!(err.to_string().contains("app.replicated has a column of type 130") && err.to_string().contains("tables.exclude"), "{err}");
    assert!(out.events.is_empty());
}

#[test]
fn timestamps_print_in_utc_and_zero_stays_zero() {
    assert_eq!(utc_datetime(0, 0), "0000-00-00 00:00:00");
    assert_eq!(utc_datetime(1, 500), "1970-01-01 00:00:01.000500");
    assert_eq!(utc_datetime(951_782_400, 0), "2000-02-29 00:00:00");
    assert_eq!(utc_datetime(2_147_483_647, 999_999), "2038-01-19 03:14:07.999999");
}

#[test]
fn mysql_gtid_numbers_merge_into_intervals() {
    let mut s = GtidState::None;
    let u = Tsid::untagged([7u8; 16]);
    let set = |intervals: Vec<(u64, u64)>| GtidState::MySql([(Tsid::untagged([7u8; 16]), intervals)].into_iter().collect());
    for n in [1, 2, 3, 5] {
        assert!(s.push_mysql(&u, n));
    }
    assert_eq!(s, set(vec![(1, 3), (5, 5)]));
    // A number in a gap lands there and merges its neighbours; one already held is refused.
    for n in [1_000_001, 1_000_002, 7, 4] {
        assert!(s.push_mysql(&u, n));
    }
    assert_eq!(s, set(vec![(1, 5), (7, 7), (1_000_001, 1_000_002)]));
    assert!(s.push_mysql(&u, 6));
    assert_eq!(s, set(vec![(1, 7), (1_000_001, 1_000_002)]));
    assert!(!s.push_mysql(&u, 3) && !s.push_mysql(&u, 1_000_002));
    assert!(s.push_mysql(&u, 1_000_000));
    assert_eq!(s, set(vec![(1, 7), (1_000_000, 1_000_002)]));
}

#[test]
fn a_tagged_transaction_of_turnouts_is_dropped_but_its_gtid_enters_the_state() {
    use super::binlog::{event_type, EventHeader, MysqlGtid, Uuid, Xid};
    let header = |type_code: u8, log_pos: u32| EventHeader { timestamp: 1, type_code, server_id: 1, event_size: 0, log_pos, flags: 0 };
    let gtid = |tag: Option<&str>, gno: i64, log_pos: u32| Event {
        header: header(if tag.is_some() { event_type::MYSQL_GTID_TAGGED } else { event_type::MYSQL_GTID }, log_pos),
        event: BinlogEvent::MysqlGtid(MysqlGtid { tag: tag.map(str::to_owned), ..MysqlGtid::new(true, 0, Uuid([3; 16]), gno) }),
    };
    let query = query_event;
    let xid = |log_pos: u32| Event { header: header(event_type::XID, log_pos), event: BinlogEvent::Xid(Xid { xid: 1 }) };
    let own = OwnWrites { domains: vec![], tags: vec!["turnout_7".into()] };
    let mut d = BinlogDecoder::new(GtidState::None, Box::new(|t| t.schema == "app")).dropping(own);
    let mut events = Vec::new();
    // turnout's tagged transaction, another writer's tagged one, an untagged one, and turnout's DDL.
    for (tag, gno, at) in [(Some("turnout_7"), 1, 100), (Some("app_tag"), 1, 200), (None, 5, 300)] {
        events.extend(d.apply(gtid(tag, gno, at)).expect("gtid").events);
        events.extend(d.apply(query("BEGIN", at + 10)).expect("begin").events);
        events.extend(d.apply(xid(at + 20)).expect("xid").events);
    }
    events.extend(d.apply(gtid(Some("turnout_7"), 2, 400)).expect("gtid").events);
    events.extend(d.apply(query("DROP TABLE t", 410)).expect("turnout's DDL is dropped, not refused").events);
    let commits: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Commit { position, .. } => Some(position.to_string()),
            _ => None,
        })
        .collect();
    let uuid = "03030303-0303-0303-0303-030303030303";
    assert_eq!(
        commits,
        [format!(":220 ({uuid}:app_tag:1:turnout_7:1)"), format!(":320 ({uuid}:5:app_tag:1:turnout_7:1)")],
        "only the other writers' transactions are passed on; positions after turnout's include it"
    );
    assert_eq!(d.gtids().to_string(), format!("{uuid}:5:app_tag:1:turnout_7:1-2"));
}
