// A sample schema shaped like MySQL's sakila — its tables, its 7 views, 3 stored procedures and 3
// functions, its film triggers, and an event — cut over through haproxy: green ends with every view,
// routine, trigger and event blue had, and the application's calls answer alike. Included by a test
// binary that defines `FLAVOR` and `mod common;`.

use common::{maria_pair_of, wait_streaming, Turnout, WAIT};
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use turnout_testbed::{HaProxy, MySqlServer};

/// sakila's shape (its names, keys and joins), written small.
const SAKILA: &str = r"
CREATE TABLE country (country_id SMALLINT UNSIGNED PRIMARY KEY, country VARCHAR(50) NOT NULL) ENGINE=InnoDB;
CREATE TABLE city (city_id SMALLINT UNSIGNED PRIMARY KEY, city VARCHAR(50) NOT NULL, country_id SMALLINT UNSIGNED NOT NULL,
  FOREIGN KEY (country_id) REFERENCES country (country_id)) ENGINE=InnoDB;
CREATE TABLE address (address_id SMALLINT UNSIGNED PRIMARY KEY, address VARCHAR(50) NOT NULL, city_id SMALLINT UNSIGNED NOT NULL,
  postal_code VARCHAR(10), phone VARCHAR(20) NOT NULL, FOREIGN KEY (city_id) REFERENCES city (city_id)) ENGINE=InnoDB;
CREATE TABLE language (language_id TINYINT UNSIGNED PRIMARY KEY, name CHAR(20) NOT NULL) ENGINE=InnoDB;
CREATE TABLE category (category_id TINYINT UNSIGNED PRIMARY KEY, name VARCHAR(25) NOT NULL) ENGINE=InnoDB;
CREATE TABLE actor (actor_id SMALLINT UNSIGNED PRIMARY KEY, first_name VARCHAR(45) NOT NULL, last_name VARCHAR(45) NOT NULL) ENGINE=InnoDB;
CREATE TABLE film (film_id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, title VARCHAR(128) NOT NULL, description TEXT,
  release_year YEAR, language_id TINYINT UNSIGNED NOT NULL, rental_duration TINYINT UNSIGNED NOT NULL DEFAULT 3,
  rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99, length SMALLINT UNSIGNED, replacement_cost DECIMAL(5,2) NOT NULL DEFAULT 19.99,
  rating ENUM('G','PG','PG-13','R','NC-17') DEFAULT 'G', special_features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes'),
  FOREIGN KEY (language_id) REFERENCES language (language_id)) ENGINE=InnoDB;
CREATE TABLE film_actor (actor_id SMALLINT UNSIGNED NOT NULL, film_id SMALLINT UNSIGNED NOT NULL, PRIMARY KEY (actor_id, film_id)) ENGINE=InnoDB;
CREATE TABLE film_category (film_id SMALLINT UNSIGNED NOT NULL, category_id TINYINT UNSIGNED NOT NULL, PRIMARY KEY (film_id, category_id)) ENGINE=InnoDB;
CREATE TABLE film_text (film_id SMALLINT PRIMARY KEY, title VARCHAR(255) NOT NULL, description TEXT, FULLTEXT KEY idx_title_description (title, description)) ENGINE=InnoDB;
CREATE TABLE store (store_id TINYINT UNSIGNED PRIMARY KEY, manager_staff_id TINYINT UNSIGNED NOT NULL, address_id SMALLINT UNSIGNED NOT NULL) ENGINE=InnoDB;
CREATE TABLE staff (staff_id TINYINT UNSIGNED PRIMARY KEY, first_name VARCHAR(45) NOT NULL, last_name VARCHAR(45) NOT NULL,
  address_id SMALLINT UNSIGNED NOT NULL, store_id TINYINT UNSIGNED NOT NULL, active BOOLEAN NOT NULL DEFAULT TRUE) ENGINE=InnoDB;
CREATE TABLE customer (customer_id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, store_id TINYINT UNSIGNED NOT NULL, first_name VARCHAR(45) NOT NULL,
  last_name VARCHAR(45) NOT NULL, address_id SMALLINT UNSIGNED NOT NULL, active BOOLEAN NOT NULL DEFAULT TRUE, create_date DATETIME NOT NULL) ENGINE=InnoDB;
