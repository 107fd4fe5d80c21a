//! Idempotent set-up done by `turnout run`: object names, the publication on blue (for the selected
//! tables), refusing (or skipping) tables that cannot replicate, and copying the schema of the
//! selected tables to green with `pg_dump` when green lacks them.

use super::catalog::{identity_fix, select_tables};
use crate::error::{Error, SchemaRefusal};
use crate::tables::{Selection, TableFilter};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tokio::process::Command;
use turnout_connect::pg::{ConnectOptions, PgConnection};
use turnout_decoders::schema::{quote_ident, TableName};

/// Creates the publication for every table of blue if it does not exist (no filter), publishing
/// partitions through their root; see [`sync_publication`].
pub async fn ensure_publication(conn: &mut PgConnection, name: &str) -> Result<(), Error> {
    let selection = select_tables(conn, &TableFilter::default()).await?;
    sync_publication(conn, name, &selection, false).await
}

/// What an existing publication publishes.
enum Published {
    AllTables,
    Tables(BTreeSet<TableName>),
}

async fn published(conn: &mut PgConnection, name: &str) -> Result<Option<Published>, Error> {
    let rows = conn
        .simple_query(&format!(
            "SELECT p.puballtables, n.nspname, c.relname FROM pg_publication p \
             LEFT JOIN pg_publication_rel r ON r.prpubid = p.oid LEFT JOIN pg_class c ON c.oid = r.prrelid \
             LEFT JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = '{}'",
            name.replace('\'', "''")
        ))
        .await
        .map_err(Error::Source)?;
    let Some(first) = rows.first() else { return Ok(None) };
    if first.first().cloned().flatten().as_deref() == Some("t") {
        return Ok(Some(Published::AllTables));
    }
    let tables = rows.iter().filter_map(|r| Some(TableName::new(r.get(1).cloned().flatten()?, r.get(2).cloned().flatten()?))).collect();
    Ok(Some(Published::Tables(tables)))
}

/// The selected tables the publication does not publish (none when it publishes every table).
pub async fn unpublished(conn: &mut PgConnection, name: &str, selection: &Selection) -> Result<Vec<TableName>, Error> {
    Ok(match published(conn, name).await? {
        Some(Published::AllTables) => Vec::new(),
        Some(Published::Tables(have)) => selection.tables.iter().filter(|t| !have.contains(t)).cloned().collect(),
        None => selection.tables.clone(),
    })
}

/// [`unpublished`], read through an ordinary session (the stream's watch).
pub async fn unpublished_by(client: &tokio_postgres::Client, name: &str, selection: &Selection) -> Result<Vec<TableName>, Error> {
    let rows = client
        .query(
            "SELECT p.puballtables, n.nspname::text, c.relname::text FROM pg_publication p LEFT JOIN pg_publication_rel r ON r.prpubid = p.oid \
             LEFT JOIN pg_class c ON c.oid = r.prrelid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = $1",
            &[&name],
        )
        .await
        .map_err(Error::blue("reading the publication's tables"))?;
    let Some(first) = rows.first() else { return Ok(Vec::new()) };
    if first.get::<_, bool>(0) {
        return Ok(Vec::new());
    }
    let have: BTreeSet<TableName> = rows.iter().filter_map(|r| Some(TableName::new(r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(2)?))).collect();
    Ok(selection.tables.iter().filter(|t| !(have.contains(t) || t.schema == "public" && t.name == super::heartbeat::TABLE)).cloned().collect())
}

fn table_list(tables: &BTreeSet<TableName>) -> String {
    tables.iter().map(TableName::quoted).collect::<Vec<_>>().join(", ")
}

