//! The MySQL/MariaDB side of a cutover: the `read_only` fence (or none), the sentinel as row 2 of the
//! heartbeat table written by turnout's own session (which `read_only` exempts: it holds `READ ONLY
//! ADMIN`), AUTO_INCREMENT counters and MariaDB sequences moved ahead of blue's on green, and green
//! made writable (`read_only = OFF`) before traffic arrives.
//!
//! Clients see the pause as errors, not waits: a write under `read_only` fails with error 1290
//! (`ER_OPTION_PREVENTS_STATEMENT`), and sessions open at the fence are ended (the client sees 2013
//! "Lost connection" or 1927 "Connection was killed"). A transaction that failed so did not commit
//! and can be retried; a client that retries on these errors with a new connection reaches green once
//! the switch is done.

use super::Procedure;
use crate::config::{Config, Fence};
use crate::error::Error;
use crate::source::mysql::{connect, database, options, quote};
use crate::source::{HEARTBEAT_TABLE, SENTINEL_ROW};
use mysql_async::prelude::Queryable;
use std::time::Duration;
use turnout_cutover::{sync_counters, CounterSync, ReadOnlyFence};

/// Values green's AUTO_INCREMENT counters and sequences are moved ahead of blue's before the fence.
const COUNTER_MARGIN: u64 = 1_000;

/// How long moving a counter on green may wait for a table another session holds.
const COUNTER_LOCK_WAIT: Duration = Duration::from_secs(10);

/// A cutover from a MySQL/MariaDB blue.
pub(crate) struct MySqlCutover {
    blue_opts: mysql_async::Opts,
    blue: mysql_async::Conn,
    green_opts: mysql_async::Opts,
    /// Opened when first needed: undoing the fence must not depend on green.
    green: Option<mysql_async::Conn>,
    blue_db: String,
    green_db: String,
    /// `None` for `cutover.fence = "none"`.
    fence: Option<ReadOnlyFence>,
}

impl MySqlCutover {
    pub(crate) async fn connect(config: &Config) -> Result<MySqlCutover, Error> {
        let blue_opts = options(config.source.url.expose(), "source.url")?;
        let green_opts = options(config.target.url.expose(), "target.url")?;
        let fence = match config.cutover.fence {
            Fence::ReadOnly => Some(ReadOnlyFence { own_user: blue_opts.user().unwrap_or_default().to_owned() }),
            Fence::None => None,
            Fence::Pgbouncer => {
                return Err(Error::config("cutover.fence", "pgbouncer fronts PostgreSQL only; for MySQL/MariaDB use read-only or none"))
            }
        };
        let blue = connect(&blue_opts, "blue").await?;
        Ok(MySqlCutover { blue_db: database(&blue_opts), green_db: database(&green_opts), blue_opts, blue, green_opts, green: None, fence })
    }

    /// Blue's and green's sessions, green's opened on first use.
    async fn sessions(&mut self) -> Result<(&mut mysql_async::Conn, &mut mysql_async::Conn), String> {
        if self.green.is_none() {
            let mut green = connect(&self.green_opts, "green").await.map_err(|e| e.to_string())?;
            // Moving a counter takes a metadata lock; a table held by another session must not hang
            // the cutover (the fence's own waits are bounded separately).
            green
                .query_drop(format!("SET SESSION lock_wait_timeout = {}", COUNTER_LOCK_WAIT.as_secs()))
                .await
                .map_err(|e| format!("green: bounding lock waits: {e}"))?;
            self.green = Some(green);
        }
        let green = self.green.as_mut().ok_or("green's session is missing")?;
        Ok((&mut self.blue, green))
    }

    async fn sync(&mut self, margin: u64) -> Result<Vec<CounterSync>, String> {
        let (blue_db, green_db) = (self.blue_db.clone(), self.green_db.clone());
        let (blue, green) = self.sessions().await?;
        sync_counters(blue, green, &blue_db, &green_db, margin).await.map_err(|e| e.to_string())
    }

    /// Whether turnout's account on blue may set `read_only`, write under it and end other sessions.
    async fn privileged(&mut self) -> Result<bool, String> {
        let grants: Vec<String> = self.blue.query("SHOW GRANTS").await.map_err(|e| format!("reading turnout's grants on blue: {e}"))?;
        Ok(grants.iter().map(|g| g.to_ascii_uppercase()).any(|g| {
            g.contains(" ON *.* ") && (g.contains("ALL PRIVILEGES") || g.contains("SUPER") || g.contains("READ ONLY ADMIN") || g.contains("READ_ONLY ADMIN"))
        }))
    }
}

