//! MySQL/MariaDB → PostgreSQL: blue's additive DDL while streaming, translated by the type map from
//! blue's catalog — columns added with their defaults and guards, indexes (on a table whose
//! `AUTO_INCREMENT` counter moves), rows of the new shape — across a restart from before the
//! statement (with and without rows of the older shape before it), with `verify` finding green's
//! definitions and rows equal; a column added in the middle stops the stream naming it.

use crate::common::{self, Turnout};
use crate::mysql_to_postgres::{green_column, pair_of};
use std::time::{Duration, Instant};
use turnout_testbed::{Flavor, MySqlServer, PgServer};

/// A pair of `flavor` with `schema` on blue, and turnout streaming between them.
async fn streaming(flavor: Flavor, schema: &str) -> (MySqlServer, PgServer, String, tempfile::TempDir, Turnout) {
    let (blue, green, db) = pair_of(flavor, schema).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    common::wait_streaming(&mut t).await;
    (blue, green, db, dir, t)
}

/// Every row of blue's `table` as text, sorted.
fn blue_rows(blue: &MySqlServer, db: &str, (table, columns): (&str, &[&str])) -> Vec<String> {
    let list = columns.iter().map(|c| format!("IFNULL({c}, 'N')")).collect::<Vec<_>>().join(", ");
    let out = blue.execute(Some(db), &format!("SELECT CONCAT_WS('|', {list}) FROM {table}")).expect("blue's rows");
    let mut rows: Vec<String> = out.lines().map(str::to_owned).collect();
    rows.sort();
    rows
}

/// Every row of green's `table` as text, sorted; empty when a column is missing.
async fn green_rows(green: &PgServer, db: &str, (table, columns): (&str, &[&str])) -> Vec<String> {
    let list = columns.iter().map(|c| format!("COALESCE({c}::text, 'N')")).collect::<Vec<_>>().join(", ");
    let mut rows = green_column(green, db, &format!("SELECT concat_ws('|', {list}) FROM \"{db}\".{table}")).await.unwrap_or_default();
    rows.sort();
    rows
}

