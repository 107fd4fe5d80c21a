//! Hardened edges of `turnout run`, across real processes: one sidecar per state directory, the
//! state directory readable by turnout's user only, JSON logs, and the API refused on a public
//! address without a token.

use crate::common;

use common::{Turnout, WAIT};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Instant;

/// A PostgreSQL URL where nothing listens: the sidecar starts (state, HTTP API) and keeps retrying.
fn nowhere() -> String {
    format!("postgres://turnout:pw@127.0.0.1:{}/app", turnout_testbed::free_port())
}

async fn wait_healthy(t: &mut Turnout) {
    let deadline = Instant::now() + WAIT;
    while t.status().is_none() {
        assert!(t.exited().is_none(), "turnout exited\n{}", t.log_text());
        assert!(Instant::now() < deadline, "turnout never answered\n{}", t.log_text());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_second_sidecar_on_the_same_state_dir_is_refused_and_the_dir_is_private() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut first = Turnout::new(dir.path(), &nowhere(), &nowhere());
    first.start();
    wait_healthy(&mut first).await;
    let mode = std::fs::metadata(dir.path().join("state")).expect("state dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "state.dir must be created readable by turnout's user only");
    let second = Command::new(env!("CARGO_BIN_EXE_turnout")).args(["run", "--config"]).arg(first.config_path()).output().expect("second run");
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("is in use by another turnout process"), "{err}");
    // The first keeps running, untouched.
    assert!(first.exited().is_none() && first.status().is_some());
    assert_eq!(first.sigterm(), Some(0));
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_including_the_fatal_error() {
    let dir = tempfile::tempdir().expect("tmp");
    // state.dir is a file: run stops at once with the reason.
    let t = Turnout::new(dir.path(), &nowhere(), &nowhere());
    std::fs::write(dir.path().join("state"), "not a directory").expect("file");
    let out = Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(t.config_path())
        .env("RUST_LOG", "info")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    let fatal = lines.iter().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find(|v| v["level"] == "ERROR").expect("an ERROR line");
    assert!(fatal["fields"]["error"].as_str().is_some_and(|e| e.contains("state.dir")), "{fatal}");
}

#[test]
fn an_api_reachable_from_other_machines_needs_a_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("turnout.toml");
    let base = format!("[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n[state]\ndir = \"{}\"\n", nowhere(), nowhere(), dir.path().join("state").display());
    std::fs::write(&config, format!("{base}[http]\nlisten = \"0.0.0.0:9187\"\n")).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_turnout")).args(["check", "--config"]).arg(&config).output().expect("check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("http.listen") && err.contains("cutover.token"), "{err}");
    // With a token the same address is accepted (check then fails on the unreachable servers, exit 1).
    std::fs::write(&config, format!("{base}[http]\nlisten = \"0.0.0.0:9187\"\n[cutover]\ntoken = \"a-long-random-secret\"\n")).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_turnout")).args(["check", "--config"]).arg(&config).output().expect("check");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `turnout teardown` with a copy of a running sidecar's state directory (a turnout running
/// elsewhere on the same stream): the slot that sidecar streams is refused after a wait, naming it
/// and what to do, and the running stream is never ended.
#[tokio::test]
async fn a_teardown_beside_a_running_sidecar_refuses_the_slot_it_streams_and_never_ends_it() {
    let (blue, green, db) = common::pair("CREATE TABLE t (id int PRIMARY KEY, note text);").await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    common::wait_streaming(&mut t).await;
    assert_eq!(t.sigterm(), Some(0));
    // Copied while the sidecar is stopped, the state directory names the same stream.
    let elsewhere = tempfile::tempdir().expect("tmp");
    copy_dir(&dir.path().join("state"), &elsewhere.path().join("state"));
    let other = Turnout::new(elsewhere.path(), &blue.url(&db), &green.url(&db));
    t.start();
    common::wait_streaming(&mut t).await;
    let (code, out) = common::turnout_command(&other, "teardown", &["--yes"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is active") && out.contains("a turnout running elsewhere?"), "{out}");
    // The sidecar streams on: a row written on blue reaches green.
    let b = blue.connect(&db).await.expect("blue");
    b.batch_execute("INSERT INTO t VALUES (1, 'after the refused teardown')").await.expect("insert");
    let g = green.connect(&db).await.expect("green");
    let deadline = Instant::now() + WAIT;
    while g.query_opt("SELECT 1 FROM t WHERE id = 1", &[]).await.expect("read green").is_none() {
        assert!(t.exited().is_none() && Instant::now() < deadline, "the running stream must go on\n{}", t.log_text());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(t.sigterm(), Some(0));
}

/// Copies the directory `from` to `to`, recursively.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
