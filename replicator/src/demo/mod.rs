//! `turnout demo`: the whole job on one machine with nothing set up — a local blue (PostgreSQL 15)
//! and green (PostgreSQL 17), pgbouncer in front of blue, a small application writing through
//! pgbouncer, replication with live lag, a cutover with `--when-lag '<1s'`, verification that every
//! acknowledged write is on green, the measured write pause, and cleanup (also on failure).
//!
//! PostgreSQL binaries come from the system (`/usr/lib/postgresql/<major>/bin`) or the npm builds the
//! test harness fetches; pgbouncer must be installed (`apt-get install -y pgbouncer`).
//!
//! `turnout demo --mysql [--engine mysql|mariadb]` ([`mysql`]) does the same with Oracle MySQL 9.7 (or
//! MariaDB) blue and green behind haproxy; `turnout demo --mysql-to-postgres` ([`mysql_to_pg`]) moves
//! an application from a MySQL-family blue to a PostgreSQL green.

mod mysql;
mod mysql_to_pg;

use crate::config::Config;
use crate::cutover::Request;
use crate::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, PgBouncer, PgServer};

const SCHEMA: &str = "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL); \
    CREATE TABLE events (id bigserial PRIMARY KEY, account int NOT NULL REFERENCES accounts, amount int NOT NULL, \
                         at timestamptz NOT NULL DEFAULT now(), note text); \
    INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 1000) g; \
    INSERT INTO events (account, amount, note) SELECT 1 + g % 1000, 1, 'seed' FROM generate_series(1, 100000) g; \
    UPDATE accounts a SET balance = (SELECT count(*) FROM events e WHERE e.account = a.id)";

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    /// The test harness could not start or drive a server.
    #[error("{what}: {source}")]
    Harness {
        what: &'static str,
        #[source]
        source: turnout_testbed::TestbedError,
    },
    /// turnout itself failed: its configuration, or `turnout run`.
    #[error("{what}: {source}")]
    Turnout {
        what: &'static str,
        #[source]
        source: Error,
    },
    /// A query of the demo's checks on PostgreSQL green failed.
    #[error("green: {0}")]
    GreenPg(#[source] tokio_postgres::Error),
    /// A query of the demo's checks on MySQL/MariaDB green failed.
    #[error("green: {0}")]
    GreenMySql(#[source] mysql_async::Error),
    /// The demo's temporary directory.
    #[error("temp dir: {0}")]
    TempDir(#[source] std::io::Error),
    /// A task of the demo panicked or was cancelled.
    #[error("a task of the demo died: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// What the demo saw that must not happen (a write lost, a pause too long, blue still writable).
    #[error("{0}")]
    Verdict(String),
}

/// Wraps a failure of the test harness: `.map_err(harness("blue"))`.
fn harness(what: &'static str) -> impl Fn(turnout_testbed::TestbedError) -> DemoError {
    move |source| DemoError::Harness { what, source }
}

/// What the application saw: acknowledged event ids with their time, and errors.
#[derive(Default)]
pub(crate) struct AppLog {
    acked: Vec<(i64, Instant)>,
    errors: Vec<String>,
}

/// Runs the demo (`mysql`: the MySQL-family one, `mysql_to_postgres`: MySQL-family blue, PostgreSQL
/// green; on `engine`); returns the exit code.
pub async fn run(mysql: bool, mysql_to_postgres: bool, engine: Option<crate::cli::DemoEngine>) -> i32 {
    if engine.is_some() && !mysql && !mysql_to_postgres {
        eprintln!("turnout demo: --engine picks the MySQL-family server of --mysql or --mysql-to-postgres; add one of them");
        return crate::cli::EXIT_CONFIG;
    }
    let outcome = if mysql_to_postgres {
        mysql_to_pg::demo(engine).await
    } else if mysql {
        mysql::demo(engine).await
    } else {
        demo().await
    };
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("turnout demo failed: {e}");
            crate::cli::EXIT_FAILED
        }
    }
}

pub(crate) fn step(text: &str) {
    println!("\n== {text}");
}

