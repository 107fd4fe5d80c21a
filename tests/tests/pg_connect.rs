//! Connecting and authenticating with turnout's own PostgreSQL client against live servers: SCRAM,
//! md5, cleartext and trust logins in normal and replication mode, the errors an operator sees for
//! wrong or missing passwords and unreachable servers, and TLS under every supported `sslmode`.

use turnout_connect::pg::{ConnectOptions, PgConnection};
use turnout_decoders::{DecodeError, ErrorClass, Lsn};
use turnout_testbed::{free_port, random_token, PgOptions, PgServer, TestCertificates};

/// Parses a URL the way the pipeline does.
fn options(url: &str) -> ConnectOptions {
    ConnectOptions::from_url(url, "source.url").expect("valid URL")
}

/// Connects to `url`, normally or in replication mode.
async fn connect(url: &str, replication: bool) -> Result<PgConnection, DecodeError> {
    PgConnection::connect(&options(url), replication).await
}

/// The single value of a one-row, one-column query.
async fn scalar(conn: &mut PgConnection, sql: &str) -> String {
    let rows = conn.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(rows.len(), 1, "{sql} returned {rows:?}");
    rows[0].first().cloned().flatten().unwrap_or_else(|| panic!("{sql} returned NULL"))
}

/// Whether the server itself considers this session encrypted.
async fn server_sees_tls(conn: &mut PgConnection) -> bool {
    scalar(conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await == "true"
}

/// A PostgreSQL `major` server logging its connections, with `hba_prepend` before the default
/// pg_hba.conf lines and optionally TLS.
fn server_with(major: u32, hba_prepend: &[&str], tls: bool) -> PgServer {
    PgServer::start_with(PgOptions { major, conf: vec!["log_connections = on".into()], hba_prepend: hba_prepend.iter().map(|l| l.to_string()).collect(), tls })
        .expect("server")
}

/// The throwaway CA certificate of a TLS server.
fn ca_of(server: &PgServer) -> &TestCertificates {
    server.certificates().expect("the server was started with TLS")
}

/// The superuser's URL for the `postgres` database with the given query string.
fn superuser_url(server: &PgServer, query: &str) -> String {
    format!("{}?{query}", server.url_for("postgres", server.password(), "postgres"))
}

#[tokio::test]
async fn scram_md5_cleartext_and_trust_logins_all_work() {
    let server =
        server_with(15, &["host all md5user 127.0.0.1/32 md5", "host all pwuser 127.0.0.1/32 password", "host all trustuser 127.0.0.1/32 trust"], false);
    let md5_password = random_token(12);
    let pw_password = random_token(12);
    server
        .execute(
            "postgres",
            &format!(
                "SET password_encryption = 'md5';
                 CREATE ROLE md5user LOGIN REPLICATION PASSWORD '{md5_password}';
                 RESET password_encryption;
                 CREATE ROLE pwuser LOGIN REPLICATION PASSWORD '{pw_password}';
                 CREATE ROLE trustuser LOGIN REPLICATION;"
            ),
        )
        .await
        .expect("roles");

    let port = server.port();
    let logins = [
        ("postgres", server.url_for("postgres", server.password(), "postgres")),
        ("md5user", server.url_for("md5user", &md5_password, "postgres")),
        ("pwuser", server.url_for("pwuser", &pw_password, "postgres")),
        // No password at all: only trust can let this in.
        ("trustuser", format!("postgres://trustuser@127.0.0.1:{port}/postgres")),
    ];
    for (user, url) in &logins {
        let url = format!("{url}?sslmode=disable");
        for replication in [false, true] {
            let mut conn = connect(&url, replication).await.unwrap_or_else(|e| panic!("{user} (replication {replication}): {e}"));
            assert!(!conn.is_tls());
            assert_eq!(scalar(&mut conn, "SELECT current_user").await, *user);
            let backend = scalar(&mut conn, "SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()").await;
            let expected = if replication { "walsender" } else { "client backend" };
            assert_eq!(backend, expected, "{user} (replication {replication})");
            conn.close().await;
        }
    }

    // The password users went through the pg_hba.conf line meant for them.
    let log = std::fs::read_to_string(server.log_path()).expect("server log");
    let logins_by = |user: &str, method: &str| log.matches(&format!("connection authenticated: identity=\"{user}\" method={method}")).count();
    assert_eq!(logins_by("md5user", "md5"), 2, "{log}");
    assert_eq!(logins_by("pwuser", "password"), 2, "{log}");
    // The superuser also logged in to create the roles.
    assert!(logins_by("postgres", "scram-sha-256") >= 2, "{log}");
    assert!(!log.contains("identity=\"trustuser\""), "trust logins carry no authenticated identity:\n{log}");

    // md5 is only really md5 when the stored verifier is an md5 hash; a SCRAM verifier would have made
    // the server run SCRAM on the md5 line.
    let mut admin = connect(&logins[0].1, false).await.expect("superuser");
    let stored = |role: &str| format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'");
    let md5_verifier = scalar(&mut admin, &stored("md5user")).await;
    assert!(md5_verifier.starts_with("md5") && md5_verifier.len() == 35, "{md5_verifier}");
    let scram_verifier = scalar(&mut admin, &stored("postgres")).await;
    assert!(scram_verifier.starts_with("SCRAM-SHA-256$"), "{scram_verifier}");
    admin.close().await;
}

#[tokio::test]
async fn wrong_password_names_the_user_and_sqlstate() {
    let server = server_with(15, &["host all md5_replicator 127.0.0.1/32 md5"], false);
    let password = random_token(12);
    server
        .execute(
            "postgres",
            &format!(
                "CREATE ROLE scram_replicator LOGIN REPLICATION PASSWORD '{password}';
                 SET password_encryption = 'md5';
                 CREATE ROLE md5_replicator LOGIN REPLICATION PASSWORD '{password}';"
            ),
        )
        .await
        .expect("roles");

    for user in ["scram_replicator", "md5_replicator"] {
        // The right password works, so the failure below is the password's alone.
        let good = format!("{}?sslmode=disable", server.url_for(user, &password, "postgres"));
        connect(&good, true).await.unwrap_or_else(|e| panic!("{user}: {e}")).close().await;

        let wrong = format!("{}?sslmode=disable", server.url_for(user, "not-the-password", "postgres"));
        let err = connect(&wrong, true).await.expect_err("a wrong password must be refused");
        assert!(matches!(err, DecodeError::Server(_)), "{user}: {err:?}");
        assert_eq!(err.sqlstate(), Some("28P01"), "{user}: {err}");
        assert_eq!(err.class(), ErrorClass::Fatal);
        let text = err.to_string();
        assert!(text.contains(&format!("\"{user}\"")), "{text}");
        assert!(!text.contains("not-the-password"), "{text}");

        let missing = format!("postgres://{user}@127.0.0.1:{}/postgres?sslmode=disable", server.port());
        let err = connect(&missing, false).await.expect_err("a missing password must be reported");
        let DecodeError::Auth { user: reported, reason } = &err else { panic!("{user}: expected an Auth error, got {err:?}") };
        assert_eq!(reported, user);
        assert!(reason.contains("add it") && reason.contains("URL"), "{reason}");
        assert_eq!(err.class(), ErrorClass::Fatal);
    }
}

#[tokio::test]
async fn unreachable_port_is_a_transient_io_error() {
    let port = free_port();
    assert_ne!(port, 0, "no free port");
    let err = connect(&format!("postgres://someone:secret@127.0.0.1:{port}/db?sslmode=disable"), false).await.expect_err("nothing listens there");
    let DecodeError::Io { source, port: reported, .. } = &err else { panic!("expected an Io error, got {err:?}") };
    assert_eq!(*reported, port);
    assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(err.class(), ErrorClass::Transient);
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn tls_require_and_verify_full_encrypt_and_verify() {
    let server = server_with(15, &[], true);
    let ca = ca_of(&server).ca_cert.display().to_string();
    let verify_full = format!("sslmode=verify-full&sslrootcert={ca}");
    let by_ip = superuser_url(&server, &verify_full);
    let by_name = by_ip.replacen("@127.0.0.1:", "@localhost:", 1);
    assert_ne!(by_ip, by_name);
    let cases = [
        ("require", superuser_url(&server, "sslmode=require"), true),
        ("verify-full by address", by_ip, true),
        ("verify-full by name", by_name, true),
        ("prefer", superuser_url(&server, "sslmode=prefer"), true),
        ("no sslmode (prefer)", server.url_for("postgres", server.password(), "postgres"), true),
        ("disable", superuser_url(&server, "sslmode=disable"), false),
    ];
    for (case, url, encrypted) in &cases {
        let mut conn = connect(url, false).await.unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(conn.is_tls(), *encrypted, "{case}");
        assert_eq!(server_sees_tls(&mut conn).await, *encrypted, "{case}: the server disagrees");
        conn.close().await;
    }
}

#[tokio::test]
async fn verify_full_rejects_a_certificate_from_another_ca() {
    let server = server_with(15, &[], true);
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other = TestCertificates::generate(other_dir.path()).expect("another CA");
    // The server's own CA is accepted, so only the CA differs below.
    let own = superuser_url(&server, &format!("sslmode=verify-full&sslrootcert={}", ca_of(&server).ca_cert.display()));
    connect(&own, false).await.expect("the server's own CA").close().await;

    let url = superuser_url(&server, &format!("sslmode=verify-full&sslrootcert={}", other.ca_cert.display()));
    let err = connect(&url, false).await.expect_err("a certificate from another CA must be rejected");
    let DecodeError::Tls { host, reason } = &err else { panic!("expected a Tls error, got {err:?}") };
    assert_eq!(host, "127.0.0.1");
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
    assert_eq!(err.class(), ErrorClass::Fatal);
}

#[tokio::test]
async fn require_fails_clearly_when_the_server_has_no_tls() {
    let server = server_with(15, &[], false);
    let err = connect(&superuser_url(&server, "sslmode=require"), false).await.expect_err("no TLS on the server");
    let DecodeError::Tls { reason, .. } = &err else { panic!("expected a Tls error, got {err:?}") };
    assert!(reason.contains("does not accept TLS"), "{reason}");
    assert_eq!(err.class(), ErrorClass::Fatal);

    // prefer falls back to plain TCP on the same server.
    let mut conn = connect(&superuser_url(&server, "sslmode=prefer"), false).await.expect("prefer without TLS");
    assert!(!conn.is_tls());
    assert_eq!(scalar(&mut conn, "SELECT current_user").await, "postgres");
    conn.close().await;
}

#[tokio::test]
async fn hostssl_only_server_rejects_plain_connections() {
    let server = server_with(15, &["hostnossl all all 127.0.0.1/32 reject"], true);
    let err = connect(&superuser_url(&server, "sslmode=disable"), false).await.expect_err("plain connections are rejected");
    assert!(matches!(err, DecodeError::Server(_)), "{err:?}");
    assert_eq!(err.sqlstate(), Some("28000"), "{err}");

    for replication in [false, true] {
        let mut conn =
            connect(&superuser_url(&server, "sslmode=require"), replication).await.unwrap_or_else(|e| panic!("TLS (replication {replication}): {e}"));
        assert!(conn.is_tls());
        assert!(server_sees_tls(&mut conn).await);
        conn.close().await;
    }
}

#[tokio::test]
async fn replication_commands_work_over_tls() {
    let server = server_with(15, &[], true);
    let url = superuser_url(&server, &format!("sslmode=verify-full&sslrootcert={}", ca_of(&server).ca_cert.display()));
    let mut conn = connect(&url, true).await.expect("replication connection over TLS");
    assert!(conn.is_tls());
    let system = conn.identify_system().await.expect("IDENTIFY_SYSTEM");
    assert_eq!(system.timeline, 1);
    assert!(system.xlog_pos > Lsn::ZERO, "{system:?}");
    assert_eq!(system.database.as_deref(), Some("postgres"));
    assert_eq!(scalar(&mut conn, "SELECT system_identifier::text FROM pg_control_system()").await, system.system_id);
    let current: Lsn = scalar(&mut conn, "SELECT pg_current_wal_lsn()::text").await.parse().expect("LSN");
    assert!(system.xlog_pos <= current, "{system:?} is past the current WAL position {current}");
    assert!(server_sees_tls(&mut conn).await);
    conn.close().await;
}
