//! `turnout demo` — the README's main-job command — runs end to end on this machine: local servers,
//! load through pgbouncer (PostgreSQL) or haproxy (`--mysql`, MariaDB), replication, cutover,
//! verification, cleanup.

use std::process::Command;

#[test]
fn demo_replicates_cuts_over_and_verifies_every_acknowledged_write() {
    let out = Command::new(env!("CARGO_BIN_EXE_turnout")).arg("demo").env("RUST_LOG", "warn").output().expect("turnout demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("traffic is on green"), "{stdout}");
    assert!(stdout.contains(" 0 errors") && stdout.contains(", 0 missing; balances consistent: true"), "{stdout}");
    let writes: usize = stdout.lines().find_map(|l| l.strip_prefix("application: ")?.split_whitespace().next()?.parse().ok()).expect("acknowledged count");
    assert!(writes > 100, "the application should have written during the demo: {stdout}");
    assert!(stdout.contains("lag "), "the demo shows lag live: {stdout}");
}

#[test]
fn demo_for_mariadb_replicates_cuts_over_through_haproxy_and_verifies_every_acknowledged_write() {
    let out = Command::new(env!("CARGO_BIN_EXE_turnout")).args(["demo", "--mysql"]).env("RUST_LOG", "warn").output().expect("turnout demo --mysql");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("switched traffic to green (haproxy)") && stdout.contains("traffic is on green"), "{stdout}");
    assert!(stdout.contains(" 0 errors") && stdout.contains(", 0 missing; balances consistent: true"), "{stdout}");
    assert!(stdout.contains("blue stays read-only: true"), "{stdout}");
    let writes: usize = stdout.lines().find_map(|l| l.strip_prefix("application: ")?.split_whitespace().next()?.parse().ok()).expect("acknowledged count");
    assert!(writes > 100, "the application should have written during the demo: {stdout}");
}
