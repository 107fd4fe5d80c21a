//! SQL for row changes: green's column types, prepared statements cached per shape, and pipelined
//! execution in source order.

mod sql;

use super::qualified;
use super::text::to_text;
use crate::error::SinkError;
use crate::RowChange;
use futures_util::future::try_join_all;
use sql::{check_count, describe, identity_unchanged, sql_for};
use std::collections::HashMap;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement};
use turnout_decoders::schema::{quote_ident, ReplicaIdentity, TableName, TableSchema};
use turnout_decoders::value::Value;

/// Green's view of a table.
///
/// Values are sent as text and cast to each column's **cast type**: the column's type without its type
/// modifier, with a domain replaced by its base type (domains over domains too). Such a cast never
/// truncates or rounds — `'ab '::pg_catalog.bpchar` keeps all its characters, where `::character`
/// would mean `character(1)` and silently cut the value. The column's own modifier and domain
/// constraints are then applied by the assignment to the column, which raises an error (never
/// truncates) for a value that does not fit; key comparisons compare in the base type, so green's
/// indexes serve them. (An array of a domain keeps its own type: arrays of a domain and of its base
/// type have no common equality operator. Its elements go through the domain's input, which is the
/// same definition the schema copy gave green.)
#[derive(Debug, Clone)]
pub(super) struct TargetTable {
    name: TableName,
    qualified: String,
    /// How UPDATE, DELETE and TRUNCATE name the table: `ONLY` an ordinary table, so that an
    /// inheritance parent's statement never touches a child's rows (which blue sends as the child's).
    own_rows: String,
    /// Column name → cast type (schema-qualified, quoted where needed: `pg_catalog."bit"`).
    cast_types: HashMap<String, String>,
    /// Primary-key columns on green.
    primary_key: Vec<String>,
    /// A unique index other than the primary key exists (multi-row UPDATEs could trip it mid-statement).
    other_unique: bool,
    /// Triggers or rules that fire even for replicated rows (`ENABLE ALWAYS` or `ENABLE REPLICA`):
    /// keep source order exactly.
    fires_always: bool,
    /// The columns of every unique index (the primary key's too), or `None` when a unique constraint
    /// is not a plain column list enforced per statement (exclusion constraint, partial, expression
    /// or deferrable unique index).
    unique_keys: Option<Vec<Vec<String>>>,
    /// Columns `GENERATED ALWAYS AS IDENTITY` on green: an INSERT writes blue's value with
    /// `OVERRIDING SYSTEM VALUE`; an UPDATE may not set them at all (PostgreSQL allows only DEFAULT),
    /// so it leaves them out where blue's value is provably unchanged and refuses otherwise.
    identity_always: Vec<String>,
}

/// Every unique index of a table: its columns by name, and whether it is something else than a plain,
/// immediate column list. Exclusion constraints count as the latter.
const UNIQUE_KEYS: &str = "\
    SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), \
           i.indexprs IS NOT NULL OR i.indpred IS NOT NULL OR NOT i.indimmediate \
             OR EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype = 'x') \
    FROM pg_index i WHERE i.indrelid = to_regclass($1) AND (i.indisunique \
      OR EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype = 'x'))";

/// Each column's cast type (see [`TargetTable`]): the column's type followed through domains to its
/// base type, named by `pg_type.typname` — never by `format_type`, whose SQL-standard names
/// (`character`, `bit`) mean a length of 1 in a cast.
const CAST_TYPES: &str = "\
    WITH RECURSIVE chain(attnum, attname, typ, depth) AS ( \
        SELECT a.attnum, a.attname::text, a.atttypid, 0 FROM pg_attribute a \
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
      UNION ALL \
        SELECT c.attnum, c.attname, t.typbasetype, c.depth + 1 FROM chain c JOIN pg_type t ON t.oid = c.typ \
        WHERE t.typtype = 'd' AND c.depth < 64) \
    SELECT DISTINCT ON (c.attnum) c.attname, format('%I.%I', n.nspname, t.typname) \
    FROM chain c JOIN pg_type t ON t.oid = c.typ JOIN pg_namespace n ON n.oid = t.typnamespace \
    ORDER BY c.attnum, c.depth DESC";