async fn demo() -> Result<(), DemoError> {
    step("starting blue (PostgreSQL 15), green (PostgreSQL 17) and pgbouncer in front of blue");
    let blue = tokio::task::spawn_blocking(|| PgServer::start(15)).await?.map_err(harness("blue"))?;
    let green = tokio::task::spawn_blocking(|| PgServer::start(17)).await?.map_err(harness("green"))?;
    blue.execute("postgres", "CREATE DATABASE app").await.map_err(harness("blue database"))?;
    green.execute("postgres", "CREATE DATABASE app").await.map_err(harness("green database"))?;
    // pgbouncer keeps one set of credentials for its backend: give green blue's password.
    green.execute("postgres", &format!("ALTER USER postgres PASSWORD '{}'", blue.password())).await.map_err(harness("green password"))?;
    blue.execute("app", SCHEMA).await.map_err(harness("blue schema"))?;
    let bouncer = PgBouncer::start(&blue, "app").map_err(harness("pgbouncer"))?;
    println!("blue  127.0.0.1:{}\ngreen 127.0.0.1:{}\npgbouncer 127.0.0.1:{} (the application's endpoint)", blue.port(), green.port(), bouncer.port());

    let dir = tempfile::tempdir().map_err(DemoError::TempDir)?;
    let green_url = format!("{}?sslmode=disable", green.url_for("postgres", blue.password(), "app"));
    let listen = format!("127.0.0.1:{}", free_port());
    let toml = format!(
        "[source]\nurl = \"{blue_url}\"\n[target]\nurl = \"{green_url}\"\n[state]\ndir = \"{state}\"\n[http]\nlisten = \"{listen}\"\n\
         [cutover]\nfence = \"pgbouncer\"\nswitch = \"pgbouncer\"\n[cutover.pgbouncer]\nadmin_url = \"{admin}\"\ndatabase = \"app\"\nconfig_file = \"{ini}\"\n",
        blue_url = blue.url("app"),
        green_url = green_url,
        state = dir.path().join("state").display(),
        admin = bouncer.admin_url(),
        ini = bouncer.config_path().display(),
    );
    let config = Arc::new(Config::parse(&toml, |_| None).map_err(|source| DemoError::Turnout { what: "the demo's configuration", source })?);

    step("the application starts writing through pgbouncer (about 200 transactions per second)");
    let stop_app = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(AppLog::default()));
    let app = tokio::spawn(application(bouncer.url("app"), Arc::clone(&stop_app), Arc::clone(&log)));

    let cutover = replicate_and_cut_over(&config, &listen, &stop_app, app).await?;

    step("verifying");
    let (acked, errors) = {
        let l = log.lock().unwrap_or_else(|p| p.into_inner());
        (l.acked.clone(), l.errors.clone())
    };
    let (g, conn) = tokio_postgres::connect(&green_url, tokio_postgres::NoTls).await.map_err(DemoError::GreenPg)?;
    tokio::spawn(conn);
    let on_green: Vec<i64> = g.query("SELECT id FROM events WHERE note = 'app'", &[]).await.map_err(DemoError::GreenPg)?.iter().map(|r| r.get(0)).collect();
    let on_green: std::collections::HashSet<i64> = on_green.into_iter().collect();
    let balanced: bool =
        g.query_one("SELECT (SELECT sum(balance) FROM accounts) = (SELECT count(*) FROM events)", &[]).await.map_err(DemoError::GreenPg)?.get(0);
    if let Some(failure) = report(&acked, errors.len(), &on_green, balanced, cutover, "green") {
        return Err(DemoError::Verdict(format!("{failure}; errors: {errors:?}")));
    }
    step("cleaning up (servers and temporary files are removed)");
    drop(bouncer);
    drop(g);
    Ok(())
}

/// Runs the sidecar, follows it to streaming, cuts over, lets the application write two more
/// seconds (on green), then stops the application and the sidecar. Returns when the cutover request
/// was made and when it returned.
pub(crate) async fn replicate_and_cut_over(
    config: &Arc<Config>,
    listen: &str,
    stop_app: &AtomicBool,
    app: tokio::task::JoinHandle<()>,
) -> Result<(Instant, Instant), DemoError> {
    with_sidecar(config, stop_app, app, follow_and_cut_over(config, listen)).await
}

/// Runs the sidecar while `steps` run (after `turnout run` begins), lets the application write two
/// more seconds, then stops the application and the sidecar; what `steps` returned.
pub(crate) async fn with_sidecar<T>(
    config: &Arc<Config>,
    stop_app: &AtomicBool,
    app: tokio::task::JoinHandle<()>,
    steps: impl std::future::Future<Output = Result<T, DemoError>>,
) -> Result<T, DemoError> {
    step("turnout run: schema copy, snapshot, then streaming");
    let (stop_turnout, stop_rx) = tokio::sync::watch::channel(false);
    let runner = {
        let config = Arc::clone(config);
        tokio::spawn(async move { crate::run::run(&config, stop_rx).await })
    };
    let outcome = steps.await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_app.store(true, Ordering::Relaxed);
    let _ = app.await;
    let _ = stop_turnout.send(true);
    let run_result = runner.await?;
    let done = outcome?;
    run_result.map_err(|source| DemoError::Turnout { what: "turnout run", source })?;
    Ok(done)
}

