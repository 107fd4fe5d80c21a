//! `turnout cutover` and `turnout rollback` with MariaDB 10.11 as blue and green: the MySQL-family
//! cutover suite (`suites/cutover_family.rs`), and what only MariaDB has — `READ ONLY ADMIN`, the
//! accounts docker-compose.yml creates, and the GTID domain that marks turnout's forward writes.

use crate::common;

/// The servers this binary's suite runs on.
const BLUE: turnout_testbed::Flavor = turnout_testbed::Flavor::MariaDb10_11;
const GREEN: turnout_testbed::Flavor = turnout_testbed::Flavor::MariaDb10_11;

include!("suites/cutover_family.rs");
include!("suites/watch_family.rs");
include!("suites/handover_family.rs");

/// The accounts docker-compose.yml creates (deploy/compose/mariadb-accounts.sql) are enough for
/// `turnout check`, the cutover fence included.
#[tokio::test]
async fn the_compose_accounts_pass_check_with_the_read_only_fence() {
    let (blue, green) = std::thread::scope(|s| {
        let b = s.spawn(|| MySqlServer::start_with(1).expect("blue"));
        let g = s.spawn(|| MySqlServer::start_with(2).expect("green"));
        (b.join().expect("blue thread"), g.join().expect("green thread"))
    });
    let accounts = std::fs::read_to_string(
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()))
            .join("../deploy/compose/mariadb-accounts.sql"),
    )
    .expect("accounts file");
    // The harness's own all-privileges account has the same name: replaced by the file's.
    let fresh = format!("DROP USER 'turnout'@'%'; CREATE DATABASE app; {accounts}");
    blue.execute(None, &fresh).expect("blue accounts");
    green.execute(None, &format!("SET sql_log_bin = 0; {fresh}")).expect("green accounts");
    blue.execute(Some("app"), "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB").expect("table");
    let url = |server: &MySqlServer| format!("mysql://turnout:turnout@127.0.0.1:{}/app", server.port());
    let dir = tempfile::tempdir().expect("tmp");
    let t = Turnout::with_config(dir.path(), &url(&blue), &url(&green), "[cutover]\nfence = \"read-only\"\n");
    let (code, out) = turnout(&t, "check", &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the account may set read_only"), "{out}");
    assert!(!out.contains("'app'@'%' can still write"), "the application account must be fenced: {out}");
}

/// Green must be able to act as the reverse stream's source: a turnout account there without
/// REPLICATION SLAVE, BINLOG MONITOR and BINLOG REPLAY stops the cutover before the fence, naming each
/// grant; BINLOG REPLAY granted while the sidecar runs still stops it (the apply's writes so far are
/// not marked) until `turnout run` restarts.
#[tokio::test]
async fn a_green_account_that_cannot_feed_the_reverse_stream_stops_the_cutover_before_the_fence() {
    let (blue, green, db) = maria_pair_of(BLUE, GREEN);
    blue.execute(Some(&db), SCHEMA).expect("blue schema");
    green
        .execute(
            None,
            &format!(
                "SET sql_log_bin = 0; CREATE USER tg@'%' IDENTIFIED BY 'tg-secret'; GRANT RELOAD ON *.* TO tg@'%'; \
                 GRANT ALL PRIVILEGES ON `{db}`.* TO tg@'%'; GRANT ALL PRIVILEGES ON turnout.* TO tg@'%'"
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
    assert!(out.contains("may not read green's binlog") && out.contains("GRANT REPLICATION SLAVE ON *.* TO 'tg'@'%'"), "{out}");
    assert!(out.contains("GRANT BINLOG MONITOR ON *.* TO 'tg'@'%'") && out.contains("GRANT BINLOG REPLAY ON *.* TO 'tg'@'%'"), "{out}");
    assert!(out.contains("cutover.reverse = false"), "{out}");
    // `turnout check` says the same beforehand.
    let (_, out) = turnout(&t, "check", &[]).await;
    assert!(out.contains("cutover: turnout's account may not read green's binlog") && out.contains("GRANT BINLOG REPLAY ON *.* TO 'tg'@'%'"), "{out}");
    green.execute(None, "SET sql_log_bin = 0; GRANT REPLICATION SLAVE, BINLOG MONITOR, BINLOG REPLAY ON *.* TO tg@'%'").expect("grant");
    let (code, out) = turnout(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no transaction in GTID domain") && out.contains("restart `turnout run`") && !out.contains("fenced writes"), "{out}");
    assert!(!read_only(&blue), "blue must never have been fenced");
    // Restarted, the apply marks its writes and the cutover arms the way back.
    assert_eq!(t.sigterm(), Some(0));
    t.start();
    wait_streaming(&mut t).await;
    let (code, out) = turnout(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("prepared reverse replication"), "{out}");
    wait_reverse(&mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}
include!("suites/canary_family.rs");
