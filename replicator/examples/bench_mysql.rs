//! MySQL/MariaDB drain and snapshot benchmarks against real local MariaDB servers, with the baselines
//! run in the same process.
//!
//! Drain: blue takes an `oltp_write_only`-shaped load (sysbench's: per transaction an indexed UPDATE,
//! a non-indexed UPDATE, a DELETE and an INSERT of the same key, in one of four tables) from four
//! clients, then one 200,000-row transaction, then a marker row. Three greens hold blue's data as of
//! the binlog position before the load; each drains the same backlog alone: MariaDB's native
//! replication with one SQL thread, native with `slave_parallel_threads = 4` (optimistic), and
//! turnout. The time until the marker is visible on each green is reported with the ratios, and the
//! four servers' table checksums are compared. Then the receive floor: the server's own binlog client
//! (`mysqlbinlog` / `mariadb-binlog --read-from-remote-server --raw`, no TLS, like turnout here) copies
//! the same backlog to files, receiving only — no decoding, no apply; and turnout's own stream alone
//! (receive and decode to change events, nothing applied), the part of the drain that is turnout's.
//!
//! Snapshot: turnout's parallel consistent copy of the four tables against a `mariadb-dump
//! --single-transaction | mariadb` pipe, each into the same empty tables.
//!
//! Run: `cargo run --release -p turnout --example bench_mysql -- [ROWS_PER_TABLE] [SECONDS]`
//! (defaults 100000 and 20); `BENCH_APPLY_SESSIONS=N` sets turnout's `apply.sessions`.
//! `BENCH_ENGINE=mysql` runs the same on Oracle MySQL 9.7 servers: native replication by GTID
//! auto-position with `replica_parallel_workers = 1` and `= 4` (WRITESET dependency tracking, MySQL
//! 8.4+'s only kind, commit order preserved), and `mysqldump | mysql` for the snapshot.
#![allow(clippy::too_many_lines, reason = "a benchmark or capture script reads best top to bottom")]

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Context, Result};
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout::testing::Names;
use turnout::testing::StateStore;
use turnout_decoders::{BinlogPosition, GtidState, Position, TableName};
use turnout_testbed::{free_port, Flavor, MySqlServer};

const DB: &str = "bench";
const TABLES: [&str; 4] = ["sbtest1", "sbtest2", "sbtest3", "sbtest4"];

/// The servers: MariaDB 10.11, or Oracle MySQL 9.7 with `BENCH_ENGINE=mysql`.
fn flavor() -> Flavor {
    if std::env::var("BENCH_ENGINE").is_ok_and(|e| e.eq_ignore_ascii_case("mysql")) {
        Flavor::MySql9_7
    } else {
        Flavor::MariaDb10_11
    }
}

/// The numbers 1 to `n` as a table with column `seq`.
fn seq(n: u64) -> String {
    flavor().numbers(n)
}

/// The sysbench tables, filled with deterministic rows, the bulk table and the marker. (SHA2, not
/// MD5: MySQL 9.7 has none.)
fn schema(rows: u64) -> String {
    let mut sql = format!("CREATE DATABASE IF NOT EXISTS {DB}; USE {DB};\n");
    for t in TABLES {
        sql.push_str(&format!(
            "CREATE TABLE {t} (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', \
             pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE=InnoDB;\n\
             INSERT INTO {t} SELECT seq, (seq * 7919) % {rows}, LEFT(SHA2(seq, 512), 120), LEFT(SHA2(seq, 256), 60) FROM {};\n",
            seq(rows)
        ));
    }
    sql.push_str("CREATE TABLE bulk (id INT PRIMARY KEY, pad VARCHAR(100)) ENGINE=InnoDB;\nCREATE TABLE bench_marker (id INT PRIMARY KEY) ENGINE=InnoDB;\n");
    sql
}

fn start_servers(n: u32) -> Result<Vec<MySqlServer>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..=n).map(|id| s.spawn(move || MySqlServer::start_flavor(flavor(), id))).collect();
        handles.into_iter().map(|h| h.join().map_err(|_| anyhow::anyhow!("server thread panicked"))?.map_err(anyhow::Error::from)).collect()
    })
}

async fn conn(server: &MySqlServer) -> Result<mysql_async::Conn> {
    Ok(mysql_async::Conn::new(mysql_async::Opts::from_url(&server.url(DB))?).await?)
}

