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
//! map, the initial copy (tables read in one snapshot, loaded in one green transaction with its
//! position), streaming with checkpoints and lag, `verify` and `verify --live`, the cutover, the
//! stream back and the rollback, teardown. What is not built is refused by [`family::Unbuilt`],
//! naming it.

pub(crate) mod actions;
pub(crate) mod admin;
pub(crate) mod back;
pub(crate) mod charset;
pub(crate) mod cutover;
pub(crate) mod ddl;
pub(crate) mod family;
pub(crate) mod live;
pub(crate) mod mysql_to_pg;
pub(crate) mod rollback;
pub(crate) mod stream;
pub(crate) mod verify;

use crate::config::Config;
use crate::error::Error;
use crate::source::{Names, Source};
use crate::status::Status;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;
use turnout_decoders::event::Row;
use turnout_decoders::schema::{quote_ident, TableName, TableSchema};
use turnout_decoders::{Position, Value};
use turnout_sinks::Sink;

pub(crate) use admin::Composed;

/// One of blue's columns as its catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlueColumn {
    pub name: String,
    /// The type as blue prints it (`int(11)`, `bigint unsigned`, `varchar(20)`), lower case.
    pub column_type: String,
    /// The character set of a character column (`utf8mb4`), `None` for others.
    pub charset: Option<String>,
    /// How that set's bytes spell characters as blue converts them, when it is a single-byte set
    /// other than UTF-8's (`latin1`, `cp1251`) or a Unicode encoding (`utf16`); `None` for UTF-8,
    /// for other multi-byte sets and for other columns.
    pub encoding: Option<Arc<charset::Encoding>>,
    /// For a column in a UTF-8 set: the ids of blue's collations of every other set, which its
    /// binlog column must not carry (a column converted outside the binlog); `None` when not read.
    pub foreign_collations: Option<Arc<Vec<u16>>>,
    pub nullable: bool,
    /// Computed by blue's server from an expression (a generated column).
    pub generated: bool,
    /// Numbered by blue's server (`AUTO_INCREMENT`).
    pub auto_increment: bool,
    /// Blue's default as SQL: a constant quoted as a string literal (`'0'`, `'new'`; MariaDB leaves a
    /// number bare) or an expression (`current_timestamp()`); `None` for none or `DEFAULT NULL`. A
    /// constant is carried to green where the type map can hold it ([`Convert::green_default`]); the
    /// cutover refuses the others unless kept.
    pub default: Option<String>,
    /// Set by blue's server when the row changes (`ON UPDATE CURRENT_TIMESTAMP`). Not carried either.
    pub on_update: bool,
    /// The collation of a character column (`utf8mb4_0900_ai_ci`), `None` for others: what blue's
    /// unique keys compare by.
    pub collation: Option<String>,
}

impl BlueColumn {
    /// A column of turnout's own: `NOT NULL`, not generated, no character set.
    pub(crate) fn own(name: &str, column_type: &str) -> BlueColumn {
        BlueColumn {
            name: name.to_owned(),
            column_type: column_type.to_owned(),
            charset: None,
            encoding: None,
            foreign_collations: None,
            nullable: false,
            generated: false,
            auto_increment: false,
            default: None,
            on_update: false,
            collation: None,
        }
    }
}

/// One of blue's tables as its catalog describes it, before any conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlueTable {
    pub name: TableName,
    pub columns: Vec<BlueColumn>,
    /// The primary key's columns, in key order.
    pub key: Vec<String>,
    /// turnout's own heartbeat table.
    pub heartbeat: bool,
    /// Its indexes other than the primary key.
    pub indexes: Vec<BlueIndex>,
    /// Its foreign keys.
    pub foreign_keys: Vec<BlueForeignKey>,
    /// The next value of its `AUTO_INCREMENT` column, if it has one.
    pub next_auto_increment: Option<u64>,
}

impl BlueTable {
    /// Whether `other` defines the same table: the same columns, keys, indexes and foreign keys (the
    /// counter's next value moves with every insert and is not part of it).
    pub(crate) fn same_definition(&self, other: &BlueTable) -> bool {
        self.name == other.name
            && self.columns == other.columns
            && self.key == other.key
            && self.indexes == other.indexes
            && self.foreign_keys == other.foreign_keys
    }

    /// A table of turnout's own, keyed by `key`, without indexes or foreign keys.
    pub(crate) fn own(name: TableName, columns: Vec<BlueColumn>, key: &str) -> BlueTable {
        BlueTable { name, columns, key: vec![key.to_owned()], heartbeat: true, indexes: Vec::new(), foreign_keys: Vec::new(), next_auto_increment: None }
    }
}

