// The MySQL-family suite, included by `mysql.rs` (MariaDB 10.11) and `mysql97.rs` (Oracle MySQL 9.7)
// with `FLAVOR` set; every test builds its servers of that flavor.

use common::*;
use std::time::{Duration, Instant};
use turnout_testbed::MySqlServer;

/// The numbers 1 to `n` as a table with column `seq` on this suite's servers.
fn seq(n: u64) -> String {
    FLAVOR.numbers(n)
}

async fn started(blue: &MySqlServer, green: &MySqlServer, db: &str, extra: &str) -> (tempfile::TempDir, Turnout) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(db), &green.url(db), extra);
    t.start();
    wait_streaming(&mut t).await;
    (dir, t)
}

const TYPES: &str = "
CREATE TABLE ints (id BIGINT UNSIGNED PRIMARY KEY, t TINYINT, tu TINYINT UNSIGNED, s SMALLINT, su SMALLINT UNSIGNED, m MEDIUMINT,
  mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, b BIGINT, y YEAR) ENGINE=InnoDB;
CREATE TABLE nums (id INT PRIMARY KEY, f FLOAT, d DOUBLE, d65 DECIMAL(65,30), d10 DECIMAL(10,2), bit1 BIT(1), bit64 BIT(64)) ENGINE=InnoDB;
CREATE TABLE temporal (id INT PRIMARY KEY, dt DATE, t6 TIME(6), dt0 DATETIME, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL, y YEAR) ENGINE=InnoDB;
CREATE TABLE strs (id INT PRIMARY KEY, c CHAR(10) CHARACTER SET utf8mb4, vc VARCHAR(100) CHARACTER SET utf8mb4, vl VARCHAR(300) CHARACTER SET latin1,
  bin BINARY(4), vb VARBINARY(10), lb LONGBLOB, lt LONGTEXT CHARACTER SET utf8mb4) ENGINE=InnoDB;
CREATE TABLE enums (id INT PRIMARY KEY, e ENUM('small','medium','large'), s SET('a','b','c','d')) ENGINE=InnoDB;
CREATE TABLE docs (id INT PRIMARY KEY, j JSON, p POINT, v INT AS (id * 2) VIRTUAL, st INT AS (id * 3) STORED) ENGINE=InnoDB;
CREATE TABLE `odd name` (`k 1` INT, `k``2` VARCHAR(10), note TEXT, PRIMARY KEY (`k 1`, `k``2`)) ENGINE=InnoDB;
CREATE TABLE uniq (id INT PRIMARY KEY, code VARCHAR(10) UNIQUE) ENGINE=InnoDB;
CREATE TABLE nokey (a INT, b VARCHAR(10), f FLOAT) ENGINE=InnoDB;
";

const ROWS: &str = "
SET sql_mode = '';
INSERT INTO ints VALUES (18446744073709551615, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 0),
  (1, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 2155), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO nums VALUES (1, 1.5, -2.25e-300, '12345678901234567890123456789012345.123456789012345678901234567890', -12345678.91, b'1',
  b'1000000000000000000000000000000000000000000000000000000000000001'), (2, 0.1, 1e308, '-0.000000000000000000000000000001', -0.01, b'0', 0xFFFFFFFFFFFFFFFF);
