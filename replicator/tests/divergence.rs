//! Ways green could end up different from blue with nothing stopping — each one either made exact or
//! made a loud stop naming the fix, against real servers: rows of keyless tables matched under a
//! collation, folding that resets columns only green has, a progress record lost on green, row
//! changes logged as statements, triggers on green, added columns filled with green's clock or
//! green's time zone or volatile defaults, and PostgreSQL `GENERATED ALWAYS AS IDENTITY` keys.

use crate::common;

use common::*;
use turnout_testbed::MySqlServer;

/// The servers the MySQL-family part of this suite runs on (the same tests run on MySQL 9.7 in
/// `mysql97.rs`).
const FLAVOR: turnout_testbed::Flavor = turnout_testbed::Flavor::MariaDb10_11;

include!("suites/divergence_family.rs");

#[tokio::test]
async fn identity_always_keys_replicate_through_every_statement_shape() {
    let (blue, green, db) = pair(
        "CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL); \
         INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 10) g; \
         CREATE TABLE journal (seq int GENERATED ALWAYS AS IDENTITY, note text); ALTER TABLE journal REPLICA IDENTITY FULL; \
         INSERT INTO journal (note) VALUES ('a'), ('b')",
    )
    .await;
    let (_dir, mut t) = running_with(&blue, &green, &db, "[apply]\nsessions = 2").await;
    let c = blue.connect(&db).await.expect("blue");
    c.batch_execute(
        "INSERT INTO items (name) VALUES ('one more'); \
         INSERT INTO items (name) SELECT 'bulk ' || g FROM generate_series(1, 1500) g; \
         UPDATE items SET name = name || ' changed' WHERE id % 3 = 0; \
         DELETE FROM items WHERE id % 7 = 0; \
         BEGIN; INSERT INTO items (name) VALUES ('in a transaction'); UPDATE items SET name = 'again' WHERE id = 1; COMMIT; \
         INSERT INTO journal (note) VALUES ('c'); UPDATE journal SET note = 'changed' WHERE note = 'a'; DELETE FROM journal WHERE note = 'b'",
    )
    .await
    .expect("changes");
    assert_converges(&blue, &green, &db, &["items", "journal"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// `gtid_binlog_pos` of `server`.
fn gtid_pos(server: &MySqlServer) -> String {
    server.execute(None, "SELECT @@GLOBAL.gtid_binlog_pos").expect("gtid_binlog_pos").trim().to_owned()
}

#[tokio::test]
async fn after_blue_fails_over_to_its_replica_turnout_resumes_by_gtid_and_loses_nothing() {
    let (blue, green, db) = maria_pair();
    let replica = MySqlServer::start_with(3).expect("replica");
    // The replica starts where blue is now, with the (empty) database already there, and follows blue.
    replica
        .execute(
            None,
            &format!(
                "SET sql_log_bin = 0; CREATE DATABASE `{db}`; SET GLOBAL gtid_slave_pos = '{}'; \
                 CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = '{}', MASTER_PASSWORD = '{}', \
                 MASTER_USE_GTID = slave_pos; START SLAVE",
                gtid_pos(&blue),
                blue.port(),
                blue.user(),
                blue.password()
            ),
        )
        .expect("replica follows blue");
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB; INSERT INTO t SELECT seq, 0 FROM seq_1_to_100").expect("schema");
    let (dir, mut t) = streaming(&blue, &green, &db).await;
    blue.execute(Some(&db), "UPDATE t SET a = 1 WHERE id <= 50").expect("before the failover");
    maria_assert_same(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    // Blue writes on, rotating its binlog past the replica's file numbers (the replica's files are
    // its own), until it fails; the replica has everything and is promoted.
    blue.execute(Some(&db), "FLUSH LOCAL BINARY LOGS; FLUSH LOCAL BINARY LOGS; FLUSH LOCAL BINARY LOGS; UPDATE t SET a = 2 WHERE id > 90").expect("more");
    let last = gtid_pos(&blue);
    wait_for(&mut t, "the replica to apply everything blue wrote", |_| (gtid_pos(&replica).contains(&last)).then_some(())).await;
    drop(blue);
    replica.execute(None, "STOP SLAVE; RESET SLAVE ALL").expect("promote");
    replica.execute(Some(&db), "INSERT INTO t VALUES (101, 3); UPDATE t SET a = 3 WHERE id <= 10; DELETE FROM t WHERE id = 100").expect("after the failover");
    // turnout repointed at the promoted replica.
    let config = std::fs::read_to_string(t.config_path()).expect("config");
    let old_url = config.lines().find(|l| l.starts_with("url = ")).expect("source url").to_owned();
    std::fs::write(t.config_path(), config.replacen(&old_url, &format!("url = \"{}\"", replica.url(&db)), 1)).expect("repoint");
    t.start();
    maria_assert_same(&replica, &green, &db, &["t"], &mut t).await;
    // Exactly once: nothing lost, nothing doubled.
    assert_eq!(green.execute(Some(&db), "SELECT COUNT(*), SUM(a) FROM t").expect("sums").trim(), "100\t91");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    drop(dir);
}

#[tokio::test]
async fn verify_compares_text_across_character_sets_and_names_columns_only_green_has() {
    let (blue, green, db) = maria_pair();
    blue.execute(
        Some(&db),
        "SET NAMES utf8mb4; CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(10) CHARACTER SET latin1, b VARBINARY(4)) ENGINE=InnoDB; \
         INSERT INTO c VALUES (1, 'café', X'00FF'), (2, 'é', NULL)",
    )
    .expect("blue");
    // Green was prepared by hand: utf8mb4 text, and a column of its own.
    green
        .execute(
            Some(&db),
            "SET sql_log_bin = 0; SET NAMES utf8mb4; \
             CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(10) CHARACTER SET utf8mb4, b VARBINARY(4), region INT NOT NULL DEFAULT 5) ENGINE=InnoDB; \
             INSERT INTO c (id, s, b) VALUES (1, 'café', X'00FF'), (2, 'é', NULL)",
        )
        .expect("green");
    let dir = tempfile::tempdir().expect("tmp");
    let t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    let verify = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["verify", "--config"]).arg(t.config_path()).output().expect("verify");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, out) = verify();
    assert_eq!(code, Some(0), "the same characters in latin1 and utf8mb4 are equal: {out}");
    assert!(out.contains("green has columns blue has not: `region`"), "{out}");
    // A value transcoded twice on its way: the bytes of 'é' in UTF-8 read as latin1.
    green.execute(Some(&db), "SET sql_log_bin = 0; SET NAMES utf8mb4; UPDATE c SET s = 'Ã©' WHERE id = 2").expect("mangle");
    let (code, out) = verify();
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("DIFFERS"), "{out}");
}

/// pgoutput shows neither `DETACH PARTITION` (a retention job's rows vanish from blue without a
/// DELETE) nor `ATTACH PARTITION` (a table filled while standalone joins without an INSERT).
#[tokio::test]
async fn a_partition_detached_or_attached_on_blue_stops_replication_naming_it() {
    let (blue, green, db) = pair(
        "CREATE TABLE events (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
         CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01'); \
         CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01'); \
         INSERT INTO events VALUES (1, '2023-05-01'), (2, '2024-05-01')",
    )
    .await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO events VALUES (3, '2024-06-01')").await.expect("insert");
    assert_converges(&blue, &green, &db, &["events"], &mut t).await;
    // The retention job: the 2023 rows leave blue's table without a DELETE.
    blue.execute(&db, "ALTER TABLE events DETACH PARTITION events_2023; DROP TABLE events_2023").await.expect("retention");
    let code = wait_exit(&mut t).await;
    assert_ne!(code, 0, "{}", t.log_text());
    let log = t.log_text();
    assert!(log.contains("partition events_2023 is on green but not on blue") && log.contains("DETACH PARTITION"), "{log}");
    // The same on green: replication goes on, and green is blue again.
    green.execute(&db, "ALTER TABLE events DETACH PARTITION events_2023; DROP TABLE events_2023").await.expect("green retention");
    t.start();
    wait_streaming(&mut t).await;
    // A table filled while standalone, then attached on blue: its rows never pass through the stream.
    blue.execute(
        &db,
        "CREATE TABLE events_2025 (LIKE events INCLUDING ALL); INSERT INTO events_2025 VALUES (9, '2025-02-01'); \
                       ALTER TABLE events ATTACH PARTITION events_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    )
    .await
    .expect("attach");
    let code = wait_exit(&mut t).await;
    assert_ne!(code, 0, "{}", t.log_text());
    // Named by the partition watch, or — when its rows, published as its own table's while it stood
    // alone, arrive first — by the apply.
    let log = t.log_text();
    assert!(
        log.contains("partition events_2025 is on blue but not on green") || (log.contains("events_2025") && log.contains("does not exist on green")),
        "{log}"
    );
}

#[tokio::test]
async fn live_verify_names_columns_only_green_has() {
    let (blue, green, db) = maria_pair();
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB; INSERT INTO t SELECT seq, seq FROM seq_1_to_20").expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    green.execute(Some(&db), "SET sql_log_bin = 0; ALTER TABLE t ADD COLUMN region INT NOT NULL DEFAULT 5").expect("green-only column");
    t.start();
    wait_streaming(&mut t).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["verify", "--live", "--config"]).arg(t.config_path()).output().expect("verify");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("has columns only on green: `region`"), "{text}");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// MariaDB does not log a session's `explicit_defaults_for_timestamp`: a blue running with it OFF (the
/// default before 10.10) adds a TIMESTAMP column as NOT NULL DEFAULT CURRENT_TIMESTAMP and fills the
/// existing rows with the statement's time. Green replays the ALTER with blue's global setting (it
/// replayed it with its own, ON, and left those rows NULL).
#[tokio::test]
async fn an_added_timestamp_column_on_a_mariadb_blue_without_explicit_defaults_fills_rows_as_on_blue() {
    let (blue, green, db) = maria_pair();
    blue.execute(None, "SET GLOBAL explicit_defaults_for_timestamp = OFF").expect("setting");
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t VALUES (1), (2)").expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    blue.execute(Some(&db), "SET timestamp = 1700000000; ALTER TABLE t ADD COLUMN seen TIMESTAMP; INSERT INTO t (id) VALUES (3)").expect("alter");
    maria_assert_same(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(blue.execute(Some(&db), "SELECT UNIX_TIMESTAMP(seen) FROM t WHERE id = 1").expect("blue").trim(), "1700000000", "the scenario itself");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}