CREATE TABLE inventory (inventory_id MEDIUMINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, film_id SMALLINT UNSIGNED NOT NULL, store_id TINYINT UNSIGNED NOT NULL) ENGINE=InnoDB;
CREATE TABLE rental (rental_id INT AUTO_INCREMENT PRIMARY KEY, rental_date DATETIME NOT NULL, inventory_id MEDIUMINT UNSIGNED NOT NULL,
  customer_id SMALLINT UNSIGNED NOT NULL, return_date DATETIME, staff_id TINYINT UNSIGNED NOT NULL) ENGINE=InnoDB;
CREATE TABLE payment (payment_id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, customer_id SMALLINT UNSIGNED NOT NULL, staff_id TINYINT UNSIGNED NOT NULL,
  rental_id INT, amount DECIMAL(5,2) NOT NULL, payment_date DATETIME NOT NULL) ENGINE=InnoDB;
CREATE TABLE rental_audit (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL, open_rentals INT NOT NULL) ENGINE=InnoDB;

INSERT INTO country VALUES (1, 'Canada'), (2, 'Australia');
INSERT INTO city VALUES (1, 'Lethbridge', 1), (2, 'Woodridge', 2);
INSERT INTO address VALUES (1, '47 MySakila Drive', 1, '', '555-0100'), (2, '28 MySQL Boulevard', 2, '', '555-0101'),
  (3, '1913 Hanoi Way', 1, '35200', '555-0102'), (4, '1121 Loja Avenue', 2, '17886', '555-0103');
INSERT INTO language VALUES (1, 'English'), (2, 'Italian');
INSERT INTO category VALUES (1, 'Action'), (2, 'Comedy'), (3, 'Documentary');
INSERT INTO actor VALUES (1, 'PENELOPE', 'GUINESS'), (2, 'NICK', 'WAHLBERG'), (3, 'ED', 'CHASE'), (4, 'JENNIFER', 'DAVIS');
INSERT INTO store VALUES (1, 1, 1), (2, 2, 2);
INSERT INTO staff VALUES (1, 'Mike', 'Hillyer', 3, 1, TRUE), (2, 'Jon', 'Stephens', 4, 2, TRUE);
INSERT INTO customer VALUES (1, 1, 'MARY', 'SMITH', 3, TRUE, '2006-02-14 22:04:36'), (2, 1, 'PATRICIA', 'JOHNSON', 4, TRUE, '2006-02-14 22:04:36'),
  (3, 2, 'LINDA', 'WILLIAMS', 3, FALSE, '2006-02-14 22:04:36');
";

/// The routines and views, and the triggers and event: `DELIMITER` lets their bodies hold `;`.
const PROGRAMS: &str = r"
CREATE VIEW customer_list AS
SELECT cu.customer_id AS ID, CONCAT(cu.first_name, ' ', cu.last_name) AS name, a.address AS address, a.postal_code AS `zip code`,
  a.phone AS phone, city.city AS city, country.country AS country, IF(cu.active, 'active', '') AS notes, cu.store_id AS SID
FROM customer AS cu JOIN address AS a ON cu.address_id = a.address_id JOIN city ON a.city_id = city.city_id
  JOIN country ON city.country_id = country.country_id;
CREATE VIEW film_list AS
SELECT film.film_id AS FID, film.title AS title, category.name AS category, film.rental_rate AS price, film.rating AS rating,
  GROUP_CONCAT(CONCAT(actor.first_name, ' ', actor.last_name) ORDER BY actor.actor_id SEPARATOR ', ') AS actors
FROM category LEFT JOIN film_category ON category.category_id = film_category.category_id LEFT JOIN film ON film_category.film_id = film.film_id
  JOIN film_actor ON film.film_id = film_actor.film_id JOIN actor ON film_actor.actor_id = actor.actor_id
GROUP BY film.film_id, category.name;
CREATE VIEW nicer_but_slower_film_list AS
SELECT FID, title, category, price, rating, CONCAT(UCASE(SUBSTR(actors, 1, 1)), LCASE(SUBSTR(actors, 2))) AS actors FROM film_list;
CREATE VIEW staff_list AS
SELECT s.staff_id AS ID, CONCAT(s.first_name, ' ', s.last_name) AS name, a.address AS address, city.city AS city, country.country AS country,
  s.store_id AS SID
