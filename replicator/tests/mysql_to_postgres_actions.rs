//! Foreign-key actions from MySQL/MariaDB to PostgreSQL: `ON UPDATE`/`ON DELETE` `CASCADE` and
//! `SET NULL`, chained over three tables and on a self-referencing tree (InnoDB refuses an `ON UPDATE CASCADE`
//! that would change its own table again, so the tree's key changes only where nothing refers to it). MariaDB does not log the
//! rows its actions change, so green repeats them; MySQL 9 logs them, so green must not. Every row
//! compared by its text on both sides, and a change blue made without its action (a session with
//! `foreign_key_checks = 0`) stops the stream where green would have acted.

use crate::common::{self, Turnout};
use crate::mysql_to_postgres::{green_column, pair_of};
use std::time::{Duration, Instant};
use turnout_testbed::{Flavor, MySqlServer, PgServer};

/// `{collation}`: the codes' collation — one without padding that compares bytes where green repeats
/// blue's actions (MariaDB), any where blue logs them (MySQL 9).
const SCHEMA: &str = "\
    CREATE TABLE country (id INT PRIMARY KEY, code VARCHAR(3) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL, UNIQUE KEY code_uq (code)) ENGINE = InnoDB; \
    CREATE TABLE city (id INT PRIMARY KEY, country_code VARCHAR(3) CHARACTER SET utf8mb4 COLLATE {collation}, name VARCHAR(20), \
      CONSTRAINT city_country FOREIGN KEY (country_code) REFERENCES country (code) ON UPDATE CASCADE ON DELETE SET NULL) ENGINE = InnoDB; \
    CREATE TABLE address (id INT PRIMARY KEY, city_id INT NOT NULL, line VARCHAR(20), \
      CONSTRAINT address_city FOREIGN KEY (city_id) REFERENCES city (id) ON UPDATE CASCADE ON DELETE CASCADE) ENGINE = InnoDB; \
    CREATE TABLE node (id INT PRIMARY KEY, parent_id INT, \
      CONSTRAINT node_parent FOREIGN KEY (parent_id) REFERENCES node (id) ON UPDATE CASCADE ON DELETE CASCADE) ENGINE = InnoDB; \
    INSERT INTO country VALUES (1, 'AA'), (2, 'BB'), (3, 'CC'); \
    INSERT INTO city VALUES (1, 'AA', 'one'), (2, 'AA', 'two'), (3, 'BB', 'three'), (4, 'CC', 'four'); \
    INSERT INTO address VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c'), (4, 3, 'd'), (5, 4, 'e'); \
    INSERT INTO node VALUES (1, NULL), (2, 1), (3, 2), (4, 3), (10, NULL), (11, 10), (12, 11)";

/// Each table and the text of its rows, as both engines print it.
const TABLES: [(&str, &str); 4] = [
    ("country", "concat_ws('|', id, code)"),
    ("city", "concat_ws('|', id, COALESCE(country_code, 'N'), name)"),
    ("address", "concat_ws('|', id, city_id, line)"),
    ("node", "concat_ws('|', id, COALESCE(parent_id {as_text}, 'N'))"),
];

