//! The replicator's error type and the one place that decides what the pipeline does about an error.

use turnout_decoders::{DecodeError, ErrorClass};

/// Every failure of the `turnout` binary's own logic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file is unusable; `field` is the path of the offending entry.
    #[error("config {field}: {reason}")]
    Config { field: String, reason: String },
    /// The configuration file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigFile { path: String, #[source] source: std::io::Error },
    /// Talking to the source (blue) failed.
    #[error("source: {0}")]
    Source(#[source] DecodeError),
    /// Talking to the target (green) failed.
    #[error("target: {0}")]
    Target(#[source] DecodeError),
    /// The state store in `state.dir` failed.
    #[error("state: {0}")]
    State(String),
    /// Applying to green failed.
    #[error("{0}")]
    Sink(#[source] turnout_sinks::SinkError),
    /// Setting up replication (publication, slot, schema copy, snapshot) failed.
    #[error("{0}")]
    Setup(String),
    /// A command of the contract that this build does not implement yet.
    #[error("`turnout {0}` is not built yet in this version")]
    NotBuilt(&'static str),
}

impl Error {
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config { field: field.into(), reason: reason.into() }
    }

    /// Whether retrying can help: see [`ErrorClass`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Source(e) | Error::Target(e) => e.class(),
            Error::Sink(e) => e.class(),
            Error::Config { .. } | Error::ConfigFile { .. } | Error::NotBuilt(_) | Error::State(_) | Error::Setup(_) => ErrorClass::Fatal,
        }
    }
}
