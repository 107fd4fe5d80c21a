//! A PostgreSQL green as a [`TargetSide`] for a blue of another engine: tables created from the
//! conversion's schema, a snapshot loaded with its position in one transaction, and
//! [`PgSink`]s recording the position in `turnout.progress` (a replication origin holds only LSNs).

use crate::config::Config;
use crate::error::Side;
use crate::error::{CopyRefusal, Error};
use crate::source::compose::verify::Digest;
use crate::source::compose::{Batch, GreenShape, GreenTable, TargetSide};
use crate::source::Names;
use tokio_postgres::Client;
use turnout_decoders::schema::{quote_ident, TableName};
use turnout_decoders::Position;
use turnout_sinks::pg::{progress, qualified, PgSink};
use turnout_sinks::Parallel;

/// Green, a PostgreSQL server.
#[derive(Debug)]
pub(crate) struct PgTarget {
    url: String,
    stream: String,
    sessions: usize,
    /// The apply marks its commits for a stream back to drop (`cutover.reverse`).
    mark: bool,
}

impl PgTarget {
    /// Green's URL.
    pub(super) fn url(&self) -> &str {
        &self.url
    }
}

/// Whether green has `table`.
async fn existing(client: &Client, table: &TableName) -> Result<bool, Error> {
    let exists: bool =
        client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified(table)]).await.map_err(Error::sql(Side::Green, "looking up a table"))?.get(0);
    Ok(exists)
}

/// Streams `batches` into green with one `COPY … FROM STDIN` per table, in the open transaction;
/// returns the rows copied.
async fn copy_batches<B>(client: &Client, tables: &[GreenTable], mut batches: B) -> Result<u64, Error>
where
    B: futures_util::Stream<Item = Batch> + Send + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    let mut copied = 0;
    let mut open: Option<(usize, std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>>)> = None;
    while let Some(batch) = batches.next().await {
        let (i, rows) = batch?;
        let table = tables.get(i).ok_or_else(|| Error::Setup(format!("a snapshot batch of an unknown table ({i})")))?;
        if open.as_ref().is_none_or(|(at, _)| *at != i) {
            if let Some((_, sink)) = open.take() {
                copied += finish(sink).await?;
            }
            let columns = table.schema.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
            let sql = format!("COPY {} ({columns}) FROM STDIN", qualified(&table.schema.name));
            let sink = client.copy_in::<_, bytes::Bytes>(&sql).await.map_err(Error::sql(Side::Green, format!("`{sql}`")))?;
            open = Some((i, Box::pin(sink)));
        }
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        for row in &rows {
            turnout_sinks::pg::text::copy_row(&mut buf, row).map_err(|e| Error::Setup(format!("a value of {}: {e}", table.schema.name)))?;
        }
        if let Some((_, sink)) = open.as_mut() {
            sink.send(buf.freeze()).await.map_err(Error::sql(Side::Green, format!("copying into {}", table.schema.name)))?;
        }
    }
    if let Some((_, sink)) = open.take() {
        copied += finish(sink).await?;
    }
    Ok(copied)
}

/// Ends one table's `COPY`; the rows it took.
async fn finish(mut sink: std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>>) -> Result<u64, Error> {
    sink.as_mut().finish().await.map_err(Error::sql(Side::Green, "ending a COPY"))
}

use turnout_decoders::pg::types::oid;

