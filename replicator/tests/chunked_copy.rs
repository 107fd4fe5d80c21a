//! The chunked initial copy (`snapshot.mode = "chunked"`) against real servers: green filled chunk by
//! chunk while an application writes on blue — inserts beyond the copied keys, updates, deletes that
//! cascade, rows moved across chunks by an UPDATE of their key — with `kill -9` in the middle of the
//! copy. The restart keeps every chunk already on green, copies only the others, and blue and green
//! are then compared by the text of every row.

use crate::common;

use common::*;
use std::time::{Duration, Instant};

const PG_SCHEMA: &str = "
CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL, pad text);
INSERT INTO big SELECT g, 0, repeat(md5(g::text), 3) FROM generate_series(1, 120000) g;
CREATE TABLE child (id int PRIMARY KEY, big_id bigint REFERENCES big (id) ON DELETE CASCADE, note text);
INSERT INTO child SELECT g, 70000 + g, 'c' || g FROM generate_series(1, 10000) g;
CREATE TABLE tags (name text PRIMARY KEY, n int);
INSERT INTO tags SELECT 'tag' || g, g FROM generate_series(1, 2000) g;
CREATE TABLE log (a int, b text);
ALTER TABLE log REPLICA IDENTITY FULL;
INSERT INTO log SELECT g, 'x' FROM generate_series(1, 3000) g;
";

const PG_TABLES: &[&str] = &["big", "child", "tags", "log"];

const CHUNKED: &str = "[snapshot]\nmode = \"chunked\"\nchunk_size = \"1MB\"\nworkers = 2";

/// One application write on blue, `i`-th: spread over the whole key space so that it lands in
/// chunks copied, being copied and not yet copied.
fn pg_write(i: i64) -> String {
    let spot = |p: i64| (i * p).rem_euclid(120_000) + 1;
    let mut sql = format!(
        "INSERT INTO big VALUES ({}, {i}, 'new'); UPDATE big SET v = v + 1 WHERE id = {}; DELETE FROM big WHERE id = {}; \
         UPDATE tags SET n = n + 1 WHERE name = 'tag{}'; INSERT INTO log VALUES ({i}, 'w'); DELETE FROM log WHERE a = {};",
        200_000 + i,
        spot(7919),
        spot(104_729),
        i % 2000 + 1,
        i % 3000 + 1
    );
    // Rows moved by an UPDATE of their key: from anywhere to far below and far above every chunk.
    if i % 3 == 0 {
        // Rows 70001…80000 are referenced by `child`; rows below 60001 are not.
        let free = |p: i64| (i * p).rem_euclid(60_000) + 1;
        sql.push_str(&format!("UPDATE big SET id = {} WHERE id = {};", -i, free(31)));
        sql.push_str(&format!("UPDATE big SET id = {} WHERE id = {};", 1_000_000 + i, free(13)));
    }
    sql
}

/// Polls `/status` until `done` says so about the copy (`copy` object), failing on exit or timeout.
async fn wait_copy(t: &mut Turnout, what: &str, mut done: impl FnMut(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = t.status() {
            if done(&s["copy"]) {
                return s;
            }
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code} while waiting for {what}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "never saw {what}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pg_kill_9_in_the_middle_of_a_chunked_copy_keeps_what_is_on_green_and_ends_equal() {
    let (blue, green, db) = pair(PG_SCHEMA).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), CHUNKED);
    let url = blue.url(&db);
    let writer = Writer::start(move |log| async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("writer");
        tokio::spawn(conn);
        let mut i = 0i64;
        while log.running() {
            i += 1;
            // A write that collides with another's moved key fails on blue; what blue holds is compared.
            match client.batch_execute(&format!("BEGIN; {} COMMIT", pg_write(i))).await {
                Ok(()) => log.acked(i),
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    log.failed(e);
                }
            }
        }
    });
    t.start();
    let s =
        wait_copy(&mut t, "a third of the chunks on green", |c| c["chunks_done"].as_u64().unwrap_or(0) * 3 >= c["chunks_total"].as_u64().unwrap_or(u64::MAX))
            .await;
    let copy = &s["copy"];
    assert_eq!(copy["complete"], false, "the copy finished before it could be interrupted: {s}");
    assert_eq!(s["phase"], "snapshot", "a cutover must be refused while chunks remain: {s}");
    let (total, seen_done) = (copy["chunks_total"].as_u64().expect("total"), copy["chunks_done"].as_u64().expect("done"));
    assert!(total >= 10, "the plan has only {total} chunks: {s}");
    t.kill9();
    writer.wait_for(writer.count() + 50).await;
    t.start();
    let s = wait_copy(&mut t, "the copy complete after the restart", |c| c["complete"] == true).await;
    let kept = s["copy"]["chunks_kept"].as_u64().expect("kept");
    assert!(kept >= seen_done && kept < total, "kept {kept} of {total} chunks, {seen_done} were seen done before the kill: {s}");
    assert!(t.log_text().contains("already on green and kept"), "{}", t.log_text());
    wait_streaming(&mut t).await;
    writer.wait_for(writer.count() + 50).await;
    let (acked, _) = writer.finish().await;
    assert!(acked.len() > 150, "only {} writes went through", acked.len());
    assert_converges(&blue, &green, &db, PG_TABLES, &mut t).await;
    // Each round's temporary slot is gone with its connection: only the stream's slot is left.
    let b = blue.connect(&db).await.expect("blue");
    let slots: i64 = b.query_one("SELECT count(*) FROM pg_replication_slots", &[]).await.expect("slots").get(0);
    assert_eq!(slots, 1);
    assert_eq!(t.sigterm(), Some(0));
}

