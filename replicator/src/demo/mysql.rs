//! `turnout demo --mysql`: Oracle MySQL 9.7 (or MariaDB) blue and green on this machine, haproxy in
//! front of them (the application's endpoint), an application writing through it as an ordinary DML
//! account, replication from blue's binlog with live lag, a cutover with the read-only fence (sealed
//! with `super_read_only` on MySQL) and the haproxy switch, verification that every acknowledged write
//! is on green, the write pause, cleanup.
//!
//! haproxy must be installed, and MariaDB (`mariadb-server`) for `--engine mariadb` (`scripts/demo`
//! installs both). MySQL 9.7 runs from a root file system built once into turnout's cache with
//! `mmdebstrap` (as root, from Debian's `sid`); where that cannot be done the demo says why and runs
//! on MariaDB, unless `--engine mysql` asked for MySQL.

use super::{harness, report, step, AppLog, DemoError};
use crate::cli::DemoEngine;
use crate::config::Config;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, Flavor, HaProxy, MySqlServer};

/// The demo's schema and seed rows on `flavor`.
fn schema(flavor: Flavor) -> String {
    format!(
        "CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
        CREATE TABLE events (id BIGINT AUTO_INCREMENT PRIMARY KEY, account INT NOT NULL, amount INT NOT NULL,
                             at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), note VARCHAR(20),
                             FOREIGN KEY (account) REFERENCES accounts (id)) ENGINE=InnoDB;
        INSERT INTO accounts SELECT seq, 0 FROM {};
        INSERT INTO events (account, amount, note) SELECT 1 + seq % 1000, 1, 'seed' FROM {};
        UPDATE accounts a SET balance = (SELECT COUNT(*) FROM events e WHERE e.account = a.id);",
        flavor.numbers(1000),
        flavor.numbers(100_000)
    )
}

/// Blue and green of the engine asked for: MySQL 9.7 by default where its servers start, MariaDB
/// otherwise (saying why).
async fn servers(engine: Option<DemoEngine>) -> Result<(MySqlServer, MySqlServer), DemoError> {
    let flavor = if engine == Some(DemoEngine::Mariadb) { Flavor::MariaDb10_11 } else { Flavor::MySql9_7 };
    step(&format!(
        "starting blue and green ({}, binlog in ROW format with full metadata) and haproxy in front of them{}",
        flavor.label(),
        if flavor.is_mariadb() { "" } else { " — the first run builds MySQL's root file system (a minute or two)" }
    ));
    let mut started = start_servers(engine, &[1, 2]).await?.into_iter();
    match (started.next(), started.next()) {
        (Some(blue), Some(green)) => Ok((blue, green)),
        _ => Err(DemoError::Verdict("the demo's servers did not start".into())),
    }
}

/// Servers of the engine asked for, one per server id in `ids`: MySQL 9.7 by default where its
/// servers start, MariaDB 10.11 otherwise (saying why), unless `--engine` asked for one.
pub(super) async fn start_servers(engine: Option<DemoEngine>, ids: &[u32]) -> Result<Vec<MySqlServer>, DemoError> {
    let start = |flavor: Flavor| async move {
        let mut out = Vec::new();
        for &id in ids {
            match tokio::task::spawn_blocking(move || MySqlServer::start_flavor(flavor, id)).await? {
                Ok(server) => out.push(server),
                Err(err) => return Ok::<_, DemoError>(Err(err)),
            }
        }
        Ok(Ok(out))
    };
    let flavor = if engine == Some(DemoEngine::Mariadb) { Flavor::MariaDb10_11 } else { Flavor::MySql9_7 };
    match start(flavor).await? {
        Ok(servers) => Ok(servers),
        Err(err) if engine.is_none() => {
            println!("{} cannot run here ({err}); running the demo on MariaDB 10.11 instead (--engine mariadb)", flavor.label());
            start(Flavor::MariaDb10_11).await?.map_err(harness("MariaDB"))
        }
        Err(err) => Err(harness(flavor.label())(err)),
    }
}

/// The application's account: DML only, on blue and green alike.
const APP: &str = "app";

