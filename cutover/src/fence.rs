//! Write fences on blue: after [`WriteFence::apply`] returns, no client write can commit on blue's
//! database any more (within the limits each kind documents), so that the fence sentinel written
//! next marks the end of blue's history. [`WriteFence::undo`] lifts the fence.
//!
//! * `pgbouncer` — `PAUSE <db>` on pgbouncer's admin console: clients through pgbouncer are held
//!   (they wait, they get no error) once their running transactions finished; undo is `RESUME <db>`.
//! * `read-only` — `ALTER DATABASE <db> SET default_transaction_read_only = on`, then every other
//!   client session of the database is ended; undo is `RESET` plus ending the sessions opened while
//!   fenced, which are read-only and would otherwise stay so.
//! * `none` — the operator stopped the writers; nothing is done.
//!
//! Every operation is idempotent: applying an applied fence or undoing a lifted one succeeds, so a
//! cutover resumed after a crash can simply repeat the step it was in.

use crate::error::{CutoverError, Side};
use crate::pgbouncer::PgBouncerAdmin;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use turnout_decoders::schema::quote_ident;

/// Sessions whose `application_name` starts with this are turnout's own and survive the read-only
/// fence (turnout's default `application_name` is `turnout`).
pub const OWN_APPLICATION_PREFIX: &str = "turnout";

/// How often the read-only fence checks whether ended sessions are gone.
const POLL: Duration = Duration::from_millis(20);

/// How blue's writes are stopped for the cutover.
#[derive(Clone, Debug)]
pub enum WriteFence {
    /// Hold the clients of pgbouncer's entry `database` with `PAUSE`.
    ///
    /// Guarantee: once applied, no transaction of a client that goes through pgbouncer runs on blue:
    /// `PAUSE` returns only after every server connection of the entry was released (in transaction
    /// pooling: after running transactions finished). Clients that connect to blue directly, not
    /// through pgbouncer, are not fenced.
    PgBouncer { admin: PgBouncerAdmin, database: String },
    /// Make blue's `database` read-only by default and end every other client session of it.
    ///
    /// Guarantee: once applied, every client session of the database either started after the
    /// `ALTER DATABASE` (and so defaults to read-only) or is one of turnout's own sessions
    /// ([`OWN_APPLICATION_PREFIX`]), a walsender, or a background process; no prepared transaction
    /// of the database is left to commit later.
    ///
    /// Limits, stated plainly: `default_transaction_read_only` is only a default. A client that runs
    /// `SET default_transaction_read_only = off`, `SET transaction_read_only = off` or
    /// `BEGIN READ WRITE` can still write, as can a session that names itself `turnout…`, and
    /// background workers (e.g. pg_cron) are not ended. Use the pgbouncer fence when clients cannot
    /// be trusted to leave the setting alone. Roles with their own `default_transaction_read_only`
    /// setting (`ALTER ROLE … SET`) override the database's; the fence refuses to start while such
    /// settings exist rather than leave a hole.
    ///
    /// turnout's own writes (heartbeats, the fence sentinel) keep working in sessions opened before
    /// the fence; a session opened after it must ask for `BEGIN READ WRITE` (or set
    /// `default_transaction_read_only = off`). Applying the fence again ends every other client
    /// session again, also read-only ones opened meanwhile: it cannot tell when the first `ALTER`
    /// happened.
    ///
    /// Needs: ownership of the database (or superuser) for `ALTER DATABASE`, and the right to end the
    /// other sessions (`pg_signal_backend`, or superuser for superusers' sessions).
    ReadOnly { database: String },
    /// No fence: the operator has already stopped every writer.
    None,
}

/// What [`WriteFence::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FenceReport {
    /// Sessions the read-only fence ended (empty for the other kinds).
    pub ended_sessions: Vec<EndedSession>,
    /// Clients of the database pgbouncer held right after `PAUSE` returned (pgbouncer fence only).
    pub held_clients: Option<u64>,
    /// How long applying the fence took.
    pub took: Duration,
}

/// A session of blue that a fence ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedSession {
    pub pid: i32,
    pub user: String,
    pub application_name: String,
    /// The client's address, `local` for a unix socket.
    pub client: String,
}