INSERT INTO temporal VALUES (1, '2024-02-29', '-12:34:56.789012', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999999', '2024-02-29 12:34:56.789', 0),
  (2, '0000-00-00', '838:59:59', '0000-00-00 00:00:00', '2024-01-02 03:04:05.123456', '1970-01-01 00:00:01.001', 1901);
INSERT INTO strs VALUES (1, 'ab', '😀 héllo', CONVERT('café' USING latin1), 0x00010203, 0xdeadbeef, REPEAT('ab', 35000), 'long 😀'), (2, '', '', '', 'ab', '', '', '');
INSERT INTO enums VALUES (1, 'medium', 'a,c'), (2, NULL, ''), (3, 'large', 'a,b,c,d');
INSERT INTO docs (id, j, p) VALUES (1, '{\"a\": [1, 2.5, null, true], \"b\": \"x\"}', POINT(1, 2)), (2, NULL, NULL);
INSERT INTO `odd name` VALUES (1, 'a`b', 'x'), (2, 'c d', 'y');
INSERT INTO uniq VALUES (1, 'a'), (2, 'b');
INSERT INTO nokey VALUES (1, 'same', 0.1), (1, 'same', 0.1), (2, NULL, NULL);
";

const TABLES: &[&str] = &["ints", "nums", "temporal", "strs", "enums", "docs", "odd name", "uniq", "nokey"];

#[tokio::test]
async fn snapshot_then_binlog_streaming_keeps_every_type_and_key_exact() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), TYPES).expect("schema");
    blue.execute(Some(&db), ROWS).expect("snapshot rows");
    let (_dir, mut t) = started(&blue, &green, &db, "").await;
    maria_assert_same(&blue, &green, &db, TABLES, &mut t).await;
    // Generated columns were computed on green, not written.
    assert_eq!(green.execute(Some(&db), "SELECT v, st FROM docs WHERE id = 1").expect("generated").trim(), "2\t3");
    for sql in [
        "SET sql_mode = ''; INSERT INTO ints VALUES (18446744073709551614, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0)",
        "UPDATE ints SET t = 0, y = 2000 WHERE id IN (1, 18446744073709551615)",
        "UPDATE ints SET id = 100 WHERE id = 2",
        "DELETE FROM ints WHERE id = 1",
        "INSERT INTO nums VALUES (3, -0.0, 3.141592653589793, '0.000000000000000000000000000000', 99999999.99, b'1', b'0')",
        "UPDATE nums SET f = f * 3, d = d / 3 WHERE id = 1",
        "SET sql_mode = ''; INSERT INTO temporal VALUES (3, '2024-00-00', '-838:59:59', '2024-02-29 23:59:59', '2024-02-29 23:59:59.000001', NULL, 1999)",
        "UPDATE strs SET vc = CONCAT(vc, ' ✓'), lb = REPEAT('z', 70000) WHERE id = 1",
        "UPDATE enums SET e = 'small', s = 'b,d' WHERE id = 2",
        "UPDATE docs SET j = JSON_SET(j, '$.c', 'é') WHERE id = 1",
        "UPDATE `odd name` SET `k``2` = 'moved', note = 'z' WHERE `k 1` = 1",
        "BEGIN; UPDATE uniq SET code = 'tmp' WHERE id = 1; UPDATE uniq SET code = 'a' WHERE id = 2; UPDATE uniq SET code = 'b' WHERE id = 1; COMMIT",
        "UPDATE nokey SET b = 'changed' WHERE a = 1 LIMIT 1",
        "DELETE FROM nokey WHERE a = 2",
        "BEGIN; INSERT INTO uniq VALUES (10, 'gone'); ROLLBACK",
        "BEGIN; INSERT INTO uniq VALUES (11, 'kept'); SAVEPOINT s; INSERT INTO uniq VALUES (12, 'undone'); ROLLBACK TO SAVEPOINT s; COMMIT",
        "TRUNCATE TABLE docs",
        "INSERT INTO docs (id, j) VALUES (5, '[]')",
    ] {
        blue.execute(Some(&db), sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    maria_assert_same(&blue, &green, &db, TABLES, &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn an_added_column_is_applied_on_green_and_other_ddl_stops_naming_the_statement() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10)) ENGINE=InnoDB; INSERT INTO t VALUES (1, 'one')").expect("schema");
    let (_dir, mut t) = started(&blue, &green, &db, "").await;
    blue.execute(Some(&db), "ALTER TABLE t ADD COLUMN b INT NOT NULL DEFAULT 7, ADD INDEX (a); INSERT INTO t VALUES (2, 'two', 8)").expect("alter");
    maria_assert_same(&blue, &green, &db, &["t"], &mut t).await;
    blue.execute(Some(&db), "ALTER TABLE t DROP COLUMN a").expect("drop");
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("ALTER TABLE t DROP COLUMN a") && log.contains("a restart reads the same statement again"), "{log}");
}

