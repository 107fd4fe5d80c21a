//! The PostgreSQL connection: [`client`] does the I/O (startup, authentication, TLS, simple queries,
//! `START_REPLICATION`, keepalive replies and acknowledgements) on the sans-IO framing of
//! `turnout_decoders::pg::wire`; [`conninfo`] reads `postgres://` URLs with the libpq parameters
//! operators know; [`tls`] builds the rustls client configuration for each `sslmode`.

pub mod client;
pub mod conninfo;
mod tls;

pub use client::{PgConnection, ReplicationStream, SlotInfo, StartReplication, StreamMessage, SystemId};
pub use conninfo::{ConnectOptions, SslMode};
pub use tls::client_config as tls_client_config;
