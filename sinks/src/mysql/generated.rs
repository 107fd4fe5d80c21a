//! Generated columns, checked: green computes a generated column's value itself (MySQL and MariaDB
//! take none from an `INSERT`), in turnout's session. An expression that depends on the session —
//! `DATE(ts)` of a `TIMESTAMP` under the application's `time_zone = '+09:00'`, anything under another
//! `sql_mode` or `div_precision_increment` — then stores another value on green than blue stored, on
//! every row, and nothing else would notice. The row images carry blue's stored values: before a
//! batch commits, every row it wrote into a table with generated columns is compared with them on
//! green, and a difference stops the stream naming the table, the columns, the row's key, blue's
//! values and the fix. Rows a table without generated columns gets cost nothing.

use super::literal::{ident, push, push_equals};
use super::{qualified, MySqlSink};
use crate::error::SinkError;
use mysql_async::prelude::Queryable;
use std::collections::HashSet;
use turnout_decoders::{TableSchema, Value};

/// Rows compared per statement.
const ROWS_PER_CHECK: usize = 200;

/// One table's rows written since the last commit: its schema as blue sent it, the positions of the
/// columns green generates, and each row's values.
#[derive(Debug)]
struct Written {
    table: TableSchema,
    generated: Vec<usize>,
    rows: Vec<Vec<Value>>,
}

/// The rows written since the last commit into tables with generated columns.
#[derive(Debug, Default)]
pub(super) struct GeneratedRows {
    tables: Vec<Written>,
}

impl GeneratedRows {
    /// Notes `rows` written into `table`, whose columns in `generated` green computes (nothing when
    /// blue sent none of them).
    pub(super) fn note(&mut self, table: &TableSchema, generated: &HashSet<String>, rows: &[&Vec<Value>]) {
        let positions: Vec<usize> = table.columns.iter().enumerate().filter(|(_, c)| generated.contains(&c.name)).map(|(i, _)| i).collect();
        if positions.is_empty() || rows.is_empty() {
            return;
        }
        let at = match self.tables.iter().position(|w| w.table.name == table.name && w.table.columns == table.columns) {
            Some(at) => at,
            None => {
                self.tables.push(Written { table: table.clone(), generated: positions, rows: Vec::new() });
                self.tables.len() - 1
            }
        };
        self.tables[at].rows.extend(rows.iter().map(|r| (*r).clone()));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.tables.clear();
    }
}

impl MySqlSink {
    /// Compares what green generated for the rows written since the last commit with blue's values
    /// (everything queued is sent first); the error names the first row that differs.
    pub(super) async fn check_generated(&mut self) -> Result<(), SinkError> {
        if self.generated_rows.is_empty() {
            return Ok(());
        }
        self.emit_fold().await?;
        self.queue.send(&mut self.conn).await?;
        let written = std::mem::take(&mut self.generated_rows.tables);
        for w in &written {
            let generated = self.generated(&w.table.name).await?.clone();
            for rows in w.rows.chunks(ROWS_PER_CHECK) {
                let Some(sql) = self.check_sql(w, &generated, rows)? else { continue };
                let found: Option<mysql_async::Row> =
                    self.conn.query_first(&sql).await.map_err(SinkError::mysql(format!("comparing the generated columns of {} with blue's", w.table.name)))?;
                if let Some(row) = found {
                    return Err(differs(w, &row));
                }
            }
        }
        Ok(())
    }

