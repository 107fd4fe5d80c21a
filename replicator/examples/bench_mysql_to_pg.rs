//! The initial copy MySQL/MariaDB → PostgreSQL, with its baselines in the same run: one
//! sysbench-shaped table (integers, strings, a decimal, a time stamp) on a MariaDB 10.11 blue copied
//!
//! - by a raw pipe, `mariadb --batch -e 'SELECT …' | psql -c 'COPY … FROM STDIN'`, into a table made
//!   beforehand: the floor (no snapshot position, no type checks, no keys built after);
//! - by pgloader (Debian's `pgloader`, its defaults: tables created, rows loaded by several workers,
//!   indexes built after), the tool people use for this migration, to a PostgreSQL 17 green;
//! - by turnout MariaDB → MariaDB (the family's own consistent copy, 4 readers), to a MariaDB green;
//! - by turnout MariaDB → PostgreSQL (the composed pair: one snapshot streamed through the type map into
//!   `COPY`, keys after, the position in the same transaction), to a PostgreSQL 17 green;
//!
//! each timed until green's progress record exists (the copy committed with its position), then the
//! ratios, and a check that every copy holds blue's row count and sums.
//!
//! Run: `cargo run --release -p turnout --example bench_mysql_to_pg -- [ROWS]` (default 500000); it needs
//! `pgloader` on the `PATH` (`apt-get install pgloader`).
#![allow(clippy::too_many_lines, reason = "a benchmark reads best top to bottom")]

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Context, Result};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, Flavor, MySqlServer, PgOptions, PgServer};

const DB: &str = "bench";

/// The table, filled with `rows` deterministic rows.
fn schema(rows: u64) -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS {DB}; USE {DB}; \
         CREATE TABLE t (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, c VARCHAR(120) NOT NULL, pad VARCHAR(60) NOT NULL, \
           n DECIMAL(12,2) NOT NULL, d DATETIME(6) NOT NULL, KEY k_idx (k)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
         INSERT INTO t SELECT seq, seq * 7 % 100000, SHA2(seq, 256), LEFT(SHA2(seq + 1, 256), 60), seq / 100, \
           TIMESTAMPADD(MICROSECOND, seq * 1001, '2024-01-01') FROM {}",
        Flavor::MariaDb10_11.numbers(rows)
    )
}

/// Waits until `check` says the copy committed, at most an hour; returns the seconds since `from`.
async fn until(from: Instant, what: &str, mut check: impl AsyncFnMut() -> bool) -> Result<f64> {
    loop {
        if check().await {
            return Ok(from.elapsed().as_secs_f64());
        }
        ensure!(from.elapsed() < Duration::from_secs(3600), "{what} took over an hour");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Count and sums of a copy, as text: the same on every engine for the same rows.
const FINGERPRINT: &str = "SELECT CONCAT(COUNT(*), ':', SUM(k), ':', SUM(n), ':', SUM(LENGTH(c) + LENGTH(pad))) FROM t";
const PG_FINGERPRINT: &str = "SELECT count(*) || ':' || sum(k) || ':' || sum(n) || ':' || sum(length(c) + length(pad)) FROM bench.t";

async fn pg_text(green: &PgServer, db: &str, sql: &str) -> Result<Option<String>> {
    let client = green.connect(db).await?;
    let rows = client.simple_query(sql).await?;
    Ok(rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    }))
}

