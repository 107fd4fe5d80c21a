//! `turnout cutover` and `turnout rollback` with Oracle MySQL 9.7 as blue and green: the
//! MySQL-family cutover suite (`suites/cutover_family.rs`), and what only MySQL has — the fence
//! sealed with `super_read_only` after the sentinel, which stops even accounts that write through
//! `read_only`, and a reverse stream whose hand-off position is taken once green is proven complete.

mod common;

/// The servers this binary's suite runs on.
const BLUE: turnout_testbed::Flavor = turnout_testbed::Flavor::MySql9_7;
const GREEN: turnout_testbed::Flavor = turnout_testbed::Flavor::MySql9_7;

include!("suites/cutover_family.rs");

/// Without a way back, blue stays sealed after the cutover: an account with `CONNECTION_ADMIN`,
/// which writes through `read_only`, is refused too — and was not before.
#[tokio::test]
async fn without_a_reverse_stream_blue_stays_sealed_even_for_accounts_that_write_through_read_only() {
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
    // Under plain read_only the account writes: what the seal is for.
    blue.execute(None, "SET GLOBAL read_only = ON").expect("read_only");
    let mut ops = conn(&ops_url).await;
    ops.query_drop("INSERT INTO t (note) VALUES ('through')").await.expect("CONNECTION_ADMIN writes through read_only");
    drop(ops);
    blue.execute(None, "SET GLOBAL read_only = OFF").expect("read_only off");
    let (code, out) = turnout(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("super_read_only after the sentinel") && out.contains("green applied the sentinel"), "{out}");
    assert!(super_read_only(&blue), "blue must be sealed after the cutover");
    let mut ops = conn(&ops_url).await;
    let refused = ops.query_drop("INSERT INTO t (note) VALUES ('late')").await.expect_err("the seal refuses every account");
    assert_eq!(server_code(&refused), Some(1290), "{refused}");
    // Green has every row blue committed, the write through read_only included.
    assert_eq!(maria_rows(&blue, &db, "t"), maria_rows(&green, &db, "t"));
    assert_eq!(ids(&green, &db, "note = 'through'").len(), 1);
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
