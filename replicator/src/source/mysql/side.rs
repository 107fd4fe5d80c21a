//! A MySQL/MariaDB blue as a [`SourceSide`], whatever green is: the heartbeat table, the tables the
//! configuration selects as the catalog types them, a consistent read at a binlog position, and the
//! binlog stream — the same parts [`super::admin::MySqlAdmin`] uses with a MySQL-family green.

use super::catalog::{select_tables, unreplicable};
use super::{connect, database, qualified, snapshot, MySqlSource};
use crate::config::Config;
use crate::error::{CopyRefusal, Error, Side};
use crate::source::compose::charset::{self, Encoding};
use crate::source::compose::{Affected, Batch, BlueColumn, BlueForeignKey, BlueIndex, BlueTable, Snapshot, SourceSide, BATCH_ROWS};
use crate::source::{Names, HEARTBEAT_TABLE};
use crate::status::Status;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use turnout_decoders::{Position, TableName, Value};

/// Blue, a MySQL or MariaDB server.
#[derive(Clone, Debug)]
pub(crate) struct MySqlBlue {
    config: Config,
    blue: mysql_async::Opts,
    server_id: u32,
}

impl MySqlBlue {
    /// Blue's connection options.
    pub(super) fn opts(&self) -> &mysql_async::Opts {
        &self.blue
    }
}

/// The columns of `table` as its catalog describes them, in order, and its primary key's columns in
/// key order.
async fn describe(conn: &mut mysql_async::Conn, table: &TableName) -> Result<(Vec<BlueColumn>, Vec<String>), Error> {
    /// Name, COLUMN_TYPE, CHARACTER_SET_NAME, nullable, generated, auto_increment, COLUMN_DEFAULT,
    /// ON UPDATE, COLLATION_NAME.
    type Described = (String, String, Option<String>, i64, i64, i64, Option<String>, i64, Option<String>);
    // A generation expression, not EXTRA: MySQL's EXTRA says DEFAULT_GENERATED for an expression default.
    let read: Vec<Described> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, IS_NULLABLE = 'YES', COALESCE(GENERATION_EXPRESSION, '') <> '', \
               LOWER(EXTRA) LIKE '%auto_increment%', CASE WHEN VERSION() LIKE '%MariaDB%' THEN NULLIF(COLUMN_DEFAULT, 'NULL') \
                 WHEN COLUMN_DEFAULT IS NULL OR EXTRA LIKE '%DEFAULT_GENERATED%' THEN COLUMN_DEFAULT ELSE QUOTE(COLUMN_DEFAULT) END, \
               LOWER(EXTRA) LIKE '%on update%', COLLATION_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| super::sql_error(Side::Blue, "reading a table's columns", e))?;
    let mut columns = read
        .into_iter()
        .map(|(name, column_type, charset, nullable, generated, auto_increment, default, on_update, collation)| BlueColumn {
            name,
            column_type: lower_outside_quotes(&column_type),
            charset: charset.map(|c| c.to_ascii_lowercase()),
            encoding: None,
            foreign_collations: None,
            nullable: nullable != 0,
            generated: generated != 0,
            auto_increment: auto_increment != 0,
            // MariaDB prints a default as SQL (an explicit `DEFAULT NULL` as the word NULL); MySQL a
            // constant unquoted and an expression as itself (DEFAULT_GENERATED): the query quotes
            // MySQL's constants, so both read alike.
            default,
            on_update: on_update != 0,
            collation: collation.map(|c| c.to_ascii_lowercase()),
        })
        .collect::<Vec<BlueColumn>>();
    for c in &mut columns {
        match c.charset.clone() {
            Some(name) if charset::utf8(&name) => c.foreign_collations = Some(known_foreign_collations(conn).await?),
            Some(name) if name != "binary" => c.encoding = known_encoding(conn, &name).await?,
            _ => {}
        }
    }
    let key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| super::sql_error(Side::Blue, "reading a table's primary key", e))?;
    Ok((columns, key))
}

/// What blue's server says of its character sets, by server (host, port) and name: its conversions
/// are compiled into it, so one read serves every later reading of the catalog (the cutover's among
/// them).
struct Memo<T>(std::sync::OnceLock<std::sync::Mutex<HashMap<ServerKey, T>>>);

/// A blue server (host, port) and a name.
type ServerKey = (String, u16, String);

