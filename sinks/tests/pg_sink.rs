//! The PostgreSQL sink against real servers: exactly-once skipping, and a failed batch never moving
//! the recorded position (PostgreSQL 16+ advances an origin on abort once xact_setup ran).

use std::sync::Arc;
use turnout_decoders::schema::{Column, ColumnType, ReplicaIdentity, TableName, TableSchema};
use turnout_decoders::{Lsn, Position, Timestamp, Value};
use turnout_sinks::pg::{origin_progress, PgSink};
use turnout_sinks::{RowChange, Sink, Transaction};

fn pos(lsn: u64) -> Position {
    Position::Pg(Lsn(lsn))
}
use turnout_testbed::PgServer;

fn table() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relation_id: 1,
        name: TableName::new("public", "t"),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            Column { name: "id".into(), ty: ColumnType::pg(23, -1), is_key: true },
            Column { name: "v".into(), ty: ColumnType::pg(25, -1), is_key: false },
        ],
        foreign_key_checks: true,
    })
}

fn insert(id: i32, end: u64) -> Transaction {
    Transaction {
        xid: 1,
        commit_end: Position::Pg(Lsn(end)),
        commit_ts: Timestamp(1_700_000_000_000_000),
        changes: vec![RowChange::Insert { table: table(), after: vec![Value::Int4(id), Value::Text("x".into())] }],
    }
}

async fn count(server: &PgServer, db: &str) -> i64 {
    server.connect(db).await.expect("connect").query_one("SELECT count(*) FROM t", &[]).await.expect("count").get(0)
}

#[tokio::test]
async fn a_failed_batch_leaves_the_recorded_position_where_it_was() {
    for major in [15, 17] {
        let server = PgServer::start(major).expect("server");
        let db = server.create_database("sink").await.expect("db");
        server.execute(&db, "CREATE TABLE t (id int PRIMARY KEY, v text)").await.expect("schema");
        let url = server.url(&db);
        let mut sink = PgSink::connect(&url, "o").await.expect("sink");
        let d = sink.apply(&[insert(1, 100)]).await.expect("first batch");
        assert_eq!(d.position(), &pos(100));
        // Id 1 again: a unique violation inside the batch.
        let err = sink.apply(&[insert(2, 200), insert(1, 300)]).await.expect_err("duplicate key");
        assert_eq!(err.sqlstate(), Some("23505"), "{err}");
        let admin = server.connect(&db).await.expect("admin");
        assert_eq!(origin_progress(&admin, "o").await.expect("progress"), Lsn(100), "PostgreSQL {major}");
        assert_eq!(count(&server, &db).await, 1);
        // The session is usable and the batch applies once fixed.
        let d = sink.apply(&[insert(2, 200), insert(3, 300)]).await.expect("retry");
        assert_eq!(d.position(), &pos(300));
        assert_eq!(count(&server, &db).await, 3);
    }
}

#[tokio::test]
async fn transactions_at_or_below_the_recorded_position_are_skipped_after_reconnect() {
    let server = PgServer::start(17).expect("server");
    let db = server.create_database("sink").await.expect("db");
    server.execute(&db, "CREATE TABLE t (id int PRIMARY KEY, v text)").await.expect("schema");
    let url = server.url(&db);
    {
        let mut sink = PgSink::connect(&url, "o").await.expect("sink");
        let _ = sink.apply(&[insert(1, 100), insert(2, 200)]).await.expect("batch");
    }
    // A new session (as after a crash) replays an overlapping batch: only the new transaction applies.
    let mut sink = PgSink::connect(&url, "o").await.expect("sink");
    assert_eq!(sink.applied(), pos(200));
    let d = sink.apply(&[insert(1, 100), insert(2, 200), insert(3, 300)]).await.expect("replay");
    assert_eq!(d.position(), &pos(300));
    assert_eq!(count(&server, &db).await, 3);
}

#[tokio::test]
async fn a_failed_commit_puts_the_recorded_position_back() {
    let server = PgServer::start(17).expect("server");
    let db = server.create_database("sink").await.expect("db");
    // A deferred constraint trigger (firing even for replicated rows) fails only at COMMIT, after the
    // position was recorded.
    server
        .execute(
            &db,
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.v = 'boom' THEN RAISE EXCEPTION 'boom' USING ERRCODE = '23514'; END IF; RETURN NULL; END $$;
             CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION boom();
             ALTER TABLE t ENABLE ALWAYS TRIGGER boom;",
        )
        .await
        .expect("schema");
    let mut sink = PgSink::connect(&server.url(&db), "o").await.expect("sink");
    let _ = sink.apply(&[insert(1, 100)]).await.expect("first");
    let mut boom = insert(2, 200);
    boom.changes = vec![RowChange::Insert { table: table(), after: vec![Value::Int4(2), Value::Text("boom".into())] }];
    let err = sink.apply(&[boom]).await.expect_err("deferred failure at commit");
    assert_eq!(err.sqlstate(), Some("23514"), "{err}");
    let admin = server.connect(&db).await.expect("admin");
    assert_eq!(origin_progress(&admin, "o").await.expect("progress"), Lsn(100));
    assert_eq!(sink.applied(), pos(100));
    let d = sink.apply(&[insert(2, 200)]).await.expect("next batch");
    assert_eq!(d.position(), &pos(200));
}

