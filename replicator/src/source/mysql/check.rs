//! `turnout check` for a MySQL/MariaDB blue: a read-only preflight reporting, one line each with the
//! exact fix, every requirement of replicating from the binlog — reachability and credentials, the
//! binlog settings, retention, privileges, table engines and keys — and green's. Changes nothing.

use super::catalog::{select_tables, unreplicable};
use super::{connect, database, quote, redacted};
use crate::config::Config;
use crate::source::contract::report::{Findings, Report};
use crate::status::foreign::Side;
use mysql_async::prelude::Queryable;

/// Runs every check.
pub async fn run(config: &Config) -> Report {
    let mut report = Report::default();
    if let Ok(opts) = super::options(config.source.url.expose(), "source.url") {
        report.sections.push((format!("source (blue) {}", redacted(&opts)), check_source(&opts, config).await.0));
    }
    if let Ok(opts) = super::options(config.target.url.expose(), "target.url") {
        report.sections.push((format!("target (green) {}", redacted(&opts)), check_target(&opts, config).await.0));
    }
    if let (Ok(b), Ok(g)) = (super::options(config.source.url.expose(), "source.url"), super::options(config.target.url.expose(), "target.url")) {
        report.sections.push(("schema (green against blue, as the cutover compares them)".into(), check_schemas(&b, &g, config).await.0));
        if let Some(f) = check_crossing(&b, &g, config).await {
            report.sections.push(("across the MySQL family (what blue's schema becomes on green)".into(), f.0));
        }
        report.sections.push(("inventory (every object in blue's database, and what turnout does with it)".into(), check_inventory(&b, &g, config).await.0));
    }
    report
}

/// Blue's inventory ([`super::inventory`]): one line per class; a refused class fails.
async fn check_inventory(blue_opts: &mysql_async::Opts, green_opts: &mysql_async::Opts, config: &Config) -> Findings {
    let taken = async {
        let (mut blue, mut green) = (connect(blue_opts, crate::error::Side::Blue).await?, connect(green_opts, crate::error::Side::Green).await?);
        let db = database(blue_opts);
        let (selection, _) = select_tables(&mut blue, &db, &config.table_filter()?).await?;
        super::inventory::take(&mut blue, Some(&mut green), &db, &selection, crate::source::HEARTBEAT_TABLE).await
    };
    match taken.await {
        Ok(inventory) => inventory.findings(),
        Err(e) => {
            let mut f = Findings::default();
            f.fail(format!("cannot take blue's inventory: {e}"), "fix the connection problems above; turnout run refuses to start without it");
            f
        }
    }
}

/// The cutover's schema comparison ([`super::drift`]), as warnings: before the first `run` green has
/// no tables yet; the cutover refuses while any difference remains.
async fn check_schemas(blue_opts: &mysql_async::Opts, green_opts: &mysql_async::Opts, config: &Config) -> Findings {
    let mut f = Findings::default();
    let compared = async {
        let (mut blue, mut green) = (connect(blue_opts, crate::error::Side::Blue).await?, connect(green_opts, crate::error::Side::Green).await?);
        let db = database(blue_opts);
        let (selection, _) = select_tables(&mut blue, &db, &config.table_filter()?).await?;
        let tables: Vec<String> = selection.tables.iter().map(|t| t.name.clone()).collect();
        let on_green = super::catalog::tables(&mut green, &db).await?;
        if !on_green.iter().any(|t| tables.contains(&t.name.name)) {
            return Ok(None);
        }
        super::drift::differences(&mut blue, &mut green, &db, &tables).await.map(Some)
    };
    match compared.await {
        Ok(None) => f.ok("green has none of the replicated tables yet: turnout run copies blue's schema"),
        Ok(Some(d)) if d.is_empty() => f.ok("blue's and green's tables, columns, indexes, constraints, views and routines match"),
        Ok(Some(d)) => {
            for line in d {
                f.warn(format!("schema: {line}"), "the cutover refuses until it matches (before the first run, turnout run copies the schema)");
            }
        }
        Err(e) => f.warn(format!("cannot compare the schemas: {e}"), "fix the connection problems above"),
    }
    f
}

