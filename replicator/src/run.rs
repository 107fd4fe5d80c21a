//! `turnout run`: set-up (publication, slot, origin, schema copy), the initial snapshot, then
//! streaming apply — retrying transient failures with backoff and stopping cleanly on SIGTERM/SIGINT.
//!
//! Crash safety: a snapshot interrupted at any point is redone from scratch on the next start (the
//! half-used slot is dropped and the copied tables are emptied); once it completed, green's
//! replication origin holds the resume position, written in the same transaction as the data.

use crate::catalog::{select_tables, Selection};
use crate::config::Config;
use crate::error::Error;
use crate::pipeline::{self, Budgets};
use crate::setup::{self, Names};
use crate::snapshot;
use crate::state::StateStore;
use crate::status::{Phase, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use turnout_decoders::pg::client::SlotOptions;
use turnout_decoders::pg::PgConnection;
use turnout_decoders::ErrorClass;
use turnout_sinks::pg::{self as green, PgSink};

/// Runs until `shutdown` turns true (Ok) or a fatal error. After a completed cutover, replication
/// stops but the HTTP API keeps serving until `shutdown`.
pub async fn run(config: &Config, external: watch::Receiver<bool>) -> Result<(), Error> {
    let state = StateStore::open(&config.state.dir)?;
    let status = Arc::new(Status::default());
    // Replication stops on the operator's signal or after a completed cutover.
    let (stop, shutdown) = watch::channel(false);
    {
        let stop = stop.clone();
        let mut external = external.clone();
        tokio::spawn(async move {
            let _ = external.wait_for(|s| *s).await;
            let _ = stop.send(true);
        });
    }
    crate::cutover::recover(config, &state).await?;
    let controller = crate::cutover::Controller::new(Arc::new(config.clone()), state.clone(), Arc::clone(&status), stop);
    let listen = config.http.listen.parse().map_err(|e| Error::config("http.listen", format!("{e}")))?;
    let _http = crate::http::serve(listen, Arc::clone(&status), Some(controller), external.clone())
        .await
        .map_err(|e| Error::config("http.listen", format!("cannot listen on {listen}: {e}")))?;
    let result = replicate(config, &state, &status, shutdown).await;
    if result.is_ok() && !*external.borrow() {
        tracing::info!("replication stopped after the cutover; serving the HTTP API until stopped");
        status.set_phase(Phase::Stopped);
        let mut external = external;
        let _ = external.wait_for(|s| *s).await;
    }
    result
}

async fn replicate(config: &Config, state: &StateStore, status: &Arc<Status>, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let names = Names::for_stream(&state.stream_id()?);
    status.set_names(names.clone());
    let status = Arc::clone(status);
    tracing::info!(slot = %names.slot, publication = %names.publication, origin = %names.origin, "starting");
    let _heartbeats = tokio::spawn(crate::heartbeat::run(
        config.source.url.expose().to_owned(),
        names.slot.clone(),
        config.heartbeat_interval(),
        Arc::clone(&status),
        shutdown.clone(),
    ));
    let _alerts = tokio::spawn(crate::alerts::run(config.alerts.clone(), Arc::clone(&status), shutdown.clone()));
    let mut backoff = Duration::from_millis(500);
    loop {
        match run_once(config, state, &names, &status, shutdown.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if e.class() == ErrorClass::Transient => {
                tracing::warn!("{e}; retrying in {backoff:?}");
                status.set_error(Some(e.to_string()));
                status.set_phase(Phase::Retrying);
                let mut stop = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                status.set_error(Some(e.to_string()));
                return Err(e);
            }
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
}

async fn run_once(config: &Config, state: &StateStore, names: &Names, status: &Arc<Status>, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let source = config.source_options()?;
    let target_url = config.target.url.expose();
    let mut admin = PgConnection::connect(&source, false).await.map_err(Error::Source)?;
    crate::heartbeat::ensure_table(&mut admin).await?;
    let mut selection = select_tables(&mut admin, &config.table_filter()?).await?;
    for (field, pattern) in &selection.unmatched {
        tracing::warn!("{field} '{pattern}' matches no table on blue");
    }
    setup::refuse_tables_without_identity(&mut selection, config.tables.skip_without_identity)?;
    if !selection.everything {
        tracing::info!(
            selected = selection.tables.len(),
            left_out = selection.excluded.len() + selection.skipped.len(),
            "replicating the tables selected by [tables]"
        );
    }
    let snapshot_done = state.snapshot_done()?.is_some();
    setup::sync_publication(&mut admin, &names.publication, &selection, snapshot_done).await?;
    let blue_major = admin.server_version_num().unwrap_or(0) / 10000;
    if !snapshot_done {
        initial_snapshot(config, state, names, status, &mut admin, &selection, blue_major).await?;
    }
    admin.close().await;
    let sink = PgSink::connect(target_url, &names.origin).await.map_err(Error::Sink)?;
    let recorded = state.applied()?;
    if sink.applied() < recorded {
        return Err(Error::Setup(format!(
            "green's recorded position {} is behind the {} this state directory saw applied: green was restored or its origin \
             {} dropped. Replicating from here could lose or repeat changes; run `turnout teardown` and start over",
            sink.applied(),
            recorded,
            names.origin
        )));
    }
    let budgets = Budgets { batch_rows: config.apply_batch_rows(), batch_delay: config.apply_batch_delay(), memory: config.apply_memory_budget()? };
    pipeline::stream(&source, &names.slot, &names.publication, sink, state, status, &budgets, shutdown).await
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
    if state.snapshot_started()? {
        tracing::warn!("an earlier snapshot did not finish; starting it again from scratch");
        setup::drop_slot(admin, &names.slot).await?;
        let existing = setup::existing_on_green(&green_client, tables).await?;
        let present: Vec<String> = tables.iter().zip(&existing).filter(|(_, e)| **e).map(|(t, _)| t.quoted()).collect();
        if !present.is_empty() {
            green_client
                .batch_execute(&format!("TRUNCATE {}", present.join(", ")))
                .await
                .map_err(Error::green("emptying the tables of the unfinished snapshot"))?;
        }
        state.reset_snapshot()?;
    } else if setup::slot_exists(admin, &names.slot).await? {
        return Err(Error::Setup(format!(
            "slot {} exists on blue but this state directory has no snapshot; another turnout may use it. Drop it with \
             SELECT pg_drop_replication_slot('{}') if it is stale",
            names.slot, names.slot
        )));
    }
    let existing = setup::existing_on_green(&green_client, tables).await?;
    let missing: Vec<String> = tables.iter().zip(&existing).filter(|(_, e)| !**e).map(|(t, _)| t.to_string()).collect();
    let copy_schema = !tables.is_empty() && missing.len() == tables.len();
    // An earlier, interrupted attempt may have created the tables itself: then it still owes the
    // indexes and constraints (post-data) once the copy is done.
    let owned_schema = state.schema_copied()?;
    let pg_dump = if copy_schema || owned_schema { Some(setup::find_pg_dump(config.source.pg_dump.as_deref(), blue_major)?) } else { None };
    if !copy_schema && !missing.is_empty() {
        return Err(Error::Setup(format!(
            "green has some of blue's tables but lacks {}; create them on green (e.g. pg_dump --schema-only -t …) or drop the others \
             so turnout copies the whole schema",
            missing.join(", ")
        )));
    }
    if let (true, Some(pg_dump)) = (copy_schema, &pg_dump) {
        tracing::info!("copying the schema to green with {}", pg_dump.display());
        let pre = setup::dump_schema(pg_dump, &source, "pre-data", &left_out)?;
        setup::apply_pre_data(&green_client, &pre, filtered).await?;
        let created = setup::existing_on_green(&green_client, tables).await?;
        let lacking: Vec<String> = tables.iter().zip(&created).filter(|(_, c)| !**c).map(|(t, _)| t.to_string()).collect();
        if !lacking.is_empty() {
            return Err(Error::Setup(format!(
                "the schema copy could not create {} on green: its definition refers to a table that [tables] leaves out \
                 (see the warnings above); select that table too, or create these tables on green yourself",
                lacking.join(", ")
            )));
        }
        state.mark_schema_copied()?;
    } else {
        for t in tables {
            let row = green_client
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {})", t.quoted()), &[])
                .await
                .map_err(Error::green(format!("reading {t}")))?;
            if row.get::<_, bool>(0) {
                return Err(Error::Setup(format!(
                    "green table {t} already has rows; the initial snapshot needs empty tables (TRUNCATE it on green)"
                )));
            }
        }
    }
    state.mark_snapshot_started()?;
    let mut repl = PgConnection::connect(&source, true).await.map_err(Error::Source)?;
    let slot = repl
        .create_logical_slot(&names.slot, &SlotOptions { export_snapshot: true, ..SlotOptions::default() })
        .await
        .map_err(Error::Source)?;
    let snapshot_name = slot.snapshot_name.clone().ok_or_else(|| Error::Setup("blue exported no snapshot".into()))?;
    let blue_client = snapshot::blue_connect(config.source.url.expose()).await?;
    // Tables above 64 MiB are copied as several page ranges at once.
    let plan = snapshot::copy_plan(&blue_client, tables, config.snapshot_split_pages()).await?;
    let workers = config.snapshot_workers();
    let started = std::time::Instant::now();
    let rows = snapshot::copy_all(config.source.url.expose(), target_url, &snapshot_name, plan, workers, state, status).await?;
    tracing::info!(rows, seconds = started.elapsed().as_secs_f64(), "snapshot copied");
    repl.close().await;
    if let Some(pg_dump) = &pg_dump {
        let post = setup::dump_schema(pg_dump, &source, "post-data", &left_out)?;
        setup::apply_post_data(&green_client, &post, owned_schema, filtered).await?;
    }
    green::ensure_origin(&green_client, &names.origin).await.map_err(Error::Sink)?;
    green::advance_origin(&green_client, &names.origin, slot.consistent_point).await.map_err(Error::Sink)?;
    state.mark_snapshot_done(slot.consistent_point)?;
    state.record_applied(slot.consistent_point)?;
    Ok(())
}

/// `turnout teardown`: drops the slot and publication on blue, the origin on green, and the state.
pub async fn teardown(config: &Config) -> Result<Vec<String>, Error> {
    let mut done = Vec::new();
    let state = StateStore::open(&config.state.dir)?;
    let names = Names::for_stream(&state.stream_id()?);
    drop(state);
    let source = config.source_options()?;
    let mut admin = PgConnection::connect(&source, false).await.map_err(Error::Source)?;
    setup::drop_slot(&mut admin, &names.slot).await?;
    done.push(format!("dropped slot {} on blue (if it existed)", names.slot));
    admin
        .simple_query(&format!("DROP PUBLICATION IF EXISTS {}", turnout_decoders::schema::quote_ident(&names.publication)))
        .await
        .map_err(Error::Source)?;
    done.push(format!("dropped publication {} on blue (if it existed)", names.publication));
    admin.close().await;
    let green_client = green::connect(config.target.url.expose()).await.map_err(Error::Sink)?;
    green::drop_origin(&green_client, &names.origin).await.map_err(Error::Sink)?;
    done.push(format!("dropped replication origin {} on green (if it existed)", names.origin));
    std::fs::remove_dir_all(&config.state.dir).map_err(|e| Error::State(format!("removing {}: {e}", config.state.dir.display())))?;
    done.push(format!("removed state directory {}", config.state.dir.display()));
    Ok(done)
}
