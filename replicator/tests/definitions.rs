//! Closed in time: what the application changes on blue's definitions after the copy — a view's
//! `WHERE`, a function's body or attributes, an enum label, a domain's CHECK, a view's check option,
//! an `INSTEAD OF` trigger, a policy, row-level security, a database setting, a sequence's increment
//! in another schema, a function a column default calls, a unique index made while the cutover waits
//! for lag — is equal on green when `turnout cutover` exits 0, across major versions.
//!
//! Equality is checked by what the application sees, not by turnout's own comparison: each question
//! below is asked of blue before the switch and of green after it, and the answers must match.

use crate::common;

use common::{pair_versions, running_with, Turnout};

const SCHEMA: &str = "CREATE SCHEMA billing;
    CREATE SEQUENCE billing.invoice_no;
    CREATE TYPE mood AS ENUM ('sad', 'happy');
    CREATE DOMAIN qty AS int CHECK (VALUE >= 0);
    CREATE FUNCTION billing.default_note() RETURNS text LANGUAGE sql AS $$ SELECT 'v1' $$;
    CREATE TABLE t (id int PRIMARY KEY, tenant int NOT NULL, m mood, q qty, note text DEFAULT billing.default_note(), code text);
    INSERT INTO t SELECT g, g % 4, 'sad', g, 'x', 'c' || g FROM generate_series(1, 40) g;
    CREATE VIEW recent AS SELECT id, tenant FROM t WHERE id > 20;
    CREATE VIEW tenant_one AS SELECT id, tenant FROM t WHERE tenant = 1;
    CREATE VIEW entry AS SELECT id, tenant, note FROM t;
    CREATE FUNCTION add_one(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT x + 1; END;
    CREATE FUNCTION five(x int) RETURNS int LANGUAGE sql AS 'SELECT 5';
    CREATE FUNCTION entry_v1() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO t (id, tenant, note) VALUES (NEW.id, NEW.tenant, 'via v1'); RETURN NEW; END$$;
    CREATE FUNCTION entry_v2() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO t (id, tenant, note) VALUES (NEW.id, NEW.tenant, 'via v2'); RETURN NEW; END$$;
    CREATE TRIGGER entry_insert INSTEAD OF INSERT ON entry FOR EACH ROW EXECUTE FUNCTION entry_v1();
    CREATE POLICY by_tenant ON t FOR SELECT TO app_reader USING (tenant = 1);";

/// What the application changes on blue while turnout streams.
fn changes(db: &str) -> String {
    format!(
        "CREATE OR REPLACE VIEW recent AS SELECT id, tenant FROM t WHERE id > 35;
         CREATE OR REPLACE FUNCTION add_one(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT x + 100; END;
         ALTER FUNCTION five(int) STRICT;
         ALTER TYPE mood ADD VALUE 'ok' BEFORE 'happy';
         ALTER DOMAIN qty ADD CONSTRAINT qty_small CHECK (VALUE < 1000);
         CREATE OR REPLACE VIEW tenant_one AS SELECT id, tenant FROM t WHERE tenant = 1 WITH CASCADED CHECK OPTION;
         DROP TRIGGER entry_insert ON entry;
         CREATE TRIGGER entry_insert INSTEAD OF INSERT ON entry FOR EACH ROW EXECUTE FUNCTION entry_v2();
         ALTER POLICY by_tenant ON t USING (tenant = 2);
         ALTER TABLE t ENABLE ROW LEVEL SECURITY;
         ALTER DATABASE \"{db}\" SET statement_timeout = '7s';
         ALTER SEQUENCE billing.invoice_no INCREMENT BY 10;
         CREATE OR REPLACE FUNCTION billing.default_note() RETURNS text LANGUAGE sql AS $$ SELECT 'v2' $$;
         COMMENT ON VIEW recent IS 'the newest rows'"
    )
}

/// The questions the application asks, each run in a transaction that is rolled back; the answer is
/// the first value's text, or the error's SQLSTATE.
const QUESTIONS: &[&str] = &[
    "SELECT count(*)::text FROM recent",
    "SELECT add_one(1)::text",
    "SELECT COALESCE(five(NULL)::text, 'null')",
    "SELECT enum_range(NULL::mood)::text",
    "SELECT 5000::qty::text",
    "INSERT INTO tenant_one VALUES (500, 2) RETURNING 'accepted'",
    "INSERT INTO entry (id, tenant) VALUES (501, 1); SELECT note FROM t WHERE id = 501",
    "SET LOCAL ROLE app_reader; SELECT count(*)::text FROM t",
    "SELECT current_setting('statement_timeout')",
    "SELECT increment_by::text FROM pg_sequences WHERE schemaname = 'billing' AND sequencename = 'invoice_no'",
    "INSERT INTO t (id, tenant) VALUES (502, 1) RETURNING note",
    "INSERT INTO t (id, tenant, code) VALUES (503, 1, 'c1') RETURNING 'no unique key'",
    "SELECT COALESCE(obj_description('recent'::regclass), 'none')",
];

async fn answers(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    for q in QUESTIONS {
        // A new session each: database settings apply at login.
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        c.batch_execute("BEGIN").await.expect("begin");
        let answer = match c.simple_query(q).await {
            Ok(messages) => common::first_value::<String>(&messages).unwrap_or_else(|| "no row".into()),
            Err(e) => format!("ERROR {}", e.code().map(|c| c.code().to_owned()).unwrap_or_default()),
        };
        let _ = c.batch_execute("ROLLBACK").await;
        out.push(format!("{q} => {answer}"));
    }
    out
}

/// `turnout cutover` with `args`, run while the test goes on; its exit code and output.
fn cutover_in_background(t: &Turnout, args: &[&str]) -> tokio::task::JoinHandle<(Option<i32>, String)> {
    let config = t.config_path().to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["cutover", "--config"]).arg(config).args(args).output().expect("cutover");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    })
}

