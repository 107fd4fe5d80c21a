//! Cutting over again after a rollback (`cutover.iterate`, PostgreSQL): cutover → writes on green →
//! rollback → writes on blue → cutover again, with an application writing through pgbouncer the
//! whole time, a kill -9 right after the rollback, and a write on blue that bypassed the switch in
//! the rollback window — which gates the second cutover on a live verify until green is repaired.

use crate::common;

use common::{first_value, pair, port_behind, Turnout, Writer};
use std::time::{Duration, Instant};
use turnout_testbed::{PgBouncer, PgServer};

const SCHEMA: &str = "CREATE TABLE t (id bigserial PRIMARY KEY, note text, at timestamptz DEFAULT now())";
const LAG: [&str; 6] = ["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

/// A client writing one row per transaction through pgbouncer until told to stop; records the ids
/// acknowledged and every error (simple queries: [`first_value`]).
fn start_writer(url: String) -> Writer<i64> {
    Writer::start(move |log| async move {
        let c = connect(&url).await;
        while log.running() {
            match c.simple_query("INSERT INTO t (note) VALUES ('w') RETURNING id").await {
                Ok(messages) => {
                    if let Some(id) = first_value(&messages) {
                        log.acked(id);
                    }
                }
                Err(err) => log.failed(err.as_db_error().map_or_else(|| err.to_string(), |d| format!("{} ({})", d.message(), d.code().code()))),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

async fn ids(c: &tokio_postgres::Client) -> Vec<i64> {
    c.query("SELECT id FROM t WHERE note = 'w' ORDER BY id", &[]).await.expect("ids").iter().map(|r| r.get(0)).collect()
}

async fn row_texts(c: &tokio_postgres::Client) -> Vec<String> {
    c.query("SELECT ROW(t.*)::text FROM t ORDER BY id", &[]).await.expect("rows").iter().map(|r| r.get(0)).collect()
}

async fn origins(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM pg_replication_origin", &[]).await.expect("origins").get(0)
}

async fn slots(c: &tokio_postgres::Client) -> Vec<String> {
    c.query("SELECT slot_name::text FROM pg_replication_slots ORDER BY 1", &[]).await.expect("slots").iter().map(|r| r.get(0)).collect()
}

/// Waits until the sidecar streams in `direction` as `generation`.
async fn wait_generation(t: &mut Turnout, direction: &str, generation: u64) -> serde_json::Value {
    common::wait_for(t, &format!("generation {generation} streaming {direction}"), |t| {
        t.status().filter(|v| v["direction"] == direction && v["phase"] == "streaming" && v["generation"] == generation)
    })
    .await
}

/// Blue behind pgbouncer, green with blue's password, and a streaming sidecar that fences and
/// switches through that pgbouncer.
struct Setup {
    blue: PgServer,
    green: PgServer,
    db: String,
    green_url: String,
    bouncer: PgBouncer,
    t: Turnout,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let (blue, green, db) = pair(SCHEMA).await;
    let (bouncer, green_url, toml) = common::behind_pgbouncer(&blue, &green, &db, "fence = \"pgbouncer\"\nswitch = \"pgbouncer\"\n", "").await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    Setup { blue, green, db, green_url, bouncer, t, _dir: dir }
}

#[tokio::test]
async fn cutover_rollback_and_cutover_again_keep_every_acknowledged_write_exactly_once() {
    let Setup { blue, green: _green, db, green_url, bouncer, mut t, _dir } = setup().await;
    let through = bouncer.url(&db);
    let (b, g) = (blue.connect(&db).await.expect("blue"), connect(&green_url).await);
    let writer = start_writer(through.clone());
    writer.wait_for(100).await;

    // A live verify before the first cutover: it cannot stand for the second.
    let (code, out) = common::turnout_command(&t, "verify", &["--live", "--progress-every", "0s"]).await;
    assert_eq!(code, 0, "{out}");
    // The first cutover; the application goes on writing on green.
    let (code, out) = common::turnout_command(&t, "cutover", &LAG).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    wait_generation(&mut t, "reverse", 1).await;
    writer.wait_for(writer.count() + 100).await;
    // A client that bypassed the switch writes on blue in the window: blue's watch sees it.
    b.batch_execute("INSERT INTO t (id, note) VALUES (-7, 'bypassed the switch')").await.expect("rogue row");
    common::wait_for(&mut t, "blue's watch to see the write", |t| t.status().filter(|v| v["rogue_writes"]["blue"]["seen"] == 1)).await;

    // The rollback arms blue → green again before it fences green.
    let (code, out) = common::turnout_command(&t, "rollback", &LAG).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("prepared replication blue → green again") && out.contains("_g2 on blue"), "{out}");
    // Blue's watch counts up to a mark written at the switch: the whole window, hand-off included.
    assert!(out.contains("blue marked"), "{out}");
    assert_eq!(port_behind(&through).await, i32::from(blue.port()));
    // kill -9 as the next generation begins: the restart begins it from the rollback's journal.
    t.kill9();
    t.start();
    let status = wait_generation(&mut t, "forward", 2).await;
    assert!(status["names"]["slot"].as_str().is_some_and(|s| s.ends_with("_g2")), "{status}");
    assert!(t.metrics().contains("turnout_generation 2"), "{}", t.metrics());
    writer.wait_for(writer.count() + 100).await;
    // The generation's own slot on blue; the reverse stream's slot on green and the first
    // generation's forward slot on blue are gone.
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (on_blue, on_green) = (slots(&b).await, slots(&g).await);
        if on_blue.len() == 1 && on_blue[0].ends_with("_g2") && on_green.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "slots on blue {on_blue:?}, on green {on_green:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Blue's window was not free of writes that are not turnout's: the next cutover needs a live
    // verify made since, and refuses without one, changing nothing.
    let (code, out) = common::turnout_command(&t, "cutover", &LAG).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("needs a live verify that began after the stream resumed") && out.contains("1 writes on blue"), "{out}");
    // Nor does a verify that finds the row that never reached green.
    assert_eq!(port_behind(&through).await, i32::from(blue.port()));
    // The verify finds the row that never reached green; green repaired, it passes.
    let (code, out) = common::turnout_command(&t, "verify", &["--live", "--progress-every", "0s"]).await;
    assert!(code == 1 && out.contains("missing on green: id=-7"), "{out}");
    let (code, out) = common::turnout_command(&t, "cutover", &LAG).await;
    assert!(code == 1 && out.contains("id=-7") && out.contains("the gate is required after the rollback"), "{out}");
    let at: String = b.query_one("SELECT at::text FROM t WHERE id = -7", &[]).await.expect("the row on blue").get(0);
    g.execute("INSERT INTO t (id, note, at) VALUES (-7, 'bypassed the switch', $1::text::timestamptz)", &[&at]).await.expect("repair");
    let (code, out) = common::turnout_command(&t, "verify", &["--live", "--progress-every", "0s"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = common::turnout_command(&t, "cutover", &LAG).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("verify gate: required after the rollback") && out.contains("prepared reverse replication"), "{out}");
    wait_generation(&mut t, "reverse", 2).await;
    writer.wait_for(writer.count() + 100).await;
    let (acked, errors) = writer.finish().await;
    assert!(errors.is_empty(), "client errors through two cutovers and a rollback: {errors:?}");

    // Every acknowledged write — blue, green, blue, green — is on green exactly once, and the
    // reverse stream brings blue to the same rows, by the text of every row.
    let mut want = acked.clone();
    want.sort_unstable();
    assert_eq!(ids(&g).await, want, "green must hold exactly the acknowledged rows");
    let deadline = Instant::now() + common::WAIT;
    while row_texts(&b).await != row_texts(&g).await {
        assert!(Instant::now() < deadline, "blue must hold green's rows through the second window");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(row_texts(&g).await.len(), want.len() + 1);

    // teardown drops every generation's objects.
    assert_eq!(t.sigterm(), Some(0));
    let (code, out) = common::turnout_command(&t, "teardown", &["--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!((slots(&b).await, slots(&g).await, origins(&b).await, origins(&g).await), (vec![], vec![], 0, 0), "{out}");
}

/// Changes another subscription replays into blue carry an origin of its own: the next generation,
/// which drops the reverse stream's by origin (on PostgreSQL 16+ with every other origin's), could
/// not tell them apart. The rollback completes without arming it, says so, and replication stops.
#[tokio::test]
async fn a_blue_that_replays_another_origin_is_rolled_back_without_arming_the_next_generation() {
    let Setup { blue, green: _green, db, bouncer, mut t, _dir, .. } = setup().await;
    let (code, out) = common::turnout_command(&t, "cutover", &LAG).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    wait_generation(&mut t, "reverse", 1).await;
    blue.execute(&db, "SELECT pg_replication_origin_create('someone_elses_subscription')").await.expect("origin");
    let (code, out) = common::turnout_command(&t, "rollback", &LAG).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("this rollback arms no stream blue → green") && !out.contains("prepared replication blue → green again"), "{out}");
    assert_eq!(port_behind(&bouncer.url(&db)).await, i32::from(blue.port()));
    assert!(t.log_text().contains("someone_elses_subscription"), "the log names the origin");
    let status = common::wait_for(&mut t, "replication to stop", |t| t.status().filter(|v| v["phase"] == "stopped")).await;
    assert_eq!(status["generation"], 1, "{status}");
    // The reverse stream's pipeline says `stopped` as it drains; the window's forward slot is
    // dropped after blue's watch stopped reading it, which the log says.
    common::wait_for(&mut t, "the forward slot to be dropped", |t| t.log_text().contains("dropped the forward slot on blue").then_some(())).await;
    let b = blue.connect(&db).await.expect("blue");
    assert_eq!(slots(&b).await, Vec::<String>::new(), "nothing armed on blue, and the forward slot went with the window");
    assert_eq!(t.sigterm(), Some(0));
}
