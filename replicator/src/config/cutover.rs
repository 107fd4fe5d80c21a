//! `[cutover]`: the fence, the switch and what each needs, the way back (`reverse`, `iterate`), the
//! verify gate, certificates and the rollback window's budget.

use super::{opt_duration, Config, Secret};
use crate::duration::parse_size;
use crate::error::Error;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use turnout_connect::pg::ConnectOptions;

/// How writes are fenced on the side traffic leaves (`cutover.fence`, and what a procedure puts up).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Fence {
    Pgbouncer,
    ReadOnly,
    #[default]
    None,
}

impl Fence {
    /// `pgbouncer`, `read-only` or `none`, as the configuration spells it.
    pub fn word(self) -> &'static str {
        match self {
            Fence::Pgbouncer => "pgbouncer",
            Fence::ReadOnly => "read-only",
            Fence::None => "none",
        }
    }
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Switch {
    Pgbouncer,
    Haproxy,
    Command,
    #[default]
    None,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutoverConfig {
    #[serde(default)]
    pub fence: Fence,
    /// Arm reverse replication (green → blue) at the cutover, so `turnout rollback` can go back
    /// without losing what green accepted. PostgreSQL: needs `wal_level = logical` on green and a
    /// role there that may create replication slots. Default true.
    #[serde(default = "yes")]
    pub reverse: bool,
    /// A rollback arms blue → green replication again from a hand-off on blue, as a cutover arms the
    /// reverse stream, so that a later `turnout cutover` needs no new copy. Default true.
    #[serde(default = "yes")]
    pub iterate: bool,
    #[serde(default)]
    pub switch: Switch,
    pub token: Option<Secret>,
    pub pgbouncer: Option<PgbouncerConfig>,
    pub haproxy: Option<HaproxyConfig>,
    pub command: Option<SwitchCommandConfig>,
    /// Every cutover also requires a passing live verify (as `turnout cutover --verify`).
    #[serde(default)]
    pub verify: bool,
    /// The oldest live verify the gate accepts, e.g. "30m" (default "1h").
    #[serde(default)]
    pub verify_max_age: Option<String>,
    /// A PKCS#8 PEM Ed25519 private key that signs every certificate
    /// (`openssl genpkey -algorithm ed25519 -out FILE`).
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// The rollback window ends on its own this long after the cutover, e.g. "72h".
    #[serde(default)]
    pub window_max: Option<String>,
    /// The rollback window ends on its own once the reverse stream's slot holds this much WAL on
    /// green, e.g. "50GiB" (PostgreSQL).
    #[serde(default)]
    pub window_max_held: Option<String>,
    /// Objects the side traffic moves to keeps as they are although the fenced side defines them
    /// differently or not at all, as the cutover names them (`"INDEX public.orders_green_idx"`):
    /// left alone by the definitions' settling and named in the certificate (PostgreSQL).
    #[serde(default)]
    pub keep_definitions: Vec<String>,
}

/// The rollback window's budget (`cutover.window_max`, `cutover.window_max_held`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowBudget {
    pub max_age: Option<Duration>,
    pub max_held_bytes: Option<u64>,
}

impl Default for CutoverConfig {
    fn default() -> Self {
        CutoverConfig {
            fence: Fence::default(),
            reverse: true,
            iterate: true,
            switch: Switch::default(),
            token: None,
            pgbouncer: None,
            haproxy: None,
            command: None,
            verify: false,
            verify_max_age: None,
            signing_key: None,
            window_max: None,
            window_max_held: None,
            keep_definitions: Vec::new(),
        }
    }
}

/// The oldest live verify a gated cutover accepts unless told otherwise.
pub const VERIFY_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

impl CutoverConfig {
    /// `cutover.window_max` and `cutover.window_max_held`, read.
    pub fn window_budget(&self) -> Result<WindowBudget, Error> {
        let max_age = opt_duration("cutover.window_max", &self.window_max)?;
        if max_age.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err(Error::config("cutover.window_max", "is under a second: the window would end at once; give e.g. \"72h\""));
        }
        let max_held_bytes =
            self.window_max_held.as_deref().map(|text| parse_size(text).map_err(|e| Error::config("cutover.window_max_held", e))).transpose()?;
        if max_held_bytes == Some(0) {
            return Err(Error::config("cutover.window_max_held", "is zero: the window would end at once; give e.g. \"50GiB\""));
        }
        Ok(WindowBudget { max_age, max_held_bytes })
    }

    /// `cutover.verify_max_age`, or its default.
    pub fn verify_max_age(&self) -> Result<std::time::Duration, Error> {
        Ok(opt_duration("cutover.verify_max_age", &self.verify_max_age)?.unwrap_or(VERIFY_MAX_AGE))
    }
}

