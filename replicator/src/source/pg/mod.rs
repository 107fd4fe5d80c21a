//! PostgreSQL as a source: the logical-replication stream ([`stream`]), and its administration —
//! catalog and table selection, publication/slot set-up and schema copy, the consistent snapshot,
//! heartbeats, the preflight check and verify digests.

pub mod admin;
pub mod catalog;
pub mod check;
pub mod drift;
pub mod heartbeat;
pub mod live;
pub mod origin_filter;
pub mod setup;
pub mod snapshot;
pub mod stream;
pub mod verify;

pub use stream::PgSource;
