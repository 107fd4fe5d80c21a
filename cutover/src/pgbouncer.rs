//! pgbouncer's admin console (the special database `pgbouncer`): `PAUSE`, `RESUME`, `RELOAD`,
//! `SHOW DATABASES`, `SHOW POOLS`.
//!
//! The console speaks only the simple query protocol. Every command runs on a fresh session, so a
//! command abandoned at its time limit (a `PAUSE` still waiting) leaves no session behind that a later
//! command would queue behind.

use crate::error::{fmt_duration, CutoverError};
use crate::session::{self, ConnectError};
use std::fmt;
use std::time::Duration;
use tokio_postgres::SimpleQueryMessage;
use turnout_connect::pg::ConnectOptions;

/// Time limit for console commands that do not wait for clients (`RESUME`, `RELOAD`, `SHOW`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The config field the admin console's URL comes from, named in errors.
const ADMIN_URL_FIELD: &str = "cutover.pgbouncer.admin_url";

/// A `[databases]` entry as pgbouncer currently runs it (`SHOW DATABASES`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolerDatabase {
    /// The entry's name, which clients connect to.
    pub name: String,
    /// The server host (`None`: the unix socket).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The database on the server.
    pub database: Option<String>,
    /// `PAUSE <name>` is in effect (set as soon as PAUSE is issued, also while it still waits).
    pub paused: bool,
}

/// A `[databases]` entry's pools summed over their users (`SHOW POOLS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Clients waiting for a server connection (`cl_waiting`).
    pub waiting: u64,
    /// Server connections logged in: active, idle, used or tested.
    pub servers: u64,
    /// Server connections being logged in (`sv_login`).
    pub logging_in: u64,
}

/// Where pgbouncer's admin console is and how to log in. `Debug` never shows the password.
///
/// One console session is kept open and shared by clones, so the steps of a cutover (PAUSE, RELOAD,
/// RESUME) do not each pay for a new login while writes are paused; a session that broke is replaced
/// on the next command.
#[derive(Clone)]
pub struct PgBouncerAdmin {
    opts: ConnectOptions,
    session: std::sync::Arc<tokio::sync::Mutex<Option<tokio_postgres::Client>>>,
}

impl fmt::Debug for PgBouncerAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PgBouncerAdmin").field(&self.opts.redacted()).finish()
    }
}

/// How a console command failed, before it is turned into a [`CutoverError`].
enum Failure {
    Connect(ConnectError),
    /// pgbouncer answered with an error message.
    Refused(String),
    /// The session broke while the command ran.
    Lost(tokio_postgres::Error),
}

impl PgBouncerAdmin {
    /// Parses `postgres://user:password@host:6432/pgbouncer` (the user must be in pgbouncer's
    /// `admin_users`). Errors name `cutover.pgbouncer.admin_url`.
    pub fn from_url(url: &str) -> Result<Self, CutoverError> {
        let opts = ConnectOptions::from_url(url, ADMIN_URL_FIELD).map_err(|e| CutoverError::Config { field: ADMIN_URL_FIELD, reason: e.to_string() })?;
        if opts.database != "pgbouncer" {
            return Err(CutoverError::Config {
                field: ADMIN_URL_FIELD,
                reason: format!("names database {:?}, but the admin console is the database \"pgbouncer\" (…:6432/pgbouncer)", opts.database),
            });
        }
        Ok(PgBouncerAdmin { opts, session: Default::default() })
    }

    /// The console's URL without the password, for logs and reports.
    pub fn redacted(&self) -> String {
        self.opts.redacted()
    }

