//! Early apply: a large transaction that blue streams while it is still open is applied on a green
//! session of its own before blue commits it, committed there at blue's commit, rolled back at
//! blue's rollback — and given up (applied whole at commit) whenever it cannot follow blue exactly.
//! Blue streams every transaction above 64kB of changes here.

use crate::common;

use common::{assert_converges, pair_with, running, running_with, Turnout, WAIT};
use std::time::{Duration, Instant};
use turnout_testbed::{PgOptions, PgServer};

const SCHEMA: &str = "CREATE TABLE big (id int PRIMARY KEY, v text, pad text); CREATE TABLE small (id serial PRIMARY KEY, note text)";

fn blue_streaming() -> PgOptions {
    PgOptions::new(15).conf("logical_decoding_work_mem = '64kB'")
}

/// A counter from `/metrics`.
fn counter(t: &Turnout, name: &str) -> u64 {
    t.metrics().lines().find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

/// Counts sessions on green inside a transaction that wrote and now waits for more (an early
/// transaction).
const OPEN_WRITERS: &str =
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction' AND backend_xid IS NOT NULL";

/// Polls green until `want` holds for the count `sql` returns; fails naming `what` on timeout or
/// when turnout exits.
async fn wait_count(green: &PgServer, db: &str, t: &mut Turnout, sql: &str, what: &str, want: impl Fn(i64) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if want(count(green, db, sql).await) {
            return;
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code} while waiting for: {what}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls green until `want` holds for the number of early transactions open there.
async fn wait_writers(green: &PgServer, db: &str, t: &mut Turnout, what: &str, want: impl Fn(i64) -> bool) {
    wait_count(green, db, t, OPEN_WRITERS, what, want).await;
}

async fn count(server: &PgServer, db: &str, sql: &str) -> i64 {
    server.connect(db).await.expect("connect").query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test]
async fn an_open_transaction_is_applied_before_blue_commits_and_is_visible_only_after() {
    let (blue, green, db) = pair_with(blue_streaming(), SCHEMA).await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    let a = blue.connect(&db).await.expect("blue a");
    a.batch_execute("BEGIN; INSERT INTO big SELECT g, 'v' || g, repeat('p', 40) FROM generate_series(1, 30000) g").await.expect("open");
    wait_writers(&green, &db, &mut t, "an early session on green", |n| n >= 1).await;
    assert_eq!(count(&green, &db, "SELECT count(*) FROM big").await, 0, "rows of an open transaction are visible on green");
    // A transaction committed while the large one is open goes through.
    blue.execute(&db, "INSERT INTO small (note) VALUES ('while open')").await.expect("small");
    wait_count(&green, &db, &mut t, "SELECT count(*) FROM small", "green never applied the small transaction", |n| n >= 1).await;
    a.batch_execute("UPDATE big SET v = 'u' WHERE id % 7 = 0; DELETE FROM big WHERE id % 11 = 0; INSERT INTO small (note) VALUES ('inside'); COMMIT")
        .await
        .expect("commit");
    blue.execute(&db, "INSERT INTO small (note) VALUES ('after')").await.expect("small");
    assert_converges(&blue, &green, &db, &["big", "small"], &mut t).await;
    assert_eq!(counter(&t, "turnout_early_committed_total"), 1, "{}", t.metrics());
    assert_eq!(counter(&t, "turnout_early_given_up_total"), 0, "{}", t.metrics());
    assert!(t.log_text().contains("committed a transaction applied early"), "{}", t.log_text());
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_rollback_on_blue_rolls_back_on_green_and_a_savepoint_rolled_back_gives_the_transaction_up() {
    let (blue, green, db) = pair_with(blue_streaming(), SCHEMA).await;
    // A budget small enough that the large transactions also spill.
    let (_dir, mut t) = running_with(&blue, &green, &db, "[apply]\nmemory_budget = \"1MiB\"\n").await;
    let a = blue.connect(&db).await.expect("blue a");
    a.batch_execute("BEGIN; INSERT INTO big SELECT g, 'never', '' FROM generate_series(1, 20000) g").await.expect("open");
    wait_writers(&green, &db, &mut t, "an early session on green", |n| n >= 1).await;
    a.batch_execute("ROLLBACK").await.expect("rollback");
    wait_writers(&green, &db, &mut t, "green's early session to roll back", |n| n == 0).await;
    // Part of a transaction rolled back to a savepoint after green applied it.
    a.batch_execute(
        "BEGIN; INSERT INTO big SELECT g, 'keep', '' FROM generate_series(1, 20000) g; SAVEPOINT s; \
         INSERT INTO big SELECT g, 'gone', '' FROM generate_series(20001, 40000) g",
    )
    .await
    .expect("open");
    wait_writers(&green, &db, &mut t, "an early session on green", |n| n >= 1).await;
    a.batch_execute("ROLLBACK TO SAVEPOINT s; UPDATE big SET v = 'kept' WHERE id % 3 = 0; COMMIT").await.expect("commit");
    blue.execute(&db, "INSERT INTO small (note) VALUES ('after')").await.expect("small");
    assert_converges(&blue, &green, &db, &["big", "small"], &mut t).await;
    assert_eq!(count(&green, &db, "SELECT count(*) FROM big WHERE v IN ('never', 'gone')").await, 0);
    assert!(counter(&t, "turnout_early_given_up_total") >= 1, "{}", t.metrics());
    assert_eq!(counter(&t, "turnout_early_committed_total"), 0, "{}", t.metrics());
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn an_early_session_holding_a_lock_green_needs_is_given_up_and_the_stream_goes_on() {
    let (blue, green, db) = pair_with(blue_streaming(), SCHEMA).await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    // A unique key only green has: blue lets another transaction use the value the open one holds.
    green.execute(&db, "CREATE UNIQUE INDEX big_v ON big (v)").await.expect("green-only index");
    let a = blue.connect(&db).await.expect("blue a");
    a.batch_execute("BEGIN; INSERT INTO big VALUES (0, 'x', ''); INSERT INTO big SELECT g, 'v' || g, repeat('p', 40) FROM generate_series(1, 20000) g")
        .await
        .expect("open");
    wait_writers(&green, &db, &mut t, "an early session on green", |n| n >= 1).await;
    blue.execute(&db, "INSERT INTO big VALUES (100001, 'x', 'other')").await.expect("other");
    blue.execute(&db, "DELETE FROM big WHERE id = 100001").await.expect("other gone");
    blue.execute(&db, "INSERT INTO small (note) VALUES ('after the other')").await.expect("small");
    // Green waits for the early session's 'x'; turnout gives that session up instead of hanging.
    wait_count(&green, &db, &mut t, "SELECT count(*) FROM small", "green stalled behind the early session", |n| n >= 1).await;
    a.batch_execute("COMMIT").await.expect("commit");
    assert_converges(&blue, &green, &db, &["big", "small"], &mut t).await;
    assert!(counter(&t, "turnout_early_given_up_total") >= 1, "{}", t.metrics());
    assert!(t.log_text().contains("holds a lock another session on green waits for"), "{}", t.log_text());
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn kill_9_while_a_transaction_is_applied_early_applies_it_exactly_once() {
    let (blue, green, db) = pair_with(blue_streaming(), SCHEMA).await;
    let (dir, mut t) = running(&blue, &green, &db).await;
    let a = blue.connect(&db).await.expect("blue a");
    a.batch_execute("BEGIN; INSERT INTO big SELECT g, 'v' || g, repeat('p', 40) FROM generate_series(1, 30000) g").await.expect("open");
    wait_writers(&green, &db, &mut t, "an early session on green", |n| n >= 1).await;
    t.kill9();
    // The killed session's transaction is gone from green with its connection.
    wait_writers(&green, &db, &mut t, "green to roll back the killed session", |n| n == 0).await;
    a.batch_execute("UPDATE big SET v = 'u' WHERE id % 5 = 0; COMMIT").await.expect("commit");
    blue.execute(&db, "INSERT INTO small (note) VALUES ('after')").await.expect("small");
    t.start();
    assert_converges(&blue, &green, &db, &["big", "small"], &mut t).await;
    assert_eq!(count(&green, &db, "SELECT count(*) FROM big").await, 30000);
    assert_eq!(t.sigterm(), Some(0));
    drop(dir);
}

#[tokio::test]
async fn concurrent_open_transactions_apply_early_next_to_parallel_apply_through_a_kill_9() {
    let (blue, green, db) = pair_with(blue_streaming(), SCHEMA).await;
    // Every green session shares the origin (parallel apply): early commits need no hand-over.
    let (_dir, mut t) = running_with(&blue, &green, &db, "[apply]\nsessions = 4\n").await;
    let a = blue.connect(&db).await.expect("blue a");
    let b = blue.connect(&db).await.expect("blue b");
    a.batch_execute("BEGIN; INSERT INTO big SELECT g, 'a', repeat('p', 40) FROM generate_series(1, 20000) g").await.expect("a");
    b.batch_execute("BEGIN; INSERT INTO big SELECT g, 'b', repeat('p', 40) FROM generate_series(50001, 70000) g").await.expect("b");
    wait_writers(&green, &db, &mut t, "two early sessions on green", |n| n >= 2).await;
    let writer = blue.connect(&db).await.expect("writer");
    for i in 0..300 {
        writer.batch_execute(&format!("INSERT INTO small (note) VALUES ('w{i}')")).await.expect("small");
    }
    a.batch_execute("UPDATE big SET v = 'a2' WHERE id % 3 = 0; COMMIT").await.expect("a commit");
    wait_count(&green, &db, &mut t, "SELECT count(*) FROM big WHERE v = 'a2'", "green never committed the first transaction", |n| n != 0).await;
    // A third large transaction opens while the second is still applied early; then kill -9.
    a.batch_execute("BEGIN; INSERT INTO big SELECT g, 'c', '' FROM generate_series(100001, 120000) g").await.expect("c");
    t.kill9();
    for i in 300..400 {
        writer.batch_execute(&format!("INSERT INTO small (note) VALUES ('w{i}')")).await.expect("small");
    }
    b.batch_execute("DELETE FROM big WHERE id % 7 = 0; COMMIT").await.expect("b commit");
    t.start();
    a.batch_execute("COMMIT").await.expect("c commit");
    assert_converges(&blue, &green, &db, &["big", "small"], &mut t).await;
    let log = t.log_text();
    assert!(log.matches("committed a transaction applied early").count() >= 2, "{log}");
    assert_eq!(t.sigterm(), Some(0));
}
