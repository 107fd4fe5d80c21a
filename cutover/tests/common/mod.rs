//! Helpers shared by the cutover tests: waiting for a condition with a deadline, and sessions.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// How long any wait on a server may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some`, failing the test after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// A plain session to `url`, its connection driven in the background.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The first column of the first row a simple query returns (the admin console and pgbouncer's
/// transaction pooling only take the simple query protocol reliably).
pub async fn scalar(client: &Client, sql: &str) -> Result<String, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default())
}

/// The port of the server a session is connected to.
pub async fn server_port(client: &Client) -> Result<u16, tokio_postgres::Error> {
    Ok(scalar(client, "SELECT current_setting('port')").await?.parse().expect("a port number"))
}
