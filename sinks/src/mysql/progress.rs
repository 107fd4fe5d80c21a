//! turnout's progress record on a MySQL/MariaDB green: one row per stream in `turnout.progress`,
//! holding the source position (JSON of the [`Position`]) applied up to, written in the same green
//! transaction as the rows it covers.

use crate::error::SinkError;
use mysql_async::prelude::Queryable;
use turnout_decoders::Position;

/// Creates `turnout.progress` if it does not exist; the error names the GRANT when the account may not.
pub(super) async fn ensure_table(conn: &mut mysql_async::Conn) -> Result<(), SinkError> {
    conn.query_drop(
        "CREATE DATABASE IF NOT EXISTS turnout; \
         CREATE TABLE IF NOT EXISTS turnout.progress (stream VARCHAR(64) PRIMARY KEY, position TEXT NOT NULL, \
           updated_at DATETIME(6) NOT NULL) ENGINE = InnoDB COMMENT = 'turnout: the source position applied, per stream'",
    )
    .await
    .map_err(|e| SinkError::Config(format!("green: cannot create turnout.progress ({e}); GRANT ALL PRIVILEGES ON `turnout`.* TO turnout's account on green")))
}

fn decode(stream: &str, text: &str) -> Result<Position, SinkError> {
    serde_json::from_str(text).map_err(|e| SinkError::Progress(format!("turnout.progress row {stream} on green is not a position ({e})")))
}

/// The position recorded for `stream`, if any.
pub(super) async fn read(conn: &mut mysql_async::Conn, stream: &str) -> Result<Option<Position>, SinkError> {
    let row: Option<String> =
        conn.exec_first("SELECT position FROM turnout.progress WHERE stream = ?", (stream,)).await.map_err(SinkError::mysql("reading turnout.progress"))?;
    row.map(|t| decode(stream, &t)).transpose()
}

/// The statement that records `position` for `stream`.
pub(super) fn upsert(stream: &str, position: &Position) -> Result<String, SinkError> {
    let json = serde_json::to_string(position).map_err(|e| SinkError::Progress(format!("encoding {position}: {e}")))?;
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02X}")).collect::<String>();
    Ok(format!(
        "INSERT INTO turnout.progress (stream, position, updated_at) VALUES (CONVERT(X'{}' USING utf8mb4), CONVERT(X'{}' USING utf8mb4), UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = VALUES(updated_at)",
        hex(stream),
        hex(&json)
    ))
}

/// The position recorded on green for `stream` (a session of its own).
pub async fn read_progress(url: &str, stream: &str) -> Result<Option<Position>, SinkError> {
    let mut conn = super::connect(url).await?;
    ensure_table(&mut conn).await?;
    read(&mut conn, stream).await
}

/// Records `position` for `stream` outside any apply session (after the initial snapshot). Never
/// moves an existing record back.
pub async fn record_position(url: &str, stream: &str, position: &Position) -> Result<(), SinkError> {
    let mut conn = super::connect(url).await?;
    ensure_table(&mut conn).await?;
    if let Some(current) = read(&mut conn, stream).await? {
        // Only forward; a position that cannot be ordered against the record is an error.
        if !position.try_cmp(&current)?.is_gt() {
            return Ok(());
        }
    }
    conn.query_drop(upsert(stream, position)?).await.map_err(SinkError::mysql("recording the snapshot position in turnout.progress"))
}

/// Deletes `stream`'s record (teardown), and turnout's database on green once no stream has a record
/// in it and it holds nothing else. Returns whether a record was deleted.
pub async fn drop_progress(url: &str, stream: &str) -> Result<bool, SinkError> {
    let mut conn = super::connect(url).await?;
    let tables: Vec<String> = conn
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'turnout'")
        .await
        .map_err(SinkError::mysql("looking for turnout.progress"))?;
    if !tables.iter().any(|t| t == "progress") {
        return Ok(false);
    }
    conn.exec_drop("DELETE FROM turnout.progress WHERE stream = ?", (stream,)).await.map_err(SinkError::mysql("deleting turnout.progress row"))?;
    let deleted = conn.affected_rows() > 0;
    let left: Option<u64> = conn.query_first("SELECT COUNT(*) FROM turnout.progress").await.map_err(SinkError::mysql("counting turnout.progress rows"))?;
    if left == Some(0) && tables.len() == 1 {
        conn.query_drop("DROP DATABASE turnout").await.map_err(SinkError::mysql("dropping the database turnout"))?;
    }
    Ok(deleted)
}
