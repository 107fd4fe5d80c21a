//! The command line (`docs/src/reference/cli.md`).

use crate::duration::parse_duration;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::error::{EXIT_CONFIG, EXIT_FAILED};

/// turnout — change-data-capture replication for blue-green database cutover.
#[derive(Debug, Parser)]
#[command(name = "turnout", version, about, long_about = None)]
pub struct Cli {
    /// Log lines as text for people, or one JSON object per line for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (to stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Path of the TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE", default_value = "turnout.toml")]
    pub config: PathBuf,
}

/// The arguments of `cutover` and `rollback`.
#[derive(Debug, Args)]
pub struct MoveArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Start when lag is below this: '<1s', '1s' or '500ms'. Required unless only --report is given.
    #[arg(long, value_name = "LAG", value_parser = parse_when_lag)]
    pub when_lag: Option<Duration>,
    /// Give up waiting for the lag condition after this long.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Undo the fence if writes would be paused longer than this.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub max_pause: Duration,
    /// Check every precondition and print the plan without fencing anything.
    #[arg(long, conflicts_with = "rehearse")]
    pub dry_run: bool,
    /// Do everything up to the proof (lag gate, fence, sentinel, wait for the other side, counters),
    /// then undo the fence instead of switching; report each step's time, the write pause and what
    /// would block or slow the real one. Writes pause for that moment.
    #[arg(long)]
    pub rehearse: bool,
    /// With --rehearse: do not ask before pausing writes.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Go on only if the last live verify (`turnout verify --live`) found no difference and is no
    /// older than --verify-max-age; otherwise refuse, naming the tables and keys.
    #[arg(long)]
    pub verify: bool,
    /// The oldest live verify --verify accepts (default: cutover.verify_max_age, else 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub verify_max_age: Option<Duration>,
    /// Write the certificate (JSON) to FILE when done — or, without --when-lag, the last one's.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// `turnout fleet`: many blue → green pairs cut over as one decision kept by etcd.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The fleet file: its name, its pairs' sidecars and its etcd cluster.
    #[arg(long, value_name = "FILE", default_value = "fleet.toml")]
    pub fleet: PathBuf,
    #[command(subcommand)]
    pub command: FleetCommand,
}

/// What `turnout fleet` does.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Every pair's side, phase, lag, alerts and cutover, and the fleet's last decision in etcd.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Serve the same as a page that reads it again every two seconds (`/`, and `/fleet.json`)
        /// on this address (`127.0.0.1:8090`), until interrupted.
        #[arg(long, value_name = "ADDR", conflicts_with = "json")]
        serve: Option<std::net::SocketAddr>,
    },
    /// Cut every pair over as one decision: every pair's dry run, then every pair fenced and proven,
    /// holding; one etcd transaction decides commit (every pair switches) or abort (every pair
    /// undoes its fence).
    Cutover {
        /// Start when every pair's lag is below this: '<1s', '1s' or '500ms'.
        #[arg(long, value_name = "LAG", value_parser = parse_when_lag)]
        when_lag: Duration,
        /// Give up waiting for the lag condition (and for every pair to be ready) after this long.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
        /// The fleet's pause budget: not every pair voted within it from the coordinator's go, the
        /// fleet aborts; a pair holding this long from its own fence without a decision aborts it.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
        max_pause: Duration,
        /// Every pair fences together and proves, then lifts its fence; nothing switches.
        #[arg(long, conflicts_with = "waves")]
        rehearse: bool,
        /// Every pair goes on only after a passing live verify (as `turnout cutover --verify`).
        #[arg(long)]
        verify: bool,
        /// Write the fleet's certificate (JSON) to FILE: each pair's certificate digest, the votes,
        /// the decision and its etcd revision (with --waves, each wave's and its soak).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Cut over in waves, one decision each: how many pairs are on green after each wave, as
        /// counts or shares of the fleet, the last 100% — e.g. 1,25%,100%. A wave never splits a
        /// group; pairs on green already count as done.
        #[arg(long, value_name = "SIZES", value_parser = crate::control::fleet::waves::parse_sizes)]
        waves: Option<crate::control::fleet::waves::Sizes>,
        /// With --waves: how long every pair on green must stay healthy before the next wave.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
        soak: Duration,
        /// With --waves: the most a pair's reverse-stream lag may reach during a soak.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
        soak_max_lag: Duration,
        /// With --waves: a command (`sh -c`) that must exit 0 after each soak, with TURNOUT_FLEET,
        /// TURNOUT_WAVE and TURNOUT_PAIRS_ON_GREEN set — e.g. the service's own health check.
        #[arg(long, value_name = "COMMAND")]
        gate_command: Option<String>,
    },
    /// Roll every pair back as one decision, in their rollback windows: every pair's dry run, then
    /// every pair fences green and proves blue has everything through its reverse stream, holding;
    /// one etcd transaction decides commit (every pair switches back to blue) or abort (every pair
    /// undoes its fence and stays on green).
    Rollback {
        /// Start when every pair's reverse lag is below this: '<1s', '1s' or '500ms'.
        #[arg(long, value_name = "LAG", value_parser = parse_when_lag)]
        when_lag: Duration,
        /// Give up waiting for the lag condition (and for every pair to be ready) after this long.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
        /// The fleet's pause budget, as for `fleet cutover`.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
        max_pause: Duration,
        /// Every pair fences green together and proves, then lifts its fence; nothing switches.
        #[arg(long)]
        rehearse: bool,
        /// Write the fleet's certificate (JSON) to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// End every pair's rollback window (as `turnout finish` on each).
    Finish,
}

