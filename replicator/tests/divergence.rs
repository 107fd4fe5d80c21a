//! Ways green could end up different from blue with nothing stopping — each one either made exact or
//! made a loud stop naming the fix, against real servers: rows of keyless tables matched under a
//! collation, folding that resets columns only green has, a progress record lost on green, row
//! changes logged as statements, triggers on green, added columns filled with green's clock or
//! green's time zone or volatile defaults, and PostgreSQL `GENERATED ALWAYS AS IDENTITY` keys.

mod common;

use common::*;
use turnout_testbed::MySqlServer;

/// Waits until green's answer to `sql` is blue's.
async fn same_answer(blue: &MySqlServer, green: &MySqlServer, db: &str, sql: &str, t: &mut Turnout) -> String {
    let mut answer = String::new();
    wait_for(t, &format!("green to answer `{sql}` as blue does"), |_| {
        let b = blue.execute(Some(db), sql).expect("blue");
        answer = b.clone();
        (green.execute(Some(db), sql).ok() == Some(b)).then_some(())
    })
    .await;
    answer
}

async fn streaming(blue: &MySqlServer, green: &MySqlServer, db: &str) -> (tempfile::TempDir, Turnout) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(db), &green.url(db), "");
    t.start();
    wait_streaming(&mut t).await;
    (dir, t)
}

/// Waits for turnout to stop by itself and returns its log.
async fn stopped(t: &mut Turnout) -> String {
    let code = wait_exit(t).await;
    assert_ne!(code, 0, "turnout should have stopped with an error\n{}", t.log_text());
    t.log_text()
}

