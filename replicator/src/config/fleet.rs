//! `[fleet]`: the etcd cluster a sidecar votes in when a fleet of pairs cuts over as one decision
//! (see [`crate::fleet`]); `fleet.toml`'s `[etcd]` has the same form.

use super::Secret;
use crate::error::Error;
use serde::Deserialize;
use std::path::PathBuf;

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
    /// turnout's client certificate (PEM), for members that require one (`--client-cert-auth`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
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
        if self.cert_file.is_some() != self.key_file.is_some() {
            let missing = if self.cert_file.is_none() { "cert_file" } else { "key_file" };
            return Err(Error::config(format!("{field}.{missing}"), "a client certificate needs both cert_file and key_file"));
        }
        if self.cert_file.is_some() && self.ca_file.is_none() {
            return Err(Error::config(format!("{field}.cert_file"), "a client certificate is shown over TLS only: use https:// endpoints and ca_file"));
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
