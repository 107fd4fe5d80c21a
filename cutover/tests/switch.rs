//! Traffic switches against real servers: pgbouncer sends the held transaction and the next ones to
//! green; haproxy moves connections from blue to green; the command switch gets the URLs and reports
//! a failure with its stderr.

use crate::common;

use common::{connect, eventually, scalar, server_port, WAIT};
use std::time::{Duration, Instant};
use turnout_cutover::{point_database, BlueGreen, ClientsMoved, CutoverError, Endpoint, PgBouncerAdmin, TrafficSwitch, WriteFence};
use turnout_testbed::{HaProxy, PgBouncer, PgServer};

/// Gives green's superuser blue's password, so that one set of credentials (pgbouncer's auth file,
/// a client behind haproxy) works on both. Returns green's URL for `database` with that password.
async fn same_password(blue: &PgServer, green: &PgServer, database: &str) -> anyhow::Result<String> {
    green.execute("postgres", &format!("ALTER USER postgres PASSWORD '{}'", blue.password())).await?;
    Ok(format!("{}?sslmode=disable", green.url_for("postgres", blue.password(), database)))
}

#[tokio::test]
async fn pgbouncer_switch_sends_the_held_transaction_and_the_next_ones_to_green() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let green = PgServer::start(17)?;
    let db = blue.create_database("switch").await?;
    green.execute("postgres", &format!("CREATE DATABASE \"{db}\"")).await?;
    let green_url = same_password(&blue, &green, &db).await?;
    for server_sql in ["CREATE TABLE t (id int PRIMARY KEY)"] {
        blue.execute(&db, server_sql).await?;
        connect(&green_url).await.batch_execute(server_sql).await?;
    }
    let bouncer = PgBouncer::start(&blue, &db)?;
    let admin = PgBouncerAdmin::from_url(&bouncer.admin_url())?;
    let fence = WriteFence::PgBouncer { admin: admin.clone(), database: db.clone() };
    let switch = TrafficSwitch::PgBouncer { admin: admin.clone(), database: db.clone(), config_file: bouncer.config_path() };
    let blue_url = blue.url(&db);
    let urls = BlueGreen { blue_url: &blue_url, green_url: &green_url };
    switch.check(WAIT).await?;
    let control = blue.connect(&db).await?;
    let client = connect(&bouncer.url(&db)).await;
    assert_eq!(server_port(&client).await?, blue.port());

    fence.apply(&control, WAIT).await?;
    let held = tokio::spawn(async move {
        let port = scalar(&client, "INSERT INTO t VALUES (1); SELECT current_setting('port')").await;
        (client, port)
    });
    eventually("pgbouncer holds the transaction", || async { (admin.waiting_clients(&db).await.ok()? >= 1).then_some(()) }).await;

    let report = switch.to_green(urls, WAIT).await?;
    assert!(report.summary.contains(&format!("port={}", blue.port())), "{}", report.summary);
    let (client, port) = tokio::time::timeout(WAIT, held).await??;
    assert_eq!(port?.parse::<u16>()?, green.port(), "the held transaction ran on blue");
    assert_eq!(scalar(&connect(&green_url).await, "SELECT count(*) FROM t").await?, "1");
    assert_eq!(scalar(&control, "SELECT count(*) FROM t").await?, "0");
    assert_eq!(server_port(&client).await?, green.port(), "the next transaction ran on blue");
    let ini = std::fs::read_to_string(bouncer.config_path())?;
    assert!(ini.contains(&format!("{db} = host=127.0.0.1 port={} dbname={db}", green.port())), "{ini}");
    assert!(!fence.is_fenced(&control).await?, "the switch did not resume the entry");

    let again = switch.to_green(urls, WAIT).await?;
    assert!(again.summary.contains("already"), "{}", again.summary);

    switch.to_blue(urls, WAIT).await?;
    assert_eq!(server_port(&client).await?, blue.port(), "the switch back did not reach blue");
    Ok(())
}