#[tokio::test]
async fn a_transaction_far_beyond_the_memory_budget_is_spilled_and_applied_whole() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), "CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(100)) ENGINE=InnoDB").expect("schema");
    let (_dir, mut t) = started(&blue, &green, &db, "[apply]\nmemory_budget = \"8MiB\"\n").await;
    blue.execute(Some(&db), &format!("INSERT INTO big SELECT seq, REPEAT('x', 100) FROM {}", seq(200_000))).expect("large transaction");
    maria_assert_same(&blue, &green, &db, &["big"], &mut t).await;
    assert!(t.log_text().contains("applying a spilled transaction"), "{}", t.log_text());
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn kill_9_at_several_points_and_restarts_of_blue_and_green_lose_and_double_nothing() {
    let (mut blue, mut green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        "CREATE TABLE events (n INT, note VARCHAR(20)) ENGINE=InnoDB; CREATE TABLE c (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; INSERT INTO c VALUES (1, 0)",
    )
    .expect("schema");
    let (_dir, mut t) = started(&blue, &green, &db, "").await;
    let mut n = 0;
    for round in 0..3 {
        let mut batch = String::new();
        for _ in 0..100 {
            n += 1;
            batch.push_str(&format!("BEGIN; INSERT INTO events VALUES ({n}, 'r{round}'); UPDATE c SET v = v + 1 WHERE id = 1; COMMIT;"));
        }
        blue.execute(Some(&db), &batch).expect("writes");
        t.kill9();
        n += 1;
        blue.execute(Some(&db), &format!("INSERT INTO events VALUES ({n}, 'down')")).expect("write while down");
        t.start();
        wait_streaming(&mut t).await;
    }
    green.restart().expect("restart green");
    n += 1;
    blue.execute(Some(&db), &format!("INSERT INTO events VALUES ({n}, 'after green restart')")).expect("write");
    maria_assert_same(&blue, &green, &db, &["events", "c"], &mut t).await;
    blue.restart().expect("restart blue");
    n += 1;
    blue.execute(Some(&db), &format!("INSERT INTO events VALUES ({n}, 'after blue restart')")).expect("write");
    maria_assert_same(&blue, &green, &db, &["events", "c"], &mut t).await;
    let counts = green.execute(Some(&db), "SELECT COUNT(*), COUNT(DISTINCT n) FROM events").expect("count");
    assert_eq!(counts.trim(), format!("{n}\t{n}"));
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_myisam_table_is_refused_by_check_and_run_with_the_fix() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM").expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["check", "--config"]).arg(t.config_path()).output().expect("check");
    let out = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{out}");
    assert!(out.contains("uses engine MyISAM") && out.contains("ENGINE = InnoDB"), "{out}");
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1);
    assert!(t.log_text().contains("ENGINE = InnoDB"), "{}", t.log_text());
}

/// `turnout check`'s exit code and report.
fn check_output(t: &Turnout) -> (Option<i32>, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["check", "--config"]).arg(t.config_path()).output().expect("check");
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
}

#[tokio::test]
async fn check_passes_a_correct_setup_and_names_a_wrong_binlog_setting_with_the_fix() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB").expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    let check = || check_output(&t);
    let (code, out) = check();
    assert_eq!(code, Some(0), "{out}");
    blue.execute(None, "SET GLOBAL binlog_row_metadata = 'MINIMAL'").expect("break it");
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("binlog_row_metadata = MINIMAL") && out.contains("SET GLOBAL binlog_row_metadata = 'FULL'"), "{out}");
}