impl TargetTable {
    pub(super) async fn load(client: &Client, name: &TableName) -> Result<TargetTable, SinkError> {
        let qualified = qualified(name);
        let rows = client.query(CAST_TYPES, &[&qualified]).await.map_err(SinkError::target(format!("reading the columns of {qualified}")))?;
        if rows.is_empty() {
            return Err(SinkError::Schema {
                table: name.to_string(),
                reason: "does not exist on green; create it (turnout run copies the schema when green lacks the tables)".into(),
            });
        }
        let cast_types = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect();
        let facts = client
            .query_one(
                "SELECT COALESCE((SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i JOIN pg_attribute a \
                   ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) WHERE i.indrelid = to_regclass($1) AND i.indisprimary), '{}'), \
                 EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass($1) AND i.indisunique AND NOT i.indisprimary) \
                   OR EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = to_regclass($1) AND c.contype = 'x'), \
                 EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = to_regclass($1) AND t.tgenabled IN ('A', 'R')) \
                   OR EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = to_regclass($1) AND r.ev_enabled IN ('A', 'R') AND r.rulename <> '_RETURN'), \
                 (SELECT relkind = 'r' FROM pg_class WHERE oid = to_regclass($1))",
                &[&qualified],
            )
            .await
            .map_err(SinkError::target(format!("reading the indexes and triggers of {qualified}")))?;
        let unique = client.query(UNIQUE_KEYS, &[&qualified]).await.map_err(SinkError::target(format!("reading the unique indexes of {qualified}")))?;
        let unique_keys = if unique.iter().any(|r| r.get::<_, bool>(1)) { None } else { Some(unique.iter().map(|r| r.get(0)).collect()) };
        let identity_always = client
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attidentity = 'a'",
                &[&qualified],
            )
            .await
            .map_err(SinkError::target(format!("reading the identity columns of {qualified}")))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let ordinary: Option<bool> = facts.get(3);
        Ok(TargetTable {
            name: name.clone(),
            own_rows: if ordinary == Some(true) { format!("ONLY {qualified}") } else { qualified.clone() },
            qualified,
            cast_types,
            primary_key: facts.get(0),
            other_unique: facts.get(1),
            fires_always: facts.get(2),
            unique_keys,
            identity_always,
        })
    }

    /// How this table's changes conflict with changes other sessions apply at the same time.
    pub(super) fn conflicts(&self) -> crate::Conflicts {
        match (&self.unique_keys, self.fires_always) {
            (_, true) => crate::Conflicts::Everything,
            (None, false) => crate::Conflicts::Table,
            (Some(keys), false) => crate::Conflicts::Keys(keys.clone()),
        }
    }

    /// True when `key` names exactly the primary key's columns.
    fn pk_is(&self, key: &[String]) -> bool {
        let mut k: Vec<&str> = key.iter().map(String::as_str).collect();
        k.sort_unstable();
        !k.is_empty() && k == self.primary_key.iter().map(String::as_str).collect::<Vec<_>>()
    }

    /// The type a text value for `column` is cast to: see [`TargetTable`].
    fn type_of(&self, column: &str) -> Result<&str, SinkError> {
        self.cast_types
            .get(column)
            .map(String::as_str)
            .ok_or_else(|| SinkError::Schema { table: self.name.to_string(), reason: format!("column \"{column}\" exists on blue but not on green") })
    }
}

/// The shape of a statement: everything its SQL depends on.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Shape {
    Insert {
        table: TableName,
        columns: Vec<String>,
    },
    /// The same rows sent through `COPY … FROM STDIN` (a large insert).
    Copy {
        table: TableName,
        columns: Vec<String>,
    },
    /// `set` columns are written; the row is found by `key` columns (`by_all` = REPLICA IDENTITY FULL).
    Update {
        table: TableName,
        set: Vec<String>,
        key: Vec<String>,
        by_all: bool,
    },
    Delete {
        table: TableName,
        key: Vec<String>,
        by_all: bool,
    },
    /// Several rows updated by primary key in one statement (key unchanged, keys distinct).
    UpdateMany {
        table: TableName,
        set: Vec<String>,
        key: Vec<String>,
    },
    /// Several rows deleted by primary key in one statement.
    DeleteMany {
        table: TableName,
        key: Vec<String>,
    },
}

/// Prepared statements by shape, with their SQL (which holds no values: they are parameters) for
/// error messages.
#[derive(Default)]
pub(super) struct Statements {
    cache: HashMap<Shape, (Statement, String)>,
}

/// One statement to run with its text parameters.
struct Call {
    shape: Shape,
    params: Vec<Param>,
    /// Rows a multi-row UPDATE/DELETE must touch, and the keys already in it.
    rows: usize,
    keys: HashMap<Vec<Option<String>>, usize>,
}

impl Call {
    fn new(shape: Shape, params: Vec<Param>) -> Call {
        Call { shape, params, rows: 1, keys: Default::default() }
    }