fn yes() -> bool {
    true
}

/// The configuration of the reverse stream after a cutover: green is its source and blue its target;
/// everything else is the same.
pub fn reversed(config: &Config) -> Config {
    let mut back = config.clone();
    std::mem::swap(&mut back.source.url, &mut back.target.url);
    back.state.dir = config.state.dir.join("reverse");
    back.reversed = !config.reversed;
    back
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgbouncerConfig {
    pub admin_url: Option<Secret>,
    pub database: Option<String>,
    pub config_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyConfig {
    pub admin_socket: Option<PathBuf>,
    pub backend: Option<String>,
    /// `host:port` of the frontend the application connects to (whose default backend is
    /// `backend`): when set, new MySQL/MariaDB sessions wait in haproxy's queue through the write
    /// pause and land on the side traffic moves to ([`turnout_cutover::SessionHold`]).
    pub frontend: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    #[serde(default)]
    pub argv: Vec<String>,
}

/// `[cutover.command]`: the command switch, and its way back.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchCommandConfig {
    #[serde(default)]
    pub argv: Vec<String>,
    /// The command that moves the application back to blue (a rollback); without it the command
    /// switch has no inverse and `turnout rollback` is refused.
    #[serde(default)]
    pub back_argv: Option<Vec<String>>,
    /// An application that runs both data layers behind a flag says here which one it writes to:
    /// after the command, the fence holds until a `GET` of this URL answers 2xx with `ready_green`
    /// (after a rollback's `back_argv`: `ready_blue`) as its whole body, trimmed.
    #[serde(default)]
    pub ready_url: Option<Secret>,
    /// What `ready_url` answers once the application writes to green only.
    #[serde(default)]
    pub ready_green: Option<String>,
    /// What `ready_url` answers while the application writes to blue only (required with it: the
    /// answer is checked before the fence).
    #[serde(default)]
    pub ready_blue: Option<String>,
    /// How long the application has to answer ready after the command (default "30s").
    #[serde(default)]
    pub ready_timeout: Option<String>,
}

/// The readiness a command switch waits for, read from `[cutover.command]`.
#[derive(Clone, Debug)]
pub struct ReadyConfig {
    /// `ready_url`, checked (its `Debug` never shows it).
    pub target: crate::http_client::Target,
    pub green: String,
    pub blue: String,
    pub timeout: Duration,
}

/// How long an application has to answer ready unless told otherwise.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

impl SwitchCommandConfig {
    /// `ready_url` and what goes with it, checked; `None` when no readiness is configured.
    pub fn ready(&self) -> Result<Option<ReadyConfig>, Error> {
        let Some(url) = &self.ready_url else {
            for (field, set) in [
                ("cutover.command.ready_green", self.ready_green.is_some()),
                ("cutover.command.ready_blue", self.ready_blue.is_some()),
                ("cutover.command.ready_timeout", self.ready_timeout.is_some()),
            ] {
                if set {
                    return Err(Error::config(field, "is set without cutover.command.ready_url; give the URL the application answers on, or remove it"));
                }
            }
            return Ok(None);
        };
        let word = |field: &'static str, v: &Option<String>| -> Result<Option<String>, Error> {
            match v.as_deref().map(str::trim) {
                Some("") => Err(Error::config(field, "is empty; give the word the application answers with")),
                other => Ok(other.map(str::to_owned)),
            }
        };
        let green = word("cutover.command.ready_green", &self.ready_green)?.ok_or_else(|| {
            Error::config(
                "cutover.command.ready_green",
                "is missing but cutover.command.ready_url is set; give what the URL answers once the application writes to green (e.g. \"postgres\")",
            )
        })?;
        let blue = word("cutover.command.ready_blue", &self.ready_blue)?.ok_or_else(|| {
            Error::config(
                "cutover.command.ready_blue",
                "is missing but cutover.command.ready_url is set; give what the URL answers while the application writes to blue (e.g. \"mysql\"): \
                 turnout checks it before the fence",
            )
        })?;
        if blue == green {
            return Err(Error::config("cutover.command.ready_blue", "is the same as ready_green; the answers must tell the two sides apart"));
        }
        let target =
            crate::http_client::Target::parse(url.expose(), crate::http_client::native_roots).map_err(|e| Error::config("cutover.command.ready_url", e))?;
        let timeout = opt_duration("cutover.command.ready_timeout", &self.ready_timeout)?.unwrap_or(READY_TIMEOUT);
        if timeout.is_zero() {
            return Err(Error::config("cutover.command.ready_timeout", "is zero; give the application time to answer, e.g. \"30s\""));
        }
        Ok(Some(ReadyConfig { target, green, blue, timeout }))
    }
}

