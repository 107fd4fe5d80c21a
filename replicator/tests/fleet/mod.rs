//! Fleets: several blue → green pairs, each with its own `turnout run` sidecar and an application
//! writing through its proxy, cut over by `turnout fleet cutover` as one decision kept by a real
//! 3-member etcd cluster (Debian's `etcd-server`, started here on loopback ports). Every outcome is
//! checked on the servers: every acknowledged write on its green after a commit, every blue taking
//! writes again after an abort — never some pairs on each side.

use crate::common;

use common::{Turnout, Writer, WAIT};
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use turnout_testbed::{EtcdCluster, Flavor, HaProxy, MySqlServer, PgBouncer, PgServer};

const PG_SCHEMA: &str = "CREATE TABLE t (id bigserial PRIMARY KEY, note text); CREATE TABLE block (id int PRIMARY KEY)";
const MY_SCHEMA: &str = "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20) NOT NULL) ENGINE=InnoDB;
CREATE TABLE block (id INT PRIMARY KEY) ENGINE=InnoDB;";
const APP_USER: &str = "app";
const APP_PASSWORD: &str = "app-secret";

/// The servers of one pair and what fronts them.
enum Servers {
    Pg { blue: PgServer, _green: PgServer, green_url: String, bouncer: PgBouncer },
    My { blue: MySqlServer, green: MySqlServer, proxy: HaProxy },
}

/// One pair of the fleet: its servers, database, sidecar and application.
struct Pair {
    name: String,
    servers: Servers,
    db: String,
    t: Turnout,
    _dir: tempfile::TempDir,
    writer: Option<Writer<(i64, Instant)>>,
}

/// The lag gate of a fleet with a pair held by a lock from before the command starts: that pair's
/// lag grows for as long as every pair prepares (definitions compared twice, sequences moved, the
/// stream back armed — half a minute and more when nine servers share two cores), and a `<30s` gate
/// made it refuse to vote before the test reached what it tests. The hold, not the gate, is what
/// these tests exercise.
const BLOCKED_LAG: &str = "<300s";

fn fleet_keys(etcd: &EtcdCluster) -> String {
    let endpoints: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
    format!("[fleet.etcd]\nendpoints = [{}]\n", endpoints.join(", "))
}

impl Pair {
    /// PostgreSQL `blue` → `green` behind pgbouncer (the pgbouncer fence and switch).
    async fn pg(name: &str, blue: u32, green: u32, etcd: &EtcdCluster) -> Pair {
        Pair::pg_with(name, blue, green, &fleet_keys(etcd)).await
    }