async fn wait_for_marker(server: &MySqlServer) -> Result<()> {
    let mut c = conn(server).await?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM bench_marker").await?;
        if n.unwrap_or(0) > 0 {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "drain did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `CHECKSUM TABLE` of every benchmark table.
async fn fingerprint(server: &MySqlServer) -> Result<Vec<(String, Option<i64>)>> {
    let mut c = conn(server).await?;
    Ok(c.query(format!("CHECKSUM TABLE {}, bulk", TABLES.join(", "))).await?)
}

/// One client of the write-only load: transactions until `until`; returns how many committed.
async fn client(server_url: String, rows: u64, seed: u64, until: Instant) -> Result<u64> {
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&server_url)?).await?;
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut done = 0;
    while Instant::now() < until {
        let t = TABLES[usize::try_from(next() % 4).unwrap_or(0)];
        let (a, b, d) = (1 + next() % rows, 1 + next() % rows, 1 + next() % rows);
        let r = next();
        let sql = format!(
            "BEGIN; UPDATE {t} SET k = k + 1 WHERE id = {a}; UPDATE {t} SET c = LEFT(SHA2({r}, 512), 120) WHERE id = {b}; \
             DELETE FROM {t} WHERE id = {d}; INSERT INTO {t} (id, k, c, pad) VALUES ({d}, {k}, LEFT(SHA2({r}, 384), 120), LEFT(SHA2({d}, 256), 60)); COMMIT",
            k = r % rows
        );
        c.query_drop(sql).await?;
        done += 1;
    }
    Ok(done)
}

fn position(blue: &MySqlServer) -> Result<(Position, String)> {
    let mariadb = blue.flavor().is_mariadb();
    let gtids = blue.execute(None, if mariadb { "SELECT @@gtid_binlog_pos" } else { "SELECT @@GLOBAL.gtid_executed" })?.trim().replace('\n', "");
    let status = blue.execute(None, if mariadb { "SHOW MASTER STATUS" } else { "SHOW BINARY LOG STATUS" })?;
    let mut cols = status.split('\t');
    let file = cols.next().context("the binlog status is empty")?.trim().to_owned();
    let offset: u64 = cols.next().context("no binlog offset")?.trim().parse()?;
    let gtid_state = GtidState::parse(&gtids).map_err(anyhow::Error::msg)?;
    Ok((Position::Binlog(BinlogPosition { file, offset, gtids: gtid_state }), gtids))
}

/// The receive floor: seconds the server's own binlog client takes to copy the binlog from `start` to the
/// end of the last file, raw, into files under blue's directory.
fn receive_floor(blue: &MySqlServer, start: &Position) -> Result<f64> {
    let Position::Binlog(start) = start else { anyhow::bail!("not a binlog position: {start:?}") };
    let out = blue.dir().join("floor");
    std::fs::create_dir_all(&out)?;
    let mut cmd = if blue.flavor().is_mariadb() { std::process::Command::new("mariadb-binlog") } else { blue.tool("/usr/bin/mysqlbinlog") };
    cmd.args(["--no-defaults", "--read-from-remote-server", "--raw", "--to-last-log", "--host=127.0.0.1"]);
    cmd.arg(if blue.flavor().is_mariadb() { "--skip-ssl" } else { "--ssl-mode=DISABLED" });
    if !blue.flavor().is_mariadb() {
        cmd.arg("--get-server-public-key");
    }
    cmd.arg(format!("--port={}", blue.port()))
        .arg(format!("--user={}", blue.user()))
        .arg(format!("--password={}", blue.password()))
        .arg(format!("--start-position={}", start.offset))
        .arg(format!("--result-file={}/", blue.path_on_server(&out).display()))
        .arg(&start.file);
    let t = Instant::now();
    let run = cmd.output().context("running the server's binlog client")?;
    let secs = t.elapsed().as_secs_f64();
    ensure!(run.status.success(), "the binlog client failed: {}", String::from_utf8_lossy(&run.stderr));
    let bytes: u64 = std::fs::read_dir(&out)?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
    println!(
        "receive floor ({}) copied {:.1} MB in {secs:.2} s",
        if blue.flavor().is_mariadb() { "mariadb-binlog --raw" } else { "mysqlbinlog --raw" },
        bytes as f64 / 1e6
    );
    Ok(secs)
}