/// The watch of a side tells turnout's writes from others' by a mark only turnout's account may set
/// there (a GTID domain on MariaDB, a GTID tag on Oracle MySQL): `check` tries it and names the grant.
#[tokio::test]
async fn check_says_whether_turnouts_writes_on_a_watched_side_can_be_marked() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB").expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[watch]\ngreen = true\n");
    let check = || check_output(&t).1;
    let out = check();
    assert!(out.contains("[watch] green: turnout's account may mark its writes on green"), "{out}");
    assert!(out.contains("[watch] blue (the rollback window): turnout's account may mark its writes on blue"), "{out}");
    let (privilege, grant) = if FLAVOR.is_mariadb() { ("SUPER, BINLOG REPLAY", "GRANT BINLOG REPLAY") } else { ("TRANSACTION_GTID_TAG", "GRANT TRANSACTION_GTID_TAG") };
    green.execute(None, &format!("REVOKE {privilege} ON *.* FROM '{}'@'%'", green.user())).expect("revoke");
    let out = check();
    assert!(out.contains("[watch] green: turnout's account may not mark its writes on green") && out.contains(grant), "{out}");
}

#[tokio::test]
async fn verify_compares_mariadb_tables_and_names_one_that_differs() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), &format!("CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB; INSERT INTO a SELECT seq, CONCAT('v', seq) FROM {}", seq(1000)))
        .expect("rows");
    let (_dir, mut t) = started(&blue, &green, &db, "").await;
    maria_assert_same(&blue, &green, &db, &["a"], &mut t).await;
    let verify = || {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["verify", "--config"]).arg(t.config_path()).output().expect("verify");
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, out, err) = verify();
    assert_eq!(code, Some(0), "{out}{err}");
    green.execute(Some(&db), "SET sql_log_bin = 0; UPDATE a SET v = 'changed' WHERE id = 500").expect("tamper");
    let (code, out, err) = verify();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("DIFFERS  `") && out.contains("`a` (blue 1000 rows, green 1000 rows)"), "{out}");
}

