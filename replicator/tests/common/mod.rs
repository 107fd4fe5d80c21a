//! Helpers shared by the end-to-end tests: the real `turnout` binary against real servers.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use turnout_testbed::{free_port, PgOptions, PgServer};

pub const WAIT: Duration = Duration::from_secs(90);

pub struct Turnout {
    child: Option<Child>,
    config: std::path::PathBuf,
    port: u16,
    log: std::path::PathBuf,
}

impl Turnout {
    pub fn new(dir: &Path, source: &str, target: &str) -> Turnout {
        Self::with_config(dir, source, target, "")
    }

    /// With extra TOML appended to the configuration.
    pub fn with_config(dir: &Path, source: &str, target: &str, extra: &str) -> Turnout {
        let port = free_port();
        let config = dir.join("turnout.toml");
        std::fs::write(
            &config,
            format!(
                "[source]\nurl = \"{source}\"\n[target]\nurl = \"{target}\"\n[state]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n",
                dir.join("state").display()
            ),
        )
        .expect("config");
        Turnout { child: None, config, port, log: dir.join("turnout.log") }
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_turnout"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info,turnout=debug,turnout_sinks=debug")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn turnout");
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn sigterm(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "turnout did not stop after SIGTERM\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The configuration file this process runs with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The HTTP port turnout listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn exited(&mut self) -> Option<i32> {
        let c = self.child.as_mut()?;
        c.try_wait().ok().flatten().map(|s| s.code().unwrap_or(-1))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn status(&self) -> Option<serde_json::Value> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        write!(s, "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        serde_json::from_str(r.split_once("\r\n\r\n")?.1).ok()
    }

    /// The body of `/metrics`; empty when turnout does not answer.
    pub fn metrics(&self) -> String {
        self.get("/metrics").unwrap_or_default()
    }

    /// The body of `GET path`; none when turnout does not answer.
    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        r.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
    }
}

/// Polls `check` every 50 ms until it yields a value; fails with `what` (and turnout's log) after
/// [`WAIT`] or when turnout exits.
pub async fn wait_for<T>(t: &mut Turnout, what: &str, mut check: impl FnMut(&Turnout) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check(t) {
            return v;
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code} while waiting for: {what}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Turnout {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- turnout log ---\n{}", self.log_text());
        }
    }
}

/// Every row of every user table, as sorted text, on one server.
pub async fn contents(server: &PgServer, db: &str, tables: &[&str]) -> Vec<(String, Vec<String>)> {
    let c = server.connect(db).await.expect("connect");
    c.batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET DateStyle = 'ISO'").await.expect("settings");
    let mut out = Vec::new();
    for t in tables {
        let rows = c.query(&format!("SELECT ROW(r.*)::text FROM {t} r"), &[]).await.unwrap_or_else(|e| panic!("{t}: {e}"));
        let mut v: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        v.sort();
        out.push((t.to_string(), v));
    }
    out
}

/// Each table's row count and the sum of a hash of each row's text, computed by the server: equal on
/// both sides is only the sign that fetching every row's text ([`contents`]) is worth it, never the
/// proof.
async fn digests(server: &PgServer, db: &str, tables: &[&str]) -> Vec<String> {
    let c = server.connect(db).await.expect("connect");
    c.batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET DateStyle = 'ISO'").await.expect("settings");
    let mut out = Vec::new();
    for t in tables {
        let sql = format!("SELECT (count(*), sum(hashtextextended(ROW(r.*)::text, 0)))::text FROM {t} r");
        out.push(c.query_one(&sql, &[]).await.unwrap_or_else(|e| panic!("{t}: {e}")).get(0));
    }
    out
}

