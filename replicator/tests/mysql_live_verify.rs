//! `turnout verify --live` from a MariaDB blue while writes go on: a correct copy compares equal at
//! one binlog position, and rows changed, removed or added directly on green are named by their keys
//! (integer, composite, quoted-name text, binary and ENUM keys) — on MariaDB 10.11 and Oracle MySQL 9.7.

use crate::common;

use common::{maria_pair_of, maria_rows, wait_streaming, Turnout, WAIT};
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout_testbed::Flavor;

/// The schema and rows, on servers of `flavor`.
fn schema(flavor: Flavor) -> String {
    let seq = |n| flavor.numbers(n);
    format!(
        "CREATE TABLE accounts (id BIGINT UNSIGNED PRIMARY KEY, owner VARCHAR(40) NOT NULL, balance DECIMAL(12,2), note TEXT) ENGINE=InnoDB;\
         CREATE TABLE order_lines (order_id INT, line INT, sku VARCHAR(20), qty INT, PRIMARY KEY (order_id, line)) ENGINE=InnoDB;\
         CREATE TABLE `Odd Name` (`key col` VARCHAR(40) PRIMARY KEY, `Value` JSON, at DATETIME(6)) ENGINE=InnoDB;\
         CREATE TABLE blobs (k VARBINARY(20) PRIMARY KEY, v INT) ENGINE=InnoDB;\
         CREATE TABLE sizes (s ENUM('small', 'large', 'medium') PRIMARY KEY, n INT) ENGINE=InnoDB;\
         CREATE TABLE log (msg VARCHAR(40), at DATETIME) ENGINE=InnoDB;\
         INSERT INTO accounts SELECT seq, CONCAT('owner ', seq), seq * 1.5, IF(seq % 7 = 0, NULL, REPEAT('n', seq % 50)) FROM {};\
         INSERT INTO order_lines SELECT seq DIV 4, seq % 4, CONCAT('sku-', seq % 97), seq % 13 FROM {};\
         INSERT INTO `Odd Name` SELECT CONCAT('k ', seq), JSON_OBJECT('n', seq, 's', 'x''y'), '2024-01-01' + INTERVAL seq MINUTE FROM {};\
         INSERT INTO blobs SELECT UNHEX(SUBSTRING(SHA2(seq, 256), 1, 40)), seq FROM {};\
         INSERT INTO sizes VALUES ('small', 1), ('large', 2), ('medium', 3);\
         INSERT INTO log SELECT CONCAT('m', seq), NOW() FROM {};",
        seq(20_000),
        seq(8_000),
        seq(3_000),
        seq(2_000),
        seq(500)
    )
}

/// Writes on blue as fast as it can until stopped, away from the rows the test changes on green:
/// updates of accounts below 19,000, new order lines and log entries. Counts transactions.
struct Writer {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    async fn start(url: String) -> Writer {
        let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).expect("url")).await.expect("writer");
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (s, d) = (Arc::clone(&stop), Arc::clone(&done));
        let task = tokio::spawn(async move {
            let mut i: i64 = 0;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                let sql = format!(
                    "BEGIN; UPDATE accounts SET balance = balance + 1, note = 'w{i}' WHERE id = {}; \
                     INSERT INTO order_lines VALUES ({}, {}, 'new', 1); INSERT INTO log VALUES ('w{i}', NOW()); COMMIT",
                    (i * 7919) % 19_000 + 1,
                    10_000 + i / 4,
                    i % 4
                );
                c.query_drop(sql).await.expect("write on blue");
                d.fetch_add(1, Ordering::Relaxed);
            }
        });
        Writer { stop, done, task }
    }

    fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer task");
    }
}

/// Runs `turnout verify --live` with `args` without blocking the writer; exit code and output.
async fn verify_live(t: &Turnout, args: &[&str]) -> (Option<i32>, String) {
    let config = t.config_path().to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["verify", "--live", "--config"]).arg(config).args(args).output()
    })
    .await
    .expect("join")
    .expect("verify");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_live_verify_under_writes_finds_a_correct_copy_equal_and_names_rows_changed_on_green() {
    live_verify_under_writes(Flavor::MariaDb10_11).await;
}