pub(crate) async fn demo(engine: Option<DemoEngine>) -> Result<(), DemoError> {
    let (blue, green) = servers(engine).await?;
    println!("running on {}", blue.flavor().label());
    let app_password = format!("app-{}", free_port());
    let account = format!("CREATE USER {APP}@'%' IDENTIFIED BY '{app_password}'; GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO {APP}@'%';");
    blue.execute(None, &format!("CREATE DATABASE app; {account}")).map_err(harness("blue database"))?;
    // Green's own setup stays out of its binlog.
    green.execute(None, &format!("SET sql_log_bin = 0; CREATE DATABASE app; {account}")).map_err(harness("green database"))?;
    blue.execute(Some("app"), &schema(blue.flavor())).map_err(harness("blue schema"))?;
    let proxy = HaProxy::start("app", ("blue", blue.port()), ("green", green.port())).map_err(harness("haproxy"))?;
    println!("blue  127.0.0.1:{}\ngreen 127.0.0.1:{}\nhaproxy 127.0.0.1:{} (the application's endpoint)", blue.port(), green.port(), proxy.port());

    let dir = tempfile::tempdir().map_err(DemoError::TempDir)?;
    let listen = format!("127.0.0.1:{}", free_port());
    let toml = format!(
        "[source]\nurl = \"{blue_url}\"\n[target]\nurl = \"{green_url}\"\n[state]\ndir = \"{state}\"\n[http]\nlisten = \"{listen}\"\n\
         [cutover]\nfence = \"read-only\"\nswitch = \"haproxy\"\n[cutover.haproxy]\nadmin_socket = \"{socket}\"\nbackend = \"app\"\n",
        blue_url = blue.url("app"),
        green_url = green.url("app"),
        state = dir.path().join("state").display(),
        socket = proxy.admin_socket().display(),
    );
    let config = Arc::new(Config::parse(&toml, |_| None).map_err(|source| DemoError::Turnout { what: "the demo's configuration", source })?);

    step("the application starts writing through haproxy (about 200 transactions per second; it retries what the fence refuses)");
    let stop_app = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(AppLog::default()));
    let through = format!("mysql://{APP}:{app_password}@127.0.0.1:{}/app", proxy.port());
    let app = tokio::spawn(application(through, Arc::clone(&stop_app), Arc::clone(&log)));

    let cutover = super::replicate_and_cut_over(&config, &listen, &stop_app, app).await?;

    step("verifying");
    let (acked, errors) = {
        let l = log.lock().unwrap_or_else(|p| p.into_inner());
        (l.acked.clone(), l.errors.clone())
    };
    let sql = DemoError::GreenMySql;
    let opts = mysql_async::Opts::from_url(&green.url("app")).map_err(|e| sql(mysql_async::Error::Url(e)))?;
    let mut g = mysql_async::Conn::new(opts).await.map_err(sql)?;
    let on_green: Vec<i64> = g.query("SELECT id FROM events WHERE note = 'app'").await.map_err(sql)?;
    let balanced: Option<i64> = g.query_first("SELECT (SELECT SUM(balance) FROM accounts) = (SELECT COUNT(*) FROM events)").await.map_err(sql)?;
    let blue_read_only = blue.execute(None, "SELECT @@GLOBAL.read_only").map_err(harness("blue"))?.trim() == "1";
    // The read-only fence refuses writes while it stands (error 1290) and ends open sessions: the
    // application retries those on a new connection, which reaches green after the switch.
    let refused = errors.iter().filter(|x| is_fence_error(x)).count();
    println!("the fence refused {refused} writes, which the application retried; blue stays read-only: {blue_read_only}");
    let on_green = on_green.into_iter().collect();
    if let Some(failure) = report(&acked, errors.len() - refused, &on_green, balanced == Some(1), cutover, "green") {
        return Err(DemoError::Verdict(format!("{failure}; errors: {errors:?}")));
    }
    if !blue_read_only {
        return Err(DemoError::Verdict("blue is writable after the cutover".into()));
    }
    step("cleaning up (servers and temporary files are removed)");
    drop(g);
    drop(proxy);
    Ok(())
}

/// What a client of the read-only fence sees and should retry on a new connection: 1290 (read-only),
/// 1927 (connection killed, MariaDB), 4031 (disconnected by the server, MySQL), 2006/2013 (server gone,
/// connection lost) and broken connections.
pub(super) fn is_fence_error(text: &str) -> bool {
    ["1290", "1927", "4031", "2006", "2013", "Input/output error", "onnection"].iter().any(|code| text.contains(code))
}

/// The application: one transaction per event (balance update + insert) through haproxy; a failed
/// transaction is retried on a new connection.
async fn application(url: String, stop: Arc<AtomicBool>, log: Arc<Mutex<AppLog>>) {
    let Ok(opts) = mysql_async::Opts::from_url(&url) else { return };
    let mut conn: Option<mysql_async::Conn> = None;
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let account = 1 + n % 1000;
        let result = async {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(mysql_async::Conn::new(opts.clone()).await?),
            };
            let mut tx = c.start_transaction(mysql_async::TxOpts::default()).await?;
            tx.query_drop(format!("UPDATE accounts SET balance = balance + 1 WHERE id = {account}")).await?;
            tx.query_drop(format!("INSERT INTO events (account, amount, note) VALUES ({account}, 1, 'app')")).await?;
            let id = tx.last_insert_id().unwrap_or(0);
            tx.commit().await?;
            Ok::<u64, mysql_async::Error>(id)
        }
        .await;
        if let Ok(mut l) = log.lock() {
            match result {
                Ok(id) => l.acked.push((i64::try_from(id).unwrap_or(i64::MAX), Instant::now())),
                Err(err) => {
                    l.errors.push(err.to_string());
                    conn = None;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
