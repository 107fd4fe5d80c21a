//! Faults injected on purpose — a sink failing on its Nth batch, commit or flush; the network to blue or
//! green cut, stalled past blue's `wal_sender_timeout`, or slowed to a 2 ms round trip — and faults of
//! the core found in review: memory growing with empty transactions, a schema change of a rolled-back
//! streamed transaction reaching green, an apply session outliving a failed pipeline, a network blip
//! during the snapshot being fatal. Every test ends with blue and green compared row by row, and
//! keyless tables prove nothing was applied twice.

use crate::common;

use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout::config::Config;
use turnout::testing::pg::PgAdmin;
use turnout::testing::StateStore;
use turnout::testing::Status;
use turnout::testing::{Names, SourceAdmin};
use turnout_decoders::Position;
use turnout_sinks::pg::PgSink;
use turnout_sinks::Parallel;
use turnout_testbed::fault::{FaultPlan, FaultySink};
use turnout_testbed::{PgOptions, PgServer, Proxy};

/// PostgreSQL administration whose green sessions fail as `plan` says.
struct FaultyAdmin {
    inner: PgAdmin,
    plan: Arc<FaultPlan>,
}

impl SourceAdmin for FaultyAdmin {
    type Stream = <PgAdmin as SourceAdmin>::Stream;
    type Sink = FaultySink<Parallel<PgSink>>;
    type Early = <PgAdmin as SourceAdmin>::Early;
    type Copier = <PgAdmin as SourceAdmin>::Copier;

    fn names(&self) -> &Names {
        self.inner.names()
    }

    async fn prepare(&self, state: &StateStore, status: &Arc<Status>) -> Result<(), turnout::Error> {
        self.inner.prepare(state, status).await
    }

    async fn open_sink(&self) -> Result<Self::Sink, turnout::Error> {
        Ok(FaultySink::new(self.inner.open_sink().await?, Arc::clone(&self.plan)))
    }

    fn open_early(&self) -> Self::Early {
        self.inner.open_early()
    }

    fn copier(&self) -> Result<Self::Copier, turnout::Error> {
        self.inner.copier()
    }

    async fn open_stream(&self, from: &Position) -> Result<Self::Stream, turnout::Error> {
        self.inner.open_stream(from).await
    }

    fn heartbeat(&self, status: Arc<Status>, shutdown: tokio::sync::watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.inner.heartbeat(status, shutdown)
    }

    async fn check(&self) -> turnout::check::Report {
        self.inner.check().await
    }

    async fn verify(&self, only: Option<&str>) -> Result<Vec<turnout::verify::TableCheck>, turnout::Error> {
        self.inner.verify(only).await
    }

    async fn teardown(&self) -> Result<Vec<String>, turnout::Error> {
        self.inner.teardown().await
    }
}

fn config(dir: &std::path::Path, source: &str, target: &str, extra: &str) -> Config {
    let text = format!(
        "[source]\nurl = \"{source}\"\n[target]\nurl = \"{target}\"\n[state]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{}\"\n{extra}\n",
        dir.join("state").display(),
        turnout_testbed::free_port()
    );
    Config::parse(&text, |_| None).expect("config")
}

/// A proxied URL: `server`'s superuser URL through `proxy`.
fn via(proxy: &Proxy, server: &PgServer, db: &str) -> String {
    format!("postgres://postgres:{}@127.0.0.1:{}/{db}?sslmode=disable", server.password(), proxy.port())
}

async fn keyless_count(server: &PgServer, db: &str) -> (i64, i64) {
    let c = server.connect(db).await.expect("connect");
    let r = c.query_one("SELECT count(*), count(DISTINCT n) FROM events", &[]).await.expect("count");
    (r.get(0), r.get(1))
}

const EVENTS: &str = "CREATE TABLE events (n int, note text); ALTER TABLE events REPLICA IDENTITY FULL";

