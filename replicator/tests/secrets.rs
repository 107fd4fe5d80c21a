//! Secrets never leave turnout: every command is run with distinctive passwords, a cutover token and
//! a webhook credential, including wrong ones and malformed URLs, and none of them appears in any
//! output, log line, `/status`, `/metrics`, `/cutover` or error.

use crate::common;

use common::{maria_pair, wait_streaming, Turnout};
use std::process::Command;

const BLUE_SECRET: &str = "blue-Secret-7Qz";
const GREEN_SECRET: &str = "green-Secret-4Kp";
const TOKEN: &str = "token-Secret-9Wd";
const HOOK_SECRET: &str = "hook-Secret-3Rv";
const WRONG_SECRET: &str = "wrong-Secret-1Xy";

/// Runs `turnout <args>`; returns everything it printed.
fn turnout(args: &[&str], config: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_turnout")).args(args).arg("--config").arg(config).output().expect("turnout");
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn get(t: &Turnout, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", t.port())).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("request");
    let mut r = String::new();
    s.read_to_string(&mut r).expect("response");
    r
}

fn assert_secret_free(what: &str, text: &str) {
    for secret in [BLUE_SECRET, GREEN_SECRET, TOKEN, HOOK_SECRET, WRONG_SECRET] {
        assert!(!text.contains(secret), "{what} shows the secret {secret}:\n{text}");
    }
}

#[tokio::test]
async fn no_postgres_command_output_log_or_endpoint_shows_a_password_or_token() {
    let (blue, green, db) = common::pair("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g").await;
    let role = "CREATE ROLE turnout_rep LOGIN SUPERUSER REPLICATION PASSWORD";
    blue.execute("postgres", &format!("{role} '{BLUE_SECRET}'")).await.expect("blue role");
    green.execute("postgres", &format!("{role} '{GREEN_SECRET}'")).await.expect("green role");
    let blue_url = format!("{}?sslmode=disable", blue.url_for("turnout_rep", BLUE_SECRET, &db));
    let green_url = format!("{}?sslmode=disable", green.url_for("turnout_rep", GREEN_SECRET, &db));
    let extra = format!("[cutover]\ntoken = \"{TOKEN}\"\n[alerts]\nlag_warning = \"1h\"\nwebhook = \"http://hook:{HOOK_SECRET}@127.0.0.1:9/alerts\"\n");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue_url, &green_url, &extra);
    t.start();
    wait_streaming(&mut t).await;
    let config = t.config_path().to_path_buf();
    let mut seen = Vec::new();
    for args in [
        &["check"][..],
        &["status"],
        &["status", "--json"],
        &["verify"],
        &["cutover", "--dry-run", "--when-lag", "1s"],
        &["rollback", "--dry-run", "--when-lag", "1s"],
        &["finish"],
        &["teardown"],
    ] {
        seen.push((args.join(" "), turnout(args, &config)));
    }
    for path in ["/status", "/metrics", "/cutover", "/rollback", "/healthz"] {
        seen.push((path.to_owned(), get(&t, path)));
    }
    assert_eq!(t.sigterm(), Some(0));
    seen.push(("turnout run's log".into(), t.log_text()));
    // Wrong passwords, an unreachable host and a malformed URL: the errors name the problem, not the
    // secret.
    let wrong = dir.path().join("wrong.toml");
    let state = dir.path().join("state-wrong");
    let write = |source: &str, target: &str| {
        std::fs::write(&wrong, format!("[source]\nurl = \"{source}\"\n[target]\nurl = \"{target}\"\n[state]\ndir = \"{}\"\n", state.display())).expect("config")
    };
    write(&blue.url_for("turnout_rep", WRONG_SECRET, &db), &green.url_for("turnout_rep", WRONG_SECRET, &db));
    let out = turnout(&["check"], &wrong);
    assert!(out.contains("password"), "the error should say the password is wrong: {out}");
    seen.push(("check with wrong passwords".into(), out));
    seen.push(("run with wrong passwords".into(), turnout(&["run"], &wrong)));
    write(&format!("postgres://turnout_rep:{WRONG_SECRET}@127.0.0.1:1/{db}"), &format!("postgres://turnout_rep:{WRONG_SECRET}@127.0.0.1:notaport/{db}"));
    let out = turnout(&["check"], &wrong);
    assert!(out.contains("target.url"), "the error should name the field: {out}");
    seen.push(("check with a malformed URL".into(), out));
    for (what, text) in &seen {
        assert_secret_free(what, text);
    }
    // The outputs were real: the status and check said something.
    assert!(seen.iter().any(|(w, text)| w == "status --json" && text.contains("streaming")), "{seen:?}");
}

#[tokio::test]
async fn no_mariadb_command_output_or_error_shows_a_password() {
    let (blue, green, db) = maria_pair();
    let account = |secret: &str| format!("CREATE USER rep@'%' IDENTIFIED BY '{secret}'; GRANT ALL PRIVILEGES ON *.* TO rep@'%';");
    blue.execute(None, &account(BLUE_SECRET)).expect("blue account");
    green.execute(None, &format!("SET sql_log_bin = 0; {}", account(GREEN_SECRET))).expect("green account");
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t VALUES (1), (2)").expect("table");
    let url = |port: u16, secret: &str| format!("mysql://rep:{secret}@127.0.0.1:{port}/{db}");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(
        dir.path(),
        &url(blue.port(), BLUE_SECRET),
        &url(green.port(), GREEN_SECRET),
        &format!("[cutover]\nfence = \"read-only\"\ntoken = \"{TOKEN}\"\n"),
    );
    t.start();
    wait_streaming(&mut t).await;
    let config = t.config_path().to_path_buf();
    let mut seen = Vec::new();
    for args in [&["check"][..], &["status", "--json"], &["verify"], &["cutover", "--dry-run", "--when-lag", "1s"]] {
        seen.push((args.join(" "), turnout(args, &config)));
    }
    for path in ["/status", "/metrics"] {
        seen.push((path.to_owned(), get(&t, path)));
    }
    assert_eq!(t.sigterm(), Some(0));
    seen.push(("turnout run's log".into(), t.log_text()));
    let wrong = dir.path().join("wrong.toml");
    let state = dir.path().join("state-wrong");
    let write = |source: &str, target: &str| {
        std::fs::write(&wrong, format!("[source]\nurl = \"{source}\"\n[target]\nurl = \"{target}\"\n[state]\ndir = \"{}\"\n", state.display())).expect("config")
    };
    write(&url(blue.port(), WRONG_SECRET), &url(green.port(), WRONG_SECRET));
    let out = turnout(&["check"], &wrong);
    assert!(out.contains("Access denied") || out.contains("password"), "{out}");
    seen.push(("check with wrong passwords".into(), out));
    seen.push(("run with wrong passwords".into(), turnout(&["run"], &wrong)));
    write(&format!("mysql://rep:{WRONG_SECRET}@127.0.0.1:notaport/{db}"), &url(green.port(), WRONG_SECRET));
    let out = turnout(&["check"], &wrong);
    assert!(out.contains("source.url"), "the error should name the field: {out}");
    seen.push(("check with a malformed URL".into(), out));
    for (what, text) in &seen {
        assert_secret_free(what, text);
    }
    assert!(seen.iter().any(|(w, text)| w == "verify" && text.contains("tables compared")), "{seen:?}");
}