#[tokio::test]
async fn haproxy_switch_moves_connections_from_blue_to_green() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let green = PgServer::start(15)?;
    let green_url = same_password(&blue, &green, "postgres").await?;
    let proxy = HaProxy::start("db", ("blue", blue.port()), ("green", green.port()))?;
    let through_proxy = format!("postgres://postgres:{}@127.0.0.1:{}/postgres?sslmode=disable", blue.password(), proxy.port());
    let blue_url = blue.url("postgres");
    let urls = BlueGreen { blue_url: &blue_url, green_url: &green_url };
    let switch = TrafficSwitch::HaProxy { admin_socket: proxy.admin_socket(), backend: "db".into() };
    switch.check(WAIT).await?;
    let before = connect(&through_proxy).await;
    assert_eq!(server_port(&before).await?, blue.port());

    switch.to_green(urls, WAIT).await?;

    eventually("the session to blue is shut down", || async { scalar(&before, "SELECT 1").await.is_err().then_some(()) }).await;
    assert_eq!(server_port(&connect(&through_proxy).await).await?, green.port(), "a new connection went to blue");
    switch.to_green(urls, WAIT).await?; // idempotent
    assert_eq!(server_port(&connect(&through_proxy).await).await?, green.port());

    switch.to_blue(urls, WAIT).await?;
    assert_eq!(server_port(&connect(&through_proxy).await).await?, blue.port(), "the switch back did not reach blue");

    let wrong = TrafficSwitch::HaProxy { admin_socket: proxy.admin_socket(), backend: "nope".into() };
    let err = wrong.to_green(urls, WAIT).await.expect_err("no such backend");
    let text = err.to_string();
    assert!(matches!(err, CutoverError::HaProxy { .. }) && text.contains("set server nope/green state ready"), "{text}");
    assert!(wrong.check(WAIT).await.is_err(), "check accepted a missing backend");
    let no_socket = TrafficSwitch::HaProxy { admin_socket: proxy.admin_socket().with_extension("missing"), backend: "db".into() };
    let err = no_socket.to_green(urls, WAIT).await.expect_err("no socket");
    assert!(err.to_string().contains("cutover.haproxy.admin_socket"), "{err}");
    Ok(())
}

const BLUE_URL: &str = "postgres://app:blue-secret@blue.internal:5432/app";
const GREEN_URL: &str = "postgres://app:green-secret@green.internal:5432/app";

fn sh(script: &str, args: &[&str]) -> TrafficSwitch {
    let mut argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    TrafficSwitch::Command { argv, back: None }
}

#[tokio::test]
async fn command_switch_gets_the_urls_in_its_environment() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("env");
    let out_arg = out.to_string_lossy().into_owned();
    let switch = sh("printf '%s\\n%s\\n' \"$TURNOUT_GREEN_URL\" \"$TURNOUT_BLUE_URL\" > \"$0\"; echo pointed at green", &[&out_arg]);
    let urls = BlueGreen { blue_url: BLUE_URL, green_url: GREEN_URL };
    switch.check(WAIT).await?;

    let report = switch.to_green(urls, Duration::from_secs(10)).await?;

    assert_eq!(std::fs::read_to_string(&out)?, format!("{GREEN_URL}\n{BLUE_URL}\n"));
    assert!(report.summary.ends_with("pointed at green"), "{}", report.summary);
    assert!(matches!(switch.to_blue(urls, WAIT).await, Err(CutoverError::NoInverse { .. })));
    let missing = TrafficSwitch::Command { argv: vec!["/nonexistent/point-app".into()], back: None };
    assert!(missing.check(WAIT).await.is_err());
    let err = missing.to_green(urls, WAIT).await.expect_err("no such program");
    assert!(err.to_string().contains("/nonexistent/point-app") && err.to_string().contains("cutover.command.argv"), "{err}");
    Ok(())
}

