//! `turnout cutover` end to end: real blue/green, pgbouncer in front of blue with a client writing
//! through it, the real `turnout run` sidecar and the real `turnout cutover` command.

use crate::common;

use common::{pair, port_behind, Turnout, Writer, WAIT};
use std::time::{Duration, Instant};
use turnout_testbed::{PgBouncer, PgServer, Proxy};

const SCHEMA: &str = "CREATE TABLE t (id bigserial PRIMARY KEY, note text); CREATE SEQUENCE loose_seq; SELECT nextval('loose_seq') FROM generate_series(1, 50)";

/// Blue with pgbouncer in front, green with blue's password (pgbouncer's one set of credentials
/// works on both), and a running sidecar configured with `fence`/`switch` through that pgbouncer.
struct Setup {
    blue: PgServer,
    green: PgServer,
    /// Green with blue's password.
    green_url: String,
    db: String,
    bouncer: PgBouncer,
    t: Turnout,
    _dir: tempfile::TempDir,
}

async fn setup(fence: &str, switch: &str, extra: &str) -> Setup {
    setup_with(pair(SCHEMA).await, fence, switch, extra).await
}

async fn setup_with(servers: (PgServer, PgServer, String), fence: &str, switch: &str, extra: &str) -> Setup {
    setup_keyed(servers, &format!("fence = \"{fence}\"\nswitch = \"{switch}\"\n"), extra).await
}

/// As [`setup_with`], with `cutover` holding `keys` (fence and switch among them).
async fn setup_keyed((blue, green, db): (PgServer, PgServer, String), keys: &str, extra: &str) -> Setup {
    let (bouncer, green_url, toml) = common::behind_pgbouncer(&blue, &green, &db, keys, extra).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    Setup { blue, green, green_url, db, bouncer, t, _dir: dir }
}

impl Setup {
    /// Blocks apply on green (a lock held by the returned session) and commits a row on blue that
    /// green therefore cannot apply.
    async fn block_green(&self) -> tokio_postgres::Client {
        let g = self.green().await;
        // SHARE blocks the apply's INSERT without giving this session an xid (an ACCESS EXCLUSIVE lock
        // would, and the reverse slot made before the fence would wait for it).
        g.batch_execute("BEGIN; LOCK TABLE t IN SHARE MODE").await.expect("lock");
        self.blue.execute(&self.db, "INSERT INTO t (note) VALUES ('pending')").await.expect("insert");
        g
    }

    /// A client through pgbouncer reaches blue and writes without error.
    async fn assert_blue_serves(&self) {
        let through = self.bouncer.url(&self.db);
        assert_eq!(port_behind(&through).await, i32::from(self.blue.port()));
        let writer = start_writer(through, Duration::from_millis(1));
        writer.wait_for(5).await;
        let (_, errors) = writer.finish().await;
        assert!(errors.is_empty(), "{errors:?}");
    }

    async fn green(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.green_url, tokio_postgres::NoTls).await.expect("green");
        tokio::spawn(conn);
        c
    }
}

/// Runs `turnout cutover` with `args` (without blocking the test's other tasks, such as the writer);
/// returns exit code and output.
async fn cutover(t: &Turnout, args: &[&str]) -> (i32, String) {
    common::turnout_command(t, "cutover", args).await
}

/// A client writing one row per transaction through pgbouncer until told to stop; records the ids
/// acknowledged, the time of each acknowledgement, and every error.
fn start_writer(url: String, pause: Duration) -> Writer<(i64, Instant)> {
    Writer::start(move |log| async move {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect through pgbouncer");
        tokio::spawn(conn);
        while log.running() {
            match c.simple_query("INSERT INTO t (note) VALUES ('w') RETURNING id").await {
                Ok(msgs) => {
                    for m in msgs {
                        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                            let id: i64 = r.get(0).and_then(|v| v.parse().ok()).unwrap_or(-1);
                            log.acked((id, Instant::now()));
                        }
                    }
                }
                Err(err) => log.failed(err),
            }
            tokio::time::sleep(pause).await;
        }
    })
}

