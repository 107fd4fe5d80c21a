//! `turnout fleet cutover --waves`: one decision per wave, a soak between waves gated on every
//! switched pair's health and an operator's command; a failing gate stops the fleet where it is, and
//! `fleet rollback` takes back exactly the pairs on green.

use super::*;

/// Three PostgreSQL pairs, applications writing: wave 1 takes one pair, soaks (every pair on green
/// healthy, then the gate command, which sees the wave and the pairs), wave 2 takes the rest; every
/// acknowledged write is on its green and the certificate records both waves and the soak.
#[tokio::test]
async fn a_fleet_cuts_over_in_two_waves_with_a_soak_between() {
    let PgFleet { etcd: _etcd, mut pairs, dir, file } = pg_fleet("waves", true).await;
    let out = dir.path().join("out");
    let report = dir.path().join("waves.json");
    let gate = "test \"$TURNOUT_WAVE\" = 1 && test \"$TURNOUT_PAIRS_ON_GREEN\" = a";
    let args = [
        "cutover",
        "--when-lag",
        "<1s",
        "--timeout",
        "60s",
        "--max-pause",
        "10s",
        "--waves",
        "1,100%",
        "--soak",
        "2s",
        // The soak's lag limit is not what this test is about: a reverse stream just armed on a
        // loaded machine lagged 5.9 s once, past the default 5 s.
        "--soak-max-lag",
        "60s",
        "--gate-command",
        gate,
        "--report",
        report.to_str().expect("path"),
    ];
    let (code, text) = finished(fleet_command(&file, &args, &out), &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 waves: a | b c") && text.contains("wave 1 soaked") && text.contains("cut over in 2 waves: every pair is on green"), "{text}");
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        p.assert_all_on_green(&acked).await;
    }
    let certificate: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let waves = certificate["waves"].as_array().expect("waves");
    assert_eq!(waves.len(), 2, "{certificate}");
    assert_eq!((waves[0]["pairs"].clone(), waves[0]["soak"]["passed"].clone()), (serde_json::json!(["a"]), serde_json::json!(true)), "{certificate}");
    for wave in waves {
        assert_eq!(wave["certificate"]["decision"], "commit", "{wave}");
    }
}

/// The gate command fails after wave 1: the fleet stops with pair a on green and b, c on blue, and
/// says so; `fleet rollback` leaves b and c alone and takes a back — every acknowledged write on
/// every blue.
#[tokio::test]
async fn a_failing_soak_gate_stops_the_fleet_and_rollback_takes_back_only_that_wave() {
    let PgFleet { etcd: _etcd, mut pairs, dir, file } = pg_fleet("halt", true).await;
    let out = dir.path().join("out");
    let args = [
        "cutover",
        "--when-lag",
        "<1s",
        "--timeout",
        "60s",
        "--max-pause",
        "10s",
        "--waves",
        "1,100%",
        "--soak",
        "1s",
        // Only the gate decides here: a reverse stream just armed on a busy machine can lag past
        // the default 5 s, which is its own test.
        "--soak-max-lag",
        "60s",
        "--gate-command",
        "echo unhealthy >&2; exit 3",
    ];
    let (code, text) = finished(fleet_command(&file, &args, &out), &out).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("wave 1's soak failed: the gate command") && text.contains("exited 3: unhealthy"), "{text}");
    assert!(text.contains("the fleet stops here: on green a; on blue b, c"), "{text}");
    for p in &pairs[1..] {
        p.assert_blue_serves().await;
    }
    fleet_page_shows_a_on_green(&file, dir.path()).await;
    let (code, text) = finished(fleet_command(&file, &["rollback", "--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"], &out), &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("[b] on blue (no rollback window): left as it is") && text.contains("[c] on blue"), "{text}");
    assert!(text.contains("rolled back: every pair is on blue"), "{text}");
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        p.assert_all_on_blue(&acked).await;
        p.assert_blue_serves().await;
    }
}

