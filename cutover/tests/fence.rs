//! Write fences against real servers: pgbouncer's PAUSE holds a client's write (no error) until
//! RESUME; the read-only fence ends other sessions, makes new writes fail, and its undo restores them.

use crate::common;

use common::{connect, eventually, scalar, WAIT};
use std::time::Duration;
use turnout_cutover::{CutoverError, PgBouncerAdmin, WriteFence};
use turnout_testbed::{PgBouncer, PgServer};

#[tokio::test]
async fn pgbouncer_pause_holds_a_write_until_resume_and_the_write_then_succeeds() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let db = blue.create_database("fence").await?;
    blue.execute(&db, "CREATE TABLE t (id int PRIMARY KEY)").await?;
    let bouncer = PgBouncer::start(&blue, &db)?;
    let admin = PgBouncerAdmin::from_url(&bouncer.admin_url())?;
    let fence = WriteFence::PgBouncer { admin: admin.clone(), database: db.clone() };
    let control = blue.connect(&db).await?;
    let client = connect(&bouncer.url(&db)).await;
    client.simple_query("INSERT INTO t VALUES (1)").await?;
    assert!(!fence.is_fenced(&control).await?);
    fence.check(&control).await?;
    let unknown = WriteFence::PgBouncer { admin: admin.clone(), database: "nope".into() };
    let err = unknown.check(&control).await.expect_err("no such entry");
    assert!(err.to_string().contains("no entry named nope"), "{err}");
    let wrong_password = bouncer.admin_url().replace(blue.password(), "wrong-password");
    let err = WriteFence::PgBouncer { admin: PgBouncerAdmin::from_url(&wrong_password)?, database: db.clone() }
        .apply(&control, WAIT)
        .await
        .expect_err("wrong password");
    let text = err.to_string();
    assert!(text.contains("admin_users") && !text.contains("wrong-password"), "{text}");

    fence.apply(&control, WAIT).await?;
    assert!(fence.is_fenced(&control).await?);

    let write = tokio::spawn(async move { client.simple_query("INSERT INTO t VALUES (2)").await.map(|_| client) });
    eventually("pgbouncer holds the client's write", || async { (admin.waiting_clients(&db).await.ok()? >= 1).then_some(()) }).await;
    assert!(!write.is_finished(), "the write finished while the database was paused");
    assert_eq!(scalar(&control, "SELECT count(*) FROM t WHERE id = 2").await?, "0", "the write reached blue through the fence");

    // Applying again is harmless: nothing runs, so PAUSE returns at once.
    let again = fence.apply(&control, WAIT).await?;
    assert_eq!(again.held_clients, Some(1));

    fence.undo(&control).await?;
    let client = tokio::time::timeout(WAIT, write).await??.expect("the held write succeeds after RESUME");
    assert_eq!(scalar(&control, "SELECT count(*) FROM t WHERE id = 2").await?, "1");
    assert!(!fence.is_fenced(&control).await?);
    fence.undo(&control).await?; // resuming a running database is fine
    client.simple_query("INSERT INTO t VALUES (3)").await?;
    Ok(())
}

#[tokio::test]
async fn pgbouncer_pause_that_times_out_on_an_open_transaction_leaves_the_database_resumed() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let db = blue.create_database("fence").await?;
    blue.execute(&db, "CREATE TABLE t (id int PRIMARY KEY)").await?;
    let bouncer = PgBouncer::start(&blue, &db)?;
    let fence = WriteFence::PgBouncer { admin: PgBouncerAdmin::from_url(&bouncer.admin_url())?, database: db.clone() };
    let control = blue.connect(&db).await?;
    let long = connect(&bouncer.url(&db)).await;
    long.simple_query("BEGIN; INSERT INTO t VALUES (1)").await?;

    let err = fence.apply(&control, Duration::from_millis(300)).await.expect_err("PAUSE cannot finish while a transaction runs");
    assert!(matches!(err, CutoverError::PauseTimeout { resume_failure: None, .. }), "{err}");
    assert!(err.to_string().contains(&format!("PAUSE {db}")), "{err}");
    assert!(!fence.is_fenced(&control).await?, "a timed-out PAUSE left the database paused");
    // Other clients are not held.
    let other = connect(&bouncer.url(&db)).await;
    tokio::time::timeout(WAIT, other.simple_query("SELECT 1")).await??;

    long.simple_query("COMMIT").await?;
    fence.apply(&control, WAIT).await?;
    assert!(fence.is_fenced(&control).await?);
    fence.undo(&control).await?;
    Ok(())
}