impl WriteFence {
    /// `pgbouncer`, `read-only` or `none`, as in `cutover.fence`.
    pub fn kind(&self) -> &'static str {
        match self {
            WriteFence::PgBouncer { .. } => "pgbouncer",
            WriteFence::ReadOnly { .. } => "read-only",
            WriteFence::None => "none",
        }
    }

    /// Puts the fence in place; `blue` is a session on blue (any database) used by the read-only
    /// fence. `timeout` bounds the wait for running transactions (pgbouncer) or for ended sessions to
    /// be gone (read-only).
    ///
    /// On error the fence may be partly in place (except after a pgbouncer `PAUSE` timeout, which
    /// resumes by itself): call [`WriteFence::undo`], which is always safe.
    pub async fn apply(&self, blue: &Client, timeout: Duration) -> Result<FenceReport, CutoverError> {
        let started = Instant::now();
        let mut report = match self {
            WriteFence::PgBouncer { admin, database } => {
                admin.pause(database, timeout).await?;
                let held = admin.waiting_clients(database).await.ok();
                FenceReport { held_clients: held, ..FenceReport::default() }
            }
            WriteFence::ReadOnly { database } => read_only_apply(blue, database, started + timeout, timeout).await?,
            WriteFence::None => FenceReport::default(),
        };
        report.took = started.elapsed();
        Ok(report)
    }

    /// Lifts the fence. Idempotent; safe after a failed or partial [`WriteFence::apply`] and after a
    /// crash.
    ///
    /// Restores: pgbouncer — the entry is resumed and held clients continue (a pause of the whole
    /// pooler by someone else stays). read-only — the database-level `default_transaction_read_only`
    /// is removed (a value set at database level before the fence is not brought back), and the
    /// client sessions opened while the fence stood are ended so their clients reconnect
    /// read-write; turnout's sessions and walsenders are left alone. Sessions the fence ended stay
    /// ended.
    pub async fn undo(&self, blue: &Client) -> Result<(), CutoverError> {
        match self {
            WriteFence::PgBouncer { admin, database } => admin.resume(database).await,
            WriteFence::ReadOnly { database } => read_only_undo(blue, database).await,
            WriteFence::None => Ok(()),
        }
    }

    /// Lifts a read-only fence on the side traffic is about to move to, inside a write pause: the
    /// database-level default is reset (an error if that fails), then the client sessions opened
    /// while it stood — read-only by default, they can only read — are asked to end within `limit`,
    /// best effort: those still there are returned, not an error, so that no session can hold up a
    /// switch. `None` when the database was not read-only (nothing changed). Other fences:
    /// [`WriteFence::undo`].
    pub async fn reopen(&self, side: &Client, limit: Duration) -> Result<Option<Vec<String>>, CutoverError> {
        let WriteFence::ReadOnly { database } = self else { return self.undo(side).await.map(|()| Some(Vec::new())) };
        if !database_is_read_only(side, database).await? {
            return Ok(None);
        }
        let reset = format!("ALTER DATABASE {} RESET default_transaction_read_only", quote_ident(database));
        side.batch_execute(&reset).await.map_err(CutoverError::sql(Side::Blue, reset.clone()))?;
        let reset_at = server_clock(side).await?;
        match tokio::time::timeout(limit, end_sessions(side, database, &reset_at, Instant::now() + limit, limit)).await {
            Ok(Ok(_)) => Ok(Some(Vec::new())),
            Ok(Err(e)) => Ok(Some(vec![e.to_string()])),
            Err(_) => Ok(Some(vec![format!("sessions opened while {database} was read-only did not end within {} ms", limit.as_millis())])),
        }
    }

    /// Whether [`WriteFence::reopen`] on `side` would have anything to lift (read before the pause, so
    /// that the pause spends nothing on a side that is not fenced): a read-only fence whose database is
    /// read-only now; any other fence always.
    pub async fn needs_reopen(&self, side: &Client) -> Result<bool, CutoverError> {
        match self {
            WriteFence::ReadOnly { database } => database_is_read_only(side, database).await,
            _ => Ok(true),
        }
    }

    /// Checks, changing nothing, that the fence can be applied: pgbouncer — the console answers and
    /// runs the entry; read-only — the database exists, no role setting overrides the fence, and
    /// this session's role may `ALTER DATABASE` and end other sessions.
    pub async fn check(&self, blue: &Client) -> Result<(), CutoverError> {
        match self {
            WriteFence::PgBouncer { admin, database } => match admin.show_database(database).await? {
                Some(_) => Ok(()),
                None => Err(CutoverError::PgBouncer {
                    console: admin.redacted(),
                    command: "SHOW DATABASES".into(),
                    reason: format!("pgbouncer runs no entry named {database}"),
                    fix: Some("cutover.pgbouncer.database must name an entry of pgbouncer's [databases] section".into()),
                    transient: false,
                }),
            },
            WriteFence::ReadOnly { database } => {
                let row = blue
                    .query_opt(
                        "SELECT current_user::text, r.rolsuper OR pg_has_role(current_user, d.datdba, 'MEMBER'),                                 r.rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')                          FROM pg_database d, pg_roles r WHERE d.datname = $1 AND r.rolname = current_user",
                        &[&database],
                    )
                    .await
                    .map_err(CutoverError::sql(Side::Blue, "checking the fence's privileges"))?
                    .ok_or_else(|| CutoverError::UnknownDatabase { database: database.to_string() })?;
                let (role, owns, signals): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
                if !owns {
                    return Err(CutoverError::Privilege {
                        what: format!("role {role} may not ALTER DATABASE {database} (it is neither its owner nor a superuser)"),
                        fix: format!("connect as the owner of {database}, GRANT the owning role to {role}, or use cutover.fence = \"pgbouncer\""),
                    });
                }
                if !signals {
                    return Err(CutoverError::Privilege {
                        what: format!("role {role} may not end other users' sessions"),
                        fix: format!("GRANT pg_signal_backend TO {};", quote_ident(&role)),
                    });
                }
                refuse_role_overrides(blue, database).await
            }
            WriteFence::None => Ok(()),
        }
    }

    /// Whether the fence is in place now (for crash recovery and tests): pgbouncer — the entry is
    /// paused (`SHOW DATABASES`); read-only — the database has `default_transaction_read_only = on`;
    /// none — always false, nothing is held.
    pub async fn is_fenced(&self, blue: &Client) -> Result<bool, CutoverError> {
        match self {
            WriteFence::PgBouncer { admin, database } => admin.is_paused(database).await,
            WriteFence::ReadOnly { database } => database_is_read_only(blue, database).await,
            WriteFence::None => Ok(false),
        }
    }
}