    /// As [`Pair::pg`], with `extra` (its `[fleet]`, or none) in the sidecar's configuration.
    async fn pg_with(name: &str, blue: u32, green: u32, extra: &str) -> Pair {
        let (blue, green, db) = common::pair_versions(blue, green, PG_SCHEMA).await;
        let (bouncer, green_url, toml) = common::behind_pgbouncer(&blue, &green, &db, "fence = \"pgbouncer\"\nswitch = \"pgbouncer\"\n", extra).await;
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, &toml);
        t.start();
        common::wait_streaming(&mut t).await;
        Pair { name: name.into(), servers: Servers::Pg { blue, _green: green, green_url, bouncer }, db, t, _dir: dir, writer: None }
    }

    /// A MySQL-family `blue` → `green` behind haproxy (the `read_only` fence, the haproxy switch).
    async fn my(name: &str, blue: Flavor, green: Flavor, etcd: &EtcdCluster) -> Pair {
        let (blue, green, db) = common::maria_pair_of(blue, green);
        let app = format!("CREATE USER {APP_USER}@'%' IDENTIFIED BY '{APP_PASSWORD}'; GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO {APP_USER}@'%';");
        blue.execute(Some(&db), &format!("{MY_SCHEMA}\n{app}")).expect("blue schema");
        green.execute(None, &format!("SET sql_log_bin = 0; {app}")).expect("green account");
        let proxy = HaProxy::start("db", ("blue", blue.port()), ("green", green.port())).expect("haproxy");
        let toml = format!(
            "[cutover]\nfence = \"read-only\"\nswitch = \"haproxy\"\n[cutover.haproxy]\nadmin_socket = \"{}\"\nbackend = \"db\"\n{}",
            proxy.admin_socket().display(),
            fleet_keys(etcd)
        );
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &toml);
        t.start();
        common::wait_streaming(&mut t).await;
        Pair { name: name.into(), servers: Servers::My { blue, green, proxy }, db, t, _dir: dir, writer: None }
    }

    fn fleet_entry(&self) -> String {
        format!("[[pair]]\nname = \"{}\"\ncontrol = \"127.0.0.1:{}\"\n", self.name, self.t.port())
    }

    /// Starts the application: one row per transaction through the proxy, each id acknowledged.
    fn start_writer(&mut self) {
        self.writer = Some(match &self.servers {
            Servers::Pg { bouncer, .. } => {
                let url = bouncer.url(&self.db);
                Writer::start(move |log| async move {
                    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect through pgbouncer");
                    tokio::spawn(conn);
                    while log.running() {
                        match c.simple_query("INSERT INTO t (note) VALUES ('w') RETURNING id").await {
                            Ok(m) => log.acked((common::first_value::<i64>(&m).expect("id"), Instant::now())),
                            Err(e) => log.failed(e),
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            }
            Servers::My { proxy, .. } => {
                let url = format!("mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{}", proxy.port(), self.db);
                Writer::start(move |log| async move {
                    let mut c: Option<mysql_async::Conn> = None;
                    while log.running() {
                        if c.is_none() {
                            c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).expect("url")).await.ok();
                        }
                        if let Some(conn) = c.as_mut() {
                            match conn.query_drop("INSERT INTO t (note) VALUES ('w')").await {
                                Ok(()) => log.acked((i64::try_from(conn.last_insert_id().unwrap_or(0)).unwrap_or(0), Instant::now())),
                                // The fence (read_only) refuses and the switch ends the session:
                                // an application reconnects and goes on.
                                Err(_) => c = None,
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            }
        });
    }

    /// Stops the application; the ids it had acknowledged.
    async fn stop_writer(&mut self) -> Vec<i64> {
        self.stop_writer_timed().await.0
    }

    /// Stops the application; the ids it had acknowledged and the largest gap between two
    /// acknowledgements (the application's view of the write pause).
    async fn stop_writer_timed(&mut self) -> (Vec<i64>, Duration) {
        let writer = self.writer.take().expect("a writer");
        writer.wait_for(writer.count() + 20).await;
        let (acked, errors) = writer.finish().await;
        if let Servers::Pg { .. } = self.servers {
            assert!(errors.is_empty(), "{}: client errors through pgbouncer: {errors:?}", self.name);
        }
        let gap = acked.windows(2).map(|w| w[1].1.duration_since(w[0].1)).max().unwrap_or_default();
        (acked.into_iter().map(|(id, _)| id).collect(), gap)
    }

    /// The ids of `t` on `green` (true) or blue.
    async fn ids(&self, green: bool) -> Vec<i64> {
        match &self.servers {
            Servers::Pg { blue, green_url, .. } => {
                let url = if green { green_url.clone() } else { blue.url(&self.db) };
                let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(conn);
                c.query("SELECT id FROM t ORDER BY id", &[]).await.expect("ids").iter().map(|r| r.get(0)).collect()
            }
            Servers::My { blue, green: g, .. } => {
                let server = if green { g } else { blue };
                let out = server.execute(Some(&self.db), "SELECT id FROM t ORDER BY id").expect("ids");
                out.lines().filter_map(|l| l.trim().parse().ok()).collect()
            }
        }
    }

    /// Every id in `acked` is on green.
    async fn assert_all_on_green(&self, acked: &[i64]) {
        let on_green = self.ids(true).await;
        let missing: Vec<_> = acked.iter().filter(|id| on_green.binary_search(id).is_err()).collect();
        assert!(missing.is_empty(), "{}: acknowledged writes missing on green: {missing:?}\n{}", self.name, self.t.log_text());
    }

    /// A write through the proxy lands on blue, which takes it (the fence is gone).
    async fn assert_blue_serves(&self) {
        match &self.servers {
            Servers::Pg { blue, bouncer, .. } => {
                let (c, conn) = tokio_postgres::connect(&bouncer.url(&self.db), tokio_postgres::NoTls).await.expect("connect through pgbouncer");
                tokio::spawn(conn);
                let m = c.simple_query("INSERT INTO t (note) VALUES ('after') RETURNING inet_server_port()").await;
                let port: i32 = common::first_value(&m.unwrap_or_else(|e| panic!("{}: blue refuses writes through pgbouncer: {e}", self.name))).expect("port");
                assert_eq!(port, i32::from(blue.port()), "{}: pgbouncer must still send writes to blue", self.name);
            }
            Servers::My { blue, proxy, .. } => {
                let url = format!("mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{}", proxy.port(), self.db);
                let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).expect("url")).await.expect("connect through haproxy");
                let port: Option<u16> = c.query_first("SELECT @@port").await.expect("port");
                assert_eq!(port, Some(blue.port()), "{}: haproxy must still send writes to blue", self.name);
                c.query_drop("INSERT INTO t (note) VALUES ('after')").await.unwrap_or_else(|e| panic!("{}: blue refuses writes: {e}", self.name));
            }
        }
    }

    /// The fence holds: a write through pgbouncer does not complete within a second.
    async fn assert_writes_held(&self) {
        let Servers::Pg { bouncer, .. } = &self.servers else { panic!("{}: a PostgreSQL pair", self.name) };
        let url = bouncer.url(&self.db);
        // A paused pgbouncer holds the login as well as the statement.
        let write = tokio::time::timeout(Duration::from_secs(1), async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            c.simple_query("INSERT INTO t (note) VALUES ('held')").await
        })
        .await;
        assert!(write.is_err(), "{}: a write went through while the pair held: {write:?}", self.name);
    }

    /// Lifts the pgbouncer fence behind turnout's back, as a pgbouncer restart would.
    async fn resume_pgbouncer(&self) {
        let Servers::Pg { bouncer, .. } = &self.servers else { panic!("{}: a PostgreSQL pair", self.name) };
        let (c, conn) = tokio_postgres::connect(&bouncer.admin_url(), tokio_postgres::NoTls).await.expect("pgbouncer's console");
        tokio::spawn(conn);
        c.simple_query(&format!("RESUME {}", self.db)).await.expect("RESUME");
    }

    /// Holds a lock on `block` on green and commits a row on blue that green therefore cannot
    /// apply: this pair's proof cannot complete while the returned session holds it.
    async fn block_green(&self) -> Blocker {
        match &self.servers {
            Servers::Pg { blue, green_url, .. } => {
                let (c, conn) = tokio_postgres::connect(green_url, tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(conn);
                // SHARE blocks the apply's INSERT, not the catalog reads of the checks.
                c.batch_execute("BEGIN; LOCK TABLE block IN SHARE MODE").await.expect("lock");
                blue.execute(&self.db, "INSERT INTO block VALUES (1)").await.expect("insert");
                Blocker::Pg(c)
            }
            Servers::My { blue, green, .. } => {
                let mut g = mysql_async::Conn::new(mysql_async::Opts::from_url(&green.url(&self.db)).expect("url")).await.expect("connect");
                g.query_drop("LOCK TABLES block WRITE").await.expect("lock");
                blue.execute(Some(&self.db), "INSERT INTO block VALUES (1)").expect("insert");
                Blocker::My(g)
            }
        }
    }

    /// The sidecar's cutover progress.
    fn progress(&self) -> serde_json::Value {
        self.t.get("/cutover").and_then(|b| serde_json::from_str(&b).ok()).unwrap_or_default()
    }

    fn outcome(&self) -> String {
        self.progress()["outcome"].as_str().unwrap_or_default().to_owned()
    }
}

/// A session on green holding the lock that keeps a pair from its proof.
#[allow(dead_code)]
enum Blocker {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

/// The fleet file of `pairs`, kept by `etcd`.
fn fleet_file(dir: &Path, name: &str, etcd: &EtcdCluster, pairs: &[Pair]) -> PathBuf {
    let endpoints: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
    let mut text = format!("name = \"{name}\"\n[etcd]\nendpoints = [{}]\n", endpoints.join(", "));
    for p in pairs {
        text.push_str(&p.fleet_entry());
    }
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).expect("fleet.toml");
    path
}

/// `turnout fleet --fleet FILE <args>` started in the background, its output into `out`.
fn fleet_command(file: &Path, args: &[&str], out: &Path) -> Child {
    let log = std::fs::File::create(out).expect("output");
    Command::new(env!("CARGO_BIN_EXE_turnout"))
        .arg("fleet")
        .arg("--fleet")
        .arg(file)
        .args(args)
        .stdout(Stdio::from(log.try_clone().expect("output")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("turnout fleet")
}

/// Waits for `child` to exit; its code and output.
async fn finished(mut child: Child, out: &Path) -> (i32, String) {
    let deadline = Instant::now() + WAIT * 2;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code().unwrap_or(-1), std::fs::read_to_string(out).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "turnout fleet did not finish\n{}", std::fs::read_to_string(out).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fleet's keys in etcd, read by the test itself: (key suffix, value) under the fleet's prefix.
/// With a member down, the client's first request may go to it: tried again for a few seconds.
async fn etcd_keys(etcd: &EtcdCluster, fleet: &str) -> Vec<(String, String)> {
    let prefix = format!("/turnout/fleet/{fleet}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = async {
            let mut c = etcd_client::Client::connect(etcd.endpoints(), None).await.ok()?;
            c.get(prefix.clone(), Some(etcd_client::GetOptions::new().with_prefix())).await.ok()
        };
        if let Some(got) = read.await {
            return got
                .kvs()
                .iter()
                .map(|kv| (kv.key_str().unwrap_or_default().trim_start_matches(&prefix).to_owned(), String::from_utf8_lossy(kv.value()).into_owned()))
                .collect();
        }
        if Instant::now() >= deadline {
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the fleet's keys satisfy `check`.
async fn until_keys(etcd: &EtcdCluster, fleet: &str, what: &str, check: impl Fn(&[(String, String)]) -> bool) -> Vec<(String, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let keys = etcd_keys(etcd, fleet).await;
        if check(&keys) {
            return keys;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {keys:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn decision(keys: &[(String, String)]) -> Option<String> {
    keys.iter().find(|(k, _)| k.ends_with("/decision")).map(|(_, v)| v.clone())
}

fn votes(keys: &[(String, String)]) -> usize {
    keys.iter().filter(|(k, v)| k.contains("/vote/") && v == "prepared").count()
}

/// Waits until every pair's sidecar ended its cutover; their outcomes.
async fn outcomes(pairs: &[Pair]) -> Vec<String> {
    ended(pairs, Pair::outcome).await
}

/// Waits until `outcome` reads an ended outcome for every pair; those outcomes.
async fn ended(pairs: &[Pair], outcome: fn(&Pair) -> String) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now: Vec<String> = pairs.iter().map(outcome).collect();
        if now.iter().all(|o| !o.is_empty() && o != "running") {
            return now;
        }
        assert!(Instant::now() < deadline, "not every pair ended: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// PostgreSQL 15 → 17, MariaDB 10.11 → 11.8 and MySQL 9.7 → 9.7, each with an application writing
/// through its proxy, cut over as one decision with one etcd member down: every pair switches,
/// every acknowledged write is on its green; the fleet's pause and each application's gap are
/// reported; the certificate names the decision and every pair's certificate.
#[tokio::test]
async fn three_families_cut_over_as_one_decision_with_an_etcd_member_down() {
    let mut etcd = EtcdCluster::start(3).expect("etcd");
    let mut pairs = vec![
        Pair::pg("orders", 15, 17, &etcd).await,
        Pair::my("billing", Flavor::MariaDb10_11, Flavor::MariaDb11_8, &etcd).await,
        Pair::my("users", Flavor::MySql9_7, Flavor::MySql9_7, &etcd).await,
    ];
    let dir = tempfile::tempdir().expect("tmp");
    let file = fleet_file(dir.path(), "shop", &etcd, &pairs);
    // A minority of the cluster down changes nothing.
    etcd.kill(0);
    for p in &mut pairs {
        p.start_writer();
        p.writer.as_ref().expect("writer").wait_for(50).await;
    }
    let out = dir.path().join("out");
    let report = dir.path().join("fleet.json");
    let child =
        fleet_command(&file, &["cutover", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s", "--report", report.to_str().expect("path")], &out);
    let (code, text) = finished(child, &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fleet decision: commit") && text.contains("every pair is on green"), "{text}");
    let mut gaps = Vec::new();
    for p in &mut pairs {
        let (acked, gap) = p.stop_writer_timed().await;
        assert!(acked.len() > 40, "{}: the application barely wrote ({})", p.name, acked.len());
        p.assert_all_on_green(&acked).await;
        assert_eq!(p.outcome(), "done", "{}", p.name);
        gaps.push(format!("{} {} ms", p.name, gap.as_millis()));
    }
    let certificate: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(certificate["decision"], "commit", "{certificate}");
    assert!(certificate["decision_revision"].as_i64().is_some_and(|r| r > 0), "{certificate}");
    let rows = certificate["pairs"].as_array().expect("pairs");
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row["vote"], "prepared", "{row}");
        assert_eq!(row["did"]["did"], "switched", "{row}");
        assert!(row["certificate_digest"].as_str().is_some_and(|d| d.len() == 64), "{row}");
    }
    let fleet_pause = certificate["fleet_pause_ms"].as_i64().expect("fleet pause");
    eprintln!("fleet pause (first fence to last switch): {fleet_pause} ms; each application's largest gap: {}\n{text}", gaps.join(", "));
    // `turnout fleet status` shows the decision, read from etcd with a member still down.
    let status_out = dir.path().join("status");
    let (code, status) = finished(fleet_command(&file, &["status", "--json"], &status_out), &status_out).await;
    assert_eq!(code, 0, "{status}");
    let status: serde_json::Value = serde_json::from_str(status.trim()).expect("status json");
    assert_eq!(status["last"]["decision"], "commit", "{status}");
    assert_eq!(status["pairs"].as_array().map(Vec::len), Some(3), "{status}");
}

/// Starts the fleet's cutover (`--max-pause max_pause`) with pair c's green held by a lock, so c
/// proves slowly, and returns once pair a has voted: a and b hold until the lock is dropped.
async fn a_votes_while_c_proves(
    etcd: &EtcdCluster,
    pairs: &[Pair],
    dir: &tempfile::TempDir,
    file: &Path,
    fleet: &str,
    max_pause: &str,
) -> (Blocker, Child, PathBuf) {
    let lock = pairs[2].block_green().await;
    let out = dir.path().join("out");
    let child = fleet_command(file, &["cutover", "--when-lag", BLOCKED_LAG, "--timeout", "30s", "--max-pause", max_pause], &out);
    until_keys(etcd, fleet, "a's vote", |k| k.iter().any(|(k, v)| k.ends_with("/vote/a") && v == "prepared")).await;
    (lock, child, out)
}

/// Three PostgreSQL pairs; `blocked` of them made unable to prove (green held by a lock).
/// A 3-member etcd cluster and three PostgreSQL 15 → 17 pairs (`a`, `b`, `c`) in fleet `name`, each
/// application writing when `writing`; the fleet file in `dir`.
struct PgFleet {
    etcd: EtcdCluster,
    pairs: Vec<Pair>,
    dir: tempfile::TempDir,
    file: PathBuf,
}

async fn pg_fleet(name: &str, writing: bool) -> PgFleet {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let (a, b, c) = tokio::join!(Pair::pg("a", 15, 17, &etcd), Pair::pg("b", 15, 17, &etcd), Pair::pg("c", 15, 17, &etcd));
    let mut pairs = vec![a, b, c];
    let dir = tempfile::tempdir().expect("tmp");
    let file = fleet_file(dir.path(), name, &etcd, &pairs);
    if writing {
        for p in &mut pairs {
            p.start_writer();
        }
    }
    PgFleet { etcd, pairs, dir, file }
}

/// One pair that cannot prove (green held by a lock) aborts the fleet: every pair undoes its fence,
/// nothing switches, every blue takes writes through its proxy again.
#[tokio::test]
async fn a_pair_that_cannot_prove_aborts_the_fleet_and_every_blue_takes_writes() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("abort", true).await;
    let _lock = pairs[2].block_green().await;
    let out = dir.path().join("out");
    let (code, text) = finished(fleet_command(&file, &["cutover", "--when-lag", BLOCKED_LAG, "--timeout", "30s", "--max-pause", "2s"], &out), &out).await;
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("fleet decision: abort") && text.contains("traffic stays on blue"), "{text}");
    assert_eq!(outcomes(&pairs).await, ["failed", "failed", "failed"]);
    for p in &mut pairs {
        p.stop_writer().await;
        p.assert_blue_serves().await;
    }
    let keys = etcd_keys(&etcd, "abort").await;
    assert_eq!(decision(&keys).as_deref(), Some("abort"), "{keys:?}");
    assert!(!keys.iter().any(|(k, v)| k.contains("/outcome/") && v.contains("switched")), "{keys:?}");
}

/// The coordinator killed -9 before deciding (one pair still proving): the pairs that voted hold
/// until their hold runs out, abort the fleet themselves and undo; every blue takes writes.
#[tokio::test]
async fn the_coordinator_killed_before_deciding_every_pair_undoes_within_its_hold() {
    let PgFleet { etcd, pairs, dir, file } = pg_fleet("orphan", false).await;
    let lock = pairs[2].block_green().await;
    let out = dir.path().join("out");
    let mut child = fleet_command(&file, &["cutover", "--when-lag", BLOCKED_LAG, "--timeout", "30s", "--max-pause", "3s"], &out);
    until_keys(&etcd, "orphan", "two votes", |k| votes(k) == 2).await;
    child.kill().expect("kill -9 the coordinator");
    let _ = child.wait();
    // c stays unable to prove: the fleet can only end by a pair's own abort (c's when its proof
    // runs out, or a holding pair's when its hold does).
    assert_eq!(outcomes(&pairs).await, ["failed", "failed", "failed"]);
    drop(lock);
    let keys = etcd_keys(&etcd, "orphan").await;
    assert_eq!(decision(&keys).as_deref(), Some("abort"), "{keys:?}");
    let lines: Vec<String> = pairs.iter().map(|p| p.progress()["lines"].to_string()).collect();
    let aborted_by_a_pair = lines.iter().any(|l| l.contains("this pair aborted the fleet") || l.contains("this pair will not vote"));
    assert!(aborted_by_a_pair, "a pair must have aborted the fleet itself: {lines:?}");
    for p in &pairs {
        p.assert_blue_serves().await;
    }
}

/// The coordinator killed -9 the moment the decision reads `commit`: every pair still switches,
/// watching the decision itself.
#[tokio::test]
async fn the_coordinator_killed_after_commit_every_pair_still_switches() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("committed", true).await;
    let out = dir.path().join("out");
    let mut child = fleet_command(&file, &["cutover", "--when-lag", "<5s", "--timeout", "30s", "--max-pause", "10s"], &out);
    until_keys(&etcd, "committed", "the commit", |k| decision(k).as_deref() == Some("commit")).await;
    child.kill().expect("kill -9 the coordinator");
    let _ = child.wait();
    assert_eq!(outcomes(&pairs).await, ["done", "done", "done"]);
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        p.assert_all_on_green(&acked).await;
    }
}

/// A sidecar killed -9 while it holds (its vote cast): the fleet decides without it, and the
/// restarted sidecar settles its part from its journal and the decision — it switches, and every
/// write its application had acknowledged is on its green.
#[tokio::test]
async fn a_sidecar_killed_while_holding_resumes_to_the_recorded_outcome() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("restart", true).await;
    // Pair c proves slowly (green held by a lock for a moment): a and b hold meanwhile.
    let (lock, child, out) = a_votes_while_c_proves(&etcd, &pairs, &dir, &file, "restart", "15s").await;
    pairs[0].t.kill9();
    drop(lock);
    let keys = until_keys(&etcd, "restart", "the decision", |k| matches!(decision(k).as_deref(), Some("commit" | "abort"))).await;
    let decided = decision(&keys).expect("decision");
    eprintln!("the fleet decided {decided} while pair a was down");
    pairs[0].t.start();
    common::wait_for(&mut pairs[0].t, "the restarted sidecar settled", |t| t.status().filter(|s| s["settling"] == false)).await;
    let (_, text) = finished(child, &out).await;
    assert!(pairs[0].t.log_text().contains("interrupted while holding for fleet"), "{}", pairs[0].t.log_text());
    every_pair_followed(&mut pairs, &decided, &text).await;
}

/// Every pair's cutover ended as the fleet `decided`: on a commit every acknowledged write is on its
/// green, on an abort every blue takes writes.
async fn every_pair_followed(pairs: &mut [Pair], decided: &str, text: &str) {
    let want = if decided == "commit" { "done" } else { "failed" };
    let got = outcomes(pairs).await;
    assert!(got.iter().all(|o| o == want), "decision {decided}: every pair must follow it, got {got:?}\n{text}\n{}", pairs[0].t.log_text());
    for p in pairs {
        let acked = p.stop_writer().await;
        if decided == "commit" {
            p.assert_all_on_green(&acked).await;
        } else {
            p.assert_blue_serves().await;
        }
    }
}

/// A sidecar killed -9 while it holds and started again before the fleet has decided: it settles by
/// waiting for the decision, and its API answers all the while — `/status` says `settling`, the
/// endpoints that act answer 503 naming why — then it follows the decision like the others.
#[tokio::test]
async fn a_sidecar_restarted_before_the_decision_answers_while_it_settles() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("settling", true).await;
    let (lock, child, out) = a_votes_while_c_proves(&etcd, &pairs, &dir, &file, "settling", "15s").await;
    pairs[0].t.kill9();
    pairs[0].t.start();
    let status = common::wait_for(&mut pairs[0].t, "the restarted sidecar's API", |t| t.status()).await;
    assert_eq!((status["settling"].as_bool(), status["traffic"].as_str()), (Some(true), Some("unknown")), "{status}");
    let refused = pairs[0].t.get("/cutover").unwrap_or_default();
    assert!(refused.contains("settling what its journal left"), "{refused}");
    let keys = etcd_keys(&etcd, "settling").await;
    assert!(!matches!(decision(&keys).as_deref(), Some("commit" | "abort")), "the fleet decided before the restarted sidecar was asked: {keys:?}");
    drop(lock);
    common::wait_for(&mut pairs[0].t, "the restarted sidecar settled", |t| t.status().filter(|s| s["settling"] == false)).await;
    let (_, text) = finished(child, &out).await;
    let decided = decision(&etcd_keys(&etcd, "settling").await).expect("decision");
    every_pair_followed(&mut pairs, &decided, &text).await;
}

/// A pair's fence lifted behind turnout's back while it holds (its pgbouncer resumed), then the
/// fleet commits: the pair fences and proves again before it switches, so every write its
/// application made through the lifted fence is on green too.
#[tokio::test]
async fn a_fence_lost_while_holding_is_raised_and_proven_again_before_the_switch() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("refence", true).await;
    let (lock, child, out) = a_votes_while_c_proves(&etcd, &pairs, &dir, &file, "refence", "20s").await;
    pairs[0].resume_pgbouncer().await;
    // The application writes on blue through the lifted fence while the fleet has not decided.
    let writer = pairs[0].writer.as_ref().expect("writer");
    writer.wait_for(writer.count() + 20).await;
    drop(lock);
    let (code, text) = finished(child, &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("[a] the fence on blue was lost while holding: fencing and proving again"), "{text}");
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        p.assert_all_on_green(&acked).await;
    }
}

/// A sidecar killed while it holds, its fence lifted while it is down, and the fleet commits: the
/// restarted sidecar refuses to switch without a proof, naming why; the other pairs switch.
#[tokio::test]
async fn a_restart_after_commit_with_the_fence_gone_refuses_to_switch() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("lost", false).await;
    let (lock, child, out) = a_votes_while_c_proves(&etcd, &pairs, &dir, &file, "lost", "20s").await;
    pairs[0].t.kill9();
    pairs[0].resume_pgbouncer().await;
    drop(lock);
    until_keys(&etcd, "lost", "the commit", |k| decision(k).as_deref() == Some("commit")).await;
    pairs[0].t.start();
    let code = common::wait_exit(&mut pairs[0].t).await;
    assert_ne!(code, 0);
    let log = pairs[0].t.log_text();
    assert!(log.contains("committed while this sidecar was down, and the fence on blue is gone"), "{log}");
    pairs[0].assert_blue_serves().await;
    let (_, text) = finished(child, &out).await;
    assert_eq!([pairs[1].outcome(), pairs[2].outcome()], ["done", "done"], "{text}");
}

/// etcd's quorum lost before the decision: a holding pair cannot read the decision and does not
/// guess — its blue stays fenced past its hold, nothing switches; once a quorum is back it aborts
/// the fleet and every blue takes writes.
#[tokio::test]
async fn quorum_lost_before_the_decision_holds_then_aborts_and_every_blue_takes_writes() {
    let PgFleet { mut etcd, pairs, dir, file } = pg_fleet("quorum", false).await;
    let lock = pairs[2].block_green().await;
    let out = dir.path().join("out");
    let child = fleet_command(&file, &["cutover", "--when-lag", BLOCKED_LAG, "--timeout", "30s", "--max-pause", "2s"], &out);
    until_keys(&etcd, "quorum", "two votes", |k| votes(k) == 2).await;
    let voted_at = Instant::now();
    etcd.kill(1);
    etcd.kill(2);
    // Past every hold (2 s from each fence, before the votes): the pairs that voted still hold,
    // fenced; nothing switched.
    let holding = |p: &Pair| p.progress()["lines"].to_string().contains("cannot be read");
    let deadline = Instant::now() + WAIT;
    while !(holding(&pairs[0]) && holding(&pairs[1]) && voted_at.elapsed() > Duration::from_secs(3)) {
        assert!(Instant::now() < deadline, "the holding pairs never said they cannot read the decision");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pairs[0].outcome(), "running");
    assert_eq!(pairs[1].outcome(), "running");
    // Still fenced: a write through the proxy is held, not taken.
    for p in &pairs[..2] {
        p.assert_writes_held().await;
    }
    etcd.restart(1).expect("member back");
    assert_eq!(outcomes(&pairs).await, ["failed", "failed", "failed"]);
    drop(lock);
    let (code, text) = finished(child, &out).await;
    assert_ne!(code, 0, "{text}");
    assert_eq!(decision(&etcd_keys(&etcd, "quorum").await).as_deref(), Some("abort"));
    for p in &pairs {
        p.assert_blue_serves().await;
    }
}

/// `--rehearse`: every pair fences together, proves and lifts its fence; nothing switches, every
/// application goes on writing on blue, and the record is closed as `abort`.
#[tokio::test]
async fn a_rehearsal_fences_every_pair_together_and_switches_none() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let (a, b) = tokio::join!(Pair::pg("a", 15, 17, &etcd), Pair::pg("b", 15, 17, &etcd));
    let mut pairs = vec![a, b];
    let dir = tempfile::tempdir().expect("tmp");
    let file = fleet_file(dir.path(), "drill", &etcd, &pairs);
    for p in &mut pairs {
        p.start_writer();
    }
    let out = dir.path().join("out");
    let (code, text) =
        finished(fleet_command(&file, &["cutover", "--when-lag", "<5s", "--timeout", "30s", "--max-pause", "5s", "--rehearse"], &out), &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("every pair lifted its fence"), "{text}");
    assert_eq!(outcomes(&pairs).await, ["rehearsed", "rehearsed"]);
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        let on_blue = p.ids(false).await;
        assert!(acked.iter().all(|id| on_blue.binary_search(id).is_ok()), "{}: every write went to blue", p.name);
        p.assert_blue_serves().await;
    }
    assert_eq!(decision(&etcd_keys(&etcd, "drill").await).as_deref(), Some("abort"));
}

/// The gate refuses before anything changes: a pair whose sidecar has no `[fleet.etcd]` is named
/// with the fix and no decision is opened; a fleet file naming a pair twice exits 2 naming the field.
#[tokio::test]
async fn the_gate_refuses_a_pair_without_etcd_and_a_bad_fleet_file_names_the_field() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let (a, b) = tokio::join!(Pair::pg("a", 15, 17, &etcd), Pair::pg_with("b", 15, 17, ""));
    let pairs = vec![a, b];
    let dir = tempfile::tempdir().expect("tmp");
    let file = fleet_file(dir.path(), "gate", &etcd, &pairs);
    let out = dir.path().join("out");
    let (code, text) = finished(fleet_command(&file, &["cutover", "--when-lag", "<5s", "--max-pause", "5s"], &out), &out).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("the fleet's gate refused; nothing was changed") && text.contains("b: ") && text.contains("[fleet.etcd]"), "{text}");
    assert!(etcd_keys(&etcd, "gate").await.is_empty(), "no decision may be opened");
    for p in &pairs {
        p.assert_blue_serves().await;
    }
    let twice = format!("{}\n{}", std::fs::read_to_string(&file).expect("file"), pairs[0].fleet_entry());
    std::fs::write(&file, twice).expect("write");
    let (code, text) = finished(fleet_command(&file, &["status"], &out), &out).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("pair[2].name") && text.contains("names two pairs"), "{text}");
}

