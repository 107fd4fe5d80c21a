//! `turnout demo` — the README's main-job command — runs end to end on this machine: local servers,
//! load through pgbouncer (PostgreSQL) or haproxy (`--mysql`: Oracle MySQL 9.7, or MariaDB with
//! `--engine mariadb`), replication, cutover, verification, cleanup.

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
    let out = Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["demo", "--mysql", "--engine", "mariadb"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("turnout demo --mysql --engine mariadb");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("switched traffic to green (haproxy)") && stdout.contains("traffic is on green"), "{stdout}");
    assert!(stdout.contains(" 0 errors") && stdout.contains(", 0 missing; balances consistent: true"), "{stdout}");
    assert!(stdout.contains("blue stays read-only: true"), "{stdout}");
    let writes: usize = stdout.lines().find_map(|l| l.strip_prefix("application: ")?.split_whitespace().next()?.parse().ok()).expect("acknowledged count");
    assert!(writes > 100, "the application should have written during the demo: {stdout}");
}

/// `--mysql` runs on Oracle MySQL 9.7 by default (the harness's machine can build its root file system),
/// with the read-only fence sealed by `super_read_only`.
#[test]
fn demo_for_mysql_runs_on_mysql_9_7_by_default_and_verifies_every_acknowledged_write() {
    let out = Command::new(env!("CARGO_BIN_EXE_turnout")).args(["demo", "--mysql"]).env("RUST_LOG", "warn").output().expect("turnout demo --mysql");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("running on MySQL 9.7") && stdout.contains("super_read_only after the sentinel"), "{stdout}");
    assert!(stdout.contains("traffic is on green") && stdout.contains(", 0 missing; balances consistent: true"), "{stdout}");
    assert!(stdout.contains(" 0 errors") && stdout.contains("blue stays read-only: true"), "{stdout}");
}

/// `--mysql-to-postgres`: an application moved from MySQL 9.7 to PostgreSQL 17 by the cutover's
/// command switch and its readiness endpoint, and back by the rollback: every write it acknowledged
/// on either side on blue, every one before the rollback on green.
#[test]
fn demo_moves_an_application_from_mysql_to_postgresql_and_back_and_verifies_every_acknowledged_write() {
    let out = Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["demo", "--mysql-to-postgres"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("turnout demo --mysql-to-postgres");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("blue  MySQL 9.7") && stdout.contains("super_read_only after the sentinel"), "{stdout}");
    assert!(stdout.contains("kept as the operator made them on green: VIEW app.busy"), "{stdout}");
    assert!(stdout.contains("prepared the stream back") && stdout.contains("traffic is on green"), "{stdout}");
    assert_eq!(stdout.matches("the application answered ready").count(), 2, "both switches waited for the application: {stdout}");
    assert!(stdout.contains("blue applied the sentinel") && stdout.contains("traffic is on blue"), "{stdout}");
    assert!(stdout.contains("writes acknowledged before the rollback, 0 missing; balances consistent on green: true"), "{stdout}");
    assert!(stdout.contains("green read-only: on; blue read-only: false"), "{stdout}");
    let back = stdout.split(" writes made on PostgreSQL are on MySQL").next().and_then(|s| s.rsplit("; ").next()).and_then(|n| n.trim().parse::<u64>().ok());
    assert!(back.is_some_and(|n| n > 0), "the writes made on PostgreSQL came back to MySQL: {stdout}");
    assert!(stdout.contains(" 0 errors") && stdout.contains(", 0 missing; balances consistent: true"), "{stdout}");
}

/// `--engine` without a demo that has a MySQL-family server is a usage error.
#[test]
fn demo_engine_alone_is_refused_naming_the_flags_it_goes_with() {
    let out = Command::new(env!("CARGO_BIN_EXE_turnout")).args(["demo", "--engine", "mariadb"]).output().expect("turnout demo --engine");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mysql or --mysql-to-postgres"), "{}", String::from_utf8_lossy(&out.stderr));
}