/// The arguments of `canary`.
#[derive(Debug, Args)]
pub struct CanaryArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Green's share of reads to start at, e.g. 5% (0 ends the canary: every read to blue).
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub reads: u8,
    /// Raise the share by this much every --every while green stays healthy, e.g. 10%.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub step: Option<u8>,
    /// How long green must stay healthy at a share before the next step (default 2m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub every: Option<Duration>,
    /// The share the ramp stops at (default: --reads, or 100% with --step).
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub max: Option<u8>,
    /// The staleness allowed: while green lags more, its share is 0 (default canary.max_lag).
    #[arg(long, value_name = "LAG", value_parser = parse_when_lag)]
    pub max_lag: Option<Duration>,
}

impl CanaryArgs {
    /// What `POST /canary` asks.
    pub fn ask(&self) -> crate::canary::Ask {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        crate::canary::Ask { reads: self.reads, step: self.step, every_ms: self.every.map(ms), max: self.max, max_lag_ms: self.max_lag.map(ms) }
    }
}

/// `5%`, `5` or `12.5%` (rounded) as a percentage from 0 to 100.
pub fn parse_percent(text: &str) -> Result<u8, String> {
    let t = text.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    let value: f64 = number.parse().map_err(|_| format!("'{text}' is not a percentage like 5% or 50"))?;
    if !(0.0..=100.0).contains(&value) {
        return Err(format!("'{text}' is not between 0% and 100%"));
    }
    let rounded = value.round();
    (0..=100u8).find(|p| f64::from(*p) >= rounded).ok_or_else(|| format!("'{text}' is not between 0% and 100%"))
}

/// The arguments of `verify --live`.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Compare at one source position while writes go on (PostgreSQL, MariaDB; needs the running sidecar),
    /// in key chunks, naming every row that differs; resumes an unfinished run.
    #[arg(long)]
    pub live: bool,
    /// Rows per chunk (--live).
    #[arg(long, value_name = "ROWS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_rows: u64,
    /// Workers, each with one session on blue and one on green (--live).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub parallel: u64,
    /// Take new snapshots once a round's are this old: an open snapshot holds back vacuum on blue (--live).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub max_snapshot_age: Duration,
    /// Give up creating verify's temporary slot on blue after this long (--live; PostgreSQL).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub slot_timeout: Duration,
    /// Start over instead of resuming an unfinished run (--live).
    #[arg(long)]
    pub restart: bool,
    /// Print the values of differing columns; by default only their names (--live).
    #[arg(long)]
    pub show_values: bool,
    /// Print progress and an ETA to stderr this often; 0 never (--live).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub progress_every: Duration,
}

