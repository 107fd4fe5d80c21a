//! Captures binlog files from a real MariaDB into `decoders/tests/fixtures/mariadb/`, covering every event
//! family MariaDB writes and every column type of `decoders::mysql::binlog`.
//!
//! Run: `cargo run -p turnout-testbed --example capture_binlog -- decoders/tests/fixtures/mariadb`, or with
//! `--mysql` as the second argument against Oracle MySQL 9.7 (`decoders/tests/fixtures/mysql97`), whose
//! scenario adds compressed transactions, PARTIAL_JSON updates, MySQL's binary JSON, VECTOR and tagged GTIDs.
//!
//! The server is a throwaway testbed server (row format, full row images, `binlog_row_metadata=FULL`,
//! GTID strict mode). Output:
//! * `mysql-bin.000001` … — the binlog files, verbatim, from `RESET MASTER` to the server's shutdown. The
//!   last file but one is written with `binlog_checksum=NONE`, the others with CRC32.
//! * `scenario.txt` — the statements run, in order, then `mariadb-binlog -vv` of every file (long lines
//!   clipped), so a reader can check the fixture tests' expectations against the server's own decoding.
#![allow(clippy::too_many_lines, reason = "a benchmark or capture script reads best top to bottom")]

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use turnout_testbed::{Flavor, MySqlServer};

/// Session settings of every batch: utf8mb4 for the emoji, zero dates allowed, UTC timestamps.
const SESSION: &str = "SET NAMES utf8mb4; SET SESSION sql_mode = ''; SET SESSION time_zone = '+00:00';";

fn enum_members(n: usize) -> String {
    (1..=n).map(|i| format!("'v{i}'")).collect::<Vec<_>>().join(",")
}

fn set_members(n: usize) -> String {
    (1..=n).map(|i| format!("'m{i}'")).collect::<Vec<_>>().join(",")
}

