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

/// One row statement and what it must do: touch `rows` rows, and warn exactly `enum_errors` times
/// (one per ENUM error value it writes, [`literal::enum_error`]; it then runs relaxed).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RowStatement {
    pub sql: String,
    pub rows: u64,
    pub enum_errors: u16,
}

/// Multi-row INSERTs of `rows` (values in `columns` order) into `table`, each under
/// [`STATEMENT_BYTES`], with the number of rows each inserts.
pub(super) fn insert_statements(table: &TableName, columns: &[(String, MySqlType)], rows: &[Vec<Value>]) -> Result<Vec<RowStatement>, SinkError> {
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
pub(super) fn multi_row_inserts(table: &TableName, head: &str, columns: &[InsertColumn], rows: &[Vec<Value>]) -> Result<Vec<RowStatement>, SinkError> {
    let mut statements = Vec::new();
    let mut sql = String::new();
    let mut count = 0u64;
    let mut enum_errors = 0u16;
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
                Some((name, ty)) => {
                    push(&mut sql, ty, v).map_err(|reason| SinkError::Value { table: table.to_string(), column: name.clone(), reason })?;
                    enum_errors += u16::from(literal::enum_error(ty, v));
                }
                None => sql.push_str("DEFAULT"),
            }
        }
        sql.push(')');
        count += 1;
        // A statement warns at most 65,535 times: one writing more ENUM error values ends here.
        if sql.len() >= STATEMENT_BYTES || r + 1 == rows.len() || usize::from(enum_errors) + columns.len() > usize::from(u16::MAX) {
            statements.push(RowStatement { sql: std::mem::take(&mut sql), rows: count, enum_errors });
            count = 0;
            enum_errors = 0;
        }
    }
    Ok(statements)
}

/// Inserts `rows` (values in `columns` order) into `table` with multi-row INSERTs, checking that every
/// row was inserted. Used by the snapshot; the same literals as streaming apply.
pub async fn insert_rows(conn: &mut mysql_async::Conn, table: &TableName, columns: &[(String, MySqlType)], rows: &[Vec<Value>]) -> Result<(), SinkError> {
    let what = format!("inserting into {table}");
    for s in insert_statements(table, columns, rows)? {
        if s.enum_errors == 0 {
            conn.query_drop(&s.sql).await.map_err(SinkError::mysql(what.clone()))?;
        } else {
            let mariadb = is_mariadb(conn).await?;
            let sql = literal::relaxed(&s.sql, mariadb);
            conn.query_drop(&sql).await.map_err(SinkError::mysql(format!("{what} (`{}`)", shape(&sql))))?;
            expect_warnings(conn.get_warnings(), s.enum_errors, &what)?;
        }
        expect(conn.affected_rows(), s.rows, &what)?;
    }
    Ok(())
}

/// Whether the server of `conn` is MariaDB.
async fn is_mariadb(conn: &mut mysql_async::Conn) -> Result<bool, SinkError> {
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(SinkError::mysql("reading the version"))?;
    Ok(version.unwrap_or_default().to_ascii_lowercase().contains("mariadb"))
}

/// A statement writing ENUM error values runs relaxed, and must warn exactly once for each: any
/// other warning is a value that did not arrive exactly (strict mode would have refused it).
pub(super) fn expect_warnings(warned: u16, expected: u16, what: &str) -> Result<(), SinkError> {
    if warned != expected {
        return Err(SinkError::Progress(format!(
            "{what} wrote {expected} ENUM error value(s) ('', index 0) with strict mode off for that statement and got {warned} warnings: \
             another value did not arrive exactly; green has diverged from blue (run turnout verify)"
        )));
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
