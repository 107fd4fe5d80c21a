//! The initial snapshot: every replicated table copied from blue's exported snapshot into green with
//! `COPY … TO STDOUT` streamed straight into `COPY … FROM STDIN` (no rows materialised), several tables
//! at once. Consistency: every worker imports the slot's exported snapshot, so the copy shows exactly
//! the transactions before the slot's consistent point and streaming continues from there.

use crate::error::Error;
use crate::state::StateStore;
use crate::status::Status;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use std::sync::Arc;
use turnout_decoders::schema::{quote_ident, TableName};
use turnout_sinks::pg::connect as green_connect;

/// One table to copy: its name and the columns to copy (generated columns excluded).
#[derive(Clone, Debug)]
pub struct CopyTable {
    pub name: TableName,
    pub columns: Vec<String>,
}

/// The columns to copy for each table (no dropped or generated columns).
pub async fn copy_plan(blue: &tokio_postgres::Client, tables: &[TableName]) -> Result<Vec<CopyTable>, Error> {
    let mut out = Vec::new();
    for t in tables {
        let rows = blue
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
                 AND attgenerated = '' ORDER BY attnum",
                &[&t.quoted()],
            )
            .await
            .map_err(|e| Error::Setup(format!("reading the columns of {t} on blue: {e}")))?;
        out.push(CopyTable { name: t.clone(), columns: rows.iter().map(|r| r.get(0)).collect() });
    }
    Ok(out)
}

/// Opens a plain session to blue.
pub async fn blue_connect(url: &str) -> Result<tokio_postgres::Client, Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::Setup(format!("connecting to blue for the snapshot: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
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
        state.mark_table_copied(&t.name.to_string(), rows)?;
        total += rows;
    }
    Ok(total)
}

async fn copy_one(source_url: &str, target_url: &str, snapshot: &str, t: &CopyTable, status: &Status) -> Result<u64, Error> {
    let name = t.name.to_string();
    status.table_started(&name);
    let blue = blue_connect(source_url).await?;
    blue.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "''")
    ))
    .await
    .map_err(|e| Error::Setup(format!("importing snapshot {snapshot} for {name}: {e}")))?;
    let green = green_connect(target_url).await.map_err(Error::Sink)?;
    green
        .batch_execute("SET session_replication_role = replica")
        .await
        .map_err(|e| Error::Setup(format!("green: SET session_replication_role: {e}")))?;
    let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(c)).collect();
    let col_list = cols.join(", ");
    let out_sql = format!("COPY (SELECT {col_list} FROM {}) TO STDOUT", t.name.quoted());
    let in_sql = format!("COPY {} ({col_list}) FROM STDIN", t.name.quoted());
    let reader = blue.copy_out(&out_sql).await.map_err(|e| Error::Setup(format!("blue: {out_sql}: {e}")))?;
    let writer = green.copy_in(&in_sql).await.map_err(|e| Error::Setup(format!("green: {in_sql}: {e}")))?;
    futures_util::pin_mut!(reader);
    futures_util::pin_mut!(writer);
    // COPY OUT yields one message per row; forward them in large writes, not one network write each.
    const FLUSH_AT: usize = 256 * 1024;
    let mut rows: u64 = 0;
    let mut pending = bytes::BytesMut::with_capacity(FLUSH_AT + 64 * 1024);
    let mut pending_rows: u64 = 0;
    while let Some(chunk) = reader.try_next().await.map_err(|e| Error::Setup(format!("blue: reading {name}: {e}")))? {
        pending_rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        pending.extend_from_slice(&chunk);
        if pending.len() >= FLUSH_AT {
            status.table_progress(&name, pending_rows, pending.len() as u64);
            rows += pending_rows;
            pending_rows = 0;
            writer.send(pending.split().freeze()).await.map_err(|e| Error::Setup(format!("green: writing {name}: {e}")))?;
        }
    }
    if !pending.is_empty() {
        status.table_progress(&name, pending_rows, pending.len() as u64);
        rows += pending_rows;
        writer.send(pending.split().freeze()).await.map_err(|e| Error::Setup(format!("green: writing {name}: {e}")))?;
    }
    let written = writer.finish().await.map_err(|e| Error::Setup(format!("green: finishing {name}: {e}")))?;
    blue.batch_execute("COMMIT").await.map_err(|e| Error::Setup(format!("blue: {e}")))?;
    status.table_done(&name);
    Ok(written.max(rows))
}
