//! The cutover from MySQL/MariaDB to PostgreSQL (`source/compose/cutover.rs`): blue fenced its own
//! way, the sentinel carried by the converted stream proving green has every committed write, green's
//! identities moved past blue's `AUTO_INCREMENT`, the command switch — with an application that
//! writes to blue until the fence and to green after the switch. And what refuses before anything
//! changes: a table green holds differently from the type map's, an object of
//! blue's that the operator has not made on green.

use crate::common::{self, Turnout, Writer};
use crate::mysql_to_postgres::{green_column, pair_of};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout_testbed::{serve_word, Flavor, MySqlServer, PgServer};

/// Where a write landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum On {
    Blue,
    Green,
}

/// The `[cutover]` TOML: read-only fence, a command switch writing the URL it was given into
/// `switched`, no way back, and `keep` as `keep_definitions`.
fn cutover_toml(dir: &Path, keep: &[String]) -> String {
    let switch = common::command_switch(dir, &format!("printf '%s' \"$TURNOUT_GREEN_URL\" > '{}'", dir.join("switched").display()));
    let keep: Vec<String> = keep.iter().map(|k| format!("\"{k}\"")).collect();
    switch.replace("[cutover]\n", &format!("[cutover]\nreverse = false\nkeep_definitions = [{}]\n", keep.join(", ")))
}

/// How the application flips to green once the switch command has written its flag: `after` that
/// long (its instances read the flag on their own time), never while `stuck`; `on_green` once it
/// writes to green; `lie` makes its readiness endpoint claim green whatever it does.
#[derive(Clone, Default)]
struct Flip {
    after: Duration,
    stuck: Arc<AtomicBool>,
    on_green: Arc<AtomicBool>,
    lie: Arc<AtomicBool>,
}

impl Flip {
    /// Whether the application writes to green now: the flag written `after` ago, and not stuck.
    fn due(&self, switched: &Path, seen: &mut Option<Instant>) -> bool {
        if !switched.exists() {
            return false;
        }
        let since = *seen.get_or_insert_with(Instant::now);
        since.elapsed() >= self.after && !self.stuck.load(Ordering::SeqCst)
    }

    /// The application's readiness endpoint: `GET` answers `postgres` once it writes to green (or
    /// while it lies), `mysql` before. Returns its URL.
    async fn serve(&self) -> String {
        let flip = self.clone();
        let green = move || flip.on_green.load(Ordering::SeqCst) || flip.lie.load(Ordering::SeqCst);
        let base = serve_word(move || if green() { "postgres" } else { "mysql" }).await.expect("readiness endpoint");
        format!("{base}/engine")
    }
}

