//! MySQL/MariaDB's [`SourceAdmin`]: table selection and binlog settings, the heartbeat table, schema
//! copy and consistent snapshot, green's progress record, the binlog stream, check, verify, teardown.
//!
//! Crash safety: an interrupted snapshot is redone from scratch (green's copied tables are emptied);
//! once it completed, green's progress row holds the resume position (GTID state and file/offset),
//! written in the same transaction as the data.

use super::catalog::{select_tables, unreplicable};
use super::{connect, database, qualified, snapshot, MySqlSource};
use crate::config::Config;
use crate::error::{CopyRefusal, Error};
use crate::source::contract::compare::TableCheck;
use crate::source::contract::report::Report;
use crate::source::{Names, SourceAdmin, HEARTBEAT_TABLE};
use crate::state::StateStore;
use crate::state::StoreError;
use crate::status::{Phase, Status};
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use tokio::sync::watch;
use turnout_decoders::{Position, TableName};
use turnout_sinks::mysql::MySqlSink;
use turnout_sinks::{NoEarly, Parallel};

/// MySQL/MariaDB blue → MySQL/MariaDB green.
#[derive(Debug)]
pub struct MySqlAdmin {
    config: Config,
    names: Names,
    blue: mysql_async::Opts,
    server_id: u32,
    /// A reverse stream: the hand-off position the cutover journaled, where it starts.
    hand_off: Option<Position>,
    /// What the stream drops (a reverse stream and the watch: the other stream's apply and cutover
    /// marks, its rows and the counters its cutover moved) and whether it is the watch.
    reading: super::stream::Reading,
}

/// turnout's replica `server_id` for a stream: the configured one, else derived from the stream id (so
/// it is stable across restarts and differs between streams).
pub fn server_id(config: &Config, stream: &str) -> u32 {
    config.source.server_id.unwrap_or_else(|| {
        let n = stream.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        // Away from the small ids people give their servers.
        1_000_000 + n % 1_000_000_000
    })
}

impl MySqlAdmin {
    pub fn new(config: &Config, names: Names) -> Result<MySqlAdmin, Error> {
        let blue = super::options(config.source.url.expose(), "source.url")?;
        let server_id = server_id(config, &names.origin);
        let names = Names { publication: String::new(), slot: format!("replica server_id {server_id}"), origin: names.origin };
        Ok(MySqlAdmin { config: config.clone(), names, blue, server_id, hand_off: None, reading: Default::default() })
    }

    /// The reverse stream after a cutover: `config` with source and target swapped (green → blue),
    /// starting at the cutover's `hand_off` position, never passing on a transaction the forward apply
    /// of `forward_origin` wrote (its GTID domain).
    pub fn reverse(config: &Config, names: Names, forward_origin: &str, hand_off: Position) -> Result<MySqlAdmin, Error> {
        // The reverse stream reads green; the next generation after a rollback reads blue again.
        let side = if names.is_reverse() { crate::error::Side::Green } else { crate::error::Side::Blue };
        Ok(MySqlAdmin { hand_off: Some(hand_off), ..MySqlAdmin::skipping(config, names, forward_origin, false, side)? })
    }

    /// A stream of `config`'s source without what the stream `other` wrote there: its apply's and its
    /// cutover's GTID domains (the cutover's counter moves after the hand-off must not come back as
    /// DDL the stream refuses). Only the watch drops Oracle MySQL's tags too: a stream from an Oracle
    /// MySQL side starts at a hand-off read once nothing of turnout's is left to write there, so a
    /// tagged transaction it reads is never turnout's to drop.
    fn skipping(config: &Config, names: Names, other: &str, watching: bool, side: crate::error::Side) -> Result<MySqlAdmin, Error> {
        let mut skip = turnout_sinks::mysql::own_writes(other);
        if !watching {
            skip.tags.clear();
        }
        let reading = super::stream::Reading { skip, watching, side, creating_tables: false };
        Ok(MySqlAdmin { reading, ..MySqlAdmin::new(config, names)? })
    }

