//! The initial copy of a MySQL/MariaDB blue: schema, then every selected table's rows as of one binlog
//! position, then that position recorded on green.
//!
//! - **Schema**: when green lacks every selected table, `SHOW CREATE TABLE` of each is run on green
//!   (the database is created if missing). Tables that already exist on green are used as they are and
//!   must be empty.
//! - **One point for every reader**: commits on blue are blocked for a moment (`BACKUP STAGE
//!   BLOCK_COMMIT` on MariaDB; `FLUSH TABLES WITH READ LOCK` elsewhere), every reader session opens
//!   `START TRANSACTION WITH CONSISTENT SNAPSHOT`, the binlog position of that snapshot is read
//!   (`binlog_snapshot_file/position`, turned into a GTID state with `BINLOG_GTID_POS()`), and the lock
//!   is released — its duration is logged. Without the privilege for the lock, one reader copies
//!   everything from a single consistent snapshot.
//! - **Copy**: readers share the tables (largest first) and stream rows over the binary protocol, raw
//!   column bytes and typed numbers and dates, ENUM/SET as their index/bitmask; each batch is inserted
//!   on green with the sink's literal renderer, so a value takes the same exact path as in streaming.

use super::catalog::{columns, ColumnInfo};
use super::{connect, qualified, quote, sql_error};
use crate::error::{Error, Side};
use crate::state::StateStore;
use crate::status::Status;
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use std::time::Instant;
use turnout_decoders::schema::MySqlType;
use turnout_decoders::value::{TemporalKind, Utf8Bytes};
use turnout_decoders::{BinlogPosition, GtidState, Position, TableName, Value};
use turnout_sinks::mysql::literal::for_green;

/// Rows per insert on green.
const BATCH_ROWS: usize = 2_000;

/// Creates blue's tables on green (`SHOW CREATE TABLE`), in `database`.
pub async fn copy_schema(blue: &mut mysql_async::Conn, green: &mut mysql_async::Conn, tables: &[TableName]) -> Result<(), Error> {
    for t in tables {
        green
            .query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", quote(&t.schema)))
            .await
            .map_err(|e| sql_error(crate::error::Side::Green, &format!("creating database {}", t.schema), e))?;
        let row: Option<(Vec<u8>, Vec<u8>)> = blue
            .query_first(format!("SHOW CREATE TABLE {}", qualified(t)))
            .await
            .map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading the definition of {t}"), e))?;
        let Some((_, ddl)) = row else { return Err(Error::Unexpected { side: Side::Blue, what: format!("no definition of {t}") }) };
        let ddl = String::from_utf8_lossy(&ddl).into_owned();
        green.query_drop(format!("USE {}", quote(&t.schema))).await.map_err(|e| sql_error(crate::error::Side::Green, "choosing the database", e))?;
        green.query_drop(&ddl).await.map_err(Error::mysql(turnout_decoders::Side::Green, format!("creating {t}")))?;
    }
    Ok(())
}

/// Refuses the copy, before it starts, of a MySQL JSON column of `tables` holding typed scalars
/// (DECIMAL, DATE, TIME, DATETIME or binary values stored inside a document) where the copy cannot
/// keep their types: into a green that keeps JSON as text (`green_json_text`, MariaDB), or in a table
/// without a primary key (the copy finds each such row again by its key, [`super::typed_json`]). The
/// documents are found by [`super::typed_json::flag_sql`]. MariaDB's JSON is text and has none.
pub async fn refuse_typed_json(blue: &mut mysql_async::Conn, tables: &[TableName], green_json_text: bool) -> Result<(), Error> {
    if super::is_mariadb(blue, crate::error::Side::Blue).await? {
        return Ok(());
    }
    for t in tables {
        let json: Vec<String> = blue
            .exec("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND DATA_TYPE = 'json'", (&t.schema, &t.name))
            .await
            .map_err(|e| sql_error(crate::error::Side::Blue, "listing JSON columns", e))?;
        if json.is_empty() {
            continue;
        }
        let keyed: Option<i64> = blue
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_TYPE = 'PRIMARY KEY'",
                (&t.schema, &t.name),
            )
            .await
            .map_err(|e| sql_error(crate::error::Side::Blue, "reading the primary key", e))?;
        if keyed.unwrap_or(0) > 0 && !green_json_text {
            continue;
        }
        for c in json {
            let typed: Option<i64> = blue
                .query_first(format!("SELECT COUNT(*) FROM {} WHERE {}", qualified(t), super::typed_json::flag_sql(&c)))
                .await
                .map_err(|e| sql_error(crate::error::Side::Blue, &format!("checking the JSON of {t}.{c}"), e))?;
            if let Some(n) = typed.filter(|n| *n > 0) {
                let why = if green_json_text {
                    "green keeps JSON as text (MariaDB), which would make them plain numbers and strings"
                } else {
                    "the table has no primary key, by which the copy finds each such row again to write the document with its types"
                };
                return Err(Error::Setup(format!(
                    "{n} row(s) of {t} hold JSON in column `{c}` with typed DECIMAL, DATE, TIME, DATETIME or binary scalars, and {why}; store \
                     them on blue as plain JSON numbers or strings{}, or leave the table out with tables.exclude",
                    if green_json_text { "" } else { ", or give the table a primary key" }
                )));
            }
        }
    }
    Ok(())
}

