//! The PostgreSQL sink: applies batches of committed source transactions to green in one transaction
//! each, recording progress through a replication origin in that same transaction.
//!
//! Session settings: `session_replication_role = replica` (green's triggers and foreign-key checks do
//! not fire again for replicated rows), and the same text formats the source connection uses
//! (`DateStyle=ISO`, `TimeZone=UTC`, `extra_float_digits=3`, `bytea_output=hex`), so values compare
//! and parse exactly.
//!
//! Exactly-once: the origin position is set with `pg_replication_origin_xact_setup` in the same
//! simple-query message as `COMMIT`, after every row statement succeeded (see `Sink::commit` below).
//! Commits run with `synchronous_commit = off`; `Sink::flush` flushes green's WAL up to the last
//! commit (`pg_replication_origin_session_progress(true)`) and returns the durable position. Fed by a
//! blue of another engine, whose positions no origin can hold, the sink records a row of
//! `turnout.progress` instead, in the same message as `COMMIT`, and commits synchronously
//! ([`progress`], [`PgSink::connect_recording`]); the origin is then set up around each commit only
//! to mark it as turnout's in green's WAL.
//!
//! Statements: consecutive inserts into one table become one `INSERT … SELECT … FROM unnest(…)`; updates
//! and deletes are one statement per row, pipelined, in source order (a multi-row UPDATE could trip
//! unique constraints that the source order avoids). Rows of tables without a key (REPLICA IDENTITY
//! FULL) are matched on every column and exactly one matching row is changed.

pub mod ddl;
mod early;
pub mod progress;
mod statement;
pub mod text;

use crate::error::SinkError;
pub use crate::error::{classify_pg as classify_error, describe_pg_error as describe_error};
use crate::{Committed, Durable, RowChange, Sink, Transaction};
pub use early::PgEarly;
use statement::{Statements, TargetTable};
use std::collections::HashMap;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use turnout_connect::pg::{tls_client_config, ConnectOptions, SslMode};
use turnout_decoders::schema::{quote_ident, TableName, TableSchema};
use turnout_decoders::{Lsn, Position, Timestamp};

/// Session settings of every connection turnout opens with [`connect`]. A read-only fence
/// (`default_transaction_read_only` at database level) fences applications, not turnout: its own
/// sessions — the reverse apply on a fenced blue, sequences and fence changes during a rollback —
/// write regardless.
pub const SESSION_SETTINGS: &str = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; \
     SET extra_float_digits = 3; SET bytea_output = 'hex'; SET client_encoding = 'UTF8'; SET default_transaction_read_only = off";

/// Opens a tokio-postgres session to the server a `postgres://` URL names, with TLS as its `sslmode`
/// says (disable, prefer, require, verify-full with `sslrootcert`) and turnout's session settings.
pub async fn connect(url: &str) -> Result<Client, SinkError> {
    let opts = ConnectOptions::from_url(url, "url").map_err(|e| SinkError::Config(e.to_string()))?;
    connect_with(&opts).await
}

/// As [`connect`], from parsed options.
pub async fn connect_with(opts: &ConnectOptions) -> Result<Client, SinkError> {
    let client = open(opts).await?;
    client.batch_execute(SESSION_SETTINGS).await.map_err(SinkError::target("setting session parameters"))?;
    Ok(client)
}

/// Opens a plain session (TLS as `sslmode` says) without turnout's session settings — for servers
/// that accept no `SET`, such as pgbouncer's admin console. A TLS setup problem is
/// [`SinkError::Config`]; a refused or failed connection is [`SinkError::Target`].
pub async fn open(opts: &ConnectOptions) -> Result<Client, SinkError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&opts.host)
        .port(opts.port)
        .user(&opts.user)
        .dbname(&opts.database)
        .application_name(&opts.application_name)
        .connect_timeout(opts.connect_timeout)
        .ssl_mode(match opts.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
    if let Some(pw) = &opts.password {
        config.password(pw);
    }
    let context = format!("connecting to {}", opts.redacted());
    if opts.ssl_mode == SslMode::Disable {
        let (client, connection) = config.connect(NoTls).await.map_err(SinkError::target(context))?;
        drive(connection);
        Ok(client)
    } else {
        let tls = tls_client_config(opts).map_err(|e| SinkError::Config(e.to_string()))?;
        let (client, connection) = config.connect(MakeRustlsConnect::new((*tls).clone())).await.map_err(SinkError::target(context))?;
        drive(connection);
        Ok(client)
    }
}

