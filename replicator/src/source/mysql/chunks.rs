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

/// The chunk plan of `tables` (ids from 0), every table after the tables its foreign keys refer to.
///
/// Green applies the stream with `foreign_key_checks = 1`, so that its own cascades repeat blue's,
/// which the binlog does not carry. A change the filter drops must therefore never have cascaded on
/// blue into rows green holds, nor may green hold a child row whose parent it lacks: a parent table is
/// copied whole before any chunk of a table referring to it, and a table referring to itself is one
/// chunk. Tables referring to each other in a cycle cannot be ordered: the chunked copy is refused.
pub async fn plan(blue: &mut mysql_async::Conn, tables: &[TableName], chunk_bytes: u64, first_id: u32) -> Result<Vec<Chunk>, Error> {
    let database = tables.first().map(|t| t.schema.clone()).unwrap_or_default();
    let rules = foreign_key_rules(blue, &database).await?;
    let edges: Vec<(TableName, TableName)> = rules.iter().map(|(c, p, _)| (c.clone(), p.clone())).collect();
    let (ordered, self_referencing) = parents_first(tables, &edges)?;
    // A table whose rows blue changes by cascade from an UPDATE of another table's key (outside the
    // binlog) could see them move between its chunks unseen: it is one chunk.
    let cascaded: Vec<&TableName> = rules.iter().filter(|(c, p, acts)| *acts && c != p).map(|(c, _, _)| c).collect();
    let mut chunks = Vec::new();
    let mut next = first_id;
    for t in &ordered {
        let bytes = table_size(blue, t).await?;
        if self_referencing.contains(t) || cascaded.contains(&t) {
            chunks.extend(split(t, None, bytes, chunk_bytes, &mut next));
            continue;
        }
        let key: Option<String> = blue
            .exec_first(
                "SELECT s.COLUMN_NAME FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c \
                 ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME \
                 WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.INDEX_NAME = 'PRIMARY' AND s.SEQ_IN_INDEX = 1 \
                 AND c.DATA_TYPE IN ('tinyint', 'smallint', 'mediumint', 'int', 'bigint')",
                (&t.schema, &t.name),
            )
            .await
            .map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading the key of {t}"), e))?;
        let range = match key {
            Some(column) => {
                let c = quote(&column);
                let bounds: Option<(Option<String>, Option<String>)> = blue
                    .query_first(format!("SELECT CAST(MIN({c}) AS CHAR), CAST(MAX({c}) AS CHAR) FROM {}", qualified(t)))
                    .await
                    .map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading the key range of {t}"), e))?;
                let parse = |v: Option<String>| v.and_then(|v| v.parse::<i128>().ok());
                bounds.and_then(|(lo, hi)| parse(lo).zip(parse(hi))).map(|(lo, hi)| (column, lo, hi))
            }
            None => None,
        };
        chunks.extend(split(t, range.as_ref().map(|(c, lo, hi)| (c.as_str(), *lo, *hi)), bytes, chunk_bytes, &mut next));
    }
    Ok(chunks)
}

/// Every foreign key of `database` as (the table that refers, the table it refers to).
pub async fn foreign_keys(blue: &mut mysql_async::Conn, database: &str) -> Result<Vec<(TableName, TableName)>, Error> {
    Ok(foreign_key_rules(blue, database).await?.into_iter().map(|(c, p, _)| (c, p)).collect())
}

/// Every foreign key of `database` as (the table that refers, the table it refers to, whether an
/// UPDATE of the referred key changes the referring rows: `CASCADE`, `SET NULL`, `SET DEFAULT`).
async fn foreign_key_rules(blue: &mut mysql_async::Conn, database: &str) -> Result<Vec<(TableName, TableName, bool)>, Error> {
    let edges: Vec<(String, String, String)> = blue
        .exec("SELECT TABLE_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?", (database,))
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "reading foreign keys", e))?;
    Ok(edges
        .into_iter()
        .map(|(c, p, rule)| {
            let acts = !matches!(rule.to_ascii_uppercase().as_str(), "RESTRICT" | "NO ACTION");
            (TableName::new(database, c), TableName::new(database, p), acts)
        })
        .collect())
}

/// `tables` with every table after those it refers to (`edges`: child → parent), otherwise in the
/// given order, and the tables that refer to themselves; an error naming the tables of a cycle.
fn parents_first(tables: &[TableName], edges: &[(TableName, TableName)]) -> Result<(Vec<TableName>, Vec<TableName>), Error> {
    let selected = |t: &TableName| tables.contains(t);
    let self_referencing: Vec<TableName> = edges.iter().filter(|(c, p)| c == p && selected(c)).map(|(c, _)| c.clone()).collect();
    let parents = |t: &TableName| -> Vec<&TableName> { edges.iter().filter(|(c, p)| c == t && p != t && selected(p)).map(|(_, p)| p).collect() };
    let mut ordered: Vec<TableName> = Vec::with_capacity(tables.len());
    let mut left: Vec<&TableName> = tables.iter().collect();
    while !left.is_empty() {
        let ready = left.iter().position(|t| parents(t).iter().all(|p| ordered.contains(p)));
        let Some(i) = ready else {
            let names: Vec<String> = left.iter().map(ToString::to_string).collect();
            return Err(Error::config(
                "snapshot.mode",
                format!(
                    "the chunked copy cannot order {} (their foreign keys refer to each other in a cycle), so green's cascades could \
                     not follow blue's while they are copied; set snapshot.mode = \"consistent\"",
                    names.join(", ")
                ),
            ));
        };
        ordered.push(left.remove(i).clone());
    }
    Ok((ordered, self_referencing))
}