fn blue_text(blue: &MySqlServer, db: &str) -> Vec<String> {
    TABLES
        .iter()
        .flat_map(|(t, row)| {
            let row = row.replace(" {as_text}", "");
            let rows = blue.execute(Some(db), &format!("SELECT CONCAT('{t}:', {row}) FROM {t} ORDER BY id")).expect("blue's rows");
            rows.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

async fn green_text(green: &PgServer, db: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (t, row) in TABLES {
        let row = row.replace(" {as_text}", "::text");
        out.extend(green_column(green, db, &format!("SELECT '{t}:' || {row} FROM \"{db}\".{t} ORDER BY id")).await.unwrap_or_default());
    }
    out
}

/// Waits until green holds blue's rows, text for text.
async fn equal(blue: &MySqlServer, green: &PgServer, db: &str, t: &mut Turnout) -> Vec<String> {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (b, g) = (blue_text(blue, db), green_text(green, db).await);
        if b == g {
            return b;
        }
        assert!(t.exited().is_none(), "turnout exited\n{}", t.log_text());
        assert!(Instant::now() < deadline, "green never held blue's rows\nblue:  {b:?}\ngreen: {g:?}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How green's triggers of `constraint` fire: `A` (always: green repeats the action), `O` (only
/// for the application's own writes).
async fn action_triggers(green: &PgServer, db: &str, constraint: &str) -> Vec<String> {
    let sql = format!(
        "SELECT p.proname || ':' || tg.tgenabled::text FROM pg_constraint c JOIN pg_trigger tg ON tg.tgconstraint = c.oid AND tg.tgrelid = c.confrelid \
         JOIN pg_proc p ON p.oid = tg.tgfoid WHERE c.conname = '{constraint}' AND c.connamespace = '\"{db}\"'::regnamespace ORDER BY 1"
    );
    green_column(green, db, &sql).await.expect("green's triggers")
}

async fn actions_on(flavor: Flavor, logged: bool) {
    let collation = if logged { "utf8mb4_0900_ai_ci" } else { "utf8mb4_nopad_bin" };
    let (blue, green, db) = pair_of(flavor, &SCHEMA.replace("{collation}", collation)).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_eq!(code, 0, "{out}");
    t.start();
    common::wait_streaming(&mut t).await;
    let fires = if logged { "O" } else { "A" };
    assert_eq!(
        action_triggers(&green, &db, "city_country").await,
        vec![format!("RI_FKey_cascade_upd:{fires}"), format!("RI_FKey_setnull_del:{fires}")],
        "green repeats exactly the actions blue does not log"
    );
    // A tree refers to itself: its checks are on the same table, and stay the application's.
    assert_eq!(
        action_triggers(&green, &db, "node_parent").await,
        vec![format!("RI_FKey_cascade_del:{fires}"), format!("RI_FKey_cascade_upd:{fires}"), "RI_FKey_check_ins:O".into(), "RI_FKey_check_upd:O".into()]
    );
    let copied = equal(&blue, &green, &db, &mut t).await;
    assert_eq!(copied.len(), 3 + 4 + 5 + 7, "{copied:?}");
    blue.execute(
        Some(&db),
        "UPDATE country SET code = 'XA' WHERE id = 1; \
         UPDATE city SET id = 100 WHERE id = 1; \
         DELETE FROM city WHERE id = 2; \
         DELETE FROM country WHERE id = 2; \
         START TRANSACTION; INSERT INTO country VALUES (4, 'DD'); INSERT INTO city VALUES (5, 'DD', 'five'); \
           UPDATE country SET code = 'DX' WHERE id = 4; INSERT INTO address VALUES (6, 5, 'f'); COMMIT; \
         DELETE FROM node WHERE id = 2; \
         UPDATE node SET id = 60 WHERE id = 12",
    )
    .expect("blue's writes");
    let streamed = equal(&blue, &green, &db, &mut t).await;
    for row in ["city:100|XA|one", "address:1|100|a", "address:2|100|b", "city:3|N|three", "city:5|DX|five", "node:60|11", "node:1|N"] {
        assert!(streamed.contains(&row.to_owned()), "{row} in {streamed:?}");
    }
    for gone in ["city:2|XA|two", "address:3|2|c", "node:3|2", "node:4|3"] {
        assert!(!streamed.contains(&gone.to_owned()), "{gone} in {streamed:?}");
    }
    // A session that skips the action on blue: MySQL 9 flags its rows as it flags a logged action,
    // so green skips it too; MariaDB's rows look like an action it did not log, so the stream stops
    // before green would apply it.
    blue.execute(Some(&db), "SET SESSION foreign_key_checks = 0; UPDATE country SET code = 'CX' WHERE id = 3").expect("an unchecked write");
    if logged {
        let rows = equal(&blue, &green, &db, &mut t).await;
        assert!(rows.contains(&"country:3|CX".to_owned()) && rows.contains(&"city:4|CC|four".to_owned()), "{rows:?}");
        t.sigterm();
    } else {
        assert_ne!(common::wait_exit(&mut t).await, 0, "{}", t.log_text());
        let log = t.log_text();
        assert!(
            log.contains(&format!(
                "{db}.country (id = 3) was updated on blue, and the ON UPDATE CASCADE of foreign key city_country of {db}.city would differ"
            )) && log.contains("foreign_key_checks = 0"),
            "{log}"
        );
        assert!(green_text(&green, &db).await.contains(&"country:3|CC".to_owned()), "green did not apply it");
        // Green's triggers are what say green repeats an action: set back as PostgreSQL makes them,
        // the next start refuses before it streams anything.
        green
            .execute(
                &db,
                &format!(
                    "DO $$ DECLARE t record; BEGIN FOR t IN SELECT tg.tgname FROM pg_trigger tg JOIN pg_constraint c ON c.oid = tg.tgconstraint \
                       WHERE c.conname = 'city_country' AND tg.tgenabled = 'A' LOOP \
                       EXECUTE format('ALTER TABLE \"{db}\".country ENABLE TRIGGER %I', t.tgname); END LOOP; END $$"
                ),
            )
            .await
            .expect("green's triggers set back");
        t.start();
        assert_ne!(common::wait_exit(&mut t).await, 0, "{}", t.log_text());
        let log = t.log_text();
        assert!(log.contains(&format!("foreign key city_country of {db}.city: green applies the rows blue logs")), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_mariadb_does_not_log_are_repeated_by_green_and_a_skipped_one_stops_the_stream() {
    actions_on(Flavor::MariaDb10_11, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_mysql_9_7_logs_are_applied_once_from_its_rows() {
    actions_on(Flavor::MySql9_7, true).await;
}