/// InnoDB writes only the parent's row to the binlog when a change cascades: green must cascade the
/// same way, and must not where blue's session had `foreign_key_checks = 0`.
#[tokio::test]
async fn foreign_key_cascades_happen_on_green_as_on_blue_and_unchecked_sessions_do_not_cascade() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        "CREATE TABLE parent (id INT PRIMARY KEY, code VARCHAR(10) UNIQUE) ENGINE=InnoDB;
         CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, parent_code VARCHAR(10),
           FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE,
           FOREIGN KEY (parent_code) REFERENCES parent (code) ON UPDATE CASCADE ON DELETE SET NULL) ENGINE=InnoDB;
         CREATE TABLE tree (id INT PRIMARY KEY, up INT, FOREIGN KEY (up) REFERENCES tree (id)) ENGINE=InnoDB;
         INSERT INTO parent VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
         INSERT INTO child VALUES (10, 1, 'a'), (11, 1, 'b'), (20, 2, 'b'), (30, 3, 'c'), (31, 3, NULL), (40, 4, 'd');
         INSERT INTO tree VALUES (1, NULL), (2, 1), (3, 2), (4, 1);",
    )
    .expect("schema");
    let (_dir, mut t) = started(&blue, &green, &db, "").await;
    const TABLES: &[&str] = &["parent", "child", "tree"];
    for sql in [
        // Cascaded on blue, not in the binlog: green must cascade itself.
        "DELETE FROM parent WHERE id = 1",
        "UPDATE parent SET code = 'bb' WHERE id = 2",
        "BEGIN; INSERT INTO parent VALUES (5, 'e'); INSERT INTO child VALUES (50, 5, 'e'); DELETE FROM parent WHERE code = 'c'; COMMIT",
        // Children before parents, leaf first: a higher key deleted before a lower one.
        "BEGIN; DELETE FROM tree WHERE id = 3; DELETE FROM tree WHERE id = 2; COMMIT",
        // Without checks blue leaves orphans behind; so must green.
        "SET foreign_key_checks = 0; DELETE FROM parent WHERE id = 4; INSERT INTO child VALUES (60, 99, NULL)",
        "DELETE FROM tree WHERE id = 4",
    ] {
        blue.execute(Some(&db), sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    maria_assert_same(&blue, &green, &db, TABLES, &mut t).await;
    assert_eq!(green.execute(Some(&db), "SELECT COUNT(*) FROM child WHERE id IN (40, 60)").expect("orphans").trim(), "2");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// `[tables]` patterns on MySQL name tables case-sensitively within the source database.
#[tokio::test]
async fn table_patterns_select_mysql_tables_by_their_exact_names() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        "CREATE TABLE `Orders` (id INT PRIMARY KEY) ENGINE=InnoDB; CREATE TABLE orders (id INT PRIMARY KEY) ENGINE=InnoDB;
         CREATE TABLE audit_log (id INT PRIMARY KEY) ENGINE=InnoDB;
         INSERT INTO `Orders` VALUES (1); INSERT INTO orders VALUES (2); INSERT INTO audit_log VALUES (3);",
    )
    .expect("schema");
    let (_dir, mut t) = started(&blue, &green, &db, "[tables]\ninclude = [\"Orders\", \"audit_*\"]\nexclude = [\"audit_log\"]\n").await;
    blue.execute(Some(&db), "INSERT INTO `Orders` VALUES (10); INSERT INTO orders VALUES (20); INSERT INTO audit_log VALUES (30)").expect("writes");
    maria_assert_same(&blue, &green, &db, &["Orders"], &mut t).await;
    assert_eq!(maria_rows(&green, &db, "orders"), vec!["(no table orders)".to_owned()]);
    assert_eq!(maria_rows(&green, &db, "audit_log"), vec!["(no table audit_log)".to_owned()]);
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// `teardown` removes what turnout made: the heartbeat table on both sides, the progress record and
/// turnout's database on green, the state directory; a second teardown finds nothing and succeeds.
#[tokio::test]
async fn teardown_removes_what_turnout_created_on_both_sides() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t VALUES (1)").expect("schema");
    let (_dir, mut t) = started(&blue, &green, &db, "").await;
    maria_assert_same(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    let made = |s: &MySqlServer| {
        s.execute(
            None,
            &format!("SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_NAME LIKE 'turnout%' OR TABLE_SCHEMA = 'turnout' OR TABLE_SCHEMA = '{db}' ORDER BY 1"),
        )
        .expect("tables")
    };
    assert_eq!(made(&green), format!("{db}.t\n{db}.turnout_heartbeat\nturnout.progress\n"));
    let teardown = || {
        let o =
            std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["teardown", "--yes", "--config"]).arg(t.config_path()).output().expect("teardown");
        (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let (code, out) = teardown();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("deleted the progress record"), "{out}");
    assert_eq!(made(&blue), format!("{db}.t\n"));
    assert_eq!(made(&green), format!("{db}.t\n"));
    let (code, out) = teardown();
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("deleted the progress record"), "{out}");
}

