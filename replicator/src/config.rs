//! The TOML configuration (the keys: `docs/src/reference/configuration.md`). Only `source.url`, `target.url` and `state.dir` are required.
//!
//! `${VAR}` anywhere in a string value expands from the environment before validation; an unset
//! variable is an error naming the field. [`Config::validate`] names the field path of every problem
//! (`cutover.pgbouncer.admin_url`). Secrets (URLs with passwords, tokens) are held in [`Secret`], whose
//! `Debug` and `Display` never show the value.

mod canary;
pub mod convert;
mod cutover;
mod fleet;
pub mod handover;
mod verify;
mod watch;
pub use canary::{Canary, CanaryConfig, Split};
pub use cutover::{
    reversed, CommandConfig, CutoverConfig, Fence, HaproxyConfig, PgbouncerConfig, ReadyConfig, Switch, SwitchCommandConfig, WindowBudget, READY_TIMEOUT,
    VERIFY_MAX_AGE,
};
pub use fleet::{EtcdConfig, SidecarFleet};
pub use verify::{Continuous, VerifyConfig};
pub use watch::WatchConfig;

use crate::duration::{parse_duration, parse_size};
use crate::error::Error;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use turnout_connect::pg::ConnectOptions;

/// A string that must not reach logs, `/status`, metrics or error messages.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret value, for the one place that needs it (a connection, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub target: TargetConfig,
    pub state: StateConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub cutover: CutoverConfig,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    #[serde(default)]
    pub apply: ApplyConfig,
    #[serde(default)]
    pub tables: TablesConfig,
    #[serde(default)]
    pub watch: WatchConfig,
    #[serde(default)]
    pub verify: VerifyConfig,
    #[serde(default)]
    pub canary: CanaryConfig,
    /// `[convert]`: between two engines, the lossy mappings accepted for named columns.
    #[serde(default)]
    pub convert: convert::ConvertConfig,
    /// `[[handover]]`: consumers of blue's change log carried over to green at the cutover.
    #[serde(default)]
    pub handover: Vec<handover::Handover>,
    /// `[fleet]`: the etcd cluster this sidecar votes in when a fleet cuts over as one decision.
    #[serde(default)]
    pub fleet: SidecarFleet,
    /// Set by [`reversed`] only: `source` names green and `target` blue (the rollback window's
    /// reverse stream).
    #[serde(skip)]
    pub reversed: bool,
}

/// Which of blue's tables replicate. Patterns are `schema.table` with `*` wildcards in either part;
/// unquoted names fold to lower case, double-quoted ones are literal, and a pattern without a schema
/// means `public` (see [`crate::tables::TablePattern`]). Partitions go with their root.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesConfig {
    /// Tables to replicate; default (unset): every user table.
    pub include: Option<Vec<String>>,
    /// Tables left out even when `include` matches them.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Leave out (with a logged warning naming each) selected tables that have neither a primary key
    /// nor `REPLICA IDENTITY FULL`, instead of refusing to start. Default false.
    #[serde(default)]
    pub skip_without_identity: bool,
}

/// Streaming apply: batching and memory.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// Memory for transactions still being received (e.g. `"256MiB"`); beyond it their changes are
    /// spilled to the state store. Default 256MiB.
    pub memory_budget: Option<String>,
    /// Row changes per green transaction (several source transactions merge up to this). Default 5000.
    pub batch_rows: Option<usize>,
    /// Longest wait before a partly filled batch is applied (e.g. `"50ms"`). Default 0.
    pub batch_delay: Option<String>,
    /// Green sessions that apply non-conflicting parts of a batch side by side, committing in
    /// source order. Default [`DEFAULT_APPLY_SESSIONS`].
    pub sessions: Option<usize>,
    /// Green sessions that apply large transactions while blue still streams them (PostgreSQL
    /// protocol 2+), one per transaction, each committing at its commit; 0 applies every transaction
    /// whole at its commit. Default [`DEFAULT_STREAM_SESSIONS`].
    pub stream_sessions: Option<usize>,
}

/// Default `apply.stream_sessions` (as PostgreSQL's `max_parallel_apply_workers_per_subscription`).
pub const DEFAULT_STREAM_SESSIONS: usize = 2;