    fn arrays(shape: Shape, n: usize) -> Call {
        Call { shape, params: (0..n).map(|_| Param::Array(Vec::new())).collect(), rows: 0, keys: Default::default() }
    }

    /// Appends one row's values to an array call.
    fn push_row(&mut self, values: Vec<Option<String>>) {
        for (p, v) in self.params.iter_mut().zip(values) {
            if let Param::Array(a) = p {
                a.push(v);
            }
        }
        self.rows += 1;
    }

    /// Replaces the leading values of row `row` (the SET columns of a multi-row UPDATE).
    fn overwrite_row(&mut self, row: usize, values: Vec<Option<String>>) {
        for (p, v) in self.params.iter_mut().zip(values) {
            if let Param::Array(a) = p {
                if let Some(slot) = a.get_mut(row) {
                    *slot = v;
                }
            }
        }
    }
}

/// Reorders a batch so that each table's changes are consecutive, keeping every table's own order and
/// treating TRUNCATE as a barrier. Safe because green applies with `session_replication_role =
/// replica` (no foreign-key checks or ordinary triggers across tables) and constraints are per table;
/// when any table involved has `ENABLE ALWAYS` triggers or rules, the source order is kept as is.
fn group_by_table<'a>(changes: &[&'a RowChange], tables: &HashMap<TableName, TargetTable>) -> Vec<&'a RowChange> {
    let mut out = Vec::with_capacity(changes.len());
    let mut segment: Vec<&'a RowChange> = Vec::new();
    let flush = |segment: &mut Vec<&'a RowChange>, out: &mut Vec<&'a RowChange>| {
        let keep_order = segment.iter().any(|c| match c {
            RowChange::Insert { table, .. } | RowChange::Update { table, .. } | RowChange::Delete { table, .. } => {
                tables.get(&table.name).is_none_or(|t| t.fires_always)
            }
            RowChange::Truncate { .. } => true,
        });
        if keep_order {
            out.append(segment);
            return;
        }
        let mut order: Vec<&TableName> = Vec::new();
        let mut by_table: HashMap<&TableName, Vec<&'a RowChange>> = HashMap::new();
        for c in segment.drain(..) {
            let name = match c {
                RowChange::Insert { table, .. } | RowChange::Update { table, .. } | RowChange::Delete { table, .. } => &table.name,
                RowChange::Truncate { .. } => continue,
            };
            by_table.entry(name).or_insert_with(|| {
                order.push(name);
                Vec::new()
            });
            if let Some(v) = by_table.get_mut(name) {
                v.push(c);
            }
        }
        for name in order {
            if let Some(v) = by_table.remove(name) {
                out.extend(v);
            }
        }
    };
    for c in changes {
        if matches!(c, RowChange::Truncate { .. }) {
            flush(&mut segment, &mut out);
            out.push(c);
        } else {
            segment.push(c);
        }
    }
    flush(&mut segment, &mut out);
    out
}

enum Param {
    Text(Option<String>),
    Array(Vec<Option<String>>),
}