FROM staff AS s JOIN address AS a ON s.address_id = a.address_id JOIN city ON a.city_id = city.city_id JOIN country ON city.country_id = country.country_id;
CREATE VIEW sales_by_store AS
SELECT CONCAT(c.city, ',', cy.country) AS store, CONCAT(m.first_name, ' ', m.last_name) AS manager, SUM(p.amount) AS total_sales
FROM payment AS p JOIN rental AS r ON p.rental_id = r.rental_id JOIN inventory AS i ON r.inventory_id = i.inventory_id
  JOIN store AS s ON i.store_id = s.store_id JOIN address AS a ON s.address_id = a.address_id JOIN city AS c ON a.city_id = c.city_id
  JOIN country AS cy ON c.country_id = cy.country_id JOIN staff AS m ON s.manager_staff_id = m.staff_id
GROUP BY s.store_id, c.city, cy.country, m.first_name, m.last_name;
CREATE VIEW sales_by_film_category AS
SELECT c.name AS category, SUM(p.amount) AS total_sales
FROM payment AS p JOIN rental AS r ON p.rental_id = r.rental_id JOIN inventory AS i ON r.inventory_id = i.inventory_id
  JOIN film AS f ON i.film_id = f.film_id JOIN film_category AS fc ON f.film_id = fc.film_id JOIN category AS c ON fc.category_id = c.category_id
GROUP BY c.name;
CREATE SQL SECURITY INVOKER VIEW actor_info AS
SELECT a.actor_id, a.first_name, a.last_name, GROUP_CONCAT(DISTINCT c.name ORDER BY c.name SEPARATOR '; ') AS film_info
FROM actor a LEFT JOIN film_actor fa ON a.actor_id = fa.actor_id LEFT JOIN film_category fc ON fa.film_id = fc.film_id
  LEFT JOIN category c ON fc.category_id = c.category_id
GROUP BY a.actor_id, a.first_name, a.last_name;
DELIMITER $$
CREATE FUNCTION inventory_held_by_customer(p_inventory_id INT) RETURNS INT READS SQL DATA
BEGIN
  DECLARE v_customer_id INT;
  DECLARE EXIT HANDLER FOR NOT FOUND RETURN NULL;
  SELECT customer_id INTO v_customer_id FROM rental WHERE return_date IS NULL AND inventory_id = p_inventory_id;
  RETURN v_customer_id;
END$$
CREATE FUNCTION inventory_in_stock(p_inventory_id INT) RETURNS BOOLEAN READS SQL DATA
BEGIN
  DECLARE v_out INT;
  SELECT COUNT(*) INTO v_out FROM rental WHERE inventory_id = p_inventory_id AND return_date IS NULL;
  RETURN v_out = 0;
END$$
CREATE FUNCTION get_customer_balance(p_customer_id INT, p_effective_date DATETIME) RETURNS DECIMAL(7,2) READS SQL DATA DETERMINISTIC
BEGIN
  DECLARE v_rentfees DECIMAL(7,2);
  DECLARE v_payments DECIMAL(7,2);
  SELECT IFNULL(SUM(film.rental_rate), 0) INTO v_rentfees FROM film JOIN inventory USING (film_id) JOIN rental USING (inventory_id)
    WHERE rental.rental_date <= p_effective_date AND rental.customer_id = p_customer_id;
  SELECT IFNULL(SUM(payment.amount), 0) INTO v_payments FROM payment WHERE payment.payment_date <= p_effective_date AND payment.customer_id = p_customer_id;
  RETURN v_rentfees - v_payments;
END$$
CREATE PROCEDURE film_in_stock(IN p_film_id INT, IN p_store_id INT, OUT p_film_count INT) READS SQL DATA
BEGIN
  SELECT COUNT(*) INTO p_film_count FROM inventory WHERE film_id = p_film_id AND store_id = p_store_id AND inventory_in_stock(inventory_id);
END$$
CREATE PROCEDURE film_not_in_stock(IN p_film_id INT, IN p_store_id INT, OUT p_film_count INT) READS SQL DATA
BEGIN
  SELECT COUNT(*) INTO p_film_count FROM inventory WHERE film_id = p_film_id AND store_id = p_store_id AND NOT inventory_in_stock(inventory_id);
