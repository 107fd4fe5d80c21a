//! Parallel apply against real PostgreSQL servers: parts of a batch applied side by side by several
//! sessions commit in source order, each recording the shared origin; a failing part leaves a prefix;
//! conflicts the keys cannot see (numeric keys equal in value but not in text) are caught by green —
//! a duplicate key, or a part waiting for a later part's lock — and redone in order.

use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout_decoders::schema::{Column, ColumnType, ReplicaIdentity, TableName, TableSchema};
use turnout_decoders::{Lsn, Position, Timestamp, Value};
use turnout_sinks::pg::{origin_progress, PgSink};
use turnout_sinks::{Parallel, RowChange, Sink, Transaction};
use turnout_testbed::{PgOptions, PgServer};

const ORIGIN: &str = "turnout_parallel";

fn users() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relation_id: 1,
        name: TableName::new("public", "users"),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            Column { name: "id".into(), ty: ColumnType::pg(1700, -1), is_key: true },
            Column { name: "email".into(), ty: ColumnType::pg(25, -1), is_key: false },
        ],
        foreign_key_checks: true,
    })
}

const SCHEMA: &str = "CREATE TABLE users (id numeric PRIMARY KEY, email text UNIQUE CHECK (email <> 'bad'))";

fn num(id: &str) -> Value {
    Value::Numeric(id.into())
}

fn insert(id: &str, email: &str) -> RowChange {
    RowChange::Insert { table: users(), after: vec![num(id), Value::Text(email.into())] }
}

fn update(id: &str, email: &str) -> RowChange {
    RowChange::Update { table: users(), key: vec![num(id)], before: None, after: vec![num(id), Value::Text(email.into())] }
}

fn tx(n: u64, changes: Vec<RowChange>) -> Transaction {
    Transaction { xid: n, commit_end: Position::Pg(Lsn(n * 100)), commit_ts: Timestamp(1_700_000_000_000_000 + n as i64), changes }
}

/// `n` transactions of `rows` inserts each, ids from `first`.
fn inserts(first: u64, n: u64, rows: u64) -> Vec<Transaction> {
    (first..first + n).map(|t| tx(t, (0..rows).map(|r| insert(&(t * 1000 + r).to_string(), &format!("u{t}-{r}"))).collect())).collect()
}

async fn parallel(server: &PgServer, db: &str, sessions: usize) -> Parallel<PgSink> {
    let url = server.url(db);
    let mut all = Vec::new();
    for _ in 0..sessions {
        all.push(PgSink::connect_shared(&url, ORIGIN).await.expect("session"));
    }
    Parallel::new(all).expect("parallel").with_stall(Duration::from_millis(200))
}

