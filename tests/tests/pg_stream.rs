//! The PostgreSQL replication client and pgoutput decoder against live servers: row changes, TOAST,
//! large transactions on protocol 4 and 1, keepalive replies, and exactly what is re-sent after a
//! reconnect.

use crate::common;

use common::{commit_end, confirmed_flush, replication, wait_for_confirmed, Collector, WAIT};
use turnout_connect::pg::client::SlotOptions;
use turnout_connect::pg::{StartReplication, StreamMessage};
use turnout_decoders::pg::wire::StandbyPositions;
use turnout_decoders::{ChangeEvent, Value};
use turnout_testbed::{PgOptions, PgServer};

async fn setup(server: &PgServer, schema: &str) -> String {
    let db = server.create_database("stream").await.expect("db");
    server.execute(&db, schema).await.expect("schema");
    server.execute(&db, "CREATE PUBLICATION p FOR ALL TABLES").await.expect("publication");
    let mut conn = replication(server, &db).await;
    conn.create_logical_slot("s", &SlotOptions::default()).await.expect("slot");
    conn.close().await;
    db
}

async fn start(server: &PgServer, db: &str) -> Collector {
    let conn = replication(server, db).await;
    Collector::new(conn.start_replication(&StartReplication::new("s", vec!["p".into()])).await.expect("start"))
}

