//! Nothing on blue unaccounted for (PostgreSQL): five ordinary features that each left green silently
//! different — table inheritance, large objects, unlogged tables, forced row-level security and a
//! table rewritten while the initial copy runs — each made exact or a loud stop naming the object and
//! the fix, against real servers; and `turnout check`'s inventory of every object class.

use crate::common;

use common::*;
use std::time::{Duration, Instant};
use turnout_testbed::PgServer;

const INHERITANCE: &str = "
CREATE TABLE parent (id int PRIMARY KEY, note text);
CREATE TABLE child (extra int) INHERITS (parent);
ALTER TABLE child ADD PRIMARY KEY (id);
CREATE TABLE grandchild () INHERITS (child);
ALTER TABLE grandchild ADD PRIMARY KEY (id);
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 3000) g;
INSERT INTO child SELECT g, 'c' || g, g FROM generate_series(1, 2000) g;
INSERT INTO grandchild SELECT g, 'g' || g, -g FROM generate_series(1, 1000) g;
CREATE TABLE lp (a int, b text);
ALTER TABLE lp REPLICA IDENTITY FULL;
CREATE TABLE lc () INHERITS (lp);
ALTER TABLE lc REPLICA IDENTITY FULL;
INSERT INTO lp VALUES (1, 'x'), (2, 'y');
INSERT INTO lc VALUES (1, 'x'), (2, 'y');
";

/// Each table's own rows: `ONLY`, so a parent's rows are compared without its children's.
const OWN_ROWS: &[&str] = &["ONLY parent", "ONLY child", "ONLY grandchild", "ONLY lp", "ONLY lc"];

/// Changes whose ids exist in a parent and its children alike: each statement on green must touch
/// the table blue's change names and no child of it.
const INHERITANCE_CHANGES: &str = "
UPDATE ONLY parent SET note = note || '!' WHERE id <= 50;
UPDATE child SET note = 'cu' WHERE id = 10;
DELETE FROM ONLY parent WHERE id = 20;
DELETE FROM ONLY child WHERE id = 30;
DELETE FROM ONLY lp WHERE a = 1;
UPDATE ONLY lc SET b = 'z' WHERE a = 2;
INSERT INTO parent VALUES (5000, 'new parent');
INSERT INTO child VALUES (5000, 'new child', 1);
TRUNCATE ONLY child;
";

async fn inheritance_replicates_exactly(extra: &str) {
    let (blue, green, db) = pair(INHERITANCE).await;
    let (_dir, mut t) = running_with(&blue, &green, &db, extra).await;
    assert_converges(&blue, &green, &db, OWN_ROWS, &mut t).await;
    blue.execute(&db, INHERITANCE_CHANGES).await.expect("changes");
    assert_converges(&blue, &green, &db, OWN_ROWS, &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let own: i64 = g.query_one("SELECT count(*) FROM ONLY parent", &[]).await.expect("count").get(0);
    assert_eq!(own, 3000, "green's parent holds its own rows only (3000 - 1 deleted + 1 inserted)");
    let (code, out) = turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    // A row only green's child has is the child's difference, not its parent's too.
    green.execute(&db, "INSERT INTO child VALUES (9999, 'only on green', 1)").await.expect("tamper");
    let (code, out) = turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DIFFERS  \"public\".\"child\""), "{out}");
    assert!(!out.contains("DIFFERS  \"public\".\"parent\""), "the parent is compared ONLY:\n{out}");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn an_inheritance_parent_and_its_children_are_copied_streamed_and_verified_each_on_their_own() {
    inheritance_replicates_exactly("").await;
}

#[tokio::test]
async fn inheritance_through_the_chunked_copy_is_exact_too() {
    inheritance_replicates_exactly("[snapshot]\nmode = \"chunked\"\nchunk_size = \"64KiB\"\nworkers = 2").await;
}

/// `turnout check` against `t`'s configuration: exit code and output.
async fn check(t: &Turnout) -> (i32, String) {
    turnout_command(t, "check", &[]).await
}