/// Runs a session's connection in the background until it closes.
fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("connection ended: {e}");
        }
    });
}

/// The recorded progress of `origin` on green (`0/0` when it does not exist or never advanced).
pub async fn origin_progress(client: &Client, origin: &str) -> Result<Lsn, SinkError> {
    let row = client
        .query_one(
            "SELECT COALESCE((SELECT pg_replication_origin_progress(roname, true)::text FROM pg_replication_origin WHERE roname = $1), '0/0')",
            &[&origin],
        )
        .await
        .map_err(SinkError::target("reading replication origin progress"))?;
    row.get::<_, String>(0).parse().map_err(|e| SinkError::Progress(format!("origin {origin}: {e}")))
}

/// Creates `origin` on green if it does not exist.
pub async fn ensure_origin(client: &Client, origin: &str) -> Result<(), SinkError> {
    client
        .execute("SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)", &[&origin])
        .await
        .map_err(SinkError::target(format!("creating replication origin {origin}")))?;
    Ok(())
}

/// Sets `origin`'s progress (after the initial snapshot). Must not be called while a sink session
/// has the origin set up. Progress only moves forward.
pub async fn advance_origin(client: &Client, origin: &str, to: Lsn) -> Result<(), SinkError> {
    let current = origin_progress(client, origin).await?;
    if to <= current {
        return Ok(());
    }
    client
        .execute("SELECT pg_replication_origin_advance($1, $2::text::pg_lsn)", &[&origin, &to.to_string()])
        .await
        .map_err(SinkError::target(format!("advancing replication origin {origin}")))?;
    Ok(())
}

/// Drops `origin` on green if it exists.
pub async fn drop_origin(client: &Client, origin: &str) -> Result<(), SinkError> {
    client
        .execute("SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1", &[&origin])
        .await
        .map_err(SinkError::target(format!("dropping replication origin {origin}")))?;
    Ok(())
}

/// An apply session on green bound to one replication origin.
pub struct PgSink {
    client: Client,
    /// How the session was opened: a cancel request is sent the same way (TLS as configured).
    options: ConnectOptions,
    origin: String,
    applied: Lsn,
    tables: HashMap<TableName, TargetTable>,
    statements: Statements,
    /// The origin is shared with other sessions of the stream (parallel apply): this session sets it
    /// up for its commit only, instead of holding it from connect on.
    shared: bool,
    /// `BEGIN` is owed: it goes to green in the same round trip as the first statements.
    begin_pending: bool,
    /// Flushed to green's disk: as of connect (reading the origin's progress flushes) or this session's last
    /// commit (which flushes in its own message).
    durable: Lsn,
    /// Blue, asked what its older rows hold in a column it added (see [`ddl`]).
    source: Option<ConnectOptions>,
    /// Recording in `turnout.progress` instead of the origin (a blue of another engine, see
    /// [`progress`]): the position applied up to. `origin` then names the stream's row.
    row: Option<Position>,
    /// Recording: each commit marked with the origin `origin` ([`PgSink::connect_recording`]).
    mark: bool,
}

impl std::fmt::Debug for PgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSink").field("origin", &self.origin).field("applied", &self.applied).finish_non_exhaustive()
    }
}

impl PgSink {
    /// Connects, creates the origin if needed, binds this session to it and reads its progress.
    pub async fn connect(url: &str, origin: &str) -> Result<PgSink, SinkError> {
        PgSink::open(url, origin, false).await
    }

    /// Connects like [`PgSink::connect`] as one of several sessions that apply the same stream
    /// ([`crate::Parallel`]): the origin is set up only around each commit of this session, in the
    /// same message as the COMMIT, so sessions that commit one after another share it.
    pub async fn connect_shared(url: &str, origin: &str) -> Result<PgSink, SinkError> {
        PgSink::open(url, origin, true).await
    }

    async fn open(url: &str, origin: &str, shared: bool) -> Result<PgSink, SinkError> {
        let options = ConnectOptions::from_url(url, "target.url").map_err(|e| SinkError::Config(e.to_string()))?;
        let client = connect_with(&options).await?;
        client.batch_execute("SET session_replication_role = replica; SET synchronous_commit = off").await.map_err(SinkError::target(
            "SET session_replication_role = replica (the green role needs superuser or, on 15+, GRANT SET ON PARAMETER session_replication_role)",
        ))?;
        ensure_origin(&client, origin).await?;
        if !shared {
            client
                .execute("SELECT pg_replication_origin_session_setup($1)", &[&origin])
                .await
                .map_err(SinkError::target(format!("binding this session to replication origin {origin} (is another turnout running?)")))?;
        }
        let applied = origin_progress(&client, origin).await?;
        Ok(PgSink {
            client,
            options,
            origin: origin.to_owned(),
            applied,
            tables: HashMap::new(),
            statements: Statements::default(),
            shared,
            begin_pending: false,
            durable: applied,
            source: None,
            row: None,
            mark: false,
        })
    }

