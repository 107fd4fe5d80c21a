//! The read-only fence for a MariaDB or Oracle MySQL blue: `SET GLOBAL read_only = ON`, then the
//! sessions of other accounts are ended so none keeps locks or an open transaction. Under
//! `read_only` the server refuses every write and every COMMIT of a transaction that wrote, except
//! from accounts that may write through it — MariaDB: `READ ONLY ADMIN` (SUPER before 10.11); MySQL:
//! `CONNECTION_ADMIN` or `SUPER` — and replication threads. Such accounts are listed by
//! [`ReadOnlyFence::unfenced_accounts`] so `check` and a dry run can name them with the REVOKE.
//!
//! Oracle MySQL also has `super_read_only`, which stops those accounts too — turnout's own included.
//! So the fence goes up in two steps there: `read_only` ([`ReadOnlyFence::apply`]), turnout's
//! sentinel (which its account may still write), then `super_read_only`
//! ([`ReadOnlyFence::seal`]), which returns `gtid_executed` read after it: every transaction blue
//! will ever have committed before the fence comes down. A write an exempt account slipped in between
//! the sentinel and the seal is in that set, so the cutover's proof (green holds the whole set) waits
//! for it rather than losing it.
//!
//! Setting `read_only` takes the global read lock, so it waits for running statements and
//! `LOCK TABLES` holders: the wait is bounded by `lock_wait_timeout` set from the fence's budget,
//! and a fence that cannot be set in time leaves blue writable. [`ReadOnlyFence::undo`] sets both
//! off. Every step is idempotent.

use crate::error::{CutoverError, Side};
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

/// What applying the fence did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MySqlFenceReport {
    pub took: Duration,
    /// `user@host (id N)` of each session ended.
    pub ended_sessions: Vec<String>,
}

/// The read-only fence on a MariaDB or MySQL blue. Sessions of `own_user` (turnout's account) are
/// kept.
#[derive(Clone, Debug)]
pub struct ReadOnlyFence {
    pub own_user: String,
    /// Blue is Oracle MySQL (known before the pause, so the fence asks no server inside it).
    pub oracle: bool,
    /// End the other *idle* sessions before `read_only` as well as all of them after: where new
    /// sessions are held (a [`crate::SessionHold`]), an idle application session is then ended
    /// rather than refused by `read_only` at its next write, and its next login waits for the other
    /// side. Only idle ones (`Sleep`): a session ended mid-statement would not know whether its
    /// statement committed, where `read_only` waits for running statements to finish. Without a
    /// hold, a session ended first would only log in to blue again.
    pub end_first: bool,
}

/// The replication channels applying changes into the server behind `conn` (it is itself a replica),
/// by name (`''` for MariaDB's default connection or MySQL's default channel). Replication threads
/// write through `read_only` and `super_read_only` alike, so a cutover of such a server could see
/// writes after its sentinel.
pub async fn running_replication(conn: &mut mysql_async::Conn, side: Side) -> Result<Vec<String>, CutoverError> {
    let oracle = is_oracle_mysql(conn, side).await?;
    let (statement, running, name) = if oracle {
        ("SHOW REPLICA STATUS", "Replica_SQL_Running", "Channel_Name")
    } else {
        ("SHOW ALL SLAVES STATUS", "Slave_SQL_Running", "Connection_name")
    };
    let grant = if oracle { "REPLICATION CLIENT" } else { "SLAVE MONITOR" };
    let rows: Vec<mysql_async::Row> = conn.query(statement).await.map_err(CutoverError::mysql(side, format!("{statement} (needs {grant})")))?;
    Ok(rows
        .iter()
        .filter(|r| r.get_opt::<String, _>(running).and_then(Result::ok).is_some_and(|v| v.eq_ignore_ascii_case("Yes")))
        .map(|r| r.get_opt::<String, _>(name).and_then(Result::ok).unwrap_or_default())
        .collect())
}

/// Whether the server behind `conn` is Oracle MySQL (which has `super_read_only`), not MariaDB.
async fn is_oracle_mysql(conn: &mut mysql_async::Conn, side: Side) -> Result<bool, CutoverError> {
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(CutoverError::mysql(side, "reading the server's version"))?;
    Ok(!version.unwrap_or_default().to_ascii_lowercase().contains("mariadb"))
}

