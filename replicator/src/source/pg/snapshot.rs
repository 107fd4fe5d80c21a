//! The initial snapshot: every replicated table copied from blue's exported snapshot into green with
//! `COPY … TO STDOUT` streamed straight into `COPY … FROM STDIN` (no rows materialised), several tables
//! at once, and large tables split into `ctid` page ranges copied in parallel. Consistency: every worker
//! imports the slot's exported snapshot, so the copy shows exactly the transactions before the slot's
//! consistent point and streaming continues from there. The ranges of a table cover every page exactly
//! once (the last one is open-ended), so no row is copied twice or missed.

use crate::error::{CopyRefusal, Error};
use crate::state::StateStore;
use crate::status::Status;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use std::sync::Arc;
use turnout_decoders::schema::{quote_ident, TableName};
use turnout_decoders::Side;
use turnout_sinks::pg::connect as green_connect;

/// One table to copy: its name and the columns to copy (generated columns excluded).
#[derive(Clone, Debug)]
pub struct CopyTable {
    pub name: TableName,
    pub columns: Vec<String>,
    /// `[first page, end page)` of a `ctid` range (`None` = to the end), or the whole table.
    pub pages: Option<(u64, Option<u64>)>,
}

/// The copy jobs: one per table, or for an ordinary table larger than `split_pages` pages one per
/// range of about `split_pages` pages. Columns exclude dropped and generated ones.
pub async fn copy_plan(blue: &tokio_postgres::Client, tables: &[TableName], split_pages: u64) -> Result<Vec<CopyTable>, Error> {
    let mut out = Vec::new();
    for t in tables {
        let size = blue
            .query_one(
                "SELECT CASE WHEN c.relkind = 'r' THEN pg_relation_size(c.oid) / current_setting('block_size')::int8 ELSE 0 END                  FROM pg_class c WHERE c.oid = to_regclass($1)",
                &[&t.quoted()],
            )
            .await
            .map_err(Error::blue(format!("reading the size of {t}")))?;
        let pages = u64::try_from(size.get::<_, i64>(0)).unwrap_or(0);
        let columns = stored_columns(blue, t, Side::Blue).await?;
        if split_pages == 0 || pages <= split_pages {
            out.push(CopyTable { name: t.clone(), columns, pages: None });
            continue;
        }
        tracing::info!(table = %t, pages, ranges = pages.div_ceil(split_pages), "copying in page ranges");
        let mut first = 0;
        while first < pages {
            let end = first + split_pages;
            let range = if end >= pages { (first, None) } else { (first, Some(end)) };
            out.push(CopyTable { name: t.clone(), columns: columns.clone(), pages: Some(range) });
            first = end;
        }
    }
    Ok(out)
}

/// Opens an ordinary session to blue (TLS as the URL's `sslmode` says).
pub async fn blue_connect(url: &str) -> Result<tokio_postgres::Client, Error> {
    super::session(url, Side::Blue).await
}

/// Copies `tables` using `snapshot`, `workers` at a time, recording each finished table in `state`.
pub async fn copy_all(
    source_url: &str,
    target_url: &str,
    snapshot: &str,
    tables: Vec<CopyTable>,
    workers: usize,
    state: &StateStore,
    status: &Arc<Status>,
) -> Result<u64, Error> {
    let _bars = crate::source::progress::ProgressBars::start(status);
    let mut remaining: std::collections::HashMap<String, (usize, u64)> = std::collections::HashMap::new();
    for t in &tables {
        remaining.entry(t.name.to_string()).or_default().0 += 1;
    }
    let copies = futures_util::stream::iter(tables.into_iter().map(|t| {
        let status = Arc::clone(status);
        async move {
            let rows = copy_one(source_url, target_url, snapshot, &t, &status).await?;
            Ok::<_, Error>((t, rows))
        }
    }))
    .buffer_unordered(workers.max(1));
    futures_util::pin_mut!(copies);
    let mut total = 0;
    while let Some(result) = copies.next().await {
        let (t, rows) = result?;
        total += rows;
        let name = t.name.to_string();
        if let Some(entry) = remaining.get_mut(&name) {
            entry.0 -= 1;
            entry.1 += rows;
            if entry.0 == 0 {
                state.mark_table_copied(&name, entry.1)?;
                status.table_done(&name);
            }
        }
    }
    Ok(total)
}

async fn copy_one(source_url: &str, target_url: &str, snapshot: &str, t: &CopyTable, status: &Status) -> Result<u64, Error> {
    let filter = match t.pages {
        None => None,
        Some((first, None)) => Some(format!("ctid >= '({first},0)'::tid")),
        Some((first, Some(end))) => Some(format!("ctid >= '({first},0)'::tid AND ctid < '({end},0)'::tid")),
    };
    let into = Destination { url: target_url, replace: false };
    copy_rows(source_url, snapshot, &t.name, Some(&t.columns), filter.as_deref(), into, status).await.map(|(rows, _)| rows)
}