/// The same on Oracle MySQL 9.7: blue's snapshots at one binlog position and GTID set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_live_verify_under_writes_finds_a_correct_copy_equal_and_names_rows_changed_on_green() {
    live_verify_under_writes(Flavor::MySql9_7).await;
}

async fn live_verify_under_writes(flavor: Flavor) {
    let (blue, green, db) = maria_pair_of(flavor, flavor);
    blue.execute(Some(&db), &schema(flavor)).expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    wait_streaming(&mut t).await;
    let writer = Writer::start(blue.url(&db)).await;
    let before = writer.count();
    let (code, out) = verify_live(&t, &["--chunk-rows", "1000"]).await;
    let during = writer.count() - before;
    assert_eq!(code, Some(0), "{out}\n{}", t.log_text());
    for table in ["\"accounts\" (20000 rows, ", "\"Odd Name\" (3000 rows, ", "\"blobs\" (2000 rows, ", "\"sizes\" (3 rows, "] {
        assert!(out.contains(&format!("ok       \"{db}\".{table}")), "{table}:\n{out}");
    }
    assert!(out.contains("6 tables compared, 0 differ"), "{out}");
    assert!(during > 0, "blue took no writes while verify ran: the comparison was not live");
    assert!(t.log_text().contains("green holds at a live verify's position"), "{}", t.log_text());

    // Changed directly on green: one value (same row count), one row gone, one row added, and a
    // changed row under a binary and an ENUM key.
    green
        .execute(
            Some(&db),
            "SET sql_log_bin = 0; UPDATE accounts SET balance = balance + 0.01 WHERE id = 19500; DELETE FROM `Odd Name` WHERE `key col` = 'k 77'; \
             INSERT INTO accounts VALUES (25000, 'ghost', 0, NULL); UPDATE blobs SET v = -1 WHERE v = 1500; UPDATE sizes SET n = 30 WHERE s = 'medium'",
        )
        .expect("tamper");
    let blob_key = blue.execute(Some(&db), "SELECT HEX(k) FROM blobs WHERE v = 1500").expect("key").trim().to_owned();
    let (code, out) = verify_live(&t, &["--chunk-rows", "1000"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("DIFFERS  \"{db}\".\"accounts\" (blue 20000 rows, green 20001 rows; 2 rows differ)")), "{out}");
    assert!(out.contains("differs: id=19500 (columns: balance; values redacted"), "{out}");
    assert!(out.contains("only on green: id=25000"), "{out}");
    assert!(out.contains("missing on green: key col=k 77"), "{out}");
    assert!(out.contains(&format!("differs: k={blob_key} (columns: v;")), "{out}");
    assert!(out.contains("differs: s=3 (columns: n;"), "{out}");
    assert!(out.contains("6 tables compared, 4 differ"), "{out}");
    let (code, out) = verify_live(&t, &["--table", "accounts", "--show-values"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("differs: id=19500 (balance: blue 29250.00 green 29250.01)"), "{out}");

    writer.stop().await;
    // The holds left replication as it was: green still follows blue.
    green
        .execute(
            Some(&db),
            "SET sql_log_bin = 0; UPDATE accounts SET balance = balance - 0.01 WHERE id = 19500; \
             INSERT INTO `Odd Name` VALUES ('k 77', JSON_OBJECT('n', 77, 's', 'x''y'), '2024-01-01' + INTERVAL 77 MINUTE); \
             DELETE FROM accounts WHERE id = 25000; UPDATE blobs SET v = 1500 WHERE v = -1; UPDATE sizes SET n = 3 WHERE s = 'medium'",
        )
        .expect("repair");
    blue.execute(Some(&db), "INSERT INTO log VALUES ('last', NOW())").expect("last");
    let deadline = Instant::now() + WAIT;
    for table in ["accounts", "order_lines", "Odd Name", "blobs", "sizes", "log"] {
        while maria_rows(&blue, &db, table) != maria_rows(&green, &db, table) {
            assert!(Instant::now() < deadline, "green's {table} never converged to blue's\n{}", t.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (code, out) = verify_live(&t, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(t.sigterm(), Some(0));
}