/// Makes the publication publish exactly `selection`, partitions through their root
/// (`publish_via_partition_root`): `FOR ALL TABLES` when nothing is filtered (falling back to a
/// table list when the role may not create such a publication, which needs superuser), a table list
/// otherwise. An existing publication is changed to match (`ALTER PUBLICATION … SET TABLE`, or
/// dropped and created again in one transaction to change its kind).
///
/// Once the snapshot is done (`snapshot_done`), a table no longer selected stops receiving changes on
/// green (logged as a warning). A table newly selected must be in the chunked copy's plan before the
/// publication publishes it (see `plan_added_tables` in [`super::admin`]), so that its changes are
/// dropped until its copy is on green.
pub async fn sync_publication(conn: &mut PgConnection, name: &str, selection: &Selection, snapshot_done: bool) -> Result<(), Error> {
    let wanted: BTreeSet<TableName> = selection.tables.iter().cloned().collect();
    let quoted = quote_ident(name);
    let for_tables =
        |tables: &BTreeSet<TableName>| format!("CREATE PUBLICATION {quoted} FOR TABLE {} WITH (publish_via_partition_root = true)", table_list(tables));
    let all_tables = format!("CREATE PUBLICATION {quoted} FOR ALL TABLES WITH (publish_via_partition_root = true)");
    let no_tables = || Error::from(SchemaRefusal::NoTables);
    let (have, all_tables_now) =
        match published(conn, name).await? {
            None if selection.everything => {
                return match conn.simple_query(&all_tables).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.sqlstate() == Some("42501") => {
                        if wanted.is_empty() {
                            return Err(no_tables());
                        }
                        conn.simple_query(&for_tables(&wanted)).await.map(drop).map_err(|e| {
                            Error::during(format!("creating publication {name} (the source role must own the tables or be a superuser)"))(Error::Source(e))
                        })
                    }
                    Err(e) => Err(Error::during(format!("creating publication {name}"))(Error::Source(e))),
                };
            }
            None => {
                return conn.simple_query(&for_tables(&wanted)).await.map(drop).map_err(|e| {
                    Error::during(format!("creating publication {name} (the source role must own the tables or be a superuser)"))(Error::Source(e))
                });
            }
            Some(Published::AllTables) if selection.everything => return Ok(()),
            Some(Published::AllTables) => (selection.all_roots().into_iter().collect(), true),
            Some(Published::Tables(have)) => (have, false),
        };
    let added: Vec<String> = wanted.difference(&have).map(ToString::to_string).collect();
    let removed: Vec<String> = have.difference(&wanted).map(ToString::to_string).collect();
    if snapshot_done {
        for t in &removed {
            tracing::warn!(table = %t, "no longer selected by [tables]: green keeps its rows as they are and receives no further changes");
        }
    }
    if !all_tables_now && added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    tracing::info!(publication = %name, added = %added.join(", "), removed = %removed.join(", "), "changing the publication to the table selection");
    // One simple query is one transaction: the publication is never missing in between.
    if selection.everything {
        match conn.simple_query(&format!("DROP PUBLICATION {quoted}; {all_tables}")).await {
            Ok(_) => return Ok(()),
            Err(e) if e.sqlstate() == Some("42501") => {}
            Err(e) => return Err(Error::during(format!("replacing publication {name}"))(Error::Source(e))),
        }
    }
    if wanted.is_empty() {
        return Err(no_tables());
    }
    let change = if all_tables_now {
        format!("DROP PUBLICATION {quoted}; {}", for_tables(&wanted))
    } else {
        format!("ALTER PUBLICATION {quoted} SET TABLE {}", table_list(&wanted))
    };
    conn.simple_query(&change).await.map(drop).map_err(|e| {
        Error::during(format!("changing publication {name} to the selected tables (the source role must own the publication and the tables)"))(Error::Source(e))
    })
}

/// Checks that every selected table can replicate its UPDATEs and DELETEs (a primary key or
/// `REPLICA IDENTITY FULL`; for a partitioned table, every partition). Without `skip`, refuses to
/// start naming each table and the `ALTER TABLE` to run; with `skip`
/// (`tables.skip_without_identity`), leaves those tables out of `selection` with a warning naming
/// each — an error only when nothing is left.
pub fn refuse_tables_without_identity(selection: &mut Selection, skip: bool) -> Result<(), Error> {
    let lacking = selection.without_identity();
    if lacking.is_empty() {
        return Ok(());
    }
    let fixes: Vec<String> = lacking.iter().map(|(_, t)| identity_fix(t)).collect();
    if !skip {
        return Err(SchemaRefusal::NoIdentity { count: lacking.len(), fixes: fixes.join("\n") }.into());
    }
    for (root, t) in &lacking {
        let why = if root == t { String::new() } else { format!(" (its partition {t} has none)") };
        tracing::warn!(
            "skipping {root}{why}: no primary key and no REPLICA IDENTITY FULL, and tables.skip_without_identity is set; \
             it is not published and not copied to green. To replicate it, run on blue: {}",
            identity_fix(t)
        );
    }
    selection.skip_without_identity();
    if selection.tables.is_empty() {
        return Err(Error::config(
            "tables.skip_without_identity",
            format!("left out every selected table, so nothing is left to replicate; give them a primary key or run on blue:\n{}", fixes.join("\n")),
        ));
    }
    Ok(())
}

