//! A lossy mapping the operator accepts (`[[convert.accept]]`): zero dates as NULL, text without
//! its NUL bytes. Without it `check` counts the affected rows and the copy refuses; an entry that
//! names no column, or a mapping that does not fit the column, is refused by name; with it `check`
//! says what is accepted, the copy and the stream carry the values so, `verify` compares them so,
//! and the cutover's certificate records the acceptance.

use crate::common::{self, Turnout};
use crate::mysql_to_postgres::{green_column, pair_of};
use std::time::{Duration, Instant};
use turnout_testbed::Flavor;

const SCHEMA: &str = "\
    SET SESSION sql_mode = ''; \
    CREATE TABLE t (id INT PRIMARY KEY, d DATE NULL, dn DATE NOT NULL, s VARCHAR(20), c CHAR(6)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4; \
    INSERT INTO t VALUES (1, '0000-00-00', '2024-01-01', CONCAT('a', CHAR(0), 'b'), CONCAT('x ', CHAR(0))), \
      (2, '2024-02-29', '2024-01-02', 'plain', 'y'), (3, '2024-00-10', '2024-01-03', NULL, NULL)";

fn accept(entries: &[(&str, &str)]) -> String {
    entries.iter().map(|(column, becomes)| format!("[[convert.accept]]\ncolumn = \"{column}\"\nas = \"{becomes}\"\n")).collect()
}

/// Green's rows as `id|d|s hex|c hex`.
async fn green_rows(green: &turnout_testbed::PgServer, db: &str) -> Vec<String> {
    let sql = format!(
        "SELECT concat_ws('|', id, COALESCE(d::text, 'N'), COALESCE(encode(convert_to(s, 'UTF8'), 'hex'), 'N'), \
           COALESCE(encode(convert_to(c, 'UTF8'), 'hex'), 'N')) FROM \"{db}\".t ORDER BY id"
    );
    green_column(green, db, &sql).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_dates_accepted_as_null_and_nul_bytes_accepted_removed_arrive_so_and_are_certified() {
    let (blue, green, db) = pair_of(Flavor::MariaDb10_11, SCHEMA).await;
    let dir = tempfile::tempdir().expect("tmp");
    // Nothing accepted: counted and refused.
    let t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("2 row(s) on blue hold a zero date") && out.contains("1 row(s) on blue hold a NUL byte"), "{out}");
    // A mapping that does not fit the column, and an entry naming no column.
    let wrong = accept(&[(&format!("{db}.t.dn"), "null"), (&format!("{db}.t.nope"), "null"), (&format!("{db}.t.d"), "without-nul")]);
    let t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &wrong);
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("convert.accept names it with as = \"null\", which applies only to a nullable DATE"), "{out}");
    assert!(out.contains(&format!("convert.accept names {db}.t.nope")), "{out}");
    assert!(out.contains("as = \"without-nul\", which applies only to a text column"), "{out}");
    // Accepted.
    let cutover = common::command_switch(dir.path(), &format!("touch '{}'", dir.path().join("switched").display()))
        .replace("[cutover]\n", "[cutover]\nreverse = false\n");
    let config =
        format!("{}{cutover}", accept(&[(&format!("{db}.t.d"), "null"), (&format!("{db}.t.s"), "without-nul"), (&format!("{db}.t.c"), "without-nul")]));
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &config);
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 row(s) hold a zero date (year, month or day 0): accepted as null in convert.accept"), "{out}");
    t.start();
    common::wait_streaming(&mut t).await;
    blue.execute(Some(&db), "SET SESSION sql_mode = ''; INSERT INTO t VALUES (4, '2024-05-00', '2024-01-04', CONCAT(CHAR(0), 'z'), CONCAT('q', CHAR(0), ' '))")
        .expect("streamed");
    let expected = vec![
        "1|N|6162|78".to_owned(),
        "2|2024-02-29|706c61696e|79".into(),
        "3|N|N|N".into(),
        // A CHAR without its NUL bytes is what blue would read of it: no trailing spaces ('x ␀' → 'x').
        "4|N|7a|71".into(),
    ];
    let deadline = Instant::now() + common::WAIT;
    while green_rows(&green, &db).await != expected {
        assert!(t.exited().is_none() && Instant::now() < deadline, "{:?}\n{}", green_rows(&green, &db).await, t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "verify compares what was accepted: {out}");
    let report = dir.path().join("certificate.json");
    let (code, out) = common::turnout_command(&t, "cutover", &["--yes", "--when-lag", "<1s", "--report", report.to_str().expect("path")]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    let certificate = common::intact_certificate(&report);
    let map: Vec<&str> = certificate["type_map"].as_array().expect("type_map").iter().filter_map(|l| l.as_str()).collect();
    assert!(map.contains(&format!("{db}.t.d: date → date (lossy: a zero date (year, month or day 0) accepted as null in convert.accept)").as_str()), "{map:?}");
    assert!(map.iter().any(|l| l.starts_with(&format!("{db}.t.s: varchar(20) → varchar(20) (lossy: a NUL byte accepted as without-nul"))), "{map:?}");
    t.sigterm();
}