/// Creates blue's MariaDB sequences (`blue_db`) on green (`green_db`) where green lacks them, each
/// with blue's definition and next value (`SETVAL`). Sequences do not replicate: at cutover green's are
/// moved beyond blue's.
pub async fn copy_sequences(blue: &mut mysql_async::Conn, green: &mut mysql_async::Conn, blue_db: &str, green_db: &str) -> Result<(), Error> {
    let on_green = super::catalog::sequences(green, green_db).await?;
    for name in super::catalog::sequences(blue, blue_db).await? {
        if on_green.contains(&name) {
            continue;
        }
        let from = format!("{}.{}", quote(blue_db), quote(&name));
        let to = format!("{}.{}", quote(green_db), quote(&name));
        let row: Option<(Vec<u8>, Vec<u8>)> = blue
            .query_first(format!("SHOW CREATE SEQUENCE {from}"))
            .await
            .map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading the definition of sequence {from}"), e))?;
        let Some((_, ddl)) = row else { return Err(Error::Unexpected { side: Side::Blue, what: format!("no definition of sequence {from}") }) };
        green.query_drop(format!("USE {}", quote(green_db))).await.map_err(|e| sql_error(crate::error::Side::Green, "choosing the database", e))?;
        green
            .query_drop(String::from_utf8_lossy(&ddl).into_owned())
            .await
            .map_err(Error::mysql(turnout_decoders::Side::Green, format!("creating sequence {to}")))?;
        let next: Option<String> = blue
            .query_first(format!("SELECT CAST(next_not_cached_value AS CHAR) FROM {from}"))
            .await
            .map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading sequence {from}"), e))?;
        if let Some(next) = next.filter(|n| n.parse::<i128>().is_ok()) {
            // The third argument 0: `next` itself has not been handed out yet.
            green
                .query_drop(format!("SELECT SETVAL({to}, {next}, 0)"))
                .await
                .map_err(|e| sql_error(crate::error::Side::Green, &format!("setting sequence {to}"), e))?;
        }
    }
    Ok(())
}

/// The model type of a column from information_schema, for the literal renderer.
fn column_type(c: &ColumnInfo, unsigned: bool) -> MySqlType {
    let code = match c.data_type.as_str() {
        "tinyint" => 1,
        "smallint" => 2,
        "int" | "integer" => 3,
        "float" => 4,
        "double" | "real" => 5,
        "timestamp" => 7,
        "bigint" => 8,
        "mediumint" => 9,
        "date" => 10,
        "time" => 11,
        "datetime" => 12,
        "year" => 13,
        "varchar" | "varbinary" => 15,
        "bit" => 16,
        "json" => 245,
        "decimal" | "numeric" => 246,
        "enum" => 247,
        "set" => 248,
        "tinyblob" | "tinytext" | "blob" | "text" | "mediumblob" | "mediumtext" | "longblob" | "longtext" => 252,
        "char" | "binary" => 254,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" => 255,
        _ => 252,
    };
    MySqlType { code, unsigned, ..MySqlType::default() }
}

/// The binlog position the readers' snapshots share, and how long commits were blocked.
#[derive(Debug)]
pub struct SnapshotPoint {
    pub position: Position,
    pub lock_held: Option<std::time::Duration>,
}

