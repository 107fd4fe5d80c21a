//! `turnout demo --mysql-to-postgres`: an application moved from MySQL to PostgreSQL and back on this
//! machine — an Oracle MySQL 9.7 blue (MariaDB 10.11 where MySQL cannot run, or with `--engine
//! mariadb`), a PostgreSQL 17 green, an application that runs both data layers behind a flag and says
//! on an HTTP endpoint which one it writes to, replication through the type map with live lag, the
//! cutover (the stream back armed, read-only fence, the sentinel proving green has every committed
//! write, green's identities moved past blue's `AUTO_INCREMENT`, blue's view kept as the operator made
//! it on green, the flag set and the fence held until the application answers `postgres`), writes on
//! PostgreSQL streamed back to MySQL, the rollback (green fenced, blue proven, blue's counters past
//! green's, the flag set back, the answer `mysql` awaited), writes on MySQL again — and the check that
//! every write the application acknowledged on either side is on blue, and every one before the
//! rollback on green.

use super::{harness, report, step, AppLog, DemoError};
use crate::cli::DemoEngine;
use crate::config::Config;
use crate::cutover::Request;
use mysql_async::prelude::Queryable;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, serve_word, Flavor, MySqlServer, PgOptions, PgServer};

/// Blue's schema and seed rows: what the application reads and writes, and a view it uses.
fn schema(flavor: Flavor) -> String {
    format!(
        "CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
        CREATE TABLE events (id BIGINT AUTO_INCREMENT PRIMARY KEY, account INT NOT NULL, amount INT NOT NULL,
                             at TIMESTAMP(6) NOT NULL, note VARCHAR(20),
                             FOREIGN KEY (account) REFERENCES accounts (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
        INSERT INTO accounts SELECT seq, 0 FROM {};
        INSERT INTO events (account, amount, at, note) SELECT 1 + seq % 1000, 1, NOW(6), 'seed' FROM {};
        UPDATE accounts a SET balance = (SELECT COUNT(*) FROM events e WHERE e.account = a.id);
        CREATE VIEW busy AS SELECT id, balance FROM accounts WHERE balance > 100;",
        flavor.numbers(1000),
        flavor.numbers(100_000)
    )
}

/// The view's form on green, which the operator makes (turnout translates tables, not views).
const GREEN_VIEW: &str = "CREATE VIEW app.busy AS SELECT id, balance FROM app.accounts WHERE balance > 100";

/// The application's account on blue: DML only.
const APP: &str = "app";

pub(crate) async fn demo(engine: Option<DemoEngine>) -> Result<(), DemoError> {
    step("starting blue (MySQL family, binlog in ROW format with full metadata) and green (PostgreSQL 17)");
    let green = tokio::task::spawn_blocking(|| PgServer::start_with(PgOptions::new(17))).await?.map_err(harness("green"))?;
    let blue = super::mysql::start_servers(engine, &[1]).await?.pop().ok_or_else(|| DemoError::Verdict("blue did not start".into()))?;
    println!("blue  {} 127.0.0.1:{}\ngreen PostgreSQL 17 127.0.0.1:{}", blue.flavor().label(), blue.port(), green.port());
    let app_password = format!("app-{}", free_port());
    let account = format!("CREATE USER {APP}@'%' IDENTIFIED BY '{app_password}'; GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO {APP}@'%';");
    blue.execute(None, &format!("CREATE DATABASE app; {account}")).map_err(harness("blue database"))?;
    blue.execute(Some("app"), &schema(blue.flavor())).map_err(harness("blue schema"))?;
    green.execute("postgres", "CREATE DATABASE app").await.map_err(harness("green database"))?;

    let dir = tempfile::tempdir().map_err(DemoError::TempDir)?;
    let flag = dir.path().join("flag");
    std::fs::write(&flag, "mysql").map_err(DemoError::TempDir)?;
    let side = Arc::new(AtomicBool::new(false));
    // The application's readiness endpoint: which data layer it writes to.
    let answers = Arc::clone(&side);
    let ready = serve_word(move || if answers.load(Ordering::SeqCst) { "postgres" } else { "mysql" }).await.map_err(DemoError::TempDir)?;
    let listen = format!("127.0.0.1:{}", free_port());
    let toml = format!(
        "[source]\nurl = \"{blue_url}\"\n[target]\nurl = \"{green_url}\"\n[state]\ndir = \"{state}\"\n[http]\nlisten = \"{listen}\"\n\
         [cutover]\nfence = \"read-only\"\nswitch = \"command\"\nkeep_definitions = [\"VIEW app.busy\"]\n\
         [cutover.command]\nargv = [\"/bin/sh\", \"-c\", \"printf postgres > '{flag}'\"]\nback_argv = [\"/bin/sh\", \"-c\", \"printf mysql > '{flag}'\"]\n\
         ready_url = \"{ready}/db-engine\"\nready_green = \"postgres\"\nready_blue = \"mysql\"\nready_timeout = \"10s\"\n",
        blue_url = blue.url("app"),
        green_url = green.url("app"),
        state = dir.path().join("state").display(),
        flag = flag.display(),
    );
    let config = Arc::new(Config::parse(&toml, |_| None).map_err(|source| DemoError::Turnout { what: "the demo's configuration", source })?);

    step("the application starts writing to MySQL (about 150 transactions per second); it moves when the switch command sets its flag");
    let stop_app = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(AppLog::default()));
    let app = Application {
        mysql: format!("mysql://{APP}:{app_password}@127.0.0.1:{}/app", blue.port()),
        postgres: green.url("app"),
        flag,
        on_postgres: side,
        stop: Arc::clone(&stop_app),
        log: Arc::clone(&log),
    };
    let app = tokio::spawn(app.run());
    // The operator's part: the view the application reads, made on green in PostgreSQL's form once
    // the copy created its table (the cutover refuses until it is kept).
    let view = tokio::spawn(make_view(green.url("app")));
    let windows = there_and_back(&config, &listen, &stop_app, app).await;
    view.abort();
    let windows = windows?;
    step("verifying");
    verify(&blue, &green, &log, windows).await?;
    step("cleaning up (servers and temporary files are removed)");
    Ok(())
}

/// Runs the sidecar, cuts over, lets the application write on PostgreSQL (streamed back), rolls back,
/// lets it write on MySQL again, then stops both. Returns when the cutover and the rollback ran.
async fn there_and_back(
    config: &Arc<Config>,
    listen: &str,
    stop_app: &AtomicBool,
    app: tokio::task::JoinHandle<()>,
) -> Result<[(Instant, Instant); 2], DemoError> {
    let steps = async {
        let cutover = super::follow_and_cut_over(config, listen).await?;
        step("the application writes on PostgreSQL; each write streams back to MySQL");
        follow_stream_back(listen).await?;
        step("turnout rollback --when-lag '<1s'");
        let request = Request { when_lag_ms: 1000, timeout_ms: 60_000, max_pause_ms: 5_000, ..Request::default() };
        let started = Instant::now();
        if crate::control::rollback_with(config, &request).await != 0 {
            return Err(DemoError::Verdict("the rollback did not complete (green keeps serving)".into()));
        }
        Ok([cutover, (started, Instant::now())])
    };
    super::with_sidecar(config, stop_app, app, steps).await
}

/// Prints the stream back's status for three seconds once it streams.
async fn follow_stream_back(listen: &str) -> Result<(), DemoError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut streaming_since: Option<Instant> = None;
    while streaming_since.is_none_or(|since| since.elapsed() < Duration::from_secs(3)) {
        if let Ok(body) = crate::control::get(listen, "/status").await {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let lag = v["lag_seconds"].as_f64().map_or("   -   ".into(), |l| format!("{l:.3} s"));
            println!(
                "{} phase {:<10} lag {lag:>9}  applied {:>8} rows",
                v["direction"].as_str().unwrap_or("?"),
                v["phase"].as_str().unwrap_or("?"),
                v["rows_applied"]
            );
            if v["direction"] == "reverse" && v["phase"] == "streaming" {
                streaming_since.get_or_insert_with(Instant::now);
            }
        }
        if Instant::now() > deadline {
            return Err(DemoError::Verdict("the stream back did not reach streaming within a minute".into()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Every acknowledged write on blue (which serves again), every one acknowledged before the rollback
/// on green (fenced since), balances consistent on both, blue writable and green read-only.
async fn verify(blue: &MySqlServer, green: &PgServer, log: &Mutex<AppLog>, [cutover, rollback]: [(Instant, Instant); 2]) -> Result<(), DemoError> {
    let (acked, errors) = {
        let l = log.lock().unwrap_or_else(|p| p.into_inner());
        (l.acked.clone(), l.errors.clone())
    };
    let (g, conn) = tokio_postgres::connect(&green.url("app"), tokio_postgres::NoTls).await.map_err(DemoError::GreenPg)?;
    tokio::spawn(conn);
    let rows = g.query("SELECT id FROM app.events WHERE note IN ('mysql', 'postgres')", &[]).await.map_err(DemoError::GreenPg)?;
    let on_green: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let green_balanced: bool =
        g.query_one("SELECT (SELECT sum(balance) FROM app.accounts) = (SELECT count(*) FROM app.events)", &[]).await.map_err(DemoError::GreenPg)?.get(0);
    let green_read_only: String = g.query_one("SHOW default_transaction_read_only", &[]).await.map_err(DemoError::GreenPg)?.get(0);
    let ids = blue.execute(Some("app"), "SELECT id FROM events WHERE note IN ('mysql', 'postgres')").map_err(harness("blue"))?;
    let on_blue: HashSet<i64> = ids.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let blue_balanced = blue.execute(Some("app"), "SELECT (SELECT SUM(balance) FROM accounts) = (SELECT COUNT(*) FROM events)").map_err(harness("blue"))?;
    let blue_read_only = blue.execute(None, "SELECT @@GLOBAL.read_only").map_err(harness("blue"))?.trim() == "1";
    // What a fence does to a write: MySQL refuses it (read_only) or ends its session; PostgreSQL
    // refuses it (a read-only transaction) or ends its session. Anything else fails the demo.
    let refused = errors
        .iter()
        .filter(|e| match e.split_once(": ") {
            Some(("mysql", text)) => super::mysql::is_fence_error(text),
            Some(("postgres", text)) => ["read-only transaction", "terminating connection", "onnection closed"].iter().any(|w| text.contains(w)),
            _ => false,
        })
        .count();
    let from_postgres = blue.execute(Some("app"), "SELECT COUNT(*) FROM events WHERE note = 'postgres'").map_err(harness("blue"))?;
    let from_postgres: u64 = from_postgres.trim().parse().unwrap_or(0);
    let before: Vec<(i64, Instant)> = acked.iter().filter(|(_, at)| *at < rollback.0).cloned().collect();
    let missing_on_green = before.iter().filter(|(id, _)| !on_green.contains(id)).count();
    println!(
        "the fences refused {refused} writes (never acknowledged; the application wrote again on the other side once moved); \
         {from_postgres} writes made on PostgreSQL are on MySQL; green holds {} of the {} writes acknowledged before the rollback, \
         {missing_on_green} missing; balances consistent on green: {green_balanced}; green read-only: {green_read_only}; blue read-only: {blue_read_only}",
        before.len() - missing_on_green,
        before.len()
    );
    let (during_rollback, _) = super::gaps(&acked, rollback);
    println!("write pause seen by the application during the rollback: {} ms", during_rollback.as_millis());
    if let Some(failure) = report(&acked, errors.len() - refused, &on_blue, blue_balanced.trim() == "1", cutover, "blue") {
        return Err(DemoError::Verdict(format!("{failure}; errors: {errors:?}")));
    }
    if missing_on_green > 0 || !green_balanced || blue_read_only || green_read_only != "on" || from_postgres == 0 {
        return Err(DemoError::Verdict(format!(
            "{missing_on_green} writes missing on green, green balanced {green_balanced}, blue read-only {blue_read_only}, green read-only \
             {green_read_only}, {from_postgres} writes made on PostgreSQL on MySQL"
        )));
    }
    Ok(())
}

/// Creates [`GREEN_VIEW`] on green as soon as the copy has made its table.
async fn make_view(url: String) {
    let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else { return };
    tokio::spawn(connection);
    loop {
        let made = client.query_one("SELECT to_regclass('app.accounts') IS NOT NULL", &[]).await.is_ok_and(|r| r.get::<_, bool>(0));
        if made {
            match client.batch_execute(GREEN_VIEW).await {
                Ok(()) => println!("the operator made green's form of blue's view app.busy (kept by cutover.keep_definitions)"),
                Err(e) => println!("making green's view failed: {e}"),
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An application with both data layers behind a flag (a file holding `mysql` or `postgres`, read
/// before each transaction); `on_postgres` says which one it writes to (its readiness endpoint
/// answers from it). One transaction per event (balance update + insert); a write a fence refuses is
/// made again.
struct Application {
    mysql: String,
    postgres: String,
    flag: PathBuf,
    on_postgres: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<AppLog>>,
}

impl Application {
    async fn run(self) {
        let Ok(opts) = mysql_async::Opts::from_url(&self.mysql) else { return };
        let mut mysql: Option<mysql_async::Conn> = None;
        let mut postgres: Option<tokio_postgres::Client> = None;
        let mut n: u64 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let account = i32::try_from(1 + n % 1000).unwrap_or(1);
            let to_postgres = std::fs::read_to_string(&self.flag).is_ok_and(|f| f.trim() == "postgres");
            self.on_postgres.store(to_postgres, Ordering::SeqCst);
            let result = if to_postgres {
                on_postgres(&mut postgres, &self.postgres, account).await.map_err(|e| {
                    postgres = None;
                    let said = e.as_db_error().map_or_else(|| e.to_string(), |d| format!("{} ({})", d.message(), d.code().code()));
                    format!("postgres: {said}")
                })
            } else {
                on_mysql(&mut mysql, &opts, account).await.map_err(|e| {
                    mysql = None;
                    format!("mysql: {e}")
                })
            };
            if let Ok(mut l) = self.log.lock() {
                match result {
                    Ok(id) => l.acked.push((id, Instant::now())),
                    Err(err) => l.errors.push(err),
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn on_mysql(conn: &mut Option<mysql_async::Conn>, opts: &mysql_async::Opts, account: i32) -> Result<i64, mysql_async::Error> {
    let c = match conn.as_mut() {
        Some(c) => c,
        None => conn.insert(mysql_async::Conn::new(opts.clone()).await?),
    };
    let mut tx = c.start_transaction(mysql_async::TxOpts::default()).await?;
    tx.exec_drop("UPDATE accounts SET balance = balance + 1 WHERE id = ?", (account,)).await?;
    tx.exec_drop("INSERT INTO events (account, amount, at, note) VALUES (?, 1, NOW(6), 'mysql')", (account,)).await?;
    let id = tx.last_insert_id().unwrap_or(0);
    tx.commit().await?;
    Ok(i64::try_from(id).unwrap_or(i64::MAX))
}

async fn on_postgres(client: &mut Option<tokio_postgres::Client>, url: &str, account: i32) -> Result<i64, tokio_postgres::Error> {
    let c = match client {
        Some(c) => c,
        None => {
            let (c, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client.insert(c)
        }
    };
    let tx = c.transaction().await?;
    tx.execute("UPDATE app.accounts SET balance = balance + 1 WHERE id = $1", &[&account]).await?;
    let row = tx.query_one("INSERT INTO app.events (account, amount, at, note) VALUES ($1, 1, now(), 'postgres') RETURNING id", &[&account]).await?;
    tx.commit().await?;
    Ok(row.get(0))
}