/// An application that writes one order per transaction to blue until blue refuses it (the fence),
/// waits for the switch (and `flip`), then writes to green through PostgreSQL — as an application
/// that speaks both and flips on the switch's signal does. Records (id, n, where).
fn start_writer(blue_url: String, green_url: String, switched: std::path::PathBuf, db: String, flip: Flip) -> Writer<(i64, i64, On)> {
    Writer::start(move |log| async move {
        use mysql_async::prelude::Queryable;
        let mut n: i64 = 0;
        let opts = mysql_async::Opts::from_url(&blue_url).expect("url");
        let mut blue: Option<mysql_async::Conn> = None;
        let mut seen = None;
        // Blue until the switch says green; a write the fence refuses is not acknowledged, and the
        // next one tries blue again on a new session (a rehearsal lifts the fence).
        while log.running() && !flip.due(&switched, &mut seen) {
            if blue.is_none() {
                match mysql_async::Conn::new(opts.clone()).await {
                    Ok(c) => blue = Some(c),
                    Err(e) => {
                        log.failed(format!("blue: {e}"));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                }
            }
            let Some(conn) = blue.as_mut() else { continue };
            n += 1;
            match conn.exec_drop("INSERT INTO orders (n, note) VALUES (?, 'w')", (n,)).await {
                Ok(()) => log.acked((i64::try_from(conn.last_insert_id().unwrap_or(0)).expect("id"), n, On::Blue)),
                Err(e) => {
                    log.failed(format!("blue: {e}"));
                    blue = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let Ok((green, connection)) = tokio_postgres::connect(&green_url, tokio_postgres::NoTls).await else {
            log.failed("green: no connection");
            return;
        };
        tokio::spawn(connection);
        flip.on_green.store(true, Ordering::SeqCst);
        let insert = format!("INSERT INTO \"{db}\".orders (n, note) VALUES ($1, 'g') RETURNING id::int8");
        while log.running() {
            n += 1;
            let value = i32::try_from(n).expect("n");
            match green.query_one(insert.as_str(), &[&value]).await {
                Ok(row) => log.acked((row.get(0), n, On::Green)),
                Err(e) => {
                    log.failed(format!("green: {e:?}"));
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// Every order on blue as `id|n|note`, sorted.
fn blue_orders(blue: &MySqlServer, db: &str) -> Vec<String> {
    let out = blue.execute(Some(db), "SELECT CONCAT(id, '|', n, '|', note) FROM orders").expect("blue's orders");
    let mut rows: Vec<String> = out.lines().map(str::to_owned).collect();
    rows.sort();
    rows
}

/// Every order on green as `id|n|note`, sorted; with `blue_only`, those not written on green.
async fn green_orders(green: &PgServer, db: &str, blue_only: bool) -> Vec<String> {
    let only = if blue_only { " WHERE note <> 'g'" } else { "" };
    let sql = format!("SELECT id::text || '|' || n::text || '|' || note FROM \"{db}\".orders{only}");
    let mut rows = green_column(green, db, &sql).await.expect("green's orders");
    rows.sort();
    rows
}

/// Restarts `t` with `cutover` as its `[cutover]` section, and waits until it streams.
async fn restart_with(t: &mut Turnout, base: &str, cutover: &str) {
    t.sigterm();
    std::fs::write(t.config_path(), format!("{base}{cutover}")).expect("config");
    t.start();
    common::wait_streaming(t).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mariadb_application_moves_to_postgresql_with_a_fence_a_proof_and_green_counters_past_blue() {
    moves_to_postgresql(Flavor::MariaDb10_11).await;
}

/// Oracle MySQL's fence is sealed (`super_read_only`) after the sentinel, and the proof also waits
/// for every GTID blue executed to be in green's recorded position.
#[tokio::test(flavor = "multi_thread")]
async fn an_oracle_mysql_9_7_application_moves_to_postgresql_with_a_sealed_fence_and_its_gtids_proven() {
    moves_to_postgresql(Flavor::MySql9_7).await;
}

/// A rehearsal under the application's load: the fence and the proof, then the fence undone; blue
/// keeps taking the application's writes and the switch does not run.
async fn rehearsed_under_load(t: &Turnout, blue: &MySqlServer, db: &str, dir: &Path, writer: &Writer<(i64, i64, On)>) {
    let (code, out) = common::turnout_command(t, "cutover", &["--rehearse", "--yes", "--when-lag", "<1s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("green applied the sentinel") && out.contains("rehearsal complete") && out.contains("undid the fence"), "{out}");
    assert_eq!(blue.execute(Some(db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "0", "a rehearsal leaves blue writable");
    assert!(!dir.join("switched").exists(), "a rehearsal does not switch");
    let rehearsed = writer.count();
    writer.wait_for(rehearsed + 50).await;
}

/// A constant default is green's own already (carried by the copy); the operator makes the rest on
/// green in PostgreSQL's form. What they name in `cutover.keep_definitions`.
async fn operator_makes_greens_forms(green: &PgServer, db: &str) -> Vec<String> {
    let carried = green_column(
        green,
        db,
        &format!("SELECT column_default FROM information_schema.columns WHERE table_schema = '{db}' AND table_name = 'orders' AND column_name = 'note'"),
    )
    .await;
    assert!(carried.as_ref().is_some_and(|d| d.first().is_some_and(|d| d.starts_with("'none'"))), "{carried:?}");
    // The operator makes the others on green and says so; a way back is asked for first (refused).
    let q = format!("\"{db}\"");
    green
        .execute(
            db,
            &format!(
                "CREATE VIEW {q}.big AS SELECT id, n FROM {q}.orders WHERE n > 10; ALTER TABLE {q}.orders ALTER COLUMN created SET DEFAULT LOCALTIMESTAMP(0); \
                 CREATE FUNCTION {q}.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.changed := now(); RETURN NEW; END $$; \
                 CREATE TRIGGER changed BEFORE UPDATE ON {q}.orders FOR EACH ROW EXECUTE FUNCTION {q}.touch(); \
                 ALTER TABLE {q}.orders ADD CONSTRAINT sane CHECK (n > -100)"
            ),
        )
        .await
        .expect("green's forms");
    vec![format!("VIEW {db}.big"), format!("DEFAULT {db}.orders.created"), format!("ON UPDATE {db}.orders.changed"), format!("CHECK {db}.orders.sane")]
}

/// What refuses the cutover before anything changes: blue's view, default, ON UPDATE and CHECK with
/// no PostgreSQL form on green; a table changed outside blue's binlog (a column, a unique index).
async fn refused_before_anything_changes(blue: &MySqlServer, t: &Turnout, db: &str) {
    // Blue's view, a default and an ON UPDATE have no PostgreSQL form on green: refused by name
    // before anything changes.
    let (code, out) = common::turnout_command(t, "cutover", &["--when-lag", "<5s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("4 objects that turnout does not translate to PostgreSQL"), "{out}");
    for object in
        [format!("VIEW {db}.big"), format!("DEFAULT {db}.orders.created"), format!("ON UPDATE {db}.orders.changed"), format!("CHECK {db}.orders.sane")]
    {
        assert!(out.contains(&object), "{object}: {out}");
    }
    assert_eq!(blue.execute(Some(db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "0", "nothing was fenced");
    // check names them first, as warnings; verify says so too: the rows equal, the definitions not.
    let (_, out) = common::turnout_command(t, "check", &[]).await;
    assert!(
        out.contains(&format!("VIEW {db}.big: not translated to PostgreSQL")) && out.contains(&format!("ON UPDATE {db}.orders.changed: not translated")),
        "{out}"
    );
    let (code, out) = common::turnout_command(t, "verify", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("VIEW {db}.big: on blue, not translated")), "{out}");

    // A table changed outside the binlog: green's is no longer the type map's of blue's. Refused.
    blue.execute(Some(db), "SET SESSION sql_log_bin = 0; ALTER TABLE orders ADD COLUMN extra INT, ADD UNIQUE KEY u_extra (extra); SET SESSION sql_log_bin = 1")
        .expect("alter");
    let (code, out) = common::turnout_command(t, "cutover", &["--when-lag", "<5s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{db}.orders: green has columns (id, n, note, changed, created), the type map makes (id, n, note, changed, created, extra)")),
        "{out}"
    );
    assert!(out.contains(&format!("{db}.orders: 1 unique indexes on green, the type map makes 2 of blue's")), "{out}");
    blue.execute(Some(db), "SET SESSION sql_log_bin = 0; ALTER TABLE orders DROP KEY u_extra, DROP COLUMN extra; SET SESSION sql_log_bin = 1")
        .expect("alter back");
}

async fn moves_to_postgresql(flavor: Flavor) {
    let (blue, green, db) = pair_of(
        flavor,
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL, note VARCHAR(20) DEFAULT 'none', \
           changed TIMESTAMP(6) NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP(6), created DATETIME DEFAULT CURRENT_TIMESTAMP, \
           CONSTRAINT sane CHECK (n > -100)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
         INSERT INTO orders (n, note) VALUES (-1, 'seed'), (-2, 'seed'); \
         CREATE VIEW big AS SELECT id, n FROM orders WHERE n > 10",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &cutover_toml(dir.path(), &[]));
    let base = std::fs::read_to_string(t.config_path()).expect("config").split("[cutover]").next().expect("base").to_owned();
    t.start();
    common::wait_streaming(&mut t).await;

    refused_before_anything_changes(&blue, &t, &db).await;

    let keep = operator_makes_greens_forms(&green, &db).await;
    restart_with(&mut t, &base, &cutover_toml(dir.path(), &keep)).await;

    // The cutover with the application writing throughout.
    // The application's own account: turnout's may write through the fence, and is refused for clients.
    blue.execute(None, &format!("CREATE USER app@'%' IDENTIFIED BY 'app-secret'; GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO app@'%'"))
        .expect("account");
    let app_url = format!("mysql://app:app-secret@127.0.0.1:{}/{db}", blue.port());
    let writer = start_writer(app_url, green.url(&db), dir.path().join("switched"), db.clone(), Flip::default());
    writer.wait_for(100).await;
    rehearsed_under_load(&t, &blue, &db, dir.path(), &writer).await;
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("applied the sentinel"), "{out}");
    eprintln!("{}", out.lines().find(|l| l.starts_with("cutover complete")).unwrap_or_default());
    // The counters went 1,000 past blue's before the fence, and the margin held: none moved inside
    // the pause (and none was moved back).
    assert!(out.contains("1000 values ahead of blue: 1 of 1 identity counters moved on green"), "{out}");
    assert!(out.contains("checked against blue's final values: 0 of 1 identity counters moved on green"), "{out}");
    assert!(
        out.contains(&format!(
            "kept as the operator made them on green: CHECK {db}.orders.sane, VIEW {db}.big, ON UPDATE {db}.orders.changed, DEFAULT {db}.orders.created"
        )),
        "{out}"
    );
    let switched_to = std::fs::read_to_string(dir.path().join("switched")).expect("the switch ran");
    assert_eq!(switched_to, green.url(&db), "the switch was given green's URL");
    let before = writer.count();
    writer.wait_for(before + 50).await;
    let (acked, errors) = writer.finish().await;

    // Every write blue acknowledged is on green, text for text; blue stays fenced.
    let on_blue: Vec<&(i64, i64, On)> = acked.iter().filter(|w| w.2 == On::Blue).collect();
    let on_green: Vec<&(i64, i64, On)> = acked.iter().filter(|w| w.2 == On::Green).collect();
    assert!(on_blue.len() >= 100 && on_green.len() >= 50, "{} on blue, {} on green; errors {errors:?}", on_blue.len(), on_green.len());
    assert_eq!(green_orders(&green, &db, true).await, blue_orders(&blue, &db), "green holds exactly blue's orders");
    let green_rows = green_orders(&green, &db, false).await;
    for (id, n, _) in &on_blue {
        assert!(green_rows.contains(&format!("{id}|{n}|w")), "blue's acknowledged order {id} is not on green");
    }
    // Green's keys continue past every key blue handed out: no collision, none reused.
    let max_blue = on_blue.iter().map(|w| w.0).max().expect("blue writes");
    let min_green = on_green.iter().map(|w| w.0).min().expect("green writes");
    assert!(min_green > max_blue, "green's first key {min_green} is not past blue's last {max_blue}");
    assert_eq!(blue.execute(Some(&db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "1", "blue stays fenced");
    assert!(errors.iter().any(|e| e.starts_with("blue:")), "the fence refused the application's write on blue: {errors:?}");
    assert!(!errors.iter().any(|e| e.starts_with("green:")), "{errors:?}");

    // This cutover armed no way back (`cutover.reverse = false`): a rollback is refused by name.
    let (code, out) = common::turnout_command(&t, "rollback", &["--when-lag", "<1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("armed no reverse stream"), "{out}");
    t.sigterm();
}

/// The `[cutover]` TOML of an application that answers which side it writes to at `url`: the
/// command writes the flag, and the fence holds until the application says `postgres`.
fn ready_toml(dir: &Path, url: &str, timeout: &str) -> String {
    cutover_toml(dir, &[]).replace(
        "[cutover.command]\n",
        &format!("[cutover.command]\nready_url = \"{url}\"\nready_green = \"postgres\"\nready_blue = \"mysql\"\nready_timeout = \"{timeout}\"\n"),
    )
}

/// A pair with one table of orders and an application writing to blue through its own account.
async fn readiness_pair(flip: Flip, timeout: &str) -> (MySqlServer, PgServer, String, tempfile::TempDir, Turnout, Writer<(i64, i64, On)>) {
    let (blue, green, db) =
        pair_of(Flavor::MariaDb10_11, "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL, note VARCHAR(20)) ENGINE = InnoDB").await;
    let dir = tempfile::tempdir().expect("tmp");
    let url = flip.serve().await;
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &ready_toml(dir.path(), &url, timeout));
    t.start();
    common::wait_streaming(&mut t).await;
    blue.execute(None, &format!("CREATE USER app@'%' IDENTIFIED BY 'app-secret'; GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO app@'%'"))
        .expect("account");
    let app_url = format!("mysql://app:app-secret@127.0.0.1:{}/{db}", blue.port());
    let writer = start_writer(app_url, green.url(&db), dir.path().join("switched"), db.clone(), flip);
    writer.wait_for(50).await;
    (blue, green, db, dir, t, writer)
}

/// Every write blue acknowledged is on green exactly as blue holds it, the application wrote to
/// green after, and none of its writes reached blue after the fence.
async fn every_blue_write_on_green(blue: &MySqlServer, green: &PgServer, db: &str, writer: Writer<(i64, i64, On)>) {
    let before = writer.count();
    writer.wait_for(before + 30).await;
    let (acked, errors) = writer.finish().await;
    assert!(acked.iter().any(|w| w.2 == On::Green), "the application wrote to green; errors {errors:?}");
    assert_eq!(green_orders(green, db, true).await, blue_orders(blue, db), "green holds exactly blue's orders");
    let blue_rows = blue_orders(blue, db);
    for (id, n, _) in acked.iter().filter(|w| w.2 == On::Blue) {
        assert!(blue_rows.contains(&format!("{id}|{n}|w")), "blue's acknowledged order {id} is not on blue");
    }
    assert!(!errors.iter().any(|e| e.starts_with("green:")), "{errors:?}");
}

/// The application flips 400 ms after the switch command set its flag (its instances read it on
/// their own time). The fence holds until its readiness endpoint says `postgres`: when `cutover`
/// returns, the application already writes to green, and the write pause includes its flip. An
/// endpoint that already claims green before the fence refuses the cutover, nothing fenced.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_switch_holds_the_fence_until_the_application_answers_ready_on_green() {
    let flip = Flip { after: Duration::from_millis(400), ..Flip::default() };
    let (blue, green, db, dir, mut t, writer) = readiness_pair(flip.clone(), "20s").await;

    flip.lie.store(true, Ordering::SeqCst);
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("cutover.command.ready_url answers 'postgres' before the fence, not 'mysql' (cutover.command.ready_blue)"), "{out}");
    assert_eq!(blue.execute(Some(&db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "0", "nothing was fenced");
    assert!(!dir.path().join("switched").exists(), "nothing was switched");
    flip.lie.store(false, Ordering::SeqCst);

    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(flip.on_green.load(Ordering::SeqCst), "the cutover returned before the application wrote to green\n{out}");
    assert!(out.contains("readiness: the application answers 'mysql' (cutover.command.ready_blue)"), "{out}");
    let waited: u64 = out
        .split("; the application answered ready ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no readiness wait in {out}"));
    assert!(waited >= 350, "the application flips 400 ms after the flag; turnout waited {waited} ms");
    let pause: u64 = out
        .split("write pause ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no pause in {out}"));
    assert!(pause >= waited, "the pause ({pause} ms) includes the application's flip ({waited} ms)");
    assert_eq!(blue.execute(Some(&db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "1", "blue stays fenced");
    every_blue_write_on_green(&blue, &green, &db, writer).await;
    t.sigterm();
}

/// The application does not flip within `ready_timeout` (one instance stuck): the switch fails after
/// the proof — blue stays fenced, the application's writes there are refused, none is lost — and
/// `turnout run`, restarted once it has flipped, completes the switch from the journal, waiting for
/// the answer again.
#[tokio::test(flavor = "multi_thread")]
async fn an_application_that_does_not_answer_ready_keeps_blue_fenced_until_a_restart_completes_the_switch() {
    let flip = Flip::default();
    flip.stuck.store(true, Ordering::SeqCst);
    let (blue, green, db, _dir, mut t, writer) = readiness_pair(flip.clone(), "1s").await;
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("the application did not answer 'postgres' at cutover.command.ready_url within"), "{out}");
    assert!(out.contains("its last answer: 'mysql'"), "{out}");
    assert_eq!(blue.execute(Some(&db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "1", "blue stays fenced");
    assert!(!flip.on_green.load(Ordering::SeqCst));

    // Restarted while the application is still stuck: the restart runs the switch again, waits for
    // the answer again, and stops without it — blue still fenced.
    t.sigterm();
    t.start();
    let deadline = Instant::now() + common::WAIT;
    let code = loop {
        if let Some(code) = t.exited() {
            break code;
        }
        assert!(Instant::now() < deadline, "the restart did not give up:\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(code, 0, "{}", t.log_text());
    assert!(t.log_text().contains("the application did not answer 'postgres'"), "{}", t.log_text());
    assert!(!t.log_text().contains("the switch to green was completed"), "{}", t.log_text());
    assert_eq!(blue.execute(Some(&db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "1", "blue stays fenced");
    // Once it has moved, the next restart completes the switch.
    flip.stuck.store(false, Ordering::SeqCst);
    t.start();
    common::wait_for(&mut t, "the switch completed", |t| t.log_text().contains("the switch to green was completed").then_some(())).await;
    assert!(flip.on_green.load(Ordering::SeqCst), "the restart completed the switch before the application wrote to green");
    assert_eq!(blue.execute(Some(&db), "SELECT @@GLOBAL.read_only").expect("read_only").trim(), "1", "blue stays fenced");
    every_blue_write_on_green(&blue, &green, &db, writer).await;
    t.sigterm();
}