/// Whether a replication slot exists on blue.
pub async fn slot_exists(conn: &mut PgConnection, slot: &str) -> Result<bool, Error> {
    let rows =
        conn.simple_query(&format!("SELECT 1 FROM pg_replication_slots WHERE slot_name = '{}'", slot.replace('\'', "''"))).await.map_err(Error::Source)?;
    Ok(!rows.is_empty())
}

/// Drops a replication slot on blue if it exists.
pub async fn drop_slot(conn: &mut PgConnection, slot: &str) -> Result<(), Error> {
    if slot_exists(conn, slot).await? {
        conn.simple_query(&format!("SELECT pg_drop_replication_slot('{}')", slot.replace('\'', "''"))).await.map_err(Error::Source)?;
    }
    Ok(())
}

/// The major version a `pg_dump` reports (`pg_dump (PostgreSQL) 18.6` → 18), if it runs. Runs it
/// as a child process the runtime waits for (never blocking a runtime thread).
pub(super) async fn pg_dump_major(p: &Path) -> Option<u32> {
    let out = Command::new(p).arg("--version").output().await.ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().find_map(|w| w.split('.').next()?.parse().ok())
}

/// Every `pg_dump` turnout can find without configuration: the system's PostgreSQL installations
/// (`/usr/lib/postgresql/*/bin`, `/usr/pgsql-*/bin`), `PATH`, and client builds in the tool cache
/// (`pgclient*/…/bin`), each with its major version.
async fn pg_dump_candidates() -> Vec<(u32, PathBuf)> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for (dir, nested) in [("/usr/lib/postgresql", "bin/pg_dump"), ("/usr", "bin/pg_dump")] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dir == "/usr/lib/postgresql" || name.starts_with("pgsql-") {
                paths.push(e.path().join(nested));
            }
        }
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        paths.push(dir.join("pg_dump"));
    }
    // The same cache `turnout demo` and the test harness install client builds into.
    let cache = crate::cache_dir();
    for e in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with("pgclient") {
            // The extracted wheel: pgclientNN/<package>/pginstall/bin/pg_dump.
            for pkg in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                paths.push(pkg.path().join("pginstall/bin/pg_dump"));
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for p in paths.into_iter().filter(|p| p.is_file()) {
        if let Some(major) = pg_dump_major(&p).await {
            found.push((major, p));
        }
    }
    // Oldest first (stable: among equals, the order searched).
    found.sort_by_key(|c| c.0);
    found
}

/// Finds a `pg_dump` whose major version is at least `min_major` (pg_dump refuses to dump a newer
/// server): `source.pg_dump` when set, else the oldest of [`pg_dump_candidates`] that is new enough —
/// the version whose output is meant for servers like blue, and least likely to use syntax an older
/// green lacks.
pub async fn find_pg_dump(configured: Option<&Path>, min_major: u32) -> Result<PathBuf, Error> {
    if let Some(p) = configured {
        return match pg_dump_major(p).await {
            Some(m) if m >= min_major => Ok(p.to_path_buf()),
            Some(m) => Err(SchemaRefusal::PgDumpTooOld { path: p.display().to_string(), version: m, min: min_major }.into()),
            None => Err(SchemaRefusal::PgDumpUnrunnable { path: p.display().to_string() }.into()),
        };
    }
    let candidates = pg_dump_candidates().await;
    if let Some((_, p)) = candidates.iter().find(|(m, _)| *m >= min_major) {
        return Ok(p.clone());
    }
    let seen = if candidates.is_empty() {
        "none was found".to_string()
    } else {
        format!("found only {}", candidates.iter().map(|(m, p)| format!("{} ({m})", p.display())).collect::<Vec<_>>().join(", "))
    };
    Err(SchemaRefusal::NoPgDump { min: min_major, seen }.into())
}

