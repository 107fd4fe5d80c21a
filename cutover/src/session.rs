//! Opening a plain tokio-postgres session from [`ConnectOptions`] (TLS as `sslmode` says), without
//! any session settings: the pgbouncer admin console accepts no `SET` of server parameters.

use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use turnout_decoders::pg::{tls_client_config, ConnectOptions, SslMode};

/// Why a session could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Tls(String),
    Driver(tokio_postgres::Error),
}

/// Connects and drives the connection in the background until the client is dropped.
pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Client, ConnectError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&opts.host)
        .port(opts.port)
        .user(&opts.user)
        .dbname(&opts.database)
        .application_name(&opts.application_name)
        .connect_timeout(opts.connect_timeout)
        .ssl_mode(match opts.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
    if let Some(pw) = &opts.password {
        config.password(pw);
    }
    if opts.ssl_mode == SslMode::Disable {
        let (client, connection) = config.connect(NoTls).await.map_err(ConnectError::Driver)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    } else {
        let tls = tls_client_config(opts).map_err(|e| ConnectError::Tls(e.to_string()))?;
        let (client, connection) =
            config.connect(MakeRustlsConnect::new((*tls).clone())).await.map_err(ConnectError::Driver)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}
