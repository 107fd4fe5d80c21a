//! Steady-state lag under a paced load, with native logical replication as the baseline in the same run.
//!
//! Blue (PostgreSQL 15) runs pgbench TPC-B paced at RATE transactions per second (`pgbench -R`) for
//! SECONDS. First turnout replicates to green A (PostgreSQL 17, `fsync = on`) and its `/status` is sampled
//! every 10 ms (`lag_seconds`: the age, on blue's clock, of the oldest transaction not yet durable on
//! green); then, turnout stopped, native logical replication replicates the same load to green B. Both
//! are also measured the same way from outside: the age of the newest blue commit green has applied
//! (see [`Probe`]). Prints p50, p99 and max of each, after a 2 s warm-up, and checks blue and both
//! greens hold the same data.
//!
//! The watch for writes that are not turnout's costs its share here too: turnout replicates the same
//! load once more into green C with `[watch] green = true`, and the run prints, for both turnout runs,
//! the CPU seconds this process spent and, for the watched one, the CPU seconds of green's walsender
//! that decodes green's WAL for the watch.
//!
//! Run: `cargo run --release -p turnout --example bench_lag -- [RATE] [SECONDS]` (defaults 1000 and 20).

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, PgOptions, PgServer};

const WARM_UP: Duration = Duration::from_secs(2);
const EVERY: Duration = Duration::from_millis(10);

fn pgbench(server: &PgServer, db: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("/usr/lib/postgresql/15/bin/pgbench");
    cmd.args(["-h", "127.0.0.1", "-p", &server.port().to_string(), "-U", "postgres"]).args(args).arg(db).env("PGPASSWORD", server.password());
    cmd
}

/// `lag_seconds` from turnout's `/status` (None while it has no figure).
async fn turnout_lag(port: u16) -> Result<Option<f64>> {
    let body = turnout::control::get(&format!("127.0.0.1:{port}"), "/status").await?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    Ok(v["lag_seconds"].as_f64())
}

/// The same outside measure for both: green runs with `track_commit_timestamp = on`, and a transaction
/// applied through a replication origin is stamped with its commit time on blue (turnout's
/// `pg_replication_origin_xact_setup` and the subscription's apply worker alike), so
/// `pg_last_committed_xact()` on green tells which of blue's commits green has reached. A sample is
/// its age (one host, one clock).
struct Probe {
    green: tokio_postgres::Client,
}

impl Probe {
    async fn new(green: &PgServer, db: &str) -> Result<Probe> {
        Ok(Probe { green: green.connect(db).await? })
    }

    async fn tick(&mut self) -> Result<Option<f64>> {
        let row = self.green.query_one("SELECT extract(epoch FROM clock_timestamp() - timestamp)::float8 FROM pg_last_committed_xact()", &[]).await?;
        Ok(row.get(0))
    }
}

/// Samples every 10 ms while `load` runs, after the warm-up: turnout's own `/status` lag (when `port`
/// is given) and the outside probe. Returns both, sorted.
async fn sample(mut load: std::process::Child, port: Option<u16>, probe: &mut Probe) -> Result<(Vec<f64>, Vec<f64>)> {
    let started = Instant::now();
    let (mut own, mut outside) = (Vec::new(), Vec::new());
    // When the largest outside samples were taken (seconds into the load): a cause that recurs on
    // a period (a watch, a heartbeat) shows in them.
    let mut when: Vec<(f64, f64)> = Vec::new();
    loop {
        if let Some(status) = load.try_wait()? {
            ensure!(status.success(), "pgbench failed");
            break;
        }
        let next = Instant::now() + EVERY;
        let measured = probe.tick().await?;
        if started.elapsed() > WARM_UP {
            if let Some(port) = port {
                own.extend(turnout_lag(port).await?);
            }
            if let Some(m) = measured {
                when.push((m, started.elapsed().as_secs_f64()));
            }
            outside.extend(measured);
        }
        tokio::time::sleep_until(next.into()).await;
    }
    ensure!(!outside.is_empty() && (port.is_none() || !own.is_empty()), "no lag samples");
    own.sort_by(f64::total_cmp);
    outside.sort_by(f64::total_cmp);
    when.sort_by(|a, b| b.0.total_cmp(&a.0));
    let largest: Vec<String> = when.iter().take(8).map(|(lag, at)| format!("{:.1} ms at {at:.2} s", lag * 1000.0)).collect();
    println!("largest outside samples: {}", largest.join(", "));
    Ok((own, outside))
}

fn print(what: &str, samples: &[f64]) {
    // Nearest rank, per mille.
    let at = |permille: usize| samples[(samples.len() - 1) * permille / 1000] * 1000.0;
    println!("{what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)", at(500), at(990), at(1000), samples.len());
}

async fn fingerprint(server: &PgServer, db: &str) -> Result<(i64, i64)> {
    let c = server.connect(db).await?;
    let r = c.query_one("SELECT coalesce((SELECT sum(abalance) FROM pgbench_accounts), 0)::int8, (SELECT count(*) FROM pgbench_history)", &[]).await?;
    Ok((r.get(0), r.get(1)))
}