/// Opens `workers` reader sessions on blue, all at one point of the binlog (see the module docs).
pub async fn open_readers(blue_opts: &mysql_async::Opts, workers: usize) -> Result<(Vec<mysql_async::Conn>, SnapshotPoint), Error> {
    // Sessions are opened before commits are blocked, so the block lasts only as long as starting
    // the snapshots takes.
    let mut lock = connect(blue_opts, crate::error::Side::Blue).await?;
    let mut readers = Vec::with_capacity(workers.max(1));
    for _ in 0..workers.max(1) {
        let mut r = connect(blue_opts, crate::error::Side::Blue).await?;
        r.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await.map_err(|e| sql_error(crate::error::Side::Blue, "isolation", e))?;
        readers.push(r);
    }
    // The stages before BLOCK_COMMIT (FLUSH closes unused tables, BLOCK_DDL waits for running DDL)
    // block no commit; they run first, so commits are blocked only from BLOCK_COMMIT on.
    let mariadb = super::is_mariadb(&mut lock, crate::error::Side::Blue).await?;
    let mut backup = mariadb;
    for stage in ["START", "FLUSH", "BLOCK_DDL"] {
        backup = backup && lock.query_drop(format!("BACKUP STAGE {stage}")).await.is_ok();
    }
    let started = Instant::now();
    let mariadb_lock = backup && lock.query_drop("BACKUP STAGE BLOCK_COMMIT").await.is_ok();
    // MySQL has no snapshot position of its own: commits are blocked while the snapshots start and
    // the binlog position and GTID set are read, even for one reader.
    let locked = mariadb_lock || ((workers > 1 || !mariadb) && global_read_lock(&mut lock).await?);
    if !locked && !mariadb {
        return Err(Error::Setup(
            "MySQL's snapshot needs commits blocked for a moment (FLUSH TABLES WITH READ LOCK) to read the binlog position its \
             snapshot starts at; GRANT RELOAD ON *.* TO turnout's account on blue"
                .into(),
        ));
    }
    if !locked {
        tracing::info!("no privilege to block commits for a moment (RELOAD): copying with one reader from one consistent snapshot");
        readers.truncate(1);
    }
    let result = async {
        for r in &mut readers {
            r.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.map_err(|e| sql_error(crate::error::Side::Blue, "starting the snapshot", e))?;
        }
        snapshot_position(&mut readers[0]).await
    }
    .await;
    if mariadb_lock {
        let _ = lock.query_drop("BACKUP STAGE END").await;
    } else if locked {
        let _ = lock.query_drop("UNLOCK TABLES").await;
    }
    let lock_held = locked.then(|| started.elapsed());
    if let Some(held) = lock_held {
        tracing::info!(
            readers = readers.len(),
            "commits on blue were blocked for {:.1} ms to give every snapshot reader one point",
            held.as_secs_f64() * 1000.0
        );
    }
    Ok((readers, SnapshotPoint { position: result?, lock_held }))
}

/// `FLUSH TABLES WITH READ LOCK`, waiting at most [`LOCK_WAIT`] seconds: it blocks every writer from
/// the moment it waits, and a long-running statement on blue would make it wait (then turnout retries
/// later). False without the privilege (RELOAD).
async fn global_read_lock(lock: &mut mysql_async::Conn) -> Result<bool, Error> {
    lock.query_drop(format!("SET SESSION lock_wait_timeout = {LOCK_WAIT}"))
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "setting lock_wait_timeout", e))?;
    match lock.query_drop("FLUSH TABLES WITH READ LOCK").await {
        Ok(()) => Ok(true),
        // A lock wait timeout is transient: retried with backoff.
        Err(e @ mysql_async::Error::Server(_)) if matches!(&e, mysql_async::Error::Server(s) if s.code == 1205) => Err(sql_error(
            crate::error::Side::Blue,
            &format!("FLUSH TABLES WITH READ LOCK waited {LOCK_WAIT} s for a running statement to end (writes were blocked meanwhile); retrying later"),
            e,
        )),
        Err(_) => Ok(false),
    }
}

/// Seconds `FLUSH TABLES WITH READ LOCK` may wait.
const LOCK_WAIT: u32 = 5;

/// The binlog position (and GTID state) of a reader's consistent snapshot.
async fn snapshot_position(r: &mut mysql_async::Conn) -> Result<Position, Error> {
    let status: Vec<(String, String)> =
        r.query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'").await.map_err(|e| sql_error(crate::error::Side::Blue, "reading the snapshot position", e))?;
    let get = |name: &str| status.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    match (get("binlog_snapshot_file"), get("binlog_snapshot_position")) {
        (Some(f), Some(p)) if !f.is_empty() => position_at(r, crate::error::Side::Blue, f, p.parse::<u64>().unwrap_or(0)).await,
        _ => binlog_end(r, crate::error::Side::Blue).await,
    }
}

