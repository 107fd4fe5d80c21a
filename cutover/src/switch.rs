//! Traffic switches: after [`TrafficSwitch::to_green`] returns, new client transactions go to green.
//!
//! * `pgbouncer` — the `[databases]` entry is rewritten to green's host, port and database
//!   ([`crate::point_database`]), pgbouncer re-reads it (`RELOAD`, checked with `SHOW DATABASES`),
//!   and the entry is resumed: clients held by the pgbouncer fence continue, on green.
//! * `haproxy` — runtime API: server `green` of the backend goes `ready`, server `blue` to `maint`,
//!   and the sessions still open to blue are shut down so their clients reconnect, to green.
//! * `command` — the operator's program, with `TURNOUT_GREEN_URL` and `TURNOUT_BLUE_URL` in its
//!   environment; a non-zero exit fails the switch with the end of its stderr.
//! * `none` — the operator moves the clients.
//!
//! Each switch is idempotent: switching to where traffic already goes succeeds and changes nothing
//! (the command switch runs the command again — it must be idempotent itself).

use crate::command;
use crate::error::CutoverError;
use crate::haproxy::{self, Backend, BLUE_SERVER, GREEN_SERVER};
use crate::pgbouncer::PgBouncerAdmin;
use crate::pgbouncer_config::{point_database, Endpoint};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use turnout_connect::pg::ConnectOptions;

/// How often [`TrafficSwitch::clients_moved`] asks pgbouncer.
const CLIENTS_MOVED_POLL: Duration = Duration::from_millis(10);

/// How long clients may wait while the entry has no server connection, logged in or logging in,
/// before pgbouncer counts as holding them behind a failed login.
const STALLED_AFTER: Duration = Duration::from_millis(50);

/// pgbouncer's setting that holds a pool's next login after one failed.
const LOGIN_RETRY: &str = "server_login_retry";

/// What [`TrafficSwitch::clients_moved`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientsMoved {
    /// No client of the entry waited for a server connection any more after this long.
    Moved(Duration),
    /// pgbouncer held the clients behind a login that had been cut (by the switch's reload, or a
    /// read-only fence ending a session it was logging in), waiting `server_login_retry` before
    /// logging in anywhere; turnout set it to 0 until every client had a connection, then back to
    /// `retry` (`restored` false when that failed: pgbouncer is left at 0 until its next `RELOAD`,
    /// which sets every setting from its file or default again). `took` is from the switch to the last
    /// client's connection.
    Unstuck { took: Duration, retry: String, restored: bool },
    /// Clients still waited when the cap passed.
    StillWaiting,
    /// Nothing to observe (not a pgbouncer switch), or pgbouncer's console did not answer.
    Unobserved,
}

/// How clients are moved from blue to green.
#[derive(Clone, Debug)]
pub enum TrafficSwitch {
    /// Repoint pgbouncer's entry `database` in `config_file`, `RELOAD`, `RESUME`.
    PgBouncer { admin: PgBouncerAdmin, database: String, config_file: PathBuf },
    /// Swap servers `blue` and `green` of `backend` through haproxy's admin socket.
    HaProxy { admin_socket: PathBuf, backend: String },
    /// Run `argv` (program and arguments, no shell) to move traffic to green; `back` (when given)
    /// to move it back to blue — without it a rollback cannot move traffic and is refused.
    Command { argv: Vec<String>, back: Option<Vec<String>> },
    /// Nothing: the operator moves the clients.
    None,
}

/// blue's and green's connection URLs. They carry passwords: they reach a switch command's
/// environment, never a report or an error.
#[derive(Clone, Copy)]
pub struct BlueGreen<'a> {
    pub blue_url: &'a str,
    pub green_url: &'a str,
}

impl std::fmt::Debug for BlueGreen<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlueGreen { <redacted> }")
    }
}

/// What a switch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchReport {
    /// One line for the operator, without secrets (e.g. where the pgbouncer entry pointed before).
    pub summary: String,
    pub took: Duration,
}

/// Which way traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    ToGreen,
    ToBlue,
}

