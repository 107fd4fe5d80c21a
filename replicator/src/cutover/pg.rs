//! The PostgreSQL side of a cutover: the pgbouncer or read-only fence, the sentinel as a transactional
//! logical message (PostgreSQL 14+), and sequences moved ahead of blue's on green.

use super::Procedure;
use crate::config::{Config, Fence, Switch};
use crate::error::Error;
use std::time::Duration;
use tokio_postgres::Client;
use turnout_cutover::{PgBouncerAdmin, SequencePlan, TrafficSwitch, WriteFence};

/// Values green's sequences are moved ahead of blue's before the fence, so that normally nothing is
/// written on green while writes are paused.
const SEQUENCE_MARGIN: u32 = 1_000;

/// A cutover from a PostgreSQL blue.
pub(crate) struct PgCutover {
    blue: Client,
    fence: WriteFence,
    target_url: String,
    /// Green's session and the sequences moved ahead, once [`Procedure::counters_ahead`] ran.
    sequences: Option<(Client, SequencePlan)>,
}

impl PgCutover {
    /// A session on blue (directly, not through pgbouncer) for the fence, the sentinel and sequences.
    pub(crate) async fn connect(config: &Config) -> Result<PgCutover, Error> {
        let (fence, _) = build(config)?;
        let blue = turnout_sinks::pg::connect(config.source.url.expose()).await.map_err(Error::Sink)?;
        Ok(PgCutover { blue, fence, target_url: config.target.url.expose().to_owned(), sequences: None })
    }
}

impl Procedure for PgCutover {
    fn fence_kind(&self) -> &'static str {
        self.fence.kind()
    }

    async fn preflight(&mut self) -> Result<Vec<String>, String> {
        let supported: bool = self
            .blue
            .query_one("SELECT current_setting('server_version_num')::int >= 140000", &[])
            .await
            .map_err(|e| format!("reading blue's server version: {e}"))?
            .get(0);
        if supported {
            Ok(Vec::new())
        } else {
            Err("cutover needs PostgreSQL 14 or newer on blue (the sentinel is a logical message)".into())
        }
    }

    async fn check_fence(&mut self) -> Result<(), String> {
        self.fence.check(&self.blue).await.map_err(|e| e.to_string())
    }

    async fn counters_ahead(&mut self) -> Result<String, String> {
        let green = turnout_sinks::pg::connect(&self.target_url).await.map_err(|e| format!("connecting to green for the sequences: {e}"))?;
        let (seqs, plan) = turnout_cutover::sync_sequences_ahead(&self.blue, &green, SEQUENCE_MARGIN)
            .await
            .map_err(|e| format!("syncing sequences failed: {e}"))?;
        self.sequences = Some((green, plan));
        Ok(format!("moved {} of {} sequences on green {SEQUENCE_MARGIN} values ahead of blue", seqs.iter().filter(|s| s.changed).count(), seqs.len()))
    }

    async fn fence(&mut self, budget: Duration) -> Result<String, String> {
        let report = self.fence.apply(&self.blue, budget).await.map_err(|e| e.to_string())?;
        Ok(format!(
            "fenced writes on blue ({}) in {} ms{}",
            self.fence.kind(),
            report.took.as_millis(),
            if report.ended_sessions.is_empty() { String::new() } else { format!("; ended {} sessions", report.ended_sessions.len()) }
        ))
    }

    async fn write_sentinel(&mut self, id: &str) -> Result<(), String> {
        self.blue
            .batch_execute(&format!("BEGIN READ WRITE; SELECT pg_logical_emit_message(true, '{}', '{id}'); COMMIT", super::FENCE_PREFIX))
            .await
            .map_err(|e| e.to_string())
    }

    async fn top_up(&mut self) -> Result<String, String> {
        let Some((green, plan)) = &self.sequences else { return Ok("no sequences to check".into()) };
        let moved = plan.top_up(&self.blue, green).await.map_err(|e| format!("syncing sequences failed: {e}"))?;
        Ok(format!("checked {} sequences against blue ({moved} topped up on green)", plan.len()))
    }

    async fn open_green(&mut self) -> Result<Option<String>, String> {
        Ok(None)
    }

    async fn undo(&mut self) -> Result<String, String> {
        self.fence.undo(&self.blue).await.map_err(|e| e.to_string())?;
        Ok(format!("undid the fence ({}): blue takes writes again", self.fence.kind()))
    }
}

/// The PostgreSQL fence and switch the configuration asks for.
pub fn build(config: &Config) -> Result<(WriteFence, TrafficSwitch), Error> {
    let c = &config.cutover;
    let blue_db = config.source_options()?.database;
    // One admin handle (and so one console session) shared by the fence and the switch.
    let shared = match &c.pgbouncer {
        Some(p) if c.fence == Fence::Pgbouncer || c.switch == Switch::Pgbouncer => {
            let url = p.admin_url.as_ref().ok_or_else(|| Error::config("cutover.pgbouncer.admin_url", "is missing"))?;
            Some(PgBouncerAdmin::from_url(url.expose()).map_err(|e| Error::config("cutover.pgbouncer.admin_url", e.to_string()))?)
        }
        _ => None,
    };
    let admin = || -> Result<(PgBouncerAdmin, String), Error> {
        let p = c.pgbouncer.as_ref().ok_or_else(|| Error::config("cutover.pgbouncer", "is missing"))?;
        let admin = shared.clone().ok_or_else(|| Error::config("cutover.pgbouncer.admin_url", "is missing"))?;
        Ok((admin, p.database.clone().unwrap_or_else(|| blue_db.clone())))
    };
    let fence = match c.fence {
        Fence::Pgbouncer => {
            let (admin, database) = admin()?;
            WriteFence::PgBouncer { admin, database }
        }
        Fence::ReadOnly => WriteFence::ReadOnly { database: blue_db.clone() },
        Fence::None => WriteFence::None,
    };
    let switch = match c.switch {
        Switch::Pgbouncer => {
            let (admin, database) = admin()?;
            let config_file = c
                .pgbouncer
                .as_ref()
                .and_then(|p| p.config_file.clone())
                .ok_or_else(|| Error::config("cutover.pgbouncer.config_file", "is missing"))?;
            TrafficSwitch::PgBouncer { admin, database, config_file }
        }
        Switch::Haproxy | Switch::Command | Switch::None => super::build_switch(config)?,
    };
    Ok((fence, switch))
}