async fn read_only_apply(blue: &Client, database: &str, deadline: Instant, timeout: Duration) -> Result<FenceReport, CutoverError> {
    let exists = blue
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(CutoverError::sql(Side::Blue, "looking up the database to fence"))?;
    if exists.is_none() {
        return Err(CutoverError::UnknownDatabase { database: database.to_string() });
    }
    refuse_role_overrides(blue, database).await?;

    let alter = format!("ALTER DATABASE {} SET default_transaction_read_only = on", quote_ident(database));
    blue.batch_execute(&alter).await.map_err(|source| {
        let mut e = CutoverError::sql(Side::Blue, alter.clone())(source);
        if let CutoverError::Sql { fix, source, .. } = &mut e {
            if source.code().map(|c| c.code()) == Some("42501") {
                *fix = Some(format!(
                    "the read-only fence needs the owner of database {database} or a superuser: connect as one, or use cutover.fence = \"pgbouncer\""
                ));
            }
        }
        e
    })?;

    // Sessions that started before the ALTER committed may run read-write. Two rounds: the second
    // catches a session that had read its settings just before the ALTER but was not yet listed in
    // pg_stat_activity during the first.
    let fenced_at = server_clock(blue).await?;
    let mut ended = end_sessions(blue, database, &fenced_at, deadline, timeout).await?;
    ended.extend(end_sessions(blue, database, &fenced_at, deadline, timeout).await?);

    let prepared = blue
        .query("SELECT gid FROM pg_prepared_xacts WHERE database = $1 ORDER BY prepared", &[&database])
        .await
        .map_err(CutoverError::sql(Side::Blue, "listing prepared transactions"))?;
    if !prepared.is_empty() {
        let gids: Vec<String> = prepared.iter().map(|r| format!("'{}'", r.get::<_, String>(0))).collect();
        return Err(CutoverError::PreparedTransactions { database: database.to_string(), gids: gids.join(", ") });
    }
    Ok(FenceReport { ended_sessions: ended, ..FenceReport::default() })
}

async fn read_only_undo(blue: &Client, database: &str) -> Result<(), CutoverError> {
    if !database_is_read_only(blue, database).await? {
        return Ok(());
    }
    let reset = format!("ALTER DATABASE {} RESET default_transaction_read_only", quote_ident(database));
    blue.batch_execute(&reset).await.map_err(CutoverError::sql(Side::Blue, reset.clone()))?;
    // Every session the fence did not end started while it stood, so it is read-only by default.
    let reset_at = server_clock(blue).await?;
    let limit = Duration::from_secs(10);
    end_sessions(blue, database, &reset_at, Instant::now() + limit, limit).await?;
    Ok(())
}

/// Whether `database` has `default_transaction_read_only` switched on at database level.
async fn database_is_read_only(blue: &Client, database: &str) -> Result<bool, CutoverError> {
    let rows = blue
        .query(
            "SELECT c FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS c \
             WHERE d.datname = $1 AND s.setrole = 0 AND c ILIKE 'default_transaction_read_only=%'",
            &[&database],
        )
        .await
        .map_err(CutoverError::sql(Side::Blue, "reading the database's settings"))?;
    Ok(rows.iter().any(|r| setting_is_on(&r.get::<_, String>(0))))
}

