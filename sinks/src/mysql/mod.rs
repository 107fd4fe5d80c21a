//! The MySQL/MariaDB sink: applies batches of committed source transactions to a green MySQL or
//! MariaDB database in one transaction each, recording progress in a row of `turnout.progress` in that
//! same transaction.
//!
//! Session: `utf8mb4` statements, `time_zone = '+00:00'` (TIMESTAMP values arrive in UTC),
//! `sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'` — strict, so a
//! value that does not fit fails loudly instead of being cut; zero dates allowed (no `NO_ZERO_DATE`);
//! a 0 in an AUTO_INCREMENT column kept; `explicit_defaults_for_timestamp = ON`, so a NULL stays NULL.
//! `CLIENT_FOUND_ROWS`, so an UPDATE counts the rows it matched.
//! turnout's writes are marked in green's binlog where the account may (`gtid_domain_id` set to a
//! turnout domain, `skip_replication = 1`), so a reverse stream can tell them from the application's.
//!
//! Foreign keys: InnoDB does not write the rows its cascades change (`ON DELETE CASCADE`, `ON UPDATE
//! SET NULL`, …) to the binlog; blue's binlog holds only the parent's change. The sink therefore
//! applies replicated rows with `foreign_key_checks = 1`, so green's own cascades make the same
//! changes at the same point — and turns the checks off for the rows blue wrote without them (rows
//! events flagged `NO_FOREIGN_KEY_CHECKS`, see [`TableSchema::foreign_key_checks`]), which did not
//! cascade on blue. Rows are applied in blue's order; deletes of a table with a foreign key to itself
//! go one row at a time, since one multi-row DELETE visits rows in key order, not blue's. TRUNCATE
//! runs without checks (blue could only truncate a referenced table without them). Snapshot
//! connections ([`connect`]) load with `foreign_key_checks = 0`.
//!
//! Exactly-once: each green transaction ends by writing the applied source position (JSON of the
//! [`Position`]) to `turnout.progress` for this stream, then COMMIT; transactions at or below the
//! recorded position are skipped. `TRUNCATE` commits implicitly in MySQL: the batch is committed with
//! the position of the transaction before it, the TRUNCATE runs, and the next transaction records the
//! truncate's position — a crash in between replays the TRUNCATE, which is idempotent.
//!
//! Statements (see [`literal`] for values): changes of an *independent* table (no foreign key from
//! or to it, no unique key but the primary key, no trigger, a key whose literals are canonical, no
//! column green has that blue does not send) are
//! folded over the whole batch to their net effect and applied as one multi-row DELETE of the rows
//! that existed and one multi-row INSERT of the rows that exist after ([`fold`] says why that is
//! the same). Other tables keep blue's order: consecutive inserts into one table become one multi-row
//! `INSERT`; updates one statement per row; deletes by key batched with `IN`; rows of tables without
//! a primary key are matched on every column with `<=>` (character columns byte for byte) and
//! `LIMIT 1`. Statements travel to green in
//! multi-statement batches ([`queue`]). Generated columns are never written. Every statement must
//! touch exactly the rows it names, else green diverged from blue: the transaction rolls back and the
//! error names the table.

mod catalog;
pub mod conn;
mod fold;
pub mod literal;
mod progress;
mod queue;

pub use progress::{drop_progress, read_progress, record_position};

use crate::error::SinkError;
use crate::{Canceller, Committed, Durable, RowChange, Sink, Transaction};
use catalog::{table_info, TableInfo};
use fold::Fold;
use literal::{ident, push, push_equals};
use mysql_async::prelude::Queryable;
use queue::StatementQueue;
use std::collections::{HashMap, HashSet};
use turnout_decoders::schema::{ColumnType, MySqlType, ReplicaIdentity, TableSchema};
use turnout_decoders::{Position, TableName, Timestamp, Value};

/// The session settings of every green connection.
const SESSION: &str = "SET NAMES utf8mb4, time_zone = '+00:00', foreign_key_checks = 0, \
     sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', explicit_defaults_for_timestamp = ON";

/// The GTID domain the sink of `stream` writes in where the account may set it: derived from the
/// stream's name, so a reverse stream knows which transactions are turnout's own; never 0 (the
/// servers' default domain).
pub fn own_domain(stream: &str) -> u32 {
    1 + stream.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 60_000
}

/// What a folded INSERT ([`MySqlSink::insert_all_columns`]) is called in messages; its "column count
/// doesn't match" error is how a column added on green mid-stream shows.
pub(crate) const FOLDED_INSERT: &str = "inserting the rows blue left after a batch into";

