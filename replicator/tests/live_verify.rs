//! `turnout verify --live` against real servers while writes go on: a correct copy compares equal at
//! one source position, rows changed or removed directly on green are named by their keys, and a
//! run killed with -9 resumes from its saved progress.

use crate::common;

use common::{assert_converges, pair, running, Turnout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout_testbed::PgServer;

const SCHEMA: &str = "\
    CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2), note text);\
    CREATE TABLE lines (order_id int, line int, sku varchar(20), qty int, PRIMARY KEY (order_id, line));\
    CREATE TABLE \"Odd Name\" (\"key col\" text PRIMARY KEY, \"Value\" jsonb, at timestamptz);\
    CREATE TABLE log (msg text, at timestamptz);\
    CREATE TABLE events (id bigint PRIMARY KEY, v int NOT NULL);\
    ALTER TABLE log REPLICA IDENTITY FULL;\
    INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.5, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('n', g % 50) END FROM generate_series(1, 20000) g;\
    INSERT INTO lines SELECT g / 4, g % 4, 'sku-' || (g % 97), g % 13 FROM generate_series(1, 8000) g;\
    INSERT INTO \"Odd Name\" SELECT 'k ' || g, jsonb_build_object('n', g, 's', 'x''y'), '2024-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 3000) g;\
    INSERT INTO log SELECT 'm' || g, now() FROM generate_series(1, 500) g;\
    INSERT INTO events SELECT g::bigint * 1000003 - 5000000000, g FROM generate_series(1, 4000) g;";

/// Writes on blue as fast as it can until stopped, away from the rows the tests change on green.
/// Counts transactions.
struct Writer {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Runs the transaction `sql(i)` on blue for i = 1, 2, … until stopped.
    async fn start(blue: &PgServer, db: &str, sql: impl Fn(i64) -> String + Send + 'static) -> Writer {
        let client = blue.connect(db).await.expect("writer");
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (s, d) = (Arc::clone(&stop), Arc::clone(&done));
        let task = tokio::spawn(async move {
            let mut i: i64 = 0;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                client.batch_execute(&sql(i)).await.expect("write on blue");
                d.fetch_add(1, Ordering::Relaxed);
            }
        });
        Writer { stop, done, task }
    }

    /// Updates of accounts below 19,000, new order lines and log entries.
    async fn mixed(blue: &PgServer, db: &str) -> Writer {
        Writer::start(blue, db, |i| {
            format!(
                "BEGIN; UPDATE accounts SET balance = balance + 1, note = 'w{i}' WHERE id = {}; \
                 INSERT INTO lines VALUES ({}, {}, 'new', 1); INSERT INTO log VALUES ('w{i}', now()); COMMIT",
                (i * 7919) % 19_000 + 1,
                10_000 + i / 4,
                i % 4
            )
        })
        .await
    }

    fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer task");
        self.done.load(Ordering::Relaxed)
    }
}