/// The scenario: `(comment, statements)` batches, each run as one `mariadb` client call in database `fx`.
fn scenario() -> Vec<(&'static str, String)> {
    vec![
        (
            "schema (DDL: standalone GTID + QUERY events)",
            format!(
                "CREATE TABLE ints (id INT PRIMARY KEY, t TINYINT, tu TINYINT UNSIGNED, s SMALLINT, su SMALLINT UNSIGNED, \
                   m MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, b BIGINT, bu BIGINT UNSIGNED, \
                   y YEAR, after_year INT UNSIGNED) ENGINE=InnoDB;\n\
                 CREATE TABLE nums (id INT PRIMARY KEY, f FLOAT, d DOUBLE, d65 DECIMAL(65,30), d10 DECIMAL(10,2), \
                   d5 DECIMAL(5,0) UNSIGNED, bit1 BIT(1), bit10 BIT(10), bit64 BIT(64)) ENGINE=InnoDB;\n\
                 CREATE TABLE temporal (id INT PRIMARY KEY, dt DATE, t0 TIME, t1 TIME(1), t3 TIME(3), t6 TIME(6), \
                   dt0 DATETIME, dt1 DATETIME(1), dt2 DATETIME(2), dt3 DATETIME(3), dt4 DATETIME(4), dt5 DATETIME(5), \
                   dt6 DATETIME(6), ts0 TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL, y YEAR) ENGINE=InnoDB;\n\
                 CREATE TABLE strs (id INT PRIMARY KEY, c CHAR(10) CHARACTER SET utf8mb4, \
                   vc VARCHAR(100) CHARACTER SET utf8mb4, vl VARCHAR(300) CHARACTER SET latin1, \
                   c255 CHAR(255) CHARACTER SET utf8mb4, bin BINARY(4), vb VARBINARY(10), tb TINYBLOB, mb MEDIUMBLOB, \
                   lb LONGBLOB, tt TINYTEXT, mt MEDIUMTEXT, lt LONGTEXT CHARACTER SET utf8mb4, bl BLOB, tx TEXT) ENGINE=InnoDB;\n\
                 CREATE TABLE enums (id INT PRIMARY KEY, e ENUM('small','medium','large'), s SET('a','b','c','d'), \
                   e300 ENUM({}), s64 SET({})) ENGINE=InnoDB;\n\
                 CREATE TABLE docs (id INT PRIMARY KEY, j JSON, g GEOMETRY, p POINT, v INT AS (id * 2) VIRTUAL, \
                   st INT AS (id * 3) STORED) ENGINE=InnoDB;\n\
                 CREATE TABLE plain (id INT PRIMARY KEY, note VARCHAR(20)) ENGINE=MyISAM;",
                enum_members(300),
                set_members(64)
            ),
        ),
        (
            "integers: minimums, maximums (max unsigned BIGINT), YEAR 0 and 2155, NULLs",
            "INSERT INTO ints VALUES \
               (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, \
                -9223372036854775808, 18446744073709551615, 0, 4294967295), \
               (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, 2155, 0), \
               (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
                .into(),
        ),
        (
            "floats, decimals, bits",
            "INSERT INTO nums VALUES \
               (1, 1.5, -2.25e-300, '12345678901234567890123456789012345.123456789012345678901234567890', \
                -12345678.91, 99999, b'1', b'1010101010', b'1000000000000000000000000000000000000000000000000000000000000001'), \
               (2, -0.0, 1e308, '-0.000000000000000000000000000001', -0.01, 0, b'0', b'0', 0xFFFFFFFFFFFFFFFF), \
               (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
                .into(),
        ),
        (
            "temporal: every DATETIME precision, negative TIME, zero and partial zero dates, TIMESTAMP(3)",
            "INSERT INTO temporal VALUES \
               (1, '2024-02-29', '838:59:59', '-1:00:00.5', '-00:00:01.5', '-12:34:56.789012', \
                '1000-01-01 00:00:00', '2024-01-02 03:04:05.1', '2024-01-02 03:04:05.12', '2024-01-02 03:04:05.123', \
                '2024-01-02 03:04:05.1234', '2024-01-02 03:04:05.12345', '2024-01-02 03:04:05.123456', \
                '2038-01-19 03:14:07', '2024-02-29 12:34:56.789', 1901), \
               (2, '0000-00-00', '-838:59:59', '00:00:00.1', '00:00:00.001', '-00:00:00.000001', \
                '0000-00-00 00:00:00', '9999-12-31 23:59:59.9', NULL, NULL, NULL, NULL, '9999-12-31 23:59:59.999999', \
                '0000-00-00 00:00:00', '1970-01-01 00:00:01.001', 0), \
               (3, '2024-00-00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
                .into(),
        ),
        (
            "strings: utf8mb4 with an emoji, latin1, CHAR(255) utf8mb4 (1020-byte max length), binary, blobs, texts, a 70 kB LONGBLOB",
            "INSERT INTO strs VALUES \
               (1, 'ab  ', '😀 héllo', CONVERT('café' USING latin1), 'x', 0x00010203, 0xdeadbeef, 'tiny', 'medium', \
                REPEAT('ab', 35000), 'tt', 'mt', 'long 😀', 0x00ff, 'text'), \
               (2, '', '', '', '', 'ab', '', '', '', '', '', '', '', '', ''), \
               (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
                .into(),
        ),
        (
            "ENUM and SET: 1- and 2-byte ENUMs, 1- and 8-byte SETs, the empty error value",
            "INSERT INTO enums VALUES \
               (1, 'medium', 'a,c', 'v300', 'm1,m64'), \
               (2, 'bogus', '', 'v1', ''), \
               (3, NULL, NULL, NULL, NULL);"
                .into(),
        ),
        (
            "JSON (a LONGTEXT in MariaDB), GEOMETRY, POINT, generated columns",
            "INSERT INTO docs (id, j, g, p) VALUES \
               (1, '{\"a\": [1, 2.5, null, true], \"b\": \"x\"}', ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), POINT(1, 2)), \
               (2, NULL, NULL, NULL);"
                .into(),
        ),
        (
            "multi-row UPDATE and DELETE",
            "UPDATE ints SET t = t - 1 WHERE id IN (1, 2); UPDATE strs SET vc = 'updated' WHERE id = 2; \
             DELETE FROM ints WHERE id = 3; DELETE FROM nums WHERE id IN (2, 3);"
                .into(),
        ),
        (
            "a transaction with a savepoint rolled back (rows 10 and 12 committed, 11 rolled back)",
            "BEGIN; INSERT INTO plain VALUES (99, 'myisam in trx'); INSERT INTO ints (id) VALUES (10); SAVEPOINT sp; \
             INSERT INTO ints (id) VALUES (11); ROLLBACK TO SAVEPOINT sp; INSERT INTO ints (id) VALUES (12); COMMIT;"
                .into(),
        ),
        ("a MyISAM change: the group ends in a COMMIT query, not an XID", "INSERT INTO plain VALUES (1, 'myisam');".into()),
        (
            "an XA transaction: GTID with FL_PREPARED_XA + XA_PREPARE event, then GTID with FL_COMPLETED_XA + XA COMMIT",
            "XA START 'fxa'; INSERT INTO ints (id) VALUES (20); XA END 'fxa'; XA PREPARE 'fxa'; XA COMMIT 'fxa';".into(),
        ),
        ("TRUNCATE", "TRUNCATE TABLE docs;".into()),
        (
            "ALTER TABLE ADD COLUMN, then rows with the new table map",
            "ALTER TABLE strs ADD COLUMN extra INT DEFAULT 7; INSERT INTO strs (id) VALUES (4); \
             UPDATE strs SET extra = 8 WHERE id = 4;"
                .into(),
        ),
        ("FLUSH BINARY LOGS: ROTATE, then a new file with GTID_LIST and BINLOG_CHECKPOINT", "FLUSH BINARY LOGS;".into()),
        ("a change in the second file", "INSERT INTO ints (id, b) VALUES (30, -1);".into()),
        (
            "binlog_checksum = NONE: the server rotates; the next file has no checksums",
            "SET GLOBAL binlog_checksum = NONE; INSERT INTO ints (id, b) VALUES (40, 40); DELETE FROM ints WHERE id = 40;".into(),
        ),
        (
            "back to CRC32 (rotates again), then the server shuts down: STOP at the end of the last file",
            "SET GLOBAL binlog_checksum = CRC32; INSERT INTO ints (id) VALUES (50);".into(),
        ),
    ]
}