#[tokio::main]
async fn main() -> Result<()> {
    common::init_logging();
    let rows: u64 = common::arg(0, 500_000)?;
    let blue = MySqlServer::start_flavor(Flavor::MariaDb10_11, 1)?;
    let maria_green = MySqlServer::start_flavor(Flavor::MariaDb10_11, 2)?;
    let pg = PgServer::start_with(PgOptions::new(17))?;
    blue.execute(None, &schema(rows))?;
    maria_green.execute(None, &format!("SET sql_log_bin = 0; CREATE DATABASE {DB}"))?;
    for db in ["raw", "pgloader", "ours"] {
        pg.execute("postgres", &format!("CREATE DATABASE {db}")).await?;
    }
    let expected = blue.execute(Some(DB), FINGERPRINT)?.trim().to_owned();
    println!("blue: {rows} rows, fingerprint {expected}");

    // The floor: a raw pipe into a table made beforehand.
    pg.execute(
        "raw",
        "CREATE SCHEMA bench; CREATE TABLE bench.t (id integer PRIMARY KEY, k integer NOT NULL, c varchar(120) NOT NULL, \
         pad varchar(60) NOT NULL, n numeric(12,2) NOT NULL, d timestamp(6) NOT NULL)",
    )
    .await?;
    let started = Instant::now();
    let mut select = blue
        .tool("/usr/bin/mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-P", &blue.port().to_string(), "-u", blue.user(), &format!("-p{}", blue.password())])
        .args(["--batch", "--skip-column-names", DB, "-e", "SELECT id, k, c, pad, n, d FROM t"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let out = select.stdout.take().context("the select's output")?;
    let load = std::process::Command::new(turnout_testbed::client_bin_dir(15)?.join("psql"))
        .args(["-h", "127.0.0.1", "-p", &pg.port().to_string(), "-U", "postgres", "-d", "raw", "-v", "ON_ERROR_STOP=1", "-c", "COPY bench.t FROM STDIN"])
        .env("PGPASSWORD", pg.password())
        .stdin(out)
        .output()?;
    ensure!(select.wait()?.success() && load.status.success(), "the raw pipe failed: {}", String::from_utf8_lossy(&load.stderr));
    let raw_secs = started.elapsed().as_secs_f64();
    ensure!(pg_text(&pg, "raw", PG_FINGERPRINT).await?.as_deref() == Some(expected.as_str()), "the raw pipe's copy differs");

    // pgloader, with its defaults.
    let source = format!("mysql://{}:{}@127.0.0.1:{}/{DB}", blue.user(), blue.password(), blue.port());
    let target = format!("postgresql://postgres:{}@127.0.0.1:{}/pgloader", pg.password(), pg.port());
    let started = Instant::now();
    let loaded = std::process::Command::new("pgloader")
        .args(["--no-ssl-cert-verification", &source, &target])
        .output()
        .context("running pgloader (apt-get install pgloader)")?;
    let pgloader_secs = started.elapsed().as_secs_f64();
    ensure!(loaded.status.success(), "pgloader failed: {}{}", String::from_utf8_lossy(&loaded.stdout), String::from_utf8_lossy(&loaded.stderr));
    ensure!(pg_text(&pg, "pgloader", PG_FINGERPRINT).await?.as_deref() == Some(expected.as_str()), "pgloader's copy differs");

    // turnout MariaDB → MariaDB.
    let dir = tempfile::tempdir()?;
    let sidecar = common::Sidecar::start(common::config(&blue.url(DB), &maria_green.url(DB), &dir.path().join("maria"), free_port())?);
    let started = Instant::now();
    let maria_secs = until(started, "turnout MariaDB → MariaDB", async || {
        maria_green.execute(None, "SELECT COUNT(*) FROM turnout.progress").is_ok_and(|n| n.trim() != "0")
    })
    .await?;
    sidecar.stop().await?;
    ensure!(maria_green.execute(Some(DB), FINGERPRINT)?.trim() == expected, "turnout's MariaDB copy differs");

    // turnout MariaDB → PostgreSQL.
    let sidecar = common::Sidecar::start(common::config(&blue.url(DB), &pg.url("ours"), &dir.path().join("pg"), free_port())?);
    let started = Instant::now();
    let pg_secs = until(started, "turnout MariaDB → PostgreSQL", async || {
        pg_text(&pg, "ours", "SELECT count(*)::text FROM turnout.progress").await.ok().flatten().is_some_and(|n| n != "0")
    })
    .await?;
    sidecar.stop().await?;
    ensure!(pg_text(&pg, "ours", PG_FINGERPRINT).await?.as_deref() == Some(expected.as_str()), "turnout's PostgreSQL copy differs");

    println!(
        "copy of {rows} rows: raw pipe {raw_secs:.2} s, pgloader {pgloader_secs:.2} s, turnout MariaDB → MariaDB {maria_secs:.2} s, \
         turnout MariaDB → PostgreSQL {pg_secs:.2} s"
    );
    println!(
        "ratios (turnout → PostgreSQL's speed against each): pgloader {:.2}x; raw pipe {:.2}x; turnout → MariaDB {:.2}x",
        pgloader_secs / pg_secs,
        raw_secs / pg_secs,
        maria_secs / pg_secs
    );
    Ok(())
}
