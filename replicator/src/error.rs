//! The replicator's error type and the one place that decides what the pipeline does about an error.

use std::fmt;
use turnout_decoders::{DecodeError, ErrorClass};

/// Which database a failed statement ran on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The source.
    Blue,
    /// The target.
    Green,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Blue => "blue",
            Side::Green => "green",
        })
    }
}

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
    /// A statement on blue or green failed (or its session was lost); shown with the server's
    /// message, SQLSTATE, detail and hint.
    #[error("{side}: {context}: {}", turnout_sinks::pg::describe_error(.source))]
    Sql { side: Side, context: String, #[source] source: tokio_postgres::Error },
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

    /// Wraps a failed statement on blue: `.map_err(Error::blue("reading …"))`.
    pub fn blue(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Sql { side: Side::Blue, context, source }
    }

    /// Wraps a failed statement on green: `.map_err(Error::green("reading …"))`.
    pub fn green(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Sql { side: Side::Green, context, source }
    }

    /// Whether retrying can help: see [`ErrorClass`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Source(e) | Error::Target(e) => e.class(),
            Error::Sink(e) => e.class(),
            Error::Sql { source, .. } => turnout_sinks::pg::classify_error(source),
            Error::Config { .. } | Error::ConfigFile { .. } | Error::NotBuilt(_) | Error::State(_) | Error::Setup(_) => ErrorClass::Fatal,
        }
    }
}
