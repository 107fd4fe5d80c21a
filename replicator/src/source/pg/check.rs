//! `turnout check`: a read-only preflight of blue (and green) that reports each requirement of
//! PostgreSQL logical replication as one line, with the exact fix when it is not met. It changes
//! nothing on either server. Table requirements (SELECT privilege, replica identity) apply to the
//! tables the `[tables]` filter selects; what it leaves out or skips is reported.

use super::catalog::{identity_fix, select_tables};
use crate::config::Config;
use crate::error::Error;
use crate::source::contract::report::{Findings, Report};
use turnout_connect::pg::{ConnectOptions, PgConnection};
use turnout_decoders::schema::{quote_ident, TableName};
use turnout_decoders::DecodeError;

/// Runs every check against the configured source and target.
pub async fn run(config: &Config) -> Report {
    let mut report = Report::default();
    // Both URLs were validated when the config was loaded.
    if let Ok(source) = config.source_options() {
        report.sections.push((format!("source (blue) {}", source.redacted()), check_source(&source, config).await.0));
    }
    if let Ok(target) = config.target_options() {
        report.sections.push((format!("target (green) {}", target.redacted()), check_target(&target).await.0));
    }
    report.sections.push(("schema (green against blue, as the cutover compares them)".into(), check_schemas(config).await.0));
    report.sections.push(("inventory (every object in blue's database, and what turnout does with it)".into(), check_inventory(config).await.0));
    report
}

/// Blue's inventory ([`super::inventory`]): one line per class; a refused class fails.
async fn check_inventory(config: &Config) -> Findings {
    match super::inventory::of_config(config, true).await {
        Ok(inventory) => inventory.findings(),
        Err(e) => {
            let mut f = Findings::default();
            f.fail(format!("cannot take blue's inventory: {e}"), "fix the connection problems above; turnout run refuses to start without it");
            f
        }
    }
}

/// The replicated tables' schemas compared by name ([`super::drift`]), as warnings: before the first
/// `run` green has no tables yet; the cutover makes green's definitions blue's after its lag wait
/// ([`super::definitions`]) and refuses what it cannot carry. Then what that settling needs: a
/// pg_dump as new as both servers, and a role on green that may create its scratch database.
async fn check_schemas(config: &Config) -> Findings {
    let mut f = check_settling(config).await;
    let compared = async {
        let blue = crate::source::pg::session(config.source.url.expose(), config.source_side()).await?;
        let green = crate::source::pg::session(config.target.url.expose(), config.target_side()).await?;
        let tables = super::drift::replicated_tables(&blue, &config.table_filter()?, config.tables.skip_without_identity, crate::error::Side::Blue).await?;
        let on_green =
            super::drift::replicated_tables(&green, &crate::tables::TableFilter::default(), false, crate::error::Side::Green).await.unwrap_or_default();
        if !tables.iter().any(|t| on_green.contains(t)) {
            return Ok(None);
        }
        super::drift::differences(&blue, &green, &tables).await.map(Some)
    };
    match compared.await {
        Ok(None) => f.ok("green has none of the replicated tables yet: turnout run copies blue's schema"),
        Ok(Some(d)) if d.is_empty() => {
            f.ok("blue's and green's tables, partitions, columns, indexes, constraints, triggers, sequences, views and functions match")
        }
        Ok(Some(d)) => {
            for line in d {
                f.warn(
                    format!("schema: {line}"),
                    "the cutover makes green's definitions blue's after its lag wait, or refuses naming what it cannot carry \
                     (turnout cutover --dry-run lists both)",
                );
            }
        }
        Err(e) => f.warn(format!("cannot compare the schemas: {e}"), "fix the connection problems above"),
    }
    f
}