    /// Connects as one of the sessions applying the stream `stream` of a blue of another engine,
    /// recording the position in `turnout.progress` ([`progress`]) in each commit's transaction:
    /// commits are synchronous, so each is durable when it returns. With `mark`, the replication
    /// origin `stream` is set up around each commit only to mark it as turnout's in green's WAL (a
    /// stream from green drops it); its progress is not used.
    pub async fn connect_recording(url: &str, stream: &str, mark: bool) -> Result<PgSink, SinkError> {
        let options = ConnectOptions::from_url(url, "target.url").map_err(|e| SinkError::Config(e.to_string()))?;
        let client = connect_with(&options).await?;
        client.batch_execute("SET session_replication_role = replica; SET synchronous_commit = on").await.map_err(SinkError::target(
            "SET session_replication_role = replica (the green role needs superuser or, on 15+, GRANT SET ON PARAMETER session_replication_role)",
        ))?;
        progress::ensure_table(&client).await?;
        // The origin only marks this stream's commits in green's WAL (a stream back drops them).
        if mark {
            ensure_origin(&client, stream).await?;
        }
        let Some(applied) = progress::read(&client, stream).await? else {
            return Err(SinkError::Progress(format!("green has no turnout.progress row for the stream {stream}: the stream has not been prepared")));
        };
        Ok(PgSink {
            client,
            options,
            origin: stream.to_owned(),
            applied: Lsn(0),
            tables: HashMap::new(),
            statements: Statements::default(),
            shared: true,
            begin_pending: false,
            durable: Lsn(0),
            source: None,
            row: Some(applied),
            mark,
        })
    }

    /// [`Sink::commit`] of a sink recording in `turnout.progress`: the row and the `COMMIT` in one
    /// message, after every row statement succeeded.
    async fn commit_row(&mut self, applied: Position, commit_end: &Position) -> Result<Committed, SinkError> {
        let moves = commit_end.try_cmp(&applied);
        if !matches!(moves, Ok(std::cmp::Ordering::Greater)) {
            self.rollback_quietly().await;
            return Err(match moves {
                Err(e) => e.into(),
                Ok(_) => SinkError::Progress(format!("refusing to record {commit_end}: green already recorded {applied} (a position never moves back)")),
            });
        }
        let upsert = match progress::upsert(&self.origin, commit_end) {
            Ok(u) => u,
            Err(e) => {
                self.rollback_quietly().await;
                return Err(e);
            }
        };
        let begin = if std::mem::take(&mut self.begin_pending) { "BEGIN; " } else { "" };
        // The origin set up for this commit only marks it as turnout's in green's WAL: a stream from
        // green (the way back) drops it. Commits of the stream's sessions never overlap.
        let origin = self.origin.replace('\'', "''");
        let commit = if self.mark {
            format!("{begin}SELECT pg_replication_origin_session_setup('{origin}'); {upsert}; COMMIT; SELECT pg_replication_origin_session_reset()")
        } else {
            format!("{begin}{upsert}; COMMIT")
        };
        if let Err(e) = self.client.batch_execute(&commit).await {
            self.rollback_quietly().await;
            let _ = self.client.batch_execute("SELECT pg_replication_origin_session_reset() WHERE pg_replication_origin_session_is_setup()").await;
            return Err(SinkError::Target { context: "recording the applied position and committing".into(), source: e });
        }
        self.row = Some(commit_end.clone());
        Ok(Committed::new(commit_end.clone()))
    }

    /// Lets schema changes ask blue (`source`, the stream's source) what the rows that predate a column
    /// it added hold in it.
    pub fn with_source(mut self, source: ConnectOptions) -> PgSink {
        self.source = Some(source);
        self
    }

    /// The end position of the last source transaction committed on green.
    pub fn applied_lsn(&self) -> Lsn {
        self.applied
    }

    /// Forgets cached table metadata (after a schema change on green).
    pub fn forget_tables(&mut self) {
        self.tables.clear();
        self.statements = Statements::default();
    }

