//! MySQL and MariaDB connections: [`conn`] reads `mysql://` / `mariadb://` URLs (TLS included) and
//! opens SQL sessions with mysql_async, remembering which sessions are turnout's own; [`dump`] is the
//! binlog dump connection, which hands out each event's bytes for the decoder to parse once.

pub mod conn;
pub mod dump;

pub use dump::{BinlogDump, DumpFrom};
