//! The way back from PostgreSQL to MySQL/MariaDB (`source/compose/back.rs`, `rollback.rs`): a cutover
//! arms the stream back inside its pause; the application writes on green (values at the edges of
//! blue's types among them, and values green's guard refuses at the write); turnout is killed while
//! the stream back applies; blue and green compare equal by canonical text; `turnout rollback` fences
//! green, proves blue holds every write, moves blue's counters past green's and moves the application
//! back — every acknowledged write present exactly once on the side that serves.

use crate::common::{self, Turnout, Writer};
use crate::mysql_to_postgres::{green_column, pair_of};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use turnout_testbed::{Flavor, MySqlServer, PgServer};

const SCHEMA: &str = "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL, note VARCHAR(20) NOT NULL DEFAULT 'none', \
       changed TIMESTAMP(6) NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP(6)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
     CREATE TABLE kinds (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, tiny TINYINT UNSIGNED, amount DECIMAL(12,3), ratio DOUBLE, day DATE, \
       at DATETIME(3), stamp TIMESTAMP(6) NULL DEFAULT NULL, dur TIME, yr YEAR, label CHAR(4), body TEXT, raw VARBINARY(16), \
       kind ENUM('a','b'), flags SET('x','y','z')) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
     CREATE TABLE notes (body VARCHAR(50), n INT) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
     CREATE TABLE tree (id INT PRIMARY KEY, parent INT, FOREIGN KEY (parent) REFERENCES tree (id)) ENGINE = InnoDB; \
     INSERT INTO orders (n, note) VALUES (-1, 'seed'); INSERT INTO kinds (id, body) VALUES (1, 'seed'), (2, 'goes'); \
     INSERT INTO notes VALUES ('x', 1), ('y', 1), ('y', 1); INSERT INTO tree VALUES (1, NULL), (2, 1), (3, 2)";

/// Which side the application writes to, as the switch commands say (`serving` holds `green` after
/// the cutover's, `blue` after the rollback's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum On {
    Blue,
    Green,
}

/// The `[cutover]` TOML: read-only fence, a command switch and its way back, each writing the side it
/// moved the application to into `serving`.
pub(crate) fn cutover_toml(dir: &Path, db: &str) -> String {
    let serving = dir.join("serving");
    let script = |name: &str, side: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\nprintf '{side}' > '{}'\n", serving.display())).expect("script");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        path.display().to_string()
    };
    format!(
        "[cutover]\nfence = \"read-only\"\nswitch = \"command\"\niterate = true\nkeep_definitions = [\"ON UPDATE {db}.orders.changed\"]\n[cutover.command]\nargv = [\"{}\"]\nback_argv = [\"{}\"]\n",
        script("to-green.sh", "green"),
        script("to-blue.sh", "blue")
    )
}

/// Where `serving` sends the application.
pub(crate) fn serving(file: &Path) -> On {
    match std::fs::read_to_string(file).as_deref() {
        Ok("green") => On::Green,
        _ => On::Blue,
    }
}

/// One order on `side`; its id.
async fn write_one(
    side: On,
    blue: &mut Option<mysql_async::Conn>,
    green: &mut Option<tokio_postgres::Client>,
    urls: (&str, &str),
    n: i64,
) -> Result<i64, String> {
    use mysql_async::prelude::Queryable;
    match side {
        On::Blue => {
            if blue.is_none() {
                *blue = Some(mysql_async::Conn::new(mysql_async::Opts::from_url(urls.0).expect("url")).await.map_err(|e| e.to_string())?);
            }
            let conn = blue.as_mut().expect("blue session");
            let r = conn.exec_drop("INSERT INTO orders (n, note) VALUES (?, 'w')", (n,)).await;
            match r {
                Ok(()) => Ok(i64::try_from(conn.last_insert_id().unwrap_or(0)).expect("id")),
                Err(e) => {
                    *blue = None;
                    Err(format!("blue: {e}"))
                }
            }
        }
        On::Green => {
            if green.is_none() {
                let (client, connection) = tokio_postgres::connect(urls.1, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                *green = Some(client);
            }
            let db = urls.1.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default();
            let sql = format!("INSERT INTO \"{db}\".orders (n, note) VALUES ($1, 'g') RETURNING id::int8");
            let value = i32::try_from(n).expect("n");
            match green.as_ref().expect("green session").query_one(sql.as_str(), &[&value]).await {
                Ok(row) => Ok(row.get(0)),
                Err(e) => {
                    *green = None;
                    Err(format!("green: {}", e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned())))
                }
            }
        }
    }
}

