//! Oracle MySQL 9.7 as blue and green (servers from the harness's Debian `sid` root file system): the
//! MySQL-family suite `mysql.rs` runs on MariaDB (every type, keys of every shape, TRUNCATE and additive
//! DDL, a transaction beyond the memory budget, kill -9 and restarts, cascades, refusals), and MySQL's own:
//! the snapshot at one GTID set, streaming by COM_BINLOG_DUMP_GTID and resuming by GTID set exactly once
//! after kill -9 with blue compressing its transactions (`binlog_transaction_compression`) — every row
//! compared by the hex of every column.

use crate::common;

/// The servers this binary's suite runs on.
const FLAVOR: turnout_testbed::Flavor = turnout_testbed::Flavor::MySql9_7;

include!("suites/mysql_family.rs");
include!("suites/divergence_family.rs");

const MYSQL_SCHEMA: &str = "
    CREATE TABLE accounts (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, balance DECIMAL(20,4),
        f FLOAT, d DOUBLE, ts TIMESTAMP(6) NULL, dt DATETIME(3), dd DATE, tm TIME(2), y YEAR, b BIT(10), e ENUM('a','b','c'),
        s SET('x','y'), j JSON, bl BLOB, bin BINARY(4), g POINT NULL);
    CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, account BIGINT UNSIGNED, what TEXT);
    CREATE TABLE keyless (a INT, b VARCHAR(10));
    INSERT INTO accounts VALUES
        (1, 'ada', 10.5, 1.5, 2.25, '2024-01-01 00:00:00.000001', '2024-02-29 12:00:00.5', '1000-01-01', '-838:59:59', 2155, b'1010101010', 'b',
         'x,y', '{\"k\": [1, 2.5, null, true, \"é\"]}', 0x00FF, 0x01000000, ST_GeomFromText('POINT(1 2)')),
        (18446744073709551615, '😀', -1, -3.4028234e38, 1.7976931348623157e308, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', 'null', NULL, NULL, NULL);
    INSERT INTO events (account, what) VALUES (1, 'opened'), (1, 'deposit');
    INSERT INTO keyless VALUES (1, 'a'), (1, 'a'), (2, NULL);";

const MYSQL_TABLES: [&str; 3] = ["accounts", "events", "keyless"];

#[tokio::test]
async fn a_mysql_9_7_blue_replicates_to_a_mysql_9_7_green_exactly_once_across_kill_9() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), MYSQL_SCHEMA).expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    // The dump thread sends heartbeats every second (a third of the receive timeout; MySQL 8.0.26+:
    // HEARTBEAT_V2 events); turnout's own heartbeat rows, which would keep the stream busy, are rare.
    let text = std::fs::read_to_string(t.config_path()).expect("config");
    std::fs::write(t.config_path(), text.replacen("[source]\n", "[source]\nreceive_timeout = \"3s\"\nheartbeat_interval = \"1h\"\n", 1)).expect("config");
    t.start();
    wait_streaming(&mut t).await;
    maria_assert_same(&blue, &green, &db, &MYSQL_TABLES, &mut t).await;

    // From here on blue compresses every transaction into one zstd TRANSACTION_PAYLOAD event.
    blue.execute(None, "SET GLOBAL binlog_transaction_compression = ON").expect("compression");
    blue.execute(
        Some(&db),
        "START TRANSACTION; UPDATE accounts SET balance = balance + 1, j = JSON_SET(j, '$.n', 7) WHERE id = 1;
         INSERT INTO events (account, what) VALUES (1, 'in a transaction'); COMMIT;
         DELETE FROM keyless WHERE a = 1 LIMIT 1; UPDATE keyless SET b = 'z' WHERE a = 2;
         UPDATE accounts SET id = 2 WHERE id = 18446744073709551615;
         REPLACE INTO events VALUES (1, 1, 'replaced');",
    )
    .expect("changes");
    maria_assert_same(&blue, &green, &db, &MYSQL_TABLES, &mut t).await;

    for round in 0..3 {
        blue.execute(Some(&db), &format!("INSERT INTO events (account, what) VALUES (1, 'before kill {round}')")).expect("write");
        t.kill9();
        blue.execute(Some(&db), &format!("INSERT INTO events (account, what) VALUES (2, 'while down {round}')")).expect("write");
        t.start();
        maria_assert_same(&blue, &green, &db, &MYSQL_TABLES, &mut t).await;
    }
    // Idle for more than twice the receive timeout: only the dump thread's heartbeats keep the
    // stream from being presumed dead.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert_eq!(t.exited(), None, "{}", t.log_text());
    blue.execute(Some(&db), "INSERT INTO events (account, what) VALUES (3, 'after idle')").expect("write");
    maria_assert_same(&blue, &green, &db, &MYSQL_TABLES, &mut t).await;
    assert!(!t.log_text().contains("presumed dead"), "{}", t.log_text());
    let counts = green.execute(Some(&db), "SELECT COUNT(*), COUNT(DISTINCT what) FROM events").expect("count");
    assert_eq!(counts.trim(), "10\t10");
    let mut payloads = 0;
    for file in blue.execute(None, "SHOW BINARY LOGS").expect("binlogs").lines().filter_map(|l| l.split('\t').next()) {
        let events = blue.execute(None, &format!("SHOW BINLOG EVENTS IN '{file}'")).expect("events");
        payloads += events.lines().filter(|l| l.contains("Transaction_payload")).count();
    }
    assert!(payloads >= 10, "blue wrote {payloads} transaction payloads");
    // With no fence (the default) a MySQL cutover cannot arm the way back: the dry run refuses,
    // naming the setting.
    let cutover = std::process::Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["cutover", "--dry-run", "--when-lag", "<1s", "--config"])
        .arg(t.config_path())
        .output()
        .expect("cutover");
    let out = String::from_utf8_lossy(&cutover.stdout).into_owned() + &String::from_utf8_lossy(&cutover.stderr);
    assert_eq!(cutover.status.code(), Some(1), "{out}");
    assert!(out.contains("needs cutover.fence = \"read-only\"") && out.contains("cutover.reverse = false"), "{out}");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// MySQL-only settings and shapes: a table whose primary key MySQL generated and made invisible