impl<T: Clone> Memo<T> {
    const fn new() -> Memo<T> {
        Memo(std::sync::OnceLock::new())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ServerKey, T>> {
        self.0.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What was read of `conn`'s server for `name`, and the key to remember a read under.
    fn get(&self, conn: &mysql_async::Conn, name: &str) -> (Option<T>, ServerKey) {
        let key = (conn.opts().ip_or_hostname().to_owned(), conn.opts().tcp_port(), name.to_owned());
        (self.map().get(&key).cloned(), key)
    }

    fn put(&self, key: ServerKey, value: T) -> T {
        self.map().insert(key, value.clone());
        value
    }
}

static ENCODINGS: Memo<Option<Arc<Encoding>>> = Memo::new();
static FOREIGN_COLLATIONS: Memo<Arc<Vec<u16>>> = Memo::new();

/// [`encoding`], read once per server and set.
async fn known_encoding(conn: &mut mysql_async::Conn, name: &str) -> Result<Option<Arc<Encoding>>, Error> {
    let (known, key) = ENCODINGS.get(conn, name);
    if let Some(set) = known {
        return Ok(set);
    }
    Ok(ENCODINGS.put(key, encoding(conn, name).await?.map(Arc::new)))
}

/// The ids of blue's collations of every set whose bytes are not UTF-8 (what a UTF-8 column's binlog
/// collation must not be), read once per server.
async fn known_foreign_collations(conn: &mut mysql_async::Conn) -> Result<Arc<Vec<u16>>, Error> {
    let (known, key) = FOREIGN_COLLATIONS.get(conn, "");
    if let Some(ids) = known {
        return Ok(ids);
    }
    let ids = collation_ids(conn, "CHARACTER_SET_NAME NOT IN ('utf8mb4', 'utf8mb3', 'utf8')", None).await?;
    Ok(FOREIGN_COLLATIONS.put(key, Arc::new(ids)))
}

/// The ids of blue's collations whose character set meets `condition` (`?` bound to `name`), as a
/// binlog table map names them (in 16 bits: a larger id is never one it carries): those
/// `COLLATIONS` lists and MariaDB 10.10+'s set-qualified ones (`utf16_uca1400_ai_ci`, a set's
/// default from 11.5), which only `COLLATION_CHARACTER_SET_APPLICABILITY` lists with their ids.
async fn collation_ids(conn: &mut mysql_async::Conn, condition: &str, name: Option<&str>) -> Result<Vec<u16>, Error> {
    let fail = |e| super::sql_error(Side::Blue, "reading blue's collations", e);
    let read = async |conn: &mut mysql_async::Conn, view: &str| -> Result<Vec<u64>, mysql_async::Error> {
        let sql = format!("SELECT ID FROM information_schema.{view} WHERE ID IS NOT NULL AND {condition}");
        match name {
            Some(name) => conn.exec(sql, (name,)).await,
            None => conn.query(sql).await,
        }
    };
    let mut ids = read(conn, "COLLATIONS").await.map_err(fail)?;
    match read(conn, "COLLATION_CHARACTER_SET_APPLICABILITY").await {
        Ok(more) => ids.extend(more),
        // Oracle MySQL's and MariaDB's before 10.10 have no ID column (1054): nothing more to list.
        Err(mysql_async::Error::Server(e)) if e.code == 1054 => {}
        Err(e) => return Err(fail(e)),
    }
    let mut ids: Vec<u16> = ids.into_iter().filter_map(|id| u16::try_from(id).ok()).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Blue's character set `name` as blue converts it ([`Encoding`]): each byte's character as blue
/// converts it for a single-byte set, the standard's code units for a Unicode encoding; `None` for
/// another multi-byte set.
async fn encoding(conn: &mut mysql_async::Conn, name: &str) -> Result<Option<Encoding>, Error> {
    let fail = |e| super::sql_error(Side::Blue, "reading how blue converts a character set", e);
    let longest: Option<u32> =
        conn.exec_first("SELECT MAXLEN FROM information_schema.CHARACTER_SETS WHERE CHARACTER_SET_NAME = ?", (name,)).await.map_err(fail)?;
    let collations = async |conn: &mut mysql_async::Conn| collation_ids(conn, "CHARACTER_SET_NAME = ?", Some(name)).await;
    if longest.is_some() && charset::unicode(name) {
        return Ok(Encoding::unicode(name, collations(conn).await?));
    }
    if longest != Some(1) || !Encoding::plain_name(name) {
        return Ok(None);
    }
    // Each byte as a character of the set, that character in UTF-8, and the bytes it converts back to.
    let converted: Vec<charset::Converted> = conn
        .query(format!(
            "WITH RECURSIVE n (b) AS (SELECT 0 UNION ALL SELECT b + 1 FROM n WHERE b < 255) \
             SELECT b, CAST(CONVERT(CHAR(b USING {name}) USING utf8mb4) AS BINARY), \
               CAST(CONVERT(CONVERT(CHAR(b USING {name}) USING utf8mb4) USING {name}) AS BINARY) FROM n ORDER BY b"
        ))
        .await
        .map_err(fail)?;
    Ok(Encoding::from_blue(name.to_owned(), &converted, collations(conn).await?))
}

/// `COLUMN_TYPE` in lower case but for what it quotes (an `ENUM`'s members keep their case).
fn lower_outside_quotes(column_type: &str) -> String {
    let mut quoted = false;
    column_type
        .chars()
        .map(|c| {
            if c == '\'' {
                quoted = !quoted;
            }
            if quoted {
                c
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// The indexes of `table` other than its primary key, each column with its prefix length.
async fn indexes(conn: &mut mysql_async::Conn, table: &TableName) -> Result<Vec<BlueIndex>, Error> {
    /// INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE.
    type IndexColumn = (String, i64, Option<String>, Option<u32>, String);
    let read: Vec<IndexColumn> = conn
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME <> 'PRIMARY' ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| super::sql_error(Side::Blue, "reading a table's indexes", e))?;
    let mut out: Vec<BlueIndex> = Vec::new();
    for (name, non_unique, column, prefix, kind) in read {
        // An index on an expression (MySQL 8 functional key parts) has no column: named, never created.
        let column = column.unwrap_or_else(|| "(an expression)".into());
        match out.last_mut() {
            Some(last) if last.name == name => last.columns.push((column, prefix)),
            _ => out.push(BlueIndex { name, unique: non_unique == 0, columns: vec![(column, prefix)], kind: kind.to_ascii_uppercase() }),
        }
    }
    Ok(out)
}

/// Whether blue writes the rows its foreign keys' actions change to its binlog: MySQL 9 with its
/// foreign keys in the SQL layer (`innodb_native_foreign_keys = OFF`, its default) does; InnoDB's
/// own foreign keys (MariaDB, MySQL before 9, `innodb_native_foreign_keys = ON`) do not.
async fn actions_logged(conn: &mut mysql_async::Conn) -> Result<bool, Error> {
    let row: Option<(String, String)> = conn
        .query_first("SHOW GLOBAL VARIABLES LIKE 'innodb_native_foreign_keys'")
        .await
        .map_err(|e| super::sql_error(Side::Blue, "reading innodb_native_foreign_keys", e))?;
    Ok(row.is_some_and(|(_, value)| value.eq_ignore_ascii_case("OFF")))
}

/// The foreign keys of `table`; `logged`: whether blue logs the rows their actions change.
async fn foreign_keys(conn: &mut mysql_async::Conn, table: &TableName, logged: bool) -> Result<Vec<BlueForeignKey>, Error> {
    /// CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME, UPDATE_RULE, DELETE_RULE.
    type KeyColumn = (String, String, String, String, String, String, String);
    let read: Vec<KeyColumn> = conn
        .exec(
            "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, \
                    r.UPDATE_RULE, r.DELETE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| super::sql_error(Side::Blue, "reading a table's foreign keys", e))?;
    let mut out: Vec<BlueForeignKey> = Vec::new();
    for (name, column, parent_schema, parent, parent_column, on_update, on_delete) in read {
        match out.last_mut() {
            Some(last) if last.name == name => {
                last.columns.push(column);
                last.parent_columns.push(parent_column);
            }
            _ => out.push(BlueForeignKey {
                name,
                columns: vec![column],
                parent: TableName::new(&parent_schema, &parent),
                parent_columns: vec![parent_column],
                on_update,
                on_delete,
                actions_logged: logged,
            }),
        }
    }
    Ok(out)
}

/// `.ffffff`, or nothing for a whole second (as the binlog decoder prints it).
fn fraction(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    }
}

/// A value of a snapshot read (binary protocol) as the binlog stream carries it, so that the copy and
/// the stream reach the conversion alike: integers `Int8`/`UInt8`, `FLOAT`/`DOUBLE` `Float4`/`Float8`,
/// dates and times as the decoder prints them, every other value its bytes.
pub(super) fn value(column: &BlueColumn, v: mysql_async::Value) -> Value {
    use turnout_decoders::value::{TemporalKind, Utf8Bytes};
    let temporal = |kind, text: String| Value::Temporal(kind, Utf8Bytes::from_string(text));
    match v {
        mysql_async::Value::NULL => Value::Null,
        mysql_async::Value::Int(i) => Value::Int8(i),
        mysql_async::Value::UInt(u) => Value::UInt8(u),
        mysql_async::Value::Float(f) => Value::Float4(f),
        mysql_async::Value::Double(f) => Value::Float8(f),
        mysql_async::Value::Bytes(b) => Value::Bytes(b.into()),
        mysql_async::Value::Date(y, mo, d, h, mi, s, us) => {
            if column.column_type.starts_with("date") && !column.column_type.starts_with("datetime") {
                temporal(TemporalKind::Date, format!("{y:04}-{mo:02}-{d:02}"))
            } else {
                let kind = if column.column_type.starts_with("timestamp") { TemporalKind::TimestampTz } else { TemporalKind::Timestamp };
                temporal(kind, format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}", fraction(us)))
            }
        }
        mysql_async::Value::Time(negative, days, h, mi, s, us) => {
            let hours = days * 24 + u32::from(h);
            temporal(TemporalKind::Time, format!("{}{hours:02}:{mi:02}:{s:02}{}", if negative { "-" } else { "" }, fraction(us)))
        }
    }
}

/// How the snapshot selects `column` as the binlog carries it, so that one conversion reads both: an
/// `ENUM`'s index and a `SET`'s bit mask as numbers, a string in a set other than UTF-8 as its bytes
/// (the session's utf8mb4 would have the server convert it), a `JSON` document as its text, marked
/// when typed.
pub(super) fn selected(column: &BlueColumn) -> String {
    let name = super::quote(&column.name);
    if column.column_type == "json" {
        // Its text, marked by a leading 0 byte (which no JSON text starts with) where it holds a typed
        // date, time or other opaque scalar (see `json_typed`).
        format!("IF({}, CONCAT(CHAR(0), CAST({name} AS CHAR)), CAST({name} AS CHAR))", json_typed(&name))
    } else if column.column_type.starts_with("enum(") || column.column_type.starts_with("set(") {
        format!("CAST({name} AS UNSIGNED)")
    } else if column.encoding.is_some() {
        format!("CAST({name} AS BINARY)")
    } else {
        name
    }
}

/// The condition that `column` (`c` quoted) of `table` holds U+0000 or bytes its character set
/// converts to no character of their own: the same round trip through UTF-8 that decides each
/// byte's character ([`Encoding`]), so `check` counts what the converter refuses.
async fn unconverted(blue: &mysql_async::Opts, table: &TableName, column: &str, c: &str) -> Result<String, Error> {
    let mut conn = connect(blue, Side::Blue).await?;
    let set: Option<Option<String>> = conn
        .exec_first(
            "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
            (&table.schema, &table.name, column),
        )
        .await
        .map_err(|e| super::sql_error(Side::Blue, "reading a column's character set", e))?;
    // A conversion blue answers with NULL for a value that is not is counted too (`<=>`, `COALESCE`).
    let round_trip = |set: &str| format!("NOT (CAST(CONVERT(CONVERT({c} USING utf8mb4) USING {set}) AS BINARY) <=> CAST({c} AS BINARY))");
    Ok(match set.flatten().filter(|s| Encoding::plain_name(s)) {
        // U+0000 is the byte 0 of its UTF-8, and of no other character's; a surrogate code point (which
        // `ucs2` and `utf32` may hold and no character is) is ED A0…ED BF, should blue convert it instead
        // of making it `?` (0xED only ever leads a character in UTF-8, so a byte search finds no other).
        Some(set) if charset::unicode(&set) => {
            let utf8 = format!("CAST(CONVERT({c} USING utf8mb4) AS BINARY)");
            let surrogates: Vec<String> = (0xA0..=0xBF_u8).map(|b| format!("INSTR({utf8}, X'ED{b:02X}') > 0")).collect();
            format!("COALESCE(INSTR({utf8}, X'00') > 0 OR {}, {c} IS NOT NULL) OR {}", surrogates.join(" OR "), round_trip(&set))
        }
        Some(set) => format!("INSTR(CAST({c} AS BINARY), X'00') > 0 OR {}", round_trip(&set)),
        None => format!("INSTR(CAST({c} AS BINARY), X'00') > 0"),
    })
}

/// Whether the JSON document `c` holds a typed scalar whose text is a string: a `DATE`, `TIME`,
/// `DATETIME` or `TIMESTAMP` (printed as `"2024-01-01 00:00:00.000000"`) or another opaque value
/// (`"base64:type15:…"`). Blue's own comparison of the document with the one its text parses to
/// tells a typed scalar from the string it prints as; a `DECIMAL` scalar also compares unequal when
/// a double cannot hold its digits, but its text is a number, which the pattern leaves out — so the
/// copy marks (and `check` counts) the rows the stream's documents would show typed. NULL for NULL.
fn json_typed(c: &str) -> String {
    const PRINTED: &str =
        r#""([0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{6})?|-?[0-9]{2,3}:[0-9]{2}:[0-9]{2}[.][0-9]{6}|base64:type[0-9]+:)"#;
    format!("(NOT ({c} = CAST(CAST({c} AS CHAR) AS JSON)) AND CAST({c} AS CHAR) REGEXP '{PRINTED}')")
}

/// Reads every row of `tables` in `reader`'s snapshot into `tx`, a batch at a time, then ends the
/// snapshot. Returns early (without error) when the receiver is gone.
async fn read_tables(mut reader: mysql_async::Conn, tables: &[BlueTable], tx: &tokio::sync::mpsc::Sender<Batch>) -> Result<(), Error> {
    use futures_util::StreamExt;
    for (i, t) in tables.iter().enumerate() {
        let columns = t.columns.iter().map(selected).collect::<Vec<_>>().join(", ");
        // The binary protocol: numbers, dates and times arrive typed, not as text.
        let mut result = reader
            .exec_iter(format!("SELECT {columns} FROM {}", qualified(&t.name)), ())
            .await
            .map_err(|e| super::sql_error(Side::Blue, "reading a table in the snapshot", e))?;
        let Some(mut rows) = result.stream::<mysql_async::Row>().await.map_err(|e| super::sql_error(Side::Blue, "reading a table in the snapshot", e))? else {
            continue;
        };
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        while let Some(row) = rows.next().await {
            let row = row.map_err(|e| super::sql_error(Side::Blue, "reading a table in the snapshot", e))?;
            batch.push(row.unwrap().into_iter().zip(&t.columns).map(|(v, c)| value(c, v)).collect());
            if batch.len() == BATCH_ROWS && tx.send(Ok((i, std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS))))).await.is_err() {
                return Ok(());
            }
        }
        if !batch.is_empty() && tx.send(Ok((i, batch))).await.is_err() {
            return Ok(());
        }
    }
    reader.query_drop("COMMIT").await.map_err(|e| super::sql_error(Side::Blue, "ending the snapshot", e))
}

impl SourceSide for MySqlBlue {
    type Fenced = super::fenced::MySqlFenced;
    type Stream = MySqlSource;
    type BackSink = turnout_sinks::Parallel<turnout_sinks::mysql::MySqlSink>;

    /// One session: green's commits are applied in their order, each with the stream's position in
    /// `turnout.progress` on blue (exactly once).
    async fn open_back_sink(&self, stream: &str) -> Result<Self::BackSink, Error> {
        let sink = turnout_sinks::mysql::MySqlSink::connect(self.config.source.url.expose(), stream).await.map_err(Error::Sink)?;
        turnout_sinks::Parallel::new(vec![sink]).map_err(Error::Sink)
    }

    /// Blue's triggers on the replicated tables are parked first ([`turnout_cutover::park_triggers`]):
    /// they would fire again on every row the stream back applies, whose work green's form of them
    /// already did. The rollback creates them again.
    async fn open_for_back(&self, stream: &str, hand_off: &Position) -> Result<(), Error> {
        let mut blue = connect(&self.blue, Side::Blue).await?;
        super::lower_seal(&mut blue, Side::Blue).await?;
        let tables: Vec<String> = self.select().await?.into_iter().filter(|t| !t.heartbeat).map(|t| t.name.name).collect();
        let parked = turnout_cutover::park_triggers(&mut blue, &database(&self.blue), &tables, Side::Blue).await.map_err(Error::from)?;
        if !parked.is_empty() {
            tracing::info!("parked {} triggers on blue for the rollback window (the rollback creates them again): {}", parked.len(), parked.join(", "));
        }
        let url = self.config.source.url.expose();
        if turnout_sinks::mysql::read_progress(url, stream).await.map_err(Error::Sink)?.is_none() {
            turnout_sinks::mysql::record_position(url, stream, hand_off).await.map_err(Error::Sink)?;
        }
        Ok(())
    }

    async fn drop_back(&self, stream: &str) -> Result<Vec<String>, Error> {
        let dropped = turnout_sinks::mysql::drop_progress(self.config.source.url.expose(), stream).await.map_err(Error::Sink)?;
        Ok(if dropped { vec![format!("dropped the reverse stream's progress record {stream} on blue")] } else { Vec::new() })
    }

    const ENGINE: &'static str = "MySQL/MariaDB";
    const KIND: crate::config::SourceKind = crate::config::SourceKind::MySql;

    fn new(config: &Config, names: &Names) -> Result<MySqlBlue, Error> {
        let blue = super::options(config.source.url.expose(), "source.url")?;
        Ok(MySqlBlue { config: config.clone(), blue, server_id: super::admin::server_id(config, &names.origin) })
    }

    fn name_rules(config: &Config) -> Result<crate::tables::NameRules, Error> {
        <super::MySql as crate::source::family::Family>::name_rules(config)
    }

    async fn check(&self) -> crate::source::contract::report::Findings {
        super::check::check_source(&self.blue, &self.config).await
    }

    async fn affected(&self, table: &TableName, column: &str, what: Affected) -> Result<u64, Error> {
        let c = super::quote(column);
        let condition = match what {
            Affected::ZeroDate => format!("YEAR({c}) = 0 OR MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0"),
            Affected::NulByte => format!("INSTR(CAST({c} AS BINARY), X'00') > 0"),
            Affected::NulOrUnconverted => unconverted(&self.blue, table, column, &c).await?,
            Affected::AboveSigned => format!("{c} > 9223372036854775807"),
            Affected::NotPlanePoint => format!("ST_SRID({c}) <> 0 OR ST_GeometryType({c}) <> 'POINT'"),
            // `\u0000` and `-0.0` by the document's text (a string spelling them counts too); backslashes
            // are spelt CHAR(92), as blue's sql_mode may hold NO_BACKSLASH_ESCAPES.
            Affected::JsonInexact => format!(
                "{} OR LOCATE(CONCAT(CHAR(92), 'u0000'), CAST({c} AS CHAR)) > 0 \
                 OR CAST({c} AS CHAR) REGEXP CONCAT('(^|[ ,:]|', CHAR(92), '[)-0[.]0([ ,}}]|', CHAR(92), ']|$)')",
                json_typed(&c)
            ),
        };
        let mut blue = connect(&self.blue, Side::Blue).await?;
        let n: Option<u64> = blue
            .query_first(format!("SELECT COUNT(*) FROM {} WHERE {c} IS NOT NULL AND ({condition})", qualified(table)))
            .await
            .map_err(|e| super::sql_error(Side::Blue, "counting a lossy column's affected rows", e))?;
        Ok(n.unwrap_or(0))
    }

    async fn prepare(&self) -> Result<(), Error> {
        let mut blue = connect(&self.blue, Side::Blue).await?;
        super::heartbeat::ensure_table(&mut blue, &database(&self.blue)).await
    }

    fn heartbeat_table(&self) -> TableName {
        super::heartbeat::table(&database(&self.blue))
    }

    fn reread(&self) -> crate::source::compose::stream::Reread {
        let blue = self.clone();
        Arc::new(move |tables: Vec<TableName>| {
            let blue = blue.clone();
            Box::pin(async move { blue.read(Some(&tables)).await })
        })
    }

    async fn select(&self) -> Result<Vec<BlueTable>, Error> {
        self.read(None).await
    }

    /// One reader in one consistent snapshot at a binlog position (commits blocked for a moment, as
    /// the MySQL family's copy does), streaming each table in batches: memory holds a few batches.
    async fn snapshot(&self, tables: &[BlueTable]) -> Result<Snapshot, Error> {
        let (readers, point) = snapshot::open_readers(&self.blue, 1).await?;
        let Some(reader) = readers.into_iter().next() else {
            return Err(Error::Setup("blue's snapshot opened no reader".into()));
        };
        let (tx, batches) = tokio::sync::mpsc::channel(4);
        let tables = tables.to_vec();
        let reader = tokio::spawn(async move {
            if let Err(e) = read_tables(reader, &tables, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Snapshot { position: point.position, batches, reader })
    }

    async fn open_stream(&self, from: &Position) -> Result<MySqlSource, Error> {
        let Position::Binlog(b) = from else {
            return Err(CopyRefusal::ForeignPosition { log: "binlog", position: from.to_string() }.into());
        };
        let db = database(&self.blue);
        let sequences = {
            let mut blue = connect(&self.blue, Side::Blue).await?;
            super::catalog::sequences(&mut blue, &db).await?
        };
        let filter = self.config.table_filter()?;
        let selects: turnout_decoders::mysql::decoder::TableSelector =
            Box::new(move |t: &TableName| t.schema == db && (t.name == HEARTBEAT_TABLE || (filter.selects(t) && !sequences.contains(&t.name))));
        // Green's table of a CREATE TABLE is made from blue's catalog by the type map (`Converting`).
        let reading = super::stream::Reading { creating_tables: true, ..Default::default() };
        MySqlSource::start_reading(self.blue.clone(), self.server_id, b.gtids.clone(), selects, reading, self.config.receive_timeout()).await
    }

    fn heartbeat(&self, status: Arc<Status>, shutdown: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
        super::heartbeat::run(self.blue.clone(), Side::Blue, self.config.heartbeat_interval(), status, shutdown)
    }

    /// The heartbeat table, and blue's triggers parked for a rollback window created again.
    async fn teardown(&self) -> Result<Vec<String>, Error> {
        let mut blue = connect(&self.blue, Side::Blue).await?;
        let heartbeat = self.heartbeat_table();
        blue.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&heartbeat)))
            .await
            .map_err(|e| super::sql_error(Side::Blue, "dropping the heartbeat table", e))?;
        let mut done = vec![format!("dropped {heartbeat} on blue (if it existed)")];
        let restored = turnout_cutover::unpark_triggers(&mut blue, &database(&self.blue), Side::Blue).await.map_err(Error::from)?;
        if !restored.is_empty() {
            done.push(format!("created again on blue the {} triggers parked for the rollback window: {}", restored.len(), restored.join(", ")));
        }
        Ok(done)
    }
}

impl MySqlBlue {
    /// The selected tables (those of `only` among them, when given; the selection's checks are made
    /// on all of it either way) and turnout's heartbeat table, as [`SourceSide::select`] describes
    /// them.
    async fn read(&self, only: Option<&[TableName]>) -> Result<Vec<BlueTable>, Error> {
        let db = database(&self.blue);
        let mut blue = connect(&self.blue, Side::Blue).await?;
        let (selection, infos) = select_tables(&mut blue, &db, &self.config.table_filter()?).await?;
        if let Some(t) = unreplicable(&selection, &infos).first() {
            return Err(Error::Setup(format!("{}; {}", t.problem, t.fix)));
        }
        if let Some(h) = super::catalog::hidden_cascades(&mut blue, &db, &selection).await?.first() {
            return Err(Error::Setup(format!("{}; {}", super::cascade_problem(h), super::cascade_fix(h))));
        }
        let logged = actions_logged(&mut blue).await?;
        let mut tables = Vec::with_capacity(selection.tables.len() + 1);
        for name in selection.tables.iter().filter(|t| t.name != HEARTBEAT_TABLE && only.is_none_or(|only| only.contains(t))) {
            let (columns, key) = describe(&mut blue, name).await?;
            let next_auto_increment: Option<Option<u64>> = blue
                .exec_first("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&name.schema, &name.name))
                .await
                .map_err(|e| super::sql_error(Side::Blue, "reading a table's AUTO_INCREMENT", e))?;
            let next_auto_increment = next_auto_increment.flatten().filter(|_| columns.iter().any(|c| c.auto_increment));
            tables.push(BlueTable {
                name: name.clone(),
                columns,
                key,
                heartbeat: false,
                indexes: indexes(&mut blue, name).await?,
                foreign_keys: foreign_keys(&mut blue, name, logged).await?,
                next_auto_increment,
            });
        }
        // As `heartbeat::ensure_table` makes it.
        let columns = vec![BlueColumn::own("id", "int"), BlueColumn::own("at_us", "bigint")];
        tables.push(BlueTable::own(self.heartbeat_table(), columns, "id"));
        Ok(tables)
    }
}
