//! The MariaDB read-only fence on a real server: writes refused while fenced (also the COMMIT of a
//! transaction opened before), other accounts' sessions ended, accounts that could still write
//! listed with the REVOKE, undo makes blue writable again, a missing privilege named with the GRANT.

use mysql_async::prelude::Queryable;
use std::time::Duration;
use turnout_cutover::{CutoverError, ReadOnlyFence};
use turnout_testbed::MySqlServer;

async fn conn(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(url).expect("url")).await.expect("connect")
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

#[tokio::test]
async fn read_only_fence_stops_every_ordinary_write_and_undo_lifts_it() {
    let blue = MySqlServer::start().expect("blue");
    let db = blue.create_database("app").expect("db");
    blue.execute(
        Some(&db),
        &format!(
            "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB;
             CREATE USER app@'%' IDENTIFIED BY 'app-pw'; GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO app@'%';
             CREATE USER ops@'%' IDENTIFIED BY 'ops-pw'; GRANT READ ONLY ADMIN ON *.* TO ops@'%';"
        ),
    )
    .expect("schema and accounts");
    let app_url = format!("mysql://app:app-pw@127.0.0.1:{}/{db}", blue.port());
    let fence = ReadOnlyFence { own_user: blue.user().to_owned(), oracle: false, end_first: false };

    // An ordinary account may not set the fence: the error names the GRANT.
    let mut app_admin = conn(&app_url).await;
    let err = fence.apply(&mut app_admin, Duration::from_secs(2), &[]).await.expect_err("no privilege");
    assert!(matches!(err, CutoverError::Privilege { .. }) && err.to_string().contains("GRANT READ ONLY ADMIN"), "{err}");

    let mut own = conn(&blue.url(&db)).await;
    let mut writer = conn(&app_url).await;
    writer.query_drop("INSERT INTO t VALUES (1)").await.expect("write before the fence");
    let mut open = conn(&app_url).await;
    open.query_drop("BEGIN; INSERT INTO t VALUES (2)").await.expect("open transaction");

    // An application logged in with turnout's own account: named, and ended by the fence.
    let stray = conn(&blue.url(&db)).await;
    // The harness's client sessions (its `execute` above) may still be closing on the server: wait
    // until none but the stray is left.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let others = fence.foreign_sessions(&mut own, &[stray.id()]).await.expect("sessions");
        if others.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sessions that never closed: {others:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let foreign = fence.foreign_sessions(&mut own, &[]).await.expect("sessions");
    assert_eq!(foreign.len(), 1, "{foreign:?}");
    assert!(foreign[0].starts_with(&format!("{}@", blue.user())) && foreign[0].ends_with(&format!("(id {})", stray.id())), "{foreign:?}");
    assert!(fence.foreign_sessions(&mut own, &[stray.id()]).await.expect("sessions").is_empty(), "turnout's own sessions are not foreign");

    let unfenced = fence.unfenced_accounts(&mut own).await.expect("accounts");
    // Every account but turnout's own, root included: read_only does not stop it either.
    let revoke = |account: &str, privilege: &str| (account.to_owned(), format!("REVOKE {privilege} ON *.* FROM {account};"));
    assert_eq!(unfenced, vec![revoke("'ops'@'%'", "READ ONLY ADMIN"), revoke("'root'@'localhost'", "READ ONLY ADMIN"), revoke("'root'@'localhost'", "SUPER")]);

    let report = fence.apply(&mut own, Duration::from_secs(5), &[]).await.expect("fence");
    assert!(fence.is_fenced(&mut own).await.expect("state"));
    assert_eq!(report.ended_sessions.len(), 4, "the writer, the open transaction, the refused admin session and the stray one: {report:?}");
    assert_eq!(report.ended_sessions.iter().filter(|s| s.starts_with("app@")).count(), 3, "{report:?}");
    assert!(report.ended_sessions.iter().any(|s| s.ends_with(&format!("(id {})", stray.id()))), "{report:?}");
    // The transaction opened before the fence never commits.
    assert!(open.query_drop("COMMIT").await.is_err());
    let mut late = conn(&app_url).await;
    let refused = late.query_drop("INSERT INTO t VALUES (3)").await.expect_err("fenced");
    assert_eq!(server_code(&refused), Some(1290), "{refused}");
    // Applying again changes nothing and still holds.
    fence.apply(&mut own, Duration::from_secs(5), &[]).await.expect("again");

    fence.undo(&mut own).await.expect("undo");
    assert!(!fence.is_fenced(&mut own).await.expect("state"));
    let mut after = conn(&app_url).await;
    after.query_drop("INSERT INTO t VALUES (4)").await.expect("writable again");
    let rows: Vec<i32> = own.query("SELECT id FROM t ORDER BY id").await.expect("rows");
    assert_eq!(rows, vec![1, 4]);
}