/// Blue and green of two families ([`super::crossing`]): what has no equivalent fails, what changes
/// rules under the same name warns. `None` when both are of one family or cannot be reached (the
/// sections above say why).
async fn check_crossing(blue_opts: &mysql_async::Opts, green_opts: &mysql_async::Opts, config: &Config) -> Option<Findings> {
    let assessed = async {
        let (mut blue, mut green) = (connect(blue_opts, crate::error::Side::Blue).await?, connect(green_opts, crate::error::Side::Green).await?);
        let db = database(blue_opts);
        let (selection, _) = select_tables(&mut blue, &db, &config.table_filter()?).await?;
        let on_green = super::catalog::tables(&mut green, &db).await?;
        let creating = !on_green.iter().any(|t| selection.tables.contains(&t.name));
        let created = if creating { selection.tables.as_slice() } else { &[] };
        super::crossing::assess(&mut blue, &mut green, &db, &selection.tables, created).await
    };
    let mut f = Findings::default();
    let crossing = match assessed.await {
        Ok(c) => c?,
        Err(e) => {
            f.warn(format!("cannot compare blue's schema with green's family: {e}"), "fix the connection problems above");
            return Some(f);
        }
    };
    f.ok(format!("replicating {}: rows cross byte for byte", crossing.families));
    for (what, fix) in crossing.refused {
        f.fail(what, fix);
    }
    for (what, follows) in crossing.differs {
        f.warn(what, follows);
    }
    f.ok("`turnout cutover` and `turnout rollback` cross too: each side is fenced its own family's way, the schemas are compared as both \
         families print them, and triggers move as written (the cutover warns: their bodies then run under the other family's SQL)");
    Some(f)
}

/// A connection failure with the fix an operator needs.
fn connect_failure(opts: &mysql_async::Opts, field: &str, e: &crate::Error) -> (String, String) {
    let text = e.to_string();
    let fix = if text.contains("1045") || text.contains("Access denied") {
        format!("check the user name ({}) and password in {field}", opts.user().unwrap_or(""))
    } else if text.contains("1049") || text.contains("Unknown database") {
        format!("create the database {} or correct the database name in {field}", database(opts))
    } else if let Some(fix) = turnout_connect::mysql::conn::tls_fix(&text, field) {
        fix
    } else {
        format!("check that the server runs and that host and port in {field} are right")
    };
    (format!("cannot connect: {text}"), fix)
}

/// The binlog settings a server turnout reads changes from must have: name, value, fix.
const BINLOG_SETTINGS: [(&str, &str, &str); 4] = [
    ("log_bin", "ON", "start the server with --log-bin (binary logging) and restart it"),
    ("binlog_format", "ROW", "SET GLOBAL binlog_format = 'ROW'; and binlog_format = ROW in the server's configuration"),
    ("binlog_row_image", "FULL", "SET GLOBAL binlog_row_image = 'FULL'; and in the server's configuration"),
    ("binlog_row_metadata", "FULL", "SET GLOBAL binlog_row_metadata = 'FULL'; and in the server's configuration (MariaDB 10.5+, MySQL 8.0+)"),
];

/// What keeps green from being the source of a reverse stream after a cutover, each with its fix:
/// its binlog settings, the privileges to read its binlog and where it ends, and on MariaDB the one
/// that marks turnout's forward writes in their own GTID domain (without it they could not be told
/// from the application's). Oracle MySQL (`oracle`) needs GTIDs on and no JSON diffs instead; its
/// hand-off position is taken when the forward apply has nothing left to write, so nothing is marked.
pub async fn reverse_problems(green: &mut mysql_async::Conn, user: &str, oracle: bool) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (name, want, fix) in BINLOG_SETTINGS {
        match variable(green, name).await {
            Some(v) if v.eq_ignore_ascii_case(want) => {}
            v => problems.push((format!("green has {name} = {}, a reverse stream needs {want}", v.as_deref().unwrap_or("(unset)")), fix.to_owned())),
        }
    }
    if variable(green, "log_bin_compress").await.is_some_and(|v| v.eq_ignore_ascii_case("ON")) {
        problems.push(("green has log_bin_compress = ON".into(), "SET GLOBAL log_bin_compress = OFF;".into()));
    }
    let g = grants(green).await;
    let account = format!("'{user}'@'%'");
    if oracle {
        if !variable(green, "gtid_mode").await.is_some_and(|v| v.eq_ignore_ascii_case("ON")) {
            problems.push((
                "green's gtid_mode is not ON, and a reverse stream reads by GTID".into(),
                "enable GTIDs (gtid_mode = ON, enforce_gtid_consistency = ON) on green".into(),
            ));
        }
        if !has_global(&g, "REPLICATION SLAVE") && !has_global(&g, "REPLICATION REPLICA") {
            problems.push(("turnout's account may not read green's binlog".into(), format!("GRANT REPLICATION SLAVE ON *.* TO {account}; on green")));
        }
        if !has_global(&g, "REPLICATION CLIENT") && !has_global(&g, "SUPER") {
            problems
                .push(("turnout's account may not read where green's binlog ends".into(), format!("GRANT REPLICATION CLIENT ON *.* TO {account}; on green")));
        }
        return problems;
    }
    if !has_global(&g, "REPLICATION SLAVE") && !has_global(&g, "REPLICATION REPLICA") {
        problems.push(("turnout's account may not read green's binlog".into(), format!("GRANT REPLICATION SLAVE ON *.* TO {account}; on green")));
    }
    if !has_global(&g, "BINLOG MONITOR") && !has_global(&g, "REPLICATION CLIENT") && !has_global(&g, "SUPER") {
        problems.push(("turnout's account may not read where green's binlog ends".into(), format!("GRANT BINLOG MONITOR ON *.* TO {account}; on green")));
    }
    if !has_global(&g, "SUPER") && !has_global(&g, "BINLOG REPLAY") {
        problems.push((
            "turnout's account may not set gtid_domain_id on green, so its forward writes cannot be told from the application's".into(),
            format!("GRANT BINLOG REPLAY ON *.* TO {account}; on green, then restart `turnout run`"),
        ));
    }
    problems
}