/// Waits until green's `table` holds blue's rows in `columns`, text for text.
async fn rows_arrive(blue: &MySqlServer, green: &PgServer, db: &str, columns: (&str, &[&str]), t: &mut Turnout) -> Vec<String> {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (b, g) = (blue_rows(blue, db, columns), green_rows(green, db, columns).await);
        if b == g {
            return b;
        }
        if let Some(code) = t.exited() {
            panic!("turnout exited with {code}\n{}", t.log_text());
        }
        assert!(Instant::now() < deadline, "green never held blue's rows: blue {b:?}, green {g:?}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn additive_ddl_on(flavor: Flavor) {
    let (blue, green, db, _dir, mut t) = streaming(
        flavor,
        "CREATE TABLE t (id INT PRIMARY KEY, n INT) ENGINE = InnoDB; INSERT INTO t VALUES (1, 10), (2, NULL); \
         CREATE TABLE u (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE = InnoDB; INSERT INTO u (v) VALUES (0)",
    )
    .await;
    // Two columns (one NOT NULL with a default the existing rows take, one unsigned) and an index,
    // then rows of the new shape and an update of an old row; then a third column, most likely
    // already in blue's catalog when the stream reads it for the first statement.
    blue.execute(
        Some(&db),
        "ALTER TABLE t ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'none', ADD COLUMN big BIGINT UNSIGNED NULL; \
         INSERT INTO t VALUES (3, 30, 'three', 18446744073709551615); CREATE INDEX by_note ON t (note); \
         UPDATE t SET note = 'one' WHERE id = 1; \
         ALTER TABLE t ADD COLUMN flag TINYINT NOT NULL DEFAULT 1; INSERT INTO t VALUES (7, 70, 'seven', NULL, 0); \
         INSERT INTO u (v) VALUES (1), (2); CREATE INDEX by_v ON u (v)",
    )
    .expect("blue's DDL and writes");
    let columns = ["id", "n", "note", "big", "flag"];
    // An index on a table whose AUTO_INCREMENT counter moved since the stream opened.
    rows_arrive(&blue, &green, &db, ("u", &["id", "v"]), &mut t).await;
    let rows = rows_arrive(&blue, &green, &db, ("t", &columns), &mut t).await;
    assert_eq!(rows, ["1|10|one|N|1", "2|N|none|N|1", "3|30|three|18446744073709551615|1", "7|70|seven|N|0"]);
    let defined = green_column(
        &green,
        &db,
        &format!(
            "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' ' || COALESCE(pg_get_expr(d.adbin, d.adrelid), '-') \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = '\"{db}\".t'::regclass AND a.attnum > 2 AND NOT a.attisdropped ORDER BY a.attnum"
        ),
    )
    .await
    .expect("green's columns");
    assert_eq!(
        defined,
        ["note character varying(20) true 'none'::character varying", "big numeric(20,0) false -", "flag smallint true 1"],
        "as the copy would make them"
    );
    let indexes = green_column(&green, &db, &format!("SELECT indexname FROM pg_indexes WHERE schemaname = '{db}' AND tablename = 't'")).await.expect("indexes");
    assert!(indexes.iter().any(|i| i.contains("by_note")), "{indexes:?}");
    // u's index is blue's last statement, after the rows waited for above.
    let deadline = Instant::now() + common::WAIT;
    loop {
        let indexes =
            green_column(&green, &db, &format!("SELECT indexname FROM pg_indexes WHERE schemaname = '{db}' AND tablename = 'u'")).await.expect("indexes");
        if indexes.iter().any(|i| i.contains("by_v")) {
            break;
        }
        assert!(t.exited().is_none() && Instant::now() < deadline, "green never got u's index by_v: {indexes:?}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stopped, blue writes an old-shape row, adds a column and writes a new-shape one: the stream
    // starts from before the statement with blue's catalog after it. On u the statement comes
    // first: no row of the older shape cuts the stream's catalog back, green's own shape tells.
    t.sigterm();
    blue.execute(
        Some(&db),
        "INSERT INTO t (id, n) VALUES (4, 40); ALTER TABLE t ADD COLUMN later INT DEFAULT 5; INSERT INTO t VALUES (5, 50, 'five', NULL, 1, 6); \
         ALTER TABLE u ADD COLUMN w INT DEFAULT 3; INSERT INTO u (v, w) VALUES (3, 4)",
    )
    .expect("writes while stopped");
    t.start();
    common::wait_streaming(&mut t).await;
    let columns = ["id", "n", "note", "big", "flag", "later"];
    let rows = rows_arrive(&blue, &green, &db, ("t", &columns), &mut t).await;
    let u = rows_arrive(&blue, &green, &db, ("u", &["id", "v", "w"]), &mut t).await;
    assert_eq!(u, ["1|0|3", "2|1|3", "3|2|3", "4|3|4"]);
    assert!(rows.contains(&"4|40|none|N|1|5".to_owned()) && rows.contains(&"5|50|five|N|1|6".to_owned()), "{rows:?}");
    assert!(t.log_text().contains("rows from before blue added columns: converted by the catalog as it was then"), "{}", t.log_text());
    // verify: green's definitions are what the type map makes of blue's now, and every row equal.
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    // A default changed on green by hand is a difference by its value.
    green.execute(&db, &format!("ALTER TABLE \"{db}\".t ALTER COLUMN note SET DEFAULT 'other'")).await.expect("green's default");
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("column note defaults to 'other'::character varying on green, the type map makes 'none'::character varying"), "{out}");
    green.execute(&db, &format!("ALTER TABLE \"{db}\".t ALTER COLUMN note SET DEFAULT 'none'")).await.expect("green's default back");
    // A column added before the others cannot keep blue's order on green: stopped, naming it.
    blue.execute(Some(&db), "ALTER TABLE t ADD COLUMN early INT FIRST; INSERT INTO t (id) VALUES (6)").expect("a column first");
    assert_ne!(common::wait_exit(&mut t).await, 0);
    let log = t.log_text();
    assert!(log.contains(&format!("blue's DDL on {db}.t (added column early) is not carried")) && log.contains("FIRST or AFTER"), "{log}");
    assert_eq!(green_rows(&green, &db, ("t", &columns)).await.len(), 6, "nothing after the refused statement applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_adds_columns_and_an_index_while_streaming_and_green_gets_them_translated_from_mariadb() {
    additive_ddl_on(Flavor::MariaDb10_11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_adds_columns_and_an_index_while_streaming_and_green_gets_them_translated_from_oracle_mysql_9_7() {
    additive_ddl_on(Flavor::MySql9_7).await;
}

/// Blue creates tables while streaming: green's are made from blue's catalog by the type map (key,
/// `AUTO_INCREMENT` identity, index, `ENUM` guard, a foreign key with actions to a copied table and
/// one to itself) and take the rows that follow; one created while turnout is stopped is made when
/// the restarted stream reaches its `CREATE TABLE` (blue's catalog read after it); `CREATE TABLE IF
/// NOT EXISTS` of a table green has changes nothing; `CREATE TABLE … SELECT` stops the stream naming
/// it.
async fn created_tables_on(flavor: Flavor) {
    let (blue, green, db, _dir, mut t) =
        streaming(flavor, "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(10)) ENGINE = InnoDB; INSERT INTO parent VALUES (1, 'a'), (2, 'b')").await;
    // An application's CREATE TABLE IF NOT EXISTS of a table it has (logged all the same) changes
    // nothing; its new tables are plain CREATE TABLEs.
    blue.execute(
        Some(&db),
        "CREATE TABLE IF NOT EXISTS parent (id INT PRIMARY KEY, name VARCHAR(10)) ENGINE = InnoDB; \
         CREATE TABLE child (id INT AUTO_INCREMENT PRIMARY KEY, parent_id INT, kind ENUM('x', 'y') NOT NULL DEFAULT 'x', \
           note VARCHAR(20), KEY by_note (note), \
           CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON UPDATE CASCADE ON DELETE CASCADE) ENGINE = InnoDB; \
         INSERT INTO child (parent_id, kind, note) VALUES (1, 'y', 'one'), (1, 'x', 'two'), (2, 'x', 'three'); \
         DELETE FROM parent WHERE id = 2; UPDATE parent SET id = 5 WHERE id = 1",
    )
    .expect("blue creates a table and writes it");
    let child = ("child", &["id", "parent_id", "kind", "note"][..]);
    let rows = rows_arrive(&blue, &green, &db, child, &mut t).await;
    assert_eq!(rows, ["1|5|y|one", "2|5|x|two"], "the cascades applied once");
    rows_arrive(&blue, &green, &db, ("parent", &["id", "name"]), &mut t).await;
    // Stopped, blue creates a tree referring to itself and fills it: the restarted stream opens with
    // blue's catalog holding it and green lacking it.
    t.sigterm();
    blue.execute(
        Some(&db),
        "CREATE TABLE node (id INT PRIMARY KEY, up INT, CONSTRAINT node_up FOREIGN KEY (up) REFERENCES node (id) ON DELETE CASCADE) ENGINE = InnoDB; \
         INSERT INTO node VALUES (1, NULL), (2, 1), (3, 2), (4, NULL); DELETE FROM node WHERE id = 2; INSERT INTO child (parent_id, note) VALUES (5, 'four')",
    )
    .expect("writes while stopped");
    t.start();
    common::wait_streaming(&mut t).await;
    assert_eq!(rows_arrive(&blue, &green, &db, ("node", &["id", "up"]), &mut t).await, ["1|N", "4|N"]);
    rows_arrive(&blue, &green, &db, child, &mut t).await;
    // Green's identity is past blue's counter, as a copied table's would be.
    let next = green_column(&green, &db, &format!("SELECT nextval(pg_get_serial_sequence('\"{db}\".child', 'id'))::text")).await.expect("identity");
    assert!(next.first().and_then(|n| n.parse::<i64>().ok()).is_some_and(|n| n >= 4), "{next:?}");
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "definitions and rows equal: {out}\n{}", t.log_text());
    assert!(out.contains("child") && out.contains("node"), "{out}");
    assert!(t.log_text().contains("blue created a table while streaming"), "{}", t.log_text());
    // A table created with its rows in one statement is not carried.
    blue.execute(Some(&db), "CREATE TABLE copied SELECT id, name FROM parent").expect("CREATE TABLE … SELECT");
    assert_ne!(common::wait_exit(&mut t).await, 0);
    let log = t.log_text();
    assert!(log.contains("copied") && log.contains("CREATE TABLE … SELECT") && log.contains("in one transaction"), "{log}");
}

/// A table created, written and then given a column blue fills with its clock, all while turnout
/// is stopped: green's table is made from blue's catalog after the column, and the rows written
/// before it would take green's default instead of blue's time — the stream stops naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_created_table_whose_older_rows_blue_filled_with_its_clock_stops_the_stream() {
    let (blue, green, db, _dir, mut t) = streaming(Flavor::MariaDb10_11, "CREATE TABLE t (id INT PRIMARY KEY) ENGINE = InnoDB").await;
    t.sigterm();
    blue.execute(
        Some(&db),
        "CREATE TABLE stamped (id INT PRIMARY KEY) ENGINE = InnoDB; INSERT INTO stamped VALUES (1); \
         ALTER TABLE stamped ADD COLUMN at DATETIME DEFAULT CURRENT_TIMESTAMP",
    )
    .expect("writes while stopped");
    t.start();
    assert_ne!(common::wait_exit(&mut t).await, 0);
    let log = t.log_text();
    assert!(log.contains(&format!("blue's DDL on {db}.stamped (added column at) is not carried")) && log.contains("current_timestamp"), "{log}");
    let rows = green_column(&green, &db, &format!("SELECT count(*)::text FROM \"{db}\".stamped")).await.expect("green's table");
    assert_eq!(rows, ["0"], "no row of the older shape applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_creates_tables_while_streaming_and_green_gets_them_from_the_type_map_from_mariadb() {
    created_tables_on(Flavor::MariaDb10_11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_creates_tables_while_streaming_and_green_gets_them_from_the_type_map_from_oracle_mysql_9_7() {
    created_tables_on(Flavor::MySql9_7).await;
}
