//! `turnout verify --live` on MariaDB: snapshots of blue and green at one binlog position, and the
//! per-chunk statements run inside them.
//!
//! **Snapshots.** Blue's side is the initial snapshot's technique: commits are blocked for a moment
//! (`BACKUP STAGE BLOCK_COMMIT`, with RELOAD; else one worker) while every worker's session starts
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT`; `binlog_snapshot_file/position` of that snapshot,
//! with the GTID state there, is the position P — the snapshot shows exactly the transactions whose
//! commit ends at or before P. The running sidecar holds its apply at P (see
//! [`crate::pipeline::hold`]) while each worker's green session starts its own consistent snapshot,
//! then lets go. As on PostgreSQL, when the sidecar had already applied past P before it heard of
//! it, the snapshots are taken again with the hold armed first.
//!
//! **Chunks.** Ranges of the primary key, in key order; each side computes the count and an
//! order-independent digest of its rows (the same digest as plain `verify`: every column's bytes in
//! hex, blue's columns in blue's order). A key value travels as text and is cast back to its column's
//! type (integers as SIGNED/UNSIGNED, DECIMAL, dates and times, binary strings as hex, ENUM and SET
//! by their number, text in the column's own collation), so ranges are the same on both sides.
//! A table without a primary key is compared whole.

use super::{connect, qualified, quote, sql_error};
use crate::config::Config;
use crate::error::{Error, Side};
use crate::source::contract::compare::{Backend, HoldDriver, Key, Range, Rows, Shape, Snapshots, Sum, ARM_TTL, AT_TTL};
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Value as MyValue};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use turnout_decoders::TableName;

/// MariaDB's [`Backend`].
#[allow(missing_debug_implementations)]
pub struct MySqlLive {
    config: Config,
    blue: mysql_async::Opts,
    green: mysql_async::Opts,
}

impl MySqlLive {
    pub fn new(config: &Config) -> Result<MySqlLive, Error> {
        Ok(MySqlLive {
            config: config.clone(),
            blue: super::options(config.source.url.expose(), "source.url")?,
            green: super::options(config.target.url.expose(), "target.url")?,
        })
    }
}

/// How a key column is ordered, read as text, and how a text is turned back into its type.
struct KeyColumn {
    /// The expression ordered and compared (`r`.`col`, or its number for ENUM and SET).
    column: String,
    /// The column as text.
    text: String,
    /// A text parameter (`?`) as the column's type.
    param: &'static str,
}

fn key_column(name: &str, column_type: &str) -> KeyColumn {
    let col = format!("r.{}", quote(name));
    let base = column_type.split(['(', ' ']).next().unwrap_or_default();
    let unsigned = column_type.contains("unsigned");
    let text = |expr: &str| format!("CAST({expr} AS CHAR)");
    match base {
        b if integer(b) || b == "year" => {
            KeyColumn { text: text(&col), column: col, param: if unsigned { "CAST(? AS UNSIGNED)" } else { "CAST(? AS SIGNED)" } }
        }
        "decimal" | "numeric" => KeyColumn { text: text(&col), column: col, param: "CAST(? AS DECIMAL(65,30))" },
        "float" | "double" | "real" => KeyColumn { text: text(&col), column: col, param: "CAST(? AS DOUBLE)" },
        "date" => KeyColumn { text: text(&col), column: col, param: "CAST(? AS DATE)" },
        "datetime" | "timestamp" => KeyColumn { text: text(&col), column: col, param: "CAST(? AS DATETIME(6))" },
        "time" => KeyColumn { text: text(&col), column: col, param: "CAST(? AS TIME(6))" },
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit" => {
            KeyColumn { text: format!("HEX({col})"), column: col, param: "UNHEX(?)" }
        }
        "enum" | "set" => {
            let number = format!("({col} + 0)");
            KeyColumn { text: text(&number), column: number, param: "CAST(? AS UNSIGNED)" }
        }
        _ => KeyColumn { text: text(&col), column: col, param: "?" },
    }
}

/// Whether a column type's base name (`int` of `int(11) unsigned`) is one of the integer types.
fn integer(base: &str) -> bool {
    matches!(base, "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint")
}

fn key_columns(shape: &Shape) -> Vec<KeyColumn> {
    shape.key.iter().map(|(i, ty)| key_column(&shape.columns[*i], ty)).collect()
}

/// Keys after `key` (`strict` `>`), or up to and including it (`<=`), in key order:
/// `(a > ?) OR (a = ? AND b > ?)` …, with the parameters it binds.
fn compare(keys: &[KeyColumn], key: &Key, after: bool, params: &mut Vec<MyValue>) -> String {
    let mut alternatives = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        let mut terms = Vec::with_capacity(i + 1);
        for (j, k) in keys.iter().enumerate().take(i) {
            terms.push(format!("{} = {}", k.column, k.param));
            params.push(MyValue::from(key[j].as_str()));
        }
        let last = i + 1 == keys.len();
        let op = match (after, last) {
            (true, _) => ">",
            (false, false) => "<",
            (false, true) => "<=",
        };
        terms.push(format!("{} {op} {}", keys[i].column, keys[i].param));
        params.push(MyValue::from(key[i].as_str()));
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    format!("({})", alternatives.join(" OR "))
}

/// `table r WHERE condition` for `range`, with its parameters.
fn from_range(shape: &Shape, keys: &[KeyColumn], range: &Range) -> (String, Vec<MyValue>) {
    let mut params = Vec::new();
    let mut parts = Vec::new();
    if let Some(lower) = &range.lower {
        parts.push(compare(keys, lower, true, &mut params));
    }
    if let Some(upper) = &range.upper {
        parts.push(compare(keys, upper, false, &mut params));
    }
    let condition = if parts.is_empty() { "TRUE".to_owned() } else { parts.join(" AND ") };
    (format!("{} r WHERE {condition}", qualified(&shape.table)), params)
}

fn positional(params: Vec<MyValue>) -> Params {
    if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    }
}

/// Bytes as text: themselves when UTF-8, else `\x` and their hex.
fn text_of(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => format!("\\x{}", e.into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

/// The key texts a row starts with (`n` key columns).
fn key_of(row: &mut mysql_async::Row, n: usize) -> Key {
    (0..n).map(|j| text_of(row.take::<Option<Vec<u8>>, _>(j).flatten().unwrap_or_default())).collect()
}

impl Backend for MySqlLive {
    type Session = Mutex<mysql_async::Conn>;

    async fn tables(&self, only: Option<&str>) -> Result<Vec<TableName>, Error> {
        let mut blue = connect(&self.blue, crate::error::Side::Blue).await?;
        // A SEQUENCE is not replicated (green's is moved ahead at cutover): nothing to compare.
        let sequences = super::catalog::sequences(&mut blue, &super::database(&self.blue)).await?;
        Ok(super::verify::tables(&self.config, &mut blue, only).await?.into_iter().filter(|t| !sequences.contains(&t.name)).collect())
    }

    fn source(&self) -> Result<String, Error> {
        Ok(format!("{}:{}/{}", self.blue.ip_or_hostname(), self.blue.tcp_port(), super::database(&self.blue)))
    }

    async fn estimate_rows(&self, tables: &[TableName]) -> Option<u64> {
        let mut blue = connect(&self.blue, crate::error::Side::Blue).await.ok()?;
        let mut total = 0u64;
        for t in tables {
            let n: Option<Option<u64>> = blue
                .exec_first("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&t.schema, &t.name))
                .await
                .ok()?;
            total += n.flatten().unwrap_or(0);
        }
        (total > 0).then_some(total)
    }

    async fn take<H: HoldDriver>(&self, hold: &H, workers: usize, _slot_timeout: Duration) -> Result<Snapshots<Self::Session>, Error> {
        let mut green = Vec::with_capacity(workers);
        for _ in 0..workers {
            green.push(connect(&self.green, crate::error::Side::Green).await?);
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
                        blue: blue.into_iter().map(Mutex::new).collect(),
                        green: green.into_iter().map(Mutex::new).collect(),
                        position,
                        taken: Instant::now(),
                    });
                }
                None => tracing::info!("the sidecar had applied past verify's position before it heard of it; again with the apply held first"),
            }
        }
        Err(Error::Internal("the sidecar applied past verify's position although it was held".into()))
    }

    async fn target_only_columns(&self, tables: &[TableName]) -> Result<Vec<(TableName, Vec<String>)>, Error> {
        let (mut blue, mut green) = (connect(&self.blue, crate::error::Side::Blue).await?, connect(&self.green, crate::error::Side::Green).await?);
        let mut out = Vec::new();
        for table in tables {
            let on_blue = super::catalog::columns(&mut blue, table, crate::error::Side::Blue).await?;
            let only: Vec<String> = super::catalog::columns(&mut green, table, crate::error::Side::Green)
                .await?
                .into_iter()
                .filter(|g| !on_blue.iter().any(|b| b.name == g.name))
                .map(|g| quote(&g.name))
                .collect();
            if !only.is_empty() {
                out.push((table.clone(), only));
            }
        }
        Ok(out)
    }

    async fn shapes(&self, blue: &Self::Session, tables: &[TableName]) -> Result<Vec<Shape>, Error> {
        let mut conn = blue.lock().await;
        let mut out = Vec::with_capacity(tables.len());
        for table in tables {
            let columns: Vec<String> = super::catalog::columns(&mut conn, table, crate::error::Side::Blue).await?.into_iter().map(|c| c.name).collect();
            let key: Vec<(Vec<u8>, Vec<u8>)> = conn
                .exec(
                    "SELECT s.COLUMN_NAME, c.COLUMN_TYPE FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c \
                       ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME \
                     WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.INDEX_NAME = 'PRIMARY' ORDER BY s.SEQ_IN_INDEX",
                    (&table.schema, &table.name),
                )
                .await
                .map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading the primary key of {table}"), e))?;
            let key = key
                .into_iter()
                .filter_map(|(name, ty)| {
                    let name = String::from_utf8_lossy(&name).into_owned();
                    columns.iter().position(|c| *c == name).map(|i| (i, String::from_utf8_lossy(&ty).to_ascii_lowercase()))
                })
                .collect();
            out.push(Shape { table: table.clone(), columns, key, only: false });
        }
        Ok(out)
    }

    async fn span(&self, shape: &Shape, session: &Self::Session, side: Side) -> Result<Option<(i128, i128)>, Error> {
        let [(i, ty)] = shape.key.as_slice() else { return Ok(None) };
        if !integer(ty.split(['(', ' ']).next().unwrap_or_default()) {
            return Ok(None);
        }
        let column = format!("r.{}", quote(&shape.columns[*i]));
        let sql = format!("SELECT CAST(MIN({column}) AS CHAR), CAST(MAX({column}) AS CHAR) FROM {} r", qualified(&shape.table));
        let row: Option<(Option<String>, Option<String>)> =
            session.lock().await.query_first(sql).await.map_err(|e| sql_error(side, &format!("reading the key range of {}", shape.table), e))?;
        let parse = |t: Option<String>| t.and_then(|t| t.parse::<i128>().ok());
        Ok(row.and_then(|(min, max)| parse(min).zip(parse(max))))
    }

    async fn boundary(&self, shape: &Shape, session: &Self::Session, range: &Range, n: i64, side: Side) -> Result<Option<Key>, Error> {
        let keys = key_columns(shape);
        let (from, params) = from_range(shape, &keys, range);
        let texts: Vec<String> = keys.iter().enumerate().map(|(j, k)| format!("{} AS k{j}", k.text)).collect();
        let order: Vec<&str> = keys.iter().map(|k| k.column.as_str()).collect();
        let sql = format!("SELECT {} FROM {from} ORDER BY {} LIMIT 1 OFFSET {}", texts.join(", "), order.join(", "), (n - 1).max(0));
        let row: Option<mysql_async::Row> =
            session.lock().await.exec_first(sql, positional(params)).await.map_err(|e| sql_error(side, &format!("reading the keys of {}", shape.table), e))?;
        Ok(row.map(|mut r| key_of(&mut r, keys.len())))
    }

    async fn sum(&self, shape: &Shape, session: &Self::Session, range: &Range, side: Side) -> Result<Sum, Error> {
        let keys = key_columns(shape);
        let (from, params) = from_range(shape, &keys, range);
        let sql = super::verify::digest_sql(&from, &shape.columns);
        let row: Option<(i64, Vec<u8>)> =
            session.lock().await.exec_first(sql, positional(params)).await.map_err(|e| sql_error(side, &format!("checksumming {}", shape.table), e))?;
        let (rows, hash) = row.unwrap_or((0, Vec::new()));
        Ok(Sum { rows, hash: text_of(hash) })
    }

    async fn rows(&self, shape: &Shape, session: &Self::Session, range: &Range, side: Side) -> Result<Rows, Error> {
        let keys = key_columns(shape);
        let (from, params) = from_range(shape, &keys, range);
        let mut select: Vec<String> = keys.iter().map(|k| k.text.clone()).collect();
        select.extend(shape.columns.iter().map(|c| format!("CAST(r.{} AS BINARY)", quote(c))));
        let sql = format!("SELECT {} FROM {from}", select.join(", "));
        let rows: Vec<mysql_async::Row> =
            session.lock().await.exec(sql, positional(params)).await.map_err(|e| sql_error(side, &format!("reading rows of {}", shape.table), e))?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let key = key_of(&mut r, keys.len());
                let values = (0..shape.columns.len()).map(|j| r.take::<Option<Vec<u8>>, _>(keys.len() + j).flatten().map(text_of)).collect();
                (key, values)
            })
            .collect())
    }
}

impl MySqlLive {
    /// One try: blue's snapshots, the hold at their position and green's snapshots. `None` when the
    /// sidecar had already applied past the position (only when not `armed`).
    async fn attempt<H: HoldDriver>(
        &self,
        hold: &H,
        armed: bool,
        workers: usize,
        green: &mut [mysql_async::Conn],
    ) -> Result<Option<(Vec<mysql_async::Conn>, turnout_decoders::Position)>, Error> {
        if armed {
            hold.step("arm", None, ARM_TTL).await?;
        }
        let (blue, point) = super::snapshot::open_readers(&self.blue, workers).await?;
        if !hold.step("at", Some(&point.position), AT_TTL).await? {
            return Ok(None);
        }
        for g in green.iter_mut().take(blue.len()) {
            g.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map_err(|e| sql_error(crate::error::Side::Green, "beginning verify's snapshot", e))?;
        }
        Ok(Some((blue, point.position)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_composite_key_compares_in_key_order_with_each_value_cast_back() {
        let shape = Shape {
            table: TableName::new("app", "t"),
            columns: vec!["a".into(), "b".into(), "note".into()],
            key: vec![(0, "bigint(20) unsigned".into()), (1, "varbinary(8)".into())],
            only: false,
        };
        let keys = key_columns(&shape);
        let mut params = Vec::new();
        let after = compare(&keys, &vec!["18446744073709551615".into(), "00FF".into()], true, &mut params);
        assert_eq!(after, "((r.`a` > CAST(? AS UNSIGNED)) OR (r.`a` = CAST(? AS UNSIGNED) AND r.`b` > UNHEX(?)))");
        assert_eq!(params.len(), 3);
        let mut params = Vec::new();
        let upto = compare(&keys, &vec!["1".into(), "00".into()], false, &mut params);
        assert_eq!(upto, "((r.`a` < CAST(? AS UNSIGNED)) OR (r.`a` = CAST(? AS UNSIGNED) AND r.`b` <= UNHEX(?)))");
        let e = key_column("e", "enum('x','y')");
        assert_eq!((e.column.as_str(), e.param), ("(r.`e` + 0)", "CAST(? AS UNSIGNED)"));
        assert_eq!(text_of(vec![0xff, 0x00]), "\\xff00");
    }
}
