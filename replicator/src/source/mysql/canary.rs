//! The MySQL family's green for a read canary ([`GreenReads`]): the probe on its own read-only
//! session, the errors green raised for other accounts than turnout's (Oracle MySQL's
//! `performance_schema`; MariaDB keeps no such count unless its `performance_schema` is on), and `read_only` as the fence on the application's
//! writes — turnout's account writes through it (`CONNECTION_ADMIN` on Oracle MySQL, `READ ONLY
//! ADMIN` on MariaDB), which the fence checks first.
//!
//! Accounts with those privileges (or `SUPER`) write through `read_only` too: the application's must
//! not have them.

use super::{connect, options};
use crate::config::Config;
use crate::error::Error;
use crate::source::contract::canary::GreenReads;
use mysql_async::prelude::Queryable;

pub(crate) struct MySqlGreen {
    target: mysql_async::Opts,
    probe_opts: mysql_async::Opts,
    green: Option<mysql_async::Conn>,
    probe: Option<mysql_async::Conn>,
}

impl MySqlGreen {
    pub(crate) fn new(config: &Config) -> Result<MySqlGreen, Error> {
        Ok(MySqlGreen {
            target: options(config.target.url.expose(), "target.url")?,
            probe_opts: options(config.probe_url(), "canary.probe_url")?,
            green: None,
            probe: None,
        })
    }

    /// turnout's own session on green.
    async fn green(&mut self) -> Result<&mut mysql_async::Conn, Error> {
        if self.green.is_none() {
            let mut conn = connect(&self.target, crate::error::Side::Green).await?;
            // `SET GLOBAL read_only` waits for locks; never longer than this.
            conn.query_drop("SET SESSION lock_wait_timeout = 5").await.map_err(Error::mysql(turnout_cutover::Side::Green, "bounding lock waits"))?;
            self.green = Some(conn);
        }
        self.green.as_mut().ok_or_else(|| Error::Internal("the canary's session on green is missing".into()))
    }

    async fn read_only(&mut self) -> Result<bool, Error> {
        let green = self.green().await?;
        let on: Option<i64> = green.query_first("SELECT @@GLOBAL.read_only").await.map_err(Error::mysql(turnout_cutover::Side::Green, "reading read_only"))?;
        Ok(on == Some(1))
    }
}

impl GreenReads for MySqlGreen {
    async fn probe_once(&mut self, sql: &str) -> Result<(), Error> {
        let green = turnout_cutover::Side::Green;
        if self.probe.is_none() {
            let mut conn = turnout_connect::mysql::conn::open(&self.probe_opts).await.map_err(Error::mysql(green, "opening the probe's session"))?;
            // The probe only reads, whatever it says.
            conn.query_drop("SET SESSION TRANSACTION READ ONLY").await.map_err(Error::mysql(green, "making the probe's session read-only"))?;
            self.probe = Some(conn);
        }
        let conn = self.probe.as_mut().ok_or_else(|| Error::Internal("the probe's session is missing".into()))?;
        conn.query_drop(sql).await.map_err(Error::mysql(green, "the probe"))
    }

    fn drop_probe(&mut self) {
        self.probe = None;
    }

    async fn failures(&mut self) -> Option<u64> {
        // Other accounts' errors only: turnout's own sessions raise errors they handle (a progress
        // row's duplicate key, for one) at every transaction.
        let user = self.target.user().unwrap_or_default().to_owned();
        let green = self.green().await.ok()?;
        let sum: Result<Option<Option<u64>>, _> = green
            .exec_first(
                "SELECT CAST(COALESCE(SUM(SUM_ERROR_RAISED), 0) AS UNSIGNED) FROM performance_schema.events_errors_summary_by_account_by_error \
                 WHERE USER IS NOT NULL AND USER <> ?",
                (user,),
            )
            .await;
        match sum {
            Ok(count) => count.flatten(),
            Err(mysql_async::Error::Server(_)) => None,
            Err(_) => {
                self.green = None;
                None
            }
        }
    }

    async fn fence(&mut self) -> Result<Option<String>, Error> {
        if self.read_only().await? {
            return Ok(None);
        }
        let user = self.target.user().unwrap_or_default().to_owned();
        let green = self.green().await?;
        let oracle = !super::is_mariadb(green, crate::error::Side::Green).await?;
        let grants: Vec<String> = green.query("SHOW GRANTS").await.map_err(Error::mysql(turnout_cutover::Side::Green, "SHOW GRANTS"))?;
        if !turnout_cutover::fence_privileged(&grants, oracle) {
            return Err(Error::Setup(format!(
                "turnout's account on green may not set read_only, or write through it, so the canary cannot keep the application's writes \
                 off green while turnout's apply goes on: {} on green (or set canary.fence_green = false)",
                turnout_cutover::fence_grant(&user, oracle)
            )));
        }
        green.query_drop("SET GLOBAL read_only = ON").await.map_err(Error::mysql(turnout_cutover::Side::Green, "setting read_only"))?;
        // Accounts that write through read_only anyway: named, with the REVOKE that would stop them.
        let fence = turnout_cutover::ReadOnlyFence { own_user: user, oracle, end_first: false };
        let through = fence.unfenced_accounts(green).await.unwrap_or_default();
        let warning = if through.is_empty() {
            String::new()
        } else {
            let named: Vec<String> = through.iter().map(|(account, revoke)| format!("{account} ({revoke})")).collect();
            format!("; WARNING: these accounts write through read_only, so an application using them could still write on green: {}", named.join(", "))
        };
        Ok(Some(format!("green is read_only for the application (turnout's account writes through it){warning}")))
    }

    async fn unfence(&mut self) -> Result<String, Error> {
        let green = self.green().await?;
        green.query_drop("SET GLOBAL read_only = OFF").await.map_err(Error::mysql(turnout_cutover::Side::Green, "setting read_only off"))?;
        Ok("green takes the application's writes again (read_only = OFF)".into())
    }
}
