//! The read canary on PostgreSQL (`turnout canary`, `[canary]`), through haproxy's read backend,
//! under an application that writes through the write endpoint and reads through the read endpoint:
//! green's share of reads follows the ramp, as blue's and green's own statement counters show; no
//! application write lands on green; a threshold trip (green failing its readers) sends every read
//! back to blue within a check; a kill -9 restores the live share; the cutover moves the writes and
//! the remaining reads, losing nothing.

use crate::common;

use common::{canary_until, Turnout, Writer, WAIT};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;
use turnout_testbed::{HaProxy, PgServer};

const SCHEMA: &str = "CREATE TABLE t (id bigserial PRIMARY KEY, note text); \
    INSERT INTO t (note) SELECT 'seed' FROM generate_series(1, 200)";
const APP: &str = "app";
const APP_PASSWORD: &str = "app-secret";
/// The canary checks this often.
const CHECK: Duration = Duration::from_millis(250);

struct Setup {
    blue: PgServer,
    green: PgServer,
    db: String,
    /// Green as its superuser, with blue's password.
    green_url: String,
    proxy: HaProxy,
    t: Turnout,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn url(&self, port: u16) -> String {
        format!("postgres://{APP}:{APP_PASSWORD}@127.0.0.1:{port}/{}?sslmode=disable", self.db)
    }