impl LiveArgs {
    /// What `verify --live` is asked.
    pub fn options(&self, table: Option<String>) -> crate::verify::live::LiveOptions {
        crate::verify::live::LiveOptions {
            table,
            chunk_rows: self.chunk_rows,
            parallel: usize::try_from(self.parallel).unwrap_or(1),
            max_snapshot_age: self.max_snapshot_age,
            slot_timeout: self.slot_timeout,
            restart: self.restart,
            show_values: self.show_values,
            progress_every: self.progress_every,
            rows_per_second: None,
            background: false,
            recheck: None,
        }
    }
}

impl MoveArgs {
    /// What `turnout cutover` (`rollback`) is asked: an error names the missing flag.
    pub fn invocation(&self) -> Result<crate::control::Invocation, String> {
        Ok(crate::control::Invocation { request: self.request()?, yes: self.yes, report: self.report.clone() })
    }

    /// What `POST /cutover` or `/rollback` asks for; none when only `--report` was given. An error
    /// names the missing flag.
    pub fn request(&self) -> Result<Option<crate::cutover::Request>, String> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if self.dry_run && self.report.is_some() {
            return Err("--dry-run changes nothing and leaves no certificate: drop --report".into());
        }
        let Some(when_lag) = self.when_lag else {
            if self.report.is_some() && !self.rehearse && !self.dry_run && !self.verify {
                return Ok(None);
            }
            return Err("--when-lag is required (e.g. --when-lag '<1s'); only `--report FILE` alone saves the last certificate".into());
        };
        Ok(Some(crate::cutover::Request {
            when_lag_ms: millis(when_lag),
            timeout_ms: millis(self.timeout),
            max_pause_ms: millis(self.max_pause),
            dry_run: self.dry_run,
            rehearse: self.rehearse,
            verify: self.verify,
            verify_max_age_ms: self.verify_max_age.map(millis),
            fleet: None,
        }))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot blue into green if needed, then stream changes; serves the HTTP API.
    Run(ConfigArg),
    /// Show phase, applied position and lag of a running sidecar.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Refresh continuously.
        #[arg(long)]
        watch: bool,
    },
    /// Fence writes on blue, prove green caught up, switch traffic to green, and (PostgreSQL) arm
    /// reverse replication green → blue for `rollback`.
    Cutover(MoveArgs),
    /// In the rollback window after a cutover: fence writes on green, prove blue caught up, and
    /// switch traffic back to blue.
    Rollback(MoveArgs),
    /// End the rollback window: stop reverse replication and drop its slot, publication and origin.
    Finish(ConfigArg),
    /// Show the writes that turnout did not make, seen on green before the cutover or on blue in
    /// the rollback window (`[watch]`); with --acknowledge, accept them so the cutover or `finish`
    /// may go on.
    RogueWrites {
        #[command(flatten)]
        config: ConfigArg,
        /// Acknowledge every such write seen so far (after reconciling them).
        #[arg(long)]
        acknowledge: bool,
    },
    /// Share a growing part of the read endpoint's traffic with green before the cutover (`[canary]`),
    /// while green stays healthy; `--reads 0` ends it. Prints what the sidecar did.
    Canary(CanaryArgs),
    /// A fleet of blue → green pairs, each with its own sidecar, cut over as one decision kept by
    /// etcd (`fleet.toml`).
    Fleet(FleetArgs),
    /// Check a cutover certificate (`cutover --report FILE`): its digest, and its signature if any.
    /// Exit 0 only when it is intact.
    Certificate {
        /// The certificate file.
        file: PathBuf,
        /// Require a signature by this Ed25519 public key (hex, as the certificate prints it).
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
    /// Preflight: check that replication can start (changes nothing). Exit 0 only when it can.
    Check(ConfigArg),
    /// Compare table contents of blue and green (row counts and a digest of every row).
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this table (schema.table).
        #[arg(long)]
        table: Option<String>,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Drop the slot, publication, origins and state.
    Teardown {
        #[command(flatten)]
        config: ConfigArg,
        /// Do it without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Local blue + green + load + cutover, no setup needed.
    Demo {
        /// MySQL-family blue and green behind haproxy instead of PostgreSQL behind pgbouncer.
        #[arg(long)]
        mysql: bool,
        /// A MySQL-family blue and a PostgreSQL 17 green: an application that speaks both moves to
        /// PostgreSQL when the cutover's command switch tells it to.
        #[arg(long, conflicts_with = "mysql")]
        mysql_to_postgres: bool,
        /// With --mysql or --mysql-to-postgres: `mysql` (Oracle MySQL 9.7, the default where its root
        /// file system can be built, else MariaDB) or `mariadb` (MariaDB 10.11).
        #[arg(long, value_name = "ENGINE")]
        engine: Option<DemoEngine>,
    },
}

/// The server the MySQL-family demo runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoEngine {
    /// Oracle MySQL 9.7.
    Mysql,
    /// MariaDB 10.11.
    Mariadb,
}