    /// The forward stream (not a reverse stream, a next generation's or the watch).
    fn forward(&self) -> bool {
        self.hand_off.is_none() && self.reading.skip == turnout_decoders::mysql::decoder::OwnWrites::default()
    }

    /// The watch of `config`'s source for writes that are not turnout's: drops every transaction in
    /// the GTID domains the apply of `stream` and its cutover write in (turnout's own writes there)
    /// and passes on what a stream would refuse.
    /// `side` is the side watched (`config`'s source), which its errors name.
    pub fn watching(config: &Config, names: Names, stream: &str, side: crate::error::Side) -> Result<MySqlAdmin, Error> {
        MySqlAdmin::skipping(config, names, stream, true, side)
    }

    /// Before a reverse stream applies to the side the cutover fenced (its target here). Oracle
    /// MySQL: the cutover left it under `super_read_only`, which stops turnout's apply too — lowered to
    /// `read_only` (applications stay fenced; turnout's `CONNECTION_ADMIN` writes through it); the
    /// triggers the cutover copied to the other side are dropped there (a sealed server refuses
    /// `DROP TRIGGER`, and they would fire again on the rows this stream applies); and the hand-off
    /// position is recorded as this stream's progress (the cutover could not write it). Each step is
    /// idempotent and a no-op after a MariaDB cutover, which did them inside its pause. Runs in every
    /// attempt of [`crate::run::replicate`], so a transient failure is retried.
    ///
    /// The same runs for the next generation a rollback armed, into green (the rollback sealed it and
    /// handed its triggers to blue).
    async fn open_target_for_reverse(&self, hand_off: &Position) -> Result<(), Error> {
        use turnout_cutover::Side::{Blue, Green};
        let (into, from) = if self.names.is_reverse() { (Blue, Green) } else { (Green, Blue) };
        let (sides, side) = ((into, from), into);
        let target = super::options(self.config.target.url.expose(), "target.url")?;
        let mut conn = connect(&target, side).await?;
        super::lower_seal(&mut conn, side).await?;
        let mut source = connect(&self.blue, from).await?;
        let dropped = turnout_cutover::drop_handed_over_triggers(&mut conn, &mut source, &database(&target), &database(&self.blue), sides)
            .await
            .map_err(|e| Error::Setup(format!("{e}; the stream would fire {into}'s triggers a second time")))?;
        if !dropped.is_empty() {
            tracing::info!("dropped {} triggers on {into} that {from} has now: {}", dropped.len(), dropped.join(", "));
        }
        let disabled = super::programs::disable_handed_over_events(&mut conn, &mut source, &database(&target), &database(&self.blue), sides).await?;
        if !disabled.is_empty() {
            tracing::info!("disabled {} events on {into} that {from} runs now: {}", disabled.len(), disabled.join(", "));
        }
        turnout_sinks::mysql::record_position(self.config.target.url.expose(), &self.names.origin, hand_off).await.map_err(Error::Sink)
    }

    /// Which tables the stream replicates: the filter's, in blue's database, and the heartbeat table —
    /// never a MariaDB SEQUENCE (`sequences`): a sequence's binlog rows record its cache refills, and
    /// green's sequences are set at the snapshot and moved beyond blue's at cutover instead.
    fn selector(&self, sequences: Vec<String>) -> Result<turnout_decoders::mysql::decoder::TableSelector, Error> {
        let filter = self.config.table_filter()?;
        let db = database(&self.blue);
        Ok(Box::new(move |t: &TableName| t.schema == db && (t.name == HEARTBEAT_TABLE || (filter.selects(t) && !sequences.contains(&t.name)))))
    }
}

impl SourceAdmin for MySqlAdmin {
    type Stream = MySqlSource;
    type Sink = Parallel<MySqlSink>;
    /// Binlog transactions arrive whole at their commit: nothing to apply early.
    type Early = NoEarly;
    type Copier = super::chunks::MySqlCopier;

    fn names(&self) -> &Names {
        &self.names
    }

