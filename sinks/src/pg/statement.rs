//! SQL for row changes: green's column types, prepared statements cached per shape, and pipelined
//! execution in source order.

use super::qualified;
use super::text::to_text;
use crate::error::SinkError;
use crate::RowChange;
use futures_util::future::try_join_all;
use std::collections::HashMap;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement};
use turnout_decoders::schema::{quote_ident, ReplicaIdentity, TableName, TableSchema};
use turnout_decoders::value::Value;

/// Green's view of a table: column name → type (as a cast target, without modifiers).
#[derive(Debug, Clone)]
pub(super) struct TargetTable {
    qualified: String,
    types: HashMap<String, String>,
}

impl TargetTable {
    pub(super) async fn load(client: &Client, name: &TableName) -> Result<TargetTable, SinkError> {
        let qualified = qualified(name);
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&qualified],
            )
            .await
            .map_err(SinkError::target(format!("reading the columns of {qualified}")))?;
        if rows.is_empty() {
            return Err(SinkError::Schema {
                table: name.to_string(),
                reason: "does not exist on green; create it (turnout run copies the schema when green lacks the tables)".into(),
            });
        }
        let types = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect();
        Ok(TargetTable { qualified, types })
    }

    fn type_of(&self, table: &TableSchema, column: &str) -> Result<&str, SinkError> {
        self.types.get(column).map(String::as_str).ok_or_else(|| SinkError::Schema {
            table: table.name.to_string(),
            reason: format!("column \"{column}\" exists on blue but not on green"),
        })
    }
}

/// The shape of a statement: everything its SQL depends on.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Shape {
    Insert { table: TableName, columns: Vec<String> },
    /// `set` columns are written; the row is found by `key` columns (`by_all` = REPLICA IDENTITY FULL).
    Update { table: TableName, set: Vec<String>, key: Vec<String>, by_all: bool },
    Delete { table: TableName, key: Vec<String>, by_all: bool },
}

/// Prepared statements by shape.
#[derive(Default)]
pub(super) struct Statements {
    cache: HashMap<Shape, Statement>,
}

/// One statement to run with its text parameters.
struct Call {
    shape: Shape,
    params: Vec<Param>,
}

enum Param {
    Text(Option<String>),
    Array(Vec<Option<String>>),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(t) => t,
            Param::Array(a) => a,
        }
    }
}

fn value_text(table: &TableSchema, column: &str, v: &Value) -> Result<Option<String>, SinkError> {
    to_text(v).map_err(|reason| SinkError::Value { table: table.name.to_string(), column: column.to_owned(), reason })
}

/// Key columns and their values to find a row: the identity columns, or under REPLICA IDENTITY FULL
/// every column whose old value was sent.
fn locator(table: &TableSchema, key: &[Value], before: Option<&Vec<Value>>) -> Result<(Vec<String>, bool, Vec<Param>), SinkError> {
    let by_all = table.replica_identity == ReplicaIdentity::Full;
    let mut cols = Vec::new();
    let mut params = Vec::new();
    if by_all {
        let old = before.map(|b| b.as_slice()).unwrap_or(key);
        if old.len() != table.columns.len() {
            return Err(SinkError::Schema {
                table: table.name.to_string(),
                reason: "REPLICA IDENTITY FULL but the old row was not sent".into(),
            });
        }
        for (c, v) in table.columns.iter().zip(old) {
            if !v.is_unchanged() {
                cols.push(c.name.clone());
                params.push(Param::Text(value_text(table, &c.name, v)?));
            }
        }
    } else {
        for (i, v) in table.key_indexes().zip(key) {
            let name = &table.columns[i].name;
            if v.is_unchanged() {
                return Err(SinkError::Value { table: table.name.to_string(), column: name.clone(), reason: "a key column arrived as an unchanged TOAST value".into() });
            }
            cols.push(name.clone());
            params.push(Param::Text(value_text(table, name, v)?));
        }
        if cols.is_empty() {
            return Err(SinkError::Schema {
                table: table.name.to_string(),
                reason: format!(
                    "has no replica identity on blue, so UPDATE and DELETE cannot be applied; run ALTER TABLE {} REPLICA IDENTITY FULL on blue (or add a primary key)",
                    qualified(&table.name)
                ),
            });
        }
    }
    Ok((cols, by_all, params))
}