/// Where `side`'s binlog ends now (`SHOW MASTER STATUS`; MySQL 8.4+: `SHOW BINARY LOG STATUS`), with
/// the GTID state there: every transaction committed later comes after it. On MySQL the GTID set is
/// the statement's own `Executed_Gtid_Set`, read with the position.
pub async fn binlog_end(r: &mut mysql_async::Conn, side: crate::error::Side) -> Result<Position, Error> {
    let mariadb = super::is_mariadb(r, side).await?;
    let statement = if mariadb { "SHOW MASTER STATUS" } else { "SHOW BINARY LOG STATUS" };
    let row: Option<mysql_async::Row> = r.query_first(statement).await.map_err(|e| sql_error(side, statement, e))?;
    let row = row.ok_or_else(|| Error::Setup(format!("{side} has binary logging off ({statement} is empty); start it with --log-bin")))?;
    let file = String::from_utf8_lossy(&row.get::<Vec<u8>, _>(0).unwrap_or_default()).into_owned();
    let offset = row.get::<u64, _>(1).unwrap_or(0);
    if mariadb {
        return position_at(r, side, file, offset).await;
    }
    let executed = String::from_utf8_lossy(&row.get::<Vec<u8>, _>(4).unwrap_or_default()).into_owned();
    let gtids = GtidState::parse_mysql(&executed).map_err(|e| Error::Unexpected { side, what: format!("Executed_Gtid_Set ({e})") })?;
    if gtids == GtidState::None {
        return Err(Error::Setup(format!(
            "{side} has no GTIDs: turnout resumes MySQL by GTID set; SET GLOBAL gtid_mode = ON (with enforce_gtid_consistency = ON)"
        )));
    }
    Ok(Position::Binlog(BinlogPosition { file, offset, gtids }))
}

/// `file:offset` of `side`'s binlog with the GTID state there (`BINLOG_GTID_POS`).
async fn position_at(r: &mut mysql_async::Conn, side: crate::error::Side, file: String, offset: u64) -> Result<Position, Error> {
    let gtid: Option<Option<String>> =
        r.exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, offset)).await.map_err(|e| sql_error(side, "BINLOG_GTID_POS", e))?;
    let gtids = GtidState::parse_maria(&gtid.flatten().unwrap_or_default()).map_err(|e| Error::Unexpected { side, what: format!("BINLOG_GTID_POS ({e})") })?;
    Ok(Position::Binlog(BinlogPosition { file, offset, gtids }))
}

/// A value read over the binary protocol as the model value the binlog decoder would give.
fn value(v: mysql_async::Value, c: &ColumnInfo, unsigned: bool) -> Value {
    use mysql_async::Value as M;
    let frac = |us: u32| if us == 0 { String::new() } else { format!(".{us:06}") };
    let temporal = |kind, s: String| Value::Temporal(kind, Utf8Bytes::from_string(s));
    match v {
        M::NULL => Value::Null,
        M::Int(i) if unsigned => Value::UInt8(u64::try_from(i).unwrap_or_default()),
        M::Int(i) => Value::Int8(i),
        M::UInt(u) if unsigned || c.data_type == "enum" || c.data_type == "set" => Value::UInt8(u),
        M::UInt(u) => i64::try_from(u).map(Value::Int8).unwrap_or(Value::UInt8(u)),
        M::Float(f) => Value::Float4(f),
        M::Double(f) => Value::Float8(f),
        M::Bytes(b) if matches!(c.data_type.as_str(), "decimal" | "numeric") => {
            Value::Numeric(Utf8Bytes::from_string(String::from_utf8_lossy(&b).into_owned()))
        }
        // MySQL's JSON type (MariaDB's JSON is LONGTEXT): its text, written back as JSON.
        M::Bytes(b) if c.data_type == "json" => Value::Json { jsonb: false, text: Utf8Bytes::from_string(String::from_utf8_lossy(&b).into_owned()) },
        M::Bytes(b) => Value::Bytes(bytes::Bytes::from(b)),
        M::Date(y, mo, d, h, mi, s, us) => match c.data_type.as_str() {
            "date" => temporal(TemporalKind::Date, format!("{y:04}-{mo:02}-{d:02}")),
            kind => temporal(
                if kind == "timestamp" { TemporalKind::TimestampTz } else { TemporalKind::Timestamp },
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}", frac(us)),
            ),
        },
        M::Time(neg, days, h, mi, s, us) => {
            let hours = days * 24 + u32::from(h);
            temporal(TemporalKind::Time, format!("{}{hours:02}:{mi:02}:{s:02}{}", if neg { "-" } else { "" }, frac(us)))
        }
    }
}

