//! Drain and snapshot benchmarks against real local servers, with baselines run in the same process.
//!
//! Drain: blue (PostgreSQL 15) gets a pgbench TPC-B load plus one 300,000-row transaction while four
//! slots wait: one drained by `pg_recvlogical` to /dev/null (the receive floor: how fast blue's
//! walsender sends this backlog to PostgreSQL's own C client), one received and decoded by turnout
//! without applying, one for PostgreSQL's native logical replication into green A, one for turnout into
//! each of its greens (all PostgreSQL 17 with `fsync = on`). Each then drains the same WAL backlog alone; the time
//! until the marker written last is visible on green is reported, with the ratios.
//!
//! Snapshot: turnout's parallel COPY of the pgbench tables against a raw `psql \copy … | psql \copy …`
//! pipe of the same tables, each into empty tables without indexes.
//!
//! turnout drains once per `BENCH_SESSIONS` entry (green sessions applying side by side, default
//! `1,4`), each into a green of its own. `BENCH_WORKLOAD=simple` runs pgbench's simple-update script
//! (transactions that rarely touch the same row) instead of TPC-B (every transaction updates one of
//! SCALE branch rows). `BENCH_DELAY_MS=2` puts a 2 ms round trip between turnout and green, and
//! between blue and the native subscriber.
//!
//! Run: `cargo run --release -p turnout --example bench -- [SCALE] [SECONDS]` (defaults 10 and 20).
#![allow(clippy::too_many_lines, reason = "a benchmark or capture script reads best top to bottom")]

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Context, Result};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout::testing::pg::ensure_publication;
use turnout::testing::Names;
use turnout::testing::StateStore;
use turnout_connect::pg::client::SlotOptions;
use turnout_connect::pg::{ConnectOptions, PgConnection};
use turnout_testbed::{free_port, PgOptions, PgServer, Proxy};

const TABLES: [&str; 4] = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"];

fn pg_tool(server: &PgServer, tool: &str, db: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(format!("/usr/lib/postgresql/15/bin/{tool}"))
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string(), "-U", "postgres"])
        .args(args)
        .arg(db)
        .env("PGPASSWORD", server.password())
        .output()
        .with_context(|| format!("running {tool}"))?;
    ensure!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn wait_for_marker(green: &PgServer, db: &str) -> Result<()> {
    let c = green.connect(db).await?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let n: i64 = c.query_one("SELECT count(*) FROM bench_marker", &[]).await?.get(0);
        if n > 0 {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "drain did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn fingerprint(server: &PgServer, db: &str) -> Result<(i64, i64, i64)> {
    let c = server.connect(db).await?;
    let r = c
        .query_one(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts)::int8, (SELECT sum(tbalance) FROM pgbench_tellers)::int8, \
             (SELECT count(*) FROM pgbench_history)",
            &[],
        )
        .await?;
    Ok((r.get(0), r.get(1), r.get(2)))
}

/// One turnout green of the drain: its server, the proxy turnout reaches it through, its configuration.
struct Ours {
    sessions: usize,
    green: PgServer,
    _proxy: Option<Proxy>,
    config: turnout::config::Config,
    _dir: tempfile::TempDir,
}

/// A proxy to `port` adding `delay` of round trip, or none without delay.
fn delayed(port: u16, delay: Duration) -> Result<(Option<Proxy>, u16)> {
    if delay.is_zero() {
        return Ok((None, port));
    }
    let proxy = Proxy::start(port)?;
    proxy.set_latency(delay / 2);
    let p = proxy.port();
    Ok((Some(proxy), p))
}

