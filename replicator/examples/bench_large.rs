//! Commit-to-visible time of one large transaction: how long after blue's COMMIT returns green shows
//! its rows, with early apply (`apply.stream_sessions`) off and on, against PostgreSQL's own logical
//! replication with `streaming = on` (applied at commit) and `streaming = parallel` (applied while
//! it streams) in the same run.
//!
//! Blue is PostgreSQL 16 with the default `logical_decoding_work_mem` (64MB), so the transaction is
//! streamed while it runs; green is PostgreSQL 17, a fresh database per run. The transaction inserts
//! ROWS rows (`id int PRIMARY KEY, pad text, at timestamptz`) in one statement.
//!
//! Run: `cargo run --release -p turnout --example bench_large -- [ROWS]` (default 1,000,000).

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Result};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, PgOptions, PgServer};

const TABLE: &str = "CREATE TABLE big (id int PRIMARY KEY, pad text, at timestamptz)";

async fn rows(server: &PgServer, db: &str) -> Result<i64> {
    Ok(server.connect(db).await?.query_one("SELECT count(*) FROM big", &[]).await?.get(0))
}

/// Runs the transaction on blue; returns (seconds blue took, seconds from its commit until green
/// shows every row).
async fn transaction(blue: &PgServer, green: &PgServer, db: &str, n: u64, alive: impl Fn() -> bool) -> Result<(f64, f64)> {
    blue.execute(db, "TRUNCATE big").await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while rows(green, db).await? != 0 {
        ensure!(Instant::now() < deadline && alive(), "green did not apply the TRUNCATE");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    blue.execute(db, &format!("INSERT INTO big SELECT g, md5(g::text), now() FROM generate_series(1, {n}) g")).await?;
    let committed = Instant::now();
    while rows(green, db).await? != n as i64 {
        ensure!(Instant::now() < deadline && alive(), "green did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((committed.duration_since(start).as_secs_f64(), committed.elapsed().as_secs_f64()))
}

async fn turnout(blue: &PgServer, green: &PgServer, n: u64, sessions: usize) -> Result<(f64, f64)> {
    let db = format!("t{sessions}");
    for s in [blue, green] {
        s.execute("postgres", &format!("CREATE DATABASE {db}")).await?;
        s.execute(&db, TABLE).await?;
    }
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut config = common::config(&blue.url(&db), &green.url(&db), dir.path(), port)?;
    config.apply.stream_sessions = Some(sessions);
    let sidecar = common::Sidecar::start(config);
    let deadline = Instant::now() + Duration::from_secs(120);
    while turnout::control::get(&format!("127.0.0.1:{port}"), "/status").await.map_or(true, |s| !s.contains("\"streaming\"")) {
        ensure!(Instant::now() < deadline && !sidecar.task.is_finished(), "turnout did not start streaming");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = transaction(blue, green, &db, n, || !sidecar.task.is_finished()).await?;
    let metrics = turnout::control::get(&format!("127.0.0.1:{port}"), "/metrics").await?;
    let early = metrics.lines().find(|l| l.starts_with("turnout_early_committed_total ")).unwrap_or("").to_owned();
    sidecar.stop().await?;
    println!("turnout apply.stream_sessions = {sessions}: blue {:.2} s, commit to visible on green {:.2} s ({early})", r.0, r.1);
    Ok(r)
}

async fn native(blue: &PgServer, green: &PgServer, n: u64, streaming: &str) -> Result<(f64, f64)> {
    let db = format!("native_{streaming}");
    for s in [blue, green] {
        s.execute("postgres", &format!("CREATE DATABASE {db}")).await?;
        s.execute(&db, TABLE).await?;
    }
    blue.execute(&db, "CREATE PUBLICATION p FOR TABLE big").await?;
    green
        .execute(
            &db,
            &format!(
                "CREATE SUBSCRIPTION s_{streaming} CONNECTION 'host=127.0.0.1 port={} user=postgres password={} dbname={db}' \
                 PUBLICATION p WITH (copy_data = false, streaming = {streaming})",
                blue.port(),
                blue.password()
            ),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let active: bool = blue
            .connect(&db)
            .await?
            .query_one(&format!("SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = 's_{streaming}'"), &[])
            .await?
            .get(0);
        if active {
            break;
        }
        ensure!(Instant::now() < deadline, "the native subscription did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = transaction(blue, green, &db, n, || true).await?;
    green.execute(&db, &format!("DROP SUBSCRIPTION s_{streaming}")).await?;
    println!("native streaming = {streaming}: blue {:.2} s, commit to visible on green {:.2} s", r.0, r.1);
    Ok(r)
}

#[tokio::main]
async fn main() -> Result<()> {
    common::init_logging();
    let n: u64 = common::arg(0, 1_000_000)?;
    let blue = PgServer::start_with(PgOptions::new(16))?;
    let green = PgServer::start_with(PgOptions::new(17))?;
    println!("one transaction of {n} inserted rows, blue PostgreSQL 16 → green PostgreSQL 17");
    let off = turnout(&blue, &green, n, 0).await?;
    let on = turnout(&blue, &green, n, 2).await?;
    let native_on = native(&blue, &green, n, "on").await?;
    let native_parallel = native(&blue, &green, n, "parallel").await?;
    println!(
        "commit to visible: turnout early apply {:.2} s vs whole at commit {:.2} s ({:.1}x faster); native parallel {:.2} s, native at commit {:.2} s",
        on.1,
        off.1,
        off.1 / on.1.max(0.001),
        native_parallel.1,
        native_on.1
    );
    Ok(())
}