/// Whether `grants` (SHOW GRANTS) let an account set `read_only`, write under it and end other
/// sessions — MariaDB: `READ ONLY ADMIN` or `SUPER`; Oracle MySQL: `SYSTEM_VARIABLES_ADMIN` (to set
/// it) and `CONNECTION_ADMIN` (to write under it and end sessions), or `SUPER`.
pub fn fence_privileged(grants: &[String], oracle: bool) -> bool {
    let global: Vec<String> = grants.iter().map(|g| g.to_ascii_uppercase()).filter(|g| g.contains(" ON *.* ")).collect();
    let has = |p: &str| global.iter().any(|g| g.contains("ALL PRIVILEGES") || g.contains("SUPER") || g.contains(p));
    if oracle {
        has("SYSTEM_VARIABLES_ADMIN") && has("CONNECTION_ADMIN")
    } else {
        has("READ ONLY ADMIN") || has("READ_ONLY ADMIN")
    }
}

/// The GRANT that lets `user` fence a server of this kind.
pub fn fence_grant(user: &str, oracle: bool) -> String {
    if oracle {
        format!("GRANT SYSTEM_VARIABLES_ADMIN, CONNECTION_ADMIN ON *.* TO '{user}'@'%';")
    } else {
        format!("GRANT READ ONLY ADMIN, CONNECTION ADMIN ON *.* TO '{user}'@'%'; (SUPER before MariaDB 10.11)")
    }
}

impl ReadOnlyFence {
    /// Accounts that can still write while `read_only` is on (MariaDB: `READ ONLY ADMIN`, `SUPER`;
    /// MySQL: `CONNECTION_ADMIN`, `SUPER`), other than `own_user` and the servers' own locked
    /// accounts, each with the REVOKE that would fence it too.
    pub async fn unfenced_accounts(&self, blue: &mut mysql_async::Conn) -> Result<Vec<(String, String)>, CutoverError> {
        // MySQL lists dynamic privileges (CONNECTION_ADMIN) here too.
        let rows: Vec<(String, String)> = blue
            .query(
                "SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES \
                 WHERE PRIVILEGE_TYPE IN ('READ_ONLY ADMIN', 'READ ONLY ADMIN', 'SUPER', 'CONNECTION_ADMIN') ORDER BY GRANTEE, PRIVILEGE_TYPE",
            )
            .await
            .map_err(CutoverError::mysql(Side::Blue, "listing accounts that may write under read_only"))?;
        let own = format!("'{}'@", self.own_user);
        Ok(rows
            .into_iter()
            .filter(|(grantee, _)| !grantee.starts_with(&own) && !grantee.starts_with("'mariadb.sys'@") && !grantee.starts_with("'mysql."))
            // information_schema spells it READ_ONLY ADMIN; the grammar takes READ ONLY ADMIN.
            .map(|(grantee, privilege)| (grantee.clone(), format!("REVOKE {} ON *.* FROM {grantee};", privilege.replace("READ_ONLY", "READ ONLY"))))
            .collect())
    }

    /// Sessions on blue of turnout's own account that are not turnout's (`own`: the connection ids
    /// turnout opened), as `user@host (id N)`. The account may write under `read_only` (it must, to
    /// write the sentinel), so an application logged in with it would keep writing through the fence
    /// and its writes after the sentinel would be lost: the cutover refuses while any exists.
    /// Replication threads of turnout's binlog stream are turnout's.
    pub async fn foreign_sessions(&self, blue: &mut mysql_async::Conn, own: &[u32]) -> Result<Vec<String>, CutoverError> {
        let sessions: Vec<(u64, String, String)> = blue
            .exec(
                "SELECT ID, USER, HOST FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER = ? \
                 AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Killed') ORDER BY ID",
                (&self.own_user,),
            )
            .await
            .map_err(CutoverError::mysql(Side::Blue, "listing the sessions of turnout's account"))?;
        Ok(sessions
            .into_iter()
            .filter(|(id, _, _)| !own.iter().any(|o| u64::from(*o) == *id))
            .map(|(id, user, host)| format!("{user}@{host} (id {id})"))
            .collect())
    }

    /// Whether blue is read-only now (`read_only`; MySQL's `super_read_only` implies it).
    pub async fn is_fenced(&self, blue: &mut mysql_async::Conn) -> Result<bool, CutoverError> {
        let on: Option<i64> = blue.query_first("SELECT @@GLOBAL.read_only").await.map_err(CutoverError::mysql(Side::Blue, "reading read_only"))?;
        Ok(on == Some(1))
    }