/// Runs `pg_dump --schema-only --section=SECTION` against blue and returns SQL runnable through a
/// simple query (psql meta-commands removed). `left_out` are tables the dump must not hold (one
/// `-T` each, partitions included): everything else — schemas, types, functions, sequences and the
/// selected tables — is dumped as without a filter.
pub async fn dump_schema(pg_dump: &Path, source: &ConnectOptions, section: &str, left_out: &[TableName]) -> Result<String, Error> {
    dump(pg_dump, source, Some(section), left_out, &[]).await
}

/// [`dump_schema`] of every section at once (pre-data and post-data, no data): the whole schema as
/// pg_dump would restore it, for comparing definitions.
pub async fn dump_whole_schema(pg_dump: &Path, source: &ConnectOptions, left_out: &[TableName]) -> Result<String, Error> {
    dump(pg_dump, source, None, left_out, &[]).await
}

/// [`dump_schema`] of `tables` only, partitions included (one `-t` each, with what they own:
/// sequences, indexes, constraints); what they depend on (types, functions) must exist on green.
pub async fn dump_tables(conn: &mut PgConnection, pg_dump: &Path, source: &ConnectOptions, section: &str, tables: &[TableName]) -> Result<String, Error> {
    let mut all = Vec::new();
    for t in tables {
        let rows = conn
            .simple_query(&format!(
                "SELECT n.nspname, c.relname FROM pg_partition_tree('{}'::regclass) p JOIN pg_class c ON c.oid = p.relid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace",
                t.quoted().replace('\'', "''")
            ))
            .await
            .map_err(Error::Source)?;
        all.extend(rows.iter().filter_map(|r| Some(TableName::new(r.first().cloned().flatten()?, r.get(1).cloned().flatten()?))));
        if !all.contains(t) {
            all.push(t.clone());
        }
    }
    dump(pg_dump, source, Some(section), &[], &all).await
}