/// What only Oracle MySQL writes, after the shared scenario's schema.
fn mysql_scenario() -> Vec<(&'static str, String)> {
    vec![
        (
            "MySQL binary JSON: nested objects and arrays, a large document; VECTOR; then typed (opaque) DECIMAL, DATETIME and TIME scalars",
            "CREATE TABLE mj (id INT PRIMARY KEY, j JSON, v VECTOR(3)) ENGINE=InnoDB; \
             INSERT INTO mj VALUES (1, '{\"a\": {\"b\": [1, -2, 3.5, \"é\", null, true, false]}, \"k\": 18446744073709551615}', STRING_TO_VECTOR('[1,2,3]')), \
               (3, JSON_OBJECT('big', REPEAT('x', 70000)), STRING_TO_VECTOR('[-0.5,1e30,0]')); \
             INSERT INTO mj VALUES (2, JSON_ARRAY(CAST(1.50 AS DECIMAL(5,2)), CAST('2024-02-29 12:34:56.789' AS DATETIME(3)), CAST('12:00:01' AS TIME)), NULL);"
                .into(),
        ),
        (
            "binlog_transaction_compression: the next transactions are zstd TRANSACTION_PAYLOAD events",
            "SET SESSION binlog_transaction_compression = ON; \
             BEGIN; INSERT INTO ints (id, b) VALUES (60, 60), (61, 61); UPDATE mj SET j = JSON_SET(j, '$.n', 1) WHERE id = 1; COMMIT; \
             INSERT INTO strs (id, lb) VALUES (62, REPEAT('compress me ', 5000));"
                .into(),
        ),
        (
            "binlog_row_value_options = PARTIAL_JSON with full row images: JSON_SET, JSON_REMOVE and JSON_REPLACE updates logged as diffs (PARTIAL_UPDATE_ROWS)",
            "SET SESSION binlog_row_value_options = 'PARTIAL_JSON'; \
             UPDATE mj SET j = JSON_SET(j, '$.a.b[0]', 7, '$.a.new', 'x', '$.a.b[9]', JSON_OBJECT('z', 1)) WHERE id = 1; \
             UPDATE mj SET j = JSON_REMOVE(j, '$.k', '$.a.b[last]') WHERE id = 1; \
             UPDATE mj SET j = JSON_REPLACE(j, '$.big', 'small') WHERE id = 3; \
             SELECT id, j FROM mj WHERE id IN (1, 3) ORDER BY id;"
                .into(),
        ),
        (
            "binlog_row_value_options = PARTIAL_JSON with a minimal row image: a JSON_SET update logged as a diff without the old document",
            "SET SESSION binlog_row_value_options = 'PARTIAL_JSON'; SET SESSION binlog_row_image = MINIMAL; \
             UPDATE mj SET j = JSON_SET(j, '$.a.b[0]', 9) WHERE id = 1;"
                .into(),
        ),
        (
            "tagged GTIDs (MySQL 8.3+): GTID_TAGGED_LOG_EVENTs for a row, a multi-statement transaction, a compressed one and DDL, \
             then untagged again; the next files' PREVIOUS_GTIDS use the tagged encoding",
            "SET SESSION gtid_next = 'AUTOMATIC:fx_tag'; \
             INSERT INTO ints (id) VALUES (70); \
             BEGIN; INSERT INTO ints (id) VALUES (71); UPDATE ints SET b = 71 WHERE id = 71; COMMIT; \
             SET SESSION binlog_transaction_compression = ON; INSERT INTO ints (id) VALUES (72); SET SESSION binlog_transaction_compression = OFF; \
             CREATE DATABASE fx_tagged; \
             SET SESSION gtid_next = 'AUTOMATIC'; INSERT INTO ints (id) VALUES (73);"
                .into(),
        ),
    ]
}