/// Where [`copy_rows`] writes: green's URL, and whether green's rows matching the filter are deleted
/// first, in the same green transaction as the copy (a chunk copied again after a crash).
#[derive(Clone, Copy, Debug)]
pub struct Destination<'a> {
    pub url: &'a str,
    pub replace: bool,
}

/// Copies the rows of `table` matching `filter` (all without) as `snapshot` shows them into green,
/// `COPY … TO STDOUT` streamed into `COPY … FROM STDIN`; `columns` (default: every stored column,
/// read inside the snapshot). Returns rows and bytes copied. With `into.replace`, one green
/// transaction deletes green's matching rows first and commits with `synchronous_commit = on`, so it
/// is durable when this returns.
pub async fn copy_rows(
    source_url: &str,
    snapshot: &str,
    table: &TableName,
    columns: Option<&[String]>,
    filter: Option<&str>,
    into: Destination<'_>,
    status: &Status,
) -> Result<(u64, u64), Error> {
    let name = table.to_string();
    status.table_started(&name);
    let blue = blue_connect(source_url).await?;
    blue.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'; SET LOCAL row_security = off",
        snapshot.replace('\'', "''")
    ))
    .await
    .map_err(Error::blue(format!("importing snapshot {snapshot} for {name}")))?;
    let from = hold_unrewritten(&blue, table, Side::Blue).await?;
    let columns = match columns {
        Some(c) => c.to_vec(),
        None => stored_columns(&blue, table, Side::Blue).await?,
    };
    let green = green_connect(into.url).await.map_err(Error::Sink)?;
    green.batch_execute("SET session_replication_role = replica").await.map_err(Error::green("SET session_replication_role"))?;
    if into.replace {
        refuse_lacking_columns(&green, table, &columns).await?;
    }
    let col_list = columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let condition = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    if into.replace {
        let on_green = super::catalog::own_rows(&green, table, Side::Green).await?;
        green
            .batch_execute(&format!("SET synchronous_commit = on; BEGIN; DELETE FROM {on_green}{condition}"))
            .await
            .map_err(Error::green(format!("clearing green's rows of {name} before copying them")))?;
    }
    let out_sql = format!("COPY (SELECT {col_list} FROM {from}{condition}) TO STDOUT");
    let in_sql = format!("COPY {} ({col_list}) FROM STDIN", table.quoted());
    let (rows, bytes, written) = pump(&blue, &green, &out_sql, &in_sql, &name, status).await?;
    // The row-count guard: blue's own count at the same snapshot, the rows read and the rows green
    // took must agree before anything is committed.
    let counted: i64 = blue
        .query_one(&format!("SELECT count(*)::int8 FROM {from}{condition}"), &[])
        .await
        .map_err(Error::blue(format!("counting {name} at the copy's snapshot")))?
        .get(0);
    if u64::try_from(counted).ok() != Some(rows) || written != rows {
        if into.replace {
            // Nothing of this chunk is committed on green.
            let _ = green.batch_execute("ROLLBACK").await;
        }
        return Err(CopyRefusal::CountsDisagree { name: name.to_string(), condition: condition.to_string(), counted, rows, written }.into());
    }
    if into.replace {
        green.batch_execute("COMMIT").await.map_err(Error::green(format!("committing the copy of {name}")))?;
    }
    blue.batch_execute("COMMIT").await.map_err(Error::blue("committing the snapshot transaction"))?;
    Ok((rows, bytes))
}