async fn drain(scale: u32, seconds: u32, workload: &str, sessions: &[usize], delay: Duration) -> Result<()> {
    let blue = PgServer::start(15)?;
    let fsync_on = || PgOptions::new(17).conf("fsync = on").conf("full_page_writes = on");
    let native = PgServer::start_with(fsync_on())?;
    let db = "bench";
    for s in [&blue, &native] {
        s.execute("postgres", "CREATE DATABASE bench").await?;
    }
    pg_tool(&blue, "pgbench", db, &["-q", "-i", "-s", &scale.to_string()])?;
    blue.execute(db, "ALTER TABLE pgbench_history REPLICA IDENTITY FULL; CREATE TABLE bench_marker (id int PRIMARY KEY)").await?;
    let prepare_green = |g: &PgServer| {
        let g_port = g.port();
        let password = g.password().to_owned();
        async move {
            let out = Command::new("/usr/lib/postgresql/15/bin/pgbench")
                .args(["-h", "127.0.0.1", "-p", &g_port.to_string(), "-U", "postgres", "-q", "-i", "-I", "dtgp", "-s", &scale.to_string(), db])
                .env("PGPASSWORD", &password)
                .output()?;
            ensure!(out.status.success(), "pgbench -i on green failed: {}", String::from_utf8_lossy(&out.stderr));
            Ok::<(), anyhow::Error>(())
        }
    };
    prepare_green(&native).await?;
    native.execute(db, "CREATE TABLE bench_marker (id int PRIMARY KEY)").await?;
    // Native logical replication: publication + a disabled subscription (creates its slot now),
    // connected to blue with the same round trip as turnout to green.
    let (_native_proxy, native_port) = delayed(blue.port(), delay)?;
    blue.execute(db, "CREATE PUBLICATION native FOR ALL TABLES").await?;
    native
        .execute(
            db,
            &format!(
                "CREATE SUBSCRIPTION native CONNECTION 'host=127.0.0.1 port={native_port} user=postgres password={} dbname={db}' \
                 PUBLICATION native WITH (copy_data = false, enabled = false)",
                blue.password()
            ),
        )
        .await?;
    // turnout, once per number of apply sessions: a green each, with its publication and slot now;
    // green already holds the data as of the slot.
    let mut ours = Vec::new();
    for &n in sessions {
        let green = PgServer::start_with(fsync_on())?;
        green.execute("postgres", "CREATE DATABASE bench").await?;
        prepare_green(&green).await?;
        green.execute(db, "CREATE TABLE bench_marker (id int PRIMARY KEY)").await?;
        let (proxy, port) = delayed(green.port(), delay)?;
        let green_url = format!("postgres://postgres:{}@127.0.0.1:{port}/{db}?sslmode=disable", green.password());
        let dir = tempfile::tempdir()?;
        let mut config = common::config(&blue.url(db), &green_url, dir.path(), free_port())?;
        config.apply.sessions = Some(n);
        let state = StateStore::open(&config.state.dir)?;
        let names = Names::for_stream(&state.stream_id()?);
        let opts = ConnectOptions::from_url(&blue.url(db), "source.url")?;
        let mut admin = PgConnection::connect(&opts, false).await?;
        ensure_publication(&mut admin, &names.publication).await?;
        let mut repl = PgConnection::connect(&opts, true).await?;
        let slot = repl.create_logical_slot(&names.slot, &SlotOptions::default()).await?;
        let client = turnout_sinks::pg::connect(&green.url(db)).await?;
        turnout_sinks::pg::ensure_origin(&client, &names.origin).await?;
        turnout_sinks::pg::advance_origin(&client, &names.origin, slot.consistent_point).await?;
        state.mark_snapshot_done(&turnout_decoders::Position::Pg(slot.consistent_point))?;
        state.record_applied(&turnout_decoders::Position::Pg(slot.consistent_point))?;
        drop(state);
        ours.push(Ours { sessions: n, green, _proxy: proxy, config, _dir: dir });
    }
    // A slot only received and decoded: how fast blue's walsender can send this backlog at all.
    PgConnection::connect(&ConnectOptions::from_url(&blue.url(db), "source.url")?, true)
        .await?
        .create_logical_slot("bench_probe", &SlotOptions::default())
        .await?;
    // One drained by PostgreSQL's own C client to /dev/null: the receive floor.
    blue.execute(db, "SELECT pg_create_logical_replication_slot('bench_recvlogical', 'pgoutput')").await?;
    // The load, with every slot holding WAL. TPC-B updates one of `scale` branch rows in every
    // transaction, so its transactions depend on each other; `simple` (pgbench -N) updates one random
    // account and inserts a history row: transactions that rarely touch the same row.
    let load = Instant::now();
    let mut args = vec!["-n", "-c", "4", "-j", "2"];
    if workload == "simple" {
        args.push("-N");
    }
    let secs = seconds.to_string();
    args.extend(["-T", &secs]);
    let tps = pg_tool(&blue, "pgbench", db, &args)?;
    blue.execute(db, "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1, 1, g, 0, now() FROM generate_series(1, 300000) g").await?;
    blue.execute(db, "INSERT INTO bench_marker VALUES (1)").await?;
    let backlog: String = blue
        .connect(db)
        .await?
        .query_one("SELECT pg_size_pretty(pg_current_wal_lsn() - confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'native'", &[])
        .await?
        .get(0);
    let txns = tps.lines().find(|l| l.contains("number of transactions actually processed")).unwrap_or("").trim().to_string();
    println!(
        "load ({workload}): {txns} + one 300000-row transaction in {:.1} s; WAL backlog {backlog}; round trip blue/green {delay:?}",
        load.elapsed().as_secs_f64()
    );

    // The first reader of a backlog pays for reading it from disk: turnout's receive-only pass goes
    // first and warms the cache for everyone after it.
    let (probe_secs, messages) = receive_only(&blue, db, "bench_probe").await?;
    println!("turnout's receive + decode only (no apply, first reader): {probe_secs:.2} s for {messages} messages");
    let floor_secs = recvlogical(&blue, db, "bench_recvlogical").await?;
    println!("pg_recvlogical to /dev/null: {floor_secs:.2} s — the receive floor");

    let t = Instant::now();
    native.execute(db, "ALTER SUBSCRIPTION native ENABLE").await?;
    wait_for_marker(&native, db).await?;
    let native_secs = t.elapsed().as_secs_f64();
    println!("native logical replication drained in {native_secs:.2} s");

    let b = fingerprint(&blue, db).await?;
    ensure!(b == fingerprint(&native, db).await?, "native green differs from blue");
    for o in ours {
        let t = Instant::now();
        let sidecar = common::Sidecar::start(o.config);
        wait_for_marker(&o.green, db).await?;
        let ours_secs = t.elapsed().as_secs_f64();
        sidecar.stop().await?;
        println!(
            "turnout, apply.sessions = {}: drained in {ours_secs:.2} s; native / turnout {:.2}x; turnout / receive floor {:.2}x",
            o.sessions,
            native_secs / ours_secs,
            ours_secs / floor_secs
        );
        let g = fingerprint(&o.green, db).await?;
        ensure!(b == g, "contents differ: blue {b:?} turnout ({} sessions) {g:?}", o.sessions);
    }
    println!("native / receive floor: {:.2}x; contents match on blue and every green: {b:?}", native_secs / floor_secs);
    Ok(())
}

