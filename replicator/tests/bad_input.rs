//! The bad-input table (docs/src/reference/bad-input.md), the rows not covered by the check, config, TLS and secrets tests:
//! each bad input gives its exit code and a message naming the thing and the fix — never a panic.

use crate::common;

use common::{maria_pair, Turnout};
use std::path::Path;
use std::process::Command;
use turnout_testbed::free_port;

/// Runs `turnout <args>`; returns exit code and everything it printed.
fn turnout(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_turnout")).args(args).output().expect("turnout");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("panicked"), "turnout panicked: {text}");
    (out.status.code().unwrap_or(-1), text)
}

fn config(dir: &Path, body: &str) -> String {
    let path = dir.join("turnout.toml");
    std::fs::write(&path, body).expect("config");
    path.to_str().expect("utf-8").to_owned()
}

fn minimal(dir: &Path) -> String {
    format!(
        "[source]\nurl = \"postgres://u:p@127.0.0.1:{}/app\"\n[target]\nurl = \"postgres://u:p@127.0.0.1:{}/app\"\n[state]\ndir = \"{}\"\n",
        free_port(),
        free_port(),
        dir.join("state").display()
    )
}

fn assert_says(what: &str, (code, text): (i32, String), want_code: i32, words: &[&str]) {
    assert_eq!(code, want_code, "{what}: exit code\n{text}");
    for word in words {
        assert!(text.contains(word), "{what}: the message should contain {word:?}:\n{text}");
    }
}

#[test]
fn unusable_configuration_exits_two_naming_the_field_and_the_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let base = minimal(d);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("malformed TOML", "[source\nurl = ".into(), vec!["not valid TOML at line 1", "fix the syntax"]),
        ("unknown key", format!("{base}[apply]\nbatch_rowz = 5\n"), vec!["batch_rowz"]),
        ("missing source.url", base.replacen("url = ", "# url = ", 1), vec!["source"]),
        ("a URL of another scheme", base.replacen("postgres://", "http://", 1), vec!["source.url"]),
        (
            "blue and green of different kinds",
            base.replacen("[target]\nurl = \"postgres://u:p@", "[target]\nurl = \"mysql://u:p@", 1),
            vec!["target.url", "use a postgres:// URL for green"],
        ),
        ("a duration without a unit", format!("{base}[alerts]\nlag_warning = \"5\"\n"), vec!["alerts.lag_warning"]),
        ("a size that is not one", format!("{base}[apply]\nmemory_budget = \"lots\"\n"), vec!["apply.memory_budget"]),
        ("a public API without a token", format!("{base}[http]\nlisten = \"0.0.0.0:9187\"\n"), vec!["http.listen", "cutover.token"]),
        ("the pgbouncer fence without its console", format!("{base}[cutover]\nfence = \"pgbouncer\"\n"), vec!["cutover.pgbouncer", "admin_url"]),
        ("an undefined ${VAR}", base.replacen("u:p@", "u:${TURNOUT_TEST_UNDEFINED_PASSWORD}@", 1), vec!["TURNOUT_TEST_UNDEFINED_PASSWORD"]),
    ];
    for (what, body, words) in cases {
        let path = config(d, &body);
        assert_says(what, turnout(&["check", "--config", &path]), 2, &words);
    }
    // A configuration file that does not exist.
    let missing = d.join("nope.toml");
    assert_says("a missing configuration file", turnout(&["check", "--config", missing.to_str().expect("utf-8")]), 2, &["nope.toml"]);
    // A --when-lag that is not a duration.
    let path = config(d, &base);
    assert_says("a bad --when-lag", turnout(&["cutover", "--config", &path, "--when-lag", "soon"]), 2, &["--when-lag"]);
}

#[test]
fn run_names_an_unusable_state_dir_and_a_port_in_use() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // state.dir is a file.
    std::fs::write(d.join("state"), "a file").expect("file");
    let path = config(d, &minimal(d));
    assert_says("an unwritable state.dir", turnout(&["run", "--config", &path]), 1, &["state.dir"]);
    std::fs::remove_file(d.join("state")).expect("rm");
    // http.listen taken by another program.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let path = config(d, &format!("{}[http]\nlisten = \"127.0.0.1:{port}\"\n", minimal(d)));
    assert_says("http.listen in use", turnout(&["run", "--config", &path]), 1, &["http.listen", &format!("127.0.0.1:{port}")]);
}

