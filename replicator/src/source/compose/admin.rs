//! [`Composed`]: a [`SourceAdmin`] made of a source side, a target side and the conversion between
//! them. `prepare` selects blue's tables, refuses what the conversion cannot carry, creates the
//! tables on green and loads the snapshot of turnout's own with its position in one green
//! transaction; the stream is blue's, converted; the sink is green's.

use super::stream::Converting;
use super::{BlueColumn, BlueTable, Convert, Mapping, SourceSide, TargetSide};
use crate::config::Config;
use crate::error::{Error, SchemaRefusal, StoreError};
use crate::source::contract::compare::TableCheck;
use crate::source::contract::report::{Findings, Report};
use crate::source::{Names, SourceAdmin};
use crate::state::StateStore;
use crate::status::{Phase, Status};
use std::sync::Arc;
use tokio::sync::watch;
use turnout_decoders::schema::TableName;
use turnout_decoders::Position;
use turnout_sinks::NoEarly;

/// Blue's side `S`, green's side `T` and the conversion `C` between them, as one administration.
#[allow(missing_debug_implementations)]
pub(crate) struct Composed<S, T, C> {
    config: Config,
    names: Names,
    pub(super) source: S,
    pub(super) target: T,
    pub(super) convert: Arc<C>,
    /// A generation a rollback armed ([`Composed::next`]): where it starts on blue, and the stream
    /// of the generation before.
    after: Option<(Position, String)>,
}

impl<S: SourceSide, T: TargetSide, C: Convert> Composed<S, T, C> {
    pub(crate) fn new(config: &Config, names: Names) -> Result<Self, Error> {
        Ok(Composed {
            source: S::new(config, &names)?,
            target: T::new(config, &names)?,
            convert: Arc::new(C::from_config(config)),
            config: config.clone(),
            names,
            after: None,
        })
    }

    /// The stream again after a rollback that armed it (`cutover.iterate`): the generation `arm`
    /// names, from the hand-off on blue the rollback read inside its pause, once blue held everything
    /// green had and green was fenced — nothing of the stream back's follows it on blue, so nothing is
    /// dropped (a write that did would reach green again and stop the stream at its key, not vanish).
    /// Nothing is copied: green holds every row blue holds at the hand-off.
    pub(crate) fn next(config: &Config, arm: &crate::journal::ReverseArm) -> Result<Self, Error> {
        // The stream back of the generation before is `<its name>_back`.
        let previous = arm.forward_origin.strip_suffix("_back").unwrap_or(&arm.forward_origin).to_owned();
        Ok(Composed { after: Some((arm.position.clone(), previous)), ..Composed::new(config, arm.names.clone())? })
    }
}

impl<S: SourceSide, T: TargetSide, C: Convert> Composed<S, T, C> {
    /// `check`'s line for one column: its mapping with the class and why, and for a lossy column the
    /// rows on blue holding a value green cannot hold.
    async fn check_column(&self, t: &BlueTable, c: &BlueColumn, findings: &mut Findings) {
        let at = format!("{}.{}: {}", t.name, c.name, c.column_type);
        match self.convert.map(t, c) {
            Mapping::Refused { why } => findings.fail(at, format!("{why}; leave {} out (tables.exclude)", t.name)),
            Mapping::Mapped { green, class, note, affected: None, .. } => findings.ok(format!("{at} → {green} ({class}{})", noted(note))),
            Mapping::Mapped { green, class, note, affected: Some(what), accepted } => match (self.source.affected(&t.name, &c.name, what).await, accepted) {
                (Ok(0), None) => findings.ok(format!("{at} → {green} ({class}{}; 0 rows hold {what})", noted(note))),
                (Ok(n), Some(becomes)) => {
                    findings.ok(format!("{at} → {green} ({class}{}; {n} row(s) hold {what}: accepted as {} in convert.accept)", noted(note), becomes.word()))
                }
                (Ok(n), None) => findings.fail(
                    format!("{at} → {green} ({class}): {n} row(s) on blue hold {what}, which green cannot hold"),
                    format!("change those values on blue, accept a mapping for the column in [[convert.accept]], or leave {} out (tables.exclude)", t.name),
                ),
                (Err(e), _) => findings.fail(format!("{at}: counting the rows that hold {what}"), e.to_string()),
            },
        }
    }

