//! The one error type of this crate. Every message names the thing that failed and, where the operator
//! can do something about it, the fix. Passwords never appear: URLs are shown redacted and a switch
//! command's output has the URLs it was given masked.

use std::path::PathBuf;
use std::time::Duration;
use turnout_decoders::ErrorClass;

/// Which database server a SQL error came from.
pub use turnout_decoders::Side;

/// Every way a fence, a switch or the sequence sync can fail.
#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    /// A setting handed to this crate is unusable (named by its config field).
    #[error("invalid {field}: {reason}")]
    Config { field: &'static str, reason: String },

    /// A statement on blue or green failed (or the session was lost).
    #[error("{side}: {context}: {}{}", describe_sql_error(.source), fix_suffix(.fix))]
    Sql {
        side: Side,
        context: String,
        fix: Option<String>,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A statement on a MySQL/MariaDB blue or green failed (or the session was lost).
    #[error("{side}: {context}: {source}")]
    MySql {
        side: Side,
        context: String,
        #[source]
        source: mysql_async::Error,
    },

    /// The pgbouncer admin console could not be reached or refused a command.
    #[error("pgbouncer admin console {console}: `{command}` failed: {reason}{}", fix_suffix(.fix))]
    PgBouncer {
        console: String,
        command: String,
        reason: String,
        fix: Option<String>,
        /// The console could not be reached or gave no answer (another attempt may succeed), as
        /// opposed to a refusal that needs the operator.
        transient: bool,
    },

    /// `PAUSE` did not return in time because transactions through pgbouncer kept running. The
    /// database has been resumed again.
    #[error(
        "pgbouncer did not finish `PAUSE {database}` within {}: transactions through it were still running; \
         the database was resumed again{}. Retry when fewer long transactions run, or allow the fence more time (--max-pause)",
        fmt_duration(*.timeout), .resume_failure.as_deref().map(|e| format!(" — but RESUME failed too ({e}); run `RESUME {database}` on the admin console")).unwrap_or_default()
    )]
    PauseTimeout { database: String, timeout: Duration, resume_failure: Option<String> },

    /// pgbouncer's configuration file cannot be read, understood or rewritten.
    #[error("pgbouncer config file {}: {problem}", .path.display())]
    PgBouncerConfig { path: PathBuf, problem: String },

    /// After `RELOAD`, pgbouncer does not show the entry the configuration file now holds.
    #[error(
        "pgbouncer did not take the new [databases] entry for {database} after RELOAD: it shows {shown}, the file says {wanted}; \
         check pgbouncer's log for configuration errors and that pgbouncer reads {}", .path.display()
    )]
    ReloadNotApplied { database: String, shown: String, wanted: String, path: PathBuf },

    /// The database named for the read-only fence does not exist on blue.
    #[error("blue has no database {database}; set the database the fence should make read-only")]
    UnknownDatabase { database: String },

    /// Role settings would override the database's `default_transaction_read_only`, so the read-only
    /// fence could not hold those roles' sessions.
    #[error(
        "the read-only fence cannot hold database {database}: role-level default_transaction_read_only settings beat the \
         database's ({overrides}); run `{fix}` or use cutover.fence = \"pgbouncer\""
    )]
    ReadOnlyOverridden { database: String, overrides: String, fix: String },

    /// turnout's role on blue lacks a right the fence needs.
    #[error("blue: {what}; fix: {fix}")]
    Privilege { what: String, fix: String },

    /// Other sessions of the fenced database could not be ended.
    #[error("cannot end {count} session(s) of database {database} on blue ({sessions}): {reason}")]
    SessionsNotEnded { database: String, count: usize, sessions: String, reason: String },

    /// Prepared (two-phase) transactions of the fenced database could still commit after the fence.
    #[error(
        "database {database} on blue has prepared transactions that could still commit after the fence: {gids}; \
         finish each with COMMIT PREPARED '<gid>' or ROLLBACK PREPARED '<gid>' first"
    )]
    PreparedTransactions { database: String, gids: String },

    /// The haproxy admin socket could not be used.
    #[error("haproxy admin socket {}: {reason}; check cutover.haproxy.admin_socket and that haproxy has `stats socket {} level admin`", .socket.display(), .socket.display())]
    HaProxySocket { socket: PathBuf, reason: String },

    /// haproxy answered a runtime API command with an error.
    #[error("haproxy rejected `{command}`: {response} — check that {field} ({backend}) names a backend with servers \"blue\" and \"green\"")]
    HaProxy { command: String, field: &'static str, backend: String, response: String },

    /// turnout's session through `cutover.haproxy.frontend` did not land on the server traffic
    /// moves from, so holding that server's slot would hold nothing.
    #[error(
        "the session turnout opened through cutover.haproxy.frontend {frontend} landed on {landed}, not on {side}: the frontend must \
         lead to backend {backend}, whose server {server} takes its traffic now; fix cutover.haproxy.frontend, or remove it to switch \
         without holding new sessions"
    )]
    HoldMisrouted { frontend: String, backend: String, server: String, side: Side, landed: String },

    /// The backend would not hand sessions queued during the pause to the server the switch makes
    /// ready.
    #[error(
        "new sessions cannot be held in haproxy backend {backend}: {why}; hold them only in a backend that balances by roundrobin, \
         static-rr, leastconn or first, without cookies or stick tables, whose other server is in maintenance until the switch — or remove \
         cutover.haproxy.frontend"
    )]
    HoldUnsupported { backend: String, why: String },

    /// The switch command could not be started.
    #[error("cannot run the switch command {program}: {reason}; check cutover.command.argv")]
    CommandStart { program: String, reason: String },

    /// The switch command exited unsuccessfully.
    #[error("the switch command {program} failed ({status}); its stderr ends with:\n{stderr_tail}")]
    CommandFailed { program: String, status: String, stderr_tail: String },

    /// The switch command ran longer than allowed and was killed.
    #[error("the switch command {program} did not finish within {} and was killed (with everything it started); its stderr ends with:\n{stderr_tail}", fmt_duration(*.timeout))]
    CommandTimeout { program: String, timeout: Duration, stderr_tail: String },

    /// Sequences that exist on blue are missing on green.
    #[error("{count} sequence(s) of blue are missing on green: {names}; create them on green (e.g. pg_dump --schema-only --table=<name> of blue) or drop them on blue")]
    MissingSequences { count: usize, names: String },

    /// Something did not finish in the time allowed.
    #[error("{what} did not finish within {}", fmt_duration(*.timeout))]
    Timeout { what: String, timeout: Duration },

    /// A trigger's statement is not of the form turnout can point at a scratch table to try it
    /// before the fence.
    #[error(
        "{side}: trigger {trigger}: its statement does not name its table where turnout can find it to try it first; recreate it in \
         the form CREATE TRIGGER name {{BEFORE|AFTER}} event ON table FOR EACH ROW …"
    )]
    TriggerForm { side: Side, trigger: String },

    /// This switch cannot be undone by turnout.
    #[error("the {switch} switch cannot be undone by turnout: {advice}")]
    NoInverse { switch: &'static str, advice: &'static str },
}

