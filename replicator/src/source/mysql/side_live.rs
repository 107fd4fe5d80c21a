//! MySQL/MariaDB blue's side of a composed pair's live verify ([`LiveBlue`]): the readers of the
//! initial copy (one consistent snapshot at a binlog position) — or in the rollback window sessions
//! whose snapshot starts while the stream back is held — and a key range read as the copy reads a
//! table: the binary protocol, each value as the binlog stream carries it.

use super::side::{selected, value, MySqlBlue};
use super::{qualified, quote, snapshot, sql_error};
use crate::error::{Error, Side};
use crate::source::compose::live::{Each, KeyRange, LiveBlue};
use crate::source::compose::BlueTable;
use mysql_async::prelude::Queryable;
use turnout_decoders::event::Row;
use turnout_decoders::{Position, TableName};

/// Integers read as text (`CAST(… AS CHAR)`), parsed.
fn numbers(texts: Vec<Option<String>>) -> Result<Vec<i128>, Error> {
    texts
        .into_iter()
        .map(|t| t.and_then(|t| t.parse::<i128>().ok()).ok_or_else(|| Error::Internal("verify read a key of blue's that is not an integer".into())))
        .collect()
}

impl LiveBlue for MySqlBlue {
    type Reader = mysql_async::Conn;

    async fn readers(&self, workers: usize) -> Result<(Vec<mysql_async::Conn>, Position), Error> {
        let (readers, point) = snapshot::open_readers(self.opts(), workers).await?;
        Ok((readers, point.position))
    }

    async fn key_span(&self, reader: &mut mysql_async::Conn, table: &TableName, column: &str) -> Result<Option<(i128, i128)>, Error> {
        let c = quote(column);
        let sql = format!("SELECT CAST(MIN({c}) AS CHAR), CAST(MAX({c}) AS CHAR) FROM {}", qualified(table));
        let row: Option<(Option<String>, Option<String>)> =
            reader.query_first(sql).await.map_err(|e| sql_error(Side::Blue, &format!("reading the key range of {table}"), e))?;
        let parse = |t: Option<String>| t.and_then(|t| t.parse::<i128>().ok());
        Ok(row.and_then(|(min, max)| parse(min).zip(parse(max))))
    }

    async fn key_at(&self, reader: &mut mysql_async::Conn, table: &TableName, range: &KeyRange, n: i64) -> Result<Option<Vec<i128>>, Error> {
        let texts: Vec<String> = range.columns.iter().map(|c| format!("CAST({} AS CHAR)", quote(c))).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 1 OFFSET {}",
            texts.join(", "),
            qualified(table),
            range.condition(quote),
            range.order(quote),
            (n - 1).max(0)
        );
        let row: Option<mysql_async::Row> = reader.query_first(sql).await.map_err(|e| sql_error(Side::Blue, &format!("reading the keys of {table}"), e))?;
        row.map(|mut r| numbers((0..range.columns.len()).map(|j| r.take::<Option<String>, _>(j).flatten()).collect())).transpose()
    }

    async fn connect(&self) -> Result<mysql_async::Conn, Error> {
        super::connect(self.opts(), Side::Blue).await
    }

    async fn begin(&self, reader: &mut mysql_async::Conn) -> Result<(), Error> {
        reader
            .query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(|e| sql_error(Side::Blue, "beginning verify's snapshot", e))
    }

    async fn visit(&self, reader: &mut mysql_async::Conn, table: &BlueTable, range: &KeyRange, each: Each<'_, Row>) -> Result<(), Error> {
        use futures_util::StreamExt;
        let columns = table.columns.iter().map(selected).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {columns} FROM {} WHERE {}", qualified(&table.name), range.condition(quote));
        let what = format!("reading {} in verify's snapshot", table.name);
        // The binary protocol: numbers, dates and times arrive typed, as the copy reads them.
        let mut result = reader.exec_iter(sql, ()).await.map_err(|e| sql_error(Side::Blue, &what, e))?;
        let Some(mut rows) = result.stream::<mysql_async::Row>().await.map_err(|e| sql_error(Side::Blue, &what, e))? else {
            return Ok(());
        };
        while let Some(row) = rows.next().await {
            let row = row.map_err(|e| sql_error(Side::Blue, &what, e))?;
            each(row.unwrap().into_iter().zip(&table.columns).map(|(v, c)| value(c, v)).collect())?;
        }
        Ok(())
    }
}
