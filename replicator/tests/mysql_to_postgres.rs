//! MySQL/MariaDB → PostgreSQL through the composed sides (`source/compose`): the real binary with a
//! MariaDB blue and a PostgreSQL green. What is built of the pair so far — the type map in `check`,
//! the refusal of what it cannot carry, a stream of turnout's own heartbeat with its position in
//! green's `turnout.progress`, a restart from there, teardown — and nothing approximate on the way.

use crate::common::{self, Turnout};
use crate::mysql_to_postgres_charsets::{blue_utf8, green_utf8};
use std::time::{Duration, Instant};
use turnout_testbed::{Flavor, MySqlServer, PgOptions, PgServer};

/// A MariaDB 10.11 blue with `schema` in a new database, and a PostgreSQL 17 green with a database
/// of the same name.
async fn pair(schema: &str) -> (MySqlServer, PgServer, String) {
    pair_of(Flavor::MariaDb10_11, schema).await
}

/// As [`pair`], with a blue of `flavor`.
pub(crate) async fn pair_of(flavor: Flavor, schema: &str) -> (MySqlServer, PgServer, String) {
    let (blue, green) = std::thread::scope(|s| {
        let b = s.spawn(|| MySqlServer::start_flavor(flavor, 1).expect("blue"));
        let g = s.spawn(|| PgServer::start_with(PgOptions::new(17)).expect("green"));
        (b.join().expect("blue thread"), g.join().expect("green thread"))
    });
    let db = blue.create_database("app").expect("db");
    blue.execute(Some(&db), &format!("SET NAMES utf8mb4; {schema}")).expect("schema");
    green.execute("postgres", &format!("CREATE DATABASE \"{db}\"")).await.expect("green db");
    (blue, green, db)
}

/// The first column of every row `sql` returns on green, or `None` when the query fails (a table
/// green does not have).
pub(crate) async fn green_column(green: &PgServer, db: &str, sql: &str) -> Option<Vec<String>> {
    let client = green.connect(db).await.expect("green");
    let messages = client.simple_query(sql).await.ok()?;
    Some(
        messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect(),
    )
}