    async fn prepare(&self, state: &StateStore, status: &Arc<Status>) -> Result<(), Error> {
        if let Some(hand_off) = &self.hand_off {
            self.open_target_for_reverse(hand_off).await?;
        }
        let db = database(&self.blue);
        let mut blue = connect(&self.blue, self.reading.side).await?;
        super::heartbeat::ensure_table(&mut blue, &db).await?;
        let (selection, infos) = select_tables(&mut blue, &db, &self.config.table_filter()?).await?;
        if let Some(t) = unreplicable(&selection, &infos).first() {
            return Err(Error::Setup(format!("{}; {}", t.problem, t.fix)));
        }
        if let Some(h) = super::catalog::hidden_cascades(&mut blue, &db, &selection).await?.first() {
            return Err(Error::Setup(format!("{}; {}", super::cascade_problem(h), super::cascade_fix(h))));
        }
        for (field, pattern) in &selection.unmatched {
            tracing::warn!("{field} '{pattern}' matches no table on blue");
        }
        {
            // Nothing on blue unaccounted for: whatever the inventory refuses stops the start.
            let mut green = connect(&super::options(self.config.target.url.expose(), "target.url")?, crate::error::Side::Green).await?;
            let inventory = super::inventory::take(&mut blue, Some(&mut green), &db, &selection, HEARTBEAT_TABLE).await?;
            tracing::info!(objects = inventory.objects(), digest = %inventory.digest(), "blue's inventory taken");
            inventory.refusal("replication cannot start")?;
        }
        if self.reading.skip == turnout_decoders::mysql::decoder::OwnWrites::default() {
            // Forward only: a reverse stream applies into blue, whose triggers are the application's.
            let mut green = connect(&super::options(self.config.target.url.expose(), "target.url")?, crate::error::Side::Green).await?;
            let on_green = super::catalog::triggers(&mut green, &db, Some(&selection.tables), crate::error::Side::Green).await?;
            if !on_green.is_empty() {
                let (what, fix) = super::catalog::green_triggers_problem(&on_green);
                return Err(Error::Setup(format!("{what}; {fix}")));
            }
        }
        let mut tables = selection.tables.clone();
        let heartbeat = super::heartbeat::table(&db);
        if !tables.contains(&heartbeat) {
            tables.push(heartbeat);
        }
        let forward = self.forward();
        if state.snapshot_done()?.is_none() {
            self.initial_snapshot(state, status, &mut blue, tables.clone()).await?;
        } else if forward {
            crate::copy::forget_unselected(state, &tables)?;
            self.plan_added_tables(state, &mut blue, &tables).await?;
        }
        if forward {
            state.record_selection(&tables.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        }
        Ok(())
    }

    async fn open_sink(&self) -> Result<Parallel<MySqlSink>, Error> {
        let (url, stream) = (self.config.target.url.expose(), &self.names.origin);
        // Oracle MySQL tags the apply's GTIDs only where a watch reads them: the target's.
        let watched = if self.names.is_reverse() { self.config.watch.blue } else { self.config.watch.green };
        let sessions = futures_util::future::try_join_all((0..self.config.apply_sessions().max(1)).map(|_| MySqlSink::connect_tagging(url, stream, watched)))
            .await
            .map_err(Error::Sink)?;
        Parallel::new(sessions).map_err(Error::Sink)
    }

    fn open_early(&self) -> NoEarly {
        NoEarly
    }

    fn copier(&self) -> Result<super::chunks::MySqlCopier, Error> {
        Ok(super::chunks::MySqlCopier {
            blue: self.blue.clone(),
            target_url: self.config.target.url.expose().to_owned(),
            workers: self.config.snapshot_workers(),
        })
    }

    async fn open_stream(&self, from: &Position) -> Result<MySqlSource, Error> {
        let Position::Binlog(b) = from else {
            return Err(CopyRefusal::ForeignPosition { log: "binlog", position: from.to_string() }.into());
        };
        let sequences = {
            let mut blue = connect(&self.blue, self.reading.side).await?;
            super::catalog::sequences(&mut blue, &database(&self.blue)).await?
        };
        let (selects, reading) = (self.selector(sequences)?, self.reading.clone());
        MySqlSource::start_reading(self.blue.clone(), self.server_id, b.gtids.clone(), selects, reading, self.config.receive_timeout()).await
    }

    fn heartbeat(&self, status: Arc<Status>, shutdown: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
        super::heartbeat::run(self.blue.clone(), self.reading.side, self.config.heartbeat_interval(), status, shutdown)
    }

    async fn check(&self) -> Report {
        super::check::run(&self.config).await
    }

    async fn verify(&self, only: Option<&str>) -> Result<Vec<TableCheck>, Error> {
        super::verify::run(&self.config, only).await
    }

    async fn teardown(&self) -> Result<Vec<String>, Error> {
        let mut done = Vec::new();
        // The watches' marks first: the database turnout goes with the last progress record.
        for side in [crate::status::foreign::Side::Green, crate::status::foreign::Side::Blue] {
            if super::watch::drop_marks(&self.config, side).await? {
                done.push(format!("dropped turnout.watch_mark on {side}, the watch's marks"));
            }
        }
        let target_url = self.config.target.url.expose();
        if turnout_sinks::mysql::drop_progress(target_url, &self.names.origin).await.map_err(Error::Sink)? {
            done.push(format!("deleted the progress record {} on green (and the database turnout once empty)", self.names.origin));
        }
        // The reverse stream's progress record on blue, if a cutover armed one.
        let back = Names::reverse_of(&Names { slot: self.names.origin.clone(), ..Names::none() });
        if turnout_sinks::mysql::drop_progress(self.config.source.url.expose(), &back.origin).await.map_err(Error::Sink)? {
            done.push(format!("deleted the reverse stream's progress record {} on blue", back.origin));
        }
        let green_opts = super::options(target_url, "target.url")?;
        let mut green = connect(&green_opts, crate::error::Side::Green).await?;
        let green_heartbeat = super::heartbeat::table(&database(&green_opts));
        green
            .query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&green_heartbeat)))
            .await
            .map_err(|e| super::sql_error(crate::error::Side::Green, "dropping the copy of the heartbeat table", e))?;
        done.push(format!("dropped {green_heartbeat} on green (if it existed)"));
        let mut blue = connect(&self.blue, crate::error::Side::Blue).await?;
        let heartbeat = super::heartbeat::table(&database(&self.blue));
        blue.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&heartbeat)))
            .await
            .map_err(|e| super::sql_error(crate::error::Side::Blue, "dropping the heartbeat table", e))?;
        done.push(format!("dropped {heartbeat} on blue (if it existed)"));
        if self.config.state.dir.exists() {
            std::fs::remove_dir_all(&self.config.state.dir).map_err(StoreError::file("removing", &self.config.state.dir))?;
            done.push(format!("removed state directory {}", self.config.state.dir.display()));
        }
        Ok(done)
    }
}