    /// The `convert.accept` entries that name no replicated column (a typo would otherwise accept
    /// nothing, silently).
    fn unmatched_accepts(&self, tables: &[BlueTable]) -> Vec<String> {
        self.config
            .convert
            .accept
            .iter()
            .enumerate()
            .filter(|(at, a)| {
                // Each entry was checked when the configuration was read.
                let Ok(((database, table, column), _)) = a.parse(*at) else { return true };
                !tables.iter().any(|t| t.name.schema == database && t.name.name == table && t.columns.iter().any(|c| c.name == column))
            })
            .map(|(_, a)| a.column.clone())
            .collect()
    }

    /// Refuses the copy while a lossy column holds a value green cannot hold, naming how many.
    async fn refuse_affected(&self, tables: &[BlueTable]) -> Result<(), Error> {
        for t in tables {
            for c in &t.columns {
                if let Mapping::Mapped { affected: Some(what), accepted: None, .. } = self.convert.map(t, c) {
                    let rows = self.source.affected(&t.name, &c.name, what).await?;
                    if rows > 0 {
                        return Err(SchemaRefusal::Affected { table: t.name.to_string(), column: c.name.clone(), rows, what: what.to_string() }.into());
                    }
                }
            }
        }
        Ok(())
    }
}

impl<S: SourceSide, T: TargetSide, C: Convert> Composed<S, T, C> {
    /// `check`'s lines for what the cutover will refuse until the operator makes it on green: blue's
    /// objects and column behaviours with no translation (each a warning now), and whether turnout's
    /// account sees them all.
    async fn check_untranslated(&self, tables: &[BlueTable], findings: &mut Findings) {
        let listed = async {
            let mut cutover = super::cutover::ComposedCutover::<S, T, C>::connect(&self.config, &self.names, false).await?;
            cutover.objects(tables.to_vec()).await
        };
        match listed.await {
            Err(e) => findings.warn("listing blue's objects for the cutover (only the cutover needs it)", e.to_string()),
            Ok(found) => {
                for object in found.kept {
                    findings.ok(format!("{object}: kept as the operator makes it on green (cutover.keep_definitions)"));
                }
                for object in found.sequences {
                    findings.warn(format!("{object}: not carried to {}", T::ENGINE), "the cutover refuses it: use AUTO_INCREMENT on blue, or drop it");
                }
                for object in found.untranslated {
                    findings.warn(
                        format!("{object}: not translated to {}", T::ENGINE),
                        "the cutover refuses it until you make it on green and name it in cutover.keep_definitions",
                    );
                }
            }
        }
    }
}

impl<S: SourceSide, T: TargetSide, C: Convert> Composed<S, T, C> {
    /// Refuses a start whose selection has a table the copy did not copy (a widened filter) and
    /// the stream did not make on green from blue's `CREATE TABLE` ([`TargetSide::created`]): its
    /// rows before now would never reach green. A table green lacks is left to the stream, which
    /// makes it at its `CREATE TABLE` or stops at its first change before one. Adding a table to a
    /// composed stream otherwise is not built; a table left out since is only said.
    async fn refuse_added(&self, state: &StateStore, tables: &[BlueTable]) -> Result<(), Error> {
        let names: Vec<TableName> = tables.iter().map(|t| t.name.clone()).collect();
        let now: Vec<String> = names.iter().map(ToString::to_string).collect();
        let Some(copied) = state.last_selection()? else {
            // A state from before selections were recorded: this one is checked from the next start.
            state.record_selection(&now)?;
            return Ok(());
        };
        let created = self.target.created(&names).await?;
        let joined: Vec<TableName> = names.iter().filter(|t| !copied.contains(&t.to_string()) && !created.contains(t)).cloned().collect();
        let lacking = self.target.lacking(&joined).await?;
        let added: Vec<String> = joined.iter().filter(|t| !lacking.contains(t)).map(ToString::to_string).collect();
        if !added.is_empty() {
            return Err(crate::error::CopyRefusal::AddedAfterCopy { tables: added.join(", ") }.into());
        }
        for left in copied.iter().filter(|t| !now.contains(t)) {
            tracing::warn!("{left} is no longer selected: green keeps it as it was");
        }
        // A table left out now misses blue's changes from here on: letting it in again is then a
        // table the copy did not copy. So a table the stream made and that is left out is
        // forgotten, and the selection recorded is what is selected and whole on green (a table
        // green lacks joins it once the stream has made it).
        self.target.forget_created(&names).await?;
        let known: Vec<String> = names.iter().filter(|t| copied.contains(&t.to_string()) || created.contains(t)).map(ToString::to_string).collect();
        state.record_selection(&known)?;
        Ok(())
    }
}