/// An index of a blue table other than its primary key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlueIndex {
    pub name: String,
    pub unique: bool,
    /// Each column, and the length of a prefix index on it.
    pub columns: Vec<(String, Option<u32>)>,
    /// `BTREE`, `HASH`, `FULLTEXT`, `SPATIAL`.
    pub kind: String,
}

/// A foreign key of a blue table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlueForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub parent: TableName,
    pub parent_columns: Vec<String>,
    /// `CASCADE`, `SET NULL`, `RESTRICT`, `NO ACTION`, `SET DEFAULT`.
    pub on_update: String,
    pub on_delete: String,
    /// Whether blue writes the rows its actions change to its log (then green must not repeat the
    /// action while it applies blue's rows; otherwise it must).
    pub actions_logged: bool,
}

impl BlueForeignKey {
    /// Whether the rule (`on_update` or `on_delete`) changes the referring rows.
    pub fn acts(rule: &str) -> bool {
        !matches!(rule.to_ascii_uppercase().as_str(), "RESTRICT" | "NO ACTION")
    }
}

/// A table as green is to hold it: the schema the stream's rows are converted to, and the text of
/// each column's definition (name, type, `NOT NULL`, the `CHECK` that keeps green's values within
/// what blue can hold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GreenTable {
    pub schema: TableSchema,
    pub definitions: Vec<String>,
    /// Whether each column is `NOT NULL`, in column order.
    pub not_null: Vec<bool>,
    /// Whether each column must have a `DEFAULT` on green, in column order: `Some(true)` where the
    /// type map carries blue's, `Some(false)` where blue has none, `None` where blue's is not carried
    /// (the operator's to make and keep).
    pub has_default: Vec<Option<bool>>,
    /// Statements run once the table holds the copy: its indexes, its identity moved to blue's next
    /// `AUTO_INCREMENT`.
    pub after: Vec<String>,
    /// Its indexes (their statements are in `after` too).
    pub indexes: Vec<GreenIndex>,
    /// Its foreign keys, added once every table holds its copy.
    pub references: Vec<String>,
    /// What of blue's table green does not hold, for the operator (a `FULLTEXT` index, a foreign key
    /// to a table not replicated).
    pub left_out: Vec<String>,
}

impl GreenTable {
    /// The statement that creates the table on green, in a schema of its own name, with its key
    /// (indexes, identity and foreign keys are [`GreenTable::after`] and [`GreenTable::references`]).
    pub(crate) fn create(&self) -> String {
        let mut columns = self.definitions.clone();
        let key = self.schema.columns.iter().filter(|c| c.is_key).map(|c| quote_ident(&c.name)).collect::<Vec<_>>();
        if self.schema.replica_identity != turnout_decoders::schema::ReplicaIdentity::Full && !key.is_empty() {
            columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        let name = &self.schema.name;
        format!(
            "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE {}.{} ({})",
            quote_ident(&name.schema),
            quote_ident(&name.schema),
            quote_ident(&name.name),
            columns.join(", ")
        )
    }
}

/// One of blue's indexes as green holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GreenIndex {
    /// Blue's name of it.
    pub blue: String,
    /// Green's name of it.
    pub name: String,
    /// The statement that creates it.
    pub statement: String,
}

/// One of green's tables as it is, for carrying blue's DDL ([`ddl`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GreenShape {
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// The names of its indexes other than the primary key's.
    pub indexes: Vec<String>,
    /// Every relation name in its schema (tables, indexes, sequences, views): names a new index
    /// must not take.
    pub taken: Vec<String>,
}

/// Values of a lossy column that green cannot hold exactly, which `check` counts on blue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Affected {
    /// A date with a zero year, month or day (`0000-00-00`, `2024-00-10`).
    ZeroDate,
    /// A string holding the byte 0.
    NulByte,
    /// An unsigned 64-bit value above the signed range (2⁶³ − 1).
    AboveSigned,
    /// A geometry other than a `POINT` of SRID 0.
    NotPlanePoint,
    /// A JSON document holding a typed date or time, the character U+0000 or a negative zero.
    JsonInexact,
    /// A string in a character set other than UTF-8 holding U+0000, or bytes the set converts to no
    /// character of their own ([`charset::Encoding`]).
    NulOrUnconverted,
}

impl std::fmt::Display for Affected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Affected::ZeroDate => "a zero date (year, month or day 0)",
            Affected::NulByte => "a NUL byte",
            Affected::AboveSigned => "a value above 9223372036854775807",
            Affected::NotPlanePoint => "a geometry other than a POINT of SRID 0",
            Affected::JsonInexact => "a JSON document holding a typed DATE/TIME/DATETIME scalar, \\u0000 or -0.0",
            Affected::NulOrUnconverted => "a NUL byte, or a byte the column's character set converts to no character of its own",
        })
    }
}