impl MySqlAdmin {
    async fn initial_snapshot(&self, state: &StateStore, status: &Arc<Status>, blue: &mut mysql_async::Conn, tables: Vec<TableName>) -> Result<(), Error> {
        status.set_phase(Phase::Snapshot);
        let target_url = self.config.target.url.expose();
        let green_opts = super::options(target_url, "target.url")?;
        let mut green = connect(&green_opts, crate::error::Side::Green).await?;
        // Tables are created, and emptied, in any order: a child may come before its parent.
        green
            .query_drop("SET foreign_key_checks = 0")
            .await
            .map_err(|e| super::sql_error(crate::error::Side::Green, "turning off foreign key checks for the schema copy", e))?;
        let existing = existing_on_green(&mut green, &tables).await?;
        if state.snapshot_started()? {
            tracing::warn!("an earlier snapshot did not finish; starting it again from scratch");
            for (t, _) in tables.iter().zip(&existing).filter(|(_, e)| **e) {
                green
                    .query_drop(format!("TRUNCATE TABLE {}", qualified(t)))
                    .await
                    .map_err(|e| super::sql_error(crate::error::Side::Green, "emptying an unfinished snapshot", e))?;
            }
            state.reset_snapshot()?;
        }
        let missing: Vec<String> = tables.iter().zip(&existing).filter(|(_, e)| !**e).map(|(t, _)| t.to_string()).collect();
        let creating = missing.len() == tables.len() || (missing.len() == 1 && missing[0].ends_with(HEARTBEAT_TABLE));
        let to_create: Vec<TableName> = tables.iter().zip(&existing).filter(|(_, e)| !**e).map(|(t, _)| t.clone()).collect();
        let created = if creating { to_create.as_slice() } else { &[] };
        let crossing = super::crossing::assess(blue, &mut green, &database(&self.blue), &tables, created).await?;
        if let Some(crossing) = &crossing {
            if let Some(refusal) = crossing.refusal() {
                return Err(refusal);
            }
            tracing::info!(families = %crossing.families, "replicating across the MySQL family");
            for (what, follows) in &crossing.differs {
                tracing::warn!("{what}; {follows}");
            }
        }
        if creating {
            tracing::info!(tables = to_create.len(), "copying the schema to green (SHOW CREATE TABLE)");
            snapshot::copy_schema(blue, &mut green, &to_create).await.map_err(|e| match &crossing {
                Some(c) => CopyRefusal::NotCarriedOver { cause: e.to_string(), families: c.families.to_string() }.into(),
                None => e,
            })?;
            snapshot::copy_sequences(blue, &mut green, &database(&self.blue), &database(&green_opts)).await?;
            let filtered = self.config.tables.include.is_some() || !self.config.tables.exclude.is_empty();
            let programs = super::programs::copy(blue, &mut green, &database(&self.blue), &database(&green_opts), filtered).await?;
            if !programs.is_empty() {
                tracing::info!(objects = %programs.join(", "), "created blue's views, routines and events on green (events disabled until the cutover)");
            }
        } else if !missing.is_empty() {
            return Err(CopyRefusal::GreenPartial { missing: missing.join(", "), how: "" }.into());
        } else {
            refuse_rows_on_green(&mut green, &tables).await?;
        }
        let green_json_text = super::is_mariadb(&mut green, crate::error::Side::Green).await?;
        snapshot::refuse_typed_json(blue, &tables, green_json_text).await?;
        state.mark_snapshot_started()?;
        if self.config.snapshot_chunked(super::chunks::total_size(blue, &tables).await?) {
            return self.plan_chunked_copy(state, blue, &tables).await;
        }
        let started = std::time::Instant::now();
        let (readers, point) = snapshot::open_readers(&self.blue, self.config.snapshot_workers()).await?;
        let sized = largest_last(blue, &tables).await?;
        let mut readers = readers;
        let jobs = snapshot::plan(&mut readers[0], sized, self.config.snapshot_split_pages() * 8192).await?;
        let rows = snapshot::copy_all(readers, target_url, jobs, state, status).await?;
        tracing::info!(rows, seconds = started.elapsed().as_secs_f64(), position = %point.position, "snapshot copied");
        turnout_sinks::mysql::record_position(target_url, &self.names.origin, &point.position).await.map_err(Error::Sink)?;
        state.mark_snapshot_done(&point.position)?;
        state.record_applied(&point.position)?;
        Ok(())
    }