#[tokio::test]
async fn a_sink_failing_on_its_nth_batch_commit_and_flush_loses_and_doubles_nothing() {
    let (blue, green, db) = pair(EVENTS).await;
    let dir = tempfile::tempdir().expect("tmp");
    // Small batches so the faults land in the middle of the stream.
    let cfg = config(dir.path(), &blue.url(&db), &green.url(&db), "[apply]\nbatch_rows = 20\nbatch_delay = \"5ms\"");
    let state = StateStore::open(&cfg.state.dir).expect("state");
    let plan = FaultPlan::new(4, 7, 3);
    let admin = FaultyAdmin { inner: PgAdmin::new(&cfg, Names::for_stream(&state.stream_id().expect("id"))), plan: Arc::clone(&plan) };
    let status = Arc::new(Status::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = {
        let (cfg, state, status) = (cfg.clone(), state.clone(), Arc::clone(&status));
        let channels = Arc::new(turnout::testing::Channels::default());
        tokio::spawn(async move { turnout::run::replicate(&admin, &cfg, &state, &status, &channels, shutdown).await })
    };
    let writer = blue.connect(&db).await.expect("writer");
    // At least 600 rows, and on until every planned fault was injected: rows written before the
    // snapshot (slow on a loaded machine) arrive by copy, not by batches that could fail.
    let injected = || plan.injected.load(std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + WAIT;
    let mut n: i64 = 0;
    while n < 600 || (injected() < 3 && Instant::now() < deadline && !run.is_finished()) {
        n += 1;
        writer.batch_execute(&format!("INSERT INTO events VALUES ({n}, 'x')")).await.expect("write");
        if n % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    while keyless_count(&green, &db).await.0 < n {
        assert!(Instant::now() < deadline && !run.is_finished(), "green did not catch up: {:?}", status.snapshot().last_error);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    run.await.expect("task").expect("replicate ends cleanly on shutdown");
    assert_eq!(injected(), 3, "every planned fault was injected");
    assert_eq!(keyless_count(&green, &db).await, (n, n));
}

#[tokio::test]
async fn cutting_the_network_to_blue_mid_stream_and_to_green_mid_commit_loses_and_doubles_nothing() {
    let (blue, green, db) = pair(EVENTS).await;
    let to_blue = Proxy::start(blue.port()).expect("proxy");
    let to_green = Proxy::start(green.port()).expect("proxy");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &via(&to_blue, &blue, &db), &via(&to_green, &green, &db));
    t.start();
    wait_streaming(&mut t).await;
    let writer = blue.connect(&db).await.expect("writer");
    let mut n = 0;
    for round in 0..6 {
        // Batches of 2,000 rows keep green committing when the cut lands.
        n += 2000;
        writer.batch_execute(&format!("INSERT INTO events SELECT g, 'r{round}' FROM generate_series({}, {n}) g", n - 1999)).await.expect("write");
        for _ in 0..20 {
            n += 1;
            writer.batch_execute(&format!("INSERT INTO events VALUES ({n}, 'single')")).await.expect("write");
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        if round % 2 == 0 {
            to_blue.cut();
        } else {
            to_green.cut();
        }
    }
    assert_converges(&blue, &green, &db, &["events"], &mut t).await;
    assert_eq!(keyless_count(&green, &db).await, (i64::from(n), i64::from(n)));
    assert!(to_blue.accepted() > 1 && to_green.accepted() > 1, "turnout reconnected after the cuts");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn a_stall_longer_than_wal_sender_timeout_is_detected_and_the_stream_resumes() {
    let (blue, green, db) = pair_between(PgOptions::new(15).conf("wal_sender_timeout = '2s'"), PgOptions::new(17), EVENTS).await;
    let to_blue = Proxy::start(blue.port()).expect("proxy");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &via(&to_blue, &blue, &db), &green.url(&db), "");
    let text = std::fs::read_to_string(t.config_path()).expect("config");
    std::fs::write(t.config_path(), text.replacen("[source]\n", "[source]\nreceive_timeout = \"3s\"\n", 1)).expect("config");
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(&db, "INSERT INTO events SELECT g, 'before' FROM generate_series(1, 100) g").await.expect("write");
    assert_converges(&blue, &green, &db, &["events"], &mut t).await;
    to_blue.stall(true);
    blue.execute(&db, "INSERT INTO events SELECT g, 'during' FROM generate_series(101, 200) g").await.expect("write");
    // Past both blue's wal_sender_timeout and turnout's receive_timeout: each side gives up.
    tokio::time::sleep(Duration::from_secs(6)).await;
    to_blue.stall(false);
    blue.execute(&db, "INSERT INTO events SELECT g, 'after' FROM generate_series(201, 300) g").await.expect("write");
    assert_converges(&blue, &green, &db, &["events"], &mut t).await;
    assert_eq!(keyless_count(&green, &db).await, (300, 300));
    assert!(t.log_text().contains("presumed dead") || t.log_text().contains("closed"), "{}", t.log_text());
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_two_millisecond_round_trip_to_green_changes_nothing_but_speed() {
    let (blue, green, db) =
        pair("CREATE TABLE acct (id int PRIMARY KEY, balance numeric(12,2)); CREATE TABLE events (n int, note text); ALTER TABLE events REPLICA IDENTITY FULL")
            .await;
    let to_green = Proxy::start(green.port()).expect("proxy");
    to_green.set_latency(Duration::from_millis(1));
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &via(&to_green, &green, &db));
    t.start();
    wait_streaming(&mut t).await;
    let writer = blue.connect(&db).await.expect("writer");
    writer.batch_execute("INSERT INTO acct SELECT g, 0 FROM generate_series(1, 100) g").await.expect("seed");
    for i in 0..300 {
        writer
            .batch_execute(&format!("BEGIN; UPDATE acct SET balance = balance + 1 WHERE id = {}; INSERT INTO events VALUES ({i}, 'x'); COMMIT", i % 100 + 1))
            .await
            .expect("write");
    }
    assert_converges(&blue, &green, &db, &["acct", "events"], &mut t).await;
    assert_eq!(keyless_count(&green, &db).await, (300, 300));
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_schema_change_in_a_streamed_transaction_that_rolls_back_never_reaches_green() {
    let (blue, green, db) =
        pair_between(PgOptions::new(16).conf("logical_decoding_work_mem = '64kB'"), PgOptions::new(17), "CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO t VALUES (1, 'one')").await.expect("row");
    // Large enough to be streamed before it ends; then rolled back.
    blue.execute(&db, "BEGIN; ALTER TABLE t ADD COLUMN extra int; INSERT INTO t SELECT g, 'x', g FROM generate_series(100, 5100) g; ROLLBACK")
        .await
        .expect("rolled back");
    blue.execute(&db, "INSERT INTO t VALUES (2, 'two')").await.expect("row");
    // The same change committed does arrive.
    blue.execute(&db, "BEGIN; ALTER TABLE t ADD COLUMN kept int; INSERT INTO t SELECT g, 'y', g FROM generate_series(10000, 15000) g; COMMIT")
        .await
        .expect("committed");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let columns: Vec<String> = g
        .query("SELECT attname::text FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", &[])
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, ["id", "v", "kept"], "the rolled-back column reached green");
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn empty_transactions_count_against_the_memory_budget_while_green_is_blocked() {
    // PostgreSQL 14 sends a BEGIN/COMMIT pair for every transaction, even one touching no published
    // table (15+ skips them): 200,000 of them arrive while green cannot apply anything.
    let (blue, green, db) = pair_between(
        PgOptions::new(14),
        PgOptions::new(17),
        "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other (n int);
         CREATE PROCEDURE churn(count int) LANGUAGE plpgsql AS $$ BEGIN FOR i IN 1..count LOOP INSERT INTO other VALUES (i); COMMIT; END LOOP; END $$",
    )
    .await;
    let (_dir, mut t) = running_with(&blue, &green, &db, "[tables]\ninclude = [\"public.t\"]\n[apply]\nmemory_budget = \"1MiB\"\n").await;
    let g = green.connect(&db).await.expect("green");
    g.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    blue.execute(&db, "INSERT INTO t VALUES (1)").await.expect("blocked row");
    blue.execute(&db, "CALL churn(200000)").await.expect("churn");
    // Everything blue sent is the blocked row and 200,000 empty transactions; turnout must stop
    // receiving once they fill the budget.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut most = 0;
    while Instant::now() < deadline {
        if let Some(s) = t.status() {
            let pending = s["pending_transactions"].as_u64().unwrap_or(0);
            let buffered = s["buffered_bytes"].as_u64().unwrap_or(0);
            most = most.max(pending);
            // Receiving stops once the budget is reached: at most one message beyond it.
            assert!(buffered <= (1 << 20) + (16 << 10), "buffered {buffered} bytes, over the 1 MiB budget");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(most > 0 && most < 10_000, "{most} transactions held while green was blocked (budget 1 MiB)");
    g.batch_execute("COMMIT").await.expect("unlock");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_failed_pipeline_stops_its_apply_session_on_green_before_retrying() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY)").await;
    let to_blue = Proxy::start(blue.port()).expect("proxy");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &via(&to_blue, &blue, &db), &green.url(&db));
    t.start();
    wait_streaming(&mut t).await;
    let g = green.connect(&db).await.expect("green");
    g.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    blue.execute(&db, "INSERT INTO t VALUES (1)").await.expect("row");
    let observer = green.connect(&db).await.expect("observer");
    let blocked = "SELECT pid FROM pg_stat_activity WHERE application_name = 'turnout' AND wait_event_type = 'Lock'";
    let deadline = Instant::now() + Duration::from_secs(30);
    let old_pid: i32 = loop {
        if let Some(row) = observer.query_opt(blocked, &[]).await.expect("activity") {
            break row.get(0);
        }
        assert!(Instant::now() < deadline, "the apply never blocked on the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The source connection breaks while green is stuck: the pipeline fails and must not leave the
    // blocked apply session behind (it would hold green's replication origin, so no retry could bind
    // it, until someone released the lock).
    to_blue.cut();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let alive: i64 = observer.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&old_pid]).await.expect("activity").get(0);
        if alive == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the apply session {old_pid} still runs on green after the pipeline failed\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    g.batch_execute("COMMIT").await.expect("unlock");
    blue.execute(&db, "INSERT INTO t VALUES (2)").await.expect("row");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

/// Blue refusing the first connections while turnout sets up (a restart, a failover in progress) is
/// retried, not fatal: the set-up starts over and replication proceeds. (The snapshot, streaming and
/// the cutover's checks have their own tests: below, above, and in `cutover.rs`.)
#[tokio::test]
async fn connections_refused_while_setting_up_are_retried_not_fatal() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t SELECT g, 'row' FROM generate_series(1, 100) g").await;
    let to_blue = Proxy::start(blue.port()).expect("proxy");
    to_blue.refuse_next(3);
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &via(&to_blue, &blue, &db), &green.url(&db));
    // No heartbeat connection competes for the refusals.
    let text = std::fs::read_to_string(t.config_path()).expect("config");
    std::fs::write(t.config_path(), text.replacen("[source]\n", "[source]\nheartbeat_interval = \"1h\"\n", 1)).expect("config");
    t.start();
    wait_streaming(&mut t).await;
    assert_eq!(to_blue.refused(), 3);
    assert!(t.log_text().contains("retrying in"), "{}", t.log_text());
    blue.execute(&db, "INSERT INTO t VALUES (101, 'after')").await.expect("insert");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_network_blip_during_the_snapshot_is_retried_not_fatal() {
    let (blue, green, db) = pair(
        "CREATE TABLE big (id int PRIMARY KEY, pad text);
         INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 600000) g",
    )
    .await;
    let to_blue = Proxy::start(blue.port()).expect("proxy");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &via(&to_blue, &blue, &db), &green.url(&db));
    t.start();
    wait_for(&mut t, "the snapshot to copy rows", |t| {
        let s = t.status()?;
        (s["phase"] == "snapshot" && s["tables"]["public.big"]["rows"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    to_blue.cut();
    wait_streaming(&mut t).await;
    assert_converges(&blue, &green, &db, &["big"], &mut t).await;
    assert!(t.log_text().contains("retrying"), "{}", t.log_text());
    assert_eq!(t.sigterm(), Some(0));
}
