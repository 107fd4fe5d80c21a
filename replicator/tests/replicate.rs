//! `turnout run` (the real binary) replicating a live blue into green: snapshot + streaming with odd
//! data, exactly-once across `kill -9`, clean SIGTERM, PostgreSQL 13 → 17, and refusing tables that
//! cannot replicate. Every test ends by comparing blue and green table contents.

use crate::common;

use common::*;
use std::time::{Duration, Instant};
use turnout_testbed::{PgOptions, PgServer};

const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE items (
    id int PRIMARY KEY, body text, qty int2, big int8, price numeric, ratio float8, flag bool,
    tags text[], doc jsonb, j json, mood mood, created timestamptz, span interval, raw bytea, u uuid,
    total numeric GENERATED ALWAYS AS (price * 2) STORED
);
CREATE TABLE dup (a int, b text);
ALTER TABLE dup REPLICA IDENTITY FULL;
CREATE TABLE doc (id int PRIMARY KEY, n int, body text);
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id));
CREATE TABLE uniq (id int PRIMARY KEY, code text UNIQUE);
CREATE TABLE big (id int PRIMARY KEY, pad text);
"#;

const TABLES: &[&str] = &["items", "dup", "doc", "parent", "child", "uniq", "big"];

#[tokio::test]
async fn snapshot_then_streaming_keeps_green_identical_through_odd_data() {
    let blue = PgServer::start_with(PgOptions::new(15).conf("logical_decoding_work_mem = '64kB'")).expect("blue");
    let green = PgServer::start(17).expect("green");
    let db = blue.create_database("app").await.expect("db");
    green.execute("postgres", &format!("CREATE DATABASE \"{db}\"")).await.expect("green db");
    blue.execute(&db, SCHEMA).await.expect("schema");
    // Rows for the snapshot.
    blue.execute(
        &db,
        r#"INSERT INTO items (id, body, qty, big, price, ratio, flag, tags, doc, j, mood, created, span, raw, u)
           SELECT g, E'tab\there\nnl \\ "q"' || g, 1, g::int8 * 1000000000, 'NaN', '-Infinity', true, ARRAY['a', NULL, 'x,"y"'],
                  '{"k": [1, null]}', '{"raw":  1}', 'happy', '2024-02-29 12:34:56.789+05:30', '1 day 02:00', '\x00ff', gen_random_uuid()
           FROM generate_series(1, 500) g;
           INSERT INTO dup VALUES (1, 'same'), (1, 'same'), (2, NULL);
           INSERT INTO doc SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 1000) g;
           INSERT INTO parent SELECT generate_series(1, 10); INSERT INTO child SELECT g, g FROM generate_series(1, 10) g;
           INSERT INTO uniq VALUES (1, 'a'), (2, 'b');"#,
    )
    .await
    .expect("snapshot rows");
    let (_dir, mut t) = running(&blue, &green, &db).await;
    assert_converges(&blue, &green, &db, TABLES, &mut t).await;
    // The schema was copied, including the generated column (computed on green, never written).
    let c = green.connect(&db).await.expect("green");
    let total: Option<String> = c.query_one("SELECT total::text FROM items WHERE id = 1", &[]).await.expect("row").get(0);
    assert_eq!(total.as_deref(), Some("NaN"));

    for sql in [
        "UPDATE items SET qty = qty + 1, price = 1.5 WHERE id <= 100",
        "UPDATE items SET id = id + 10000 WHERE id = 1",
        "DELETE FROM items WHERE id BETWEEN 200 AND 250",
        "UPDATE doc SET n = n + 1",
        "DELETE FROM dup WHERE ctid = (SELECT min(ctid) FROM dup WHERE a = 1)",
        "UPDATE dup SET b = NULL WHERE a = 1",
        "UPDATE dup SET b = 'two' WHERE a = 2",
        "BEGIN; UPDATE uniq SET code = 'tmp' WHERE id = 1; UPDATE uniq SET code = 'a' WHERE id = 2; UPDATE uniq SET code = 'b' WHERE id = 1; COMMIT",
        "BEGIN; INSERT INTO items (id) VALUES (90001); ROLLBACK",
        "BEGIN; INSERT INTO items (id) VALUES (90002); SAVEPOINT s; INSERT INTO items (id) VALUES (90003); ROLLBACK TO s; COMMIT",
        "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g",
        "BEGIN; INSERT INTO big SELECT g, repeat('y', 200) FROM generate_series(5001, 8000) g; SAVEPOINT s; \
         INSERT INTO big SELECT g, 'gone' FROM generate_series(9001, 12000) g; ROLLBACK TO s; COMMIT",
        "BEGIN; INSERT INTO big SELECT g, 'aborted' FROM generate_series(20001, 23000) g; ROLLBACK",
        "TRUNCATE parent, child CASCADE",
        "INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1)",
    ] {
        blue.execute(&db, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    assert_converges(&blue, &green, &db, TABLES, &mut t).await;
    // The TOASTed body that the update did not touch is intact on green.
    let len: i32 = c.query_one("SELECT length(body) FROM doc", &[]).await.expect("doc").get(0);
    assert_eq!(len, 32_000);
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn kill_9_at_random_points_resumes_exactly_once() {
    // No key: applying any transaction twice would duplicate rows.
    let (blue, green, db) = pair(
        "CREATE TABLE events (n int, note text); ALTER TABLE events REPLICA IDENTITY FULL; \
         CREATE TABLE counters (id int PRIMARY KEY, v int); INSERT INTO counters VALUES (1, 0)",
    )
    .await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    let writer = blue.connect(&db).await.expect("writer");
    let mut n = 0;
    // Pseudo-random kill points from the clock, different on every run.
    let mut seed = std::env::var("TURNOUT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").subsec_nanos());
    // Rerun a failure with the same kill points: TURNOUT_KILL_SEED=<seed>.
    eprintln!("kill_9_at_random_points_resumes_exactly_once: seed {seed}");
    for round in 0..4 {
        let writes = 50 + (seed % 150);
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        for _ in 0..writes {
            n += 1;
            writer
                .batch_execute(&format!("BEGIN; INSERT INTO events VALUES ({n}, 'r{round}'); UPDATE counters SET v = v + 1 WHERE id = 1; COMMIT"))
                .await
                .expect("write");
        }
        t.kill9();
        // More writes while turnout is down.
        for _ in 0..20 {
            n += 1;
            writer.batch_execute(&format!("INSERT INTO events VALUES ({n}, 'down')")).await.expect("write");
        }
        t.start();
        wait_streaming(&mut t).await;
    }
    assert_converges(&blue, &green, &db, &["events", "counters"], &mut t).await;
    let c = green.connect(&db).await.expect("green");
    let row = c.query_one("SELECT count(*), count(DISTINCT n) FROM events", &[]).await.expect("count");
    assert_eq!(row.get::<_, i64>(0), i64::from(n));
    assert_eq!(row.get::<_, i64>(1), i64::from(n));
    assert_eq!(t.sigterm(), Some(0));
}

/// Parallel apply under kill -9: a backlog of independent transactions (one random account each, a
/// keyless log row), unique emails swapped between accounts and accounts deleted and inserted again
/// is drained by four green sessions, killed three times at random points of the drain.
#[tokio::test]
async fn kill_9_during_parallel_apply_keeps_a_prefix_and_applies_exactly_once() {
    let (blue, green, db) = pair(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, email text NOT NULL UNIQUE); \
         INSERT INTO accounts SELECT g, 0, 'e' || g FROM generate_series(1, 1000) g; \
         CREATE TABLE log (n int, note text); ALTER TABLE log REPLICA IDENTITY FULL",
    )
    .await;
    let (_dir, mut t) = running_with(&blue, &green, &db, "[apply]\nsessions = 4").await;
    t.kill9();
    let writer = blue.connect(&db).await.expect("writer");
    let total = 3000;
    for i in 1..=total {
        let a = i * 7919 % 1000 + 1;
        let mut sql = format!("BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = {a}; INSERT INTO log VALUES ({i}, 'tx');");
        if i % 50 == 0 {
            // Swap two accounts' emails: the unique values move between rows.
            let b = a % 1000 + 1;
            sql += &format!(
                "UPDATE accounts SET email = 'swap' WHERE id = {a}; \
                 UPDATE accounts SET email = (SELECT 'e' || {a}) WHERE id = {b} AND email = 'e' || {b}; \
                 UPDATE accounts SET email = 'e' || {b} WHERE id = {a};"
            );
        }
        sql += "COMMIT";
        writer.batch_execute(&sql).await.expect("write");
        if i % 100 == 0 {
            // The same key deleted and inserted again in the next transaction.
            let d = i / 100;
            writer.batch_execute(&format!("DELETE FROM accounts WHERE id = {d}")).await.expect("delete");
            writer.batch_execute(&format!("INSERT INTO accounts VALUES ({d}, {i}, 'again{d}')")).await.expect("insert");
        }
    }
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").subsec_nanos();
    eprintln!("kill_9_during_parallel_apply: seed {seed}");
    let g = green.connect(&db).await.expect("green");
    let mut kill_at = 0i64;
    for round in 0..3u32 {
        kill_at += 1 + i64::from(seed.rotate_left(round * 7) % 900);
        t.start();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let n: i64 = g.query_one("SELECT count(*) FROM log", &[]).await.expect("count").get(0);
            if n >= kill_at.min(i64::from(total)) {
                break;
            }
            assert!(Instant::now() < deadline, "green stopped at {n} log rows\n{}", t.log_text());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t.kill9();
    }
    t.start();
    assert_converges(&blue, &green, &db, &["accounts", "log"], &mut t).await;
    let row = g.query_one("SELECT count(*), count(DISTINCT n) FROM log", &[]).await.expect("count");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (i64::from(total), i64::from(total)));
    // The drain went through parts applied side by side (the sink logs each batch's waves and parts).
    let log = t.log_text();
    let side_by_side = log.lines().filter(|l| l.contains("applying in parts")).any(|l| {
        let field = |name: &str| l.split(&format!("{name}=")).nth(1).and_then(|v| v.split(' ').next()).and_then(|v| v.parse::<usize>().ok());
        matches!((field("waves"), field("parts")), (Some(w), Some(p)) if p > w)
    });
    assert!(side_by_side, "no batch was applied in parts side by side:\n{log}");
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn sigterm_acknowledges_exactly_what_green_committed() {
    let (blue, green, db) = pair_with(PgOptions::new(16), "CREATE TABLE t (id int PRIMARY KEY)").await;
    green.execute(&db, "CREATE TABLE t (id int PRIMARY KEY)").await.expect("green schema");
    // A witness slot sees every transaction blue commits from here on.
    blue.execute(&db, "SELECT pg_create_logical_replication_slot('witness', 'test_decoding')").await.expect("witness");
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO t SELECT generate_series(1, 1000)").await.expect("insert");
    for i in 1001..1100 {
        blue.execute(&db, &format!("INSERT INTO t VALUES ({i})")).await.expect("insert");
    }
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    let g = green.connect(&db).await.expect("green");
    let origin: String = g
        .query_one("SELECT pg_replication_origin_progress(roname, true)::text FROM pg_replication_origin WHERE roname LIKE 'turnout_%'", &[])
        .await
        .expect("origin")
        .get(0);
    let b = blue.connect(&db).await.expect("blue");
    let confirmed: String =
        b.query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name LIKE 'turnout_%'", &[]).await.expect("slot").get(0);
    let origin: turnout_decoders::Lsn = origin.parse().expect("lsn");
    let confirmed: turnout_decoders::Lsn = confirmed.parse().expect("lsn");
    // Everything green committed is acknowledged (liveness) …
    assert!(confirmed >= origin, "slot {confirmed} behind green {origin}");
    // … and nothing beyond it that carried a change: between green's position and the slot's only WAL
    // without transactions (heartbeats, keepalives) may have been acknowledged. A commit ending in
    // that range (test_decoding reports a commit at its end) was acknowledged without being on green.
    let commits: Vec<String> = b
        .query(
            "SELECT lsn::text FROM pg_logical_slot_peek_changes('witness', NULL, NULL)              WHERE data LIKE 'COMMIT%' AND lsn > $1::text::pg_lsn AND lsn <= $2::text::pg_lsn",
            &[&origin.to_string(), &confirmed.to_string()],
        )
        .await
        .expect("witness")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(commits.is_empty(), "blue's slot was acknowledged past commits green does not have: {commits:?} (green {origin}, slot {confirmed})");
    let on_green: i64 = green.connect(&db).await.expect("green").query_one("SELECT count(*) FROM t", &[]).await.expect("count").get(0);
    assert_eq!(on_green, 1099);
}