/// The SQL that prints `column`'s canonical text (see [`crate::source::compose::verify`]), NULL for
/// NULL.
pub(super) fn canonical_sql(column: &turnout_decoders::schema::Column) -> Result<String, Error> {
    let c = quote_ident(&column.name);
    Ok(match column.ty.pg_oid() {
        Some(oid::INT2 | oid::INT4 | oid::INT8 | oid::NUMERIC) => format!("{c}::text"),
        Some(oid::FLOAT4) => format!("encode(float4send({c}), 'hex')"),
        Some(oid::FLOAT8) => format!("encode(float8send({c}), 'hex')"),
        // A value no blue holds (infinite, before the year 1) prints as itself, so it differs.
        Some(oid::DATE) => format!("CASE WHEN isfinite({c}) AND {c} >= '0001-01-01' THEN to_char({c}, 'YYYY-MM-DD') ELSE {c}::text END"),
        Some(oid::TIMESTAMP) => {
            format!("CASE WHEN isfinite({c}) AND {c} >= '0001-01-01' THEN to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US') ELSE {c}::text END")
        }
        Some(oid::TIMESTAMPTZ) => format!(
            "CASE WHEN isfinite({c}) AND {c} >= '0001-01-01 00:00:00+00' THEN to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') ELSE {c}::text END"
        ),
        // A TIME arrives as hours, minutes and seconds: an interval with days or months (which its
        // epoch would count as hours) prints as itself.
        Some(oid::INTERVAL) => format!(
            "CASE WHEN extract(day FROM {c}) = 0 AND extract(month FROM {c}) = 0 AND extract(year FROM {c}) = 0 \
             THEN (extract(epoch FROM {c}) * 1000000)::bigint::text ELSE {c}::text END"
        ),
        Some(oid::VARCHAR | oid::TEXT | oid::BIT | oid::JSONB) => format!("{c}::text"),
        Some(oid::BYTEA) => format!("encode({c}, 'hex')"),
        Some(oid::POINT) => format!("encode(float8send({c}[0]), 'hex') || ',' || encode(float8send({c}[1]), 'hex')"),
        other => return Err(Error::Setup(format!("verify has no canonical text for column {} (type {other:?})", column.name))),
    })
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` of a time stamp's text with any fraction.
fn six_digits(text: &str) -> String {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    format!("{whole}.{:0<6}", fraction.get(..6).unwrap_or(fraction))
}

/// Microseconds of a `[-]H:MM:SS[.ffffff]` duration.
fn micros(text: &str) -> Option<i64> {
    let (negative, text) = text.strip_prefix('-').map_or((false, text), |t| (true, t));
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut parts = whole.split(':').map(str::parse::<i64>);
    let (h, m, s) = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?);
    let us: i64 = format!("{:0<6}", fraction.get(..6).unwrap_or(fraction)).parse().ok()?;
    let total = ((h * 60 + m) * 60 + s) * 1_000_000 + us;
    Some(if negative { -total } else { total })
}

/// PostgreSQL's functions of the foreign-key triggers that change the referring rows (`CASCADE`,
/// `SET NULL`, `SET DEFAULT`), as SQL string literals.
pub(crate) const FK_ACTION_FUNCTIONS: &str = "'RI_FKey_cascade_del', 'RI_FKey_cascade_upd', 'RI_FKey_setnull_del', 'RI_FKey_setnull_upd', \
     'RI_FKey_setdefault_del', 'RI_FKey_setdefault_upd'";

/// Green's `table` as it is: its columns in order, its indexes other than the primary key's, and
/// every relation name in its schema; `None` when green has no such table.
async fn shape(url: &str, table: &TableName) -> Result<Option<GreenShape>, Error> {
    let client = super::session(url, Side::Green).await?;
    let name = qualified(table);
    let read = |what: &'static str| Error::sql(Side::Green, format!("reading {what} of {name}"));
    let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await.map_err(read("the existence"))?.get(0);
    if !exists {
        return Ok(None);
    }
    let texts = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>();
    let columns = client
        .query("SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum", &[&name])
        .await
        .map_err(read("the columns"))?;
    let indexes = client
        .query(
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass($1) AND NOT i.indisprimary",
            &[&name],
        )
        .await
        .map_err(read("the indexes"))?;
    let taken = client
        .query("SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1", &[&table.schema])
        .await
        .map_err(read("the schema's relations"))?;
    Ok(Some(GreenShape { columns: texts(columns), indexes: texts(indexes), taken: texts(taken) }))
}

impl TargetSide for PgTarget {
    type Sink = Parallel<PgSink>;
    type Opened = super::opened::PgOpened;
    type BackStream = super::PgSource;

    fn shapes(&self) -> crate::source::compose::stream::GreenShapes {
        let url = self.url.clone();
        std::sync::Arc::new(move |table: TableName| {
            let url = url.clone();
            Box::pin(async move { shape(&url, &table).await })
        })
    }

    fn record_created(&self) -> crate::source::compose::stream::RecordCreated {
        let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let stream = literal(&self.stream);
        std::sync::Arc::new(move |table: &TableName| {
            format!(
                "CREATE TABLE IF NOT EXISTS turnout.created (stream text NOT NULL, table_name text NOT NULL, PRIMARY KEY (stream, table_name)); \
                 INSERT INTO turnout.created VALUES ({stream}, {}) ON CONFLICT DO NOTHING",
                literal(&qualified(table))
            )
        })
    }

    async fn created(&self, tables: &[TableName]) -> Result<Vec<TableName>, Error> {
        let client = super::session(&self.url, Side::Green).await?;
        let names: Vec<String> = tables.iter().map(qualified).collect();
        // By the name recorded (blue's, quoted): PostgreSQL keeps a name longer than 63 bytes cut.
        let rows = client
            .query(
                "SELECT table_name FROM turnout.created WHERE stream = $1 AND table_name = ANY($2) AND to_regclass(table_name) IS NOT NULL",
                &[&self.stream, &names],
            )
            .await;
        match rows {
            Ok(rows) => {
                let recorded: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                Ok(tables.iter().filter(|t| recorded.contains(&qualified(t))).cloned().collect())
            }
            // No table created while streaming yet.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(Vec::new()),
            Err(e) => Err(Error::sql(Side::Green, "reading the tables the stream created")(e)),
        }
    }

    async fn lacking(&self, tables: &[TableName]) -> Result<Vec<TableName>, Error> {
        let client = super::session(&self.url, Side::Green).await?;
        let names: Vec<String> = tables.iter().map(qualified).collect();
        let rows = client
            .query("SELECT o FROM unnest($1::text[]) WITH ORDINALITY AS n(name, o) WHERE to_regclass(name) IS NULL ORDER BY o", &[&names])
            .await
            .map_err(Error::sql(Side::Green, "looking up which tables green lacks"))?;
        Ok(rows.iter().filter_map(|r| usize::try_from(r.get::<_, i64>(0)).ok().and_then(|o| tables.get(o - 1)).cloned()).collect())
    }

    async fn forget_created(&self, selected: &[TableName]) -> Result<(), Error> {
        let client = super::session(&self.url, Side::Green).await?;
        let names: Vec<String> = selected.iter().map(qualified).collect();
        let forgot = client.execute("DELETE FROM turnout.created WHERE stream = $1 AND table_name <> ALL($2)", &[&self.stream, &names]).await;
        match forgot {
            Ok(n) if n > 0 => tracing::warn!("{n} table(s) the stream made on green are no longer selected: green keeps them as they were"),
            Ok(_) => {}
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {}
            Err(e) => return Err(Error::sql(Side::Green, "forgetting tables the stream created and the selection left out")(e)),
        }
        Ok(())
    }

    async fn may_arm_back(&self) -> Result<(), Error> {
        let client = super::session(&self.url, Side::Green).await?;
        // The rollback's sentinel is a logical message, which pgoutput sends from 14 on.
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(Error::sql(Side::Green, "reading green's version"))?
            .get(0);
        if version < 140_000 {
            return Err(Error::Setup(format!(
                "the way back needs PostgreSQL 14 or newer on green (the rollback's sentinel is a logical message); green is {version}: set \
                 cutover.reverse = false"
            )));
        }
        super::cutover::may_arm(&client, (Side::Blue, Side::Green), "set cutover.reverse = false to cut over without a way back").await
    }

    /// A publication of `tables` (green's copies of blue's, turnout's heartbeat table's left out) and a
    /// pgoutput slot, whose consistent point is the hand-off.
    async fn arm_back(&self, names: &Names, tables: &[TableName], forward: &str) -> Result<Position, Error> {
        let client = super::session(&self.url, Side::Green).await?;
        let marked: bool = client
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)", &[&forward])
            .await
            .map_err(Error::sql(Side::Green, "reading green's replication origins"))?
            .get(0);
        if !marked {
            return Err(Error::Setup(format!(
                "green has no replication origin {forward}, which marks the forward apply's writes for the stream back to drop: restart \
                 turnout (its apply creates it), or set cutover.reverse = false"
            )));
        }
        let publication = quote_ident(&names.publication);
        let listed = tables.iter().map(qualified).collect::<Vec<_>>().join(", ");
        let create =
            if tables.is_empty() { format!("CREATE PUBLICATION {publication}") } else { format!("CREATE PUBLICATION {publication} FOR TABLE {listed}") };
        client
            .batch_execute(&format!("DROP PUBLICATION IF EXISTS {publication}; {create}"))
            .await
            .map_err(Error::sql(Side::Green, format!("creating publication {} on green", names.publication)))?;
        // A table without a key sends its whole old row, or green could not update it once published.
        for t in tables {
            client
                .batch_execute(&format!(
                    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = '{r}'::regclass AND indisprimary) THEN \
                       ALTER TABLE {r} REPLICA IDENTITY FULL; END IF; END $$",
                    r = qualified(t).replace('\'', "''")
                ))
                .await
                .map_err(Error::sql(Side::Green, format!("giving {t} on green its whole old row in the stream back")))?;
        }
        let lsn = super::cutover::create_slot(&client, names, Side::Green).await?;
        Ok(Position::Pg(lsn))
    }

    async fn open_back_stream(&self, names: &Names, from: &Position, forward: &str, receive_timeout: std::time::Duration) -> Result<super::PgSource, Error> {
        let from = from.lsn().ok_or_else(|| CopyRefusal::ForeignPosition { log: "PostgreSQL", position: from.to_string() })?;
        let options = turnout_connect::pg::ConnectOptions::from_url(&self.url, "target.url").map_err(|e| Error::config("target.url", e.to_string()))?;
        super::PgSource::start(&options, &names.slot, &names.publication, from, receive_timeout, Some(forward)).await
    }

    fn back_heartbeat(
        &self,
        names: &Names,
        interval: std::time::Duration,
        status: std::sync::Arc<crate::status::Status>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        super::heartbeat::run(self.url.clone(), Side::Green, names.slot.clone(), interval, status, shutdown)
    }

    async fn drop_back(&self, names: &Names) -> Result<Vec<String>, Error> {
        super::reverse::drop_slot_and_publication(&self.url, names).await?;
        Ok(vec![format!("dropped slot and publication {} on green (if they existed)", names.slot)])
    }

    const ENGINE: &'static str = "PostgreSQL";

    fn new(config: &Config, names: &Names) -> Result<PgTarget, Error> {
        turnout_connect::pg::ConnectOptions::from_url(config.target.url.expose(), "target.url").map_err(|e| Error::config("target.url", e.to_string()))?;
        Ok(PgTarget {
            url: config.target.url.expose().to_owned(),
            stream: names.origin.clone(),
            sessions: config.apply_sessions().max(1),
            mark: config.cutover.reverse,
        })
    }

    async fn acting_keys(&self) -> Result<Vec<(TableName, String)>, Error> {
        let client = super::session(&self.url, Side::Green).await?;
        let rows = client
            .query(
                format!(
                    "SELECT DISTINCT n.nspname::text, cl.relname::text, c.conname::text FROM pg_constraint c \
                   JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace \
                   JOIN pg_trigger tg ON tg.tgconstraint = c.oid AND tg.tgrelid = c.confrelid JOIN pg_proc p ON p.oid = tg.tgfoid \
                 WHERE c.contype = 'f' AND tg.tgenabled = 'A' AND p.proname IN ({FK_ACTION_FUNCTIONS})"
                )
                .as_str(),
                &[],
            )
            .await
            .map_err(Error::sql(Side::Green, "reading which foreign-key actions fire for replicated rows"))?;
        Ok(rows.iter().map(|r| (TableName::new(r.get::<_, &str>(0), r.get::<_, &str>(1)), r.get(2))).collect())
    }

    async fn recorded(&self) -> Result<Option<Position>, Error> {
        progress::read_progress(&self.url, &self.stream).await.map_err(Error::Sink)
    }

    async fn begin_at(&self, position: &Position, previous: &str) -> Result<(), Error> {
        if self.recorded().await?.is_some() {
            return Ok(());
        }
        // Before the position: a crash in between copies them again.
        let client = turnout_sinks::pg::connect(&self.url).await.map_err(Error::Sink)?;
        let copied = client
            .execute(
                "INSERT INTO turnout.created SELECT $1, table_name FROM turnout.created WHERE stream = $2 ON CONFLICT DO NOTHING",
                &[&self.stream, &previous],
            )
            .await;
        match copied {
            Ok(_) => {}
            // No table created while streaming yet.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {}
            Err(e) => return Err(Error::sql(Side::Green, "carrying the tables the generation before made over to this one")(e)),
        }
        progress::record_position(&self.url, &self.stream, position).await.map_err(Error::Sink)
    }

    async fn load<B>(&self, tables: &[GreenTable], batches: B, position: &Position) -> Result<(), Error>
    where
        B: futures_util::Stream<Item = Batch> + Send + Unpin,
    {
        let client = turnout_sinks::pg::connect(&self.url).await.map_err(Error::Sink)?;
        progress::ensure_table(&client).await.map_err(Error::Sink)?;
        let mut creates = Vec::new();
        for table in tables {
            for what in &table.left_out {
                tracing::warn!("{what}");
            }
            // Green's own table would take the copy under its own types (a narrower scale rounds
            // without an error): the copy across engines creates green's tables itself.
            if existing(&client, &table.schema.name).await? {
                return Err(CopyRefusal::GreenTableExists { table: table.schema.name.to_string() }.into());
            }
            creates.push(table.create());
        }
        let begin = format!("BEGIN; SET LOCAL synchronous_commit = on; SET LOCAL session_replication_role = replica; {}", creates.join("; "));
        client.batch_execute(&begin).await.map_err(Error::sql(Side::Green, "creating blue's tables on green"))?;
        let finished = async {
            let rows = copy_batches(&client, tables, batches).await?;
            // Indexes and identities once the rows are in, then foreign keys between the tables.
            for statement in tables.iter().flat_map(|t| t.after.iter()).chain(tables.iter().flat_map(|t| t.references.iter())) {
                client.batch_execute(statement).await.map_err(Error::sql(Side::Green, format!("`{statement}`")))?;
            }
            let upsert = progress::upsert(&self.stream, position).map_err(Error::Sink)?;
            client.batch_execute(&format!("{upsert}; COMMIT")).await.map_err(Error::sql(Side::Green, "recording the snapshot's position and committing"))?;
            Ok::<u64, Error>(rows)
        }
        .await;
        match finished {
            Ok(rows) => {
                tracing::info!(rows, tables = tables.len(), "blue's snapshot loaded on green with its position");
                Ok(())
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    async fn open_sink(&self) -> Result<Parallel<PgSink>, Error> {
        let sessions = futures_util::future::try_join_all((0..self.sessions).map(|_| PgSink::connect_recording(&self.url, &self.stream, self.mark)))
            .await
            .map_err(Error::Sink)?;
        Parallel::new(sessions).map_err(Error::Sink)
    }

    fn canonical(column: &turnout_decoders::schema::Column, value: &turnout_decoders::Value) -> Result<String, Error> {
        use turnout_decoders::value::TemporalKind;
        use turnout_decoders::Value;
        let unknown = || Error::Setup(format!("verify has no canonical text for {value:?} in column {}", column.name));
        Ok(match value {
            // A point, `(x,y)`, as its coordinates' IEEE bits.
            Value::Text(t) if column.ty.pg_oid() == Some(oid::POINT) => {
                let (x, y) = turnout_decoders::pg::types::point_coordinates(t.as_str()).ok_or_else(unknown)?;
                format!("{:016x},{:016x}", x.to_bits(), y.to_bits())
            }
            Value::Int2(n) => n.to_string(),
            Value::Int4(n) => n.to_string(),
            Value::Int8(n) => n.to_string(),
            // A jsonb document as jsonb prints it (the converter wrote that text).
            Value::Numeric(t) | Value::Text(t) | Value::Temporal(TemporalKind::Date, t) | Value::Json { jsonb: true, text: t } => t.to_string(),
            Value::Float4(f) => format!("{:08x}", f.to_bits()),
            Value::Float8(f) => format!("{:016x}", f.to_bits()),
            Value::Temporal(TemporalKind::Timestamp, t) => six_digits(t.as_str()),
            Value::Temporal(TemporalKind::TimestampTz, t) => six_digits(t.as_str().strip_suffix("+00").unwrap_or(t.as_str())),
            Value::Temporal(TemporalKind::Interval | TemporalKind::Time, t) => micros(t.as_str()).ok_or_else(unknown)?.to_string(),
            Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
            _ => return Err(unknown()),
        })
    }

    async fn digest(&self, table: &GreenTable) -> Result<Digest, Error> {
        use futures_util::TryStreamExt;
        let fields = table
            .schema
            .columns
            .iter()
            .map(|c| canonical_sql(c).map(|sql| format!("COALESCE(octet_length({sql})::text || ':' || {sql}, 'N')")))
            .collect::<Result<Vec<_>, _>>()?;
        let sql = format!("SELECT concat_ws('|', {}) FROM {}", fields.join(", "), qualified(&table.schema.name));
        let client = turnout_sinks::pg::connect(&self.url).await.map_err(Error::Sink)?;
        let none: [&str; 0] = [];
        let rows = client.query_raw(sql.as_str(), none).await.map_err(Error::sql(Side::Green, format!("reading {}", table.schema.name)))?;
        futures_util::pin_mut!(rows);
        let mut digest = Digest::default();
        while let Some(row) = rows.try_next().await.map_err(Error::sql(Side::Green, format!("reading {}", table.schema.name)))? {
            digest.add(row.get::<_, &str>(0));
        }
        Ok(digest)
    }

    async fn teardown(&self, heartbeat: &[TableName]) -> Result<Vec<String>, Error> {
        let mut done = Vec::new();
        if progress::drop_progress(&self.url, &self.stream).await.map_err(Error::Sink)? {
            done.push(format!("deleted the progress record {} on green", self.stream));
        }
        let client = turnout_sinks::pg::connect(&self.url).await.map_err(Error::Sink)?;
        let forgot = client.execute("DELETE FROM turnout.created WHERE stream = $1", &[&self.stream]).await;
        match forgot {
            Ok(n) if n > 0 => done.push(format!("forgot the {n} table(s) the stream created on green (they stay)")),
            Ok(_) => {}
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {}
            Err(e) => return Err(Error::sql(Side::Green, "forgetting the tables the stream created")(e)),
        }
        super::reverse::drop_origin_when_free(&client, &self.stream).await?;
        done.push(format!("dropped replication origin {} on green (if it existed)", self.stream));
        for t in heartbeat {
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", qualified(t)))
                .await
                .map_err(Error::sql(crate::error::Side::Green, "dropping the heartbeat table's copy"))?;
            done.push(format!("dropped {t} on green (if it existed)"));
        }
        Ok(done)
    }
}
