//! `turnout verify` for MySQL/MariaDB: per replicated table, the row count and an order-independent
//! digest of every row, computed by each server in one statement. A row's text is the hex of each
//! column's bytes as the server prints them (`CAST(col AS BINARY)`, `N` for NULL) joined with `|`; the
//! digest is the sum and the XOR of two halves of each row's MD5, so no sort is needed and a changed,
//! missing or extra row shows. Read-only; meaningful once green caught up with a quiet blue.

use super::catalog::{columns, select_tables};
use super::{connect, qualified, quote};
use crate::config::Config;
use crate::error::Error;
use crate::verify::TableCheck;
use mysql_async::prelude::Queryable;
use turnout_decoders::TableName;

/// `SELECT count, digest FROM (… rows of `from` …)`: the row count and the digest of the rows of
/// `from` (a table, with a `WHERE` condition if any) over `column_names`, as the module doc describes.
pub fn digest_sql(from: &str, column_names: &[String]) -> String {
    let row_text = if column_names.is_empty() {
        "''".to_string()
    } else {
        let parts: Vec<String> = column_names.iter().map(|c| format!("IFNULL(HEX(CAST({} AS BINARY)), 'N')", quote(c))).collect();
        format!("CONCAT_WS('|', {})", parts.join(", "))
    };
    format!(
        "SELECT COUNT(*), CONCAT(COALESCE(SUM(CAST(CONV(SUBSTRING(h, 1, 15), 16, 10) AS UNSIGNED)), 0), ':', \
                COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(h, 16, 16), 16, 10) AS UNSIGNED)), 0)) \
         FROM (SELECT MD5({row_text}) AS h FROM {from}) d"
    )
}

async fn digest(conn: &mut mysql_async::Conn, table: &TableName, column_names: &[String], side: &str) -> Result<(i64, String), Error> {
    let sql = digest_sql(&qualified(table), column_names);
    let row: Option<(i64, Vec<u8>)> = conn.query_first(sql).await.map_err(|e| super::sql_error(side, &format!("reading {table}"), e))?;
    let (count, digest) = row.unwrap_or((0, Vec::new()));
    Ok((count, String::from_utf8_lossy(&digest).into_owned()))
}

/// The tables `run` replicates but the heartbeat table (or only `only`, as `database.table` or a name in
/// blue's database).
pub async fn tables(config: &Config, blue: &mut mysql_async::Conn, only: Option<&str>) -> Result<Vec<TableName>, Error> {
    let database = super::database(&super::options(config.source.url.expose(), "source.url")?);
    Ok(match only {
        Some(t) => {
            let (schema, name) = t.split_once('.').unwrap_or((&database, t));
            vec![TableName::new(schema, name)]
        }
        None => {
            let (selection, _) = select_tables(blue, &database, &config.table_filter()?).await?;
            selection.tables.into_iter().filter(|t| t.name != crate::source::HEARTBEAT_TABLE).collect()
        }
    })
}

/// Compares the tables `run` replicates (or only `only`, as `database.table`).
pub async fn run(config: &Config, only: Option<&str>) -> Result<Vec<TableCheck>, Error> {
    let blue_opts = super::options(config.source.url.expose(), "source.url")?;
    let green_opts = super::options(config.target.url.expose(), "target.url")?;
    let mut blue = connect(&blue_opts, "blue").await?;
    let mut green = connect(&green_opts, "green").await?;
    let tables = tables(config, &mut blue, only).await?;
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let names: Vec<String> = columns(&mut blue, &table, "blue").await?.into_iter().map(|c| c.name).collect();
        let b = digest(&mut blue, &table, &names, "blue").await?;
        let g = digest(&mut green, &table, &names, "green").await?;
        out.push(TableCheck { equal: b == g, blue_rows: b.0, green_rows: g.0, table: qualified(&table) });
    }
    Ok(out)
}
