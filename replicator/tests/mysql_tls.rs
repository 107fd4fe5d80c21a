//! TLS to MySQL/MariaDB under every `ssl-mode`, against real servers with a throwaway CA: what is
//! encrypted (as the server itself reports), what is verified, what is refused and what turnout
//! tells the operator; and replication end to end with `VERIFY_IDENTITY` on servers that refuse
//! plain-text sessions.

use crate::common;

use common::{maria_rows, wait_streaming, Turnout};
use mysql_async::prelude::Queryable;
use std::process::Command;
use std::time::{Duration, Instant};
use turnout_connect::mysql::conn::{open, options};
use turnout_testbed::{MySqlServer, TestCertificates};

/// `mysql://turnout:…@host:port/db?query`.
fn url(server: &MySqlServer, host: &str, db: &str, query: &str) -> String {
    format!("mysql://{}:{}@{host}:{}/{db}?{query}", server.user(), server.password(), server.port())
}

/// The session's cipher as the server reports it (empty for a plain-text session), or the error.
async fn cipher(url: &str) -> Result<String, String> {
    let opts = options(url)?;
    let mut conn = open(&opts).await.map_err(|e| e.to_string())?;
    let row: Option<(String, String)> = conn.query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'").await.map_err(|e| e.to_string())?;
    let _ = conn.disconnect().await;
    Ok(row.map(|(_, v)| v).unwrap_or_default())
}

fn ca(server: &MySqlServer) -> String {
    server.certificates().expect("a TLS server").ca_cert.display().to_string()
}