impl Command {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run(_) => "run",
            Command::Status { .. } => "status",
            Command::Cutover(_) => "cutover",
            Command::Rollback(_) => "rollback",
            Command::Finish(_) => "finish",
            Command::RogueWrites { .. } => "rogue-writes",
            Command::Canary(_) => "canary",
            Command::Fleet(_) => "fleet",
            Command::Certificate { .. } => "certificate",
            Command::Check(_) => "check",
            Command::Verify { .. } => "verify",
            Command::Teardown { .. } => "teardown",
            Command::Demo { .. } => "demo",
        }
    }
}

/// `--when-lag` accepts `<1s`, `1s` and `500ms`.
pub fn parse_when_lag(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let t = t.strip_prefix('<').unwrap_or(t).trim();
    parse_duration(t)
}

/// Splits the quoted single word `--when-lag<1s` into `--when-lag` `<1s` so the parser sees a flag
/// and a value.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    for a in args {
        match a.strip_prefix("--when-lag<") {
            Some(rest) => {
                out.push("--when-lag".into());
                out.push(format!("<{rest}"));
            }
            None => out.push(a),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn when_lag(args: &[&str]) -> Duration {
        let argv = normalize_args(args.iter().map(|s| s.to_string()));
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Cutover(a) | Command::Rollback(a) => a.when_lag.expect("--when-lag was given"),
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn when_lag_accepts_every_documented_form() {
        assert_eq!(when_lag(&["turnout", "cutover", "--when-lag", "<1s"]), Duration::from_secs(1));
        assert_eq!(when_lag(&["turnout", "cutover", "--when-lag", "1s"]), Duration::from_secs(1));
        assert_eq!(when_lag(&["turnout", "cutover", "--when-lag", "500ms"]), Duration::from_millis(500));
        assert_eq!(when_lag(&["turnout", "cutover", "--when-lag<1s"]), Duration::from_secs(1));
        assert_eq!(when_lag(&["turnout", "cutover", "--when-lag=<2s"]), Duration::from_secs(2));
        assert_eq!(when_lag(&["turnout", "rollback", "--when-lag<1s"]), Duration::from_secs(1));
    }

    #[test]
    fn canary_takes_percentages_and_durations() {
        let argv = ["turnout", "canary", "--reads", "5%", "--step", "10", "--every", "2m", "--max", "50%", "--max-lag", "<200ms"].map(String::from);
        let Command::Canary(a) = Cli::try_parse_from(argv).expect("parses").command else { panic!("canary") };
        let ask = a.ask();
        assert_eq!((ask.reads, ask.step, ask.every_ms, ask.max, ask.max_lag_ms), (5, Some(10), Some(120_000), Some(50), Some(200)));
        for bad in ["101%", "-1", "five"] {
            assert!(Cli::try_parse_from(["turnout", "canary", "--reads", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn when_lag_rejects_nonsense() {
        let argv = normalize_args(["turnout", "cutover", "--when-lag", "soon"].map(String::from));
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