    /// The start of a chunked copy ([`crate::copy`]): the chunk plan, and green's progress record at
    /// the end of blue's binlog now, where the stream starts.
    async fn plan_chunked_copy(&self, state: &StateStore, blue: &mut mysql_async::Conn, tables: &[TableName]) -> Result<(), Error> {
        let start = snapshot::binlog_end(blue, crate::error::Side::Blue).await?;
        let plan = super::chunks::plan(blue, tables, self.config.snapshot_chunk_bytes()?, 0).await?;
        crate::copy::save_plan(state, &plan)?;
        turnout_sinks::mysql::record_position(self.config.target.url.expose(), &self.names.origin, &start).await.map_err(Error::Sink)?;
        state.mark_snapshot_done(&start)?;
        state.record_applied(&start)?;
        tracing::info!(chunks = plan.len(), from = %start, "planned a chunked copy: green is filled chunk by chunk while the stream runs");
        Ok(())
    }

    /// Tables the selection gained since the last start (a widened `[tables]` filter, a table created
    /// on blue that a pattern matches, a table left out for a while and selected again): created on
    /// green when it lacks them (`SHOW CREATE TABLE`), then planned as chunks of the chunked copy,
    /// which copies them while the other tables stream and drops their changes until then (see
    /// [`crate::copy`]). A green table turnout did not copy must be empty; one it copied before is
    /// stale and copied afresh. Refused when a table already replicated refers to an added one by a
    /// foreign key: green's cascades from it could not follow blue's while it is copied.
    async fn plan_added_tables(&self, state: &StateStore, blue: &mut mysql_async::Conn, tables: &[TableName]) -> Result<(), Error> {
        let (plan, _) = crate::copy::load_plan(state)?;
        let copied: Vec<String> = state.copied_tables()?.into_iter().map(|(t, _)| t).collect();
        let copied_before = |t: &TableName| copied.contains(&t.to_string()) || plan.iter().any(|c| c.table_name() == *t);
        let known: Vec<String> = match state.last_selection()? {
            Some(known) => known,
            None => tables.iter().filter(|t| copied_before(t)).map(ToString::to_string).collect(),
        };
        let added: Vec<TableName> = tables.iter().filter(|t| !known.contains(&t.to_string())).cloned().collect();
        if added.is_empty() {
            return Ok(());
        }
        let edges = super::chunks::foreign_keys(blue, &database(&self.blue)).await?;
        if let Some((child, parent)) = edges.iter().find(|(c, p)| added.contains(p) && !added.contains(c) && tables.contains(c)) {
            return Err(Error::config(
                "tables.include",
                format!(
                    "now selects {parent}, which the replicated table {child} refers to by a foreign key: green's cascades from {parent} \
                     could not follow blue's while {parent} is copied. Select both from the start (turnout teardown, then turnout run), or \
                     leave {parent} out"
                ),
            ));
        }
        let green_opts = super::options(self.config.target.url.expose(), "target.url")?;
        let mut green = connect(&green_opts, crate::error::Side::Green).await?;
        let green_json_text = super::is_mariadb(&mut green, crate::error::Side::Green).await?;
        snapshot::refuse_typed_json(blue, &added, green_json_text).await?;
        let mut missing = Vec::new();
        for t in &added {
            let exists: Option<i64> = green
                .exec_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&t.schema, &t.name))
                .await
                .map_err(|e| super::sql_error(crate::error::Side::Green, "looking up tables", e))?;
            if exists.unwrap_or(0) == 0 {
                missing.push(t.clone());
                continue;
            }
            let any: Option<i64> = green
                .query_first(format!("SELECT 1 FROM {} LIMIT 1", qualified(t)))
                .await
                .map_err(|e| super::sql_error(crate::error::Side::Green, "reading a table", e))?;
            if any.is_some() && !copied_before(t) {
                return Err(crate::copy::green_has_rows(t));
            }
            // Left out for a while, its definition on blue may have moved on: green's must match it.
            let columns = "SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE) ORDER BY ORDINAL_POSITION SEPARATOR ', ') \
                           FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";
            let on_blue: Option<String> =
                blue.exec_first(columns, (&t.schema, &t.name)).await.map_err(|e| super::sql_error(crate::error::Side::Blue, "reading a table's columns", e))?;
            let on_green: Option<String> = green
                .exec_first(columns, (&t.schema, &t.name))
                .await
                .map_err(|e| super::sql_error(crate::error::Side::Green, "reading a table's columns", e))?;
            if on_blue != on_green {
                return Err(crate::copy::definitions_differ(t, &on_blue.unwrap_or_default(), &on_green.unwrap_or_default()));
            }
        }
        if let Some(crossing) = super::crossing::assess(blue, &mut green, &database(&self.blue), &added, &missing).await? {
            if let Some(refusal) = crossing.refusal() {
                return Err(refusal);
            }
            for (what, follows) in &crossing.differs {
                tracing::warn!("{what}; {follows}");
            }
        }
        if !missing.is_empty() {
            green
                .query_drop("SET foreign_key_checks = 0")
                .await
                .map_err(|e| super::sql_error(crate::error::Side::Green, "turning off foreign key checks", e))?;
            snapshot::copy_schema(blue, &mut green, &missing).await?;
        }
        let chunks = super::chunks::plan(blue, &added, self.config.snapshot_chunk_bytes()?, crate::copy::next_id(&plan)).await?;
        crate::copy::save_added(state, &plan, &chunks, &added)
    }
}