#[tokio::test]
async fn failing_command_switch_reports_its_stderr_without_passwords() -> anyhow::Result<()> {
    let switch = sh("echo \"cannot reach $TURNOUT_GREEN_URL\" >&2; echo 'load balancer said no' >&2; exit 3", &[]);
    let err = switch.to_green(BlueGreen { blue_url: BLUE_URL, green_url: GREEN_URL }, WAIT).await.expect_err("exit 3");
    let text = err.to_string();
    assert!(matches!(err, CutoverError::CommandFailed { .. }), "{text}");
    assert!(text.contains("load balancer said no") && text.contains("exit status: 3"), "{text}");
    assert!(text.contains("cannot reach <redacted>") && !text.contains("green-secret"), "{text}");
    Ok(())
}

#[tokio::test]
async fn command_switch_past_its_time_limit_is_killed_with_what_it_started() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pid_file = dir.path().join("pid");
    let pid_arg = pid_file.to_string_lossy().into_owned();
    let switch = sh("echo starting >&2; sleep 300 & echo $! > \"$0\"; wait", &[&pid_arg]);
    let started = Instant::now();

    let err = switch.to_green(BlueGreen { blue_url: BLUE_URL, green_url: GREEN_URL }, Duration::from_millis(500)).await.expect_err("too slow");

    assert!(matches!(err, CutoverError::CommandTimeout { .. }) && err.to_string().contains("starting"), "{err}");
    assert!(started.elapsed() < WAIT, "the timed-out command was waited for");
    let pid = std::fs::read_to_string(&pid_file)?.trim().to_string();
    // The background `sleep` belongs to the command's process group and is killed with it.
    eventually("the command's background process is gone", || async {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => Some(()),
            Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')).then_some(()),
        }
    })
    .await;
    Ok(())
}

/// A login pgbouncer has in progress when the switch reloads the entry is cut ("connect string
/// changed"), and pgbouncer then waits `server_login_retry` (15 s by default) before it logs in to
/// the entry's server again — to green too — while the clients that wait for a connection wait with
/// it. The same happens when a read-only fence ends a session that pgbouncer is still logging in.
/// The switch's follow-up lets them through at once, and leaves `server_login_retry` as it was.
#[tokio::test]
async fn a_login_cut_by_the_switch_does_not_hold_clients_for_server_login_retry() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let green = PgServer::start(17)?;
    let db = blue.create_database("switch").await?;
    green.execute("postgres", &format!("CREATE DATABASE \"{db}\"")).await?;
    let green_url = same_password(&blue, &green, &db).await?;
    let bouncer = PgBouncer::start(&blue, &db)?;
    let admin = PgBouncerAdmin::from_url(&bouncer.admin_url())?;
    let switch = TrafficSwitch::PgBouncer { admin: admin.clone(), database: db.clone(), config_file: bouncer.config_path() };
    let blue_url = blue.url(&db);
    let urls = BlueGreen { blue_url: &blue_url, green_url: &green_url };

    // A server that accepts connections and never answers: pgbouncer's login to it stays in progress.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hole_port = hole.local_addr()?.port();
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            kept.push(socket);
        }
    });
    let silent = Endpoint { host: "127.0.0.1".into(), port: hole_port, dbname: db.clone() };
    point_database(&bouncer.config_path(), &db, &silent)?;
    admin.reload().await?;
    let client_url = bouncer.url(&db);
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let client = connect(&client_url).await;
        let port = scalar(&client, "SELECT current_setting('port')").await;
        (port, started.elapsed())
    });
    eventually("pgbouncer logs in to the silent server", || async { (admin.pool(&db).await.ok()?.logging_in >= 1).then_some(()) }).await;

    let before = admin.config_value("server_login_retry").await?;
    switch.to_green(urls, WAIT).await?;
    let moved = switch.clients_moved(Duration::from_secs(10)).await;
    let (port, waited) = tokio::time::timeout(WAIT, waiting).await??;
    assert_eq!(port?.parse::<u16>()?, green.port());
    assert!(waited < Duration::from_secs(5), "the client waited {waited:?} for green ({moved:?})\n{}", bouncer.log());
    assert!(matches!(moved, ClientsMoved::Unstuck { restored: true, .. }), "{moved:?}");
    assert_eq!(admin.config_value("server_login_retry").await?, before, "server_login_retry is as it was");
    held.abort();
    Ok(())
}
