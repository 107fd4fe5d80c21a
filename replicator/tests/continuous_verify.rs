//! The continuous verify (`[verify] continuous = true`) against real servers while an application
//! writes: the sidecar re-verifies every table at its rows/s budget, shows the last result per table
//! on `/status` and in the metrics, satisfies `turnout cutover --verify` without the operator running
//! a verify, finds a row written on green directly (the `verify` alert, the gate refusing with its
//! key), and finds the tables equal again once green is repaired.

use crate::common;

use common::{pair, Turnout, Writer};
use std::time::Duration;

const SCHEMA: &str = "\
    CREATE TABLE t (id bigserial PRIMARY KEY, note text);\
    CREATE TABLE \"Odd Name\" (k text, n int, v jsonb, PRIMARY KEY (k, n));\
    INSERT INTO t (note) SELECT 'seed ' || g FROM generate_series(1, 6000) g;\
    INSERT INTO \"Odd Name\" SELECT 'k''' || (g % 10), g, jsonb_build_object('g', g) FROM generate_series(1, 2000) g;";

/// Rows per second the verify may compare.
const RATE: u64 = 4000;

fn start_writer(url: String) -> Writer<i64> {
    Writer::start(move |log| async move {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        while log.running() {
            match c.query_one("INSERT INTO t (note) VALUES ('w') RETURNING id", &[]).await {
                Ok(row) => log.acked(row.get(0)),
                Err(err) => log.failed(err),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// `/status`'s `continuous_verify` once `check` holds for it.
async fn verified_until(t: &mut Turnout, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    common::wait_for(t, what, |t| t.status().map(|v| v["continuous_verify"].clone()).filter(|v| check(v))).await
}

#[tokio::test]
async fn the_continuous_verify_keeps_the_gate_satisfied_at_its_budget_and_finds_a_row_written_on_green() {
    let (blue, green, db) = pair(SCHEMA).await;
    let dir = tempfile::tempdir().expect("tmp");
    let extra =
        format!("[cutover]\nfence = \"none\"\nswitch = \"none\"\n[verify]\ncontinuous = true\nrows_per_second = {RATE}\ninterval = \"1s\"\nchunk_rows = 500\n");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &extra);
    t.start();
    common::wait_streaming(&mut t).await;
    let writer = start_writer(blue.url(&db));
    writer.wait_for(50).await;

    // A whole run finishes on its own, every table equal, within its budget.
    let v = verified_until(&mut t, "a whole continuous run", |v| v["runs"].as_u64().is_some_and(|n| n >= 1)).await;
    assert_eq!(v["tables"]["public.t"]["equal"], true, "{v}");
    assert_eq!(v["tables"]["public.Odd Name"]["equal"], true, "{v}");
    let (rows, seconds) = (v["last_run_rows"].as_u64().expect("rows"), v["last_run_seconds"].as_f64().expect("seconds"));
    assert!(rows >= 8000, "every row compared: {v}");
    // The pacing is checked after each chunk: the whole run's rate stays within the budget, plus the
    // one chunk compared before the first check.
    let rate = rows as f64 / seconds;
    assert!(rate <= (RATE + 500) as f64, "{rows} rows in {seconds:.2} s = {rate:.0} rows/s over the budget {RATE}");
    eprintln!("continuous verify: {rows} rows in {seconds:.2} s = {rate:.0} rows/s (budget {RATE})");
    let metrics = t.metrics();
    assert!(metrics.contains("turnout_verify_table_equal{table=\"public.t\"} 1") && metrics.contains("turnout_verify_tables_differing 0"), "{metrics}");
    let page = t.get("/").unwrap_or_default();
    assert!(page.contains("Continuous verify"), "the status page has the card");

    // The gate is satisfied without the operator running a verify.
    let gate = ["--dry-run", "--verify", "--when-lag", "<1s", "--timeout", "60s"];
    let (code, out) = common::turnout_command(&t, "cutover", &gate).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verify gate: the live verify of 2 tables"), "{out}");

    // A row written on green directly: the next run names it, the alert fires, the gate refuses.
    let (g, conn) = tokio_postgres::connect(&green.url(&db), tokio_postgres::NoTls).await.expect("green");
    tokio::spawn(conn);
    g.batch_execute("INSERT INTO t (id, note) VALUES (1000000, 'rogue')").await.expect("rogue row");
    let v = verified_until(&mut t, "the rogue row found", |v| v["tables"]["public.t"]["equal"] == false).await;
    assert_eq!(v["tables"]["public.t"]["differences"][0], "(id=1000000) only on the target", "{v}");
    common::wait_for(&mut t, "the verify alert", |t| t.status().filter(|s| s["alerts"]["verify"] == "critical")).await;
    assert!(t.metrics().contains("turnout_verify_tables_differing 1"));
    let (code, out) = common::turnout_command(&t, "cutover", &gate).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(id=1000000) only on the target"), "{out}");

    // Repaired: a later run finds the tables equal again.
    g.batch_execute("DELETE FROM t WHERE id = 1000000").await.expect("repair");
    verified_until(&mut t, "the tables equal again", |v| v["tables"]["public.t"]["equal"] == true).await;
    common::wait_for(&mut t, "the alert to clear", |t| t.status().filter(|s| s["alerts"]["verify"] == "ok")).await;
    let (code, out) = common::turnout_command(&t, "cutover", &gate).await;
    assert_eq!(code, 0, "{out}");

    let (_, errors) = writer.finish().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(t.sigterm(), Some(0));
}

/// `(kind, rows compared)` of the last run, from `continuous_verify`.
fn last_run(v: &serde_json::Value) -> (String, u64) {
    (v["last_run"].as_str().unwrap_or_default().to_owned(), v["last_run_rows"].as_u64().unwrap_or_default())
}

#[tokio::test]
async fn between_whole_runs_only_the_chunks_the_stream_changed_are_compared_again() {
    const CHANGED: &str = "\
        CREATE TABLE c (id int PRIMARY KEY, note text);\
        CREATE TABLE s (k text PRIMARY KEY, n int);\
        INSERT INTO c SELECT g, 'seed ' || g FROM generate_series(1, 2000) g;\
        INSERT INTO s SELECT 'k' || g, g FROM generate_series(1, 300) g;";
    let (blue, green, db) = pair(CHANGED).await;
    let dir = tempfile::tempdir().expect("tmp");
    let extra = "[cutover]\nfence = \"none\"\nswitch = \"none\"\n[verify]\ncontinuous = true\nrows_per_second = 50000\ninterval = \"200ms\"\n\
                 chunk_rows = 100\nwhole_every = \"30m\"\n";
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), extra);
    t.start();
    common::wait_streaming(&mut t).await;
    let v = verified_until(&mut t, "a whole run", |v| v["runs"].as_u64().is_some_and(|n| n >= 1)).await;
    let (kind, whole_rows) = last_run(&v);
    assert_eq!((kind.as_str(), whole_rows), ("whole", 2300), "{v}");

    // The first change to a table after a stream starts compares it whole once (its schema is
    // announced then, and may have changed since the whole run).
    let (b, conn) = tokio_postgres::connect(&blue.url(&db), tokio_postgres::NoTls).await.expect("blue");
    tokio::spawn(conn);
    b.batch_execute("UPDATE c SET note = 'first change' WHERE id = 1500").await.expect("first change");
    let v = verified_until(&mut t, "the first re-check", |v| v["rechecks"].as_u64().is_some_and(|n| n >= 1)).await;
    assert_eq!(last_run(&v), ("changes".to_owned(), 2000), "the table compared whole: {v}");

    // Two rows changed on green directly, in different chunks: id=6 shares a chunk with id=5, which
    // the application then changes on blue; id=1950 is in a chunk nothing changes.
    let (g, conn) = tokio_postgres::connect(&green.url(&db), tokio_postgres::NoTls).await.expect("green");
    tokio::spawn(conn);
    g.batch_execute("UPDATE c SET note = 'green only' WHERE id IN (6, 1950)").await.expect("green rows");
    b.batch_execute("UPDATE c SET note = 'changed on blue' WHERE id = 5").await.expect("blue row");

    // A re-check of the changed chunk alone finds id=6, and only it.
    let v = verified_until(&mut t, "the changed chunk re-checked", |v| v["tables"]["public.c"]["equal"] == false).await;
    let (kind, rows) = last_run(&v);
    assert_eq!(kind, "changes", "{v}");
    assert!(v["rechecks"].as_u64().is_some_and(|n| n >= 2), "{v}");
    assert!(rows <= 200, "a re-check compares the changed chunk, not the {whole_rows} rows of a whole run: {rows} rows ({v})");
    assert_eq!(v["tables"]["public.c"]["differences"], serde_json::json!(["(id=6) changed"]), "{v}");
    assert_eq!(v["tables"]["public.s"]["equal"], true, "{v}");
    assert_eq!(v["tables"]["public.c"]["source_rows"], 2000, "the table's counts are the whole run's with the chunk's replaced: {v}");
    eprintln!("continuous verify: a whole run compared {whole_rows} rows, the re-check of what changed {rows}");
    assert!(t.metrics().contains("turnout_verify_rechecks_total"), "the metric is exported");
    // The gate reads the merged result, aged by the whole run: it refuses naming the row.
    let gate = ["--dry-run", "--verify", "--when-lag", "<1s", "--timeout", "60s"];
    let (code, out) = common::turnout_command(&t, "cutover", &gate).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(id=6) changed"), "{out}");

    // A table that differs is compared whole until it is equal: repairing id=6 uncovers id=1950,
    // which no re-check of the changed chunk could see.
    g.batch_execute("UPDATE c SET note = 'seed 6' WHERE id = 6").await.expect("repair 6");
    let v = verified_until(&mut t, "id=1950 found", |v| v["tables"]["public.c"]["differences"] == serde_json::json!(["(id=1950) changed"])).await;
    assert_eq!(v["tables"]["public.c"]["equal"], false, "{v}");
    g.batch_execute("UPDATE c SET note = 'seed 1950' WHERE id = 1950").await.expect("repair 1950");
    verified_until(&mut t, "equal again", |v| v["tables"]["public.c"]["equal"] == true).await;
    let (code, out) = common::turnout_command(&t, "cutover", &gate).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.sigterm(), Some(0));
}
