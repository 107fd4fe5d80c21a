//! PostgreSQL logical replication.
//!
//! Three layers, as in the house style:
//! 1. sans-IO wire parsing — [`wire`] (backend message framing, replication CopyData frames, standby
//!    status encoding) and [`pgoutput`] (the pgoutput plugin's messages);
//! 2. the stateful [`decoder::PgOutputDecoder`], which owns the relation and type caches and emits
//!    [`crate::ChangeEvent`]s with typed values ([`types`]);
//! 3. the connector [`client`], which does the I/O: startup, authentication, TLS, simple queries,
//!    `START_REPLICATION`, keepalive replies and acknowledgements.

pub mod client;
pub mod conninfo;
pub(crate) mod cursor;
pub mod decoder;
pub mod pgoutput;
mod tls;
pub mod types;
pub mod wire;

pub use client::{PgConnection, ReplicationStream, SlotInfo, StartReplication, StreamMessage, SystemId};
pub use conninfo::{ConnectOptions, SslMode};
pub use decoder::PgOutputDecoder;
pub use tls::client_config as tls_client_config;
