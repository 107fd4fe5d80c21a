//! The SQL of each statement shape, and the checks on what a statement touched.

use super::*;

pub(super) fn describe(shape: &Shape) -> String {
    match shape {
        Shape::Insert { table, .. } | Shape::Copy { table, .. } => {
            format!("inserting into {table}")
        }
        Shape::Update { table, .. } | Shape::UpdateMany { table, .. } => {
            format!("updating {table}")
        }
        Shape::Delete { table, .. } | Shape::DeleteMany { table, .. } => {
            format!("deleting from {table}")
        }
    }
}

/// Every UPDATE or DELETE must touch exactly the rows it names (and every INSERT insert them all):
/// anything else means green diverged from blue.
pub(super) fn check_count(shape: &Shape, n: u64, expected: u64) -> Result<(), SinkError> {
    let table = match shape {
        Shape::Insert { table, .. }
        | Shape::Copy { table, .. }
        | Shape::Update { table, .. }
        | Shape::Delete { table, .. }
        | Shape::UpdateMany { table, .. }
        | Shape::DeleteMany { table, .. } => table,
    };
    if n != expected {
        return Err(SinkError::Progress(format!(
            "{} touched {n} rows on green, expected {expected}: green has diverged from blue (run turnout verify --table {table})",
            describe(shape)
        )));
    }
    Ok(())
}

pub(super) fn sql_for(shape: &Shape, tables: &HashMap<TableName, TargetTable>) -> Result<(String, Vec<Type>), SinkError> {
    let table_of = |name: &TableName| tables.get(name).ok_or_else(|| SinkError::Schema { table: name.to_string(), reason: "not loaded".into() });
    Ok(match shape {
        Shape::Insert { table, columns } => {
            let t = table_of(table)?;
            let mut casts = Vec::new();
            for (i, c) in columns.iter().enumerate() {
                casts.push(format!("u.c{i}::{}", t.type_of(c)?));
            }
            let unnest: Vec<String> = (1..=columns.len()).map(|i| format!("${i}::text[]")).collect();
            let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
            let sql = format!(
                "INSERT INTO {} ({}){} SELECT {} FROM unnest({}) AS u({})",
                t.qualified,
                columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", "),
                if t.identity_always.is_empty() { "" } else { " OVERRIDING SYSTEM VALUE" },
                casts.join(", "),
                unnest.join(", "),
                aliases.join(", ")
            );
            (sql, vec![Type::TEXT_ARRAY; columns.len()])
        }
        Shape::Copy { table, columns } => {
            let columns = columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
            (format!("COPY {} ({columns}) FROM STDIN", table_of(table)?.qualified), Vec::new())
        }
        Shape::Update { table, set, key, by_all } => {
            let t = table_of(table)?;
            let mut n = 0;
            let mut assignments = Vec::new();
            for c in set {
                n += 1;
                assignments.push(format!("{} = ${n}::{}", quote_ident(c), t.type_of(c)?));
            }
            let (predicate, used) = predicate(t, key, *by_all, n)?;
            let sql = format!("UPDATE {} SET {} WHERE {}", t.own_rows, assignments.join(", "), row_filter(t, &predicate, *by_all));
            (sql, vec![Type::TEXT; used])
        }
        Shape::Delete { table, key, by_all } => {
            let t = table_of(table)?;
            let (predicate, used) = predicate(t, key, *by_all, 0)?;
            (format!("DELETE FROM {} WHERE {}", t.own_rows, row_filter(t, &predicate, *by_all)), vec![Type::TEXT; used])
        }
        Shape::UpdateMany { table, set, key } => {
            let t = table_of(table)?;
            let mut assignments = Vec::new();
            for (i, c) in set.iter().enumerate() {
                assignments.push(format!("{} = v.s{i}::{}", quote_ident(c), t.type_of(c)?));
            }
            let mut conds = Vec::new();
            for (i, c) in key.iter().enumerate() {
                conds.push(format!("target_.{} = v.k{i}::{}", quote_ident(c), t.type_of(c)?));
            }
            let n = set.len() + key.len();
            let arrays: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
            let aliases: Vec<String> = (0..set.len()).map(|i| format!("s{i}")).chain((0..key.len()).map(|i| format!("k{i}"))).collect();
            let sql = format!(
                "UPDATE {} AS target_ SET {} FROM unnest({}) AS v({}) WHERE {}",
                t.own_rows,
                assignments.join(", "),
                arrays.join(", "),
                aliases.join(", "),
                conds.join(" AND ")
            );
            (sql, vec![Type::TEXT_ARRAY; n])
        }
        Shape::DeleteMany { table, key } => {
            let t = table_of(table)?;
            let mut conds = Vec::new();
            for (i, c) in key.iter().enumerate() {
                conds.push(format!("target_.{} = v.k{i}::{}", quote_ident(c), t.type_of(c)?));
            }
            let arrays: Vec<String> = (1..=key.len()).map(|i| format!("${i}::text[]")).collect();
            let aliases: Vec<String> = (0..key.len()).map(|i| format!("k{i}")).collect();
            let sql =
                format!("DELETE FROM {} AS target_ USING unnest({}) AS v({}) WHERE {}", t.own_rows, arrays.join(", "), aliases.join(", "), conds.join(" AND "));
            (sql, vec![Type::TEXT_ARRAY; key.len()])
        }
    })
}

