//! Writes that are not turnout's (`[watch]`), end to end on real servers behind pgbouncer with an
//! application writing: one on green before the cutover blocks it until acknowledged; one on blue in
//! the rollback window (a client that bypassed the switch) blocks `turnout finish` until
//! acknowledged; turnout's own writes — the forward apply on green, the reverse apply on blue — are
//! never counted.

use crate::common;

use common::{pair, Turnout, Writer};
use std::time::Duration;

const SCHEMA: &str = "CREATE TABLE t (id bigserial PRIMARY KEY, note text); CREATE TABLE other (k text, n int, PRIMARY KEY (k, n))";

/// A client writing one row per transaction until told to stop; records the ids acknowledged
/// (simple queries, as behind pgbouncer they must be: [`common::first_value`]).
fn start_writer(url: String) -> Writer<i64> {
    Writer::start(move |log| async move {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect through pgbouncer");
        tokio::spawn(conn);
        while log.running() {
            match c.simple_query("INSERT INTO t (note) VALUES ('w') RETURNING id").await {
                Ok(messages) => {
                    if let Some(id) = common::first_value(&messages) {
                        log.acked(id);
                    }
                }
                Err(err) => log.failed(err.as_db_error().map_or_else(|| err.to_string(), |d| format!("{} ({})", d.message(), d.code().code()))),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

async fn ids(c: &tokio_postgres::Client) -> Vec<i64> {
    c.query("SELECT id FROM t WHERE note = 'w' ORDER BY id", &[]).await.expect("ids").iter().map(|r| r.get(0)).collect()
}

/// `side`'s watch on `/status` once `check` holds for it.
async fn watch_until(t: &mut Turnout, side: &str, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    common::wait_for(t, what, |t| t.status().map(|v| v["rogue_writes"][side].clone()).filter(|w| check(w))).await
}

#[allow(clippy::too_many_lines, reason = "a scenario reads best top to bottom, step by step")]
#[tokio::test]
async fn writes_that_are_not_turnouts_block_the_cutover_on_green_and_finish_on_blue_until_acknowledged() {
    let (blue, green, db) = pair(SCHEMA).await;
    // Green's decoding spills (or would stream) every transaction over 64 kB: turnout's own large
    // transactions must still be known as its own.
    green.execute("postgres", "ALTER SYSTEM SET logical_decoding_work_mem = '64kB'").await.expect("work mem");
    green.execute("postgres", "SELECT pg_reload_conf()").await.expect("reload");
    let keys = "fence = \"pgbouncer\"\nswitch = \"pgbouncer\"\n";
    let (bouncer, green_url, toml) = common::behind_pgbouncer(&blue, &green, &db, keys, "[alerts]\nlag_warning = \"30s\"\n[watch]\ngreen = true\n").await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    let writer = start_writer(bouncer.url(&db));
    writer.wait_for(100).await;
    watch_until(&mut t, "green", "green's watch", |w| w["state"] == "watching").await;
    // One large transaction on blue, applied on green as one transaction of turnout's.
    blue.execute(&db, "INSERT INTO t (note) SELECT repeat('x', 200) FROM generate_series(1, 5000)").await.expect("large transaction");
    let b = blue.connect(&db).await.expect("blue");
    let lsn: String = b.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.expect("lsn").get(0);
    common::wait_for(&mut t, "green to apply the large transaction", |t| {
        t.status().filter(|v| v["applied_position"].as_str().and_then(|a| a.parse::<turnout_decoders::Lsn>().ok()) >= lsn.parse().ok())
    })
    .await;
    let green_lsn: String = connect(&green_url).await.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.expect("lsn").get(0);
    let watched = watch_until(&mut t, "green", "green's watch past the large transaction", |w| {
        w["read_through"].as_str().and_then(|r| r.parse::<turnout_decoders::Lsn>().ok()) >= green_lsn.parse().ok()
    })
    .await;
    assert_eq!(watched["seen"], 0, "turnout's own apply on green, large transactions too, is not foreign: {watched}");

    // A migration run on the wrong side: two rows written on green directly.
    let g = connect(&green_url).await;
    g.batch_execute("INSERT INTO t (id, note) VALUES (1000000, 'rogue'); INSERT INTO other VALUES ('it''s', 7)").await.expect("rogue rows");
    let watched = watch_until(&mut t, "green", "the rogue rows on green", |w| w["seen"] == 2).await;
    assert_eq!(watched["unacknowledged"][0]["key"], "(id=1000000)", "{watched}");
    assert_eq!(watched["unacknowledged"][1]["key"], "(k='it''s', n=7)", "{watched}");
    common::wait_for(&mut t, "the rogue_writes alert", |t| t.status().filter(|v| v["alerts"]["rogue_writes"] == "critical")).await;
    let metrics = t.metrics();
    assert!(metrics.contains("turnout_rogue_writes_unacknowledged{side=\"green\"} 2"), "{metrics}");
    assert!(t.log_text().contains("a write on green that turnout did not make"), "{}", t.log_text());

    let lag = ["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];
    let (code, out) = common::turnout_command(&t, "cutover", &lag).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 writes on green did not come from turnout: public.t (id=1000000) insert, public.other (k='it''s', n=7) insert"), "{out}");
    // The operator repairs green (a write the watch sees too), lists and acknowledges.
    g.batch_execute("DELETE FROM t WHERE id = 1000000; DELETE FROM other").await.expect("repair");
    watch_until(&mut t, "green", "the repair on green", |w| w["seen"] == 4).await;
    let (code, out) = common::turnout_command(&t, "rogue-writes", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("green: watching") && out.contains("delete public.t (id=1000000)"), "{out}");
    let (code, out) = common::turnout_command(&t, "rogue-writes", &["--acknowledge"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("acknowledged 4 writes on green"), "{out}");
    common::wait_for(&mut t, "the alert to clear", |t| t.status().filter(|v| v["alerts"]["rogue_writes"] == "ok")).await;
    // The watch slot dropped behind turnout's back (a DBA, a failover): what was not read is a gap the
    // operator must acknowledge too.
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let _ = g
            .batch_execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name LIKE '%\\_watch' AND active_pid IS NOT NULL")
            .await;
        if g.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE '%\\_watch'").await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the watch slot could not be dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let watched = watch_until(&mut t, "green", "the gap", |w| w["seen"] == 5).await;
    assert_eq!(watched["unacknowledged"][0]["kind"], "gap", "{watched}");
    let (code, out) = common::turnout_command(&t, "rogue-writes", &["--acknowledge"]).await;
    assert!(code == 0 && out.contains("acknowledged 1 writes on green") && out.contains("was not read"), "{out}");
    watch_until(&mut t, "green", "the watch reading again", |w| w["state"] == "watching").await;

    // The cutover: inside the pause the watch reads green past a mark before the switch.
    let report = dir.path().join("cutover.json").display().to_string();
    let (code, out) = common::turnout_command(&t, "cutover", &[&["--report", &report][..], &lag[..]].concat()).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("green watched"), "the pause names the watch's step: {out}");
    eprintln!("{}", out.lines().filter(|l| l.contains("write pause")).collect::<Vec<_>>().join("\n"));
    let certificate = common::intact_certificate(std::path::Path::new(&report));
    let rogue = &certificate["rogue_writes"];
    assert_eq!(
        (rogue["watched"].as_bool(), rogue["side"].as_str(), rogue["seen"].as_u64(), rogue["acknowledged"].as_u64()),
        (Some(true), Some("green"), Some(5), Some(5)),
        "{certificate}"
    );
    // Green takes writes now: its watch slot is gone; blue's is the forward slot, kept.
    common::wait_for(&mut t, "the reverse stream", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await;
    let slots: i64 = g.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE '%\\_watch'", &[]).await.expect("slots").get(0);
    assert_eq!(slots, 0);
    let watched = watch_until(&mut t, "blue", "blue's watch", |w| w["state"] == "watching").await;
    assert_eq!(watched["seen"], 0, "{watched}");

    // The application writes on green; the reverse stream brings it to blue — not foreign there.
    let n = writer.count();
    writer.wait_for(n + 100).await;
    let b = blue.connect(&db).await.expect("blue");
    let newest: i64 = g.query_one("SELECT max(id) FROM t", &[]).await.expect("max").get(0);
    let deadline = std::time::Instant::now() + common::WAIT;
    while b.query_opt("SELECT 1 FROM t WHERE id = $1", &[&newest]).await.expect("blue").is_none() {
        assert!(std::time::Instant::now() < deadline, "the reverse stream must bring green's writes to blue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A client that bypassed the switch writes on blue: a split brain.
    b.batch_execute("INSERT INTO t (id, note) VALUES (2000000, 'split')").await.expect("split write");
    let watched = watch_until(&mut t, "blue", "the split-brain write", |w| w["seen"] == 1).await;
    assert_eq!(watched["unacknowledged"][0]["key"], "(id=2000000)", "{watched}");
    let (code, out) = common::turnout_command(&t, "finish", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 writes on blue did not come from turnout: public.t (id=2000000) insert"), "{out}");
    let (code, out) = common::turnout_command(&t, "rogue-writes", &["--acknowledge"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = common::turnout_command(&t, "finish", &[]).await;
    assert_eq!(code, 0, "{out}");
    // Green's watch closed at the switch: the application's writes there since are not foreign.
    let watched = t.status().expect("status")["rogue_writes"]["green"].clone();
    assert_eq!((watched["seen"].as_u64(), watched["state"].as_str()), (Some(5), Some("closed")), "{watched}");
    // Only the bypassing write was counted on blue, however many the reverse stream applied there.
    let watched = t.status().expect("status")["rogue_writes"]["blue"].clone();
    assert_eq!(watched["seen"], 1, "{watched}");
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let left: i64 = b.query_one("SELECT count(*) FROM pg_replication_slots", &[]).await.expect("slots").get(0);
        if left == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the forward slot on blue must go when the window ends");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (acked, errors) = writer.finish().await;
    assert!(errors.is_empty(), "client errors: {errors:?}");
    let mut want = acked;
    want.sort_unstable();
    assert_eq!(ids(&g).await, want, "green must hold exactly the acknowledged rows");
    assert_eq!(t.sigterm(), Some(0));
}

/// A watch that fails for a reason only the operator can fix — green cannot decode its own log
/// (`wal_level = replica`) — stops as `failed` with the error and its advice instead of retrying
/// it forever; replication goes on, and the cutover is refused while green is not watched.
#[tokio::test]
async fn a_watch_that_cannot_work_stops_failed_with_its_fix_and_is_not_retried() {
    let green = turnout_testbed::PgOptions::new(17).conf("wal_level = replica");
    let (blue, green, db) = common::pair_between(turnout_testbed::PgOptions::new(15), green, SCHEMA).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[watch]\ngreen = true\n[cutover]\nreverse = false\n");
    t.start();
    let w = watch_until(&mut t, "green", "the watch stopping as failed", |w| w["state"] == "failed").await;
    let error = w["error"].as_str().unwrap_or_default();
    assert!(error.contains("wal_level = logical") && error.contains("fix what the error names"), "{w}");
    // Replication goes on without it.
    let b = connect(&blue.url(&db)).await;
    b.execute("INSERT INTO t (note) VALUES ('after')", &[]).await.expect("insert on blue");
    let g = connect(&green.url(&db)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while g.query("SELECT 1 FROM t WHERE note = 'after'", &[]).await.expect("read green").is_empty() {
        assert!(std::time::Instant::now() < deadline, "replication stopped with the watch\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stopped once, not retried; still failed.
    let log = t.log_text();
    assert_eq!(log.matches("that are not turnout's stopped").count(), 1, "{log}");
    assert!(!log.contains("that are not turnout's failed"), "a fatal failure must not be retried\n{log}");
    assert_eq!(t.status().map(|v| v["rogue_writes"]["green"]["state"].clone()), Some(serde_json::json!("failed")));
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "10s"]).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(t.sigterm(), Some(0));
}