#[tokio::test]
async fn stream_delivers_inserts_updates_deletes_and_truncate() {
    let server = PgServer::start(15).expect("server");
    let db = setup(&server, "CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    for sql in [
        "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
        "UPDATE t SET v = 'c' WHERE id = 1",
        "UPDATE t SET id = 3 WHERE id = 2",
        "DELETE FROM t WHERE id = 1",
        "TRUNCATE t",
    ] {
        server.execute(&db, sql).await.expect(sql);
    }
    let mut c = start(&server, &db).await;
    assert_eq!(c.stream.proto_version(), 3);

    let tx = c.transaction().await;
    assert!(matches!(tx[0], ChangeEvent::Begin { .. }));
    let inserted: Vec<_> = tx
        .iter()
        .filter_map(|e| match e {
            ChangeEvent::Insert { after, xid: None, .. } => Some(after.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(inserted, vec![vec![Value::Int4(1), Value::Text("a".into())], vec![Value::Int4(2), Value::Text("b".into())]]);

    let tx = c.transaction().await;
    assert!(matches!(&tx[1], ChangeEvent::Update { key, before: None, after, .. }
        if key == &vec![Value::Int4(1)] && after == &vec![Value::Int4(1), Value::Text("c".into())]));
    let tx = c.transaction().await;
    assert!(matches!(&tx[1], ChangeEvent::Update { key, after, .. } if key == &vec![Value::Int4(2)] && after[0] == Value::Int4(3)));
    let tx = c.transaction().await;
    assert!(matches!(&tx[1], ChangeEvent::Delete { key, .. } if key == &vec![Value::Int4(1)]));
    let tx = c.transaction().await;
    assert!(matches!(&tx[1], ChangeEvent::Truncate { tables, cascade: false, .. } if tables[0].name.name == "t"));
}

#[tokio::test]
async fn update_with_unchanged_toast_yields_the_unchanged_value() {
    let server = PgServer::start(17).expect("server");
    let db = setup(&server, "CREATE TABLE doc (id int PRIMARY KEY, n int, body text)").await;
    // 32 kB of incompressible text is stored out of line (TOAST).
    server.execute(&db, "INSERT INTO doc SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 1000) g").await.expect("insert");
    server.execute(&db, "UPDATE doc SET n = 1").await.expect("update");
    let mut c = start(&server, &db).await;
    let insert = c.transaction().await;
    assert!(matches!(&insert[1], ChangeEvent::Insert { after, .. } if matches!(&after[2], Value::Text(t) if t.as_str().len() == 32_000)));
    let update = c.transaction().await;
    let ChangeEvent::Update { after, .. } = &update[1] else { panic!("expected update, got {update:?}") };
    assert_eq!(after[1], Value::Int4(1));
    assert_eq!(after[2], Value::Unchanged);
}

async fn big_transaction(major: u32) -> (u8, Vec<ChangeEvent>) {
    let server = PgServer::start_with(PgOptions::new(major).conf("logical_decoding_work_mem = '64kB'")).expect("server");
    let db = setup(&server, "CREATE TABLE big (id int PRIMARY KEY, pad text)").await;
    server.execute(&db, "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g").await.expect("insert");
    let mut c = start(&server, &db).await;
    let proto = c.stream.proto_version();
    (proto, c.transaction().await)
}

#[tokio::test]
async fn large_transaction_arrives_as_stream_chunks_on_pg17() {
    let (proto, events) = big_transaction(17).await;
    assert_eq!(proto, 4);
    let starts = events.iter().filter(|e| matches!(e, ChangeEvent::StreamStart { .. })).count();
    let stops = events.iter().filter(|e| matches!(e, ChangeEvent::StreamStop)).count();
    let inserts = events.iter().filter(|e| matches!(e, ChangeEvent::Insert { xid: Some(_), .. })).count();
    assert!(starts > 1, "expected several chunks, got {starts}");
    assert_eq!(starts, stops);
    assert_eq!(inserts, 5000);
    assert!(matches!(events[0], ChangeEvent::StreamStart { first_segment: true, .. }));
    assert!(matches!(events.last(), Some(ChangeEvent::StreamCommit { .. })));
}

#[tokio::test]
async fn large_transaction_arrives_whole_on_pg13() {
    let (proto, events) = big_transaction(13).await;
    assert_eq!(proto, 1);
    assert!(matches!(events[0], ChangeEvent::Begin { .. }));
    assert!(!events.iter().any(|e| matches!(e, ChangeEvent::StreamStart { .. })));
    assert_eq!(events.iter().filter(|e| matches!(e, ChangeEvent::Insert { xid: None, .. })).count(), 5000);
}

#[tokio::test]
async fn keepalive_requesting_a_reply_gets_one() {
    // The server asks for a reply after half of wal_sender_timeout and drops a silent client after
    // all of it.
    let server = PgServer::start_with(PgOptions::new(15).conf("wal_sender_timeout = '2s'")).expect("server");
    let db = setup(&server, "CREATE TABLE t (id int PRIMARY KEY)").await;
    let conn = replication(&server, &db).await;
    let mut start = StartReplication::new("s", vec!["p".into()]);
    // Never report unasked: only replies to requests keep the connection alive.
    start.status_interval = std::time::Duration::from_secs(3600);
    let mut stream = conn.start_replication(&start).await.expect("start");
    let mut requests = 0;
    while requests < 3 {
        let msg = tokio::time::timeout(WAIT, stream.recv()).await.expect("stalled").expect("stream error");
        if let StreamMessage::Keepalive { reply_requested: true, .. } = msg {
            requests += 1;
        }
    }
    assert_eq!(stream.replies_to_requests(), 3);
    // Three requests span more than the timeout: the connection is alive only because we replied.
    server.execute(&db, "INSERT INTO t VALUES (1)").await.expect("insert");
    let mut c = Collector::new(stream);
    let tx = c.transaction().await;
    assert!(matches!(&tx[1], ChangeEvent::Insert { after, .. } if after[0] == Value::Int4(1)));
}

#[tokio::test]
async fn reconnect_resends_exactly_the_unacknowledged_transactions() {
    let server = PgServer::start(17).expect("server");
    let db = setup(&server, "CREATE TABLE t (id int PRIMARY KEY)").await;
    for id in 1..=5 {
        server.execute(&db, &format!("INSERT INTO t VALUES ({id})")).await.expect("insert");
    }
    let mut c = start(&server, &db).await;
    let mut ends = Vec::new();
    for _ in 1..=5 {
        ends.push(commit_end(&c.transaction().await));
    }
    // Transactions 1 and 2 are durable; 3–5 are not.
    let acked = ends[1];
    c.stream.set_positions(StandbyPositions { write: acked, flush: acked, apply: acked });
    c.stream.send_status(false).await.expect("status");
    wait_for_confirmed(&server, &db, "s", |l| l == acked).await;
    c.stream.close().await.expect("close");
    // Keepalives and the final status update did not acknowledge past the pending transactions.
    assert_eq!(confirmed_flush(&server, &db, "s").await, acked);

    let mut c = start(&server, &db).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let tx = c.transaction().await;
        for e in &tx {
            if let ChangeEvent::Insert { after, .. } = e {
                ids.push(after[0].clone());
            }
        }
    }
    assert_eq!(ids, vec![Value::Int4(3), Value::Int4(4), Value::Int4(5)]);
    // Nothing else is pending: the next transaction is a new one.
    server.execute(&db, "INSERT INTO t VALUES (6)").await.expect("insert");
    let tx = c.transaction().await;
    assert!(matches!(&tx[1], ChangeEvent::Insert { after, .. } if after[0] == Value::Int4(6)));
}

#[tokio::test]
async fn idle_slot_advances_past_unpublished_writes_once_everything_is_applied() {
    let server = PgServer::start(16).expect("server");
    let db = server.create_database("idle").await.expect("db");
    server.execute(&db, "CREATE TABLE pubd (id int PRIMARY KEY); CREATE TABLE other (id int); CREATE PUBLICATION p FOR TABLE pubd").await.expect("schema");
    let mut conn = replication(&server, &db).await;
    conn.create_logical_slot("s", &SlotOptions::default()).await.expect("slot");
    conn.close().await;
    server.execute(&db, "INSERT INTO pubd VALUES (1)").await.expect("insert");
    let mut c = start(&server, &db).await;
    let applied = commit_end(&c.transaction().await);
    c.stream.set_positions(StandbyPositions { write: applied, flush: applied, apply: applied });
    c.stream.send_status(false).await.expect("status");
    wait_for_confirmed(&server, &db, "s", |l| l == applied).await;
    // Writes to an unpublished table produce WAL but no messages; the server reports the new WAL end
    // in keepalives, and with nothing pending the client may confirm it.
    server.execute(&db, "INSERT INTO other SELECT generate_series(1, 1000)").await.expect("insert");
    let target = {
        let c2 = server.connect(&db).await.expect("connect");
        let row = c2.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.expect("lsn");
        row.get::<_, String>(0).parse::<turnout_decoders::Lsn>().expect("lsn")
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout(WAIT, c.stream.recv()).await.expect("stalled").expect("stream error");
        if let StreamMessage::Keepalive { wal_end, .. } = msg {
            if wal_end >= target {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no keepalive reached {target}");
    }
    c.stream.send_status(false).await.expect("status");
    let confirmed = wait_for_confirmed(&server, &db, "s", |l| l >= target).await;
    assert!(confirmed > applied);
}

#[tokio::test]
async fn exported_snapshot_sees_exactly_what_precedes_the_slot() {
    let server = PgServer::start(15).expect("server");
    let db = server.create_database("snap").await.expect("db");
    server.execute(&db, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); CREATE PUBLICATION p FOR ALL TABLES").await.expect("schema");
    let mut conn = replication(&server, &db).await;
    let slot = conn.create_logical_slot("s", &SlotOptions { export_snapshot: true, ..SlotOptions::default() }).await.expect("slot");
    let snapshot = slot.snapshot_name.clone().expect("an exported snapshot");
    // A write after the slot exists is in the stream, not in the snapshot.
    server.execute(&db, "INSERT INTO t VALUES (2)").await.expect("insert");
    let reader = server.connect(&db).await.expect("connect");
    reader
        .batch_execute(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snapshot}'"))
        .await
        .expect("snapshot is importable while the slot's connection is idle");
    let ids: Vec<i32> = reader.query("SELECT id FROM t ORDER BY id", &[]).await.expect("select").iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1]);
    reader.batch_execute("COMMIT").await.expect("commit");
    let mut start = StartReplication::new("s", vec!["p".into()]);
    start.start = slot.consistent_point;
    let mut c = Collector::new(conn.start_replication(&start).await.expect("start"));
    let tx = c.transaction().await;
    assert!(matches!(&tx[1], ChangeEvent::Insert { after, .. } if after[0] == Value::Int4(2)), "{tx:?}");
}