    /// Runs `sql` on green as its superuser.
    async fn on_green(&self, sql: &str) {
        // A session of turnout's kind: it writes past the canary's read-only default.
        let c = admin(&self.green_url).await;
        c.batch_execute("SET default_transaction_read_only = off").await.expect("read-write");
        c.batch_execute(sql).await.expect(sql);
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

async fn setup() -> Setup {
    let (blue, green, db) = common::pair(SCHEMA).await;
    // The application's own role on both sides (roles are not replicated), and green with blue's
    // password for turnout.
    let role = format!(
        "CREATE ROLE {APP} LOGIN PASSWORD '{APP_PASSWORD}'; GRANT SELECT, INSERT, UPDATE, DELETE ON t TO {APP}; GRANT USAGE ON SEQUENCE t_id_seq TO {APP}"
    );
    blue.execute(&db, &role).await.expect("blue role");
    green.execute("postgres", &format!("CREATE ROLE {APP} LOGIN PASSWORD '{APP_PASSWORD}'")).await.expect("green role");
    green.execute("postgres", &format!("ALTER USER postgres PASSWORD '{}'", blue.password())).await.expect("password");
    let proxy = HaProxy::start("db", ("blue", blue.port()), ("green", green.port())).expect("haproxy");
    let green_url = format!("{}?sslmode=disable", green.url_for("postgres", blue.password(), &db));
    let probe = format!("postgres://{APP}:{APP_PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable", green.port());
    let toml = format!(
        "[cutover]\nfence = \"read-only\"\nswitch = \"haproxy\"\n[cutover.haproxy]\nadmin_socket = \"{socket}\"\nbackend = \"db\"\n\
         [canary]\nsplit = \"haproxy\"\ncheck_every = \"{check}ms\"\nmax_lag = \"2s\"\nmax_latency = \"2s\"\nmax_errors_per_second = 5\n\
         probe = \"SELECT count(*) FROM t\"\nprobe_url = \"{probe}\"\n[canary.haproxy]\nbackend = \"{read}\"\n",
        socket = proxy.admin_socket().display(),
        check = CHECK.as_millis(),
        read = proxy.read_backend(),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    // The schema copy brought the table, not the role's grants: as an operator makes them.
    admin(&green_url)
        .await
        .batch_execute(&format!("GRANT SELECT, INSERT, UPDATE, DELETE ON t TO {APP}; GRANT USAGE ON SEQUENCE t_id_seq TO {APP}"))
        .await
        .expect("grants");
    Setup { blue, green, db, green_url, proxy, t, _dir: dir }
}

/// Writes one row per transaction through `url`, connecting again after an error (the switch ends
/// sessions); records the ids acknowledged and every error.
fn start_writer(url: String) -> Writer<i64> {
    Writer::start(move |log| async move {
        let mut client = None;
        while log.running() {
            if client.is_none() {
                match tokio_postgres::connect(&url, NoTls).await {
                    Ok((c, conn)) => {
                        tokio::spawn(conn);
                        client = Some(c);
                    }
                    Err(e) => log.failed(e),
                }
            }
            if let Some(c) = &client {
                match c.query_one("INSERT INTO t (note) VALUES ('w') RETURNING id", &[]).await {
                    Ok(row) => log.acked(row.get(0)),
                    Err(e) => {
                        log.failed(e);
                        client = None;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Reads one row per connection through `url` (haproxy shares connections by weight), recording the
/// port of the server that answered, or the error.
fn start_reader(url: String) -> Writer<Result<u16, String>> {
    Writer::start(move |log| async move {
        let mut n: i64 = 0;
        while log.running() {
            n += 1;
            let read = async {
                let (c, conn) = tokio_postgres::connect(&url, NoTls).await.map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                let row = c.query_one("SELECT inet_server_port(), (SELECT note FROM t WHERE id = $1)", &[&(n % 200 + 1)]).await.map_err(|e| e.to_string())?;
                Ok(u16::try_from(row.get::<_, i32>(0)).unwrap_or_default())
            };
            log.acked(read.await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Index scans of `t` on a server (readers look rows up by key; turnout's apply of inserts does
/// not): the server's own count of the reads it served.
async fn index_scans(url: &str) -> i64 {
    // A new session each time: statistics flush when a session ends.
    let c = admin(url).await;
    c.query_one("SELECT coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 't'", &[]).await.expect("idx_scan").get(0)
}

/// Green's share of the reads served while `reads` more were made, by the servers' own counters and
/// by the port that answered — measured with the canary's share unchanged from start to end (its
/// status is read before and after the window: a step in between — green lagging past `--max-lag` on
/// a loaded machine sends its share to 0 and back — would make the figure a blend, so the window is
/// measured again).
async fn measure(s: &Setup, reader: &Writer<Result<u16, String>>, reads: usize) -> (f64, f64) {
    let share = |t: &Turnout| t.status().map(|v| (v["canary"]["green_percent"].clone(), v["canary"]["steps"].as_array().map_or(0, Vec::len)));
    for _ in 0..5 {
        let before = share(&s.t);
        let blue = s.blue.url(&s.db);
        let (b0, g0) = (index_scans(&blue).await, index_scans(&s.green_url).await);
        let from = reader.count();
        reader.wait_for(from + reads).await;
        // A session's statistics reach the shared counters as it ends: wait until they account for the
        // window's reads (each one index scan), however busy the machine.
        let deadline = Instant::now() + WAIT;
        let (b1, g1) = loop {
            let (b1, g1) = (index_scans(&blue).await, index_scans(&s.green_url).await);
            if (g1 - g0) + (b1 - b0) >= reads as i64 || Instant::now() > deadline {
                break (b1, g1);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let after = share(&s.t);
        if after != before {
            eprintln!("the canary's share moved while it was measured ({before:?} → {after:?}): measuring again");
            continue;
        }
        let by_counters = (g1 - g0) as f64 / ((g1 - g0) + (b1 - b0)).max(1) as f64;
        let answered = reader.snapshot();
        let window: Vec<u16> = answered[from..].iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        let by_port = window.iter().filter(|p| **p == s.green.port()).count() as f64 / window.len().max(1) as f64;
        return (by_counters, by_port);
    }
    panic!("the canary's share moved during each of 5 measurements:\n{}", s.t.log_text());
}

async fn canary(t: &Turnout, args: &[&str]) -> (i32, String) {
    common::turnout_command(t, "canary", args).await
}

#[tokio::test]
async fn reads_ramp_to_green_trip_back_to_blue_survive_kill_9_and_follow_the_cutover() {
    let mut s = setup().await;
    let writer = start_writer(s.url(s.proxy.port()));
    let reader = start_reader(s.url(s.proxy.read_port()));
    writer.wait_for(50).await;
    reader.wait_for(50).await;
    assert!(reader.snapshot().iter().all(|r| *r == Ok(s.blue.port())), "before the canary every read is blue's");

    // 20 % with no step pending (measured at 20 % however long it takes), then a ramp to 50 %.
    let (code, out) = canary(&s.t, &["--reads", "20%", "--max-lag", "2s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("green's share of reads is 20 %") && out.contains("read-only for the application"), "{out}");
    let (counters, ports) = measure(&s, &reader, 300).await;
    eprintln!("at 20 %: green served {:.1} % of reads by the servers' index scans, {:.1} % by the port that answered", counters * 100.0, ports * 100.0);
    assert!((0.08..=0.35).contains(&counters) && (0.08..=0.35).contains(&ports), "at 20 %: counters {counters:.2}, ports {ports:.2}");
    let (code, out) = canary(&s.t, &["--reads", "20%", "--step", "30%", "--every", "1s", "--max", "50%", "--max-lag", "2s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    canary_until(&mut s.t, "the ramp to 50 %", |c| c["green_percent"] == 50).await;
    let (counters, ports) = measure(&s, &reader, 300).await;
    eprintln!("at 50 %: green served {:.1} % of reads by the servers' index scans, {:.1} % by the port that answered", counters * 100.0, ports * 100.0);
    assert!((0.35..=0.65).contains(&counters) && (0.35..=0.65).contains(&ports), "at 50 %: counters {counters:.2}, ports {ports:.2}");
    assert!(s.t.metrics().contains("turnout_canary_green_read_percent 50"), "{}", s.t.metrics());
    // Someone else moves the split (a reload of haproxy brings its configured weights back): the
    // canary sets the live share again.
    haproxy(&s.proxy, &format!("set server {}/green weight 0", s.proxy.read_backend())).await;
    canary_until(&mut s.t, "the share set again", |c| {
        c["steps"].as_array().is_some_and(|st| st.iter().any(|x| x["why"].as_str().is_some_and(|w| w.contains("set again")) && x["share"] == 50))
    })
    .await;
    assert_eq!(weight(&s.proxy, "green").await, 50);

    // No application write lands on green, directly or through the read endpoint.
    let (g, conn) = tokio_postgres::connect(&s.url(s.green.port()), NoTls).await.expect("app on green");
    tokio::spawn(conn);
    let refused = g.batch_execute("INSERT INTO t (note) VALUES ('app on green')").await.expect_err("green refuses the application's writes");
    assert_eq!(refused.code(), Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION), "{refused}");
    drop(g);

    // Green fails its readers: the probe (as the application) fails, the canary trips and every
    // read goes back to blue at that check.
    s.on_green(&format!("REVOKE SELECT ON t FROM {APP}")).await;
    let revoked = Instant::now();
    let tripped = canary_until(&mut s.t, "the trip", |c| c["state"] == "tripped" && c["green_percent"] == 0).await;
    let took = revoked.elapsed();
    eprintln!("tripped {} ms after green began failing its readers (checks every {} ms)", took.as_millis(), CHECK.as_millis());
    assert!(tripped["tripped"].as_str().is_some_and(|w| w.contains("probe failed") && w.contains("permission denied")), "{tripped}");
    // How soon is a figure (printed above, and in the canary's benchmarks), not asserted: a loaded machine
    // stretches any bound; that it tripped, and why, is.
    common::wait_for(&mut s.t, "the canary alert", |t| t.status().filter(|v| v["alerts"]["canary"] == "critical")).await;
    let from = reader.count();
    reader.wait_for(from + 100).await;
    assert!(reader.snapshot()[from + 20..].iter().all(|r| *r == Ok(s.blue.port())), "after the trip every read is blue's");

    // Repaired, asked again; a kill -9 restores the live share.
    s.on_green(&format!("GRANT SELECT ON t TO {APP}")).await;
    let (code, out) = canary(&s.t, &["--reads", "40%"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    canary_until(&mut s.t, "40 %", |c| c["green_percent"] == 40 && c["state"] == "running").await;
    s.t.kill9();
    s.t.start();
    common::wait_streaming(&mut s.t).await;
    let restored = canary_until(&mut s.t, "the restored share", |c| c["green_percent"] == 40).await;
    // The restart set the live share itself (not 0, then the plan's share at the next check).
    let restart = restored["steps"].as_array().and_then(|steps| steps.iter().find(|st| st["why"].as_str().is_some_and(|w| w.contains("restart"))).cloned());
    assert!(restart.as_ref().is_some_and(|st| st["share"] == 40), "{restored}");
    let (_, ports) = measure(&s, &reader, 200).await;
    assert!((0.25..=0.55).contains(&ports), "after the restart: ports {ports:.2}");

    // The cutover moves the writes and every read; green takes the application's writes.
    let (code, out) = common::turnout_command(&s.t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("lifted green's read-only fence"), "{out}");
    canary_until(&mut s.t, "reads following the writes", |c| c["state"] == "cut-over" && c["green_percent"] == 100).await;
    let from = reader.count();
    reader.wait_for(from + 100).await;
    assert!(reader.snapshot()[from + 20..].iter().all(|r| *r == Ok(s.green.port())), "after the cutover every read is green's");
    writer.wait_for(writer.count() + 100).await;
    let (acked, _) = writer.finish().await;
    let (reads, _) = reader.finish().await;
    assert!(reads.iter().filter(|r| r.is_err()).count() < reads.len() / 4, "most reads succeed");
    // Every acknowledged write is on green exactly once.
    let g = admin(&s.green_url).await;
    let on_green: Vec<i64> = g.query("SELECT id FROM t WHERE note = 'w' ORDER BY id", &[]).await.expect("ids").iter().map(|r| r.get(0)).collect();
    let mut want = acked.clone();
    want.sort_unstable();
    assert_eq!(on_green, want, "every acknowledged write on green exactly once");
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_canary_is_refused_without_a_split_and_paused_while_green_lags() {
    let (blue, green, db) = common::pair(SCHEMA).await;
    let (_dir, t) = common::running(&blue, &green, &db).await;
    let (code, out) = canary(&t, &["--reads", "5%"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no read canary is configured") && out.contains("canary.split"), "{out}");
    drop(t);
    // With a split: green held back by a lock lags, and its share is 0 until it catches up.
    let mut s = setup().await;
    let (code, out) = canary(&s.t, &["--reads", "50%", "--max-lag", "2s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    canary_until(&mut s.t, "50 %", |c| c["state"] == "running" && c["green_percent"] == 50).await;
    // (After the canary's fence: a session of its own that may lock, as green's database is read-only.)
    let g = admin(&s.green_url).await;
    g.batch_execute("BEGIN READ WRITE; LOCK TABLE t IN SHARE MODE").await.expect("lock");
    s.blue.execute(&s.db, "INSERT INTO t (note) VALUES ('pending')").await.expect("insert");
    let paused = canary_until(&mut s.t, "paused", |c| c["state"] == "paused").await;
    assert_eq!(paused["green_percent"], 0, "{paused}");
    assert!(s.t.status().and_then(|v| v["lag_seconds"].as_f64()).is_some_and(|l| l > 2.0), "paused for lag");
    g.batch_execute("COMMIT").await.expect("unlock");
    canary_until(&mut s.t, "resumed at 50 %", |c| c["state"] == "running" && c["green_percent"] == 50).await;
    // Ended: every read to blue, green writable again for the application.
    let (code, out) = canary(&s.t, &["--reads", "0"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("every read goes to blue") && out.contains("takes the application's writes again"), "{out}");
    assert_eq!(weight(&s.proxy, "green").await, 0);
    let (a, conn) = tokio_postgres::connect(&s.url(s.green.port()), NoTls).await.expect("app on green");
    tokio::spawn(conn);
    a.batch_execute("BEGIN; INSERT INTO t (id, note) VALUES (-1, 'allowed again'); ROLLBACK").await.expect("green writable after the canary ended");
    drop(a);
    // Again, then turnout stops: nothing would watch green's lag, so its share goes to 0 first; then
    // teardown leaves every read on blue and green writable.
    let (code, out) = canary(&s.t, &["--reads", "30%"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    canary_until(&mut s.t, "30 %", |c| c["green_percent"] == 30).await;
    assert_eq!(weight(&s.proxy, "green").await, 30);
    assert_eq!(s.t.sigterm(), Some(0));
    assert_eq!(weight(&s.proxy, "green").await, 0, "a stopping sidecar sends the reads to blue");
    let (code, out) = common::turnout_command(&s.t, "teardown", &["--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("every read to blue") && out.contains("takes the application's writes again"), "{out}");
    let (a, conn) = tokio_postgres::connect(&s.url(s.green.port()), NoTls).await.expect("app on green");
    tokio::spawn(conn);
    a.batch_execute("BEGIN; INSERT INTO t (id, note) VALUES (-2, 'after teardown'); ROLLBACK").await.expect("green writable after teardown");
}

/// haproxy's answer to a runtime API `command`.
async fn haproxy(proxy: &HaProxy, command: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::UnixStream::connect(proxy.admin_socket()).await.expect("admin socket");
    socket.write_all(format!("{command}\n").as_bytes()).await.expect("ask");
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.expect("answer");
    answer
}

/// The weight haproxy gives server `server` of the read backend now (`get weight`).
async fn weight(proxy: &HaProxy, server: &str) -> u32 {
    let answer = haproxy(proxy, &format!("get weight {}/{server}", proxy.read_backend())).await;
    answer.split_whitespace().next().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("weight: {answer}"))
}

/// Reads one row per connection through pgbouncer's read entry from `tasks` clients at once, recording
/// the port of the server that answered (pgbouncer shares new server connections by its host list).
fn start_readers(url: String, tasks: usize) -> Writer<Result<u16, String>> {
    Writer::start(move |log| async move {
        let mut all = Vec::new();
        for _ in 0..tasks {
            let (url, log) = (url.clone(), log.clone());
            all.push(tokio::spawn(async move {
                while log.running() {
                    let read = async {
                        let (c, conn) = tokio_postgres::connect(&url, NoTls).await.map_err(|e| e.to_string())?;
                        tokio::spawn(conn);
                        let rows = c.simple_query("SELECT inet_server_port()").await.map_err(|e| e.to_string())?;
                        Ok(common::first_value::<u16>(&rows).unwrap_or_default())
                    };
                    log.acked(read.await);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        for task in all {
            let _ = task.await;
        }
    })
}

/// Green's share of what answered in `reads[from..]`, and how many answered.
fn share_of(reads: &[Result<u16, String>], from: usize, green: u16) -> (f64, usize) {
    let answered: Vec<u16> = reads[from..].iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    (answered.iter().filter(|p| **p == green).count() as f64 / answered.len().max(1) as f64, answered.len())
}

#[tokio::test]
async fn a_pgbouncer_read_entry_shares_reads_by_its_host_list_and_trips_when_green_slows_down() {
    let (blue, green, db) = common::pair(SCHEMA).await;
    green.execute("postgres", &format!("ALTER USER postgres PASSWORD '{}'", blue.password())).await.expect("password");
    // A host list has one port: blue and green reached on one port number, at two loopback addresses.
    let blue_at = turnout_testbed::Proxy::start_at([127, 0, 0, 2].into(), 0, blue.port()).expect("blue's address");
    let port = blue_at.port();
    let green_at = turnout_testbed::Proxy::start_at([127, 0, 0, 3].into(), port, green.port()).expect("green's address");
    let bouncer = turnout_testbed::PgBouncer::start(&blue, &db).expect("pgbouncer");
    // The read entry, on blue; server connections live a second, so the pools follow the host list.
    bouncer
        .edit_config(|ini| {
            ini.replacen("[databases]\n", &format!("[databases]\n{db}_ro = host=127.0.0.2 port={port} dbname={db}\n"), 1)
                + "server_lifetime = 1\nserver_round_robin = 1\n"
        })
        .expect("read entry");
    admin(&bouncer.admin_url()).await.simple_query("RELOAD").await.expect("reload");
    let url = |host: &str| format!("postgres://postgres:{}@{host}:{port}/{db}?sslmode=disable", blue.password());
    let toml = format!(
        "[cutover]\nfence = \"pgbouncer\"\nswitch = \"pgbouncer\"\n[cutover.pgbouncer]\nadmin_url = \"{admin}\"\ndatabase = \"{db}\"\nconfig_file = \"{ini}\"\n\
         [canary]\nsplit = \"pgbouncer\"\ncheck_every = \"{check}ms\"\nmax_lag = \"5s\"\nmax_latency = \"1s\"\n[canary.pgbouncer]\ndatabase = \"{db}_ro\"\n",
        admin = bouncer.admin_url(),
        ini = bouncer.config_path().display(),
        check = CHECK.as_millis(),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &url("127.0.0.2"), &url("127.0.0.3"), &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    let readers = start_readers(bouncer.url(&format!("{db}_ro")), 4);
    readers.wait_for(40).await;
    assert_eq!(share_of(&readers.snapshot(), 0, green.port()).0, 0.0, "before the canary every read is blue's");

    let (code, out) = canary(&t, &["--reads", "50%"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    canary_until(&mut t, "50 %", |c| c["green_percent"] == 50).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = readers.count();
    readers.wait_for(from + 400).await;
    let (share, n) = share_of(&readers.snapshot(), from, green.port());
    eprintln!("pgbouncer at 50 %: green answered {:.1} % of {n} reads", share * 100.0);
    assert!((0.2..=0.8).contains(&share), "at 50 %: {share:.2} of {n}");

    // Green slows down: the probe is over canary.max_latency, every read goes back to blue.
    green_at.set_latency(Duration::from_secs(1));
    let tripped = canary_until(&mut t, "the trip", |c| c["state"] == "tripped" && c["green_percent"] == 0).await;
    assert!(tripped["tripped"].as_str().is_some_and(|w| w.contains("canary.max_latency")), "{tripped}");
    green_at.set_latency(Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = readers.count();
    readers.wait_for(from + 200).await;
    assert_eq!(share_of(&readers.snapshot(), from, green.port()).0, 0.0, "after the trip every read is blue's");

    // The cutover: writes and every read to green.
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    canary_until(&mut t, "reads following the writes", |c| c["state"] == "cut-over" && c["green_percent"] == 100).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = readers.count();
    readers.wait_for(from + 200).await;
    assert_eq!(share_of(&readers.snapshot(), from, green.port()).0, 1.0, "after the cutover every read is green's");
    let _ = readers.finish().await;
    assert_eq!(t.sigterm(), Some(0));
}
