//! Row statements for a MySQL/MariaDB green: multi-row `INSERT`s cut to the statement budget, and
//! the check that a statement touched the rows it should.

use super::*;

/// `` `db`.`table` ``.
pub(super) fn qualified(t: &TableName) -> String {
    format!("{}.{}", ident(&t.schema), ident(&t.name))
}

pub(super) fn mysql_type(schema: &TableSchema, i: usize) -> &MySqlType {
    static DEFAULT: std::sync::OnceLock<MySqlType> = std::sync::OnceLock::new();
    match schema.columns.get(i).map(|c| &c.ty) {
        Some(ColumnType::MySql(t)) => t,
        _ => DEFAULT.get_or_init(MySqlType::default),
    }
}

/// Multi-row INSERTs of `rows` (values in `columns` order) into `table`, each under
/// [`STATEMENT_BYTES`], with the number of rows each inserts.
pub(super) fn insert_statements(table: &TableName, columns: &[(String, MySqlType)], rows: &[Vec<Value>]) -> Result<Vec<(String, u64)>, SinkError> {
    let names: Vec<String> = columns.iter().map(|(n, _)| ident(n)).collect();
    let head = format!("INSERT INTO {} ({}) VALUES ", qualified(table), names.join(", "));
    let columns: Vec<InsertColumn> = columns.iter().cloned().map(Some).collect();
    multi_row_inserts(table, &head, &columns, rows)
}

/// A value position of an INSERT: the column's name and type, or `None` for `DEFAULT` (a generated
/// column in a positional INSERT).
pub(super) type InsertColumn = Option<(String, MySqlType)>;

/// Multi-row INSERTs starting with `head` (`INSERT INTO … VALUES `), `rows` in `columns` order
/// (a `DEFAULT` position's value is ignored), each under [`STATEMENT_BYTES`], with the number of
/// rows each inserts.
pub(super) fn multi_row_inserts(table: &TableName, head: &str, columns: &[InsertColumn], rows: &[Vec<Value>]) -> Result<Vec<(String, u64)>, SinkError> {
    let mut statements = Vec::new();
    let mut sql = String::new();
    let mut count = 0u64;
    for (r, row) in rows.iter().enumerate() {
        if count == 0 {
            sql = String::with_capacity(64 * 1024);
            sql.push_str(head);
        } else {
            sql.push(',');
        }
        sql.push('(');
        for (i, (column, v)) in columns.iter().zip(row).enumerate() {
            if i > 0 {
                sql.push(',');
            }
            match column {
                Some((name, ty)) => push(&mut sql, ty, v).map_err(|reason| SinkError::Value { table: table.to_string(), column: name.clone(), reason })?,
                None => sql.push_str("DEFAULT"),
            }
        }
        sql.push(')');
        count += 1;
        if sql.len() >= STATEMENT_BYTES || r + 1 == rows.len() {
            statements.push((std::mem::take(&mut sql), count));
            count = 0;
        }
    }
    Ok(statements)
}

/// Inserts `rows` (values in `columns` order) into `table` with multi-row INSERTs, checking that every
/// row was inserted. Used by the snapshot; the same literals as streaming apply.
pub async fn insert_rows(conn: &mut mysql_async::Conn, table: &TableName, columns: &[(String, MySqlType)], rows: &[Vec<Value>]) -> Result<(), SinkError> {
    for (sql, count) in insert_statements(table, columns, rows)? {
        conn.query_drop(&sql).await.map_err(SinkError::mysql(format!("inserting into {table}")))?;
        expect(conn.affected_rows(), count, &format!("inserting into {table}"))?;
    }
    Ok(())
}

/// Every statement must touch exactly the rows it names: anything else means green diverged.
pub(super) fn expect(touched: u64, expected: u64, what: &str) -> Result<(), SinkError> {
    if touched != expected {
        return Err(SinkError::Progress(format!(
            "{what} touched {touched} rows on green, expected {expected}: green has diverged from blue (run turnout verify)"
        )));
    }
    Ok(())
}
