//! The MySQL/MariaDB sink: applies batches of committed source transactions to a green MySQL or
//! MariaDB database in one transaction each, recording progress in a row of `turnout.progress` in that
//! same transaction.
//!
//! Session: `utf8mb4` statements, `time_zone = '+00:00'` (TIMESTAMP values arrive in UTC),
//! `sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'` — strict, so a
//! value that does not fit fails loudly instead of being cut; zero dates allowed (no `NO_ZERO_DATE`);
//! a 0 in an AUTO_INCREMENT column kept; `explicit_defaults_for_timestamp = ON`, so a NULL stays NULL.
//! `CLIENT_FOUND_ROWS`, so an UPDATE counts the rows it matched.
//! turnout's writes are marked in green's binlog where the account may ([`mark_session`]: MariaDB, a
//! `gtid_domain_id` of turnout's and `skip_replication = 1`; Oracle MySQL 8.3+, GTIDs tagged
//! `turnout_<n>`), so a reverse stream or a watch can tell them from the application's.
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
mod fold;
mod generated;
mod insert;
mod json_text;
pub mod literal;
mod progress;
mod queue;
mod rows;

pub use insert::insert_rows;
pub use progress::{drop_progress, read_progress, record_position};

use crate::error::SinkError;
use crate::{Canceller, Committed, Durable, RowChange, Sink, Transaction};
use catalog::{table_info, TableInfo};
use fold::Fold;
use insert::{expect, insert_statements, multi_row_inserts, mysql_type, qualified, InsertColumn, RowStatement};
use literal::{for_green, ident, push, push_equals};
use mysql_async::prelude::Queryable;
use queue::StatementQueue;
use std::collections::{HashMap, HashSet};
use turnout_decoders::mysql::decoder::OwnWrites;
use turnout_decoders::schema::{ColumnType, MySqlType, ReplicaIdentity, TableSchema};
use turnout_decoders::{GtidState, Position, TableName, Timestamp, Value};

/// The session settings of every green connection.
const SESSION: &str = "SET NAMES utf8mb4, time_zone = '+00:00', foreign_key_checks = 0, \
     sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', explicit_defaults_for_timestamp = ON";

/// The GTID domain the sink of `stream` writes in where the account may set it: derived from the
/// stream's name, so a reverse stream knows which transactions are turnout's own; never 0 (the
/// servers' default domain).
pub fn own_domain(stream: &str) -> u32 {
    1 + stream.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 60_000
}

/// The GTID domain a cutover of `stream` writes its own changes on green in (the counters it
/// moves): apart from [`own_domain`], whose presence in green's binlog proves the apply marks its
/// writes, and never equal to any stream's.
pub fn cutover_domain(stream: &str) -> u32 {
    own_domain(stream) + 60_000
}

/// The GTID tag (MySQL 8.3+) of turnout's writes marked `n` ([`own_domain`], [`cutover_domain`]):
/// what a GTID domain is on MariaDB.
pub fn tag(n: u32) -> String {
    format!("turnout_{n}")
}

/// turnout's own writes of `stream` on the side it applies to, as a decoder drops them: its apply's
/// and its cutover's, by GTID domain (MariaDB) and tag (Oracle MySQL).
pub fn own_writes(stream: &str) -> OwnWrites {
    let marks = [own_domain(stream), cutover_domain(stream)];
    OwnWrites { domains: marks.to_vec(), tags: marks.iter().map(|n| tag(*n)).collect() }
}

/// What an account needs to mark its writes ([`mark_session`]).
pub fn mark_grant(mariadb: bool) -> &'static str {
    if mariadb {
        "GRANT BINLOG REPLAY ON *.* (or SUPER)"
    } else {
        "GRANT TRANSACTION_GTID_TAG, SESSION_VARIABLES_ADMIN ON *.* (MySQL 8.3+; older servers have no GTID tags)"
    }
}

/// Marks every later write of the session as turnout's, with mark `n`: MariaDB, GTID domain `n`
/// (`gtid_domain_id`); Oracle MySQL, GTIDs tagged [`tag`]`(n)` (`gtid_next = 'AUTOMATIC:<tag>'`,
/// which stays for the session's later transactions). The error is the server's; [`mark_grant`]
/// names the fix.
pub async fn mark_session(conn: &mut mysql_async::Conn, mariadb: bool, n: u32) -> Result<(), mysql_async::Error> {
    if mariadb {
        conn.query_drop(format!("SET SESSION gtid_domain_id = {n}")).await
    } else {
        conn.query_drop(format!("SET SESSION gtid_next = 'AUTOMATIC:{}'", tag(n))).await
    }
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
    let opts = turnout_connect::mysql::conn::options(url).map_err(|e| SinkError::Config(format!("target.url: {e}")))?;
    Ok(mysql_async::OptsBuilder::from_opts(opts).client_found_rows(true).into())
}

/// A session on green with turnout's settings.
pub async fn connect(url: &str) -> Result<mysql_async::Conn, SinkError> {
    connect_with(&options(url)?).await
}

async fn connect_with(opts: &mysql_async::Opts) -> Result<mysql_async::Conn, SinkError> {
    let mut conn = turnout_connect::mysql::conn::open(opts).await.map_err(SinkError::mysql("connecting"))?;
    conn.query_drop(SESSION).await.map_err(SinkError::mysql("setting the session"))?;
    Ok(conn)
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
    /// Green keeps JSON as text (MariaDB): a MySQL blue's documents are written as their text.
    json_text: bool,
    in_transaction: bool,
    /// Rows written since the last commit into tables with generated columns, compared with blue's
    /// values before the commit ([`generated`]).
    generated_rows: generated::GeneratedRows,
}