/// `DATA_LENGTH` of `t`.
async fn table_size(blue: &mut mysql_async::Conn, t: &TableName) -> Result<u64, Error> {
    let n: Option<u64> = blue
        .exec_first("SELECT COALESCE(DATA_LENGTH, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&t.schema, &t.name))
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "reading table sizes", e))?;
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
        let mut blue = connect(&self.blue, crate::error::Side::Blue).await?;
        let table = super::heartbeat::table(&super::database(&self.blue));
        blue.query_drop(format!(
            "INSERT INTO {} (id, at_us) VALUES (1, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)) ON DUPLICATE KEY UPDATE at_us = VALUES(at_us)",
            qualified(&table)
        ))
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "writing a transaction the stream carries past a copy round", e))
    }

    async fn clear(&self, chunks: &[Chunk]) -> Result<(), Error> {
        let mut green = turnout_sinks::mysql::connect(&self.target_url).await.map_err(Error::Sink)?;
        green.query_drop("START TRANSACTION").await.map_err(|e| sql_error(crate::error::Side::Green, "starting to clear chunks not yet copied", e))?;
        for c in chunks {
            let condition = c.condition(quote).map(|f| format!(" WHERE {f}")).unwrap_or_default();
            green
                .query_drop(format!("DELETE FROM {}{condition}", qualified(&c.table_name())))
                .await
                .map_err(|e| sql_error(crate::error::Side::Green, &format!("clearing green's rows of {c}, not yet copied"), e))?;
        }
        green.query_drop("COMMIT").await.map_err(|e| sql_error(crate::error::Side::Green, "clearing chunks not yet copied", e))?;
        flush_if_needed(&mut green).await
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

/// Makes green's commits so far durable when its commits alone do not (`innodb_flush_log_at_trx_commit`
/// other than 1): `FLUSH ENGINE LOGS`, as green's sink does.
async fn flush_if_needed(green: &mut mysql_async::Conn) -> Result<(), Error> {
    let flush: Option<String> = green
        .query_first("SELECT @@innodb_flush_log_at_trx_commit")
        .await
        .map_err(|e| sql_error(crate::error::Side::Green, "reading innodb_flush_log_at_trx_commit", e))?;
    if flush.as_deref() == Some("1") {
        return Ok(());
    }
    green.query_drop("FLUSH ENGINE LOGS").await.map_err(|e| {
        sql_error(crate::error::Side::Green, "flushing green's InnoDB log (FLUSH ENGINE LOGS; needs RELOAD, or set innodb_flush_log_at_trx_commit = 1)", e)
    })
}

/// One reader's share of a round: chunks from `queue` until it is empty.
async fn copy_chunks(mut reader: mysql_async::Conn, target_url: &str, queue: &Mutex<Vec<Chunk>>, progress: &Progress) -> Result<(), Error> {
    let mut green = turnout_sinks::mysql::connect(target_url).await.map_err(Error::Sink)?;
    let json_text = super::is_mariadb(&mut green, crate::error::Side::Green).await?;
    // No gap locks: the chunks of a round are neighbouring ranges of one table, each deleted and
    // filled by its own session at once.
    green
        .query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .map_err(|e| sql_error(crate::error::Side::Green, "setting the chunk sessions' isolation", e))?;
    loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some(chunk) = next else { break };
        let table = chunk.table_name();
        let condition = chunk.condition(quote);
        let clear = format!("DELETE FROM {}{}", qualified(&table), condition.as_ref().map(|c| format!(" WHERE {c}")).unwrap_or_default());
        green.query_drop("START TRANSACTION").await.map_err(|e| sql_error(crate::error::Side::Green, "starting a chunk's transaction", e))?;
        green
            .query_drop(&clear)
            .await
            .map_err(|e| sql_error(crate::error::Side::Green, &format!("clearing green's rows of {table} before copying them"), e))?;
        let rows = copy_table(&mut reader, &mut green, json_text, &table, condition.as_deref(), progress.status()).await?;
        green.query_drop("COMMIT").await.map_err(|e| sql_error(crate::error::Side::Green, &format!("committing the copy of {chunk}"), e))?;
        flush_if_needed(&mut green).await?;
        progress.done(&chunk, Copied { rows, bytes: 0 })?;
    }
    let _ = reader.query_drop("COMMIT").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableName {
        TableName::new("app", name)
    }

    #[test]
    fn parents_come_before_children_and_cycles_are_refused() {
        let tables = [t("items"), t("orders"), t("customers"), t("tree")];
        let edges = [(t("items"), t("orders")), (t("orders"), t("customers")), (t("tree"), t("tree")), (t("orders"), t("elsewhere"))];
        let (ordered, own) = parents_first(&tables, &edges).expect("acyclic");
        assert_eq!(ordered, [t("customers"), t("orders"), t("items"), t("tree")]);
        assert_eq!(own, [t("tree")]);
        let cycle = [(t("a"), t("b")), (t("b"), t("a"))];
        let e = parents_first(&[t("a"), t("b"), t("c")], &cycle).expect_err("a cycle").to_string();
        assert!(e.contains("app.a") && e.contains("app.b") && !e.contains("app.c") && e.contains("consistent"), "{e}");
    }
}
