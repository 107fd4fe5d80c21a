//! `turnout verify --live` for a composed pair: blue and green compared at one position of blue's
//! log while writes go on, chunk by chunk, by the canonical text of every value
//! ([`super::verify`]).
//!
//! **Snapshots.** Blue's side opens its workers' sessions in one consistent snapshot at a log
//! position P ([`LiveBlue::readers`]); the running sidecar holds its apply at P while each worker's
//! green session, connected before, takes its own snapshot ([`LiveGreen::begin`]), then lets go.
//! When the sidecar had applied past P before it heard of it, the snapshots are taken again with the
//! hold armed first.
//!
//! **Chunks.** Only a primary key of integer columns is cut into ranges: both engines order it
//! alike, and a range travels as numbers. Any other key (a string under blue's collation, a date)
//! orders differently on the two engines, so that table is compared whole, streamed through the
//! digest (never held in memory): a difference there is found, not located. Blue's rows are converted
//! by the type map and printed canonically here; green prints its own ([`LiveGreen::visit`]): a value
//! the conversion would change shows as a difference.
//!
//! **The rollback window** compares the other way: green is the source, its sessions in one snapshot
//! exported by a temporary logical slot ([`LiveGreen::exported`]), and blue's sessions take theirs while
//! the sidecar holds the stream back at the slot's consistent point. The rows are compared as above.

use super::verify::{field, Digest};
use super::{BlueTable, Convert, GreenTable, SourceSide, TargetSide};
use crate::config::Config;
use crate::error::{Error, Side};
use crate::source::contract::compare::{Backend, HoldDriver, Key, Range, Rows, Shape, Snapshots, Sum, ARM_TTL, AT_TTL};
use crate::source::Names;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use turnout_decoders::event::Row;
use turnout_decoders::schema::Column;
use turnout_decoders::{Position, TableName};

/// A range of an integer key as both engines read it: above `lower` (from the start when none) up
/// to and including `upper` (to the end when none), compared as a row of values (`(a, b) > (1, 2)`),
/// which MySQL and PostgreSQL order alike for integers. No columns: the whole table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyRange {
    pub columns: Vec<String>,
    pub lower: Option<Vec<i128>>,
    pub upper: Option<Vec<i128>>,
}

impl KeyRange {
    /// The `WHERE` condition, each column quoted by `quote` (`TRUE` for the whole table). The values
    /// are numbers, written into the text.
    pub(crate) fn condition(&self, quote: impl Fn(&str) -> String) -> String {
        if self.columns.is_empty() {
            return "TRUE".into();
        }
        let columns = self.order(&quote);
        let tuple = |key: &[i128]| key.iter().map(i128::to_string).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if let Some(lower) = &self.lower {
            parts.push(format!("({columns}) > ({})", tuple(lower)));
        }
        if let Some(upper) = &self.upper {
            parts.push(format!("({columns}) <= ({})", tuple(upper)));
        }
        if parts.is_empty() {
            "TRUE".into()
        } else {
            parts.join(" AND ")
        }
    }

    /// The key columns, quoted, in key order (`ORDER BY` and `SELECT` lists).
    pub(crate) fn order(&self, quote: impl Fn(&str) -> String) -> String {
        self.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
    }

    /// `range` of `shape`'s key; refuses a bound that is not the key's numbers.
    fn of(shape: &Shape, range: &Range) -> Result<KeyRange, Error> {
        let numbers = |key: &Option<Key>| -> Result<Option<Vec<i128>>, Error> {
            key.as_ref()
                .map(|k| {
                    k.iter()
                        .map(|v| v.parse::<i128>().map_err(|_| Error::Internal(format!("verify's key bound {v:?} of {} is not an integer", shape.table))))
                        .collect()
                })
                .transpose()
        };
        Ok(KeyRange {
            columns: shape.key.iter().map(|(i, _)| shape.columns[*i].clone()).collect(),
            lower: numbers(&range.lower)?,
            upper: numbers(&range.upper)?,
        })
    }
}

/// A consumer of rows: called once per row, in no particular order.
pub(crate) type Each<'a, R> = &'a mut (dyn FnMut(R) -> Result<(), Error> + Send);

