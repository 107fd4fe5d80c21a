//! The binlog dump connection against real MariaDB 10.11 and MySQL 9.7 servers: every login path
//! (caching_sha2_password fast and full — over TLS and, without TLS, with the server's RSA key —
//! mysql_native_password, a refused password), every `ssl-mode` as the server itself reports the
//! session, events handed out with exactly the length their header gives — one larger than a protocol
//! packet included — and the non-blocking read.

use std::time::Duration;
use turnout_connect::mysql::conn::{options, own_sessions};
use turnout_connect::mysql::{BinlogDump, DumpFrom};
use turnout_testbed::{Flavor, MySqlServer};

const TIMEOUT: Duration = Duration::from_secs(20);

fn url(server: &MySqlServer, db: &str, query: &str) -> String {
    format!("mysql://{}:{}@127.0.0.1:{}/{db}?{query}", server.user(), server.password(), server.port())
}

/// How the server sees the session with `id`: `SSL/TLS` or `TCP/IP` (MySQL's performance schema).
fn connection_type(server: &MySqlServer, id: u32) -> String {
    server.execute(None, &format!("SELECT CONNECTION_TYPE FROM performance_schema.threads WHERE PROCESSLIST_ID = {id}")).expect("threads").trim().to_owned()
}

/// An event's length as its own header gives it (bytes 9..13).
fn header_length(event: &[u8]) -> usize {
    u32::from_le_bytes(event[9..13].try_into().expect("a header")) as usize
}

/// The MySQL dump from the GTID set the server has executed, so only what follows arrives.
fn from_now(server: &MySqlServer) -> DumpFrom {
    let text = server.execute(None, "SELECT @@GLOBAL.gtid_executed").expect("gtid_executed").trim().replace('\n', "");
    match turnout_decoders::GtidState::parse_mysql(&text).expect("a GTID set") {
        turnout_decoders::GtidState::MySql(sets) => DumpFrom::Gtids(sets),
        _ => DumpFrom::Gtids(Default::default()),
    }
}

/// Reads events until one of the types `type_codes` arrives; returns it.
async fn until(dump: &mut BinlogDump, type_codes: &[u8]) -> Vec<u8> {
    loop {
        let event = tokio::time::timeout(TIMEOUT, dump.next_event()).await.expect("an event in time").expect("an event").expect("the dump goes on");
        assert_eq!(header_length(&event), event.len(), "the event is handed out whole");
        if type_codes.contains(&event[4]) {
            return event.to_vec();
        }
    }
}

/// `WRITE_ROWS_EVENT` (MySQL) and `WRITE_ROWS_EVENT_V1` (what MariaDB writes).
const WRITE_ROWS: &[u8] = &[30, 23];
const XID: u8 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_logins_take_every_path_and_each_ssl_mode_is_what_the_server_sees() {
    let server = MySqlServer::start_flavor(Flavor::MySql9_7, 1).expect("MySQL 9.7");
    let db = server.create_database("dump").expect("db");
    for (query, flush, want) in [
        // The first login after FLUSH PRIVILEGES is a full caching_sha2_password exchange.
        ("ssl-mode=REQUIRED", true, "SSL/TLS"),
        ("ssl-mode=REQUIRED", false, "SSL/TLS"),
        ("", false, "SSL/TLS"),
        // Without TLS the password goes encrypted with the server's RSA key.
        ("ssl-mode=DISABLED", true, "TCP/IP"),
        ("ssl-mode=DISABLED", false, "TCP/IP"),
    ] {
        if flush {
            server.execute(None, "FLUSH PRIVILEGES").expect("flush the password cache");
        }
        let opts = options(&url(&server, &db, query)).expect("url");
        let dump = BinlogDump::connect(&opts, TIMEOUT).await.unwrap_or_else(|e| panic!("{query} (flushed {flush}): {e}"));
        assert_eq!(connection_type(&server, dump.connection_id()), want, "{query}");
        assert!(own_sessions(&opts).contains(&dump.connection_id()), "the dump session counts as turnout's own");
        dump.close().await;
    }
    let wrong = options(&format!("mysql://{}:wrong@127.0.0.1:{}/{db}", server.user(), server.port())).expect("url");
    match BinlogDump::connect(&wrong, TIMEOUT).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        other => panic!("a wrong password must be the server's refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_a_packet_arrives_whole_and_nothing_is_read_ahead() {
    let server = MySqlServer::start_flavor(Flavor::MySql9_7, 1).expect("MySQL 9.7");
    let db = server.create_database("dump").expect("db");
    server.execute(Some(&db), "CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB)").expect("table");
    let opts = options(&url(&server, &db, "ssl-mode=REQUIRED")).expect("url");
    let mut dump = BinlogDump::connect(&opts, TIMEOUT).await.expect("login");
    dump.execute("SET @source_heartbeat_period = 60000000000").await.expect("SET");
    dump.start(4242, &from_now(&server)).await.expect("dump");
    server.execute(Some(&db), "INSERT INTO big VALUES (1, REPEAT('x', 20000000))").expect("a 20 MB row");
    let event = until(&mut dump, WRITE_ROWS).await;
    assert!(event.len() > 0xFF_FFFF, "the row event ({} bytes) spans two protocol packets", event.len());
    until(&mut dump, &[XID]).await;
    assert!(matches!(dump.try_next_event(), Ok(None)), "after the commit nothing is pending, and the read does not wait");
    // A change that arrives is taken without waiting once its bytes are there.
    server.execute(Some(&db), "INSERT INTO big VALUES (2, 'y')").expect("a small row");
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    while !seen.contains(&XID) {
        assert!(std::time::Instant::now() < deadline, "the second transaction arrived through the non-blocking read: {seen:?}");
        match dump.try_next_event().expect("non-blocking read") {
            Some(Some(event)) => seen.push(event[4]),
            Some(None) => panic!("the dump ended"),
            None => tokio::task::yield_now().await,
        }
    }
    assert!(seen.iter().any(|t| WRITE_ROWS.contains(t)), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_dump_logs_in_with_the_native_password_and_streams_from_a_gtid_state() {
    let server = MySqlServer::start_tls(1).expect("MariaDB with TLS");
    let db = server.create_database("dump").expect("db");
    server.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").expect("table");
    for (id, query) in [(1, "ssl-mode=DISABLED"), (2, "ssl-mode=REQUIRED")] {
        let opts = options(&url(&server, &db, query)).expect("url");
        let mut dump = BinlogDump::connect(&opts, TIMEOUT).await.unwrap_or_else(|e| panic!("{query}: {e}"));
        let state = server.execute(None, "SELECT @@GLOBAL.gtid_binlog_pos").expect("gtid").trim().to_owned();
        dump.execute(&format!("SET @mariadb_slave_capability = 4, @slave_connect_state = '{state}', @master_heartbeat_period = 60000000000"))
            .await
            .expect("SET");
        dump.start(4243, &DumpFrom::FirstLog).await.expect("dump");
        let value = format!("row over {query}");
        server.execute(Some(&db), &format!("INSERT INTO t VALUES ({id}, '{value}')")).expect("insert");
        let event = until(&mut dump, WRITE_ROWS).await;
        assert!(event.windows(value.len()).any(|w| w == value.as_bytes()), "{query}: the row's bytes are in its event");
        dump.close().await;
    }
    // A statement the server refuses is its error, with its code.
    let opts = options(&url(&server, &db, "")).expect("url");
    let mut dump = BinlogDump::connect(&opts, TIMEOUT).await.expect("login");
    match dump.execute("SET @@no_such_variable = 1").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1193, "{e}"),
        other => panic!("expected the server's error, got {other:?}"),
    }
}