/// Rows of one table (its index in the list [`SourceSide::snapshot`] was given), a batch at a time.
pub(crate) type Batch = Result<(usize, Vec<Row>), Error>;

/// Rows a snapshot batch holds: the copy's memory is bounded by a few batches.
pub(crate) const BATCH_ROWS: usize = 1_000;

/// A consistent read of blue's tables: the log position it is consistent with, and the rows, table
/// after table, in batches of at most [`BATCH_ROWS`] through a channel of a few batches.
#[allow(missing_debug_implementations)]
pub(crate) struct Snapshot {
    pub position: Position,
    pub batches: tokio::sync::mpsc::Receiver<Batch>,
    /// The task reading blue: the channel's end is the snapshot's end only if it finished.
    pub reader: tokio::task::JoinHandle<()>,
}

/// What blue does, whatever engine green is.
pub(crate) trait SourceSide: Sized + Send + Sync + 'static {
    /// Blue's change stream.
    type Stream: Source;

    /// Blue's part of a cutover: its fence and sentinel.
    type Fenced: cutover::FencedSide;

    /// The engine, as messages name it (`MySQL/MariaDB`).
    const ENGINE: &'static str;

    /// The kind of URL blue's engine has.
    const KIND: crate::config::SourceKind;

    /// Blue of `config`, for the stream `names`.
    fn new(config: &Config, names: &Names) -> Result<Self, Error>;

    /// How `[tables]` patterns name blue's tables.
    fn name_rules(config: &Config) -> Result<crate::tables::NameRules, Error>;

    /// `check`'s findings on blue: its settings, privileges and tables, read only.
    fn check(&self) -> impl Future<Output = crate::source::contract::report::Findings> + Send;

    /// How many rows of `table` hold in `column` a value of the kind `what` (`check`'s count of a
    /// lossy column's affected rows).
    fn affected(&self, table: &TableName, column: &str, what: Affected) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Prepares blue for a stream: turnout's heartbeat table.
    fn prepare(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// turnout's heartbeat table on blue.
    fn heartbeat_table(&self) -> TableName;

    /// The tables the configuration selects, read only, and turnout's heartbeat table (as
    /// [`SourceSide::prepare`] makes it, whether it exists yet or not).
    fn select(&self) -> impl Future<Output = Result<Vec<BlueTable>, Error>> + Send;

    /// [`SourceSide::select`] as a reader the stream keeps, to read blue's catalog of the tables a
    /// statement names again when blue's DDL reaches it (one table's catalog, not the selection's).
    fn reread(&self) -> stream::Reread;

    /// Opens one consistent snapshot of `tables` at a log position and reads them into the
    /// snapshot's channel (values as blue's stream would carry them); a failure is the channel's
    /// last item.
    fn snapshot(&self, tables: &[BlueTable]) -> impl Future<Output = Result<Snapshot, Error>> + Send;

    /// Blue's change stream from just after `from`.
    fn open_stream(&self, from: &Position) -> impl Future<Output = Result<Self::Stream, Error>> + Send;

    /// Writes heartbeats on blue until `shutdown` turns true (see [`crate::source::SourceAdmin::heartbeat`]).
    fn heartbeat(&self, status: Arc<Status>, shutdown: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static;

    /// Drops what preparing made on blue; one line per thing done.
    fn teardown(&self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Blue's apply session for the way back (the rollback window), bound to the reverse stream
    /// `stream`'s progress record on blue.
    type BackSink: Sink;

    /// Opens [`SourceSide::BackSink`].
    fn open_back_sink(&self, stream: &str) -> impl Future<Output = Result<Self::BackSink, Error>> + Send;

    /// Before the reverse stream applies to blue (every attempt): blue takes turnout's own writes
    /// while it stays fenced for applications, and `hand_off` is the stream's recorded position
    /// unless it has one. Idempotent.
    fn open_for_back(&self, stream: &str, hand_off: &Position) -> impl Future<Output = Result<(), Error>> + Send;

    /// Drops the reverse stream's progress record on blue, if it exists; one line per thing done.
    fn drop_back(&self, stream: &str) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
}

/// What green does, whatever engine blue is.
pub(crate) trait TargetSide: Sized + Send + Sync + 'static {
    /// Green's apply session.
    type Sink: Sink;

    /// Green's part of a cutover: its tables and counters.
    type Opened: cutover::OpenedSide;

    /// The engine, as messages name it (`PostgreSQL`).
    const ENGINE: &'static str;

    /// Green of `config`, for the stream `names`.
    fn new(config: &Config, names: &Names) -> Result<Self, Error>;

    /// The position green recorded for this stream, if it has one.
    fn recorded(&self) -> impl Future<Output = Result<Option<Position>, Error>> + Send;

    /// Records `position` as this stream's unless it has one: a generation a rollback armed starts
    /// there, green holding everything before it. The tables the stream `previous` (the generation
    /// before) made on green are this stream's too ([`TargetSide::created`]).
    fn begin_at(&self, position: &Position, previous: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Creates each of `tables` (as the conversion translated them) that green lacks, and loads the
    /// `batches` (rows as green holds them, of `tables[i]`) into them with `position` recorded, in
    /// one green transaction: green holds the snapshot exactly when it holds its position. A table
    /// green has already must hold no row (its columns are checked against the conversion's by the
    /// sink).
    fn load<B>(&self, tables: &[GreenTable], batches: B, position: &Position) -> impl Future<Output = Result<(), Error>> + Send
    where
        B: futures_util::Stream<Item = Batch> + Send + Unpin;

    /// The foreign keys (`(table, constraint)`) whose actions green repeats for replicated rows.
    fn acting_keys(&self) -> impl Future<Output = Result<Vec<(TableName, String)>, Error>> + Send;

    /// A reader of green's tables as they are (`None` for a table green lacks), which the stream
    /// keeps to carry blue's DDL.
    fn shapes(&self) -> stream::GreenShapes;

    /// Those of `tables` green lacks, read at once.
    fn lacking(&self, tables: &[TableName]) -> impl Future<Output = Result<Vec<TableName>, Error>> + Send;

    /// The statement that records, with green's table of a `CREATE TABLE` the stream carried, that
    /// the stream made it (applied in the same green transaction).
    fn record_created(&self) -> stream::RecordCreated;

    /// Those of `tables` this stream made on green from blue's `CREATE TABLE`
    /// ([`TargetSide::record_created`]): selected since, and whole on green.
    fn created(&self, tables: &[TableName]) -> impl Future<Output = Result<Vec<TableName>, Error>> + Send;

    /// Forgets every table the stream made other than `selected` (left out of the selection: letting
    /// one in again is refused like any table the copy did not copy).
    fn forget_created(&self, selected: &[TableName]) -> impl Future<Output = Result<(), Error>> + Send;

    /// Opens green's apply session, bound to the stream's progress record.
    fn open_sink(&self) -> impl Future<Output = Result<Self::Sink, Error>> + Send;

    /// The canonical text of `value` (not NULL) of green's `column`, as [`verify`] compares it and as
    /// [`TargetSide::digest`] has green print it.
    fn canonical(column: &turnout_decoders::schema::Column, value: &turnout_decoders::Value) -> Result<String, Error>;

    /// Count and digest of `table`'s rows on green, each row's canonical text printed by green.
    fn digest(&self, table: &GreenTable) -> impl Future<Output = Result<verify::Digest, Error>> + Send;

    /// Drops what the stream made on green (its progress record, the heartbeat table's copy); one
    /// line per thing done.
    fn teardown(&self, heartbeat: &[TableName]) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Green's change stream for the way back (the rollback window).
    type BackStream: Source;

    /// Checks, changing nothing, that green can be armed for a stream back to blue; the error names
    /// the setting and the fix (`cutover.reverse = false` to go without).
    fn may_arm_back(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Arms the stream back under `names`: `tables` published on green and its slot created. Returns
    /// the hand-off position: every write green takes after the switch commits after it, and what the
    /// forward apply commits after it is marked as `forward`'s (the sink's replication origin), which
    /// the stream back drops — refused when green has no such origin. Called before the fence. An
    /// earlier attempt's leftovers are replaced.
    fn arm_back(&self, names: &Names, tables: &[TableName], forward: &str) -> impl Future<Output = Result<Position, Error>> + Send;

    /// Green's stream `names` from just after `from`, dropping what the forward apply `forward`
    /// wrote.
    fn open_back_stream(
        &self,
        names: &Names,
        from: &Position,
        forward: &str,
        receive_timeout: std::time::Duration,
    ) -> impl Future<Output = Result<Self::BackStream, Error>> + Send;

    /// Writes heartbeats on green for the stream `names` until `shutdown` turns true.
    fn back_heartbeat(
        &self,
        names: &Names,
        interval: std::time::Duration,
        status: Arc<Status>,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Drops the stream back's objects on green (slot, publication), each if it exists; one line per
    /// thing done.
    fn drop_back(&self, names: &Names) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
}

/// How far a column's values survive the conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Every value blue can hold arrives unchanged, and green holds no value blue could not.
    Exact,
    /// Every value blue can hold arrives unchanged; green would also accept values blue would not
    /// (the mapping's note says which).
    Widened,
    /// Some values blue can hold cannot arrive exactly: `check` counts them on blue, the copy and the
    /// stream stop at the first, naming its row and column.
    Lossy,
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Class::Exact => "exact",
            Class::Widened => "widened",
            Class::Lossy => "lossy",
        })
    }
}