impl std::fmt::Debug for MySqlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSink").field("stream", &self.stream).field("applied", &self.applied.to_string()).finish_non_exhaustive()
    }
}

impl MySqlSink {
    /// Connects, creates the progress table if needed and reads this stream's recorded position.
    /// On Oracle MySQL its GTIDs are not tagged (see [`MySqlSink::connect_tagging`]).
    pub async fn connect(url: &str, stream: &str) -> Result<MySqlSink, SinkError> {
        Self::connect_tagging(url, stream, false).await
    }

    /// As [`MySqlSink::connect`]; with `tag`, on Oracle MySQL 8.3+ the session tags its GTIDs as
    /// turnout's ([`mark_session`]) — for a watch of green's (blue's) binlog. MariaDB sessions always
    /// write in turnout's GTID domain, which reverse streams rely on.
    pub async fn connect_tagging(url: &str, stream: &str, tag: bool) -> Result<MySqlSink, SinkError> {
        let opts = options(url)?;
        let mut conn = connect_with(&opts).await?;
        progress::ensure_table(&mut conn).await?;
        let applied = progress::read(&mut conn, stream).await?.unwrap_or(Position::Binlog(Default::default()));
        let flush: Option<String> =
            conn.query_first("SELECT @@innodb_flush_log_at_trx_commit").await.map_err(SinkError::mysql("reading innodb_flush_log_at_trx_commit"))?;
        let domain = own_domain(stream);
        let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(SinkError::mysql("reading the version"))?;
        let mariadb = version.unwrap_or_default().to_ascii_lowercase().contains("mariadb");
        let marked = if mariadb {
            // A replica of green must not apply turnout's writes a second time either.
            conn.query_drop(format!("SET SESSION gtid_domain_id = {domain}, SESSION skip_replication = 1")).await
        } else if tag {
            mark_session(&mut conn, mariadb, domain).await
        } else {
            Ok(())
        };
        let marks = match marked {
            Ok(()) => (mariadb || tag).then_some(domain),
            Err(e) => {
                let how = if mariadb { "gtid_domain_id, skip_replication" } else { "a GTID tag, gtid_next = 'AUTOMATIC:<tag>'" };
                tracing::warn!("turnout's writes on green are not marked in its binlog ({how}): {e}; {} to mark them", mark_grant(mariadb));
                None
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
            json_text: mariadb,
            in_transaction: false,
            generated_rows: generated::GeneratedRows::default(),
        })
    }

    /// Whether `p` lies beyond the recorded position. A position that cannot be compared with it (a
    /// binlog of another base name, another server) is an error, never a silent skip.
    fn beyond_applied(&self, p: &Position) -> Result<bool, SinkError> {
        if matches!(&self.applied, Position::Binlog(b) if b.file.is_empty() && b.offset == 0) {
            return Ok(true);
        }
        match p.try_cmp(&self.applied) {
            Ok(o) => Ok(o == std::cmp::Ordering::Greater),
            Err(_) => Err(SinkError::Progress(format!(
                "the source position {p} cannot be compared with the position {} recorded on green (another server or binlog \
                 name?); run `turnout teardown` and start over",
                self.applied
            ))),
        }
    }

    /// Whether blue is of the other MySQL family, as the GTIDs of the position green recorded show
    /// (MariaDB's domain-server-sequence or MySQL's UUID sets). Across families blue's DDL is refused
    /// instead of replayed: its session (`sql_mode` bits, defaults, collations) means something else
    /// on green, and rows green already holds would take values blue's did not.
    fn across_families(&self) -> bool {
        let Position::Binlog(b) = &self.applied else { return false };
        match b.gtids {
            GtidState::MariaDb(_) => !self.json_text,
            GtidState::MySql(_) => self.json_text,
            GtidState::None => false,
        }
    }

    /// The mark turnout's writes carry in green's binlog (a GTID domain, or the number of a GTID
    /// tag: [`tag`]), when the account may set it.
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
        self.queue.push(sql, expected, None, what);
        Ok(())
    }

    /// Queues a row statement ([`RowStatement`]): relaxed for itself alone when it writes ENUM error
    /// values, and then required to warn once for each.
    async fn queue_rows(&mut self, s: &RowStatement, what: impl Into<String>) -> Result<(), SinkError> {
        if s.enum_errors == 0 {
            return self.queue_statement(&s.sql, Some(s.rows), what).await;
        }
        let sql = literal::relaxed(&s.sql, self.json_text);
        if self.queue.would_overflow(sql.len()) {
            self.queue.send(&mut self.conn).await?;
        }
        self.queue.push(&sql, Some(s.rows), Some(s.enum_errors), what);
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
        self.generated_rows.clear();
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
        self.check_generated().await?;
        let sql = progress::upsert(&self.stream, position)?;
        self.queue_statement(&sql, None, "recording the applied position").await?;
        self.queue.send(&mut self.conn).await?;
        self.conn.query_drop("COMMIT").await.map_err(SinkError::mysql("COMMIT"))?;
        self.in_transaction = false;
        self.applied = position.clone();
        Ok(())
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
        if self.across_families() {
            return Err(SinkError::Schema {
                table: database.to_owned(),
                reason: format!(
                    "blue ran DDL (`{}`) and green is of the other MySQL family: turnout does not replay DDL across families (session \
                     settings, defaults and collations mean something else there); run `turnout teardown` and start over — the new \
                     snapshot copies the changed schema",
                    shape(statement)
                ),
            });
        }
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

    fn advanced(&mut self, position: &Position) -> Result<(), SinkError> {
        if self.beyond_applied(position)? {
            self.applied = position.clone();
        }
        Ok(())
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
                match turnout_connect::mysql::conn::open(&opts).await {
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
