//! PostgreSQL's [`SourceAdmin`]: table selection, publication and slot, schema copy and consistent
//! snapshot, green's replication origin, heartbeats, check, verify and teardown.
//!
//! Crash safety: a snapshot interrupted at any point is redone from scratch on the next start (the
//! half-used slot is dropped and the copied tables are emptied); once it completed, green's
//! replication origin holds the resume position, written in the same transaction as the data.

use super::catalog::select_tables;
use super::{setup, snapshot, PgSource};
use crate::config::Config;
use crate::error::{CopyRefusal, Error, Side};
use crate::source::contract::compare::TableCheck;
use crate::source::contract::report::Report;
use crate::source::{Names, SourceAdmin};
use crate::state::StateStore;
use crate::state::StoreError;
use crate::status::{Phase, Status};
use crate::tables::Selection;
use std::sync::Arc;
use tokio::sync::watch;
use turnout_connect::pg::client::SlotOptions;
use turnout_connect::pg::{ConnectOptions, PgConnection};
use turnout_decoders::{Position, TableName};
use turnout_sinks::pg::{self as green, PgEarly, PgSink};
use turnout_sinks::Parallel;

/// PostgreSQL blue → PostgreSQL green.
#[derive(Debug)]
pub struct PgAdmin {
    config: Config,
    names: Names,
    /// The reverse stream's loop prevention: turnout's forward replication origin on green.
    skip_origin: Option<String>,
}

impl PgAdmin {
    pub fn new(config: &Config, names: Names) -> PgAdmin {
        PgAdmin { config: config.clone(), names, skip_origin: None }
    }

    /// The reverse stream after a cutover: `config` with source and target swapped (green → blue),
    /// never passing on a change turnout's forward apply wrote through `forward_origin`.
    pub fn reverse(config: &Config, names: Names, forward_origin: &str) -> PgAdmin {
        PgAdmin { config: config.clone(), names, skip_origin: Some(forward_origin.to_owned()) }
    }
}

impl SourceAdmin for PgAdmin {
    type Stream = PgSource;
    type Sink = Parallel<PgSink>;
    type Early = PgEarly;
    type Copier = super::chunks::PgCopier;

    fn names(&self) -> &Names {
        &self.names
    }