#[tokio::test]
async fn check_and_dry_run_name_a_missing_database_and_unreachable_cutover_consoles() {
    let (blue, green, db) = common::pair("CREATE TABLE t (id int PRIMARY KEY)").await;
    let dir = tempfile::tempdir().expect("tmp");
    // Green lacks the database the URL names.
    let path = config(
        dir.path(),
        &format!(
            "[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n[state]\ndir = \"{}\"\n",
            blue.url(&db),
            green.url("no_such_db"),
            dir.path().join("s").display()
        ),
    );
    assert_says("a missing database", turnout(&["check", "--config", &path]), 1, &["no_such_db", "CREATE DATABASE"]);
    // A running sidecar whose pgbouncer console and haproxy socket do not answer: the dry run names them.
    let console = format!("postgres://pgbouncer:pw@127.0.0.1:{}/pgbouncer", free_port());
    let extra = format!(
        "[cutover]\nfence = \"pgbouncer\"\nswitch = \"pgbouncer\"\n[cutover.pgbouncer]\nadmin_url = \"{console}\"\ndatabase = \"{db}\"\nconfig_file = \"{}\"\n",
        dir.path().join("pgbouncer.ini").display()
    );
    let sidecar = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(sidecar.path(), &blue.url(&db), &green.url(&db), &extra);
    t.start();
    common::wait_streaming(&mut t).await;
    let out = turnout(&["cutover", "--config", t.config_path().to_str().expect("utf-8"), "--dry-run", "--when-lag", "1s"]);
    assert_says("pgbouncer's console unreachable", out, 1, &["pgbouncer", "dry run failed"]);
    assert_eq!(t.sigterm(), Some(0));
    let socket = dir.path().join("haproxy.sock");
    let extra =
        format!("[cutover]\nfence = \"read-only\"\nswitch = \"haproxy\"\n[cutover.haproxy]\nadmin_socket = \"{}\"\nbackend = \"db\"\n", socket.display());
    let sidecar = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(sidecar.path(), &blue.url(&db), &green.url(&db), &extra);
    t.start();
    common::wait_streaming(&mut t).await;
    let out = turnout(&["cutover", "--config", t.config_path().to_str().expect("utf-8"), "--dry-run", "--when-lag", "1s"]);
    assert_says("haproxy's admin socket unreachable", out, 1, &["haproxy.sock", "dry run failed"]);
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn check_names_mariadb_settings_turnout_cannot_replicate_from() {
    let (blue, green, db) = maria_pair();
    blue.execute(None, "SET GLOBAL binlog_format = 'STATEMENT'; SET GLOBAL binlog_row_metadata = 'MINIMAL'").expect("settings");
    let dir = tempfile::tempdir().expect("tmp");
    let path = config(
        dir.path(),
        &format!("[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n[state]\ndir = \"{}\"\n", blue.url(&db), green.url(&db), dir.path().join("s").display()),
    );
    assert_says(
        "binlog_format and binlog_row_metadata",
        turnout(&["check", "--config", &path]),
        1,
        &["binlog_format = STATEMENT", "SET GLOBAL binlog_format = 'ROW'", "binlog_row_metadata = MINIMAL", "SET GLOBAL binlog_row_metadata = 'FULL'"],
    );
}

#[tokio::test]
async fn live_verify_says_it_needs_the_running_sidecar() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let path = config(d, &format!("{}[http]\nlisten = \"127.0.0.1:{}\"\n", minimal(d), free_port()));
    assert_says(
        "verify --live without a sidecar",
        turnout(&["verify", "--live", "--config", &path]),
        1,
        &["verify --live needs the running sidecar", "turnout run", "`turnout verify` compares without it"],
    );
    assert_says("--chunk-rows 0", turnout(&["verify", "--live", "--chunk-rows", "0", "--config", &path]), 2, &["--chunk-rows"]);
}