/// Default `apply.sessions`.
pub const DEFAULT_APPLY_SESSIONS: usize = 1;

/// Most `apply.sessions`.
pub const MAX_APPLY_SESSIONS: usize = 32;

/// The initial snapshot.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Concurrent copy jobs; default: the number of cores, at least 2 and at most 8.
    pub workers: Option<usize>,
    /// Tables larger than this many MiB are copied as several page ranges at once (default 64; 0 = never).
    pub split_mb: Option<u64>,
    /// How the initial copy runs: `consistent` (one snapshot for the whole copy), `chunked` (chunks
    /// reconciled with the stream, each recorded when it is on green, resumable) or `auto` (default:
    /// chunked when the selected tables hold at least [`CHUNKED_FROM`] bytes).
    pub mode: Option<SnapshotMode>,
    /// The size of one chunk of the chunked copy (default `64MiB`, at least `64KiB`).
    pub chunk_size: Option<String>,
}

/// `snapshot.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    #[default]
    Auto,
    Consistent,
    Chunked,
}

/// With `snapshot.mode = "auto"`, the size of the selected tables from which the copy is chunked:
/// 32 GiB. Measured (see the benchmarks), a chunked copy takes about 1.5× a consistent one, whose
/// single snapshot is cheap for a short copy; from about ten minutes of copy on the measured machine,
/// what one long snapshot holds on blue (WAL, the xmin horizon) and what an interruption costs (the
/// whole copy again) outweigh it.
pub const CHUNKED_FROM: u64 = 32 << 30;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `postgres://user:password@host:port/database?sslmode=…` (blue).
    pub url: Secret,
    /// How often a heartbeat is written on blue (e.g. `"100ms"`, the default).
    pub heartbeat_interval: Option<String>,
    /// MySQL/MariaDB: the `server_id` turnout registers with as a replica of blue (default: derived from
    /// the stream id, shown in `/status`); it must differ from every server's and replica's id.
    pub server_id: Option<u32>,
    /// How long the change stream may stay silent (no data, no keepalive) before its connection is
    /// presumed dead and reopened (like PostgreSQL's `wal_receiver_timeout`); default `60s`.
    pub receive_timeout: Option<String>,
    /// The `pg_dump` used to copy the schema when green lacks the tables; it must be at least blue's
    /// major version. Default: the newest found under `/usr/lib/postgresql/*/bin`, `PATH` and
    /// turnout's tool cache.
    pub pg_dump: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `postgres://…` (green).
    pub url: Secret,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Where turnout keeps its durable state.
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
}

fn default_listen() -> String {
    "127.0.0.1:9187".into()
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: default_listen() }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Lag in seconds above which the lag alert is warning (e.g. `"5s"`). The lag alert is on when
    /// this or `lag_critical` is set; see [`crate::alerts`] for the exact rules.
    pub lag_warning: Option<String>,
    /// Lag in seconds above which the lag alert is critical; greater than `lag_warning`.
    pub lag_critical: Option<String>,
    /// How long a condition must hold before an alert changes level, up or down. Default 0s.
    pub min_duration: Option<String>,
    /// `http(s)://` URL POSTed a JSON event per change of level; may carry credentials.
    pub webhook: Option<Secret>,
    /// Program and arguments run per change of level, with the JSON event on stdin.
    pub command: Option<Vec<String>>,
}

