// Divergence tests of the MySQL family, included by `divergence.rs` (MariaDB 10.11) and `mysql97.rs`
// (Oracle MySQL 9.7) with `FLAVOR` set.

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
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
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
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    // `plain` is independent (its changes may fold); `ordered` has a unique key (applied in order).
    blue.execute(
        Some(&db),
        &format!(
            "CREATE TABLE plain (id INT PRIMARY KEY, a INT) ENGINE=InnoDB; \
         CREATE TABLE ordered (id INT PRIMARY KEY, a INT, u INT UNIQUE) ENGINE=InnoDB; \
         INSERT INTO plain SELECT seq, 0 FROM {s50}; INSERT INTO ordered SELECT seq, 0, seq FROM {s50}",
            s50 = FLAVOR.numbers(50)
        ),
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
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
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
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
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
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
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
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), &format!("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t SELECT seq FROM {}", FLAVOR.numbers(20))).expect("schema");
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
    let volatile = blue.execute(Some(&db), "ALTER TABLE t ADD COLUMN u VARCHAR(40) DEFAULT (UUID())");
    if !FLAVOR.is_mariadb() {
        // MySQL itself refuses a volatile default for existing rows while it logs (ER_BINLOG_UNSAFE_STATEMENT).
        let err = volatile.expect_err("MySQL refuses the statement");
        assert!(err.to_string().contains("1674"), "{err}");
        assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
        return;
    }
    volatile.expect("volatile");
    let log = stopped(&mut t).await;
    assert!(log.contains("column `u`") && log.contains("UUID"), "{log}");
}


/// Columns whose default or ON UPDATE is the clock (`DEFAULT CURRENT_TIMESTAMP`, which MySQL lists as
/// DEFAULT_GENERATED) carry blue's values through the snapshot and the stream; green's clock never
/// fills them (it did on MySQL, where they were taken for generated columns and left out).
#[tokio::test]
async fn columns_defaulting_to_the_clock_keep_blues_values_through_snapshot_and_stream() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        "CREATE TABLE stamped (id INT PRIMARY KEY, n INT, created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
           touched DATETIME(3) NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP(3), v INT AS (n * 2) VIRTUAL) ENGINE=InnoDB; \
         SET timestamp = 1600000000.5; INSERT INTO stamped (id, n) VALUES (1, 1), (2, 2); UPDATE stamped SET n = 3 WHERE id = 2",
    )
    .expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    maria_assert_same(&blue, &green, &db, &["stamped"], &mut t).await;
    blue.execute(Some(&db), "SET timestamp = 1650000000.25; INSERT INTO stamped (id, n) VALUES (3, 3); UPDATE stamped SET n = 9 WHERE id = 1")
        .expect("changes");
    maria_assert_same(&blue, &green, &db, &["stamped"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn the_enum_error_value_a_non_strict_session_wrote_is_copied_and_streamed_exactly() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    // A session that is not strict stores '' (index 0) for a value outside the list: legal on blue.
    blue.execute(
        Some(&db),
        "CREATE TABLE tickets (id INT PRIMARY KEY, state ENUM('abc','def','ghi') NOT NULL, tag ENUM('', 'x')) ENGINE=InnoDB; \
         SET SESSION sql_mode = ''; \
         INSERT INTO tickets VALUES (1, 'xyz', ''), (2, 'abc', 'x'), (3, 'nope', 'bad')",
    )
    .expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    blue.execute(
        Some(&db),
        "SET SESSION sql_mode = ''; INSERT INTO tickets VALUES (4, 'zzz', 'y'), (5, 'def', ''); \
         UPDATE tickets SET state = 'bogus' WHERE id = 2; UPDATE tickets SET state = 'ghi' WHERE id = 1; \
         INSERT INTO tickets SELECT 100 + id, 'again', 'again' FROM tickets",
    )
    .expect("changes");
    // By index: the error value (0) and a listed '' (1 in `tag`) print alike but are not the same.
    let sql = "SELECT id, state + 0, tag + 0, HEX(state), HEX(tag) FROM tickets ORDER BY id";
    let answer = same_answer(&blue, &green, &db, sql, &mut t).await;
    assert!(answer.contains("3\t0\t0\t\t"), "row 3 holds the error value in both columns:\n{answer}");
    maria_assert_same(&blue, &green, &db, &["tickets"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// A generated column whose expression depends on the writing session (`DATE(ts)` of a TIMESTAMP under
/// the application's `time_zone = '+09:00'`): green would compute it in turnout's session and store
/// another date. Rows that compute alike replicate; the first that does not stops the stream naming
/// the table, the column, the row and the fix — and a copy of such rows stops the same way.
#[tokio::test]
async fn a_generated_column_green_would_compute_otherwise_stops_the_stream_and_the_copy_naming_it() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        "CREATE TABLE visits (id INT PRIMARY KEY, ts TIMESTAMP NOT NULL, day DATE AS (DATE(ts)) STORED) ENGINE=InnoDB; \
         SET time_zone = '+00:00'; INSERT INTO visits (id, ts) VALUES (1, '2024-01-01 12:00:00')",
    )
    .expect("schema");
    let (_dir, mut t) = streaming(&blue, &green, &db).await;
    // Computed alike in both sessions (UTC): replicated.
    blue.execute(Some(&db), "SET time_zone = '+00:00'; INSERT INTO visits (id, ts) VALUES (2, '2024-01-02 12:00:00')").expect("utc row");
    maria_assert_same(&blue, &green, &db, &["visits"], &mut t).await;
    // 05:00 in Tokyo is 20:00 the day before in UTC: blue stores the 3rd, green would store the 2nd.
    blue.execute(Some(&db), "SET time_zone = '+09:00'; INSERT INTO visits (id, ts) VALUES (3, '2024-01-03 05:00:00')").expect("tokyo row");
    let log = stopped(&mut t).await;
    assert!(log.contains("green generates another value than blue stored") && log.contains("day") && log.contains("id = 3"), "{log}");
    assert!(log.contains("2024-01-03"), "blue's value is named: {log}");
    assert_eq!(green.execute(Some(&db), "SELECT COUNT(*) FROM visits WHERE id = 3").expect("green").trim(), "0", "the row was not committed");

    // The same rows copied: refused by the copy's own check.
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        "CREATE TABLE visits (id INT PRIMARY KEY, ts TIMESTAMP NOT NULL, day DATE AS (DATE(ts)) STORED) ENGINE=InnoDB; \
         SET time_zone = '+09:00'; INSERT INTO visits (id, ts) VALUES (1, '2024-01-03 05:00:00'), (2, '2024-01-03 12:00:00')",
    )
    .expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    t.start();
    let log = stopped(&mut t).await;
    assert!(log.contains("green generates other values than blue stored in") && log.contains("visits") && log.contains("day"), "{log}");
}