/// One column's place in the type map: green's type, its class and why, or why it is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mapping {
    Mapped {
        green: String,
        class: Class,
        note: &'static str,
        affected: Option<Affected>,
        /// What the values green cannot hold become, accepted by the operator in `convert.accept`.
        accepted: Option<crate::config::convert::Becomes>,
    },
    Refused {
        why: String,
    },
}

/// The value conversion between blue's engine and green's: one type map, used alike by the copy,
/// the stream and `check`, always from blue's catalog (the stream's own description of a table is
/// only checked against it). A value it cannot carry exactly stops replication naming the table,
/// the row and the column; it is never changed on the way. Tables keep their names: blue's database
/// (MySQL's schema) is green's schema.
pub(crate) trait Convert: Send + Sync + 'static {
    /// The conversion `config` asks for (its accepted lossy mappings).
    fn from_config(config: &Config) -> Self
    where
        Self: Sized;

    /// The type map: where `column` of `table` goes (a column's place in the table's keys can
    /// decide it).
    fn map(&self, table: &BlueTable, column: &BlueColumn) -> Mapping;

    /// The table as green is to hold it. Refuses naming the first column the map refuses.
    fn green(&self, table: &BlueTable) -> Result<GreenTable, Error>;

    /// `row` (values as blue's stream or snapshot carries them, in `table`'s column order) as green
    /// holds it; refuses naming the row's key, the column and the value that would not arrive
    /// exactly.
    fn row(&self, table: &BlueTable, row: Row) -> Result<Row, Error>;

    /// `key` (the values of `table`'s key columns in `key_columns`' order) as green holds them.
    fn key(&self, table: &BlueTable, key_columns: &[usize], key: Row) -> Result<Row, Error>;

    /// Green's `DEFAULT` for `column` of `table` when its default on blue is a constant green holds
    /// exactly; `None` when it has none or it is not carried (an expression, a function, a zero date:
    /// the cutover refuses those unless kept).
    fn green_default(&self, table: &BlueTable, column: &BlueColumn) -> Option<String>;

    /// The way back: `table` as blue's apply session takes its rows.
    fn back_schema(&self, table: &BlueTable) -> Result<TableSchema, Error>;

    /// The way back: `row` as green's stream carries it (in `table`'s column order) as blue holds it;
    /// refuses naming the row's key, the column and the value that would not arrive exactly (which
    /// green's guard keeps from being written at all).
    fn back_row(&self, table: &BlueTable, row: Row) -> Result<Row, Error>;

    /// The way back: `key` (values of `key_columns`) as blue holds it.
    fn back_key(&self, table: &BlueTable, key_columns: &[usize], key: Row) -> Result<Row, Error>;

    /// What of `table` green could accept that blue could not take back and that no guard on green
    /// keeps out, one line each naming it and the fix: a cutover with a way back refuses while any is
    /// left.
    fn unguarded(&self, table: &BlueTable) -> Vec<String>;
}

/// A value as a message shows it.
pub(crate) fn shown(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int8(i) => i.to_string(),
        Value::UInt8(u) => u.to_string(),
        Value::Numeric(t) | Value::Text(t) | Value::Temporal(_, t) => format!("'{t}'"),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.contains('\0') => format!("'{s}'"),
            _ => format!("0x{}", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
        },
        other => format!("{other:?}"),
    }
}

/// The row's key as a message names it (`id = 5`).
pub(crate) fn key_text(table: &BlueTable, row: &Row) -> String {
    let at = |name: &String| table.columns.iter().position(|c| c.name == *name);
    let named: Vec<String> = table.key.iter().filter_map(|k| Some(format!("{k} = {}", shown(row.get(at(k)?)?)))).collect();
    if named.is_empty() {
        "a row without a key".into()
    } else {
        named.join(", ")
    }
}

/// `name` as PostgreSQL keeps it: its first 63 bytes, cut on a character boundary.
pub(crate) fn pg_name(name: &str) -> String {
    let mut name = name.to_owned();
    while name.len() > 63 {
        name.pop();
    }
    name
}