async fn rows(server: &PgServer, db: &str) -> Vec<(String, String)> {
    let c = server.connect(db).await.expect("connect");
    c.query("SELECT id::text, email FROM users ORDER BY users.id", &[]).await.expect("rows").iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The row whose id equals 1 (`1`, `1.0` or `1.00`).
fn row_one(rows: &[(String, String)]) -> Option<&(String, String)> {
    rows.iter().find(|(id, _)| ["1", "1.0", "1.00"].contains(&id.as_str()))
}

async fn progress(server: &PgServer, db: &str) -> Lsn {
    origin_progress(&server.connect(db).await.expect("connect"), ORIGIN).await.expect("progress")
}

#[tokio::test]
async fn independent_parts_commit_in_source_order_each_recording_the_shared_origin() {
    for major in [13, 18] {
        let server = PgServer::start_with(PgOptions::new(major).conf("track_commit_timestamp = on")).expect("server");
        let db = server.create_database("parallel").await.expect("db");
        server.execute(&db, SCHEMA).await.expect("schema");
        let mut sink = parallel(&server, &db, 4).await;
        let batch = inserts(1, 40, 10);
        let c = sink.apply(&batch).await.expect("apply");
        assert_eq!(c.position(), &Position::Pg(Lsn(4000)), "PostgreSQL {major}");
        assert_eq!(progress(&server, &db).await, Lsn(4000));
        assert_eq!(rows(&server, &db).await.len(), 400);
        // Four parts of ten transactions, four green transactions, committed in source order.
        let client = server.connect(&db).await.expect("connect");
        let parts = client
            .query("SELECT min(id)::int8, max(id)::int8, pg_xact_commit_timestamp(xmin) FROM users GROUP BY xmin ORDER BY min(id)", &[])
            .await
            .expect("parts");
        let ranges: Vec<(i64, i64)> = parts.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(ranges, vec![(1000, 10009), (11000, 20009), (21000, 30009), (31000, 40009)], "PostgreSQL {major}");
        let committed: Vec<std::time::SystemTime> = parts.iter().map(|r| r.get(2)).collect();
        assert!(committed.windows(2).all(|w| w[0] < w[1]), "parts committed out of source order on PostgreSQL {major}: {committed:?}");
        // Flushing through any session reports the shared origin.
        assert_eq!(sink.flush().await.expect("flush").position(), &Position::Pg(Lsn(4000)));
        // A new set of sessions (as after a crash) skips what is recorded.
        let mut again = parallel(&server, &db, 4).await;
        assert_eq!(again.applied(), Position::Pg(Lsn(4000)));
        let mut replay = inserts(1, 40, 10);
        replay.extend(inserts(41, 2, 10));
        let _ = again.apply(&replay).await.expect("replay");
        assert_eq!(rows(&server, &db).await.len(), 420);
    }
}

#[tokio::test]
async fn a_part_that_fails_leaves_green_a_prefix_of_whole_parts() {
    let server = PgServer::start(17).expect("server");
    let db = server.create_database("parallel").await.expect("db");
    server.execute(&db, SCHEMA).await.expect("schema");
    let mut sink = parallel(&server, &db, 4).await;
    let mut batch = inserts(1, 40, 10);
    // Transaction 26 (in the third part) breaks green's CHECK constraint.
    batch[25].changes.push(insert("999999", "bad"));
    let err = sink.apply(&batch).await.expect_err("check violation");
    assert_eq!(err.sqlstate(), Some("23514"), "{err}");
    // The first two parts committed; the third failed alone too, so it and the fourth are not there.
    assert_eq!(progress(&server, &db).await, Lsn(2000));
    let ids: Vec<String> = rows(&server, &db).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 200);
    assert_eq!(ids.last().map(String::as_str), Some("20009"));
    // The sessions are usable again and the fixed batch applies from where green stands.
    batch[25].changes.pop();
    let _ = sink.apply(&batch).await.expect("retry");
    assert_eq!(rows(&server, &db).await.len(), 400);
    assert_eq!(progress(&server, &db).await, Lsn(4000));
}

/// Holds row `id` locked in a session of its own until it commits; returns the session and its pid.
async fn lock_row(server: &PgServer, db: &str, id: &str) -> (tokio_postgres::Client, i32) {
    let c = server.connect(db).await.expect("connect");
    c.batch_execute(&format!("BEGIN; SELECT * FROM users WHERE id = {id} FOR UPDATE")).await.expect("lock");
    let pid = c.query_one("SELECT pg_backend_pid()", &[]).await.expect("pid").get(0);
    (c, pid)
}

/// Waits until the first part waits for the row the test holds and the second part wrote (it holds
/// a transaction id; its first change is the row both parts touch).
async fn second_part_wrote(server: &PgServer, db: &str, holder: i32) {
    let c = server.connect(db).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = c
            .query_one(
                "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), \
                        count(*) FILTER (WHERE backend_xid IS NOT NULL AND wait_event_type IS DISTINCT FROM 'Lock') \
                 FROM pg_stat_activity WHERE datname = current_database() AND pid <> $1",
                &[&holder],
            )
            .await
            .expect("activity");
        if row.get::<_, i64>(0) > 0 && row.get::<_, i64>(1) > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the parts did not get there");
        tokio::task::yield_now().await;
    }
}

/// A batch of two parts whose keys do not meet in text (`1.0` and `1.00`) but do in value. The first
/// part starts on row 5, which the test holds locked, so the second part always runs first.
fn hidden_conflict(second: RowChange, first_last: RowChange) -> Vec<Transaction> {
    let mut first = vec![update("5", "five")];
    first.extend((0..150).map(|r| insert(&(10_000 + r).to_string(), &format!("a{r}"))));
    first.push(first_last);
    let mut later = vec![second];
    later.extend((0..150).map(|r| insert(&(20_000 + r).to_string(), &format!("b{r}"))));
    vec![tx(10, first), tx(11, later)]
}