#[tokio::test]
async fn pgbouncer_cutover_under_load_loses_no_write_and_moves_traffic_to_green() {
    let mut s = setup("pgbouncer", "pgbouncer", "").await;
    let through = s.bouncer.url(&s.db);
    let writer = start_writer(through.clone(), Duration::from_millis(5));
    writer.wait_for(200).await;
    let started = Instant::now();
    let (code, out) = cutover(&s.t, &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    let finished = started.elapsed();
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("green applied the sentinel") && out.contains("writes were paused for"), "{out}");
    // pgbouncer gave the held writer its connection to green before the sidecar moved on.
    assert!(out.contains("every client the fence held had a connection to green"), "{out}");
    let after = writer.count();
    writer.wait_for(after + 100).await;
    let (acked, errors) = writer.finish().await;
    assert!(errors.is_empty(), "client errors during the cutover: {errors:?}");
    // Every acknowledged write — before, during and after the cutover — is on green exactly once.
    let g = s.green().await;
    let on_green = ids(&g).await;
    let mut want: Vec<i64> = acked.iter().map(|(id, _)| *id).collect();
    want.sort_unstable();
    assert_eq!(on_green, want, "green must hold exactly the acknowledged rows");
    // Sequences on green are ahead of everything blue handed out, including the one no column owns.
    let b = s.blue.connect(&s.db).await.expect("blue");
    let blue_loose: i64 = b.query_one("SELECT last_value FROM loose_seq", &[]).await.expect("seq").get(0);
    let green_next: i64 = g.query_one("SELECT nextval('loose_seq')", &[]).await.expect("seq").get(0);
    assert!(green_next > blue_loose, "green's loose_seq {green_next} must be ahead of blue's {blue_loose}");
    // pgbouncer now points at green.
    assert_eq!(port_behind(&through).await, i32::from(s.green.port()));
    // Blue got no write but acknowledged ones, each once (green's come back through the reverse stream).
    let blue_ids = ids(&b).await;
    assert!(blue_ids.iter().all(|id| want.binary_search(id).is_ok()), "blue holds a row no client was acknowledged");
    // The sidecar now replicates green → blue (the rollback window).
    let status = common::wait_for(&mut s.t, "the reverse stream", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await;
    assert_eq!(status["names"]["slot"].as_str().map(|n| n.ends_with("_back")), Some(true), "{status}");
    // Largest gap between successive acknowledged writes: the pause clients saw.
    let (gap, at) = acked.windows(2).map(|w| (w[1].1.duration_since(w[0].1), w[0].1)).max().unwrap_or((Duration::ZERO, started));
    eprintln!(
        "largest gap between acknowledged writes: {} ms, starting {} ms after `turnout cutover` began (it took {} ms)\n{out}",
        gap.as_millis(),
        at.saturating_duration_since(started).as_millis(),
        finished.as_millis()
    );
    // A second cutover is refused, and restarting `run` goes on replicating green → blue, never
    // blue → green again.
    let (code, out) = cutover(&s.t, &["--when-lag", "1s"]).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(s.t.sigterm(), Some(0));
    s.t.start();
    common::wait_for(&mut s.t, "the reverse stream after a restart", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await;
    assert_eq!(s.t.sigterm(), Some(0));
}

/// The path an operator takes, under an application writing through pgbouncer: a rehearsal pauses
/// writes for the fence and the proof, undoes the fence and leaves blue serving; a cutover gated on a
/// live verify is refused while none has run and while the last one found a row green should not
/// have, naming it; once a verify finds green equal, the gated cutover completes. Each writes a
/// signed certificate that `turnout certificate` checks and that breaks when edited; no
/// acknowledged write is lost, and the rehearsal's pause is measured against the cutover's.
#[tokio::test]
async fn a_rehearsal_then_a_cutover_gated_on_a_live_verify_each_certified_lose_no_write() {
    let keys = tempfile::tempdir().expect("tmp");
    let key = common::signing_key(keys.path());
    let cutover_keys = format!("fence = \"pgbouncer\"\nswitch = \"pgbouncer\"\nsigning_key = \"{}\"\n", key.display());
    let mut s = setup_keyed(pair(SCHEMA).await, &cutover_keys, "").await;
    let through = s.bouncer.url(&s.db);
    let writer = start_writer(through.clone(), Duration::from_millis(5));
    writer.wait_for(200).await;
    let lag = ["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];
    let file = |name: &str| keys.path().join(name).display().to_string();

    // Rehearse: the fence and the proof, then the fence undone; traffic stays on blue.
    let rehearsal = file("rehearsal.json");
    let (code, out) = cutover(&s.t, &[&["--rehearse", "--yes", "--report", &rehearsal][..], &lag[..]].concat()).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("green applied the sentinel") && out.contains("rehearsal complete") && out.contains("undid the fence"), "{out}");
    let rehearsed_ms = common::millis_after(&out, "rehearsed: writes were paused for ");
    assert_eq!(port_behind(&through).await, i32::from(s.blue.port()), "a rehearsal leaves traffic on blue");
    let n = writer.count();
    writer.wait_for(n + 100).await;
    let certificate = common::intact_certificate(std::path::Path::new(&rehearsal));
    assert_eq!((certificate["kind"].as_str(), certificate["outcome"].as_str()), (Some("cutover rehearsal"), Some("rehearsed")), "{certificate}");
    assert_eq!(common::certificate_steps(&certificate).last().map(String::as_str), Some("undo"), "{certificate}");
    assert!(certificate["from"]["version"].as_str().is_some_and(|v| v.starts_with("PostgreSQL")), "{certificate}");
    assert!(certificate["sentinel"].is_string() && certificate["signature"]["public_key"].is_string(), "{certificate}");

    // The gate: no live verify has finished yet.
    let (code, out) = cutover(&s.t, &[&["--verify"][..], &lag[..]].concat()).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no live verify has finished"), "{out}");
    // A row written on green by something other than turnout: the verify finds it, the gate names it.
    let g = s.green().await;
    g.batch_execute("INSERT INTO t (id, note) VALUES (1000000, 'rogue')").await.expect("rogue row");
    let (code, out) = common::turnout_command(&s.t, "verify", &["--live", "--progress-every", "0s"]).await;
    assert!(code == 1 && out.contains("1000000"), "the verify must find the rogue row\n{out}");
    let (code, out) = cutover(&s.t, &[&["--verify"][..], &lag[..]].concat()).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("found differences in 1 tables") && out.contains("(id=1000000) only on the target"), "{out}");
    assert_eq!(port_behind(&through).await, i32::from(s.blue.port()));
    // Repaired and verified again: the gated cutover goes through.
    g.batch_execute("DELETE FROM t WHERE id = 1000000").await.expect("repair");
    let (code, out) = common::turnout_command(&s.t, "verify", &["--live", "--progress-every", "0s"]).await;
    assert_eq!(code, 0, "{out}");
    let report = file("cutover.json");
    let (code, out) = cutover(&s.t, &[&["--verify", "--verify-max-age", "10m", "--report", &report][..], &lag[..]].concat()).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("verify gate: the live verify of 1 tables"), "{out}");
    let cutover_ms = common::millis_after(&out, "traffic is on green; writes were paused for ");
    let n = writer.count();
    writer.wait_for(n + 100).await;
    let (acked, errors) = writer.finish().await;
    assert!(errors.is_empty(), "client errors: {errors:?}");
    let mut want: Vec<i64> = acked.iter().map(|(id, _)| *id).collect();
    want.sort_unstable();
    assert_eq!(ids(&g).await, want, "green must hold exactly the acknowledged rows");

    // The certificate: the gate's verify, the journal, the signature; any edit breaks it.
    let certificate = common::intact_certificate(std::path::Path::new(&report));
    assert_eq!((certificate["kind"].as_str(), certificate["outcome"].as_str()), (Some("cutover"), Some("done")), "{certificate}");
    assert_eq!(certificate["verify"]["equal"], true, "{certificate}");
    assert!(common::certificate_steps(&certificate).contains(&"switch".to_owned()), "{certificate}");
    assert!(certificate["journal"]["entries"].as_u64().is_some_and(|n| n >= 6), "{certificate}");
    let public = certificate["signature"]["public_key"].as_str().expect("signed").to_owned();
    assert_eq!(common::check_certificate(std::path::Path::new(&report), Some(&public)).0, 0);
    let (code, out) = common::check_certificate(std::path::Path::new(&report), Some(&"ab".repeat(32)));
    assert_eq!(code, 1, "a certificate signed by another key must not pass: {out}");
    let text = std::fs::read_to_string(&report).expect("certificate");
    let edited = keys.path().join("edited.json");
    std::fs::write(&edited, text.replacen("\"outcome\": \"done\"", "\"outcome\": \"undone\"", 1)).expect("edit");
    let (code, out) = common::check_certificate(&edited, None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("digest does not match"), "{out}");
    // GET /cutover/report serves the same document.
    assert_eq!(s.t.get("/cutover/report").map(|b| b.trim().to_owned()), Some(text.trim().to_owned()));
    // The rehearsal took the same steps inside the pause as the cutover, up to where one undid the
    // fence and the other switched.
    let rehearsed = common::intact_certificate(std::path::Path::new(&rehearsal));
    let until = |steps: Vec<String>, end: &str| steps.into_iter().take_while(|s| s != end).collect::<Vec<_>>();
    assert_eq!(until(common::certificate_steps(&rehearsed), "undo"), until(common::certificate_steps(&certificate), "journal"));
    eprintln!("write pause: rehearsal {rehearsed_ms} ms, cutover {cutover_ms} ms");
    assert_eq!(s.t.sigterm(), Some(0));
}