/// Multi-row INSERTs and DELETEs are split to stay under this many bytes of SQL.
const STATEMENT_BYTES: usize = 4 << 20;

/// Folded rows are queued as statements once this many accumulate, bounding the fold's memory.
const FOLD_ROWS: usize = 20_000;

/// Connection options from a `mysql://` or `mariadb://` URL, counting matched rows.
pub fn options(url: &str) -> Result<mysql_async::Opts, SinkError> {
    let opts = conn::options(url).map_err(|e| SinkError::Config(format!("target.url: {e}")))?;
    Ok(mysql_async::OptsBuilder::from_opts(opts).client_found_rows(true).into())
}

/// A session on green with turnout's settings.
pub async fn connect(url: &str) -> Result<mysql_async::Conn, SinkError> {
    connect_with(&options(url)?).await
}

async fn connect_with(opts: &mysql_async::Opts) -> Result<mysql_async::Conn, SinkError> {
    let mut conn = conn::open(opts).await.map_err(SinkError::mysql("connecting"))?;
    conn.query_drop(SESSION).await.map_err(SinkError::mysql("setting the session"))?;
    Ok(conn)
}

/// `` `db`.`table` ``.
fn qualified(t: &TableName) -> String {
    format!("{}.{}", ident(&t.schema), ident(&t.name))
}

fn mysql_type(schema: &TableSchema, i: usize) -> &MySqlType {
    static DEFAULT: std::sync::OnceLock<MySqlType> = std::sync::OnceLock::new();
    match schema.columns.get(i).map(|c| &c.ty) {
        Some(ColumnType::MySql(t)) => t,
        _ => DEFAULT.get_or_init(MySqlType::default),
    }
}

/// Multi-row INSERTs of `rows` (values in `columns` order) into `table`, each under
/// [`STATEMENT_BYTES`], with the number of rows each inserts.
fn insert_statements(table: &TableName, columns: &[(String, MySqlType)], rows: &[Vec<Value>]) -> Result<Vec<(String, u64)>, SinkError> {
    let names: Vec<String> = columns.iter().map(|(n, _)| ident(n)).collect();
    let head = format!("INSERT INTO {} ({}) VALUES ", qualified(table), names.join(", "));
    let columns: Vec<InsertColumn> = columns.iter().cloned().map(Some).collect();
    multi_row_inserts(table, &head, &columns, rows)
}

/// A value position of an INSERT: the column's name and type, or `None` for `DEFAULT` (a generated
/// column in a positional INSERT).
type InsertColumn = Option<(String, MySqlType)>;

/// Multi-row INSERTs starting with `head` (`INSERT INTO … VALUES `), `rows` in `columns` order
/// (a `DEFAULT` position's value is ignored), each under [`STATEMENT_BYTES`], with the number of
/// rows each inserts.
fn multi_row_inserts(table: &TableName, head: &str, columns: &[InsertColumn], rows: &[Vec<Value>]) -> Result<Vec<(String, u64)>, SinkError> {
    let mut statements = Vec::new();
    let mut sql = String::new();
    let mut count = 0u64;
    for (r, row) in rows.iter().enumerate() {
        if count == 0 {
            sql = String::with_capacity(64 * 1024);
            sql.push_str(head);
        } else {
            sql.push(',');
        }
        sql.push('(');
        for (i, (column, v)) in columns.iter().zip(row).enumerate() {
            if i > 0 {
                sql.push(',');
            }
            match column {
                Some((name, ty)) => push(&mut sql, ty, v).map_err(|reason| SinkError::Value { table: table.to_string(), column: name.clone(), reason })?,
                None => sql.push_str("DEFAULT"),
            }
        }
        sql.push(')');
        count += 1;
        if sql.len() >= STATEMENT_BYTES || r + 1 == rows.len() {
            statements.push((std::mem::take(&mut sql), count));
            count = 0;
        }
    }
    Ok(statements)
}

/// Inserts `rows` (values in `columns` order) into `table` with multi-row INSERTs, checking that every
/// row was inserted. Used by the snapshot; the same literals as streaming apply.
pub async fn insert_rows(conn: &mut mysql_async::Conn, table: &TableName, columns: &[(String, MySqlType)], rows: &[Vec<Value>]) -> Result<(), SinkError> {
    for (sql, count) in insert_statements(table, columns, rows)? {
        conn.query_drop(&sql).await.map_err(SinkError::mysql(format!("inserting into {table}")))?;
        expect(conn.affected_rows(), count, &format!("inserting into {table}"))?;
    }
    Ok(())
}