/// Waits until green's tables equal blue's by the text of every row, then returns (showing the
/// difference on failure). Rows are fetched and compared once the servers' digests agree, and at the
/// deadline.
pub async fn assert_converges(blue: &PgServer, green: &PgServer, db: &str, tables: &[&str], t: &mut Turnout) {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = Instant::now() > deadline;
        let polled = Instant::now();
        if last || digests(blue, db, tables).await == digests(green, db, tables).await {
            let b = contents(blue, db, tables).await;
            let g = contents(green, db, tables).await;
            if b == g {
                return;
            }
            if last {
                report_difference(blue, green, db, &b, &g).await;
            }
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code} before green caught up\n{}", t.log_text());
        }
        // Hashing many tables on both servers takes CPU that turnout needs to catch up: at most
        // half of the time goes to polling.
        tokio::time::sleep(polled.elapsed().max(Duration::from_millis(100))).await;
    }
}

/// Prints how green's rows differ from blue's and what green's origins and blue's slots say, then fails.
async fn report_difference(blue: &PgServer, green: &PgServer, db: &str, b: &[(String, Vec<String>)], g: &[(String, Vec<String>)]) -> ! {
    for ((name, bv), (_, gv)) in b.iter().zip(g) {
        if bv != gv {
            eprintln!("{name}: blue {} rows, green {} rows", bv.len(), gv.len());
            eprintln!("  only on blue: {:?}", bv.iter().filter(|r| !gv.contains(r)).take(5).collect::<Vec<_>>());
            eprintln!("  only on green: {:?}", gv.iter().filter(|r| !bv.contains(r)).take(5).collect::<Vec<_>>());
        }
    }
    let gc = green.connect(db).await.expect("green");
    for r in gc.query("SELECT roname::text, pg_replication_origin_progress(roname, true)::text FROM pg_replication_origin", &[]).await.expect("origins") {
        eprintln!("green origin {}: {}", r.get::<_, String>(0), r.get::<_, String>(1));
    }
    let bc = blue.connect(db).await.expect("blue");
    for r in bc.query("SELECT slot_name::text, confirmed_flush_lsn::text FROM pg_replication_slots", &[]).await.expect("slots") {
        eprintln!("blue slot {}: {}", r.get::<_, String>(0), r.get::<_, String>(1));
    }
    panic!("green did not converge to blue");
}

/// `turnout run` from blue to green (superuser URLs), once it streams. Keep the directory alive as
/// long as the process.
pub async fn running(blue: &PgServer, green: &PgServer, db: &str) -> (tempfile::TempDir, Turnout) {
    running_with(blue, green, db, "").await
}

/// As [`running`], with extra TOML appended to the configuration.
pub async fn running_with(blue: &PgServer, green: &PgServer, db: &str, extra: &str) -> (tempfile::TempDir, Turnout) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(db), &green.url(db), extra);
    t.start();
    wait_streaming(&mut t).await;
    (dir, t)
}

pub async fn wait_streaming(t: &mut Turnout) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = t.status() {
            if s["phase"] == "streaming" {
                return;
            }
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "turnout never reached streaming\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn pair(schema: &str) -> (PgServer, PgServer, String) {
    pair_with(PgOptions::new(15), schema).await
}

/// A blue of PostgreSQL `blue` and a green of PostgreSQL `green`, each with the same new database;
/// `schema` runs on blue.
pub async fn pair_versions(blue: u32, green: u32, schema: &str) -> (PgServer, PgServer, String) {
    pair_between(PgOptions::new(blue), PgOptions::new(green), schema).await
}

/// Servers as `blue` and `green` say, each with the same new database; `schema` runs on blue.
pub async fn pair_between(blue: PgOptions, green: PgOptions, schema: &str) -> (PgServer, PgServer, String) {
    let (blue, green) = std::thread::scope(|s| {
        let b = s.spawn(|| PgServer::start_with(blue).expect("blue"));
        let g = s.spawn(|| PgServer::start_with(green).expect("green"));
        (b.join().expect("blue thread"), g.join().expect("green thread"))
    });
    let db = blue.create_database("app").await.expect("db");
    green.execute("postgres", &format!("CREATE DATABASE \"{db}\"")).await.expect("green db");
    blue.execute(&db, schema).await.expect("schema");
    (blue, green, db)
}

