//! A PostgreSQL green as a [`TargetSide`] for a blue of another engine: tables created from the
//! conversion's schema, a snapshot loaded with its position in one transaction, and
//! [`PgSink`]s recording the position in `turnout.progress` (a replication origin holds only LSNs).

use crate::config::Config;
use crate::error::{CopyRefusal, Error};
use crate::source::compose::{GreenTable, TargetSide};
use crate::source::Names;
use tokio_postgres::Client;
use turnout_decoders::event::Row;
use turnout_decoders::schema::{quote_ident, TableName, TableSchema};
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

/// A text literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
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

/// The `INSERT` of `row` into `table`.
fn insert(table: &TableSchema, row: &Row) -> Result<String, Error> {
    let columns = table.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
    let values = row
        .iter()
        .map(|v| turnout_sinks::pg::text::to_text(v).map(|t| t.map_or_else(|| "NULL".to_owned(), |t| literal(&t))))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Setup(format!("a value of {}: {e}", table.name)))?;
    Ok(format!("INSERT INTO {} ({columns}) VALUES ({})", qualified(&table.name), values.join(", ")))
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

    async fn load(&self, tables: &[GreenTable], rows: &[(TableName, Vec<Row>)], position: &Position) -> Result<(), Error> {
        let client = turnout_sinks::pg::connect(&self.url).await.map_err(Error::Sink)?;
        let mut statements = Vec::new();
        for table in tables {
            match existing(&client, &table.schema.name).await? {
                None => statements.push(create_statement(table)),
                Some(true) => return Err(CopyRefusal::GreenHasRows { table: table.schema.name.to_string() }.into()),
                Some(false) => {
                    // Green's own: its columns must be the conversion's, which the sink checks on the first row.
                    tracing::info!(table = %table.schema.name, "green has the table already; its rows are copied into it");
                }
            }
        }
        for (name, table_rows) in rows {
            let Some(table) = tables.iter().find(|t| t.schema.name == *name) else { continue };
            statements.push(format!("TRUNCATE {}", qualified(name)));
            for row in table_rows {
                statements.push(insert(&table.schema, row)?);
            }
        }
        progress::load(&self.url, &self.stream, &statements, position).await.map_err(Error::Sink)
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