impl TrafficSwitch {
    /// `pgbouncer`, `haproxy`, `command` or `none`, as in `cutover.switch`.
    pub fn kind(&self) -> &'static str {
        match self {
            TrafficSwitch::PgBouncer { .. } => "pgbouncer",
            TrafficSwitch::HaProxy { .. } => "haproxy",
            TrafficSwitch::Command { .. } => "command",
            TrafficSwitch::None => "none",
        }
    }

    /// Sends new client transactions to green. `timeout` bounds the whole switch (all admin
    /// commands together; the switch command, which is killed with everything it started when it
    /// overruns). For pgbouncer, green's host, port and database come from
    /// `urls.green_url`: pgbouncer must reach green under that address, and green must accept the
    /// credentials the entry (or pgbouncer's auth file) uses.
    pub async fn to_green(&self, urls: BlueGreen<'_>, timeout: Duration) -> Result<SwitchReport, CutoverError> {
        self.switch(urls, Direction::ToGreen, timeout).await
    }

    /// The inverse of [`TrafficSwitch::to_green`]: traffic back to blue (for a cutover undone after
    /// its switch, and for tests). pgbouncer: the entry gets blue's host, port and database from
    /// `urls.blue_url` (other options on the line stay as they are) and is resumed; haproxy: `blue`
    /// ready, `green` in maintenance and its sessions shut down. The command switch has no inverse
    /// and fails with [`CutoverError::NoInverse`].
    pub async fn to_blue(&self, urls: BlueGreen<'_>, timeout: Duration) -> Result<SwitchReport, CutoverError> {
        self.switch(urls, Direction::ToBlue, timeout).await
    }

    async fn switch(&self, urls: BlueGreen<'_>, direction: Direction, timeout: Duration) -> Result<SwitchReport, CutoverError> {
        let started = Instant::now();
        let summary = match self {
            TrafficSwitch::PgBouncer { admin, database, config_file } => {
                let (url, field) = match direction {
                    Direction::ToGreen => (urls.green_url, "target.url"),
                    Direction::ToBlue => (urls.blue_url, "source.url"),
                };
                let to = Endpoint::from_url(url, field)?;
                let work = pgbouncer_switch(admin, database, config_file, &to);
                tokio::time::timeout(timeout, work)
                    .await
                    .map_err(|_| CutoverError::Timeout { what: format!("switching pgbouncer's entry {database} to {to}"), timeout })??
            }
            TrafficSwitch::HaProxy { admin_socket, backend } => {
                let (from, to) = match direction {
                    Direction::ToGreen => (BLUE_SERVER, GREEN_SERVER),
                    Direction::ToBlue => (GREEN_SERVER, BLUE_SERVER),
                };
                let work = haproxy::move_traffic(admin_socket, Backend { name: backend, field: "cutover.haproxy.backend" }, from, to, timeout);
                tokio::time::timeout(timeout, work)
                    .await
                    .map_err(|_| CutoverError::Timeout { what: format!("switching haproxy backend {backend} to server {to}"), timeout })??;
                format!("haproxy backend {backend}: server {to} ready, {from} in maintenance, its sessions shut down")
            }
            TrafficSwitch::Command { argv, back } => {
                let argv = match (direction, back) {
                    (Direction::ToGreen, _) => argv,
                    (Direction::ToBlue, Some(back)) => back,
                    (Direction::ToBlue, None) => {
                        return Err(CutoverError::NoInverse {
                            switch: "command",
                            advice: "set cutover.command.back_argv, or point the clients back at blue the way the switch command moved them",
                        })
                    }
                };
                let env = [("TURNOUT_GREEN_URL", urls.green_url), ("TURNOUT_BLUE_URL", urls.blue_url)];
                let output = command::run(argv, &env, &secrets_of(urls), timeout).await?;
                let program = argv.first().map(String::as_str).unwrap_or_default();
                let said = output.stdout_tail.trim();
                if said.is_empty() {
                    format!("switch command {program} succeeded")
                } else {
                    format!("switch command {program} succeeded: {}", said.lines().last().unwrap_or_default())
                }
            }
            TrafficSwitch::None => "no switch configured: the operator moves the clients".to_string(),
        };
        Ok(SwitchReport { summary, took: started.elapsed() })
    }

    /// After a pgbouncer switch: waits until no client of the entry waits for a server connection
    /// any more — the clients the fence held each got one to the other side — and returns how long
    /// that took, or that `cap` passed first (pgbouncer may also hold clients for its own reasons, such
    /// as a full pool). The other switches have nothing to observe and return at once.
    ///
    /// A login cut while pgbouncer made it — by the switch's own `RELOAD` ("connect string changed")
    /// or by a read-only fence ending the session — makes pgbouncer wait `server_login_retry` (15 s by
    /// default) before its next login to the entry, wherever it now points, while its clients wait.
    /// When clients wait [`STALLED_AFTER`] with no server connection logged in or logging in, the
    /// setting is lowered to 0 until they have one, and then put back as it was
    /// ([`ClientsMoved::Unstuck`]).
    ///
    /// Callers use it to keep their own reconnection work (the reverse stream's) off the machine
    /// while the applications' connections are made.
    pub async fn clients_moved(&self, cap: Duration) -> ClientsMoved {
        let TrafficSwitch::PgBouncer { admin, database, .. } = self else { return ClientsMoved::Unobserved };
        let started = Instant::now();
        let mut stalled_since: Option<Instant> = None;
        let mut lowered: Option<String> = None;
        let outcome = loop {
            let Ok(pool) = admin.pool(database).await else { break ClientsMoved::Unobserved };
            if pool.waiting == 0 {
                break match lowered.take() {
                    Some(retry) => {
                        let took = started.elapsed();
                        let restored = restore_login_retry(admin, &retry).await;
                        ClientsMoved::Unstuck { took, retry, restored }
                    }
                    None => ClientsMoved::Moved(started.elapsed()),
                };
            }
            if pool.servers > 0 || pool.logging_in > 0 {
                stalled_since = None;
            } else if lowered.is_none() && stalled_since.get_or_insert_with(Instant::now).elapsed() >= STALLED_AFTER {
                lowered = lower_login_retry(admin).await;
            }
            if started.elapsed() >= cap {
                break ClientsMoved::StillWaiting;
            }
            tokio::time::sleep(CLIENTS_MOVED_POLL).await;
        };
        if let Some(retry) = &lowered {
            restore_login_retry(admin, retry).await;
        }
        outcome
    }

    /// Checks, changing nothing, that the switch can run: pgbouncer — the console answers, it runs
    /// the entry, and the configuration file has it in a form turnout can rewrite; haproxy — the
    /// socket answers and the backend has servers `blue` and `green`; command — the program exists.
    pub async fn check(&self, timeout: Duration) -> Result<(), CutoverError> {
        match self {
            TrafficSwitch::PgBouncer { admin, database, config_file } => {
                if admin.show_database(database).await?.is_none() {
                    return Err(CutoverError::PgBouncer {
                        console: admin.redacted(),
                        command: "SHOW DATABASES".into(),
                        reason: format!("pgbouncer runs no entry named {database}"),
                        fix: Some("cutover.pgbouncer.database must name an entry of pgbouncer's [databases] section".into()),
                        transient: false,
                    });
                }
                let text = std::fs::read_to_string(config_file).map_err(|e| CutoverError::PgBouncerConfig {
                    path: config_file.clone(),
                    problem: format!("cannot read it: {e}; check cutover.pgbouncer.config_file"),
                })?;
                let probe = Endpoint { host: "probe".into(), port: 5432, dbname: "probe".into() };
                crate::pgbouncer_config::rewrite_entry(&text, database, &probe)
                    .map(|_| ())
                    .map_err(|problem| CutoverError::PgBouncerConfig { path: config_file.clone(), problem })
            }
            TrafficSwitch::HaProxy { admin_socket, backend } => {
                haproxy::check_servers(admin_socket, Backend { name: backend, field: "cutover.haproxy.backend" }, timeout).await.map(|_| ())
            }
            TrafficSwitch::Command { argv, back } => {
                check_program(argv, "cutover.command.argv")?;
                match back {
                    Some(back) => check_program(back, "cutover.command.back_argv"),
                    None => Ok(()),
                }
            }
            TrafficSwitch::None => Ok(()),
        }
    }
}

