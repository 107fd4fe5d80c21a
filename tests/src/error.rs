//! The testbed's error type.

/// Why a throwaway server could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// A program the testbed needs is not installed.
    #[error("{what} is not installed: {fix}")]
    Missing { what: String, fix: String },
    /// A command ran but failed.
    #[error("`{command}` failed: {output}")]
    Command { command: String, output: String },
    /// The server did not become ready.
    #[error("{server} did not start: {reason}\n--- log ---\n{log}")]
    Start { server: String, reason: String, log: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("SQL on the test server failed: {0}")]
    Sql(#[from] tokio_postgres::Error),
    #[error("generating test certificates: {0}")]
    Certificate(String),
}

impl TestbedError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestbedError {
        let context = context.into();
        move |source| TestbedError::Io { context, source }
    }
}
