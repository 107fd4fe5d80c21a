//! `verify --live` throughput and its cost on lag, in one run.
//!
//! Blue (PostgreSQL 15) gets a ROWS-row table (default 10,000,000: `id bigint` key, an int, a text and
//! a timestamptz); turnout copies it to green (PostgreSQL 17) and streams. A pgbench load paced at
//! RATE tps (default 500) updates random rows. After 5 s to settle, turnout's `/status` lag is sampled
//! every 10 ms for SECONDS (default 15) without a verify, then while `verify --live` compares the whole table (default
//! options: 10,000-row chunks, 2 workers). Prints rows per second verified and lag p50/p99/max with
//! and without the verify.
//!
//! With `TURNOUT_BENCH_SOURCE=mariadb` (or `mysql`) blue and green are MariaDB 10.11 (Oracle MySQL 9.7)
//! instead: the same table, loaded from the flavor's numbers table; the load is one session updating a
//! random row RATE times a second.
//!
//! The servers' floor is both servers hashing every row at the same time, one statement each: on
//! PostgreSQL `sum(hashtext(t::text))`, on the MySQL family turnout's own count-and-digest statement
//! over the whole table (the family has no cheaper hash of a row's every byte). Each verify is set
//! against the floor under its own conditions, measured before and after it (the faster counts):
//! `verify --live` against the floor under the same write load, and, after the load stops and green
//! caught up, `turnout verify` and `verify --live` once more against the floor on quiet servers. For the MySQL
//! family the chunked floor of earlier runs is printed as well: the same 10,000-key chunks, 2 at a
//! time, each side's digest query alone, without the verify's snapshots, hold or bookkeeping.
//!
//! Run: `cargo run --release -p turnout --example bench_verify -- [ROWS] [RATE] [SECONDS]`; the verify's
//! options are those of `verify --live`'s defaults unless `TURNOUT_BENCH_PARALLEL` (workers) or
//! `TURNOUT_BENCH_CHUNK_ROWS` say otherwise.
#![allow(clippy::too_many_lines, reason = "a benchmark or capture script reads best top to bottom")]

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, Flavor, MySqlServer, PgServer};

fn pgbench(server: &PgServer, db: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("/usr/lib/postgresql/15/bin/pgbench");
    cmd.args(["-h", "127.0.0.1", "-p", &server.port().to_string(), "-U", "postgres"]).args(args).arg(db).env("PGPASSWORD", server.password());
    cmd
}

async fn lag(port: u16) -> Option<f64> {
    let body = turnout::control::get(&format!("127.0.0.1:{port}"), "/status").await.ok()?;
    serde_json::from_str::<serde_json::Value>(&body).ok()?["lag_seconds"].as_f64()
}

/// Samples lag every 10 ms until `until` resolves; returns the sorted samples and its output.
async fn sample<T>(port: u16, until: impl std::future::Future<Output = T>) -> (Vec<f64>, T) {
    let mut samples = Vec::new();
    tokio::pin!(until);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let out = loop {
        tokio::select! {
            out = &mut until => break out,
            _ = tick.tick() => samples.extend(lag(port).await),
        }
    };
    samples.sort_by(f64::total_cmp);
    (samples, out)
}

fn print(what: &str, samples: &[f64]) {
    if samples.is_empty() {
        println!("{what}: no samples");
        return;
    }
    let at = |permille: usize| samples[(samples.len() - 1) * permille / 1000] * 1000.0;
    println!("{what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)", at(500), at(990), at(1000), samples.len());
}