/// 60,000 rows without MariaDB's sequence engine (MySQL lacks it): digits crossed five times. `items`
/// refers to `orders_` with cascades (a name after it, so the plan must reorder them).
const MYSQL_SCHEMA: &str = "
CREATE TABLE orders_ (id INT PRIMARY KEY, total INT);
INSERT INTO orders_ WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 900) SELECT n, n FROM s;
CREATE TABLE digits (i INT PRIMARY KEY);
INSERT INTO digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
CREATE TABLE big (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(200));
INSERT INTO big SELECT n, 0, REPEAT(SHA2(n, 256), 2) FROM (
  SELECT a.i + 10 * b.i + 100 * c.i + 1000 * d.i + 10000 * e.i + 1 AS n
  FROM digits a, digits b, digits c, digits d, digits e) s WHERE n <= 60000;
CREATE TABLE tags (name VARCHAR(40) PRIMARY KEY, n INT);
INSERT INTO tags SELECT CONCAT('tag', id), id FROM big WHERE id <= 2000;
CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL, note VARCHAR(40),
  FOREIGN KEY (order_id) REFERENCES orders_ (id) ON DELETE CASCADE ON UPDATE CASCADE);
INSERT INTO items SELECT id, (id - 1) % 900 + 1, 'i' FROM big WHERE id <= 5000;
ANALYZE TABLE big, tags;
";

fn mysql_write(i: i64) -> String {
    let spot = |p: i64| (i * p).rem_euclid(60_000) + 1;
    let mut sql = format!(
        "INSERT INTO big VALUES ({}, {i}, 'new'); UPDATE big SET v = v + 1 WHERE id = {}; DELETE FROM big WHERE id = {}; \
         UPDATE tags SET n = n + 1 WHERE name = 'tag{}';",
        100_000 + i,
        spot(7919),
        spot(104_729),
        i % 2000 + 1
    );
    if i % 3 == 0 {
        sql.push_str(&format!("UPDATE IGNORE big SET id = {} WHERE id = {};", -i, spot(31)));
        sql.push_str(&format!("UPDATE IGNORE big SET id = {} WHERE id = {};", 1_000_000 + i, spot(13)));
    }
    // Orders deleted (their items go with them on blue, by cascade, outside the binlog), renumbered
    // (the items follow), created with items.
    let order = (i * 37).rem_euclid(900) + 1;
    match i % 4 {
        0 => sql.push_str(&format!("DELETE FROM orders_ WHERE id = {order};")),
        1 => sql.push_str(&format!("UPDATE IGNORE orders_ SET id = {} WHERE id = {order};", 10_000 + i)),
        _ => sql.push_str(&format!("INSERT INTO orders_ VALUES ({0}, {i}); INSERT INTO items VALUES ({0}, {0}, 'new');", 20_000 + i)),
    }
    sql
}