/// One unit of snapshot work: a table, or a range of its integer primary key.
#[derive(Clone, Debug)]
pub struct CopyJob {
    pub table: TableName,
    /// `column >= from AND column < to` (no upper bound on the last range).
    pub range: Option<KeyRange>,
}

#[derive(Clone, Debug)]
pub struct KeyRange {
    pub column: String,
    pub from: i128,
    pub to: Option<i128>,
}

/// Splits every table larger than `split_bytes` whose primary key is one integer column into ranges
/// of its key (even steps between the smallest and largest key, read inside `reader`'s snapshot, at
/// most 64), so several readers copy it at once; other tables are one job each. `tables` are in the
/// order workers should take them (they pop from the end).
pub async fn plan(reader: &mut mysql_async::Conn, tables: Vec<(TableName, u64)>, split_bytes: u64) -> Result<Vec<CopyJob>, Error> {
    let mut jobs = Vec::new();
    for (table, bytes) in tables {
        let parts = if split_bytes == 0 { 1 } else { bytes.div_ceil(split_bytes).clamp(1, 64) };
        let key: Vec<(String, String)> = if parts > 1 {
            reader
                .exec(
                    "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_KEY = 'PRI'",
                    (&table.schema, &table.name),
                )
                .await
                .map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading the key of {table}"), e))?
        } else {
            Vec::new()
        };
        let integer = matches!(key.as_slice(), [(_, t)] if ["tinyint", "smallint", "mediumint", "int", "bigint"].contains(&t.to_ascii_lowercase().as_str()));
        if !integer {
            jobs.push(CopyJob { table, range: None });
            continue;
        }
        let column = key[0].0.clone();
        let bounds: Option<(Option<String>, Option<String>)> = reader
            .query_first(format!("SELECT CAST(MIN({c}) AS CHAR), CAST(MAX({c}) AS CHAR) FROM {}", qualified(&table), c = quote(&column)))
            .await
            .map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading the key range of {table}"), e))?;
        let parse = |v: Option<String>| v.and_then(|t| t.parse::<i128>().ok());
        let (Some(min), Some(max)) = bounds.map_or((None, None), |(a, b)| (parse(a), parse(b))) else {
            jobs.push(CopyJob { table, range: None });
            continue;
        };
        let step = ((max - min) / i128::from(parts)).max(1);
        let mut from = min;
        let mut ranges = Vec::new();
        while from <= max {
            let to = from + step;
            let last = to > max || ranges.len() + 1 == usize::try_from(parts).unwrap_or(64);
            ranges.push(CopyJob { table: table.clone(), range: Some(KeyRange { column: column.clone(), from, to: (!last).then_some(to) }) });
            if last {
                break;
            }
            from = to;
        }
        tracing::info!(table = %table, ranges = ranges.len(), "copying in primary key ranges");
        jobs.extend(ranges);
    }
    Ok(jobs)
}