/// A global server variable as text (`ON`/`OFF` for booleans); `None` when the server has no such
/// variable. `name` is one of the fixed names below, never input.
pub(crate) async fn variable(conn: &mut mysql_async::Conn, name: &str) -> Option<String> {
    let v: Option<Option<Vec<u8>>> = conn.query_first(format!("SELECT @@GLOBAL.{name}")).await.ok()?;
    let text = String::from_utf8_lossy(&v.flatten()?).into_owned();
    Some(match text.as_str() {
        "1" if name == "log_bin" || name == "log_bin_compress" => "ON".into(),
        "0" if name == "log_bin" || name == "log_bin_compress" => "OFF".into(),
        _ => text,
    })
}

/// The account's grants as one upper-case text.
async fn grants(conn: &mut mysql_async::Conn) -> String {
    let rows: Vec<Vec<u8>> = conn.query("SHOW GRANTS").await.unwrap_or_default();
    rows.iter().map(|r| String::from_utf8_lossy(r).to_ascii_uppercase()).collect::<Vec<_>>().join("\n")
}

/// Whether `grants` give `privilege` globally (or ALL PRIVILEGES).
fn has_global(grants: &str, privilege: &str) -> bool {
    grants.lines().any(|l| l.contains(" ON *.* ") && (l.contains("ALL PRIVILEGES") || l.contains(privilege)))
}

/// Blue's settings, privileges and tables, whatever green is.
pub(crate) async fn check_source(opts: &mysql_async::Opts, config: &Config) -> Findings {
    let mut f = Findings::default();
    let mut conn = match connect(opts, crate::error::Side::Blue).await {
        Ok(c) => c,
        Err(e) => {
            let (what, fix) = connect_failure(opts, "source.url", &e);
            f.fail(what, fix);
            return f;
        }
    };
    let version: String = conn.query_first("SELECT VERSION()").await.ok().flatten().unwrap_or_default();
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    f.ok(format!("connected as {} ({})", opts.user().unwrap_or(""), if version.is_empty() { "version unknown".into() } else { version.clone() }));
    binlog_settings(&mut conn, mariadb, &mut f).await;
    let db = database(opts);
    retention(&mut conn, &db, &mut f).await;
    let g = grants(&mut conn).await;
    privileges(&g, opts, mariadb, &mut f);
    if config.cutover.fence == crate::config::Fence::ReadOnly {
        check_fence(&mut conn, &g, opts, !mariadb, &mut f).await;
    }
    database_grants(&g, opts, &db, &mut f);
    match config.table_filter() {
        Err(e) => f.fail(e.to_string(), "correct [tables]"),
        Ok(filter) => match select_tables(&mut conn, &db, &filter).await {
            Err(e) => f.fail(format!("selecting tables: {e}"), "correct [tables]"),
            Ok((selection, infos)) => {
                f.ok(format!("{} table(s) selected in {db}", selection.tables.len()));
                for t in unreplicable(&selection, &infos) {
                    f.fail(t.problem, t.fix);
                }
                match super::catalog::hidden_cascades(&mut conn, &db, &selection).await {
                    Ok(hidden) => {
                        for h in hidden {
                            f.fail(super::cascade_problem(&h), super::cascade_fix(&h));
                        }
                    }
                    Err(e) => f.fail(format!("reading foreign keys: {e}"), "grant the account SELECT on the database"),
                }
                let keyless: Vec<String> =
                    infos.iter().filter(|t| selection.tables.contains(&t.name) && !t.has_primary_key).map(|t| t.name.to_string()).collect();
                if !keyless.is_empty() {
                    f.warn(
                        format!("tables without a primary key ({}): their rows are matched on every column, one at a time", keyless.join(", ")),
                        "add a primary key for faster, unambiguous updates (ALTER TABLE … ADD PRIMARY KEY …)",
                    );
                }
            }
        },
    }
    if config.watch.blue && config.cutover.reverse {
        check_marks(&mut conn, Side::Blue, &version, &mut f).await;
    }
    f
}