/// A blue server as `blue` says and a PostgreSQL 17 green, each with the same new database; `schema`
/// runs on blue.
pub async fn pair_with(blue: PgOptions, schema: &str) -> (PgServer, PgServer, String) {
    pair_between(blue, PgOptions::new(17), schema).await
}

pub async fn wait_exit(t: &mut Turnout) -> i32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(code) = t.exited() {
            return code;
        }
        assert!(Instant::now() < deadline, "turnout kept running\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Blue (server_id 1) and green (server_id 2), each with the same new database.
pub fn maria_pair() -> (turnout_testbed::MySqlServer, turnout_testbed::MySqlServer, String) {
    maria_pair_of(turnout_testbed::Flavor::MariaDb10_11, turnout_testbed::Flavor::MariaDb10_11)
}

/// Blue of flavor `blue` (server_id 1) and green of flavor `green` (server_id 2), each with the
/// same new database.
pub fn maria_pair_of(blue: turnout_testbed::Flavor, green: turnout_testbed::Flavor) -> (turnout_testbed::MySqlServer, turnout_testbed::MySqlServer, String) {
    let (blue, green) = std::thread::scope(|s| {
        let b = s.spawn(|| turnout_testbed::MySqlServer::start_flavor(blue, 1).expect("blue"));
        let g = s.spawn(|| turnout_testbed::MySqlServer::start_flavor(green, 2).expect("green"));
        (b.join().expect("blue thread"), g.join().expect("green thread"))
    });
    let db = blue.create_database("app").expect("db");
    // Green's own statements must not enter its binlog with blue's GTIDs.
    green.execute(None, &format!("SET sql_log_bin = 0; CREATE DATABASE `{db}`")).expect("green db");
    (blue, green, db)
}

/// Waits until green holds exactly blue's rows in every table, then asserts it.
pub async fn maria_assert_same(blue: &turnout_testbed::MySqlServer, green: &turnout_testbed::MySqlServer, db: &str, tables: &[&str], t: &mut Turnout) {
    let deadline = Instant::now() + WAIT;
    loop {
        let b: Vec<Vec<String>> = tables.iter().map(|x| maria_rows(blue, db, x)).collect();
        let g: Vec<Vec<String>> = tables.iter().map(|x| maria_rows(green, db, x)).collect();
        if b == g {
            return;
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code} before green caught up\n{}", t.log_text());
        }
        if Instant::now() > deadline {
            for ((name, bv), gv) in tables.iter().zip(&b).zip(&g) {
                if bv != gv {
                    eprintln!("{name}: blue {} rows, green {} rows", bv.len(), gv.len());
                    eprintln!("  only on blue: {:?}", bv.iter().filter(|r| !gv.contains(r)).take(3).collect::<Vec<_>>());
                    eprintln!("  only on green: {:?}", gv.iter().filter(|r| !bv.contains(r)).take(3).collect::<Vec<_>>());
                }
            }
            panic!("green did not converge to blue\n{}", t.log_text());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every row of `table` as text: each column's bytes in hex (`N` for NULL), sorted.
pub fn maria_rows(server: &turnout_testbed::MySqlServer, db: &str, table: &str) -> Vec<String> {
    let cols = server
        .execute(
            Some(db),
            &format!("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"),
        )
        .unwrap_or_else(|e| panic!("{table}: {e}"));
    let exprs: Vec<String> = cols.lines().map(|c| format!("IFNULL(HEX(CAST(`{}` AS BINARY)), 'N')", c.replace('`', "``"))).collect();
    if exprs.is_empty() {
        return vec![format!("(no table {table})")];
    }
    let out = server.execute(Some(db), &format!("SELECT CONCAT_WS('|', {}) FROM `{table}`", exprs.join(", "))).unwrap_or_else(|e| panic!("{table}: {e}"));
    let mut v: Vec<String> = out.lines().map(str::to_owned).collect();
    v.sort();
    v
}

/// A read-only fence and a command switch running `body` (a shell script's lines), for cutovers that
/// move no traffic: the `[cutover]` TOML. The script is written into `dir`.
pub fn command_switch(dir: &Path, body: &str) -> String {
    let script = dir.join("switch.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    format!("[cutover]\nfence = \"read-only\"\nswitch = \"command\"\n[cutover.command]\nargv = [\"{}\"]\n", script.display())
}

/// A switch command for crash tests: its first run marks `started` and hangs (the test kills turnout
/// meanwhile); any later run writes `$TURNOUT_GREEN_URL` to `switched` and succeeds. Returns the
/// `[cutover.command]` TOML, `started` and `switched`.
pub fn hanging_switch(dir: &Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let started = dir.join("started");
    let switched = dir.join("switched-to");
    let script = dir.join("switch.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e '{s}' ]; then printf '%s' \"$TURNOUT_GREEN_URL\" > '{w}'; exit 0; fi\ntouch '{s}'\nexec sleep 20\n",
            s = started.display(),
            w = switched.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    (format!("[cutover.command]\nargv = [\"{}\"]\n", script.display()), started, switched)
}

/// Starts `turnout cutover --when-lag 1s` against `t` (not waited for) and waits until the hanging
/// switch marked `started`; returns the cutover process.
pub async fn cutover_until_switching(t: &Turnout, started: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["cutover", "--config"])
        .arg(t.config_path())
        .args(["--when-lag", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cutover");
    let deadline = Instant::now() + WAIT;
    while !started.exists() {
        assert!(Instant::now() < deadline, "the switch never started\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// Runs `turnout <command> --config <t's config> <args>` without blocking the test's other tasks (a
/// writer, the sidecar's own); returns the exit code and the output.
pub async fn turnout_command(t: &Turnout, command: &str, args: &[&str]) -> (i32, String) {
    let config = t.config_path().to_path_buf();
    let command = command.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_turnout")).arg(command).arg("--config").arg(config).args(args).output())
        .await
        .expect("join")
        .expect("turnout");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// An application writing until told to stop, recording every write it had acknowledged (`A`: the
/// id, when, through which server — the caller's choice) and every error. How it writes is the
/// caller's: [`Writer::start`] runs its loop.
pub struct Writer<A> {
    log: WriterLog<A>,
    task: tokio::task::JoinHandle<()>,
}

/// What a writer's loop reports into, and whether it should go on.
pub struct WriterLog<A> {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: std::sync::Arc<std::sync::Mutex<Vec<A>>>,
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl<A> Clone for WriterLog<A> {
    fn clone(&self) -> Self {
        WriterLog { stop: std::sync::Arc::clone(&self.stop), acked: std::sync::Arc::clone(&self.acked), errors: std::sync::Arc::clone(&self.errors) }
    }
}

impl<A> WriterLog<A> {
    /// False once the test asked the writer to stop.
    pub fn running(&self) -> bool {
        !self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A write the database acknowledged.
    pub fn acked(&self, write: A) {
        self.acked.lock().expect("acked").push(write);
    }

    /// A write or connection that failed.
    pub fn failed(&self, error: impl std::fmt::Display) {
        self.errors.lock().expect("errors").push(error.to_string());
    }
}

impl<A: Clone + Send + 'static> Writer<A> {
    /// Spawns `run`, the writing loop, which checks [`WriterLog::running`] and reports each write.
    pub fn start<F: std::future::Future<Output = ()> + Send + 'static>(run: impl FnOnce(WriterLog<A>) -> F) -> Writer<A> {
        let log = WriterLog { stop: Default::default(), acked: Default::default(), errors: Default::default() };
        let task = tokio::spawn(run(log.clone()));
        Writer { log, task }
    }

    /// Stops the writer; what it acknowledged, in order, and its errors.
    pub async fn finish(self) -> (Vec<A>, Vec<String>) {
        self.log.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("writer");
        let acked = self.log.acked.lock().expect("acked").clone();
        let errors = self.log.errors.lock().expect("errors").clone();
        (acked, errors)
    }

    /// What was acknowledged so far, in order.
    #[allow(dead_code)]
    pub fn snapshot(&self) -> Vec<A> {
        self.log.acked.lock().expect("acked").clone()
    }

    /// Writes acknowledged so far.
    pub fn count(&self) -> usize {
        self.log.acked.lock().expect("acked").len()
    }

    /// Waits until `n` writes were acknowledged.
    pub async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.count() < n {
            assert!(Instant::now() < deadline, "the writer stalled at {} writes; errors: {:?}", self.count(), self.log.errors.lock().expect("errors"));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits until the read canary on `/status` passes `check`; returns it.
pub async fn canary_until(t: &mut Turnout, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    wait_for(t, what, |t| t.status().map(|v| v["canary"].clone()).filter(|c| check(c))).await
}

/// Writes an Ed25519 private key (PKCS#8 PEM, RFC 8410's example) to `dir` for
/// `cutover.signing_key`; returns its path.
pub fn signing_key(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("signing.pem");
    std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n")
        .expect("key file");
    path
}

/// `turnout certificate FILE [--public-key KEY]`: exit code and output.
pub fn check_certificate(file: &Path, public_key: Option<&str>) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_turnout"));
    command.arg("certificate").arg(file);
    if let Some(key) = public_key {
        command.arg("--public-key").arg(key);
    }
    let out = command.output().expect("turnout certificate");
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A certificate `turnout cutover --report FILE` saved, checked intact by `turnout certificate`, as
/// JSON.
pub fn intact_certificate(file: &Path) -> serde_json::Value {
    let (code, out) = check_certificate(file, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
    serde_json::from_str(&std::fs::read_to_string(file).expect("certificate")).expect("certificate JSON")
}

/// The names of a certificate's pause steps, in order.
pub fn certificate_steps(certificate: &serde_json::Value) -> Vec<String> {
    certificate["steps"].as_array().into_iter().flatten().filter_map(|s| s["step"].as_str().map(str::to_owned)).collect()
}

/// The number of milliseconds after `prefix` in a command's output.
pub fn millis_after(out: &str, prefix: &str) -> u64 {
    let rest = &out[out.find(prefix).unwrap_or_else(|| panic!("no '{prefix}' in:\n{out}")) + prefix.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no number after '{prefix}'"))
}

/// The first column of the first row of a simple query's answer. Clients behind pgbouncer use simple
/// queries: it pools by transaction, and a statement prepared on one server connection does not exist
/// on the next.
#[allow(dead_code)]
pub fn first_value<T: std::str::FromStr>(messages: &[tokio_postgres::SimpleQueryMessage]) -> Option<T> {
    messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
        _ => None,
    })
}

/// Which server's port answers at `url` (through a proxy, the server behind it).
#[allow(dead_code)]
pub async fn port_behind(url: &str) -> i32 {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    first_value(&c.simple_query("SELECT inet_server_port()").await.expect("port")).expect("a port")
}

/// Blue behind a new pgbouncer and green given blue's password (pgbouncer's one set of credentials
/// then works on both): the pgbouncer, green's URL, and a configuration with `[cutover]` holding
/// `keys` and the pgbouncer's settings, followed by `extra`.
#[allow(dead_code)]
pub async fn behind_pgbouncer(blue: &PgServer, green: &PgServer, db: &str, keys: &str, extra: &str) -> (turnout_testbed::PgBouncer, String, String) {
    green.execute("postgres", &format!("ALTER USER postgres PASSWORD '{}'", blue.password())).await.expect("password");
    let bouncer = turnout_testbed::PgBouncer::start(blue, db).expect("pgbouncer");
    let toml = format!(
        "[cutover]\n{keys}[cutover.pgbouncer]\nadmin_url = \"{}\"\ndatabase = \"{db}\"\nconfig_file = \"{}\"\n{extra}",
        bouncer.admin_url(),
        bouncer.config_path().display()
    );
    let green_url = format!("{}?sslmode=disable", green.url_for("postgres", blue.password(), db));
    (bouncer, green_url, toml)
}