#[tokio::test]
async fn rows_of_a_keyless_table_are_matched_byte_for_byte_not_under_the_collation() {
    let (blue, green, db) = maria_pair();
    blue.execute(
        Some(&db),
        "CREATE TABLE names (name VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, n INT) ENGINE=InnoDB; \
         INSERT INTO names VALUES ('Foo', 1), ('foo', 1), ('foo ', 1), ('FOO', 1), ('é', 1), ('E', 1)",
    )
    .expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    // Under utf8mb4_general_ci (PAD SPACE) every foo is equal, and so are é and E.
    blue.execute(
        Some(&db),
        "DELETE FROM names WHERE CAST(name AS BINARY) = 'foo'; \
         UPDATE names SET n = 2 WHERE CAST(name AS BINARY) = 'foo '; \
         UPDATE names SET n = 3 WHERE CAST(name AS BINARY) = 'E'",
    )
    .expect("changes");
    maria_assert_same(&blue, &green, &db, &["names"], &mut t).await;
    assert_eq!(green.execute(Some(&db), "SELECT COUNT(*) FROM names WHERE CAST(name AS BINARY) = 'Foo'").expect("count").trim(), "1");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn a_column_only_green_has_keeps_its_values_when_blue_updates_the_row() {
    let (blue, green, db) = maria_pair();
    // `plain` is independent (its changes may fold); `ordered` has a unique key (applied in order).
    blue.execute(
        Some(&db),
        "CREATE TABLE plain (id INT PRIMARY KEY, a INT) ENGINE=InnoDB; \
         CREATE TABLE ordered (id INT PRIMARY KEY, a INT, u INT UNIQUE) ENGINE=InnoDB; \
         INSERT INTO plain SELECT seq, 0 FROM seq_1_to_50; INSERT INTO ordered SELECT seq, 0, seq FROM seq_1_to_50",
    )
    .expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    // An expand-phase migration backfills a column on green only.
    green
        .execute(
            Some(&db),
            "SET sql_log_bin = 0; ALTER TABLE plain ADD COLUMN g INT NOT NULL DEFAULT 0; UPDATE plain SET g = 42; \
             ALTER TABLE ordered ADD COLUMN g INT NOT NULL DEFAULT 0; UPDATE ordered SET g = 42",
        )
        .expect("green-only column");
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(Some(&db), "UPDATE plain SET a = a + id; UPDATE ordered SET a = a + id; DELETE FROM plain WHERE id = 50; INSERT INTO plain VALUES (51, 7)")
        .expect("updates");
    same_answer(&blue, &green, &db, "SELECT SUM(a), COUNT(*) FROM plain", &mut t).await;
    same_answer(&blue, &green, &db, "SELECT SUM(a), COUNT(*) FROM ordered", &mut t).await;
    for table in ["plain", "ordered"] {
        let kept = green.execute(Some(&db), &format!("SELECT COUNT(*) FROM {table} WHERE id <= 49 AND g = 42")).expect("g");
        assert_eq!(kept.trim(), "49", "{table}: green's own column was reset\n{}", t.log_text());
    }
    // The same while turnout runs: the sink read green's columns before this one was added.
    green.execute(Some(&db), "SET sql_log_bin = 0; ALTER TABLE plain ADD COLUMN h INT NOT NULL DEFAULT 0; UPDATE plain SET h = 7").expect("mid-stream");
    blue.execute(Some(&db), "UPDATE plain SET a = a + 1").expect("updates");
    same_answer(&blue, &green, &db, "SELECT SUM(a), COUNT(*) FROM plain", &mut t).await;
    let kept = green.execute(Some(&db), "SELECT COUNT(*) FROM plain WHERE h = 7 AND g = 42").expect("h");
    assert_eq!(kept.trim(), "49", "green's own column was reset mid-stream\n{}", t.log_text());
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn a_lost_progress_record_on_green_is_refused_instead_of_replaying_history() {
    let (blue, green, db) = maria_pair();
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB; INSERT INTO t VALUES (1, 0)").expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    blue.execute(Some(&db), "UPDATE t SET a = 1; INSERT INTO t VALUES (2, 0)").expect("changes");
    maria_assert_same(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    // Green restored from a dump that left turnout's database out.
    green.execute(None, "SET sql_log_bin = 0; DROP DATABASE turnout").expect("drop progress");
    t.start();
    let log = stopped(&mut t).await;
    assert!(log.contains("no progress record") && log.contains("teardown"), "{log}");
}

#[tokio::test]
async fn a_row_change_logged_as_a_statement_stops_replication_naming_it() {
    let (blue, green, db) = maria_pair();
    blue.execute(
        Some(&db),
        "CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB; INSERT INTO t VALUES (1, 0);\n\
         DELIMITER //\nCREATE FUNCTION bump() RETURNS INT DETERMINISTIC MODIFIES SQL DATA BEGIN UPDATE t SET a = a + 1; RETURN 1; END//\nDELIMITER ;",
    )
    .expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    // A pooled session opened before binlog_format became ROW keeps its own format.
    blue.execute(Some(&db), "SET SESSION binlog_format = 'STATEMENT'; SELECT bump()").expect("statement-logged change");
    let log = stopped(&mut t).await;
    assert!(log.contains("`bump`()") && log.contains("binlog_format = ROW") && log.contains("thread id"), "{log}");
    assert_eq!(green.execute(Some(&db), "SELECT a FROM t").expect("green").trim(), "0", "nothing after the statement was applied");
}

#[tokio::test]
async fn triggers_on_green_are_refused_by_check_and_run_naming_each() {
    let (blue, green, db) = maria_pair();
    let schema = "CREATE TABLE t (id INT PRIMARY KEY, a INT, updated DATETIME(6)) ENGINE=InnoDB";
    blue.execute(Some(&db), &format!("{schema}; INSERT INTO t VALUES (1, 0, '2024-01-01')")).expect("blue");
    green
        .execute(Some(&db), &format!("SET sql_log_bin = 0; {schema}; CREATE TRIGGER stamp BEFORE UPDATE ON t FOR EACH ROW SET NEW.updated = NOW(6)"))
        .expect("green");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["check", "--config"]).arg(t.config_path()).output().expect("check");
    let out = String::from_utf8_lossy(&check.stdout).into_owned() + &String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success() && out.contains("`t`.`stamp`"), "{out}");
    t.start();
    let log = stopped(&mut t).await;
    assert!(log.contains("`t`.`stamp`") && log.contains("after the cutover"), "{log}");
}

#[tokio::test]
async fn an_added_column_gets_blues_values_for_existing_rows_or_stops_naming_it() {
    let (blue, green, db) = maria_pair();
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t SELECT seq FROM seq_1_to_20").expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    // Blue's session is two hours east of UTC, and the statement's own clock fills CURRENT_TIMESTAMP.
    blue.execute(
        Some(&db),
        "SET time_zone = '+02:00'; SET timestamp = 1700000000.123456; \
         ALTER TABLE t ADD COLUMN fixed TIMESTAMP NOT NULL DEFAULT '2024-01-01 00:00:00', \
           ADD COLUMN created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6); \
         INSERT INTO t (id) VALUES (21)",
    )
    .expect("alter");
    maria_assert_same(&blue, &green, &db, &["t"], &mut t).await;
    let blue_fixed = blue.execute(Some(&db), "SELECT UNIX_TIMESTAMP(fixed), UNIX_TIMESTAMP(created) FROM t WHERE id = 1").expect("blue");
    assert_eq!(blue_fixed.trim(), "1704060000\t1700000000.123456", "the scenario itself");
    // A default green cannot reproduce for the rows that exist.
    blue.execute(Some(&db), "ALTER TABLE t ADD COLUMN u VARCHAR(40) DEFAULT (UUID())").expect("volatile");
    let log = stopped(&mut t).await;
    assert!(log.contains("column `u`") && log.contains("UUID"), "{log}");
}

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