END$$
CREATE PROCEDURE rewards_report(IN min_monthly_purchases TINYINT UNSIGNED, IN min_dollar_amount_purchased DECIMAL(10,2), OUT count_rewardees INT)
READS SQL DATA
BEGIN
  SELECT COUNT(*) INTO count_rewardees FROM (SELECT customer_id FROM payment GROUP BY customer_id
    HAVING SUM(amount) > min_dollar_amount_purchased AND COUNT(customer_id) > min_monthly_purchases) r;
END$$
CREATE TRIGGER ins_film AFTER INSERT ON film FOR EACH ROW BEGIN
  INSERT INTO film_text (film_id, title, description) VALUES (new.film_id, new.title, new.description);
END$$
CREATE TRIGGER upd_film AFTER UPDATE ON film FOR EACH ROW BEGIN
  IF (old.title != new.title) OR (old.description != new.description) OR (old.film_id != new.film_id) THEN
    UPDATE film_text SET title = new.title, description = new.description, film_id = new.film_id WHERE film_id = old.film_id;
  END IF;
END$$
CREATE TRIGGER del_film AFTER DELETE ON film FOR EACH ROW BEGIN
  DELETE FROM film_text WHERE film_id = old.film_id;
END$$
CREATE EVENT audit_open_rentals ON SCHEDULE EVERY 1 SECOND DO
  INSERT INTO rental_audit (at, open_rentals) SELECT NOW(6), COUNT(*) FROM rental WHERE return_date IS NULL$$
DELIMITER ;
";

/// The calls an application makes, each answered as text.
const CALLS: &[&str] = &[
    "SELECT * FROM customer_list ORDER BY ID",
    "SELECT * FROM film_list ORDER BY FID, category",
    "SELECT * FROM nicer_but_slower_film_list ORDER BY FID, category",
    "SELECT * FROM staff_list ORDER BY ID",
    "SELECT * FROM sales_by_store ORDER BY store",
    "SELECT * FROM sales_by_film_category ORDER BY category",
    "SELECT * FROM actor_info ORDER BY actor_id",
    "SELECT inventory_held_by_customer(1), inventory_in_stock(1), inventory_in_stock(2), get_customer_balance(1, '2030-01-01')",
    "CALL film_in_stock(1, 1, @n); SELECT @n",
    "CALL film_not_in_stock(1, 1, @n); SELECT @n",
    "CALL rewards_report(0, 1.00, @n); SELECT @n",
    "SELECT film_id, title FROM film_text ORDER BY film_id",
];

/// Rentals and payments the application makes (through the view's and functions' tables).
fn business(i: u32) -> String {
    format!(
        "INSERT INTO film (title, description, language_id, rating, special_features) VALUES ('FILM {i}', 'about {i}', 1, 'PG', 'Trailers');
         SET @f = LAST_INSERT_ID();
         INSERT INTO film_actor VALUES ({a}, @f); INSERT INTO film_category VALUES (@f, {c});
         INSERT INTO inventory (film_id, store_id) VALUES (@f, {s});
         INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id) VALUES ('2026-11-0{d} 10:00:00', LAST_INSERT_ID(), {cu}, {s});
         INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date) VALUES ({cu}, {s}, LAST_INSERT_ID(), 2.99, '2026-11-0{d} 10:00:00');
         UPDATE film SET description = 'revised {i}' WHERE film_id = @f;",
        a = i % 4 + 1,
        c = i % 3 + 1,
        s = i % 2 + 1,
        cu = i % 3 + 1,
        d = i % 9 + 1,
    )
}

/// The answers of every call in [`CALLS`] on `server` (as root, directly).
fn answers(server: &MySqlServer, db: &str) -> Vec<String> {
    CALLS.iter().map(|sql| server.execute(Some(db), sql).unwrap_or_else(|e| panic!("{sql}: {e}"))).collect()
}

fn names(server: &MySqlServer, db: &str, sql: &str) -> String {
    server.execute(Some(db), &sql.replace("{db}", db)).expect("names")
}

