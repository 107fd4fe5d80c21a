//! Heartbeats on blue and what blue says about itself, for lag in seconds and bytes and slot health.
//!
//! Every `source.heartbeat_interval` (default 100 ms) one query on blue writes a non-transactional
//! logical message (`turnout.heartbeat`, content: blue's clock in microseconds since the Unix epoch;
//! PostgreSQL 14+, flushed at once on 17+) and returns blue's clock and WAL flush position. The message
//! travels through the slot like any change, so the age of the newest one received measures lag when
//! nothing else is pending, against blue's clock; its round trip estimates blue's clock offset. Every
//! second the slot's retained WAL and `wal_status` are read. Heartbeats also let an idle slot advance.
//!
//! PostgreSQL 13 has no logical messages in pgoutput: there the heartbeat is a one-row table,
//! `public.turnout_heartbeat` (created by `run` before the snapshot, replicated like any table), whose
//! row is rewritten with blue's clock every interval; the pipeline reads the clock from its changes.
//! Failures here never stop replication: they are logged and retried.

use crate::error::{Error, Side};
use crate::status::{now_micros, SlotHealth, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_postgres::Client;
use turnout_decoders::Lsn;

pub use crate::source::HEARTBEAT_TABLE as TABLE;

/// Creates the heartbeat table on blue when blue is PostgreSQL 13 (before the snapshot, so it is
/// copied and published like any table). A no-op on 14+.
pub async fn ensure_table(admin: &mut turnout_connect::pg::PgConnection) -> Result<(), Error> {
    if admin.server_version_num().unwrap_or(0) >= 140_000 {
        return Ok(());
    }
    admin
        .simple_query(
            "CREATE TABLE IF NOT EXISTS public.turnout_heartbeat (id int PRIMARY KEY, at_us bigint NOT NULL); \
             COMMENT ON TABLE public.turnout_heartbeat IS 'turnout: one row rewritten every heartbeat interval to measure lag (PostgreSQL 13)'",
        )
        .await
        .map(|_| ())
        .map_err(|e| Error::during("creating the heartbeat table public.turnout_heartbeat on blue")(Error::Source(e)))
}

/// Emits heartbeats until `shutdown` turns true.
/// `side` is the server `source_url` names (green in the reverse stream).
pub async fn run(source_url: String, side: Side, slot: String, interval: Duration, status: Arc<Status>, shutdown: watch::Receiver<bool>) {
    crate::source::keep_beating(|| beat(&source_url, side, &slot, interval, &status), shutdown).await
}

async fn beat(source_url: &str, side: Side, slot: &str, interval: Duration, status: &Status) -> Result<(), Error> {
    let client = super::session(source_url, side).await?;
    let version: i32 =
        client.query_one("SELECT current_setting('server_version_num')::int", &[]).await.map_err(Error::sql(side, "reading the server version"))?.get(0);
    let sql = match version {
        v if v >= 170_000 => {
            "WITH t AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8 AS us) \
             SELECT t.us, pg_current_wal_flush_lsn()::text, pg_logical_emit_message(false, 'turnout.heartbeat', t.us::text, true)::text FROM t"
        }
        v if v >= 140_000 => {
            "WITH t AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8 AS us) \
             SELECT t.us, pg_current_wal_flush_lsn()::text, pg_logical_emit_message(false, 'turnout.heartbeat', t.us::text)::text FROM t"
        }
        _ => {
            "WITH t AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8 AS us), \
                  w AS (INSERT INTO public.turnout_heartbeat (id, at_us) SELECT 1, us FROM t \
                        ON CONFLICT (id) DO UPDATE SET at_us = EXCLUDED.at_us RETURNING at_us) \
             SELECT (SELECT at_us FROM w), pg_current_wal_flush_lsn()::text, ''"
        }
    };
    let stmt = client.prepare(sql).await.map_err(Error::sql(side, "preparing the heartbeat"))?;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_slot_check: Option<Instant> = None;
    let mut slot_missing = true;
    loop {
        ticker.tick().await;
        let sent = now_micros();
        let row = client.query_one(&stmt, &[]).await.map_err(Error::sql(side, "writing a heartbeat"))?;
        let received = now_micros();
        let blue_us: i64 = row.get(0);
        status.set_clock_offset(blue_us - (sent + received) / 2);
        if let Ok(flush) = row.get::<_, String>(1).parse::<Lsn>() {
            status.set_source_end(&turnout_decoders::Position::Pg(flush));
        }
        // Every second; every beat while the slot does not exist yet (it appears with the snapshot).
        if slot_missing || last_slot_check.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_slot_check = Some(Instant::now());
            let health = slot_health(&client, side, slot).await?;
            slot_missing = health.is_none();
            status.set_slot(health);
        }
    }
}

async fn slot_health(client: &Client, side: Side, slot: &str) -> Result<Option<SlotHealth>, Error> {
    let row = client
        .query_opt(
            "SELECT COALESCE((pg_current_wal_lsn() - restart_lsn)::int8, 0), COALESCE(wal_status, ''), safe_wal_size \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(Error::sql(side, "reading the slot's health"))?;
    Ok(row.map(|r| SlotHealth { retained_bytes: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0), wal_status: r.get(1), safe_wal_bytes: r.get(2) }))
}
