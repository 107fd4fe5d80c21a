// The MySQL-family watch for writes that are not turnout's, end to end under an application writing
// through haproxy: green's binlog (`[watch] green`) read without turnout's GTID domain (MariaDB) or
// tags (Oracle MySQL), and blue's in the rollback window without the reverse stream's. Included after
// `suites/cutover_family.rs`, whose set-up and helpers it uses.

/// Green's watch (`[watch] green`) on `/status` once `check` holds for it.
async fn green_watch_until(t: &mut Turnout, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    common::wait_for(t, what, |t| t.status().map(|v| v["rogue_writes"]["green"].clone()).filter(|w| check(w))).await
}

#[tokio::test]
async fn a_write_on_green_that_is_not_turnouts_blocks_the_cutover_until_acknowledged() {
    let mut s = setup("read-only", "haproxy", "[watch]\ngreen = true\n").await;
    let lag = ["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];
    // The cutover moves green's counters (blue's ran ahead): turnout's writes, not foreign ones.
    run_counters_ahead(&s.blue, &s.db);
    let writer = start_writer(s.through());
    writer.wait_for(100).await;
    green_watch_until(&mut s.t, "green's watch", |w| w["state"] == "watching").await;
    // One large transaction on blue, applied on green by turnout.
    let ten = "(SELECT 1 x UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
               UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10)";
    let bulk = format!("INSERT INTO t (note) SELECT 'bulk' FROM {ten} a, {ten} b, {ten} c, (SELECT 1 x UNION ALL SELECT 2 UNION ALL SELECT 3) d");
    s.blue.execute(Some(&s.db), &bulk).expect("large transaction");
    let deadline = Instant::now() + WAIT;
    while number(&s.green, &s.db, "SELECT COUNT(*) FROM t WHERE note = 'bulk'") != 3000 {
        assert!(Instant::now() < deadline, "green never applied the large transaction");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !GREEN.is_mariadb() {
        // Oracle MySQL: turnout's apply tags its GTIDs; that is how the watch knows them.
        let executed = s.green.execute(None, "SELECT @@GLOBAL.gtid_executed").expect("gtid_executed");
        assert!(executed.contains(":turnout_"), "turnout's writes on green carry its GTID tag: {executed}");
    }
    // Before anything foreign was read: a write while the sidecar is down (kill -9) is read when it
    // is back — the watch reads on from where it began, not from where green's binlog ends by then.
    s.t.kill9();
    s.green.execute(Some(&s.db), "INSERT INTO block VALUES (99)").expect("write while down");
    s.t.start();
    let watched = green_watch_until(&mut s.t, "the write made while turnout was down", |w| w["seen"] == 1).await;
    assert_eq!(watched["unacknowledged"][0]["key"], "(id=99)", "{watched}");
    // A migration run on the wrong side: a row written on green directly, and a DDL statement — on
    // Oracle MySQL also a write tagged with an application's own GTID tag (only turnout's are dropped).
    s.green.execute(Some(&s.db), "INSERT INTO t (id, note) VALUES (1000000, 'rogue'); CREATE TABLE rogue (id INT PRIMARY KEY)").expect("rogue writes");
    let tagged = u64::from(!GREEN.is_mariadb());
    if tagged == 1 {
        s.green.execute(Some(&s.db), "SET gtid_next = 'AUTOMATIC:app_tag'; INSERT INTO block VALUES (98); SET gtid_next = 'AUTOMATIC'").expect("tagged write");
    }
    let rogue = 3 + tagged;
    let watched = green_watch_until(&mut s.t, "the rogue writes on green", |w| w["seen"] == rogue).await;
    assert_eq!(watched["unacknowledged"][1]["key"], "(id=1000000)", "turnout's own writes, the large transaction too, are not counted: {watched}");
    assert_eq!(watched["unacknowledged"][2]["kind"], "ddl", "{watched}");
    if tagged == 1 {
        assert_eq!(watched["unacknowledged"][3]["key"], "(id=98)", "an application's tagged write is counted: {watched}");
    }
    common::wait_for(&mut s.t, "the rogue_writes alert", |t| t.status().filter(|v| v["alerts"]["rogue_writes"] == "critical")).await;
    let (code, out) = turnout(&s.t, "cutover", &lag).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{rogue} writes on green did not come from turnout")) && out.contains("(id=1000000) insert"), "{out}");
    // Repaired and acknowledged: the repair is a write the watch sees too.
    s.green.execute(Some(&s.db), "DELETE FROM t WHERE id = 1000000; DROP TABLE rogue").expect("repair");
    let all = rogue + 2;
    green_watch_until(&mut s.t, "the repair on green", |w| w["seen"] == all).await;
    let (code, out) = turnout(&s.t, "rogue-writes", &["--acknowledge"]).await;
    assert!(code == 0 && out.contains(&format!("acknowledged {all} writes on green")), "{out}");
    // The cutover: inside the pause the watch reads green past a mark, and the counters it moved on
    // green are turnout's.
    let (code, out) = turnout(&s.t, "cutover", &lag).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("green watched"), "the pause names the watch's step: {out}");
    let (acked, errors) = writer.finish().await;
    assert_exactly_once(&s.green, &s.db, "green", &acked, &errors);
    let watched = s.t.status().map(|v| v["rogue_writes"]["green"].clone()).unwrap_or_default();
    assert_eq!(watched["seen"], 5 + tagged, "nothing of the cutover's counted: {watched}");
}

