//! The initial copy's check of generated columns: green computes a generated column's value itself,
//! in turnout's session, and an expression that depends on the session (`DATE(ts)` of a `TIMESTAMP`
//! under the application's `time_zone`) stores other values than blue did. After each table (or
//! chunk) is copied, a digest of every copied row's key and generated values is taken on blue, in the
//! copy's snapshot, and on green; a difference stops the copy naming the table, the columns and the
//! fix. The stream checks what it writes itself (`turnout_sinks::mysql`).

use super::{qualified, quote, sql_error};
use crate::error::{Error, Side};
use mysql_async::prelude::Queryable;
use turnout_decoders::TableName;

/// The digest statement: the rows, and the XOR of a CRC of each row's key and generated values as
/// bytes (a NULL told apart from any value).
fn digest_sql(table: &TableName, columns: &[&String], condition: Option<&str>) -> String {
    let parts: Vec<String> = columns.iter().map(|c| format!("IFNULL(HEX(CAST({} AS BINARY)), 'N')", quote(c))).collect();
    let mut sql = format!("SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', {}))), 0) FROM {}", parts.join(", "), qualified(table));
    if let Some(condition) = condition {
        sql.push_str(&format!(" WHERE {condition}"));
    }
    sql
}

/// What one copy wrote: the table, the columns that find a row (its primary key, or every stored
/// column), its generated columns, and the rows it took (all without a condition).
pub struct Copied<'a> {
    pub table: &'a TableName,
    pub key: &'a [String],
    pub generated: &'a [String],
    pub condition: Option<&'a str>,
}

/// Refuses a copy whose generated columns green computed otherwise than blue stored; `reader` reads
/// blue in the copy's snapshot.
pub async fn same_as_blue(reader: &mut mysql_async::Conn, green: &mut mysql_async::Conn, copied: Copied<'_>) -> Result<(), Error> {
    let Copied { table, key, generated, condition } = copied;
    let columns: Vec<&String> = key.iter().chain(generated).collect();
    let sql = digest_sql(table, &columns, condition);
    let context = format!("comparing the generated columns of {table}");
    let on_blue: Option<(u64, u64)> = reader.query_first(&sql).await.map_err(|e| sql_error(Side::Blue, &context, e))?;
    let on_green: Option<(u64, u64)> = green.query_first(&sql).await.map_err(|e| sql_error(Side::Green, &context, e))?;
    if on_blue == on_green {
        return Ok(());
    }
    Err(Error::Setup(format!(
        "green generates other values than blue stored in {table}'s generated column(s) {}: the expression depends on the session that \
         wrote the row (time_zone, sql_mode, div_precision_increment …), which turnout's session cannot know, so green would hold other \
         values. Make the expression independent of the session (e.g. DATE(CONVERT_TZ(ts, '+00:00', '+09:00')) instead of DATE(ts)) on \
         both sides, or make the column an ordinary one on green for the migration (ALTER TABLE … MODIFY without AS), then start turnout \
         again",
        generated.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_digest_reads_each_value_as_bytes_and_tells_null_apart() {
        let t = turnout_decoders::TableName::new("app", "orders");
        let (id, day) = ("id".to_string(), "day".to_string());
        let sql = super::digest_sql(&t, &[&id, &day], Some("`id` < 10"));
        assert!(sql.contains("IFNULL(HEX(CAST(`day` AS BINARY)), 'N')") && sql.ends_with("WHERE `id` < 10"), "{sql}");
    }
}