impl Config {
    /// Reads, expands and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile { path: path.display().to_string(), source })?;
        Self::parse(&text, |name| std::env::var(name).ok())
    }

    /// Parses TOML text, expanding `${VAR}` with `env`, and validates it.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let config: Config = parse_expanded(text, env)?;
        config.validate()?;
        Ok(config)
    }

    /// The traffic switch the configuration asks for when it needs no source family (haproxy,
    /// command, none); `None` for the pgbouncer switch, which PostgreSQL's cutover builds with its
    /// fence ([`crate::source::pg::cutover::build`]).
    pub fn plain_switch(&self) -> Result<Option<turnout_cutover::TrafficSwitch>, Error> {
        use turnout_cutover::TrafficSwitch;
        let c = &self.cutover;
        Ok(Some(match c.switch {
            Switch::Pgbouncer => return Ok(None),
            Switch::Haproxy => {
                let h = c.haproxy.as_ref().ok_or_else(|| Error::config("cutover.haproxy", "is missing"))?;
                TrafficSwitch::HaProxy {
                    admin_socket: h.admin_socket.clone().ok_or_else(|| Error::config("cutover.haproxy.admin_socket", "is missing"))?,
                    backend: h.backend.clone().unwrap_or_default(),
                }
            }
            Switch::Command => TrafficSwitch::Command {
                argv: c.command.as_ref().map(|c| c.argv.clone()).unwrap_or_default(),
                back: c.command.as_ref().and_then(|c| c.back_argv.clone()).filter(|b| !b.is_empty()),
            },
            Switch::None => TrafficSwitch::None,
        }))
    }

    /// Blue's and green's URLs as a traffic switch or a read split gives them to a command.
    pub fn blue_green(&self) -> turnout_cutover::BlueGreen<'_> {
        turnout_cutover::BlueGreen { blue_url: self.source.url.expose(), green_url: self.target.url.expose() }
    }

    /// Which database blue is, from `source.url`'s scheme.
    pub fn source_kind(&self) -> SourceKind {
        SourceKind::of(self.source.url.expose())
    }

    /// Which database green is, from `target.url`'s scheme.
    pub fn target_kind(&self) -> SourceKind {
        SourceKind::of(self.target.url.expose())
    }

    /// Checks every field; the error names the first bad field's path and how to fix it.
    pub fn validate(&self) -> Result<(), Error> {
        let source = self.source_kind();
        let target = self.target_kind();
        // MySQL/MariaDB → PostgreSQL is a composition of the two sides (`source/compose`).
        if target != source && !(source == SourceKind::MySql && target == SourceKind::Pg) {
            return Err(Error::config(
                "target.url",
                format!(
                    "blue is {} but green is {}: turnout replicates PostgreSQL to PostgreSQL, MySQL/MariaDB to MySQL/MariaDB and \
                     MySQL/MariaDB to PostgreSQL; use a {} URL for green",
                    source.name(),
                    target.name(),
                    if source == SourceKind::Pg { "postgres://" } else { "mysql:// or postgres://" }
                ),
            ));
        }
        crate::with_family!(self, F => F::validate(self))?;
        self.validate_handover(source)?;
        for (at, accept) in self.convert.accept.iter().enumerate() {
            accept.parse(at)?;
            if source == target {
                return Err(Error::config(format!("convert.accept[{at}]"), "applies only between two engines (a mysql:// blue and a postgres:// green)"));
            }
        }
        if let Some(etcd) = &self.fleet.etcd {
            etcd.validate("fleet.etcd")?;
        }
        if self.state.dir.as_os_str().is_empty() {
            return Err(Error::config("state.dir", "is empty; give a directory turnout may create and own"));
        }
        self.validate_http()?;
        self.cutover.verify_max_age()?;
        self.canary()?;
        if self.cutover.window_budget()?.max_held_bytes.is_some() && source != SourceKind::Pg {
            return Err(Error::config(
                "cutover.window_max_held",
                "applies to PostgreSQL only: green's binlogs are kept by green's own retention, not held by turnout; use cutover.window_max",
            ));
        }
        self.validate_alerts()?;
        self.apply_memory_budget()?;
        if opt_duration("source.receive_timeout", &self.source.receive_timeout)?.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err(Error::config("source.receive_timeout", "must be at least 1s (the source sends keepalives every few seconds)"));
        }
        if opt_duration("source.heartbeat_interval", &self.source.heartbeat_interval)?.is_some_and(|d| d < Duration::from_millis(10)) {
            return Err(Error::config("source.heartbeat_interval", "must be at least 10ms"));
        }
        self.validate_apply()?;
        self.snapshot_chunk_bytes()?;
        if self.snapshot.workers == Some(0) {
            return Err(Error::config("snapshot.workers", "must be at least 1"));
        }
        self.table_filter()?;
        self.verify.settings(self.cutover.verify_max_age()?)?;
        self.validate_cutover()
    }

    /// `http.listen`: an address, and reachable from other machines only with `cutover.token` set (an
    /// open `POST /cutover` would be anyone's).
    fn validate_http(&self) -> Result<(), Error> {
        let listen = self
            .http
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| Error::config("http.listen", format!("'{}' is not host:port ({e}); e.g. 127.0.0.1:9187", self.http.listen)))?;
        if !listen.ip().is_loopback() && self.cutover.token.as_ref().is_none_or(|t| t.expose().is_empty()) {
            return Err(Error::config(
                "http.listen",
                format!(
                    "{listen} is reachable from other machines but cutover.token is not set; set cutover.token to a long random \
                     secret (e.g. token = \"${{TURNOUT_TOKEN}}\") or listen on 127.0.0.1"
                ),
            ));
        }
        Ok(())
    }

    /// `[alerts]`: durations, warning under critical, an http(s) webhook, a command with a program.
    fn validate_alerts(&self) -> Result<(), Error> {
        let warning = opt_duration("alerts.lag_warning", &self.alerts.lag_warning)?;
        let critical = opt_duration("alerts.lag_critical", &self.alerts.lag_critical)?;
        opt_duration("alerts.min_duration", &self.alerts.min_duration)?;
        if let (Some(w), Some(c)) = (warning, critical) {
            if w >= c {
                return Err(Error::config("alerts.lag_critical", "must be greater than alerts.lag_warning"));
            }
        }
        if let Some(hook) = &self.alerts.webhook {
            let ok = url::Url::parse(hook.expose()).map(|u| matches!(u.scheme(), "http" | "https")).unwrap_or(false);
            if !ok {
                return Err(Error::config("alerts.webhook", "is not an http:// or https:// URL"));
            }
        }
        if matches!(&self.alerts.command, Some(argv) if argv.is_empty()) {
            return Err(Error::config("alerts.command", "is empty; give [\"/path/to/program\", \"arg\", …]"));
        }
        Ok(())
    }

    /// `[apply]`: a batch delay that parses, batches and session counts in range.
    fn validate_apply(&self) -> Result<(), Error> {
        opt_duration("apply.batch_delay", &self.apply.batch_delay)?;
        if self.apply.batch_rows == Some(0) {
            return Err(Error::config("apply.batch_rows", "must be at least 1"));
        }
        if let Some(n) = self.apply.sessions {
            if !(1..=MAX_APPLY_SESSIONS).contains(&n) {
                return Err(Error::config("apply.sessions", format!("must be between 1 and {MAX_APPLY_SESSIONS} (1 applies everything in one green session)")));
            }
        }
        if self.apply.stream_sessions.is_some_and(|n| n > MAX_APPLY_SESSIONS) {
            return Err(Error::config(
                "apply.stream_sessions",
                format!("must be between 0 and {MAX_APPLY_SESSIONS} (0 applies large transactions whole at their commit)"),
            ));
        }
        Ok(())
    }

    /// The `[tables]` include/exclude patterns, parsed; errors name the pattern's field path.
    /// The `[tables]` filter, its names read by the source's rules (PostgreSQL: folded, `public` by
    /// default; MySQL/MariaDB: case kept, the source database by default).
    pub fn table_filter(&self) -> Result<crate::tables::TableFilter, Error> {
        let rules = crate::with_family!(self, F => F::name_rules(self))?;
        crate::tables::TableFilter::with_rules(self.tables.include.as_deref(), &self.tables.exclude, &rules)
    }

    fn validate_handover(&self, source: SourceKind) -> Result<(), Error> {
        for (at, entry) in self.handover.iter().enumerate() {
            entry.validate(at, source == SourceKind::MySql)?;
            if self.handover[..at].iter().any(|e| e.name() == entry.name()) {
                return Err(Error::config(format!("handover[{at}]"), format!("'{}' is named twice; keep one entry", entry.name())));
            }
        }
        Ok(())
    }

    /// Concurrent snapshot copy jobs.
    pub fn snapshot_workers(&self) -> usize {
        self.snapshot.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8))
    }

    /// Page count above which a table is split into ranges (8 KiB pages).
    pub fn snapshot_split_pages(&self) -> u64 {
        self.snapshot.split_mb.unwrap_or(64) * 1024 / 8
    }

    /// Whether the initial copy of `bytes` of tables is chunked (`snapshot.mode`).
    /// Whether the copy is chunked when the configuration alone says so (`None` for `auto`, which
    /// decides by size: [`Config::snapshot_chunked`]).
    pub fn snapshot_chunked_as_set(&self) -> Option<bool> {
        match self.snapshot.mode.unwrap_or_default() {
            SnapshotMode::Chunked => Some(true),
            SnapshotMode::Consistent => Some(false),
            SnapshotMode::Auto => None,
        }
    }

    pub fn snapshot_chunked(&self, bytes: u64) -> bool {
        match self.snapshot.mode.unwrap_or_default() {
            SnapshotMode::Chunked => true,
            SnapshotMode::Consistent => false,
            SnapshotMode::Auto => bytes >= CHUNKED_FROM,
        }
    }

    /// Bytes of one chunk of the chunked copy (`snapshot.chunk_size`).
    pub fn snapshot_chunk_bytes(&self) -> Result<u64, Error> {
        let Some(text) = &self.snapshot.chunk_size else { return Ok(64 << 20) };
        let bytes = parse_size(text).map_err(|e| Error::config("snapshot.chunk_size", e))?;
        if bytes < 64 << 10 {
            return Err(Error::config("snapshot.chunk_size", format!("'{text}' is below the minimum of 64KiB")));
        }
        Ok(bytes)
    }

    /// Bytes of in-progress transactions kept in memory before spilling (at least 1 MiB).
    pub fn apply_memory_budget(&self) -> Result<usize, Error> {
        let Some(text) = &self.apply.memory_budget else { return Ok(256 << 20) };
        let bytes = parse_size(text).map_err(|e| Error::config("apply.memory_budget", e))?;
        if bytes < 1 << 20 {
            return Err(Error::config("apply.memory_budget", format!("'{text}' is below the minimum of 1MiB")));
        }
        usize::try_from(bytes).map_err(|_| Error::config("apply.memory_budget", format!("'{text}' is too large")))
    }

    /// How often a heartbeat is written on blue.
    pub fn receive_timeout(&self) -> Duration {
        self.source.receive_timeout.as_deref().and_then(|d| parse_duration(d).ok()).unwrap_or(Duration::from_secs(60))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.source.heartbeat_interval.as_deref().and_then(|d| parse_duration(d).ok()).unwrap_or(Duration::from_millis(100))
    }

    /// Rows per green transaction.
    pub fn apply_batch_rows(&self) -> usize {
        self.apply.batch_rows.unwrap_or(5_000)
    }

    /// Green sessions applying side by side.
    pub fn apply_sessions(&self) -> usize {
        self.apply.sessions.unwrap_or(DEFAULT_APPLY_SESSIONS)
    }

    /// Green sessions applying streamed transactions early.
    pub fn apply_stream_sessions(&self) -> usize {
        self.apply.stream_sessions.unwrap_or(DEFAULT_STREAM_SESSIONS)
    }

    /// Longest wait before a partly filled batch is applied.
    pub fn apply_batch_delay(&self) -> Duration {
        self.apply.batch_delay.as_deref().and_then(|d| parse_duration(d).ok()).unwrap_or(Duration::ZERO)
    }

    /// Connection settings for blue.
    /// The server `source.url` names here: blue, or green in the reverse stream's configuration.
    pub fn source_side(&self) -> crate::error::Side {
        if self.reversed {
            crate::error::Side::Green
        } else {
            crate::error::Side::Blue
        }
    }

    /// The server `target.url` names here: green, or blue in the reverse stream's configuration.
    pub fn target_side(&self) -> crate::error::Side {
        if self.reversed {
            crate::error::Side::Blue
        } else {
            crate::error::Side::Green
        }
    }

    pub fn source_options(&self) -> Result<ConnectOptions, Error> {
        url_options(&self.source.url, "source.url")
    }

    /// Connection settings for green.
    pub fn target_options(&self) -> Result<ConnectOptions, Error> {
        url_options(&self.target.url, "target.url")
    }
}