#[tokio::test]
async fn a_later_part_holding_a_lock_the_earlier_part_needs_is_rolled_back_and_redone_after_it() {
    let server = PgServer::start(17).expect("server");
    let db = server.create_database("parallel").await.expect("db");
    server.execute(&db, &format!("{SCHEMA}; INSERT INTO users VALUES (1, 'one'), (5, 'v')")).await.expect("schema");
    let mut sink = parallel(&server, &db, 2).await;
    // Blue: the first transaction sets row 1 to 'first', the second to 'second'.
    let batch = hidden_conflict(update("1.00", "second"), update("1.0", "first"));
    let (lock, holder) = lock_row(&server, &db, "5").await;
    let apply = async {
        let r = sink.apply(&batch).await;
        (r, sink.redone())
    };
    let release = async {
        second_part_wrote(&server, &db, holder).await;
        lock.batch_execute("COMMIT").await.expect("release");
    };
    // Without the stall check the two parts wait for each other for ever.
    let ((result, redone), ()) = tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(apply, release) }).await.expect("apply hung");
    let _ = result.expect("apply");
    assert_eq!(redone, 1, "the second part waited for its turn holding row 1: it must have been rolled back");
    let rows = rows(&server, &db).await;
    assert_eq!(row_one(&rows), Some(&("1.00".to_owned(), "second".to_owned())), "source order lost");
    assert_eq!(rows.len(), 302);
    assert_eq!(progress(&server, &db).await, Lsn(1100));
}

#[tokio::test]
async fn a_duplicate_key_the_keys_did_not_foresee_is_redone_after_the_earlier_part() {
    let server = PgServer::start(17).expect("server");
    let db = server.create_database("parallel").await.expect("db");
    server.execute(&db, &format!("{SCHEMA}; INSERT INTO users VALUES (1, 'one'), (5, 'v')")).await.expect("schema");
    let mut sink = parallel(&server, &db, 2).await;
    // Blue: the first transaction deletes row 1, the second inserts it again as 1.00.
    let delete = RowChange::Delete { table: users(), key: vec![num("1.0")], before: None };
    let batch = hidden_conflict(insert("1.00", "again"), delete);
    let rollbacks = || async {
        let c = server.connect(&db).await.expect("connect");
        let n: i64 = c.query_one("SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()", &[]).await.expect("stats").get(0);
        n
    };
    let before = rollbacks().await;
    let (lock, _) = lock_row(&server, &db, "5").await;
    let apply = async {
        let r = sink.apply(&batch).await;
        (r, sink.redone())
    };
    // The second part fails on the duplicate at once (row 1 is still there: the first part waits for
    // row 5); only then is row 5 released.
    let release = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while rollbacks().await == before {
            assert!(Instant::now() < deadline, "the second part did not fail");
            tokio::task::yield_now().await;
        }
        lock.batch_execute("COMMIT").await.expect("release");
    };
    let ((result, redone), ()) = tokio::join!(apply, release);
    let _ = result.expect("apply");
    assert_eq!(redone, 1);
    let rows = rows(&server, &db).await;
    assert_eq!(row_one(&rows), Some(&("1.00".to_owned(), "again".to_owned())));
    assert_eq!(rows.len(), 302);
}

/// A transaction whose position cannot be ordered against what green recorded (another log) is an
/// error that names both, never skipped as "already applied" nor applied as "new": green keeps what
/// it had.
#[tokio::test]
async fn a_transaction_of_another_log_is_an_error_never_a_guess() {
    let server = PgServer::start(17).expect("server");
    let db = server.create_database("unordered").await.expect("db");
    server.execute(&db, SCHEMA).await.expect("schema");
    for sessions in [1, 2] {
        let mut sink = parallel(&server, &db, sessions).await;
        let first = sessions as u64 * 10;
        let c = sink.apply(&inserts(first, 1, 1)).await.expect("apply");
        assert_eq!(c.position(), &Position::Pg(Lsn(first * 100)));
        let before = rows(&server, &db).await;
        let mut foreign = inserts(900, 1, 1);
        foreign[0].commit_end = Position::Binlog(turnout_decoders::BinlogPosition { file: "mysql-bin.000001".into(), offset: 4, gtids: Default::default() });
        let e = sink.apply(&foreign).await.expect_err("a position of another log must be refused");
        assert!(e.to_string().contains("cannot be ordered") && e.to_string().contains("mysql-bin.000001:4"), "{e}");
        assert_eq!(rows(&server, &db).await, before, "green must keep what it had ({sessions} sessions)");
    }
}