/// `turnout cutover --when-lag '<1s'` started while green's apply waits on a lock held by the
/// returned session (a row committed on blue meanwhile), so lag grows: returns once the cutover says
/// it waits for lag. Rolling the session back lets the apply, and the cutover, go on.
async fn cutover_waiting_for_lag(
    b: &turnout_testbed::PgServer,
    g: &turnout_testbed::PgServer,
    db: &str,
    t: &mut Turnout,
) -> (tokio_postgres::Client, tokio::task::JoinHandle<(Option<i32>, String)>) {
    let holder = g.connect(db).await.expect("green");
    holder.batch_execute("BEGIN; LOCK TABLE t IN SHARE MODE").await.expect("lock");
    b.execute(db, "INSERT INTO t (id, tenant, code) VALUES (100, 1, 'c100')").await.expect("row");
    common::wait_for(t, "lag over the cutover's threshold", |t| t.status()?["lag_seconds"].as_f64().filter(|l| *l > 1.5)).await;
    let cutover = cutover_in_background(t, &["--when-lag", "<1s", "--timeout", "90s"]);
    common::wait_for(t, "the cutover waiting for lag", |t| t.get("/cutover").filter(|body| body.contains("waiting for the snapshot to finish"))).await;
    (holder, cutover)
}

/// Blue and green of `blue` and `green`, the role the policy names on both, `turnout run` streaming
/// with a read-only fence and no switch.
async fn streaming(blue: u32, green: u32) -> (turnout_testbed::PgServer, turnout_testbed::PgServer, String, tempfile::TempDir, Turnout) {
    let (b, g, db) = pair_versions(blue, green, "SELECT 1").await;
    for server in [&b, &g] {
        server.execute("postgres", "CREATE ROLE app_reader").await.expect("role");
    }
    b.execute(&db, SCHEMA).await.expect("schema");
    let (dir, t) = running_with(&b, &g, &db, "[cutover]\nfence = \"read-only\"\nswitch = \"none\"\n").await;
    for server in [&b, &g] {
        // Privileges are the operator's to copy (turnout leaves them out of the schema copy).
        server.execute(&db, "GRANT USAGE ON SCHEMA public TO app_reader; GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_reader").await.expect("grants");
    }
    (b, g, db, dir, t)
}