/// The MySQL-family run: writes between polls of `/status`, a kill -9 once a third of the chunks
/// are on green, writes while down, and green compared with blue byte by byte.
async fn mysql_family_kill_9_in_the_middle_of_a_chunked_copy(flavor: turnout_testbed::Flavor) {
    let (blue, green, db) = maria_pair_of(flavor, flavor);
    blue.execute(Some(&db), MYSQL_SCHEMA).expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), CHUNKED);
    t.start();
    let mut i = 0i64;
    let mut write = |n: usize| {
        for _ in 0..n {
            i += 1;
            blue.execute(Some(&db), &format!("BEGIN; {} COMMIT;", mysql_write(i))).expect("write");
        }
    };
    // Writes while the copy starts, then until a third of the chunks are on green: one between two
    // readings of `/status` (each is a client process; more would let the copy run past its middle
    // between two readings on a loaded machine).
    let deadline = Instant::now() + WAIT;
    let (total, seen_done) = loop {
        write(1);
        let s = t.status().unwrap_or_default();
        let copy = &s["copy"];
        if copy["chunks_done"].as_u64().unwrap_or(0) * 3 >= copy["chunks_total"].as_u64().unwrap_or(u64::MAX) {
            assert_eq!(copy["complete"], false, "the copy finished before it could be interrupted: {s}");
            assert_eq!(s["phase"], "snapshot", "{s}");
            break (copy["chunks_total"].as_u64().expect("total"), copy["chunks_done"].as_u64().expect("done"));
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "the copy never got a third done\n{}", t.log_text());
    };
    assert!(total >= 5, "the plan has only {total} chunks");
    t.kill9();
    write(20);
    t.start();
    let s = wait_copy(&mut t, "the copy complete after the restart", |c| {
        write(1);
        c["complete"] == true
    })
    .await;
    let kept = s["copy"]["chunks_kept"].as_u64().expect("kept");
    assert!(kept >= seen_done && kept < total, "kept {kept} of {total} chunks, {seen_done} seen done before the kill: {s}");
    assert!(t.log_text().contains("already on green and kept"), "{}", t.log_text());
    write(20);
    maria_assert_same(&blue, &green, &db, &["big", "tags", "digits", "orders_", "items"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn mariadb_kill_9_in_the_middle_of_a_chunked_copy_keeps_what_is_on_green_and_ends_equal() {
    mysql_family_kill_9_in_the_middle_of_a_chunked_copy(turnout_testbed::Flavor::MariaDb10_11).await;
}

#[tokio::test]
async fn mysql97_kill_9_in_the_middle_of_a_chunked_copy_keeps_what_is_on_green_and_ends_equal() {
    mysql_family_kill_9_in_the_middle_of_a_chunked_copy(turnout_testbed::Flavor::MySql9_7).await;
}

/// Blue idle while the copy runs: each round's barrier comes from turnout's own nudge (a
/// transactional message on PostgreSQL 14+, the heartbeat table on 13). A row moved by its key from a
/// chunk not yet copied into one copied, with a TOASTed value it did not change, is rebuilt from the
/// full old row under `REPLICA IDENTITY FULL`.
async fn pg_idle_blue_chunked_copy(blue_major: u32) {
    let (blue, green, db) = pair_versions(
        blue_major,
        17,
        "CREATE TABLE t (id int PRIMARY KEY, doc text);
         INSERT INTO t SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 40000) g;
         CREATE TABLE toasty (id int PRIMARY KEY, note int, big text);
         ALTER TABLE toasty REPLICA IDENTITY FULL;
         INSERT INTO toasty SELECT g, 0, (SELECT string_agg(md5(g::text || x::text), '') FROM generate_series(1, 200) x)
           FROM generate_series(1, 3000) g;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let extra = "[snapshot]\nmode = \"chunked\"\nchunk_size = \"2MB\"\nworkers = 2";
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), extra);
    t.start();
    // While toasty's first chunk is not yet on green, move one of its rows to the far end, which the
    // last chunk (copied last) covers — and before then a row of the last chunk into the first.
    let s = wait_copy(&mut t, "the plan", |c| c["chunks_total"].as_u64().unwrap_or(0) > 0).await;
    assert_eq!(s["copy"]["complete"], false, "{s}");
    blue.execute(&db, "UPDATE toasty SET id = -1, note = 1 WHERE id = 3000").await.expect("move into the first chunk");
    wait_streaming(&mut t).await;
    let s = t.status().expect("status");
    let total = s["copy"]["chunks_total"].as_u64().expect("total");
    assert!(total >= 8, "{s}");
    assert_eq!(s["copy"]["chunks_done"], total, "{s}");
    assert_converges(&blue, &green, &db, &["t", "toasty"], &mut t).await;
    blue.execute(&db, "UPDATE toasty SET note = 2 WHERE id = -1; DELETE FROM t WHERE id <= 10").await.expect("after the copy");
    assert_converges(&blue, &green, &db, &["t", "toasty"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn pg13_idle_blue_chunked_copy_completes_on_its_own_nudges() {
    pg_idle_blue_chunked_copy(13).await;
}

#[tokio::test]
async fn pg18_idle_blue_chunked_copy_completes_on_its_own_nudges() {
    pg_idle_blue_chunked_copy(18).await;
}

/// MariaDB: a table added to the selection after the initial copy is created on green and copied
/// while the others stream; one left out for a while and selected again is copied afresh; a table
/// that an already replicated table refers to by a foreign key cannot be added.
#[tokio::test]
async fn mariadb_tables_added_to_the_selection_later_are_copied_while_the_others_stream() {
    let (blue, green, db) = maria_pair();
    blue.execute(
        Some(&db),
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO a SELECT seq, 'a' FROM seq_1_to_1000;
         CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO b SELECT seq, 'b' FROM seq_1_to_3000;
         CREATE TABLE p (id INT PRIMARY KEY);
         INSERT INTO p SELECT seq FROM seq_1_to_10;
         CREATE TABLE ch (id INT PRIMARY KEY, p_id INT, FOREIGN KEY (p_id) REFERENCES p (id));
         INSERT INTO ch SELECT seq, seq FROM seq_1_to_10;",
    )
    .expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    // A run replicating the tables `include` lists, started.
    let start = |include: &str| {
        let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &format!("[tables]\ninclude = [{include}]"));
        t.start();
        t
    };
    let mut t = start("\"a\", \"ch\"");
    wait_streaming(&mut t).await;
    blue.execute(Some(&db), "UPDATE a SET v = 'one'; UPDATE b SET v = 'one' WHERE id <= 10").expect("writes");
    maria_assert_same(&blue, &green, &db, &["a"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));

    // b joins: created on green, copied while a streams, written meanwhile.
    let mut t = start("\"a\", \"b\", \"ch\"");
    blue.execute(Some(&db), "UPDATE b SET v = 'two' WHERE id <= 20; DELETE FROM b WHERE id > 2900; UPDATE a SET v = 'two'").expect("writes");
    wait_streaming(&mut t).await;
    assert!(t.log_text().contains("now includes"), "{}", t.log_text());
    blue.execute(Some(&db), "INSERT INTO b VALUES (5000, 'after')").expect("after");
    maria_assert_same(&blue, &green, &db, &["a", "b"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));

    // b left out for a while (green's copy goes stale), then selected again: copied afresh.
    streams_then_stops(start("\"a\", \"ch\"")).await;
    blue.execute(Some(&db), "UPDATE b SET v = 'stale on green' WHERE id <= 100; DELETE FROM b WHERE id BETWEEN 200 AND 300").expect("writes");
    let mut t = start("\"a\", \"b\", \"ch\"");
    wait_streaming(&mut t).await;
    maria_assert_same(&blue, &green, &db, &["a", "b"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));

    // Left out again, and its definition changes on blue meanwhile: green's stale one is refused,
    // naming both; dropped on green, it is created again from blue's.
    streams_then_stops(start("\"a\", \"ch\"")).await;
    blue.execute(Some(&db), "ALTER TABLE b ADD COLUMN w INT NOT NULL DEFAULT 7; UPDATE b SET w = id WHERE id <= 50").expect("alter");
    let mut t = start("\"a\", \"b\", \"ch\"");
    assert_eq!(wait_exit(&mut t).await, 1, "{}", t.log_text());
    assert!(t.log_text().contains("differ from blue's"), "{}", t.log_text());
    green.execute(Some(&db), "SET sql_log_bin = 0; DROP TABLE b").expect("drop on green");
    let mut t = start("\"a\", \"b\", \"ch\"");
    wait_streaming(&mut t).await;
    maria_assert_same(&blue, &green, &db, &["a", "b"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));

    // p is what the replicated ch refers to: refused, naming both.
    let mut t = start("\"a\", \"b\", \"ch\", \"p\"");
    assert_eq!(wait_exit(&mut t).await, 1, "{}", t.log_text());
    let log = t.log_text();
    assert!(log.contains("tables.include") && log.contains(".p") && log.contains(".ch"), "{log}");
}

/// Waits until `t` streams, then stops it cleanly.
async fn streams_then_stops(mut t: Turnout) {
    wait_streaming(&mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}
