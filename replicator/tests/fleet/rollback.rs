//! `turnout fleet rollback` and `fleet finish`: the fleet's way back as one decision, on the same
//! pairs and etcd as its cutover — every pair back on blue with every acknowledged write, or none.

use super::*;

impl Pair {
    /// The sidecar's rollback progress: its outcome once ended.
    fn rollback_outcome(&self) -> String {
        let progress: serde_json::Value = self.t.get("/rollback").and_then(|b| serde_json::from_str(&b).ok()).unwrap_or_default();
        progress["outcome"].as_str().unwrap_or_default().to_owned()
    }

    /// Every id in `acked` is on blue.
    pub(super) async fn assert_all_on_blue(&self, acked: &[i64]) {
        let on_blue = self.ids(false).await;
        let missing: Vec<_> = acked.iter().filter(|id| on_blue.binary_search(id).is_err()).collect();
        assert!(missing.is_empty(), "{}: acknowledged writes missing on blue: {missing:?}\n{}", self.name, self.t.log_text());
    }

    /// Holds a lock on `block` on blue and commits a row on green that blue therefore cannot apply
    /// from the reverse stream: this pair's rollback cannot prove while the session holds it.
    async fn block_blue(&self) -> tokio_postgres::Client {
        let Servers::Pg { blue, green_url, .. } = &self.servers else { panic!("{}: a PostgreSQL pair", self.name) };
        let (c, conn) = tokio_postgres::connect(&blue.url(&self.db), tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        c.batch_execute("BEGIN; LOCK TABLE block IN SHARE MODE").await.expect("lock");
        let (g, conn) = tokio_postgres::connect(green_url, tokio_postgres::NoTls).await.expect("green");
        tokio::spawn(conn);
        g.batch_execute("INSERT INTO block VALUES (1)").await.expect("insert on green");
        c
    }
}

/// Waits until every pair's rollback ended; their outcomes.
async fn rollback_outcomes(pairs: &[Pair]) -> Vec<String> {
    ended(pairs, Pair::rollback_outcome).await
}

/// Two PostgreSQL pairs and a MariaDB pair, each with an application writing through its proxy
/// throughout: the fleet cuts over, then rolls back as one decision — every pair back on blue, every
/// write acknowledged before, between and after on its blue; the fleet's certificate is a rollback's.
#[tokio::test]
async fn a_fleet_cut_over_rolls_back_as_one_decision_with_every_write_on_blue() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let (a, b, c) = tokio::join!(Pair::pg("a", 15, 17, &etcd), Pair::pg("b", 15, 17, &etcd), Pair::my("c", Flavor::MariaDb10_11, Flavor::MariaDb10_11, &etcd));
    let mut pairs = vec![a, b, c];
    let dir = tempfile::tempdir().expect("tmp");
    let file = fleet_file(dir.path(), "back", &etcd, &pairs);
    for p in &mut pairs {
        p.start_writer();
        p.writer.as_ref().expect("writer").wait_for(20).await;
    }
    let out = dir.path().join("out");
    let (code, text) = finished(fleet_command(&file, &["cutover", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"], &out), &out).await;
    assert_eq!(code, 0, "{text}");
    for p in &pairs {
        p.writer.as_ref().expect("writer").wait_for(p.writer.as_ref().expect("writer").count() + 20).await;
    }
    let report = dir.path().join("back.json");
    let child =
        fleet_command(&file, &["rollback", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s", "--report", report.to_str().expect("path")], &out);
    let (code, text) = finished(child, &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fleet decision: commit") && text.contains("rolled back: every pair is on blue"), "{text}");
    assert_eq!(rollback_outcomes(&pairs).await, ["done", "done", "done"]);
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        assert!(acked.len() > 40, "{}: the application barely wrote ({})", p.name, acked.len());
        p.assert_all_on_blue(&acked).await;
        p.assert_blue_serves().await;
    }
    let certificate: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!((certificate["kind"].as_str(), certificate["decision"].as_str()), (Some("fleet-rollback"), Some("commit")), "{certificate}");
    for row in certificate["pairs"].as_array().expect("pairs") {
        assert_eq!(row["did"]["did"], "switched", "{row}");
    }
    let status_out = dir.path().join("status");
    let (_, status) = finished(fleet_command(&file, &["status"], &status_out), &status_out).await;
    assert!(status.contains("last fleet rollback") && status.contains("decision commit"), "{status}");
}

/// One pair whose blue cannot apply the reverse stream (a lock on blue) cannot prove: the fleet's
/// rollback aborts, every pair undoes its fence on green and stays there, taking writes; then
/// `fleet finish` ends every pair's window together.
#[tokio::test]
async fn a_pair_that_cannot_prove_its_rollback_keeps_the_whole_fleet_on_green_and_finish_ends_every_window() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("stay", true).await;
    let out = dir.path().join("out");
    let (code, text) = finished(fleet_command(&file, &["cutover", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"], &out), &out).await;
    assert_eq!(code, 0, "{text}");
    let lock = pairs[2].block_blue().await;
    let (code, text) = finished(fleet_command(&file, &["rollback", "--when-lag", BLOCKED_LAG, "--timeout", "30s", "--max-pause", "2s"], &out), &out).await;
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("fleet decision: abort") && text.contains("traffic stays on green"), "{text}");
    assert_eq!(rollback_outcomes(&pairs).await, ["failed", "failed", "failed"]);
    drop(lock);
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        p.assert_all_on_green(&acked).await;
    }
    let keys = etcd_keys(&etcd, "stay").await;
    let aborted = keys.iter().find(|(k, v)| k.ends_with("/decision") && v == "abort").map(|(k, _)| k.trim_end_matches("decision").to_owned());
    let aborted = aborted.unwrap_or_else(|| panic!("the rollback's decision is abort: {keys:?}"));
    assert!(!keys.iter().any(|(k, v)| k.starts_with(&aborted) && k.contains("/outcome/") && v.contains("switched")), "{keys:?}");
    let (code, text) = finished(fleet_command(&file, &["finish"], &out), &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("every pair's rollback window is finished"), "{text}");
    let (code, text) = finished(fleet_command(&file, &["finish"], &out), &out).await;
    assert_ne!(code, 0, "a window finished once is not finished again: {text}");
}

/// The fleet's current cutover id, as etcd names it.
fn current(keys: &[(String, String)]) -> Option<String> {
    keys.iter().find(|(k, _)| k == "current").map(|(_, v)| v.clone())
}

/// A sidecar killed -9 while it holds its rollback vote (pair c's blue held by a lock, so c proves
/// slowly): the fleet decides without it, and the restarted sidecar settles its rollback from its
/// journal and the decision — every pair follows it, and every acknowledged write is on the side the
/// decision left traffic on.
#[tokio::test]
async fn a_sidecar_killed_while_holding_its_rollback_vote_resumes_to_the_decision() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("again", true).await;
    let out = dir.path().join("out");
    let (code, text) = finished(fleet_command(&file, &["cutover", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"], &out), &out).await;
    assert_eq!(code, 0, "{text}");
    let cutover = current(&etcd_keys(&etcd, "again").await).expect("the cutover's id");
    let lock = pairs[2].block_blue().await;
    let child = fleet_command(&file, &["rollback", "--when-lag", BLOCKED_LAG, "--timeout", "30s", "--max-pause", "15s"], &out);
    let keys = until_keys(&etcd, "again", "a's rollback vote", |k| {
        current(k).is_some_and(|id| id != cutover && k.iter().any(|(key, v)| *key == format!("{id}/vote/a") && v == "prepared"))
    })
    .await;
    let rollback = current(&keys).expect("the rollback's id");
    pairs[0].t.kill9();
    drop(lock);
    let keys = until_keys(&etcd, "again", "the rollback's decision", |k| {
        k.iter().any(|(key, v)| *key == format!("{rollback}/decision") && (v == "commit" || v == "abort"))
    })
    .await;
    let decided = keys.iter().find(|(k, _)| *k == format!("{rollback}/decision")).map(|(_, v)| v.clone()).expect("decision");
    eprintln!("the fleet decided {decided} while pair a was down");
    pairs[0].t.start();
    // The restarted sidecar settles its rollback from its journal and the decision (after a
    // completed rollback `turnout run` replicates no more and says so).
    let deadline = Instant::now() + WAIT;
    while !pairs[0].t.log_text().contains("interrupted while holding for fleet") {
        assert!(Instant::now() < deadline, "the restarted sidecar did not settle:\n{}", pairs[0].t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, text) = finished(child, &out).await;
    let want = if decided == "commit" { "done" } else { "failed" };
    let got = rollback_outcomes(&pairs[1..]).await;
    assert!(got.iter().all(|o| o == want), "decision {decided}: every pair must follow it, got {got:?}\n{text}");
    let settled = if decided == "commit" { "the switch to blue was completed" } else { "the fence on green was undone" };
    let deadline = Instant::now() + WAIT;
    while !pairs[0].t.log_text().contains(settled) {
        assert!(Instant::now() < deadline, "pair a did not follow the decision {decided}:\n{}", pairs[0].t.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        if decided == "commit" {
            p.assert_all_on_blue(&acked).await;
            p.assert_blue_serves().await;
        } else {
            p.assert_all_on_green(&acked).await;
        }
    }
}

/// Cuts fleet `fleet` over (committed); the cutover's id.
async fn cut_over(etcd: &EtcdCluster, file: &Path, dir: &Path, fleet: &str) -> String {
    let out = dir.join("out");
    let (code, text) = finished(fleet_command(file, &["cutover", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"], &out), &out).await;
    assert_eq!(code, 0, "{text}");
    current(&etcd_keys(etcd, fleet).await).expect("the cutover's id")
}

/// The fleet's current run once it is another than `cutover` (the rollback's id).
fn rollback_id(keys: &[(String, String)], cutover: &str) -> Option<String> {
    current(keys).filter(|id| id != cutover)
}

/// How many pairs voted `prepared` in the rollback after `cutover`.
fn rollback_votes(keys: &[(String, String)], cutover: &str) -> usize {
    rollback_id(keys, cutover).map_or(0, |id| keys.iter().filter(|(k, v)| k.starts_with(&format!("{id}/vote/")) && v == "prepared").count())
}

/// The decision of the rollback after `cutover`, once there is one.
fn rollback_decision(keys: &[(String, String)], cutover: &str) -> Option<String> {
    let id = rollback_id(keys, cutover)?;
    keys.iter().find(|(k, _)| *k == format!("{id}/decision")).map(|(_, v)| v.clone())
}

/// The coordinator killed -9 during a rollback before deciding (pair c's blue held by a lock, so c
/// proves slowly): the pairs that voted hold until their hold runs out, abort the rollback
/// themselves and undo their fences on green; the whole fleet stays on green with every write.
#[tokio::test]
async fn the_coordinator_killed_before_deciding_a_rollback_every_pair_stays_on_green() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("orphan-back", true).await;
    let cutover = cut_over(&etcd, &file, dir.path(), "orphan-back").await;
    let lock = pairs[2].block_blue().await;
    let out = dir.path().join("out");
    let mut child = fleet_command(&file, &["rollback", "--when-lag", BLOCKED_LAG, "--timeout", "30s", "--max-pause", "3s"], &out);
    until_keys(&etcd, "orphan-back", "two rollback votes", |k| rollback_votes(k, &cutover) == 2).await;
    child.kill().expect("kill -9 the coordinator");
    let _ = child.wait();
    assert_eq!(rollback_outcomes(&pairs).await, ["failed", "failed", "failed"]);
    drop(lock);
    let keys = etcd_keys(&etcd, "orphan-back").await;
    assert_eq!(rollback_decision(&keys, &cutover).as_deref(), Some("abort"), "{keys:?}");
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        p.assert_all_on_green(&acked).await;
    }
}

/// The coordinator killed -9 the moment the rollback's decision reads `commit`: every pair still
/// switches back, watching the decision itself; every write is on blue.
#[tokio::test]
async fn the_coordinator_killed_after_a_rollback_commits_every_pair_still_switches_back() {
    let PgFleet { etcd, mut pairs, dir, file } = pg_fleet("committed-back", true).await;
    let cutover = cut_over(&etcd, &file, dir.path(), "committed-back").await;
    let out = dir.path().join("out");
    let mut child = fleet_command(&file, &["rollback", "--when-lag", "<5s", "--timeout", "30s", "--max-pause", "10s"], &out);
    until_keys(&etcd, "committed-back", "the rollback's commit", |k| rollback_decision(k, &cutover).as_deref() == Some("commit")).await;
    child.kill().expect("kill -9 the coordinator");
    let _ = child.wait();
    assert_eq!(rollback_outcomes(&pairs).await, ["done", "done", "done"]);
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        p.assert_all_on_blue(&acked).await;
        p.assert_blue_serves().await;
    }
}

/// An etcd member killed -9 while the rollback's votes come in (pair c proving slowly behind a lock
/// on its blue): whatever the fleet decides, every pair follows the one decision — all back on blue
/// with every write there, or all still on green with every write there.
#[tokio::test]
async fn an_etcd_member_killed_while_a_rollback_votes_leaves_the_fleet_on_one_side() {
    let PgFleet { mut etcd, mut pairs, dir, file } = pg_fleet("member-back", true).await;
    let cutover = cut_over(&etcd, &file, dir.path(), "member-back").await;
    let lock = pairs[2].block_blue().await;
    let out = dir.path().join("out");
    let child = fleet_command(&file, &["rollback", "--when-lag", BLOCKED_LAG, "--timeout", "30s", "--max-pause", "15s"], &out);
    until_keys(&etcd, "member-back", "a rollback vote", |k| rollback_votes(k, &cutover) >= 1).await;
    etcd.kill(0);
    drop(lock);
    let (code, text) = finished(child, &out).await;
    let keys = etcd_keys(&etcd, "member-back").await;
    let decided = rollback_decision(&keys, &cutover).unwrap_or_else(|| panic!("the rollback was decided: {keys:?}\n{text}"));
    eprintln!("with an etcd member killed while the votes came in, the fleet decided {decided} (exit {code})");
    let want = if decided == "commit" { "done" } else { "failed" };
    let got = rollback_outcomes(&pairs).await;
    assert!(got.iter().all(|o| o == want), "decision {decided}: every pair must follow it, got {got:?}\n{text}");
    assert_eq!(code == 0, decided == "commit", "the coordinator's exit says the decision: {text}");
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        if decided == "commit" {
            p.assert_all_on_blue(&acked).await;
        } else {
            p.assert_all_on_green(&acked).await;
        }
    }
}
