//! A PostgreSQL green as a [`TargetSide`] for a blue of another engine: tables created from the
//! conversion's schema, a snapshot loaded with its position in one transaction, and
//! [`PgSink`]s recording the position in `turnout.progress` (a replication origin holds only LSNs).

use crate::config::Config;
use crate::error::Side;
use crate::error::{CopyRefusal, Error};
use crate::source::compose::{Batch, GreenTable, TargetSide};
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
}

/// The statement that creates `table` on green, in a schema of its own name.
fn create_statement(table: &GreenTable) -> String {
    let mut columns = table.definitions.clone();
    let key = table.schema.columns.iter().filter(|c| c.is_key).map(|c| quote_ident(&c.name)).collect::<Vec<_>>();
    if table.schema.replica_identity != turnout_decoders::schema::ReplicaIdentity::Full && !key.is_empty() {
        columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!("CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE {} ({})", quote_ident(&table.schema.name.schema), qualified(&table.schema.name), columns.join(", "))
}

/// Whether green has `table`, and whether it holds a row.
async fn existing(client: &Client, table: &TableName) -> Result<Option<bool>, Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified(table)])
        .await
        .map_err(Error::sql(crate::error::Side::Green, "looking up a table"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let any = client
        .query_opt(&format!("SELECT 1 FROM {} LIMIT 1", qualified(table)), &[])
        .await
        .map_err(Error::sql(crate::error::Side::Green, "reading a table"))?;
    Ok(Some(any.is_some()))
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

impl TargetSide for PgTarget {
    type Sink = Parallel<PgSink>;

    const ENGINE: &'static str = "PostgreSQL";

    fn new(config: &Config, names: &Names) -> Result<PgTarget, Error> {
        turnout_connect::pg::ConnectOptions::from_url(config.target.url.expose(), "target.url").map_err(|e| Error::config("target.url", e.to_string()))?;
        Ok(PgTarget { url: config.target.url.expose().to_owned(), stream: names.origin.clone(), sessions: config.apply_sessions().max(1) })
    }

    async fn recorded(&self) -> Result<Option<Position>, Error> {
        progress::read_progress(&self.url, &self.stream).await.map_err(Error::Sink)
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
            match existing(&client, &table.schema.name).await? {
                None => creates.push(create_statement(table)),
                Some(true) => return Err(CopyRefusal::GreenHasRows { table: table.schema.name.to_string() }.into()),
                // Green's own: its columns must be the conversion's, which the sink checks on the first row.
                Some(false) => tracing::info!(table = %table.schema.name, "green has the table already; blue's rows are copied into it"),
            }
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
        let sessions =
            futures_util::future::try_join_all((0..self.sessions).map(|_| PgSink::connect_recording(&self.url, &self.stream))).await.map_err(Error::Sink)?;
        Parallel::new(sessions).map_err(Error::Sink)
    }

    async fn teardown(&self, heartbeat: &[TableName]) -> Result<Vec<String>, Error> {
        let mut done = Vec::new();
        if progress::drop_progress(&self.url, &self.stream).await.map_err(Error::Sink)? {
            done.push(format!("deleted the progress record {} on green", self.stream));
        }
        let client = turnout_sinks::pg::connect(&self.url).await.map_err(Error::Sink)?;
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