/// Every statement must touch exactly the rows it names: anything else means green diverged.
fn expect(touched: u64, expected: u64, what: &str) -> Result<(), SinkError> {
    if touched != expected {
        return Err(SinkError::Progress(format!(
            "{what} touched {touched} rows on green, expected {expected}: green has diverged from blue (run turnout verify)"
        )));
    }
    Ok(())
}

/// An apply session on green bound to one stream's progress row.
pub struct MySqlSink {
    conn: mysql_async::Conn,
    opts: mysql_async::Opts,
    stream: String,
    applied: Position,
    /// Generated columns by table.
    tables: HashMap<TableName, TableInfo>,
    /// The session's `foreign_key_checks` as queued; `None` after a failure (unknown).
    foreign_key_checks: Option<bool>,
    /// Row statements not yet sent.
    queue: StatementQueue,
    /// Changes of independent tables not yet queued.
    fold: Fold,
    /// `innodb_flush_log_at_trx_commit = 1`: a commit is durable when it returns.
    durable_commits: bool,
    marks: Option<u32>,
    in_transaction: bool,
}

impl std::fmt::Debug for MySqlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSink").field("stream", &self.stream).field("applied", &self.applied.to_string()).finish_non_exhaustive()
    }
}

impl MySqlSink {
    /// Connects, creates the progress table if needed and reads this stream's recorded position.
    pub async fn connect(url: &str, stream: &str) -> Result<MySqlSink, SinkError> {
        let opts = options(url)?;
        let mut conn = connect_with(&opts).await?;
        progress::ensure_table(&mut conn).await?;
        let applied = progress::read(&mut conn, stream).await?.unwrap_or(Position::Binlog(Default::default()));
        let flush: Option<String> =
            conn.query_first("SELECT @@innodb_flush_log_at_trx_commit").await.map_err(SinkError::mysql("reading innodb_flush_log_at_trx_commit"))?;
        let domain = own_domain(stream);
        let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(SinkError::mysql("reading the version"))?;
        let mariadb = version.unwrap_or_default().to_ascii_lowercase().contains("mariadb");
        // Oracle MySQL has no GTID domains: a reverse stream from a MySQL green is not built, and
        // nothing reads the marks.
        let marks = if !mariadb {
            None
        } else {
            match conn.query_drop(format!("SET SESSION gtid_domain_id = {domain}, SESSION skip_replication = 1")).await {
                Ok(()) => Some(domain),
                Err(e) => {
                    tracing::warn!(
                        "turnout's writes on green are not marked in its binlog (gtid_domain_id, skip_replication): {e}; GRANT BINLOG REPLAY (or SUPER) to mark them"
                    );
                    None
                }
            }
        };
        Ok(MySqlSink {
            conn,
            opts,
            stream: stream.to_owned(),
            applied,
            tables: HashMap::new(),
            foreign_key_checks: None,
            queue: StatementQueue::default(),
            fold: Fold::default(),
            durable_commits: flush.as_deref() == Some("1"),
            marks,
            in_transaction: false,
        })
    }

    /// Whether `p` lies beyond the recorded position. A position that cannot be compared with it (a
    /// binlog of another base name, another server) is an error, never a silent skip.
    fn beyond_applied(&self, p: &Position) -> Result<bool, SinkError> {
        if matches!(&self.applied, Position::Binlog(b) if b.file.is_empty() && b.offset == 0) {
            return Ok(true);
        }
        match p.partial_cmp(&self.applied) {
            Some(o) => Ok(o == std::cmp::Ordering::Greater),
            None => Err(SinkError::Progress(format!(
                "the source position {p} cannot be compared with the position {} recorded on green (another server or binlog \
                 name?); run `turnout teardown` and start over",
                self.applied
            ))),
        }
    }

    /// The GTID domain turnout's writes carry in green's binlog, when the account may set it.
    pub fn marks_own_writes(&self) -> Option<u32> {
        self.marks
    }

    async fn info(&mut self, table: &TableName) -> Result<&TableInfo, SinkError> {
        if !self.tables.contains_key(table) {
            let info = table_info(&mut self.conn, table).await?;
            self.tables.insert(table.clone(), info);
        }
        self.tables.get(table).ok_or_else(|| SinkError::Schema { table: table.to_string(), reason: "not loaded".into() })
    }

