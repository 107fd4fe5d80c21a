//! MySQL/MariaDB → PostgreSQL through the composed sides (`source/compose`): the real binary with a
//! MariaDB blue and a PostgreSQL green. What is built of the pair so far — the type map in `check`,
//! the refusal of what it cannot carry, a stream of turnout's own heartbeat with its position in
//! green's `turnout.progress`, a restart from there, teardown — and nothing approximate on the way.

use crate::common::{self, Turnout};
use std::time::{Duration, Instant};
use turnout_testbed::{Flavor, MySqlServer, PgOptions, PgServer};

/// A MariaDB 10.11 blue with `schema` in a new database, and a PostgreSQL 17 green with a database
/// of the same name.
async fn pair(schema: &str) -> (MySqlServer, PgServer, String) {
    let (blue, green) = std::thread::scope(|s| {
        let b = s.spawn(|| MySqlServer::start_flavor(Flavor::MariaDb10_11, 1).expect("blue"));
        let g = s.spawn(|| PgServer::start_with(PgOptions::new(17)).expect("green"));
        (b.join().expect("blue thread"), g.join().expect("green thread"))
    });
    let db = blue.create_database("app").expect("db");
    blue.execute(Some(&db), schema).expect("schema");
    green.execute("postgres", &format!("CREATE DATABASE \"{db}\"")).await.expect("green db");
    (blue, green, db)
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
async fn check_prints_the_type_map_and_run_refuses_a_column_it_cannot_carry_naming_it() {
    let (blue, green, db) = pair(
        "CREATE TABLE t (id INT PRIMARY KEY, big BIGINT, note VARCHAR(20), twice INT AS (id * 2) STORED, u INT UNSIGNED) ENGINE = InnoDB; \
         INSERT INTO t (id, big, note, u) VALUES (1, 2, 'x', 3)",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_ne!(code, 0, "{out}");
    // MariaDB prints a display width.
    assert!(out.contains(&format!("{db}.t.id: int(11) → integer (exact)")), "{out}");
    assert!(out.contains(&format!("{db}.t.big: bigint(20) → bigint (exact)")), "{out}");
    assert!(out.contains(&format!("{db}.t.note: varchar(20)")) && out.contains("does not carry varchar(20) from MySQL/MariaDB to PostgreSQL"), "{out}");
    // A generated column's values are the server's to compute: refused, as is what the map lacks.
    assert!(out.contains(&format!("{db}.t.twice: generated int(11)")), "{out}");
    assert!(out.contains(&format!("{db}.t.u: int(10) unsigned")), "{out}");
    // Blue's own findings come first: the binlog settings turnout reads with.
    assert!(out.contains("blue (MySQL/MariaDB)") && out.contains("binlog_format"), "{out}");
    t.start();
    let code = common::wait_exit(&mut t).await;
    let log = t.log_text();
    assert_ne!(code, 0, "{log}");
    assert!(log.contains(&format!("column note of {db}.t is varchar(20) on blue")), "{log}");
    // Nothing was made on green.
    assert_eq!(recorded(&green, &db).await, None);
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
    let client = green.connect(db).await.expect("green");
    let Ok(messages) = client.simple_query(&format!("SELECT id::text || '|' || COALESCE(n::text, 'N') FROM \"{db}\".t")).await else {
        return vec!["(no table t on green)".into()];
    };
    let mut rows: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
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
    // What the composition cannot do yet is refused by name, and the stream goes on.
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<5s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("the cutover from MySQL/MariaDB to PostgreSQL is not built yet"), "{out}");
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("verify from MySQL/MariaDB to PostgreSQL is not built yet"), "{out}");
    blue.execute(Some(&db), "INSERT INTO t VALUES (7, 7)").expect("a write after the refusals");
    rows_arrive(&blue, &green, &db, &mut t).await;
    // Teardown drops what the stream made on both sides.
    t.sigterm();
    let (code, out) = common::turnout_command(&t, "teardown", &["--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(recorded(&green, &db).await, None, "{out}");
    assert_eq!(green_heartbeat(&green, &db).await, None, "{out}");
    let left = blue.execute(Some(&db), "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'turnout_heartbeat'").expect("blue");
    assert_eq!(left.trim(), "0", "{out}");
}
