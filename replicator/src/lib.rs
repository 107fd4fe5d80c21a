//! The `turnout` binary's library: command line, configuration, the source-agnostic pipeline
//! ([`pipeline`]: source → assembler → batcher → sink → acknowledgement), each source's own
//! administration under `source` (PostgreSQL in `source::pg`), the state store, the HTTP API and
//! status, alerts, and cutover and rollback orchestration.
//!
//! Public: what the `turnout` binary calls (the commands, the configuration, the errors) and
//! [`testing`], the small set of lower pieces the tests and benchmarks drive directly. Everything else
//! is visible to this crate only.

pub(crate) mod alerts;
pub mod canary;
pub(crate) mod canary_plan;
pub mod check;
pub mod cli;
#[doc(hidden)]
pub mod compared;
pub mod config;
pub mod control;
pub mod copy;
pub mod cutover;
#[cfg(feature = "demo")]
pub mod demo;
pub(crate) mod duration;
pub mod error;
pub mod fleet;
pub(crate) mod handover;
pub(crate) mod http;
pub(crate) mod http_client;
pub(crate) mod journal;
pub(crate) mod names;
pub(crate) mod pipeline;
pub(crate) mod retry;
pub(crate) mod rollback;
pub mod run;
pub(crate) mod source;
pub(crate) mod spill;
pub(crate) mod state;
pub(crate) mod status;
pub(crate) mod tables;
pub mod verify;
pub(crate) mod watch;

pub use error::Error;

/// What the tests and benchmarks drive below the commands: a source's administration and stream, the
/// state store and status a run keeps, and the pipeline's notification channels. Not an interface
/// for other programs.
pub mod testing {
    pub use crate::pipeline::signals::Channels;
    pub use crate::source::{Names, Source, SourceAdmin, SourceMessage};
    pub use crate::state::StateStore;
    pub use crate::status::Status;

    /// PostgreSQL: the administration, the publication and the snapshot copy.
    pub mod pg {
        pub use crate::source::pg::admin::PgAdmin;
        pub use crate::source::pg::setup::ensure_publication;
        pub use crate::source::pg::snapshot::{blue_connect, copy_all, copy_plan, hold_unrewritten};
    }

    /// MySQL/MariaDB: the administration, the binlog stream, the heartbeat table, the snapshot copy and
    /// the live verify's digest query.
    pub mod mysql {
        pub use crate::source::mysql::admin::MySqlAdmin;
        pub use crate::source::mysql::heartbeat::ensure_table;
        pub use crate::source::mysql::snapshot::{copy_all, open_readers, plan};
        pub use crate::source::mysql::verify::digest_sql;
        pub use crate::source::mysql::MySqlSource;
    }
}

/// The directory of turnout's tool cache, where `turnout demo` and the test harness install
/// PostgreSQL client builds and server root file systems (and where `pg_dump` is looked for):
/// `TURNOUT_CACHE_DIR`, else `/var/cache/turnout` for root, else `$XDG_CACHE_HOME/turnout`, else
/// `~/.cache/turnout`. The test harness keeps the same rule (a test checks they agree).
pub fn cache_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("TURNOUT_CACHE_DIR") {
        return std::path::PathBuf::from(d);
    }
    // Root: the effective uid, as /proc shows it.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)).map(|uid| uid == "0"))
        .unwrap_or(false);
    if root {
        return std::path::PathBuf::from("/var/cache/turnout");
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return std::path::PathBuf::from(d).join("turnout");
    }
    std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/turnout")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tool_cache_is_where_the_test_harness_installs_tools() {
        assert_eq!(super::cache_dir(), turnout_testbed::cache_dir());
    }
}