/// Whether green has each of `tables`.
async fn existing_on_green(green: &mut mysql_async::Conn, tables: &[TableName]) -> Result<Vec<bool>, Error> {
    let mut existing = Vec::new();
    for t in tables {
        let n: Option<i64> = green
            .exec_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&t.schema, &t.name))
            .await
            .map_err(|e| super::sql_error(crate::error::Side::Green, "looking up tables", e))?;
        existing.push(n.unwrap_or(0) > 0);
    }
    Ok(existing)
}

/// Refuses the snapshot when one of green's `tables` already has rows.
async fn refuse_rows_on_green(green: &mut mysql_async::Conn, tables: &[TableName]) -> Result<(), Error> {
    for t in tables {
        let any: Option<i64> = green
            .query_first(format!("SELECT 1 FROM {} LIMIT 1", qualified(t)))
            .await
            .map_err(|e| super::sql_error(crate::error::Side::Green, "reading a table", e))?;
        if any.is_some() {
            return Err(CopyRefusal::GreenHasRows { table: t.to_string() }.into());
        }
    }
    Ok(())
}

/// `tables` with their sizes on blue, the largest last: the snapshot's workers pop from the end, and
/// the last reader to finish decides the snapshot's length.
async fn largest_last(blue: &mut mysql_async::Conn, tables: &[TableName]) -> Result<Vec<(TableName, u64)>, Error> {
    let mut sized = Vec::with_capacity(tables.len());
    for t in tables {
        let n: Option<i64> = blue
            .exec_first("SELECT COALESCE(DATA_LENGTH, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&t.schema, &t.name))
            .await
            .map_err(|e| super::sql_error(crate::error::Side::Blue, "reading table sizes", e))?;
        sized.push((t.clone(), u64::try_from(n.unwrap_or(0)).unwrap_or(0)));
    }
    sized.sort_by_key(|(_, bytes)| *bytes);
    Ok(sized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Side;
    use turnout_decoders::{BinlogPosition, GtidState};

    fn config() -> Config {
        let text = "[source]\nurl = \"mysql://t@127.0.0.1:1/app\"\n[target]\nurl = \"mysql://t@127.0.0.1:2/app\"\n[state]\ndir = \"/nonexistent/turnout\"\n";
        Config::parse(text, |_| None).expect("a MySQL configuration parses")
    }

    #[test]
    fn each_stream_names_the_side_it_reads_in_its_errors() {
        let config = config();
        let forward = Names { publication: String::new(), slot: "turnout_x".into(), origin: "turnout_x".into() };
        assert_eq!(MySqlAdmin::new(&config, forward.clone()).expect("forward").reading.side, Side::Blue);
        let hand_off = Position::Binlog(BinlogPosition { file: "b.000001".into(), offset: 4, gtids: GtidState::None });
        // The reverse stream of the rollback window reads green (its configuration is swapped, so
        // its `source.url` is green's).
        let back = MySqlAdmin::reverse(&config, Names::reverse_of(&forward), "turnout_x", hand_off.clone()).expect("reverse");
        assert_eq!(back.reading.side, Side::Green);
        // The next generation after a rollback reads blue again.
        let again = MySqlAdmin::reverse(&config, forward.clone(), "turnout_x_back", hand_off).expect("again");
        assert_eq!(again.reading.side, Side::Blue);
        assert_eq!(MySqlAdmin::watching(&config, Names::none(), "turnout_x", Side::Green).expect("watch").reading.side, Side::Green);
    }
}
