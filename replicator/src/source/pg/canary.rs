//! PostgreSQL's green for a read canary ([`GreenReads`]): the probe on its own session, the
//! transactions rolled back in green's database (`pg_stat_database.xact_rollback`), and the
//! read-only fence of the cutover ([`WriteFence::ReadOnly`]) put on green's database.
//!
//! Counted as failures: every transaction green's database rolled back — a reader's statement that
//! failed, a deadlock, a cancelled query; turnout's own live-verify snapshots on green end that way
//! too (one per worker and round).

use crate::config::Config;
use crate::error::Error;
use crate::source::contract::canary::GreenReads;
use std::time::Duration;
use tokio_postgres::Client;
use turnout_cutover::WriteFence;

/// How long fencing green may wait for the sessions it ends to be gone: within the bound on
/// turnout's own statements on green ([`crate::source::contract::canary::GREEN_TIMEOUT`]), so the
/// fence's own error (naming the sessions) is the one reported.
const FENCE_TIMEOUT: Duration = Duration::from_secs(4);
const _: () = assert!(FENCE_TIMEOUT.as_secs() < crate::source::contract::canary::GREEN_TIMEOUT.as_secs());

pub(crate) struct PgGreen {
    target_url: String,
    probe_url: String,
    database: String,
    green: Option<Client>,
    probe: Option<Client>,
}

impl PgGreen {
    pub(crate) fn new(config: &Config) -> Result<PgGreen, Error> {
        let database = config.target_options()?.database;
        Ok(PgGreen { target_url: config.target.url.expose().to_owned(), probe_url: config.probe_url().to_owned(), database, green: None, probe: None })
    }

    /// turnout's own session on green.
    async fn green(&mut self) -> Result<&Client, Error> {
        if self.green.as_ref().is_none_or(Client::is_closed) {
            self.green = Some(super::session(&self.target_url, crate::error::Side::Green).await?);
        }
        self.green.as_ref().ok_or_else(|| Error::Internal("the canary's session on green is missing".into()))
    }

    fn fence_of(&self) -> WriteFence {
        WriteFence::ReadOnly { database: self.database.clone() }
    }
}

impl GreenReads for PgGreen {
    async fn probe_once(&mut self, sql: &str) -> Result<(), Error> {
        if self.probe.as_ref().is_none_or(Client::is_closed) {
            let client = super::session(&self.probe_url, crate::error::Side::Green).await?;
            // The probe only reads, whatever it says.
            client.batch_execute("SET default_transaction_read_only = on").await.map_err(Error::green("making the probe's session read-only"))?;
            self.probe = Some(client);
        }
        let client = self.probe.as_ref().ok_or_else(|| Error::Internal("the probe's session is missing".into()))?;
        client.simple_query(sql).await.map(|_| ()).map_err(Error::green("the probe"))
    }

    fn drop_probe(&mut self) {
        self.probe = None;
    }

    async fn failures(&mut self) -> Option<u64> {
        let green = self.green().await.ok()?;
        let row = green.query_one("SELECT xact_rollback::bigint FROM pg_stat_database WHERE datname = current_database()", &[]).await;
        match row {
            Ok(row) => u64::try_from(row.get::<_, i64>(0)).ok(),
            Err(_) => {
                self.green = None;
                None
            }
        }
    }

    async fn fence(&mut self) -> Result<Option<String>, Error> {
        let fence = self.fence_of();
        let green = self.green().await?;
        if fence.is_fenced(green).await.map_err(Error::from)? {
            return Ok(None);
        }
        fence.check(green).await.map_err(Error::from)?;
        let report = fence.apply(green, FENCE_TIMEOUT).await.map_err(Error::from)?;
        let ended = report.ended_sessions.iter().map(|s| format!("{} ({}, pid {})", s.user, s.client, s.pid)).collect::<Vec<_>>();
        Ok(Some(format!(
            "green's database {} is read-only for the application (default_transaction_read_only){}",
            self.database,
            if ended.is_empty() { String::new() } else { format!("; ended its sessions of {}", ended.join(", ")) }
        )))
    }

    async fn unfence(&mut self) -> Result<String, Error> {
        let fence = self.fence_of();
        let green = self.green().await?;
        fence.undo(green).await.map_err(Error::from)?;
        Ok(format!("green's database {} takes the application's writes again", self.database))
    }
}
