//! The one error type of this crate, and how the pipeline should react to it.

use std::fmt;

/// Which database server something happened on: the one type every crate names sides with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The target, which takes over (ordered first: green is watched before the cutover, blue in
    /// the window after it).
    Green,
    /// The source, which the fence protects.
    Blue,
}

impl Side {
    /// `blue` or `green`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Blue => "blue",
            Side::Green => "green",
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Blue => Side::Green,
            Side::Green => Side::Blue,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the pipeline should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry the same operation with backoff: the network or a server restart is at fault.
    Transient,
    /// The stream cannot continue from here (e.g. an unknown relation id): reconnect from the last
    /// durable position and rebuild caches.
    Resync,
    /// Retrying will not help until the operator changes something (config, privileges, server settings).
    Fatal,
}

/// Fields of a PostgreSQL `ErrorResponse` worth keeping (protocol section 55.8, "Error and Notice Message Fields").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerError {
    /// `S`/`V`: ERROR, FATAL, PANIC …
    pub severity: String,
    /// `C`: the SQLSTATE code.
    pub code: String,
    /// `M`: the primary message.
    pub message: String,
    /// `D`: detail, if the server sent one.
    pub detail: Option<String>,
    /// `H`: hint, if the server sent one.
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (SQLSTATE {})", self.severity, self.message, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, "; detail: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

/// Every failure of reading a source: connecting, authenticating, speaking the replication protocol and
/// decoding its messages. Secrets never appear in these messages.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Bytes from the source do not form a valid message. `offset` is the byte offset inside the message
    /// (or stream frame) where decoding stopped; `tag` is the message type byte.
    #[error("malformed {context} message '{tag}' at byte {offset}: {reason}")]
    Malformed { context: &'static str, tag: char, offset: usize, reason: String },

    /// A row change names a relation id for which no Relation message was seen on this stream.
    #[error("pgoutput row change for unknown relation id {relation_id}: no Relation message was received for it on this stream")]
    UnknownRelation { relation_id: u32 },

    /// A tuple has a different number of columns than its Relation message announced.
    #[error("pgoutput tuple for {table} has {got} columns but its Relation message announced {expected}")]
    ColumnCountMismatch { table: String, expected: usize, got: usize },

    /// A text value could not be turned into the type its column announces.
    #[error("column {column} of {table}: value of type oid {type_oid} could not be decoded: {reason}")]
    BadValue { table: String, column: String, type_oid: u32, reason: String },

    /// The connection string is not usable.
    #[error("invalid connection URL for {field}: {reason}")]
    Config { field: &'static str, reason: String },

    /// TCP connect / read / write failed.
    #[error("{what} {host}:{port}: {source}")]
    Io {
        what: &'static str,
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },

    /// TLS negotiation or certificate verification failed.
    #[error("TLS with {host}: {reason}")]
    Tls { host: String, reason: String },

    /// The server asked for an authentication method this client does not speak, or authentication failed
    /// on the client side (e.g. a SCRAM signature mismatch).
    #[error("authenticating as {user}: {reason}")]
    Auth { user: String, reason: String },

    /// The server sent an ErrorResponse.
    #[error("server said {0}")]
    Server(ServerError),

    /// The server closed the connection.
    #[error("the server closed the connection{0}")]
    Closed(String),

    /// The server sent a valid message that makes no sense at this point of the protocol.
    #[error("unexpected message from the server: {0}")]
    Protocol(String),

    /// A binlog event could not be parsed (malformed bytes, a bad checksum, an event type turnout
    /// refuses on purpose); see [`crate::mysql::binlog::BinlogError`].
    #[error("{0}")]
    Binlog(crate::mysql::binlog::BinlogError),

    /// The source's log holds something turnout cannot replicate exactly (a server setting, DDL, XA);
    /// the reason names it and the fix.
    #[error("{context}: {reason}")]
    Unsupported { context: &'static str, reason: String },
}

impl DecodeError {
    /// How the pipeline should react: see [`ErrorClass`].
    pub fn class(&self) -> ErrorClass {
        match self {
            DecodeError::Io { .. } | DecodeError::Closed(_) => ErrorClass::Transient,
            DecodeError::UnknownRelation { .. } | DecodeError::ColumnCountMismatch { .. } => ErrorClass::Resync,
            DecodeError::Server(e) => ErrorClass::of_sqlstate(&e.code),
            DecodeError::Binlog(e) => e.class(),
            DecodeError::Malformed { .. }
            | DecodeError::Unsupported { .. }
            | DecodeError::BadValue { .. }
            | DecodeError::Config { .. }
            | DecodeError::Tls { .. }
            | DecodeError::Auth { .. }
            | DecodeError::Protocol(_) => ErrorClass::Fatal,
        }
    }

    /// The SQLSTATE, when the server reported the error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DecodeError::Server(e) => Some(&e.code),
            _ => None,
        }
    }
}

impl ErrorClass {
    /// Classifies a PostgreSQL SQLSTATE (PostgreSQL appendix A, "Error Codes"): connection
    /// exceptions, serialization failures and deadlocks, shutdowns and too many connections, and an
    /// object (slot, origin) still held by a session that is going away are transient; everything
    /// else needs the operator.
    pub fn of_sqlstate(code: &str) -> ErrorClass {
        sqlstate_class(code)
    }
}

fn sqlstate_class(code: &str) -> ErrorClass {
    match code {
        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
        "57P01" | "57P02" | "57P03" | "53300" => ErrorClass::Transient,
        // object_in_use: the slot is active for another PID (a previous connection not yet gone)
        "55006" => ErrorClass::Transient,
        c if c.starts_with("08") || c.starts_with("40") => ErrorClass::Transient,
        _ => ErrorClass::Fatal,
    }
}