    /// `SELECT <the row's position in the batch> FROM t WHERE (row 1 found AND NOT its generated
    /// values equal) OR …`: a row only when green generated something else; `None` when blue sent
    /// none of the rows' generated values.
    fn check_sql(&self, w: &Written, generated: &HashSet<String>, rows: &[Vec<Value>]) -> Result<Option<String>, SinkError> {
        let table = &w.table;
        let value_err = |column: &str, reason: String| SinkError::Value { table: table.name.to_string(), column: column.to_owned(), reason };
        let keys: Vec<usize> = table.key_indexes().collect();
        let locate: Vec<usize> =
            if keys.is_empty() { (0..table.columns.len()).filter(|i| !generated.contains(&table.columns[*i].name)).collect() } else { keys };
        let mut sql = String::from("SELECT CASE");
        let mut conditions = Vec::with_capacity(rows.len());
        for (n, row) in rows.iter().enumerate() {
            // A value blue did not send (a virtual column MariaDB leaves out of the image) cannot be
            // compared, and a virtual column is computed when read, on either side alike.
            let sent = |i: &usize| !matches!(row.get(*i), Some(Value::Unchanged));
            let compared: Vec<usize> = w.generated.iter().copied().filter(sent).collect();
            if compared.is_empty() || !locate.iter().all(sent) {
                continue;
            }
            let mut found = String::new();
            for (k, &i) in locate.iter().enumerate() {
                if k > 0 {
                    found.push_str(" AND ");
                }
                let v = row.get(i).cloned().unwrap_or(Value::Null);
                push_equals(&mut found, &ident(&table.columns[i].name), &self.green_type(table, i), &v, true)
                    .map_err(|r| value_err(&table.columns[i].name, r))?;
            }
            let mut same = String::new();
            for (k, &g) in compared.iter().enumerate() {
                if k > 0 {
                    same.push_str(" AND ");
                }
                let v = row.get(g).cloned().unwrap_or(Value::Null);
                push_equals(&mut same, &ident(&table.columns[g].name), &self.green_type(table, g), &v, true)
                    .map_err(|r| value_err(&table.columns[g].name, r))?;
            }
            sql.push_str(&format!(" WHEN {found} THEN {n}"));
            conditions.push(format!("(({found}) AND NOT ({same}))"));
        }
        if conditions.is_empty() {
            return Ok(None);
        }
        sql.push_str(&format!(" END FROM {} WHERE {} LIMIT 1", qualified(&table.name), conditions.join(" OR ")));
        Ok(Some(sql))
    }
}

/// The error for the row at the position `row` names.
fn differs(w: &Written, row: &mysql_async::Row) -> SinkError {
    let n: Option<i64> = row.get(0);
    let values = n.and_then(|n| usize::try_from(n).ok()).and_then(|n| w.rows.get(n));
    let columns: Vec<String> = w.generated.iter().map(|&g| w.table.columns[g].name.clone()).collect();
    let key: Vec<String> = match values {
        Some(v) => w.table.key_indexes().map(|i| format!("{} = {}", w.table.columns[i].name, literal_text(&w.table, i, v))).collect(),
        None => Vec::new(),
    };
    let blue: Vec<String> = match values {
        Some(v) => w.generated.iter().map(|&g| format!("{} = {}", w.table.columns[g].name, literal_text(&w.table, g, v))).collect(),
        None => Vec::new(),
    };
    SinkError::Value {
        table: w.table.name.to_string(),
        column: columns.join(", "),
        reason: format!(
            "green generates another value than blue stored for the row with {} (blue: {}): the expression depends on the session that \
             wrote the row (time_zone, sql_mode, div_precision_increment …), which the binlog does not carry, so green would hold other \
             values on every such row. Make the expression independent of the session (e.g. DATE(CONVERT_TZ(ts, '+00:00', '+09:00')) \
             instead of DATE(ts)) on both sides, or make the column an ordinary one on green for the migration (ALTER TABLE … MODIFY \
             without AS), then start turnout again",
            if key.is_empty() { "no key".to_owned() } else { key.join(", ") },
            blue.join(", ")
        ),
    }
}

fn literal_text(table: &TableSchema, i: usize, row: &[Value]) -> String {
    let mut out = String::new();
    let v = row.get(i).cloned().unwrap_or(Value::Null);
    match push(&mut out, super::mysql_type(table, i), &v) {
        Ok(()) => out,
        Err(_) => format!("{v:?}"),
    }
}
