//! Connections to the servers turnout reads and writes: the I/O layer between the sans-IO parsers of
//! `turnout-decoders` and the sources, sinks and cutover that use them.
//!
//! - [`pg`]: the PostgreSQL connection — startup, authentication, TLS, simple queries, replication
//!   commands and the `START_REPLICATION` stream — and its connection options;
//! - [`mysql`]: MySQL/MariaDB connection options and sessions, and the binlog dump connection.

pub mod mysql;
pub mod pg;
mod tls;
mod transport;
