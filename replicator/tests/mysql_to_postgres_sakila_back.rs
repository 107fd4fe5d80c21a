//! sakila there and back: from MariaDB 10.11 and Oracle MySQL 9.7 to PostgreSQL 17 under an
//! application that rents, pays, returns, retitles and adds films (sakila's triggers keep `film_text`
//! on blue; the operator's PostgreSQL form of them on green), through a cutover, a kill -9 while the
//! stream back applies, a rollback (blue's triggers parked for the window and created again), and a
//! cutover again from the generation the rollback armed: every acknowledged turn exactly once on the
//! side that serves, `film_text` following `film` on both, every table equal.

use crate::common::{self, Turnout, Writer};
use crate::mysql_to_postgres::{blue_counts, green_column, green_counts, pair_of};
use crate::mysql_to_postgres_rollback::{cutover_toml, serving, On};
use crate::mysql_to_postgres_sakila::{SAKILA, TABLES};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use turnout_testbed::{Flavor, MySqlServer, PgServer};

/// The operator's PostgreSQL forms of what blue does that green is not made to do: `last_update`'s
/// default, the `film_text` triggers (one function for the three), the view.
fn green_forms(db: &str) -> String {
    let q = format!("\"{db}\"");
    let defaults: String =
        TABLES.iter().filter(|t| **t != "film_text").map(|t| format!("ALTER TABLE {q}.{t} ALTER COLUMN last_update SET DEFAULT CURRENT_TIMESTAMP;")).collect();
    format!(
        "{defaults}\
         CREATE FUNCTION {q}.film_text_sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF TG_OP = 'INSERT' THEN INSERT INTO {q}.film_text VALUES (NEW.film_id, NEW.title, NEW.description); \
           ELSIF TG_OP = 'UPDATE' THEN \
             IF OLD.title <> NEW.title OR OLD.description <> NEW.description OR OLD.film_id <> NEW.film_id THEN \
               UPDATE {q}.film_text SET title = NEW.title, description = NEW.description, film_id = NEW.film_id WHERE film_id = OLD.film_id; \
             END IF; \
           ELSE DELETE FROM {q}.film_text WHERE film_id = OLD.film_id; END IF; RETURN NULL; END $$; \
         CREATE TRIGGER film_text_sync AFTER INSERT OR UPDATE OR DELETE ON {q}.film FOR EACH ROW EXECUTE FUNCTION {q}.film_text_sync(); \
         CREATE VIEW {q}.customer_list AS SELECT cu.customer_id AS id, cu.first_name || ' ' || cu.last_name AS name, a.address, \
           a.postal_code AS \"zip code\", a.phone, city.city, country.country, CASE WHEN cu.active <> 0 THEN 'active' ELSE '' END AS notes, \
           cu.store_id AS sid FROM {q}.customer cu JOIN {q}.address a ON cu.address_id = a.address_id JOIN {q}.city ON a.city_id = city.city_id \
           JOIN {q}.country ON city.country_id = country.country_id;"
    )
}

/// One turn's SQL on `side`: a rental paid for (its date is the turn's own mark), every 5th a rental
/// returned, every 7th a film retitled, every 17th a film added.
fn turn(side: On, db: &str, n: i64) -> String {
    let (inventory, customer, staff) = (1 + n % 260, 1 + n % 100, 1 + n % 2);
    let mut sql = match side {
        On::Blue => format!(
            "START TRANSACTION; INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id) VALUES ('2026-01-01 00:00:00' + INTERVAL {n} SECOND, \
             {inventory}, {customer}, {staff}); INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date) \
             SELECT customer_id, staff_id, rental_id, 2.99, rental_date FROM rental WHERE rental_id = LAST_INSERT_ID();"
        ),
        On::Green => format!(
            "BEGIN; SET LOCAL search_path = \"{db}\"; WITH r AS (INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id) \
             VALUES (timestamp '2026-01-01 00:00:00' + interval '{n} seconds', {inventory}, {customer}, {staff}) \
             RETURNING rental_id, customer_id, staff_id, rental_date) \
             INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date) SELECT customer_id, staff_id, rental_id, 2.99, rental_date FROM r;"
        ),
    };
    if n % 5 == 0 {
        let at = match side {
            On::Blue => format!("'2026-02-01 00:00:00' + INTERVAL {n} SECOND"),
            On::Green => format!("timestamp '2026-02-01 00:00:00' + interval '{n} seconds'"),
        };
        sql.push_str(&format!("UPDATE rental SET return_date = {at} WHERE rental_id = {};", 1 + n % 600));
    }
    if n % 7 == 0 {
        sql.push_str(&format!("UPDATE film SET title = CONCAT('RETITLED ', {n}), rental_rate = 0.99 + {} WHERE film_id = {};", n % 50, 1 + n % 200));
    }
    if n % 17 == 0 {
        sql.push_str(&format!("INSERT INTO film (title, description, language_id) VALUES ('NEW {n}', 'A film added on {side:?}', 1);"));
    }
    sql.push_str("COMMIT;");
    sql
}