async fn definitions_changed_after_the_copy_answer_alike_after_the_cutover(blue: u32, green: u32) {
    let (b, g, db, _dir, mut t) = streaming(blue, green).await;
    let before = answers(&b.url(&db)).await;
    b.execute(&db, &changes(&db)).await.expect("changes on blue");
    let on_blue = answers(&b.url(&db)).await;
    assert_ne!(before, on_blue, "the changes change what blue answers");
    assert_ne!(answers(&g.url(&db)).await, on_blue, "green does not answer like blue before the cutover");
    // `turnout verify` sees it before the cutover: green answers differently.
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DIFFERS  definitions") && out.contains("VIEW public.recent differs") && out.contains("ok       \"public\".\"t\""), "{out}");
    // So does `verify --live`, while the sidecar runs.
    let (code, out) = common::turnout_command(&t, "verify", &["--live"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DIFFERS  definitions") && out.contains("VIEW public.recent differs") && out.contains("0 differ;"), "{out}");
    // A dry run names what differs, which the cutover carries.
    let (code, out) = common::turnout_command(&t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("which the cutover carries after its lag wait"), "{out}");
    for object in [
        "VIEW public.recent differs",
        "FUNCTION public.add_one(integer) differs",
        "TYPE public.mood differs",
        "POLICY public.t by_tenant",
        "database setting statement_timeout",
    ] {
        assert!(out.contains(object), "{object}:\n{out}");
    }
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "90s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("green's definitions equal blue's") && out.contains("VIEW public.recent: replaced"), "{out}");
    eprintln!("{out}");
    let on_green = answers(&g.url(&db)).await;
    assert_eq!(on_green, on_blue, "green answers differently from blue after the cutover");
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert!(out.contains("ok       definitions"), "{code} {out}");
    // In the rollback window `verify --live` compares green, where writes go, against blue.
    let (code, out) = common::turnout_command(&t, "verify", &["--live"]).await;
    assert!(code == 0 && out.contains("ok       definitions"), "{code} {out}");
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn definitions_changed_on_blue_15_after_the_copy_answer_alike_on_green_17() {
    definitions_changed_after_the_copy_answer_alike_after_the_cutover(15, 17).await;
}

#[tokio::test]
async fn definitions_changed_on_blue_15_after_the_copy_answer_alike_on_green_15() {
    definitions_changed_after_the_copy_answer_alike_after_the_cutover(15, 15).await;
}

/// A unique index and a view made on blue while the cutover waits for lag are on green at the switch:
/// the definitions are settled after the wait, not before it.
#[tokio::test]
async fn a_unique_index_made_while_the_cutover_waits_for_lag_is_on_green_at_the_switch() {
    let (b, g, db, _dir, mut t) = streaming(15, 17).await;
    let (holder, cutover) = cutover_waiting_for_lag(&b, &g, &db, &mut t).await;
    b.execute(&db, "CREATE UNIQUE INDEX t_code ON t (code); CREATE OR REPLACE VIEW recent AS SELECT id, tenant FROM t WHERE id > 39")
        .await
        .expect("DDL during the wait");
    holder.batch_execute("ROLLBACK").await.expect("unlock");
    let (code, text) = cutover.await.expect("join");
    assert_eq!(code, Some(0), "{text}\n{}", t.log_text());
    let green = g.connect(&db).await.expect("green");
    let duplicate = green.execute("INSERT INTO t (id, tenant, code) VALUES (101, 1, 'c100')", &[]).await;
    assert_eq!(duplicate.err().and_then(|e| e.code().cloned()), Some(tokio_postgres::error::SqlState::UNIQUE_VIOLATION), "{text}");
    let recent: i64 = green.query_one("SELECT count(*) FROM recent", &[]).await.expect("view").get(0);
    assert_eq!(recent, 2, "the view as blue defined it during the wait: ids 40 and 100");
    assert_eq!(t.sigterm(), Some(0));
}

/// An object only green has is not dropped: it may be the operator's. The cutover refuses naming it
/// and the `DROP`, before the fence; named in `cutover.keep_definitions`, it stays and is recorded.
#[tokio::test]
async fn an_object_only_green_has_refuses_the_cutover_until_kept_by_name() {
    let (_b, g, db, dir, mut t) = streaming(15, 17).await;
    g.execute(&db, "CREATE INDEX t_tenant_green ON t (tenant)").await.expect("green-only index");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("INDEX public.t_tenant_green is on green only") && out.contains("DROP INDEX \"public\".\"t_tenant_green\""), "{out}");
    assert!(!out.contains("fenced writes"), "refused before the fence:\n{out}");
    assert_eq!(t.sigterm(), Some(0));
    let config = std::fs::read_to_string(t.config_path()).expect("config");
    std::fs::write(t.config_path(), config.replace("[cutover]\n", "[cutover]\nkeep_definitions = [\"INDEX public.t_tenant_green\"]\n")).expect("write");
    t.start();
    common::wait_streaming(&mut t).await;
    let report = dir.path().join("cutover.json");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--report", report.to_str().expect("path")]).await;
    assert_eq!(code, 0, "{out}");
    let certificate = common::intact_certificate(&report);
    let definitions = certificate["definitions"].to_string();
    assert!(definitions.contains("kept different by cutover.keep_definitions: INDEX public.t_tenant_green"), "{definitions}");
    let kept: i64 =
        g.connect(&db).await.expect("green").query_one("SELECT count(*) FROM pg_indexes WHERE indexname = 't_tenant_green'", &[]).await.expect("index").get(0);
    assert_eq!(kept, 1);
    assert_eq!(t.sigterm(), Some(0));
}

/// A definition made on blue inside the write pause (by a session that bypasses the read-only fence)
/// is seen before the switch: the fence is undone and the object named.
#[tokio::test]
async fn a_definition_made_on_blue_inside_the_pause_undoes_the_fence_naming_it() {
    let (b, g, db, _dir, mut t) = streaming(15, 17).await;
    // Green's apply waits on a lock, so the proof waits inside the pause until the test lets it go.
    let holder = g.connect(&db).await.expect("green");
    holder.batch_execute("BEGIN; LOCK TABLE t IN SHARE MODE").await.expect("lock");
    b.execute(&db, "INSERT INTO t (id, tenant, code) VALUES (100, 1, 'c100')").await.expect("row");
    let cutover = cutover_in_background(&t, &["--when-lag", "<60s", "--timeout", "90s", "--max-pause", "60s"]);
    common::wait_for(&mut t, "the fence", |t| t.get("/cutover").filter(|body| body.contains("fenced writes on blue"))).await;
    b.execute(&db, "BEGIN READ WRITE; CREATE INDEX t_in_pause ON t (code); COMMIT").await.expect("DDL inside the pause");
    holder.batch_execute("ROLLBACK").await.expect("unlock");
    let (code, text) = cutover.await.expect("join");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("blue's definitions changed after turnout made green's equal to them inside the write pause"), "{text}");
    assert!(text.contains("t_in_pause"), "the object is named:\n{text}");
    assert!(text.contains("undid the fence"), "{text}");
    // Cut over again: the index is carried.
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("INDEX public.t_in_pause: created"), "{out}");
    assert_eq!(t.sigterm(), Some(0));
}

