//! `turnout demo --mysql-to-postgres`: an application moved from MySQL to PostgreSQL on this machine
//! — an Oracle MySQL 9.7 blue (MariaDB 10.11 where MySQL cannot run, or with `--engine mariadb`), a
//! PostgreSQL 17 green, an application that speaks both data layers and writes to MySQL until the
//! cutover's command switch tells it to move, replication through the type map with live lag, the
//! cutover (read-only fence, the sentinel proving green has every committed write, green's identities
//! moved past blue's `AUTO_INCREMENT`, blue's view kept as the operator made it on green), and the
//! check that every write the application had acknowledged on either side is on green.

use super::{harness, report, step, AppLog, DemoError};
use crate::cli::DemoEngine;
use crate::config::Config;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, Flavor, PgOptions, PgServer};

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
    let switched = dir.path().join("switched");
    let listen = format!("127.0.0.1:{}", free_port());
    let toml = format!(
        "[source]\nurl = \"{blue_url}\"\n[target]\nurl = \"{green_url}\"\n[state]\ndir = \"{state}\"\n[http]\nlisten = \"{listen}\"\n\
         [cutover]\nfence = \"read-only\"\nswitch = \"command\"\nreverse = false\nkeep_definitions = [\"VIEW app.busy\"]\n\
         [cutover.command]\nargv = [\"/bin/sh\", \"-c\", \"touch '{flag}'\"]\n",
        blue_url = blue.url("app"),
        green_url = green.url("app"),
        state = dir.path().join("state").display(),
        flag = switched.display(),
    );
    let config = Arc::new(Config::parse(&toml, |_| None).map_err(|source| DemoError::Turnout { what: "the demo's configuration", source })?);

    step("the application starts writing to MySQL (about 150 transactions per second); it moves to PostgreSQL when the switch command runs");
    let stop_app = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(AppLog::default()));
    let app = Application {
        mysql: format!("mysql://{APP}:{app_password}@127.0.0.1:{}/app", blue.port()),
        postgres: green.url("app"),
        switched: switched.clone(),
        stop: Arc::clone(&stop_app),
        log: Arc::clone(&log),
    };
    let app = tokio::spawn(app.run());
    // The operator's part: the view the application reads, made on green in PostgreSQL's form once
    // the copy created its table (the cutover refuses until it is kept).
    let view = tokio::spawn(make_view(green.url("app")));

    let cutover = super::replicate_and_cut_over(&config, &listen, &stop_app, app).await;
    view.abort();
    let cutover = cutover?;

    step("verifying");
    let (acked, errors) = {
        let l = log.lock().unwrap_or_else(|p| p.into_inner());
        (l.acked.clone(), l.errors.clone())
    };
    let (g, conn) = tokio_postgres::connect(&green.url("app"), tokio_postgres::NoTls).await.map_err(DemoError::GreenPg)?;
    tokio::spawn(conn);
    let rows = g.query("SELECT id FROM app.events WHERE note IN ('mysql', 'postgres')", &[]).await.map_err(DemoError::GreenPg)?;
    let on_green: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let balanced: bool =
        g.query_one("SELECT (SELECT sum(balance) FROM app.accounts) = (SELECT count(*) FROM app.events)", &[]).await.map_err(DemoError::GreenPg)?.get(0);
    let on_postgres: i64 = g.query_one("SELECT count(*) FROM app.events WHERE note = 'postgres'", &[]).await.map_err(DemoError::GreenPg)?.get(0);
    let blue_read_only = blue.execute(None, "SELECT @@GLOBAL.read_only").map_err(harness("blue"))?.trim() == "1";
    let refused = errors.iter().filter(|x| x.starts_with("mysql:")).count();
    println!(
        "the fence refused {refused} writes on MySQL (never acknowledged; the application wrote on, on PostgreSQL once switched); {on_postgres} writes went to PostgreSQL; \
         blue stays read-only: {blue_read_only}"
    );
    if let Some(failure) = report(&acked, errors.len() - refused, &on_green, balanced, cutover) {
        return Err(DemoError::Verdict(format!("{failure}; errors: {errors:?}")));
    }
    if !blue_read_only || on_postgres == 0 {
        return Err(DemoError::Verdict(format!("blue writable after the cutover ({}) or no write on PostgreSQL ({on_postgres})", !blue_read_only)));
    }
    step("cleaning up (servers and temporary files are removed)");
    drop(g);
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

/// An application with both data layers: MySQL until `switched` exists, PostgreSQL after. One
/// transaction per event (balance update + insert); a write MySQL refuses (the fence) is made again.
struct Application {
    mysql: String,
    postgres: String,
    switched: PathBuf,
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
            let result = if moved(&self.switched) {
                on_postgres(&mut postgres, &self.postgres, account).await.map_err(|e| format!("postgres: {e}"))
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

/// Whether the switch command has told the application to move.
fn moved(flag: &Path) -> bool {
    flag.exists()
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
