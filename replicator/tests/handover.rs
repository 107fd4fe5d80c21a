//! Downstream consumers of blue's log carried over to green by the cutover (`[[handover]]`), checked
//! with consumers nobody here wrote: `pg_recvlogical` with `test_decoding`, and the server's own
//! `pg_logical_slot_get_binary_changes` with `pgoutput` and a publication. An application writes
//! through pgbouncer across the cutover; each consumer reads blue up to the fence, is repointed to
//! green from the hand-over record, and must have seen every row the application committed exactly
//! once.

use crate::common;

use common::{Turnout, Writer, WAIT};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use turnout_testbed::PgServer;

const SCHEMA: &str = "CREATE TABLE t (id bigserial PRIMARY KEY, note text); CREATE PUBLICATION dbz_pub FOR TABLE t";

/// `pg_recvlogical` reading `slot` (test_decoding, changes with a replication origin left out — the
/// reverse stream's on blue after the switch) from `url` into `file`, confirming every second.
fn recvlogical(url: &str, slot: &str, file: &std::path::Path) -> Child {
    let bin = turnout_testbed::client_bin_dir(15).expect("pg_recvlogical").join("pg_recvlogical");
    Command::new(bin)
        .args(["-d", url, "--slot", slot, "--start", "-o", "only-local=1", "-o", "skip-empty-xacts=1", "-F", "1", "-s", "1", "-f"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pg_recvlogical")
}

/// Stops `pg_recvlogical` as an operator would (SIGINT: it flushes and confirms what it wrote).
fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// The ids of `t` inserted, in the order `test_decoding` printed them.
fn decoded_ids(file: &std::path::Path) -> Vec<i64> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("table public.t: INSERT: id[bigint]:"))
        .filter_map(|rest| rest.split(' ').next().and_then(|n| n.parse().ok()))
        .collect()
}

/// The first column of a pgoutput Insert message (`I`, relation oid, `N`, column count, then each
/// column as kind, length, text): the row's id.
fn pgoutput_insert_id(data: &[u8]) -> Option<i64> {
    if data.first() != Some(&b'I') || data.get(5) != Some(&b'N') || data.get(8) != Some(&b't') {
        return None;
    }
    let len = u32::from_be_bytes(data.get(9..13)?.try_into().ok()?) as usize;
    std::str::from_utf8(data.get(13..13 + len)?).ok()?.parse().ok()
}

