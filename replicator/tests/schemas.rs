//! Schemas nobody here designed: columns named like turnout's own aliases, domains, type modifiers that
//! differ between blue and green, constraints only green has, and the pg_dump the schema copy uses.
//! Every failure must name the table, the column or statement, the server's own words and the fix.

use crate::common;

use common::*;

/// Runs `turnout verify` with the running process's config; (exit code, output).
fn verify(t: &Turnout, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(["verify", "--config"]).arg(t.config_path()).args(args).output().expect("verify");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn verify_sees_a_difference_in_a_table_whose_columns_are_named_like_its_aliases() {
    // A column named like each alias the digest query uses: a digest of the column instead of the row
    // would miss a change in any other column.
    let (blue, green, db) = pair(
        "CREATE TABLE odd (r int PRIMARY KEY, x text, h text, d text, t text, \"ROW\" text, \"r.*\" int);
         INSERT INTO odd SELECT g, 'same', 'h', 'd', 't', 'row', g FROM generate_series(1, 100) g",
    )
    .await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    assert_converges(&blue, &green, &db, &["odd"], &mut t).await;
    let (code, out) = verify(&t, &[]);
    assert_eq!(code, Some(0), "{out}");
    for column in ["x", "h", "d", "t", "\"ROW\"", "\"r.*\""] {
        let change = if column == "\"r.*\"" { "-1".to_string() } else { "'changed'".to_string() };
        green.execute(&db, &format!("UPDATE odd SET {column} = {change} WHERE r = 50")).await.expect("tamper");
        let (code, out) = verify(&t, &[]);
        assert_eq!(code, Some(1), "a change in column {column} was not seen:\n{out}");
        assert!(out.contains("DIFFERS  \"public\".\"odd\" (blue 100 rows, green 100 rows)"), "{out}");
        green.execute(&db, "TRUNCATE odd").await.expect("reset");
        let c = blue.connect(&db).await.expect("blue");
        let rows = c.query("SELECT ROW(o.*)::text FROM odd o", &[]).await.expect("rows");
        let g = green.connect(&db).await.expect("green");
        for r in rows {
            g.execute(&format!("INSERT INTO odd SELECT (({}::text)::odd).*", quote_literal(&r.get::<_, String>(0))), &[]).await.expect("restore");
        }
        let (code, out) = verify(&t, &[]);
        assert_eq!(code, Some(0), "restored table still differs:\n{out}");
    }
    assert_eq!(t.sigterm(), Some(0));
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[tokio::test]
async fn an_error_on_green_shows_the_servers_message_detail_sqlstate_and_the_statement() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY, qty int)").await;
    // Green has a constraint blue lacks: applying a row that breaks it must stop replication with
    // PostgreSQL's own words, not "db error".
    green.execute(&db, "CREATE TABLE t (id int PRIMARY KEY, qty int CONSTRAINT qty_small CHECK (qty < 100))").await.expect("green schema");
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO t VALUES (1, 5)").await.expect("ok row");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    blue.execute(&db, "UPDATE t SET qty = 500 WHERE id = 1").await.expect("bad row");
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    for needle in [
        "violates check constraint \"qty_small\"",
        "SQLSTATE 23514",
        "detail: Failing row contains",
        "updating public.t",
        "UPDATE ONLY \"public\".\"t\"",
        "constraint qty_small",
    ] {
        assert!(log.contains(needle), "the error lacks `{needle}`:\n{log}");
    }
    assert!(!log.contains(": db error"), "{log}");
}

#[tokio::test]
async fn domains_on_green_accept_their_base_type_from_blue_and_a_narrower_typmod_is_refused_by_name() {
    let (blue, green, db) = pair(
        "CREATE DOMAIN code3 AS char(3) CHECK (VALUE <> 'bad');
         CREATE DOMAIN positive AS int CHECK (VALUE > 0);
         CREATE DOMAIN small_positive AS positive CHECK (VALUE < 1000);
         CREATE TABLE d (id small_positive PRIMARY KEY, code code3, codes code3[], n numeric(10,2));
         INSERT INTO d VALUES (1, 'ab', '{ab,x}', 1.5)",
    )
    .await;
    let (_dir, mut t) = running(&blue, &green, &db).await;
    blue.execute(&db, "INSERT INTO d SELECT g, 'c' || g, ARRAY['c' || g], g FROM generate_series(2, 9) g; UPDATE d SET n = n + 1").await.expect("changes");
    assert_converges(&blue, &green, &db, &["d"], &mut t).await;
    let g = green.connect(&db).await.expect("green");
    let width: i32 = g.query_one("SELECT octet_length(code) FROM d WHERE id = 1", &[]).await.expect("row").get(0);
    assert_eq!(width, 3, "char(3) in a domain lost its padding or was cut");
    assert_eq!(t.sigterm(), Some(0));
    // A green column narrower than blue's would round values: refused, naming both types.
    green.execute(&db, "ALTER TABLE d ALTER COLUMN n TYPE numeric(10,1)").await.expect("narrow");
    t.start();
    blue.execute(&db, "INSERT INTO d VALUES (20, 'z', NULL, 1.25)").await.expect("row");
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(
        log.contains("column \"n\" has type numeric(10,1) on green but blue sends numeric(10,2)") && log.contains("ALTER COLUMN \"n\" TYPE numeric(10,2)"),
        "{log}"
    );
}

#[tokio::test]
async fn a_configured_pg_dump_older_than_blue_is_refused_naming_the_setting() {
    let (blue, green, db) = pair_versions(16, 17, "CREATE TABLE t (id int PRIMARY KEY)").await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    // `[source]` is the first table of the file: put the setting there.
    let config = std::fs::read_to_string(t.config_path()).expect("config");
    std::fs::write(t.config_path(), config.replacen("[source]\n", "[source]\npg_dump = \"/usr/lib/postgresql/15/bin/pg_dump\"\n", 1)).expect("write");
    t.start();
    assert_eq!(wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("source.pg_dump /usr/lib/postgresql/15/bin/pg_dump is version 15, older than blue (16)"), "{log}");
}