/// Partitions publish through their root, and then PostgreSQL sends nothing for a `TRUNCATE` aimed at
/// one partition: turnout's trigger notes it in the stream, and green's partition is emptied too —
/// in its place in the transaction, before rows inserted after it.
#[tokio::test]
async fn a_truncate_of_one_partition_reaches_green_in_its_place_in_the_transaction() {
    let (b, g, db) = pair_versions(
        15,
        17,
        "CREATE TABLE events (id int, at date NOT NULL, note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
         CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY RANGE (at);
         CREATE TABLE events_2024_h1 PARTITION OF events_2024 FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
         CREATE TABLE events_2024_h2 PARTITION OF events_2024 FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
         INSERT INTO events SELECT g, DATE '2023-01-01' + (g % 700), 'n' FROM generate_series(1, 1000) g",
    )
    .await;
    let (_dir, mut t) = running_with(&b, &g, &db, "").await;
    common::assert_converges(&b, &g, &db, &["events"], &mut t).await;
    b.execute(&db, "TRUNCATE events_2023").await.expect("truncate one partition");
    b.execute(&db, "BEGIN; TRUNCATE events_2024_h1; INSERT INTO events VALUES (5000, '2024-02-02', 'after the truncate'); COMMIT")
        .await
        .expect("truncate and insert");
    // A sub-partitioned partition: its leaves are emptied.
    b.execute(&db, "TRUNCATE events_2024").await.expect("truncate a partitioned partition");
    b.execute(&db, "INSERT INTO events VALUES (5001, '2024-08-08', 'last')").await.expect("insert");
    common::assert_converges(&b, &g, &db, &["events", "events_2023", "events_2024_h1", "events_2024_h2"], &mut t).await;
    let left: i64 = g.connect(&db).await.expect("green").query_one("SELECT count(*) FROM events", &[]).await.expect("count").get(0);
    assert_eq!(left, 1, "only the row inserted after the last truncate");
    // A partition made while streaming gets the trigger from the stream's watch.
    for server in [&b, &g] {
        server.execute(&db, "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')").await.expect("partition");
    }
    b.execute(&db, "INSERT INTO events SELECT g, DATE '2025-03-01', 'x' FROM generate_series(6000, 6099) g").await.expect("rows");
    common::assert_converges(&b, &g, &db, &["events"], &mut t).await;
    common::wait_for(&mut t, "the trigger on the new partition", |_| {
        std::process::Command::new("psql")
            .args([b.url(&db).as_str(), "-Atc", "SELECT count(*) FROM pg_trigger WHERE tgname = 'turnout_truncate' AND tgrelid = 'events_2025'::regclass"])
            .output()
            .ok()
            .filter(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
    })
    .await;
    b.execute(&db, "TRUNCATE events_2025").await.expect("truncate the new partition");
    common::assert_converges(&b, &g, &db, &["events", "events_2025"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

/// A transaction left prepared on blue holds up the slot `turnout run` makes: `/status` names its
/// `gid` and the fix while it waits, and the copy goes on once it is ended.
#[tokio::test]
async fn a_prepared_transaction_holding_the_slot_up_is_named_with_its_gid() {
    let blue = turnout_testbed::PgOptions::new(15).conf("max_prepared_transactions = 5");
    let (b, g, db) = common::pair_between(blue, turnout_testbed::PgOptions::new(17), "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await;
    b.execute(&db, "BEGIN; INSERT INTO t VALUES (2); PREPARE TRANSACTION 'stuck_payment_42'").await.expect("prepare");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &b.url(&db), &g.url(&db));
    t.start();
    let error = common::wait_for(&mut t, "the prepared transaction named", |t| {
        let s = t.status()?;
        let message = s["last_error"]["message"].as_str()?.to_owned();
        message.contains("stuck_payment_42").then_some(format!("{message} {}", s["last_error"]["advice"]))
    })
    .await;
    assert!(error.contains("ROLLBACK PREPARED"), "{error}");
    b.execute(&db, "ROLLBACK PREPARED 'stuck_payment_42'").await.expect("rollback prepared");
    common::wait_streaming(&mut t).await;
    let status = t.status().expect("status");
    assert!(status["last_error"].is_null(), "the note is cleared once the slot exists: {status}");
    common::assert_converges(&b, &g, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

/// A role that may not publish `FOR ALL TABLES` (as on managed services) gets a table-list
/// publication, which does not publish a table created later: the stream's watch starts the stream
/// again, which publishes the table, creates it on green and copies it — no rows lost and nothing for
/// the operator to do.
#[tokio::test]
async fn a_table_created_while_streaming_under_a_table_list_publication_is_published_and_copied() {
    let (b, g, db) = pair_versions(15, 17, "SELECT 1").await;
    b.execute(
        &db,
        &format!(
            "CREATE ROLE repl LOGIN REPLICATION PASSWORD 'repl-secret'; GRANT CREATE ON DATABASE \"{db}\" TO repl; GRANT CREATE ON SCHEMA public TO repl; \
             SET ROLE repl; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"
        ),
    )
    .await
    .expect("role and table");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &b.url_for("repl", "repl-secret", &db), &g.url(&db));
    t.start();
    common::wait_streaming(&mut t).await;
    b.execute(&db, "SET ROLE repl; CREATE TABLE later (id int PRIMARY KEY, note text); INSERT INTO later SELECT g, 'n' || g FROM generate_series(1, 5) g")
        .await
        .expect("a table created while streaming");
    let green_url = g.url(&db);
    common::wait_for(&mut t, "the new table on green", |_| {
        std::process::Command::new("psql")
            .args([green_url.as_str(), "-Atc", "SELECT to_regclass('public.later') IS NOT NULL"])
            .output()
            .ok()
            .filter(|o| String::from_utf8_lossy(&o.stdout).trim() == "t")
    })
    .await;
    common::assert_converges(&b, &g, &db, &["t", "later"], &mut t).await;
    b.execute(&db, "INSERT INTO later VALUES (6, 'after'); UPDATE later SET note = 'changed' WHERE id = 1").await.expect("changes");
    common::assert_converges(&b, &g, &db, &["t", "later"], &mut t).await;
    assert!(t.log_text().contains("starting again to publish and copy them"), "{}", t.log_text());
    assert_eq!(t.sigterm(), Some(0));
}

/// One object of every class the inventory copies, in a schema of its own as well as in `public`,
/// made on blue after the copy.
const EVERY_COPIED_CLASS: [(&str, &str); 17] = [
    ("SCHEMA", "CREATE SCHEMA reports"),
    ("TYPE", "CREATE TYPE reports.pair AS (a int, b text)"),
    ("TYPE", "CREATE TYPE reports.span AS RANGE (subtype = int4)"),
    ("DOMAIN", "CREATE DOMAIN reports.cents AS bigint CHECK (VALUE >= 0) DEFAULT 0"),
    ("FUNCTION", "CREATE FUNCTION reports.add_cents(bigint, bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2'"),
    ("AGGREGATE", "CREATE AGGREGATE reports.total(bigint) (SFUNC = reports.add_cents, STYPE = bigint, INITCOND = '0')"),
    ("PROCEDURE", "CREATE PROCEDURE reports.touch(x int) LANGUAGE sql BEGIN ATOMIC SELECT x; END"),
    ("OPERATOR", "CREATE OPERATOR reports.<~> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = reports.add_cents)"),
    ("CAST", "CREATE CAST (reports.pair AS text) WITH INOUT"),
    ("COLLATION", "CREATE COLLATION reports.byte_order (provider = libc, locale = 'C')"),
    ("TEXT SEARCH CONFIGURATION", "CREATE TEXT SEARCH CONFIGURATION reports.plain (COPY = pg_catalog.simple)"),
    ("STATISTICS", "CREATE STATISTICS reports.t_stats (dependencies) ON id, tenant FROM public.t"),
    ("RULE", "CREATE RULE no_delete_99 AS ON DELETE TO t WHERE OLD.id = 99 DO INSTEAD NOTHING"),
    ("MATERIALIZED VIEW", "CREATE MATERIALIZED VIEW reports.per_tenant AS SELECT tenant, count(*) AS n FROM public.t GROUP BY tenant"),
    ("VIEW", "CREATE VIEW reports.per_mood AS SELECT m, count(*) AS n FROM public.t GROUP BY m"),
    (
        "EVENT TRIGGER",
        "CREATE FUNCTION reports.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN NULL; END$$; \
                       CREATE EVENT TRIGGER note_ddl ON ddl_command_end EXECUTE FUNCTION reports.note_ddl()",
    ),
    ("COMMENT", "COMMENT ON SCHEMA reports IS 'made after the copy'"),
];

/// One object of every class the inventory copies, created on blue after the copy — in a schema of its
/// own as well as in `public` — is on green, defined as on blue, when the cutover exits 0; and a
/// change turnout cannot carry (an aggregate redefined) refuses the cutover naming it.
#[tokio::test]
async fn objects_of_every_copied_class_created_after_the_copy_are_on_green_at_the_switch() {
    let (b, g, db, _dir, mut t) = streaming(15, 17).await;
    let created = EVERY_COPIED_CLASS;
    for (_, sql) in created {
        b.execute(&db, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let (code, out) = common::turnout_command(&t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_eq!(code, 0, "{out}");
    for (kind, _) in created {
        assert!(out.contains(&format!("- {kind} ")), "{kind} not named by the dry run:\n{out}");
    }
    // An aggregate redefined in place is not something turnout replaces: refused, naming it.
    b.execute(&db, "DROP AGGREGATE reports.total(bigint); CREATE AGGREGATE reports.total(bigint) (SFUNC = reports.add_cents, STYPE = bigint, INITCOND = '1')")
        .await
        .expect("aggregate redefined");
    g.execute(
        &db,
        "CREATE SCHEMA IF NOT EXISTS reports; CREATE FUNCTION reports.add_cents(bigint, bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2'; \
                    CREATE AGGREGATE reports.total(bigint) (SFUNC = reports.add_cents, STYPE = bigint, INITCOND = '0')",
    )
    .await
    .expect("green's older aggregate");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("AGGREGATE reports.total(bigint) differs") && out.contains("turnout does not replace objects of this kind"), "{out}");
    assert!(!out.contains("fenced writes"), "{out}");
    // Made equal by hand, the cutover carries the rest and green's definitions are blue's.
    g.execute(&db, "DROP AGGREGATE reports.total(bigint); CREATE AGGREGATE reports.total(bigint) (SFUNC = reports.add_cents, STYPE = bigint, INITCOND = '1')")
        .await
        .expect("green's aggregate fixed");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, verified) = common::turnout_command(&t, "verify", &[]).await;
    assert!(verified.contains("ok       definitions"), "{code}: {verified}");
    let green = g.connect(&db).await.expect("green");
    let total: i64 = green.query_one("SELECT reports.total(id::bigint) FROM t", &[]).await.expect("aggregate").get(0);
    assert_eq!(total, 1 + (1..=40).sum::<i64>());
    let rows: i64 = green.query_one("SELECT count(*) FROM reports.per_tenant", &[]).await.expect("materialized view").get(0);
    assert_eq!(rows, 4, "the materialized view is populated on green as on blue");
    assert_eq!(t.sigterm(), Some(0));
}

/// Every row of `view` on `url`, as text, in one order.
async fn view_rows(url: &str, view: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let rows = client.query(&format!("SELECT t::text FROM {view} t ORDER BY 1"), &[]).await.expect("rows");
    rows.iter().map(|r| r.get(0)).collect()
}

/// A materialized view blue keeps frozen — its table changed since blue last refreshed it — cannot be
/// made equal on green by a refresh: the cutover refuses before the fence, naming it. Kept by name,
/// the cutover goes on with green's refreshed rows and the certificate says so; refreshed on blue
/// (another view populated on blue after the copy as well), green's rows are blue's at the switch.
#[tokio::test]
async fn a_materialized_view_blue_keeps_frozen_refuses_the_cutover_until_refreshed_or_kept() {
    // The views exist before the copy: the schema copy makes them on green.
    let views = "CREATE TABLE t (id int PRIMARY KEY, tenant int NOT NULL, code text);
        INSERT INTO t SELECT g, g % 4, 'c' || g FROM generate_series(1, 40) g;
        CREATE MATERIALIZED VIEW per_tenant AS SELECT tenant, count(*) AS n FROM t GROUP BY tenant;
        CREATE MATERIALIZED VIEW total AS SELECT count(*) AS n FROM t WITH NO DATA;";
    let (b, g, db) = pair_versions(15, 17, views).await;
    let (dir, mut t) = running_with(&b, &g, &db, "[cutover]\nfence = \"read-only\"\nswitch = \"none\"\n").await;
    b.execute(&db, "INSERT INTO t (id, tenant, code) SELECT g, 1, 'c' || g FROM generate_series(41, 60) g").await.expect("rows after the refresh");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("materialized views hold rows their queries no longer return") && out.contains("public.per_tenant (blue: 4 rows"), "{out}");
    assert!(out.contains("keep_definitions = [\"MATERIALIZED VIEW DATA public.per_tenant\"]"), "{out}");
    assert!(!out.contains("fenced writes"), "refused before the fence:\n{out}");
    // Kept by name (in a rehearsal, which fences and lifts): green's refreshed rows, recorded.
    assert_eq!(t.sigterm(), Some(0));
    let config = std::fs::read_to_string(t.config_path()).expect("config");
    std::fs::write(t.config_path(), config.replace("[cutover]\n", "[cutover]\nkeep_definitions = [\"MATERIALIZED VIEW DATA public.per_tenant\"]\n"))
        .expect("write");
    t.start();
    common::wait_streaming(&mut t).await;
    let report = dir.path().join("rehearsal.json");
    let (code, out) =
        common::turnout_command(&t, "cutover", &["--rehearse", "--yes", "--when-lag", "<1s", "--timeout", "60s", "--report", report.to_str().expect("path")])
            .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("green's rows kept by cutover.keep_definitions: public.per_tenant"), "{out}");
    assert_ne!(view_rows(&g.url(&db), "per_tenant").await, view_rows(&b.url(&db), "per_tenant").await, "green's kept rows are its own refresh");
    // Refreshed on blue, and the other view populated there: both equal on green at the switch.
    assert_eq!(t.sigterm(), Some(0));
    std::fs::write(t.config_path(), &config).expect("write");
    t.start();
    common::wait_streaming(&mut t).await;
    b.execute(&db, "REFRESH MATERIALIZED VIEW per_tenant; REFRESH MATERIALIZED VIEW total").await.expect("refresh on blue");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the rows of 2 materialized views equal on green"), "{out}");
    eprintln!("{out}");
    for view in ["per_tenant", "total"] {
        assert_eq!(view_rows(&g.url(&db), view).await, view_rows(&b.url(&db), view).await, "{view}");
    }
    assert_eq!(t.sigterm(), Some(0));
}

/// A stored generated column computed through a function the application labelled `IMMUTABLE` that
/// reads `TimeZone`: green computes it again in turnout's session, so every row differs from what the
/// application's sessions (in Tokyo) stored on blue. `verify` shows it; the cutover refuses naming
/// the column and the function, before the fence; named in `cutover.keep_definitions` (the operator
/// vouching for the function) it goes on and the certificate records the column.
#[tokio::test]
async fn a_generated_column_through_a_mislabelled_function_refuses_the_cutover_until_kept() {
    let schema = "CREATE FUNCTION hour_of(ts timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT to_char(ts, 'YYYY-MM-DD HH24') $$;
        CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL, hour text GENERATED ALWAYS AS (hour_of(ts)) STORED, doubled int GENERATED ALWAYS AS (id * 2) STORED);
        SET TimeZone = 'Asia/Tokyo';
        INSERT INTO ev (id, ts) SELECT g, timestamptz '2026-11-27 12:00:00+00' + g * interval '1 hour' FROM generate_series(1, 10) g;";
    let (b, g, db) = pair_versions(15, 17, schema).await;
    let (dir, mut t) = running_with(&b, &g, &db, "[cutover]\nfence = \"read-only\"\nswitch = \"none\"\n").await;
    b.execute(&db, "SET TimeZone = 'Asia/Tokyo'; INSERT INTO ev (id, ts) VALUES (11, now())").await.expect("streamed row");
    let (_, out) = common::turnout_command(&t, "check", &[]).await;
    assert!(out.contains("public.ev.hour (through hour_of(timestamp with time zone))"), "check warns of it:\n{out}");
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 1, "green computed other values: {out}");
    assert!(out.contains("DIFFERS") && out.contains("ev"), "{out}");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("stored generated columns public.ev.hour (through hour_of(timestamp with time zone))"), "{out}");
    assert!(!out.contains("public.ev.doubled"), "a column computed by PostgreSQL's own operators is not refused:\n{out}");
    assert!(out.contains("keep_definitions = [\"GENERATED public.ev.hour\"]") && !out.contains("fenced writes"), "{out}");
    assert_eq!(t.sigterm(), Some(0));
    let config = std::fs::read_to_string(t.config_path()).expect("config");
    std::fs::write(t.config_path(), config.replace("[cutover]\n", "[cutover]\nkeep_definitions = [\"GENERATED public.ev.hour\"]\n")).expect("write");
    t.start();
    common::wait_streaming(&mut t).await;
    let report = dir.path().join("cutover.json");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--report", report.to_str().expect("path")]).await;
    assert_eq!(code, 0, "{out}");
    let certificate = common::intact_certificate(&report);
    assert!(certificate["definitions"].to_string().contains("kept by cutover.keep_definitions: GENERATED public.ev.hour"), "{certificate}");
    assert_eq!(t.sigterm(), Some(0));
}

/// A materialized view over a table `[tables]` leaves out is not compared (green's table is not
/// blue's, by the operator's choice): the cutover neither refuses it as frozen nor names it.
#[tokio::test]
async fn a_materialized_view_over_a_table_left_out_is_not_compared() {
    let schema = "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE audit (id int PRIMARY KEY, what text);
        INSERT INTO t SELECT generate_series(1, 5); INSERT INTO audit SELECT g, 'x' FROM generate_series(1, 7) g;
        CREATE MATERIALIZED VIEW audit_count AS SELECT count(*) AS n FROM audit;";
    let (b, g, db) = pair_versions(15, 17, schema).await;
    let (_dir, mut t) = running_with(&b, &g, &db, "[tables]\nexclude = [\"public.audit\"]\n[cutover]\nfence = \"read-only\"\nswitch = \"none\"\n").await;
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("audit_count ("), "{out}");
    assert_eq!(t.sigterm(), Some(0));
}