/// Refuses when a role's own `default_transaction_read_only` (which beats the database's) is not on.
async fn refuse_role_overrides(blue: &Client, database: &str) -> Result<(), CutoverError> {
    let rows = blue
        .query(
            "SELECT r.rolname::text, s.setdatabase <> 0, c \
             FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) AS c \
             WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = $1)) \
               AND c ILIKE 'default_transaction_read_only=%' ORDER BY 1",
            &[&database],
        )
        .await
        .map_err(CutoverError::sql(Side::Blue, "reading role settings"))?;
    let mut overrides = Vec::new();
    let mut fixes = Vec::new();
    for row in &rows {
        let (role, in_database, setting): (String, bool, String) = (row.get(0), row.get(1), row.get(2));
        if setting_is_on(&setting) {
            continue;
        }
        let scope = if in_database { format!(" IN DATABASE {}", quote_ident(database)) } else { String::new() };
        overrides.push(format!("role {role}{}", if in_database { " (in this database)" } else { "" }));
        fixes.push(format!("ALTER ROLE {}{scope} RESET default_transaction_read_only;", quote_ident(&role)));
    }
    if overrides.is_empty() {
        return Ok(());
    }
    Err(CutoverError::ReadOnlyOverridden { database: database.to_string(), overrides: overrides.join(", "), fix: fixes.join(" ") })
}

/// `name=value` of a boolean setting: is the value true?
fn setting_is_on(setting: &str) -> bool {
    let value = setting.split_once('=').map(|(_, v)| v.trim().to_ascii_lowercase()).unwrap_or_default();
    matches!(value.as_str(), "on" | "true" | "yes" | "1" | "t" | "tr" | "tru" | "y" | "ye")
}

/// blue's clock as text, to compare with `backend_start` in later statements.
async fn server_clock(blue: &Client) -> Result<String, CutoverError> {
    let row = blue.query_one("SELECT clock_timestamp()::text", &[]).await.map_err(CutoverError::sql(Side::Blue, "reading the server clock"))?;
    Ok(row.get(0))
}

/// Ends the client sessions of `database` that started before `before` (or whose start this role may
/// not see), except this session, turnout's own, walsenders and background processes, and waits
/// until they are gone.
async fn end_sessions(blue: &Client, database: &str, before: &str, deadline: Instant, timeout: Duration) -> Result<Vec<EndedSession>, CutoverError> {
    let rows = blue
        .query(
            "SELECT pid, COALESCE(usename::text, ''), COALESCE(application_name, ''), COALESCE(client_addr::text, 'local') \
             FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
               AND COALESCE(application_name, '') NOT LIKE $2 \
               AND (backend_start IS NULL OR backend_start < $3::text::timestamptz)",
            &[&database, &format!("{OWN_APPLICATION_PREFIX}%"), &before],
        )
        .await
        .map_err(CutoverError::sql(Side::Blue, "listing the database's sessions"))?;
    let sessions: Vec<EndedSession> =
        rows.iter().map(|r| EndedSession { pid: r.get(0), user: r.get(1), application_name: r.get(2), client: r.get(3) }).collect();
    let mut refused = Vec::new();
    for s in &sessions {
        if let Err(e) = blue.query_one("SELECT pg_terminate_backend($1)", &[&s.pid]).await {
            refused.push((s, e));
        }
    }
    if let Some((_, first)) = refused.first() {
        let names: Vec<String> = refused.iter().map(|(s, _)| format!("pid {} of {}", s.pid, s.user)).collect();
        return Err(CutoverError::SessionsNotEnded {
            database: database.to_string(),
            count: refused.len(),
            sessions: names.join(", "),
            reason: format!(
                "{}; fix: GRANT pg_signal_backend TO turnout's role (only a superuser may end a superuser's session), or use cutover.fence = \"pgbouncer\"",
                crate::error::describe_sql_error(first)
            ),
        });
    }
    let pids: Vec<i32> = sessions.iter().map(|s| s.pid).collect();
    while !pids.is_empty() {
        let left = blue
            .query("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)", &[&pids])
            .await
            .map_err(CutoverError::sql(Side::Blue, "waiting for ended sessions to exit"))?;
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let still: Vec<String> = left.iter().map(|r| format!("pid {}", r.get::<_, i32>(0))).collect();
            return Err(CutoverError::SessionsNotEnded {
                database: database.to_string(),
                count: still.len(),
                sessions: still.join(", "),
                reason: format!(
                    "they were told to end but still run after {}; allow the fence more time or end them by hand",
                    crate::error::fmt_duration(timeout)
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_settings_are_read_as_postgres_reads_them() {
        for on in ["default_transaction_read_only=on", "default_transaction_read_only=TRUE", "default_transaction_read_only=1"] {
            assert!(setting_is_on(on), "{on}");
        }
        for off in ["default_transaction_read_only=off", "default_transaction_read_only=false", "default_transaction_read_only=0", "x"] {
            assert!(!setting_is_on(off), "{off}");
        }
    }
}