/// `host:port/database` of a connection URL, never its user or password.
pub fn address(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let default = if u.scheme().starts_with("postgres") { 5432 } else { 3306 };
            format!("{}:{}{}", u.host_str().unwrap_or("localhost"), u.port().unwrap_or(default), u.path())
        }
        Err(_) => "(unreadable URL)".into(),
    }
}

/// The kind of database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// `postgres://` or `postgresql://`.
    Pg,
    /// `mysql://` or `mariadb://`.
    MySql,
    /// `stub://`: the family that replicates nothing and keeps the seam honest (`source/stub`).
    #[cfg(test)]
    Stub,
}

impl SourceKind {
    pub fn of(url: &str) -> SourceKind {
        #[cfg(test)]
        if url.starts_with("stub://") {
            return SourceKind::Stub;
        }
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            SourceKind::MySql
        } else {
            SourceKind::Pg
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Pg => "PostgreSQL",
            SourceKind::MySql => "MySQL/MariaDB",
            #[cfg(test)]
            SourceKind::Stub => "stub",
        }
    }
}

fn url_options(url: &Secret, field: &'static str) -> Result<ConnectOptions, Error> {
    if SourceKind::of(url.expose()) == SourceKind::MySql {
        return Err(Error::config(field, "is a MySQL/MariaDB URL where a postgres:// URL is needed"));
    }
    ConnectOptions::from_url(url.expose(), field).map_err(|e| match e {
        turnout_decoders::DecodeError::Config { reason, .. } => Error::config(field, reason),
        other => Error::config(field, other.to_string()),
    })
}