    async fn prepare(&self, state: &StateStore, status: &Arc<Status>) -> Result<(), Error> {
        let (config, names) = (&self.config, &self.names);
        let source = config.source_options()?;
        let mut admin = PgConnection::connect(&source, false).await.map_err(Error::Source)?;
        super::heartbeat::ensure_table(&mut admin).await?;
        let mut selection = select_tables(&mut admin, &config.table_filter()?).await?;
        for (field, pattern) in &selection.unmatched {
            tracing::warn!("{field} '{pattern}' matches no table on blue");
        }
        setup::refuse_tables_without_identity(&mut selection, config.tables.skip_without_identity)?;
        // Nothing on blue unaccounted for: whatever the inventory refuses stops the start.
        let inventory = super::inventory::of_config(config, true).await?;
        tracing::info!(objects = inventory.objects(), digest = %inventory.digest(), "blue's inventory taken");
        inventory.refusal("replication cannot start")?;
        if !selection.everything {
            tracing::info!(
                selected = selection.tables.len(),
                left_out = selection.excluded.len() + selection.skipped.len(),
                "replicating the tables selected by [tables]"
            );
        }
        let snapshot_done = state.snapshot_done()?.is_some();
        let blue_major = admin.server_version_num().unwrap_or(0) / 10000;
        if snapshot_done {
            let added = setup::unpublished(&mut admin, &names.publication, &selection).await?;
            if self.skip_origin.is_some() && !added.is_empty() {
                // A stream that began at a hand-off (the rollback window's, or the next generation
                // after a rollback) copies nothing: a table its source gained since cannot join it.
                return Err(CopyRefusal::AddedAfterHandOff { tables: added.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") }.into());
            }
            if self.skip_origin.is_none() {
                crate::copy::forget_unselected(state, &selection.tables)?;
                if !added.is_empty() {
                    plan_added_tables(config, state, &mut admin, &added, blue_major).await?;
                }
            }
        }
        setup::sync_publication(&mut admin, &names.publication, &selection, snapshot_done).await?;
        // A partition's TRUNCATE, which publishing through the root hides, noted in the stream.
        let session = super::session(config.source.url.expose(), config.source_side()).await?;
        super::truncate::ensure(&session, &selection.tables, config.source_side()).await?;
        if !snapshot_done {
            initial_snapshot(config, state, names, status, &mut admin, &selection, blue_major).await?;
        }
        admin.close().await;
        Ok(())
    }

    async fn open_sink(&self) -> Result<Parallel<PgSink>, Error> {
        let (url, origin, n) = (self.config.target.url.expose(), &self.names.origin, self.config.apply_sessions());
        let sessions = if n <= 1 {
            vec![PgSink::connect(url, origin).await.map_err(Error::Sink)?]
        } else {
            futures_util::future::try_join_all((0..n).map(|_| PgSink::connect_shared(url, origin))).await.map_err(Error::Sink)?
        };
        // A column blue adds gets, on green, the value blue's older rows hold in it.
        let source = self.config.source_options()?;
        let sessions = sessions.into_iter().map(|s| s.with_source(source.clone())).collect();
        Parallel::new(sessions).map_err(Error::Sink)
    }

    fn open_early(&self) -> PgEarly {
        PgEarly::new(self.config.target.url.expose(), &self.names.origin, self.config.apply_stream_sessions())
    }

    fn copier(&self) -> Result<super::chunks::PgCopier, Error> {
        Ok(super::chunks::PgCopier {
            source: self.config.source_options()?,
            source_url: self.config.source.url.expose().to_owned(),
            target_url: self.config.target.url.expose().to_owned(),
            slot: self.names.slot.clone(),
            workers: self.config.snapshot_workers(),
        })
    }

    async fn open_stream(&self, from: &Position) -> Result<PgSource, Error> {
        let from = from.lsn().ok_or_else(|| CopyRefusal::ForeignPosition { log: "PostgreSQL", position: from.to_string() })?;
        let (source, names) = (self.config.source_options()?, &self.names);
        PgSource::start(&source, &names.slot, &names.publication, from, self.config.receive_timeout(), self.skip_origin.as_deref()).await
    }

    fn heartbeat(&self, status: Arc<Status>, shutdown: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
        super::heartbeat::run(
            self.config.source.url.expose().to_owned(),
            self.config.source_side(),
            self.names.slot.clone(),
            self.config.heartbeat_interval(),
            status,
            shutdown,
        )
    }

    fn watch(&self) -> impl std::future::Future<Output = Error> + Send {
        let (config, publication) = (self.config.clone(), self.names.publication.clone());
        async move { super::inventory::watch(&config, &publication).await }
    }

    async fn check(&self) -> Report {
        super::check::run(&self.config).await
    }

    async fn verify(&self, only: Option<&str>) -> Result<Vec<TableCheck>, Error> {
        super::verify::run(&self.config, only).await
    }

    async fn teardown(&self) -> Result<Vec<String>, Error> {
        let mut done = Vec::new();
        let names = &self.names;
        // A sidecar just stopped: its walsender and apply session may hold the slot and the origin
        // for a moment after its process ended.
        let blue = crate::source::pg::session(self.config.source.url.expose(), self.config.source_side()).await?;
        super::reverse::drop_slot_when_free(&blue, crate::error::Side::Blue, &names.slot, false).await?;
        done.push(format!("dropped slot {} on blue (if it existed)", names.slot));
        blue.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", turnout_decoders::schema::quote_ident(&names.publication)))
            .await
            .map_err(Error::blue(format!("dropping publication {}", names.publication)))?;
        done.push(format!("dropped publication {} on blue (if it existed)", names.publication));
        super::truncate::remove(&blue, crate::error::Side::Blue).await?;
        done.push("dropped turnout's TRUNCATE triggers on blue's partitions (if they existed)".into());
        let green_client = green::connect(self.config.target.url.expose()).await.map_err(Error::Sink)?;
        super::reverse::drop_origin_when_free(&green_client, &names.origin).await?;
        done.push(format!("dropped replication origin {} on green (if it existed)", names.origin));
        super::truncate::remove(&green_client, crate::error::Side::Green).await?;
        done.push("dropped turnout's TRUNCATE triggers on green's partitions (if they existed)".into());
        let watch = super::watch::green_names(names);
        match super::reverse::drop_slot_and_publication(self.config.target.url.expose(), &watch).await {
            Ok(()) => done.push(format!("dropped the watch slot and publication {} on green (if they existed)", watch.slot)),
            Err(e) => done.push(format!("could not drop the watch slot and publication {} on green: {e}", watch.slot)),
        }
        match super::reverse::drop_reverse(&self.config, &Names::reverse_of(names)).await {
            Ok(lines) => done.extend(lines),
            Err(e) => done.push(format!("could not drop the reverse stream's slot, publication and origin: {e}")),
        }
        if self.config.state.dir.exists() {
            std::fs::remove_dir_all(&self.config.state.dir).map_err(StoreError::file("removing", &self.config.state.dir))?;
            done.push(format!("removed state directory {}", self.config.state.dir.display()));
        }
        Ok(done)
    }
}

async fn initial_snapshot(
    config: &Config,
    state: &StateStore,
    names: &Names,
    status: &Arc<Status>,
    admin: &mut PgConnection,
    selection: &Selection,
    blue_major: u32,
) -> Result<(), Error> {
    let tables = &selection.tables[..];
    // Tables the schema copy leaves out: none without a filter (the whole schema is copied).
    let left_out = selection.left_out();
    let filtered = !left_out.is_empty();
    status.set_phase(Phase::Snapshot);
    let source = config.source_options()?;
    let target_url = config.target.url.expose();
    let green_client = green::connect(target_url).await.map_err(Error::Sink)?;
    if restart_unfinished(state, admin, names, &green_client, tables).await? && state.schema_copied()? {
        // A table rewritten or altered on blue before its copy reached it: green's copy of its
        // definition is the old one, and the copy starting again must find blue's.
        recreate_changed(config, admin, &green_client, tables, blue_major).await?;
    }
    let (pg_dump, owned_schema) = green_schema(config, state, &green_client, selection, &source, blue_major).await?;
    let blue_client = snapshot::blue_connect(config.source.url.expose()).await?;
    // The size is read only when it decides (reading it waits for a lock a table's DDL holds).
    let chunked = match config.snapshot_chunked_as_set() {
        Some(chunked) => chunked,
        None => config.snapshot_chunked(super::chunks::total_size(&blue_client, tables).await?),
    };
    if chunked {
        let schema = PostData { pg_dump: pg_dump.as_deref(), left_out: &left_out, tolerate_existing: owned_schema };
        let start = ChunkedStart { config, state, status, names, green: &green_client, blue: &blue_client };
        return plan_chunked_copy(start, tables, schema).await;
    }
    state.mark_snapshot_started()?;
    let mut repl = PgConnection::connect(&source, true).await.map_err(Error::Source)?;
    let slot = super::slot_wait::naming_holders(
        &blue_client,
        status,
        repl.create_logical_slot(&names.slot, &SlotOptions { export_snapshot: true, ..SlotOptions::default() }),
    )
    .await
    .map_err(Error::Source)?;
    let snapshot_name =
        slot.snapshot_name.clone().ok_or_else(|| Error::Unexpected { side: Side::Blue, what: "no exported snapshot for the initial copy".into() })?;
    // Tables above 64 MiB are copied as several page ranges at once.
    let plan = snapshot::copy_plan(&blue_client, tables, config.snapshot_split_pages()).await?;
    let workers = config.snapshot_workers();
    let started = std::time::Instant::now();
    let rows = snapshot::copy_all(config.source.url.expose(), target_url, &snapshot_name, plan, workers, state, status).await?;
    tracing::info!(rows, seconds = started.elapsed().as_secs_f64(), "snapshot copied");
    repl.close().await;
    if let Some(pg_dump) = &pg_dump {
        let post = setup::dump_schema(pg_dump, &source, "post-data", &left_out).await?;
        setup::apply_post_data(&green_client, &post, owned_schema, filtered).await?;
    }
    green::ensure_origin(&green_client, &names.origin).await.map_err(Error::Sink)?;
    green::advance_origin(&green_client, &names.origin, slot.consistent_point).await.map_err(Error::Sink)?;
    state.mark_snapshot_done(&Position::Pg(slot.consistent_point))?;
    state.record_applied(&Position::Pg(slot.consistent_point))?;
    Ok(())
}

/// An earlier snapshot that did not finish starts again from scratch (its slot dropped, green's
/// tables emptied); a slot of this stream's name without one is refused (another turnout may use it).
/// Returns whether an unfinished snapshot was thrown away (green's tables emptied).
async fn restart_unfinished(
    state: &StateStore,
    admin: &mut PgConnection,
    names: &Names,
    green_client: &tokio_postgres::Client,
    tables: &[TableName],
) -> Result<bool, Error> {
    if state.snapshot_started()? {
        tracing::warn!("an earlier snapshot did not finish; starting it again from scratch");
        setup::drop_slot(admin, &names.slot).await?;
        let existing = setup::existing_on_green(green_client, tables).await?;
        let present: Vec<String> = tables.iter().zip(&existing).filter(|(_, e)| **e).map(|(t, _)| t.quoted()).collect();
        if !present.is_empty() {
            green_client
                .batch_execute(&format!("TRUNCATE {}", present.join(", ")))
                .await
                .map_err(Error::green("emptying the tables of the unfinished snapshot"))?;
        }
        state.reset_snapshot()?;
        return Ok(true);
    } else if setup::slot_exists(admin, &names.slot).await? {
        return Err(CopyRefusal::SlotWithoutSnapshot { slot: names.slot.clone() }.into());
    }
    Ok(false)
}

/// A table's columns with their types, in order, as one line (to compare blue's and green's).
const COLUMNS: &str =
    "SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' NOT NULL' ELSE '' END, \
     ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped";

/// Before a consistent copy starts again on a schema turnout copied itself: every selected table
/// whose columns on green differ from blue's (rewritten or altered on blue after the first copy's
/// snapshot) is dropped on green and created again from blue's definition — green's tables were just
/// emptied, and what depended on the old table there (a view, a foreign key) comes back with the
/// post-data and the cutover's settling of definitions.
async fn recreate_changed(
    config: &Config,
    admin: &mut PgConnection,
    green_client: &tokio_postgres::Client,
    tables: &[TableName],
    blue_major: u32,
) -> Result<(), Error> {
    let blue_client = snapshot::blue_connect(config.source.url.expose()).await?;
    let mut changed = Vec::new();
    for t in tables {
        let on_blue: Option<String> = blue_client.query_one(COLUMNS, &[&t.quoted()]).await.map_err(Error::blue(format!("reading {t}")))?.get(0);
        let on_green: Option<String> = green_client.query_one(COLUMNS, &[&t.quoted()]).await.map_err(Error::green(format!("reading {t}")))?.get(0);
        if on_green.is_some() && on_blue != on_green {
            changed.push(t.clone());
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let names = changed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    tracing::warn!("{names} changed on blue after the first copy's snapshot: creating them on green again from blue's definition");
    let pg_dump = setup::find_pg_dump(config.source.pg_dump.as_deref(), blue_major).await?;
    let pre = setup::dump_tables(admin, &pg_dump, &config.source_options()?, "pre-data", &changed).await?;
    let drop = format!("DROP TABLE {} CASCADE", changed.iter().map(TableName::quoted).collect::<Vec<_>>().join(", "));
    green_client.batch_execute(&drop).await.map_err(Error::green(format!("dropping {names} to create them again")))?;
    setup::apply_pre_data(green_client, &pre, false).await
}

/// Green's schema before the copy: blue's pre-data copied when green has none of the tables;
/// otherwise every table must exist there, empty. Returns the `pg_dump` that still owes the
/// post-data, if any, and whether turnout created the schema itself.
async fn green_schema(
    config: &Config,
    state: &StateStore,
    green_client: &tokio_postgres::Client,
    selection: &Selection,
    source: &ConnectOptions,
    blue_major: u32,
) -> Result<(Option<std::path::PathBuf>, bool), Error> {
    let tables = &selection.tables[..];
    let left_out = selection.left_out();
    let filtered = !left_out.is_empty();
    let existing = setup::existing_on_green(green_client, tables).await?;
    let missing: Vec<String> = tables.iter().zip(&existing).filter(|(_, e)| !**e).map(|(t, _)| t.to_string()).collect();
    let copy_schema = !tables.is_empty() && missing.len() == tables.len();
    // An earlier, interrupted attempt may have created the tables itself: then it still owes the
    // indexes and constraints (post-data) once the copy is done.
    let owned_schema = state.schema_copied()?;
    let pg_dump = if copy_schema || owned_schema { Some(setup::find_pg_dump(config.source.pg_dump.as_deref(), blue_major).await?) } else { None };
    if !copy_schema && !missing.is_empty() {
        return Err(CopyRefusal::GreenPartial { missing: missing.join(", "), how: " (e.g. pg_dump --schema-only -t …)" }.into());
    }
    if let (true, Some(pg_dump)) = (copy_schema, &pg_dump) {
        tracing::info!("copying the schema to green with {}", pg_dump.display());
        let pre = setup::dump_schema(pg_dump, source, "pre-data", &left_out).await?;
        setup::apply_pre_data(green_client, &pre, filtered).await?;
        let created = setup::existing_on_green(green_client, tables).await?;
        let lacking: Vec<String> = tables.iter().zip(&created).filter(|(_, c)| !**c).map(|(t, _)| t.to_string()).collect();
        if !lacking.is_empty() {
            return Err(CopyRefusal::RefersToLeftOut { tables: lacking.join(", ") }.into());
        }
        state.mark_schema_copied()?;
    } else {
        for t in tables {
            let row =
                green_client.query_one(&format!("SELECT EXISTS (SELECT 1 FROM {})", t.quoted()), &[]).await.map_err(Error::green(format!("reading {t}")))?;
            if row.get::<_, bool>(0) {
                return Err(CopyRefusal::GreenHasRows { table: t.to_string() }.into());
            }
        }
    }
    Ok((pg_dump, owned_schema))
}

/// The start of a chunked copy ([`crate::copy`]): green's indexes and constraints now (the stream's
/// keyed changes need them while the copy runs; the copy and the apply run with
/// `session_replication_role = replica`, so foreign keys do not fire), the stream's slot without a
/// snapshot, the chunk plan, and green's progress record at the slot's consistent point, where the
/// stream starts.
/// What the chunked copy's start works with: the configuration, the state and status, the stream's
/// names and a session to each side.
struct ChunkedStart<'a> {
    config: &'a Config,
    state: &'a StateStore,
    status: &'a Arc<Status>,
    names: &'a Names,
    green: &'a tokio_postgres::Client,
    blue: &'a tokio_postgres::Client,
}

async fn plan_chunked_copy(start: ChunkedStart<'_>, tables: &[turnout_decoders::TableName], schema: PostData<'_>) -> Result<(), Error> {
    let ChunkedStart { config, state, status, names, green: green_client, blue: blue_client } = start;
    state.mark_snapshot_started()?;
    if let Some(pg_dump) = schema.pg_dump {
        let post = setup::dump_schema(pg_dump, &config.source_options()?, "post-data", schema.left_out).await?;
        setup::apply_post_data(green_client, &post, schema.tolerate_existing, !schema.left_out.is_empty()).await?;
    }
    let mut repl = PgConnection::connect(&config.source_options()?, true).await.map_err(Error::Source)?;
    let slot =
        super::slot_wait::naming_holders(blue_client, status, repl.create_logical_slot(&names.slot, &SlotOptions::default())).await.map_err(Error::Source)?;
    repl.close().await;
    let plan = super::chunks::plan(blue_client, tables, config.snapshot_chunk_bytes()?, 0).await?;
    crate::copy::save_plan(state, &plan)?;
    green::ensure_origin(green_client, &names.origin).await.map_err(Error::Sink)?;
    green::advance_origin(green_client, &names.origin, slot.consistent_point).await.map_err(Error::Sink)?;
    let start = Position::Pg(slot.consistent_point);
    state.mark_snapshot_done(&start)?;
    state.record_applied(&start)?;
    tracing::info!(chunks = plan.len(), from = %start, "planned a chunked copy: green is filled chunk by chunk while the stream runs");
    Ok(())
}

/// The schema copy's post-data step still owed: the `pg_dump` that copies it (none when green's
/// tables were not created by turnout), the tables left out of the dump, and whether an earlier
/// attempt may have created some of it.
#[derive(Debug)]
struct PostData<'a> {
    pg_dump: Option<&'a std::path::Path>,
    left_out: &'a [turnout_decoders::TableName],
    tolerate_existing: bool,
}

/// Tables the selection gained after the initial copy (a widened `[tables]` filter, or a table left
/// out earlier and selected again): created on green from blue's definition (`pg_dump -t`) when green
/// lacks them, then planned as chunks of the chunked copy, which copies them while the other tables
/// stream (see [`crate::copy`]). Planned before the publication publishes them, so that no change of
/// theirs reaches green before their copy; a crash in between plans them again, replacing their
/// earlier chunks. A table green already has must be empty, unless turnout copied it before (its
/// rows are then stale, and deleted before the copy).
async fn plan_added_tables(
    config: &Config,
    state: &StateStore,
    admin: &mut PgConnection,
    added: &[turnout_decoders::TableName],
    blue_major: u32,
) -> Result<(), Error> {
    let green_client = green::connect(config.target.url.expose()).await.map_err(Error::Sink)?;
    let blue_client = snapshot::blue_connect(config.source.url.expose()).await?;
    let (plan, _) = crate::copy::load_plan(state)?;
    let copied: Vec<String> = state.copied_tables()?.into_iter().map(|(t, _)| t).collect();
    let existing = setup::existing_on_green(&green_client, added).await?;
    let missing: Vec<turnout_decoders::TableName> = added.iter().zip(&existing).filter(|(_, e)| !**e).map(|(t, _)| t.clone()).collect();
    for (t, _) in added.iter().zip(&existing).filter(|(_, e)| **e) {
        let before = copied.contains(&t.to_string()) || plan.iter().any(|c| c.table_name() == *t);
        let row = green_client.query_one(&format!("SELECT EXISTS (SELECT 1 FROM {})", t.quoted()), &[]).await.map_err(Error::green(format!("reading {t}")))?;
        if !before && row.get::<_, bool>(0) {
            return Err(crate::copy::green_has_rows(t));
        }
        // Left out for a while, its definition on blue may have moved on: green's must match it.
        let columns = "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute \
                       WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped";
        let on_blue: Option<String> = blue_client.query_one(columns, &[&t.quoted()]).await.map_err(Error::blue(format!("reading {t}")))?.get(0);
        let on_green: Option<String> = green_client.query_one(columns, &[&t.quoted()]).await.map_err(Error::green(format!("reading {t}")))?.get(0);
        if on_blue != on_green {
            return Err(crate::copy::definitions_differ(t, &on_blue.unwrap_or_default(), &on_green.unwrap_or_default()));
        }
    }
    if !missing.is_empty() {
        let pg_dump = setup::find_pg_dump(config.source.pg_dump.as_deref(), blue_major).await?;
        let source = config.source_options()?;
        tracing::info!("creating {} on green with {}", missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "), pg_dump.display());
        let pre = setup::dump_tables(admin, &pg_dump, &source, "pre-data", &missing).await?;
        setup::apply_pre_data(&green_client, &pre, false).await.map_err(|e| CopyRefusal::AddedNotCreated { cause: e.to_string() })?;
        let post = setup::dump_tables(admin, &pg_dump, &source, "post-data", &missing).await?;
        setup::apply_post_data(&green_client, &post, true, true).await?;
    }
    let chunks = super::chunks::plan(&blue_client, added, config.snapshot_chunk_bytes()?, crate::copy::next_id(&plan)).await?;
    crate::copy::save_added(state, &plan, &chunks, added)
}
