//! AUTO_INCREMENT counters and MariaDB sequences carried from blue to green, on real MariaDB servers.

use mysql_async::prelude::Queryable;
use turnout_cutover::{sync_counters, CounterKind};
use turnout_testbed::MySqlServer;

async fn conn(server: &MySqlServer, db: &str) -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(&server.url(db)).expect("url")).await.expect("connect")
}

/// Blue and green MariaDB servers, each with the same new database.
fn pair() -> (MySqlServer, MySqlServer, String) {
    let (blue, green) = std::thread::scope(|s| {
        let b = s.spawn(|| MySqlServer::start_with(1).expect("blue"));
        let g = s.spawn(|| MySqlServer::start_with(2).expect("green"));
        (b.join().expect("blue thread"), g.join().expect("green thread"))
    });
    let db = blue.create_database("app").expect("db");
    green.execute(None, &format!("CREATE DATABASE `{db}`")).expect("green db");
    (blue, green, db)
}

#[tokio::test]
async fn green_counters_move_beyond_blue_never_back_and_a_second_sync_changes_nothing() {
    let (blue, green, db) = pair();
    let schema = "CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB;
                  CREATE TABLE b (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB;
                  CREATE TABLE plain (id INT PRIMARY KEY) ENGINE=InnoDB;
                  CREATE SEQUENCE s START WITH 1 INCREMENT BY 1;
                  CREATE SEQUENCE d START WITH -1 INCREMENT BY -1 MINVALUE -1000000 MAXVALUE -1;
                  INSERT INTO a (v) VALUES (1), (2), (3);";
    blue.execute(Some(&db), schema).expect("blue schema");
    green.execute(Some(&db), schema).expect("green schema");
    // Blue's counters move without rows to show for it; green's b is already far ahead.
    blue.execute(
        Some(&db),
        "BEGIN; INSERT INTO a (v) SELECT seq FROM seq_1_to_96; ROLLBACK; INSERT INTO b VALUES (); DELETE FROM b;
         SELECT NEXTVAL(s) FROM seq_1_to_2000; SELECT NEXTVAL(d) FROM seq_1_to_30;",
    )
    .expect("blue moves its counters");
    green.execute(Some(&db), "ALTER TABLE b AUTO_INCREMENT = 50000").expect("green ahead");

    let (mut b, mut g) = (conn(&blue, &db).await, conn(&green, &db).await);
    let synced = sync_counters(&mut b, &mut g, &db, &db, 1000).await.expect("sync");
    let find = |name: &str| synced.iter().find(|c| c.name.ends_with(&format!(".`{name}`"))).unwrap_or_else(|| panic!("{name} in {synced:?}"));
    assert_eq!(synced.len(), 4, "{synced:?}");
    // 3 rows and 96 rolled back: at least 100 (InnoDB reserves ranges for INSERT … SELECT).
    let a = find("a");
    assert!(a.changed && a.blue_next >= 100 && a.set_to == a.blue_next + 1000, "{synced:?}");
    let a_next = i64::try_from(a.set_to).expect("fits");
    assert!(!find("b").changed && find("b").set_to == 50000, "a counter is never moved back: {synced:?}");
    assert_eq!(find("s").kind, CounterKind::Sequence);
    assert!(find("s").changed && find("d").changed, "{synced:?}");

    // What green hands out next is beyond anything blue handed out.
    let next_a: i64 = {
        g.query_drop("INSERT INTO a (v) VALUES (0)").await.expect("insert");
        i64::try_from(g.last_insert_id().expect("id")).expect("fits")
    };
    assert_eq!(next_a, a_next);
    let s: i64 = g.query_first("SELECT NEXTVAL(s)").await.expect("nextval").expect("row");
    let blue_s: i64 = b.query_first("SELECT NEXTVAL(s)").await.expect("nextval").expect("row");
    assert!(s >= blue_s + 999, "green s {s}, blue s {blue_s}");
    let d: i64 = g.query_first("SELECT NEXTVAL(d)").await.expect("nextval").expect("row");
    let blue_d: i64 = b.query_first("SELECT NEXTVAL(d)").await.expect("nextval").expect("row");
    assert!(d <= blue_d - 999, "descending: green d {d}, blue d {blue_d}");

    let again = sync_counters(&mut b, &mut g, &db, &db, 0).await.expect("second sync");
    assert!(again.iter().all(|c| !c.changed), "{again:?}");
}

#[tokio::test]
async fn a_counter_green_lacks_is_an_error_naming_it() {
    let (blue, green, db) = pair();
    blue.execute(Some(&db), "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB").expect("blue schema");
    let (mut b, mut g) = (conn(&blue, &db).await, conn(&green, &db).await);
    let err = sync_counters(&mut b, &mut g, &db, &db, 1000).await.expect_err("green lacks orders").to_string();
    assert!(err.contains("`orders`") && err.contains("create it on green"), "{err}");
}
