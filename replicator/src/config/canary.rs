//! `[canary]`: sharing the read endpoint's traffic with green before the cutover (see
//! [`crate::canary`]).

use super::{opt_duration, CommandConfig, Config, Secret};
use crate::error::Error;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use turnout_cutover::{PgBouncerAdmin, ReadSplit};

/// How reads are shared and when green counts as healthy enough to take them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// How the read endpoint's traffic is shared: `haproxy`, `pgbouncer` or `command`. A canary
    /// needs one; without it `turnout canary` is refused.
    pub split: Option<Split>,
    pub haproxy: Option<ReadHaproxy>,
    pub pgbouncer: Option<ReadPgbouncer>,
    pub command: Option<CommandConfig>,
    /// How often green's health is checked and the ramp moved on (default `1s`): a tripped
    /// threshold sends the reads back to blue within one check.
    pub check_every: Option<String>,
    /// The staleness allowed (default `1s`): while green's lag is above it, its share is 0. `turnout
    /// canary --max-lag` overrides it per canary.
    pub max_lag: Option<String>,
    /// The probe's latency on green above which the canary trips (default `500ms`).
    pub max_latency: Option<String>,
    /// Failures per second on green above which the canary trips (default 1): transactions green
    /// rolled back (PostgreSQL) or errors it raised (Oracle MySQL), and connections to green the
    /// split saw fail (haproxy).
    pub max_errors_per_second: Option<f64>,
    /// The probe run on green at every check (default `SELECT 1`).
    pub probe: Option<String>,
    /// Where the probe connects (default `target.url`): point it where the read endpoint reaches
    /// green, so that it sees what readers see.
    pub probe_url: Option<Secret>,
    /// While a canary runs, green refuses the application's writes (PostgreSQL: its database
    /// read-only by default and other sessions ended; MySQL family: `read_only`); turnout's apply
    /// is not affected. Default true.
    #[serde(default = "yes")]
    pub fence_green: bool,
}

fn yes() -> bool {
    true
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            split: None,
            haproxy: None,
            pgbouncer: None,
            command: None,
            check_every: None,
            max_lag: None,
            max_latency: None,
            max_errors_per_second: None,
            probe: None,
            probe_url: None,
            fence_green: true,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    Haproxy,
    Pgbouncer,
    Command,
}

/// `[canary.haproxy]`: the read backend (servers `blue` and `green`), on the cutover's haproxy unless
/// given.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadHaproxy {
    pub admin_socket: Option<PathBuf>,
    pub backend: Option<String>,
}

/// `[canary.pgbouncer]`: the read entry, on the cutover's pgbouncer unless given.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadPgbouncer {
    pub admin_url: Option<Secret>,
    pub config_file: Option<PathBuf>,
    pub database: Option<String>,
}

/// [`CanaryConfig`] read and checked.
#[derive(Clone, Debug)]
pub struct Canary {
    pub split: ReadSplit,
    pub check_every: Duration,
    pub max_lag: Duration,
    pub max_latency: Duration,
    pub max_errors_per_second: f64,
    pub probe: String,
    pub fence_green: bool,
}

impl Config {
    /// The canary's settings; `None` when no `canary.split` is configured. An error names the field.
    pub fn canary(&self) -> Result<Option<Canary>, Error> {
        let c = &self.canary;
        let Some(split) = c.split else { return Ok(None) };
        let split = match split {
            Split::Haproxy => {
                let h = c.haproxy.as_ref();
                let admin_socket = h
                    .and_then(|h| h.admin_socket.clone())
                    .or_else(|| self.cutover.haproxy.as_ref().and_then(|h| h.admin_socket.clone()))
                    .ok_or_else(|| Error::config("canary.haproxy.admin_socket", "is missing (and so is cutover.haproxy.admin_socket)"))?;
                let backend = h
                    .and_then(|h| h.backend.clone())
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| Error::config("canary.haproxy.backend", "is missing; the read backend holding servers \"blue\" and \"green\""))?;
                if self.cutover.haproxy.as_ref().and_then(|h| h.backend.as_ref()) == Some(&backend) {
                    return Err(Error::config(
                        "canary.haproxy.backend",
                        "is the cutover's (write) backend; the canary shares a backend that only reads go through",
                    ));
                }
                ReadSplit::HaProxy { admin_socket, backend }
            }
            Split::Pgbouncer => {
                let p = c.pgbouncer.as_ref();
                let cut = self.cutover.pgbouncer.as_ref();
                let admin = p
                    .and_then(|p| p.admin_url.as_ref())
                    .or_else(|| cut.and_then(|p| p.admin_url.as_ref()))
                    .ok_or_else(|| Error::config("canary.pgbouncer.admin_url", "is missing (and so is cutover.pgbouncer.admin_url)"))?;
                let admin = PgBouncerAdmin::from_url(admin.expose()).map_err(|e| Error::config("canary.pgbouncer.admin_url", e.to_string()))?;
                let config_file = p
                    .and_then(|p| p.config_file.clone())
                    .or_else(|| cut.and_then(|p| p.config_file.clone()))
                    .ok_or_else(|| Error::config("canary.pgbouncer.config_file", "is missing (and so is cutover.pgbouncer.config_file)"))?;
                let database = p
                    .and_then(|p| p.database.clone())
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| Error::config("canary.pgbouncer.database", "is missing; the [databases] entry only reads go through"))?;
                if cut.and_then(|p| p.database.as_ref()) == Some(&database) {
                    return Err(Error::config(
                        "canary.pgbouncer.database",
                        "is the cutover's (write) entry; the canary shares an entry that only reads go through",
                    ));
                }
                if self.source_kind() != super::SourceKind::Pg {
                    return Err(Error::config("canary.split", "pgbouncer fronts PostgreSQL only; for MySQL/MariaDB use \"haproxy\" or \"command\""));
                }
                ReadSplit::PgBouncer { admin, database, config_file }
            }
            Split::Command => {
                let argv = c.command.as_ref().map(|c| c.argv.clone()).unwrap_or_default();
                if argv.is_empty() {
                    return Err(Error::config("canary.command.argv", "is missing or empty but canary.split is \"command\""));
                }
                ReadSplit::Command { argv }
            }
        };
        let check_every = opt_duration("canary.check_every", &c.check_every)?.unwrap_or(Duration::from_secs(1));
        if check_every < Duration::from_millis(100) {
            return Err(Error::config("canary.check_every", "must be at least 100ms"));
        }
        let max_errors_per_second = c.max_errors_per_second.unwrap_or(1.0);
        if !(max_errors_per_second.is_finite() && max_errors_per_second >= 0.0) {
            return Err(Error::config("canary.max_errors_per_second", "must be a number at least 0"));
        }
        let probe = c.probe.clone().unwrap_or_else(|| "SELECT 1".into());
        if probe.trim().is_empty() {
            return Err(Error::config("canary.probe", "is empty; give a read-only query, e.g. SELECT 1"));
        }
        Ok(Some(Canary {
            split,
            check_every,
            max_lag: opt_duration("canary.max_lag", &c.max_lag)?.unwrap_or(Duration::from_secs(1)),
            max_latency: opt_duration("canary.max_latency", &c.max_latency)?.unwrap_or(Duration::from_millis(500)),
            max_errors_per_second,
            probe,
            fence_green: c.fence_green,
        }))
    }

    /// Where the canary's probe connects.
    pub fn probe_url(&self) -> &str {
        self.canary.probe_url.as_ref().map_or_else(|| self.target.url.expose(), Secret::expose)
    }
}