/// Blue's side of a live verify.
pub(crate) trait LiveBlue: SourceSide {
    /// A session inside blue's snapshot.
    type Reader: Send + 'static;

    /// `workers` sessions (at least one; fewer where blue cannot give several one point) in one
    /// consistent snapshot of blue, and the log position it shows: every transaction committed at or
    /// before it, no other.
    fn readers(&self, workers: usize) -> impl Future<Output = Result<(Vec<Self::Reader>, Position), Error>> + Send;

    /// The smallest and largest value of the integer `column` of `table` in the snapshot (`None`
    /// when it has no rows).
    fn key_span(&self, reader: &mut Self::Reader, table: &TableName, column: &str) -> impl Future<Output = Result<Option<(i128, i128)>, Error>> + Send;

    /// The key of the `n`th row (1-based) of `range` in key order, if it has that many rows.
    fn key_at(&self, reader: &mut Self::Reader, table: &TableName, range: &KeyRange, n: i64) -> impl Future<Output = Result<Option<Vec<i128>>, Error>> + Send;

    /// Every row of `table` in `range`, its values as blue's snapshot reads them, given to `each`.
    fn visit(&self, reader: &mut Self::Reader, table: &BlueTable, range: &KeyRange, each: Each<'_, Row>) -> impl Future<Output = Result<(), Error>> + Send;

    // In the rollback window blue is the side verify compares to: its sessions take their snapshots
    // while the sidecar holds the stream back's apply.
    /// A session, connected before the sidecar holds its apply.
    fn connect(&self) -> impl Future<Output = Result<Self::Reader, Error>> + Send;

    /// Takes `reader`'s snapshot now.
    fn begin(&self, reader: &mut Self::Reader) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Green's side of a live verify.
pub(crate) trait LiveGreen: TargetSide {
    /// A session inside green's snapshot.
    type Reader: Send + 'static;

    /// A session, connected before the sidecar holds its apply (connecting takes longer than the
    /// hold should last).
    fn connect(&self) -> impl Future<Output = Result<Self::Reader, Error>> + Send;

    /// Takes `reader`'s snapshot now (while the sidecar holds its apply).
    fn begin(&self, reader: &mut Self::Reader) -> impl Future<Output = Result<(), Error>> + Send;

    /// Whether green's `column` holds integers (a key of such columns is ranged).
    fn integer(column: &Column) -> bool;

    /// As [`LiveBlue::key_at`], on green.
    fn key_at(&self, reader: &mut Self::Reader, table: &TableName, range: &KeyRange, n: i64) -> impl Future<Output = Result<Option<Vec<i128>>, Error>> + Send;

    /// Every row of `table` in `range` as the canonical text of each column (`None` for NULL), in
    /// the table's column order, printed by green ([`TargetSide::canonical`]'s form), given to `each`.
    fn visit(
        &self,
        reader: &mut Self::Reader,
        table: &GreenTable,
        range: &KeyRange,
        each: Each<'_, Vec<Option<String>>>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    // In the rollback window green is the side verify compares from.
    /// As [`LiveBlue::key_span`], on green.
    fn key_span(&self, reader: &mut Self::Reader, table: &TableName, column: &str) -> impl Future<Output = Result<Option<(i128, i128)>, Error>> + Send;

    /// Puts every one of `readers` (connected, no transaction open) in one snapshot of green at a
    /// position of its log, which it returns: every transaction committed at or before it, no other.
    /// `armed`: the sidecar's hold is armed and renewed while this waits. `config` is the forward
    /// configuration (green is its target).
    fn exported<H: HoldDriver>(
        &self,
        config: &Config,
        hold: &H,
        armed: bool,
        readers: &[Self::Reader],
        slot_timeout: Duration,
    ) -> impl Future<Output = Result<Position, Error>> + Send;

    /// Ends the snapshot of each of `readers` (to take another).
    fn end(&self, readers: &[Self::Reader]) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A worker's session on one side.
#[allow(missing_debug_implementations)]
pub(crate) enum Session<B, G> {
    Blue(Mutex<B>),
    Green(Mutex<G>),
}

/// A composition's [`Backend`]: blue's side `S`, green's side `T`, the conversion `C`.
#[allow(missing_debug_implementations)]
pub(crate) struct ComposedLive<S, T, C> {
    config: Config,
    source: S,
    target: T,
    convert: Arc<C>,
    /// Each compared table as blue's catalog and the type map describe it ([`Backend::shapes`]).
    tables: std::sync::Mutex<HashMap<TableName, Arc<(BlueTable, GreenTable)>>>,
    /// The rollback window: green is the source compared from, blue the target.
    back: bool,
}

impl<S: LiveBlue, T: LiveGreen, C: Convert> ComposedLive<S, T, C> {
    pub(crate) fn new(config: &Config) -> Result<Self, Error> {
        let names = Names::none();
        Ok(ComposedLive {
            config: config.clone(),
            source: S::new(config, &names)?,
            target: T::new(config, &names)?,
            convert: Arc::new(C::from_config(config)),
            tables: std::sync::Mutex::new(HashMap::new()),
            back: false,
        })
    }

    /// The rollback window's: `swapped` is the configuration with blue and green swapped (its
    /// source is green).
    pub(crate) fn back(swapped: &Config) -> Result<Self, Error> {
        Ok(ComposedLive { back: true, ..ComposedLive::new(&crate::config::reversed(swapped))? })
    }

    fn table(&self, name: &TableName) -> Result<Arc<(BlueTable, GreenTable)>, Error> {
        let tables = self.tables.lock().map_err(|_| Error::Internal("verify's table map was poisoned".into()))?;
        tables.get(name).cloned().ok_or_else(|| Error::Internal(format!("verify read no shape of {name}")))
    }

    /// Every row of `range` on the side `session` is on, as canonical fields in green's column order.
    async fn visit(&self, shape: &Shape, session: &Session<S::Reader, T::Reader>, range: &Range, each: Each<'_, Vec<Option<String>>>) -> Result<(), Error> {
        let range = KeyRange::of(shape, range)?;
        let table = self.table(&shape.table)?;
        let (blue, green) = (&table.0, &table.1);
        match session {
            Session::Blue(reader) => {
                let convert = Arc::clone(&self.convert);
                let mut canonical = |row: Row| {
                    let row = convert.row(blue, row)?;
                    let fields = green
                        .schema
                        .columns
                        .iter()
                        .zip(&row)
                        .map(|(c, v)| if matches!(v, turnout_decoders::Value::Null) { Ok(None) } else { T::canonical(c, v).map(Some) })
                        .collect::<Result<Vec<_>, Error>>()?;
                    each(fields)
                };
                self.source.visit(&mut *reader.lock().await, blue, &range, &mut canonical).await
            }
            Session::Green(reader) => self.target.visit(&mut *reader.lock().await, green, &range, each).await,
        }
    }

    /// One try: blue's snapshots, the hold at their position and green's snapshots, on `green`'s
    /// sessions (connected before). `None` when the sidecar had already applied past the position
    /// (only when not `armed`).
    async fn attempt<H: HoldDriver>(
        &self,
        hold: &H,
        armed: bool,
        workers: usize,
        green: &mut [T::Reader],
    ) -> Result<Option<(Vec<S::Reader>, Position)>, Error> {
        if armed {
            hold.step("arm", None, ARM_TTL).await?;
        }
        let (blue, position) = self.source.readers(workers).await?;
        if !hold.step("at", Some(&position), AT_TTL).await? {
            return Ok(None);
        }
        for reader in green.iter_mut().take(blue.len()) {
            self.target.begin(reader).await?;
        }
        Ok(Some((blue, position)))
    }

    /// The rollback window's snapshots: green's at a position of its log (the source), blue's taken
    /// while the sidecar holds the stream back there.
    async fn take_back<H: HoldDriver>(&self, hold: &H, workers: usize, slot_timeout: Duration) -> Result<Snapshots<Session<S::Reader, T::Reader>>, Error> {
        let (mut green, mut blue) = (Vec::with_capacity(workers.max(1)), Vec::with_capacity(workers.max(1)));
        for _ in 0..workers.max(1) {
            green.push(self.target.connect().await?);
            blue.push(self.source.connect().await?);
        }
        for armed in [false, true] {
            let attempt = async {
                if armed {
                    hold.step("arm", None, ARM_TTL).await?;
                }
                let position = self.target.exported(&self.config, hold, armed, &green, slot_timeout).await?;
                if !hold.step("at", Some(&position), AT_TTL).await? {
                    return Ok(None);
                }
                for reader in &mut blue {
                    self.source.begin(reader).await?;
                }
                Ok::<_, Error>(Some(position))
            }
            .await;
            // Applying goes on in any case.
            let released = hold.step("release", None, Duration::from_secs(1)).await;
            match attempt? {
                Some(position) => {
                    released?;
                    return Ok(Snapshots {
                        blue: green.into_iter().map(|r| Session::Green(Mutex::new(r))).collect(),
                        green: blue.into_iter().map(|r| Session::Blue(Mutex::new(r))).collect(),
                        position,
                        taken: Instant::now(),
                    });
                }
                None => {
                    tracing::info!("the sidecar had applied past verify's position before it heard of it; again with the apply held first");
                    self.target.end(&green).await?;
                }
            }
        }
        Err(Error::Internal("the sidecar applied past verify's position although it was held".into()))
    }
}

/// A sum's text: the digest's parts.
fn sum_of(digest: Digest) -> Sum {
    Sum { rows: digest.rows, hash: digest.text() }
}

impl<S: LiveBlue, T: LiveGreen, C: Convert> Backend for ComposedLive<S, T, C> {
    type Session = Session<S::Reader, T::Reader>;

    /// Blue's selected tables (turnout's own left out), or only `only`.
    async fn tables(&self, only: Option<&str>) -> Result<Vec<TableName>, Error> {
        let selected = self.source.select().await?;
        Ok(selected.into_iter().filter(|t| !t.heartbeat && only.is_none_or(|o| o == t.name.to_string() || o == t.name.name)).map(|t| t.name).collect())
    }

    /// The side compared from: blue, or green in the rollback window.
    fn source(&self) -> Result<String, Error> {
        let url = if self.back { &self.config.target.url } else { &self.config.source.url };
        Ok(crate::config::address(url.expose()))
    }

    async fn estimate_rows(&self, _tables: &[TableName]) -> Option<u64> {
        None
    }

    async fn take<H: HoldDriver>(&self, hold: &H, workers: usize, slot_timeout: Duration) -> Result<Snapshots<Self::Session>, Error> {
        if self.back {
            return self.take_back(hold, workers, slot_timeout).await;
        }
        let mut green = Vec::with_capacity(workers.max(1));
        for _ in 0..workers.max(1) {
            green.push(self.target.connect().await?);
        }
        for armed in [false, true] {
            let attempt = self.attempt(hold, armed, workers, &mut green).await;
            // Applying goes on in any case.
            let released = hold.step("release", None, Duration::from_secs(1)).await;
            match attempt? {
                Some((blue, position)) => {
                    released?;
                    green.truncate(blue.len());
                    return Ok(Snapshots {
                        blue: blue.into_iter().map(|r| Session::Blue(Mutex::new(r))).collect(),
                        green: green.into_iter().map(|r| Session::Green(Mutex::new(r))).collect(),
                        position,
                        taken: Instant::now(),
                    });
                }
                None => tracing::info!("the sidecar had applied past verify's position before it heard of it; again with the apply held first"),
            }
        }
        Err(Error::Internal("the sidecar applied past verify's position although it was held".into()))
    }

    /// Blue's columns in blue's order (as green names them: the same); the key only when every
    /// column of it is an integer on green.
    async fn shapes(&self, _blue: &Self::Session, tables: &[TableName]) -> Result<Vec<Shape>, Error> {
        let selected = self.source.select().await?;
        let mut out = Vec::with_capacity(tables.len());
        for name in tables {
            let blue = selected.iter().find(|t| t.name == *name).ok_or_else(|| Error::Setup(format!("table {name} is gone from blue")))?;
            let green = self.convert.green(blue)?;
            let columns: Vec<String> = green.schema.columns.iter().map(|c| c.name.clone()).collect();
            let key: Vec<(usize, String)> = blue.key.iter().filter_map(|k| columns.iter().position(|c| c == k).map(|i| (i, String::new()))).collect();
            let ranged = !key.is_empty() && key.len() == blue.key.len() && key.iter().all(|(i, _)| T::integer(&green.schema.columns[*i]));
            out.push(Shape { table: name.clone(), columns, key: if ranged { key } else { Vec::new() }, only: false });
            self.tables.lock().map_err(|_| Error::Internal("verify's table map was poisoned".into()))?.insert(name.clone(), Arc::new((blue.clone(), green)));
        }
        Ok(out)
    }

    async fn span(&self, shape: &Shape, session: &Self::Session, _side: Side) -> Result<Option<(i128, i128)>, Error> {
        let [(i, _)] = shape.key.as_slice() else { return Ok(None) };
        let column = &shape.columns[*i];
        match session {
            Session::Blue(reader) => self.source.key_span(&mut *reader.lock().await, &shape.table, column).await,
            Session::Green(reader) => self.target.key_span(&mut *reader.lock().await, &shape.table, column).await,
        }
    }

    async fn boundary(&self, shape: &Shape, session: &Self::Session, range: &Range, n: i64, _side: Side) -> Result<Option<Key>, Error> {
        let range = KeyRange::of(shape, range)?;
        let key = match session {
            Session::Blue(reader) => self.source.key_at(&mut *reader.lock().await, &shape.table, &range, n).await?,
            Session::Green(reader) => self.target.key_at(&mut *reader.lock().await, &shape.table, &range, n).await?,
        };
        Ok(key.map(|k| k.iter().map(i128::to_string).collect()))
    }

    async fn sum(&self, shape: &Shape, session: &Self::Session, range: &Range, _side: Side) -> Result<Sum, Error> {
        let mut digest = Digest::default();
        let mut add = |fields: Vec<Option<String>>| {
            digest.add(&fields.iter().map(|f| field(f.as_deref())).collect::<Vec<_>>().join("|"));
            Ok(())
        };
        self.visit(shape, session, range, &mut add).await?;
        Ok(sum_of(digest))
    }

    async fn rows(&self, shape: &Shape, session: &Self::Session, range: &Range, _side: Side) -> Result<Rows, Error> {
        let mut rows = Vec::new();
        let mut keep = |fields: Vec<Option<String>>| {
            let key = shape.key.iter().map(|(i, _)| fields.get(*i).cloned().flatten().unwrap_or_default()).collect();
            rows.push((key, fields));
            Ok(())
        };
        self.visit(shape, session, range, &mut keep).await?;
        Ok(rows)
    }

    /// None: green's columns are the type map's of blue's, which the cutover proves table by table
    /// (a column green has beyond them refuses it).
    async fn target_only_columns(&self, _tables: &[TableName]) -> Result<Vec<(TableName, Vec<String>)>, Error> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_range_is_a_row_comparison_of_numbers_and_no_key_is_the_whole_table() {
        let quote = |c: &str| format!("`{c}`");
        let range = KeyRange { columns: vec!["a".into(), "b".into()], lower: Some(vec![1, -2]), upper: Some(vec![18_446_744_073_709_551_615, 0]) };
        assert_eq!(range.condition(quote), "(`a`, `b`) > (1, -2) AND (`a`, `b`) <= (18446744073709551615, 0)");
        assert_eq!(KeyRange { upper: None, ..range.clone() }.condition(quote), "(`a`, `b`) > (1, -2)");
        assert_eq!(KeyRange::default().condition(quote), "TRUE");
        let shape = Shape { table: TableName::new("app", "t"), columns: vec!["id".into(), "v".into()], key: vec![(0, String::new())], only: false };
        let parsed = KeyRange::of(&shape, &Range { lower: Some(vec!["7".into()]), upper: None }).expect("numbers");
        assert_eq!((parsed.columns, parsed.lower, parsed.upper), (vec!["id".to_owned()], Some(vec![7]), None));
        assert!(KeyRange::of(&shape, &Range { lower: Some(vec!["7; DROP TABLE t".into()]), upper: None }).is_err(), "a bound is only ever a number");
    }
}
