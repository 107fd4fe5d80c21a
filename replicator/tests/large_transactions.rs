//! Transactions larger than `apply.memory_budget`: spilled to the state store, applied whole at
//! commit, dropped at rollback (whole or to a savepoint), with the process's peak memory bounded. One
//! the source sends whole (at its commit) is applied early from its first spill on, and whole from the
//! spill when early apply is given up.

use crate::common;

use common::{assert_converges, pair_with, running_with, Turnout, WAIT};
use std::time::Instant;
use turnout_testbed::{PgOptions, PgServer};

const BUDGET_1MIB: &str = "[apply]\nmemory_budget = \"1MiB\"\n";

/// `/status` field `spilled_bytes_total`.
fn spilled(t: &Turnout) -> u64 {
    status_u64(t, "spilled_bytes_total")
}

fn status_u64(t: &Turnout, field: &str) -> u64 {
    t.status().and_then(|s| s[field].as_u64()).unwrap_or(0)
}

#[tokio::test]
async fn streamed_transactions_beyond_the_budget_spill_and_apply_whole_and_rollbacks_never_arrive() {
    let (blue, green, db) = pair_with(
        PgOptions::new(15).conf("logical_decoding_work_mem = '64kB'"),
        "CREATE TABLE big (id int PRIMARY KEY, pad text, n int); CREATE TABLE small (id serial PRIMARY KEY, note text)",
    )
    .await;
    let (_dir, mut t) = running_with(&blue, &green, &db, BUDGET_1MIB).await;
    let a = blue.connect(&db).await.expect("blue a");
    let b = blue.connect(&db).await.expect("blue b");
    // A large transaction stays open while small ones commit around it, with a savepoint rolled back
    // after some of its rows were surely spilled.
    a.batch_execute(
        "BEGIN; INSERT INTO big SELECT g, repeat('p', 50), 0 FROM generate_series(1, 30000) g; SAVEPOINT s; \
         INSERT INTO big SELECT g, 'gone', 0 FROM generate_series(100001, 110000) g; UPDATE big SET n = -1 WHERE id <= 1000",
    )
    .await
    .expect("large part 1");
    b.batch_execute("INSERT INTO small (note) VALUES ('before the large commit')").await.expect("small");
    a.batch_execute(
        "ROLLBACK TO SAVEPOINT s; UPDATE big SET n = id % 13 WHERE id % 5 = 0; DELETE FROM big WHERE id % 11 = 0; \
         INSERT INTO small (note) VALUES ('inside the large transaction'); COMMIT",
    )
    .await
    .expect("large part 2");
    b.batch_execute("INSERT INTO small (note) VALUES ('after the large commit')").await.expect("small");
    // A large transaction rolled back as a whole.
    a.batch_execute("BEGIN; INSERT INTO big SELECT g, 'never', 0 FROM generate_series(200001, 230000) g; ROLLBACK").await.expect("rolled back");
    b.batch_execute("INSERT INTO small (note) VALUES ('last')").await.expect("small");
    assert_converges(&blue, &green, &db, &["big", "small"], &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let gone: i64 = g.query_one("SELECT count(*) FROM big WHERE pad IN ('gone', 'never') OR n = -1", &[]).await.expect("q").get(0);
    assert_eq!(gone, 0);
    let s = spilled(&t);
    assert!(s > 2 << 20, "expected the large transactions to spill, /status spilled_bytes_total = {s}");
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_whole_large_transaction_from_postgresql_13_spills_and_applies() {
    let (blue, green, db) = pair_with(PgOptions::new(13), "CREATE TABLE big (id int PRIMARY KEY, pad text)").await;
    let (_dir, mut t) = running_with(&blue, &green, &db, BUDGET_1MIB).await;
    blue.execute(
        &db,
        "BEGIN; INSERT INTO big SELECT g, repeat('x', 80) FROM generate_series(1, 40000) g; SAVEPOINT s; \
         DELETE FROM big WHERE id < 100; ROLLBACK TO SAVEPOINT s; UPDATE big SET pad = 'u' WHERE id % 3 = 0; COMMIT",
    )
    .await
    .expect("large");
    blue.execute(&db, "INSERT INTO big VALUES (0, 'after')").await.expect("after");
    assert_converges(&blue, &green, &db, &["big"], &mut t).await;
    assert!(spilled(&t) > 2 << 20, "expected a spill");
    // Sent whole, it was applied while the rest of it arrived and committed from its early session.
    assert_eq!(status_u64(&t, "early_committed_total"), 1, "{:?}", t.status());
    assert_eq!(status_u64(&t, "early_given_up_total"), 0, "{:?}", t.status());
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_schema_change_inside_a_large_transaction_sent_whole_gives_early_apply_up_and_applies_it_whole() {
    let (blue, green, db) = pair_with(PgOptions::new(13), "CREATE TABLE big (id int PRIMARY KEY, pad text)").await;
    let (_dir, mut t) = running_with(&blue, &green, &db, BUDGET_1MIB).await;
    // Green adds the column while the early session holds rows of `big`: that session is given up
    // (never waited for) and the transaction comes from its spill, rows before and after the change.
    blue.execute(
        &db,
        "BEGIN; INSERT INTO big SELECT g, repeat('y', 80) FROM generate_series(1, 30000) g;          ALTER TABLE big ADD COLUMN extra int;          INSERT INTO big SELECT g, 'late', g % 5 FROM generate_series(30001, 45000) g; UPDATE big SET extra = 1 WHERE id % 1000 = 0; COMMIT",
    )
    .await
    .expect("large with a schema change");
    blue.execute(&db, "INSERT INTO big VALUES (0, 'after', 0)").await.expect("after");
    assert_converges(&blue, &green, &db, &["big"], &mut t).await;
    assert!(status_u64(&t, "early_given_up_total") >= 1, "{:?}", t.status());
    assert_eq!(status_u64(&t, "early_committed_total"), 0, "{:?}", t.status());
    assert_eq!(t.sigterm(), Some(0));
}

/// Count, key sum and a hash of every row, ordered by key.
async fn fingerprint(server: &PgServer, db: &str) -> (i64, i64, String) {
    let c = server.connect(db).await.expect("connect");
    let r = c
        .query_one("SELECT count(*), COALESCE(sum(id), 0)::int8, COALESCE(md5(string_agg(x::text, ',' ORDER BY id)), '') FROM big x", &[])
        .await
        .expect("fingerprint");
    (r.get(0), r.get(1), r.get(2))
}

/// Peak resident memory of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).expect("VmHWM");
    kb * 1024
}

#[tokio::test]
async fn peak_memory_stays_under_the_budget_plus_a_fixed_overhead_for_a_2m_row_transaction() {
    const BUDGET: u64 = 16 << 20;
    /// Runtime, connections, decoder, one batch in flight and RocksDB's memtables.
    const OVERHEAD: u64 = 96 << 20;
    let (blue, green, db) =
        pair_with(PgOptions::new(15).conf("logical_decoding_work_mem = '1MB'"), "CREATE TABLE big (id int PRIMARY KEY, pad text, at timestamptz)").await;
    let (_dir, mut t) = running_with(&blue, &green, &db, "[apply]\nmemory_budget = \"16MiB\"\n").await;
    let pid = t.pid().expect("pid");
    let before = peak_rss(pid);
    blue.execute(&db, "INSERT INTO big SELECT g, md5(g::text), now() FROM generate_series(1, 2000000) g").await.expect("2M rows");
    let want = fingerprint(&blue, &db).await;
    let deadline = Instant::now() + WAIT * 4;
    loop {
        if fingerprint(&green, &db).await == want {
            break;
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "green did not catch up with the 2M-row transaction");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let peak = peak_rss(pid);
    let s = spilled(&t);
    eprintln!("peak RSS before the load {} MiB, after {} MiB; spilled {} MiB", before >> 20, peak >> 20, s >> 20);
    // Held in memory, these rows would take several hundred MiB.
    assert!(s > 100 << 20, "the transaction should have been spilled, spilled_bytes_total = {s}");
    // What the transaction made turnout hold: the growth of the high-water mark over the one before
    // the load. The mark itself also counts the pages of turnout's own binary it has touched (about
    // 46 MiB in a debug build), which no transaction changes.
    let grown = peak.saturating_sub(before);
    assert!(grown < BUDGET + OVERHEAD, "peak RSS grew by {} MiB, over budget 16 MiB + overhead {} MiB", grown >> 20, OVERHEAD >> 20);
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn kill_9_while_a_large_transaction_is_spilled_or_applied_resumes_exactly_once() {
    kill_9_during_large_transactions(PgOptions::new(15).conf("logical_decoding_work_mem = '64kB'")).await;
}

#[tokio::test]
async fn kill_9_while_a_large_transaction_sent_whole_is_applied_early_resumes_exactly_once() {
    kill_9_during_large_transactions(PgOptions::new(13)).await;
}

/// Three large transactions, each followed by a kill -9 once spilling began (streamed from 15 with a
/// small `logical_decoding_work_mem`, sent whole from 13): blue and green end equal.
async fn kill_9_during_large_transactions(blue_options: PgOptions) {
    let (blue, green, db) = pair_with(
        blue_options,
        "CREATE TABLE big (id int PRIMARY KEY, pad text); CREATE TABLE counter (id int PRIMARY KEY, n int); INSERT INTO counter VALUES (1, 0)",
    )
    .await;
    let (_dir, mut t) = running_with(&blue, &green, &db, BUDGET_1MIB).await;
    for round in 0..3 {
        let from = round * 60_000;
        blue.execute(
            &db,
            &format!("INSERT INTO big SELECT g, repeat('k', 60) FROM generate_series({}, {}) g; UPDATE counter SET n = n + 1", from + 1, from + 60_000),
        )
        .await
        .expect("large");
        blue.execute(&db, "UPDATE counter SET n = n + 1").await.expect("small");
        // Kill once the spill has begun: at some point of spilling, reading back or applying.
        let deadline = Instant::now() + WAIT;
        while spilled(&t) == 0 {
            assert!(Instant::now() < deadline, "no spill observed\n{}", t.log_text());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        t.kill9();
        t.start();
    }
    assert_converges(&blue, &green, &db, &["big", "counter"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn thousands_of_inserted_rows_with_odd_values_arrive_exactly_through_copy() {
    let (blue, green, db) = pair_with(
        PgOptions::new(15),
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
         CREATE TABLE odd (id int PRIMARY KEY, t text, a text[], j jsonb, b bytea, n numeric, f float8, ts timestamptz, \
                           iv interval, m mood, g int GENERATED ALWAYS AS (id * 2) STORED)",
    )
    .await;
    let (_dir, mut t) = running_with(&blue, &green, &db, "").await;
    blue.execute(
        &db,
        r#"INSERT INTO odd (id, t, a, j, b, n, f, ts, iv, m)
           SELECT g,
                  CASE g % 6 WHEN 0 THEN E'tab\there' WHEN 1 THEN E'new\nline\\back\r' WHEN 2 THEN NULL WHEN 3 THEN '\N'
                             WHEN 4 THEN 'ünïcödé ✓' ELSE '' END,
                  ARRAY['a"b', NULL, 'c,d', E'x\\y', 'NULL', E'tab\t'],
                  jsonb_build_object('k', g, 's', E'q"\n\\'),
                  decode(md5(g::text), 'hex'),
                  CASE WHEN g % 7 = 0 THEN 'NaN'::numeric ELSE g / 3.0 END,
                  CASE g % 3 WHEN 0 THEN 'Infinity'::float8 WHEN 1 THEN '-Infinity'::float8 ELSE g * 1.5 END,
                  '2024-02-29 23:59:59.123456+00'::timestamptz + g * interval '1 min',
                  g * interval '1 day 1 sec',
                  (ARRAY['sad', 'ok', 'happy']::mood[])[g % 3 + 1]
           FROM generate_series(1, 3000) g"#,
    )
    .await
    .expect("insert");
    assert_converges(&blue, &green, &db, &["odd"], &mut t).await;
    assert!(t.log_text().contains("inserting with COPY"), "the large insert should have gone through COPY\n{}", t.log_text());
    assert_eq!(t.sigterm(), Some(0));
}