/// (`sql_generate_invisible_primary_key`) replicates with its key; then JSON updates logged as partial
/// diffs (`binlog_row_value_options = PARTIAL_JSON`) — a few hundred `JSON_SET`, `JSON_REPLACE` and
/// `JSON_REMOVE` statements of every shape, in transactions and across rows — arrive exactly, every
/// document compared by its text; and a diff logged with a minimal row image, which lacks the old
/// document, stops `run` naming `binlog_row_image = FULL` instead of being applied as a guess.
#[tokio::test]
async fn an_invisible_generated_key_and_partial_json_updates_replicate_exactly() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        "SET SESSION sql_generate_invisible_primary_key = ON;
         CREATE TABLE gipk (name VARCHAR(20), doc JSON);
         INSERT INTO gipk VALUES ('a', '{\"n\": 1, \"s\": \"long enough to be worth a diff\"}'), ('b', '[]'), ('b', '[]');
         SET SESSION sql_generate_invisible_primary_key = OFF;
         CREATE TABLE docs (id INT PRIMARY KEY, other INT, doc JSON, spare JSON);",
    )
    .expect("schema");
    let doc = r#"{"a": {"b": [1, 2, 3, "x"]}, "n": 0, "k é": {"q\\"": [true, null]}, "long": "padding padding padding padding padding"}"#;
    let rows: Vec<String> = (1..=6).map(|i| format!("({i}, {i}, '{doc}', '[1, 2]')")).collect();
    blue.execute(Some(&db), &format!("INSERT INTO docs VALUES {};", rows.join(", "))).expect("docs");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    t.start();
    wait_streaming(&mut t).await;
    maria_assert_same(&blue, &green, &db, &["gipk"], &mut t).await;
    let key =
        green.execute(Some(&db), "SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS WHERE TABLE_NAME = 'gipk' AND COLUMN_KEY = 'PRI'").expect("key");
    assert!(key.contains("my_row_id") && key.contains("INVISIBLE"), "{key}");
    blue.execute(Some(&db), "DELETE FROM gipk WHERE name = 'b' LIMIT 1; UPDATE gipk SET name = 'c' WHERE name = 'b'").expect("changes");
    maria_assert_same(&blue, &green, &db, &["gipk"], &mut t).await;

    blue.execute(None, "SET GLOBAL binlog_row_value_options = 'PARTIAL_JSON'").expect("partial json");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["check", "--config"]).arg(t.config_path()).output().expect("check");
    let out = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(out.contains("PARTIAL_JSON: JSON updates logged as diffs are applied"), "{out}");
    assert!(!out.lines().any(|l| l.contains("PARTIAL_JSON") && l.contains("FAIL")), "{out}");

    // Statements of every shape the diffs take: REPLACE of members and cells (from the start and from
    // the end), INSERT of members (in MySQL's key order, one named with a Unicode space) and of cells
    // past the end, REMOVE of both,
    // values with escapes, objects and arrays; several functions in one statement, several rows per
    // statement, several statements per transaction, another column changed alongside.
    let shapes = [
        "JSON_SET(doc, '$.n', {i})",
        "JSON_SET(doc, '$.a.b[last]', 'v{i}', '$.new{m}', {i})",
        "JSON_SET(doc, '$.a.b[99]', JSON_OBJECT('z', {i}, 'a', 'é'))",
        "JSON_REMOVE(doc, '$.new{m}')",
        "JSON_REMOVE(doc, '$.a.b[0]')",
        "JSON_REPLACE(doc, '$.\"k é\".\"q\\\\\"\"[0]', 'quote \\\" and newline \\\\n {i}')",
        "JSON_SET(doc, '$.a.b[last-1]', JSON_ARRAY({i}, 'x'), '$.long', 'short')",
        "JSON_REMOVE(JSON_SET(doc, '$.tmp', {i}), '$.tmp', '$.a.b[last]')",
        "JSON_REPLACE(doc, '$.a', JSON_OBJECT('b', JSON_ARRAY({i})))",
        // A member name with a no-break space, which MySQL prints unquoted in the diff's path.
        "JSON_SET(doc, CONCAT('$.\"', _utf8mb4 X'C2A0', 'k\"'), {i}, '$.k', -{i})",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    for batch in 0..30 {
        let mut sql = String::from("BEGIN;");
        for step in 0..10 {
            let i = batch * 10 + step;
            let shape = shapes[usize::try_from(next(shapes.len() as u64)).unwrap_or(0)].replace("{i}", &i.to_string()).replace("{m}", &(i % 3).to_string());
            let (lo, hi) = (1 + next(6), 1 + next(6));
            let other = if next(4) == 0 { ", other = other + 1" } else { "" };
            sql.push_str(&format!(" UPDATE docs SET doc = {shape}{other} WHERE id BETWEEN {} AND {};", lo.min(hi), lo.max(hi)));
        }
        sql.push_str(" UPDATE docs SET spare = JSON_SET(spare, '$[0]', 9) WHERE id = 1; COMMIT;");
        blue.execute(Some(&db), &sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    maria_assert_same(&blue, &green, &db, &["gipk", "docs"], &mut t).await;
    let partial = blue.execute(None, "SHOW BINARY LOGS").expect("binlogs");
    let logged: usize = partial
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(|file| blue.execute(None, &format!("SHOW BINLOG EVENTS IN '{file}'")).expect("events").matches("Update_rows_partial").count())
        .sum();
    assert!(logged >= 250, "only {logged} statements were logged as partial diffs");

    // A diff without its old document: refused, naming the setting.
    blue.execute(Some(&db), "SET SESSION binlog_row_image = MINIMAL; UPDATE docs SET doc = JSON_SET(doc, '$.n', -1) WHERE id = 1").expect("minimal");
    assert_eq!(wait_exit(&mut t).await, 1, "{}", t.log_text());
    assert!(t.log_text().contains("binlog_row_image = FULL"), "{}", t.log_text());
}

/// Shapes only MySQL has, each once a silent difference: a VECTOR column before latin1 CHARs (MySQL
/// lists VECTOR among the character columns, and every charset after it was read one column off, so
/// a CHAR took binary padding), a keyless table of JSON values equal as JSON but not as text (a
/// whole-row match by JSON equality could delete the wrong one), cascades the SQL layer logs itself
/// (green must not cascade again) — and lag in bytes is reported (MySQL 8.4 removed SHOW MASTER STATUS).
#[tokio::test]
async fn vector_before_latin1_json_keyless_and_logged_cascades_arrive_exact() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        "CREATE TABLE items (id INT PRIMARY KEY, emb VECTOR(2), sku CHAR(8) CHARACTER SET latin1, name VARCHAR(40) CHARACTER SET latin1);
         CREATE TABLE ev (j JSON, n INT);
         CREATE TABLE parent (id INT PRIMARY KEY, code INT UNIQUE);
         CREATE TABLE child (pcode INT, note VARCHAR(10), FOREIGN KEY (pcode) REFERENCES parent (code) ON UPDATE CASCADE ON DELETE CASCADE);
         INSERT INTO parent VALUES (1, 10), (2, 20); INSERT INTO child VALUES (10, 'a'), (10, 'b'), (20, 'c');",
    )
    .expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(
        Some(&db),
        "INSERT INTO items VALUES (1, STRING_TO_VECTOR('[1,2]'), 'AB12', 'café'), (2, NULL, 'X', NULL);
         INSERT INTO ev VALUES ('{\"a\": 1}', 1), ('{\"a\": 1.0}', 1);
         DELETE FROM ev WHERE CAST(j AS CHAR) = '{\"a\": 1.0}';
         UPDATE parent SET code = 11 WHERE id = 1; DELETE FROM parent WHERE id = 2;",
    )
    .expect("changes");
    let tables = ["items", "ev", "parent", "child"];
    maria_assert_same(&blue, &green, &db, &tables, &mut t).await;
    assert_eq!(green.execute(Some(&db), "SELECT GROUP_CONCAT(pcode ORDER BY note) FROM child").expect("child").trim(), "11,11");
    let lag = wait_for(&mut t, "lag in bytes", |t| t.status().and_then(|s| s["lag_bytes"].as_u64())).await;
    assert!(lag < 1 << 20, "lag {lag}");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// JSON holding typed scalars (`JSON_OBJECT('amt', CAST(x AS DECIMAL))`: MySQL stores the DECIMAL
/// itself inside the document) keeps every scalar's type on green, through the snapshot (which reads
/// each typed scalar's type back by path) and the stream (which has the binary document): its text
/// alone would have made a large DECIMAL a rounded DOUBLE and a date a string. A table without a
/// primary key holding such documents, and a TIMESTAMP inside a document (no SQL expression has its
/// type), are refused by name.
#[tokio::test]
async fn json_with_typed_scalars_keeps_every_type_through_the_snapshot_and_the_stream() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    let typed = |id: u32| {
        format!(
            "({id}, JSON_OBJECT('amt', CAST('12345678901234567.{id:02}' AS DECIMAL(20,2)), 'at', CAST('2024-01-02 03:04:05.123456' AS DATETIME(6)), \
             'day', CAST('2024-02-29' AS DATE), 'dur', CAST('-10:11:12.5' AS TIME(1)), 'zero', CAST(2 AS DECIMAL(1,0)), \
             'n', JSON_ARRAY(1, CAST(7 AS UNSIGNED), 2.5e0, 'x', true, null, JSON_OBJECT(), JSON_ARRAY())))"
        )
    };
    blue.execute(
        Some(&db),
        &format!(
            "CREATE TABLE tj (id INT PRIMARY KEY, j JSON);
             INSERT INTO tj VALUES {}, {}, (3, '{{\"plain\": 1.5}}'), (4, JSON_ARRAY(CAST(3 AS DECIMAL(1,0)))), (5, NULL);
             CREATE TABLE tk (n INT, j JSON);
             INSERT INTO tk VALUES (1, JSON_ARRAY(CAST('2024-02-29' AS DATE)));
             CREATE TABLE ts (id INT PRIMARY KEY, at TIMESTAMP(6)); INSERT INTO ts VALUES (1, '2024-01-02 03:04:05');",
            typed(1),
            typed(2)
        ),
    )
    .expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1, "{}", t.log_text());
    assert!(t.log_text().contains(&format!("{db}.tk hold JSON in column `j` with typed")) && t.log_text().contains("no primary key"), "{}", t.log_text());
    blue.execute(Some(&db), "ALTER TABLE tk ADD COLUMN id INT AUTO_INCREMENT PRIMARY KEY").expect("a key");
    green.execute(None, &format!("SET sql_log_bin = 0; DROP DATABASE `{db}`; CREATE DATABASE `{db}`")).expect("fresh green");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(Some(&db), &format!("INSERT INTO tj VALUES {}; UPDATE tj SET j = JSON_ARRAY(CAST('0.50' AS DECIMAL(4,2))) WHERE id = 3", typed(10)))
        .expect("typed changes");
    let types = "SELECT id, CAST(j AS CHAR), JSON_TYPE(JSON_EXTRACT(j, '$.amt')), JSON_TYPE(JSON_EXTRACT(j, '$.at')), JSON_TYPE(JSON_EXTRACT(j, '$.day')), \
                 JSON_TYPE(JSON_EXTRACT(j, '$.dur')), JSON_TYPE(JSON_EXTRACT(j, '$.zero')), JSON_TYPE(JSON_EXTRACT(j, '$.n[1]')), \
                 JSON_TYPE(JSON_EXTRACT(j, '$.n[2]')), JSON_TYPE(JSON_EXTRACT(j, '$[0]')) FROM tj ORDER BY id";
    let answer = same_answer(&blue, &green, &db, types, &mut t).await;
    assert!(answer.contains("DECIMAL\tDATETIME\tDATE\tTIME\tDECIMAL\tUNSIGNED INTEGER\tDOUBLE"), "{answer}");
    // What the stream wrote is the very document blue holds, its stored form included.
    same_answer(&blue, &green, &db, "SELECT id, JSON_STORAGE_SIZE(j) FROM tj WHERE id IN (3, 10) ORDER BY id", &mut t).await;
    same_answer(&blue, &green, &db, "SELECT id, CAST(j AS CHAR), JSON_TYPE(JSON_EXTRACT(j, '$[0]')) FROM tk ORDER BY id", &mut t).await;
    // A TIMESTAMP inside a document has no SQL expression of its type: the stream stops naming it.
    blue.execute(Some(&db), "INSERT INTO tj SELECT 20, JSON_OBJECT('ts', at) FROM ts").expect("a timestamp in a document");
    assert_eq!(wait_exit(&mut t).await, 1, "{}", t.log_text());
    assert!(t.log_text().contains("typed TIMESTAMP scalar"), "{}", t.log_text());
}

