//! Across the MySQL family, both ways: Oracle MySQL 9.7 → MariaDB 11.8 and MariaDB 11.8 → MySQL 9.7.
//! Blue's schema is copied where both families define it alike, every type's rows cross by their exact
//! bytes (MySQL's binary JSON as its own text, partial JSON updates included), kill -9 mid-stream
//! loses and doubles nothing, `verify --live` finds the copy equal — every row compared by the hex of
//! every column — and what has no equivalent (MariaDB's UUID and INET6, sequences, `uca1400`
//! collations; MySQL's SRID geometry and VECTOR) is refused by `check` and `run` naming each object
//! and the fix, before anything is created on green.

use crate::common;

use common::*;
use turnout_testbed::{Flavor, MySqlServer};

/// Columns of every type both families have, each table with an explicit collation both define alike
/// (MariaDB 11.8's default, `utf8mb4_uca1400_ai_ci`, has no MySQL equivalent) except `uca9`, which
/// keeps MySQL's default where MySQL is blue.
const TYPES: &str = "
CREATE TABLE ints (id BIGINT UNSIGNED PRIMARY KEY, t TINYINT, tu TINYINT UNSIGNED, s SMALLINT, su SMALLINT UNSIGNED, m MEDIUMINT,
  mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, b BIGINT, y YEAR) ENGINE=InnoDB;
CREATE TABLE nums (id INT PRIMARY KEY, f FLOAT, d DOUBLE, d65 DECIMAL(65,30), d10 DECIMAL(10,2), bit1 BIT(1), bit64 BIT(64)) ENGINE=InnoDB;
CREATE TABLE temporal (id INT PRIMARY KEY, dt DATE, t6 TIME(6), dt0 DATETIME, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL, y YEAR) ENGINE=InnoDB;
CREATE TABLE strs (id INT PRIMARY KEY, c CHAR(10) COLLATE utf8mb4_general_ci, vc VARCHAR(100) COLLATE utf8mb4_unicode_520_ci,
  vl VARCHAR(300) CHARACTER SET latin1, bin BINARY(4), vb VARBINARY(10), lb LONGBLOB, lt LONGTEXT COLLATE utf8mb4_bin,
  nb VARCHAR(20) COLLATE utf8mb4_0900_bin, UNIQUE KEY (vc)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE enums (id INT PRIMARY KEY, e ENUM('small','medium','large'), s SET('a','b','c','d')) ENGINE=InnoDB;
CREATE TABLE docs (id INT PRIMARY KEY, j JSON, p POINT, v INT AS (id * 2) VIRTUAL, st INT AS (id * 3) STORED) ENGINE=InnoDB;
CREATE TABLE `odd name` (`k 1` INT, `k``2` VARCHAR(10), note TEXT, PRIMARY KEY (`k 1`, `k``2`)) ENGINE=InnoDB;
CREATE TABLE nokey (a INT, b VARCHAR(10), j JSON) ENGINE=InnoDB;
";

const ROWS: &str = "
SET sql_mode = '';
INSERT INTO ints VALUES (18446744073709551615, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 0),
  (1, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 2155), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO nums VALUES (1, 1.5, -2.25e-300, '12345678901234567890123456789012345.123456789012345678901234567890', -12345678.91, b'1',
  b'1000000000000000000000000000000000000000000000000000000000000001'), (2, 0.1, 1e308, '-0.000000000000000000000000000001', -0.01, b'0', 0xFFFFFFFFFFFFFFFF);
INSERT INTO temporal VALUES (1, '2024-02-29', '-12:34:56.789012', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999999', '2024-02-29 12:34:56.789', 0),
  (2, '0000-00-00', '838:59:59', '0000-00-00 00:00:00', '2024-01-02 03:04:05.123456', '1970-01-01 00:00:01.001', 1901);
INSERT INTO strs VALUES (1, 'ab', '😀 héllo', CONVERT('café' USING latin1), 0x00010203, 0xdeadbeef, REPEAT('ab', 35000), 'long 😀', 'a '),
  (2, '', '', '', 'ab', '', '', '', 'a');
INSERT INTO enums VALUES (1, 'medium', 'a,c'), (2, NULL, ''), (3, 'large', 'a,b,c,d');
INSERT INTO docs (id, j, p) VALUES (1, '{\"a\": [1, 2.5, null, true, 1e300, 0.1, -0.0, 12345678901234567890, -3], \"b\": \"x\\\\u00e9\\\\n\\\\\"q\\\\\"\", \"c\": {}, \"\": []}', POINT(1, 2)),
  (2, NULL, NULL), (3, '\"just a string\"', NULL), (4, '3.25', NULL);
INSERT INTO `odd name` VALUES (1, 'a`b', 'x'), (2, 'c d', 'y');
INSERT INTO nokey VALUES (1, 'same', '{\"k\": 1}'), (1, 'same', '{\"k\": 1}'), (2, NULL, NULL);
";

const TABLES: &[&str] = &["ints", "nums", "temporal", "strs", "enums", "docs", "odd name", "nokey"];

/// Blue of `from` and green of `to` with [`TYPES`] and [`ROWS`] on blue; a MariaDB blue's database
/// defaults to a collation MySQL has too.
fn servers(from: Flavor, to: Flavor) -> (MySqlServer, MySqlServer, String) {
    let (blue, green, db) = maria_pair_of(from, to);
    if from.is_mariadb() {
        blue.execute(None, &format!("ALTER DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci")).expect("collation");
    }
    (blue, green, db)
}

async fn started(blue: &MySqlServer, green: &MySqlServer, db: &str) -> (tempfile::TempDir, Turnout) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(db), &green.url(db), "");
    t.start();
    wait_streaming(&mut t).await;
    (dir, t)
}