/// A row missing on green (changed behind turnout's back) stops replication naming the table, and the
/// green transaction holding the statements around it is rolled back whole — for a table whose
/// changes are folded (`t`) and one applied row by row (`u`, which has a unique key).
#[tokio::test]
async fn a_row_missing_on_green_stops_replication_and_nothing_of_its_batch_is_kept() {
    for table in ["t", "u"] {
        let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
        blue.execute(
            Some(&db),
            "CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; CREATE TABLE u (id INT PRIMARY KEY, v INT, UNIQUE KEY (id, v)) ENGINE=InnoDB;
             INSERT INTO t VALUES (1, 0), (2, 0), (3, 0); INSERT INTO u SELECT * FROM t",
        )
        .expect("schema");
        let (_dir, mut t) = started(&blue, &green, &db, "").await;
        maria_assert_same(&blue, &green, &db, &["t", "u"], &mut t).await;
        green.execute(Some(&db), &format!("SET sql_log_bin = 0; DELETE FROM {table} WHERE id = 2")).expect("tamper");
        blue.execute(
            Some(&db),
            &format!("BEGIN; UPDATE {table} SET v = 1 WHERE id = 1; UPDATE {table} SET v = 1 WHERE id = 2; UPDATE {table} SET v = 1 WHERE id = 3; COMMIT"),
        )
        .expect("writes");
        assert_eq!(wait_exit(&mut t).await, 1);
        let log = t.log_text();
        assert!(log.contains(&format!(".{table} touched")) && log.contains("rows on green, expected") && log.contains("diverged"), "{table}: {log}");
        assert_eq!(green.execute(Some(&db), &format!("SELECT id, v FROM {table} ORDER BY id")).expect("rows"), "1\t0\n3\t0\n", "{table}");
    }
}

