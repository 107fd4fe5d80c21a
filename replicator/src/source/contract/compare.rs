//! What a source family provides to `turnout verify` and `verify --live` ([`crate::verify`]): the
//! per-table result, and the live-verify [`Backend`] — how both sides' snapshots are taken at one
//! source position and how a chunk is read.

use crate::error::{Error, Side};
use std::time::{Duration, Instant};
use turnout_decoders::schema::TableName;
use turnout_decoders::Position;

/// The name of the check of every definition, as `turnout verify` prints it.
pub const DEFINITIONS: &str = "definitions";

/// One table's comparison.
#[derive(Debug, PartialEq, Eq)]
pub struct TableCheck {
    pub table: String,
    pub blue_rows: i64,
    pub green_rows: i64,
    pub equal: bool,
    /// What the operator should know beyond equal or not: columns the sides do not share.
    pub notes: Vec<String>,
}

/// A key's value: the text of each key column.
pub type Key = Vec<String>;

/// A table as blue's snapshot shows it.
#[derive(Clone, Debug)]
pub struct Shape {
    pub table: TableName,
    /// Column names, in blue's order.
    pub columns: Vec<String>,
    /// The key columns' positions in `columns` and their types (as the backend names them), in key
    /// order; empty when the table has no key.
    pub key: Vec<(usize, String)>,
    /// Read with `ONLY`: the table's own rows without its inheritance children's (PostgreSQL's
    /// ordinary tables).
    pub only: bool,
}

/// Count and hash sum of a range's rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sum {
    pub rows: i64,
    pub hash: String,
}

/// A range of keys: above `lower` (from the start when none) up to and including `upper` (to the end
/// when none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub lower: Option<Key>,
    pub upper: Option<Key>,
}

/// A range's rows: each one's key and the text of every column.
pub type Rows = Vec<(Key, Vec<Option<String>>)>;

/// The running sidecar's hold on its apply, as verify drives it.
pub trait HoldDriver: Sync {
    /// Sends one step (`arm`, `at`, `release`); `at` returns when green holds there — true — or at once
    /// with false when the sidecar had already applied past the position (it was not armed).
    fn step(&self, step: &str, position: Option<&Position>, ttl: Duration) -> impl std::future::Future<Output = Result<bool, Error>> + Send;
}

/// Every worker's source and target session, in snapshots at one source position.
#[allow(missing_debug_implementations)]
pub struct Snapshots<S> {
    pub blue: Vec<S>,
    pub green: Vec<S>,
    /// The source position both sides show.
    pub position: Position,
    pub taken: Instant,
}

/// How long the sidecar stays armed unless verify renews it.
pub const ARM_TTL: Duration = Duration::from_secs(6);

/// How long green may take to reach the position (catching up a backlog applies as usual meanwhile).
pub const AT_TTL: Duration = Duration::from_secs(60);

/// One kind of server's part of a live verify: which tables, how both sides' snapshots are taken at
/// one source position, and how a chunk is read. "blue" is the source and "green" the target (the
/// other way round in the rollback window).
pub(crate) trait Backend: Sync {
    /// A worker's session on one side, inside its snapshot.
    type Session: Sync;
    /// The tables compared: those replicated, or only `only`.
    fn tables(&self, only: Option<&str>) -> impl std::future::Future<Output = Result<Vec<TableName>, Error>> + Send;
    /// `host:port/database` of the source (a progress file is resumed only for the same one).
    fn source(&self) -> Result<String, Error>;
    /// Source rows of `tables` from the server's statistics (for the ETA).
    async fn estimate_rows(&self, tables: &[TableName]) -> Option<u64>;
    /// Snapshots for `workers` workers at one source position.
    async fn take<H: HoldDriver>(&self, hold: &H, workers: usize, slot_timeout: Duration) -> Result<Snapshots<Self::Session>, Error>;
    /// The shapes of `tables` in `blue`'s snapshot.
    async fn shapes(&self, blue: &Self::Session, tables: &[TableName]) -> Result<Vec<Shape>, Error>;
    /// The smallest and largest key in `session`'s snapshot when the key is one integer column (and
    /// the table has rows): chunks are then cut by value (see `verify::step`). `None` otherwise.
    async fn span(&self, _shape: &Shape, _session: &Self::Session, _side: Side) -> Result<Option<(i128, i128)>, Error> {
        Ok(None)
    }
    /// The key of the `n`th row (1-based) of `range` in key order, if it has that many rows.
    async fn boundary(&self, shape: &Shape, session: &Self::Session, range: &Range, n: i64, side: Side) -> Result<Option<Key>, Error>;
    /// Count and hash sum of `range`'s rows.
    async fn sum(&self, shape: &Shape, session: &Self::Session, range: &Range, side: Side) -> Result<Sum, Error>;
    /// Every row of `range`.
    async fn rows(&self, shape: &Shape, session: &Self::Session, range: &Range, side: Side) -> Result<Rows, Error>;
    /// Per table, the columns only the target has: compared rows are the source's columns, so these
    /// are named beside the result instead of going unseen.
    async fn target_only_columns(&self, tables: &[TableName]) -> Result<Vec<(TableName, Vec<String>)>, Error>;
}