/// Refuses an UPDATE that would have to set identity column `i` (`GENERATED ALWAYS` on green) unless
/// blue's new value is provably the old one: the column is in the key blue sent (`key` is the old
/// key, or the unchanged one) or in the old row of REPLICA IDENTITY FULL.
pub(super) fn identity_unchanged(table: &TableSchema, i: usize, key: &[Value], before: Option<&Vec<Value>>, after: &[Value]) -> Result<(), SinkError> {
    let name = &table.columns[i].name;
    let old = match table.key_indexes().position(|k| k == i) {
        Some(k) if table.replica_identity != ReplicaIdentity::Full => key.get(k),
        _ => before.and_then(|b| b.get(i)),
    };
    let new = after.get(i);
    let same = match (old, new) {
        (Some(o), Some(n)) => value_text(table, name, o)? == value_text(table, name, n)?,
        _ => false,
    };
    if same {
        return Ok(());
    }
    Err(SinkError::Schema {
        table: table.name.to_string(),
        reason: format!(
            "column \"{name}\" is GENERATED ALWAYS AS IDENTITY on green, and blue's update {} it; PostgreSQL lets an UPDATE set such a \
             column only to DEFAULT. Run ALTER TABLE {} ALTER COLUMN {} SET GENERATED BY DEFAULT on green (and SET GENERATED ALWAYS \
             after the cutover){}",
            if old.is_some() { "changed" } else { "may have changed (blue sent no old value)" },
            qualified(&table.name),
            quote_ident(name),
            if old.is_some() { "" } else { ", or ALTER TABLE … REPLICA IDENTITY FULL on blue so turnout can see the old value" }
        ),
    })
}

/// `k1 = $n::type AND …`, or for REPLICA IDENTITY FULL a comparison of every column's text form
/// (types such as json have no equality operator). Returns the predicate and the last parameter number.
pub(super) fn predicate(t: &TargetTable, key: &[String], by_all: bool, first: usize) -> Result<(String, usize), SinkError> {
    let mut n = first;
    let mut parts = Vec::new();
    for c in key {
        n += 1;
        if by_all {
            parts.push(format!("{}::text IS NOT DISTINCT FROM ${n}::{}::text", quote_ident(c), t.type_of(c)?));
        } else {
            parts.push(format!("{} = ${n}::{}", quote_ident(c), t.type_of(c)?));
        }
    }
    if parts.is_empty() {
        parts.push("true".into());
    }
    Ok((parts.join(" AND "), n))
}

/// Under REPLICA IDENTITY FULL several identical rows may match: change exactly one of them.
pub(super) fn row_filter(t: &TargetTable, predicate: &str, by_all: bool) -> String {
    if by_all {
        format!("(tableoid, ctid) = (SELECT tableoid, ctid FROM {} WHERE {predicate} LIMIT 1)", t.own_rows)
    } else {
        predicate.to_string()
    }
}