/// The application, speaking both engines, each turn on the side the switch commands name; a turn
/// refused (by a fence) is not acknowledged and the next is tried on a new session.
fn application(app_url: String, green_url: String, db: String, serving_file: PathBuf, from: i64) -> Writer<(i64, On)> {
    Writer::start(move |log| async move {
        use mysql_async::prelude::Queryable;
        let (mut blue, mut green): (Option<mysql_async::Conn>, Option<tokio_postgres::Client>) = (None, None);
        let mut n = from;
        while log.running() {
            n += 1;
            let side = serving(&serving_file);
            let done = match side {
                On::Blue => {
                    if blue.is_none() {
                        blue = mysql_async::Conn::new(mysql_async::Opts::from_url(&app_url).expect("url")).await.ok();
                    }
                    match blue.as_mut() {
                        Some(c) => c.query_drop(turn(side, &db, n)).await.map_err(|e| format!("blue: {e}")),
                        None => Err("blue: no session".to_owned()),
                    }
                }
                On::Green => {
                    if green.is_none() {
                        if let Ok((client, connection)) = tokio_postgres::connect(&green_url, tokio_postgres::NoTls).await {
                            tokio::spawn(connection);
                            green = Some(client);
                        }
                    }
                    match green.as_ref() {
                        Some(c) => c.batch_execute(&turn(side, &db, n)).await.map_err(|e| format!("green: {e}")),
                        None => Err("green: no session".to_owned()),
                    }
                }
            };
            match done {
                Ok(()) => log.acked((n, side)),
                Err(e) => {
                    (blue, green) = (None, None);
                    log.failed(e);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    })
}

/// The objects `turnout verify` names as not translated: what the operator keeps.
fn untranslated(out: &str) -> Vec<String> {
    out.lines().filter_map(|l| l.split_once(": on blue, not translated").map(|(o, _)| o.trim().to_owned())).collect()
}

/// Each acknowledged turn's rental on blue (`true`) or green, as `n:count`, for the turns that count.
async fn rentals(blue: &MySqlServer, green: &PgServer, db: &str, on_blue: bool) -> Vec<(i64, i64)> {
    let rows: Vec<String> = if on_blue {
        let out = blue
            .execute(Some(db), "SELECT CONCAT(TIMESTAMPDIFF(SECOND, '2026-01-01', rental_date), ':', COUNT(*)) FROM rental WHERE rental_date >= '2026-01-01' GROUP BY rental_date")
            .expect("blue's rentals");
        out.lines().map(str::to_owned).collect()
    } else {
        let sql = format!(
            "SELECT extract(epoch FROM rental_date - timestamp '2026-01-01')::bigint::text || ':' || count(*) FROM \"{db}\".rental \
             WHERE rental_date >= '2026-01-01' GROUP BY rental_date"
        );
        green_column(green, db, &sql).await.expect("green's rentals")
    };
    rows.iter().filter_map(|r| r.split_once(':')).filter_map(|(n, c)| Some((n.parse().ok()?, c.parse().ok()?))).collect()
}

/// Films whose `film_text` row does not follow them, on blue and on green (both 0 when the triggers —
/// blue's and green's form — kept it).
async fn strays(blue: &MySqlServer, green: &PgServer, db: &str) -> (String, String) {
    let on_blue = blue
        .execute(Some(db), "SELECT COUNT(*) FROM film f LEFT JOIN film_text t ON t.film_id = f.film_id WHERE t.title IS NULL OR t.title <> f.title")
        .expect("blue's films");
    let sql = format!(
        "SELECT count(*)::text FROM \"{db}\".film f LEFT JOIN \"{db}\".film_text t ON t.film_id = f.film_id WHERE t.title IS NULL OR t.title <> f.title"
    );
    let on_green = green_column(green, db, &sql).await.expect("green's films");
    (on_blue.trim().to_owned(), on_green.first().cloned().unwrap_or_default())
}

/// Waits until every table has as many rows on blue as on green.
async fn counts_meet(blue: &MySqlServer, green: &PgServer, db: &str, t: &mut Turnout) {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (b, g) = (blue_counts(blue, db, &TABLES), green_counts(green, db, &TABLES).await);
        if b == g {
            return;
        }
        assert!(t.exited().is_none(), "turnout exited\n{}", t.log_text());
        assert!(Instant::now() < deadline, "blue {b:?}\ngreen {g:?}\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn there_and_back(flavor: Flavor) {
    let (blue, green, db) = pair_of(flavor, SAKILA).await;
    blue.execute(None, &format!("CREATE USER app@'%' IDENTIFIED BY 'app-secret'; GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO app@'%'"))
        .expect("account");
    let dir = tempfile::tempdir().expect("tmp");
    // What the cutover would refuse until kept, as `verify` lists it once green holds the copy.
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    t.start();
    common::wait_streaming(&mut t).await;
    let (_, out) = common::turnout_command(&t, "verify", &[]).await;
    let keep = untranslated(&out);
    for object in ["TRIGGER", "VIEW", "ON UPDATE", "DEFAULT"] {
        assert!(keep.iter().any(|k| k.starts_with(object)), "verify names sakila's {object}s: {out}");
    }
    assert_eq!(t.sigterm(), Some(0));
    green.execute(&db, &green_forms(&db)).await.expect("the operator's forms on green");
    let keep_toml = keep.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
    let toml =
        cutover_toml(dir.path(), &db).replace(&format!("keep_definitions = [\"ON UPDATE {db}.orders.changed\"]"), &format!("keep_definitions = [{keep_toml}]"));
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &toml);
    t.start();
    common::wait_streaming(&mut t).await;
    let (app_url, serving_file) = (format!("mysql://app:app-secret@127.0.0.1:{}/{db}", blue.port()), dir.path().join("serving"));
    let app = application(app_url.clone(), green.url(&db), db.clone(), serving_file.clone(), 0);
    app.wait_for(60).await;

    // There: blue's triggers are parked for the window (the stream back would fire them again).
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("blue's triggers are parked on blue for the rollback window"), "{out}");
    assert_eq!(serving(&serving_file), On::Green);
    let at = app.count();
    app.wait_for(at + 60).await;
    t.kill9();
    let at = app.count();
    app.wait_for(at + 30).await;
    t.start();
    common::wait_for(&mut t, "the stream back streaming", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await;
    let parked = blue.execute(Some(&db), "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()").expect("triggers");
    assert_eq!(parked.trim(), "0", "blue's triggers parked while the stream back applies");

    // And back: the triggers created again inside the pause, before blue takes the writes.
    let (code, out) = common::turnout_command(&t, "rollback", &["--when-lag", "<1s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("created again the 3 triggers parked for the window"), "{out}");
    assert_eq!(serving(&serving_file), On::Blue);
    let at = app.count();
    app.wait_for(at + 60).await;

    // There again, from the generation the rollback armed, once a live verify ran after it began.
    common::wait_for(&mut t, "generation 2 streaming forward", |t| {
        t.status().filter(|v| v["direction"] == "forward" && v["phase"] == "streaming" && v["generation"] == 2)
    })
    .await;
    let (code, out) = common::turnout_command(&t, "verify", &["--live"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    let at = app.count();
    app.wait_for(at + 40).await;
    let (acked, errors) = app.finish().await;
    assert!(!errors.iter().any(|e| e.contains("duplicate") || e.contains("violates")), "{errors:?}");
    counts_meet(&blue, &green, &db, &mut t).await;
    assert_eq!(t.sigterm(), Some(0));

    // Every acknowledged turn exactly once on green, which serves, and on blue, which the second
    // stream back keeps; no turn twice on either.
    for on_blue in [false, true] {
        let found: std::collections::BTreeMap<i64, i64> = rentals(&blue, &green, &db, on_blue).await.into_iter().collect();
        let side_name = if on_blue { "blue" } else { "green" };
        for (n, side) in &acked {
            assert_eq!(found.get(n), Some(&1), "turn {n} (on {side:?}) is not once on {side_name}");
        }
        assert!(found.values().all(|c| *c == 1), "a turn twice on {side_name}: {found:?}");
    }
    assert!(acked.iter().any(|(_, s)| *s == On::Green) && acked.iter().any(|(_, s)| *s == On::Blue));
    assert_eq!(strays(&blue, &green, &db).await, ("0".to_owned(), "0".to_owned()), "film_text follows film on both sides");
    let triggers = blue.execute(Some(&db), "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()").expect("triggers");
    assert_eq!(triggers.trim(), "0", "parked again for the second window");
    // teardown gives blue its triggers back.
    let (code, out) = common::turnout_command(&t, "teardown", &["--yes"]).await;
    assert_eq!(code, 0, "{out}");
    let triggers = blue
        .execute(Some(&db), "SELECT GROUP_CONCAT(TRIGGER_NAME ORDER BY 1) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()")
        .expect("triggers");
    assert_eq!(triggers.trim(), "del_film,ins_film,upd_film", "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sakila_goes_from_mariadb_to_postgresql_back_and_there_again_with_its_triggers() {
    there_and_back(Flavor::MariaDb10_11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sakila_goes_from_oracle_mysql_to_postgresql_back_and_there_again_with_its_triggers() {
    there_and_back(Flavor::MySql9_7).await;
}