#[tokio::test]
async fn read_only_fence_ends_other_sessions_makes_writes_fail_and_undo_restores_them() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let db = blue.create_database("fence").await?;
    blue.execute(&db, "CREATE TABLE t (id int PRIMARY KEY)").await?;
    let fence = WriteFence::ReadOnly { database: db.clone() };
    let control = blue.connect(&db).await?;
    // A client in the middle of a write transaction, turnout's own session, and a session of
    // another database.
    let victim = blue.connect(&db).await?;
    let victim_pid: i32 = scalar(&victim, "SELECT pg_backend_pid()").await?.parse()?;
    victim.simple_query("BEGIN; INSERT INTO t VALUES (1)").await?;
    let own = connect(&format!("{}&application_name=turnout-heartbeat", blue.url(&db))).await;
    let elsewhere = blue.connect("postgres").await?;
    assert!(!fence.is_fenced(&control).await?);

    let report = fence.apply(&control, WAIT).await?;

    assert_eq!(report.ended_sessions.iter().map(|s| s.pid).collect::<Vec<_>>(), [victim_pid], "{report:?}");
    assert!(victim.simple_query("COMMIT").await.is_err(), "the ended session could still commit");
    assert_eq!(scalar(&control, "SELECT count(*) FROM t").await?, "0", "the ended session's write committed");
    scalar(&own, "SELECT 1").await.expect("turnout's own session survives");
    scalar(&elsewhere, "SELECT 1").await.expect("a session of another database survives");
    assert!(fence.is_fenced(&control).await?);

    let late = blue.connect(&db).await?;
    let err = late.batch_execute("INSERT INTO t VALUES (2)").await.expect_err("a new session writes on a fenced database");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION), "{err:?}");
    // The sentinel can still be written: by a session opened before the fence, or by a new one
    // that asks for a read-write transaction.
    control.batch_execute("SELECT pg_logical_emit_message(true, 'turnout.test', 'before')").await?;
    late.batch_execute("BEGIN READ WRITE; SELECT pg_logical_emit_message(true, 'turnout.test', 'after'); COMMIT").await?;

    // Applying again succeeds; it cannot tell sessions from before the first ALTER, so it ends
    // every other session again.
    let late_pid: i32 = scalar(&late, "SELECT pg_backend_pid()").await?.parse()?;
    let again = fence.apply(&control, WAIT).await?;
    assert_eq!(again.ended_sessions.iter().map(|s| s.pid).collect::<Vec<_>>(), [late_pid], "{again:?}");
    assert!(fence.is_fenced(&control).await?);

    let late = blue.connect(&db).await?;
    late.batch_execute("INSERT INTO t VALUES (2)").await.expect_err("a new session writes on a fenced database");
    fence.undo(&control).await?;
    assert!(!fence.is_fenced(&control).await?);
    assert!(scalar(&late, "SELECT 1").await.is_err(), "a session opened while fenced stays read-only after undo");
    scalar(&own, "SELECT 1").await.expect("turnout's own session survives the undo");
    blue.connect(&db).await?.batch_execute("INSERT INTO t VALUES (3)").await.expect("writes work again after undo");
    fence.undo(&control).await?;
    Ok(())
}

#[tokio::test]
async fn read_only_fence_refuses_without_privileges_with_role_overrides_or_prepared_transactions() -> anyhow::Result<()> {
    let blue = PgServer::start(15)?;
    let db = blue.create_database("fence").await?;
    blue.execute(&db, "CREATE TABLE t (id int PRIMARY KEY)").await?;
    let fence = WriteFence::ReadOnly { database: db.clone() };
    let control = blue.connect(&db).await?;
    fence.check(&control).await?;
    blue.execute(&db, "CREATE ROLE plain LOGIN PASSWORD 'plain-pw'").await?;
    let plain = connect(&format!("{}?sslmode=disable", blue.url_for("plain", "plain-pw", &db))).await;
    let err = fence.check(&plain).await.expect_err("a role that does not own the database cannot fence it");
    assert!(matches!(err, CutoverError::Privilege { .. }) && err.to_string().contains("role plain may not ALTER DATABASE"), "{err}");
    let err = fence.apply(&plain, WAIT).await.expect_err("ALTER DATABASE needs the owner");
    assert!(err.to_string().contains("SQLSTATE 42501") && err.to_string().contains("owner of database"), "{err}");
    blue.execute(&db, &format!("ALTER DATABASE \"{db}\" OWNER TO plain")).await?;
    let err = fence.check(&plain).await.expect_err("the owner still cannot end other users' sessions");
    assert!(err.to_string().contains("GRANT pg_signal_backend TO \"plain\""), "{err}");

    blue.execute(&db, &format!("CREATE ROLE writer LOGIN; ALTER ROLE writer IN DATABASE \"{db}\" SET default_transaction_read_only = off")).await?;
    assert!(matches!(fence.check(&control).await, Err(CutoverError::ReadOnlyOverridden { .. })));
    let err = fence.apply(&control, WAIT).await.expect_err("a role's own setting would beat the fence");
    let text = err.to_string();
    assert!(matches!(err, CutoverError::ReadOnlyOverridden { .. }), "{text}");
    assert!(text.contains("role writer") && text.contains("ALTER ROLE \"writer\" IN DATABASE"), "{text}");
    assert!(!fence.is_fenced(&control).await?, "the refused fence changed the database");
    blue.execute(&db, &format!("ALTER ROLE writer IN DATABASE \"{db}\" RESET default_transaction_read_only")).await?;

    blue.execute(&db, "BEGIN; INSERT INTO t VALUES (7); PREPARE TRANSACTION 'pending-7'").await?;
    let err = fence.apply(&control, WAIT).await.expect_err("a prepared transaction could commit after the fence");
    let text = err.to_string();
    assert!(matches!(err, CutoverError::PreparedTransactions { .. }) && text.contains("'pending-7'"), "{text}");
    fence.undo(&control).await?;
    assert!(!fence.is_fenced(&control).await?);

    let missing = WriteFence::ReadOnly { database: "no_such_db".into() };
    let err = missing.apply(&control, WAIT).await.expect_err("no database");
    assert!(err.to_string().contains("no_such_db"), "{err}");
    Ok(())
}