    async fn rollback_quietly(&mut self) {
        self.begin_pending = false;
        // The session is unusable if this fails too; the next statement reports that.
        let _ = self.client.batch_execute("ROLLBACK").await;
    }

    /// Moves the origin back to the last position this session committed, if an abort moved it.
    async fn restore_origin(&mut self) -> Result<(), SinkError> {
        let current = origin_progress(&self.client, &self.origin).await?;
        if current == self.applied {
            return Ok(());
        }
        let restore = format!(
            "SELECT pg_replication_origin_session_reset() WHERE pg_replication_origin_session_is_setup(); \
             SELECT pg_replication_origin_advance('{origin}', '{lsn}'::pg_lsn){setup}",
            origin = self.origin.replace('\'', "''"),
            lsn = self.applied,
            setup = if self.shared { String::new() } else { format!("; SELECT pg_replication_origin_session_setup('{}')", self.origin.replace('\'', "''")) }
        );
        self.client.batch_execute(&restore).await.map_err(|e| {
            SinkError::Progress(format!(
                "a failed commit moved replication origin {} to {current} and it could not be put back to {}: {e}; \
                 run SELECT pg_replication_origin_advance('{}', '{}') on green before restarting",
                self.origin, self.applied, self.origin, self.applied
            ))
        })
    }

    /// The origin this sink records progress in.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The underlying session (for schema changes between batches).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Loads green's view of the tables `change` touches that are not loaded yet.
async fn load_tables(client: &Client, tables: &mut HashMap<TableName, TargetTable>, change: &RowChange) -> Result<(), SinkError> {
    match change {
        RowChange::Insert { table, .. } | RowChange::Update { table, .. } | RowChange::Delete { table, .. } => {
            load_table(client, tables, &table.name).await?;
        }
        RowChange::Truncate { tables: truncated, .. } => {
            for t in truncated {
                load_table(client, tables, &t.name).await?;
            }
        }
    }
    Ok(())
}

/// Green's view of table `name`, loaded once.
async fn load_table<'a>(client: &Client, tables: &'a mut HashMap<TableName, TargetTable>, name: &TableName) -> Result<&'a TargetTable, SinkError> {
    if !tables.contains_key(name) {
        let t = TargetTable::load(client, name).await?;
        tables.insert(name.clone(), t);
    }
    tables.get(name).ok_or_else(|| SinkError::Schema { table: name.to_string(), reason: "not loaded".into() })
}

/// A PostgreSQL position, or an error for a position of another source (a programming error: a
/// PostgreSQL sink is only ever fed from a PostgreSQL stream).
fn pg_position(p: &Position) -> Result<Lsn, SinkError> {
    p.lsn().ok_or_else(|| SinkError::Progress(format!("a PostgreSQL green cannot record the non-PostgreSQL position {p}")))
}

impl Sink for PgSink {
    fn applied(&self) -> Position {
        match &self.row {
            Some(p) => p.clone(),
            None => Position::Pg(self.applied),
        }
    }

    async fn apply(&mut self, batch: &[Transaction]) -> Result<Committed, SinkError> {
        let applied = self.applied();
        let mut pending: Vec<&Transaction> = Vec::with_capacity(batch.len());
        for t in batch {
            if t.commit_end.try_cmp(&applied)?.is_gt() {
                pending.push(t);
            }
        }
        let Some(last) = pending.last() else {
            return Ok(Committed::new(applied));
        };
        let changes: Vec<&RowChange> = pending.iter().flat_map(|t| t.changes.iter()).collect();
        self.begin().await?;
        self.apply_part(&changes).await?;
        self.commit(&last.commit_end, last.commit_ts).await
    }

    /// Sends nothing yet: `BEGIN` travels with the first statements (or the commit).
    async fn begin(&mut self) -> Result<(), SinkError> {
        self.begin_pending = true;
        Ok(())
    }

    /// On error the transaction is rolled back (the origin was not set up for it, so its position
    /// cannot move).
    async fn apply_part(&mut self, changes: &[&RowChange]) -> Result<(), SinkError> {
        let pending = std::mem::take(&mut self.begin_pending);
        let (client, tables, statements) = (&self.client, &mut self.tables, &mut self.statements);
        // An owed BEGIN is sent first and pipelined with what follows: one round trip less.
        let begin = async {
            if pending {
                client.batch_execute("BEGIN").await.map_err(SinkError::target("BEGIN"))?;
            }
            Ok(())
        };
        let work = async {
            for c in changes {
                load_tables(client, tables, c).await?;
            }
            statements.execute(client, tables, changes).await
        };
        let result = tokio::try_join!(begin, work).map(|_| ());
        if result.is_err() {
            self.rollback_quietly().await;
        }
        result
    }

