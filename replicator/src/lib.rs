//! The `turnout` binary's library: command line, configuration, the source-agnostic pipeline
//! ([`pipeline`]: source → assembler → batcher → sink → acknowledgement), each source's own
//! administration under [`source`] (PostgreSQL in [`source::pg`]), the state store, the HTTP API and
//! status, alerts, and cutover and rollback orchestration.

pub(crate) mod alerts;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod cutover;
#[cfg(feature = "demo")]
pub mod demo;
pub(crate) mod duration;
pub mod error;
pub(crate) mod http;
pub(crate) mod http_client;
pub(crate) mod journal;
pub(crate) mod names;
pub mod pipeline;
pub(crate) mod rollback;
pub mod run;
pub mod source;
pub(crate) mod spill;
pub mod state;
pub mod status;
pub(crate) mod tables;
pub mod verify;

pub use error::Error;

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