#[tokio::test]
async fn large_objects_are_refused_by_name_and_one_created_while_streaming_stops_replication() {
    let (blue, green, db) = pair(
        "CREATE TABLE docs (id int PRIMARY KEY, body oid);
         INSERT INTO docs VALUES (1, lo_from_bytea(0, 'hello'));
         CREATE VIEW doc_ids AS SELECT id FROM docs;
         CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2';",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = check(&t).await;
    assert_eq!(code, 1, "{out}");
    for needle in ["inventory (every object in blue's database", "large object [REFUSED]", "lo_get", "table [streamed]: public.docs"] {
        assert!(out.contains(needle), "`{needle}` missing:\n{out}");
    }
    assert!(out.contains("view [copied]: public.doc_ids") && out.contains("function [copied]: public.twice(integer)"), "{out}");
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("large object") && log.contains("lo_get") && log.contains("replication cannot start"), "{log}");
    // Stored as bytea instead, it replicates; a large object created later stops the stream by name.
    blue.execute(&db, "ALTER TABLE docs ADD COLUMN content bytea; UPDATE docs SET content = lo_get(body); SELECT lo_unlink(body) FROM docs; ALTER TABLE docs DROP COLUMN body")
        .await
        .expect("convert");
    t.start();
    wait_streaming(&mut t).await;
    assert_converges(&blue, &green, &db, &["docs"], &mut t).await;
    blue.execute(&db, "SELECT lo_from_bytea(0, 'late')").await.expect("late object");
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("replication stops") && log.contains("large object"), "{log}");
}

#[tokio::test]
async fn unlogged_tables_are_refused_and_a_table_made_unlogged_while_streaming_stops_replication() {
    let (blue, green, db) = pair(
        "CREATE UNLOGGED TABLE jobs (id int PRIMARY KEY, state text);
         INSERT INTO jobs SELECT g, 'queued' FROM generate_series(1, 100) g;
         CREATE TABLE kept (id int PRIMARY KEY);",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("unlogged table (public.jobs)") && log.contains("ALTER TABLE \"public\".\"jobs\" SET LOGGED"), "{log}");
    // Logged, it replicates; made unlogged again, replication stops naming it.
    blue.execute(&db, "ALTER TABLE jobs SET LOGGED").await.expect("logged");
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(&db, "UPDATE jobs SET state = 'done' WHERE id <= 10").await.expect("update");
    assert_converges(&blue, &green, &db, &["jobs", "kept"], &mut t).await;
    blue.execute(&db, "ALTER TABLE jobs SET UNLOGGED").await.expect("unlogged");
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("replication stops") && log.contains("unlogged table (public.jobs)"), "{log}");
    // Left out by the filter, it is named as left out and the rest replicates.
    let dir = tempfile::tempdir().expect("tmp");
    let t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[tables]\nexclude = [\"public.jobs\"]");
    let (code, out) = check(&t).await;
    assert!(out.contains("table not replicated [left out]: public.jobs"), "{out}");
    assert!(!out.contains("unlogged table"), "{out}");
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn forced_row_level_security_is_refused_until_turnouts_role_bypasses_it_and_then_copied_exactly() {
    let (blue, green, db) = pair(
        "CREATE ROLE app_owner NOLOGIN;
         CREATE ROLE repl LOGIN REPLICATION PASSWORD 'replpw' IN ROLE app_owner;
         CREATE TABLE tenant_rows (id int PRIMARY KEY, tenant text NOT NULL, v text);
         ALTER TABLE tenant_rows OWNER TO app_owner;
         ALTER TABLE tenant_rows ENABLE ROW LEVEL SECURITY;
         ALTER TABLE tenant_rows FORCE ROW LEVEL SECURITY;
         CREATE POLICY by_tenant ON tenant_rows USING (tenant = current_setting('app.tenant', true));
         INSERT INTO tenant_rows SELECT g, 't' || (g % 3), 'v' || g FROM generate_series(1, 300) g;",
    )
    .await;
    blue.execute(&db, &format!("GRANT CREATE ON DATABASE \"{db}\" TO repl")).await.expect("grant");
    let source = format!("{}?sslmode=disable", blue.url_for("repl", "replpw", &db));
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &source, &green.url(&db));
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("table with row-level security (public.tenant_rows)") && log.contains("ALTER ROLE \"repl\" BYPASSRLS"), "{log}");
    blue.execute(&db, "ALTER ROLE repl BYPASSRLS").await.expect("bypass");
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(&db, "UPDATE tenant_rows SET v = 'changed' WHERE id % 7 = 0; DELETE FROM tenant_rows WHERE id = 5").await.expect("changes");
    assert_converges(&blue, &green, &db, &["tenant_rows"], &mut t).await;
    let rows: i64 = green.connect(&db).await.expect("green").query_one("SELECT count(*) FROM tenant_rows", &[]).await.expect("count").get(0);
    assert_eq!(rows, 299, "every row copied, not the policy's share");
    let (code, out) = turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// The statement of a session on blue running `pattern` (`LIKE`), once there is one.