async fn dump(pg_dump: &Path, source: &ConnectOptions, section: Option<&str>, left_out: &[TableName], only: &[TableName]) -> Result<String, Error> {
    let mut cmd = Command::new(pg_dump);
    cmd.kill_on_drop(true);
    cmd.args(["--schema-only", "--no-owner", "--no-privileges", "--no-publications", "--no-subscriptions"]);
    if let Some(section) = section {
        cmd.arg(format!("--section={section}"));
    }
    cmd.args(["-h", &source.host, "-p", &source.port.to_string(), "-U", &source.user, "-d", &source.database]).env(
        "PGSSLMODE",
        match source.ssl_mode {
            turnout_connect::pg::SslMode::Disable => "disable",
            turnout_connect::pg::SslMode::Prefer => "prefer",
            turnout_connect::pg::SslMode::Require => "require",
            turnout_connect::pg::SslMode::VerifyFull => "verify-full",
        },
    );
    // A pattern in double quotes matches exactly that name (pg_dump's -t/-T pattern rules).
    for t in left_out {
        cmd.arg("-T").arg(t.quoted());
    }
    for t in only {
        cmd.arg("-t").arg(t.quoted());
    }
    if let Some(pw) = &source.password {
        cmd.env("PGPASSWORD", pw);
    }
    if let Some(root) = &source.ssl_root_cert {
        cmd.env("PGSSLROOTCERT", root);
    }
    let out = cmd.output().await.map_err(|e| Error::Tool { program: pg_dump.display().to_string(), reason: format!("cannot be run: {e}") })?;
    if !out.status.success() {
        return Err(Error::Tool {
            program: pg_dump.display().to_string(),
            reason: format!(
                "--schema-only{} of {} failed: {}",
                section.map(|s| format!(" --section={s}")).unwrap_or_default(),
                source.database,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().filter(|l| !l.starts_with('\\')).collect::<Vec<_>>().join("\n"))
}

/// Which of `tables` exist on green.
pub async fn existing_on_green(green: &tokio_postgres::Client, tables: &[TableName]) -> Result<Vec<bool>, Error> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let row = green.query_one("SELECT to_regclass($1) IS NOT NULL", &[&t.quoted()]).await.map_err(Error::green(format!("looking up {t}")))?;
        out.push(row.get(0));
    }
    Ok(out)
}

/// The entries of a pg_dump script: pg_dump starts every object with a "-- Name: …" comment block;
/// the SET lines before the first one configure the session and stay with the first entry.
pub(super) fn dump_entries(sql: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        if line.starts_with("-- Name: ") && !current.trim().is_empty() {
            entries.push(std::mem::take(&mut current));
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        entries.push(current);
    }
    entries
}

/// The object an entry creates, from its "-- Name: N; Type: T; Schema: S; Owner: O" header, as
/// "T S.N" (e.g. `VIEW public.totals`).
pub(super) fn entry_name(entry: &str) -> String {
    let Some(header) = entry.lines().find_map(|l| l.strip_prefix("-- Name: ")) else { return "(session settings)".into() };
    let name = header.split("; ").next().unwrap_or_default();
    let field = |key: &str| header.split("; ").find_map(|f| f.strip_prefix(key)).unwrap_or_default().to_string();
    let (kind, schema) = (field("Type: "), field("Schema: "));
    match schema.as_str() {
        "" | "-" => format!("{kind} {name}"),
        _ => format!("{kind} {schema}.{name}"),
    }
}

/// The server's message of a failed statement, with SQLSTATE, detail and hint (the driver's own text
/// says only "db error").
fn db_message(e: &tokio_postgres::Error) -> String {
    turnout_sinks::pg::describe_error(e)
}

/// Whether a failed dump entry refers to something a table filter left out: undefined_table,
/// undefined_object (e.g. a left-out table's row type), undefined_function.
pub(super) fn refers_to_left_out(e: &tokio_postgres::Error) -> bool {
    matches!(e.code().map(|c| c.code()), Some("42P01" | "42704" | "42883"))
}

/// Removes from a pg_dump script the session settings green does not know: pg_dump writes the
/// `SET` lines of its own version (`SET transaction_timeout = 0` from pg_dump 17+), which an older
/// green rejects. Only top-level `SET name = …;` lines naming a parameter absent from green's
/// `pg_settings` are dropped (each logged); everything else runs as dumped, so a real
/// incompatibility still fails, naming the dump entry.
pub async fn adapt_to_green(green: &tokio_postgres::Client, sql: &str) -> Result<String, Error> {
    let rows = green.query("SELECT name FROM pg_settings", &[]).await.map_err(Error::green("reading pg_settings"))?;
    let known: std::collections::HashSet<String> = rows.iter().map(|r| r.get::<_, String>(0).to_ascii_lowercase()).collect();
    Ok(drop_unknown_settings(sql, &known))
}

fn drop_unknown_settings(sql: &str, known: &std::collections::HashSet<String>) -> String {
    let mut out = String::with_capacity(sql.len());
    for line in sql.lines() {
        let setting = line
            .strip_prefix("SET ")
            .and_then(|rest| rest.split_once(" = ").or_else(|| rest.split_once(" TO ")))
            .map(|(name, _)| name.trim().to_ascii_lowercase())
            .filter(|name| name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'));
        match setting {
            Some(name) if !known.contains(&name) => {
                tracing::info!("schema copy: green does not know the setting {name}; skipping `{line}`");
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Runs pg_dump's pre-data section (types, tables, sequences) on green in one transaction. With
/// `filtered` (a `[tables]` filter left tables out of the dump), an entry that fails because it
/// refers to a left-out table — a view over it, an inheritance child — is skipped with a warning
/// naming it, and the rest still runs; the caller must then check that every selected table exists.
pub async fn apply_pre_data(green: &tokio_postgres::Client, sql: &str, filtered: bool) -> Result<(), Error> {
    let sql = &adapt_to_green(green, sql).await?;
    let fail = |e: tokio_postgres::Error| Error::from(SchemaRefusal::NotCreated { what: "the schema", entry: String::new(), cause: db_message(&e) });
    if !filtered {
        return green.batch_execute(sql).await.map_err(fail);
    }
    green.batch_execute("BEGIN").await.map_err(fail)?;
    for entry in dump_entries(sql) {
        green.batch_execute("SAVEPOINT turnout_entry").await.map_err(fail)?;
        match green.batch_execute(&entry).await {
            Ok(()) => green.batch_execute("RELEASE SAVEPOINT turnout_entry").await.map_err(fail)?,
            Err(e) if refers_to_left_out(&e) => {
                tracing::warn!("not created on green because it refers to a table that is not replicated: {} ({})", entry_name(&entry), db_message(&e));
                green.batch_execute("ROLLBACK TO SAVEPOINT turnout_entry").await.map_err(fail)?;
            }
            Err(e) => {
                // The session is reused for nothing else; a failed rollback changes nothing more.
                let _ = green.batch_execute("ROLLBACK").await;
                return Err(SchemaRefusal::NotCreated { what: "the schema", entry: format!(" ({})", entry_name(&entry)), cause: db_message(&e) }.into());
            }
        }
    }
    green.batch_execute("COMMIT").await.map_err(fail)
}

/// Runs pg_dump's post-data section (indexes, constraints, triggers) on green, one dump entry at a
/// time. With `tolerate_existing` (an interrupted earlier attempt may have created some of them),
/// entries that already exist are skipped. With `filtered`, entries referring to a table that is
/// not replicated (a foreign key to it) are skipped with a warning naming them.
pub async fn apply_post_data(green: &tokio_postgres::Client, sql: &str, tolerate_existing: bool, filtered: bool) -> Result<(), Error> {
    let sql = &adapt_to_green(green, sql).await?;
    for entry in dump_entries(sql) {
        match green.batch_execute(&entry).await {
            Ok(()) => {}
            // duplicate_table, duplicate_object, invalid_table_definition (a second primary key)
            Err(e) if tolerate_existing && matches!(e.code().map(|c| c.code()), Some("42P07" | "42710" | "42P16")) => {
                tracing::info!("already on green, skipped: {}", e);
            }
            Err(e) if filtered && refers_to_left_out(&e) => {
                tracing::warn!("not created on green because it refers to a table that is not replicated: {} ({})", entry_name(&entry), db_message(&e));
            }
            Err(e) => {
                return Err(
                    SchemaRefusal::NotCreated { what: "indexes and constraints", entry: format!(" ({})", entry_name(&entry)), cause: db_message(&e) }.into()
                )
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n\
        --\n-- Name: totals; Type: VIEW; Schema: public; Owner: -\n--\n\nCREATE VIEW public.totals AS SELECT 1;\n\n\
        --\n-- Name: invoices invoices_old_id_fkey; Type: FK CONSTRAINT; Schema: sales; Owner: -\n--\n\n\
        ALTER TABLE ONLY sales.invoices ADD CONSTRAINT invoices_old_id_fkey FOREIGN KEY (old_id) REFERENCES archive.old(id);\n";

    #[test]
    fn settings_an_older_green_lacks_are_dropped_and_the_rest_kept() {
        let known: std::collections::HashSet<String> = ["statement_timeout", "search_path"].iter().map(|s| s.to_string()).collect();
        let sql = "SET statement_timeout = 0;\nSET transaction_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\
                   CREATE TABLE t (\"SET x = 1\" int);\n";
        let out = drop_unknown_settings(sql, &known);
        assert_eq!(out, "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\nCREATE TABLE t (\"SET x = 1\" int);\n");
    }

    #[test]
    fn a_dump_splits_into_entries_named_by_their_header() {
        let entries = dump_entries(DUMP);
        assert_eq!(entries.len(), 3, "{entries:?}");
        assert!(entries[0].contains("set_config") && !entries[0].contains("CREATE VIEW"));
        let names: Vec<String> = entries.iter().map(|e| entry_name(e)).collect();
        assert_eq!(names, ["(session settings)", "VIEW public.totals", "FK CONSTRAINT sales.invoices invoices_old_id_fkey"]);
    }

    /// Running pg_dump (here a slow stand-in) leaves the runtime free: on a single-threaded runtime a
    /// ticker keeps ticking while turnout waits for it. A blocking wait would leave 0 ticks.
    #[tokio::test(flavor = "current_thread")]
    async fn waiting_for_pg_dump_does_not_block_the_runtime() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let script = dir.path().join("pg_dump");
        std::fs::write(&script, "#!/bin/sh\nsleep 0.5\necho 'pg_dump (PostgreSQL) 99.1'\n").expect("script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = std::sync::Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        let found = find_pg_dump(Some(&script), 15).await.expect("the stand-in reports version 99");
        let seen = ticks.load(std::sync::atomic::Ordering::Relaxed);
        ticker.abort();
        assert_eq!(found, script);
        assert!(seen >= 10, "the runtime ticked {seen} times in the 500 ms pg_dump ran");
    }
}
