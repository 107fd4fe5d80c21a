//! `turnout check` (the real binary) against real throwaway servers: each requirement it reports, the
//! fix it prints, and its exit code.

use std::path::Path;
use std::process::Output;
use turnout_testbed::{free_port, PgOptions, PgServer};

fn turnout(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(args).output().expect("runs turnout")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Writes a config for `source`/`target` URLs and runs `turnout check` on it.
fn check(dir: &Path, source: &str, target: &str) -> (i32, String) {
    check_with(dir, source, target, "")
}

/// [`check`] with extra TOML appended to the configuration.
fn check_with(dir: &Path, source: &str, target: &str, extra: &str) -> (i32, String) {
    let path = dir.join("turnout.toml");
    let config = format!("[source]\nurl = \"{source}\"\n[target]\nurl = \"{target}\"\n[state]\ndir = \"{}\"\n{extra}\n", dir.join("state").display());
    std::fs::write(&path, config).expect("config");
    let out = turnout(&["check", "--config", path.to_str().expect("utf-8 path")]);
    (out.status.code().unwrap_or(-1), text(&out))
}

struct Pair {
    blue: PgServer,
    green: PgServer,
    db: String,
    dir: tempfile::TempDir,
}

async fn pair(blue: PgOptions, schema: &str) -> Pair {
    let blue = PgServer::start_with(blue).expect("blue");
    let green = PgServer::start(17).expect("green");
    let db = blue.create_database("app").await.expect("db");
    blue.execute(&db, schema).await.expect("schema");
    green.execute("postgres", &format!("CREATE DATABASE \"{db}\"")).await.expect("green db");
    Pair { blue, green, db, dir: tempfile::tempdir().expect("tmp") }
}

impl Pair {
    fn run(&self) -> (i32, String) {
        check(self.dir.path(), &self.blue.url(&self.db), &self.green.url(&self.db))
    }
}

#[tokio::test]
async fn check_passes_on_a_ready_server_and_exits_zero() {
    let p = pair(PgOptions::new(15), "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE f (a int); ALTER TABLE f REPLICA IDENTITY FULL").await;
    let (code, out) = p.run();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wal_level = logical"), "{out}");
    assert!(out.contains("server version 15."), "{out}");
    assert!(out.contains("replication connection accepted"), "{out}");
    assert!(out.contains("result: ready"), "{out}");
    assert!(!out.contains(p.blue.password()), "the password leaked: {out}");
}

#[tokio::test]
async fn check_fails_when_wal_level_is_not_logical() {
    let p = pair(PgOptions::new(15).conf("wal_level = replica"), "CREATE TABLE t (id int PRIMARY KEY)").await;
    let (code, out) = p.run();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  wal_level is 'replica'"), "{out}");
    assert!(out.contains("ALTER SYSTEM SET wal_level = logical"), "{out}");
}

#[tokio::test]
async fn check_names_tables_without_identity_and_the_alter_table_to_run() {
    let p = pair(
        PgOptions::new(15),
        "CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE nokey (a int); CREATE TABLE \"Odd Name\" (a int);
         CREATE TABLE nothing (id int PRIMARY KEY); ALTER TABLE nothing REPLICA IDENTITY NOTHING;
         CREATE TABLE fullid (a int); ALTER TABLE fullid REPLICA IDENTITY FULL",
    )
    .await;
    let (code, out) = p.run();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("3 table(s) have no primary key"), "{out}");
    assert!(out.contains("ALTER TABLE \"public\".\"nokey\" REPLICA IDENTITY FULL;"), "{out}");
    assert!(out.contains("ALTER TABLE \"public\".\"Odd Name\" REPLICA IDENTITY FULL;"), "{out}");
    assert!(out.contains("ALTER TABLE \"public\".\"nothing\" REPLICA IDENTITY FULL;"), "{out}");
    assert!(!out.contains("\"fullid\"") && !out.contains("\"keyed\""), "{out}");
}

#[tokio::test]
async fn check_reports_missing_replication_and_select_privileges() {
    let p = pair(PgOptions::new(15), "CREATE TABLE secret (id int PRIMARY KEY); CREATE TABLE open (id int PRIMARY KEY)").await;
    p.blue.execute(&p.db, "CREATE ROLE repl LOGIN PASSWORD 'replpw'; GRANT SELECT ON open TO repl").await.expect("role");
    let source = p.blue.url_for("repl", "replpw", &p.db) + "?sslmode=disable";
    let (code, out) = check(p.dir.path(), &source, &p.green.url(&p.db));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("role \"repl\" lacks the REPLICATION attribute"), "{out}");
    assert!(out.contains("ALTER ROLE \"repl\" REPLICATION;"), "{out}");
    assert!(out.contains("cannot SELECT 1 table(s): public.secret"), "{out}");
    assert!(out.contains("GRANT SELECT ON ALL TABLES IN SCHEMA \"public\" TO \"repl\";"), "{out}");
    // After the fixes the same role passes.
    p.blue.execute(&p.db, "ALTER ROLE repl REPLICATION; GRANT SELECT ON ALL TABLES IN SCHEMA public TO repl").await.expect("fix");
    let (code, out) = check(p.dir.path(), &source, &p.green.url(&p.db));
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn check_reports_exhausted_slots_and_wal_senders() {
    let p = pair(PgOptions::new(15).conf("max_replication_slots = 1").conf("max_wal_senders = 0"), "CREATE TABLE t (id int PRIMARY KEY)").await;
    p.blue.execute(&p.db, "SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')").await.expect("slot");
    let (code, out) = p.run();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no free replication slot: 1 of max_replication_slots = 1 in use"), "{out}");
    assert!(out.contains("pg_drop_replication_slot('someone_else')"), "{out}");
    assert!(out.contains("no free WAL sender"), "{out}");
}