async fn until_running(blue: &tokio_postgres::Client, pattern: &str, t: &mut Turnout) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let row = blue
            .query_opt("SELECT query FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid() LIMIT 1", &[&pattern])
            .await
            .expect("pg_stat_activity");
        if let Some(row) = row {
            return row.get(0);
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code} before `{pattern}` ran\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "`{pattern}` never ran on blue\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `a_big` takes a while to copy; `z1` and `z2` are copied after it (one copy at a time).
const REWRITTEN: &str = "
CREATE TABLE a_big (id int PRIMARY KEY, v int NOT NULL, pad text);
INSERT INTO a_big SELECT g, g, repeat(md5(g::text), 5) FROM generate_series(1, 400000) g;
CREATE TABLE z1 (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO z1 SELECT g, g FROM generate_series(1, 20000) g;
CREATE TABLE z2 (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO z2 SELECT g, g FROM generate_series(1, 20000) g;
";

/// `turnout run` with a consistent copy on one worker, once it copies `a_big` (`z1` and `z2` not read
/// yet); with a session to blue that watches it.
async fn copying_a_big(blue: &PgServer, green: &PgServer, db: &str) -> (tempfile::TempDir, Turnout, tokio_postgres::Client) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(db), &green.url(db), "[snapshot]\nmode = \"consistent\"\nworkers = 1");
    t.start();
    let watcher = blue.connect(db).await.expect("watcher");
    until_running(&watcher, "COPY (SELECT % \"public\".\"a_big\"%", &mut t).await;
    (dir, t, watcher)
}

/// A rewrite of `z1` that keeps its schema and its rows (as pg_repack's does): new storage that a
/// snapshot taken before it cannot see. (`USING v` alone would not rewrite.)
const REWRITE: &str = "ALTER TABLE z1 ALTER COLUMN v TYPE integer USING v + 0";

