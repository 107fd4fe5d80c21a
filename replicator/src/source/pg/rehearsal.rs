//! What a PostgreSQL cutover rehearsal reports besides its timings: each side's identity (for the
//! certificate) and what would block or slow the real cutover, read from `pg_stat_activity` and
//! `pg_locks`, changing nothing. Findings name sessions, never their statements' text: they go into
//! the certificate, and a statement can hold data.

use crate::source::contract::procedure::Identity;
use tokio_postgres::Client;

/// Transactions open longer than this are named.
const LONG: &str = "1 second";

/// `version()` and the system identifier (unreadable without the right to call
/// `pg_control_system()`: then it says so).
pub(crate) async fn identity(client: &Client) -> Identity {
    let version = match client.query_one("SELECT version()", &[]).await {
        Ok(row) => row.get(0),
        Err(e) => format!("unreadable: {e}"),
    };
    let identity = match client.query_one("SELECT system_identifier::text FROM pg_control_system()", &[]).await {
        Ok(row) => format!("system identifier {}", row.get::<_, String>(0)),
        Err(e) => format!("system identifier unreadable: {}", e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned())),
    };
    Identity { version, identity }
}

/// Transactions on the fenced side open longer than [`LONG`]: the fence waits for them (pgbouncer's
/// PAUSE) or ends them, inside the write pause.
pub(crate) async fn long_transactions(client: &Client, side: &str) -> Vec<String> {
    let sql = format!(
        "SELECT pid, usename::text, coalesce(application_name, ''), extract(epoch FROM now() - xact_start)::float8, coalesce(state, '') \
         FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
         AND coalesce(application_name, '') NOT LIKE 'turnout%' AND xact_start < now() - interval '{LONG}' ORDER BY xact_start LIMIT 10"
    );
    match client.query(&sql, &[]).await {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                let (pid, user, app, age, state): (i32, Option<String>, String, f64, String) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                format!(
                    "{side}: a transaction has been open {age:.1} s (pid {pid}, user {}, application '{app}', {state}) — the fence waits \
                     for it or ends it inside the write pause; end it, or cut over when it is done",
                    user.unwrap_or_default()
                )
            })
            .collect(),
        Err(e) => vec![format!("{side}: could not read pg_stat_activity ({e}); long transactions were not checked")],
    }
}

/// Sessions on the side traffic moves to, other than turnout's, that hold a lock conflicting with
/// the apply's writes or keep a transaction open: the apply of the sentinel's transaction waits
/// behind them.
pub(crate) async fn blockers(client: &Client, side: &str) -> Vec<String> {
    let sql = format!(
        "SELECT a.pid, a.usename::text, coalesce(a.application_name, ''), coalesce(extract(epoch FROM now() - a.xact_start)::float8, 0), \
         coalesce(string_agg(DISTINCT l.mode || ' on ' || l.relation::regclass::text, ', '), '') FROM pg_stat_activity a LEFT JOIN pg_locks l \
         ON l.pid = a.pid AND l.granted AND l.locktype = 'relation' AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', \
         'AccessExclusiveLock') WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' \
         AND a.application_name NOT LIKE 'turnout%' AND (a.xact_start < now() - interval '{LONG}' OR l.pid IS NOT NULL) \
         GROUP BY 1, 2, 3, 4 ORDER BY 4 DESC LIMIT 10"
    );
    match client.query(&sql, &[]).await {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                let (pid, user, app, age, locks): (i32, Option<String>, String, f64, String) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                let holds = if locks.is_empty() { format!("a transaction open {age:.1} s") } else { format!("{locks} (transaction open {age:.1} s)") };
                format!(
                    "{side}: session pid {pid} (user {}, application '{app}') holds {holds} — turnout's apply waits behind its locks, so the \
                     sentinel may not arrive within --max-pause; end it before the cutover",
                    user.unwrap_or_default()
                )
            })
            .collect(),
        Err(e) => vec![format!("{side}: could not read pg_stat_activity and pg_locks ({e}); sessions blocking the apply were not checked")],
    }
}