/// What the cutover's settling of definitions needs ([`super::definitions`]): a pg_dump at least as
/// new as the newer server, and `CREATEDB` (or superuser) for turnout's role on green.
async fn check_settling(config: &Config) -> Findings {
    let mut f = Findings::default();
    let looked = async {
        let blue = crate::source::pg::session(config.source.url.expose(), config.source_side()).await?;
        let green = crate::source::pg::session(config.target.url.expose(), config.target_side()).await?;
        use super::definitions::major;
        let newest = major(&blue, crate::error::Side::Blue).await?.max(major(&green, crate::error::Side::Green).await?);
        let may: (bool, String) = green
            .query_one("SELECT rolcreatedb OR rolsuper, rolname::text FROM pg_roles WHERE rolname = current_user", &[])
            .await
            .map(|r| (r.get(0), r.get(1)))
            .map_err(Error::green("reading turnout's role on green"))?;
        let pg_dump = super::definitions::pg_dump_for(config.source.pg_dump.as_deref(), newest).await;
        let left_out = super::drift::selection(&blue, &config.table_filter()?, config.tables.skip_without_identity, config.source_side()).await?.left_out();
        let generated = super::definitions::generated::check(&blue, config.source_side(), &left_out, &config.cutover.keep_definitions).await;
        Ok::<_, Error>((newest, may, pg_dump, generated))
    };
    match looked.await {
        Ok((newest, (may, role), pg_dump, generated)) => {
            if let Err(e) = generated {
                f.warn(e.to_string(), "the cutover refuses until then");
            }
            match pg_dump {
                Ok(p) => f.ok(format!("the cutover compares definitions with {} (at least PostgreSQL {newest}, the newer server)", p.display())),
                // Only the cutover needs it: `run` goes on without.
                Err(e) => f.warn(e.to_string(), "the cutover refuses until one is found"),
            }
            if may {
                f.ok(format!("role {role} may create the scratch database the cutover compares definitions in"));
            } else {
                f.warn(
                    format!("role {role} on green may not create databases: the cutover compares definitions in a scratch database it creates and drops"),
                    format!("ALTER ROLE {} CREATEDB on green (the cutover refuses until then)", quote_ident(&role)),
                );
            }
        }
        Err(e) => f.warn(format!("cannot check what the cutover's comparison of definitions needs: {e}"), "fix the connection problems above"),
    }
    f
}

/// Turns a connection failure into a finding with the fix an operator needs.
fn connect_failure(opts: &ConnectOptions, field: &str, e: &DecodeError) -> (String, String) {
    let user = &opts.user;
    let db = &opts.database;
    match e {
        DecodeError::Io { .. } => (
            format!("cannot reach {}:{}: {e}", opts.host, opts.port),
            format!("check the host and port in {field}, that PostgreSQL is running, and that listen_addresses and firewalls let this host in"),
        ),
        DecodeError::Server(s) if s.code == "28P01" => {
            (format!("password authentication failed for user \"{user}\""), format!("correct the password in {field} (or the environment variable it expands)"))
        }
        DecodeError::Server(s) if s.code == "28000" => (
            format!("the server refused the login of \"{user}\" to database \"{db}\": {}", s.message),
            format!(
                "add a line to pg_hba.conf such as `host {db} {user} <this host's address>/32 scram-sha-256` and reload PostgreSQL (SELECT pg_reload_conf())"
            ),
        ),
        DecodeError::Server(s) if s.code == "3D000" => {
            (format!("database \"{db}\" does not exist"), format!("fix the database name in {field}, or create it (CREATE DATABASE \"{db}\")"))
        }
        DecodeError::Server(s) if s.code == "53300" => {
            ("the server has no free connection slots".to_string(), "raise max_connections or close idle sessions".to_string())
        }
        DecodeError::Auth { reason, .. } => (format!("cannot authenticate as \"{user}\": {reason}"), format!("fix the credentials in {field}")),
        DecodeError::Tls { reason, .. } => (format!("TLS failed: {reason}"), format!("fix sslmode / sslrootcert in {field}, or the server's ssl settings")),
        other => (format!("cannot connect: {other}"), format!("check {field}")),
    }
}