    async fn generated(&mut self, table: &TableName) -> Result<&HashSet<String>, SinkError> {
        Ok(&self.info(table).await?.generated)
    }

    /// Sets the session's `foreign_key_checks` to `on` (queued) unless it already is.
    async fn foreign_keys(&mut self, on: bool) -> Result<(), SinkError> {
        if self.foreign_key_checks != Some(on) {
            let sql = format!("SET foreign_key_checks = {}", u8::from(on));
            self.queue_statement(&sql, None, "setting foreign_key_checks").await?;
            self.foreign_key_checks = Some(on);
        }
        Ok(())
    }

    /// Queues a row statement that must touch `expected` rows; sends the queue first when it is full.
    async fn queue_statement(&mut self, sql: &str, expected: Option<u64>, what: impl Into<String>) -> Result<(), SinkError> {
        if self.queue.would_overflow(sql.len()) {
            self.queue.send(&mut self.conn).await?;
        }
        self.queue.push(sql, expected, what);
        Ok(())
    }

    /// Runs a statement now, after everything folded and queued before it.
    async fn run(&mut self, sql: &str, expected: Option<u64>, what: &str) -> Result<(), SinkError> {
        self.emit_fold().await?;
        self.queue.send(&mut self.conn).await?;
        self.conn.query_drop(sql).await.map_err(SinkError::mysql(format!("{what} (`{}`)", shape(sql))))?;
        if let Some(n) = expected {
            expect(self.conn.affected_rows(), n, what)?;
        }
        Ok(())
    }

    async fn rollback_quietly(&mut self) {
        self.fold.take();
        self.queue.clear();
        self.foreign_key_checks = None;
        if self.in_transaction {
            let _ = self.conn.query_drop("ROLLBACK").await;
            self.in_transaction = false;
        }
    }