/// `; note`, or nothing.
fn noted(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(": {note}")
    }
}

impl<S: SourceSide, T: TargetSide, C: Convert> SourceAdmin for Composed<S, T, C> {
    type Stream = Converting<S::Stream, C>;
    type Sink = T::Sink;
    /// Blue's log (a binlog) sends transactions whole at their commit: nothing to apply early.
    type Early = NoEarly;
    type Copier = super::family::Unbuilt;

    fn names(&self) -> &Names {
        &self.names
    }

    async fn prepare(&self, state: &StateStore, status: &Arc<Status>) -> Result<(), Error> {
        let tables = self.source.select().await?;
        if let Some(column) = self.unmatched_accepts(&tables).first() {
            return Err(Error::config("convert.accept", format!("names {column}, which is not a replicated column of blue; correct or remove the entry")));
        }
        self.source.prepare().await?;
        let green = tables.iter().map(|t| self.convert.green(t)).collect::<Result<Vec<_>, _>>()?;
        // A type the map carries can still be refused by what `convert.accept` asks of it.
        for t in &tables {
            for c in &t.columns {
                if let Mapping::Refused { why } = self.convert.map(t, c) {
                    return Err(Error::config("convert.accept", format!("{}.{}: {why}", t.name, c.name)));
                }
            }
        }
        if let Some((hand_off, previous)) = &self.after {
            // The stream's position on green starts at the hand-off (a restart keeps the one it has).
            self.target.begin_at(hand_off, previous).await?;
        }
        if state.snapshot_done()?.is_some() {
            return self.refuse_added(state, &tables).await;
        }
        status.set_phase(Phase::Snapshot);
        self.refuse_affected(&tables).await?;
        let start = match self.target.recorded().await? {
            // A run that loaded green and stopped before the state store knew.
            Some(recorded) => recorded,
            None => {
                let snapshot = self.source.snapshot(&tables).await?;
                // A change to blue's tables between the catalog read above and the snapshot is in the
                // binlog before the snapshot's position, where the stream never sees it: read the
                // catalog again now that the snapshot is open (a change after this point reaches the
                // stream, which refuses it).
                let again = self.source.select().await?;
                if again.len() != tables.len() || again.iter().zip(&tables).any(|(a, b)| !a.same_definition(b)) {
                    return Err(Error::Setup(
                        "blue's tables changed while the copy started (a column added, dropped or retyped); nothing was copied: start turnout again".into(),
                    ));
                }
                let convert = Arc::clone(&self.convert);
                let blue = tables.clone();
                let batches = futures_util::stream::unfold((snapshot.batches, Some(snapshot.reader)), move |(mut rx, mut reader)| {
                    let (convert, blue) = (Arc::clone(&convert), blue.clone());
                    async move {
                        let Some(batch) = rx.recv().await else {
                            // The channel ended: complete only if the reader finished rather than failed.
                            return match reader.take()?.await {
                                Ok(()) => None,
                                Err(e) => Some((Err(Error::Setup(format!("blue's snapshot reader ended without finishing: {e}"))), (rx, None))),
                            };
                        };
                        let converted = batch.and_then(|(i, rows)| {
                            let table = blue.get(i).ok_or_else(|| Error::Setup(format!("the snapshot sent a table it was not given ({i})")))?;
                            Ok((i, rows.into_iter().map(|r| convert.row(table, r)).collect::<Result<Vec<_>, _>>()?))
                        });
                        Some((converted, (rx, reader)))
                    }
                });
                self.target.load(&green, Box::pin(batches), &snapshot.position).await?;
                snapshot.position
            }
        };
        tracing::info!(position = %start, from = S::ENGINE, to = T::ENGINE, "green holds blue's snapshot; the stream starts here");
        // The selection first: a start that finds the snapshot done checks the selection against it.
        state.record_selection(&tables.iter().map(|t| t.name.to_string()).collect::<Vec<_>>())?;
        state.mark_snapshot_done(&start)?;
        state.record_applied(&start)?;
        Ok(())
    }

    async fn open_sink(&self) -> Result<T::Sink, Error> {
        self.target.open_sink().await
    }

