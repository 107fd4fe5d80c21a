//! The replicator's error type and the one place that decides what the pipeline does about an error.

mod definitions;
mod refusal;
mod store;
pub use definitions::DefinitionRefusal;
pub use refusal::{CanaryRefusal, CopyRefusal, CutoverCheck, FleetRefusal, HandoverRefusal, Lifecycle, ReadyMismatch, Refusal, SchemaRefusal, WatchRefusal};
pub use store::StoreError;

use turnout_decoders::{DecodeError, ErrorClass};

/// Which database a failed statement ran on.
pub use turnout_decoders::Side;

/// Exit code when the configuration cannot be used.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code when a check or operation found problems.
pub const EXIT_FAILED: i32 = 1;

/// Every failure of the `turnout` binary's own logic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file is unusable; `field` is the path of the offending entry.
    #[error("config {field}: {reason}")]
    Config { field: String, reason: String },
    /// The configuration file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Talking to the source (blue) failed.
    #[error("source: {0}")]
    Source(#[source] DecodeError),
    /// Talking to the target (green) failed.
    #[error("target: {0}")]
    Target(#[source] DecodeError),
    /// A statement on blue or green failed (or its session was lost); shown with the server's
    /// message, SQLSTATE, detail and hint.
    #[error("{side}: {context}: {}", turnout_sinks::pg::describe_error(.source))]
    Sql {
        side: Side,
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A statement on a MySQL/MariaDB blue or green failed (or its session was lost).
    #[error("{side}: {context}: {source}")]
    MySql {
        side: Side,
        context: String,
        #[source]
        source: mysql_async::Error,
    },
    /// A cutover or rollback step failed; the error keeps its side and retry class.
    #[error("{0}")]
    Cutover(#[source] turnout_cutover::CutoverError),
    /// A step failed for the reason `source` gives; its class is the source's.
    #[error("{step}: {source}")]
    Step {
        step: String,
        #[source]
        source: Box<Error>,
    },
    /// The state store in `state.dir`, or a file turnout keeps there, failed.
    #[error("state: {0}")]
    Store(#[from] StoreError),
    /// Applying to green failed.
    #[error("{0}")]
    Sink(#[source] turnout_sinks::SinkError),
    /// turnout refuses: a check it makes found what would make green differ or the cutover unsafe,
    /// named with its fix.
    #[error("{0}")]
    Setup(String),
    /// turnout refuses, by a decision of its own typed by domain ([`Refusal`]): nothing goes on
    /// until the state or setting it names changes.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A server answered what turnout cannot use (an LSN or GTID set that does not parse, a definition
    /// or snapshot it did not return).
    #[error("{side} answered what turnout cannot use: {what}")]
    Unexpected { side: Side, what: String },
    /// A program turnout runs (`pg_dump`) could not be run, or failed.
    #[error("{program}: {reason}")]
    Tool { program: String, reason: String },
    /// A file turnout was asked to write or read outside its state (a certificate, a report) failed.
    #[error("{doing} {path}: {source}")]
    File {
        doing: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The running sidecar's control API refused a request, or could not be reached.
    #[error("the sidecar at {url}: {reason}")]
    Sidecar { url: String, reason: String },
    /// The etcd cluster that keeps a fleet's decision failed or could not be reached; retried where
    /// retrying cannot change an outcome (a read, a compare-and-swap).
    #[error("etcd: {context}: {source}")]
    Etcd {
        context: String,
        #[source]
        source: etcd_client::Error,
    },
    /// One of turnout's own invariants broke (a task died, a session it opened is missing): a bug.
    #[error("internal: {0}")]
    Internal(String),
    /// The stream cannot continue from here (e.g. a commit for a transaction never received): reconnect
    /// from the position durable on green, which replays everything after it.
    #[error("the change stream must restart: {0}")]
    Resync(String),
    /// Two positions that must be of one log cannot be ordered (see
    /// [`turnout_decoders::Position::try_cmp`]): never guessed past.
    #[error("{0}")]
    Unordered(#[from] turnout_decoders::Incomparable),
}

impl Error {
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config { field: field.into(), reason: reason.into() }
    }

    /// Wraps a failed statement on `side`: `.map_err(Error::sql(side, "reading …"))`.
    pub fn sql(side: Side, context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Sql { side, context, source }
    }

    /// Wraps the failure of a step, keeping its class: `.map_err(Error::during("syncing counters"))`.
    pub fn during<E: Into<Error>>(step: impl Into<String>) -> impl FnOnce(E) -> Error {
        let step = step.into();
        move |source| Error::Step { step, source: Box::new(source.into()) }
    }

    /// Wraps a failed MySQL/MariaDB statement on `side`: `.map_err(Error::mysql(side, "reading …"))`.
    pub fn mysql(side: Side, context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> Error {
        let context = context.into();
        move |source| Error::MySql { side, context, source }
    }

    /// Wraps a failed read or write of a file the operator named: `.map_err(Error::file("writing", path))`.
    pub fn file(doing: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.display().to_string();
        move |source| Error::File { doing, path, source }
    }

    /// Wraps a failed request to etcd: `.map_err(Error::etcd("reading the decision"))`.
    pub fn etcd(context: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> Error {
        let context = context.into();
        move |source| Error::Etcd { context, source }
    }

    /// Wraps a failed statement on blue: `.map_err(Error::blue("reading …"))`.
    pub fn blue(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        Error::sql(Side::Blue, context)
    }

    /// Wraps a failed statement on green: `.map_err(Error::green("reading …"))`.
    pub fn green(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        Error::sql(Side::Green, context)
    }

    /// Whether retrying can help: see [`ErrorClass`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Source(e) | Error::Target(e) => e.class(),
            Error::Sink(e) => e.class(),
            Error::Sql { source, .. } => turnout_sinks::pg::classify_error(source),
            Error::MySql { source, .. } => turnout_sinks::error::classify_mysql(source),
            Error::Cutover(e) => e.class(),
            Error::Step { source, .. } => source.class(),
            Error::Resync(_) => ErrorClass::Resync,
            Error::Etcd { source, .. } => match source {
                etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) | etcd_client::Error::InvalidMetadataValue(_) => ErrorClass::Fatal,
                // gRPC's INVALID_ARGUMENT (too many operations in one transaction), NOT_FOUND (a lease
                // gone), PERMISSION_DENIED, FAILED_PRECONDITION and UNAUTHENTICATED: asking again
                // changes nothing.
                etcd_client::Error::GRpcStatus(status) if matches!(status.code() as i32, 3 | 5 | 7 | 9 | 16) => ErrorClass::Fatal,
                _ => ErrorClass::Transient,
            },
            Error::Config { .. }
            | Error::ConfigFile { .. }
            | Error::Store(_)
            | Error::Setup(_)
            | Error::Refused(_)
            | Error::Unordered(_)
            | Error::Unexpected { .. }
            | Error::Tool { .. }
            | Error::File { .. }
            | Error::Sidecar { .. }
            | Error::Internal(_) => ErrorClass::Fatal,
        }
    }
}

impl From<turnout_cutover::CutoverError> for Error {
    fn from(e: turnout_cutover::CutoverError) -> Self {
        Error::Cutover(e)
    }
}

impl From<turnout_sinks::SinkError> for Error {
    fn from(e: turnout_sinks::SinkError) -> Self {
        Error::Sink(e)
    }
}

/// What the pipeline does about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// Retry with jittered backoff: the network, a restart or a momentary conflict is at fault.
    Retry,
    /// Reconnect at once from the position durable on green (replays everything after it).
    Resync,
    /// Stop: nothing changes until the operator acts.
    Stop,
}

impl Reaction {
    /// The name `/status` shows.
    pub fn name(self) -> &'static str {
        match self {
            Reaction::Retry => "transient",
            Reaction::Resync => "resync",
            Reaction::Stop => "fatal",
        }
    }
}

/// Advice for a SQLSTATE from `side` (`None`: a server the error does not place).
fn sqlstate_advice(side: Option<Side>, code: &str) -> Option<String> {
    if let Some(fix) = side.and_then(|side| turnout_sinks::error::operator_fix(side, code)) {
        return Some(fix);
    }
    let side = side.map_or("the server", Side::name);
    Some(match code {
        "40001" | "40P01" => format!("a conflict on {side}; turnout retries the whole batch"),
        "55006" | "55000" => format!("an object on {side} is still held by a session that is going away; turnout retries"),
        c if c.starts_with("08") => format!("the connection to {side} broke; turnout reconnects"),
        c if c.starts_with("57P") => format!("{side} is shutting down or starting up; turnout retries until it is back"),
        c if c.starts_with("53") => format!("{side} is out of a resource (disk, memory or connections); free it — turnout retries"),
        c if c.starts_with("23") => format!(
            "{side} rejected a row blue accepted: it has a constraint or data blue lacks; compare with `turnout verify`, make {side} \
             match blue, then restart"
        ),
        // MySQL/MariaDB report a missing privilege (1227, 1142, 1044) and most statement errors alike.
        "42000" => {
            format!("{side} refused the statement: a privilege is missing or its schema differs from what blue sends; fix what the error names and restart")
        }
        c if c.starts_with("42") => format!("{side}'s schema differs from what blue sends; make it match (see the error) and restart"),
        _ => return None,
    })
}

impl Error {
    /// The one place that decides what the pipeline does about an error, with a sentence of advice
    /// for the operator (shown in the log and on `/status`).
    pub fn reaction(&self) -> (Reaction, String) {
        let reaction = match self.class() {
            ErrorClass::Transient => Reaction::Retry,
            ErrorClass::Resync => Reaction::Resync,
            ErrorClass::Fatal => Reaction::Stop,
        };
        let by_class = || match reaction {
            Reaction::Retry => "turnout retries with backoff; nothing to do unless it keeps failing".to_string(),
            Reaction::Resync => "turnout reconnects from the position durable on green; nothing to do unless it repeats".to_string(),
            Reaction::Stop => "fix what the error names, then start turnout again".to_string(),
        };
        let advice = match self {
            Error::Config { field, .. } => Some(format!("correct {field} in the configuration file")),
            Error::ConfigFile { path, .. } => Some(format!("check that {path} exists and is readable")),
            Error::Store(e) => Some(e.advice()),
            Error::Sql { side, source, .. } => source.code().and_then(|c| sqlstate_advice(Some(*side), c.code())),
            Error::Sink(e) => e.sqlstate().and_then(|c| sqlstate_advice(Some(Side::Green), c)),
            Error::Source(e) | Error::Target(e) => {
                let side = if matches!(self, Error::Source(_)) { Side::Blue } else { Side::Green };
                match e {
                    DecodeError::Auth { .. } => Some(format!("check the user name and password in the {side} URL")),
                    DecodeError::Tls { .. } => Some(format!("check sslmode and sslrootcert in the {side} URL and the server's TLS setup")),
                    DecodeError::Malformed { .. } | DecodeError::Protocol(_) => {
                        Some(format!("{side} sent bytes turnout cannot read; keep the log and report it — restarting resumes from green's position"))
                    }
                    _ => e.sqlstate().and_then(|c| sqlstate_advice(Some(side), c)),
                }
            }
            Error::MySql { side, source: mysql_async::Error::Server(e), .. } => sqlstate_advice(Some(*side), &e.state),
            Error::Cutover(e) => e.sqlstate().and_then(|c| sqlstate_advice(e.side(), c)),
            Error::Step { source, .. } => return (reaction, source.reaction().1),
            Error::Unordered(_) => Some(
                "the stream, green's progress record or turnout's state follow different logs (another server, a failover to a \
                 server with another history): run `turnout teardown` and start over"
                    .into(),
            ),
            Error::Unexpected { side, .. } => Some(format!(
                "{side} sent what this version cannot read: keep the log and report it with {side}'s version; restarting resumes from green's position"
            )),
            Error::Tool { program, .. } => Some(format!("fix what {program} says above (or point turnout at another build of it), then start again")),
            Error::File { path, .. } => Some(format!("check that {path}'s directory exists and turnout may write there")),
            Error::Sidecar { .. } => Some("check that `turnout run` is running with this configuration and answers on http.listen".into()),
            Error::Etcd { .. } => Some(
                "check that the fleet's etcd cluster has a quorum and answers on the endpoints configured ([fleet.etcd], fleet.toml's [etcd]), \
                 and its credentials"
                    .into(),
            ),
            Error::Internal(_) => Some("this is a bug in turnout: keep the log and report it; restarting resumes from green's position".into()),
            Error::Resync(_) | Error::Setup(_) | Error::Refused(_) | Error::MySql { .. } => None,
        };
        (reaction, advice.unwrap_or_else(by_class))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_gets_a_reaction_and_advice() {
        let resync = Error::Resync("x".into());
        assert_eq!(resync.reaction().0, Reaction::Resync);
        let state = Error::Store(StoreError::file("writing", "/x".as_ref())(std::io::Error::other("disk full")));
        assert_eq!(state.reaction().0, Reaction::Stop);
        assert!(state.reaction().1.contains("state.dir"));
        let closed = Error::Source(DecodeError::Closed(String::new()));
        assert_eq!(closed.reaction().0, Reaction::Retry);
        let auth = Error::Source(DecodeError::Auth { user: "u".into(), reason: "bad".into() });
        assert_eq!(auth.reaction(), (Reaction::Stop, "check the user name and password in the blue URL".into()));
        assert_eq!(sqlstate_advice(Some(Side::Green), "23505").map(|a| a.contains("turnout verify")), Some(true));
    }

    #[test]
    fn a_cutover_step_keeps_the_class_and_advice_of_what_failed_under_its_context() {
        let timeout = turnout_cutover::CutoverError::Timeout { what: "the fence".into(), timeout: std::time::Duration::from_secs(1) };
        let step = Error::during("syncing sequences failed")(timeout);
        assert_eq!(step.class(), ErrorClass::Transient);
        assert_eq!(step.reaction().0, Reaction::Retry);
        assert!(step.to_string().starts_with("syncing sequences failed: the fence did not finish"), "{step}");
        let lost = Error::mysql(Side::Green, "reading read_only")(mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed));
        assert_eq!(Error::during("opening green")(lost).class(), ErrorClass::Transient);
        let denied = Error::mysql(Side::Blue, "writing the sentinel")(mysql_async::Error::Server(mysql_async::ServerError {
            code: 1227,
            message: "Access denied; you need (at least one of) the SUPER privilege(s)".into(),
            state: "42000".into(),
        }));
        let (reaction, advice) = Error::during("the fence")(denied).reaction();
        assert_eq!(reaction, Reaction::Stop);
        assert!(advice.contains("blue refused the statement"), "{advice}");
        let refused = Error::during("preflight")(Error::Setup("blue is a replica".into()));
        assert_eq!(refused.class(), ErrorClass::Fatal);
    }
}