fn turnout(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_turnout")).args(args).output().expect("turnout");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn every_ssl_mode_encrypts_and_verifies_as_documented() {
    let server = MySqlServer::start_tls(1).expect("TLS server");
    let db = server.create_database("tls").expect("db");
    let ca = ca(&server);
    for (mode, host, query, encrypted) in [
        ("DISABLED", "127.0.0.1", "ssl-mode=DISABLED".to_string(), false),
        ("PREFERRED (default)", "127.0.0.1", "prefer_socket=false".to_string(), true),
        ("REQUIRED", "127.0.0.1", "ssl-mode=REQUIRED".to_string(), true),
        ("VERIFY_IDENTITY by address", "127.0.0.1", format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"), true),
        ("verify-full by name", "localhost", format!("sslmode=verify-full&sslrootcert={ca}"), true),
    ] {
        let got = cipher(&url(&server, host, &db, &query)).await.unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(!got.is_empty(), encrypted, "{mode}: the server reports cipher {got:?}");
    }
}

#[tokio::test]
async fn verification_refuses_another_ca_and_another_name() {
    let server = MySqlServer::start_tls(1).expect("TLS server");
    let db = server.create_database("tls").expect("db");
    let other_dir = tempfile::tempdir().expect("tmp");
    let other = TestCertificates::generate(other_dir.path()).expect("another CA");
    let other_ca = other.ca_cert.display().to_string();
    let e = cipher(&url(&server, "127.0.0.1", &db, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={other_ca}"))).await.expect_err("another CA");
    assert!(e.contains("invalid peer certificate"), "{e}");
    // The server now presents a certificate for another name, from its own CA: the chain is good,
    // the name is not.
    let renamed = server.dir().join("tls/renamed");
    std::fs::create_dir(&renamed).expect("dir");
    let certs = TestCertificates::generate_for(&renamed, "db.example", None).expect("renamed certificate");
    let live = server.certificates().expect("TLS").clone();
    for (from, to) in [(&certs.server_cert, &live.server_cert), (&certs.server_key, &live.server_key), (&certs.ca_cert, &live.ca_cert)] {
        std::fs::copy(from, to).expect("replace the server's certificate");
    }
    server.execute(None, "FLUSH SSL").expect("reload TLS");
    let ca = live.ca_cert.display().to_string();
    let e = cipher(&url(&server, "127.0.0.1", &db, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"))).await.expect_err("name mismatch");
    assert!(e.contains("not valid for name"), "{e}");
    // ssl-host names what the certificate must name when the URL gives an address.
    let ok = cipher(&url(&server, "127.0.0.1", &db, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}&ssl-host=db.example"))).await.expect("ssl-host");
    assert!(!ok.is_empty());
    let e = cipher(&url(&server, "127.0.0.1", &db, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={other_ca}&ssl-host=db.example")))
        .await
        .expect_err("ssl-host does not skip the chain");
    assert!(e.contains("invalid peer certificate"), "{e}");
    // turnout check says what to change.
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("turnout.toml");
    let bad = url(&server, "127.0.0.1", &db, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"));
    std::fs::write(&config, format!("[source]\nurl = \"{bad}\"\n[target]\nurl = \"{bad}\"\n[state]\ndir = \"{}\"\n", dir.path().join("s").display()))
        .expect("config");
    let (code, text) = turnout(&["check", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("TLS failed") && text.contains("ssl-ca in source.url") && text.contains("ssl-host"), "{text}");
    assert!(!text.contains(server.password()), "{text}");
}

#[tokio::test]
async fn a_server_without_tls_is_refused_when_tls_is_required_and_used_plain_when_preferred() {
    let server = MySqlServer::start_with(1).expect("plain server");
    let db = server.create_database("plain").expect("db");
    let plain = cipher(&url(&server, "127.0.0.1", &db, "prefer_socket=false")).await.expect("PREFERRED falls back");
    assert_eq!(plain, "");
    for query in ["ssl-mode=REQUIRED", "ssl-mode=VERIFY_IDENTITY"] {
        let e = cipher(&url(&server, "127.0.0.1", &db, query)).await.expect_err(query);
        assert!(e.contains("server does not have this capability"), "{query}: {e}");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("turnout.toml");
    let required = url(&server, "127.0.0.1", &db, "ssl-mode=REQUIRED");
    std::fs::write(&config, format!("[source]\nurl = \"{required}\"\n[target]\nurl = \"{required}\"\n[state]\ndir = \"{}\"\n", dir.path().join("s").display()))
        .expect("config");
    let (code, text) = turnout(&["check", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("does not offer TLS but source.url requires it") && text.contains("ssl_cert"), "{text}");
    // A missing CA file is a configuration error (exit 2) naming the file.
    let missing = url(&server, "127.0.0.1", &db, "ssl-mode=VERIFY_IDENTITY&ssl-ca=/nonexistent/ca.pem");
    std::fs::write(&config, format!("[source]\nurl = \"{missing}\"\n[target]\nurl = \"{required}\"\n[state]\ndir = \"{}\"\n", dir.path().join("s").display()))
        .expect("config");
    let (code, text) = turnout(&["check", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("source.url") && text.contains("/nonexistent/ca.pem"), "{text}");
}

#[tokio::test]
async fn replication_runs_with_verify_identity_on_servers_that_refuse_plain_text() {
    let (blue, green) = std::thread::scope(|s| {
        let b = s.spawn(|| MySqlServer::start_tls(1).expect("blue"));
        let g = s.spawn(|| MySqlServer::start_tls(2).expect("green"));
        (b.join().expect("blue"), g.join().expect("green"))
    });
    let db = blue.create_database("app").expect("db");
    green.execute(None, &format!("SET sql_log_bin = 0; CREATE DATABASE `{db}`")).expect("green db");
    for server in [&blue, &green] {
        server.execute(None, "SET GLOBAL require_secure_transport = ON").expect("refuse plain text");
        // The same account and password: refused in plain text, let in over TLS.
        let e = cipher(&url(server, "127.0.0.1", &db, "ssl-mode=DISABLED")).await.expect_err("plain text is refused");
        assert!(e.contains("1045") || e.contains("insecure transport"), "{e}");
        assert!(!cipher(&url(server, "127.0.0.1", &db, "ssl-mode=REQUIRED")).await.expect("TLS is let in").is_empty());
    }
    blue.execute(Some(&db), "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB; INSERT INTO t VALUES (1, 'snapshot')").expect("schema");
    let dir = tempfile::tempdir().expect("tmp");
    let blue_url = url(&blue, "127.0.0.1", &db, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca(&blue)));
    let green_url = url(&green, "localhost", &db, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca(&green)));
    let (code, text) = {
        let t = Turnout::new(dir.path(), &blue_url, &green_url);
        turnout(&["check", "--config", t.config_path().to_str().expect("utf-8")])
    };
    assert_eq!(code, 0, "{text}");
    let mut t = Turnout::new(dir.path(), &blue_url, &green_url);
    t.start();
    wait_streaming(&mut t).await;
    blue.execute(Some(&db), "INSERT INTO t VALUES (2, 'streamed'); UPDATE t SET v = 'changed' WHERE id = 1").expect("changes");
    let deadline = Instant::now() + Duration::from_secs(60);
    while maria_rows(&green, &db, "t") != maria_rows(&blue, &db, "t") {
        assert!(t.exited().is_none(), "turnout stopped\n{}", t.log_text());
        assert!(Instant::now() < deadline, "green did not converge\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(maria_rows(&green, &db, "t").len(), 2);
    assert_eq!(t.sigterm(), Some(0));
}