impl Statements {
    /// Turns changes into calls (consecutive inserts into one table with the same columns become one
    /// call) and runs them pipelined, in order, on `client` inside the caller's transaction.
    pub(super) async fn execute(&mut self, client: &Client, tables: &HashMap<TableName, TargetTable>, changes: &[&RowChange]) -> Result<(), SinkError> {
        let mut calls: Vec<Call> = Vec::new();
        let mut truncates: Vec<(usize, String)> = Vec::new();
        for change in changes {
            match change {
                RowChange::Insert { table, after } => {
                    let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
                    let shape = Shape::Insert { table: table.name.clone(), columns };
                    if !matches!(calls.last(), Some(c) if c.shape == shape) {
                        let n = table.columns.len();
                        calls.push(Call { shape, params: (0..n).map(|_| Param::Array(Vec::new())).collect() });
                    }
                    let call = calls.last_mut().ok_or_else(|| SinkError::Progress("insert batch vanished".into()))?;
                    for ((c, v), p) in table.columns.iter().zip(after).zip(call.params.iter_mut()) {
                        if let Param::Array(a) = p {
                            a.push(value_text(table, &c.name, v)?);
                        }
                    }
                }
                RowChange::Update { table, key, before, after } => {
                    let mut set = Vec::new();
                    let mut params = Vec::new();
                    for (c, v) in table.columns.iter().zip(after) {
                        if !v.is_unchanged() {
                            set.push(c.name.clone());
                            params.push(Param::Text(value_text(table, &c.name, v)?));
                        }
                    }
                    if set.is_empty() {
                        // Every column is an unchanged TOAST value: nothing to write.
                        continue;
                    }
                    let (key_cols, by_all, key_params) = locator(table, key, before.as_ref())?;
                    params.extend(key_params);
                    calls.push(Call { shape: Shape::Update { table: table.name.clone(), set, key: key_cols, by_all }, params });
                }
                RowChange::Delete { table, key, before } => {
                    let (key_cols, by_all, params) = locator(table, key, before.as_ref())?;
                    calls.push(Call { shape: Shape::Delete { table: table.name.clone(), key: key_cols, by_all }, params });
                }
                RowChange::Truncate { tables: ts, cascade, restart_identity } => {
                    let names: Vec<String> = ts.iter().map(|t| qualified(&t.name)).collect();
                    let sql = format!(
                        "TRUNCATE {}{}{}",
                        names.join(", "),
                        if *restart_identity { " RESTART IDENTITY" } else { "" },
                        if *cascade { " CASCADE" } else { "" }
                    );
                    truncates.push((calls.len(), sql));
                }
            }
        }
        // Prepare every new shape first (one round trip each, cached across batches).
        for call in &calls {
            if !self.cache.contains_key(&call.shape) {
                let (sql, types) = sql_for(&call.shape, tables)?;
                let stmt = client
                    .prepare_typed(&sql, &types)
                    .await
                    .map_err(SinkError::target(format!("preparing `{sql}`")))?;
                self.cache.insert(call.shape.clone(), stmt);
            }
        }
        // Run in order; TRUNCATE splits the pipeline because it is not a prepared statement.
        let mut start = 0;
        let mut cut_points: Vec<(usize, Option<String>)> = truncates.into_iter().map(|(i, s)| (i, Some(s))).collect();
        cut_points.push((calls.len(), None));
        for (end, truncate) in cut_points {
            let futures = calls[start..end].iter().map(|call| {
                let stmt = &self.cache[&call.shape];
                let params: Vec<&(dyn ToSql + Sync)> = call.params.iter().map(Param::as_sql).collect();
                async move {
                    let n = client.execute(stmt, &params).await.map_err(SinkError::target(describe(&call.shape)))?;
                    check_count(&call.shape, n)
                }
            });
            try_join_all(futures).await?;
            if let Some(sql) = truncate {
                client.batch_execute(&sql).await.map_err(SinkError::target(sql.clone()))?;
            }
            start = end;
        }
        Ok(())
    }
}