/// Whether a `SHOW CONFIG` value of a time setting is zero.
fn is_zero(value: &str) -> bool {
    value.trim().parse::<f64>().is_ok_and(|v| v == 0.0)
}

/// Sets pgbouncer's `server_login_retry` to 0; returns the value it had, `None` when it could not be
/// read or set (logged), or was 0 already (another cutover through the same pgbouncer lowered it and
/// puts it back).
async fn lower_login_retry(admin: &PgBouncerAdmin) -> Option<String> {
    let retry = match admin.config_value(LOGIN_RETRY).await {
        Ok(Some(retry)) if !is_zero(&retry) => retry,
        Ok(_) => return None,
        Err(e) => {
            tracing::warn!("reading pgbouncer's {LOGIN_RETRY} failed: {e}");
            return None;
        }
    };
    match admin.set(LOGIN_RETRY, "0").await {
        Ok(()) => Some(retry),
        Err(e) => {
            tracing::warn!("pgbouncer holds clients behind a failed login and setting {LOGIN_RETRY} to 0 failed: {e}");
            None
        }
    }
}

/// Puts `server_login_retry` back to `retry` if it is still 0 (a `RELOAD` meanwhile set it from the
/// file already); whether it is no longer 0.
async fn restore_login_retry(admin: &PgBouncerAdmin, retry: &str) -> bool {
    match admin.config_value(LOGIN_RETRY).await {
        Ok(Some(now)) if !is_zero(&now) => return true,
        Err(e) => tracing::warn!("reading pgbouncer's {LOGIN_RETRY} back failed: {e}"),
        _ => {}
    }
    match admin.set(LOGIN_RETRY, retry).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                "putting pgbouncer's {LOGIN_RETRY} back to {retry} failed: {e}; it stays 0 until pgbouncer's next RELOAD, or set it by hand \
                 (SET {LOGIN_RETRY} = '{retry}' on its console)"
            );
            false
        }
    }
}