/// The whole path across families: schema copy, snapshot, streaming of every kind of change (MySQL's
/// partial JSON updates where MySQL is blue), kill -9 between batches, `verify --live`.
async fn every_type_crosses_exactly(from: Flavor, to: Flavor) {
    let (blue, green, db) = servers(from, to);
    blue.execute(Some(&db), TYPES).expect("schema");
    blue.execute(Some(&db), ROWS).expect("snapshot rows");
    if !from.is_mariadb() {
        // MySQL's default collation crosses too, under MariaDB's rules of the same name.
        blue.execute(Some(&db), "CREATE TABLE uca9 (k VARCHAR(20) PRIMARY KEY, n INT) ENGINE=InnoDB; INSERT INTO uca9 VALUES ('b', 1), ('a', 2)")
            .expect("uca9");
        blue.execute(None, "SET GLOBAL binlog_row_value_options = 'PARTIAL_JSON'").expect("partial JSON");
    }
    let (_dir, mut t) = started(&blue, &green, &db).await;
    let mut tables = TABLES.to_vec();
    if !from.is_mariadb() {
        tables.push("uca9");
        assert!(t.log_text().contains("follows UCA 9.0 on Oracle MySQL and UCA 14.0 on MariaDB"), "{}", t.log_text());
        blue.execute(Some(&db), "UPDATE uca9 SET n = 3 WHERE k = 'A'").expect("a key found by the collation");
    }
    maria_assert_same(&blue, &green, &db, &tables, &mut t).await;
    let rounds: [&[&str]; 3] = [
        &[
            "UPDATE ints SET t = 0, y = 2000 WHERE id IN (1, 18446744073709551615)",
            "UPDATE ints SET id = 100 WHERE id = 2",
            "UPDATE nums SET f = f * 3, d = d / 3 WHERE id = 1",
            "SET sql_mode = ''; INSERT INTO temporal VALUES (3, '2024-00-00', '-838:59:59', '2024-02-29 23:59:59', '2024-02-29 23:59:59.000001', NULL, 1999)",
            "UPDATE strs SET vc = CONCAT(vc, ' ✓'), lb = REPEAT('z', 70000), nb = 'b ' WHERE id = 1",
        ],
        &[
            "UPDATE docs SET j = JSON_SET(j, '$.c', 'é', '$.a[1]', 7) WHERE id = 1",
            "UPDATE docs SET j = JSON_REPLACE(j, '$.b', 'shorter') WHERE id = 1",
            "UPDATE docs SET j = JSON_REMOVE(j, '$.\"\"') WHERE id = 1",
            "INSERT INTO docs (id, j) VALUES (5, '[]'), (6, '{\"z\": 1, \"a\": [1.0, 2e0, -1.5e-7]}')",
            "UPDATE nokey SET b = 'changed', j = '{\"k\": 2}' WHERE a = 1 LIMIT 1",
            // Doubles of every magnitude, from MySQL's binary JSON to the text a MariaDB green keeps.
            "INSERT INTO docs (id, j) SELECT 100 + seq, JSON_ARRAY(RAND(seq) * POW(10, seq % 44 - 22e0), -RAND(seq + 1) / 3, seq / 7e0) FROM numbers",
        ],
        &[
            "UPDATE `odd name` SET `k``2` = 'moved', note = 'z' WHERE `k 1` = 1",
            "BEGIN; UPDATE strs SET vc = 'tmp' WHERE id = 1; UPDATE strs SET vc = 'x' WHERE id = 2; COMMIT",
            "DELETE FROM nokey WHERE a = 2",
            "DELETE FROM enums WHERE id = 3",
            "TRUNCATE TABLE ints",
        ],
    ];
    for round in rounds {
        for sql in round {
            let sql = sql.replace("FROM numbers", &format!("FROM {}", from.numbers(300)));
            let sql = if from.is_mariadb() { sql } else { format!("SET SESSION binlog_row_value_options = 'PARTIAL_JSON'; {sql}") };
            blue.execute(Some(&db), &sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        t.kill9();
        blue.execute(Some(&db), "INSERT INTO enums VALUES (10, 'small', 'd') ON DUPLICATE KEY UPDATE s = CONCAT(s, ',a')").expect("write while down");
        t.start();
        wait_streaming(&mut t).await;
    }
    maria_assert_same(&blue, &green, &db, &tables, &mut t).await;
    if !from.is_mariadb() {
        // Partial updates were logged as diffs, and green's text is blue's.
        assert!(blue.execute(Some(&db), "SELECT j FROM docs WHERE id = 1").expect("doc").contains("shorter"));
    }
    let (code, out) = turnout_command(&t, "verify", &["--live", "--chunk-rows", "2"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("8 tables compared, 0 differ") || out.contains("9 tables compared, 0 differ"), "{out}");
    let (code, out) = turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    // DDL is not replayed across families: its session and defaults mean something else on green.
    blue.execute(Some(&db), "ALTER TABLE enums ADD COLUMN added INT NOT NULL DEFAULT 7").expect("alter");
    assert_eq!(wait_exit(&mut t).await, 1);
    assert!(t.log_text().contains("turnout does not replay DDL across families"), "{}", t.log_text());
}

#[tokio::test]
async fn mysql_9_7_to_mariadb_11_8_copies_streams_and_verifies_every_type_exactly() {
    every_type_crosses_exactly(Flavor::MySql9_7, Flavor::MariaDb11_8).await;
}

#[tokio::test]
async fn mariadb_11_8_to_mysql_9_7_copies_streams_and_verifies_every_type_exactly() {
    every_type_crosses_exactly(Flavor::MariaDb11_8, Flavor::MySql9_7).await;
}

/// `check` fails naming each of `objects`, `run` exits naming them, and green gets no table.
async fn refused(blue: &MySqlServer, green: &MySqlServer, db: &str, objects: &[&str]) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(db), &green.url(db), "");
    let (code, out) = turnout_command(&t, "check", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("across the MySQL family"), "{out}");
    for o in objects {
        assert!(out.contains(o), "check does not name {o}:\n{out}");
    }
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    for o in objects {
        assert!(log.contains(o), "run does not name {o}:\n{log}");
    }
    assert!(log.contains("turnout copies only what both families define alike"), "{log}");
    let on_green = green.execute(Some(db), &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'")).expect("tables");
    assert_eq!(on_green.trim(), "0", "nothing is created on green");
}

#[tokio::test]
async fn mariadb_types_sequences_collations_and_function_generated_columns_mysql_lacks_are_refused_naming_each() {
    let (blue, green, db) = maria_pair_of(Flavor::MariaDb11_8, Flavor::MySql9_7);
    blue.execute(
        Some(&db),
        "CREATE TABLE hosts (id UUID PRIMARY KEY, addr INET6, v4 INET4) ENGINE=InnoDB DEFAULT COLLATE=utf8mb4_unicode_520_ci;
         CREATE TABLE names (id INT PRIMARY KEY, n VARCHAR(20)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_uca1400_ai_ci;
         CREATE TABLE docs (id INT PRIMARY KEY, j JSON, a VARCHAR(100) AS (JSON_EXTRACT(j, '$.a')) STORED, n INT AS (id * 2) VIRTUAL)
           ENGINE=InnoDB DEFAULT COLLATE=utf8mb4_unicode_520_ci;
         CREATE SEQUENCE ids;",
    )
    .expect("schema");
    refused(
        &blue,
        &green,
        &db,
        &[
            "`hosts`.`id` is MariaDB's UUID",
            "`hosts`.`addr` is MariaDB's INET6",
            "`hosts`.`v4` is MariaDB's INET4",
            "sequence `ids`",
            "collation utf8mb4_uca1400_ai_ci",
            "`names`.`n`",
            "CHAR(36)",
            "`docs`.`a` is generated as",
        ],
    )
    .await;
}

#[tokio::test]
async fn mysql_srid_geometry_vectors_invisible_and_function_generated_columns_are_refused_naming_each() {
    let (blue, green, db) = maria_pair_of(Flavor::MySql9_7, Flavor::MariaDb11_8);
    blue.execute(
        Some(&db),
        "CREATE TABLE places (id INT PRIMARY KEY, at POINT NOT NULL SRID 4326, emb VECTOR(3), secret INT INVISIBLE,
           up VARCHAR(20) AS (UPPER(CAST(id AS CHAR))) VIRTUAL) ENGINE=InnoDB",
    )
    .expect("schema");
    refused(
        &blue,
        &green,
        &db,
        &[
            "`places`.`at` is geometry restricted to SRID 4326",
            "`places`.`emb` is Oracle MySQL's VECTOR",
            "`places`.`secret` is INVISIBLE",
            "`places`.`up` is generated as",
        ],
    )
    .await;
}

/// MySQL's `utf8mb4_0900_ai_ci` crosses to MariaDB's collation of that name, whose rules differ:
/// `check` warns, and two keys distinct on blue but equal on green stop `run` naming the row — green
/// never holds one row in place of two.
#[tokio::test]
async fn mysqls_uca_9_collations_are_reported_and_keys_they_tell_apart_stop_the_copy_naming_the_row() {
    let (blue, green, db) = maria_pair_of(Flavor::MySql9_7, Flavor::MariaDb11_8);
    // U+A7C0 is distinct from 'a' under MySQL's UCA 9.0 rules, equal under MariaDB 11.8's.
    blue.execute(Some(&db), "CREATE TABLE t (k VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t VALUES ('a'), ('Ꟁ')").expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    let (code, out) = turnout_command(&t, "check", &[]).await;
    assert_eq!(code, 0, "a difference of rules is a warning:\n{out}");
    assert!(out.contains("collation utf8mb4_0900_ai_ci (column `t`.`k`, table `t`) follows UCA 9.0"), "{out}");
    assert!(out.contains("duplicate-key error naming the row"), "{out}");
    assert!(out.contains("`turnout cutover` and `turnout rollback` cross too"), "{out}");
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1);
    assert!(t.log_text().contains("Duplicate entry"), "{}", t.log_text());
}

/// The rollback window from a MariaDB green back to an Oracle MySQL blue. MariaDB keeps JSON as text:
/// a document the application writes on green is parsed into blue's JSON as MySQL parses any text
/// (keys ordered, numbers read), a document it did not touch is left alone, not parsed again, and a
/// number MySQL would round stops the way back naming it.
#[tokio::test]
async fn json_written_on_a_mariadb_green_comes_back_to_mysql_as_json_and_untouched_documents_stay_exact() {
    let (blue, green, db) = servers(Flavor::MySql9_7, Flavor::MariaDb11_8);
    blue.execute(
        Some(&db),
        "CREATE TABLE docs (id INT PRIMARY KEY, n INT NOT NULL, j JSON) ENGINE=InnoDB; \
         INSERT INTO docs VALUES (1, 0, JSON_OBJECT('price', 1.5e0, 'big', 18446744073709551615, 'tiny', -2.5e-300)), (2, 0, '{\"a\": 1}')",
    )
    .expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[cutover]\nfence = \"read-only\"\nswitch = \"none\"\n");
    t.start();
    wait_streaming(&mut t).await;
    let untouched = "SELECT j, JSON_TYPE(JSON_EXTRACT(j, '$.big')) FROM docs WHERE id = 1";
    let before = blue.execute(Some(&db), untouched).expect("document");
    assert!(before.contains("18446744073709551615") && before.contains("UNSIGNED INTEGER"), "{before}");
    let (code, out) = turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("skipping turnout's own writes"), "{out}");
    common::wait_for(&mut t, "the reverse stream", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await;
    // The application on green: the row of the untouched document changes elsewhere, twice; a new
    // document in text of its own; a document replaced.
    green
        .execute(
            Some(&db),
            "UPDATE docs SET n = 1 WHERE id = 1; INSERT INTO docs VALUES (3, 0, '{\"b\":2,  \"a\":[1.0,\"x\"]}'); \
             UPDATE docs SET j = '[true, null]' WHERE id = 2; UPDATE docs SET n = 2 WHERE id = 1",
        )
        .expect("writes on green");
    let deadline = std::time::Instant::now() + WAIT;
    while blue.execute(Some(&db), "SELECT COUNT(*) FROM docs WHERE n = 2 OR id = 3").expect("count").trim() != "2" {
        assert!(std::time::Instant::now() < deadline, "green's writes never reached blue\n{}", t.log_text());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(blue.execute(Some(&db), untouched).expect("document"), before, "a document nobody touched must stay as it was");
    let written = blue.execute(Some(&db), "SELECT id, j, JSON_TYPE(j) FROM docs WHERE id > 1 ORDER BY id").expect("documents");
    assert_eq!(written.trim(), "2\t[true, null]\tARRAY\n3\t{\"a\": [1.0, \"x\"], \"b\": 2}\tOBJECT", "{written}");
    // A number MySQL's JSON cannot hold as written (it keeps 64-bit integers and doubles) stops the
    // way back naming it, instead of rounding it on blue.
    green.execute(Some(&db), "INSERT INTO docs VALUES (4, 0, '{\"amt\": 12345678901234567.89}')").expect("a lossy document on green");
    assert_eq!(wait_exit(&mut t).await, 1);
    assert!(t.log_text().contains("number 12345678901234567.89 has no equal in MySQL's JSON"), "{}", t.log_text());
    assert_eq!(blue.execute(Some(&db), "SELECT COUNT(*) FROM docs WHERE id = 4").expect("count").trim(), "0");
}

/// A trigger moves to the side traffic moves to inside the switch, past the proof, where a failure
/// can only be completed. One the other family cannot create (MySQL's `->>` on MariaDB) is tried on a
/// scratch copy of its table before the fence, and the cutover refuses there, naming it.
#[tokio::test]
async fn a_trigger_the_other_family_cannot_create_refuses_the_cutover_before_the_fence() {
    let (blue, green, db) = servers(Flavor::MySql9_7, Flavor::MariaDb11_8);
    blue.execute(
        Some(&db),
        "CREATE TABLE docs (id INT PRIMARY KEY, j JSON, a VARCHAR(20)) ENGINE=InnoDB; \
         CREATE TRIGGER pick BEFORE INSERT ON docs FOR EACH ROW SET NEW.a = NEW.j->>'$.a'",
    )
    .expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[cutover]\nfence = \"read-only\"\nswitch = \"none\"\n");
    t.start();
    wait_streaming(&mut t).await;
    let (code, out) = turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "30s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a trigger of blue cannot be created on green") && out.contains("pick"), "{out}");
    assert!(!out.contains("fenced writes"), "{out}");
    assert_eq!(blue.execute(None, "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "0");
    let left = green.execute(Some(&db), "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ('turnout', DATABASE())").expect("triggers");
    assert_eq!(left.trim(), "0", "the trial left a trigger behind");
    assert_eq!(t.sigterm(), Some(0));
}