    async fn begin_tx(&mut self) -> Result<(), SinkError> {
        if !self.in_transaction {
            self.conn.query_drop("START TRANSACTION").await.map_err(SinkError::mysql("START TRANSACTION"))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Records `position` and commits the open transaction.
    async fn commit_at(&mut self, position: &Position) -> Result<(), SinkError> {
        self.begin_tx().await?;
        self.emit_fold().await?;
        let sql = progress::upsert(&self.stream, position)?;
        self.queue_statement(&sql, None, "recording the applied position").await?;
        self.queue.send(&mut self.conn).await?;
        self.conn.query_drop("COMMIT").await.map_err(SinkError::mysql("COMMIT"))?;
        self.in_transaction = false;
        self.applied = position.clone();
        Ok(())
    }

    /// Applies changes inside the open transaction; a TRUNCATE commits what is before it at `before`.
    async fn changes(&mut self, changes: &[&RowChange], before: Option<&Position>) -> Result<(), SinkError> {
        let mut i = 0;
        while i < changes.len() {
            if let RowChange::Insert { table, .. } | RowChange::Update { table, .. } | RowChange::Delete { table, .. } = changes[i] {
                if self.foldable(table).await? {
                    if !self.fold.accepts(table) {
                        self.emit_fold().await?;
                    }
                    self.fold.add(changes[i])?;
                    if self.fold.rows() >= FOLD_ROWS {
                        self.emit_fold().await?;
                    }
                    i += 1;
                    continue;
                }
            }
            match changes[i] {
                RowChange::Insert { table, .. } => {
                    // Consecutive inserts into the same table go together.
                    self.foreign_keys(table.foreign_key_checks).await?;
                    let mut j = i;
                    while j < changes.len()
                        && matches!(changes[j], RowChange::Insert { table: t, .. } if same_table(t, table) && t.columns.len() == table.columns.len())
                    {
                        j += 1;
                    }
                    self.insert(table, &changes[i..j]).await?;
                    i = j;
                }
                RowChange::Update { table, key, before: old, after } => {
                    self.foreign_keys(table.foreign_key_checks).await?;
                    self.update(table, key, old.as_ref(), after).await?;
                    i += 1;
                }
                RowChange::Delete { table, key, before: old } => {
                    self.foreign_keys(table.foreign_key_checks).await?;
                    if table.replica_identity == ReplicaIdentity::Full {
                        self.delete_one(table, old.as_ref().unwrap_or(key)).await?;
                        i += 1;
                    } else {
                        // One multi-row DELETE visits rows in key order: a table referencing itself
                        // is deleted from in blue's order, one row at a time, while checks are on.
                        let one_by_one = table.foreign_key_checks && self.info(&table.name).await?.self_referencing;
                        let mut j = i + 1;
                        while !one_by_one && j < changes.len() && matches!(changes[j], RowChange::Delete { table: t, .. } if same_table(t, table)) {
                            j += 1;
                        }
                        self.delete_by_key(table, &changes[i..j]).await?;
                        i = j;
                    }
                }
                RowChange::Truncate { tables, .. } => {
                    // TRUNCATE commits implicitly: commit what came before first.
                    if let Some(at) = before {
                        if self.in_transaction {
                            self.commit_at(at).await?;
                        }
                    }
                    self.foreign_keys(false).await?;
                    for t in tables {
                        self.run(&format!("TRUNCATE TABLE {}", qualified(&t.name)), None, &format!("truncating {}", t.name)).await?;
                    }
                    self.in_transaction = false;
                    self.begin_tx().await?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    async fn insert(&mut self, table: &TableSchema, rows: &[&RowChange]) -> Result<(), SinkError> {
        let mut after = Vec::with_capacity(rows.len());
        for c in rows {
            if let RowChange::Insert { after: row, .. } = c {
                after.push(row);
            }
        }
        self.insert_rows_of(table, &after).await
    }

    /// Queues multi-row INSERTs of whole rows (generated columns left out).
    async fn insert_rows_of(&mut self, table: &TableSchema, rows: &[&Vec<Value>]) -> Result<(), SinkError> {
        let generated = self.generated(&table.name).await?.clone();
        let keep: Vec<usize> = table.columns.iter().enumerate().filter(|(_, c)| !generated.contains(&c.name)).map(|(i, _)| i).collect();
        let columns: Vec<(String, MySqlType)> = keep.iter().map(|&i| (table.columns[i].name.clone(), mysql_type(table, i).clone())).collect();
        let values: Vec<Vec<Value>> = rows.iter().map(|row| keep.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect()).collect();
        if values.is_empty() {
            return Ok(());
        }
        for (sql, count) in insert_statements(&table.name, &columns, &values)? {
            self.queue_statement(&sql, Some(count), format!("inserting into {}", table.name)).await?;
        }
        Ok(())
    }

    /// Queues multi-row INSERTs of whole rows into every column green has, by position (`DEFAULT` for
    /// generated ones) — the folded rows. Positional on purpose: a column added on green since the
    /// sink read its catalog (which would take its default where an ordered UPDATE keeps its value)
    /// makes the statement fail with "column count doesn't match" instead of passing; the batch is
    /// then retried by a new sink that reads green's catalog again and applies that table in order.
    async fn insert_all_columns(&mut self, table: &TableSchema, rows: &[&Vec<Value>]) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        let info = self.info(&table.name).await?;
        let (ordered, generated) = (info.ordered.clone(), info.generated.clone());
        let mut columns: Vec<InsertColumn> = Vec::with_capacity(ordered.len());
        let mut from: Vec<Option<usize>> = Vec::with_capacity(ordered.len());
        for name in &ordered {
            let blue = table.columns.iter().position(|c| &c.name == name);
            match blue {
                Some(i) if !generated.contains(name) => {
                    columns.push(Some((name.clone(), mysql_type(table, i).clone())));
                    from.push(Some(i));
                }
                _ => {
                    columns.push(None);
                    from.push(None);
                }
            }
        }
        let values: Vec<Vec<Value>> =
            rows.iter().map(|row| from.iter().map(|i| i.and_then(|i| row.get(i).cloned()).unwrap_or(Value::Null)).collect()).collect();
        let head = format!("INSERT INTO {} VALUES ", qualified(&table.name));
        for (sql, count) in multi_row_inserts(&table.name, &head, &columns, &values)? {
            self.queue_statement(&sql, Some(count), format!("{FOLDED_INSERT} {}", table.name)).await?;
        }
        Ok(())
    }

    /// Queues `DELETE … WHERE (key) IN (…)` of rows by their key values, each statement under
    /// [`STATEMENT_BYTES`] and required to delete every row it names.
    async fn delete_keys(&mut self, table: &TableSchema, keys: &[&Vec<Value>], what: &str) -> Result<(), SinkError> {
        let key_columns: Vec<usize> = table.key_indexes().collect();
        let names: Vec<String> = key_columns.iter().map(|&i| ident(&table.columns[i].name)).collect();
        let head = format!("DELETE FROM {} WHERE ({}) IN (", qualified(&table.name), names.join(", "));
        let mut sql = String::new();
        let mut n = 0u64;
        for (r, key) in keys.iter().enumerate() {
            if n == 0 {
                sql.clear();
                sql.push_str(&head);
            } else {
                sql.push(',');
            }
            sql.push('(');
            for (k, &i) in key_columns.iter().enumerate() {
                if k > 0 {
                    sql.push(',');
                }
                push(&mut sql, mysql_type(table, i), key.get(k).unwrap_or(&Value::Null)).map_err(|reason| SinkError::Value {
                    table: table.name.to_string(),
                    column: table.columns[i].name.clone(),
                    reason,
                })?;
            }
            sql.push(')');
            n += 1;
            if sql.len() >= STATEMENT_BYTES || r + 1 == keys.len() {
                sql.push(')');
                self.queue_statement(&sql, Some(n), format!("{what} {}", table.name)).await?;
                n = 0;
            }
        }
        Ok(())
    }

    /// Whether `table`'s changes may be folded (see [`fold`]): besides the table being independent,
    /// green must have no column blue does not send. A folded update replaces the whole row, so a
    /// column only green has (an expand-phase migration backfilled on green) would fall back to its
    /// default, where an ordered UPDATE leaves it alone.
    async fn foldable(&mut self, table: &TableSchema) -> Result<bool, SinkError> {
        if !fold::canonical_keys(table) {
            return Ok(false);
        }
        self.info(&table.name).await?;
        let info = self.tables.get_mut(&table.name).ok_or_else(|| SinkError::Schema { table: table.name.to_string(), reason: "not loaded".into() })?;
        if let Some(decided) = info.foldable {
            return Ok(decided);
        }
        let green_only = info.columns.iter().any(|c| !info.generated.contains(c) && !table.columns.iter().any(|b| &b.name == c));
        // A positional INSERT (the folded rows') takes no value for an INVISIBLE column.
        let decided = info.independent && !green_only && !info.invisible;
        info.foldable = Some(decided);
        Ok(decided)
    }

    /// Queues the folded changes: per table, a DELETE of every row that existed before, then an
    /// INSERT of every row that exists after.
    async fn emit_fold(&mut self) -> Result<(), SinkError> {
        for t in self.fold.take() {
            let mut existed = Vec::new();
            let mut after = Vec::new();
            for e in &t.entries {
                if e.existed {
                    existed.push(&e.key);
                }
                if let Some(row) = &e.after {
                    after.push(row);
                }
            }
            // Updated rows are replaced: the DELETE covers every row blue updated or deleted.
            self.delete_keys(&t.schema, &existed, "removing the rows blue updated or deleted in").await?;
            self.insert_all_columns(&t.schema, &after).await?;
        }
        Ok(())
    }

    /// `WHERE` for one row: the key columns, or every non-generated column (`<=>`) without a key.
    fn locate(table: &TableSchema, generated: &HashSet<String>, key: &[Value], old: Option<&Vec<Value>>, sql: &mut String) -> Result<(), SinkError> {
        let full = table.replica_identity == ReplicaIdentity::Full;
        let value_err = |column: &str, reason: String| SinkError::Value { table: table.name.to_string(), column: column.to_owned(), reason };
        let mut first = true;
        if full {
            let row = old.map(Vec::as_slice).unwrap_or(key);
            for (i, c) in table.columns.iter().enumerate() {
                if generated.contains(&c.name) {
                    continue;
                }
                sql.push_str(if first { " WHERE " } else { " AND " });
                first = false;
                let v = row.get(i).cloned().unwrap_or(Value::Null);
                push_equals(sql, &ident(&c.name), mysql_type(table, i), &v, true).map_err(|r| value_err(&c.name, r))?;
            }
        } else {
            for (k, i) in table.key_indexes().enumerate() {
                sql.push_str(if first { " WHERE " } else { " AND " });
                first = false;
                let c = &table.columns[i];
                let v = key.get(k).cloned().unwrap_or(Value::Null);
                push_equals(sql, &ident(&c.name), mysql_type(table, i), &v, false).map_err(|r| value_err(&c.name, r))?;
            }
        }
        if first {
            return Err(SinkError::Schema { table: table.name.to_string(), reason: "has no columns to find a row by".into() });
        }
        if full {
            sql.push_str(" LIMIT 1");
        }
        Ok(())
    }

    async fn update(&mut self, table: &TableSchema, key: &[Value], old: Option<&Vec<Value>>, after: &[Value]) -> Result<(), SinkError> {
        let generated = self.generated(&table.name).await?.clone();
        let mut sql = format!("UPDATE {} SET ", qualified(&table.name));
        let mut first = true;
        for (i, c) in table.columns.iter().enumerate() {
            if generated.contains(&c.name) {
                continue;
            }
            if !first {
                sql.push_str(", ");
            }
            first = false;
            sql.push_str(&ident(&c.name));
            sql.push_str(" = ");
            push(&mut sql, mysql_type(table, i), after.get(i).unwrap_or(&Value::Null)).map_err(|reason| SinkError::Value {
                table: table.name.to_string(),
                column: c.name.clone(),
                reason,
            })?;
        }
        Self::locate(table, &generated, key, old, &mut sql)?;
        self.queue_statement(&sql, Some(1), format!("updating {}", table.name)).await
    }

    async fn delete_one(&mut self, table: &TableSchema, row: &[Value]) -> Result<(), SinkError> {
        let generated = self.generated(&table.name).await?.clone();
        let mut sql = format!("DELETE FROM {}", qualified(&table.name));
        Self::locate(table, &generated, row, Some(&row.to_vec()), &mut sql)?;
        self.queue_statement(&sql, Some(1), format!("deleting from {}", table.name)).await
    }

    async fn delete_by_key(&mut self, table: &TableSchema, rows: &[&RowChange]) -> Result<(), SinkError> {
        let mut keys = Vec::with_capacity(rows.len());
        for c in rows {
            if let RowChange::Delete { key, .. } = c {
                keys.push(key);
            }
        }
        self.delete_keys(table, &keys, "deleting from").await
    }
}

/// Changes of `a` and `b` may share a statement: the same table, with foreign keys checked alike.
fn same_table(a: &TableSchema, b: &TableSchema) -> bool {
    a.name == b.name && a.foreign_key_checks == b.foreign_key_checks
}

/// A statement's shape for messages: its text up to the first literal value.
fn shape(sql: &str) -> String {
    let cut = sql.find(['\'', '(']).unwrap_or(sql.len()).min(160);
    format!("{}…", &sql[..sql.floor_char_boundary(cut)])
}

impl Sink for MySqlSink {
    fn applied(&self) -> Position {
        self.applied.clone()
    }

    async fn apply(&mut self, batch: &[Transaction]) -> Result<Committed, SinkError> {
        let mut pending: Vec<&Transaction> = Vec::with_capacity(batch.len());
        for t in batch {
            if self.beyond_applied(&t.commit_end)? {
                pending.push(t);
            }
        }
        let Some(last) = pending.last() else {
            return Ok(Committed::new(self.applied.clone()));
        };
        let result = async {
            self.begin_tx().await?;
            let mut before: Option<Position> = None;
            for t in &pending {
                let refs: Vec<&RowChange> = t.changes.iter().collect();
                self.changes(&refs, before.as_ref()).await?;
                before = Some(t.commit_end.clone());
            }
            self.commit_at(&last.commit_end).await
        }
        .await;
        if let Err(e) = result {
            self.rollback_quietly().await;
            return Err(e);
        }
        Ok(Committed::new(self.applied.clone()))
    }

    async fn begin(&mut self) -> Result<(), SinkError> {
        self.begin_tx().await
    }

    async fn apply_part(&mut self, changes: &[&RowChange]) -> Result<(), SinkError> {
        let before = self.applied.clone();
        let result = self.changes(changes, Some(&before)).await;
        if result.is_err() {
            self.rollback_quietly().await;
        }
        result
    }

    async fn commit(&mut self, commit_end: &Position, _commit_ts: Timestamp) -> Result<Committed, SinkError> {
        if !self.beyond_applied(commit_end).unwrap_or(false) {
            self.rollback_quietly().await;
            return Err(SinkError::Progress(format!("refusing to record {commit_end}: green already recorded {} (a position never moves back)", self.applied)));
        }
        if let Err(e) = self.commit_at(commit_end).await {
            self.rollback_quietly().await;
            return Err(e);
        }
        Ok(Committed::new(self.applied.clone()))
    }

    async fn rollback(&mut self) -> Result<(), SinkError> {
        self.rollback_quietly().await;
        Ok(())
    }

    async fn flush(&mut self) -> Result<Durable, SinkError> {
        if !self.durable_commits {
            // Commits reach the OS at commit but the disk only with the next log flush.
            self.conn
                .query_drop("FLUSH ENGINE LOGS")
                .await
                .map_err(SinkError::mysql("flushing green's InnoDB log (FLUSH ENGINE LOGS; needs RELOAD, or set innodb_flush_log_at_trx_commit = 1)"))?;
        }
        Ok(Durable::new(self.applied.clone()))
    }

    async fn schema_changes(&mut self, schema: &TableSchema) -> Result<Vec<String>, SinkError> {
        self.tables.remove(&schema.name);
        let generated = self.generated(&schema.name).await?.clone();
        let rows: Vec<(Vec<u8>, String, Option<String>)> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&schema.name.schema, &schema.name.name),
            )
            .await
            .map_err(SinkError::mysql(format!("reading the columns of {}", schema.name)))?;
        let green: HashMap<String, (bool, bool)> =
            rows.into_iter().map(|(n, nullable, default)| (String::from_utf8_lossy(&n).into_owned(), (nullable == "YES", default.is_some()))).collect();
        for c in &schema.columns {
            if !green.contains_key(&c.name) {
                return Err(SinkError::Schema {
                    table: schema.name.to_string(),
                    reason: format!(
                        "column `{}` exists on blue but not on green; add it on green (ALTER TABLE {} ADD COLUMN …, as on blue) and restart",
                        c.name,
                        qualified(&schema.name)
                    ),
                });
            }
        }
        for (name, (nullable, has_default)) in &green {
            if !nullable && !has_default && !generated.contains(name) && !schema.columns.iter().any(|c| &c.name == name) {
                return Err(SinkError::Schema {
                    table: schema.name.to_string(),
                    reason: format!("green column `{name}` is NOT NULL without a default but blue does not send it; drop or change it on green and restart"),
                });
            }
        }
        Ok(Vec::new())
    }

    async fn apply_schema_changes(&mut self, statements: &[String]) -> Result<(), SinkError> {
        for s in statements {
            self.run(s, None, "applying a schema change").await?;
        }
        self.tables.clear();
        Ok(())
    }

    /// Runs blue's own DDL in `database`, as the decoder gives it: preceded by the `SET` of blue's
    /// session context (statement time, time zone, sql_mode, character sets), after which the sink's
    /// own session settings are restored whatever happened. Replaying one already applied (a crash
    /// before the position moved on) finds the column, index or routine there: the "duplicate
    /// column/key name", "already exists" and "does not exist" errors (1060, 1061, 1304, 1305,
    /// 1050) are taken as done.
    async fn apply_source_ddl(&mut self, database: &str, statement: &str) -> Result<(), SinkError> {
        self.rollback_quietly().await;
        self.conn.query_drop(format!("USE {}", ident(database))).await.map_err(SinkError::mysql(format!("USE {database}")))?;
        let result = self.conn.query_drop(statement).await;
        self.conn
            .query_drop(format!("SET timestamp = DEFAULT, collation_database = DEFAULT, collation_server = DEFAULT; {SESSION}"))
            .await
            .map_err(SinkError::mysql("restoring the session after blue's DDL"))?;
        match result {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if matches!(e.code, 1060 | 1061 | 1304 | 1305 | 1050) => {
                tracing::info!("already applied on green: {statement} ({})", e.message);
            }
            Err(e) => return Err(SinkError::mysql(format!("applying blue's DDL `{statement}`"))(e)),
        }
        self.tables.clear();
        Ok(())
    }

    async fn conflicts(&mut self, schema: &TableSchema) -> Result<crate::Conflicts, SinkError> {
        Ok(self.info(&schema.name).await?.conflicts.clone())
    }

    fn advanced(&mut self, position: &Position) {
        if self.beyond_applied(position).unwrap_or(false) {
            self.applied = position.clone();
        }
    }

    fn forget_schema(&mut self) {
        self.tables.clear();
    }

    fn canceller(&self) -> Canceller {
        let id = self.conn.id();
        let opts = self.opts.clone();
        Canceller::new(move || {
            let opts = opts.clone();
            Box::pin(async move {
                match conn::open(&opts).await {
                    Ok(mut c) => {
                        if let Err(e) = c.query_drop(format!("KILL QUERY {id}")).await {
                            tracing::warn!("cancelling green's apply statement failed: {e}");
                        }
                        let _ = c.disconnect().await;
                    }
                    Err(e) => tracing::warn!("cannot cancel green's apply statement: {e}"),
                }
            })
        })
    }
}