/// The binlog settings turnout reads the stream with.
async fn binlog_settings(conn: &mut mysql_async::Conn, mariadb: bool, f: &mut Findings) {
    for (name, want, fix) in BINLOG_SETTINGS {
        match variable(conn, name).await {
            Some(v) if v.eq_ignore_ascii_case(want) => f.ok(format!("{name} = {v}")),
            Some(v) => f.fail(format!("{name} = {v}, turnout needs {want}"), fix),
            None => f.fail(format!("{name} is not set on this server (too old?)"), fix),
        }
    }
    if mariadb {
        match variable(conn, "log_bin_compress").await {
            Some(v) if v.eq_ignore_ascii_case("ON") => f.fail("log_bin_compress = ON: compressed binlog events", "SET GLOBAL log_bin_compress = OFF;"),
            _ => f.ok("log_bin_compress = OFF"),
        }
    } else {
        if !variable(conn, "gtid_mode").await.is_some_and(|v| v.eq_ignore_ascii_case("ON")) {
            f.fail("gtid_mode is not ON", "enable GTIDs (gtid_mode = ON, enforce_gtid_consistency = ON) on blue");
        }
        match variable(conn, "binlog_row_value_options").await {
            // The diffs apply to the before image's document, which binlog_row_image = FULL (checked
            // above) puts in the binlog; a diff without it stops `run` naming that setting.
            Some(v) if v.to_ascii_uppercase().contains("PARTIAL_JSON") => {
                f.ok("binlog_row_value_options = PARTIAL_JSON: JSON updates logged as diffs are applied to the before image's document")
            }
            _ => f.ok("binlog_row_value_options has no PARTIAL_JSON"),
        }
    }
}

/// Retention: the binlog must outlive the snapshot and any pause.
async fn retention(conn: &mut mysql_async::Conn, db: &str, f: &mut Findings) {
    let seconds = match variable(conn, "binlog_expire_logs_seconds").await.and_then(|v| v.parse::<u64>().ok()) {
        Some(s) if s > 0 => Some(s),
        _ => variable(conn, "expire_logs_days")
            .await
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d > 0.0)
            .map(|d| std::time::Duration::from_secs_f64(d * 86_400.0).as_secs()),
    };
    let bytes: i64 = conn
        .exec_first("SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (db,))
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    // A conservative copy rate for the estimate: 20 MB/s.
    let estimate = u64::try_from(bytes).unwrap_or(0) / (20 << 20);
    match seconds {
        None => f.ok("binlogs are kept until purged by hand (no expiry)"),
        Some(s) if s < 3600 || s < estimate.saturating_mul(4) => f.warn(
            format!("binlogs expire after {s} s; the snapshot of {} MB may take ~{estimate} s", bytes >> 20),
            "keep binlogs longer than the snapshot and any outage: SET GLOBAL binlog_expire_logs_seconds = 604800;",
        ),
        Some(s) => f.ok(format!("binlogs are kept {s} s (snapshot estimate ~{estimate} s)")),
    }
}

/// The account's privileges for the stream and the snapshot (`g` its grants).
fn privileges(g: &str, opts: &mysql_async::Opts, mariadb: bool, f: &mut Findings) {
    let user = format!("'{}'@'%'", opts.user().unwrap_or(""));
    let mut missing = Vec::new();
    if !has_global(g, "REPLICATION SLAVE") && !has_global(g, "REPLICATION REPLICA") {
        missing.push("REPLICATION SLAVE");
    }
    if !has_global(g, "BINLOG MONITOR") && !has_global(g, "REPLICATION CLIENT") && !has_global(g, "SUPER") {
        missing.push(if mariadb { "BINLOG MONITOR" } else { "REPLICATION CLIENT" });
    }
    if !has_global(g, "RELOAD") {
        missing.push("RELOAD");
    }
    if missing.is_empty() {
        f.ok("privileges: replication, binlog monitoring and RELOAD (for the snapshot's commit lock)");
    } else {
        f.fail(format!("the account lacks {}", missing.join(", ")), format!("GRANT {} ON *.* TO {user};", missing.join(", ")));
    }
}

