//! Oracle MySQL's `JSON` → PostgreSQL's `jsonb`: every document, copied and streamed (whole updates
//! and `PARTIAL_JSON` diffs), is on green the `jsonb` PostgreSQL itself parses blue's text into —
//! members ordered and deduplicated, numbers as `numeric`, escapes — and `verify` agrees; a typed
//! `DATE` scalar is counted by `check` and refuses the copy, and one arriving later stops the stream
//! naming row and column before green holds any of its transaction; a cutover with a way back is
//! refused naming the column.

use crate::common::{self, Turnout};
use crate::mysql_to_postgres::{green_column, pair_of};
use std::time::{Duration, Instant};
use turnout_testbed::{Flavor, MySqlServer, PgServer};

const SCHEMA: &str = r#"CREATE TABLE j (id INT PRIMARY KEY, doc JSON) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
    INSERT INTO j VALUES
      (1, '{"b": 1, "a": [true, false, null], "aa": {}, "a": "last wins"}'),
      (2, '1e20'),
      (3, '[0.1, -1.5e-7, 5e-324, 1.7976931348623157e308, 18446744073709551615, -9223372036854775808, 100.0, 0.30000000000000004]'),
      (4, '"q\\"b\\\\s\\u00e9 \\ud83d\\ude00 \\u0001\\n\\t/"'),
      (5, 'null'),
      (6, NULL),
      (7, JSON_ARRAY(CAST(1.50 AS DECIMAL(4,2)), CAST(-12345678901234567890.123 AS DECIMAL(30,3)))),
      (8, JSON_OBJECT('k', JSON_ARRAY(1, JSON_OBJECT('deep', 'x')), 'é', 'ü', 'z', '')),
      (9, JSON_OBJECT('at', CAST('2024-01-01' AS DATE)))"#;

/// Blue's documents as MySQL prints them, by id (`N` for SQL NULL).
fn blue_docs(blue: &MySqlServer, db: &str) -> Vec<(i64, Option<String>)> {
    let out = blue.execute(Some(db), "SELECT id, COALESCE(HEX(CAST(doc AS CHAR)), 'N') FROM j ORDER BY id").expect("blue's documents");
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, hex)| {
            let text = (hex != "N").then(|| {
                let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect();
                String::from_utf8(bytes).expect("utf-8")
            });
            (id.parse().expect("id"), text)
        })
        .collect()
}

/// What green should hold: PostgreSQL's own `jsonb` of each of blue's texts, as `id|text`.
async fn expected(green: &PgServer, db: &str, docs: &[(i64, Option<String>)]) -> Vec<String> {
    let values: Vec<String> = docs
        .iter()
        .map(|(id, text)| match text {
            Some(t) => format!("({id}, E'{}'::jsonb)", t.replace('\\', "\\\\").replace('\'', "\\'")),
            None => format!("({id}, NULL::jsonb)"),
        })
        .collect();
    let sql = format!("SELECT id || '|' || COALESCE(doc::text, 'N') FROM (VALUES {}) AS v (id, doc) ORDER BY id", values.join(", "));
    green_column(green, db, &sql).await.expect("PostgreSQL parses every document blue printed")
}

async fn green_docs(green: &PgServer, db: &str) -> Vec<String> {
    green_column(green, db, &format!("SELECT id || '|' || COALESCE(doc::text, 'N') FROM \"{db}\".j ORDER BY id")).await.unwrap_or_default()
}