fn counters_line(done: &[CounterSync], what: &str) -> String {
    format!("{what}: {} of {} AUTO_INCREMENT counters and sequences moved on green", done.iter().filter(|c| c.changed).count(), done.len())
}

impl Procedure for MySqlCutover {
    fn fence_kind(&self) -> &'static str {
        if self.fence.is_some() { "read-only" } else { "none" }
    }

    async fn preflight(&mut self) -> Result<Vec<String>, String> {
        let version: String = self.blue.query_first("SELECT VERSION()").await.map_err(|e| format!("reading blue's version: {e}"))?.unwrap_or_default();
        if !version.to_ascii_lowercase().contains("mariadb") {
            return Err(format!("blue is MySQL {version}: {}", crate::source::mysql::MYSQL_NOT_BUILT));
        }
        let Some(fence) = &self.fence else { return Ok(Vec::new()) };
        let unfenced = fence.unfenced_accounts(&mut self.blue).await.map_err(|e| e.to_string())?;
        Ok(unfenced
            .into_iter()
            .map(|(account, revoke)| format!("account {account} can still write while blue is read-only (READ ONLY ADMIN or SUPER): {revoke}"))
            .collect())
    }

    async fn check_fence(&mut self) -> Result<(), String> {
        let Some(own_user) = self.fence.as_ref().map(|f| f.own_user.clone()) else { return Ok(()) };
        if !self.privileged().await? {
            return Err(format!(
                "turnout's account may not set read_only, write its sentinel under it or end other sessions; \
                 GRANT READ ONLY ADMIN, CONNECTION ADMIN ON *.* TO '{own_user}'@'%'; (SUPER before MariaDB 10.11)"
            ));
        }
        Ok(())
    }

    async fn counters_ahead(&mut self) -> Result<String, String> {
        let done = self.sync(COUNTER_MARGIN).await.map_err(|e| format!("syncing AUTO_INCREMENT counters failed: {e}"))?;
        Ok(counters_line(&done, &format!("{COUNTER_MARGIN} values ahead of blue")))
    }

    async fn fence(&mut self, budget: Duration) -> Result<String, String> {
        let Some(fence) = &self.fence else { return Ok("no fence (cutover.fence = none): the operator stopped the writers".into()) };
        let report = fence.apply(&mut self.blue, budget).await.map_err(|e| e.to_string())?;
        Ok(format!(
            "fenced writes on blue (read_only = ON) in {} ms{}",
            report.took.as_millis(),
            if report.ended_sessions.is_empty() { String::new() } else { format!("; ended {} sessions: {}", report.ended_sessions.len(), report.ended_sessions.join(", ")) }
        ))
    }

    async fn write_sentinel(&mut self, id: &str) -> Result<(), String> {
        let number = u64::from_str_radix(id, 16).map_err(|_| format!("cutover id {id} is not a 64-bit hex number"))?.cast_signed();
        let table = format!("{}.{}", quote(&self.blue_db), quote(HEARTBEAT_TABLE));
        self.blue
            .query_drop(format!(
                "INSERT INTO {table} (id, at_us) VALUES ({SENTINEL_ROW}, {number}) ON DUPLICATE KEY UPDATE at_us = VALUES(at_us)"
            ))
            .await
            .map_err(|e| e.to_string())
    }

    async fn top_up(&mut self) -> Result<String, String> {
        let done = self.sync(0).await.map_err(|e| format!("checking AUTO_INCREMENT counters failed: {e}"))?;
        Ok(counters_line(&done, "checked against blue's final values"))
    }

    async fn open_green(&mut self) -> Result<Option<String>, String> {
        let (_, green) = self.sessions().await?;
        let read_only: Option<i64> = green.query_first("SELECT @@GLOBAL.read_only").await.map_err(|e| format!("reading green's read_only: {e}"))?;
        if read_only.unwrap_or(0) == 0 {
            return Ok(None);
        }
        green
            .query_drop("SET GLOBAL read_only = OFF")
            .await
            .map_err(|e| format!("green is read-only and setting read_only = OFF failed: {e}; grant turnout's account on green READ ONLY ADMIN"))?;
        Ok(Some("green was read-only: set read_only = OFF before traffic arrives".into()))
    }

    async fn undo(&mut self) -> Result<String, String> {
        let Some(fence) = &self.fence else { return Ok("no fence to undo".into()) };
        if fence.undo(&mut self.blue).await.is_err() {
            // The session may be gone (blue restarted, the network broke): once more on a new one.
            let mut fresh = connect(&self.blue_opts, "blue").await.map_err(|e| e.to_string())?;
            fence.undo(&mut fresh).await.map_err(|e| e.to_string())?;
            self.blue = fresh;
        }
        Ok("undid the fence (read_only = OFF): blue takes writes again".into())
    }
}
