//! Idempotent set-up done by `turnout run`: object names, the publication on blue (for the selected
//! tables), refusing (or skipping) tables that cannot replicate, and copying the schema of the
//! selected tables to green with `pg_dump` when green lacks them.

use crate::catalog::{identity_fix, select_tables, Selection, TableFilter};
use crate::error::Error;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use turnout_decoders::pg::{ConnectOptions, PgConnection};
use turnout_decoders::schema::{quote_ident, TableName};

/// Names of the objects turnout creates, derived from the stream id in the state store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Names {
    pub publication: String,
    pub slot: String,
    pub origin: String,
}

impl Names {
    pub fn for_stream(id: &str) -> Names {
        let base = format!("turnout_{id}");
        Names { publication: base.clone(), slot: base.clone(), origin: base }
    }
}

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
    let tables = rows
        .iter()
        .filter_map(|r| Some(TableName::new(r.get(1).cloned().flatten()?, r.get(2).cloned().flatten()?)))
        .collect();
    Ok(Some(Published::Tables(tables)))
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
/// Once the snapshot is done (`snapshot_done`), the set may only shrink: a table newly selected was
/// never copied, so streaming its changes alone would leave green wrong — that is an error naming
/// it. A table no longer selected stops receiving changes on green (logged as a warning).
pub async fn sync_publication(conn: &mut PgConnection, name: &str, selection: &Selection, snapshot_done: bool) -> Result<(), Error> {
    let wanted: BTreeSet<TableName> = selection.tables.iter().cloned().collect();
    let quoted = quote_ident(name);
    let for_tables = |tables: &BTreeSet<TableName>| {
        format!("CREATE PUBLICATION {quoted} FOR TABLE {} WITH (publish_via_partition_root = true)", table_list(tables))
    };
    let all_tables = format!("CREATE PUBLICATION {quoted} FOR ALL TABLES WITH (publish_via_partition_root = true)");
    let no_tables = || Error::Setup("blue has no user tables to replicate".into());
    let (have, all_tables_now) = match published(conn, name).await? {
        None if selection.everything => {
            return match conn.simple_query(&all_tables).await {
                Ok(_) => Ok(()),
                Err(e) if e.sqlstate() == Some("42501") => {
                    if wanted.is_empty() {
                        return Err(no_tables());
                    }
                    conn.simple_query(&for_tables(&wanted)).await.map(drop).map_err(|e| {
                        Error::Setup(format!("creating publication {name}: {e}; the source role must own the tables or be a superuser"))
                    })
                }
                Err(e) => Err(Error::Setup(format!("creating publication {name}: {e}"))),
            };
        }
        None => {
            return conn.simple_query(&for_tables(&wanted)).await.map(drop).map_err(|e| {
                Error::Setup(format!("creating publication {name}: {e}; the source role must own the tables or be a superuser"))
            });
        }
        Some(Published::AllTables) if selection.everything => return Ok(()),
        Some(Published::AllTables) => (selection.all_roots().into_iter().collect(), true),
        Some(Published::Tables(have)) => (have, false),
    };
    let added: Vec<String> = wanted.difference(&have).map(ToString::to_string).collect();
    let removed: Vec<String> = have.difference(&wanted).map(ToString::to_string).collect();
    if snapshot_done && !added.is_empty() {
        return Err(Error::Setup(format!(
            "the table selection now includes {}, which the initial snapshot did not copy (the [tables] filter changed, or the \
             table was created on blue since); turnout cannot add a table to a running replication. Leave it out (add it to \
             tables.exclude), or start over with `turnout teardown --yes` and `turnout run`",
            added.join(", ")
        )));
    }
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
            Err(e) => return Err(Error::Setup(format!("replacing publication {name}: {e}"))),
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
        Error::Setup(format!("changing publication {name} to the selected tables: {e}; the source role must own the publication and the tables"))
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
        return Err(Error::Setup(format!(
            "{} table(s) have no primary key and no REPLICA IDENTITY FULL, so their UPDATEs and DELETEs cannot be replicated. \
             Add a primary key, or run on blue:\n{}\nor leave them out with tables.skip_without_identity = true (or tables.exclude)",
            lacking.len(),
            fixes.join("\n")
        )));
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
            format!(
                "left out every selected table, so nothing is left to replicate; give them a primary key or run on blue:\n{}",
                fixes.join("\n")
            ),
        ));
    }
    Ok(())
}

/// Whether a replication slot exists on blue.
pub async fn slot_exists(conn: &mut PgConnection, slot: &str) -> Result<bool, Error> {
    let rows = conn
        .simple_query(&format!("SELECT 1 FROM pg_replication_slots WHERE slot_name = '{}'", slot.replace('\'', "''")))
        .await
        .map_err(Error::Source)?;
    Ok(!rows.is_empty())
}

/// Drops a replication slot on blue if it exists.
pub async fn drop_slot(conn: &mut PgConnection, slot: &str) -> Result<(), Error> {
    if slot_exists(conn, slot).await? {
        conn.simple_query(&format!("SELECT pg_drop_replication_slot('{}')", slot.replace('\'', "''"))).await.map_err(Error::Source)?;
    }
    Ok(())
}

