//! turnout's progress record on a PostgreSQL green fed by a blue of another engine: a replication
//! origin holds only an LSN, so a MySQL/MariaDB position (GTID state and binlog file/offset) is kept
//! as one row per stream in `turnout.progress` — JSON of the [`Position`] — written in the same green
//! transaction as the rows it covers, as on a MySQL/MariaDB green.
//!
//! Durability: a sink recording here commits with `synchronous_commit = on`, so a commit that
//! returned is on green's disk and every [`crate::Committed`] is already durable.

use crate::error::SinkError;
use tokio_postgres::Client;
use turnout_decoders::Position;

/// Creates `turnout.progress` if it does not exist; the error names the GRANT when the role may not.
pub async fn ensure_table(client: &Client) -> Result<(), SinkError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS turnout; \
             CREATE TABLE IF NOT EXISTS turnout.progress (stream text PRIMARY KEY, position text NOT NULL, updated_at timestamptz NOT NULL); \
             COMMENT ON TABLE turnout.progress IS 'turnout: the source position applied, per stream'",
        )
        .await
        .map_err(|e| {
            SinkError::Config(format!(
                "green: cannot create turnout.progress ({}); GRANT CREATE ON DATABASE to turnout's role on green, or create the schema turnout owned by it",
                crate::error::describe_pg_error(&e)
            ))
        })
}

fn decode(stream: &str, text: &str) -> Result<Position, SinkError> {
    serde_json::from_str(text).map_err(|e| SinkError::Progress(format!("turnout.progress row {stream} on green is not a position ({e})")))
}

/// The position recorded for `stream`, if any.
pub(super) async fn read(client: &Client, stream: &str) -> Result<Option<Position>, SinkError> {
    let row =
        client.query_opt("SELECT position FROM turnout.progress WHERE stream = $1", &[&stream]).await.map_err(SinkError::target("reading turnout.progress"))?;
    row.map(|r| decode(stream, &r.get::<_, String>(0))).transpose()
}

/// The statement that records `position` for `stream`, as SQL text (it travels in the same message
/// as the `COMMIT`).
pub fn upsert(stream: &str, position: &Position) -> Result<String, SinkError> {
    let json = serde_json::to_string(position).map_err(|e| SinkError::Progress(format!("encoding {position}: {e}")))?;
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Ok(format!(
        "INSERT INTO turnout.progress (stream, position, updated_at) VALUES ({}, {}, clock_timestamp()) \
         ON CONFLICT (stream) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at",
        literal(stream),
        literal(&json)
    ))
}

/// The position recorded on green for `stream` (a session of its own).
pub async fn read_progress(url: &str, stream: &str) -> Result<Option<Position>, SinkError> {
    let client = super::connect(url).await?;
    ensure_table(&client).await?;
    read(&client, stream).await
}

/// Records `position` for `stream` outside any apply session (where the stream starts). Never moves
/// an existing record back; a position that cannot be ordered against the record is an error.
pub async fn record_position(url: &str, stream: &str, position: &Position) -> Result<(), SinkError> {
    let client = super::connect(url).await?;
    ensure_table(&client).await?;
    if let Some(current) = read(&client, stream).await? {
        if !position.try_cmp(&current)?.is_gt() {
            return Ok(());
        }
    }
    client
        .batch_execute(&format!("SET synchronous_commit = on; {}", upsert(stream, position)?))
        .await
        .map_err(SinkError::target("recording the stream's start in turnout.progress"))
}

/// Deletes `stream`'s record (teardown), the table once it has no row and the schema turnout once it
/// holds nothing else. Returns
/// whether a record was deleted.
pub async fn drop_progress(url: &str, stream: &str) -> Result<bool, SinkError> {
    let client = super::connect(url).await?;
    let exists = client
        .query_one("SELECT to_regclass('turnout.progress') IS NOT NULL", &[])
        .await
        .map_err(SinkError::target("looking for turnout.progress"))?
        .get::<_, bool>(0);
    if !exists {
        return Ok(false);
    }
    let deleted =
        client.execute("DELETE FROM turnout.progress WHERE stream = $1", &[&stream]).await.map_err(SinkError::target("deleting a turnout.progress row"))? > 0;
    let left =
        client.query_one("SELECT count(*) FROM turnout.progress", &[]).await.map_err(SinkError::target("counting turnout.progress rows"))?.get::<_, i64>(0);
    if left == 0 {
        client.batch_execute("DROP TABLE turnout.progress").await.map_err(SinkError::target("dropping turnout.progress"))?;
        // Not CASCADE: the schema stays while it holds anything else.
        if let Err(e) = client.batch_execute("DROP SCHEMA turnout").await {
            tracing::debug!("the schema turnout stays on green: {}", crate::error::describe_pg_error(&e));
        }
    }
    Ok(deleted)
}