/// A rehearsal names what would slow or block the real cutover — a transaction left open on blue
/// (the fence waits for it or ends it inside the pause) and a session on green keeping a transaction
/// open — and blue serves again afterwards.
#[tokio::test]
async fn a_rehearsal_names_long_transactions_on_blue_and_sessions_on_green() {
    let mut s = setup("read-only", "pgbouncer", "").await;
    let b = s.blue.connect(&s.db).await.expect("blue");
    b.batch_execute("SET application_name = 'long_report'; BEGIN; SELECT count(*) FROM t").await.expect("open on blue");
    let g = s.green().await;
    g.batch_execute("SET application_name = 'early_reader'; BEGIN; SELECT count(*) FROM t").await.expect("open on green");
    // Both transactions must be older than the second from which a rehearsal names them.
    let watcher = s.blue.connect(&s.db).await.expect("blue");
    let old = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'long_report' AND xact_start < now() - interval '1200 ms'";
    while watcher.query_one(old, &[]).await.expect("age").get::<_, i64>(0) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, out) = cutover(&s.t, &["--rehearse", "--yes", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("FINDING: blue: a transaction has been open") && out.contains("application 'long_report'"), "{out}");
    assert!(out.contains("FINDING: green: session pid") && out.contains("application 'early_reader'"), "{out}");
    assert!(out.contains("2 findings would block or slow the real cutover"), "{out}");
    s.assert_blue_serves().await;
    assert_eq!(s.t.sigterm(), Some(0));
}