fn update(id: i32, v: &str, end: u64) -> Transaction {
    Transaction {
        xid: 1,
        commit_end: Position::Pg(Lsn(end)),
        commit_ts: Timestamp(1_700_000_000_000_000),
        changes: vec![RowChange::Update { table: table(), key: vec![Value::Int4(id)], before: None, after: vec![Value::Int4(id), Value::Text(v.into())] }],
    }
}

#[tokio::test]
async fn batched_updates_and_deletes_keep_per_row_order_and_touch_exactly_their_rows() {
    let server = PgServer::start(17).expect("server");
    let db = server.create_database("sink").await.expect("db");
    server.execute(&db, "CREATE TABLE t (id int PRIMARY KEY, v text)").await.expect("schema");
    let mut sink = PgSink::connect(&server.url(&db), "o").await.expect("sink");
    let _ = sink.apply(&(1..=5).map(|i| insert(i, 100 + i as u64)).collect::<Vec<_>>()).await.expect("inserts");
    // The same row updated twice, others once, then deletes: the later update must win.
    let mut batch = vec![update(1, "a", 200), update(2, "b", 201), update(1, "c", 202), update(3, "d", 203)];
    batch.push(Transaction {
        xid: 9,
        commit_end: Position::Pg(Lsn(204)),
        commit_ts: Timestamp(0),
        changes: vec![
            RowChange::Delete { table: table(), key: vec![Value::Int4(4)], before: None },
            RowChange::Delete { table: table(), key: vec![Value::Int4(5)], before: None },
        ],
    });
    let _ = sink.apply(&batch).await.expect("updates");
    let c = server.connect(&db).await.expect("client");
    let rows: Vec<(i32, String)> = c.query("SELECT id, v FROM t ORDER BY id", &[]).await.expect("rows").iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, vec![(1, "c".into()), (2, "b".into()), (3, "d".into())]);
    // A delete of a row green does not have is divergence, reported, and nothing of the batch applies.
    let gone = Transaction {
        xid: 10,
        commit_end: Position::Pg(Lsn(300)),
        commit_ts: Timestamp(0),
        changes: vec![
            RowChange::Delete { table: table(), key: vec![Value::Int4(1)], before: None },
            RowChange::Delete { table: table(), key: vec![Value::Int4(42)], before: None },
        ],
    };
    let err = sink.apply(&[gone]).await.expect_err("divergence");
    assert!(err.to_string().contains("diverged"), "{err}");
    assert_eq!(count(&server, &db).await, 3);
}

#[tokio::test]
async fn an_empty_source_transaction_still_moves_the_recorded_position_and_flush_reports_it() {
    let server = PgServer::start(17).expect("server");
    let db = server.create_database("sink").await.expect("db");
    let url = server.url(&db);
    {
        // The position set outside the sink session, as after the initial snapshot.
        let c = turnout_sinks::pg::connect(&url).await.expect("connect");
        turnout_sinks::pg::ensure_origin(&c, "o").await.expect("origin");
        turnout_sinks::pg::advance_origin(&c, "o", Lsn(50)).await.expect("advance");
    }
    let mut sink = PgSink::connect(&url, "o").await.expect("sink");
    assert_eq!(sink.applied(), pos(50));
    // A transaction that carried only a logical message (the cutover sentinel): nothing to write.
    let empty = Transaction { xid: 9, commit_end: Position::Pg(Lsn(100)), commit_ts: Timestamp(1_700_000_000_000_000), changes: vec![] };
    let c = sink.apply(&[empty]).await.expect("apply");
    assert_eq!(c.position(), &pos(100));
    assert_eq!(sink.flush().await.expect("flush").position(), &pos(100));
    let check = turnout_sinks::pg::connect(&url).await.expect("connect");
    assert_eq!(origin_progress(&check, "o").await.expect("progress"), Lsn(100));
}

/// A keyless table whose inserts come in runs large enough for `COPY`.
fn history() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relation_id: 2,
        name: TableName::new("public", "h"),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            Column { name: "id".into(), ty: ColumnType::pg(23, -1), is_key: false },
            Column { name: "v".into(), ty: ColumnType::pg(25, -1), is_key: false },
        ],
        foreign_key_checks: true,
    })
}

/// One source transaction: `t`'s rows `updates` set to `v`, then `h`'s rows `ids` inserted.
fn updates_then_copy(updates: &[i32], v: &str, ids: std::ops::Range<i32>, end: u64) -> Transaction {
    let mut changes: Vec<RowChange> = updates
        .iter()
        .map(|&id| RowChange::Update { table: table(), key: vec![Value::Int4(id)], before: None, after: vec![Value::Int4(id), Value::Text(v.into())] })
        .collect();
    changes.extend(ids.map(|id| RowChange::Insert { table: history(), after: vec![Value::Int4(id), Value::Text(format!("h\t{id}\\").as_str().into())] }));
    Transaction { xid: 7, commit_end: Position::Pg(Lsn(end)), commit_ts: Timestamp(0), changes }
}