impl Param {
    fn text(&self) -> Option<String> {
        match self {
            Param::Text(t) => t.clone(),
            Param::Array(_) => None,
        }
    }

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
            return Err(SinkError::Schema { table: table.name.to_string(), reason: "REPLICA IDENTITY FULL but the old row was not sent".into() });
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
                return Err(SinkError::Value {
                    table: table.name.to_string(),
                    column: name.clone(),
                    reason: "a key column arrived as an unchanged TOAST value".into(),
                });
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
        let (calls, truncates) = plan(changes, tables)?;
        self.prepare(client, &calls, tables).await?;
        self.run(client, &calls, truncates).await
    }

    /// Prepares every new shape first (pipelined, cached across batches), the COPY statements too:
    /// a COPY prepared on the spot would cost a round trip of its own in every batch.
    async fn prepare(&mut self, client: &Client, calls: &[Call], tables: &HashMap<TableName, TargetTable>) -> Result<(), SinkError> {
        let mut new_shapes: Vec<(&Shape, String, Vec<Type>)> = Vec::new();
        for call in calls {
            if !self.cache.contains_key(&call.shape) && !new_shapes.iter().any(|(s, ..)| *s == &call.shape) {
                let (sql, types) = sql_for(&call.shape, tables)?;
                new_shapes.push((&call.shape, sql, types));
            }
        }
        let prepared = try_join_all(new_shapes.iter().map(|(shape, sql, types)| async move {
            client.prepare_typed(sql, types).await.map_err(SinkError::target(format!("{}: preparing `{sql}`", describe(shape))))
        }))
        .await?;
        for ((shape, sql, _), stmt) in new_shapes.into_iter().zip(prepared) {
            self.cache.insert(shape.clone(), (stmt, sql));
        }
        Ok(())
    }

    /// Runs `calls` in order, pipelined: every statement and COPY up to a TRUNCATE is sent without
    /// waiting for the one before it (green runs them in the order sent; after an error it rejects
    /// the rest of the transaction, and the first error in order is the one reported). A COPY's rows
    /// follow as soon as green is ready for them.
    async fn run(&self, client: &Client, calls: &[Call], truncates: Truncates) -> Result<(), SinkError> {
        let cache = &self.cache;
        let mut start = 0;
        let mut cut_points: Vec<(usize, Option<String>)> = truncates.into_iter().map(|(i, sql)| (i, Some(sql))).collect();
        cut_points.push((calls.len(), None));
        for (end, truncate) in cut_points {
            let futures = calls[start..end].iter().map(|call| async move {
                let prepared = &cache[&call.shape];
                if matches!(call.shape, Shape::Copy { .. }) {
                    return copy_in(client, prepared, call).await;
                }
                let (stmt, sql) = prepared;
                let params: Vec<&(dyn ToSql + Sync)> = call.params.iter().map(Param::as_sql).collect();
                let n = client.execute(stmt, &params).await.map_err(SinkError::target(format!("{} (`{sql}`, {} row(s))", describe(&call.shape), call.rows)))?;
                check_count(&call.shape, n, call.rows as u64)
            });
            try_join_all(futures).await?;
            start = end;
            if let Some(sql) = truncate {
                client.batch_execute(&sql).await.map_err(SinkError::target(format!("`{sql}`")))?;
            }
        }
        Ok(())
    }
}

/// TRUNCATE statements, each with the index of the call it runs before.
type Truncates = Vec<(usize, String)>;