#[tokio::test]
async fn check_reports_wrong_password_and_unreachable_host() {
    let p = pair(PgOptions::new(15), "CREATE TABLE t (id int PRIMARY KEY)").await;
    let wrong = p.blue.url_for("postgres", "not-the-password", &p.db) + "?sslmode=disable";
    let (code, out) = check(p.dir.path(), &wrong, &p.green.url(&p.db));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("password authentication failed for user \"postgres\""), "{out}");
    assert!(out.contains("correct the password in source.url"), "{out}");
    assert!(!out.contains("not-the-password"), "{out}");
    let nowhere = format!("postgres://postgres:x@127.0.0.1:{}/app?sslmode=disable", free_port());
    let (code, out) = check(p.dir.path(), &p.blue.url(&p.db), &nowhere);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("target (green)") && out.contains("cannot reach 127.0.0.1:"), "{out}");
}

#[tokio::test]
async fn check_reports_a_green_role_that_cannot_record_progress() {
    let p = pair(PgOptions::new(15), "CREATE TABLE t (id int PRIMARY KEY)").await;
    p.green.execute("postgres", "CREATE ROLE app LOGIN PASSWORD 'apppw'").await.expect("role");
    let target = p.green.url_for("app", "apppw", &p.db) + "?sslmode=disable";
    let (code, out) = check(p.dir.path(), &p.blue.url(&p.db), &target);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("may not use replication origins"), "{out}");
    assert!(out.contains("GRANT SET ON PARAMETER session_replication_role TO \"app\""), "{out}");
}

#[tokio::test]
async fn check_looks_only_at_the_tables_the_filter_selects_and_reports_what_it_leaves_out() {
    let p = pair(
        PgOptions::new(15),
        "CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE nokey (a int); CREATE TABLE secret (id int PRIMARY KEY);
         CREATE ROLE repl LOGIN REPLICATION PASSWORD 'replpw'; GRANT SELECT ON keyed, nokey TO repl;",
    )
    .await;
    let source = p.blue.url_for("repl", "replpw", &p.db) + "?sslmode=disable";
    let green = p.green.url(&p.db);
    // Without a filter both problems are reported.
    let (code, out) = check(p.dir.path(), &source, &green);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot SELECT 1 table(s): public.secret") && out.contains("\"nokey\" REPLICA IDENTITY FULL"), "{out}");
    // Leaving both tables out makes check pass, naming them; a pattern matching nothing is a warning.
    let filter = "[tables]\ninclude = [\"public.*\", \"archive.*\"]\nexclude = [\"public.nokey\", \"public.secret\"]";
    let (code, out) = check_with(p.dir.path(), &source, &green, filter);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[tables] selects 1 table(s)"), "{out}");
    assert!(out.contains("2 table(s) left out by tables.include/tables.exclude") && out.contains("public.nokey, public.secret"), "{out}");
    assert!(out.contains("WARN  tables.include[1] 'archive.*' matches no table"), "{out}");
    assert!(out.contains("SELECT privilege on every selected table"), "{out}");
    assert!(!out.contains("REPLICA IDENTITY FULL;"), "{out}");
    // skip_without_identity turns the refusal into a warning naming the table and the fix.
    let filter = "[tables]\nexclude = [\"public.secret\"]\nskip_without_identity = true";
    let (code, out) = check_with(p.dir.path(), &source, &green, filter);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("WARN  1 table(s) have no primary key and no REPLICA IDENTITY FULL and will be skipped"), "{out}");
    assert!(out.contains("public.nokey") && out.contains("ALTER TABLE \"public\".\"nokey\" REPLICA IDENTITY FULL;"), "{out}");
    // A filter that selects nothing fails, naming tables.include.
    let (code, out) = check_with(p.dir.path(), &source, &green, "[tables]\ninclude = [\"sales.*\"]");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tables.include") && out.contains("selects no table"), "{out}");
}

#[test]
fn a_malformed_table_pattern_names_its_field_and_exits_two() {
    let dir = tempfile::tempdir().expect("tmp");
    let extra = "[tables]\ninclude = [\"public.*\", \"sales.orders.2024\"]";
    let (code, out) = check_with(dir.path(), "postgres://a@127.0.0.1/d", "postgres://a@127.0.0.1/d", extra);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("tables.include[1]") && out.contains("schema.table"), "{out}");
}

#[test]
fn bad_config_names_the_field_and_exits_two() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("t.toml");
    std::fs::write(&path, "[source]\nurl = \"postgres://a:${TURNOUT_TEST_UNSET_VAR}@h/d\"\n[target]\nurl = \"postgres://a@h/d\"\n[state]\ndir = \"/tmp/x\"\n")
        .expect("write");
    let out = turnout(&["check", "--config", path.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("source.url") && text(&out).contains("TURNOUT_TEST_UNSET_VAR"), "{}", text(&out));
    let out = turnout(&["check", "--config", "/nonexistent/turnout.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("/nonexistent/turnout.toml"), "{}", text(&out));
}

#[test]
fn help_lists_the_whole_contract_and_commands_name_a_missing_config() {
    let help = text(&turnout(&["--help"]));
    for cmd in ["run", "status", "cutover", "check", "verify", "teardown", "demo"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(cmd)), "{cmd} missing from:\n{help}");
    }
    let out = turnout(&["verify", "--config", "/nonexistent/turnout.toml"]);
    assert_eq!(out.status.code(), Some(2), "verify: {}", text(&out));
    // The quoted single-word form parses; the missing config is then the error (exit 2, named).
    let out = turnout(&["cutover", "--when-lag<1s", "--config", "/nonexistent/turnout.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("/nonexistent/turnout.toml"), "{}", text(&out));
}
