//! The testbed's launchers against the real servers.

use anyhow::{ensure, Context};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tokio_postgres::SimpleQueryMessage;
use turnout_testbed::{Flavor, MySqlServer, PgBouncer, PgServer};

/// Logs in to `server` over TCP as its user with `password` and runs `select 1`.
fn mariadb_tcp_login(server: &MySqlServer, password: &str) -> anyhow::Result<Output> {
    Command::new("mariadb")
        .arg("--no-defaults")
        .args(["-h", "127.0.0.1", "-P", &server.port().to_string(), "-u", server.user()])
        .arg(format!("-p{password}"))
        .args(["-N", "-B", "-e", "select 1"])
        .output()
        .context("running the mariadb client")
}

/// The values of the first column of the rows of a simple query.
async fn first_column(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<Vec<String>> {
    let messages = client.simple_query(sql).await?;
    Ok(rows_first_column(&messages))
}

fn rows_first_column(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn mariadb_starts_with_row_binlog_and_requires_a_password() -> anyhow::Result<()> {
    let server = MySqlServer::start()?;
    let settings = server.execute(None, "SELECT @@binlog_format, @@binlog_row_image, @@log_bin")?;
    assert_eq!(settings.trim(), "ROW\tFULL\t1");

    let wrong = mariadb_tcp_login(&server, "not-the-password")?;
    assert!(!wrong.status.success(), "a wrong password was accepted");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("Access denied"), "{wrong:?}");

    let right = mariadb_tcp_login(&server, server.password())?;
    assert!(right.status.success(), "the right password was refused: {right:?}");
    assert_eq!(String::from_utf8_lossy(&right.stdout).trim(), "1");

    // root has no password, so it must not be able to log in over TCP at all.
    let root =
        Command::new("mariadb").arg("--no-defaults").args(["-h", "127.0.0.1", "-P", &server.port().to_string(), "-u", "root", "-e", "select 1"]).output()?;
    assert!(!root.status.success(), "root logged in over TCP without a password");
    Ok(())
}

#[test]
fn mariadb_restart_keeps_data() -> anyhow::Result<()> {
    let mut server = MySqlServer::start()?;
    let database = server.create_database("restart")?;
    server.execute(Some(&database), "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'kept')")?;
    let (port, pid) = (server.port(), server.pid());

    server.restart()?;

    assert_eq!(server.port(), port, "restarted on another port");
    assert_ne!(server.pid(), pid, "the server process was not replaced");
    assert_eq!(server.execute(Some(&database), "SELECT v FROM t WHERE id = 1")?.trim(), "kept");
    Ok(())
}

/// Each chroot flavor starts from its built root file system with the settings turnout needs,
/// takes a password over TCP (with turnout's own client library), keeps data over a restart, and
/// is gone, files and all, once dropped.
#[tokio::test]
async fn mariadb_11_8_and_mysql_9_7_start_from_their_root_file_systems() -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    for flavor in [Flavor::MariaDb11_8, Flavor::MySql9_7] {
        let mut server = MySqlServer::start_flavor(flavor, 7)?;
        let expected_version = if flavor.is_mariadb() { "11.8." } else { "9.7." };
        let version = server.execute(None, "SELECT VERSION()")?;
        assert!(version.starts_with(expected_version), "{flavor}: version {version}");
        let settings = server.execute(None, "SELECT @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@log_bin, @@server_id")?;
        assert_eq!(settings.trim(), "ROW\tFULL\tFULL\t1\t7", "{flavor}");
        let gtid = if flavor.is_mariadb() { "SELECT @@gtid_strict_mode" } else { "SELECT @@gtid_mode" };
        assert!(matches!(server.execute(None, gtid)?.trim(), "1" | "ON"), "{flavor}: GTIDs off");

        let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&server.url(""))?).await?;
        let one: Option<u8> = conn.query_first("SELECT 1").await?;
        assert_eq!(one, Some(1), "{flavor}");
        conn.disconnect().await?;
        let wrong = server.url("").replace(server.password(), "not-the-password");
        assert!(mysql_async::Conn::new(mysql_async::Opts::from_url(&wrong)?).await.is_err(), "{flavor}: a wrong password was accepted");

        let database = server.create_database("restart")?;
        server.execute(Some(&database), "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'kept')")?;
        server.restart()?;
        assert_eq!(server.execute(Some(&database), "SELECT v FROM t WHERE id = 1")?.trim(), "kept", "{flavor}");
        let dir = server.dir().to_path_buf();
        drop(server);
        assert!(!dir.exists(), "{flavor}: {} left behind", dir.display());
    }
    Ok(())
}

#[tokio::test]
async fn pgbouncer_routes_queries_and_pause_resume_work() -> anyhow::Result<()> {
    let pg = PgServer::start(15)?;
    let database = pg.create_database("bounced").await?;
    pg.execute(&database, "CREATE TABLE t (v text); INSERT INTO t VALUES ('through the pool')").await?;
    let bouncer = PgBouncer::start(&pg, &database)?;
    assert_ne!(bouncer.port(), pg.port());

    let (client, connection) = tokio_postgres::connect(&bouncer.url(&database), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    assert_eq!(first_column(&client, "SELECT v FROM t").await?, ["through the pool"]);

    bouncer.admin(&format!("PAUSE {database}")).await?;
    // While paused, pgbouncer holds queries back instead of running them.
    let held = client.simple_query("SELECT v FROM t");
    tokio::pin!(held);
    ensure!(tokio::time::timeout(Duration::from_millis(500), &mut held).await.is_err(), "a query ran while the database was paused");
    bouncer.admin(&format!("RESUME {database}")).await?;
    let messages = tokio::time::timeout(Duration::from_secs(10), held).await.context("the held query never ran after RESUME")??;
    assert_eq!(rows_first_column(&messages), ["through the pool"]);

    assert_eq!(first_column(&client, "SELECT v FROM t").await?, ["through the pool"]);
    Ok(())
}

#[test]
fn dropping_a_server_stops_its_process() -> anyhow::Result<()> {
    let server = MySqlServer::start()?;
    let pid = server.pid().context("a running server has a pid")?;
    let port = server.port();
    let dir = server.dir().to_path_buf();
    let proc_dir = format!("/proc/{pid}");
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(Path::new(&proc_dir).exists(), "no process {pid}");
    assert!(TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok(), "nothing listens on {port}");

    drop(server);

    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&proc_dir).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!Path::new(&proc_dir).exists(), "process {pid} still runs after the drop");
    assert!(TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err(), "port {port} still accepts connections");
    assert!(!dir.exists(), "{} was not removed", dir.display());
    Ok(())
}