/// The rollback window has a budget: with `cutover.window_max`, `/status` and `/metrics` show the
/// window's age and the WAL green holds for the reverse stream, the `window` alert rises as the
/// budget is used, and at its end the window closes on its own — the reverse stream stops, its slot
/// on green is dropped — and a rollback is refused naming the budget.
#[tokio::test]
async fn the_rollback_window_ends_on_its_own_when_its_budget_is_spent() {
    let keys = "fence = \"pgbouncer\"\nswitch = \"pgbouncer\"\nwindow_max = \"6s\"\n";
    // Every alert event, as the command hook receives it, one JSON document per line.
    let events = tempfile::tempdir().expect("tmp");
    let file = events.path().join("events.jsonl");
    let hook = format!("[alerts]\ncommand = [\"sh\", \"-c\", \"cat >> {}\"]\n", file.display());
    let mut s = setup_keyed(pair(SCHEMA).await, keys, &hook).await;
    let (code, out) = cutover(&s.t, &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    let window = common::wait_for(&mut s.t, "the rollback window on /status", |t| {
        t.status().filter(|v| v["direction"] == "reverse" && v["window"]["held_bytes"].is_u64()).map(|v| v["window"].clone())
    })
    .await;
    assert_eq!(window["max_age_seconds"], 6, "{window}");
    let metrics = s.t.metrics();
    assert!(metrics.contains("turnout_window_age_seconds ") && metrics.contains("turnout_window_held_bytes "), "{metrics}");
    common::wait_for(&mut s.t, "the window alert", |t| t.status().filter(|v| v["alerts"]["window"] == "critical")).await;
    // The sidecar's own line, written once everything the window used was dropped.
    common::wait_for(&mut s.t, "the window to end", |t| t.log_text().contains("ended the rollback window: the reverse stream stops").then_some(())).await;
    // The end itself reaches the hook, not only the 80 % warning before it.
    let ended = common::wait_for(&mut s.t, "the window's end delivered to the command hook", |_| {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["alert"] == "window" && e["message"].as_str().is_some_and(|m| m.contains("ended on its own: cutover.window_max (6 s) passed")))
    })
    .await;
    assert_eq!(ended["state"], "critical", "{ended}");
    let g = s.green().await;
    let slots: i64 = g.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE '%\\_back'", &[]).await.expect("slots").get(0);
    assert_eq!(slots, 0, "the reverse stream's slot must be dropped when the window ends");
    let (code, out) = common::turnout_command(&s.t, "rollback", &["--when-lag", "<1s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the rollback window ended on its own: cutover.window_max (6 s) passed"), "{out}");
    // Blue's watch read blue up to a mark before the window ended, as `finish` does.
    let log = s.t.log_text();
    assert!(log.contains("the rollback window ended on its own") && !log.contains("before the rollback window ends on its own"), "{log}");
    assert_eq!(s.t.sigterm(), Some(0));
}