/// Blue's watch (`[watch] blue`, on by default) on `/status` once `check` holds for it.
async fn blue_watch_until(t: &mut Turnout, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    common::wait_for(t, what, |t| t.status().map(|v| v["rogue_writes"]["blue"].clone()).filter(|w| check(w))).await
}

#[tokio::test]
async fn a_write_on_blue_in_the_rollback_window_that_is_not_turnouts_refuses_finish_until_acknowledged() {
    let mut s = setup("read-only", "haproxy", "").await;
    let writer = start_writer(s.through());
    writer.wait_for(100).await;
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    wait_reverse(&mut s.t).await;
    let watched = blue_watch_until(&mut s.t, "blue's watch", |w| w["state"] == "watching").await;
    assert_eq!(watched["seen"], 0, "the cutover's own writes on blue are not foreign: {watched}");
    // The application writes on green; the reverse stream brings it to blue — not foreign there.
    writer.wait_for(writer.count() + 100).await;
    converge(&s.blue, &s.green, &s.db, "t", &s.t).await;
    // A write while the sidecar is down (kill -9) is read when it is back: a client that bypassed
    // the switch, with an account that writes through blue's read_only.
    s.t.kill9();
    s.blue.execute(Some(&s.db), "INSERT INTO t (id, note) VALUES (2000000, 'split')").expect("split write");
    s.t.start();
    wait_reverse(&mut s.t).await;
    let watched = blue_watch_until(&mut s.t, "the split-brain write", |w| w["seen"] == 1).await;
    assert_eq!(watched["unacknowledged"][0]["key"], "(id=2000000)", "{watched}");
    common::wait_for(&mut s.t, "the rogue_writes alert", |t| t.status().filter(|v| v["alerts"]["rogue_writes"] == "critical")).await;
    // More of green's writes come back to blue meanwhile; only the split-brain write is counted.
    writer.wait_for(writer.count() + 100).await;
    let (code, out) = turnout(&s.t, "finish", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 writes on blue did not come from turnout") && out.contains("(id=2000000) insert"), "{out}");
    let (code, out) = turnout(&s.t, "rogue-writes", &["--acknowledge"]).await;
    assert!(code == 0 && out.contains("acknowledged 1 writes on blue"), "{out}");
    // `finish` reads blue past a mark written now, and finds nothing else.
    let (code, out) = turnout(&s.t, "finish", &[]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    let watched = s.t.status().map(|v| v["rogue_writes"]["blue"].clone()).unwrap_or_default();
    assert_eq!(watched["seen"], 1, "the reverse stream's writes on blue are not counted: {watched}");
    let (_, errors) = writer.finish().await;
    assert!(errors.iter().all(|e| fence_error(e)), "unexpected client errors: {errors:?}");
    // The window ended: blue's marks go with it; teardown leaves nothing of turnout's on either side.
    let marks = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'turnout' AND TABLE_NAME = 'watch_mark'";
    let deadline = Instant::now() + WAIT;
    while s.blue.execute(None, marks).expect("marks").trim() != "0" {
        assert!(Instant::now() < deadline, "blue's turnout.watch_mark must go when the window ends");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.t.sigterm(), Some(0));
    let (code, out) = turnout(&s.t, "teardown", &["--yes"]).await;
    assert_eq!(code, 0, "{out}");
    let databases = "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'turnout'";
    for server in [&s.blue, &s.green] {
        assert_eq!(server.execute(None, databases).expect("databases").trim(), "0", "{out}");
    }
}