/// Opens an ordinary session, or records why it cannot be opened.
async fn connect(opts: &ConnectOptions, field: &str, f: &mut Findings) -> Option<PgConnection> {
    match PgConnection::connect(opts, false).await {
        Ok(c) => Some(c),
        Err(e) => {
            let (what, fix) = connect_failure(opts, field, &e);
            f.fail(what, fix);
            None
        }
    }
}

fn cell(rows: &[Vec<Option<String>>], row: usize, col: usize) -> Option<String> {
    rows.get(row).and_then(|r| r.get(col)).cloned().flatten()
}

/// At most this many tables are named in one finding.
const MAX_NAMED: usize = 20;

fn name_list(tables: &[TableName]) -> String {
    let mut names: Vec<String> = tables.iter().take(MAX_NAMED).map(ToString::to_string).collect();
    if tables.len() > MAX_NAMED {
        names.push(format!("and {} more", tables.len() - MAX_NAMED));
    }
    names.join(", ")
}

async fn check_source(opts: &ConnectOptions, config: &Config) -> Findings {
    let mut f = Findings(Vec::new());
    let Some(mut conn) = connect(opts, "source.url", &mut f).await else { return f };
    f.ok(format!("connected as \"{}\"{}", opts.user, if conn.is_tls() { " over TLS" } else { "" }));
    if let Err(e) = source_settings(&mut conn, opts, &mut f).await {
        f.fail(format!("a catalog query failed: {e}"), "run check as a role that can read pg_catalog");
    }
    table_findings(&mut conn, opts, config, &mut f).await;
    conn.close().await;
    // The replication connection itself: pg_hba and the REPLICATION attribute are checked for real.
    match PgConnection::connect(opts, true).await {
        Ok(mut rc) => {
            match rc.identify_system().await {
                Ok(id) => f.ok(format!("replication connection accepted (timeline {}, WAL at {})", id.timeline, id.xlog_pos)),
                Err(e) => f.fail(format!("IDENTIFY_SYSTEM failed: {e}"), "check the role's REPLICATION attribute"),
            }
            rc.close().await;
        }
        Err(DecodeError::Server(s)) if s.code == "28000" && s.message.contains("replication") => f.fail(
            format!("replication connections are refused: {}", s.message),
            format!("add `host {} {} <this host>/32 scram-sha-256` to pg_hba.conf and reload", opts.database, opts.user),
        ),
        Err(DecodeError::Server(s)) if s.code == "42501" => {
            f.fail(format!("replication connection refused: {}", s.message), format!("ALTER ROLE {} REPLICATION;", quote_ident(&opts.user)))
        }
        Err(e) => {
            let (what, fix) = connect_failure(opts, "source.url", &e);
            f.fail(format!("replication connection: {what}"), fix);
        }
    }
    f
}

