// The MySQL-family cutover suite: `turnout cutover` and `turnout rollback` end to end — real blue and
// green, haproxy in front of them with an application writing through it as an ordinary DML account,
// the real `turnout run` sidecar and the real commands. Included by a test binary that defines `BLUE`
// and `GREEN` (flavors of one family, or one of each: Oracle MySQL and MariaDB) and `mod common;`.

use common::{maria_pair_of, maria_rows, wait_streaming, Turnout, Writer, WAIT};
use mysql_async::prelude::Queryable;
use std::process::Command;
use std::time::{Duration, Instant};
use turnout_testbed::{HaProxy, MySqlServer};

/// `t` takes the application's writes; `gap` has an AUTO_INCREMENT counter blue moves past its last
/// row (a rolled-back insert); `block` is what a test locks on green to hold the apply back. On
/// MariaDB on both sides also the sequence `s` ([`schema`]).
const SCHEMA: &str = "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20) NOT NULL) ENGINE=InnoDB;
CREATE TABLE gap (id INT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE block (id INT PRIMARY KEY) ENGINE=InnoDB;";

/// Whether both sides are MariaDB, with sequences (which have no Oracle MySQL equivalent).
fn sequences() -> bool {
    BLUE.is_mariadb() && GREEN.is_mariadb()
}

/// Whether the cutover arms the reverse stream before the fence: green is MariaDB, whose GTID
/// domains tell turnout's writes from the application's (on Oracle MySQL it is armed in the pause).
fn armed_before_fence() -> bool {
    GREEN.is_mariadb()
}

/// Whether `flavor` seals its fence with `super_read_only` (Oracle MySQL), which refuses `DROP
/// TRIGGER`: the triggers are copied in the pause and dropped later.
fn sealed(flavor: turnout_testbed::Flavor) -> bool {
    !flavor.is_mariadb()
}

/// The schema: [`SCHEMA`], and a sequence where both sides are MariaDB.
fn schema() -> String {
    if sequences() {
        format!("{SCHEMA}\nCREATE SEQUENCE s;")
    } else {
        SCHEMA.to_owned()
    }
}

/// Moves a side's counters beyond what its binlog shows: a rolled-back insert moves `gap`'s
/// AUTO_INCREMENT, and on MariaDB 40 values are taken from the sequence `s`.
fn run_counters_ahead(server: &MySqlServer, db: &str) {
    let mut sql = "INSERT INTO gap () VALUES (), (); BEGIN; INSERT INTO gap () VALUES (), (), (); ROLLBACK;".to_owned();
    if sequences() {
        sql.push_str(" SELECT NEXTVAL(s) FROM seq_1_to_40");
    }
    server.execute(Some(db), &sql).expect("counters");
}

/// Makes `server` refuse the application's writes as an operator would before a cutover (turnout's
/// account writes through `read_only`; `super_read_only` would stop its apply too).
fn make_read_only(server: &MySqlServer) {
    server.execute(None, "SET GLOBAL read_only = ON").expect("read-only");
}

/// `@@GLOBAL.super_read_only` on an Oracle MySQL `server`.
fn super_read_only(server: &MySqlServer) -> bool {
    server.execute(None, "SELECT @@GLOBAL.super_read_only").expect("super_read_only").trim() == "1"
}

/// The application's account: DML only, the same on blue and green (haproxy sends it to either).
const APP_USER: &str = "app";
const APP_PASSWORD: &str = "app-secret";

struct Setup {
    blue: MySqlServer,
    green: MySqlServer,
    db: String,
    proxy: HaProxy,
    t: Turnout,
    _dir: tempfile::TempDir,
}

async fn setup(fence: &str, switch: &str, extra: &str) -> Setup {
    setup_with(&schema(), fence, switch, extra).await
}

async fn setup_with(schema: &str, fence: &str, switch: &str, extra: &str) -> Setup {
    setup_full(schema, fence, switch, extra, false).await
}

/// As [`setup`], with `cutover.haproxy.frontend` set: new sessions wait in haproxy's queue through
/// the pause.
async fn setup_holding(extra: &str) -> Setup {
    setup_full(&schema(), "read-only", "haproxy", extra, true).await
}

async fn setup_full(schema: &str, fence: &str, switch: &str, extra: &str, hold: bool) -> Setup {
    let (blue, green, db) = maria_pair_of(BLUE, GREEN);
    let app = format!("CREATE USER {APP_USER}@'%' IDENTIFIED BY '{APP_PASSWORD}'; GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO {APP_USER}@'%';");
    // MariaDB 11's default collation (uca1400) has no Oracle MySQL equivalent: a MariaDB blue crossing
    // families uses one both define alike, as `turnout check` tells its operator.
    let collation = if BLUE.is_mariadb() && !GREEN.is_mariadb() { format!("ALTER DATABASE `{db}` COLLATE utf8mb4_unicode_520_ci;") } else { String::new() };
    blue.execute(Some(&db), &format!("{collation}{schema}\n{app}")).expect("blue schema");
    green.execute(None, &format!("SET sql_log_bin = 0; {app}")).expect("green account");
    let proxy = HaProxy::start("db", ("blue", blue.port()), ("green", green.port())).expect("haproxy");
    let frontend = if hold { format!("frontend = \"127.0.0.1:{}\"\n", proxy.port()) } else { String::new() };
    let toml = format!(
        "[cutover]\nfence = \"{fence}\"\nswitch = \"{switch}\"\n[cutover.haproxy]\nadmin_socket = \"{}\"\nbackend = \"db\"\n{frontend}{extra}",
        proxy.admin_socket().display()
    );
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &toml);
    t.start();
    wait_streaming(&mut t).await;
    Setup { blue, green, db, proxy, t, _dir: dir }
}