    /// `PAUSE <database>`: pgbouncer stops handing server connections to the database's clients
    /// (their queries wait, they get no error) and returns once every server connection of the
    /// database is released — in transaction pooling, once running transactions have finished.
    ///
    /// Idempotent: pausing a paused database waits again for its server connections to be gone, and
    /// a pooler paused or suspended as a whole (`already suspended/paused`) counts as paused.
    ///
    /// When `timeout` passes first, the database is resumed again before
    /// [`CutoverError::PauseTimeout`] is returned, so a failed pause leaves no clients held. The same
    /// is done when the console session breaks while PAUSE waits.
    pub async fn pause(&self, database: &str, timeout: Duration) -> Result<(), CutoverError> {
        let command = format!("PAUSE {}", console_word(database));
        match tokio::time::timeout(timeout, self.run(&command)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(Failure::Refused(message))) if message.contains("already suspended/paused") => Ok(()),
            Ok(Err(failure @ (Failure::Connect(_) | Failure::Refused(_)))) => Err(self.error(&command, failure)),
            Ok(Err(lost @ Failure::Lost(_))) => {
                let error = self.error(&command, lost);
                if let Err(e) = self.resume(database).await {
                    tracing::warn!("resuming {database} after a failed PAUSE: {e}");
                }
                Err(error)
            }
            Err(_elapsed) => {
                // The session still waits for the PAUSE: a RESUME must go through a new one.
                self.session.lock().await.take();
                let resume_failure = self.resume(database).await.err().map(|e| e.to_string());
                Err(CutoverError::PauseTimeout { database: database.to_string(), timeout, resume_failure })
            }
        }
    }

    /// `RESUME <database>`: held clients continue. Idempotent: resuming a database that is not
    /// paused succeeds. It does not lift a pause of the whole pooler (`PAUSE` without a database).
    pub async fn resume(&self, database: &str) -> Result<(), CutoverError> {
        let command = format!("RESUME {}", console_word(database));
        match self.run_limited(&command).await {
            Ok(_) => Ok(()),
            Err(Failure::Refused(message)) if message.contains("is not paused") => Ok(()),
            Err(failure) => Err(self.error(&command, failure)),
        }
    }

    /// `RECONNECT <database>`: pgbouncer closes the entry's server connections as they are released
    /// and opens new ones as needed (under the entry's current host list).
    pub async fn reconnect(&self, database: &str) -> Result<(), CutoverError> {
        let command = format!("RECONNECT {}", console_word(database));
        self.run_limited(&command).await.map(|_| ()).map_err(|f| self.error(&command, f))
    }

    /// `RELOAD`: pgbouncer re-reads its configuration file. pgbouncer does not report errors in the
    /// file here (it logs them), so check the result with [`PgBouncerAdmin::show_database`].
    pub async fn reload(&self) -> Result<(), CutoverError> {
        self.run_limited("RELOAD").await.map(|_| ()).map_err(|f| self.error("RELOAD", f))
    }

    /// The running entry for `database` (`SHOW DATABASES`), `None` when pgbouncer has none.
    pub async fn show_database(&self, database: &str) -> Result<Option<PoolerDatabase>, CutoverError> {
        let command = "SHOW DATABASES";
        let messages = self.run_limited(command).await.map_err(|f| self.error(command, f))?;
        for row in rows(&messages) {
            if row.get("name") != Some(database) {
                continue;
            }
            return Ok(Some(PoolerDatabase {
                name: database.to_string(),
                host: row.get("host").filter(|h| !h.is_empty()).map(str::to_string),
                port: row.get("port").and_then(|p| p.parse().ok()),
                database: row.get("database").map(str::to_string),
                paused: row.get("paused").is_some_and(|p| p != "0"),
            }));
        }
        Ok(None)
    }

    /// Whether `PAUSE <database>` is in effect (`SHOW DATABASES`, column `paused`).
    pub async fn is_paused(&self, database: &str) -> Result<bool, CutoverError> {
        Ok(self.show_database(database).await?.is_some_and(|d| d.paused))
    }

    /// The pools of `database` right now (`SHOW POOLS`, summed over users).
    pub async fn pool(&self, database: &str) -> Result<PoolState, CutoverError> {
        let command = "SHOW POOLS";
        let messages = self.run_limited(command).await.map_err(|f| self.error(command, f))?;
        let mut state = PoolState::default();
        for row in rows(&messages).filter(|row| row.get("database") == Some(database)) {
            let count = |column: &str| row.get(column).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            state.waiting += count("cl_waiting");
            state.servers += count("sv_active") + count("sv_idle") + count("sv_used") + count("sv_tested");
            state.logging_in += count("sv_login");
        }
        Ok(state)
    }

    /// The running value of setting `key` (`SHOW CONFIG`), `None` when pgbouncer has no such key.
    pub async fn config_value(&self, key: &str) -> Result<Option<String>, CutoverError> {
        let command = "SHOW CONFIG";
        let messages = self.run_limited(command).await.map_err(|f| self.error(command, f))?;
        let value = rows(&messages).find(|row| row.get("key") == Some(key)).and_then(|row| row.get("value")).map(str::to_string);
        Ok(value)
    }

    /// `SET key = 'value'` on the running pgbouncer, until its next `RELOAD` (which sets every
    /// setting from its file, or its default, again).
    pub async fn set(&self, key: &str, value: &str) -> Result<(), CutoverError> {
        let command = format!("SET {key} = '{}'", value.replace('\'', "''"));
        self.run_limited(&command).await.map(|_| ()).map_err(|f| self.error(&command, f))
    }

    /// How many clients of `database` wait for a server connection right now (`SHOW POOLS`,
    /// `cl_waiting`, summed over users) — while paused: the clients the fence holds.
    pub async fn waiting_clients(&self, database: &str) -> Result<u64, CutoverError> {
        let command = "SHOW POOLS";
        let messages = self.run_limited(command).await.map_err(|f| self.error(command, f))?;
        Ok(rows(&messages)
            .filter(|row| row.get("database") == Some(database))
            .filter_map(|row| row.get("cl_waiting").and_then(|n| n.parse::<u64>().ok()))
            .sum())
    }

    async fn run_limited(&self, command: &str) -> Result<Vec<SimpleQueryMessage>, Failure> {
        match tokio::time::timeout(COMMAND_TIMEOUT, self.run(command)).await {
            Ok(result) => result,
            Err(_elapsed) => {
                self.session.lock().await.take();
                Err(Failure::Refused(format!("no answer within {}", fmt_duration(COMMAND_TIMEOUT))))
            }
        }
    }

    async fn run(&self, command: &str) -> Result<Vec<SimpleQueryMessage>, Failure> {
        let mut cached = self.session.lock().await;
        if cached.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            *cached = Some(session::connect(&self.opts).await.map_err(Failure::Connect)?);
        }
        let Some(client) = cached.as_ref() else { return Err(Failure::Refused("no console session".into())) };
        let result = client.simple_query(command).await;
        result.map_err(|e| match e.as_db_error() {
            Some(db) => Failure::Refused(db.message().to_string()),
            None => {
                // The session broke: the next command logs in again.
                *cached = None;
                Failure::Lost(e)
            }
        })
    }

    fn error(&self, command: &str, failure: Failure) -> CutoverError {
        // No answer, a session lost, a console not listening (pgbouncer restarting): another attempt
        // may succeed. A refusal with a fix needs the operator.
        let network = match &failure {
            Failure::Connect(ConnectError::Driver(e)) => e.as_db_error().is_none(),
            Failure::Lost(_) => true,
            Failure::Connect(ConnectError::Tls(_)) | Failure::Refused(_) => false,
        };
        let (reason, fix) = match failure {
            Failure::Connect(ConnectError::Tls(reason)) => (reason, Some("check sslmode/sslrootcert in cutover.pgbouncer.admin_url".to_string())),
            Failure::Connect(ConnectError::Driver(e)) => {
                let fix = match e.as_db_error() {
                    Some(_) => "check cutover.pgbouncer.admin_url: the user must be listed in pgbouncer's admin_users and its password in auth_file",
                    None => "check that pgbouncer runs and listens where cutover.pgbouncer.admin_url points",
                };
                (crate::error::describe_sql_error(&e), Some(fix.to_string()))
            }
            Failure::Refused(message) => {
                let fix = if message.contains("admin access needed") {
                    Some("add the user of cutover.pgbouncer.admin_url to admin_users in pgbouncer.ini".to_string())
                } else if message.contains("no such database") {
                    Some("cutover.pgbouncer.database must name an entry of pgbouncer's [databases] section".to_string())
                } else {
                    None
                };
                (message, fix)
            }
            Failure::Lost(e) => (crate::error::describe_sql_error(&e), None),
        };
        let transient = network || fix.is_none();
        CutoverError::PgBouncer { console: self.redacted(), command: command.to_string(), reason, fix, transient }
    }
}

/// The data rows of a simple-query answer.
fn rows(messages: &[SimpleQueryMessage]) -> impl Iterator<Item = &tokio_postgres::SimpleQueryRow> {
    messages.iter().filter_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    })
}

/// A database name as the console's command parser reads it: bare when it is made of letters,
/// digits and `_`, otherwise double-quoted with `"` doubled.
fn console_word(name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_words_are_quoted_only_when_needed() {
        assert_eq!(console_word("app_1"), "app_1");
        assert_eq!(console_word("App"), "App");
        assert_eq!(console_word("my-app"), "\"my-app\"");
        assert_eq!(console_word("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn admin_url_must_name_the_console_database() {
        let err = PgBouncerAdmin::from_url("postgres://admin:secret@127.0.0.1:6432/app").expect_err("not the console");
        let text = err.to_string();
        assert!(text.contains("cutover.pgbouncer.admin_url") && text.contains("pgbouncer"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        let admin = PgBouncerAdmin::from_url("postgres://admin:secret@127.0.0.1:6432/pgbouncer").expect("console url");
        assert!(!format!("{admin:?}").contains("secret"));
    }
}