/// An application that speaks both engines and writes one order per transaction to the side the
/// switch commands name; a refused write is not acknowledged and is tried again on a new session.
fn start_writer(app_url: String, green_url: String, serving_file: PathBuf, from: i64) -> Writer<(i64, i64, On, Instant)> {
    Writer::start(move |log| async move {
        let (mut blue, mut green) = (None, None);
        let mut n = from;
        while log.running() {
            let side = serving(&serving_file);
            n += 1;
            match write_one(side, &mut blue, &mut green, (&app_url, &green_url), n).await {
                Ok(id) => log.acked((id, n, side, Instant::now())),
                Err(e) => {
                    log.failed(e);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// The largest gap between consecutive acknowledged writes, in milliseconds: the pause as the
/// application sees it, its own move to the other side included.
fn largest_gap(acked: &[(i64, i64, On, Instant)]) -> u128 {
    acked.windows(2).map(|w| w[1].3.duration_since(w[0].3).as_millis()).max().unwrap_or(0)
}

/// Every order on blue as `id|n`, sorted.
fn blue_orders(blue: &MySqlServer, db: &str) -> Vec<String> {
    let out = blue.execute(Some(db), "SELECT CONCAT(id, '|', n) FROM orders").expect("blue's orders");
    let mut rows: Vec<String> = out.lines().map(str::to_owned).collect();
    rows.sort();
    rows
}

/// Every order on green as `id|n`, sorted.
async fn green_orders(green: &PgServer, db: &str) -> Vec<String> {
    let mut rows = green_column(green, db, &format!("SELECT id::text || '|' || n::text FROM \"{db}\".orders")).await.expect("green's orders");
    rows.sort();
    rows
}

/// Waits until blue holds every order green holds now, row for row (the stream back caught up with
/// it); with `exactly`, and no other (green takes no more writes).
async fn blue_catches_up(blue: &MySqlServer, green: &PgServer, db: &str, t: &mut Turnout, exactly: bool) {
    let deadline = Instant::now() + common::WAIT;
    let now = green_orders(green, db).await;
    loop {
        let on_green = if exactly { green_orders(green, db).await } else { now.clone() };
        let on_blue = blue_orders(blue, db);
        let caught_up = if exactly { on_blue == on_green } else { on_green.iter().all(|r| on_blue.binary_search(r).is_ok()) };
        if caught_up {
            return;
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "blue never caught up with green's {} orders\n{}", on_green.len(), t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The application's writes of every kind on green, values at the edges of blue's types among them,
/// and the writes green's guard refuses at once (each a value blue could not take back).
async fn green_writes_every_kind(green: &PgServer, db: &str) {
    let client = green.connect(db).await.expect("green");
    let q = format!("\"{db}\"");
    client
        .batch_execute(&format!(
            "INSERT INTO {q}.kinds VALUES (9223372036854775807, 255, -123456789.123, 1.5e300, '1000-01-01', '9999-12-31 23:59:59.999', \
               '2038-01-19 03:14:07.999999+00', '-838:59:59', 2155, 'abcd', E'\\U0001F600 multi\\nline ''quoted''', '\\x00ff', '', 'x,z'); \
             INSERT INTO {q}.kinds (id, tiny, dur, yr, kind, flags, stamp) VALUES (3, 0, '838:59:59', 0, 'b', '', '1970-01-01 00:00:01+00'); \
             UPDATE {q}.kinds SET body = 'changed on green', amount = 0.001, kind = 'a' WHERE id = 1; \
             DELETE FROM {q}.kinds WHERE id = 2; \
             UPDATE {q}.orders SET note = 'updated' WHERE n = -1; \
             UPDATE {q}.notes SET n = 2 WHERE body = 'x'; DELETE FROM {q}.notes WHERE body = 'y'; INSERT INTO {q}.notes VALUES ('z', NULL); \
             DELETE FROM {q}.tree"
        ))
        .await
        .expect("green's writes");
    for (what, statement) in [
        ("a date after 9999", "INSERT INTO {q}.kinds (id, day) VALUES (100, '10000-01-01')"),
        ("a time stamp after 2038", "INSERT INTO {q}.kinds (id, stamp) VALUES (101, '2040-01-01 00:00:00+00')"),
        ("a TIME of a day and more", "INSERT INTO {q}.kinds (id, dur) VALUES (102, '1 day 02:00:00')"),
        ("a TIME finer than blue's seconds", "INSERT INTO {q}.kinds (id, dur) VALUES (103, '00:00:01.5')"),
        ("a CHAR ending in a space", "INSERT INTO {q}.kinds (id, label) VALUES (104, 'ab ')"),
        ("a TINYINT UNSIGNED above 255", "INSERT INTO {q}.kinds (id, tiny) VALUES (105, 256)"),
        ("a TEXT longer than 65,535 bytes", "INSERT INTO {q}.kinds (id, body) VALUES (106, repeat('x', 65536))"),
        ("an ENUM member blue lacks", "INSERT INTO {q}.kinds (id, kind) VALUES (107, 'c')"),
        ("a DECIMAL that is not a number", "INSERT INTO {q}.kinds (id, amount) VALUES (108, 'NaN')"),
        ("a SET's members out of blue's order", "INSERT INTO {q}.kinds (id, flags) VALUES (109, 'z,x')"),
        ("a SET's member twice", "INSERT INTO {q}.kinds (id, flags) VALUES (110, 'x,x')"),
        ("a negative zero", "INSERT INTO {q}.kinds (id, ratio) VALUES (111, '-0')"),
    ] {
        let e = client.batch_execute(&statement.replace("{q}", &q)).await.expect_err(what);
        assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION), "{what}: {e:?}");
    }
}

/// The operator's PostgreSQL form of blue's `ON UPDATE CURRENT_TIMESTAMP` on green.
async fn green_on_update(green: &PgServer, db: &str) {
    let q = format!("\"{db}\"");
    green
        .execute(
            db,
            &format!(
                "CREATE FUNCTION {q}.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.changed := clock_timestamp(); RETURN NEW; END $$; \
                 CREATE TRIGGER changed BEFORE UPDATE ON {q}.orders FOR EACH ROW EXECUTE FUNCTION {q}.touch()"
            ),
        )
        .await
        .expect("green's ON UPDATE");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mariadb_application_moves_to_postgresql_and_back_with_every_write_on_the_side_that_serves() {
    there_and_back(Flavor::MariaDb10_11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oracle_mysql_9_7_application_moves_to_postgresql_and_back_with_every_write_on_the_side_that_serves() {
    there_and_back(Flavor::MySql9_7).await;
}

async fn there_and_back(flavor: Flavor) {
    let (blue, green, db) = pair_of(flavor, SCHEMA).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &cutover_toml(dir.path(), &db));
    t.start();
    common::wait_streaming(&mut t).await;
    // A table blue creates while streaming: the stream makes it on green, and every later
    // generation knows it as whole there.
    blue.execute(Some(&db), "CREATE TABLE made (id INT PRIMARY KEY, v INT) ENGINE = InnoDB; INSERT INTO made VALUES (1, 1)").expect("a table made");
    green_on_update(&green, &db).await;
    blue.execute(None, &format!("CREATE USER app@'%' IDENTIFIED BY 'app-secret'; GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO app@'%'"))
        .expect("account");
    let app_url = format!("mysql://app:app-secret@127.0.0.1:{}/{db}", blue.port());
    let serving_file = dir.path().join("serving");

    // There: the cutover arms the stream back inside its pause.
    let writer = start_writer(app_url.clone(), green.url(&db), serving_file.clone(), 0);
    writer.wait_for(100).await;
    let report = dir.path().join("cutover.json");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--report", &report.display().to_string()]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("prepared the stream back") && out.contains("applied the sentinel"), "{out}");
    eprintln!("{}", out.lines().find(|l| l.starts_with("cutover complete")).unwrap_or_default());
    // The certificate records the type map, column by column, and what the operator kept.
    let certificate = common::intact_certificate(&report);
    let map: Vec<&str> = certificate["type_map"].as_array().expect("type_map").iter().filter_map(|l| l.as_str()).collect();
    assert!(map.contains(&format!("{db}.kinds.dur: time → interval (widened: interval holds more than ±838:59:59)").as_str()), "{map:?}");
    assert!(map.iter().any(|l| l.starts_with(&format!("{db}.kinds.id: bigint")) && l.contains("unsigned → bigint (lossy")), "{map:?}");
    assert_eq!(map.len(), 24, "every column of every table, the one the stream made among them: {map:?}");
    let definitions = certificate["definitions"].to_string();
    assert!(definitions.contains(&format!("ON UPDATE {db}.orders.changed")), "{definitions}");
    assert_eq!(serving(&serving_file), On::Green);
    let switched = writer.count();
    writer.wait_for(switched + 100).await;

    // The application's writes of every kind on green; turnout killed while the stream back applies
    // them and the orders still arriving, then started again.
    green_writes_every_kind(&green, &db).await;
    t.kill9();
    let killed = writer.count();
    writer.wait_for(killed + 50).await;
    t.start();
    blue_catches_up(&blue, &green, &db, &mut t, false).await;
    let (first, errors) = writer.finish().await;
    assert!(!errors.iter().any(|e| e.starts_with("green:")), "green refused the application: {errors:?}");
    // The kill -9 came after the switch: every write before it was made across the cutover alone.
    let across: Vec<_> = first.iter().take(killed).cloned().collect();
    eprintln!("largest gap between acknowledged writes: {} ms", largest_gap(&across));
    blue_catches_up(&blue, &green, &db, &mut t, true).await;
    // Blue and green equal by canonical text, every column of every row — green's ON UPDATE stamp
    // among them, which blue did not stamp again.
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert!(out.contains("kinds") && out.contains("orders"), "{out}");
    assert!(!out.lines().any(|l| l.contains("DIFFERS") && !l.contains("definitions")), "{out}\n{}", t.log_text());
    let _ = code;
    let stamped = blue.execute(Some(&db), "SELECT changed IS NOT NULL FROM orders WHERE n = -1").expect("stamp");
    assert_eq!(stamped.trim(), "1", "green's trigger stamped the update and the stream back carried the stamp");
    live_verify_in_the_window(&blue, &db, &t).await;

    // And back: green fenced under the application's writes, blue proven, the application moved back.
    let top = first.iter().map(|w| w.1).max().unwrap_or(0);
    let writer = start_writer(app_url, green.url(&db), serving_file.clone(), top);
    writer.wait_for(50).await;
    let (code, out) = common::turnout_command(&t, "rollback", &["--when-lag", "<1s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("blue applied the sentinel") || out.contains("applied the sentinel"), "{out}");
    assert!(out.contains("AUTO_INCREMENT counters moved on blue"), "{out}");
    eprintln!("{}", out.lines().find(|l| l.starts_with("rollback complete")).unwrap_or_default());
    assert_eq!(serving(&serving_file), On::Blue);
    let back = writer.count();
    writer.wait_for(back + 50).await;
    let (second, errors) = writer.finish().await;
    eprintln!("largest gap between acknowledged writes across the rollback: {} ms", largest_gap(&second));
    assert!(out.contains("prepared replication blue → green again"), "{out}");

    // Every acknowledged write exactly once on the side that serves now, blue.
    let on_blue = blue_orders(&blue, &db);
    for (id, n, side, _) in first.iter().chain(&second) {
        let row = format!("{id}|{n}");
        assert_eq!(on_blue.iter().filter(|r| **r == row).count(), 1, "{side:?} write {row} is not once on blue");
    }
    let ids: Vec<&str> = on_blue.iter().map(|r| r.split('|').next().unwrap_or_default()).collect();
    let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a key taken twice on blue");
    // Blue's keys continue past every key green handed out.
    let max_green = first.iter().chain(&second).filter(|w| w.2 == On::Green).map(|w| w.0).max().expect("green writes");
    let after: Vec<i64> = second.iter().skip_while(|w| w.2 == On::Green).filter(|w| w.2 == On::Blue).map(|w| w.0).collect();
    assert!(!after.is_empty(), "no write on blue after the rollback; errors {errors:?}");
    assert!(after.iter().all(|id| *id > max_green), "blue's key after the rollback is not past green's {max_green}: {after:?}");
    // Green's rows are a prefix of blue's: everything green took is on blue.
    let on_green = green_orders(&green, &db).await;
    assert!(on_green.iter().all(|r| on_blue.contains(r)), "a row green holds is not on blue");
    assert!(errors.iter().any(|e| e.starts_with("green:")), "the fence refused the application on green: {errors:?}");

    let earlier: Vec<(i64, i64, On, Instant)> = first.into_iter().chain(second).collect();
    there_again(&blue, &green, &db, &mut t, &serving_file, earlier).await;
}

/// A live verify in the window compares the other way — green, the source now, in a snapshot at a
/// position of its WAL, blue's sessions while the stream back is held there — and names a row
/// changed on blue alone, with both values.
async fn live_verify_in_the_window(blue: &MySqlServer, db: &str, t: &Turnout) {
    let (code, out) = common::turnout_command(t, "verify", &["--live"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("compared at green position") && out.contains("0 differ"), "{out}");
    blue.execute(Some(db), "UPDATE kinds SET amount = 1.5 WHERE id = 1").expect("a change on blue alone");
    let (code, out) = common::turnout_command(t, "verify", &["--live", "--table", "kinds", "--show-values"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("differs: id=1 (amount: green 0.001 blue 1.500)"), "{out}");
    blue.execute(Some(db), "UPDATE kinds SET amount = 0.001 WHERE id = 1").expect("repaired");
}

/// There again, with no new copy, after the rollback of `earlier`'s writes: the rollback armed the
/// next generation, which streams blue → green from the hand-off while the application writes on
/// blue; nothing watched blue in the window, so the gate asks for a live verify that began after the
/// generation did. Every acknowledged write ends once on green.
async fn there_again(blue: &MySqlServer, green: &PgServer, db: &str, t: &mut Turnout, serving_file: &Path, earlier: Vec<(i64, i64, On, Instant)>) {
    let top = earlier.iter().map(|w| w.1).max().unwrap_or(0);
    let writer = start_writer(format!("mysql://app:app-secret@127.0.0.1:{}/{db}", blue.port()), green.url(db), serving_file.to_path_buf(), top);
    common::wait_for(t, "generation 2 streaming forward", |t| {
        t.status().filter(|v| v["direction"] == "forward" && v["phase"] == "streaming" && v["generation"] == 2)
    })
    .await;
    writer.wait_for(50).await;
    let (code, out) = common::turnout_command(t, "cutover", &["--when-lag", "<1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("turnout verify --live"), "the gate asks for a live verify: {out}");
    let (code, out) = common::turnout_command(t, "verify", &["--live"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    let (code, out) = common::turnout_command(t, "cutover", &["--when-lag", "<1s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("verify gate: required after the rollback"), "{out}");
    assert!(out.contains("(its fence from the rollback)"), "green's fence from the rollback lifted in the pause: {out}");
    // Named apart from the first cutover's line, which scripts/bench-pause reads.
    eprintln!("{}", out.lines().find(|l| l.starts_with("cutover complete")).unwrap_or_default().replacen("cutover complete", "cutover again", 1));
    assert_eq!(serving(serving_file), On::Green);
    let switched = writer.count();
    writer.wait_for(switched + 50).await;
    let (third, errors) = writer.finish().await;
    assert!(!errors.iter().any(|e| e.starts_with("green:")), "green refused the application after the second cutover: {errors:?}");
    blue_catches_up(blue, green, db, t, true).await;
    t.sigterm();
    // Every acknowledged write of all three stretches exactly once on green, which serves; green's
    // keys past blue's again; blue holds what green holds (the second stream back carried it).
    let on_green = green_orders(green, db).await;
    for (id, n, side, _) in earlier.iter().chain(&third) {
        let row = format!("{id}|{n}");
        assert_eq!(on_green.iter().filter(|r| **r == row).count(), 1, "{side:?} write {row} is not once on green");
    }
    let max_blue = third.iter().filter(|w| w.2 == On::Blue).map(|w| w.0).max().expect("blue writes before the second cutover");
    let after: Vec<i64> = third.iter().skip_while(|w| w.2 == On::Blue).map(|w| w.0).collect();
    assert!(!after.is_empty() && after.iter().all(|id| *id > max_blue), "green's keys after the second cutover are not past blue's {max_blue}: {after:?}");
    assert_eq!(blue_orders(blue, db), on_green);
}

/// What green could take and blue could not take back, with no guard to keep it out, refuses a
/// cutover with a way back before anything changes, naming it: a key compared case-insensitively on
/// blue, a float rounded to its digits, a guard dropped on green. A trigger of blue's is not among
/// them: it is parked for the rollback window.
#[tokio::test(flavor = "multi_thread")]
async fn a_way_back_that_could_stop_is_refused_before_anything_changes_naming_each_cause() {
    let (blue, green, db) = pair_of(
        Flavor::MariaDb10_11,
        "CREATE TABLE codes (code VARCHAR(10) COLLATE utf8mb4_general_ci PRIMARY KEY, n INT) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
         CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(10)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
         CREATE TABLE measures (id INT PRIMARY KEY, taken DATE, size FLOAT(7,2)) ENGINE = InnoDB; \
         CREATE TRIGGER logged AFTER INSERT ON codes FOR EACH ROW INSERT INTO audit (code) VALUES (NEW.code)",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let toml = cutover_toml(dir.path(), &db).replace("keep_definitions = [", &format!("keep_definitions = [\"TRIGGER {db}.logged\", "));
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    // The guard of a column dropped on green.
    green.execute(&db, &format!("ALTER TABLE \"{db}\".measures DROP CONSTRAINT measures_taken_check")).await.expect("drop the guard");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<5s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("cutover.reverse = true, but 3 thing(s)"), "{out}");
    assert!(out.contains(&format!("{db}.measures.size: float(7,2) on blue rounds to its digits")), "{out}");
    assert!(out.contains(&format!("{db}.measures: green lacks CHECK (((taken >= '0001-01-01'::date) AND (taken <= '9999-12-31'::date)))")), "{out}");
    assert!(out.contains(&format!("{db}.codes: key PRIMARY compares code by utf8mb4_general_ci")), "{out}");
    assert!(!out.contains(&format!("TRIGGER {db}.logged")), "{out}");
    assert_eq!(blue.execute(Some(&db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "0", "nothing was fenced");
    assert!(!dir.path().join("serving").exists(), "nothing was switched");
    t.sigterm();
}

/// A switch command for crash tests that writes `side` into `serving`: its first run marks
/// `started` and hangs (the test kills turnout meanwhile); a later run switches and succeeds.
fn hanging(dir: &Path, name: &str, side: &str) -> (String, PathBuf) {
    let started = dir.join(format!("{name}-started"));
    let script = dir.join(format!("{name}.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e '{s}' ]; then printf '{side}' > '{w}'; exit 0; fi\ntouch '{s}'\nexec sleep 20\n",
            s = started.display(),
            w = dir.join("serving").display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    (script.display().to_string(), started)
}

/// Runs `turnout <command> --when-lag 1s` against `t`, kills it and turnout with -9 once its switch
/// hangs, and starts turnout again.
async fn killed_while_switching(t: &mut Turnout, command: &str, started: &Path) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_turnout"))
        .arg(command)
        .arg("--config")
        .arg(t.config_path())
        .args(["--when-lag", "1s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect(command);
    let deadline = Instant::now() + common::WAIT;
    while !started.exists() {
        assert!(Instant::now() < deadline, "the {command}'s switch never started\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.kill9();
    let _ = child.kill();
    let _ = child.wait();
    t.start();
}

/// A write on `side` lands once on the other within [`common::WAIT`].
async fn reaches_blue_once(blue: &MySqlServer, db: &str, n: i64, t: &Turnout) {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let found = blue.execute(Some(db), &format!("SELECT COUNT(*) FROM orders WHERE n = {n}")).expect("count");
        match found.trim() {
            "1" => return,
            "0" => assert!(Instant::now() < deadline, "green's write {n} never reached blue\n{}", t.log_text()),
            more => panic!("green's write {n} is on blue {more} times"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// kill -9 of turnout while the cutover's switch command runs, and again while the rollback's does:
/// each restart completes the switch from the journal (the proof was made before it), the stream
/// back runs after the first, and the rollback leaves green fenced and blue writable after the
/// second.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_switching_there_and_while_switching_back_is_completed_when_turnout_restarts() {
    let (blue, green, db) = pair_of(Flavor::MariaDb10_11, SCHEMA).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (there, there_started) = hanging(dir.path(), "to-green", "green");
    let (back, back_started) = hanging(dir.path(), "to-blue", "blue");
    let toml = format!(
        "[cutover]\nfence = \"read-only\"\nswitch = \"command\"\nkeep_definitions = [\"ON UPDATE {db}.orders.changed\"]\n[cutover.command]\nargv = [\"{there}\"]\nback_argv = [\"{back}\"]\n"
    );
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    green_on_update(&green, &db).await;
    let serving_file = dir.path().join("serving");

    killed_while_switching(&mut t, "cutover", &there_started).await;
    common::wait_for(&mut t, "the stream back", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await;
    assert!(t.log_text().contains("the switch to green was completed"), "{}", t.log_text());
    assert_eq!(serving(&serving_file), On::Green);
    assert_eq!(blue.execute(Some(&db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "1", "blue stays fenced");
    green.execute(&db, &format!("INSERT INTO \"{db}\".orders (n, note) VALUES (4242, 'after the crash')")).await.expect("green takes writes");
    reaches_blue_once(&blue, &db, 4242, &t).await;

    // A table made on green in the window is not carried back: the rollback refuses, naming it,
    // before anything changes.
    green.execute(&db, &format!("CREATE TABLE \"{db}\".made_on_green (id int PRIMARY KEY)")).await.expect("a table on green");
    let (code, out) = common::turnout_command(&t, "rollback", &["--when-lag", "1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("green has 1 table(s) the stream back does not carry to blue (made on green after the cutover?): {db}.made_on_green")),
        "{out}"
    );
    assert!(!back_started.exists(), "nothing was switched");
    green.execute(&db, &format!("INSERT INTO \"{db}\".orders (n, note) VALUES (4243, 'still green')")).await.expect("green still takes writes");
    green.execute(&db, &format!("DROP TABLE \"{db}\".made_on_green")).await.expect("dropped");

    killed_while_switching(&mut t, "rollback", &back_started).await;
    common::wait_for(&mut t, "the rollback settled", |t| t.log_text().contains("the switch to blue was completed").then_some(())).await;
    assert_eq!(serving(&serving_file), On::Blue);
    assert_eq!(blue.execute(Some(&db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "0", "blue takes writes");
    let e = green.execute(&db, &format!("INSERT INTO \"{db}\".orders (n, note) VALUES (4343, 'fenced')")).await.expect_err("green is fenced");
    assert!(format!("{e:?}").contains("read-only"), "{e:?}");
    blue.execute(Some(&db), "INSERT INTO orders (n, note) VALUES (4444, 'back on blue')").expect("blue takes writes");
    let ids = blue.execute(Some(&db), "SELECT id FROM orders WHERE n IN (4242, 4444) ORDER BY n").expect("ids");
    let ids: Vec<i64> = ids.lines().map(|l| l.trim().parse().expect("id")).collect();
    assert!(ids[1] > ids[0], "blue's next key {} is past green's {}", ids[1], ids[0]);
    t.sigterm();
}