/// The account may read the database and create turnout's heartbeat table there (`g` its grants).
fn database_grants(g: &str, opts: &mysql_async::Opts, db: &str, f: &mut Findings) {
    let user = format!("'{}'@'%'", opts.user().unwrap_or(""));
    let on_db = g.lines().any(|l| {
        (l.contains(&format!(" ON {}.* ", quote(db).to_ascii_uppercase())) || l.contains(" ON *.* "))
            && (l.contains("ALL PRIVILEGES") || (l.contains("SELECT") && l.contains("CREATE")))
    });
    if on_db {
        f.ok(format!("SELECT and CREATE on {db} (reading tables, the heartbeat table)"));
    } else {
        f.fail(
            format!("the account may not read {db} or create turnout's heartbeat table there"),
            format!("GRANT SELECT, CREATE, INSERT, UPDATE ON {}.* TO {user};", quote(db)),
        );
    }
}

/// The read-only fence: turnout's account may set `read_only`, write its sentinel under it and end
/// other sessions; every other account that could still write under it is a warning with the REVOKE.
async fn check_fence(conn: &mut mysql_async::Conn, grants: &str, opts: &mysql_async::Opts, oracle: bool, f: &mut Findings) {
    let lines: Vec<String> = grants.lines().map(str::to_owned).collect();
    if turnout_cutover::fence_privileged(&lines, oracle) {
        f.ok(if oracle {
            "cutover: the account may set read_only and super_read_only and write its sentinel under read_only"
        } else {
            "cutover: the account may set read_only and write its sentinel under it"
        });
    } else {
        f.fail(
            "cutover (fence read-only): the account may not set read_only, write under it or end other sessions",
            turnout_cutover::fence_grant(opts.user().unwrap_or_default(), oracle),
        );
    }
    let fence = turnout_cutover::ReadOnlyFence { own_user: opts.user().unwrap_or_default().to_owned(), oracle, end_first: false };
    // Sessions of this account that this check did not open: `turnout run`'s own, or an
    // application's. The cutover (and its dry run), which knows run's sessions, refuses the latter.
    let own = turnout_connect::mysql::conn::own_sessions(opts);
    if let Ok(others) = fence.foreign_sessions(conn, &own).await {
        if !others.is_empty() {
            f.warn(
                format!(
                    "cutover: turnout's account has {} other sessions on blue ({}); the cutover refuses if any is not turnout run's own",
                    others.len(),
                    others.join(", ")
                ),
                "use turnout's account for turnout only: it may write under read_only, so an application using it would write through the fence",
            );
        }
    }
    match turnout_cutover::running_replication(conn, turnout_cutover::Side::Blue).await {
        Ok(channels) if channels.is_empty() => f.ok("cutover: blue is no replica (nothing writes through its fence)"),
        Ok(channels) => f.warn(
            format!("cutover: blue is itself a replica ({} running): the cutover refuses, replication threads write through read_only", channels.len()),
            "stop replication into blue (STOP REPLICA / STOP ALL SLAVES) before the cutover",
        ),
        Err(e) => f.fail(
            format!("cutover: cannot tell whether blue is a replica itself: {e}"),
            format!("GRANT {} ON *.* TO '{}'@'%';", if oracle { "REPLICATION CLIENT" } else { "SLAVE MONITOR" }, opts.user().unwrap_or_default()),
        ),
    }
    match fence.unfenced_accounts(conn).await {
        Ok(accounts) => {
            for (account, revoke) in accounts {
                let what = if oracle {
                    format!(
                        "cutover: account {account} can write through read_only (CONNECTION_ADMIN or SUPER); super_read_only stops it only inside the pause"
                    )
                } else {
                    format!("cutover: account {account} can still write while blue is read-only (READ ONLY ADMIN or SUPER)")
                };
                f.warn(what, revoke);
            }
        }
        Err(e) => f.warn(format!("cutover: cannot list the accounts read_only does not stop: {e}"), "grant the account SELECT on mysql.user"),
    }
}

