//! `verify --live` throughput and its cost on lag, in one run.
//!
//! Blue (PostgreSQL 15) gets a ROWS-row table (default 10,000,000: `id bigint` key, an int, a text and
//! a timestamptz); turnout copies it to green (PostgreSQL 17) and streams. A pgbench load paced at
//! RATE tps (default 500) updates random rows. After 5 s to settle, turnout's `/status` lag is sampled
//! every 10 ms for SECONDS (default 15) without a verify, then while `verify --live` compares the whole table (default
//! options: 10,000-row chunks, 2 workers). Prints rows per second verified and lag p50/p99/max with
//! and without the verify.
//!
//! Run: `cargo run --release -p turnout --example bench_verify -- [ROWS] [RATE] [SECONDS]`.

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, PgServer};

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

#[tokio::main]
async fn main() -> Result<()> {
    common::init_logging();
    let (rows, rate, seconds): (u64, u32, u64) = (common::arg(0, 10_000_000)?, common::arg(1, 500)?, common::arg(2, 15)?);
    let (blue, green) = (PgServer::start(15)?, PgServer::start(17)?);
    let db = "bench";
    for s in [&blue, &green] {
        s.execute("postgres", "CREATE DATABASE bench").await?;
    }
    let loading = Instant::now();
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
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let config = common::config(&blue.url(db), &green.url(db), dir.path(), port)?;
    let sidecar = common::Sidecar::start(config.clone());
    let copying = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while lag(port).await.is_none() {
        ensure!(Instant::now() < deadline && !sidecar.task.is_finished(), "turnout did not start streaming");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("turnout copied and is streaming after {:.1} s", copying.elapsed().as_secs_f64());
    let script = dir.path().join("update.sql");
    std::fs::write(&script, format!("\\set id random(1, {rows})\nUPDATE big SET n = n + 1 WHERE id = :id;\n"))?;
    let load = pgbench(&blue, db, &["-n", "-c", "2", "-j", "1", "-R", &rate.to_string(), "-T", "100000", "-f", &script.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut load = load?;
    // Settle first: the stream has just started after the copy.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (quiet, ()) = sample(port, tokio::time::sleep(Duration::from_secs(seconds))).await;
    let options = turnout::verify::live::LiveOptions {
        table: None,
        chunk_rows: 10_000,
        parallel: 2,
        max_snapshot_age: Duration::from_secs(60),
        slot_timeout: Duration::from_secs(30),
        restart: true,
        show_values: false,
        progress_every: Duration::ZERO,
    };
    let (verifying, report) = sample(port, turnout::verify::live::run(&config, &options)).await;
    let _ = load.kill();
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
    print(&format!("lag at {rate} tps without verify"), &quiet);
    print(&format!("lag at {rate} tps during verify --live"), &verifying);
    sidecar.stop().await?;
    Ok(())
}
