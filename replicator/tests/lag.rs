//! Lag in seconds (blue's clock, heartbeats) and bytes, slot health, and the idle slot advancing on
//! heartbeats — against real servers and the real `turnout` binary.

use crate::common;

use common::{assert_converges, pair, running, Turnout, WAIT};
use std::time::{Duration, Instant};

fn lag_seconds(t: &Turnout) -> Option<f64> {
    t.status().and_then(|s| s["lag_seconds"].as_f64())
}

/// Polls `/status` until `pred` holds for the lag, or fails with `what`.
async fn wait_lag(t: &mut Turnout, what: &str, pred: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(lag) = lag_seconds(t) {
            if pred(lag) {
                return lag;
            }
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "{what}: lag_seconds = {:?}\n{}", lag_seconds(t), t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metrics(t: &Turnout) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", t.port())) else { return String::new() };
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r
}

#[tokio::test]
async fn lag_is_measured_on_blues_clock_grows_while_green_is_blocked_and_recovers() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    // Idle: heartbeats keep lag at about one heartbeat interval plus transport.
    wait_lag(&mut t, "idle lag should settle under 1 s", |l| l < 1.0).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let m = metrics(&t);
        if m.contains("\nturnout_lag_seconds ") && m.contains("\nturnout_slot_retained_wal_bytes ") {
            break;
        }
        assert!(Instant::now() < deadline, "lag and slot metrics missing:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Block apply on green with a lock; blue keeps committing.
    let g = green.connect(&db).await.expect("green");
    g.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    blue.execute(&db, "INSERT INTO t VALUES (1, 'a')").await.expect("insert");
    let grown = wait_lag(&mut t, "lag should grow while green is blocked", |l| l >= 2.0).await;
    let s = t.status().expect("status");
    assert!(s["lag_bytes"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(grown < 60.0, "lag {grown} s is implausibly large: it must count from the blocked transaction's commit");
    g.batch_execute("ROLLBACK").await.expect("unlock");
    wait_lag(&mut t, "lag should recover once green is unblocked", |l| l < 1.0).await;
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn heartbeats_let_an_idle_slot_advance() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY)").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    let b = blue.connect(&db).await.expect("blue");
    let confirmed = || async {
        let lsn: String =
            b.query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name LIKE 'turnout_%'", &[]).await.expect("slot").get(0);
        lsn.parse::<turnout_decoders::Lsn>().expect("lsn")
    };
    let first = confirmed().await;
    // No writes at all on blue: only heartbeats move WAL, and the slot must follow them.
    let deadline = Instant::now() + WAIT;
    while confirmed().await <= first {
        assert!(Instant::now() < deadline, "the idle slot never advanced past {first}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ahead = confirmed().await;
    let current: String = b.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.expect("lsn").get(0);
    let current: turnout_decoders::Lsn = current.parse().expect("lsn");
    assert!(current.bytes_since(ahead) < 1 << 20, "slot at {ahead} lags far behind {current}");
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn on_postgresql_13_a_heartbeat_table_measures_lag_when_idle() {
    let (blue, green, db) = common::pair_with(turnout_testbed::PgOptions::new(13), "CREATE TABLE t (id int PRIMARY KEY)").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    // No writes of ours: only the heartbeat row changes, and lag stays measured and small.
    wait_lag(&mut t, "idle lag on PostgreSQL 13 should settle under 1 s", |l| l < 1.0).await;
    blue.execute(&db, "INSERT INTO t VALUES (1)").await.expect("insert");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    // The heartbeat table travels like any table.
    let g = green.connect(&db).await.expect("green");
    let rows: i64 = g.query_one("SELECT count(*) FROM public.turnout_heartbeat", &[]).await.expect("heartbeat table on green").get(0);
    assert_eq!(rows, 1);
    assert_eq!(t.sigterm(), Some(0));
}
