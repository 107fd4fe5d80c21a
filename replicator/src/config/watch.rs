//! `[watch]`: watching for writes that are not turnout's (see [`crate::watch`]).

use serde::Deserialize;

/// Which sides turnout watches for writes it did not make.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Before the cutover, watch green: a write there that turnout's apply did not make raises the
    /// critical `rogue_writes` alert and blocks the cutover until acknowledged. Costs a second
    /// logical decoding of green's WAL (PostgreSQL) — opt-in; default false.
    #[serde(default)]
    pub green: bool,
    /// In the rollback window, watch blue: a write there that the reverse stream did not make (a
    /// client that bypassed the switch: a split brain) raises the critical `rogue_writes` alert and
    /// blocks `turnout finish` until acknowledged. PostgreSQL keeps the forward slot on blue for it;
    /// the MySQL family reads blue's binlog from the cutover's sentinel; an Oracle MySQL blue before
    /// 8.3 (no GTID tags) is not watched (`unavailable`). Default true.
    #[serde(default = "yes")]
    pub blue: bool,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig { green: false, blue: true }
    }
}

fn yes() -> bool {
    true
}