fn binlog_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.len() == 6 && x.to_string_lossy().bytes().all(|b| b.is_ascii_digit())))
        .collect();
    files.sort();
    Ok(files)
}

/// The server's own `mysqlbinlog -vv` (`mariadb-binlog` for MariaDB) of a file, long lines clipped.
fn server_decoding(server: &MySqlServer, path: &Path) -> Result<String> {
    let mut cmd = if server.flavor().is_mariadb() { Command::new("mariadb-binlog") } else { server.tool("/usr/bin/mysqlbinlog") };
    cmd.args(["--no-defaults", "-vv", "--base64-output=decode-rows"]);
    if server.flavor().is_mariadb() {
        cmd.arg("--print-table-metadata");
    }
    let out = cmd.arg(server.path_on_server(path)).output().context("running the server's binlog tool")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut clipped = String::new();
    for line in text.lines() {
        if line.starts_with("/*!") || line.starts_with("DELIMITER") || line.starts_with("SET @@session") {
            continue;
        }
        match line.char_indices().nth(240) {
            Some((i, _)) => clipped.push_str(&format!("{}… [{} bytes]\n", &line[..i], line.len())),
            None => {
                clipped.push_str(line);
                clipped.push('\n');
            }
        }
    }
    Ok(clipped)
}

fn main() -> Result<()> {
    let Some(out) = std::env::args().nth(1) else { bail!("usage: capture_binlog OUT_DIR [--mysql]") };
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let mysql = std::env::args().nth(2).as_deref() == Some("--mysql");
    let mut server = MySqlServer::start_flavor(if mysql { Flavor::MySql9_7 } else { Flavor::MariaDb10_11 }, 1)?;
    let version = server.execute(None, "SELECT VERSION()")?.trim().to_owned();
    // Start from an empty binlog: only the scenario's events.
    let reset = if mysql { "RESET BINARY LOGS AND GTIDS" } else { "RESET MASTER" };
    server.execute(None, &format!("{reset}; CREATE DATABASE fx;"))?;
    let gtids = if mysql { "--gtid-mode=ON" } else { "--gtid-strict-mode=ON" };
    let mut txt = format!(
        "# {} {version} binlog capture; see tests/examples/capture_binlog.rs\n\
         # Server: --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL {gtids}, server_id 1.\n\
         # After {reset}: CREATE DATABASE fx, then in database fx, each batch prefixed with\n# {SESSION}\n\n",
        server.flavor()
    );
    let mut batches = scenario();
    if mysql {
        // XA's refusal is the MariaDB capture's; here it would leave the rest of the scenario inside a
        // refused transaction.
        batches.retain(|(c, _)| !c.starts_with("an XA transaction"));
        // After the schema: MySQL's own events, then the shared rest (a rotate, checksums off and on).
        let at = batches.iter().position(|(c, _)| c.starts_with("FLUSH BINARY LOGS")).unwrap_or(batches.len());
        batches.splice(at..at, mysql_scenario());
    }
    for (comment, sql) in batches {
        server.execute(Some("fx"), &format!("{SESSION}\n{sql}")).with_context(|| format!("running: {comment}"))?;
        txt.push_str(&format!("-- {comment}\n{sql}\n\n"));
    }
    server.stop()?;
    let files = binlog_files(&server.binlog_dir())?;
    for old in binlog_files(&out)? {
        std::fs::remove_file(old)?;
    }
    for file in &files {
        let name = file.file_name().context("binlog file name")?;
        let copy = out.join(name);
        std::fs::copy(file, &copy)?;
        // The server's files are private to its user; the fixtures are ordinary files.
        std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        let size = std::fs::metadata(file)?.len();
        txt.push_str(&format!("\n######## {} ({size} bytes)\n", name.to_string_lossy()));
        txt.push_str(&server_decoding(&server, file)?);
        println!("{}: {size} bytes", name.to_string_lossy());
    }
    std::fs::write(out.join("scenario.txt"), txt)?;
    Ok(())
}