/// A backlog of mixed changes — inserts, updates, deletes, re-inserts and moved keys of the same rows,
/// many transactions merged into each green transaction — arrives exactly, on a table whose changes
/// are folded to their net effect and on one applied in blue's order.
#[tokio::test]
async fn a_backlog_of_mixed_changes_to_the_same_rows_arrives_exactly() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        &format!(
            "CREATE TABLE f (id BIGINT UNSIGNED PRIMARY KEY, v INT, b VARBINARY(20), g INT AS (v * 2) STORED) ENGINE=InnoDB;
             CREATE TABLE o (id INT PRIMARY KEY, code VARCHAR(10) NOT NULL, UNIQUE KEY (code)) ENGINE=InnoDB;
             INSERT INTO f (id, v, b) SELECT seq, seq, NULL FROM {s50}; INSERT INTO o SELECT seq, CONCAT('c', seq) FROM {s50};",
            s50 = seq(50)
        ),
    )
    .expect("schema");
    let (_dir, mut t) = started(&blue, &green, &db, "").await;
    maria_assert_same(&blue, &green, &db, &["f", "o"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut sql = String::new();
    for round in 0..400 {
        sql.push_str("BEGIN;");
        for _ in 0..1 + next(4) {
            let (a, b) = (1 + next(60), 1 + next(60));
            sql.push_str(&match next(7) {
                0 => format!("INSERT IGNORE INTO f (id, v, b) VALUES ({a}, {round}, X'{a:02X}{round:04X}');"),
                1 => format!("UPDATE f SET v = v + 1, b = NULL WHERE id = {a};"),
                2 => format!("DELETE FROM f WHERE id = {a};"),
                3 => format!("UPDATE IGNORE f SET id = {b} WHERE id = {a};"),
                4 => format!("DELETE FROM f WHERE id = {a}; INSERT INTO f (id, v) VALUES ({a}, -{round});"),
                5 => format!("UPDATE IGNORE o SET code = CONCAT('c', {b}) WHERE id = {a};"),
                _ => format!("DELETE FROM o WHERE id = {a}; INSERT IGNORE INTO o VALUES ({a}, 'r{round}');"),
            });
        }
        sql.push_str("COMMIT;");
    }
    blue.execute(Some(&db), &sql).expect("backlog");
    t.start();
    wait_streaming(&mut t).await;
    maria_assert_same(&blue, &green, &db, &["f", "o"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// A table above `snapshot.split_mb` with an integer primary key is copied as several key ranges at
/// once — negative, sparse and the largest unsigned keys included — and arrives whole.
#[tokio::test]
async fn a_large_table_is_copied_in_primary_key_ranges_and_arrives_whole() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        &format!(
            "CREATE TABLE big (id BIGINT PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB;
             INSERT INTO big SELECT CAST(seq AS SIGNED) * 7 - 70000, REPEAT('p', 180) FROM {};
             INSERT INTO big VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max');
             CREATE TABLE ubig (id BIGINT UNSIGNED PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB;
             INSERT INTO ubig SELECT seq, REPEAT('u', 180) FROM {};
             INSERT INTO ubig VALUES (18446744073709551615, 'max');
             ANALYZE TABLE big, ubig;",
            seq(30_000),
            seq(20_000)
        ),
    )
    .expect("schema");
    let (_dir, mut t) = started(&blue, &green, &db, "[snapshot]\nsplit_mb = 1\nworkers = 3\n").await;
    maria_assert_same(&blue, &green, &db, &["big", "ubig"], &mut t).await;
    let log = t.log_text();
    let split: Vec<u32> = log
        .lines()
        .filter(|l| l.contains("copying in primary key ranges"))
        .filter_map(|l| l.split("ranges=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(split.len() == 2 && split.iter().all(|&n| n > 1), "both tables split: {split:?}\n{log}");
    assert_eq!(t.sigterm(), Some(0), "{log}");
}

/// A replicated child whose cascading foreign key points at a table `[tables]` leaves out would
/// diverge silently (the cascade is not in the binlog): check and run refuse it, naming both.
#[tokio::test]
async fn a_cascade_from_a_table_left_out_is_refused_by_check_and_run() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        "CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB;
         CREATE TABLE child (id INT PRIMARY KEY, p INT, CONSTRAINT child_p FOREIGN KEY (p) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB;
         CREATE TABLE other (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES parent (id)) ENGINE=InnoDB;",
    )
    .expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[tables]\nexclude = [\"parent\"]\n");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["check", "--config"]).arg(t.config_path()).output().expect("check");
    let out = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{out}");
    assert!(out.contains("child_p (ON DELETE CASCADE)") && out.contains("replicate") && out.contains("tables.exclude"), "{out}");
    assert!(!out.contains("other has foreign key"), "a RESTRICT key changes nothing on its own: {out}");
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1);
    assert!(t.log_text().contains("child_p (ON DELETE CASCADE)"), "{}", t.log_text());
}

/// The binlog source hands out every event that already arrived without waiting: after one `recv`,
/// `try_recv` alone yields a whole backlog, so the pipeline takes it into the next batch instead of
/// one binlog event per wake-up (which, with a fast writer on blue, kept green's batches at one
/// transaction and green ever further behind).
#[tokio::test]
async fn a_binlog_backlog_already_received_is_taken_without_waiting() {
    use turnout::testing::{mysql::MySqlSource, Source, SourceMessage};
    use turnout_decoders::{ChangeEvent, GtidState};
    let (blue, _green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(20)) ENGINE=InnoDB").expect("schema");
    let executed = if FLAVOR.is_mariadb() { "SELECT @@gtid_binlog_pos" } else { "SELECT @@GLOBAL.gtid_executed" };
    let start = GtidState::parse(blue.execute(None, executed).expect("position").trim()).expect("gtids");
    let writes: String = (1..=200).map(|i| format!("INSERT INTO t VALUES ({i}, 'n{i}');")).collect();
    blue.execute(Some(&db), &writes).expect("writes");
    let opts = mysql_async::Opts::from_url(&blue.url(&db)).expect("url");
    let mut source = MySqlSource::start(opts, 4242, start, Box::new(|_| true), Duration::from_secs(30)).await.expect("binlog dump");
    let is_commit = |m: &SourceMessage| matches!(m, SourceMessage::Event { event: ChangeEvent::Commit { .. }, .. });
    // The 200 transactions are all in blue's binlog before the dump starts.
    let mut commits = usize::from(is_commit(&source.recv().await.expect("first message")));
    let deadline = Instant::now() + WAIT;
    while commits < 200 {
        match source.try_recv().expect("try_recv") {
            Some(m) => commits += usize::from(is_commit(&m)),
            None => {
                assert!(Instant::now() < deadline, "try_recv gave {commits} of 200 commits without waiting: it does not read what arrived");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    source.close().await.expect("close");
}