async fn green_state(server: &PgServer, db: &str) -> (Vec<String>, i64, i64) {
    let c = server.connect(db).await.expect("client");
    let t = c.query("SELECT v FROM t ORDER BY id", &[]).await.expect("t").iter().map(|r| r.get(0)).collect();
    let h: i64 = c.query_one("SELECT count(*) FROM h", &[]).await.expect("h").get(0);
    let escaped: i64 = c.query_one("SELECT count(*) FROM h WHERE v = format(E'h\\t%s\\\\', id)", &[]).await.expect("h text").get(0);
    (t, h, escaped)
}

/// The UPDATEs and the COPY of a batch go to green without waiting for each other: a failure is
/// reported as the first failing statement in source order, nothing of the batch stays, the recorded
/// position does not move, and the session (mid-COPY when the error came) applies the next batch.
#[tokio::test]
async fn pipelined_updates_and_copies_report_the_first_failure_in_order_and_apply_nothing_of_the_batch() {
    let server = PgServer::start(17).expect("server");
    let db = server.create_database("sink").await.expect("db");
    // The unique index on h exists on green only: a COPY that blue accepted can fail here.
    server.execute(&db, "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE h (id int, v text); CREATE UNIQUE INDEX ON h (id)").await.expect("schema");
    let mut sink = PgSink::connect(&server.url(&db), "o").await.expect("sink");
    let _ = sink.apply(&(1..=3).map(|i| insert(i, 100 + i as u64)).collect::<Vec<_>>()).await.expect("inserts");

    let d = sink.apply(&[updates_then_copy(&[1, 2, 3], "a", 0..1500, 200)]).await.expect("updates and copy");
    assert_eq!(d.position(), &pos(200));
    assert_eq!(green_state(&server, &db).await, (vec!["a".to_string(); 3], 1500, 1500));

    // An UPDATE of a row green lacks, then a COPY that would succeed: the divergence is reported.
    let err = sink.apply(&[updates_then_copy(&[1, 42], "b", 1500..3000, 300)]).await.expect_err("divergence");
    assert!(err.to_string().contains("updating public.t") && err.to_string().contains("diverged"), "{err}");
    // UPDATEs that succeed, then a COPY green refuses: the COPY's error, the UPDATEs rolled back.
    let err = sink.apply(&[updates_then_copy(&[1, 2], "c", 1400..2900, 300)]).await.expect_err("green-only unique key");
    assert_eq!(err.sqlstate(), Some("23505"), "{err}");
    assert!(err.to_string().contains("inserting into public.h") && err.to_string().contains("COPY"), "{err}");
    let admin = server.connect(&db).await.expect("admin");
    assert_eq!(origin_progress(&admin, "o").await.expect("progress"), Lsn(200));
    assert_eq!(green_state(&server, &db).await, (vec!["a".to_string(); 3], 1500, 1500));

    // The same shapes again, from the cached statements.
    let d = sink.apply(&[updates_then_copy(&[2, 3], "d", 1500..3000, 300), updates_then_copy(&[1], "e", 3000..4000, 400)]).await.expect("next batch");
    assert_eq!(d.position(), &pos(400));
    assert_eq!(green_state(&server, &db).await, (vec!["e".to_string(), "d".to_string(), "d".to_string()], 4000, 4000));

    // The COPY first, the UPDATEs after it: a refused COPY is the error reported (the UPDATEs behind it
    // fail only because the transaction is aborted); a COPY that succeeds before a divergent UPDATE
    // stays on green no more than the UPDATE does.
    let copy_first = |updates: &[i32], ids: std::ops::Range<i32>, end: u64| {
        let mut t = updates_then_copy(updates, "f", ids, end);
        t.changes.rotate_left(updates.len());
        t
    };
    let err = sink.apply(&[copy_first(&[1], 3900..5000, 500)]).await.expect_err("green-only unique key");
    assert_eq!(err.sqlstate(), Some("23505"), "{err}");
    assert!(err.to_string().contains("inserting into public.h"), "{err}");
    let err = sink.apply(&[copy_first(&[1, 42], 4000..5000, 500)]).await.expect_err("divergence");
    assert!(err.to_string().contains("updating public.t") && err.to_string().contains("diverged"), "{err}");
    assert_eq!(origin_progress(&admin, "o").await.expect("progress"), Lsn(400));
    assert_eq!(green_state(&server, &db).await, (vec!["e".to_string(), "d".to_string(), "d".to_string()], 4000, 4000));
    let d = sink.apply(&[copy_first(&[1, 2, 3], 4000..5000, 500)]).await.expect("copy first");
    assert_eq!(d.position(), &pos(500));
    assert_eq!(green_state(&server, &db).await, (vec!["f".to_string(); 3], 5000, 5000));
}
