//! Peak memory while one very large transaction is replicated with the default apply memory budget.
//!
//! Blue (PostgreSQL 15, default `logical_decoding_work_mem`, so the transaction is streamed to turnout
//! while it runs) inserts ROWS rows (`id int PRIMARY KEY, pad text, at timestamptz`) in one
//! transaction; turnout, running in this process with a configuration that sets nothing but the URLs,
//! replicates it to green (PostgreSQL 17). Prints this process's peak resident memory (`VmHWM`) before
//! and after, the bytes spilled to the state store, the time, and checks blue and green hold the same
//! rows.
//!
//! Run: `cargo run --release -p turnout --example bench_memory -- [ROWS]` (default 10,000,000).

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Context, Result};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, PgOptions, PgServer};

/// Peak resident memory of this process, in bytes.
fn peak_rss() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kb * 1024)
}

async fn fingerprint(server: &PgServer, db: &str) -> Result<(i64, i64)> {
    let c = server.connect(db).await?;
    let r = c.query_one("SELECT count(*), coalesce(sum(id), 0)::int8 FROM big", &[]).await?;
    Ok((r.get(0), r.get(1)))
}

/// A counter from turnout's `/metrics`.
async fn metric(port: u16, name: &str) -> Result<f64> {
    let text = turnout::control::get(&format!("127.0.0.1:{port}"), "/metrics").await?;
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok())).with_context(|| format!("{name} not in /metrics"))
}

#[tokio::main]
async fn main() -> Result<()> {
    common::init_logging();
    let rows: u64 = common::arg(0, 10_000_000)?;
    let blue = PgServer::start(15)?;
    let green = PgServer::start_with(PgOptions::new(17))?;
    let db = "bench";
    for s in [&blue, &green] {
        s.execute("postgres", "CREATE DATABASE bench").await?;
        s.execute(db, "CREATE TABLE big (id int PRIMARY KEY, pad text, at timestamptz)").await?;
    }
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let config = common::config(&blue.url(db), &green.url(db), dir.path(), port)?;
    println!("apply.memory_budget (default): {} MiB", config.apply_memory_budget()? >> 20);
    let sidecar = common::Sidecar::start(config);
    // Streaming: the (empty) snapshot is done once /metrics answers with a lag figure.
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(port, "turnout_lag_seconds").await.is_err() {
        ensure!(Instant::now() < deadline && !sidecar.task.is_finished(), "turnout did not start streaming");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = peak_rss()?;
    let t = Instant::now();
    blue.execute(db, &format!("INSERT INTO big SELECT g, md5(g::text), now() FROM generate_series(1, {rows}) g")).await?;
    println!("blue committed {rows} rows in one transaction in {:.1} s", t.elapsed().as_secs_f64());
    let want = fingerprint(&blue, db).await?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    while fingerprint(&green, db).await? != want {
        ensure!(Instant::now() < deadline && !sidecar.task.is_finished(), "green did not catch up");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("green holds the same {} rows {:.1} s after the insert began", want.0, t.elapsed().as_secs_f64());
    let spilled = metric(port, "turnout_spilled_bytes_total").await.unwrap_or(0.0);
    let peak = peak_rss()?;
    println!(
        "peak RSS: {} MiB before the transaction, {} MiB after; spilled to the state store: {:.0} MiB",
        before >> 20,
        peak >> 20,
        spilled / f64::from(1 << 20)
    );
    sidecar.stop().await?;
    Ok(())
}