/// Seconds turnout's binlog stream takes to receive and decode the backlog from `start` to the marker
/// row into change events, applying nothing.
async fn receive_and_decode(config: &turnout::config::Config, start: &Position) -> Result<f64> {
    use turnout::testing::{Source, SourceAdmin, SourceMessage};
    let admin = turnout::testing::mysql::MySqlAdmin::new(config, Names::for_stream("receive-only"))?;
    let t = Instant::now();
    let mut stream = admin.open_stream(start).await?;
    let mut events = 0u64;
    loop {
        if let SourceMessage::Event { event, .. } = stream.recv().await? {
            events += 1;
            if matches!(&event, turnout_decoders::ChangeEvent::Insert { table, .. } if table.name.name == "bench_marker") {
                break;
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!("turnout's stream decoded {events} change events in {secs:.2} s");
    stream.close().await?;
    Ok(secs)
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

async fn drain(rows: u64, seconds: u64) -> Result<()> {
    let mut servers = start_servers(4)?;
    let ours = servers.pop().context("server")?;
    let parallel = servers.pop().context("server")?;
    let single = servers.pop().context("server")?;
    let blue = servers.pop().context("server")?;
    let setup = schema(rows);
    blue.execute(None, &setup)?;
    let mut b = conn(&blue).await?;
    turnout::testing::mysql::ensure_table(&mut b, DB).await?;
    for g in [&single, &parallel, &ours] {
        g.execute(None, &format!("SET sql_log_bin = 0; {setup}"))?;
        let mut c = conn(g).await?;
        turnout::testing::mysql::ensure_table(&mut c, DB).await?;
    }
    let (start, gtids) = position(&blue)?;
    for (g, threads) in [(&single, 1), (&parallel, 4)] {
        let sql = if blue.flavor().is_mariadb() {
            format!(
                "SET GLOBAL slave_parallel_threads = {}, slave_parallel_mode = 'optimistic', gtid_slave_pos = '{gtids}';
                 CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = '{}', MASTER_PASSWORD = '{}', MASTER_USE_GTID = slave_pos",
                if threads == 1 { 0 } else { threads },
                blue.port(),
                blue.user(),
                blue.password()
            )
        } else {
            // Blue's transactions up to `start` are already on this green: they join its GTID set.
            format!(
                "SET GLOBAL replica_parallel_workers = {threads}; SET GLOBAL gtid_purged = '+{gtids}';
                 CHANGE REPLICATION SOURCE TO SOURCE_HOST = '127.0.0.1', SOURCE_PORT = {}, SOURCE_USER = '{}', SOURCE_PASSWORD = '{}', \
                 SOURCE_AUTO_POSITION = 1, GET_SOURCE_PUBLIC_KEY = 1",
                blue.port(),
                blue.user(),
                blue.password()
            )
        };
        g.execute(None, &sql)?;
    }
    // turnout: green holds the data as of `start`, recorded as its progress.
    let dir = tempfile::tempdir()?;
    let config = common::config(&blue.url(DB), &ours.url(DB), dir.path(), free_port())?;
    {
        let state = StateStore::open(&config.state.dir)?;
        let names = Names::for_stream(&state.stream_id()?);
        turnout_sinks::mysql::record_position(&ours.url(DB), &names.origin, &start).await?;
        state.mark_snapshot_done(&start)?;
        state.record_applied(&start)?;
    }

    let load = Instant::now();
    let until = load + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..4u64).map(|i| tokio::spawn(client(blue.url(DB), rows, i + 1, until))).collect();
    let mut txns = 0;
    for c in clients {
        txns += c.await??;
    }
    b.query_drop(format!("INSERT INTO bulk SELECT seq, REPEAT('x', 100) FROM {}", seq(200_000))).await?;
    b.query_drop("INSERT INTO bench_marker VALUES (1)").await?;
    let (end, _) = position(&blue)?;
    let backlog = match (&start, &end) {
        (Position::Binlog(s), Position::Binlog(e)) if s.file == e.file => format!("{:.1} MB", (e.offset - s.offset) as f64 / 1e6),
        _ => "more than one binlog file".into(),
    };
    println!("load: {txns} write-only transactions + one 200000-row transaction in {:.1} s; binlog backlog {backlog}", load.elapsed().as_secs_f64());

    let mut native = Vec::new();
    let pid = |s: &MySqlServer| s.pid().map(|p| p.to_string()).unwrap_or_default();
    let four = if blue.flavor().is_mariadb() { "native replication, 4 parallel threads (optimistic)" } else { "native replication, 4 workers (WRITESET)" };
    for (g, name) in [(&single, "native replication, 1 SQL thread"), (&parallel, four)] {
        let (t, cpu) = (Instant::now(), cpu_seconds(&pid(g)));
        g.execute(None, "START REPLICA")?;
        wait_for_marker(g).await?;
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds(&pid(g)) - cpu;
        g.execute(None, "STOP REPLICA")?;
        println!("{name} drained in {secs:.2} s (replica CPU {cpu:.1} s)");
        native.push(secs);
    }

    let (t, green_cpu, own_cpu) = (Instant::now(), cpu_seconds(&pid(&ours)), cpu_seconds("self"));
    let sessions = config.apply_sessions();
    let sidecar = common::Sidecar::start(config);
    wait_for_marker(&ours).await?;
    let ours_secs = t.elapsed().as_secs_f64();
    let (green_cpu, own_cpu) = (cpu_seconds(&pid(&ours)) - green_cpu, cpu_seconds("self") - own_cpu);
    sidecar.stop().await?;
    println!("turnout (apply.sessions = {}) drained in {ours_secs:.2} s (turnout CPU {own_cpu:.1} s, green CPU {green_cpu:.1} s)", sessions);
    println!("drain ratio (native 1 thread / turnout): {:.2}x", native[0] / ours_secs);
    println!("drain ratio (native 4 threads / turnout): {:.2}x", native[1] / ours_secs);
    let floor = receive_floor(&blue, &start)?;
    println!("turnout drain / receive floor: {:.2}x", ours_secs / floor);
    let decoded = receive_and_decode(&common::config(&blue.url(DB), &ours.url(DB), dir.path(), free_port())?, &start).await?;
    println!("turnout receive + decode alone: {decoded:.2} s; / receive floor: {:.2}x (goal <= 1.15)", decoded / floor);
    let reference = fingerprint(&blue).await?;
    for (g, name) in [(&single, "native 1"), (&parallel, "native 4"), (&ours, "turnout")] {
        let got = fingerprint(g).await?;
        ensure!(got == reference, "{name} green differs from blue: {got:?} vs {reference:?}");
    }
    println!("table checksums match on blue and all three greens");
    Ok(())
}

async fn snapshot(rows: u64) -> Result<()> {
    let mut servers = start_servers(3)?;
    let ours = servers.pop().context("server")?;
    let raw = servers.pop().context("server")?;
    let blue = servers.pop().context("server")?;
    blue.execute(None, &schema(rows))?;
    let empty: String = schema(0).lines().filter(|l| !l.starts_with("INSERT")).collect::<Vec<_>>().join("\n");
    for g in [&raw, &ours] {
        g.execute(None, &format!("SET sql_log_bin = 0; {empty}"))?;
    }
    let t = Instant::now();
    let (dump_tool, client_tool, name) = if blue.flavor().is_mariadb() {
        ("/usr/bin/mariadb-dump", "/usr/bin/mariadb", "mariadb-dump | mariadb")
    } else {
        ("/usr/bin/mysqldump", "/usr/bin/mysql", "mysqldump | mysql")
    };
    let login = |s: &MySqlServer| {
        [
            "--no-defaults".to_owned(),
            "-h".into(),
            "127.0.0.1".into(),
            "-P".into(),
            s.port().to_string(),
            "-u".into(),
            s.user().into(),
            format!("-p{}", s.password()),
        ]
    };
    let mut dump = blue
        .tool(dump_tool)
        .args(login(&blue))
        .args(["--single-transaction", "--no-create-info", "--skip-add-locks", DB])
        .args(TABLES)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = dump.stdout.take().context("dump output")?;
    let load = raw.tool(client_tool).args(login(&raw)).arg(DB).stdin(stdout).output()?;
    ensure!(dump.wait()?.success() && load.status.success(), "{name} failed: {}", String::from_utf8_lossy(&load.stderr));
    let raw_secs = t.elapsed().as_secs_f64();

    let dir = tempfile::tempdir()?;
    let state = StateStore::open(dir.path())?;
    let status = Arc::new(turnout::testing::Status::default());
    let t = Instant::now();
    let blue_opts = mysql_async::Opts::from_url(&blue.url(DB))?;
    let (readers, point) = turnout::testing::mysql::open_readers(&blue_opts, 4).await?;
    let mut readers = readers;
    let tables: Vec<(TableName, u64)> = TABLES.iter().map(|t| (TableName::new(DB, *t), 0)).collect();
    let jobs = turnout::testing::mysql::plan(&mut readers[0], tables, 0).await?;
    let copied = turnout::testing::mysql::copy_all(readers, &ours.url(DB), jobs, &state, &status).await?;
    let ours_secs = t.elapsed().as_secs_f64();
    let held = point.lock_held.map_or("no lock".into(), |d| format!("commits blocked {:.1} ms", d.as_secs_f64() * 1000.0));
    println!("snapshot of {copied} rows: {name} {raw_secs:.2} s, turnout (4 readers, {held}) {ours_secs:.2} s");
    println!("snapshot ratio (dump pipe time / turnout time): {:.2}x", raw_secs / ours_secs);
    let (r, o) = (fingerprint(&raw).await?, fingerprint(&ours).await?);
    ensure!(r[..4] == o[..4], "the copies differ: {r:?} vs {o:?}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    common::init_logging();
    let (rows, seconds): (u64, u64) = (common::arg(0, 100_000)?, common::arg(1, 20)?);
    if std::env::var_os("BENCH_SKIP_SNAPSHOT").is_none() {
        snapshot(rows).await?;
    }
    drain(rows, seconds).await?;
    Ok(())
}
