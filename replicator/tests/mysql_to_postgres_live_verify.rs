//! MySQL/MariaDB → PostgreSQL: `turnout verify --live` while blue takes writes. A correct stream
//! compares equal at one binlog position — every type of the map by its canonical text, keys of one
//! and of two integer columns cut into chunks, a text key and a table without a key compared whole —
//! and rows changed, removed or added on green are named by their keys (with their values when asked),
//! a difference in a table compared whole is found; on MariaDB 10.11 and Oracle MySQL 9.7.

use crate::common::{self, Turnout};
use crate::mysql_to_postgres::{corpus_pair, turns};
use turnout_testbed::Flavor;

/// The tables beside the type corpus, with their rows.
fn schema(flavor: Flavor) -> String {
    let seq = |n| flavor.numbers(n);
    format!(
        "CREATE TABLE accounts (id BIGINT UNSIGNED PRIMARY KEY, owner VARCHAR(40) NOT NULL, balance DECIMAL(12,2), note TEXT) ENGINE=InnoDB;\
         CREATE TABLE order_lines (order_id INT, line SMALLINT, sku VARCHAR(20), qty INT, PRIMARY KEY (order_id, line)) ENGINE=InnoDB;\
         CREATE TABLE `Odd Name` (`key col` VARCHAR(40) PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB;\
         CREATE TABLE log (msg VARCHAR(40), n INT) ENGINE=InnoDB;\
         INSERT INTO accounts SELECT seq, CONCAT('owner ', seq), seq * 1.5, IF(seq % 7 = 0, NULL, REPEAT('n', seq % 50)) FROM {};\
         INSERT INTO order_lines SELECT seq DIV 4, seq % 4, CONCAT('sku-', seq % 97), seq % 13 FROM {};\
         INSERT INTO `Odd Name` SELECT CONCAT('k ', seq), '2024-01-01' + INTERVAL seq MINUTE FROM {};\
         INSERT INTO log SELECT CONCAT('m', seq), seq FROM {};",
        seq(12_000),
        seq(8_000),
        seq(3_000),
        seq(500)
    )
}

