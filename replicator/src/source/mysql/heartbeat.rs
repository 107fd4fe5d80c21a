//! Heartbeats on a MySQL/MariaDB blue: the binlog's own timestamps have one-second resolution and mark
//! when a statement began, so lag is measured with a row instead. Every `source.heartbeat_interval`
//! the row `(1, at_us)` of `<database>.turnout_heartbeat` is rewritten with blue's clock in
//! microseconds; it reaches green through the binlog like any change, and the pipeline reads the clock
//! from it. Each round trip also estimates blue's clock offset, and every second `SHOW MASTER STATUS`
//! gives the binlog's end for lag in bytes. Failures here never stop replication: they are retried.

use super::{connect, qualified};
use crate::error::{Error, Side};
use crate::source::HEARTBEAT_TABLE;
use crate::status::{now_micros, Status};
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use turnout_decoders::{BinlogPosition, GtidState, Position, TableName};

/// The heartbeat table of `database`.
pub fn table(database: &str) -> TableName {
    TableName::new(database, HEARTBEAT_TABLE)
}

/// Creates the heartbeat table on blue (before the snapshot, so it is copied and replicated like any
/// table).
pub async fn ensure_table(conn: &mut mysql_async::Conn, database: &str) -> Result<(), Error> {
    // The table's collation is one every MySQL-family server has alike, so it crosses families.
    // Only when missing: MySQL logs `CREATE TABLE IF NOT EXISTS` even for a table that exists, and
    // the stream stops at DDL on a replicated table.
    let exists: Option<i64> = conn
        .exec_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (database, HEARTBEAT_TABLE))
        .await
        .map_err(|e| super::sql_error(crate::error::Side::Blue, "looking for the heartbeat table", e))?;
    if exists.unwrap_or(0) > 0 {
        return Ok(());
    }
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {} (id INT PRIMARY KEY, at_us BIGINT NOT NULL) ENGINE = InnoDB \
         DEFAULT CHARSET = ascii COLLATE = ascii_bin COMMENT = 'turnout: one row rewritten every heartbeat interval to measure replication lag'",
        qualified(&table(database))
    ))
    .await
    .map_err(|e| {
        Error::mysql(
            turnout_decoders::Side::Blue,
            format!("creating the heartbeat table {} (grant the account CREATE, INSERT and UPDATE on the database)", table(database)),
        )(e)
    })
}

/// Emits heartbeats on `side` (the side the stream reads: green for the reverse stream) until
/// `shutdown` turns true.
pub async fn run(opts: mysql_async::Opts, side: Side, interval: Duration, status: Arc<Status>, shutdown: watch::Receiver<bool>) {
    crate::source::keep_beating(|| beat(&opts, side, interval, &status), shutdown).await
}

async fn beat(opts: &mysql_async::Opts, side: Side, interval: Duration, status: &Status) -> Result<(), Error> {
    let database = super::database(opts);
    let mut conn = connect(opts, side).await?;
    // MySQL 8.4 removed SHOW MASTER STATUS.
    let binlog_status = if super::is_mariadb(&mut conn, side).await? { "SHOW MASTER STATUS" } else { "SHOW BINARY LOG STATUS" };
    let write = format!(
        "INSERT INTO {} (id, at_us) VALUES (1, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)) \
         ON DUPLICATE KEY UPDATE at_us = VALUES(at_us)",
        qualified(&table(&database))
    );
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_end: Option<Instant> = None;
    loop {
        ticker.tick().await;
        conn.query_drop(&write).await.map_err(|e| super::sql_error(side, "writing the heartbeat", e))?;
        let sent = now_micros();
        let blue_us: Option<i64> =
            conn.query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)").await.map_err(|e| super::sql_error(side, "reading the clock", e))?;
        let received = now_micros();
        if let Some(us) = blue_us {
            status.set_clock_offset(us - (sent + received) / 2);
        }
        if last_end.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_end = Some(Instant::now());
            let end: Option<(Vec<u8>, u64)> = conn
                .query_first(binlog_status)
                .await
                .ok()
                .flatten()
                .map(|row: mysql_async::Row| (row.get::<Vec<u8>, _>(0).unwrap_or_default(), row.get::<u64, _>(1).unwrap_or(0)));
            if let Some((file, offset)) = end {
                let file = String::from_utf8_lossy(&file).into_owned();
                status.set_source_end(&Position::Binlog(BinlogPosition { file, offset, gtids: GtidState::None }));
            }
        }
    }
}
