//! PostgreSQL's side of the chunked initial copy ([`crate::copy`]).
//!
//! - **Plan**: a table whose replica identity's leading column is `smallint`, `integer` or `bigint`
//!   is split into ranges of that column (about `snapshot.chunk_size` of table each, by
//!   `pg_table_size`); any other table is one chunk.
//! - **Round**: a temporary logical slot created on a replication connection exports its snapshot;
//!   its consistent point is the round's position, exactly as PostgreSQL's own table synchronisation
//!   uses it. The slot goes when the connection closes after the round.
//! - **Nudge**: a transactional logical message `turnout.nudge` (PostgreSQL 14+), or a write to the
//!   heartbeat table (13).
//! - **Copy**: each chunk is `COPY (SELECT … WHERE range) TO STDOUT` under the exported snapshot,
//!   streamed into `COPY … FROM STDIN` on green in one transaction that deletes the range first.

use super::snapshot::{blue_connect, copy_rows, Destination};
use crate::copy::{split, Chunk, Copied, Copier, Progress};
use crate::error::{Error, Side};
use futures_util::StreamExt;
use turnout_connect::pg::client::SlotOptions;
use turnout_connect::pg::{ConnectOptions, PgConnection};
use turnout_decoders::schema::quote_ident;
use turnout_decoders::{Position, TableName};

/// The chunk plan of `tables`, ids from `first_id`.
pub async fn plan(blue: &tokio_postgres::Client, tables: &[TableName], chunk_bytes: u64, first_id: u32) -> Result<Vec<Chunk>, Error> {
    let mut chunks = Vec::new();
    let mut next = first_id;
    for t in tables {
        let (bytes, key) = sized_key(blue, t).await?;
        chunks.extend(split(t, key.as_ref().map(|(c, lo, hi)| (c.as_str(), *lo, *hi)), bytes, chunk_bytes, &mut next));
    }
    Ok(chunks)
}

/// The total size of `tables` (partitions included), for `snapshot.mode = "auto"`.
pub async fn total_size(blue: &tokio_postgres::Client, tables: &[TableName]) -> Result<u64, Error> {
    let mut total = 0;
    for t in tables {
        total += table_size(blue, t).await?;
    }
    Ok(total)
}

