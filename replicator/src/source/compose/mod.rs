//! The seam that composes a **source side** (what blue does: select its tables, read them in a
//! snapshot, stream its log, beat its heart, drop what it made) with a **target side** (what green
//! does: create the tables, load a snapshot with its position, apply the stream exactly once,
//! record the position, drop what it made), each picked on its own from `source.url` and
//! `target.url`, with the value conversion between the two engines in one place between them
//! ([`Convert`]).
//!
//! [`Composed`] is a [`crate::source::SourceAdmin`] made of the three, and [`family::Crossing`]
//! the [`crate::source::family::Family`] of a composition — so a pair of engines is a composition of
//! parts, not a family of its own: MySQL/MariaDB → PostgreSQL is [`crate::source::mysql::side::MySqlBlue`]
//! with [`crate::source::pg::target::PgTarget`] through [`mysql_to_pg::MySqlToPg`].
//!
//! What is built of it (see `docs/src/explanation/composed-pairs.md`): `check`'s per-column type
//! map, a small initial copy (a table read whole in one snapshot, loaded in one green transaction
//! with its position), streaming with checkpoints and lag, teardown. The chunked copy, `verify`, the
//! cutover and the rollback of a composition are refused, naming what is missing, until built.

pub(crate) mod admin;
pub(crate) mod family;
pub(crate) mod mysql_to_pg;
pub(crate) mod stream;

use crate::config::Config;
use crate::error::Error;
use crate::source::{Names, Source};
use crate::status::Status;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;
use turnout_decoders::event::Row;
use turnout_decoders::schema::{TableName, TableSchema};
use turnout_decoders::Position;
use turnout_sinks::Sink;

pub(crate) use admin::Composed;

/// One of blue's tables as its catalog describes it, before any conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlueTable {
    pub name: TableName,
    /// Each column's name and its type as blue prints it (`int`, `bigint unsigned`, `varchar(20)`).
    pub columns: Vec<(String, String)>,
    /// The primary key's columns, in key order.
    pub key: Vec<String>,
    /// turnout's own heartbeat table.
    pub heartbeat: bool,
}

/// A consistent read of some of blue's tables and the log position it is consistent with.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub position: Option<Position>,
    /// Each table's rows, values as the stream would carry them (blue's types).
    pub rows: Vec<(TableName, Vec<Row>)>,
}

/// What blue does, whatever engine green is.
pub(crate) trait SourceSide: Sized + Send + Sync + 'static {
    /// Blue's change stream.
    type Stream: Source;

    /// The engine, as messages name it (`MySQL/MariaDB`).
    const ENGINE: &'static str;

    /// Blue of `config`, for the stream `names`.
    fn new(config: &Config, names: &Names) -> Result<Self, Error>;

    /// How `[tables]` patterns name blue's tables.
    fn name_rules(config: &Config) -> Result<crate::tables::NameRules, Error>;

    /// `check`'s findings on blue: its settings, privileges and tables, read only.
    fn check(&self) -> impl Future<Output = crate::source::contract::report::Findings> + Send;

    /// Prepares blue for a stream: turnout's heartbeat table.
    fn prepare(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// turnout's heartbeat table on blue.
    fn heartbeat_table(&self) -> TableName;

    /// The tables the configuration selects, read only, and turnout's heartbeat table (as
    /// [`SourceSide::prepare`] makes it, whether it exists yet or not).
    fn select(&self) -> impl Future<Output = Result<Vec<BlueTable>, Error>> + Send;

    /// Reads `tables` in one consistent snapshot, with the log position it is consistent with;
    /// refuses a table of more than `max_rows` rows, naming it.
    fn snapshot(&self, tables: &[BlueTable], max_rows: usize) -> impl Future<Output = Result<Snapshot, Error>> + Send;

    /// Blue's change stream from just after `from`.
    fn open_stream(&self, from: &Position) -> impl Future<Output = Result<Self::Stream, Error>> + Send;

    /// Writes heartbeats on blue until `shutdown` turns true (see [`crate::source::SourceAdmin::heartbeat`]).
    fn heartbeat(&self, status: Arc<Status>, shutdown: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static;

    /// Drops what preparing made on blue; one line per thing done.
    fn teardown(&self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
}

/// What green does, whatever engine blue is.
pub(crate) trait TargetSide: Sized + Send + Sync + 'static {
    /// Green's apply session.
    type Sink: Sink;

    /// The engine, as messages name it (`PostgreSQL`).
    const ENGINE: &'static str;

    /// Green of `config`, for the stream `names`.
    fn new(config: &Config, names: &Names) -> Result<Self, Error>;

    /// The position green recorded for this stream, if it has one.
    fn recorded(&self) -> impl Future<Output = Result<Option<Position>, Error>> + Send;

    /// Creates each of `tables` (as the conversion translated them) that green lacks, and loads
    /// `rows` into them with `position` recorded in the same green transaction. A table green has
    /// already must hold the same columns and no row.
    fn load(&self, tables: &[TableSchema], rows: &[(TableName, Vec<Row>)], position: &Position) -> impl Future<Output = Result<(), Error>> + Send;

    /// Opens green's apply session, bound to the stream's progress record.
    fn open_sink(&self) -> impl Future<Output = Result<Self::Sink, Error>> + Send;

    /// Drops what the stream made on green (its progress record, the heartbeat table's copy); one
    /// line per thing done.
    fn teardown(&self, heartbeat: &[TableName]) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
}

/// How far a column's values survive the conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Every value blue can hold arrives unchanged and goes back unchanged.
    Exact,
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Class::Exact => "exact",
        })
    }
}

/// One column's place in the type map: green's type and its class, or why it is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mapping {
    Mapped { green: String, class: Class },
    Refused { why: String },
}

/// The value conversion between blue's engine and green's: one type map, used alike by the copy,
/// the stream and `check`. A value it cannot carry exactly stops replication naming the table, the
/// column and the value; it is never changed on the way. Tables keep their names: blue's database
/// (MySQL's schema) is green's schema.
pub(crate) trait Convert: Send + Sync + 'static {
    /// The type map: where a column of blue's type `blue` (as blue's catalog prints it) goes.
    fn map(&self, blue: &str) -> Mapping;

    /// The table as green holds it, from blue's catalog: each column's type translated. Refuses
    /// naming the first column the map refuses.
    fn catalog_schema(&self, table: &BlueTable) -> Result<TableSchema, Error>;

    /// The table as green holds it, from blue's stream (a relation): each column's type translated.
    /// Refuses naming the first column the map refuses.
    fn schema(&self, blue: &TableSchema) -> Result<TableSchema, Error>;

    /// `row` (values as blue's stream carries them) as `green` ([`Convert::schema`] or
    /// [`Convert::catalog_schema`] of the table) holds it; refuses naming the column and the value
    /// that would not arrive exactly.
    fn row(&self, green: &TableSchema, row: Row) -> Result<Row, Error>;
}