/// Runs `turnout verify --live` with `args`; exit code and output.
async fn verify_live(t: &Turnout, args: &[&str]) -> (i32, String) {
    let mut all = vec!["--live"];
    all.extend_from_slice(args);
    common::turnout_command(t, "verify", &all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_verify_from_mariadb_finds_a_correct_stream_equal_and_names_rows_changed_on_green() {
    live_verify_on(Flavor::MariaDb10_11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_verify_from_oracle_mysql_finds_a_correct_stream_equal_and_names_rows_changed_on_green() {
    live_verify_on(Flavor::MySql9_7).await;
}

async fn live_verify_on(flavor: Flavor) {
    let (blue, green, db, _) = corpus_pair(flavor).await;
    blue.execute(Some(&db), &schema(flavor)).expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    common::wait_streaming(&mut t).await;
    // Writes across chunks of both ranged tables and into the tables compared whole.
    let writer = turns(blue.url(&db), |i| {
        format!(
            "BEGIN; UPDATE accounts SET balance = balance + 1, note = 'w{i}' WHERE id = {}; INSERT INTO order_lines VALUES ({}, {}, 'new', 1); \
             INSERT INTO log VALUES ('w{i}', {i}); UPDATE `Odd Name` SET at = at + INTERVAL 1 SECOND WHERE `key col` = 'k {}'; COMMIT",
            (i * 7919) % 11_000 + 1,
            10_000 + i / 4,
            i % 4,
            i % 2_000 + 1
        )
    });
    writer.wait_for(20).await;
    let before = writer.count();
    let (code, out) = verify_live(&t, &["--chunk-rows", "1000"]).await;
    let during = writer.count() - before;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    for table in ["\"accounts\" (12000 rows, ", "\"Odd Name\" (3000 rows, ", "\"types\" (4 rows, "] {
        assert!(out.contains(&format!("ok       \"{db}\".{table}")), "{table}:\n{out}");
    }
    assert!(out.contains("5 tables compared, 0 differ"), "{out}");
    assert!(during > 0, "blue took no writes while verify ran: the comparison was not live");
    assert!(t.log_text().contains("green holds at a live verify's position"), "{}", t.log_text());

    // Changed on green: one value of a ranged table (the same row count), a row added there, a value
    // under a key of two columns, a row gone from a table compared whole, and a float's last bit.
    let tamper = "UPDATE accounts SET balance = balance + 0.01 WHERE id = 11500; INSERT INTO accounts VALUES (25000, 'ghost', 0, NULL); \
                  UPDATE order_lines SET qty = qty + 100 WHERE order_id = 1500 AND line = 2; DELETE FROM \"Odd Name\" WHERE \"key col\" = 'k 2777'; \
                  UPDATE types SET dbl = 4.9406564584124654E-323 WHERE id = 4";
    let client = green.connect(&db).await.expect("green");
    client.batch_execute(&format!("SET search_path = \"{db}\"; {tamper}")).await.expect("tamper");
    let (code, out) = verify_live(&t, &["--chunk-rows", "1000"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("DIFFERS  \"{db}\".\"accounts\" (blue 12000 rows, green 12001 rows; 2 rows differ)")), "{out}");
    assert!(out.contains("differs: id=11500 (columns: balance; values redacted"), "{out}");
    assert!(out.contains("only on green: id=25000"), "{out}");
    assert!(out.contains("differs: order_id=1500, line=2 (columns: qty;"), "{out}");
    assert!(out.contains(&format!("DIFFERS  \"{db}\".\"Odd Name\" (blue 3000 rows, green 2999 rows")), "{out}");
    assert!(out.contains("differs: id=4 (columns: dbl;"), "{out}");
    assert!(out.contains("5 tables compared, 4 differ"), "{out}");
    let (code, out) = verify_live(&t, &["--table", "accounts", "--show-values"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("differs: id=11500 (balance: blue 17250.00 green 17250.01)"), "{out}");

    let (acked, errors) = writer.finish().await;
    assert!(errors.is_empty() && !acked.is_empty(), "{errors:?}");
    // The holds left replication as it was: green still follows blue, and equal again once repaired.
    let repair = "UPDATE accounts SET balance = balance - 0.01 WHERE id = 11500; DELETE FROM accounts WHERE id = 25000; \
                  UPDATE order_lines SET qty = qty - 100 WHERE order_id = 1500 AND line = 2; \
                  UPDATE types SET dbl = 4.9406564584124654E-324 WHERE id = 4";
    client.batch_execute(&format!("SET search_path = \"{db}\"; {repair}")).await.expect("repair");
    let at: String =
        blue.execute(Some(&db), "SELECT DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f') FROM `Odd Name` WHERE `key col` = 'k 2777'").expect("at").trim().into();
    client.batch_execute(&format!("INSERT INTO \"{db}\".\"Odd Name\" VALUES ('k 2777', '{at}')")).await.expect("repair a row");
    let (code, out) = verify_live(&t, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.sigterm(), Some(0));
}

/// `/status`'s `continuous_verify` once `check` holds for it.
async fn verified_until(t: &mut Turnout, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    common::wait_for(t, what, |t| t.status().map(|v| v["continuous_verify"].clone()).filter(|v| check(v))).await
}

/// The sidecar's continuous verify (`[verify] continuous = true`) on a composed pair while blue takes
/// writes: whole runs find the tables equal and satisfy the cutover's verify gate; between them only
/// the chunks the stream changed are compared again; a row written on green directly is named by
/// its key and refuses the gate, until it is repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_continuous_verify_of_a_composed_pair_keeps_the_gate_and_finds_a_row_written_on_green() {
    let (blue, green, db) = crate::mysql_to_postgres::pair_of(
        Flavor::MariaDb10_11,
        &format!(
            "CREATE TABLE c (id INT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB; CREATE TABLE s (k VARCHAR(20) PRIMARY KEY, n INT) ENGINE=InnoDB; \
             INSERT INTO c SELECT seq, CONCAT('seed ', seq) FROM {}; INSERT INTO s SELECT CONCAT('k', seq), seq FROM {};",
            Flavor::MariaDb10_11.numbers(3000),
            Flavor::MariaDb10_11.numbers(300)
        ),
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let extra = "[cutover]\nfence = \"none\"\nswitch = \"none\"\nreverse = false\n[verify]\ncontinuous = true\nrows_per_second = 20000\n\
                 interval = \"300ms\"\nchunk_rows = 500\nwhole_every = \"30m\"\n";
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), extra);
    t.start();
    common::wait_streaming(&mut t).await;
    let writer = turns(blue.url(&db), |i| format!("UPDATE c SET note = 'w{i}' WHERE id = {}", i % 2_800 + 100));
    writer.wait_for(20).await;
    let v = verified_until(&mut t, "a whole continuous run", |v| v["runs"].as_u64().is_some_and(|n| n >= 1)).await;
    assert_eq!(v["tables"][format!("{db}.c")]["equal"], true, "{v}");
    assert_eq!(v["tables"][format!("{db}.s")]["equal"], true, "{v}");
    assert!(v["last_run_rows"].as_u64().is_some_and(|n| n >= 3300), "every row compared: {v}");
    let gate = ["--dry-run", "--verify", "--when-lag", "<1s", "--timeout", "60s"];
    let (code, out) = common::turnout_command(&t, "cutover", &gate).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verify gate: the live verify of 2 tables"), "{out}");
    // Re-checks of what the stream changed follow the whole run.
    verified_until(&mut t, "a re-check of the changed chunks", |v| v["rechecks"].as_u64().is_some_and(|n| n >= 1)).await;

    // A row changed on green alone.
    let client = green.connect(&db).await.expect("green");
    client.batch_execute(&format!("UPDATE \"{db}\".c SET note = 'green only' WHERE id = 7")).await.expect("rogue");
    let v = verified_until(&mut t, "the row written on green found", |v| v["tables"][format!("{db}.c")]["equal"] == false).await;
    assert_eq!(v["tables"][format!("{db}.c")]["differences"][0], "(id=7) changed", "{v}");
    let (code, out) = common::turnout_command(&t, "cutover", &gate).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(id=7) changed") || out.contains("id=7"), "{out}");
    client.batch_execute(&format!("UPDATE \"{db}\".c SET note = 'seed 7' WHERE id = 7")).await.expect("repair");
    verified_until(&mut t, "the tables equal again", |v| v["tables"][format!("{db}.c")]["equal"] == true).await;
    let (_, errors) = writer.finish().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(t.sigterm(), Some(0));
}