async fn table_size(blue: &tokio_postgres::Client, t: &TableName) -> Result<u64, Error> {
    let row = blue
        .query_one(
            "SELECT COALESCE((SELECT sum(pg_table_size(relid)) FROM pg_partition_tree(r)), pg_table_size(r), 0)::int8 \
             FROM to_regclass($1) r",
            &[&t.quoted()],
        )
        .await
        .map_err(Error::blue(format!("reading the size of {t}")))?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// `t`'s size and, when its replica identity starts with an integer column, that column with the
/// smallest and largest value now.
async fn sized_key(blue: &tokio_postgres::Client, t: &TableName) -> Result<(u64, Option<(String, i128, i128)>), Error> {
    let bytes = table_size(blue, t).await?;
    let key = blue
        .query_opt(
            "SELECT a.attname::text FROM pg_class c \
             JOIN pg_index i ON i.indrelid = c.oid \
                  AND ((c.relreplident IN ('d', 'f') AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident)) \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] \
             WHERE c.oid = to_regclass($1) AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)",
            &[&t.quoted()],
        )
        .await
        .map_err(Error::blue(format!("reading the key of {t}")))?;
    let Some(column) = key.map(|r| r.get::<_, String>(0)) else { return Ok((bytes, None)) };
    let c = quote_ident(&column);
    let from = super::catalog::own_rows(blue, t, turnout_decoders::Side::Blue).await?;
    let row = blue
        .query_one(&format!("SELECT min({c})::text, max({c})::text FROM {from}"), &[])
        .await
        .map_err(Error::blue(format!("reading the key range of {t}")))?;
    let parse = |i: usize| row.get::<_, Option<String>>(i).and_then(|v| v.parse::<i128>().ok());
    Ok((bytes, parse(0).zip(parse(1)).map(|(lo, hi)| (column, lo, hi))))
}

/// PostgreSQL's [`Copier`].
#[derive(Debug)]
pub struct PgCopier {
    pub source: ConnectOptions,
    pub source_url: String,
    pub target_url: String,
    /// The stream's slot: each round's temporary slot is named after it (`<slot>_r<hex>`).
    pub slot: String,
    pub workers: usize,
}

/// A round: the replication connection holding the temporary slot and its exported snapshot.
#[allow(missing_debug_implementations)]
pub struct PgRound {
    connection: PgConnection,
    snapshot: String,
}

impl Copier for PgCopier {
    type Round = PgRound;

    async fn open(&self) -> Result<(PgRound, Position), Error> {
        let mut connection = PgConnection::connect(&self.source, true).await.map_err(Error::Source)?;
        let options = SlotOptions { temporary: true, export_snapshot: true, ..SlotOptions::default() };
        // A name of its own per round: blue drops a closed round's slot a moment after its connection.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let name = format!("{}_r{:x}", self.slot, nanos & 0xffff_ffff_ffff);
        let slot = connection.create_logical_slot(&name, &options).await.map_err(|e| {
            Error::during(format!(
                "creating the temporary slot {name} of a chunked copy round on blue (it needs one free replication slot and WAL \
                 sender besides the stream's: raise max_replication_slots and max_wal_senders if they are used up)"
            ))(Error::Source(e))
        })?;
        let snapshot =
            slot.snapshot_name.ok_or_else(|| Error::Unexpected { side: Side::Blue, what: "no exported snapshot for a chunked copy round".into() })?;
        Ok((PgRound { connection, snapshot }, Position::Pg(slot.consistent_point)))
    }

    async fn nudge(&self) -> Result<(), Error> {
        let blue = blue_connect(&self.source_url).await?;
        let version: i32 =
            blue.query_one("SELECT current_setting('server_version_num')::int", &[]).await.map_err(Error::blue("reading the server version"))?.get(0);
        let sql = if version >= 140_000 {
            "SELECT pg_logical_emit_message(true, 'turnout.nudge', '')"
        } else {
            "INSERT INTO public.turnout_heartbeat (id, at_us) VALUES (1, (extract(epoch FROM clock_timestamp()) * 1000000)::int8) \
             ON CONFLICT (id) DO UPDATE SET at_us = EXCLUDED.at_us"
        };
        blue.batch_execute(sql).await.map_err(Error::blue("writing a transaction the stream carries past a copy round"))
    }

    async fn copy(&self, round: PgRound, chunks: Vec<Chunk>, progress: &Progress) -> Result<(), Error> {
        let snapshot = round.snapshot.as_str();
        let copies = futures_util::stream::iter(chunks.into_iter().map(|chunk| async move {
            let filter = chunk.condition(quote_ident);
            let into = Destination { url: &self.target_url, replace: true };
            let (rows, bytes) = copy_rows(&self.source_url, snapshot, &chunk.table_name(), None, filter.as_deref(), into, progress.status()).await?;
            progress.done(&chunk, Copied { rows, bytes })
        }))
        .buffer_unordered(self.workers.max(1));
        futures_util::pin_mut!(copies);
        while let Some(result) = copies.next().await {
            result?;
        }
        // Closing the replication connection drops the temporary slot.
        round.connection.close().await;
        Ok(())
    }

    async fn clear(&self, chunks: &[Chunk]) -> Result<(), Error> {
        // A round slot whose connection blue has not yet seen die (its process was killed) holds WAL
        // until then: its walsender is ended, which drops the slot.
        let blue = blue_connect(&self.source_url).await?;
        let pattern = format!("{}\\_r%", self.slot.replace('_', "\\_"));
        if let Err(e) = blue
            .query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name LIKE $1 AND active_pid IS NOT NULL", &[&pattern])
            .await
        {
            tracing::warn!("could not end the connection of an earlier copy round's slot on blue: {}", turnout_sinks::pg::describe_error(&e));
        }
        let green = super::session(&self.target_url, crate::error::Side::Green).await?;
        let mut sql = String::from("SET session_replication_role = replica; SET synchronous_commit = on; BEGIN;");
        for c in chunks {
            let condition = c.condition(quote_ident).map(|f| format!(" WHERE {f}")).unwrap_or_default();
            let own = super::catalog::own_rows(&green, &c.table_name(), turnout_decoders::Side::Green).await?;
            sql.push_str(&format!(" DELETE FROM {own}{condition};"));
        }
        sql.push_str(" COMMIT");
        green.batch_execute(&sql).await.map_err(Error::green("clearing green's rows of the chunks not yet copied"))
    }
}