/// Runs `turnout verify --live` with `args`; exit code and stdout + stderr.
fn verify_live(t: &Turnout, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["verify", "--live", "--config"])
        .arg(t.config_path())
        .args(args)
        .output()
        .expect("verify");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_verify_under_writes_finds_a_correct_copy_equal_and_names_rows_changed_on_green() {
    let (blue, green, db) = pair(SCHEMA).await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    let writer = Writer::mixed(&blue, &db).await;
    let before = writer.count();
    let (code, out) = verify_live(&t, &["--chunk-rows", "1000"]);
    let during = writer.count() - before;
    assert_eq!(code, Some(0), "{out}\n{}", t.log_text());
    for table in ["\"public\".\"accounts\" (20000 rows, ", "\"public\".\"Odd Name\" (3000 rows, "] {
        assert!(out.contains(&format!("ok       {table}")), "{table}:\n{out}");
    }
    assert!(out.contains("ok       \"public\".\"lines\"") && out.contains("ok       \"public\".\"log\""), "{out}");
    assert!(out.contains("ok       \"public\".\"events\" (4000 rows, "), "{out}");
    assert!(out.contains("5 tables compared, 0 differ"), "{out}");
    assert!(during > 0, "blue took no writes while verify ran: the comparison was not live");
    assert!(t.log_text().contains("green holds at a live verify's position"), "{}", t.log_text());

    // Changed directly on green: one value (same row count), one row gone, rows added above and
    // below blue's keys, one value in a table whose sparse key is cut into chunks by value.
    let g = green.connect(&db).await.expect("green");
    g.batch_execute(
        "UPDATE accounts SET balance = balance + 0.01 WHERE id = 19500; DELETE FROM \"Odd Name\" WHERE \"key col\" = 'k 77'; \
         INSERT INTO accounts VALUES (25000, 'ghost', 0, NULL), (-3, 'ghost below', 0, NULL); \
         UPDATE events SET v = -1 WHERE id = -2222991669",
    )
    .await
    .expect("tamper");
    let (code, out) = verify_live(&t, &["--chunk-rows", "1000"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("DIFFERS  \"public\".\"accounts\" (blue 20000 rows, green 20002 rows; 3 rows differ)"), "{out}");
    assert!(out.contains("differs: id=19500 (columns: balance; values redacted"), "{out}");
    assert!(out.contains("only on green: id=25000") && out.contains("only on green: id=-3"), "{out}");
    assert!(out.contains("DIFFERS  \"public\".\"events\" (blue 4000 rows, green 4000 rows; 1 row differs)"), "{out}");
    assert!(out.contains("differs: id=-2222991669 (columns: v;"), "{out}");
    assert!(out.contains("DIFFERS  \"public\".\"Odd Name\" (blue 3000 rows, green 2999 rows; 1 row differs)"), "{out}");
    assert!(out.contains("missing on green: key col=k 77"), "{out}");
    assert!(out.contains("ok       \"public\".\"lines\"") && out.contains("5 tables compared, 3 differ"), "{out}");
    assert!(!out.contains("29250.0"), "values are redacted unless asked for:\n{out}");
    let (code, out) = verify_live(&t, &["--table", "public.accounts", "--show-values"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("differs: id=19500 (balance: blue 29250.00 green 29250.01)"), "{out}");

    writer.stop().await;
    // The holds left replication as it was: green still follows blue.
    g.batch_execute(
        "UPDATE accounts SET balance = balance - 0.01 WHERE id = 19500; INSERT INTO \"Odd Name\" SELECT 'k 77', jsonb_build_object('n', 77, 's', 'x''y'), \
         '2024-01-01'::timestamptz + 77 * interval '1 minute'; DELETE FROM accounts WHERE id IN (25000, -3); UPDATE events SET v = 2777 WHERE v = -1",
    )
    .await
    .expect("repair");
    blue.execute(&db, "INSERT INTO log VALUES ('last', now())").await.expect("last");
    assert_converges(&blue, &green, &db, &["accounts", "lines", "\"Odd Name\"", "log", "events"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_verify_killed_with_9_resumes_from_its_progress_and_compares_the_rest() {
    let (blue, green, db) =
        pair("CREATE TABLE big (id bigint PRIMARY KEY, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 60000) g").await;
    let (dir, mut t) = running(&blue, &green, &db).await;
    let writer = Writer::start(&blue, &db, |i| format!("UPDATE big SET v = 'w{i}' WHERE id = {}", (i * 7919) % 50_000 + 1)).await;
    // One 1,000-row chunk per round: the run takes many rounds, each saved.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["verify", "--live", "--chunk-rows", "1000", "--parallel", "1", "--max-snapshot-age", "0s", "--config"])
        .arg(t.config_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("verify");
    let progress = dir.path().join("state").join("verify-live.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    let compared = loop {
        let saved: Option<serde_json::Value> = std::fs::read_to_string(&progress).ok().and_then(|s| serde_json::from_str(&s).ok());
        let rows = saved.as_ref().and_then(|s| s["tables"][0]["source_rows"].as_u64()).unwrap_or(0);
        if rows >= 5000 {
            break rows;
        }
        assert!(child.try_wait().expect("wait").is_none(), "verify ended before it could be killed");
        assert!(Instant::now() < deadline, "verify saved no progress\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert!(compared < 60_000, "verify was killed after it finished");
    // Its temporary slot went with it, and the sidecar's hold expired or was released: green follows.
    let b = blue.connect(&db).await.expect("blue");
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'turnout_verify%'", &[]).await.expect("slots").get::<_, i64>(0) > 0 {
        assert!(Instant::now() < deadline, "verify's temporary slot outlived it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A row beyond what was compared, changed on green: the resumed run must reach it.
    green.execute(&db, "UPDATE big SET v = 'tampered' WHERE id = 59999").await.expect("tamper");
    let (code, out) = verify_live(&t, &["--chunk-rows", "1000"]);
    writer.stop().await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("verify: resuming the run in"), "{out}");
    assert!(out.contains("round, resumed)") || out.contains("rounds, resumed)"), "{out}");
    assert!(out.contains("DIFFERS  \"public\".\"big\" (blue 60000 rows, green 60000 rows; 1 row differs)"), "{out}");
    assert!(out.contains("differs: id=59999 (columns: v;"), "{out}");
    // This run compared only what was left.
    let line = out.lines().find(|l| l.contains("tables compared")).expect("summary");
    let rows: u64 = line.split("; ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).expect("rows in summary");
    assert!(rows <= 60_000 - compared + 1000, "the resumed run compared {rows} rows after {compared} were done:\n{out}");
    assert!(!progress.exists(), "a finished run leaves no progress to resume");
    green.execute(&db, "UPDATE big SET v = md5('59999') WHERE id = 59999").await.expect("repair");
    assert_converges(&blue, &green, &db, &["big"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}
