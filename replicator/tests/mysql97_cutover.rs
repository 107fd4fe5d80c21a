//! `turnout cutover` and `turnout rollback` with Oracle MySQL 9.7 as blue and green: the
//! MySQL-family cutover suite (`suites/cutover_family.rs`), and what only MySQL has — the fence
//! sealed with `super_read_only` after the sentinel, which stops even accounts that write through
//! `read_only`, and a reverse stream whose hand-off position is taken once green is proven complete.

use crate::common;

/// The servers this binary's suite runs on.
const BLUE: turnout_testbed::Flavor = turnout_testbed::Flavor::MySql9_7;
const GREEN: turnout_testbed::Flavor = turnout_testbed::Flavor::MySql9_7;

include!("suites/cutover_family.rs");
include!("suites/watch_family.rs");
include!("suites/handover_family.rs");

/// An account with `CONNECTION_ADMIN` writes through `read_only`, so it keeps committing on blue
/// while the fence is up — before the sentinel and between the sentinel and the seal. Every write
/// blue acknowledged must be on green when the cutover completes (the proof waits for blue's whole
/// `gtid_executed`, not just the sentinel); after it, without a way back, blue stays sealed and
/// refuses that account too.
#[tokio::test]
async fn writes_through_read_only_during_the_pause_are_all_on_green_and_the_seal_stops_them_after() {
    let (blue, green, db) = maria_pair_of(BLUE, GREEN);
    blue.execute(
        Some(&db),
        &format!("{SCHEMA}\nCREATE USER ops@'%' IDENTIFIED BY 'ops-secret'; GRANT INSERT ON `{db}`.* TO ops@'%'; GRANT CONNECTION_ADMIN ON *.* TO ops@'%';"),
    )
    .expect("schema and account");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[cutover]\nfence = \"read-only\"\nswitch = \"none\"\nreverse = false\n");
    t.start();
    wait_streaming(&mut t).await;
    let ops_url = format!("mysql://ops:ops-secret@127.0.0.1:{}/{db}", blue.port());
    // The account writes without pause until the seal refuses it (or the fence ends its session).
    let url = ops_url.clone();
    let writer = Writer::start(move |log| async move {
        let mut c: Option<mysql_async::Conn> = None;
        while log.running() {
            if c.is_none() {
                c = Some(conn(&url).await);
            }
            let Some(session) = c.as_mut() else { continue };
            match session.query_drop("INSERT INTO t (note) VALUES ('ops')").await {
                Ok(()) => log.acked(()),
                Err(e) => {
                    log.failed(e);
                    c = None;
                }
            }
        }
    });
    writer.wait_for(200).await;
    let (code, out) = turnout(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    let (acked, refused) = writer.finish().await;
    let acked = acked.len();
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("super_read_only after the sentinel") && out.contains("green applied the sentinel"), "{out}");
    assert!(super_read_only(&blue), "blue must be sealed after the cutover");
    // Every row blue committed is on green, the account's writes through read_only included.
    let on_blue = ids(&blue, &db, "note = 'ops'");
    assert!(on_blue.len() >= acked, "blue has {} of the account's {acked} acknowledged rows", on_blue.len());
    assert_eq!(maria_rows(&blue, &db, "t"), maria_rows(&green, &db, "t"), "green must hold every row blue committed");
    assert!(refused.iter().any(|e| e.contains("1290")), "the seal never refused the account: {refused:?}");
    let mut ops = conn(&ops_url).await;
    let late = ops.query_drop("INSERT INTO t (note) VALUES ('late')").await.expect_err("the seal refuses every account");
    assert_eq!(server_code(&late), Some(1290), "{late}");
    eprintln!("the account wrote {acked} rows through read_only; green holds all {}\n{out}", on_blue.len());
    assert_eq!(t.sigterm(), Some(0));
}

/// Green must be able to feed the reverse stream: a turnout account there without REPLICATION
/// SLAVE and REPLICATION CLIENT stops the cutover before the fence, naming each grant.
#[tokio::test]
async fn a_green_account_that_cannot_read_its_binlog_stops_the_cutover_before_the_fence() {
    let (blue, green, db) = maria_pair_of(BLUE, GREEN);
    blue.execute(Some(&db), SCHEMA).expect("blue schema");
    green
        .execute(
            None,
            &format!(
                "SET sql_log_bin = 0; CREATE USER tg@'%' IDENTIFIED BY 'tg-secret'; GRANT ALL PRIVILEGES ON `{db}`.* TO tg@'%'; \
                 GRANT ALL PRIVILEGES ON turnout.* TO tg@'%'; GRANT RELOAD, SYSTEM_VARIABLES_ADMIN, CONNECTION_ADMIN ON *.* TO tg@'%'"
            ),
        )
        .expect("green account");
    let green_url = format!("mysql://tg:tg-secret@127.0.0.1:{}/{db}", green.port());
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green_url, "[cutover]\nfence = \"read-only\"\nswitch = \"none\"\n");
    t.start();
    wait_streaming(&mut t).await;
    let (code, out) = turnout(&t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("GRANT REPLICATION SLAVE ON *.* TO 'tg'@'%'") && out.contains("GRANT REPLICATION CLIENT ON *.* TO 'tg'@'%'"), "{out}");
    let (_, checked) = turnout(&t, "check", &[]).await;
    assert!(checked.contains("cutover: turnout's account may not read green's binlog"), "{checked}");
    green.execute(None, "SET sql_log_bin = 0; GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO tg@'%'").expect("grant");
    let (code, out) = turnout(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    wait_reverse(&mut t).await;
    assert!(!read_only(&green) && read_only(&blue));
    assert_eq!(t.sigterm(), Some(0));
}
include!("suites/canary_family.rs");