/// `turnout fleet status --serve`'s page in a real headless Chromium, for a fleet stopped after its
/// first wave: pair a on green, b and c on blue, the last decision wave 1's commit.
async fn fleet_page_shows_a_on_green(file: &Path, dir: &Path) {
    use crate::page::{browse, element};
    let listen = format!("127.0.0.1:{}", turnout_testbed::free_port());
    let out = dir.join("page");
    let mut server = fleet_command(file, &["status", "--serve", &listen], &out);
    let url = format!("http://{listen}/");
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline && server.try_wait().expect("wait").is_none(), "{}", std::fs::read_to_string(&out).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dom = tokio::task::spawn_blocking(move || browse(&url, 3000, &["--dump-dom"])).await.expect("chromium");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(element(&dom, "on-green"), "1 of 3 on green", "{dom}");
    assert_eq!([element(&dom, "on-a"), element(&dom, "on-b"), element(&dom, "on-c")], ["green", "blue", "blue"], "{dom}");
    let decision = element(&dom, "decision");
    assert!(decision.starts_with("fleet cutover halt-") && decision.contains(": commit"), "{decision}");
}

/// A mixed fleet — two PostgreSQL pairs behind pgbouncer, a MariaDB pair behind haproxy — with
/// applications writing throughout: cut over in waves `1,100%`, rolled back as one decision, then
/// cut over again from the streams the rollback armed (no new copy). Every acknowledged write is on
/// the side that serves after each step, and on green at the end.
#[tokio::test]
async fn a_mixed_fleet_goes_in_waves_comes_back_as_one_and_cuts_over_again() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let (a, b, c) = tokio::join!(Pair::pg("a", 15, 17, &etcd), Pair::my("b", Flavor::MariaDb10_11, Flavor::MariaDb10_11, &etcd), Pair::pg("c", 15, 17, &etcd));
    let mut pairs = vec![a, b, c];
    let dir = tempfile::tempdir().expect("tmp");
    let file = fleet_file(dir.path(), "again", &etcd, &pairs);
    for p in &mut pairs {
        p.start_writer();
        p.writer.as_ref().expect("writer").wait_for(20).await;
    }
    let out = dir.path().join("out");
    let limits = ["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];
    // As above: the soak's lag limit is not what this test is about.
    let waves = [&["cutover"][..], &limits, &["--waves", "1,100%", "--soak", "1s", "--soak-max-lag", "60s"]].concat();
    let (code, text) = finished(fleet_command(&file, &waves, &out), &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 waves: a | b c") && text.contains("cut over in 2 waves: every pair is on green"), "{text}");
    for p in &pairs {
        let writer = p.writer.as_ref().expect("writer");
        writer.wait_for(writer.count() + 20).await;
    }

    let back = [&["rollback"][..], &limits].concat();
    let (code, text) = finished(fleet_command(&file, &back, &out), &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("rolled back: every pair is on blue"), "{text}");
    let mut before = Vec::new();
    for p in &mut pairs {
        let acked = p.stop_writer().await;
        p.assert_all_on_blue(&acked).await;
        before.push(acked);
        p.start_writer();
    }
    // The rollback armed each pair's stream blue → green again: it streams before the next cutover.
    for p in &mut pairs {
        common::wait_for(&mut p.t, "the next generation streams", |t| t.status().filter(|v| v["direction"] == "forward" && v["phase"] == "streaming")).await;
        let writer = p.writer.as_ref().expect("writer");
        writer.wait_for(writer.count() + 20).await;
    }

    let again = [&["cutover"][..], &limits].concat();
    let (code, text) = finished(fleet_command(&file, &again, &out), &out).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fleet decision: commit"), "{text}");
    for (p, mut acked) in pairs.iter_mut().zip(before) {
        let after = p.stop_writer().await;
        assert!(after.len() > 20, "{}: the application barely wrote after the rollback ({})", p.name, after.len());
        acked.extend(after);
        acked.sort_unstable();
        p.assert_all_on_green(&acked).await;
    }
}