/// Objects of every copied class made on blue while the cutover waits for lag (green's apply held by
/// a lock) are on green, defined as on blue, when the cutover exits 0: the definitions are settled
/// after the wait.
#[tokio::test]
async fn objects_of_every_copied_class_made_during_the_lag_wait_are_on_green_at_the_switch() {
    let (b, g, db, _dir, mut t) = streaming(15, 17).await;
    let (holder, cutover) = cutover_waiting_for_lag(&b, &g, &db, &mut t).await;
    for (_, sql) in EVERY_COPIED_CLASS {
        b.execute(&db, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    holder.batch_execute("ROLLBACK").await.expect("unlock");
    let (code, text) = cutover.await.expect("join");
    assert_eq!(code, Some(0), "{text}\n{}", t.log_text());
    assert!(text.contains("green's definitions equal blue's") && text.contains("carried"), "{text}");
    let (code, verified) = common::turnout_command(&t, "verify", &[]).await;
    assert!(verified.contains("ok       definitions"), "{code}: {verified}");
    let green = g.connect(&db).await.expect("green");
    let total: i64 = green.query_one("SELECT reports.total(id::bigint) FROM t", &[]).await.expect("aggregate").get(0);
    assert_eq!(total, 100 + (1..=40).sum::<i64>());
    let rows: i64 = green.query_one("SELECT count(*) FROM reports.per_tenant", &[]).await.expect("materialized view").get(0);
    assert_eq!(rows, 4, "the materialized view is populated on green as on blue");
    assert_eq!(t.sigterm(), Some(0));
}