impl Config {
    /// Where new sessions are held through the write pause: the haproxy switch with
    /// `cutover.haproxy.frontend` set.
    pub fn session_hold(&self) -> Option<turnout_cutover::SessionHold> {
        let h = self.cutover.haproxy.as_ref().filter(|_| self.cutover.switch == Switch::Haproxy)?;
        Some(turnout_cutover::SessionHold { admin_socket: h.admin_socket.clone()?, backend: h.backend.clone()?, frontend: h.frontend.clone()? })
    }

    pub(super) fn validate_cutover(&self) -> Result<(), Error> {
        let c = &self.cutover;
        let needs_pgbouncer = c.fence == Fence::Pgbouncer || c.switch == Switch::Pgbouncer;
        if needs_pgbouncer {
            let p = c.pgbouncer.as_ref().ok_or_else(|| {
                Error::config(
                    "cutover.pgbouncer",
                    "is missing but cutover.fence or cutover.switch is \"pgbouncer\"; add a [cutover.pgbouncer] table with admin_url and database",
                )
            })?;
            let admin = p
                .admin_url
                .as_ref()
                .ok_or_else(|| Error::config("cutover.pgbouncer.admin_url", "is missing; e.g. postgres://admin:PASSWORD@127.0.0.1:6432/pgbouncer"))?;
            ConnectOptions::from_url(admin.expose(), "cutover.pgbouncer.admin_url").map_err(|e| Error::config("cutover.pgbouncer.admin_url", e.to_string()))?;
            if p.database.as_deref().is_none_or(str::is_empty) {
                return Err(Error::config("cutover.pgbouncer.database", "is missing; name the [databases] entry to pause and repoint"));
            }
            if c.switch == Switch::Pgbouncer && p.config_file.is_none() {
                return Err(Error::config("cutover.pgbouncer.config_file", "is missing; switch = \"pgbouncer\" rewrites that file's [databases] entry"));
            }
        }
        if c.switch == Switch::Haproxy {
            let h = c.haproxy.as_ref().ok_or_else(|| Error::config("cutover.haproxy", "is missing but cutover.switch is \"haproxy\""))?;
            if h.admin_socket.is_none() {
                return Err(Error::config("cutover.haproxy.admin_socket", "is missing; the path of haproxy's `stats socket … level admin`"));
            }
            if h.backend.as_deref().is_none_or(str::is_empty) {
                return Err(Error::config("cutover.haproxy.backend", "is missing; the backend holding servers \"blue\" and \"green\""));
            }
            if h.frontend.is_some() && (self.source_kind() != super::SourceKind::MySql || self.target_kind() != super::SourceKind::MySql) {
                return Err(Error::config(
                    "cutover.haproxy.frontend",
                    "holds MySQL/MariaDB sessions, and both sides here are not MySQL/MariaDB; for PostgreSQL, pgbouncer's fence holds them \
                     (cutover.fence = \"pgbouncer\"): remove the key",
                ));
            }
        }
        if c.switch == Switch::Command && c.command.as_ref().is_none_or(|cmd| cmd.argv.is_empty()) {
            return Err(Error::config("cutover.command.argv", "is missing or empty but cutover.switch is \"command\""));
        }
        if let Some(command) = &c.command {
            if command.ready()?.is_some() && c.switch != Switch::Command {
                return Err(Error::config(
                    "cutover.command.ready_url",
                    "is set but cutover.switch is not \"command\"; the readiness answers after a switch command",
                ));
            }
        }
        Ok(())
    }
}