impl CutoverError {
    pub(crate) fn sql(side: Side, context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> CutoverError {
        let context = context.into();
        move |source| {
            let fix = source.code().and_then(|c| turnout_sinks::error::operator_fix(side, c.code()));
            CutoverError::Sql { side, context, fix, source }
        }
    }

    pub(crate) fn mysql(side: Side, context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> CutoverError {
        let context = context.into();
        move |source| CutoverError::MySql { side, context, source }
    }

    /// The SQLSTATE, when a server reported the error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            CutoverError::Sql { source, .. } => source.code().map(|c| c.code()),
            CutoverError::MySql { source: mysql_async::Error::Server(e), .. } => Some(&e.state),
            _ => None,
        }
    }

    /// The database a failed statement ran on, when the error is one.
    pub fn side(&self) -> Option<Side> {
        match self {
            CutoverError::Sql { side, .. } | CutoverError::MySql { side, .. } | CutoverError::TriggerForm { side, .. } => Some(*side),
            _ => None,
        }
    }

    /// Whether retrying the same step can help: lost connections and timeouts are transient;
    /// refusals, missing privileges and bad settings need the operator.
    pub fn class(&self) -> ErrorClass {
        match self {
            CutoverError::Sql { source, .. } => match source.code().map(|c| c.code()) {
                None => ErrorClass::Transient,
                Some(c) if c.starts_with("08") || c.starts_with("40") || c.starts_with("57P") || c == "53300" => ErrorClass::Transient,
                Some(_) => ErrorClass::Fatal,
            },
            CutoverError::MySql { source, .. } => turnout_sinks::error::classify_mysql(source),
            CutoverError::PauseTimeout { .. } | CutoverError::Timeout { .. } | CutoverError::CommandTimeout { .. } => ErrorClass::Transient,
            CutoverError::PgBouncer { transient: true, .. } => ErrorClass::Transient,
            _ => ErrorClass::Fatal,
        }
    }
}

pub(crate) use turnout_sinks::pg::describe_error as describe_sql_error;

fn fix_suffix(fix: &Option<String>) -> String {
    fix.as_deref().map(|f| format!("; fix: {f}")).unwrap_or_default()
}

/// `1.5s`, `250ms`, `2m` — durations as operators write them.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.rem_euclid(60_000) == 0 {
        format!("{}m", ms / 60_000)
    } else if ms.rem_euclid(1000) == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_operators_write_them() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn pause_timeout_names_the_database_and_the_fix() {
        let e = CutoverError::PauseTimeout { database: "app".into(), timeout: Duration::from_secs(5), resume_failure: None };
        let text = e.to_string();
        assert!(text.contains("PAUSE app") && text.contains("5s") && text.contains("--max-pause"), "{text}");
        assert_eq!(e.class(), ErrorClass::Transient);
    }
}
