//! What a MySQL/MariaDB cutover rehearsal reports besides its timings: each side's identity (for the
//! certificate) and what would block or slow the real cutover, read from `INNODB_TRX` and the
//! process list, changing nothing. Findings name sessions, never their statements' text: they go
//! into the certificate, and a statement can hold data. (`SHOW OPEN TABLES` is not used: turnout's own apply keeps the
//! replicated tables in use, so it would name them all under load.)

use crate::source::contract::procedure::Identity;
use mysql_async::prelude::Queryable;

/// Transactions open longer than this many seconds are named.
const LONG_SECONDS: u32 = 1;

/// `@@version` with its comment, and `server_uuid` (Oracle MySQL) or `server_id` (MariaDB).
pub(crate) async fn identity(conn: &mut mysql_async::Conn) -> Identity {
    let version: Result<Option<(String, String)>, _> = conn.query_first("SELECT @@version, @@version_comment").await;
    let version = match version {
        Ok(Some((v, comment))) => format!("{v} ({comment})"),
        Ok(None) => "unreadable".into(),
        Err(e) => format!("unreadable: {e}"),
    };
    // MariaDB has no server_uuid; its server_id is what tells its servers apart.
    let uuid: Result<Option<String>, _> = conn.query_first("SELECT @@server_uuid").await;
    let identity = match uuid {
        Ok(Some(uuid)) => format!("server_uuid {uuid}"),
        _ => match conn.query_first::<u64, _>("SELECT @@server_id").await {
            Ok(Some(id)) => format!("server_id {id}"),
            Ok(None) => "unreadable".into(),
            Err(e) => format!("server_id unreadable: {e}"),
        },
    };
    Identity { version, identity }
}

/// A row of `INNODB_TRX` as read: session, user, host, seconds open, rows locked, running a
/// statement now.
type Transaction = (u64, String, String, f64, u64, bool);

/// The server's local time: `INNODB_TRX.trx_started` is in the server process's time zone, not the
/// session's (turnout's sessions use UTC).
const NOW: &str = "CONVERT_TZ(UTC_TIMESTAMP(6), '+00:00', 'SYSTEM')";

/// Transactions open longer than [`LONG_SECONDS`] on `side`, except turnout's own sessions (`own`):
/// on the fenced side `read_only` waits for them to commit inside the write pause; on the other
/// side their locks hold up turnout's apply. One line each, naming the session.
pub(crate) async fn long_transactions(conn: &mut mysql_async::Conn, side: crate::error::Side, own: &[u32], fenced: bool) -> Vec<String> {
    let sql = format!(
        "SELECT t.trx_mysql_thread_id, COALESCE(p.USER, ''), COALESCE(p.HOST, ''), TIMESTAMPDIFF(MICROSECOND, t.trx_started, {NOW}) / 1000000, \
         t.trx_rows_locked, t.trx_query IS NOT NULL FROM information_schema.INNODB_TRX t LEFT JOIN information_schema.PROCESSLIST p \
         ON p.ID = t.trx_mysql_thread_id WHERE t.trx_started < {NOW} - INTERVAL {LONG_SECONDS} SECOND ORDER BY t.trx_started LIMIT 20"
    );
    let rows: Result<Vec<Transaction>, _> = conn.query(sql).await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .filter(|(id, ..)| u32::try_from(*id).is_ok_and(|id| !own.contains(&id)))
            .take(10)
            .map(|(id, user, host, age, locked, running)| {
                let effect = if fenced {
                    "read_only waits for it to commit inside the write pause (or the fence ends it); end it, or cut over when it is done"
                } else {
                    "turnout's apply waits behind the rows it locked, and moving counters behind the metadata locks of the tables it read, \
                     so the cutover may not finish within --max-pause; end it before the cutover"
                };
                let doing = if running { "running a statement" } else { "idle" };
                format!("{side}: a transaction has been open {age:.1} s (session {id}, {user}@{host}, {locked} rows locked, {doing}) — {effect}")
            })
            .collect(),
        Err(e) => {
            vec![format!("{side}: could not read information_schema.INNODB_TRX ({e}; it needs the PROCESS privilege); long transactions were not checked")]
        }
    }
}