    /// Makes blue read-only within `budget` and ends every other session but turnout's own (`own`:
    /// the connection ids turnout opened) — sessions of turnout's account it did not open included;
    /// with [`ReadOnlyFence::end_first`], before setting `read_only` as well as after.
    pub async fn apply(&self, blue: &mut mysql_async::Conn, budget: Duration, own: &[u32]) -> Result<MySqlFenceReport, CutoverError> {
        let started = Instant::now();
        let seconds = budget.as_secs().max(1);
        let mut ended = if self.end_first { self.end_sessions(blue, own, true).await? } else { Vec::new() };
        blue.query_drop(format!("SET SESSION lock_wait_timeout = {seconds}"))
            .await
            .map_err(CutoverError::mysql(Side::Blue, "bounding the fence's wait (lock_wait_timeout)"))?;
        if let Err(e) = blue.query_drop("SET GLOBAL read_only = ON").await {
            return Err(match &e {
                mysql_async::Error::Server(s) if s.code == 1227 => CutoverError::Privilege {
                    what: format!("turnout's account may not set read_only ({})", s.message),
                    fix: format!(
                        "GRANT READ ONLY ADMIN ON *.* TO '{0}'@'%'; on MariaDB (SUPER before 10.11), GRANT SYSTEM_VARIABLES_ADMIN, \
                         CONNECTION_ADMIN ON *.* TO '{0}'@'%'; on MySQL",
                        self.own_user
                    ),
                },
                _ => CutoverError::mysql(Side::Blue, format!("setting read_only within {seconds} s (sessions holding locks kept it from being set)"))(e),
            });
        }
        // A session ended first may still be listed, being ended.
        for session in self.end_sessions(blue, own, false).await? {
            if !ended.contains(&session) {
                ended.push(session);
            }
        }
        Ok(MySqlFenceReport { took: started.elapsed(), ended_sessions: ended })
    }

    /// Ends every session on blue but turnout's own (`own`) and the server's — with `idle`, only
    /// those between statements; returns them as `user@host (id N)`.
    async fn end_sessions(&self, blue: &mut mysql_async::Conn, own: &[u32], idle: bool) -> Result<Vec<String>, CutoverError> {
        let sessions: Vec<(u64, String, String)> = blue
            .query(format!(
                "SELECT ID, USER, HOST FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
                 AND USER NOT IN ('system user', 'event_scheduler') AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Killed'){}",
                if idle { " AND COMMAND = 'Sleep'" } else { "" }
            ))
            .await
            .map_err(CutoverError::mysql(Side::Blue, "listing sessions to end"))?;
        let mut ended = Vec::new();
        for (id, user, host) in sessions {
            if user == self.own_user && own.iter().any(|o| u64::from(*o) == id) {
                continue;
            }
            match blue.query_drop(format!("KILL CONNECTION {id}")).await {
                Ok(()) => ended.push(format!("{user}@{host} (id {id})")),
                // Gone already.
                Err(mysql_async::Error::Server(s)) if s.code == 1094 => {}
                // MySQL: a session of an account with SYSTEM_USER may only be ended by one. It is left
                // open: the seal (super_read_only) that follows the sentinel refuses its writes, and
                // the proof covers anything it commits before that.
                Err(mysql_async::Error::Server(s)) if s.code == 1095 && self.oracle => {
                    tracing::warn!("session {id} of {user}@{host} (SYSTEM_USER) could not be ended; super_read_only refuses its writes");
                }
                Err(e) => return Err(CutoverError::mysql(Side::Blue, format!("ending session {id} of {user}"))(e)),
            }
        }
        Ok(ended)
    }

    /// On Oracle MySQL, after turnout's sentinel: `super_read_only = ON`, so no account at all
    /// commits on blue any more, and `gtid_executed` read after it — every transaction blue committed
    /// (`None` on MariaDB, which has no `super_read_only`). Setting it waits for commits in flight,
    /// bounded by the `lock_wait_timeout` [`ReadOnlyFence::apply`] set on this session.
    pub async fn seal(&self, blue: &mut mysql_async::Conn) -> Result<Option<String>, CutoverError> {
        if !self.oracle {
            return Ok(None);
        }
        blue.query_drop("SET GLOBAL super_read_only = ON").await.map_err(CutoverError::mysql(Side::Blue, "setting super_read_only"))?;
        let executed: Option<String> =
            blue.query_first("SELECT @@GLOBAL.gtid_executed").await.map_err(CutoverError::mysql(Side::Blue, "reading gtid_executed under super_read_only"))?;
        Ok(Some(executed.unwrap_or_default().replace('\n', "")))
    }

    /// Makes blue writable again (on MySQL, `read_only = OFF` turns `super_read_only` off too).
    pub async fn undo(&self, blue: &mut mysql_async::Conn) -> Result<(), CutoverError> {
        blue.query_drop("SET GLOBAL read_only = OFF").await.map_err(CutoverError::mysql(Side::Blue, "setting read_only off again"))
    }
}