/// Every view, routine, trigger and event of `db`, by name.
fn programs(server: &MySqlServer, db: &str) -> Vec<String> {
    vec![
        names(server, db, "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}' ORDER BY 1"),
        names(server, db, "SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}' ORDER BY 1"),
        names(server, db, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' ORDER BY 1"),
        names(server, db, "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{db}' ORDER BY 1"),
    ]
}

fn event_status(server: &MySqlServer, db: &str) -> String {
    names(server, db, "SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{db}'").trim().to_owned()
}

fn audits(server: &MySqlServer, db: &str) -> u64 {
    server.execute(Some(db), "SELECT COUNT(*) FROM rental_audit").expect("audits").trim().parse().expect("a count")
}

#[tokio::test]
async fn a_sakila_shaped_blue_cuts_over_with_every_view_routine_trigger_and_event_answering_alike() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    let app = format!("CREATE USER app@'%' IDENTIFIED BY 'app-secret'; GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON `{db}`.* TO app@'%';");
    blue.execute(Some(&db), &format!("{SAKILA}\n{PROGRAMS}\n{app}\nSET GLOBAL event_scheduler = ON;")).expect("blue schema");
    green.execute(None, &format!("SET sql_log_bin = 0; {app} SET GLOBAL event_scheduler = ON;")).expect("green account");
    for i in 0..5 {
        blue.execute(Some(&db), &business(i)).expect("business before the copy");
    }
    let proxy = HaProxy::start("db", ("blue", blue.port()), ("green", green.port())).expect("haproxy");
    let toml = format!(
        "[cutover]\nfence = \"read-only\"\nswitch = \"haproxy\"\n[cutover.haproxy]\nadmin_socket = \"{}\"\nbackend = \"db\"\n",
        proxy.admin_socket().display()
    );
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &toml);
    t.start();
    wait_streaming(&mut t).await;
    // Green has every view, routine and event (disabled: blue's event writes the audit rows green
    // receives), and no trigger yet (they move inside the pause).
    let (on_blue, on_green) = (programs(&blue, &db), programs(&green, &db));
    assert_eq!(on_green[..2], on_blue[..2], "views and routines");
    assert_eq!(on_green[3], on_blue[3], "events");
    assert!(on_green[2].trim().is_empty(), "no trigger on green before the cutover: {}", on_green[2]);
    assert_eq!(event_status(&green, &db), "DISABLED");
    for i in 5..12 {
        blue.execute(Some(&db), &business(i)).expect("business while streaming");
    }
    // The event's rows reach green from blue; green's own event writes none.
    let deadline = Instant::now() + WAIT;
    while audits(&green, &db) < 3 {
        assert!(Instant::now() < deadline, "blue's event rows never reached green\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("triggers"), "{out}");
    let before = answers(&blue, &db);
    assert_eq!(answers(&green, &db), before, "green answers every call as blue did");
    assert_eq!(programs(&green, &db), on_blue, "every view, routine, trigger and event is on green");
    // Through haproxy the application now reaches green and its calls answer alike.
    let url = format!("mysql://app:app-secret@127.0.0.1:{}/{db}", proxy.port());
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).expect("url")).await.expect("through haproxy");
    let port: u16 = c.query_first("SELECT @@port").await.expect("port").expect("row");
    assert_eq!(port, green.port());
    let balance: Option<String> = c.query_first("SELECT CAST(get_customer_balance(1, '2030-01-01') AS CHAR)").await.expect("function");
    assert_eq!(balance.as_deref(), Some(before[7].split('\t').nth(3).unwrap_or_default().trim()));
    c.query_drop("CALL film_in_stock(1, 1, @n)").await.expect("procedure through haproxy");
    c.query_drop(business(20)).await.expect("the application writes on green: the triggers fire there");
    let title: Option<String> = c.query_first("SELECT title FROM film_text WHERE title = 'FILM 20'").await.expect("trigger");
    assert_eq!(title.as_deref(), Some("FILM 20"));
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn an_enabled_event_runs_on_the_side_that_takes_the_writes() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(Some(&db), &format!("{SAKILA}\n{PROGRAMS}\nSET GLOBAL event_scheduler = ON;")).expect("blue schema");
    // Green's scheduler stays off while the event is enabled there by hand below (Oracle MySQL starts
    // with it on): firing, it would write a row of its own on green before the cutover — a write that
    // is not turnout's, which no stream carries to blue.
    green.execute(None, "SET GLOBAL event_scheduler = OFF").expect("scheduler");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "[cutover]\nfence = \"read-only\"\nswitch = \"none\"\n");
    t.start();
    wait_streaming(&mut t).await;
    // Enabled on green by hand, the event would fire there while turnout applies blue's: refused.
    green.execute(Some(&db), "SET sql_log_bin = 0; ALTER EVENT audit_open_rentals ENABLE").expect("enable on green");
    let (code, out) = common::turnout_command(&t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("events enabled before the cutover (audit_open_rentals)"), "{out}");
    green.execute(Some(&db), "SET sql_log_bin = 0; ALTER EVENT audit_open_rentals DISABLE").expect("disable on green");
    if FLAVOR.is_mariadb() {
        // Its definer writes through read_only, and MariaDB has no seal: named, with the fix.
        let (_, out) = common::turnout_command(&t, "cutover", &["--dry-run", "--when-lag", "1s"]).await;
        assert!(out.contains("event audit_open_rentals runs as root@localhost") && out.contains("event_scheduler = OFF"), "{out}");
    }
    blue.execute(None, "SET GLOBAL event_scheduler = OFF").expect("blue's scheduler off, as the warning says");
    green.execute(None, "SET GLOBAL event_scheduler = ON").expect("green's scheduler on, for the events the cutover enables");
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "1s", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    assert!(out.contains("enabled 1 events on green"), "{out}");
    assert_eq!(event_status(&green, &db), "ENABLED");
    // Disabled where the writes left: in the pause on MariaDB, when the reverse stream first applies
    // to a sealed Oracle MySQL blue.
    let deadline = Instant::now() + WAIT;
    while event_status(&blue, &db) != "DISABLED" {
        assert!(Instant::now() < deadline, "blue's event stayed enabled\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    blue.execute(None, "SET GLOBAL event_scheduler = ON").expect("blue's scheduler on again");
    // Green's event now writes there, and the reverse stream carries its rows to blue.
    let green_then = audits(&green, &db);
    while audits(&green, &db) < green_then + 2 {
        assert!(Instant::now() < deadline, "green's event never fired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    common::maria_assert_same(&green, &blue, &db, &["rental_audit"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn check_lists_every_object_class_and_a_definer_green_lacks_is_refused_naming_the_account() {
    let (blue, green, db) = maria_pair_of(FLAVOR, FLAVOR);
    blue.execute(
        Some(&db),
        &format!("{SAKILA}\n{PROGRAMS}\nCREATE USER reporter@localhost; GRANT SELECT ON `{db}`.* TO reporter@localhost;\nCREATE DEFINER = reporter@localhost SQL SECURITY DEFINER VIEW report AS SELECT COUNT(*) AS films FROM film;"),
    )
    .expect("blue schema");
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), "");
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert_eq!(code, 1, "{out}");
    for needle in [
        "inventory (every object in blue's database",
        "17 × table [streamed]",
        "8 × view [copied]",
        "3 × stored procedure [copied]",
        "3 × stored function [copied]",
        "3 × trigger [at cutover]: film.del_film, film.ins_film, film.upd_film",
        "1 × event [at cutover]: audit_open_rentals",
        "fulltext index [copied]: film_text.idx_title_description",
        "definer green lacks [REFUSED]: reporter@localhost",
        "CREATE USER 'reporter'@'localhost' on green",
    ] {
        assert!(out.contains(needle), "`{needle}` missing:\n{out}");
    }
    t.start();
    assert_eq!(common::wait_exit(&mut t).await, 1);
    let log = t.log_text();
    assert!(log.contains("definer green lacks (reporter@localhost)") && log.contains("replication cannot start"), "{log}");
    green
        .execute(None, &format!("SET sql_log_bin = 0; CREATE USER reporter@localhost; GRANT SELECT ON `{db}`.* TO reporter@localhost"))
        .expect("the account on green, with its grants");
    t.start();
    wait_streaming(&mut t).await;
    assert_eq!(green.execute(Some(&db), "SELECT films FROM report").expect("the view on green").trim(), "0");
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}