    fn open_early(&self) -> NoEarly {
        NoEarly
    }

    /// Asked only while a chunked copy's plan has chunks left, which a composition never plans.
    fn copier(&self) -> Result<super::family::Unbuilt, Error> {
        Ok(super::family::Unbuilt::of::<S, T>("the chunked copy"))
    }

    async fn open_stream(&self, from: &Position) -> Result<Self::Stream, Error> {
        // The catalog the stream converts by: the tables as they are now (cut back to an older
        // table map's columns where blue added some since; another change stops the stream at its
        // first row, the binlog's row not matching).
        let tables = self.source.select().await?;
        // Whether green repeats an action is what its triggers say, checked against how blue acts
        // now — on the tables green has: one blue created after the stream's position gets green's
        // table, and its actions, when the stream reaches its CREATE TABLE.
        let names: Vec<TableName> = tables.iter().filter(|t| !t.heartbeat).map(|t| t.name.clone()).collect();
        let uncreated: std::collections::HashSet<TableName> = self.target.lacking(&names).await?.into_iter().collect();
        let actions = super::actions::Actions::new(tables.iter().filter(|t| !uncreated.contains(&t.name)), &self.target.acting_keys().await?)?;
        let inner = self.source.open_stream(from).await?;
        let readers = (self.source.reread(), self.target.shapes(), self.target.record_created());
        Ok(Converting::new(inner, Arc::clone(&self.convert), (tables, uncreated), readers, actions, (S::ENGINE, T::ENGINE)))
    }

    fn heartbeat(&self, status: Arc<Status>, shutdown: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.source.heartbeat(status, shutdown)
    }

    /// The type map of every selected column, with its class, and what is not built.
    async fn check(&self) -> Report {
        let mut findings = Findings::default();
        match self.source.select().await {
            Err(e) => findings.fail("reading blue's tables", e.to_string()),
            Ok(tables) => {
                for column in self.unmatched_accepts(&tables) {
                    findings.fail(format!("convert.accept names {column}"), "it is not a replicated column of blue; correct or remove the entry");
                }
                for t in &tables {
                    for c in &t.columns {
                        self.check_column(t, c, &mut findings).await;
                    }
                    // The table as a whole, once its columns are mapped (a refused column is named above).
                    if t.columns.iter().all(|c| matches!(self.convert.map(t, c), Mapping::Mapped { .. })) {
                        match self.convert.green(t) {
                            Ok(g) => {
                                for what in g.left_out {
                                    findings.warn(what, "green holds the rows exactly; this part of the table's behaviour is the operator's");
                                }
                            }
                            Err(e) => findings.fail(format!("{}", t.name), e.to_string()),
                        }
                    }
                }
                findings.ok(
                    "the initial copy: every table read in one snapshot of blue and loaded with COPY in one green transaction (not chunked, not resumable)",
                );
                self.check_untranslated(&tables, &mut findings).await;
            }
        }
        let blue = self.source.check().await;
        Report { sections: vec![(format!("blue ({})", S::ENGINE), blue.0), (format!("the type map, {} → {}", S::ENGINE, T::ENGINE), findings.0)] }
    }

    /// Every selected table's rows, and (without `--table`) green's definitions against blue's as
    /// the cutover compares them.
    async fn verify(&self, only: Option<&str>) -> Result<Vec<TableCheck>, Error> {
        let mut checks = self.compare(only).await?;
        if only.is_none() {
            let mut cutover = super::cutover::ComposedCutover::<S, T, C>::connect(&self.config, &self.names, false).await?;
            checks.push(cutover.definitions().await?.check());
        }
        Ok(checks)
    }

    /// What the stream made on both sides, and what a cutover's stream back left (its slot and
    /// publication on green, its progress record on blue).
    async fn teardown(&self) -> Result<Vec<String>, Error> {
        let back = Names::reverse_of(&self.names);
        let mut done = self.target.drop_back(&back).await?;
        done.extend(self.source.drop_back(&back.origin).await?);
        done.extend(self.target.teardown(&[self.source.heartbeat_table()]).await?);
        done.extend(self.source.teardown().await?);
        if self.config.state.dir.exists() {
            std::fs::remove_dir_all(&self.config.state.dir).map_err(StoreError::file("removing", &self.config.state.dir))?;
            done.push(format!("removed state directory {}", self.config.state.dir.display()));
        }
        Ok(done)
    }
}
