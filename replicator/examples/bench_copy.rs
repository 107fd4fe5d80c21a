//! The initial copy of one large table (PostgreSQL 15 → 17), every way, in one run:
//!
//! - `consistent` and `chunked` (`snapshot.mode`), each uninterrupted, timed until `/status` says
//!   `streaming` (green whole);
//! - each killed with SIGKILL halfway (by `/status`: half the rows, or half the chunks' bytes) and
//!   started again: total time, against the uninterrupted run (the consistent copy starts over, the
//!   chunked one keeps what is on green);
//! - `pg_dump -Fd -j 2` then `pg_restore -j 2` of the same table (schema and data) as the baseline;
//! - during each turnout run an application updates rows at a steady pace, and blue's WAL retained
//!   for turnout's slot is sampled every 200 ms: its peak is reported.
//!
//! Runs the real `turnout` binary (SIGKILL needs a process): build it first with
//! `cargo build --release -p turnout`, then
//! `cargo run --release -p turnout --example bench_copy -- [MB]` (default 1024 MB of table).

#[path = "common/mod.rs"]
mod common;

use anyhow::{bail, ensure, Context, Result};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, PgOptions, PgServer};

/// A run of the `turnout` binary.
struct Run {
    child: Child,
    port: u16,
}

fn turnout_binary() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().and_then(|d| d.parent()).map(|d| d.join("turnout")).context("locating the turnout binary")?;
    ensure!(bin.is_file(), "{} is missing: build it first with `cargo build --release -p turnout`", bin.display());
    Ok(bin)
}

fn start(bin: &std::path::Path, config: &std::path::Path, port: u16, log: &std::path::Path) -> Result<Run> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting turnout")?;
    Ok(Run { child, port })
}

