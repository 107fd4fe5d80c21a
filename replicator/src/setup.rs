//! Idempotent set-up done by `turnout run`: object names, the publication on blue, refusing tables that
//! cannot replicate, and copying the schema to green with `pg_dump` when green lacks the tables.

use crate::catalog::{identity_fix, replicated_tables, tables_without_identity_sql};
use crate::error::Error;
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

/// Creates the publication for every replicated table if it does not exist, publishing partitions
/// through their root. Falls back to an explicit table list when the role may not create
/// `FOR ALL TABLES` publications (which needs superuser).
pub async fn ensure_publication(conn: &mut PgConnection, name: &str) -> Result<(), Error> {
    let exists = conn
        .simple_query(&format!("SELECT 1 FROM pg_publication WHERE pubname = '{}'", name.replace('\'', "''")))
        .await
        .map_err(Error::Source)?;
    if !exists.is_empty() {
        return Ok(());
    }
    let all = format!("CREATE PUBLICATION {} FOR ALL TABLES WITH (publish_via_partition_root = true)", quote_ident(name));
    match conn.simple_query(&all).await {
        Ok(_) => Ok(()),
        Err(e) if e.sqlstate() == Some("42501") => {
            let tables = replicated_tables(conn).await.map_err(Error::Source)?;
            if tables.is_empty() {
                return Err(Error::Setup("blue has no user tables to replicate".into()));
            }
            let list: Vec<String> = tables.iter().map(TableName::quoted).collect();
            conn.simple_query(&format!(
                "CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)",
                quote_ident(name),
                list.join(", ")
            ))
            .await
            .map_err(|e| Error::Setup(format!("creating publication {name}: {e}; the source role must own the tables or be a superuser")))?;
            Ok(())
        }
        Err(e) => Err(Error::Setup(format!("creating publication {name}: {e}"))),
    }
}

/// Refuses to start when a table cannot replicate its UPDATEs and DELETEs, naming the fix.
pub async fn refuse_tables_without_identity(conn: &mut PgConnection) -> Result<(), Error> {
    let rows = conn.simple_query(&tables_without_identity_sql()).await.map_err(Error::Source)?;
    if rows.is_empty() {
        return Ok(());
    }
    let fixes: Vec<String> = rows.iter().map(|r| identity_fix(r[0].as_deref().unwrap_or(""), r[1].as_deref().unwrap_or(""))).collect();
    Err(Error::Setup(format!(
        "{} table(s) have no primary key and no REPLICA IDENTITY FULL, so their UPDATEs and DELETEs cannot be replicated. \
         Add a primary key, or run on blue:\n{}",
        rows.len(),
        fixes.join("\n")
    )))
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
/// simple query (psql meta-commands removed).
pub fn dump_schema(pg_dump: &Path, source: &ConnectOptions, section: &str) -> Result<String, Error> {
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

/// Runs pg_dump's post-data section (indexes, constraints, triggers) on green, one dump entry at a
/// time. With `tolerate_existing` (an interrupted earlier attempt may have created some of them),
/// entries that already exist are skipped.
pub async fn apply_post_data(green: &tokio_postgres::Client, sql: &str, tolerate_existing: bool) -> Result<(), Error> {
    // pg_dump starts every object with a "-- Name: …" comment block; the SET lines before the first
    // one configure the session.
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
    for entry in entries {
        match green.batch_execute(&entry).await {
            Ok(()) => {}
            // duplicate_table, duplicate_object, invalid_table_definition (a second primary key)
            Err(e) if tolerate_existing && matches!(e.code().map(|c| c.code()), Some("42P07" | "42710" | "42P16")) => {
                tracing::info!("already on green, skipped: {}", e);
            }
            Err(e) => return Err(Error::Setup(format!("creating indexes and constraints on green: {e}"))),
        }
    }
    Ok(())
}