/// Copies the `jobs` with the `readers` (each holding the shared snapshot) into green; returns rows
/// copied. A table is recorded as copied when its last job finishes.
pub async fn copy_all(readers: Vec<mysql_async::Conn>, target_url: &str, jobs: Vec<CopyJob>, state: &StateStore, status: &Arc<Status>) -> Result<u64, Error> {
    let _bars = crate::source::progress::ProgressBars::start(status);
    let mut remaining: std::collections::HashMap<String, (usize, u64)> = std::collections::HashMap::new();
    for j in &jobs {
        remaining.entry(j.table.to_string()).or_default().0 += 1;
    }
    let remaining = Arc::new(std::sync::Mutex::new(remaining));
    let queue = Arc::new(std::sync::Mutex::new(jobs));
    let mut workers = Vec::new();
    for mut reader in readers {
        let (queue, remaining, status, state, target_url) =
            (Arc::clone(&queue), Arc::clone(&remaining), Arc::clone(status), state.clone(), target_url.to_owned());
        workers.push(tokio::spawn(async move {
            let mut green = turnout_sinks::mysql::connect(&target_url).await.map_err(Error::Sink)?;
            let json_text = super::is_mariadb(&mut green, crate::error::Side::Green).await?;
            let mut rows = 0u64;
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let Some(job) = next else { break };
                let condition = job.range.as_ref().map(|r| match r.to {
                    Some(to) => format!("{c} >= {} AND {c} < {to}", r.from, c = quote(&r.column)),
                    None => format!("{c} >= {}", r.from, c = quote(&r.column)),
                });
                let copied = copy_table(&mut reader, &mut green, json_text, &job.table, condition.as_deref(), &status).await?;
                rows += copied;
                let name = job.table.to_string();
                let finished = {
                    let mut r = remaining.lock().unwrap_or_else(|p| p.into_inner());
                    r.get_mut(&name).and_then(|e| {
                        e.0 -= 1;
                        e.1 += copied;
                        (e.0 == 0).then_some(e.1)
                    })
                };
                if let Some(table_rows) = finished {
                    state.mark_table_copied(&name, table_rows)?;
                    status.table_done(&name);
                }
            }
            let _ = reader.query_drop("COMMIT").await;
            Ok::<u64, Error>(rows)
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.map_err(|e| Error::Internal(format!("a snapshot worker failed: {e}")))??;
    }
    Ok(total)
}

/// Copies the rows of `table` matching `condition` (all without) that `reader`'s snapshot shows
/// into green; `json_text` when green keeps JSON as text (see `for_green`).
pub async fn copy_table(
    reader: &mut mysql_async::Conn,
    green: &mut mysql_async::Conn,
    json_text: bool,
    table: &TableName,
    condition: Option<&str>,
    status: &Status,
) -> Result<u64, Error> {
    let name = table.to_string();
    status.table_started(&name);
    let every: Vec<ColumnInfo> = columns(reader, table, crate::error::Side::Blue).await?;
    let generated: Vec<String> = every.iter().filter(|c| c.generated).map(|c| c.name.clone()).collect();
    let cols: Vec<ColumnInfo> = every.into_iter().filter(|c| !c.generated).collect();
    let unsigned = unsigned_columns(reader, table, &cols).await?;
    let select = select_list(&cols);
    let typed: Vec<(String, MySqlType)> =
        cols.iter().zip(&unsigned).map(|(c, u)| (c.name.clone(), for_green(&column_type(c, *u), json_text).into_owned())).collect();
    // Oracle MySQL JSON columns: a flag per row for a document its text would not rebuild (typed
    // scalars), rewritten with its types once the table is copied ([`super::typed_json`]).
    let json: Vec<usize> = cols.iter().enumerate().filter(|(_, c)| c.data_type == "json").map(|(i, _)| i).collect();
    let key: Vec<usize> = if json.is_empty() { Vec::new() } else { primary_key(reader, table, &cols).await? };
    let mut select = select;
    select.extend(json.iter().map(|&i| super::typed_json::flag_sql(&cols[i].name)));
    let mut typed_docs: Vec<(super::typed_json::Key, usize, String)> = Vec::new();
    let mut sql = format!("SELECT {} FROM {}", select.join(", "), qualified(table));
    if let Some(condition) = condition {
        sql.push_str(&format!(" WHERE {condition}"));
    }
    // Prepared: the binary protocol returns numbers and dates typed, strings as raw bytes.
    let mut result = reader.exec_iter(sql, ()).await.map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading {table}"), e))?;
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(BATCH_ROWS);
    let mut copied = 0u64;
    while let Some(row) = result.next().await.map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading {table}"), e))? {
        let mut raw = row.unwrap();
        let flags = raw.split_off(cols.len());
        for (&i, flag) in json.iter().zip(&flags) {
            if matches!(flag, mysql_async::Value::Int(1) | mysql_async::Value::UInt(1)) {
                if key.is_empty() {
                    return Err(Error::Setup(format!(
                        "{table} holds JSON in column `{}` with typed DECIMAL, DATE, TIME or DATETIME scalars and has no primary key, so \
                         turnout cannot find the row again to copy the document with its types; add a primary key, store the values as \
                         plain JSON numbers or strings, or leave the table out with tables.exclude",
                        cols[i].name
                    )));
                }
                let at: super::typed_json::Key = key.iter().map(|&k| (cols[k].name.clone(), raw[k].clone())).collect();
                let text = match &raw[i] {
                    mysql_async::Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                };
                typed_docs.push((at, i, text));
            }
        }
        let values: Vec<Value> = raw.into_iter().zip(cols.iter().zip(&unsigned)).map(|(v, (c, u))| value(v, c, *u)).collect();
        batch.push(values);
        if batch.len() >= BATCH_ROWS {
            turnout_sinks::mysql::insert_rows(green, table, &typed, &batch).await.map_err(Error::Sink)?;
            copied += batch.len() as u64;
            status.table_progress(&name, batch.len() as u64, 0);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        turnout_sinks::mysql::insert_rows(green, table, &typed, &batch).await.map_err(Error::Sink)?;
        copied += batch.len() as u64;
        status.table_progress(&name, batch.len() as u64, 0);
    }
    drop(result);
    if !typed_docs.is_empty() {
        rewrite_typed_docs(reader, green, json_text, table, &cols, &typed_docs).await?;
    }
    if !generated.is_empty() {
        let key: Vec<String> = primary_key(reader, table, &cols).await?.into_iter().map(|i| cols[i].name.clone()).collect();
        let key = if key.is_empty() { cols.iter().map(|c| c.name.clone()).collect() } else { key };
        let copied = super::generated::Copied { table, key: &key, generated: &generated, condition };
        super::generated::same_as_blue(reader, green, copied).await?;
    }
    Ok(copied)
}

/// Whether each of `cols` is unsigned.
async fn unsigned_columns(reader: &mut mysql_async::Conn, table: &TableName, cols: &[ColumnInfo]) -> Result<Vec<bool>, Error> {
    let rows: Vec<(Vec<u8>, Vec<u8>)> = reader
        .exec("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&table.schema, &table.name))
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "reading column types", e))?;
    Ok(cols.iter().map(|c| rows.iter().any(|(n, t)| n == c.name.as_bytes() && String::from_utf8_lossy(t).to_ascii_lowercase().contains("unsigned"))).collect())
}

/// What the copy selects for each of `cols`.
fn select_list(cols: &[ColumnInfo]) -> Vec<String> {
    cols.iter()
        .map(|c| match c.data_type.as_str() {
            // The member's index or the set's bit mask as an integer: Oracle MySQL types `e + 0` as a
            // DOUBLE (a 64-member SET's mask would round).
            "enum" | "set" => format!("CAST({} AS UNSIGNED)", quote(&c.name)),
            // MariaDB's own types print as text but are written back as their binary form, as the
            // binlog carries them.
            "inet6" | "uuid" => format!("CAST({} AS BINARY(16))", quote(&c.name)),
            "inet4" => format!("CAST({} AS BINARY(4))", quote(&c.name)),
            _ => quote(&c.name),
        })
        .collect()
}

/// Rewrites on green, with their types, the JSON documents of the copied `table` that hold typed
/// scalars; refused when green keeps JSON as text (MariaDB).
async fn rewrite_typed_docs(
    reader: &mut mysql_async::Conn,
    green: &mut mysql_async::Conn,
    json_text: bool,
    table: &TableName,
    cols: &[ColumnInfo],
    typed_docs: &[(super::typed_json::Key, usize, String)],
) -> Result<(), Error> {
    if json_text {
        return Err(Error::Setup(format!(
            "{table} holds JSON with typed DECIMAL, DATE, TIME or DATETIME scalars, and green keeps JSON as text (MariaDB), which would \
             make them plain numbers and strings; store them on blue as plain JSON numbers or strings, or leave the table out with \
             tables.exclude"
        )));
    }
    for (at, i, text) in typed_docs {
        let built = super::typed_json::document_sql(reader, table, at, &cols[*i].name, text).await?;
        super::typed_json::rewrite(green, table, at, &cols[*i].name, &built).await?;
    }
    tracing::info!(table = %table, documents = typed_docs.len(), "copied JSON documents holding typed scalars with their types");
    Ok(())
}

/// The positions in `cols` of `table`'s primary key columns (empty without one).
async fn primary_key(reader: &mut mysql_async::Conn, table: &TableName, cols: &[ColumnInfo]) -> Result<Vec<usize>, Error> {
    let names: Vec<String> = reader
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "reading the primary key", e))?;
    Ok(names.iter().filter_map(|n| cols.iter().position(|c| &c.name == n)).collect())
}