async fn source_settings(conn: &mut PgConnection, opts: &ConnectOptions, f: &mut Findings) -> Result<(), DecodeError> {
    let rows = conn
        .simple_query(
            "SELECT current_setting('server_version_num'), current_setting('server_version'), current_setting('wal_level'), \
         current_setting('max_replication_slots'), (SELECT count(*) FROM pg_replication_slots), \
         current_setting('max_wal_senders'), (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'), \
         (SELECT rolreplication FROM pg_roles WHERE rolname = current_user), (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        )
        .await?;
    let num = |i: usize| cell(&rows, 0, i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let version_num = num(0);
    let version = cell(&rows, 0, 1).unwrap_or_default();
    match version_num {
        v if v >= 130000 => {
            let proto = match v {
                v if v >= 160000 => 4,
                v if v >= 150000 => 3,
                v if v >= 140000 => 2,
                _ => 1,
            };
            f.ok(format!("server version {version} (pgoutput protocol {proto})"))
        }
        v if v >= 100000 => f.warn(
            format!("server version {version}: logical replication works but turnout is tested on 13–18 only"),
            "upgrade blue to 13+ first if you can, or test the cutover on a copy",
        ),
        _ => f.fail(format!("server version {version} has no pgoutput logical decoding"), "PostgreSQL 10 or later is required (13+ recommended)"),
    }
    let wal_level = cell(&rows, 0, 2).unwrap_or_default();
    if wal_level == "logical" {
        f.ok("wal_level = logical");
    } else {
        f.fail(
            format!("wal_level is '{wal_level}'; logical replication needs 'logical'"),
            "ALTER SYSTEM SET wal_level = logical;  then restart PostgreSQL (a reload is not enough)",
        );
    }
    let (max_slots, used_slots) = (num(3), num(4));
    if max_slots - used_slots >= 1 {
        f.ok(format!("replication slots: {used_slots} of {max_slots} in use"));
    } else {
        let inactive = conn.simple_query("SELECT slot_name FROM pg_replication_slots WHERE NOT active ORDER BY 1").await?;
        let names: Vec<String> = inactive.iter().filter_map(|r| r[0].clone()).collect();
        let drop_hint = if names.is_empty() {
            String::new()
        } else {
            format!("\nor drop an unused slot: {}", names.iter().map(|n| format!("SELECT pg_drop_replication_slot('{n}');")).collect::<Vec<_>>().join(" "))
        };
        f.fail(
            format!("no free replication slot: {used_slots} of max_replication_slots = {max_slots} in use"),
            format!("ALTER SYSTEM SET max_replication_slots = {};  then restart PostgreSQL{drop_hint}", max_slots + 2),
        );
    }
    let (max_senders, used_senders) = (num(5), num(6));
    if max_senders - used_senders >= 1 {
        f.ok(format!("WAL senders: {used_senders} of {max_senders} in use"));
    } else {
        f.fail(
            format!("no free WAL sender: {used_senders} of max_wal_senders = {max_senders} in use"),
            format!("ALTER SYSTEM SET max_wal_senders = {};  then restart PostgreSQL", max_senders + 2),
        );
    }
    let replication = cell(&rows, 0, 7).as_deref() == Some("t");
    let superuser = cell(&rows, 0, 8).as_deref() == Some("t");
    if replication || superuser {
        f.ok(format!("role \"{}\" may replicate ({})", opts.user, if superuser { "superuser" } else { "REPLICATION" }));
    } else {
        f.fail(format!("role \"{}\" lacks the REPLICATION attribute", opts.user), format!("ALTER ROLE {} REPLICATION;", quote_ident(&opts.user)));
    }
    Ok(())
}

/// The table findings: what the `[tables]` filter selects and leaves out, SELECT privilege on the
/// selected tables, and selected tables that cannot replicate UPDATE/DELETE (refused, or with
/// `tables.skip_without_identity` reported as skipped).
async fn table_findings(conn: &mut PgConnection, opts: &ConnectOptions, config: &Config, f: &mut Findings) {
    let selection = match config.table_filter() {
        Ok(filter) => select_tables(conn, &filter).await,
        Err(e) => Err(e),
    };
    let mut selection = match selection {
        Ok(s) => s,
        Err(Error::Source(e)) => {
            f.fail(format!("a catalog query failed: {e}"), "run check as a role that can read pg_catalog");
            return;
        }
        Err(e) => {
            f.fail(format!("the table selection is unusable: {e}"), "correct [tables] in the configuration file");
            return;
        }
    };
    if !selection.everything {
        f.ok(format!("[tables] selects {} table(s)", selection.tables.len()));
    }
    if !selection.excluded.is_empty() {
        f.ok(format!(
            "{} table(s) left out by tables.include/tables.exclude (not replicated, not copied): {}",
            selection.excluded.len(),
            name_list(&selection.excluded)
        ));
    }
    for (field, pattern) in &selection.unmatched {
        f.warn(format!("{field} '{pattern}' matches no table"), "correct the pattern or remove it");
    }
    let unreadable = selection.unreadable();
    if unreadable.is_empty() {
        f.ok(if selection.everything { "SELECT privilege on every user table" } else { "SELECT privilege on every selected table" });
    } else {
        let mut schemas: Vec<&str> = unreadable.iter().map(|t| t.schema.as_str()).collect();
        schemas.dedup();
        let grants: Vec<String> =
            schemas.iter().map(|s| format!("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {};", quote_ident(s), quote_ident(&opts.user))).collect();
        f.fail(format!("role \"{}\" cannot SELECT {} table(s): {}", opts.user, unreadable.len(), name_list(&unreadable)), grants.join("\n"));
    }
    let lacking = selection.without_identity();
    if lacking.is_empty() {
        f.ok(if selection.everything {
            "every table has a primary key or a replica identity"
        } else {
            "every selected table has a primary key or a replica identity"
        });
        return;
    }
    let leaves: Vec<TableName> = lacking.iter().map(|(_, t)| t.clone()).collect();
    let fixes: Vec<String> = leaves.iter().take(MAX_NAMED).map(identity_fix).collect();
    if !config.tables.skip_without_identity {
        f.fail(
            format!(
                "{} table(s) have no primary key and no REPLICA IDENTITY FULL, so their UPDATEs and DELETEs cannot be replicated: {}",
                leaves.len(),
                name_list(&leaves)
            ),
            format!("add a primary key, or run:\n{}\nor leave them out with tables.skip_without_identity = true", fixes.join("\n")),
        );
        return;
    }
    selection.skip_without_identity();
    let roots: Vec<TableName> = selection.skipped.iter().map(|(root, _)| root.clone()).collect();
    f.warn(
        format!(
            "{} table(s) have no primary key and no REPLICA IDENTITY FULL and will be skipped (tables.skip_without_identity): {}",
            roots.len(),
            name_list(&roots)
        ),
        format!("to replicate them, add a primary key or run:\n{}", fixes.join("\n")),
    );
    if selection.tables.is_empty() {
        f.fail(
            "no table is left to replicate once those are skipped",
            "give them a primary key or REPLICA IDENTITY FULL, or select other tables with tables.include",
        );
    }
}

async fn check_target(opts: &ConnectOptions) -> Findings {
    let mut f = Findings(Vec::new());
    let Some(mut conn) = connect(opts, "target.url", &mut f).await else { return f };
    let result = async {
        let rows = conn
            .simple_query(
                "SELECT current_setting('server_version'), \
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
             has_function_privilege('pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone)', 'EXECUTE'), \
             has_function_privilege('pg_replication_origin_create(text)', 'EXECUTE')",
            )
            .await?;
        let version = cell(&rows, 0, 0).unwrap_or_default();
        f.ok(format!("connected as \"{}\"{}, server version {version}", opts.user, if conn.is_tls() { " over TLS" } else { "" }));
        let superuser = cell(&rows, 0, 1).as_deref() == Some("t");
        let origins = cell(&rows, 0, 2).as_deref() == Some("t") && cell(&rows, 0, 3).as_deref() == Some("t");
        if superuser {
            f.ok(format!("role \"{}\" is a superuser: replication origins and session_replication_role are available", opts.user));
        } else {
            let can_set_role = match conn.server_version_num() {
                Some(v) if v >= 150000 => {
                    let r = conn.simple_query("SELECT has_parameter_privilege('session_replication_role', 'SET')").await?;
                    cell(&r, 0, 0).as_deref() == Some("t")
                }
                _ => false,
            };
            if !origins {
                f.fail(
                    format!("role \"{}\" may not use replication origins, which record exactly-once progress on green", opts.user),
                    format!(
                        "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), \
                         pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone), pg_replication_origin_progress(text, boolean) TO {};",
                        quote_ident(&opts.user)
                    ),
                );
            }
            if !can_set_role {
                f.fail(
                    format!(
                        "role \"{}\" may not SET session_replication_role = replica (needed so triggers and foreign keys do not fire twice on green)",
                        opts.user
                    ),
                    format!("GRANT SET ON PARAMETER session_replication_role TO {};  (PostgreSQL 15+), or apply as a superuser", quote_ident(&opts.user)),
                );
            }
        }
        Ok::<(), DecodeError>(())
    }
    .await;
    if let Err(e) = result {
        f.fail(format!("a catalog query failed: {e}"), "run check as a role that can read pg_catalog");
    }
    conn.close().await;
    f
}
