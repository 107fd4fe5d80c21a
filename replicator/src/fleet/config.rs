//! The fleet's files: `fleet.toml` (the coordinator's: the fleet's name, its pairs and the etcd
//! cluster that keeps its decision) and `[fleet.etcd]` in each pair's `turnout.toml` (the same
//! cluster, as that sidecar reaches it).

use crate::config::Secret;
use crate::error::Error;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// How turnout reaches the etcd cluster that keeps a fleet's decision.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the cluster's members (`http://host:2379`, or `https://` with `ca_file`).
    pub endpoints: Vec<String>,
    /// The etcd user turnout authenticates as (etcd's own authentication); none without it.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// The CA that signed the members' certificates (PEM), for `https://` endpoints.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl EtcdConfig {
    /// Checks the entry at `field` (`fleet.etcd` or `etcd`).
    pub fn validate(&self, field: &str) -> Result<(), Error> {
        if self.endpoints.is_empty() {
            return Err(Error::config(format!("{field}.endpoints"), "name at least one member of the etcd cluster (\"http://etcd-0:2379\")"));
        }
        for e in &self.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(Error::config(format!("{field}.endpoints"), format!("{e:?} is not an http:// or https:// URL")));
            }
            if e.starts_with("http://") && self.ca_file.is_some() {
                return Err(Error::config(format!("{field}.ca_file"), format!("{e} does not use TLS: make every endpoint https:// or drop ca_file")));
            }
            if e.starts_with("https://") && self.ca_file.is_none() {
                return Err(Error::config(format!("{field}.ca_file"), format!("{e} uses TLS: name the CA that signed the members' certificates")));
            }
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(Error::config(format!("{field}.password"), "etcd authentication needs both user and password"));
        }
        Ok(())
    }
}

/// `[fleet]` in a pair's `turnout.toml`: the etcd cluster its sidecar votes in and reads the fleet's
/// decision from. A sidecar without it refuses a fleet cutover before its fence.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarFleet {
    pub etcd: Option<EtcdConfig>,
}

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
            if !controls.insert(p.control.as_str()) {
                return Err(Error::config(format!("pair[{i}].control"), format!("{} is the sidecar of two pairs", p.control)));
            }
        }
        Ok(())
    }
}