/// An application on blue that runs `turn(n)` (a transaction's SQL) for n = 1, 2, … with a short
/// pause between turns, acknowledging each turn blue committed; it stops at the first error.
pub(crate) fn turns(url: String, turn: impl Fn(i64) -> String + Send + 'static) -> common::Writer<i64> {
    common::Writer::start(move |log| async move {
        use mysql_async::prelude::Queryable;
        let opts = mysql_async::Opts::from_url(&url).expect("url");
        let mut conn = mysql_async::Conn::new(opts).await.expect("blue");
        let mut n: i64 = 0;
        while log.running() {
            n += 1;
            match conn.query_drop(turn(n)).await {
                Ok(()) => log.acked(n),
                Err(e) => {
                    log.failed(format!("turn {n}: {e}"));
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    })
}

/// Each of `tables`' row count on blue, as `table:count`.
pub(crate) fn blue_counts(blue: &MySqlServer, db: &str, tables: &[&str]) -> Vec<String> {
    tables.iter().map(|t| format!("{t}:{}", blue.execute(Some(db), &format!("SELECT COUNT(*) FROM {t}")).expect("blue count").trim())).collect()
}

/// Each of `tables`' row count on green, as `table:count`.
pub(crate) async fn green_counts(green: &PgServer, db: &str, tables: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for t in tables {
        let n = green_column(green, db, &format!("SELECT count(*)::text FROM \"{db}\".{t}")).await.unwrap_or_default().join("");
        out.push(format!("{t}:{n}"));
    }
    out
}

/// Blue's heartbeat row as text.
fn blue_heartbeat(blue: &MySqlServer, db: &str) -> String {
    blue.execute(Some(db), "SELECT CONCAT(id, '|', at_us) FROM turnout_heartbeat ORDER BY id").expect("blue's heartbeat").trim().to_owned()
}

/// Green's copy of the heartbeat row as text, if it has one.
async fn green_heartbeat(green: &PgServer, db: &str) -> Option<String> {
    let client = green.connect(db).await.expect("green");
    let rows = client.simple_query(&format!("SELECT id::text || '|' || at_us::text FROM \"{db}\".turnout_heartbeat ORDER BY id")).await.ok()?;
    common::first_value::<String>(&rows)
}

/// Green's recorded position of the stream, as JSON text.
async fn recorded(green: &PgServer, db: &str) -> Option<String> {
    let client = green.connect(db).await.expect("green");
    let rows = client.simple_query("SELECT position FROM turnout.progress").await.ok()?;
    common::first_value::<String>(&rows)
}

/// Waits until green's heartbeat row is blue's, text for text.
async fn heartbeat_arrives(blue: &MySqlServer, green: &PgServer, db: &str, t: &mut Turnout) -> String {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let on_blue = blue_heartbeat(blue, db);
        if !on_blue.is_empty() && green_heartbeat(green, db).await.as_deref() == Some(on_blue.as_str()) {
            return on_blue;
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "green never held blue's heartbeat {on_blue}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_prints_the_type_map_counts_affected_rows_and_run_refuses_what_it_cannot_carry_naming_it() {
    let (blue, green, db) = pair(
        "SET SESSION sql_mode = ''; \
         CREATE TABLE t (id INT PRIMARY KEY, big BIGINT UNSIGNED, note VARCHAR(20), d DATE, c LINESTRING, twice INT AS (id * 2) STORED) \
           ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
         INSERT INTO t (id, big, note, d, c) VALUES (1, 2, CONCAT('a', CHAR(0), 'b'), '0000-00-00', ST_GeomFromText('LINESTRING(0 0, 1 1)')), (2, 3, 'ok', '2024-02-29', NULL)",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_ne!(code, 0, "{out}");
    // MariaDB prints a display width.
    assert!(out.contains(&format!("{db}.t.id: int(11) → integer (exact)")), "{out}");
    assert!(out.contains(&format!("{db}.t.big: bigint(20) unsigned → numeric(20,0) (exact)")), "{out}");
    // Lossy columns with the rows on blue that hold what green cannot.
    assert!(out.contains(&format!("{db}.t.note: varchar(20) → varchar(20) (lossy): 1 row(s) on blue hold a NUL byte")), "{out}");
    assert!(out.contains(&format!("{db}.t.d: date → date (lossy): 1 row(s) on blue hold a zero date")), "{out}");
    // What the map lacks, and a generated column, are refused by name.
    assert!(out.contains(&format!("{db}.t.c: linestring")) && out.contains("does not carry linestring from MySQL/MariaDB to PostgreSQL"), "{out}");
    assert!(out.contains("does not carry generated int(11)"), "{out}");
    // Blue's own findings come first: the binlog settings turnout reads with.
    assert!(out.contains("blue (MySQL/MariaDB)") && out.contains("binlog_format"), "{out}");
    t.start();
    let code = common::wait_exit(&mut t).await;
    let log = t.log_text();
    assert_ne!(code, 0, "{log}");
    assert!(log.contains(&format!("column c of {db}.t is linestring on blue")), "{log}");
    // Nothing was made on green.
    assert_eq!(recorded(&green, &db).await, None);
    // Without the refused columns, the affected rows still stop the copy, counted.
    blue.execute(Some(&db), "ALTER TABLE t DROP COLUMN c, DROP COLUMN twice").expect("alter");
    t.start();
    let code = common::wait_exit(&mut t).await;
    let log = t.log_text();
    assert_ne!(code, 0, "{log}");
    assert!(log.contains(&format!("1 row(s) of {db}.t hold a NUL byte in note, which green cannot hold")), "{log}");
    assert_eq!(recorded(&green, &db).await, None);
}

/// Every column of the corpus table `types`: blue's canonical text of it, and green's SQL for the same
/// text.
pub(crate) const CORPUS: &[(&str, &str, &str)] = &[
    ("i1", "TINYINT", "i1::text"),
    ("u1", "TINYINT UNSIGNED", "u1::text"),
    ("flag", "TINYINT(1)", "flag::text"),
    ("i2", "SMALLINT", "i2::text"),
    ("u2", "SMALLINT UNSIGNED", "u2::text"),
    ("i3", "MEDIUMINT", "i3::text"),
    ("u3", "MEDIUMINT UNSIGNED", "u3::text"),
    ("i4", "INT", "i4::text"),
    ("u4", "INT UNSIGNED", "u4::text"),
    ("i8", "BIGINT", "i8::text"),
    ("u8", "BIGINT UNSIGNED", "u8::text"),
    ("dec", "DECIMAL(65,30)", "dec::text"),
    ("money", "DECIMAL(10,2) UNSIGNED", "money::text"),
    ("f", "FLOAT", "encode(float4send(f), 'hex')"),
    ("dbl", "DOUBLE", "encode(float8send(dbl), 'hex')"),
    ("d", "DATE", "to_char(d, 'YYYY-MM-DD')"),
    ("dt", "DATETIME(6)", "to_char(dt, 'YYYY-MM-DD HH24:MI:SS.US')"),
    ("ts", "TIMESTAMP(6) NULL", "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"),
    ("tm", "TIME(6)", "(extract(epoch FROM tm) * 1000000)::bigint::text"),
    ("y", "YEAR", "y::text"),
    ("vc", "VARCHAR(8)", "vc"),
    ("ch", "CHAR(4)", "ch"),
    ("tx", "TEXT", "tx"),
    ("vb", "VARBINARY(8)", "encode(vb, 'hex')"),
    ("bn", "BINARY(4)", "encode(bn, 'hex')"),
    ("bl", "BLOB", "encode(bl, 'hex')"),
    ("bits", "BIT(13)", "bits::text"),
    ("pt", "POINT", "encode(float8send(pt[0]), 'hex') || ',' || encode(float8send(pt[1]), 'hex')"),
];

/// Rows 1–4 of the corpus: the types' minima, maxima, NULLs and odd values (`TINYINT(1)` holding 2 and
/// −1, the smallest subnormals, YEAR 0, a padded BINARY, NUL bytes in binary strings, 4-byte UTF-8).
const CORPUS_ROWS: &str = "\
    (1, -128, 0, -1, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, \
     -99999999999999999999999999999999999.999999999999999999999999999999, 0.00, -3.402823466E+38, -1.7976931348623157E+308, \
     '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', '-838:59:59.000000', 1901, '', '', '', X'', X'00', X'', \
     b'0', ST_GeomFromText('POINT(0 0)')), \
    (2, 127, 255, 2, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, \
     99999999999999999999999999999999999.999999999999999999999999999999, 99999999.99, 3.402823466E+38, 1.7976931348623157E+308, \
     '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '838:59:59.000000', 2155, 'hé😀 ok!', 'é  ', REPEAT('x', 3000), \
     X'00FF00', X'61', X'000102', b'1111111111111', ST_GeomFromText('POINT(1e300 -2.2250738585072014e-308)')), \
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, \
     NULL, NULL, NULL, NULL, NULL, NULL), \
    (4, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0.000000000000000000000000000001, 0.01, 1.401298464324817E-45, 4.9406564584124654E-324, \
     '2024-02-29', '2024-02-29 12:00:00.000001', '2024-02-29 12:00:00.500000', '00:00:00.500000', 2024, 'a''b\\c', ' ab ', 'line\nbreak', \
     X'0000', X'00000000', X'FF', b'1010000000001', ST_GeomFromText('POINT(0.1 -73.98)'))";

/// Blue's canonical text of each corpus row (`N` for NULL), read by MySQL's binary protocol.
async fn blue_corpus(blue: &MySqlServer, db: &str) -> Vec<String> {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::from_url(blue.url(db)).await.expect("blue");
    conn.query_drop("SET time_zone = '+00:00'").await.expect("utc");
    let columns = CORPUS.iter().map(|(c, _, _)| format!("`{c}`")).collect::<Vec<_>>().join(", ");
    let rows: Vec<mysql_async::Row> = conn.exec(format!("SELECT id, {columns} FROM types ORDER BY id"), ()).await.expect("blue's rows");
    let binary = ["vb", "bn", "bl"];
    let mut out = Vec::new();
    for row in rows {
        let values = row.unwrap();
        let mut text = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            let name = if i == 0 { "id" } else { CORPUS[i - 1].0 };
            text.push(match v {
                mysql_async::Value::NULL => "N".to_owned(),
                mysql_async::Value::Int(n) => n.to_string(),
                mysql_async::Value::UInt(n) => n.to_string(),
                mysql_async::Value::Float(f) => format!("{:08x}", f.to_bits()),
                mysql_async::Value::Double(f) => format!("{:016x}", f.to_bits()),
                mysql_async::Value::Bytes(b) if binary.contains(&name) => b.iter().map(|x| format!("{x:02x}")).collect(),
                mysql_async::Value::Bytes(b) if name == "bits" => format!("{:013b}", b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x))),
                // SRID (4 bytes), byte order, type (4 bytes), x, y: the coordinates' IEEE bits.
                mysql_async::Value::Bytes(b) if name == "pt" => {
                    let coordinate = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
                    format!("{:016x},{:016x}", coordinate(9), coordinate(17))
                }
                mysql_async::Value::Bytes(b) => String::from_utf8(b).expect("utf-8"),
                mysql_async::Value::Date(y, mo, d, h, mi, s, us) if name == "d" => {
                    let _ = (h, mi, s, us);
                    format!("{y:04}-{mo:02}-{d:02}")
                }
                mysql_async::Value::Date(y, mo, d, h, mi, s, us) => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"),
                mysql_async::Value::Time(neg, days, h, m, s, us) => {
                    let micros = ((i64::from(days) * 24 + i64::from(h)) * 3600 + i64::from(m) * 60 + i64::from(s)) * 1_000_000 + i64::from(us);
                    (if neg { -micros } else { micros }).to_string()
                }
            });
        }
        out.push(text.join("|"));
    }
    out
}

/// Green's canonical text of each corpus row.
async fn green_corpus(green: &PgServer, db: &str) -> Vec<String> {
    let columns = CORPUS.iter().map(|(_, _, sql)| format!("COALESCE({sql}, 'N')")).collect::<Vec<_>>().join(" || '|' || ");
    let sql = format!("SELECT id::text || '|' || {columns} FROM \"{db}\".types ORDER BY id");
    green_column(green, db, &sql).await.unwrap_or_else(|| vec!["(no table types on green)".into()])
}

/// Waits until green's corpus is blue's, text for text (whichever side was written).
pub(crate) async fn corpus_arrives(blue: &MySqlServer, green: &PgServer, db: &str, t: &mut Turnout) {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (b, g) = (blue_corpus(blue, db).await, green_corpus(green, db).await);
        if b == g {
            return;
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code}\nblue {b:#?}\ngreen {g:#?}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "blue's and green's corpus never became equal:\nblue {b:#?}\ngreen {g:#?}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every type of the map at its edges, copied and then streamed (inserts of the same values, updates,
/// deletes, a kill -9 between), compared by a canonical text of every value — floats by their bits —
/// and then a zero date written on blue stops the stream naming row and column, green unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn every_mapped_type_arrives_exactly_by_the_copy_and_by_the_stream_and_a_zero_date_stops_it_by_name() {
    corpus_on(Flavor::MariaDb10_11).await;
}

/// The same corpus from an Oracle MySQL 9.7 blue.
#[tokio::test(flavor = "multi_thread")]
async fn every_mapped_type_arrives_exactly_from_oracle_mysql_9_7() {
    corpus_on(Flavor::MySql9_7).await;
}

/// A pair whose blue holds the corpus table `types` with rows 1–4; the corpus's column list.
pub(crate) async fn corpus_pair(flavor: Flavor) -> (MySqlServer, PgServer, String, String) {
    let columns = CORPUS.iter().map(|(c, ty, _)| format!("`{c}` {ty}")).collect::<Vec<_>>().join(", ");
    let names = CORPUS.iter().map(|(c, _, _)| format!("`{c}`")).collect::<Vec<_>>().join(", ");
    let schema = format!(
        "CREATE TABLE types (id INT PRIMARY KEY, {columns}) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; INSERT INTO types (id, {names}) VALUES {CORPUS_ROWS}"
    );
    let (blue, green, db) = pair_of(flavor, &schema).await;
    (blue, green, db, names)
}

async fn corpus_on(flavor: Flavor) {
    let (blue, green, db, names) = corpus_pair(flavor).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    common::wait_streaming(&mut t).await;
    corpus_arrives(&blue, &green, &db, &mut t).await;
    // The same values through the stream.
    blue.execute(Some(&db), &format!("INSERT INTO types (id, {names}) SELECT id + 10, {names} FROM types WHERE id <= 4")).expect("stream the corpus");
    corpus_arrives(&blue, &green, &db, &mut t).await;
    t.kill9();
    blue.execute(
        Some(&db),
        "SET NAMES utf8mb4; UPDATE types SET u8 = 18446744073709551614, `dec` = -`dec`, f = -f, tm = '-00:00:00.000001', vc = 'é', \
           bn = X'FFFFFFFF' WHERE id = 12; \
         DELETE FROM types WHERE id = 11; UPDATE types SET id = 21 WHERE id = 13",
    )
    .expect("writes while turnout is down");
    t.start();
    common::wait_streaming(&mut t).await;
    corpus_arrives(&blue, &green, &db, &mut t).await;
    // turnout's own verify agrees with the canonical comparison above.
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    // A zero date stops the stream, naming the row and the column; green keeps what it had.
    let before = green_corpus(&green, &db).await;
    blue.execute(Some(&db), "SET SESSION sql_mode = ''; INSERT INTO types (id, d) VALUES (99, '0000-00-00')").expect("a zero date");
    let code = common::wait_exit(&mut t).await;
    let log = t.log_text();
    assert_ne!(code, 0, "{log}");
    assert!(log.contains(&format!("{db}.types.d (id = 99) holds '0000-00-00' on blue, which PostgreSQL cannot hold exactly as date")), "{log}");
    assert_eq!(green_corpus(&green, &db).await, before, "nothing of the refused transaction reached green");
}

/// Every row of blue's `t` as text, sorted.
fn blue_rows(blue: &MySqlServer, db: &str) -> Vec<String> {
    let out = blue.execute(Some(db), "SELECT CONCAT(id, '|', IFNULL(n, 'N')) FROM t").expect("blue's rows");
    let mut rows: Vec<String> = out.lines().map(str::to_owned).collect();
    rows.sort();
    rows
}

/// Every row of green's `t` as text, sorted.
async fn green_rows(green: &PgServer, db: &str) -> Vec<String> {
    let sql = format!("SELECT id::text || '|' || COALESCE(n::text, 'N') FROM \"{db}\".t");
    let mut rows = green_column(green, db, &sql).await.unwrap_or_else(|| vec!["(no table t on green)".into()]);
    rows.sort();
    rows
}

/// Waits until green's `t` holds blue's rows, text for text.
async fn rows_arrive(blue: &MySqlServer, green: &PgServer, db: &str, t: &mut Turnout) {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (b, g) = (blue_rows(blue, db), green_rows(green, db).await);
        if b == g {
            return;
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "green never held blue's rows: blue {b:?}, green {g:?}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The composition end to end: a MariaDB blue's table of integers copied and streamed into a
/// PostgreSQL green — inserts, updates (a key among them), deletes, NULLs, the extremes of both
/// types, a multi-statement transaction — across a kill -9 and a start from green's record, then
/// teardown.
#[tokio::test(flavor = "multi_thread")]
async fn a_mariadb_blue_streams_into_a_postgresql_green_through_the_composed_sides_and_resumes_from_green() {
    let (blue, green, db) = pair(
        "CREATE TABLE t (id INT PRIMARY KEY, n BIGINT) ENGINE = InnoDB; \
         INSERT INTO t VALUES (1, 10), (2, NULL), (-2147483648, -9223372036854775808)",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    // One heartbeat per start: blue's row then stays until the next start.
    std::fs::write(t.config_path(), std::fs::read_to_string(t.config_path()).expect("config").replace("[target]", "heartbeat_interval = \"1h\"\n[target]"))
        .expect("config");
    t.start();
    common::wait_streaming(&mut t).await;
    rows_arrive(&blue, &green, &db, &mut t).await;
    let first = heartbeat_arrives(&blue, &green, &db, &mut t).await;
    let at_first = recorded(&green, &db).await.expect("green records the stream's position");
    assert!(at_first.contains("Binlog"), "a binlog position: {at_first}");
    blue.execute(
        Some(&db),
        "INSERT INTO t VALUES (2147483647, 9223372036854775807), (3, 3); UPDATE t SET n = NULL WHERE id = 1; \
         UPDATE t SET n = 7 WHERE id = 2; UPDATE t SET id = 4 WHERE id = 3; DELETE FROM t WHERE id = -2147483648; \
         START TRANSACTION; INSERT INTO t VALUES (5, 5); UPDATE t SET n = n + 1 WHERE id = 5; DELETE FROM t WHERE id = 4; COMMIT",
    )
    .expect("writes");
    rows_arrive(&blue, &green, &db, &mut t).await;
    // kill -9, writes while turnout is down, then a start from green's record: each arrives once.
    t.kill9();
    blue.execute(Some(&db), "UPDATE t SET n = n * 2 WHERE n IS NOT NULL AND id = 5; INSERT INTO t VALUES (6, 6)").expect("writes while down");
    t.start();
    common::wait_streaming(&mut t).await;
    rows_arrive(&blue, &green, &db, &mut t).await;
    assert!(green_rows(&green, &db).await.contains(&"5|12".to_owned()), "the doubling applied exactly once");
    let second = heartbeat_arrives(&blue, &green, &db, &mut t).await;
    assert_ne!(first, second, "a new start writes a new heartbeat");
    let at_second = recorded(&green, &db).await.expect("the record stays");
    assert_ne!(at_first, at_second, "green's record moved with the stream");
    let status = t.status().expect("status");
    assert_eq!(status["phase"], "streaming", "{status}");
    blue.execute(Some(&db), "INSERT INTO t VALUES (7, 7)").expect("a write");
    rows_arrive(&blue, &green, &db, &mut t).await;
    // verify: blue's snapshot converted by the type map against green's canonical text, equal; a
    // value changed on green alone differs.
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    green.execute(&db, &format!("UPDATE \"{db}\".t SET n = 999 WHERE id = 7")).await.expect("tamper with green");
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DIFFERS") && out.contains(&format!("{db}.t")), "{out}");
    green.execute(&db, &format!("UPDATE \"{db}\".t SET n = 7 WHERE id = 7")).await.expect("green mended");
    // A table left out while blue created and filled it, then let in: its rows before the stream's
    // position never reached green, and its first change stops the stream, naming it.
    t.sigterm();
    let config = std::fs::read_to_string(t.config_path()).expect("config");
    std::fs::write(t.config_path(), format!("{config}\n[tables]\nexclude = [\"{db}.later\"]\n")).expect("a narrower selection");
    t.start();
    common::wait_streaming(&mut t).await;
    blue.execute(Some(&db), "CREATE TABLE later (id INT PRIMARY KEY) ENGINE = InnoDB; INSERT INTO later VALUES (1); INSERT INTO t VALUES (8, 8)")
        .expect("a new table");
    rows_arrive(&blue, &green, &db, &mut t).await;
    t.sigterm();
    std::fs::write(t.config_path(), &config).expect("the selection widened");
    t.start();
    common::wait_streaming(&mut t).await;
    blue.execute(Some(&db), "INSERT INTO later VALUES (2)").expect("a write to the table let in");
    assert_ne!(common::wait_exit(&mut t).await, 0);
    assert!(t.log_text().contains(&format!("the table selection now includes {db}.later, which the copy to green did not copy")), "{}", t.log_text());
    // Teardown drops what the stream made on both sides.
    let (code, out) = common::turnout_command(&t, "teardown", &["--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(recorded(&green, &db).await, None, "{out}");
    assert_eq!(green_heartbeat(&green, &db).await, None, "{out}");
    let left = blue.execute(Some(&db), "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'turnout_heartbeat'").expect("blue");
    assert_eq!(left.trim(), "0", "{out}");
}

/// Keys and behaviour: unique, prefix and secondary indexes created on green, a FULLTEXT index named
/// for the operator, a foreign key created (its actions: `mysql_to_postgres_actions.rs`),
/// `AUTO_INCREMENT` as an identity that starts where blue's counter is; the rows stream exactly
/// through the unique keys.
#[tokio::test(flavor = "multi_thread")]
async fn keys_indexes_and_counters_reach_green() {
    let (blue, green, db) = pair(
        "CREATE TABLE parent (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, code VARCHAR(10) NOT NULL, name VARCHAR(100), \
           UNIQUE KEY code_uq (code), KEY name_prefix (name(4)), FULLTEXT KEY name_text (name)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
         CREATE TABLE child (id INT AUTO_INCREMENT PRIMARY KEY, parent_id BIGINT UNSIGNED NOT NULL, \
           CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE = InnoDB; \
         INSERT INTO parent (code, name) VALUES ('a', 'alpha'), ('b', 'beta'); INSERT INTO child (parent_id) VALUES (1), (1), (2)",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert!(out.contains(&format!("{db}.parent.id: bigint(20) unsigned → bigint (lossy: a key: bigint like every key")), "{out}");
    assert!(out.contains(&format!("{db}.child.parent_id: bigint(20) unsigned → bigint (lossy: a key")), "{out}");
    assert!(out.contains("FULLTEXT index name_text"), "{out}");
    assert_eq!(code, 0, "{out}");
    t.start();
    common::wait_streaming(&mut t).await;
    blue.execute(
        Some(&db),
        "INSERT INTO parent (code, name) VALUES ('c', 'gamma'); UPDATE parent SET code = 'z' WHERE id = 1; INSERT INTO child (parent_id) VALUES (3)",
    )
    .expect("writes");
    let rows = async |sql: String| green_column(&green, &db, &sql).await.expect("green query");
    let deadline = Instant::now() + common::WAIT;
    while rows(format!("SELECT count(*)::text FROM \"{db}\".child")).await != vec!["4".to_owned()] {
        assert!(t.exited().is_none() && Instant::now() < deadline, "the child's rows never arrived\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        rows(format!("SELECT id || ':' || code || ':' || name FROM \"{db}\".parent ORDER BY id")).await,
        vec!["1:z:alpha".to_owned(), "2:b:beta".into(), "3:c:gamma".into()]
    );
    let indexes = rows(format!("SELECT indexdef FROM pg_indexes WHERE schemaname = '{db}' AND tablename = 'parent' ORDER BY indexname")).await.join("\n");
    assert!(indexes.contains(&format!("CREATE UNIQUE INDEX parent_code_uq ON {db}.parent USING btree (code)")), "{indexes}");
    assert!(indexes.contains("USING btree (\"left\"((name)::text, 4))"), "{indexes}");
    assert!(!indexes.contains("name_text"), "{indexes}");
    let fk =
        rows(format!("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'child_parent' AND connamespace = '\"{db}\"'::regnamespace")).await;
    assert_eq!(fk, vec![format!("FOREIGN KEY (parent_id) REFERENCES {db}.parent(id) ON UPDATE RESTRICT ON DELETE RESTRICT")]);
    // The identity starts where blue's counter stood at the copy (3; the stream's explicit ids do not move it).
    let next = rows(format!("SELECT nextval(pg_get_serial_sequence('\"{db}\".parent', 'id'))::text")).await;
    assert_eq!(next, vec!["3".to_owned()], "parent.id is an identity restarted at blue's AUTO_INCREMENT");
    t.sigterm();
}

/// A table green already has would take blue's rows under green's own types (a narrower scale rounds
/// without an error): the copy is refused before anything is written, naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_green_already_has_is_refused_before_anything_is_copied() {
    let (blue, green, db) = pair("CREATE TABLE t (id INT PRIMARY KEY, n DECIMAL(12,4)) ENGINE = InnoDB; INSERT INTO t VALUES (1, 1.2345)").await;
    green.execute(&db, &format!("CREATE SCHEMA \"{db}\"; CREATE TABLE \"{db}\".t (id integer PRIMARY KEY, n numeric(12,2))")).await.expect("green's own table");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    assert_ne!(common::wait_exit(&mut t).await, 0);
    let log = t.log_text();
    assert!(log.contains(&format!("green already has {db}.t: the copy from another engine creates green's tables itself")), "{log}");
    let client = green.connect(&db).await.expect("green");
    let rows = client.simple_query(&format!("SELECT count(*)::text FROM \"{db}\".t")).await.expect("green's table");
    assert_eq!(common::first_value::<String>(&rows).as_deref(), Some("0"), "nothing was copied");
    assert_eq!(recorded(&green, &db).await, None, "no position was recorded");
}

/// `ENUM` and `SET` (sakila's `rating` and `special_features` among them): members with a quote, a
/// comma, a backslash and non-ASCII letters, blue's empty error value, NULLs — copied and streamed
/// (inserts, an update, a delete) as the text blue prints, kept to the members by green's CHECK.
async fn enum_and_set_on(flavor: Flavor) {
    let (blue, green, db) = pair_of(
        flavor,
        "CREATE TABLE e (id INT PRIMARY KEY, r ENUM('G','PG','PG-13','R','NC-17','it''s','a,b','back\\\\slash','Ünï'), \
           s SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes'), n ENUM('x','Y') NOT NULL) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
         INSERT INTO e VALUES (1, 'G', 'Trailers,Deleted Scenes', 'x'), (2, NULL, '', 'Y'), \
           (3, 'it''s', 'Behind the Scenes,Commentaries,Trailers', 'x')",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    common::wait_streaming(&mut t).await;
    blue.execute(
        Some(&db),
        "INSERT INTO e VALUES (4, 'a,b', NULL, 'Y'), (5, 'Ünï', 'Trailers,Commentaries,Deleted Scenes,Behind the Scenes', 'x'), \
           (6, 'back\\\\slash', 'Commentaries', 'x'); \
         UPDATE e SET r = 'NC-17', s = '' WHERE id = 1; DELETE FROM e WHERE id = 2; \
         SET SESSION sql_mode = ''; INSERT INTO e VALUES (7, 'bogus', 'Trailers', 'x')",
    )
    .expect("streamed rows");
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (b, g) = (blue_utf8(&blue, &db, "e", &["r", "s", "n"]), green_utf8(&green, &db, "e", &["r", "s", "n"]).await);
        if b == g {
            assert_eq!(b.len(), 6, "{b:?}");
            assert!(b.iter().any(|r| r.starts_with("7||")), "blue's error value is the empty string: {b:?}");
            break;
        }
        assert!(t.exited().is_none(), "{}", t.log_text());
        assert!(Instant::now() < deadline, "green never held blue's members: blue {b:?}, green {g:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    // Green keeps to blue's members: a value blue could not hold is refused there.
    let client = green.connect(&db).await.expect("green");
    assert!(client.simple_query(&format!("INSERT INTO \"{db}\".e (id, r, n) VALUES (99, 'X', 'x')")).await.is_err(), "a non-member on green");
    assert!(client.simple_query(&format!("INSERT INTO \"{db}\".e (id, s, n) VALUES (98, 'Trailers,Nope', 'x')")).await.is_err(), "a non-member in a SET");
    t.sigterm();
}

#[tokio::test(flavor = "multi_thread")]
async fn enum_and_set_arrive_as_the_text_blue_prints_from_mariadb() {
    enum_and_set_on(Flavor::MariaDb10_11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn enum_and_set_arrive_as_the_text_blue_prints_from_oracle_mysql_9_7() {
    enum_and_set_on(Flavor::MySql9_7).await;
}