    async fn rollback(&mut self) -> Result<(), SinkError> {
        if std::mem::take(&mut self.begin_pending) {
            return Ok(());
        }
        self.client.batch_execute("ROLLBACK").await.map_err(SinkError::target("ROLLBACK"))
    }

    async fn commit(&mut self, commit_end: &Position, commit_ts: Timestamp) -> Result<Committed, SinkError> {
        if let Some(applied) = self.row.clone() {
            return self.commit_row(applied, commit_end).await;
        }
        let commit_end = match pg_position(commit_end) {
            Ok(l) => l,
            Err(e) => {
                self.rollback_quietly().await;
                return Err(e);
            }
        };
        if commit_end <= self.applied {
            self.rollback_quietly().await;
            return Err(SinkError::Progress(format!("refusing to record {commit_end}: green already recorded {} (a position never moves back)", self.applied)));
        }
        // Record the position and commit in ONE message. PostgreSQL 16+ also advances the origin when a
        // transaction that called pg_replication_origin_xact_setup aborts — including the abort at exit
        // of a backend whose client died. Sent together, the server runs both or neither.
        tracing::debug!(position = %commit_end, "committing on green");
        // txid_current() gives the transaction an id when its changes wrote nothing (an empty source
        // transaction such as the cutover sentinel): without one, PostgreSQL writes no commit record
        // and the origin would not move.
        // A shared origin is set up for this commit only, and let go in the same message.
        let (setup, reset) = if self.shared {
            (format!("SELECT pg_replication_origin_session_setup('{}'); ", self.origin.replace('\'', "''")), "; SELECT pg_replication_origin_session_reset()")
        } else {
            (String::new(), "")
        };
        // The WAL flush travels in the same message, after the COMMIT: the commit is durable when
        // the message returns, without a round trip of its own.
        let begin = if std::mem::take(&mut self.begin_pending) { "BEGIN; " } else { "" };
        let commit = format!(
            "{begin}{setup}SELECT txid_current(); SELECT pg_replication_origin_xact_setup('{}'::pg_lsn, 'epoch'::timestamptz + {}::int8 * interval '1 microsecond'); COMMIT{reset}; \
             SELECT COALESCE(pg_replication_origin_progress('{}', true)::text, '0/0')",
            commit_end,
            commit_ts.0,
            self.origin.replace('\'', "''")
        );
        let messages = match self.client.simple_query(&commit).await {
            Ok(m) => m,
            Err(e) => {
                // The COMMIT itself failed (e.g. a deferred constraint): on 16+ the abort moved the
                // origin to this batch's end although nothing was applied. Put it back before reporting.
                self.rollback_quietly().await;
                self.restore_origin().await?;
                return Err(SinkError::Target { context: "recording the applied position and committing".into(), source: e });
            }
        };
        // The last row is the flushed position (another session sharing the origin may be ahead).
        if let Some(flushed) = messages.iter().rev().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|t| t.parse::<Lsn>().ok()),
            _ => None,
        }) {
            self.durable = self.durable.max(flushed);
        }
        self.applied = commit_end;
        Ok(Committed::new(Position::Pg(self.applied)))
    }

    /// One WAL flush covers every commit before it, of this session or another sharing the origin
    /// (`pg_replication_origin_progress(origin, true)`).
    async fn flush(&mut self) -> Result<Durable, SinkError> {
        if let Some(applied) = &self.row {
            // Every commit was synchronous.
            return Ok(Durable::new(applied.clone()));
        }
        if self.durable >= self.applied {
            // This session's last commit flushed in its own message, and nothing committed since.
            return Ok(Durable::new(Position::Pg(self.durable)));
        }
        let row = self
            .client
            .query_one("SELECT COALESCE(pg_replication_origin_progress($1, true)::text, '0/0')", &[&self.origin])
            .await
            .map_err(SinkError::target("flushing green's WAL (pg_replication_origin_progress)"))?;
        let position: Lsn = row.get::<_, String>(0).parse().map_err(|e| SinkError::Progress(format!("origin {}: {e}", self.origin)))?;
        self.durable = self.durable.max(position);
        Ok(Durable::new(Position::Pg(position)))
    }

    /// A sink recording for a blue of another engine never changes green's schema: the copy made
    /// green's tables from the type map, and a column green lacks has no values for its older rows.
    async fn schema_changes(&mut self, schema: &TableSchema) -> Result<Vec<String>, SinkError> {
        let ddl = ddl::plan(&self.client, schema, self.source.as_ref()).await?;
        if self.row.is_some() && !ddl.is_empty() {
            return Err(SinkError::Schema {
                table: schema.name.to_string(),
                reason: format!(
                    "blue sends columns green's table lacks ({}); a stream from another engine does not change green's schema: start over \
                     (turnout teardown, turnout run) to copy the table again",
                    ddl.join("; ")
                ),
            });
        }
        Ok(ddl)
    }

    async fn apply_schema_changes(&mut self, statements: &[String]) -> Result<(), SinkError> {
        let sql = format!("BEGIN; {}; COMMIT", statements.join("; "));
        if let Err(e) = self.client.batch_execute(&sql).await {
            self.rollback_quietly().await;
            return Err(SinkError::Target { context: format!("applying schema change `{}`", statements.join("; ")), source: e });
        }
        self.forget_tables();
        Ok(())
    }

    /// A sink recording for a blue of another engine runs the statements the conversion translated
    /// from blue's additive DDL (green's own dialect, each runnable again without effect: `IF NOT
    /// EXISTS`), in one transaction. A PostgreSQL blue sends no DDL statements.
    async fn apply_source_ddl(&mut self, database: &str, statement: &str) -> Result<(), SinkError> {
        if self.row.is_none() {
            let reason = format!("cannot run the source's DDL in {database}: `{statement}`; apply the change on green yourself and restart");
            return Err(SinkError::Schema { table: String::new(), reason });
        }
        if statement.trim().is_empty() {
            return Ok(());
        }
        self.rollback_quietly().await;
        self.apply_schema_changes(&[statement.to_owned()]).await
    }

    /// Rows conflict by the replica-identity key and green's unique keys; a table with constraints
    /// between rows that keys do not describe (an exclusion constraint, a partial, expression or
    /// deferrable unique index) by table; a table whose triggers or rules fire for replicated rows
    /// (`ENABLE ALWAYS`/`REPLICA`) with everything.
    async fn conflicts(&mut self, schema: &TableSchema) -> Result<crate::Conflicts, SinkError> {
        Ok(load_table(&self.client, &mut self.tables, &schema.name).await?.conflicts())
    }

    /// A session bound to the origin from connect on lets go of it (another session commits).
    async fn release_progress(&mut self) -> Result<(), SinkError> {
        if !self.shared {
            self.client
                .batch_execute("SELECT pg_replication_origin_session_reset()")
                .await
                .map_err(SinkError::target(format!("letting go of replication origin {}", self.origin)))?;
        }
        Ok(())
    }

    async fn bind_progress(&mut self) -> Result<(), SinkError> {
        if !self.shared {
            self.client
                .execute("SELECT pg_replication_origin_session_setup($1)", &[&self.origin])
                .await
                .map_err(SinkError::target(format!("binding this session to replication origin {} again", self.origin)))?;
        }
        Ok(())
    }

    fn advanced(&mut self, position: &Position) -> Result<(), SinkError> {
        if let Some(applied) = &self.row {
            if position.try_cmp(applied)?.is_gt() {
                self.row = Some(position.clone());
            }
            return Ok(());
        }
        let lsn = position.lsn().ok_or_else(|| SinkError::from(turnout_decoders::Incomparable { a: position.to_string(), b: self.applied.to_string() }))?;
        self.applied = self.applied.max(lsn);
        Ok(())
    }

    fn forget_schema(&mut self) {
        self.forget_tables();
    }

    fn canceller(&self) -> crate::Canceller {
        let token = self.client.cancel_token();
        let options = self.options.clone();
        crate::Canceller::new(move || {
            let token = token.clone();
            let options = options.clone();
            Box::pin(async move {
                let sent = if options.ssl_mode == SslMode::Disable {
                    token.cancel_query(NoTls).await
                } else {
                    match tls_client_config(&options) {
                        Ok(tls) => token.cancel_query(MakeRustlsConnect::new((*tls).clone())).await,
                        Err(e) => {
                            tracing::warn!("cannot cancel green's apply statement: {e}");
                            return;
                        }
                    }
                };
                if let Err(e) = sent {
                    tracing::warn!("cancelling green's apply statement failed: {}", describe_error(&e));
                }
            })
        })
    }
}

/// `"schema"."table"`.
pub fn qualified(name: &TableName) -> String {
    format!("{}.{}", quote_ident(&name.schema), quote_ident(&name.name))
}
