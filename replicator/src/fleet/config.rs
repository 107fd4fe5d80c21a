//! `fleet.toml`, the coordinator's file: the fleet's name, its pairs and the etcd cluster that keeps
//! its decision (`[fleet.etcd]` in each pair's `turnout.toml`, [`crate::config::SidecarFleet`],
//! names the same cluster as that sidecar reaches it).

use crate::config::Secret;
pub use crate::config::{EtcdConfig, SidecarFleet};
use crate::error::Error;
use serde::Deserialize;
use std::path::Path;

/// The most pairs one fleet may have: the commit compares every vote in one etcd transaction,
/// which allows 128 operations by default.
pub const MAX_PAIRS: usize = 100;

/// `fleet.toml`: one fleet of blue → green pairs cut over as one decision.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// The fleet's name: its keys in etcd live under `/turnout/fleet/<name>/`.
    pub name: String,
    pub etcd: EtcdConfig,
    #[serde(rename = "pair")]
    pub pairs: Vec<Pair>,
}

/// One blue → green pair: the sidecar (`turnout run`) that moves it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    /// The pair's name in the fleet (its vote's key).
    pub name: String,
    /// The sidecar's HTTP API (`http.listen` of its `turnout.toml`): `host:port`.
    pub control: String,
    /// The sidecar's `cutover.token`, when it has one.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Pairs that must switch together (one service's shards): a wave of `turnout fleet cutover
    /// --waves` never splits a group. Each pair is its own group without one.
    #[serde(default)]
    pub group: Option<String>,
}

impl Pair {
    /// The pair's group: its own name when it names none.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.name)
    }
}

impl FleetFile {
    /// Reads and checks `fleet.toml` (`${VAR}` expands from the environment, as in `turnout.toml`).
    pub fn load(path: &Path) -> Result<FleetFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile { path: path.display().to_string(), source })?;
        FleetFile::parse(&text, |name| std::env::var(name).ok())
    }

    /// Parses and checks the text of a fleet file, expanding `${VAR}` with `env`.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<FleetFile, Error> {
        let file: FleetFile = crate::config::parse_expanded(text, env)?;
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), Error> {
        let name_ok = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok(&self.name) {
            return Err(Error::config("name", "a fleet name of letters, digits, '-', '_' and '.'"));
        }
        self.etcd.validate("etcd")?;
        if self.pairs.is_empty() {
            return Err(Error::config("pair", "name at least one pair ([[pair]] name = …, control = \"host:port\")"));
        }
        // The commit reads every vote in one transaction, and etcd allows 128 operations in one
        // (`--max-txn-ops`, counting each comparison).
        if self.pairs.len() > MAX_PAIRS {
            return Err(Error::config(
                "pair",
                format!("{} pairs: a fleet has at most {MAX_PAIRS} (split it into fleets cut over one after another)", self.pairs.len()),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut controls = std::collections::BTreeSet::new();
        for (i, p) in self.pairs.iter().enumerate() {
            if !name_ok(&p.name) {
                return Err(Error::config(format!("pair[{i}].name"), "a pair name of letters, digits, '-', '_' and '.'"));
            }
            if !seen.insert(p.name.as_str()) {
                return Err(Error::config(format!("pair[{i}].name"), format!("{:?} names two pairs", p.name)));
            }
            let port = p.control.rsplit_once(':').and_then(|(host, port)| (!host.is_empty()).then(|| port.parse::<u16>().ok()).flatten());
            if port.is_none() {
                return Err(Error::config(format!("pair[{i}].control"), "the sidecar's http.listen, host:port"));
            }
            if p.group.as_deref().is_some_and(|g| !name_ok(g)) {
                return Err(Error::config(format!("pair[{i}].group"), "a group name of letters, digits, '-', '_' and '.'"));
            }
            if !controls.insert(p.control.as_str()) {
                return Err(Error::config(format!("pair[{i}].control"), format!("{} is the sidecar of two pairs", p.control)));
            }
        }
        Ok(())
    }
}