/// Waits until turnout streams (lag is known), after its snapshot.
async fn wait_streaming(port: u16, sidecar: &common::Sidecar) -> Result<()> {
    let copying = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while lag(port).await.is_none() {
        ensure!(Instant::now() < deadline && !sidecar.task.is_finished(), "turnout did not start streaming");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("turnout copied and is streaming after {:.1} s", copying.elapsed().as_secs_f64());
    Ok(())
}

/// Seconds the servers take to answer the verify's chunk queries alone: `big` in 10,000-key chunks, two
/// workers, each sending a chunk's count-and-digest query (turnout's own, [`digest_sql`]) to blue and
/// green at once.
async fn chunk_floor(config: &turnout::config::Config, rows: u64) -> Result<f64> {
    use mysql_async::prelude::Queryable;
    use std::sync::atomic::{AtomicU64, Ordering};
    use turnout::testing::mysql::digest_sql;
    const CHUNK: u64 = 10_000;
    let columns: Vec<String> = ["id", "n", "label", "at"].iter().map(|c| c.to_string()).collect();
    let next = std::sync::Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (next, columns) = (std::sync::Arc::clone(&next), columns.clone());
        let urls = (config.source.url.expose().to_owned(), config.target.url.expose().to_owned());
        workers.push(tokio::spawn(async move {
            let mut blue = mysql_async::Conn::new(mysql_async::Opts::from_url(&urls.0)?).await?;
            let mut green = mysql_async::Conn::new(mysql_async::Opts::from_url(&urls.1)?).await?;
            loop {
                let lo = next.fetch_add(CHUNK, Ordering::Relaxed);
                if lo >= rows {
                    return anyhow::Ok(());
                }
                let sql = digest_sql(&format!("`big` WHERE id > {lo} AND id <= {}", lo + CHUNK), &columns);
                let (b, g) = tokio::join!(blue.query_first::<(u64, String), _>(&sql), green.query_first::<(u64, String), _>(&sql));
                ensure!(b?.is_some() && g?.is_some(), "a chunk query returned no row");
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds blue and green take to hash every row of `big` at the same time, one statement each:
/// the servers' own floor for comparing the table.
async fn pg_floor(blue: &PgServer, green: &PgServer, db: &str) -> Result<f64> {
    let (b, g) = (blue.connect(db).await?, green.connect(db).await?);
    let sql = "SELECT count(*), sum(hashtext(t::text)) FROM big t";
    let started = Instant::now();
    let (x, y) = tokio::join!(b.query_one(sql, &[]), g.query_one(sql, &[]));
    ensure!(x?.get::<_, i64>(0) > 0 && y?.get::<_, i64>(0) > 0, "the floor read no rows");
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds blue and green take to run turnout's count-and-digest statement over every row of `big`
/// at the same time, one statement each: the MySQL family's floor for comparing the table.
async fn mysql_floor(config: &turnout::config::Config) -> Result<f64> {
    use mysql_async::prelude::Queryable;
    let columns: Vec<String> = ["id", "n", "label", "at"].iter().map(|c| c.to_string()).collect();
    let sql = turnout::testing::mysql::digest_sql("`big`", &columns);
    let mut blue = mysql_async::Conn::new(mysql_async::Opts::from_url(config.source.url.expose())?).await?;
    let mut green = mysql_async::Conn::new(mysql_async::Opts::from_url(config.target.url.expose())?).await?;
    let started = Instant::now();
    let (b, g) = tokio::join!(blue.query_first::<(u64, String), _>(&sql), green.query_first::<(u64, String), _>(&sql));
    ensure!(b?.is_some_and(|r| r.0 > 0) && g?.is_some_and(|r| r.0 > 0), "the floor read no rows");
    Ok(started.elapsed().as_secs_f64())
}

/// The floor of the table's comparison (see the module doc).
async fn floor(pg: Option<&(PgServer, PgServer)>, config: &turnout::config::Config) -> Result<f64> {
    match pg {
        Some((blue, green)) => pg_floor(blue, green, "bench").await,
        None => mysql_floor(config).await,
    }
}

/// The write load on blue; stopped when dropped.
enum Load {
    Pgbench(std::process::Child),
    Task(tokio::task::JoinHandle<()>),
}

impl Drop for Load {
    fn drop(&mut self) {
        match self {
            Load::Pgbench(child) => {
                let _ = child.kill();
            }
            Load::Task(task) => task.abort(),
        }
    }
}

/// One MariaDB session updating a random row of `big` `rate` times a second.
async fn maria_load(url: String, rows: u64, rate: u32) -> Result<Load> {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?;
    Ok(Load::Task(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        loop {
            tick.tick().await;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if conn.query_drop(format!("UPDATE big SET n = n + 1 WHERE id = {}", 1 + x % rows)).await.is_err() {
                return;
            }
        }
    })))
}

#[tokio::main]
async fn main() -> Result<()> {
    common::init_logging();
    let (rows, rate, seconds): (u64, u32, u64) = (common::arg(0, 10_000_000)?, common::arg(1, 500)?, common::arg(2, 15)?);
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let flavor = match std::env::var("TURNOUT_BENCH_SOURCE").as_deref() {
        Ok("mariadb") => Some(Flavor::MariaDb10_11),
        Ok("mysql") => Some(Flavor::MySql9_7),
        _ => None,
    };
    // Servers live until the end of main.
    let (_pg, _maria, config, sidecar, load, only);
    let loading = Instant::now();
    if let Some(flavor) = flavor {
        let (blue, green) = (MySqlServer::start_flavor(flavor, 1)?, MySqlServer::start_flavor(flavor, 2)?);
        let db = blue.create_database("bench")?;
        green.execute(None, &format!("SET sql_log_bin = 0; CREATE DATABASE `{db}`"))?;
        blue.execute(
            Some(&db),
            &format!(
                "CREATE TABLE big (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(32), at DATETIME(6)) ENGINE=InnoDB; \
                 INSERT INTO big SELECT seq, seq % 1000, LEFT(SHA2(seq, 256), 32), '2024-01-01' + INTERVAL seq SECOND FROM {}; ANALYZE TABLE big",
                flavor.numbers(rows)
            ),
        )?;
        println!("loaded {rows} rows on {} blue in {:.1} s", flavor.label(), loading.elapsed().as_secs_f64());
        only = format!("{db}.big");
        config = common::config(&blue.url(&db), &green.url(&db), dir.path(), port)?;
        sidecar = common::Sidecar::start(config.clone());
        wait_streaming(port, &sidecar).await?;
        load = maria_load(blue.url(&db), rows, rate).await?;
        _maria = Some((blue, green));
        _pg = None;
    } else {
        let (blue, green) = (PgServer::start(15)?, PgServer::start(17)?);
        let db = "bench";
        for s in [&blue, &green] {
            s.execute("postgres", "CREATE DATABASE bench").await?;
        }
        blue.execute(
            db,
            &format!(
                "CREATE TABLE big (id bigint PRIMARY KEY, n int NOT NULL, label text, at timestamptz); \
                 INSERT INTO big SELECT g, g % 1000, md5(g::text), '2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, {rows}) g"
            ),
        )
        .await?;
        blue.execute(db, "VACUUM ANALYZE big").await?;
        println!("loaded {rows} rows on blue in {:.1} s", loading.elapsed().as_secs_f64());
        only = "public.big".to_owned();
        config = common::config(&blue.url(db), &green.url(db), dir.path(), port)?;
        sidecar = common::Sidecar::start(config.clone());
        wait_streaming(port, &sidecar).await?;
        let script = dir.path().join("update.sql");
        std::fs::write(&script, format!("\\set id random(1, {rows})\nUPDATE big SET n = n + 1 WHERE id = :id;\n"))?;
        load = Load::Pgbench(
            pgbench(&blue, db, &["-n", "-c", "2", "-j", "1", "-R", &rate.to_string(), "-T", "100000", "-f", &script.display().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        _pg = Some((blue, green));
        _maria = None;
    }
    // Settle first: the stream has just started after the copy.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (quiet, ()) = sample(port, tokio::time::sleep(Duration::from_secs(seconds))).await;
    let knob = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let options = turnout::verify::live::LiveOptions {
        table: None,
        chunk_rows: knob("TURNOUT_BENCH_CHUNK_ROWS", 10_000) as u64,
        parallel: knob("TURNOUT_BENCH_PARALLEL", 2),
        max_snapshot_age: Duration::from_secs(60),
        slot_timeout: Duration::from_secs(30),
        restart: true,
        show_values: false,
        progress_every: Duration::ZERO,
        rows_per_second: None,
        background: false,
        recheck: None,
    };
    // Each verify is set against the floor under its own conditions: `verify --live` against the servers
    // hashing under the same write load (it runs beside the application; the load and its apply take
    // their share of the cores from both), `verify` against them quiet. Each floor is run before and
    // after its verify and the faster counts (whichever runs first reads the colder buffer pool).
    let what = if _pg.is_some() { "`sum(hashtext(t::text))`" } else { "turnout's digest statement over the whole table" };
    let loaded_before = floor(_pg.as_ref(), &config).await?;
    let chunked_before = if _pg.is_none() { Some(chunk_floor(&config, rows).await?) } else { None };
    let (verifying, report) = sample(port, turnout::verify::live::run(&config, &options)).await;
    let report = report?;
    let table = &report.tables[0];
    ensure!(table.equal() && table.source_rows == rows, "verify found differences: {table:?}");
    let secs = report.elapsed.as_secs_f64();
    println!(
        "verify --live: {} rows in {secs:.1} s = {:.0} rows/s ({} rounds, {} chunks), equal",
        table.source_rows,
        table.source_rows as f64 / secs,
        report.positions.len(),
        table.chunks
    );
    let loaded = floor(_pg.as_ref(), &config).await?.min(loaded_before);
    println!(
        "servers' floor under the load (both hashing every row at once, {what}): {rows} rows in {loaded:.2} s = {:.0} rows/s; \
         verify --live / floor = {:.2}",
        rows as f64 / loaded,
        loaded / secs
    );
    if let Some(before) = chunked_before {
        let chunked = chunk_floor(&config, rows).await?.min(before);
        println!(
            "chunked floor under the load (each side's chunk count + digest alone, 2 chunks at a time): {rows} rows in {chunked:.2} s; \
             verify --live / chunked floor = {:.2}",
            chunked / secs
        );
    }
    drop(load);
    // `turnout verify` wants a quiet blue and green caught up.
    let deadline = Instant::now() + Duration::from_secs(600);
    while lag(port).await.is_none_or(|l| l > 0.5) {
        ensure!(Instant::now() < deadline, "green did not catch up after the load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let quiet_before = floor(_pg.as_ref(), &config).await?;
    let started = Instant::now();
    let checks = turnout::verify::run(&config, Some(&only)).await?;
    let verify = started.elapsed().as_secs_f64();
    ensure!(checks.iter().any(|c| c.blue_rows > 0) && checks.iter().all(|c| c.equal), "turnout verify found differences: {checks:?}");
    // `verify --live` once more on the quiet servers, against the same floor.
    let quiet_live = turnout::verify::live::run(&config, &options).await?;
    ensure!(quiet_live.tables.iter().all(|t| t.equal() && t.source_rows == rows), "the quiet verify --live found differences");
    let quiet_secs = quiet_live.elapsed.as_secs_f64();
    let quiet_floor = floor(_pg.as_ref(), &config).await?.min(quiet_before);
    println!("verify: {rows} rows in {verify:.2} s = {:.0} rows/s, equal", rows as f64 / verify);
    println!("verify --live without the load: {rows} rows in {quiet_secs:.2} s, equal");
    println!(
        "servers' floor, quiet: {rows} rows in {quiet_floor:.2} s = {:.0} rows/s; verify / floor = {:.2}; verify --live without the load / \
         floor = {:.2}",
        rows as f64 / quiet_floor,
        quiet_floor / verify,
        quiet_floor / quiet_secs
    );
    print(&format!("lag at {rate} tps without verify"), &quiet);
    print(&format!("lag at {rate} tps during verify --live"), &verifying);
    sidecar.stop().await?;
    Ok(())
}
