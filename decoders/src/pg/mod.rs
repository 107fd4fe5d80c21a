//! PostgreSQL logical replication.
//!
//! Three layers, as in the house style:
//! 1. sans-IO wire parsing — [`wire`] (backend message framing, replication CopyData frames, standby
//!    status encoding) and [`pgoutput`] (the pgoutput plugin's messages);
//! 2. the stateful [`decoder::PgOutputDecoder`], which owns the relation and type caches and emits
//!    [`crate::ChangeEvent`]s with typed values ([`types`]);
//! 3. the connector, which does the I/O (startup, authentication, TLS, simple queries,
//!    `START_REPLICATION`, keepalive replies and acknowledgements), lives in `turnout-connect`.

pub(crate) mod cursor;
pub mod decoder;
pub mod pgoutput;
pub mod types;
pub mod wire;

pub use decoder::PgOutputDecoder;