fn opt_duration(field: &str, v: &Option<String>) -> Result<Option<Duration>, Error> {
    v.as_deref().map(|s| parse_duration(s).map_err(|e| Error::config(field, e))).transpose()
}

/// toml's messages quote the offending input, which may hold a secret: keep only the first line
/// and the position.
/// A TOML syntax error with its line and column, so the operator can find it.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let at = match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(" at line {line}, column {column}")
        }
        None => String::new(),
    };
    format!("not valid TOML{at}: {}; fix the syntax (https://toml.io)", e.message().trim_end())
}

fn toml_message(e: &toml::de::Error) -> String {
    let msg = e.message().to_string();
    match e.span() {
        Some(span) => format!("{msg} (at byte {})", span.start),
        None => msg,
    }
}

/// Parses TOML text into `T`, expanding `${VAR}` with `env` first; an error names the field path
/// (`apply.batch_rows`), not just "the file". Shared by `turnout.toml` and `fleet.toml`.
pub(crate) fn parse_expanded<T: serde::de::DeserializeOwned>(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<T, Error> {
    let mut value: toml::Value = toml::from_str(text).map_err(|e| Error::config("(file)", syntax_message(text, &e)))?;
    expand(&mut value, "", &env)?;
    serde_path_to_error::deserialize(value).map_err(|e: serde_path_to_error::Error<toml::de::Error>| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() { "(file)".to_string() } else { path };
        Error::config(field, toml_message(e.inner()))
    })
}