async fn status(port: u16) -> Option<serde_json::Value> {
    let text = tokio::task::spawn_blocking(move || {
        let out = Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{port}/status")]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await
    .ok()??;
    serde_json::from_str(&text).ok()
}

/// Waits until `/status` satisfies `done`.
async fn wait(run: &mut Run, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        if let Some(s) = status(run.port).await {
            if done(&s) {
                return Ok(());
            }
        }
        if let Some(code) = run.child.try_wait()? {
            bail!("turnout exited ({code}) while waiting for {what}");
        }
        ensure!(Instant::now() < deadline, "{what} took over an hour");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Peak WAL blue keeps for turnout's slot while `stop` is false, sampled every 200 ms.
fn watch_wal(blue_url: String, stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok((c, conn)) = tokio_postgres::connect(&blue_url, tokio_postgres::NoTls).await else { return };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            let sql = "SELECT COALESCE(max(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)), 0)::int8 FROM pg_replication_slots WHERE NOT temporary";
            if let Ok(row) = c.query_one(sql, &[]).await {
                peak.fetch_max(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0), Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// An application writing about 1 MB/s of WAL until `stop`: every 5 ms one row of `wide` updated and
/// a 4 kB row appended to `churn`.
fn writer(blue_url: String, rows: i64, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let Ok((c, conn)) = tokio_postgres::connect(&blue_url, tokio_postgres::NoTls).await else { return 0 };
        tokio::spawn(conn);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let id = (i64::try_from(n).unwrap_or(0) * 7919) % rows + 1;
            let sql = format!(
                "UPDATE wide SET a = a + 1 WHERE id = {id}; INSERT INTO churn (pad) SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 128)"
            );
            if let Err(e) = c.batch_execute(&sql).await {
                eprintln!("writer: {e}");
                return n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        n
    })
}

struct Outcome {
    seconds: f64,
    peak_wal: u64,
}

/// One turnout copy into a fresh database on green; `kill_at`: fraction of the copy at which it is
/// killed once.
async fn copy(blue: &PgServer, green: &PgServer, mode: &str, kill_at: Option<f64>, rows: i64) -> Result<Outcome> {
    let bin = turnout_binary()?;
    let db = format!("copy_{mode}_{}", if kill_at.is_some() { "killed" } else { "whole" });
    green.execute("postgres", &format!("CREATE DATABASE {db}")).await?;
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let config = dir.path().join("turnout.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n[state]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[snapshot]\nmode = \"{mode}\"\nworkers = 2\n{}",
            blue.url("app"),
            green.url(&db),
            dir.path().join("state").display(),
            std::env::var("BENCH_CHUNK_SIZE").map(|size| format!("chunk_size = \"{size}\"\n")).unwrap_or_default()
        ),
    )?;
    let log = dir.path().join("turnout.log");
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let watcher = watch_wal(blue.url("app"), Arc::clone(&stop), Arc::clone(&peak));
    let app = writer(blue.url("app"), rows, Arc::clone(&stop));
    let started = Instant::now();
    let mut run = start(&bin, &config, port, &log)?;
    if let Some(fraction) = kill_at {
        let half = move |s: &serde_json::Value| match s.get("copy").filter(|c| !c.is_null()) {
            Some(c) => c["estimated_bytes_done"].as_f64().unwrap_or(0.0) >= fraction * c["estimated_bytes_total"].as_f64().unwrap_or(f64::MAX),
            None => s["tables"]["public.wide"]["rows"].as_f64().unwrap_or(0.0) >= fraction * rows as f64,
        };
        wait(&mut run, "half the copy", half).await?;
        run.child.kill()?;
        run.child.wait()?;
        run = start(&bin, &config, port, &log)?;
    }
    wait(&mut run, "the copy", |s| s["phase"] == "streaming").await?;
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    let _ = app.await;
    run.child.kill()?;
    run.child.wait()?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if let Some(line) = text.lines().find(|l| l.contains("already on green and kept")) {
        eprintln!("    {}", line.trim());
    }
    // Where a chunked copy's time goes: its rounds' copies against the whole.
    let rounds: Vec<f64> =
        text.lines().filter(|l| l.contains("chunk(s) (")).filter_map(|l| l.split("seconds=").nth(1)?.split_whitespace().next()?.parse().ok()).collect();
    if !rounds.is_empty() {
        eprintln!("    {} rounds copied in {:.1} s of the run's {:.1} s", rounds.len(), rounds.iter().sum::<f64>(), started.elapsed().as_secs_f64());
    }
    // The slot stays on blue: drop it so the next run's WAL figures are its own.
    let c = blue.connect("app").await?;
    c.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active").await?;
    c.batch_execute("DO $$ DECLARE p text; BEGIN FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE format('DROP PUBLICATION %I', p); END LOOP; END $$")
        .await?;
    Ok(Outcome { seconds, peak_wal: peak.load(Ordering::Relaxed) })
}

/// `pg_dump -Fd -j 2 -t wide` then `pg_restore -j 2` into a fresh database on green.
fn dump_restore(blue: &PgServer, green: &PgServer) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("dump");
    let tool = |name: &str| -> Result<std::path::PathBuf> {
        let p = std::path::PathBuf::from(format!("/usr/lib/postgresql/15/bin/{name}"));
        ensure!(p.is_file(), "{} is missing (apt-get install postgresql-client-15)", p.display());
        Ok(p)
    };
    let started = Instant::now();
    let dump = Command::new(tool("pg_dump")?).args(["-Fd", "-j", "2", "-t", "wide", "-f"]).arg(&out).arg(blue.url("app")).output()?;
    ensure!(dump.status.success(), "pg_dump: {}", String::from_utf8_lossy(&dump.stderr));
    let restore = Command::new(tool("pg_restore")?).args(["-j", "2", "-d"]).arg(green.url("copy_dump")).arg(&out).output()?;
    ensure!(restore.status.success(), "pg_restore: {}", String::from_utf8_lossy(&restore.stderr));
    Ok(started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    common::init_logging();
    let mb: i64 = common::arg(0, 1024)?;
    // Rows of ~160 bytes on disk.
    let rows = mb * 1024 * 1024 / 160;
    let (blue, green) = std::thread::scope(|s| {
        let b = s.spawn(|| PgServer::start_with(PgOptions::new(15)));
        let g = s.spawn(|| PgServer::start_with(PgOptions::new(17)));
        (b.join().expect("blue thread"), g.join().expect("green thread"))
    });
    let (blue, green) = (blue?, green?);
    blue.execute("postgres", "CREATE DATABASE app").await?;
    let filled = Instant::now();
    blue.execute("app", "CREATE TABLE wide (id bigint PRIMARY KEY, a int NOT NULL, pad text)").await?;
    blue.execute("app", "CREATE TABLE churn (id bigserial PRIMARY KEY, pad text)").await?;
    let step: i64 = 1_000_000;
    for from in (1..=rows).step_by(1_000_000) {
        let to = (from + step - 1).min(rows);
        blue.execute("app", &format!("INSERT INTO wide SELECT g, 0, repeat(md5(g::text), 3) FROM generate_series({from}, {to}) g")).await?;
    }
    blue.execute("app", "VACUUM ANALYZE wide").await?;
    blue.execute("app", "CHECKPOINT").await?;
    let size: i64 = blue.connect("app").await?.query_one("SELECT pg_table_size('wide')", &[]).await?.get(0);
    println!("table: {rows} rows, {} MiB (filled in {:.0} s)", size >> 20, filled.elapsed().as_secs_f64());
    // BENCH_UNINTERRUPTED_ONLY=1: the two uninterrupted copies alone (no baseline, no kill).
    if std::env::var_os("BENCH_UNINTERRUPTED_ONLY").is_some() {
        let mut results = Vec::new();
        for mode in ["consistent", "chunked"] {
            let o = copy(&blue, &green, mode, None, rows).await?;
            println!("{mode:<10} uninterrupted {:>7.1} s, blue's WAL held for the slot at most {:>7.1} MiB", o.seconds, o.peak_wal as f64 / 1048576.0);
            results.push(o.seconds);
        }
        println!("chunked / consistent, uninterrupted: {:.2}×", results[1] / results[0]);
        return Ok(());
    }
    green.execute("postgres", "CREATE DATABASE copy_dump").await?;
    let dump = dump_restore(&blue, &green)?;
    println!("pg_dump -j 2 | pg_restore -j 2: {dump:.1} s");
    let mut results = Vec::new();
    for (mode, kill) in [("consistent", None), ("chunked", None), ("consistent", Some(0.5)), ("chunked", Some(0.5))] {
        let o = copy(&blue, &green, mode, kill, rows).await?;
        println!(
            "{mode:<10} {:<22} {:>7.1} s, blue's WAL held for the slot at most {:>7.1} MiB",
            if kill.is_some() { "killed at 50%, resumed" } else { "uninterrupted" },
            o.seconds,
            o.peak_wal as f64 / 1048576.0
        );
        results.push(o.seconds);
    }
    println!("chunked / consistent, uninterrupted: {:.2}×", results[1] / results[0]);
    println!("chunked killed at 50% / chunked uninterrupted: {:.2}×", results[3] / results[1]);
    println!("consistent killed at 50% / consistent uninterrupted: {:.2}×", results[2] / results[0]);
    println!("consistent / pg_dump | pg_restore: {:.2}×, chunked: {:.2}×", results[0] / dump, results[1] / dump);
    Ok(())
}
