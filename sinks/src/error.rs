//! The sink's error type.

use turnout_decoders::ErrorClass;

/// A failure applying to the target. Carries the SQLSTATE when the target reported one, so the
/// pipeline can tell a transient failure (connection lost, serialization failure) from one that needs
/// the operator.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target reported an error or the connection failed. Shown with the server's message,
    /// SQLSTATE, detail, hint and context (see [`describe_pg_error`]).
    #[error("green: {context}: {}", describe_pg_error(.source))]
    Target {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A value cannot be written (e.g. a binary-format value of an unknown type).
    #[error("green: column {column} of {table}: {reason}")]
    Value { table: String, column: String, reason: String },
    /// The target's table does not match what the source sends.
    #[error("green: table {table}: {reason}")]
    Schema { table: String, reason: String },
    /// A connection setting is unusable (URL, TLS files).
    #[error("green: {0}")]
    Config(String),
    /// A MySQL/MariaDB green reported an error or the connection failed: shown with the server's
    /// error code, SQLSTATE and message, and the statement's shape (never values).
    #[error("green: {context}: {}", describe_mysql_error(.source))]
    MySql {
        context: String,
        #[source]
        source: mysql_async::Error,
    },
    /// Spilled change data does not decode (see [`crate::codec`]).
    #[error("spilled transaction data is corrupt ({0})")]
    Corrupt(String),
    /// The target cannot be reached right now (retrying can help).
    #[error("green: {context}: {reason}")]
    Unavailable { context: String, reason: String },
    /// The target's recorded progress is ahead of what this process believed, or similar.
    #[error("green: {0}")]
    Progress(String),
    /// The failure of a layer wrapped around a sink (e.g. the chunked initial copy reading blue),
    /// with that layer's own retry class.
    #[error("{source}")]
    Layer {
        class: ErrorClass,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<turnout_decoders::Incomparable> for SinkError {
    /// Two positions of what should be one log that no order relates: the stream and green's
    /// progress record follow different logs (another server, a forked history).
    fn from(e: turnout_decoders::Incomparable) -> SinkError {
        SinkError::Progress(format!(
            "{e}: the stream and what green recorded follow different logs (another server, or a history that forked); \
             run `turnout teardown` and start over"
        ))
    }
}

/// A PostgreSQL client error as an operator needs to read it: the server's severity, message and
/// SQLSTATE, then its detail, hint, context (`where`) and the table, column and constraint it names;
/// for a failure without a server message (connection, TLS, protocol) the whole chain of causes.
/// The driver's own `Display` says only "db error".
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
        for (label, part) in [("detail", db.detail()), ("hint", db.hint()), ("where", db.where_())] {
            if let Some(text) = part {
                s.push_str(&format!("; {label}: {text}"));
            }
        }
        let object: Vec<String> = [("schema", db.schema()), ("table", db.table()), ("column", db.column()), ("constraint", db.constraint())]
            .into_iter()
            .filter_map(|(label, v)| v.map(|v| format!("{label} {v}")))
            .collect();
        if !object.is_empty() {
            s.push_str(&format!(" [{}]", object.join(", ")));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

/// What to do about a tokio-postgres error: by SQLSTATE when the server sent one
/// ([`ErrorClass::of_sqlstate`]); without one, transient only when the connection itself broke (closed,
/// or an I/O error underneath) — a TLS or configuration problem, a value that did not convert or an
/// unexpected reply will not go away by retrying.
pub fn classify_pg(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(code) = e.code() {
        return ErrorClass::of_sqlstate(code.code());
    }
    if e.is_closed() {
        return ErrorClass::Transient;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some() {
            return ErrorClass::Transient;
        }
        cause = c.source();
    }
    ErrorClass::Fatal
}

/// A MySQL client error with the server's code and SQLSTATE.
pub fn describe_mysql_error(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("ERROR {} (SQLSTATE {}): {}", s.code, s.state, s.message),
        other => other.to_string(),
    }
}

/// What to do about a MySQL client error — the one table every crate classifies them by: the
/// connection broke (I/O, or closed under the client), the server is going away or starting or ended the session (1053, 1927,
/// 2006, 2013, MySQL's 4031), too many connections (1040), a lock wait timeout (1205) or a deadlock
/// (1213) are transient; everything else needs the operator.
pub fn classify_mysql(e: &mysql_async::Error) -> ErrorClass {
    match e {
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => ErrorClass::Transient,
        mysql_async::Error::Server(s) if matches!(s.code, 1040 | 1053 | 1205 | 1213 | 1927 | 2006 | 2013 | 4031) => ErrorClass::Transient,
        _ => ErrorClass::Fatal,
    }
}

impl SinkError {
    pub(crate) fn mysql(context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> SinkError {
        let context = context.into();
        move |source| SinkError::MySql { context, source }
    }

    pub(crate) fn target(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SinkError {
        let context = context.into();
        move |source| SinkError::Target { context, source }
    }

    /// The SQLSTATE, when the target reported one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            SinkError::Target { source, .. } => source.code().map(|c| c.code()),
            SinkError::MySql { source: mysql_async::Error::Server(s), .. } => Some(&s.state),
            _ => None,
        }
    }

    /// Whether retrying can help.
    pub fn class(&self) -> ErrorClass {
        match self {
            SinkError::Target { source, .. } => match source.code().map(|c| c.code()) {
                // The replication origin is still held by the session of a process that just died.
                Some("55000") => ErrorClass::Transient,
                _ => classify_pg(source),
            },
            SinkError::Unavailable { .. } => ErrorClass::Transient,
            SinkError::Layer { class, .. } => *class,
            SinkError::MySql { source, .. } => classify_mysql(source),
            SinkError::Value { .. } | SinkError::Schema { .. } | SinkError::Progress(_) | SinkError::Config(_) => ErrorClass::Fatal,
            // Spilled data is received again from the source after a restart.
            SinkError::Corrupt(_) => ErrorClass::Resync,
        }
    }
}

/// What the operator can do about a SQLSTATE that only they can fix — a privilege, the credentials or
/// the database name in `side`'s URL. One table for every place turnout shows a server's error
/// (the pipeline's reaction, the cutover's steps); `None` for any other code.
pub fn operator_fix(side: turnout_decoders::Side, code: &str) -> Option<String> {
    Some(match code {
        "42501" => format!("grant turnout's {side} role the privilege named in the error (or use the owner or a superuser)"),
        "28P01" | "28000" => format!("check the user name and password in the {side} URL"),
        "3D000" => format!("check the database name in the {side} URL"),
        _ => return None,
    })
}
