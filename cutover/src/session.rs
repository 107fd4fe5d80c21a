//! Opening a plain tokio-postgres session from [`ConnectOptions`] (TLS as `sslmode` says), without
//! any session settings: the pgbouncer admin console accepts no `SET` of server parameters.

use tokio_postgres::Client;
use turnout_connect::pg::ConnectOptions;
use turnout_sinks::SinkError;

/// Why a session could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Tls(String),
    Driver(tokio_postgres::Error),
}

/// Connects and drives the connection in the background until the client is dropped.
pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Client, ConnectError> {
    turnout_sinks::pg::open(opts).await.map_err(|e| match e {
        SinkError::Target { source, .. } => ConnectError::Driver(source),
        SinkError::Config(reason) => ConnectError::Tls(reason),
        other => ConnectError::Tls(other.to_string()),
    })
}