/// A transient failure before the fence is retried, not fatal: pgbouncer's admin console, reached
/// through a proxy, drops the first connections the cutover opens to check the fence (as a
/// pgbouncer restarting would), and the cutover retries, then completes with every row on green.
#[tokio::test]
async fn a_transient_failure_checking_the_fence_is_retried_and_the_cutover_completes() {
    let (blue, green, db) = pair(SCHEMA).await;
    green.execute("postgres", &format!("ALTER USER postgres PASSWORD '{}'", blue.password())).await.expect("password");
    let bouncer = PgBouncer::start(&blue, &db).expect("pgbouncer");
    let console = Proxy::start(bouncer.port()).expect("proxy");
    let admin_url = bouncer.admin_url().replace(&format!(":{}/", bouncer.port()), &format!(":{}/", console.port()));
    let toml = format!(
        "[cutover]\nfence = \"pgbouncer\"\nswitch = \"pgbouncer\"\n[cutover.pgbouncer]\nadmin_url = \"{admin_url}\"\ndatabase = \"{db}\"\nconfig_file = \"{}\"\n",
        bouncer.config_path().display()
    );
    let dir = tempfile::tempdir().expect("tmp");
    let green_url = format!("{}?sslmode=disable", green.url_for("postgres", blue.password(), &db));
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    blue.execute(&db, "INSERT INTO t (note) SELECT 'before' FROM generate_series(1, 200)").await.expect("rows");
    console.refuse_next(2);
    let (code, out) = cutover(&t, &["--when-lag", "1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert_eq!(console.refused(), 2);
    assert_eq!(out.matches("checking the fence failed on a transient error, retrying").count(), 2, "{out}");
    let (g, conn) = tokio_postgres::connect(&green_url, tokio_postgres::NoTls).await.expect("green");
    tokio::spawn(conn);
    let n: i64 = g.query_one("SELECT count(*) FROM t WHERE note = 'before'", &[]).await.expect("count").get(0);
    assert_eq!(n, 200);
    assert_eq!(port_behind(&bouncer.url(&db)).await, i32::from(green.port()));
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn lag_never_under_the_threshold_times_out_and_leaves_blue_untouched() {
    let mut s = setup("pgbouncer", "pgbouncer", "").await;
    let g = s.block_green().await;
    let deadline = Instant::now() + WAIT;
    while s.t.status().and_then(|v| v["lag_seconds"].as_f64()).unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "lag never grew\n{}", s.t.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, out) = cutover(&s.t, &["--when-lag", "500ms", "--timeout", "3s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("lag did not stay under 500 ms"), "{out}");
    // Not paused, not switched: a write through pgbouncer goes to blue at once.
    s.assert_blue_serves().await;
    g.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_sequence_created_on_blue_after_the_copy_is_created_on_green_and_moved_ahead() {
    let mut s = setup("read-only", "pgbouncer", "").await;
    // A sequence created on blue after the snapshot is in no change stream: the cutover creates it on
    // green from blue's definition before it moves green's sequences ahead of blue's.
    s.blue.execute(&s.db, "CREATE SEQUENCE only_on_blue INCREMENT BY 7; SELECT nextval('only_on_blue') FROM generate_series(1, 20)").await.expect("sequence");
    let (code, out) = cutover(&s.t, &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SEQUENCE public.only_on_blue: created"), "{out}");
    let g = s.green().await;
    let next: i64 = g.query_one("SELECT nextval('only_on_blue')", &[]).await.expect("sequence on green").get(0);
    assert!(next > 7 * 20, "green's only_on_blue ({next}) must be ahead of blue's");
    let step: i64 = g.query_one("SELECT increment_by FROM pg_sequences WHERE sequencename = 'only_on_blue'", &[]).await.expect("step").get(0);
    assert_eq!(step, 7);
    assert_eq!(s.t.sigterm(), Some(0));
}

/// pgoutput carries rows and added columns only: objects created on blue after the schema copy are
/// named by a dry run and created on green by the cutover, from blue's definitions. (A partition
/// detached or attached stops replication itself: `divergence`.)
#[tokio::test]
async fn schema_objects_changed_on_blue_after_the_copy_are_named_by_a_dry_run_and_carried_by_the_cutover() {
    let servers = pair(
        "CREATE TABLE t (id bigserial PRIMARY KEY, note text); \
         CREATE TABLE events (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
         CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01'); \
         CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01'); \
         INSERT INTO events VALUES (1, '2023-05-01'), (2, '2024-05-01')",
    )
    .await;
    let mut s = setup_with(servers, "read-only", "pgbouncer", "").await;
    let changes = "CREATE INDEX t_note ON t (note); ALTER TABLE t ADD CONSTRAINT note_short CHECK (length(note) < 100); \
        CREATE VIEW recent AS SELECT id FROM t WHERE id > 10; CREATE FUNCTION twice(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2'; \
        CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.note := NEW.note || '!'; RETURN NEW; END$$; \
        CREATE TRIGGER t_stamp BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION stamp(); CREATE SEQUENCE tickets; \
        CREATE INDEX events_at ON events (at)";
    s.blue.execute(&s.db, changes).await.expect("changes on blue");
    let (code, out) = cutover(&s.t, &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 0, "{out}");
    // The check constraint is part of the table's definition as pg_dump prints it.
    assert!(out.contains("TABLE public.t differs") && out.contains("CONSTRAINT note_short CHECK"), "{out}");
    let objects = [
        "INDEX public.t_note",
        "VIEW public.recent",
        "FUNCTION public.twice(integer)",
        "FUNCTION public.stamp()",
        "TRIGGER public.t t_stamp",
        "SEQUENCE public.tickets",
        "INDEX public.events_at",
    ];
    for object in objects {
        assert!(out.contains(&format!("{object} is on blue only")), "{object}: {out}");
    }
    let (code, out) = cutover(&s.t, &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}");
    for object in objects {
        assert!(out.contains(&format!("{object}: created")), "{object}: {out}");
    }
    assert!(out.contains("TABLE public.t: altered"), "{out}");
    // Green behaves as blue does: the trigger fires there, the check holds, the view answers.
    let g = s.green().await;
    let note: String = g.query_one("INSERT INTO t (note) VALUES ('hi') RETURNING note", &[]).await.expect("insert").get(0);
    assert_eq!(note, "hi!");
    assert!(g.execute("INSERT INTO t (note) VALUES (repeat('x', 200))", &[]).await.is_err(), "the check constraint is on green");
    let twice: i32 = g.query_one("SELECT twice(21)", &[]).await.expect("function").get(0);
    assert_eq!(twice, 42);
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_transaction_holding_an_xid_on_green_stops_the_cutover_before_the_fence() {
    let mut s = setup("read-only", "pgbouncer", "").await;
    // The reverse slot is made before the fence and waits for green's transactions that hold an xid.
    let g = s.green().await;
    let pid: i32 = g.query_one("SELECT pg_backend_pid()", &[]).await.expect("pid").get(0);
    g.batch_execute("BEGIN; SELECT pg_current_xact_id()").await.expect("xid");
    let (code, out) = cutover(&s.t, &["--when-lag", "1h", "--max-pause", "2s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("hold an xid") && out.contains(&pid.to_string()), "{out}");
    assert!(!out.contains("fenced writes"), "writes were paused for a cutover that could not arm its way back:\n{out}");
    g.batch_execute("ROLLBACK").await.expect("end");
    s.assert_blue_serves().await;
    let left: i64 = s.green().await.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE '%\\_back'", &[]).await.expect("slots").get(0);
    assert_eq!(left, 0, "the reverse slot outlived the failed cutover");
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_failure_after_the_fence_undoes_it_and_blue_keeps_serving() {
    let mut s = setup("read-only", "pgbouncer", "").await;
    // Green cannot apply the sentinel (locked): the write pause runs into --max-pause after the fence.
    let g = s.block_green().await;
    let (code, out) = cutover(&s.t, &["--when-lag", "1h", "--max-pause", "2s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("fenced writes") && out.contains("within --max-pause") && out.contains("undid the fence"), "{out}");
    g.batch_execute("ROLLBACK").await.expect("unlock");
    // Blue is writable again for new sessions, through pgbouncer still pointing at blue.
    s.assert_blue_serves().await;
    let b = s.blue.connect(&s.db).await.expect("blue");
    let ro: String = b.query_one("SHOW default_transaction_read_only", &[]).await.expect("show").get(0);
    assert_eq!(ro, "off");
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn kill_9_while_writes_are_fenced_is_undone_when_turnout_restarts() {
    let mut s = setup("pgbouncer", "pgbouncer", "").await;
    // Green cannot apply (locked), so the cutover sits fenced waiting for the sentinel.
    let g = s.block_green().await;
    let config = s.t.config_path().to_path_buf();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["cutover", "--config"])
        .arg(&config)
        .args(["--when-lag", "1h", "--max-pause", "120s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cutover");
    let admin = turnout_cutover::PgBouncerAdmin::from_url(&s.bouncer.admin_url()).expect("admin");
    let deadline = Instant::now() + WAIT;
    while !admin.is_paused(&s.db).await.expect("show databases") {
        assert!(Instant::now() < deadline, "the fence never went up\n{}", s.t.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.t.kill9();
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    assert!(admin.is_paused(&s.db).await.expect("show"), "the fence must still be up after the crash");
    g.batch_execute("ROLLBACK").await.expect("unlock");
    s.t.start();
    common::wait_streaming(&mut s.t).await;
    assert!(!admin.is_paused(&s.db).await.expect("show"), "restart must undo the fence");
    assert!(s.t.log_text().contains("the fence on blue was undone"), "{}", s.t.log_text());
    s.assert_blue_serves().await;
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn read_only_fence_with_a_command_switch_completes_and_blue_stays_fenced() {
    let dir = tempfile::tempdir().expect("tmp");
    let seen = dir.path().join("switched-to");
    let script = dir.path().join("point-app-at-green.sh");
    std::fs::write(&script, format!("#!/bin/sh\nprintf '%s' \"$TURNOUT_GREEN_URL\" > '{}'\n", seen.display())).expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let extra = format!("[cutover.command]\nargv = [\"{}\"]\n", script.display());
    let mut s = setup("read-only", "command", &extra).await;
    s.blue.execute(&s.db, "INSERT INTO t (note) SELECT 'before' FROM generate_series(1, 500)").await.expect("rows");
    let (code, out) = cutover(&s.t, &["--when-lag", "1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    // The command got green's URL (credentials and all, so it can repoint an application).
    let url = std::fs::read_to_string(&seen).expect("the command ran");
    assert!(url.contains(&format!(":{}/", s.green.port())), "{url}");
    // Every row is on green, and blue stays read-only for new sessions: never both writable.
    let g = s.green().await;
    let n: i64 = g.query_one("SELECT count(*) FROM t WHERE note = 'before'", &[]).await.expect("count").get(0);
    assert_eq!(n, 500);
    let b = s.blue.connect(&s.db).await.expect("blue");
    let err = b.batch_execute("INSERT INTO t (note) VALUES ('after')").await.expect_err("blue must refuse writes");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION), "{err}");
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn read_only_fence_with_an_haproxy_switch_sends_new_connections_to_green() {
    let Haproxied { blue, green, db, through, mut t, _proxy, _dir, .. } = haproxied(pair(SCHEMA).await).await;
    assert_eq!(port_behind(&through).await, i32::from(blue.port()));
    blue.execute(&db, "INSERT INTO t (note) SELECT 'before' FROM generate_series(1, 300)").await.expect("rows");
    let (code, out) = cutover(&t, &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("switched traffic to green (haproxy)"), "{out}");
    // New connections through haproxy reach green, which holds every row and accepts writes with
    // ids beyond blue's.
    assert_eq!(port_behind(&through).await, i32::from(green.port()));
    let (c, conn) = tokio_postgres::connect(&through, tokio_postgres::NoTls).await.expect("through haproxy");
    tokio::spawn(conn);
    let n: i64 = c.query_one("SELECT count(*) FROM t WHERE note = 'before'", &[]).await.expect("count").get(0);
    assert_eq!(n, 300);
    c.batch_execute("INSERT INTO t (note) VALUES ('after')").await.expect("green takes writes without key collisions");
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn kill_9_while_switching_is_completed_when_turnout_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let (extra, started, switched) = common::hanging_switch(dir.path());
    let mut s = setup("pgbouncer", "command", &extra).await;
    let mut child = common::cutover_until_switching(&s.t, &started).await;
    s.t.kill9();
    let _ = child.kill();
    let _ = child.wait();
    assert!(!switched.exists());
    // Restart: the journal says the switch had begun (green was already proven complete and the
    // reverse stream armed), so it is completed, not undone — and replication goes on green → blue.
    s.t.start();
    common::wait_for(&mut s.t, "the reverse stream", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await;
    assert!(s.t.log_text().contains("the switch to green was completed"), "{}", s.t.log_text());
    let url = std::fs::read_to_string(&switched).expect("the switch was completed");
    assert!(url.contains(&format!(":{}/", s.green.port())), "{url}");
    // Blue stays fenced (pgbouncer paused): never both writable.
    let admin = turnout_cutover::PgBouncerAdmin::from_url(&s.bouncer.admin_url()).expect("admin");
    assert!(admin.is_paused(&s.db).await.expect("show"), "blue must stay fenced after the switch");
    // A write green accepts after the crash reaches blue: the reverse stream armed before the
    // switch survived it.
    let g = s.green().await;
    g.batch_execute("INSERT INTO t (note) VALUES ('after the crash')").await.expect("green takes writes");
    let b = s.blue.connect(&s.db).await.expect("blue");
    let deadline = Instant::now() + WAIT;
    loop {
        let n: i64 = b.query_one("SELECT count(*) FROM t WHERE note = 'after the crash'", &[]).await.expect("count").get(0);
        if n == 1 {
            break;
        }
        assert_eq!(n, 0, "applied twice");
        assert!(Instant::now() < deadline, "green's write never reached blue\n{}", s.t.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.t.sigterm(), Some(0));
}

/// Blue and green behind haproxy (green with blue's password), and a running sidecar with the
/// read-only fence and the haproxy switch.
struct Haproxied {
    blue: PgServer,
    green: PgServer,
    db: String,
    /// The application's URL, through haproxy.
    through: String,
    /// Green with blue's password.
    green_url: String,
    t: Turnout,
    _proxy: turnout_testbed::HaProxy,
    _dir: tempfile::TempDir,
}

async fn haproxied((blue, green, db): (PgServer, PgServer, String)) -> Haproxied {
    green.execute("postgres", &format!("ALTER USER postgres PASSWORD '{}'", blue.password())).await.expect("password");
    let proxy = turnout_testbed::HaProxy::start("db", ("blue", blue.port()), ("green", green.port())).expect("haproxy");
    let through = format!("postgres://postgres:{}@127.0.0.1:{}/{db}?sslmode=disable", blue.password(), proxy.port());
    let toml = format!(
        "[cutover]\nfence = \"read-only\"\nswitch = \"haproxy\"\n[cutover.haproxy]\nadmin_socket = \"{}\"\nbackend = \"db\"\n",
        proxy.admin_socket().display()
    );
    let dir = tempfile::tempdir().expect("tmp");
    let green_url = format!("{}?sslmode=disable", green.url_for("postgres", blue.password(), &db));
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    Haproxied { blue, green, db, through, green_url, t, _proxy: proxy, _dir: dir }
}

/// Waits until the sidecar replicates green → blue.
async fn wait_reverse(t: &mut Turnout) -> serde_json::Value {
    common::wait_for(t, "the reverse stream", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await
}

/// Every row of `t` as text, by id.
async fn row_texts(c: &tokio_postgres::Client) -> Vec<String> {
    c.query("SELECT ROW(t.*)::text FROM t ORDER BY id", &[]).await.expect("rows").iter().map(|r| r.get(0)).collect()
}

async fn ids(c: &tokio_postgres::Client) -> Vec<i64> {
    c.query("SELECT id FROM t ORDER BY id", &[]).await.expect("ids").iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn rollback_under_load_brings_every_write_green_accepted_back_to_blue_exactly_once() {
    // The rollback arms nothing (the stream stops, `finish` drops the window's objects); the one
    // that arms the next generation is in tests/iterate.rs.
    let mut s = setup_keyed(pair(SCHEMA).await, "fence = \"pgbouncer\"\nswitch = \"pgbouncer\"\niterate = false\n", "").await;
    let through = s.bouncer.url(&s.db);
    let writer = start_writer(through.clone(), Duration::from_millis(5));
    writer.wait_for(100).await;
    let (code, out) = cutover(&s.t, &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("prepared reverse replication"), "{out}");
    wait_reverse(&mut s.t).await;
    writer.wait_for(writer.count() + 100).await;
    // kill -9 while the reverse stream runs; green keeps taking writes meanwhile.
    s.t.kill9();
    writer.wait_for(writer.count() + 100).await;
    s.t.start();
    wait_reverse(&mut s.t).await;
    writer.wait_for(writer.count() + 50).await;
    // The rollback rehearsed first: green fenced, blue proves it holds everything, the fence lifted;
    // the application goes on writing on green.
    let rehearse = ["--rehearse", "--yes", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];
    let (code, out) = common::turnout_command(&s.t, "rollback", &rehearse).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("blue applied the sentinel") && out.contains("rehearsal complete: writes on green"), "{out}");
    assert_eq!(port_behind(&through).await, i32::from(s.green.port()), "a rehearsal leaves traffic on green");
    writer.wait_for(writer.count() + 50).await;
    let (code, out) = common::turnout_command(&s.t, "rollback", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("blue applied the sentinel") && out.contains("traffic is on blue"), "{out}");
    writer.wait_for(writer.count() + 100).await;
    let (acked, errors) = writer.finish().await;
    assert!(errors.is_empty(), "client errors during cutover and rollback: {errors:?}");
    // Every acknowledged write — on blue before, on green in the window, on blue after — is on blue
    // exactly once; green holds a prefix of them.
    let mut want: Vec<i64> = acked.iter().map(|(id, _)| *id).collect();
    want.sort_unstable();
    let b = s.blue.connect(&s.db).await.expect("blue");
    assert_eq!(ids(&b).await, want, "blue must hold exactly the acknowledged rows");
    let g = s.green().await;
    let on_green = ids(&g).await;
    assert!(on_green.len() < want.len() && on_green.iter().all(|id| want.binary_search(id).is_ok()), "green must hold a prefix");
    // pgbouncer points at blue again; blue's sequences are ahead of everything green handed out.
    assert_eq!(port_behind(&through).await, i32::from(s.blue.port()));
    let green_loose: i64 = g.query_one("SELECT last_value FROM loose_seq", &[]).await.expect("seq").get(0);
    let blue_next: i64 = b.query_one("SELECT nextval('loose_seq')", &[]).await.expect("seq").get(0);
    assert!(blue_next > green_loose, "blue's loose_seq {blue_next} must be ahead of green's {green_loose}");
    let status = common::wait_for(&mut s.t, "replication to stop", |t| t.status().filter(|v| v["phase"] == "stopped")).await;
    assert_eq!(status["direction"], "reverse", "{status}");
    // `turnout finish` drops the reverse slot and publication on green and the origin on blue.
    let (code, out) = common::turnout_command(&s.t, "finish", &[]).await;
    assert_eq!(code, 0, "{out}");
    let slots: i64 = g.query_one("SELECT count(*) FROM pg_replication_slots", &[]).await.expect("slots").get(0);
    let pubs: i64 = g.query_one("SELECT count(*) FROM pg_publication", &[]).await.expect("pubs").get(0);
    let origins: i64 = b.query_one("SELECT count(*) FROM pg_replication_origin WHERE roname LIKE '%\\_back'", &[]).await.expect("origins").get(0);
    assert_eq!((slots, pubs, origins), (0, 0, 0), "{out}");
    // Blue's forward slot, kept for the watch on blue in the window, goes when the window ends.
    let deadline = Instant::now() + common::WAIT;
    while b.query_one("SELECT count(*) FROM pg_replication_slots", &[]).await.expect("slots").get::<_, i64>(0) > 0 {
        assert!(Instant::now() < deadline, "the forward slot on blue must go when the rollback ends the window");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // After a rollback that armed nothing this stream never replicates again, and says why.
    assert_eq!(s.t.sigterm(), Some(0));
    s.t.start();
    assert_eq!(common::wait_exit(&mut s.t).await, 1);
    assert!(s.t.log_text().contains("traffic was rolled back to blue") && s.t.log_text().contains("cutover.iterate = false"), "{}", s.t.log_text());
}

#[tokio::test]
async fn read_only_rollback_through_haproxy_keeps_one_side_writable_and_filters_turnouts_own_changes() {
    // Green on PostgreSQL 15: no server-side origin filter, so loop prevention is turnout's own.
    read_only_rollback_through_haproxy(15, 15).await;
}

#[tokio::test]
async fn rollback_to_an_older_blue_16_from_green_18_through_haproxy() {
    // The reverse stream reads green 18's pgoutput and applies on blue 16 through blue's origin.
    read_only_rollback_through_haproxy(16, 18).await;
}

/// Cutover with a read-only fence and haproxy, writes on green reach blue (every row compared by its
/// text, and by `verify --live` in the rollback window), rollback, blue takes writes again.
async fn read_only_rollback_through_haproxy(blue_version: u32, green_version: u32) {
    let Haproxied { blue, green, db, through, green_url, mut t, _proxy, _dir } =
        haproxied(common::pair_versions(blue_version, green_version, SCHEMA).await).await;
    blue.execute(&db, "INSERT INTO t (note) SELECT 'blue ' || g FROM generate_series(1, 300) g").await.expect("rows");
    let (code, out) = cutover(&t, &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    wait_reverse(&mut t).await;
    // The application, through haproxy, now writes on green: updates, deletes and inserts.
    let app = |url: String| async move {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        c
    };
    let c = app(through.clone()).await;
    c.batch_execute(
        "UPDATE t SET note = note || ' updated on green' WHERE id % 3 = 0; DELETE FROM t WHERE id % 7 = 0; \
                     INSERT INTO t (note) SELECT 'green ' || g FROM generate_series(1, 200) g",
    )
    .await
    .expect("green takes writes");
    // Blue follows, exactly (every row by its text), while new application sessions on blue are
    // still refused.
    let b = blue.connect(&db).await.expect("blue");
    let (g, conn) = tokio_postgres::connect(&green_url, tokio_postgres::NoTls).await.expect("green");
    tokio::spawn(conn);
    let deadline = Instant::now() + WAIT;
    while row_texts(&b).await != row_texts(&g).await {
        assert!(Instant::now() < deadline, "blue never converged to green\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = b.batch_execute("INSERT INTO t (note) VALUES ('app on blue')").await.expect_err("blue must stay fenced");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION), "{err}");
    // In the rollback window a live verify compares the other way: green is the source.
    let (code, out) = common::turnout_command(&t, "verify", &["--live", "--chunk-rows", "100"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("compared at green position") && out.contains("1 tables compared, 0 differ"), "{out}");
    let (code, out) = common::turnout_command(&t, "rollback", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("lifted blue's read-only fence"), "{out}");
    // Traffic is on blue, which takes writes again; green is now the fenced one.
    assert_eq!(port_behind(&through).await, i32::from(blue.port()));
    let c = app(through.clone()).await;
    c.batch_execute("INSERT INTO t (note) VALUES ('back on blue')").await.expect("blue takes writes again");
    let (g, conn) = tokio_postgres::connect(&green_url, tokio_postgres::NoTls).await.expect("green");
    tokio::spawn(conn);
    let err = g.batch_execute("INSERT INTO t (note) VALUES ('app on green')").await.expect_err("green must be fenced");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION), "{err}");
    // Lifting blue's fence ended the sessions opened under it, this test's too.
    let b = blue.connect(&db).await.expect("blue");
    let n: i64 = b.query_one("SELECT count(*) FROM t WHERE note LIKE 'green %'", &[]).await.expect("count").get(0);
    assert_eq!(n, 200, "every row inserted on green is on blue exactly once");
    // The stream goes on blue → green as its next generation, with no new copy: the row written on
    // blue reaches green, and a second cutover lifts the read-only fence the rollback left on green.
    common::wait_for(&mut t, "generation 2", |t| t.status().filter(|v| v["generation"] == 2 && v["direction"] == "forward" && v["phase"] == "streaming")).await;
    let (code, out) = cutover(&t, &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("lifted green's read-only fence from the rollback"), "{out}");
    assert_eq!(port_behind(&through).await, i32::from(green.port()));
    let c = app(through.clone()).await;
    c.batch_execute("INSERT INTO t (note) VALUES ('green again')").await.expect("green takes writes again");
    // The fence on blue and the one lifted on green ended the sessions opened before.
    let (b, g) = (blue.connect(&db).await.expect("blue"), app(green_url.clone()).await);
    let deadline = Instant::now() + WAIT;
    while row_texts(&b).await != row_texts(&g).await {
        assert!(Instant::now() < deadline, "blue never converged to green in the second window\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n: i64 = g.query_one("SELECT count(*) FROM t WHERE note IN ('back on blue', 'green again')", &[]).await.expect("count").get(0);
    assert_eq!(n, 2, "the row written on blue after the rollback, and the one on green after the second cutover");
    assert_eq!(t.sigterm(), Some(0));
}