fn describe(shape: &Shape) -> String {
    match shape {
        Shape::Insert { table, .. } => format!("inserting into {table}"),
        Shape::Update { table, .. } => format!("updating {table}"),
        Shape::Delete { table, .. } => format!("deleting from {table}"),
    }
}

/// An UPDATE or DELETE must touch exactly one row: zero means green diverged from blue.
fn check_count(shape: &Shape, n: u64) -> Result<(), SinkError> {
    match shape {
        Shape::Update { table, .. } | Shape::Delete { table, .. } if n != 1 => Err(SinkError::Progress(format!(
            "{} matched {n} rows on green, expected exactly 1: green has diverged from blue (run turnout verify --table {table})",
            describe(shape)
        ))),
        _ => Ok(()),
    }
}

fn sql_for(shape: &Shape, tables: &HashMap<TableName, TargetTable>) -> Result<(String, Vec<Type>), SinkError> {
    let table_of = |name: &TableName| {
        tables.get(name).ok_or_else(|| SinkError::Schema { table: name.to_string(), reason: "not loaded".into() })
    };
    let schema_stub = |name: &TableName| TableSchema {
        relation_id: 0,
        name: name.clone(),
        replica_identity: ReplicaIdentity::Default,
        columns: Vec::new(),
    };
    Ok(match shape {
        Shape::Insert { table, columns } => {
            let t = table_of(table)?;
            let stub = schema_stub(table);
            let mut casts = Vec::new();
            for (i, c) in columns.iter().enumerate() {
                casts.push(format!("u.c{i}::{}", t.type_of(&stub, c)?));
            }
            let unnest: Vec<String> = (1..=columns.len()).map(|i| format!("${i}::text[]")).collect();
            let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
            let sql = format!(
                "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS u({})",
                t.qualified,
                columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", "),
                casts.join(", "),
                unnest.join(", "),
                aliases.join(", ")
            );
            (sql, vec![Type::TEXT_ARRAY; columns.len()])
        }
        Shape::Update { table, set, key, by_all } => {
            let t = table_of(table)?;
            let stub = schema_stub(table);
            let mut n = 0;
            let mut assignments = Vec::new();
            for c in set {
                n += 1;
                assignments.push(format!("{} = ${n}::{}", quote_ident(c), t.type_of(&stub, c)?));
            }
            let (predicate, used) = predicate(t, &stub, key, *by_all, n)?;
            let sql = format!("UPDATE {} SET {} WHERE {}", t.qualified, assignments.join(", "), row_filter(t, &predicate, *by_all));
            (sql, vec![Type::TEXT; used])
        }
        Shape::Delete { table, key, by_all } => {
            let t = table_of(table)?;
            let stub = schema_stub(table);
            let (predicate, used) = predicate(t, &stub, key, *by_all, 0)?;
            (format!("DELETE FROM {} WHERE {}", t.qualified, row_filter(t, &predicate, *by_all)), vec![Type::TEXT; used])
        }
    })
}

/// `k1 = $n::type AND …`, or for REPLICA IDENTITY FULL a comparison of every column's text form
/// (types such as json have no equality operator). Returns the predicate and the last parameter number.
fn predicate(t: &TargetTable, stub: &TableSchema, key: &[String], by_all: bool, first: usize) -> Result<(String, usize), SinkError> {
    let mut n = first;
    let mut parts = Vec::new();
    for c in key {
        n += 1;
        if by_all {
            parts.push(format!("{}::text IS NOT DISTINCT FROM ${n}::{}::text", quote_ident(c), t.type_of(stub, c)?));
        } else {
            parts.push(format!("{} = ${n}::{}", quote_ident(c), t.type_of(stub, c)?));
        }
    }
    if parts.is_empty() {
        parts.push("true".into());
    }
    Ok((parts.join(" AND "), n))
}

/// Under REPLICA IDENTITY FULL several identical rows may match: change exactly one of them.
fn row_filter(t: &TargetTable, predicate: &str, by_all: bool) -> String {
    if by_all {
        format!("(tableoid, ctid) = (SELECT tableoid, ctid FROM {} WHERE {predicate} LIMIT 1)", t.qualified)
    } else {
        predicate.to_string()
    }
}