/// Finds a `pg_dump` whose major version is at least `min_major`: the configured path, then the
/// system's PostgreSQL installations (newest first), then `PATH`.
pub fn find_pg_dump(configured: Option<&Path>, min_major: u32) -> Result<PathBuf, Error> {
    let major_of = |p: &Path| -> Option<u32> {
        let out = Command::new(p).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().find_map(|w| w.split('.').next()?.parse().ok())
    };
    if let Some(p) = configured {
        return match major_of(p) {
            Some(m) if m >= min_major => Ok(p.to_path_buf()),
            Some(m) => Err(Error::Setup(format!("source.pg_dump {} is version {m}, older than blue ({min_major}); install postgresql-client-{min_major} or newer", p.display()))),
            None => Err(Error::Setup(format!("source.pg_dump {} cannot be run", p.display()))),
        };
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let p = e.path().join("bin/pg_dump");
            p.exists().then_some((major, p))
        })
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    if let Some((_, p)) = candidates.into_iter().find(|(m, _)| *m >= min_major) {
        return Ok(p);
    }
    let on_path = PathBuf::from("pg_dump");
    match major_of(&on_path) {
        Some(m) if m >= min_major => Ok(on_path),
        _ => Err(Error::Setup(format!(
            "green lacks blue's tables and no pg_dump of version {min_major} or newer was found to copy the schema; \
             install postgresql-client-{min_major} (or newer), or set source.pg_dump, or create the tables on green yourself"
        ))),
    }
}

/// Runs `pg_dump --schema-only --section=SECTION` against blue and returns SQL runnable through a
/// simple query (psql meta-commands removed). `left_out` are tables the dump must not hold (one
/// `-T` each, partitions included): everything else — schemas, types, functions, sequences and the
/// selected tables — is dumped as without a filter.
pub fn dump_schema(pg_dump: &Path, source: &ConnectOptions, section: &str, left_out: &[TableName]) -> Result<String, Error> {
    let mut cmd = Command::new(pg_dump);
    cmd.args(["--schema-only", "--no-owner", "--no-privileges", "--no-publications", "--no-subscriptions"])
        .arg(format!("--section={section}"))
        .args(["-h", &source.host, "-p", &source.port.to_string(), "-U", &source.user, "-d", &source.database])
        .env("PGSSLMODE", match source.ssl_mode {
            turnout_decoders::pg::SslMode::Disable => "disable",
            turnout_decoders::pg::SslMode::Prefer => "prefer",
            turnout_decoders::pg::SslMode::Require => "require",
            turnout_decoders::pg::SslMode::VerifyFull => "verify-full",
        });
    // A pattern in double quotes matches exactly that name (pg_dump's -t/-T pattern rules).
    for t in left_out {
        cmd.arg("-T").arg(t.quoted());
    }
    if let Some(pw) = &source.password {
        cmd.env("PGPASSWORD", pw);
    }
    if let Some(root) = &source.ssl_root_cert {
        cmd.env("PGSSLROOTCERT", root);
    }
    let out = cmd.output().map_err(|e| Error::Setup(format!("running {}: {e}", pg_dump.display())))?;
    if !out.status.success() {
        return Err(Error::Setup(format!("{} --section={section} failed: {}", pg_dump.display(), String::from_utf8_lossy(&out.stderr).trim())));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().filter(|l| !l.starts_with('\\')).collect::<Vec<_>>().join("\n"))
}

/// Which of `tables` exist on green.
pub async fn existing_on_green(green: &tokio_postgres::Client, tables: &[TableName]) -> Result<Vec<bool>, Error> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let row = green
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&t.quoted()])
            .await
            .map_err(|e| Error::Setup(format!("looking up {t} on green: {e}")))?;
        out.push(row.get(0));
    }
    Ok(out)
}

/// The entries of a pg_dump script: pg_dump starts every object with a "-- Name: …" comment block;
/// the SET lines before the first one configure the session and stay with the first entry.
fn dump_entries(sql: &str) -> Vec<String> {
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
fn entry_name(entry: &str) -> String {
    let Some(header) = entry.lines().find_map(|l| l.strip_prefix("-- Name: ")) else { return "(session settings)".into() };
    let name = header.split("; ").next().unwrap_or_default();
    let field = |key: &str| header.split("; ").find_map(|f| f.strip_prefix(key)).unwrap_or_default().to_string();
    let (kind, schema) = (field("Type: "), field("Schema: "));
    match schema.as_str() {
        "" | "-" => format!("{kind} {name}"),
        _ => format!("{kind} {schema}.{name}"),
    }
}

/// The server's message of a failed statement (the driver's own text says only "db error").
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Whether a failed dump entry refers to something a table filter left out: undefined_table,
/// undefined_object (e.g. a left-out table's row type), undefined_function.
fn refers_to_left_out(e: &tokio_postgres::Error) -> bool {
    matches!(e.code().map(|c| c.code()), Some("42P01" | "42704" | "42883"))
}

/// Runs pg_dump's pre-data section (types, tables, sequences) on green in one transaction. With
/// `filtered` (a `[tables]` filter left tables out of the dump), an entry that fails because it
/// refers to a left-out table — a view over it, an inheritance child — is skipped with a warning
/// naming it, and the rest still runs; the caller must then check that every selected table exists.
pub async fn apply_pre_data(green: &tokio_postgres::Client, sql: &str, filtered: bool) -> Result<(), Error> {
    let fail = |e: tokio_postgres::Error| Error::Setup(format!("creating the schema on green: {}", db_message(&e)));
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
                return Err(Error::Setup(format!("creating the schema on green ({}): {}", entry_name(&entry), db_message(&e))));
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
                return Err(Error::Setup(format!("creating indexes and constraints on green ({}): {}", entry_name(&entry), db_message(&e))))
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
    fn a_dump_splits_into_entries_named_by_their_header() {
        let entries = dump_entries(DUMP);
        assert_eq!(entries.len(), 3, "{entries:?}");
        assert!(entries[0].contains("set_config") && !entries[0].contains("CREATE VIEW"));
        let names: Vec<String> = entries.iter().map(|e| entry_name(e)).collect();
        assert_eq!(names, ["(session settings)", "VIEW public.totals", "FK CONSTRAINT sales.invoices invoices_old_id_fkey"]);
    }
}