/// Green: reachable, writable, turnout's progress database; with `reverse`, ready to feed the
/// reverse stream after a cutover.
async fn check_target(opts: &mysql_async::Opts, config: &Config) -> Findings {
    let reverse = config.cutover.reverse;
    let mut f = Findings::default();
    let mut conn = match connect(opts, crate::error::Side::Green).await {
        Ok(c) => c,
        Err(e) => {
            let (what, fix) = connect_failure(opts, "target.url", &e);
            f.fail(what, fix);
            return f;
        }
    };
    let version: String = conn.query_first("SELECT VERSION()").await.ok().flatten().unwrap_or_default();
    f.ok(format!("connected as {} ({version})", opts.user().unwrap_or("")));
    let g = grants(&mut conn).await;
    let user = format!("'{}'@'%'", opts.user().unwrap_or(""));
    let db = database(opts);
    let writes = g.lines().any(|l| {
        (l.contains(&format!(" ON {}.* ", quote(&db).to_ascii_uppercase())) || l.contains(" ON *.* "))
            && (l.contains("ALL PRIVILEGES") || (l.contains("INSERT") && l.contains("UPDATE") && l.contains("DELETE")))
    });
    if writes {
        f.ok(format!("may write {db}"));
    } else {
        f.fail(format!("the account may not write {db}"), format!("GRANT ALL PRIVILEGES ON {}.* TO {user};", quote(&db)));
    }
    let progress = g.lines().any(|l| (l.contains(" ON `TURNOUT`.* ") || l.contains(" ON *.* ")) && (l.contains("ALL PRIVILEGES") || l.contains("CREATE")));
    if progress {
        f.ok("may keep turnout's progress record (database turnout)");
    } else {
        f.fail("the account may not create turnout's progress table (database turnout)", format!("GRANT ALL PRIVILEGES ON `turnout`.* TO {user};"));
    }
    if variable(&mut conn, "super_read_only").await.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON")) {
        f.fail(
            "green has super_read_only = ON, which stops turnout's apply too",
            "SET GLOBAL super_read_only = OFF; on green (read_only may stay ON: turnout's account writes through it, and the cutover lifts it)",
        );
    }
    match super::catalog::triggers(&mut conn, &db, None, crate::error::Side::Green).await {
        Ok(t) if t.is_empty() => f.ok("no triggers on green"),
        Ok(t) => {
            let (what, fix) = super::catalog::green_triggers_problem(&t);
            f.fail(what, fix);
        }
        Err(e) => f.warn(format!("cannot read green's triggers: {e}"), "GRANT TRIGGER (or SELECT) on the database to turnout's account on green"),
    }
    if reverse {
        // What the cutover's preflight refuses when it arms the way back.
        let oracle = !version.to_ascii_lowercase().contains("mariadb");
        let problems = reverse_problems(&mut conn, opts.user().unwrap_or(""), oracle).await;
        if problems.is_empty() {
            f.ok("cutover: green can feed the reverse stream (binlog settings, privileges to read it and to mark turnout's writes)");
        }
        for (what, fix) in problems {
            f.warn(format!("cutover: {what}"), format!("{fix} (or set cutover.reverse = false to cut over without a way back)"));
        }
    }
    if config.watch.green {
        check_marks(&mut conn, Side::Green, &version, &mut f).await;
    }
    f
}

/// Whether turnout's account may mark its writes on `side` (a GTID domain on MariaDB, a GTID tag on
/// Oracle MySQL 8.3+), which the watch of that side needs to tell them from others'. Tried in this
/// session and set back.
async fn check_marks(conn: &mut mysql_async::Conn, side: Side, version: &str, f: &mut Findings) {
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    let watch = match side {
        Side::Green => "[watch] green",
        Side::Blue => "[watch] blue (the rollback window)",
    };
    let tried = turnout_sinks::mysql::mark_session(conn, mariadb, turnout_sinks::mysql::cutover_domain("check")).await;
    let reset = if mariadb { "SET SESSION gtid_domain_id = @@GLOBAL.gtid_domain_id" } else { "SET SESSION gtid_next = 'AUTOMATIC'" };
    let _ = conn.query_drop(reset).await;
    match tried {
        Ok(()) => f.ok(format!("{watch}: turnout's account may mark its writes on {side} ({})", if mariadb { "GTID domain" } else { "GTID tag" })),
        Err(e) => f.warn(
            format!("{watch}: turnout's account may not mark its writes on {side} ({e}), so the watch cannot tell them from others'"),
            format!("{} on {side}, then restart `turnout run` (or set {watch} = false)", turnout_sinks::mysql::mark_grant(mariadb)),
        ),
    }
}