/// The calls `changes` make, in order, and the TRUNCATEs between them.
fn plan(changes: &[&RowChange], tables: &HashMap<TableName, TargetTable>) -> Result<(Vec<Call>, Truncates), SinkError> {
    let mut calls: Vec<Call> = Vec::new();
    let mut truncates: Vec<(usize, String)> = Vec::new();
    let ordered = group_by_table(changes, tables);
    for change in ordered {
        match change {
            RowChange::Insert { table, after } => {
                let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
                let shape = Shape::Insert { table: table.name.clone(), columns };
                if !matches!(calls.last(), Some(c) if c.shape == shape) {
                    calls.push(Call::arrays(shape, table.columns.len()));
                }
                let values = table.columns.iter().zip(after).map(|(c, v)| value_text(table, &c.name, v)).collect::<Result<Vec<_>, _>>()?;
                if let Some(call) = calls.last_mut() {
                    call.push_row(values);
                }
            }
            RowChange::Update { table, key, before, after } => plan_update(&mut calls, tables, table, key, before.as_ref(), after)?,
            RowChange::Delete { table, key, before } => {
                let (key_cols, by_all, params) = locator(table, key, before.as_ref())?;
                if !by_all && tables.get(&table.name).is_some_and(|t| t.pk_is(&key_cols)) {
                    let key_values: Vec<Option<String>> = params.iter().map(Param::text).collect();
                    let shape = Shape::DeleteMany { table: table.name.clone(), key: key_cols };
                    let joinable = matches!(calls.last(), Some(c) if c.shape == shape && !c.keys.contains_key(&key_values));
                    if !joinable {
                        calls.push(Call::arrays(shape, key_values.len()));
                    }
                    if let Some(call) = calls.last_mut() {
                        call.keys.insert(key_values.clone(), call.rows);
                        call.push_row(key_values);
                    }
                } else {
                    calls.push(Call::new(Shape::Delete { table: table.name.clone(), key: key_cols, by_all }, params));
                }
            }
            RowChange::Truncate { tables: ts, cascade, restart_identity } => {
                let names: Vec<String> = ts.iter().map(|t| tables.get(&t.name).map_or_else(|| qualified(&t.name), |g| g.own_rows.clone())).collect();
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
    // Large inserts go through COPY (faster than unnest for thousands of rows); rules do not fire
    // for COPY, so tables with ENABLE ALWAYS rules or triggers keep INSERT.
    for call in &mut calls {
        if let Shape::Insert { table, columns } = &call.shape {
            if call.rows >= COPY_MIN_ROWS && tables.get(table).is_some_and(|t| !t.fires_always) {
                call.shape = Shape::Copy { table: table.clone(), columns: columns.clone() };
            }
        }
    }
    Ok((calls, truncates))
}

/// An UPDATE: joined to the call before it when it updates the same columns of other rows by their
/// primary key, a statement of its own otherwise; nothing when every column is unchanged.
fn plan_update(
    calls: &mut Vec<Call>,
    tables: &HashMap<TableName, TargetTable>,
    table: &TableSchema,
    key: &[Value],
    before: Option<&Vec<Value>>,
    after: &[Value],
) -> Result<(), SinkError> {
    let always = tables.get(&table.name).map(|t| t.identity_always.as_slice()).unwrap_or_default();
    let mut set = Vec::new();
    let mut values = Vec::new();
    let mut pinned = Vec::new();
    for (i, (c, v)) in table.columns.iter().zip(after).enumerate() {
        if v.is_unchanged() {
            continue;
        }
        if always.contains(&c.name) {
            pinned.push(i);
            continue;
        }
        set.push(c.name.clone());
        values.push(value_text(table, &c.name, v)?);
    }
    let (key_cols, by_all, key_params) = locator(table, key, before)?;
    let key_values: Vec<Option<String>> = key_params.iter().map(Param::text).collect();
    for &i in &pinned {
        identity_unchanged(table, i, key, before, after)?;
    }
    if set.is_empty() {
        // Every column is an unchanged TOAST value (or an unchanged identity): nothing to write.
        return Ok(());
    }
    let key_kept = table
        .key_indexes()
        .zip(&key_values)
        .all(|(i, k)| after[i].is_unchanged() || value_text(table, &table.columns[i].name, &after[i]).ok().as_ref() == Some(k));
    let multi = !by_all && key_kept && tables.get(&table.name).is_some_and(|t| t.pk_is(&key_cols) && !t.other_unique);
    if multi {
        let shape = Shape::UpdateMany { table: table.name.clone(), set: set.clone(), key: key_cols };
        if !matches!(calls.last(), Some(c) if c.shape == shape) {
            calls.push(Call::arrays(shape, set.len() + key_values.len()));
        }
        if let Some(call) = calls.last_mut() {
            // The same row updated again with the same columns: the later values win.
            // Safe inside one statement of one table's run: no other change of this
            // row lies between, and the table has no other unique index.
            match call.keys.get(&key_values).copied() {
                Some(row) => call.overwrite_row(row, values),
                None => {
                    call.keys.insert(key_values.clone(), call.rows);
                    values.extend(key_values);
                    call.push_row(values);
                }
            }
        }
    } else {
        let mut params: Vec<Param> = values.into_iter().map(Param::Text).collect();
        params.extend(key_params);
        calls.push(Call::new(Shape::Update { table: table.name.clone(), set, key: key_cols, by_all }, params));
    }
    Ok(())
}

/// Insert calls with at least this many rows are sent with `COPY … FROM STDIN`.
const COPY_MIN_ROWS: usize = 1_000;

/// Runs an insert call through its prepared `COPY table (columns) FROM STDIN`, in text format.
async fn copy_in(client: &Client, (statement, sql): &(Statement, String), call: &Call) -> Result<(), SinkError> {
    use bytes::{BufMut, BytesMut};
    use futures_util::SinkExt;
    let arrays: Vec<&Vec<Option<String>>> = call
        .params
        .iter()
        .filter_map(|p| match p {
            Param::Array(a) => Some(a),
            Param::Text(_) => None,
        })
        .collect();
    tracing::debug!(shape = %describe(&call.shape), rows = call.rows, "inserting with COPY");
    let context = format!("{} (`{sql}`, {} row(s))", describe(&call.shape), call.rows);
    let sink = client.copy_in::<_, bytes::Bytes>(statement).await.map_err(SinkError::target(context.clone()))?;
    futures_util::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(256 * 1024);
    for row in 0..call.rows {
        for (i, column) in arrays.iter().enumerate() {
            if i > 0 {
                buf.put_u8(b'\t');
            }
            match column.get(row).and_then(Option::as_deref) {
                None => buf.put_slice(b"\\N"),
                Some(v) => super::text::copy_escape(&mut buf, v),
            }
        }
        buf.put_u8(b'\n');
        if buf.len() >= 256 * 1024 {
            sink.send(buf.split().freeze()).await.map_err(SinkError::target(context.clone()))?;
        }
    }
    if !buf.is_empty() {
        sink.send(buf.freeze()).await.map_err(SinkError::target(context.clone()))?;
    }
    let n = sink.finish().await.map_err(SinkError::target(context))?;
    check_count(&call.shape, n, call.rows as u64)
}
