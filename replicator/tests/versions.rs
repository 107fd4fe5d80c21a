//! The version matrix: the same end-to-end scenario for every supported pair of PostgreSQL majors,
//! upgrades and a downgrade (the direction a rollback replicates in). Schema copy with a pg_dump at
//! least as new as blue (the harness provides 17/18 client tools), snapshot, inserts, updates, deletes,
//! partitions with rows moving between them, an UPDATE leaving a TOASTed value unchanged, a large
//! transaction spilled under a small memory budget, TRUNCATE, and kill -9 of turnout under a writer.
//! Blue and green are compared by the text of every row, and the keyless table proves nothing was
//! applied twice.

use crate::common;

use common::*;
use turnout_testbed::PgOptions;

const SCHEMA: &str = "
CREATE TABLE acct (id bigserial PRIMARY KEY, owner text NOT NULL, balance numeric(12,2), code char(4), note text, tags text[], doc jsonb);
CREATE TABLE ev (id int, region text, body text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE ev_eu PARTITION OF ev FOR VALUES IN ('eu');
CREATE TABLE ev_us PARTITION OF ev FOR VALUES IN ('us');
CREATE TABLE log (n int, msg text);
ALTER TABLE log REPLICA IDENTITY FULL;
CREATE TABLE doc (id int PRIMARY KEY, n int, body text);
INSERT INTO acct (owner, balance, code, note, tags, doc)
    SELECT 'o' || g, g * 1.5, 'c' || (g % 10), repeat('n', g % 10), ARRAY['t' || g, NULL], jsonb_build_object('g', g) FROM generate_series(1, 500) g;
INSERT INTO ev SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'b' || g FROM generate_series(1, 200) g;
INSERT INTO doc SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 2000) g;
";

const TABLES: &[&str] = &["acct", "ev", "ev_eu", "ev_us", "log", "doc"];

async fn scenario(blue_major: u32, green_major: u32) {
    turnout_testbed::client_bin_dir(blue_major).expect("pg_dump");
    let (blue, green, db) = pair_between(PgOptions::new(blue_major).conf("logical_decoding_work_mem = '64kB'"), PgOptions::new(green_major), SCHEMA).await;
    let (_dir, mut t) = running_with(&blue, &green, &db, "[apply]\nmemory_budget = \"4MiB\"\n").await;
    assert_converges(&blue, &green, &db, TABLES, &mut t).await;
    for sql in [
        "INSERT INTO acct (owner, balance, code) SELECT 'new' || g, g, 'x' FROM generate_series(1, 300) g",
        "UPDATE acct SET balance = balance + 0.01, code = 'abc' WHERE id % 3 = 0",
        "UPDATE acct SET id = id + 100000 WHERE id % 11 = 0",
        "DELETE FROM acct WHERE id % 13 = 0",
        "UPDATE ev SET region = 'us' WHERE region = 'eu' AND id < 50",
        "UPDATE ev SET body = body || '!' WHERE region = 'us'",
        "DELETE FROM ev WHERE id > 180",
        "UPDATE doc SET n = n + 1",
        "INSERT INTO log SELECT g, 'before' FROM generate_series(1, 100) g",
        "UPDATE log SET msg = 'twice' WHERE n = 1",
        "BEGIN; INSERT INTO log VALUES (-1, 'rolled back'); ROLLBACK",
    ] {
        blue.execute(&db, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    assert_converges(&blue, &green, &db, TABLES, &mut t).await;
    // A transaction far beyond the 4 MiB budget: spilled, and applied early or whole.
    blue.execute(&db, "INSERT INTO log SELECT g, repeat('L', 100) FROM generate_series(1000, 100999) g").await.expect("large txn");
    // kill -9 under a writer, then more writes while turnout is down.
    let writer = blue.connect(&db).await.expect("writer");
    for i in 0..100 {
        writer
            .batch_execute(&format!("BEGIN; INSERT INTO log VALUES ({}, 'w'); UPDATE acct SET balance = balance + 1 WHERE id = 1; COMMIT", 200_000 + i))
            .await
            .expect("write");
        if i == 50 {
            t.kill9();
        }
    }
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(&db, "TRUNCATE ev; INSERT INTO ev VALUES (1, 'eu', 'after truncate'), (2, 'us', 'after truncate')").await.expect("truncate");
    // One partition's TRUNCATE: carried on 14+, refused on blue by 13 (its pgoutput has no messages).
    let one = blue.execute(&db, "TRUNCATE ev_us").await;
    if blue_major >= 14 {
        one.expect("a partition's truncate");
    } else {
        let e = one.expect_err("PostgreSQL 13 let a partition's TRUNCATE through");
        assert!(format!("{e:?}").contains("TRUNCATE of partition public.ev_us is not carried to green"), "{e:?}");
    }
    assert_converges(&blue, &green, &db, TABLES, &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let row = g.query_one("SELECT count(*), count(DISTINCT n) FROM log", &[]).await.expect("count");
    assert_eq!(row.get::<_, i64>(0), row.get::<_, i64>(1), "a keyless row was applied twice");
    // Blue 14+ streams it while it runs, 13 sends it whole at its commit: either way it is applied
    // early on green from its first spill on and committed at its commit (the shared origin handed
    // over between sessions on every green version).
    let expected = "committed a transaction applied early";
    assert!(t.log_text().contains(expected), "the large transaction was not applied as expected ({expected})\n{}", t.log_text());
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    let (code, out) = common::turnout_command(&t, "teardown", &["--yes"]).await;
    assert_eq!(code, 0, "{out}");
    let left = blue.connect(&db).await.expect("blue").query_one("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'turnout%'", &[]).await.expect("triggers");
    assert_eq!(left.get::<_, i64>(0), 0, "teardown left turnout's TRUNCATE triggers on blue\n{out}");
}

#[tokio::test]
async fn pg13_to_pg17() {
    scenario(13, 17).await;
}

#[tokio::test]
async fn pg14_to_pg16() {
    scenario(14, 16).await;
}

#[tokio::test]
async fn pg15_to_pg17() {
    scenario(15, 17).await;
}

#[tokio::test]
async fn pg15_to_pg18() {
    scenario(15, 18).await;
}

#[tokio::test]
async fn pg16_to_pg18() {
    scenario(16, 18).await;
}

#[tokio::test]
async fn pg17_to_pg18() {
    scenario(17, 18).await;
}

#[tokio::test]
async fn pg18_down_to_pg16() {
    scenario(18, 16).await;
}
