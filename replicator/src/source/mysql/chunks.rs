//! MySQL's and MariaDB's side of the chunked initial copy ([`crate::copy`]).
//!
//! - **Plan**: a table whose primary key starts with an integer column is split into ranges of it
//!   (about `snapshot.chunk_size` of table each, by `DATA_LENGTH`); any other table is one chunk.
//! - **Round**: the readers of [`super::snapshot::open_readers`] — commits blocked for a moment while
//!   each starts `START TRANSACTION WITH CONSISTENT SNAPSHOT` and the binlog position and GTID state
//!   of that point are read (the same moment the consistent copy takes once, here once per round).
//! - **Nudge**: a write to turnout's heartbeat table.
//! - **Copy**: each reader takes chunks in turn and writes each in one green transaction that deletes
//!   the range first; when green's `innodb_flush_log_at_trx_commit` is not 1 its log is flushed
//!   (`FLUSH ENGINE LOGS`) before the chunk is recorded.

use super::snapshot::{copy_table, open_readers};
use super::{connect, qualified, quote, sql_error};
use crate::copy::{split, Chunk, Copied, Copier, Progress};
use crate::error::Error;
use mysql_async::prelude::Queryable;
use std::sync::{Arc, Mutex};
use turnout_decoders::{Position, TableName};

/// The chunk plan of `tables` (ids from 0).
pub async fn plan(blue: &mut mysql_async::Conn, tables: &[TableName], chunk_bytes: u64) -> Result<Vec<Chunk>, Error> {
    let mut chunks = Vec::new();
    let mut next = 0;
    for t in tables {
        let bytes = table_size(blue, t).await?;
        let key: Option<String> = blue
            .exec_first(
                "SELECT s.COLUMN_NAME FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c \
                 ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME \
                 WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.INDEX_NAME = 'PRIMARY' AND s.SEQ_IN_INDEX = 1 \
                 AND c.DATA_TYPE IN ('tinyint', 'smallint', 'mediumint', 'int', 'bigint')",
                (&t.schema, &t.name),
            )
            .await
            .map_err(|e| sql_error("blue", &format!("reading the key of {t}"), e))?;
        let range = match key {
            Some(column) => {
                let c = quote(&column);
                let bounds: Option<(Option<String>, Option<String>)> = blue
                    .query_first(format!("SELECT CAST(MIN({c}) AS CHAR), CAST(MAX({c}) AS CHAR) FROM {}", qualified(t)))
                    .await
                    .map_err(|e| sql_error("blue", &format!("reading the key range of {t}"), e))?;
                let parse = |v: Option<String>| v.and_then(|v| v.parse::<i128>().ok());
                bounds.and_then(|(lo, hi)| parse(lo).zip(parse(hi))).map(|(lo, hi)| (column, lo, hi))
            }
            None => None,
        };
        chunks.extend(split(t, range.as_ref().map(|(c, lo, hi)| (c.as_str(), *lo, *hi)), bytes, chunk_bytes, &mut next));
    }
    Ok(chunks)
}

/// `DATA_LENGTH` of `t`.
async fn table_size(blue: &mut mysql_async::Conn, t: &TableName) -> Result<u64, Error> {
    let n: Option<u64> = blue
        .exec_first("SELECT COALESCE(DATA_LENGTH, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&t.schema, &t.name))
        .await
        .map_err(|e| sql_error("blue", "reading table sizes", e))?;
    Ok(n.unwrap_or(0))
}

/// The total size of `tables`, for `snapshot.mode = "auto"`.
pub async fn total_size(blue: &mut mysql_async::Conn, tables: &[TableName]) -> Result<u64, Error> {
    let mut total = 0;
    for t in tables {
        total += table_size(blue, t).await?;
    }
    Ok(total)
}

/// MySQL's and MariaDB's [`Copier`].
#[derive(Debug)]
pub struct MySqlCopier {
    pub blue: mysql_async::Opts,
    pub target_url: String,
    pub workers: usize,
}

impl Copier for MySqlCopier {
    /// The readers, each inside a consistent snapshot at the round's position.
    type Round = Vec<mysql_async::Conn>;

    async fn open(&self) -> Result<(Vec<mysql_async::Conn>, Position), Error> {
        let (readers, point) = open_readers(&self.blue, self.workers).await?;
        Ok((readers, point.position))
    }

    async fn nudge(&self) -> Result<(), Error> {
        let mut blue = connect(&self.blue, "blue").await?;
        let table = super::heartbeat::table(&super::database(&self.blue));
        blue.query_drop(format!(
            "INSERT INTO {} (id, at_us) VALUES (1, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)) ON DUPLICATE KEY UPDATE at_us = VALUES(at_us)",
            qualified(&table)
        ))
        .await
        .map_err(|e| sql_error("blue", "writing a transaction the stream carries past a copy round", e))
    }

    async fn copy(&self, readers: Vec<mysql_async::Conn>, chunks: Vec<Chunk>, progress: &Progress) -> Result<(), Error> {
        let queue = Arc::new(Mutex::new(chunks));
        let workers = readers.into_iter().map(|reader| {
            let queue = Arc::clone(&queue);
            async move { copy_chunks(reader, &self.target_url, &queue, progress).await }
        });
        futures_util::future::try_join_all(workers).await.map(drop)
    }
}

/// One reader's share of a round: chunks from `queue` until it is empty.
async fn copy_chunks(mut reader: mysql_async::Conn, target_url: &str, queue: &Mutex<Vec<Chunk>>, progress: &Progress) -> Result<(), Error> {
    let mut green = turnout_sinks::mysql::connect(target_url).await.map_err(Error::Sink)?;
    let json_text = super::is_mariadb(&mut green, "green").await?;
    let flush: Option<String> =
        green.query_first("SELECT @@innodb_flush_log_at_trx_commit").await.map_err(|e| sql_error("green", "reading innodb_flush_log_at_trx_commit", e))?;
    let durable_commits = flush.as_deref() == Some("1");
    loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some(chunk) = next else { break };
        let table = chunk.table_name();
        let condition = chunk.condition(quote);
        let clear = format!("DELETE FROM {}{}", qualified(&table), condition.as_ref().map(|c| format!(" WHERE {c}")).unwrap_or_default());
        green.query_drop("START TRANSACTION").await.map_err(|e| sql_error("green", "starting a chunk's transaction", e))?;
        green.query_drop(&clear).await.map_err(|e| sql_error("green", &format!("clearing green's rows of {table} before copying them"), e))?;
        let rows = copy_table(&mut reader, &mut green, json_text, &table, condition.as_deref(), progress.status()).await?;
        green.query_drop("COMMIT").await.map_err(|e| sql_error("green", &format!("committing the copy of {chunk}"), e))?;
        if !durable_commits {
            green.query_drop("FLUSH ENGINE LOGS").await.map_err(|e| {
                sql_error("green", "flushing green's InnoDB log (FLUSH ENGINE LOGS; needs RELOAD, or set innodb_flush_log_at_trx_commit = 1)", e)
            })?;
        }
        progress.done(&chunk, Copied { rows, bytes: 0 })?;
    }
    let _ = reader.query_drop("COMMIT").await;
    Ok(())
}
