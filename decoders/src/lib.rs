//! turnout's source side: the normalized change-event model shared by every crate, and the readers that
//! turn a source database's own change log into it.
//!
//! * [`event`], [`value`], [`schema`], [`position`] — the change model (`docs/src/explanation/architecture.md`). A [`ChangeEvent`] is
//!   source-neutral; a [`Position`] is totally ordered inside one source log.
//! * [`pg`] — PostgreSQL: the wire framing and replication client (I/O, keepalives, acknowledgements) and
//!   the pgoutput parser (sans-IO) plus the stateful decoder that owns the relation and type caches.
//! * [`mysql`] — MySQL/MariaDB: the binlog event parser and row-image value decoder (sans-IO).
//!
//! Every failure of this crate is a [`DecodeError`], which says whether retrying can help.

pub mod calendar;
pub mod error;
pub mod event;
pub mod gtid;
pub mod mysql;
pub mod pg;
pub mod position;
pub mod schema;
pub mod value;

pub use error::{DecodeError, ErrorClass, Side};
pub use event::ChangeEvent;
pub use position::{BinlogPosition, GtidState, Incomparable, Lsn, MariaGtid, Position, Timestamp, Tsid};
pub use schema::{Column, ColumnType, ReplicaIdentity, TableName, TableSchema};
pub use value::{Utf8Bytes, Value};