/// Waits until green holds, document for document, what PostgreSQL makes of blue's texts.
async fn documents_arrive(blue: &MySqlServer, green: &PgServer, db: &str, t: &mut Turnout) -> Vec<String> {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let want = expected(green, db, &blue_docs(blue, db)).await;
        let have = green_docs(green, db).await;
        if want == have {
            return have;
        }
        assert!(t.exited().is_none(), "{}", t.log_text());
        assert!(Instant::now() < deadline, "green never held blue's documents: {:?}", want.iter().zip(&have).find(|(w, h)| w != h));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_json_documents_arrive_as_the_jsonb_postgresql_makes_of_them_and_typed_dates_are_refused_by_row() {
    let (blue, green, db) = pair_of(Flavor::MySql9_7, SCHEMA).await;
    let dir = tempfile::tempdir().expect("tmp");
    // A command switch with its way back: a cutover with a way back is asked for.
    let serving = dir.path().join("serving");
    let script = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\ntouch '{}'\n", serving.display())).expect("script");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        path.display().to_string()
    };
    let (to, back) = (script("to.sh"), script("back.sh"));
    let cutover = format!("[cutover]\nfence = \"read-only\"\nswitch = \"command\"\n[cutover.command]\nargv = [\"{to}\"]\nback_argv = [\"{back}\"]\n");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &cutover);
    // The typed DATE is counted, and refuses the copy by count.
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("{db}.j.doc: json → jsonb (lossy")), "{out}");
    assert!(out.contains("1 row(s) on blue hold a JSON document holding a typed DATE/TIME/DATETIME scalar"), "{out}");
    t.start();
    assert_ne!(common::wait_exit(&mut t).await, 0);
    assert!(t.log_text().contains(&format!("1 row(s) of {db}.j hold a JSON document")), "{}", t.log_text());

    blue.execute(Some(&db), "DELETE FROM j WHERE id = 9").expect("delete the typed date");
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert!(out.contains(&format!("{db}.j.doc: json → jsonb (lossy")) && !out.contains("row(s) on blue hold a JSON"), "{code} {out}");
    t.start();
    common::wait_streaming(&mut t).await;
    let copied = documents_arrive(&blue, &green, &db, &mut t).await;
    assert!(copied.contains(&"2|100000000000000000000".to_owned()), "a double as numeric prints it: {copied:?}");
    assert!(copied.contains(&r#"1|{"a": "last wins", "b": 1, "aa": {}}"#.to_owned()), "{copied:?}");
    assert!(copied.contains(&"7|[1.50, -12345678901234567890.123]".to_owned()), "typed DECIMALs keep their digits: {copied:?}");
    assert!(copied.contains(&"5|null".to_owned()) && copied.contains(&"6|N".to_owned()), "JSON null is not SQL NULL: {copied:?}");

    // Streamed: whole documents, a DECIMAL-typed one, and PARTIAL_JSON diffs of a document in place.
    blue.execute(
        Some(&db),
        r#"INSERT INTO j VALUES (10, '{"x": [1, 2.5e-3, "\\u001f"], "": -0.5}'), (11, JSON_OBJECT('p', CAST(9.990 AS DECIMAL(5,3)))), (12, '[]');
           SET SESSION binlog_row_value_options = 'PARTIAL_JSON';
           UPDATE j SET doc = JSON_SET(doc, '$.b', 2.5e0, '$.new', JSON_ARRAY(1e300)) WHERE id = 1;
           UPDATE j SET doc = JSON_REMOVE(doc, '$.aa') WHERE id = 1;
           UPDATE j SET doc = JSON_REPLACE(doc, '$[0]', 'zero') WHERE id = 3;
           UPDATE j SET doc = '{"whole": "replaced"}' WHERE id = 8;
           DELETE FROM j WHERE id = 5"#,
    )
    .expect("streamed documents");
    let streamed = documents_arrive(&blue, &green, &db, &mut t).await;
    assert!(streamed.iter().any(|r| r.starts_with("1|") && r.contains(r#""new": [1000000000000000000000000000000"#)), "{streamed:?}");
    assert!(streamed.contains(&"11|{\"p\": 9.990}".to_owned()), "{streamed:?}");
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");

    // A cutover with a way back is refused before anything changes, naming the column.
    let (code, out) = common::turnout_command(&t, "cutover", &["--yes", "--when-lag", "<5s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("{db}.j.doc: JSON on blue keeps numbers as doubles")), "{out}");
    assert!(!serving.exists(), "nothing was switched");

    // A typed DATE arriving later stops the stream by row and column; green holds none of its
    // transaction.
    blue.execute(Some(&db), "BEGIN; INSERT INTO j VALUES (20, '[20]'); INSERT INTO j VALUES (21, JSON_ARRAY(CURDATE())); COMMIT").expect("typed date");
    assert_ne!(common::wait_exit(&mut t).await, 0);
    let log = t.log_text();
    assert!(log.contains(&format!("{db}.j.doc (id = 21)")) && log.contains("typed DATE, TIME or DATETIME scalar"), "{log}");
    let ids = green_column(&green, &db, &format!("SELECT id::text FROM \"{db}\".j WHERE id >= 20")).await.unwrap_or_default();
    assert!(ids.is_empty(), "green holds part of the refused transaction: {ids:?}");
    // The copy's reading of blue (here `verify`'s) marks the typed document too, and refuses it so.
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("{db}.j.doc (id = 21)")) && out.contains("typed DATE, TIME or DATETIME scalar"), "{out}");
}