/// Prints what the application saw and what green holds; the failure, if any. `errors` counts
/// client errors that fail the demo; `cutover` is when the cutover request was made and returned.
///
/// The write pause is the largest gap between successive acknowledged writes that overlaps the
/// cutover (it includes the application's own pause between writes, ~5 ms); the largest gap
/// elsewhere in the run is printed beside it, so a stall that is not the cutover's is not
/// mistaken for it.
pub(crate) fn report(
    acked: &[(i64, Instant)],
    errors: usize,
    on_green: &std::collections::HashSet<i64>,
    balanced: bool,
    cutover: (Instant, Instant),
    side: &str,
) -> Option<String> {
    let missing = acked.iter().filter(|(id, _)| !on_green.contains(id)).count();
    let (during, elsewhere) = gaps(acked, cutover);
    println!("application: {} writes acknowledged, {errors} errors", acked.len());
    println!("{side}: {} of them present, {missing} missing; balances consistent: {balanced}", acked.len() - missing);
    println!(
        "write pause seen by the application (largest gap between acknowledged writes during the cutover): {} ms; \
         largest gap at any other time: {} ms",
        during.as_millis(),
        elsewhere.as_millis()
    );
    (missing > 0 || errors > 0 || !balanced).then(|| format!("verification failed: {missing} acknowledged writes missing on {side}"))
}

/// The largest gap between successive acknowledged writes that overlaps `window`, and the largest
/// of the others.
pub(crate) fn gaps(acked: &[(i64, Instant)], (from, to): (Instant, Instant)) -> (Duration, Duration) {
    let (mut during, mut elsewhere) = (Duration::ZERO, Duration::ZERO);
    for w in acked.windows(2) {
        let (a, b) = (w[0].1, w[1].1);
        let gap = b.duration_since(a);
        let slot = if a <= to && b >= from { &mut during } else { &mut elsewhere };
        *slot = (*slot).max(gap);
    }
    (during, elsewhere)
}

/// Prints live status until streaming with low lag, then cuts over through the sidecar's API.
pub(crate) async fn follow_and_cut_over(config: &Arc<Config>, listen: &str) -> Result<(Instant, Instant), DemoError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut streaming_since: Option<Instant> = None;
    loop {
        if let Ok(body) = crate::control::get(listen, "/status").await {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let lag = v["lag_seconds"].as_f64().map_or("   -   ".into(), |l| format!("{l:.3} s"));
            println!("phase {:<10} lag {lag:>9}  {:>8} bytes  applied {:>8} rows", v["phase"].as_str().unwrap_or("?"), v["lag_bytes"], v["rows_applied"]);
            if v["phase"] == "streaming" {
                let since = *streaming_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(3) {
                    break;
                }
            }
        }
        if Instant::now() > deadline {
            return Err(DemoError::Verdict("replication did not reach streaming within 5 minutes".into()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    step("turnout cutover --when-lag '<1s'");
    let request = Request { when_lag_ms: 1000, timeout_ms: 60_000, max_pause_ms: 5_000, ..Request::default() };
    let config = Arc::clone(config);
    let started = Instant::now();
    let code = crate::control::cutover_with(&config, &request).await;
    if code != 0 {
        return Err(DemoError::Verdict("the cutover did not complete (blue keeps serving)".into()));
    }
    Ok((started, Instant::now()))
}

/// The application: one transaction per event (insert + balance update) through pgbouncer.
async fn application(url: String, stop: Arc<AtomicBool>, log: Arc<Mutex<AppLog>>) {
    let client = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((c, conn)) => {
            tokio::spawn(conn);
            c
        }
        Err(err) => {
            if let Ok(mut l) = log.lock() {
                l.errors.push(err.to_string());
            }
            return;
        }
    };
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let account = 1 + n % 1000;
        let sql = format!(
            "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = {account}; \
             INSERT INTO events (account, amount, note) VALUES ({account}, 1, 'app') RETURNING id; COMMIT"
        );
        let result = client.simple_query(&sql).await;
        if let Ok(mut l) = log.lock() {
            match result {
                Ok(msgs) => {
                    let id = msgs.iter().find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse::<i64>().ok()),
                        _ => None,
                    });
                    if let Some(id) = id {
                        l.acked.push((id, Instant::now()));
                    }
                }
                Err(err) => l.errors.push(err.to_string()),
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_across_the_cutover_is_told_apart_from_the_others() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let acked: Vec<(i64, Instant)> = [0, 10, 250, 260, 300, 330, 340].iter().enumerate().map(|(i, ms)| (i as i64, at(*ms))).collect();
        // The cutover ran from 305 to 320 ms: the gap 300 → 330 overlaps it; 10 → 250 does not.
        let (during, elsewhere) = gaps(&acked, (at(305), at(320)));
        assert_eq!(during, Duration::from_millis(30));
        assert_eq!(elsewhere, Duration::from_millis(240));
    }
}