impl Setup {
    /// The application's URL through haproxy. Its sessions stay on haproxy's TCP connection, as a
    /// remote application's do (the driver would otherwise move them to the server's unix socket).
    fn through(&self) -> String {
        format!("mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{}?prefer_socket=false", self.proxy.port(), self.db)
    }

    fn app_url(&self, server: &MySqlServer) -> String {
        format!("mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{}", server.port(), self.db)
    }

    /// Holds a lock on `block` on green (the returned session) and commits a row on blue that green
    /// therefore cannot apply.
    async fn block_green(&self) -> mysql_async::Conn {
        let mut g = conn(&self.green.url(&self.db)).await;
        g.query_drop("LOCK TABLES block WRITE").await.expect("lock");
        self.blue.execute(Some(&self.db), "INSERT INTO block VALUES (1)").expect("insert");
        g
    }

    async fn wait_lag_over(&mut self, seconds: f64) {
        let deadline = Instant::now() + WAIT;
        while self.t.status().and_then(|v| v["lag_seconds"].as_f64()).unwrap_or(0.0) < seconds {
            assert!(Instant::now() < deadline, "lag never grew\n{}", self.t.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Blue is writable, and a write through haproxy lands on blue.
    async fn assert_blue_serves(&self) {
        assert!(!read_only(&self.blue), "blue must be writable");
        let mut c = conn(&self.through()).await;
        assert_eq!(server_port(&mut c).await, self.blue.port());
        c.query_drop("INSERT INTO t (note) VALUES ('after')").await.expect("blue takes writes through haproxy");
    }
}

async fn conn(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(url).expect("url")).await.expect("connect")
}

async fn server_port(c: &mut mysql_async::Conn) -> u16 {
    c.query_first("SELECT @@port").await.expect("port").expect("a row")
}

/// `@@GLOBAL.read_only` on `server`, asked as root. The read-only fence ends every session that could
/// write past it, root's included, so a question caught by the fence is asked again.
fn read_only(server: &MySqlServer) -> bool {
    let mut tries = 0;
    loop {
        match server.execute(None, "SELECT @@GLOBAL.read_only") {
            Ok(out) => return out.trim() == "1",
            // A MariaDB 11 client speaks TLS by default: an ended session shows as a broken pipe.
            Err(e) if tries < 3 && ["gone away", "Lost connection", "TLS/SSL error"].iter().any(|m| e.to_string().contains(m)) => tries += 1,
            Err(e) => panic!("read_only: {e}"),
        }
    }
}

/// What the read-only fence shows a client: a refused write or an ended session.
/// An error the application sees while the fence is up or traffic moves: read-only (1290), a session
/// ended by the fence or the switch (1927, 2013, 4031, a closed connection), or a login cut by the
/// switch mid-handshake (1158, "error reading communication packets").
fn fence_error(e: &str) -> bool {
    e.contains("1290")
        || e.contains("1927")
        || e.contains("2013")
        || e.contains("4031")
        || e.contains("1158")
        || e.to_lowercase().contains("connection")
        || e.contains("Input/output error")
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// Runs `turnout <command>` with the sidecar's configuration and `args` without blocking the test's
/// other tasks; returns exit code and output.
async fn turnout(t: &Turnout, command: &str, args: &[&str]) -> (i32, String) {
    common::turnout_command(t, command, args).await
}

/// An application writing one row per transaction through haproxy, as a client of a read-only fence
/// must: a failed write is retried on a new connection. Records the ids acknowledged (with the time
/// and the server's port), and every error.
fn start_writer(url: String) -> Writer<(i64, Instant, u16)> {
    Writer::start(move |log| async move {
        let opts = mysql_async::Opts::from_url(&url).expect("url");
        let mut c: Option<(mysql_async::Conn, u16)> = None;
        // The server of the last session: a login to another one (after the switch) is timed, for
        // the pause benchmark (scripts/bench-pause).
        let mut last_port = None;
        while log.running() {
            if c.is_none() {
                let login = Instant::now();
                match mysql_async::Conn::new(opts.clone()).await {
                    // A session haproxy shuts down right after it connected fails here: reconnect.
                    Ok(mut conn) => match conn.query_first::<u16, _>("SELECT @@port").await {
                        Ok(Some(port)) => {
                            if last_port.is_some_and(|p| p != port) {
                                eprintln!("the application's first login to port {port} took {:.1} ms", login.elapsed().as_secs_f64() * 1000.0);
                            }
                            last_port = Some(port);
                            c = Some((conn, port));
                        }
                        Ok(None) => panic!("SELECT @@port returned no row"),
                        Err(err) => {
                            log.failed(format!("reading the port: {err}"));
                            continue;
                        }
                    },
                    Err(err) => {
                        log.failed(format!("connect: {err}"));
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                }
            }
            let (conn, port) = c.as_mut().expect("connected");
            match conn.query_drop("INSERT INTO t (note) VALUES ('w')").await {
                Ok(()) => {
                    let id = i64::try_from(conn.last_insert_id().unwrap_or(0)).expect("id");
                    log.acked((id, Instant::now(), *port));
                }
                Err(err) => {
                    log.failed(err);
                    c = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    })
}

/// Waits until the sidecar replicates green → blue.
async fn wait_reverse(t: &mut Turnout) -> serde_json::Value {
    common::wait_for(t, "the reverse stream", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await
}

/// Waits until every row of `table` on blue equals green's, by the text of every column.
async fn converge(blue: &MySqlServer, green: &MySqlServer, db: &str, table: &str, t: &Turnout) {
    let deadline = Instant::now() + WAIT;
    while maria_rows(blue, db, table) != maria_rows(green, db, table) {
        assert!(Instant::now() < deadline, "blue's {table} never converged to green's\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether blue holds a reverse stream's progress record.
fn reverse_record(blue: &MySqlServer) -> bool {
    let sql = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'turnout' AND TABLE_NAME = 'progress'";
    blue.execute(None, sql).expect("tables").trim() == "1"
        && blue.execute(None, "SELECT COUNT(*) FROM turnout.progress WHERE stream LIKE '%\\_back'").expect("progress").trim() != "0"
}

/// Every acknowledged write is on `server` exactly once: the key makes "once" structural, and the
/// count of the application's rows shows nothing else arrived beyond writes whose outcome the client
/// could not know (a connection ended mid-statement). Returns the application's ids there.
fn assert_exactly_once(server: &MySqlServer, db: &str, name: &str, acked: &[(i64, Instant, u16)], errors: &[String]) -> Vec<i64> {
    let on_server = ids(server, db, "note = 'w'");
    let mut want: Vec<i64> = acked.iter().map(|(id, _, _)| *id).collect();
    want.sort_unstable();
    let missing: Vec<&i64> = want.iter().filter(|id| on_server.binary_search(id).is_err()).collect();
    assert!(missing.is_empty(), "acknowledged writes missing on {name}: {missing:?}");
    let unknown = errors.iter().filter(|e| !e.contains("1290")).count();
    assert!(on_server.len() <= want.len() + unknown, "{name} has {} rows, {} acknowledged, {unknown} unknown outcomes", on_server.len(), want.len());
    on_server
}

fn ids(server: &MySqlServer, db: &str, filter: &str) -> Vec<i64> {
    let out = server.execute(Some(db), &format!("SELECT id FROM t WHERE {filter} ORDER BY id")).expect("ids");
    out.lines().map(|l| l.trim().parse().expect("id")).collect()
}

fn number(server: &MySqlServer, db: &str, sql: &str) -> i64 {
    server.execute(Some(db), sql).expect(sql).trim().parse().unwrap_or_else(|_| panic!("{sql}: not a number"))
}

#[allow(clippy::too_many_lines, reason = "a scenario reads best top to bottom, step by step")]
#[tokio::test]
async fn cutover_under_load_through_haproxy_loses_no_write_and_moves_traffic_to_green() {
    // The continuous verify runs all along, run after run: the cutover pauses it, and its last
    // whole run satisfies the gate.
    let continuous = "[verify]\ncontinuous = true\nrows_per_second = 20000\ninterval = \"200ms\"\nchunk_rows = 200\nwhole_every = \"10m\"\n";
    let mut s = setup_holding(continuous).await;
    // Blue's counters ran ahead of what the binlog shows.
    run_counters_ahead(&s.blue, &s.db);
    // Green starts read-only, as a careful operator leaves it: the cutover must open it.
    make_read_only(&s.green);
    let writer = start_writer(s.through());
    writer.wait_for(200).await;
    // A rehearsal first, under the same load: the fence and the proof, then the fence undone; blue
    // keeps serving, green stays as it was (read-only), and a certificate says so.
    let reports = tempfile::tempdir().expect("tmp");
    let (rehearsal, report) = (reports.path().join("rehearsal.json"), reports.path().join("cutover.json"));
    let lag = ["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];
    let rehearse = [&["--rehearse", "--yes", "--report", rehearsal.to_str().expect("path")][..], &lag[..]].concat();
    let (code, out) = turnout(&s.t, "cutover", &rehearse).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("green applied the sentinel") && out.contains("rehearsal complete") && out.contains("undid the fence"), "{out}");
    let rehearsed_ms = common::millis_after(&out, "rehearsed: writes were paused for ");
    assert!(!read_only(&s.blue), "a rehearsal leaves blue writable");
    assert!(!sealed(BLUE) || !super_read_only(&s.blue), "a rehearsal leaves blue unsealed");
    assert!(read_only(&s.green), "a rehearsal leaves green as it was");
    let n = writer.count();
    writer.wait_for(n + 100).await;
    let rehearsed = common::intact_certificate(&rehearsal);
    assert_eq!((rehearsed["kind"].as_str(), rehearsed["outcome"].as_str()), (Some("cutover rehearsal"), Some("rehearsed")), "{rehearsed}");
    assert!(rehearsed["from"]["identity"].as_str().is_some_and(|i| i.starts_with("server_")), "{rehearsed}");
    let verified = common::wait_for(&mut s.t, "a whole continuous verify", |t| {
        t.status().map(|v| v["continuous_verify"].clone()).filter(|v| v["runs"].as_u64().is_some_and(|n| n >= 1))
    })
    .await;
    let tables = verified["tables"].as_object().expect("tables");
    assert!(!tables.is_empty() && tables.values().all(|t| t["equal"] == true), "{verified}");
    // Between whole runs it re-checks what the writer changed (integer keys from the binlog): the
    // merged result stays equal, and is what the gate reads.
    let verified = common::wait_for(&mut s.t, "a re-check of what changed", |t| {
        t.status().map(|v| v["continuous_verify"].clone()).filter(|v| v["rechecks"].as_u64().is_some_and(|n| n >= 1))
    })
    .await;
    assert!(verified["tables"].as_object().expect("tables").values().all(|t| t["equal"] == true), "{verified}");
    let started = Instant::now();
    let (code, out) = turnout(&s.t, "cutover", &[&["--verify", "--report", report.to_str().expect("path")][..], &lag[..]].concat()).await;
    let finished = started.elapsed();
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("verify gate: the live verify of"), "{out}");
    assert!(out.contains("fenced writes on blue (read_only = ON") && out.contains("green applied the sentinel"), "{out}");
    assert!(out.contains("green was read-only"), "{out}");
    // New sessions waited in haproxy's queue through the pause, and blue's limit came back.
    assert!(out.contains("new sessions will wait in haproxy's queue") && out.contains("server db/blue has its session limit back (none)"), "{out}");
    let limit = s.proxy.server_stat("db", "blue", "slim");
    assert!(limit.is_empty() || limit == "0", "blue's session limit after the cutover: {limit:?}");
    // The rehearsal took the same steps inside the pause as the cutover, up to where one undid the
    // fence and the other switched.
    let cutover_ms = common::millis_after(&out, "traffic is on green; writes were paused for ");
    let certified = common::intact_certificate(&report);
    assert_eq!(certified["outcome"], "done", "{certified}");
    let until = |steps: Vec<String>, end: &str| steps.into_iter().take_while(|s| s != end).collect::<Vec<_>>();
    assert_eq!(until(common::certificate_steps(&rehearsed), "undo"), until(common::certificate_steps(&certified), "journal"));
    eprintln!("write pause: rehearsal {rehearsed_ms} ms, cutover {cutover_ms} ms");
    let after = writer.count();
    writer.wait_for(after + 100).await;
    let (acked, errors) = writer.finish().await;

    let green_ids = assert_exactly_once(&s.green, &s.db, "green", &acked, &errors);
    // Writes acknowledged after the switch came from green, and come back to blue through the
    // reverse stream: blue converges to green, row by row, and holds nothing green lacks.
    let on_green: Vec<i64> = acked.iter().filter(|(_, _, port)| *port == s.green.port()).map(|(id, _, _)| *id).collect();
    assert!(on_green.len() >= 100, "only {} writes reached green", on_green.len());
    wait_reverse(&mut s.t).await;
    if sealed(BLUE) {
        // The reverse stream lowered blue's seal to read_only, through which it applies.
        assert!(!super_read_only(&s.blue), "the reverse stream must lower super_read_only on blue");
    }
    converge(&s.blue, &s.green, &s.db, "t", &s.t).await;
    assert_eq!(ids(&s.blue, &s.db, "note = 'w'"), green_ids);
    // Clients saw only the fence's errors — ended connections: a new session waited for green
    // instead of reaching a read-only blue, so no write was refused.
    assert!(errors.iter().all(|e| fence_error(e)), "unexpected client errors: {errors:?}");
    let refused: Vec<&String> = errors.iter().filter(|e| e.contains("1290")).collect();
    assert!(refused.is_empty(), "writes refused by read_only although new sessions were held: {refused:?}");
    // None landed on blue after the fence: every write acknowledged by blue precedes every one by green.
    let last_blue = acked.iter().filter(|(_, _, port)| *port == s.blue.port()).map(|(_, at, _)| *at).max();
    let first_green = acked.iter().filter(|(_, _, port)| *port == s.green.port()).map(|(_, at, _)| *at).min();
    assert!(last_blue < first_green, "a write was acknowledged by blue after green took writes");
    // Counters on green continue beyond blue's.
    let blue_gap = number(&s.blue, &s.db, "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'gap'");
    let mut g = conn(&s.app_url(&s.green)).await;
    g.query_drop("INSERT INTO gap () VALUES ()").await.expect("insert on green");
    let green_gap = i64::try_from(g.last_insert_id().expect("id")).expect("id");
    assert!(green_gap >= blue_gap, "green's gap id {green_gap} must be at least blue's next {blue_gap}");
    assert!(green_gap > 5, "green handed out {green_gap}, an id blue's rolled-back insert already took");
    if sequences() {
        let green_s = number(&s.green, &s.db, "SELECT NEXTVAL(s)");
        assert!(green_s > 40, "green's sequence handed out {green_s}, which blue already handed out");
    }
    // Blue refuses the application's writes: never both writable.
    assert!(read_only(&s.blue));
    let mut b = conn(&s.app_url(&s.blue)).await;
    let refused = b.query_drop("INSERT INTO t (note) VALUES ('late')").await.expect_err("blue must refuse writes");
    assert_eq!(server_code(&refused), Some(1290), "{refused}");
    // The pause as the client saw it: the largest gap between successive acknowledgements.
    let (gap, at) = acked.windows(2).map(|w| (w[1].1.duration_since(w[0].1), w[0].1)).max().unwrap_or((Duration::ZERO, started));
    eprintln!(
        "largest gap between acknowledged writes: {} ms, starting {} ms after `turnout cutover` began (it took {} ms); {} client errors\n{out}",
        gap.as_millis(),
        at.saturating_duration_since(started).as_millis(),
        finished.as_millis(),
        errors.len()
    );
    // A second cutover is refused, and a restarted `run` goes on replicating green → blue, never
    // blue → green again.
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "1s"]).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(s.t.sigterm(), Some(0));
    s.t.start();
    wait_reverse(&mut s.t).await;
    assert_eq!(s.t.sigterm(), Some(0));
}

/// A rehearsal names what would slow or block the real cutover — a transaction left open on blue
/// (read_only waits for it inside the pause) and one on green (the apply waits behind its locks) —
/// and blue serves again afterwards.
#[tokio::test]
async fn a_rehearsal_names_long_transactions_on_both_sides() {
    let mut s = setup("read-only", "haproxy", "").await;
    let mut b = conn(&s.app_url(&s.blue)).await;
    b.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.expect("open on blue");
    b.query_drop("SELECT COUNT(*) FROM t").await.expect("read on blue");
    let mut g = conn(&s.app_url(&s.green)).await;
    // A read view only: a table it read would hold a metadata lock that stops the counters moving.
    g.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.expect("open on green");
    // Both transactions must be older than the second from which a rehearsal names them.
    let old = "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_started < NOW() - INTERVAL 2 SECOND";
    while number(&s.blue, &s.db, old) == 0 || number(&s.green, &s.db, old) == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out) = turnout(&s.t, "cutover", &["--rehearse", "--yes", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("FINDING: blue: a transaction has been open") && out.contains(&format!("{APP_USER}@")), "{out}");
    assert!(out.contains("FINDING: green: a transaction has been open"), "{out}");
    s.assert_blue_serves().await;
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn lag_never_under_the_threshold_times_out_and_changes_nothing() {
    let mut s = setup("read-only", "haproxy", "").await;
    let mut g = s.block_green().await;
    s.wait_lag_over(1.0).await;
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "500ms", "--timeout", "3s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("lag did not stay under 500 ms") && !out.contains("fenced writes"), "{out}");
    s.assert_blue_serves().await;
    g.query_drop("UNLOCK TABLES").await.expect("unlock");
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_failure_after_the_fence_undoes_it_and_blue_keeps_serving() {
    // New sessions are held through the pause: one made while blue is fenced waits, and once the
    // fence is undone writes to blue, never refused.
    let mut s = setup_holding("").await;
    // Green cannot apply the sentinel (locked): the write pause runs into --max-pause after the fence.
    let mut g = s.block_green().await;
    let through = s.through();
    let held = async {
        let deadline = Instant::now() + WAIT;
        while !read_only(&s.blue) {
            assert!(Instant::now() < deadline, "the fence never went up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut c = conn(&through).await;
        // Logged in only once the hold let the session through: after the undo.
        let writable = !read_only(&s.blue);
        c.query_drop("INSERT INTO t (note) VALUES ('held')").await.map(|()| writable)
    };
    let ((code, out), held) = tokio::join!(turnout(&s.t, "cutover", &["--when-lag", "1h", "--max-pause", "2s"]), held);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("fenced writes") && out.contains("within --max-pause") && out.contains("undid the fence"), "{out}");
    assert!(out.contains("server db/blue has its session limit back (none)"), "{out}");
    assert!(held.expect("the held session's write"), "the held session reached blue before the fence was undone");
    // A MariaDB green arms the reverse stream before the fence; MySQL only once green is proven
    // complete.
    assert_eq!(out.contains("prepared reverse replication"), armed_before_fence(), "{out}");
    assert!(out.contains("dropped the armed stream's progress record") && out.contains("_back on blue"), "{out}");
    assert!(!reverse_record(&s.blue), "the undone cutover left the reverse stream's progress record on blue");
    g.query_drop("UNLOCK TABLES").await.expect("unlock");
    s.assert_blue_serves().await;
    // Replication goes on: green converges to blue.
    let deadline = Instant::now() + WAIT;
    while maria_rows(&s.blue, &s.db, "block") != maria_rows(&s.green, &s.db, "block") {
        assert!(Instant::now() < deadline, "green did not catch up after the undo\n{}", s.t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn kill_9_while_writes_are_fenced_is_undone_when_turnout_restarts() {
    let mut s = setup_holding("").await;
    let mut g = s.block_green().await;
    let config = s.t.config_path().to_path_buf();
    let mut child = Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["cutover", "--config"])
        .arg(&config)
        .args(["--when-lag", "1h", "--max-pause", "120s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cutover");
    let deadline = Instant::now() + WAIT;
    while !read_only(&s.blue) {
        assert!(Instant::now() < deadline, "the fence never went up\n{}", s.t.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.t.kill9();
    let _ = child.kill();
    let _ = child.wait();
    assert!(read_only(&s.blue), "the fence must still be up after the crash");
    // Blue's session limit was lowered to hold new sessions; the restart gives it back.
    assert_eq!(s.proxy.server_stat("db", "blue", "slim"), "1", "the hold was taken before the fence");
    // A MariaDB green: the reverse stream was armed before the fence, its start recorded on blue.
    // MySQL arms it after the proof, which green never reached.
    assert_eq!(reverse_record(&s.blue), armed_before_fence(), "the reverse stream's record on blue");
    g.query_drop("UNLOCK TABLES").await.expect("unlock");
    s.t.start();
    wait_streaming(&mut s.t).await;
    assert!(s.t.log_text().contains("the fence on blue was undone"), "{}", s.t.log_text());
    assert!(!reverse_record(&s.blue), "the undone cutover left the reverse stream's progress record on blue");
    let limit = s.proxy.server_stat("db", "blue", "slim");
    assert!(limit.is_empty() || limit == "0", "the restart must give blue its session limit back: {limit:?}");
    s.assert_blue_serves().await;
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn kill_9_while_switching_is_completed_when_turnout_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let (extra, started, switched) = common::hanging_switch(dir.path());
    let mut s = setup("read-only", "command", &extra).await;
    let mut child = common::cutover_until_switching(&s.t, &started).await;
    s.t.kill9();
    let _ = child.kill();
    let _ = child.wait();
    assert!(!switched.exists());
    // Restart: the switch had begun (green was proven complete), so it is completed, not undone, and
    // the reverse stream armed before the fence runs.
    s.t.start();
    wait_reverse(&mut s.t).await;
    assert!(s.t.log_text().contains("the switch to green was completed"), "{}", s.t.log_text());
    let url = std::fs::read_to_string(&switched).expect("the switch was completed");
    assert!(url.contains(&format!(":{}/", s.green.port())), "the command must get green's URL");
    // Blue stays read-only: never both writable.
    assert!(read_only(&s.blue), "blue must stay fenced after the switch");
    // The reverse stream found its start in the journal and recorded it on blue (a MariaDB green's
    // was recorded before the fence).
    assert!(reverse_record(&s.blue), "the reverse stream must record its start on blue");
    if sealed(BLUE) {
        assert!(!super_read_only(&s.blue), "the reverse stream must lower the seal");
    }
}

#[tokio::test]
async fn an_application_account_that_read_only_cannot_stop_is_reported_by_check_and_dry_run() {
    let mut s = setup("read-only", "haproxy", "").await;
    // The privilege that writes through read_only: MariaDB's READ ONLY ADMIN, MySQL's CONNECTION_ADMIN.
    let privilege = if BLUE.is_mariadb() { "READ ONLY ADMIN" } else { "CONNECTION_ADMIN" };
    s.blue.execute(None, &format!("CREATE USER ops@'%' IDENTIFIED BY 'ops-secret'; GRANT {privilege} ON *.* TO ops@'%'")).expect("account");
    let revoke = format!("REVOKE {privilege} ON *.* FROM 'ops'@'%';");
    let (_, out) = turnout(&s.t, "check", &[]).await;
    assert!(out.contains("account 'ops'@'%' can") && out.contains(&revoke), "{out}");
    let (code, out) = turnout(&s.t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("WARNING: account 'ops'@'%' can") && out.contains(&revoke), "{out}");
    // A dry run changes nothing.
    assert!(!read_only(&s.blue));
    s.assert_blue_serves().await;
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_client_using_turnouts_own_account_makes_the_cutover_refuse_naming_its_session() {
    let mut s = setup("read-only", "haproxy", "").await;
    // An application that logs in as turnout: the account may write under read_only.
    let mut stray = conn(&s.blue.url(&s.db)).await;
    stray.query_drop("INSERT INTO t (id, note) VALUES (900, 'stray')").await.expect("write");
    let id = stray.id();
    let (code, out) = turnout(&s.t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("(id {id})")) && out.contains("account of its own"), "{out}");
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("(id {id})")) && !out.contains("fenced writes"), "{out}");
    assert!(!read_only(&s.blue), "nothing was fenced");
    s.assert_blue_serves().await;
    // Without that session the cutover goes ahead.
    stray.disconnect().await.expect("disconnect");
    let (code, out) = turnout(&s.t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.t.sigterm(), Some(0));
}

/// Triggers on the side turnout applies to would fire a second time for rows the other side's
/// triggers already wrote: they are on blue before the cutover, on green after it, on blue after the
/// rollback — moved inside each write pause.
#[tokio::test]
async fn triggers_move_to_the_side_that_takes_writes_inside_the_pause_and_never_fire_twice() {
    // A MariaDB 11 client's default collation (uca1400) is unknown to Oracle MySQL, where the triggers
    // are created under the settings they were made with: made under one both families know.
    let names = if BLUE.is_mariadb() && !GREEN.is_mariadb() { "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_520_ci;" } else { "" };
    let schema = format!(
        "{names}{}\nCREATE TABLE audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, t_id BIGINT NOT NULL, at DATETIME(6)) ENGINE=InnoDB;\n\
         DELIMITER //\nCREATE TRIGGER t_audit AFTER INSERT ON t FOR EACH ROW BEGIN INSERT INTO audit (t_id, at) VALUES (NEW.id, NOW(6)); END//\n\
         CREATE TRIGGER t_note BEFORE INSERT ON t FOR EACH ROW SET NEW.note = CONCAT(NEW.note, '+')//\n\
         CREATE TRIGGER t_first BEFORE INSERT ON t FOR EACH ROW PRECEDES t_note SET NEW.note = CONCAT(NEW.note, '-')//\nDELIMITER ;",
        schema()
    );
    let mut s = setup_with(&schema, "read-only", "haproxy", "").await;
    let triggers = |server: &MySqlServer| {
        server
            .execute(Some(&s.db), "SELECT GROUP_CONCAT(TRIGGER_NAME ORDER BY TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()")
            .expect("triggers")
            .trim()
            .to_owned()
    };
    let consistent = |server: &MySqlServer| {
        server
            .execute(Some(&s.db), "SELECT COUNT(*) = (SELECT COUNT(*) FROM audit) AND SUM(note LIKE '%-+' AND note NOT LIKE '%+-+') = COUNT(*) FROM t")
            .expect("audit")
            .trim()
            == "1"
    };
    let mut app = conn(&s.through()).await;
    app.query_drop("INSERT INTO t (note) VALUES ('on blue')").await.expect("insert on blue");
    converge(&s.blue, &s.green, &s.db, "audit", &s.t).await;
    converge(&s.blue, &s.green, &s.db, "t", &s.t).await;
    assert_eq!((triggers(&s.blue), triggers(&s.green)), ("t_audit,t_first,t_note".to_owned(), "NULL".to_owned()));
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    // MariaDB moves them inside the pause; MySQL's sealed blue refuses DROP TRIGGER, so they are
    // copied then, and dropped on blue before the reverse stream applies anything there.
    let moved = if sealed(BLUE) { "copied 3 triggers from blue to green" } else { "moved 3 triggers from blue to green" };
    assert!(out.contains(moved), "{out}");
    wait_reverse(&mut s.t).await;
    assert_eq!((triggers(&s.blue), triggers(&s.green)), ("NULL".to_owned(), "t_audit,t_first,t_note".to_owned()));
    drop(app);
    let mut app = conn(&s.through()).await;
    app.query_drop("INSERT INTO t (note) VALUES ('on green')").await.expect("insert on green");
    assert_eq!(server_port(&mut app).await, s.green.port());
    // The reverse stream brings green's trigger effects to blue as rows; blue has no trigger to
    // make them again.
    converge(&s.green, &s.blue, &s.db, "audit", &s.t).await;
    converge(&s.green, &s.blue, &s.db, "t", &s.t).await;
    assert!(consistent(&s.blue) && consistent(&s.green));
    let (code, out) = turnout(&s.t, "rollback", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    let moved = if sealed(GREEN) { "copied 3 triggers from green to blue" } else { "moved 3 triggers from green to blue" };
    assert!(out.contains(moved), "{out}");
    // The stream goes on into green as its next generation, which drops the copies a sealed MySQL
    // green kept (it refused DROP TRIGGER in the pause): nothing fires twice on green either.
    common::wait_for(&mut s.t, "generation 2", |t| t.status().filter(|v| v["generation"] == 2 && v["phase"] == "streaming")).await;
    assert_eq!((triggers(&s.blue), triggers(&s.green)), ("t_audit,t_first,t_note".to_owned(), "NULL".to_owned()));
    drop(app);
    let mut app = conn(&s.through()).await;
    app.query_drop("INSERT INTO t (note) VALUES ('on blue again')").await.expect("insert on blue");
    assert!(consistent(&s.blue), "{}", s.blue.execute(Some(&s.db), "SELECT * FROM t; SELECT * FROM audit").unwrap_or_default());
    assert_eq!(number(&s.blue, &s.db, "SELECT COUNT(*) FROM audit"), 3, "one audit row per insert, on whichever side took it");
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_schema_object_changed_outside_the_binlog_makes_the_cutover_refuse_naming_it() {
    let mut s = setup("read-only", "haproxy", "").await;
    // A DBA's changes on blue that never reached the binlog: one object of each kind.
    let changes = "SET sql_log_bin = 0; CREATE INDEX by_note ON t (note); ALTER TABLE block ADD CONSTRAINT positive CHECK (id > 0); \
        CREATE VIEW recent AS SELECT id FROM t; ALTER TABLE t ALTER COLUMN note SET DEFAULT 'n'; \
        CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2; \
        ALTER TABLE block ADD CONSTRAINT to_gap FOREIGN KEY (id) REFERENCES gap (id)";
    s.blue.execute(Some(&s.db), changes).expect("changes on blue");
    let (code, out) = turnout(&s.t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_ne!(code, 0, "{out}");
    for object in [
        "index `t`.`by_note`",
        "check constraint `block`.`positive`",
        "view `recent`",
        "column `t`.`note` differs",
        "routine `FUNCTION twice`",
        "foreign key `block`.`to_gap`",
    ] {
        assert!(out.contains(object), "{object} not named: {out}");
    }
    let (_, checked) = turnout(&s.t, "check", &[]).await;
    assert!(checked.contains("schema: index `t`.`by_note` is on blue but not on green"), "{checked}");
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("fenced writes") && !read_only(&s.blue), "{out}");
    // The same changes on green: the schemas match again.
    s.green.execute(Some(&s.db), changes).expect("changes on green");
    let (code, out) = turnout(&s.t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn rollback_through_haproxy_brings_every_write_green_accepted_back_to_blue_exactly_once() {
    // New sessions held through both pauses: blue's slot at the cutover, green's at the rollback.
    let mut s = setup_holding("").await;
    let writer = start_writer(s.through());
    writer.wait_for(100).await;
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    let armed = if armed_before_fence() { "skipping turnout's own writes" } else { "read once green held everything blue committed" };
    assert!(out.contains("prepared reverse replication") && out.contains(armed), "{out}");
    wait_reverse(&mut s.t).await;
    writer.wait_for(writer.count() + 100).await;
    // On green, counters run ahead of what its binlog shows.
    run_counters_ahead(&s.green, &s.db);
    // kill -9 while the reverse stream runs; green keeps taking writes meanwhile.
    s.t.kill9();
    writer.wait_for(writer.count() + 100).await;
    s.t.start();
    wait_reverse(&mut s.t).await;
    writer.wait_for(writer.count() + 50).await;
    // Blue stays fenced for the application in the rollback window.
    let mut b = conn(&s.app_url(&s.blue)).await;
    let refused = b.query_drop("INSERT INTO t (note) VALUES ('app on blue')").await.expect_err("blue must stay fenced");
    assert_eq!(server_code(&refused), Some(1290), "{refused}");
    drop(b);
    // In the rollback window a live verify compares the other way, green being the source, while
    // the application writes on green.
    let (code, out) = turnout(&s.t, "verify", &["--live", "--chunk-rows", "100"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("compared at green position") && out.contains("3 tables compared, 0 differ"), "{out}");
    // The rollback rehearsed first: green fenced, blue proves it holds everything, the fence lifted;
    // the application goes on writing on green.
    let (code, out) = turnout(&s.t, "rollback", &["--rehearse", "--yes", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("blue applied the sentinel") && out.contains("rehearsal complete: writes on green"), "{out}");
    assert!(!read_only(&s.green), "a rehearsal of the rollback leaves green writable");
    writer.wait_for(writer.count() + 50).await;
    // The rollback, gated on the verify that compared green with blue.
    let (code, out) = turnout(&s.t, "rollback", &["--verify", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("verify gate: the live verify of 3 tables"), "{out}");
    assert!(out.contains("fenced writes on green (read_only = ON") && out.contains("blue applied the sentinel"), "{out}");
    assert!(out.contains("blue was read-only: set read_only = OFF"), "{out}");
    assert!(out.contains("turnout holds server db/green") && out.contains("server db/green has its session limit back (none)"), "{out}");
    let after = writer.count();
    writer.wait_for(after + 100).await;
    let (acked, errors) = writer.finish().await;
    // On blue before, on green in the window, on blue after: every one is on blue exactly once.
    let blue_ids = assert_exactly_once(&s.blue, &s.db, "blue", &acked, &errors);
    // Writes went to blue, then green, then blue again; green holds a prefix of blue's rows.
    let ports: Vec<u16> = acked.iter().map(|(_, _, port)| *port).collect();
    assert_eq!(ports.first(), Some(&s.blue.port()));
    assert_eq!(ports.last(), Some(&s.blue.port()), "the last writes must reach blue through haproxy");
    assert!(ports.contains(&s.green.port()), "no write reached green in the rollback window");
    let green_ids = ids(&s.green, &s.db, "note = 'w'");
    assert!(green_ids.iter().all(|id| blue_ids.binary_search(id).is_ok()), "green must hold only rows of blue's");
    assert!(errors.iter().all(|e| fence_error(e)), "unexpected client errors: {errors:?}");
    // Blue's counters continue beyond green's.
    let green_gap = number(&s.green, &s.db, "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'gap'");
    let mut b = conn(&s.app_url(&s.blue)).await;
    b.query_drop("INSERT INTO gap () VALUES ()").await.expect("insert on blue");
    let blue_gap = i64::try_from(b.last_insert_id().expect("id")).expect("id");
    assert!(blue_gap >= green_gap, "blue's gap id {blue_gap} must be at least green's next {green_gap}");
    if sequences() {
        let green_s = number(&s.green, &s.db, "SELECT NEXTVAL(s)");
        let blue_s = number(&s.blue, &s.db, "SELECT NEXTVAL(s)");
        assert!(blue_s > green_s, "blue's sequence handed out {blue_s}, not beyond green's {green_s}");
    }
    // Green is the fenced side now: never both writable.
    assert!(read_only(&s.green) && !read_only(&s.blue));
    // The rollback armed blue → green again: the stream goes on as its next generation, with no new
    // copy, and the reverse stream's progress record on blue goes.
    assert!(out.contains("prepared replication blue → green again"), "{out}");
    common::wait_for(&mut s.t, "generation 2", |t| t.status().filter(|v| v["generation"] == 2 && v["direction"] == "forward" && v["phase"] == "streaming")).await;
    assert!(!reverse_record(&s.blue), "the reverse stream's progress record must go as the next generation begins");
    let writer = start_writer(s.through());
    writer.wait_for(100).await;
    let lag = ["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];
    // Blue's watch read the window up to the hand-off and found nothing foreign — the reverse apply
    // and the rollback's counters on blue are turnout's (a GTID domain, or a tag on Oracle MySQL) —
    // so no gate is forced.
    let (code, out) = turnout(&s.t, "cutover", &lag).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    let gated = !out.contains("verify gate: required after the rollback");
    assert!(gated && out.contains("prepared reverse replication"), "{out}");
    wait_reverse(&mut s.t).await;
    writer.wait_for(writer.count() + 100).await;
    let (acked, errors) = writer.finish().await;
    assert!(errors.iter().all(|e| fence_error(e)), "unexpected client errors: {errors:?}");
    let ports: Vec<u16> = acked.iter().map(|(_, _, port)| *port).collect();
    assert_eq!(ports.last(), Some(&s.green.port()), "the last writes must reach green through haproxy");
    // Every write of the second cutover's application is on green exactly once, and the second
    // window's reverse stream brings blue to green's rows.
    assert!(!read_only(&s.green) && read_only(&s.blue));
    let on_green = ids(&s.green, &s.db, "note = 'w'");
    assert!(acked.iter().all(|(id, _, _)| on_green.binary_search(id).is_ok()), "an acknowledged write is missing on green");
    converge(&s.blue, &s.green, &s.db, "t", &s.t).await;
    assert_eq!(s.t.sigterm(), Some(0));
}


/// Replication threads write through `read_only` (and MySQL's `super_read_only`): a blue that is
/// itself a replica could commit after the sentinel what green never gets. `check` says so and the
/// cutover refuses before anything changes, naming the fix.
#[tokio::test]
async fn a_blue_that_is_itself_a_replica_makes_the_cutover_refuse_before_the_fence() {
    let mut s = setup("read-only", "haproxy", "").await;
    // An upstream that does not answer: the applier thread runs all the same.
    let replicate = if BLUE.is_mariadb() {
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = 1, MASTER_USER = 'x', MASTER_CONNECT_RETRY = 60; START SLAVE"
    } else {
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '127.0.0.1', SOURCE_PORT = 1, SOURCE_USER = 'x', SOURCE_CONNECT_RETRY = 60; START REPLICA"
    };
    s.blue.execute(None, replicate).expect("make blue a replica");
    let (_, checked) = turnout(&s.t, "check", &[]).await;
    assert!(checked.contains("blue is itself a replica"), "{checked}");
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("is itself a replica") && out.contains("STOP REPLICA") && !out.contains("fenced writes"), "{out}");
    s.assert_blue_serves().await;
    let stop = if BLUE.is_mariadb() { "STOP SLAVE; RESET SLAVE ALL" } else { "STOP REPLICA; RESET REPLICA ALL" };
    s.blue.execute(None, stop).expect("stop replication");
    let (code, out) = turnout(&s.t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.t.sigterm(), Some(0));
}