#[tokio::test]
async fn a_table_rewritten_while_the_consistent_copy_runs_is_never_copied_empty() {
    let (blue, green, db) = pair(REWRITTEN).await;
    let (_dir, mut t, watcher) = copying_a_big(&blue, &green, &db).await;
    // While a_big is copied, z1 is rewritten: after the copy's snapshot, before z1's copy, which finds
    // it and copies everything again at a new snapshot.
    blue.execute(&db, REWRITE).await.expect("rewrite");
    let still: i64 = watcher
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT % FROM ONLY \"public\".\"a_big\"%'", &[])
        .await
        .expect("activity")
        .get(0);
    assert_eq!(still, 1, "the rewrite committed while a_big was still being copied (z1 not yet read)");
    wait_streaming(&mut t).await;
    assert!(t.log_text().contains("was rewritten on blue after the snapshot"), "{}", t.log_text());
    blue.execute(&db, "UPDATE z1 SET v = -v WHERE id <= 100").await.expect("later change");
    assert_converges(&blue, &green, &db, &["a_big", "z1", "z2"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

/// A column added with a volatile default rewrites the table: the copy starts again at a new
/// snapshot, and green's copy of the table is made again from blue's definition first — the new copy
/// finds the column on green, and no one fixes green by hand.
#[tokio::test]
async fn a_table_altered_before_its_copy_is_copied_with_its_new_definition() {
    let (blue, green, db) = pair(REWRITTEN).await;
    let (_dir, mut t, _watcher) = copying_a_big(&blue, &green, &db).await;
    blue.execute(&db, "ALTER TABLE z1 ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid()").await.expect("rewrite with a new column");
    wait_streaming(&mut t).await;
    let log = t.log_text();
    assert!(log.contains("was rewritten on blue after the snapshot") && log.contains("creating them on green again from blue's definition"), "{log}");
    blue.execute(&db, "UPDATE z1 SET v = -v WHERE id <= 100").await.expect("later change");
    assert_converges(&blue, &green, &db, &["a_big", "z1", "z2"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn a_rewrite_committed_after_a_copy_snapshot_is_found_before_the_table_is_read() {
    let (blue, _green, db) = pair(
        "CREATE TABLE z1 (id int PRIMARY KEY, v int NOT NULL); INSERT INTO z1 SELECT g, g FROM generate_series(1, 1000) g;
         CREATE TABLE z2 (id int PRIMARY KEY, v int NOT NULL); INSERT INTO z2 SELECT g, g FROM generate_series(1, 1000) g;
         CREATE TABLE m (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE m_2026 PARTITION OF m FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         INSERT INTO m SELECT g, '2026-05-01' FROM generate_series(1, 100) g;",
    )
    .await;
    // A snapshot as a copy round exports it, imported by a copy session.
    let exporter = blue.connect(&db).await.expect("exporter");
    exporter.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.expect("begin");
    let snapshot: String = exporter.query_one("SELECT pg_export_snapshot()", &[]).await.expect("export").get(0);
    let copier = blue.connect(&db).await.expect("copier");
    copier.batch_execute(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'")).await.expect("import");
    blue.execute(&db, &format!("{REWRITE}; ALTER TABLE m ALTER COLUMN id TYPE integer USING id + 0")).await.expect("rewrites");
    // Read through the old snapshot, the rewritten table is empty: PostgreSQL's MVCC caveat.
    let seen: i64 = copier.query_one("SELECT count(*) FROM z1", &[]).await.expect("count").get(0);
    assert_eq!(seen, 0, "the hazard the check guards against");
    let name = |t: &str| turnout_decoders::TableName::new("public", t);
    let side = turnout_decoders::Side::Blue;
    for rewritten in ["z1", "m"] {
        let e = turnout::testing::pg::hold_unrewritten(&copier, &name(rewritten), side).await.expect_err("a rewrite is found").to_string();
        assert!(e.contains("was rewritten on blue after the snapshot") && e.contains(rewritten), "{e}");
        copier
            .batch_execute(&format!("ROLLBACK; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"))
            .await
            .expect("again");
    }
    // A table nothing rewrote is read ONLY its own rows, locked against a rewrite from now on.
    let from = turnout::testing::pg::hold_unrewritten(&copier, &name("z2"), side).await.expect("z2 is as the snapshot shows it");
    assert_eq!(from, "ONLY \"public\".\"z2\"");
    let blocked = blue.connect(&db).await.expect("blocked");
    blocked.batch_execute("SET lock_timeout = '200ms'").await.expect("timeout");
    let e = blocked.batch_execute("ALTER TABLE z2 ALTER COLUMN v TYPE integer USING v + 0").await.expect_err("held");
    assert!(e.to_string().contains("lock timeout") || format!("{e:?}").contains("55P03"), "{e:?}");
}

#[tokio::test]
async fn objects_the_copy_brings_over_are_on_green_and_materialized_views_populated_when_the_cutover_ends() {
    let (blue, green, db) = pair(
        "CREATE TYPE mood AS ENUM ('ok', 'sad');
         CREATE TABLE t (id bigserial PRIMARY KEY, note text, m mood);
         INSERT INTO t (note, m) SELECT 'n' || g, 'ok' FROM generate_series(1, 200) g;
         CREATE MATERIALIZED VIEW totals AS SELECT m, count(*) AS n FROM t GROUP BY m;
         CREATE MATERIALIZED VIEW over_totals AS SELECT sum(n) AS all_rows FROM totals;
         CREATE MATERIALIZED VIEW never_filled AS SELECT id FROM t WITH NO DATA;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let switched = dir.path().join("switched");
    let extra = command_switch(dir.path(), &format!("touch '{}'", switched.display()));
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &extra);
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(
        &db,
        "INSERT INTO t (note, m) SELECT 'later', 'sad' FROM generate_series(1, 30); REFRESH MATERIALIZED VIEW totals; REFRESH MATERIALIZED VIEW over_totals",
    )
    .await
    .expect("changes");
    // A type created on blue after the copy is in no change stream: a dry run names it, the cutover
    // creates it on green from blue's definition.
    blue.execute(&db, "CREATE TYPE later_kind AS (a int, b text)").await.expect("type");
    let (code, out) = turnout_command(&t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("TYPE public.later_kind is on blue only"), "{out}");
    let report = dir.path().join("cutover.json");
    let report = report.to_str().expect("path");
    let (code, out) = turnout_command(&t, "cutover", &["--when-lag", "1s", "--timeout", "60s", "--report", report]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(switched.exists());
    assert!(out.contains("refreshed 2 materialized views on green") && out.contains("TYPE public.later_kind: created"), "{out}");
    assert_eq!(
        contents(&blue, &db, &["totals", "over_totals", "t"]).await,
        contents(&green, &db, &["totals", "over_totals", "t"]).await,
        "green's materialized views hold what blue's do"
    );
    let populated: bool = green
        .connect(&db)
        .await
        .expect("green")
        .query_one("SELECT ispopulated FROM pg_matviews WHERE matviewname = 'never_filled'", &[])
        .await
        .expect("m")
        .get(0);
    assert!(!populated, "a view blue never filled is not filled on green either");
    let certificate = intact_certificate(std::path::Path::new(report));
    let inventory = &certificate["inventory"];
    assert_eq!(inventory["sha256"].as_str().map(str::len), Some(64), "{certificate}");
    assert!(inventory["handled"]["streamed"].as_u64() >= Some(1) && inventory["handled"]["at cutover"].as_u64() >= Some(3), "{inventory}");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn a_way_back_that_could_not_carry_what_green_holds_refuses_the_cutover_until_it_is_one_way() {
    let (blue, green, db) = pair("CREATE TABLE t (id bigserial PRIMARY KEY, note text); INSERT INTO t (note) VALUES ('a')").await;
    let dir = tempfile::tempdir().expect("tmp");
    let extra = command_switch(dir.path(), "true");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &extra);
    t.start();
    wait_streaming(&mut t).await;
    // Green holds a large object: the reverse stream could never bring it back to blue.
    green.execute(&db, "SELECT lo_from_bytea(0, 'only on green')").await.expect("large object on green");
    let (code, out) = turnout_command(&t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("the way back could not carry") && out.contains("large object") && out.contains("cutover.reverse = false"), "{out}");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    // Accepted as a one-way cutover, it goes ahead.
    let config = std::fs::read_to_string(t.config_path()).expect("config");
    std::fs::write(t.config_path(), config.replacen("[cutover]\n", "[cutover]\nreverse = false\n", 1)).expect("one way");
    t.start();
    wait_streaming(&mut t).await;
    let (code, out) = turnout_command(&t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}