/// The benchmark: `TURNOUT_FLEET_PAIRS` PostgreSQL 15 → 17 pairs (default 3), each with an application
/// writing through pgbouncer. First one more pair cut over alone with `turnout cutover` (the baseline,
/// in the same run), then the fleet with `turnout fleet cutover`: prints the single pair's pause, the
/// fleet's pause (first fence to last switch), their ratio and the applications' largest gap.
/// `cargo nextest run -p turnout --features turnout/demo --run-ignored only -E 'test(fleet_pause)'`.
#[tokio::test]
#[ignore = "a benchmark: run on purpose"]
async fn fleet_pause_against_a_single_pair() {
    let n: usize = std::env::var("TURNOUT_FLEET_PAIRS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let etcd = EtcdCluster::start(3).expect("etcd");
    let mut single = Pair::pg("single", 15, 17, &etcd).await;
    single.start_writer();
    single.writer.as_ref().expect("writer").wait_for(50).await;
    let (code, out) = common::turnout_command(&single.t, "cutover", &["--when-lag", "<1s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}");
    let single_pause = common::millis_after(&out, "writes were paused for ");
    let (_, single_gap) = single.stop_writer_timed().await;
    drop(single);
    let mut pairs = Vec::new();
    for i in 0..n {
        pairs.push(Pair::pg(&format!("p{i}"), 15, 17, &etcd).await);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let file = fleet_file(dir.path(), "bench", &etcd, &pairs);
    for p in &mut pairs {
        p.start_writer();
        p.writer.as_ref().expect("writer").wait_for(50).await;
    }
    let out = dir.path().join("out");
    let report = dir.path().join("fleet.json");
    let child =
        fleet_command(&file, &["cutover", "--when-lag", "<1s", "--timeout", "120s", "--max-pause", "10s", "--report", report.to_str().expect("path")], &out);
    let (code, text) = finished(child, &out).await;
    assert_eq!(code, 0, "{text}");
    eprintln!("{text}");
    let mut gap = Duration::ZERO;
    for p in &mut pairs {
        let (acked, g) = p.stop_writer_timed().await;
        p.assert_all_on_green(&acked).await;
        gap = gap.max(g);
    }
    let certificate: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let fleet_pause = certificate["fleet_pause_ms"].as_u64().expect("fleet pause");
    let pauses: Vec<u64> = certificate["pairs"].as_array().expect("pairs").iter().filter_map(|p| p["write_pause_ms"].as_u64()).collect();
    println!(
        "pairs {n}: single pair pause {single_pause} ms (application gap {} ms); fleet pause {fleet_pause} ms (each pair {pauses:?} ms; largest application gap {} ms); ratio {:.1}",
        single_gap.as_millis(),
        gap.as_millis(),
        fleet_pause as f64 / single_pause.max(1) as f64
    );
}

mod auth;
mod rollback;
mod waves;

/// Pair a's sidecar stopped (SIGSTOP) while it holds, longer than its vote's lease lives: its vote
/// vanishes from etcd. Let go, it votes again within its hold, and when pair c's proof completes the
/// fleet commits — a stall is not an abort.
#[tokio::test]
async fn a_pair_whose_vote_expired_in_a_stall_votes_again_and_the_fleet_commits() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("stall", true).await;
    let (lock, child, out) = a_votes_while_c_proves(&etcd, &pairs, &dir, &file, "stall", "30s").await;
    let pid = pairs[0].t.pid().expect("a's sidecar").to_string();
    let signal = |s: &str| assert!(Command::new("kill").args([s, &pid]).status().expect("kill").success());
    signal("-STOP");
    until_keys(&etcd, "stall", "a's vote expired", |k| !k.iter().any(|(k, _)| k.ends_with("/vote/a"))).await;
    signal("-CONT");
    until_keys(&etcd, "stall", "a's vote cast again", |k| k.iter().any(|(k, v)| k.ends_with("/vote/a") && v == "prepared")).await;
    drop(lock);
    let (code, text) = finished(child, &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fleet decision: commit"), "{text}");
    assert!(pairs[0].t.log_text().contains("this pair's vote expired with its lease"), "{}", pairs[0].t.log_text());
    assert_eq!(outcomes(&pairs).await, ["done", "done", "done"]);
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        p.assert_all_on_green(&acked).await;
    }
}
