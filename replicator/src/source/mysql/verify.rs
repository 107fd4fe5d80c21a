//! `turnout verify` for MySQL/MariaDB: per replicated table, the row count and an order-independent
//! digest of every row, computed by each server in one statement. A row's text is the hex of each
//! column's bytes as the server prints them (`CAST(col AS BINARY)`, `N` for NULL) joined with `|`; the
//! digest is the sum of the first 60 bits and the XOR of the next 64 bits of each row's SHA-256 (MySQL 9
//! has no MD5), so no sort is needed and a changed,
//! missing or extra row shows. A character column whose character set differs between the sides is
//! compared by its characters (both sides' text converted to utf8mb4), so a value transcoded wrongly
//! on its way (`'Ã©'` for `'é'`) differs while the same text in latin1 and utf8mb4 does not. Columns
//! only green has are named beside the result: blue has no values to compare them with, and they
//! must not go unseen. Read-only; meaningful once green caught up with a quiet blue.

use super::catalog::{columns, select_tables, ColumnInfo};
use super::{connect, qualified, quote};
use crate::config::Config;
use crate::error::Error;
use crate::source::contract::compare::TableCheck;
use mysql_async::prelude::Queryable;
use turnout_decoders::TableName;

/// `SELECT count, digest FROM (… rows of `from` …)`: the row count and the digest of the rows of
/// `from` (a table, with a `WHERE` condition if any) over `column_names`, as the module doc describes.
pub fn digest_sql(from: &str, column_names: &[String]) -> String {
    let columns: Vec<(String, bool)> = column_names.iter().map(|c| (c.clone(), false)).collect();
    digest_sql_of(from, &columns)
}

/// [`digest_sql`] over `(column, by characters)`: a column marked compares its text converted to
/// utf8mb4 instead of its bytes.
fn digest_sql_of(from: &str, columns: &[(String, bool)]) -> String {
    let row_text = if columns.is_empty() {
        "''".to_string()
    } else {
        let parts: Vec<String> = columns
            .iter()
            .map(|(c, by_characters)| {
                if *by_characters {
                    format!("IFNULL(HEX(CONVERT({} USING utf8mb4)), 'N')", quote(c))
                } else {
                    format!("IFNULL(HEX(CAST({} AS BINARY)), 'N')", quote(c))
                }
            })
            .collect();
        format!("CONCAT_WS('|', {})", parts.join(", "))
    };
    format!(
        "SELECT COUNT(*), CONCAT(COALESCE(SUM(CAST(CONV(SUBSTRING(h, 1, 15), 16, 10) AS UNSIGNED)), 0), ':', \
                COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(h, 16, 16), 16, 10) AS UNSIGNED)), 0)) \
         FROM (SELECT SHA2({row_text}, 256) AS h FROM {from}) d"
    )
}

async fn digest(conn: &mut mysql_async::Conn, table: &TableName, columns: &[(String, bool)], side: crate::error::Side) -> Result<(i64, String), Error> {
    let sql = digest_sql_of(&qualified(table), columns);
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
    let mut blue = connect(&blue_opts, crate::error::Side::Blue).await?;
    let mut green = connect(&green_opts, crate::error::Side::Green).await?;
    let tables = tables(config, &mut blue, only).await?;
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let on_blue = columns(&mut blue, &table, crate::error::Side::Blue).await?;
        let on_green = columns(&mut green, &table, crate::error::Side::Green).await?;
        let (compared, notes) = compared_columns(&on_blue, &on_green);
        // Both sides hash at the same time: the comparison takes as long as the slower side.
        let (b, g) =
            tokio::try_join!(digest(&mut blue, &table, &compared, crate::error::Side::Blue), digest(&mut green, &table, &compared, crate::error::Side::Green))?;
        let missing = on_blue.iter().any(|c| !on_green.iter().any(|x| x.name == c.name));
        out.push(TableCheck { equal: b == g && !missing, blue_rows: b.0, green_rows: g.0, table: qualified(&table), notes });
    }
    Ok(out)
}

/// The columns to compare — blue's, each by characters where the two sides' character sets differ —
/// and what to say about the columns the sides do not share.
fn compared_columns(on_blue: &[ColumnInfo], on_green: &[ColumnInfo]) -> (Vec<(String, bool)>, Vec<String>) {
    let mut notes = Vec::new();
    let compared = on_blue
        .iter()
        .filter_map(|c| {
            let Some(green) = on_green.iter().find(|g| g.name == c.name) else {
                notes.push(format!("column `{}` is missing on green", c.name));
                return None;
            };
            let by_characters = green.charset.is_some() && c.charset.is_some() && green.charset != c.charset;
            Some((c.name.clone(), by_characters))
        })
        .collect();
    let green_only: Vec<String> = on_green.iter().filter(|g| !on_blue.iter().any(|b| b.name == g.name)).map(|g| format!("`{}`", g.name)).collect();
    if !green_only.is_empty() {
        notes.push(format!("green has columns blue has not: {} (green's own values; not compared)", green_only.join(", ")));
    }
    (compared, notes)
}