/// An application writing one row per transaction through pgbouncer: each id acknowledged, with when.
/// Simple-protocol statements, as through any transaction pooler: a prepared statement does not
/// follow the client to the other server at the switch.
fn start_writer(url: String) -> Writer<(i64, Instant)> {
    Writer::start(move |log| async move {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect through pgbouncer");
        tokio::spawn(conn);
        while log.running() {
            match c.simple_query("INSERT INTO t (note) VALUES ('w') RETURNING id").await {
                Ok(messages) => {
                    if let Some(id) = common::first_value::<i64>(&messages) {
                        log.acked((id, Instant::now()));
                    }
                }
                Err(err) => log.failed(format!("{err}: {}", err.as_db_error().map_or_else(String::new, |e| format!("{} {}", e.code().code(), e.message())))),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Counts of each id; every id of `want` must appear exactly once and nothing else.
fn assert_exactly_once(who: &str, seen: &[i64], want: &[i64]) {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for id in seen {
        *counts.entry(*id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
    let missing: Vec<_> = want.iter().filter(|id| !counts.contains_key(id)).copied().collect();
    let extra: Vec<_> = counts.keys().filter(|id| want.binary_search(id).is_err()).copied().collect();
    assert!(twice.is_empty() && missing.is_empty() && extra.is_empty(), "{who}: seen twice {twice:?}, missing {missing:?}, not committed {extra:?}");
}

async fn ids(c: &tokio_postgres::Client) -> Vec<i64> {
    c.query("SELECT id FROM t ORDER BY id", &[]).await.expect("ids").iter().map(|r| r.get(0)).collect()
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

/// Blue 15 with two consumers, green 17, pgbouncer in front, the sidecar carrying both consumers.
struct Setup {
    blue: PgServer,
    green: PgServer,
    green_url: String,
    db: String,
    bouncer: turnout_testbed::PgBouncer,
    t: Turnout,
    dir: tempfile::TempDir,
}

async fn setup(handover: &str) -> Setup {
    let (blue, green, db) = common::pair_versions(15, 17, SCHEMA).await;
    blue.execute(&db, "SELECT pg_create_logical_replication_slot('downstream', 'test_decoding'); SELECT pg_create_logical_replication_slot('dbz', 'pgoutput')")
        .await
        .expect("consumer slots");
    let (bouncer, green_url, toml) = common::behind_pgbouncer(&blue, &green, &db, "fence = \"pgbouncer\"\nswitch = \"pgbouncer\"\n", handover).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    Setup { blue, green, green_url, db, bouncer, t, dir }
}

/// The changes a poller took: position and pgoutput message.
type Changes = std::sync::Arc<std::sync::Mutex<Vec<(turnout_decoders::Lsn, Vec<u8>)>>>;

/// A pgoutput consumer through SQL, polling `slot` on `url` until stopped: every change it took
/// (and so confirmed), with its position.
struct Poller {
    seen: Changes,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Poller {
    async fn start(url: &str, slot: &'static str) -> Poller {
        let c = client(url).await;
        let seen: Changes = Default::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let log = std::sync::Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while !*stopped.borrow() {
                let rows = c
                    .query(
                        "SELECT lsn::text, data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'dbz_pub')",
                        &[&slot],
                    )
                    .await
                    .expect("pgoutput changes");
                log.lock().expect("log").extend(rows.iter().map(|r| (r.get::<_, String>(0).parse().expect("lsn"), r.get(1))));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Poller { seen, stop, task }
    }

    /// Stops polling; the inserted ids it took, those at or before `upto` only when given.
    async fn finish(self, upto: Option<turnout_decoders::Lsn>) -> Vec<i64> {
        let _ = self.stop.send(true);
        self.task.await.expect("poller");
        let seen = self.seen.lock().expect("log");
        seen.iter().filter(|(lsn, _)| upto.is_none_or(|u| *lsn <= u)).filter_map(|(_, data)| pgoutput_insert_id(data)).collect()
    }

    fn ids(&self) -> Vec<i64> {
        self.seen.lock().expect("log").iter().filter_map(|(_, data)| pgoutput_insert_id(data)).collect()
    }
}

/// The hand-over record once the stream that follows the switch of `direction` waited for the
/// consumers: its fence and where they resume.
async fn handed_over(t: &mut Turnout, direction: &str) -> serde_json::Value {
    let view = common::wait_for(t, "the hand-over settled", |t| {
        let v: serde_json::Value = serde_json::from_str(&t.get("/handover")?).ok()?;
        (v["handed_over"]["settled"] == true && v["handed_over"]["direction"] == direction).then_some(v)
    })
    .await;
    let handed = view["handed_over"]["consumers"].as_array().cloned().unwrap_or_default();
    assert_eq!(handed.len(), 2, "{view}");
    assert!(handed.iter().all(|h| h["gap"].is_null() && h["fence"].is_string() && h["resume"].is_string()), "{view}");
    view
}

#[tokio::test]
async fn consumers_read_every_committed_row_once_across_a_cutover_and_a_rollback() {
    let mut s = setup("[[handover]]\nslot = \"downstream\"\nfilters_origin = true\n[[handover]]\nslot = \"dbz\"\npublications = [\"dbz_pub\"]\n").await;
    let (blue_url, green_url) = (s.blue.url(&s.db), s.green_url.clone());
    // Before the cutover `check` lists both consumers as carried.
    let (code, out) = common::turnout_command(&s.t, "check", &[]).await;
    assert!(out.contains("logical downstream [test_decoding]") && out.contains("carried over to green at the cutover"), "{code}\n{out}");
    // And `/status` shows them, as the sidecar last looked.
    let listed = common::wait_for(&mut s.t, "blue's consumers on /status", |t| t.status().filter(|v| v["consumers"].is_array())).await;
    let carried: Vec<&str> = listed["consumers"].as_array().into_iter().flatten().filter(|c| c["carried"] == true).filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(carried, ["dbz", "downstream"], "{listed}");
    let files: Vec<std::path::PathBuf> = (0..3).map(|i| s.dir.path().join(format!("downstream-{i}.txt"))).collect();
    let reader = recvlogical(&blue_url, "downstream", &files[0]);
    let poller = Poller::start(&blue_url, "dbz").await;

    let writer = start_writer(s.bouncer.url(&s.db));
    writer.wait_for(200).await;
    let lag = ["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];
    let (code, out) = common::turnout_command(&s.t, "cutover", &lag).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("consumers to hand over to green, ready: downstream, dbz") || out.contains("ready: dbz, downstream"), "{out}");
    assert!(out.contains("consumers handed over"), "the pause names the hand-over's phase: {out}");

    // The record: where each stopped on blue and resumes on green; the reverse stream waited for both.
    let view = handed_over(&mut s.t, "forward").await;
    let fence: turnout_decoders::Lsn = view["handed_over"]["consumers"][0]["fence"].as_str().and_then(|f| f.parse().ok()).expect("fence");
    assert!(view["repoint"].as_array().is_some_and(|r| r.iter().any(|l| l.as_str().is_some_and(|l| l.contains("Debezium")))), "{view}");
    let certificate: serde_json::Value = serde_json::from_str(&s.t.get("/cutover/report").expect("report")).expect("json");
    assert_eq!(certificate["handover"].as_array().map(Vec::len), Some(2), "{certificate}");
    let g = client(&green_url).await;
    let slots: Vec<(String, String)> = g
        .query("SELECT slot_name::text, plugin::text FROM pg_replication_slots WHERE slot_name IN ('downstream', 'dbz') ORDER BY 1", &[])
        .await
        .expect("green slots")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(slots, [("dbz".to_owned(), "pgoutput".to_owned()), ("downstream".to_owned(), "test_decoding".to_owned())]);
    let tables: Vec<String> =
        g.query("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'dbz_pub'", &[]).await.expect("pub").iter().map(|r| r.get(0)).collect();
    assert_eq!(tables, ["t"], "the publication the pgoutput consumer reads is on green as on blue");

    // Repointed to green from the record: blue up to the fence, green from its slot.
    stop(reader);
    let mut pgoutput = poller.finish(Some(fence)).await;
    let reader = recvlogical(&green_url, "downstream", &files[1]);
    let poller = Poller::start(&green_url, "dbz").await;
    writer.wait_for(writer.count() + 150).await;
    // Green's slots must be read up to now before the rollback hands them back.
    let deadline = Instant::now() + WAIT;
    while decoded_ids(&files[1]).is_empty() || poller.ids().is_empty() {
        assert!(Instant::now() < deadline, "the consumers on green read nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The rollback hands them back: green up to its fence, blue from its slot, moved past the window.
    let (code, out) = common::turnout_command(&s.t, "rollback", &lag).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("consumers to hand over to blue, ready: downstream, dbz") || out.contains("ready: dbz, downstream"), "{out}");
    let view = handed_over(&mut s.t, "reverse").await;
    let fence: turnout_decoders::Lsn = view["handed_over"]["consumers"][0]["fence"].as_str().and_then(|f| f.parse().ok()).expect("fence");
    stop(reader);
    pgoutput.extend(poller.finish(Some(fence)).await);
    let reader = recvlogical(&blue_url, "downstream", &files[2]);
    let poller = Poller::start(&blue_url, "dbz").await;
    writer.wait_for(writer.count() + 100).await;
    let (acked, errors) = writer.finish().await;
    let acked: Vec<i64> = acked.iter().map(|(id, _)| *id).collect();
    assert!(errors.is_empty(), "client errors during the cutover and the rollback: {errors:?}");
    let b = client(&blue_url).await;
    let committed = ids(&b).await;
    assert!(acked.iter().all(|id| committed.binary_search(id).is_ok()), "an acknowledged write is missing on blue");

    // Each consumer — blue, green, blue again — saw every committed row once.
    let deadline = Instant::now() + WAIT;
    while files.iter().map(|f| decoded_ids(f).len()).sum::<usize>() < committed.len() || pgoutput.len() + poller.ids().len() < committed.len() {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop(reader);
    pgoutput.extend(poller.finish(None).await);
    let decoded: Vec<i64> = files.iter().flat_map(|f| decoded_ids(f)).collect();
    let by_file: Vec<usize> = files.iter().map(|f| decoded_ids(f).len()).collect();
    eprintln!("committed {} rows; pg_recvlogical saw {} ({by_file:?} by file), pgoutput {}", committed.len(), decoded.len(), pgoutput.len());
    assert_exactly_once("pg_recvlogical (test_decoding)", &decoded, &committed);
    assert_exactly_once("pgoutput", &pgoutput, &committed);
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_consumer_behind_at_the_fence_is_refused_and_with_record_its_gap_is_kept() {
    // Nobody reads `downstream` while the application writes: it falls behind.
    let mut s = setup("[[handover]]\nslot = \"downstream\"\nwait = \"1s\"\n").await;
    s.blue.execute(&s.db, "INSERT INTO t (note) SELECT 'x' FROM generate_series(1, 100)").await.expect("rows");
    let (code, out) = common::turnout_command(&s.t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the consumer of slot downstream has read blue's log up to") && out.contains("on_lag = \"record\""), "{out}");
    // Refused before the fence: blue takes writes and green has no slot of the consumer's yet made
    // in use (the one made is idle, kept for the next attempt).
    s.blue.execute(&s.db, "INSERT INTO t (note) VALUES ('after the refusal')").await.expect("blue writable");
    let bouncer_url = s.bouncer.url(&s.db);
    assert_eq!(common::port_behind(&bouncer_url).await, i32::from(s.blue.port()));

    // With on_lag = "record", the cutover goes on and the record keeps what it must still read.
    assert_eq!(s.t.sigterm(), Some(0));
    let config = std::fs::read_to_string(s.t.config_path()).expect("config").replace("wait = \"1s\"", "wait = \"1s\"\non_lag = \"record\"");
    std::fs::write(s.t.config_path(), config).expect("config");
    s.t.start();
    common::wait_streaming(&mut s.t).await;
    let (code, out) = common::turnout_command(&s.t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    let view = common::wait_for(&mut s.t, "the hand-over settled", |t| {
        let v: serde_json::Value = serde_json::from_str(&t.get("/handover")?).ok()?;
        (v["handed_over"]["settled"] == true).then_some(v)
    })
    .await;
    let gap = view["handed_over"]["consumers"][0]["gap"].as_str().expect("a gap").to_owned();
    let fence = view["handed_over"]["consumers"][0]["fence"].as_str().expect("fence").to_owned();
    assert!(gap.ends_with(&format!("..{fence}")), "{view}");
    // Blue's slot is kept: the consumer can still read what lies in the gap.
    let b = client(&s.blue.url(&s.db)).await;
    let kept: i64 = b.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'downstream'", &[]).await.expect("slot").get(0);
    assert_eq!(kept, 1);
    // `turnout finish` keeps it too: its consumer has a gap to read there.
    let (code, out) = common::turnout_command(&s.t, "finish", &[]).await;
    assert_eq!(code, 0, "{out}");
    common::wait_for(&mut s.t, "the kept slot named", |t| t.log_text().contains("slot downstream on blue is kept").then_some(())).await;
    let kept: i64 = b.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'downstream'", &[]).await.expect("slot").get(0);
    assert_eq!(kept, 1);
    let _ = &s.green;
    assert_eq!(s.t.sigterm(), Some(0), "{}", s.t.log_text());
}

/// Three consumers carried through a cutover under an application writing through pgbouncer: what
/// the hand-over adds to the write pause (`scripts/bench-pause postgres-handover` runs it against
/// `postgres`, the same cutover without consumers). Every acknowledged write is on green once and
/// every consumer's slot on green stands at the hand-off.
#[tokio::test]
async fn three_consumers_carried_through_a_cutover_under_load() {
    let extra = "[[handover]]\nslot = \"*\"\n[[handover]]\nslot = \"dbz\"\npublications = [\"dbz_pub\"]\n";
    let mut s = setup(extra).await;
    let blue_url = s.blue.url(&s.db);
    s.blue
        .execute(
            &s.db,
            "SELECT pg_drop_replication_slot('downstream'); SELECT pg_create_logical_replication_slot(n, 'pgoutput') FROM (VALUES ('dbz_2'), ('dbz_3')) v(n)",
        )
        .await
        .expect("slots");
    let pollers = [Poller::start(&blue_url, "dbz").await, Poller::start(&blue_url, "dbz_2").await, Poller::start(&blue_url, "dbz_3").await];
    let writer = start_writer(s.bouncer.url(&s.db));
    writer.wait_for(200).await;
    let (code, out) = common::turnout_command(&s.t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("ready: dbz, dbz_2, dbz_3") && out.contains("consumers handed over"), "{out}");
    writer.wait_for(writer.count() + 100).await;
    let (acked, errors) = writer.finish().await;
    assert!(errors.is_empty(), "client errors during the cutover: {errors:?}");
    let gap = acked.windows(2).map(|w| w[1].1.duration_since(w[0].1)).max().unwrap_or_default().as_millis();
    let acked: Vec<i64> = acked.iter().map(|(id, _)| *id).collect();
    for p in pollers {
        p.finish(None).await;
    }
    let g = client(&s.green_url).await;
    let on_green = ids(&g).await;
    let mut want = acked.clone();
    want.sort_unstable();
    assert!(want.iter().all(|id| on_green.binary_search(id).is_ok()), "an acknowledged write is missing on green");
    let view = common::wait_for(&mut s.t, "the hand-over settled", |t| {
        let v: serde_json::Value = serde_json::from_str(&t.get("/handover")?).ok()?;
        (v["handed_over"]["settled"] == true).then_some(v)
    })
    .await;
    assert_eq!(view["handed_over"]["consumers"].as_array().map(Vec::len), Some(3), "{view}");
    // The pause, for the benchmark: the same line and figure the cutover suite prints.
    eprintln!("largest gap between acknowledged writes: {gap} ms\n{out}");
    // `turnout finish`: writes stay on green, and the consumers' slots on blue go.
    let (code, out) = common::turnout_command(&s.t, "finish", &[]).await;
    assert_eq!(code, 0, "{out}");
    let b = client(&blue_url).await;
    let deadline = Instant::now() + WAIT;
    while b.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'dbz%'", &[]).await.expect("slots").get::<_, i64>(0) > 0 {
        assert!(Instant::now() < deadline, "finish must drop the carried slots on blue\n{}", s.t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The line follows the drop: the slot may be gone a moment before it is written.
    common::wait_for(&mut s.t, "the drop of dbz_2 logged", |t| {
        t.log_text().contains("dropped slot dbz_2 on blue: its consumer resumed on green at").then_some(())
    })
    .await;
    assert_eq!(s.t.sigterm(), Some(0));
}

/// The lines `GET /handover` prints for `consumer`: (`on <from>:` command, `then on <to>:` command).
fn repoint_commands(view: &serde_json::Value, consumer: &str) -> (String, String) {
    let lines: Vec<&str> = view["repoint"].as_array().into_iter().flatten().filter_map(|l| l.as_str()).collect();
    let start = lines.iter().position(|l| l.starts_with(&format!("{consumer}: "))).unwrap_or_else(|| panic!("no repoint lines for {consumer}: {view}"));
    let block: Vec<&str> = lines[start + 1..].iter().take_while(|l| l.starts_with("  ")).copied().collect();
    let command = |prefix: &str| {
        block
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(prefix).and_then(|rest| rest.split_once(": ")).map(|(_, c)| c.to_owned()))
            .unwrap_or_else(|| panic!("no '{prefix}' line for {consumer}: {block:?}"))
    };
    (command("on "), command("then on "))
}

/// A printed command run through a shell as an operator would, with the consumer's password and its
/// own output options (`extra`) added, its output into `file`. A consumer nobody read when the
/// cutover prepared it has no `-U` in its lines: its own user comes from `PGUSER`.
fn shell(line: &str, extra: &str, password: &str, file: &std::path::Path) -> Command {
    let bin = turnout_testbed::client_bin_dir(15).expect("pg_recvlogical");
    let mut c = Command::new("sh");
    c.args(["-c", &format!("exec {line} {extra}")])
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("PGPASSWORD", password)
        .env("PGUSER", if line.contains(" -U ") { "nobody_reads_this" } else { "postgres" })
        .stdout(std::fs::File::create(file).expect("output"))
        .stderr(Stdio::piped());
    c
}

/// The ids of `t` inserted in a pgoutput stream as `pg_recvlogical` writes it (each message followed
/// by a newline); a message cut short at the end (the reader stopped) ends the walk.
fn pgoutput_stream_ids(bytes: &[u8]) -> Vec<i64> {
    fn cstr(b: &[u8], at: usize) -> Option<usize> {
        b.get(at..)?.iter().position(|&c| c == 0).map(|n| at + n + 1)
    }
    fn tuple(b: &[u8], mut at: usize) -> Option<(usize, Option<i64>)> {
        let columns = u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?);
        at += 2;
        let mut first = None;
        for i in 0..columns {
            let kind = *b.get(at)?;
            at += 1;
            if kind == b't' || kind == b'b' {
                let len = u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
                let value = b.get(at + 4..at + 4 + len)?;
                if i == 0 {
                    first = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                }
                at += 4 + len;
            }
        }
        Some((at, first))
    }
    let (mut at, mut ids) = (0usize, Vec::new());
    while at < bytes.len() {
        let next = match bytes[at] {
            b'B' => Some(at + 21),
            b'C' => Some(at + 26),
            b'O' => cstr(bytes, at + 9),
            b'Y' => cstr(bytes, at + 5).and_then(|n| cstr(bytes, n)),
            b'R' => (|| {
                let mut n = cstr(bytes, cstr(bytes, at + 5)?)? + 1;
                let columns = u16::from_be_bytes(bytes.get(n..n + 2)?.try_into().ok()?);
                n += 2;
                for _ in 0..columns {
                    n = cstr(bytes, n + 1)? + 8;
                }
                Some(n)
            })(),
            b'I' => tuple(bytes, at + 6).map(|(n, id)| {
                ids.extend(id);
                n
            }),
            other => panic!("a pgoutput message the test does not expect: {:?} at {at}", other as char),
        };
        match next {
            Some(n) if bytes.get(n) == Some(&b'\n') => at = n + 1,
            _ => break,
        }
    }
    ids
}

/// One consumer as an operator runs it: a live reader, stopped and restarted from the printed lines.
struct Live {
    name: &'static str,
    /// Its own output options (plugin options).
    options: &'static str,
    /// It leaves out changes with an origin and keeps reading across the switch until settled.
    filters: bool,
    /// It reads nowhere between switches: after each one it catches up to the fence with the
    /// printed command, while the stream back already applies there (its wait runs out: a gap).
    late: bool,
    files: Vec<std::path::PathBuf>,
    child: Option<Child>,
}

impl Live {
    fn file(&mut self, dir: &std::path::Path) -> std::path::PathBuf {
        let f = dir.join(format!("{}-{}.out", self.name, self.files.len()));
        self.files.push(f.clone());
        f
    }

    fn ids(&self) -> Vec<i64> {
        let pgoutput = self.options.contains("proto_version");
        self.files.iter().flat_map(|f| if pgoutput { pgoutput_stream_ids(&std::fs::read(f).unwrap_or_default()) } else { decoded_ids(f) }).collect()
    }
}

/// Runs the printed `on <fenced side>:` command for `c` to its end (it stops at the fence), once
/// the server let go of the slot a stopped reader held.
async fn run_to_fence(c: &mut Live, view: &serde_json::Value, fenced: &tokio_postgres::Client, (dir, password): (&std::path::Path, &str)) {
    let deadline = Instant::now() + WAIT;
    while fenced.query_one("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&c.name]).await.expect("slot").get::<_, bool>(0) {
        assert!(Instant::now() < deadline, "the slot {} stayed active after its reader stopped", c.name);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (up_to_fence, _) = repoint_commands(view, c.name);
    let file = c.file(dir);
    let mut run = shell(&up_to_fence, c.options, password, &file).spawn().expect("reader up to the fence");
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "{} did not stop at the fence with: {up_to_fence}", c.name);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut errors = String::new();
    let _ = std::io::Read::read_to_string(&mut run.stderr.take().expect("stderr"), &mut errors);
    assert!(status.success(), "{up_to_fence}: {status}\n{errors}");
}

/// After a switch of `direction` (a record other than `last`'s): each consumer repointed as the
/// record prints it — one that does not filter by origin stopped once the record says it read up to
/// the fence and run to the fence with the printed command, every one started on the other side
/// once the stream back may apply.
/// Returns this switch's id.
async fn repoint_at_switch(
    t: &mut Turnout,
    consumers: &mut [Live],
    (dir, password, fenced_url): (&std::path::Path, &str, &str),
    direction: &str,
    last: &str,
) -> String {
    // The record of this switch, written inside its pause: the fence and the lines to follow.
    let view = common::wait_for(t, "this switch's hand-over record", |t| {
        let v: serde_json::Value = serde_json::from_str(&t.get("/handover")?).ok()?;
        let id = v["handed_over"]["cutover"].as_str()?.to_owned();
        (v["handed_over"]["direction"] == direction && id != last).then_some(v)
    })
    .await;
    let last = view["handed_over"]["cutover"].as_str().unwrap_or_default().to_owned();
    // Consumers that do not filter: stopped once the record says they read up to the fence (a
    // reader stopped by a signal confirms only what it confirmed last, and would read its tail
    // again), then run to the fence with the printed line.
    let unfiltered: Vec<&str> = consumers.iter().filter(|c| !c.filters && !c.late).map(|c| c.name).collect();
    common::wait_for(t, "the consumers seen at the fence", |t| {
        let v: serde_json::Value = serde_json::from_str(&t.get("/handover")?).ok()?;
        let all = v["handed_over"]["consumers"].as_array()?.iter().filter(|c| unfiltered.iter().any(|n| c["consumer"] == *n)).all(|c| c["reached"] == true);
        (v["handed_over"]["cutover"] == last.as_str() && all).then_some(())
    })
    .await;
    let fenced = client(fenced_url).await;
    for c in consumers.iter_mut().filter(|c| !c.filters && !c.late) {
        stop(c.child.take().expect("a live reader"));
        run_to_fence(c, &view, &fenced, (dir, password)).await;
    }
    // The stream back waits for them; the filtering one reads on until then, then moves too.
    common::wait_for(t, "the hand-over settled", |t| {
        let v: serde_json::Value = serde_json::from_str(&t.get("/handover")?).ok()?;
        (v["handed_over"]["cutover"] == last.as_str() && v["handed_over"]["settled"] == true).then_some(())
    })
    .await;
    let view: serde_json::Value = serde_json::from_str(&t.get("/handover").expect("handover")).expect("json");
    // The record that starts at the fence is turnout's end-of-fence message, never a transaction's
    // first: a reader stopping there inclusively reads nothing of the stream back.
    let fence = view["handed_over"]["consumers"][0]["fence"].as_str().expect("fence").to_owned();
    // Once something follows it: the stream back's first write when nothing else comes first.
    let deadline = Instant::now() + WAIT;
    while !fenced.query_one(&format!("SELECT pg_current_wal_flush_lsn() > '{fence}'"), &[]).await.expect("lsn").get::<_, bool>(0) {
        assert!(Instant::now() < deadline, "nothing was written after the fence {fence}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_fence: String = fenced
        .query_one(
            &format!(
                "SELECT resource_manager || ' ' || description FROM pg_get_wal_records_info('{fence}', pg_current_wal_flush_lsn()) ORDER BY start_lsn LIMIT 1"
            ),
            &[],
        )
        .await
        .expect("the record at the fence")
        .get(0);
    assert!(at_fence.starts_with("LogicalMessage") && at_fence.contains("turnout.fence_end"), "at the fence {fence}: {at_fence}");
    let outputs: Vec<String> =
        consumers.iter().filter_map(|c| c.files.last()).map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap_or_default()).into_owned()).collect();
    let late: Vec<&str> = consumers.iter().filter(|c| c.late).map(|c| c.name).collect();
    let handed = view["handed_over"]["consumers"].as_array().cloned().unwrap_or_default();
    assert!(handed.iter().all(|c| c["note"].is_null() && c["gap"].is_null() != late.iter().any(|n| c["consumer"] == *n)), "{view}\n{outputs:#?}");
    for c in consumers.iter_mut() {
        if let Some(child) = c.child.take() {
            stop(child);
        }
        if c.late {
            // Blue up to the fence now, the stream back applying there since the switch.
            run_to_fence(c, &view, &fenced, (dir, password)).await;
            continue;
        }
        let (_, on_the_other_side) = repoint_commands(&view, c.name);
        let file = c.file(dir);
        c.child = Some(shell(&format!("{on_the_other_side} -F 1 -s 1"), c.options, password, &file).spawn().expect("reader"));
    }
    last
}

/// After a rollback, the generation that streams again drops the slots the cutover made on green for
/// the consumers back on blue, each once its reader let go; the late one's is kept (it had a gap to
/// read there).
async fn green_slots_dropped(green_admin: &str, t: &Turnout) {
    let g = client(green_admin).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let left: Vec<String> = g
            .query("SELECT slot_name::text FROM pg_replication_slots WHERE slot_name IN ('plain', 'local', 'dbz', 'late') ORDER BY 1", &[])
            .await
            .expect("slots")
            .iter()
            .map(|r| r.get(0))
            .collect();
        if left == ["late"] {
            return;
        }
        assert!(Instant::now() < deadline, "the consumers' slots on green after the rollback: {left:?}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn repoint_lines_run_as_printed_keep_every_consumer_exact_over_ten_round_trips() {
    let extra = "[[handover]]\nslot = \"plain\"\n[[handover]]\nslot = \"local\"\nfilters_origin = true\n\
                 [[handover]]\nslot = \"dbz\"\npublications = [\"dbz_pub\"]\n[[handover]]\nslot = \"late\"\nwait = \"1s\"\non_lag = \"record\"\n";
    let (blue, green, db) = common::pair_versions(15, 17, SCHEMA).await;
    blue.execute(
        &db,
        "SELECT pg_create_logical_replication_slot(n, p) FROM (VALUES ('plain', 'test_decoding'), ('local', 'test_decoding'), ('dbz', 'pgoutput'), ('late', 'test_decoding')) v(n, p)",
    )
    .await
    .expect("consumer slots");
    let keys = "fence = \"pgbouncer\"\nswitch = \"pgbouncer\"\niterate = true\n";
    let (bouncer, green_url, toml) = common::behind_pgbouncer(&blue, &green, &db, keys, extra).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, &toml);
    // No heartbeat on the fenced side after the sentinel: the stream back's first apply there is the
    // next record after the sentinel's commit, but for turnout's own end-of-fence record.
    let config = std::fs::read_to_string(t.config_path()).expect("config").replacen("[source]\n", "[source]\nheartbeat_interval = \"1h\"\n", 1);
    std::fs::write(t.config_path(), config).expect("config");
    t.start();
    common::wait_streaming(&mut t).await;
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert!(out.contains("logical dbz [pgoutput]") && out.contains("its plugin cannot leave out changes with an origin"), "{code}\n{out}");
    let password = blue.password().to_owned();
    let blue_url = blue.url(&db);
    // Each server's `postgres` database, where the test looks at the log itself (pg_walinspect).
    let admin = (blue.url("postgres"), green.url_for("postgres", &password, "postgres"));
    for url in [&admin.0, &admin.1] {
        client(url).await.batch_execute("CREATE EXTENSION pg_walinspect").await.expect("pg_walinspect");
    }
    let mut consumers = [
        Live { name: "plain", options: "-o skip-empty-xacts=1", filters: false, late: false, files: Vec::new(), child: None },
        Live { name: "local", options: "-o only-local=1 -o skip-empty-xacts=1", filters: true, late: false, files: Vec::new(), child: None },
        Live { name: "dbz", options: "-o proto_version=1 -o publication_names=dbz_pub", filters: false, late: false, files: Vec::new(), child: None },
        Live { name: "late", options: "", filters: false, late: true, files: Vec::new(), child: None },
    ];
    let bin = turnout_testbed::client_bin_dir(15).expect("pg_recvlogical").join("pg_recvlogical");
    for c in consumers.iter_mut().filter(|c| !c.late) {
        let file = c.file(dir.path());
        let line = format!("{} -d '{blue_url}' --slot {} --start -F 1 -s 1 -f -", bin.display(), c.name);
        c.child = Some(shell(&line, c.options, &password, &file).spawn().expect("reader"));
    }
    let writer = start_writer(bouncer.url(&db));
    writer.wait_for(100).await;
    let lag = ["--when-lag", "<1s", "--timeout", "90s", "--max-pause", "10s"];
    let mut last = String::new();
    for switch in 0..20 {
        let (command, direction) = if switch % 2 == 0 { ("cutover", "forward") } else { ("rollback", "reverse") };
        let (code, out) = common::turnout_command(&t, command, &lag).await;
        assert_eq!(code, 0, "{command} #{switch}: {out}\n{}", t.log_text());
        let fenced_url = if direction == "forward" { admin.0.as_str() } else { admin.1.as_str() };
        last = repoint_at_switch(&mut t, &mut consumers, (dir.path(), &password, fenced_url), direction, &last).await;
        if direction == "reverse" {
            green_slots_dropped(&admin.1, &t).await;
        }
        writer.wait_for(writer.count() + 30).await;
    }
    writer.wait_for(writer.count() + 30).await;
    let (acked, errors) = writer.finish().await;
    assert!(errors.is_empty(), "client errors across twenty switches: {errors:?}");
    // The last switch was a rollback: blue takes the writes.
    let committed = ids(&client(&blue_url).await).await;
    let acked: Vec<i64> = acked.iter().map(|(id, _)| *id).collect();
    assert!(acked.iter().all(|id| committed.binary_search(id).is_ok()), "an acknowledged write is missing on blue");
    let deadline = Instant::now() + WAIT;
    while consumers.iter().any(|c| c.ids().len() < committed.len()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The late consumer reads what blue committed since the last switch, up to where blue stands.
    let end: String = client(&blue_url).await.query_one("SELECT pg_current_wal_flush_lsn()::text", &[]).await.expect("lsn").get(0);
    for c in consumers.iter_mut().filter(|c| c.late) {
        let file = c.file(dir.path());
        let line = format!("{} -d '{blue_url}' --slot {} --start --endpos {end} -f -", bin.display(), c.name);
        let status = shell(&line, c.options, &password, &file).status().expect("late reader");
        assert!(status.success(), "{line}: {status}");
    }
    for c in &mut consumers {
        if let Some(child) = c.child.take() {
            stop(child);
        }
        eprintln!("{}: {} rows in {} outputs for {} committed", c.name, c.ids().len(), c.files.len(), committed.len());
        assert_exactly_once(c.name, &c.ids(), &committed);
    }
    assert_eq!(t.sigterm(), Some(0));
}