/// Rewrites the entry, reloads, checks that pgbouncer took it, resumes.
async fn pgbouncer_switch(admin: &PgBouncerAdmin, database: &str, config_file: &Path, to: &Endpoint) -> Result<String, CutoverError> {
    let rewrite = point_database(config_file, database, to)?;
    admin.reload().await?;
    let running = admin.show_database(database).await?;
    let shown = running.as_ref().map(|d| {
        format!(
            "host={} port={} dbname={}",
            d.host.as_deref().unwrap_or("-"),
            d.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            d.database.as_deref().unwrap_or("-")
        )
    });
    let took = running
        .as_ref()
        .is_some_and(|d| d.host.as_deref() == Some(to.host.as_str()) && d.port == Some(to.port) && d.database.as_deref() == Some(to.dbname.as_str()));
    if !took {
        return Err(CutoverError::ReloadNotApplied {
            database: database.to_string(),
            shown: shown.unwrap_or_else(|| "no such entry".into()),
            wanted: to.to_string(),
            path: config_file.to_path_buf(),
        });
    }
    admin.resume(database).await?;
    let change = if rewrite.changed { "" } else { " (the file already said so)" };
    Ok(format!("pgbouncer entry {database}: {} → {to}{change}; reloaded and resumed", rewrite.previous))
}

/// The URLs and their passwords, masked in a switch command's output.
pub(crate) fn secrets_of(urls: BlueGreen<'_>) -> Vec<String> {
    let mut secrets = vec![urls.blue_url.to_string(), urls.green_url.to_string()];
    for url in [urls.blue_url, urls.green_url] {
        if let Some(pw) = ConnectOptions::from_url(url, "url").ok().and_then(|o| o.password) {
            secrets.push(pw);
        }
        if let Some(pw) = turnout_connect::mysql::conn::options(url).ok().and_then(|o| o.pass().map(str::to_owned)) {
            secrets.push(pw);
        }
    }
    secrets
}

/// Checks that `argv` (of the setting `field`) names a program that exists.
pub(crate) fn check_program(argv: &[String], field: &'static str) -> Result<(), CutoverError> {
    let Some(program) = argv.first() else {
        return Err(CutoverError::Config { field, reason: "is empty; give the program and its arguments".into() });
    };
    if find_program(program) {
        Ok(())
    } else {
        Err(CutoverError::CommandStart { program: program.clone(), reason: "no such executable (as a path or on PATH)".into() })
    }
}

/// Whether `program` names an executable file, as a path or on `PATH`.
pub(crate) fn find_program(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if program.contains('/') {
        return executable(Path::new(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| executable(&dir.join(program)))
}