async fn wait_same(blue: &PgServer, green: &PgServer, db: &str) -> Result<()> {
    let want = fingerprint(blue, db).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while fingerprint(green, db).await? != want {
        ensure!(Instant::now() < deadline, "green did not converge");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// CPU seconds (user and system) process `pid` has used (`self` for this one), from `/proc`.
fn cpu_seconds(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command name in parentheses: state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    ensure!(fields.len() > 12, "unreadable /proc/{pid}/stat");
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // USER_HZ is 100 on Linux.
    Ok(ticks / 100.0)
}

/// Replicates the paced load with turnout into `green`, `watch` telling whether green is watched for
/// writes that are not turnout's; prints lag and CPU.
async fn turnout_phase(
    blue: &PgServer,
    green: &PgServer,
    db: &str,
    rate: u32,
    seconds: u32,
    watch: bool,
    load: impl Fn(u32) -> std::io::Result<std::process::Child>,
) -> Result<()> {
    let what = if watch { "turnout with [watch] green" } else { "turnout" };
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut config = common::config(&blue.url(db), &green.url(db), dir.path(), port)?;
    config.watch.green = watch;
    let sidecar = common::Sidecar::start(config);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = turnout::control::get(&format!("127.0.0.1:{port}"), "/status").await.ok();
        let v: serde_json::Value = status.and_then(|b| serde_json::from_str(&b).ok()).unwrap_or_default();
        if v["lag_seconds"].is_f64() && (!watch || v["rogue_writes"]["green"]["state"] == "watching") {
            break;
        }
        ensure!(Instant::now() < deadline && !sidecar.task.is_finished(), "{what} did not start streaming");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut probe = Probe::new(green, db).await?;
    let cpu = cpu_seconds("self")?;
    let (own, outside) = sample(load(seconds)?, Some(port), &mut probe).await?;
    let used = cpu_seconds("self")? - cpu;
    print(&format!("{what} lag_seconds (/status) at {rate} tps"), &own);
    print(&format!("{what}, age of green's newest applied blue commit at {rate} tps"), &outside);
    println!("{what}: this process used {used:.1} CPU seconds over the {seconds} s load");
    if watch {
        let g = green.connect(db).await?;
        let pid: i32 = g.query_one("SELECT pid FROM pg_stat_replication LIMIT 1", &[]).await?.get(0);
        println!("{what}: green's walsender decoding for the watch used {:.1} CPU seconds in all", cpu_seconds(&pid.to_string())?);
        let seen = turnout::control::get(&format!("127.0.0.1:{port}"), "/status").await?;
        let v: serde_json::Value = serde_json::from_str(&seen)?;
        ensure!(v["rogue_writes"]["green"]["seen"] == 0, "the watch counted turnout's own writes: {}", v["rogue_writes"]);
    }
    wait_same(blue, green, db).await?;
    sidecar.stop().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    common::init_logging();
    let (rate, seconds): (u32, u32) = (common::arg(0, 1000)?, common::arg(1, 20)?);
    let blue = PgServer::start(15)?;
    let fsync_on = || PgOptions::new(17).conf("fsync = on").conf("full_page_writes = on").conf("track_commit_timestamp = on");
    let (ours, native, watched) = (PgServer::start_with(fsync_on())?, PgServer::start_with(fsync_on())?, PgServer::start_with(fsync_on())?);
    let db = "bench";
    for s in [&blue, &ours, &native, &watched] {
        s.execute("postgres", "CREATE DATABASE bench").await?;
    }
    ensure!(pgbench(&blue, db, &["-q", "-i", "-s", "1"]).output()?.status.success(), "pgbench -i");
    blue.execute(db, "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY").await?;
    let load = |seconds: u32| {
        pgbench(&blue, db, &["-n", "-c", "4", "-j", "2", "-R", &rate.to_string(), "-T", &seconds.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };

    // turnout: snapshot, then streaming under the load; then the same into a green it watches.
    turnout_phase(&blue, &ours, db, rate, seconds, false, load).await?;
    turnout_phase(&blue, &watched, db, rate, seconds, true, load).await?;

    // Native logical replication: a subscription copying the tables first, then the same load.
    blue.execute(db, "CREATE PUBLICATION native FOR ALL TABLES").await?;
    ensure!(pgbench(&native, db, &["-q", "-i", "-I", "dt", "-s", "1"]).output()?.status.success(), "pgbench -i on green");
    native.execute(db, "TRUNCATE pgbench_accounts, pgbench_branches, pgbench_tellers; ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY; ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid); ALTER TABLE pgbench_branches ADD PRIMARY KEY (bid); ALTER TABLE pgbench_tellers ADD PRIMARY KEY (tid)").await?;
    native
        .execute(
            db,
            &format!(
                "CREATE SUBSCRIPTION native CONNECTION 'host=127.0.0.1 port={} user=postgres password={} dbname={db}' PUBLICATION native",
                blue.port(),
                blue.password()
            ),
        )
        .await?;
    wait_same(&blue, &native, db).await?;
    let mut probe = Probe::new(&native, db).await?;
    let (_, outside) = sample(load(seconds)?, None, &mut probe).await?;
    print(&format!("native logical replication, age of green's newest applied blue commit at {rate} tps"), &outside);
    wait_same(&blue, &native, db).await?;
    println!("contents match on blue and both greens: {:?}", fingerprint(&blue, db).await?);
    Ok(())
}