/// A column blue added before the round's snapshot reaches green with the table's next change:
/// until then the copy has nowhere to put it, and is refused naming the columns.
async fn refuse_lacking_columns(green: &tokio_postgres::Client, table: &TableName, columns: &[String]) -> Result<(), Error> {
    let on_green = stored_columns(green, table, Side::Green).await?;
    let lacking: Vec<&String> = columns.iter().filter(|c| !on_green.contains(c)).collect();
    if lacking.is_empty() {
        return Ok(());
    }
    Err(CopyRefusal::ColumnsLacking { table: table.to_string(), columns: lacking.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ") }.into())
}

/// Streams `out_sql`'s COPY from blue into `in_sql`'s COPY on green; returns the rows read, their
/// bytes and the rows green took.
async fn pump(
    blue: &tokio_postgres::Client,
    green: &tokio_postgres::Client,
    out_sql: &str,
    in_sql: &str,
    name: &str,
    status: &Status,
) -> Result<(u64, u64, u64), Error> {
    let reader = blue.copy_out(out_sql).await.map_err(Error::blue(format!("`{out_sql}`")))?;
    let writer = green.copy_in(in_sql).await.map_err(Error::green(format!("`{in_sql}`")))?;
    futures_util::pin_mut!(reader);
    futures_util::pin_mut!(writer);
    // COPY OUT yields one message per row; forward them in large writes, not one network write each.
    const FLUSH_AT: usize = 256 * 1024;
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut pending = bytes::BytesMut::with_capacity(FLUSH_AT + 64 * 1024);
    let mut pending_rows: u64 = 0;
    loop {
        let chunk = reader.try_next().await.map_err(Error::blue(format!("reading {name}")))?;
        if let Some(chunk) = &chunk {
            // COPY's text format ends every row with a newline and escapes those inside values.
            pending_rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            pending.extend_from_slice(chunk);
        }
        let end = chunk.is_none();
        if pending.len() >= FLUSH_AT || (end && !pending.is_empty()) {
            status.table_progress(name, pending_rows, pending.len() as u64);
            rows += pending_rows;
            bytes += pending.len() as u64;
            pending_rows = 0;
            writer.send(pending.split().freeze()).await.map_err(Error::green(format!("writing {name}")))?;
        }
        if end {
            break;
        }
    }
    let written = writer.finish().await.map_err(Error::green(format!("finishing {name}")))?;
    Ok((rows, bytes, written))
}

/// In a transaction that imported an older snapshot: takes `ACCESS SHARE` on `table` (its partitions
/// with it), so that nothing can rewrite it until the transaction ends, and then checks that nothing
/// rewrote it between the snapshot and the lock. (Tables are locked one at a time, as each is read,
/// not all at the snapshot as `pg_dump` does: a DDL statement queued behind such a lock would hold up
/// the copy's own later reads of that table — a deadlock PostgreSQL cannot see — and every query of
/// the application on it until the whole copy ended.) A rewrite (`ALTER TABLE` that rewrites, `VACUUM
/// FULL`, `CLUSTER`, `TRUNCATE`, `pg_repack`) gives the table new storage whose rows the older
/// snapshot cannot see: read through it, the table would look empty (PostgreSQL's documented MVCC
/// caveat). Detected by comparing each relation's file node as the snapshot's catalog shows it with
/// the one the server now uses; a difference is [`Error::Resync`]: the copy (or verify) starts again
/// at a new snapshot. Returns how to name the table to read its own rows ([`super::catalog::own_rows`]).
pub async fn hold_unrewritten(client: &tokio_postgres::Client, table: &TableName, side: Side) -> Result<String, Error> {
    let from = super::catalog::own_rows(client, table, side).await?;
    client.batch_execute(&format!("LOCK TABLE {from} IN ACCESS SHARE MODE")).await.map_err(Error::sql(side, format!("locking {table} for the copy")))?;
    let rewritten: Option<String> = client
        .query_one(&format!("SELECT {}", rewritten_since_snapshot(table)), &[])
        .await
        .map_err(Error::sql(side, format!("comparing the storage of {table} with the snapshot's")))?
        .get(0);
    match rewritten {
        None => Ok(from),
        Some(names) => Err(rewritten_error(&names, side)),
    }
}

/// A scalar SQL expression: the relations of `table` (itself, or a partitioned table's partitions)
/// whose storage differs from what the transaction's snapshot shows — rewritten since (comma-separated),
/// or NULL. The snapshot's catalog rows give the file node the snapshot can read; the server's
/// relation cache the one it uses now. Meaningful while the statement holds a lock on `table` (a
/// statement reading `table` holds one from before it runs to its end).
pub fn rewritten_since_snapshot(table: &TableName) -> String {
    let name = turnout_connect::pg::client::quote_literal(&table.quoted());
    format!(
        "(SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c \
          WHERE (c.oid = {name}::regclass OR (c.relispartition AND c.oid IN (SELECT relid FROM pg_partition_tree({name}::regclass)))) \
            AND c.relkind IN ('r', 'm') AND c.relfilenode <> pg_relation_filenode(c.oid))"
    )
}

/// The error of a read that found `names` rewritten since its snapshot: [`Error::Resync`].
pub fn rewritten_error(names: &str, side: Side) -> Error {
    Error::Resync(format!(
        "{names} was rewritten on {side} after the snapshot this read uses (an ALTER TABLE that rewrites it, VACUUM FULL, CLUSTER, \
         TRUNCATE or pg_repack committed in between), so the snapshot would show it empty; reading it again at a new snapshot"
    ))
}

/// The stored columns of `table` (not dropped, not generated) on `side`, in order.
async fn stored_columns(client: &tokio_postgres::Client, table: &TableName, side: Side) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
             AND attgenerated = '' ORDER BY attnum",
            &[&table.quoted()],
        )
        .await
        .map_err(Error::sql(side, format!("reading the columns of {table}")))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