#[tokio::test]
async fn pg13_to_pg17_replicates_a_large_transaction_whole() {
    let (blue, green, db) = pair_with(
        PgOptions::new(13).conf("logical_decoding_work_mem = '64kB'"),
        "CREATE TABLE big (id int PRIMARY KEY, pad text); INSERT INTO big SELECT g, 'snap' FROM generate_series(1, 100) g",
    )
    .await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO big SELECT g, repeat('z', 100) FROM generate_series(101, 20100) g").await.expect("big txn");
    blue.execute(&db, "UPDATE big SET pad = 'u' WHERE id % 7 = 0").await.expect("update");
    assert_converges(&blue, &green, &db, &["big"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn table_without_identity_is_refused_before_the_snapshot() {
    let (blue, green, db) = pair("CREATE TABLE nokey (a int)").await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1);
    assert!(t.log_text().contains("ALTER TABLE \"public\".\"nokey\" REPLICA IDENTITY FULL;"), "{}", t.log_text());
    // Nothing was created on blue for the refused run.
    let b = blue.connect(&db).await.expect("blue");
    let slots: i64 = b.query_one("SELECT count(*) FROM pg_replication_slots", &[]).await.expect("slots").get(0);
    assert_eq!(slots, 0);
}

#[tokio::test]
async fn a_column_added_on_blue_is_added_on_green_and_replication_carries_on() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY, a text); INSERT INTO t VALUES (1, 'one')").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO t VALUES (2, 'two')").await.expect("insert");
    blue.execute(&db, "ALTER TABLE t ADD COLUMN b numeric(10,2); ALTER TABLE t ADD COLUMN c text[]").await.expect("alter");
    blue.execute(&db, "INSERT INTO t VALUES (3, 'three', 1.5, '{x,NULL}'); UPDATE t SET b = 7 WHERE id = 1").await.expect("use it");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let ty: String = g
        .query_one("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'b'", &[])
        .await
        .expect("column")
        .get(0);
    assert_eq!(ty, "numeric(10,2)");
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn rows_older_than_a_column_added_with_a_default_get_blues_stored_value_on_green() {
    let (blue, green, db) = pair("CREATE DOMAIN label AS text; CREATE TABLE t (id int PRIMARY KEY, a text); INSERT INTO t VALUES (1, 'one')").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO t VALUES (2, 'two')").await.expect("insert");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    // Defaults PostgreSQL stores for the older rows instead of rewriting them: only blue's catalog
    // knows these values, the change stream never carries them (now() is blue's time of the ALTER).
    blue.execute(
        &db,
        "ALTER TABLE t ADD COLUMN n int NOT NULL DEFAULT 7, ADD COLUMN q text DEFAULT 'it''s \"{x,y}\"', \
         ADD COLUMN arr text[] DEFAULT '{\"a,b\",NULL}', ADD COLUMN at timestamptz DEFAULT now(), \
         ADD COLUMN d label DEFAULT 'dom', ADD COLUMN plain int",
    )
    .await
    .expect("alter");
    blue.execute(&db, "INSERT INTO t (id, a) VALUES (3, 'three'); UPDATE t SET n = 1 WHERE id = 3").await.expect("use it");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let defaults: i64 = g.query_one("SELECT count(*) FROM pg_attrdef WHERE adrelid = 't'::regclass", &[]).await.expect("defaults").get(0);
    assert_eq!(defaults, 0, "the value for older rows is not left behind as green's default");
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_column_whose_older_values_blue_did_not_store_stops_replication_until_green_has_it() {
    let (blue, green, db) = pair("CREATE TABLE v (id int PRIMARY KEY); INSERT INTO v SELECT generate_series(1, 50)").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    // A volatile default rewrote blue's table: the values of the 50 older rows are not in the stream.
    blue.execute(&db, "ALTER TABLE v ADD COLUMN u uuid DEFAULT gen_random_uuid(); INSERT INTO v (id) VALUES (51)").await.expect("volatile");
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("blue added column \"u\" with the default gen_random_uuid()") && log.contains("ADD COLUMN \"u\" uuid"), "{log}");
    let g = green.connect(&db).await.expect("green");
    let n: i64 = g.query_one("SELECT count(*) FROM v", &[]).await.expect("count").get(0);
    assert_eq!(n, 50, "nothing after the change reached green");
    // The operator adds the column on green with blue's values, and replication carries on.
    let b = blue.connect(&db).await.expect("blue");
    let values: Vec<(i32, String)> =
        b.query("SELECT id, u::text FROM v WHERE id <= 50", &[]).await.expect("values").iter().map(|r| (r.get(0), r.get(1))).collect();
    g.batch_execute("ALTER TABLE v ADD COLUMN u uuid").await.expect("add on green");
    for (id, u) in values {
        g.execute("UPDATE v SET u = $2::text::uuid WHERE id = $1", &[&id, &u]).await.expect("copy");
    }
    t.start();
    blue.execute(&db, "INSERT INTO v (id) VALUES (52)").await.expect("after");
    assert_converges(&blue, &green, &db, &["v"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn an_incompatible_column_change_stops_with_an_error_naming_table_and_column() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY, a text)").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO t VALUES (1, '5')").await.expect("insert");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    blue.execute(&db, "ALTER TABLE t ALTER COLUMN a TYPE int USING a::int; INSERT INTO t VALUES (2, 6)").await.expect("alter");
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("public.t") && log.contains("column \"a\" has type text on green"), "{log}");
    // Nothing after the change reached green, and the row before it is there.
    let g = green.connect(&db).await.expect("green");
    let n: i64 = g.query_one("SELECT count(*) FROM t", &[]).await.expect("count").get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn partitioned_tables_replicate_through_the_root_including_rows_that_move() {
    let (blue, green, db) = pair(
        "CREATE TABLE m (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');
         CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
         INSERT INTO m SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 100) g",
    )
    .await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    for sql in [
        "INSERT INTO m SELECT g, 'eu', g FROM generate_series(101, 150) g",
        "UPDATE m SET region = 'us' WHERE id BETWEEN 2 AND 20 AND region = 'eu'",
        "UPDATE m SET v = -v WHERE region = 'us'",
        "DELETE FROM m WHERE id > 140",
    ] {
        blue.execute(&db, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    assert_converges(&blue, &green, &db, &["m", "m_eu", "m_us"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn green_and_blue_restarts_are_retried_without_loss_or_duplication() {
    let (mut blue, mut green, db) = pair("CREATE TABLE events (n int, note text); ALTER TABLE events REPLICA IDENTITY FULL").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    let mut n = 0;
    let mut write = |blue: &PgServer, count: i32| {
        let sqls: Vec<String> = (0..count)
            .map(|_| {
                n += 1;
                format!("INSERT INTO events VALUES ({n}, 'x')")
            })
            .collect();
        let url = blue.url(&db);
        async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            for s in sqls {
                c.batch_execute(&s).await.expect("write");
            }
        }
    };
    write(&blue, 50).await;
    green.restart().expect("restart green");
    write(&blue, 50).await;
    assert_converges(&blue, &green, &db, &["events"], &mut t).await;
    blue.restart().expect("restart blue");
    write(&blue, 50).await;
    assert_converges(&blue, &green, &db, &["events"], &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let row = g.query_one("SELECT count(*), count(DISTINCT n) FROM events", &[]).await.expect("count");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (150, 150));
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_large_table_is_copied_as_page_ranges_without_missing_or_doubling_rows() {
    let (blue, green, db) = pair(
        "CREATE TABLE wide (id int PRIMARY KEY, pad text);
         INSERT INTO wide SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, 30000) g;
         DELETE FROM wide WHERE id % 3 = 0;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[snapshot]\nsplit_mb = 1\nworkers = 3");
    t.start();
    wait_streaming(&mut t).await;
    assert!(t.log_text().contains("copying in page ranges"), "{}", t.log_text());
    blue.execute(&db, "INSERT INTO wide VALUES (30001, 'after')").await.expect("insert");
    assert_converges(&blue, &green, &db, &["wide"], &mut t).await;
    let status = t.status().expect("status");
    assert_eq!(status["tables"]["public.wide"]["done"], true, "{status}");
    assert_eq!(status["tables"]["public.wide"]["rows"], 20000, "{status}");
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn prepared_transactions_reach_green_at_commit_prepared_and_never_when_rolled_back() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "BEGIN; INSERT INTO t VALUES (1, 'kept'); PREPARE TRANSACTION 'keep'").await.expect("prepare");
    blue.execute(&db, "BEGIN; INSERT INTO t VALUES (2, 'dropped'); PREPARE TRANSACTION 'drop'").await.expect("prepare");
    blue.execute(&db, "INSERT INTO t VALUES (3, 'plain')").await.expect("insert");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    blue.execute(&db, "COMMIT PREPARED 'keep'").await.expect("commit prepared");
    blue.execute(&db, "ROLLBACK PREPARED 'drop'").await.expect("rollback prepared");
    blue.execute(&db, "INSERT INTO t VALUES (4, 'after')").await.expect("insert");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let ids: Vec<i32> = g.query("SELECT id FROM t ORDER BY id", &[]).await.expect("rows").iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1, 3, 4]);
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn kill_9_during_the_snapshot_redoes_it_from_scratch() {
    let (blue, green, db) = pair(
        "CREATE TABLE big (id int PRIMARY KEY, pad text);
         INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 400000) g;
         CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small SELECT generate_series(1, 10);",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    // Kill as soon as the snapshot is under way.
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = t.status() {
            if s["phase"] == "snapshot" && s["tables"].as_object().is_some_and(|m| !m.is_empty()) {
                break;
            }
            assert_ne!(s["phase"], "streaming", "the snapshot finished before it could be interrupted");
        }
        assert!(Instant::now() < deadline, "no snapshot phase seen\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.kill9();
    blue.execute(&db, "INSERT INTO small VALUES (11); UPDATE big SET pad = 'changed' WHERE id <= 10").await.expect("writes");
    t.start();
    wait_streaming(&mut t).await;
    assert!(t.log_text().contains("did not finish; starting it again"), "{}", t.log_text());
    assert_converges(&blue, &green, &db, &["big", "small"], &mut t).await;
    // The retry still created green's primary keys (post-data) although the tables already existed.
    let g = green.connect(&db).await.expect("green");
    let pks: i64 =
        g.query_one("SELECT count(*) FROM pg_index WHERE indisprimary AND indrelid IN ('big'::regclass, 'small'::regclass)", &[]).await.expect("pks").get(0);
    assert_eq!(pks, 2);
    // Exactly one slot: the interrupted one was dropped.
    let b = blue.connect(&db).await.expect("blue");
    let slots: i64 = b.query_one("SELECT count(*) FROM pg_replication_slots", &[]).await.expect("slots").get(0);
    assert_eq!(slots, 1);
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn replicates_over_verified_tls_when_both_servers_refuse_plain_connections() {
    // turnout's role may only connect over TLS; the test's own admin sessions stay plain.
    let tls = |major| PgOptions { major, conf: Vec::new(), hba_prepend: vec!["hostnossl all repl 127.0.0.1/32 reject".into()], tls: true };
    let blue = PgServer::start_with(tls(15)).expect("blue");
    let green = PgServer::start_with(tls(17)).expect("green");
    let db = blue.create_database("app").await.expect("db");
    green.execute("postgres", &format!("CREATE DATABASE \"{db}\"")).await.expect("green db");
    for s in [&blue, &green] {
        s.execute("postgres", "CREATE ROLE repl LOGIN SUPERUSER PASSWORD 'replpw'").await.expect("role");
    }
    blue.execute(&db, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'snap' FROM generate_series(1, 100) g").await.expect("schema");
    let url = |s: &PgServer| {
        let ca = s.certificates().expect("certs").ca_cert.display().to_string();
        format!("{}?sslmode=verify-full&sslrootcert={ca}", s.url_for("repl", "replpw", &db).replace("127.0.0.1", "localhost"))
    };
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &url(&blue), &url(&green));
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(&db, "INSERT INTO t VALUES (101, 'stream'); UPDATE t SET v = 'u' WHERE id = 1").await.expect("writes");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

/// The tables a publication of turnout's publishes (roots, as `publish_via_partition_root` shows them).
async fn published_tables(blue: &PgServer, db: &str) -> Vec<String> {
    let b = blue.connect(db).await.expect("blue");
    b.query("SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname LIKE 'turnout_%' ORDER BY 1", &[])
        .await
        .expect("publication tables")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Whether each table exists on a server.
async fn exists(server: &PgServer, db: &str, tables: &[&str]) -> Vec<bool> {
    let c = server.connect(db).await.expect("connect");
    let mut out = Vec::new();
    for t in tables {
        out.push(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[t]).await.expect("to_regclass").get(0));
    }
    out
}

#[tokio::test]
async fn include_and_exclude_patterns_decide_what_is_published_copied_and_streamed() {
    let (blue, green, db) = pair(
        "CREATE SCHEMA sales; CREATE SCHEMA archive;
         CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE orders (id int PRIMARY KEY, m mood, note text);
         CREATE TABLE audit_log (id int PRIMARY KEY, what text);
         CREATE TABLE archive.old_orders (id int PRIMARY KEY, note text);
         CREATE TABLE sales.invoices (id serial PRIMARY KEY, order_id int REFERENCES orders (id), old_id int REFERENCES archive.old_orders (id));
         CREATE TABLE sales.tmp_import (id int PRIMARY KEY);
         CREATE VIEW old_order_notes AS SELECT note FROM archive.old_orders;
         CREATE TABLE m (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');
         CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
         INSERT INTO orders SELECT g, 'happy', 'o' || g FROM generate_series(1, 50) g;
         INSERT INTO audit_log SELECT g, 'a' FROM generate_series(1, 50) g;
         INSERT INTO archive.old_orders SELECT g, 'old' FROM generate_series(1, 10) g;
         INSERT INTO sales.invoices (order_id, old_id) SELECT g, g % 10 + 1 FROM generate_series(1, 50) g;
         INSERT INTO sales.tmp_import SELECT generate_series(1, 10);
         INSERT INTO m SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 20) g;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let filter = "[tables]\ninclude = [\"public.*\", \"sales.*\"]\nexclude = [\"*.audit_*\", \"sales.tmp_*\"]";
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), filter);
    t.start();
    wait_streaming(&mut t).await;
    let selected = ["orders", "sales.invoices", "m", "m_eu", "m_us"];
    assert_converges(&blue, &green, &db, &selected, &mut t).await;
    assert_eq!(published_tables(&blue, &db).await, ["public.m", "public.orders", "sales.invoices"]);
    // Writes to left-out tables, alone and in the same transactions as selected ones; blue's
    // UPDATEs and DELETEs on them keep working.
    for sql in [
        "UPDATE audit_log SET what = 'changed'; DELETE FROM sales.tmp_import WHERE id > 5",
        "BEGIN; INSERT INTO audit_log VALUES (51, 'x'); UPDATE orders SET m = 'sad', note = 'n' WHERE id <= 10; COMMIT",
        "BEGIN; INSERT INTO archive.old_orders VALUES (11, 'old'); INSERT INTO sales.invoices (order_id, old_id) VALUES (1, 11); COMMIT",
        "DELETE FROM sales.invoices WHERE order_id BETWEEN 40 AND 45; DELETE FROM orders WHERE id BETWEEN 40 AND 45",
        "UPDATE m SET region = 'eu' WHERE id = 1; INSERT INTO m VALUES (21, 'us')",
        "UPDATE sales.invoices SET old_id = NULL WHERE id <= 5",
    ] {
        blue.execute(&db, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    assert_converges(&blue, &green, &db, &selected, &mut t).await;
    // Left-out tables, and the view over one, were never created on green; the enum type and the
    // foreign key between two selected tables were.
    assert_eq!(exists(&green, &db, &["audit_log", "sales.tmp_import", "archive.old_orders", "old_order_notes"]).await, [false, false, false, false]);
    let g = green.connect(&db).await.expect("green");
    let fks: i64 =
        g.query_one("SELECT count(*) FROM pg_constraint WHERE conrelid = 'sales.invoices'::regclass AND contype = 'f'", &[]).await.expect("constraints").get(0);
    assert_eq!(fks, 1, "only the foreign key to the selected orders table");
    let log = t.log_text();
    assert!(log.contains("not created on green") && log.contains("old_order_notes"), "{log}");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn skip_without_identity_leaves_such_tables_out_with_a_warning_naming_each() {
    let (blue, green, db) = pair(
        "CREATE TABLE keyed (id int PRIMARY KEY, v text); INSERT INTO keyed SELECT g, 'k' FROM generate_series(1, 20) g;
         CREATE TABLE nokey (a int); INSERT INTO nokey SELECT generate_series(1, 5);",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[tables]\nskip_without_identity = true");
    t.start();
    wait_streaming(&mut t).await;
    let log = t.log_text();
    assert!(log.contains("skipping public.nokey") && log.contains("ALTER TABLE \"public\".\"nokey\" REPLICA IDENTITY FULL;"), "{log}");
    assert_eq!(published_tables(&blue, &db).await, ["public.keyed"]);
    // nokey is not published, so blue still accepts its UPDATEs and DELETEs.
    blue.execute(&db, "UPDATE nokey SET a = a + 100; DELETE FROM nokey WHERE a = 101").await.expect("blue writes to nokey");
    blue.execute(&db, "UPDATE keyed SET v = 'u' WHERE id <= 5; INSERT INTO keyed VALUES (21, 'new')").await.expect("writes");
    assert_converges(&blue, &green, &db, &["keyed"], &mut t).await;
    assert_eq!(exists(&green, &db, &["nokey"]).await, [false]);
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn a_filter_selecting_nothing_or_only_a_partition_is_refused_before_anything_is_created() {
    let (blue, green, db) = pair(
        "CREATE TABLE t (id int PRIMARY KEY);
         CREATE TABLE m (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');",
    )
    .await;
    for (filter, says) in [
        ("include = [\"public.m_eu\"]", &["tables.include[0]", "public.m_eu", "a partition of public.m"][..]),
        ("include = [\"public.*\"]\nexclude = [\"public.m_eu\"]", &["tables.exclude[0]", "exclude public.m"]),
        ("include = [\"sales.*\", '\"T\"']", &["tables.include", "selects no table", "\"sales.*\""]),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &format!("[tables]\n{filter}"));
        t.start();
        assert_eq!(wait_exit(&mut t).await, 1, "{filter}\n{}", t.log_text());
        let log = t.log_text();
        for s in says {
            assert!(log.contains(s), "{filter}: expected {s:?} in\n{log}");
        }
    }
    let b = blue.connect(&db).await.expect("blue");
    let row = b.query_one("SELECT (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication)", &[]).await.expect("count");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 0));
}

#[tokio::test]
async fn narrowing_the_filter_after_the_snapshot_stops_a_table_and_widening_it_copies_the_new_tables_while_streaming() {
    let (blue, green, db) = pair(
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT g, 'snap' FROM generate_series(1, 10) g; INSERT INTO b SELECT g, 'snap' FROM generate_series(1, 10) g;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[tables]\ninclude = [\"a\", \"b\"]");
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(&db, "UPDATE a SET v = 'one'; UPDATE b SET v = 'one'").await.expect("writes");
    assert_converges(&blue, &green, &db, &["a", "b"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    let b_before = contents(&green, &db, &["b"]).await;

    // Narrowed: b is no longer published; green keeps it as it was.
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[tables]\ninclude = [\"a\"]");
    t.start();
    wait_streaming(&mut t).await;
    assert_eq!(published_tables(&blue, &db).await, ["public.a"]);
    let log = t.log_text();
    assert!(log.contains("no longer selected") && log.contains("public.b"), "{log}");
    // b's change commits before a's: once green shows a's, it would show b's too if b streamed.
    blue.execute(&db, "UPDATE b SET v = 'two'").await.expect("b");
    blue.execute(&db, "UPDATE a SET v = 'two'; INSERT INTO a VALUES (11, 'two')").await.expect("a");
    assert_converges(&blue, &green, &db, &["a"], &mut t).await;
    assert_eq!(contents(&green, &db, &["b"]).await, b_before);
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());

    // Widened after the snapshot: a table never copied (c, with rows, which green lacks) and one left
    // out for a while (b, stale on green) are copied on their own while a streams; blue writes to
    // all three meanwhile.
    blue.execute(&db, "CREATE TABLE c (id int PRIMARY KEY, v text); INSERT INTO c SELECT g, 'c' FROM generate_series(1, 5000) g").await.expect("c");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[tables]\ninclude = [\"a\", \"b\", \"c\"]");
    t.start();
    blue.execute(&db, "UPDATE b SET v = 'three' WHERE id <= 5; DELETE FROM c WHERE id <= 100; UPDATE a SET v = 'three'").await.expect("writes");
    wait_streaming(&mut t).await;
    assert_converges(&blue, &green, &db, &["a", "b", "c"], &mut t).await;
    assert_eq!(published_tables(&blue, &db).await, ["public.a", "public.b", "public.c"]);
    let log = t.log_text();
    assert!(log.contains("now includes public.b, public.c"), "{log}");
    blue.execute(&db, "INSERT INTO c VALUES (9999, 'after'); UPDATE b SET v = 'four'").await.expect("after");
    assert_converges(&blue, &green, &db, &["a", "b", "c"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn green_crashing_under_load_loses_only_unacknowledged_commits_which_are_sent_again() {
    let (blue, mut green, db) = pair("CREATE TABLE events (n int PRIMARY KEY, note text)").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    let url = blue.url(&db);
    // A steady stream of small transactions while green crashes twice; green applies them with
    // asynchronous commits, so a crash drops its newest ones — which blue must still hold for us.
    let writer = tokio::spawn(async move {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        for n in 1..=3000 {
            c.batch_execute(&format!("INSERT INTO events VALUES ({n}, 'x')")).await.expect("write");
        }
    });
    for _ in 0..2 {
        let deadline = Instant::now() + WAIT;
        let before = t.status().and_then(|s| s["rows_applied"].as_u64()).unwrap_or(0);
        while t.status().and_then(|s| s["rows_applied"].as_u64()).unwrap_or(0) < before + 300 {
            assert!(Instant::now() < deadline, "no progress\n{}", t.log_text());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        green.crash_restart().expect("crash green");
    }
    writer.await.expect("writer");
    assert_converges(&blue, &green, &db, &["events"], &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let n: i64 = g.query_one("SELECT count(*) FROM events", &[]).await.expect("count").get(0);
    assert_eq!(n, 3000);
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn verify_finds_equal_tables_equal_and_names_a_table_that_differs() {
    let (blue, green, db) = pair("CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (n int, note text); ALTER TABLE b REPLICA IDENTITY FULL").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, 1000) g; INSERT INTO b VALUES (1, 'x'), (1, 'x'), (2, NULL)")
        .await
        .expect("rows");
    assert_converges(&blue, &green, &db, &["a", "b"], &mut t).await;
    let verify = |args: &[&str]| {
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["verify", "--config"]).arg(t.config_path()).args(args).output().expect("verify");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, out) = verify(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok       \"public\".\"a\" (1000 rows)") && out.contains("0 differ"), "{out}");
    // One changed value on green (row count unchanged) is found, and named.
    green.execute(&db, "UPDATE a SET v = 'changed' WHERE id = 500").await.expect("tamper");
    let (code, out) = verify(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("DIFFERS  \"public\".\"a\" (blue 1000 rows, green 1000 rows)") && out.contains("1 differ"), "{out}");
    let (code, out) = verify(&["--table", "public.b"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(t.sigterm(), Some(0));
}