/// Drains `slot` with `pg_recvlogical` (pgoutput, to /dev/null) up to blue's current WAL position;
/// returns the time.
async fn recvlogical(blue: &PgServer, db: &str, slot: &str) -> Result<f64> {
    let end: String = blue.connect(db).await?.query_one("SELECT pg_current_wal_lsn()::text", &[]).await?.get(0);
    let t = Instant::now();
    let out = Command::new("/usr/lib/postgresql/15/bin/pg_recvlogical")
        .args(["-h", "127.0.0.1", "-p", &blue.port().to_string(), "-U", "postgres", "-d", db, "--slot", slot])
        .args(["--start", "--no-loop", "--endpos", &end, "-f", "/dev/null", "-F", "0"])
        .args(["-o", "proto_version=1", "-o", "publication_names=native"])
        .env("PGPASSWORD", blue.password())
        .output()
        .context("running pg_recvlogical")?;
    ensure!(out.status.success(), "pg_recvlogical failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(t.elapsed().as_secs_f64())
}

/// Drains `slot` without applying anything until the bench_marker insert commits; returns the time
/// and the number of messages received.
async fn receive_only(blue: &PgServer, db: &str, slot: &str) -> Result<(f64, u64)> {
    use turnout_connect::pg::{StartReplication, StreamMessage};
    use turnout_decoders::pg::PgOutputDecoder;
    use turnout_decoders::ChangeEvent;
    let t = Instant::now();
    let conn = PgConnection::connect(&ConnectOptions::from_url(&blue.url(db), "source.url")?, true).await?;
    let mut stream = conn.start_replication(&StartReplication::new(slot, vec!["native".to_owned()])).await?;
    let mut decoder = PgOutputDecoder::new();
    let (mut messages, mut marker_seen) = (0u64, false);
    loop {
        let StreamMessage::Data { data, .. } = stream.recv().await? else { continue };
        messages += 1;
        match decoder.decode(&data)? {
            Some(ChangeEvent::Insert { table, .. }) if table.name.name == "bench_marker" => marker_seen = true,
            Some(ChangeEvent::Commit { .. } | ChangeEvent::StreamCommit { .. }) if marker_seen => break,
            _ => {}
        }
    }
    let secs = t.elapsed().as_secs_f64();
    stream.close().await?;
    Ok((secs, messages))
}

async fn snapshot(scale: u32) -> Result<()> {
    let blue = PgServer::start(15)?;
    let raw = PgServer::start(17)?;
    let ours = PgServer::start(17)?;
    let db = "bench";
    for s in [&blue, &raw, &ours] {
        s.execute("postgres", "CREATE DATABASE bench").await?;
    }
    pg_tool(&blue, "pgbench", db, &["-q", "-i", "-s", &scale.to_string()])?;
    for g in [&raw, &ours] {
        pg_tool(g, "pgbench", db, &["-q", "-i", "-I", "dt", "-s", &scale.to_string()])?;
    }
    let t = Instant::now();
    for table in TABLES {
        let cmd = format!(
            "PGPASSWORD={bp} /usr/lib/postgresql/15/bin/psql -qAt -h 127.0.0.1 -p {bport} -U postgres -c '\\copy {table} to stdout' {db} | \
             PGPASSWORD={gp} /usr/lib/postgresql/15/bin/psql -qAt -h 127.0.0.1 -p {gport} -U postgres -c '\\copy {table} from stdin' {db}",
            bp = blue.password(),
            bport = blue.port(),
            gp = raw.password(),
            gport = raw.port()
        );
        let out = Command::new("sh").arg("-c").arg(&cmd).output()?;
        ensure!(out.status.success(), "raw pipe failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let raw_secs = t.elapsed().as_secs_f64();

    let opts = ConnectOptions::from_url(&blue.url(db), "source.url")?;
    let mut repl = PgConnection::connect(&opts, true).await?;
    let slot = repl.create_logical_slot("bench_snapshot", &SlotOptions { export_snapshot: true, ..SlotOptions::default() }).await?;
    let snapshot = slot.snapshot_name.clone().context("no snapshot")?;
    let blue_client = turnout::testing::pg::blue_connect(&blue.url(db)).await?;
    let tables: Vec<turnout_decoders::TableName> = TABLES.iter().map(|t| turnout_decoders::TableName::new("public", *t)).collect();
    let plan = turnout::testing::pg::copy_plan(&blue_client, &tables, 8192).await?;
    let dir = tempfile::tempdir()?;
    let state = StateStore::open(dir.path())?;
    let status = Arc::new(turnout::testing::Status::default());
    let t = Instant::now();
    let rows = turnout::testing::pg::copy_all(&blue.url(db), &ours.url(db), &snapshot, plan, 4, &state, &status).await?;
    let ours_secs = t.elapsed().as_secs_f64();
    repl.close().await;
    println!("snapshot of {rows} rows: raw COPY|COPY pipe {raw_secs:.2} s, turnout {ours_secs:.2} s");
    println!("snapshot throughput ratio (raw time / turnout time): {:.2}x", raw_secs / ours_secs);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    common::init_logging();
    let (scale, seconds): (u32, u32) = (common::arg(0, 10)?, common::arg(1, 20)?);
    if std::env::var_os("BENCH_SKIP_SNAPSHOT").is_none() {
        snapshot(scale).await?;
    }
    let workload = std::env::var("BENCH_WORKLOAD").unwrap_or_else(|_| "tpcb".into());
    ensure!(workload == "tpcb" || workload == "simple", "BENCH_WORKLOAD is tpcb or simple");
    let sessions: Vec<usize> = std::env::var("BENCH_SESSIONS")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()
        .context("BENCH_SESSIONS is a list of numbers, e.g. 1,4")?;
    let delay = Duration::from_secs_f64(std::env::var("BENCH_DELAY_MS").ok().map(|d| d.parse::<f64>()).transpose()?.unwrap_or(0.0) / 1000.0);
    drain(scale, seconds, &workload, &sessions, delay).await?;
    Ok(())
}
