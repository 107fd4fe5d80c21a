//! The sink's error type.

use turnout_decoders::ErrorClass;

/// A failure applying to the target. Carries the SQLSTATE when the target reported one, so the
/// pipeline can tell a transient failure (connection lost, serialization failure) from one that needs
/// the operator.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target reported an error or the connection failed.
    #[error("green: {context}: {source}")]
    Target { context: String, #[source] source: tokio_postgres::Error },
    /// A value cannot be written (e.g. a binary-format value of an unknown type).
    #[error("green: column {column} of {table}: {reason}")]
    Value { table: String, column: String, reason: String },
    /// The target's table does not match what the source sends.
    #[error("green: table {table}: {reason}")]
    Schema { table: String, reason: String },
    /// A connection setting is unusable (URL, TLS files).
    #[error("green: {0}")]
    Config(String),
    /// The target's recorded progress is ahead of what this process believed, or similar.
    #[error("green: {0}")]
    Progress(String),
}

impl SinkError {
    pub(crate) fn target(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SinkError {
        let context = context.into();
        move |source| SinkError::Target { context, source }
    }

    /// The SQLSTATE, when the target reported one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            SinkError::Target { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// Whether retrying can help.
    pub fn class(&self) -> ErrorClass {
        match self {
            SinkError::Target { source, .. } => match source.code().map(|c| c.code()) {
                // connection errors, serialization failure, deadlock, shutdown, too many connections
                None => ErrorClass::Transient,
                Some(c) if c.starts_with("08") || c.starts_with("40") || c.starts_with("57P") || c == "53300" => ErrorClass::Transient,
                // The replication origin is still held by the session of a process that just died.
                Some("55000" | "55006") => ErrorClass::Transient,
                Some(_) => ErrorClass::Fatal,
            },
            SinkError::Value { .. } | SinkError::Schema { .. } | SinkError::Progress(_) | SinkError::Config(_) => ErrorClass::Fatal,
        }
    }
}