/// A TIMESTAMP column added by a blue session with `explicit_defaults_for_timestamp = OFF` is NOT NULL
/// DEFAULT CURRENT_TIMESTAMP there, filling existing rows with the statement's time: green replays the
/// ALTER with the setting MySQL logged for it (it used its own, and left the rows NULL).
#[tokio::test]
async fn an_added_timestamp_column_follows_blues_explicit_defaults_setting() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), &format!("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM {}", seq(10))).expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(
        Some(&db),
        "SET SESSION explicit_defaults_for_timestamp = OFF; SET timestamp = 1700000000; ALTER TABLE t ADD COLUMN seen TIMESTAMP; INSERT INTO t (id) VALUES (11)",
    )
    .expect("alter");
    maria_assert_same(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(blue.execute(Some(&db), "SELECT UNIX_TIMESTAMP(seen) FROM t WHERE id = 1").expect("blue").trim(), "1700000000", "the scenario itself");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// MySQL 8.0.21+ logs `CREATE TABLE … SELECT` as one transaction: `BEGIN`, the `CREATE TABLE …
/// START TRANSACTION`, the rows, `COMMIT`. A table `[tables]` leaves out passes with its rows; a
/// replicated one stops replication naming the table and the way around it, green untouched.
#[tokio::test]
async fn create_table_as_select_passes_when_left_out_and_stops_naming_a_replicated_table() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), "CREATE TABLE src (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO src VALUES (1, 'a'), (2, 'b');").expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[tables]\nexclude = [\"scratch*\"]\n");
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(Some(&db), "CREATE TABLE scratch (PRIMARY KEY (id)) SELECT * FROM src; INSERT INTO src VALUES (3, 'c');").expect("left-out copy");
    maria_assert_same(&blue, &green, &db, &["src"], &mut t).await;
    let tables = "SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> 'turnout_heartbeat'";
    assert_eq!(green.execute(Some(&db), tables).expect("tables").trim(), "src");
    blue.execute(Some(&db), "CREATE TABLE copy (PRIMARY KEY (id)) SELECT * FROM src").expect("replicated copy");
    assert_eq!(common::wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains(&format!("{db}.copy")) && log.contains("CREATE TABLE … SELECT") && log.contains("tables.exclude"), "{log}");
    assert_eq!(green.execute(Some(&db), tables).expect("tables").trim(), "src", "green must be untouched");
}