/// Expands `${VAR}` in every string of `value`; `path` is the dotted field path for errors.
fn expand(value: &mut toml::Value, path: &str, env: &impl Fn(&str) -> Option<String>) -> Result<(), Error> {
    match value {
        toml::Value::String(s) => {
            *s = expand_str(s, path, env)?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand(item, &format!("{path}[{i}]"), env)?;
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                expand(v, &child, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(s: &str, path: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, Error> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| Error::config(path, "has an unterminated ${…}; write ${VARIABLE}"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::config(path, format!("'${{{name}}}' is not a valid environment variable reference")));
        }
        let value =
            env(name).ok_or_else(|| Error::config(path, format!("environment variable {name} is not set; export it or write the value in the file")))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[source]
url = "postgres://repl:${BLUE_PASSWORD}@blue:5432/app"
[target]
url = "postgres://app:pw@green:5432/app"
[state]
dir = "/var/lib/turnout"
"#;

    fn env(name: &str) -> Option<String> {
        (name == "BLUE_PASSWORD").then(|| "s3cret".to_string())
    }

    #[test]
    fn a_wrongly_typed_or_unknown_field_is_named_by_its_path() {
        let err = Config::parse(&format!("{MINIMAL}\n[apply]\nbatch_rows = \"many\"\n"), env).expect_err("string for a number");
        assert!(err.to_string().starts_with("config apply.batch_rows:"), "{err}");
        let err = Config::parse(&format!("{MINIMAL}\n[cutover]\nfence = \"none\"\nswitsh = \"none\"\n"), env).expect_err("typo");
        assert!(err.to_string().contains("cutover") && err.to_string().contains("switsh"), "{err}");
    }

    #[test]
    fn apply_session_counts_out_of_range_are_named_with_their_range() {
        let err = Config::parse(&format!("{MINIMAL}\n[apply]\nstream_sessions = 33\n"), env).expect_err("too many");
        assert!(err.to_string().starts_with("config apply.stream_sessions:") && err.to_string().contains("between 0 and 32"), "{err}");
        let err = Config::parse(&format!("{MINIMAL}\n[apply]\nsessions = 0\n"), env).expect_err("none");
        assert!(err.to_string().starts_with("config apply.sessions:"), "{err}");
        let c = Config::parse(&format!("{MINIMAL}\n[apply]\nstream_sessions = 0\n"), env).expect("0 turns early apply off");
        assert_eq!(c.apply_stream_sessions(), 0);
        assert_eq!(Config::parse(MINIMAL, env).expect("valid").apply_stream_sessions(), DEFAULT_STREAM_SESSIONS);
    }

    #[test]
    fn minimal_config_gets_defaults_and_expands_variables() {
        let c = Config::parse(MINIMAL, env).expect("valid");
        assert_eq!(c.http.listen, "127.0.0.1:9187");
        assert_eq!(c.cutover.fence, Fence::None);
        assert_eq!(c.source_options().expect("url").password.as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn unset_variable_names_the_field_and_variable() {
        let err = Config::parse(MINIMAL, |_| None).expect_err("unset");
        let msg = err.to_string();
        assert!(msg.contains("source.url") && msg.contains("BLUE_PASSWORD"), "{msg}");
    }

    #[test]
    fn missing_required_fields_and_unknown_fields_are_named() {
        let err = Config::parse("[source]\nurl = \"postgres://a@b/c\"\n[state]\ndir = \"/x\"\n", env).expect_err("no target");
        assert!(err.to_string().contains("target"), "{err}");
        let err = Config::parse(&format!("{MINIMAL}\n[http]\nlisten = \"x\"\nlistne = 1\n"), env).expect_err("typo");
        assert!(err.to_string().contains("listne"), "{err}");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("[http]\nlisten = \"nope\"", "http.listen"),
            ("[http]\nlisten = \"0.0.0.0:9187\"", "cutover.token"),
            ("[alerts]\nlag_warning = \"5\"", "alerts.lag_warning"),
            ("[alerts]\nlag_warning = \"30s\"\nlag_critical = \"5s\"", "alerts.lag_critical"),
            ("[alerts]\nwebhook = \"ftp://x\"", "alerts.webhook"),
            ("[cutover]\nfence = \"pgbouncer\"", "cutover.pgbouncer"),
            ("[cutover]\nwindow_max = \"500ms\"", "cutover.window_max"),
            ("[cutover]\nwindow_max_held = \"0B\"", "cutover.window_max_held"),
            ("[cutover]\nverify_max_age = \"soon\"", "cutover.verify_max_age"),
            ("[cutover]\nfence = \"pgbouncer\"\n[cutover.pgbouncer]\ndatabase = \"app\"", "cutover.pgbouncer.admin_url"),
            (
                "[cutover]\nswitch = \"pgbouncer\"\n[cutover.pgbouncer]\nadmin_url = \"postgres://a:b@h:6432/pgbouncer\"\ndatabase = \"app\"",
                "cutover.pgbouncer.config_file",
            ),
            ("[cutover]\nswitch = \"haproxy\"\n[cutover.haproxy]\nbackend = \"db\"", "cutover.haproxy.admin_socket"),
            ("[cutover]\nswitch = \"command\"", "cutover.command.argv"),
            ("[cutover]\nswitch = \"command\"\n[cutover.command]\nargv = [\"x\"]\nready_url = \"http://app/ready\"", "cutover.command.ready_green"),
            ("[cutover]\nswitch = \"command\"\n[cutover.command]\nargv = [\"x\"]\nready_green = \"postgres\"", "cutover.command.ready_url"),
            ("[cutover]\nswitch = \"command\"\n[cutover.command]\nargv = [\"x\"]\nready_url = \"http://app/ready\"\nready_green = \"postgres\"", "cutover.command.ready_blue"),
            (
                "[cutover]\nswitch = \"command\"\n[cutover.command]\nargv = [\"x\"]\nready_url = \"http://app/\"\nready_green = \"a\"\nready_blue = \"a\"",
                "cutover.command.ready_blue",
            ),
            ("[cutover]\nswitch = \"command\"\n[cutover.command]\nargv = [\"x\"]\nready_url = \"ftp://app/\"\nready_green = \"a\"\nready_blue = \"b\"", "cutover.command.ready_url"),
            ("[cutover]\nswitch = \"command\"\n[cutover.command]\nargv = [\"x\"]\nready_url = \"http://app/\"\nready_green = \" \"", "cutover.command.ready_green"),
            (
                "[cutover]\nswitch = \"command\"\n[cutover.command]\nargv = [\"x\"]\nready_url = \"http://app/\"\nready_green = \"a\"\nready_blue = \"b\"\nready_timeout = \"0s\"",
                "cutover.command.ready_timeout",
            ),
            ("[fleet.etcd]\nendpoints = [\"https://e:2379\"]\nca_file = \"/ca\"\ncert_file = \"/c\"", "fleet.etcd.key_file"),
            ("[fleet.etcd]\nendpoints = [\"https://e:2379\"]\nca_file = \"/ca\"\nkey_file = \"/k\"", "fleet.etcd.cert_file"),
            ("[fleet.etcd]\nendpoints = [\"http://e:2379\"]\ncert_file = \"/c\"\nkey_file = \"/k\"", "fleet.etcd.cert_file"),
            ("[fleet.etcd]\nendpoints = [\"https://e:2379\"]", "fleet.etcd.ca_file"),
            ("[cutover]\nswitch = \"none\"\n[cutover.command]\nready_url = \"http://app/\"\nready_green = \"a\"\nready_blue = \"b\"", "cutover.command.ready_url"),
        ];
        for (extra, field) in cases {
            let err = Config::parse(&format!("{MINIMAL}\n{extra}\n"), env).expect_err(field);
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
        let bad_url = MINIMAL.replace("postgres://app:pw@green:5432/app", "mysql://app@green/app");
        let err = Config::parse(&bad_url, env).expect_err("mysql");
        assert!(err.to_string().contains("target.url"), "{err}");
    }

    #[test]
    fn table_patterns_are_validated_with_their_field_path() {
        let c = Config::parse(MINIMAL, env).expect("valid");
        assert!(c.table_filter().expect("no filter").is_everything() && !c.tables.skip_without_identity);
        let ok = "[tables]\ninclude = [\"public.*\", \"sales.orders\"]\nexclude = [\"*.audit_*\"]\nskip_without_identity = true";
        let c = Config::parse(&format!("{MINIMAL}\n{ok}\n"), env).expect("valid filter");
        assert!(!c.table_filter().expect("filter").is_everything() && c.tables.skip_without_identity);
        for (extra, field) in [
            ("[tables]\ninclude = [\"a.b\", \"c.d\", \"a.b.c\"]", "tables.include[2]"),
            ("[tables]\nexclude = [\"public.\\\"open\"]", "tables.exclude[0]"),
            ("[tables]\ninclude = []", "tables.include"),
            ("[tables]\ninclde = [\"x\"]", "inclde"),
        ] {
            let err = Config::parse(&format!("{MINIMAL}\n{extra}\n"), env).expect_err(field);
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn parse_errors_do_not_echo_secrets() {
        let text = "[source]\nurl = \"postgres://u:hunter2@h/d\"\n[target\nurl = 1";
        let err = Config::parse(text, env).expect_err("broken toml");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
