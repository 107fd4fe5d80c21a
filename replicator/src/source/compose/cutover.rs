//! The cutover of a composition: blue's side fences itself its own way and writes the sentinel the
//! stream carries to green ([`FencedSide`]); green's side moves its counters past blue's and says
//! whether its tables are still what the conversion made ([`OpenedSide`]); [`ComposedCutover`] is the
//! [`Procedure`] of the two. The steps around it — lag gate, pause budget, proof, journal, switch —
//! are every family's ([`crate::cutover`]).
//!
//! **Definitions at the switch.** Nothing of blue's definitions is translated except its tables (the
//! type map). So, before the lag wait, after it and once more inside the write pause:
//! - every table green holds must still be what the conversion makes of blue's table *now* (names,
//!   types, `NOT NULL`, in order) — a table changed on blue with its change kept out of the binlog, or
//!   changed on green, refuses naming it;
//! - every other object of blue's (a view, routine, trigger, event, sequence) refuses the cutover
//!   unless the operator names it in `cutover.keep_definitions`: they made its form on green, and the
//!   certificate records it;
//! - blue's definitions are marked after the lag wait (a digest per object) and the mark is read again
//!   just before the fence and inside the pause: an object created, changed or dropped since undoes the
//!   fence, naming it.
//!
//! **The way back.** With `cutover.reverse` the pre-checks refuse while green could take a write
//! blue could not take back ([`Convert::unguarded`], blue's triggers), and the stream back is armed
//! before the fence, its slot's consistent point the hand-off; the forward apply's later commits
//! carry its replication origin and are dropped ([`super::back`]). The rollback is
//! [`super::rollback`].

use super::{BlueTable, Composed, Convert, GreenTable, SourceSide, TargetSide};
use crate::config::Config;
use crate::error::{DefinitionRefusal, Error, Side};
use crate::source::contract::procedure::{Identity, Procedure};
use crate::source::Names;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use turnout_cutover::CounterSync;
use turnout_decoders::{Position, TableName};

/// Values green's counters are moved ahead of blue's before the fence.
const COUNTER_MARGIN: i128 = 1_000;

/// A table's counter: the value its next generated key takes.
pub(crate) type Counter = (TableName, i128);

/// Blue's definitions as [`FencedSide::mark`] reads them: a digest per object, by the object's name
/// (`VIEW app.v`, `TABLE app.t`).
pub(crate) type Mark = BTreeMap<String, String>;

/// A side's fence and sentinel: blue's in a cutover, green's in a rollback.
pub(crate) trait SideFence: Send + Sync + Sized {
    /// Checks, changing nothing, that the fence can be applied.
    fn check_fence(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
    /// Fences the application's writes within `budget`; what it did.
    fn fence(&mut self, budget: Duration) -> impl Future<Output = Result<String, Error>> + Send;
    /// Commits the sentinel carrying `id`, which the stream from this side carries to the other.
    fn write_sentinel(&mut self, id: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// Everything the side committed, where the fence knows it (see [`Procedure::fenced_position`]).
    fn committed(&self) -> Option<Position>;
    /// Whether the fence is in place now, read from the server.
    fn is_fenced(&mut self) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Lifts the fence; what it did.
    fn lift(&mut self) -> impl Future<Output = Result<String, Error>> + Send;
}

/// Blue's part of a cutover to another engine: the fence, the sentinel, its counters and the objects
/// the other engine gets no translation of.
pub(crate) trait FencedSide: SideFence {
    /// Blue of `config` (`source.url`), connected.
    fn connect(config: &Config) -> impl Future<Output = Result<Self, Error>> + Send;
    /// `read-only` or `none`, as in `cutover.fence`.
    fn kind(&self) -> crate::config::Fence;
    /// Refusals and warnings of the fence's own (a replica, sessions the fence cannot stop).
    fn preflight(&mut self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
    /// Refuses when turnout's account cannot see every object blue's catalog holds.
    fn visible(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
    fn identify(&mut self) -> impl Future<Output = Identity> + Send;
    /// For a rehearsal: what the fence would wait for.
    fn findings(&mut self) -> impl Future<Output = Vec<String>> + Send;
    /// Every counter of blue's database (the next `AUTO_INCREMENT` value per table).
    fn counters(&mut self) -> impl Future<Output = Result<Vec<Counter>, Error>> + Send;
    /// Blue's objects other than the columns of `tables` (`VIEW app.v`, `TRIGGER app.t`, a `CHECK`
    /// of one of `tables`, …). Refuses when turnout's account cannot see every object there is.
    fn objects(&mut self, tables: &[TableName]) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
    /// A digest per definition of blue's database: `tables`' parts, and every other object.
    fn mark(&mut self, tables: &[TableName]) -> impl Future<Output = Result<Mark, Error>> + Send;
    /// Creates again, on this session, blue's triggers parked for the rollback window (the stream back
    /// parked them before it first applied); each one's name.
    fn restore_parked(&mut self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
    /// Whether blue has triggers parked for the rollback window.
    fn parked(&mut self) -> impl Future<Output = Result<bool, Error>> + Send;
    /// The end of blue's log now, on this session: where a generation a rollback arms starts (read
    /// once blue holds everything green had and green is fenced).
    fn log_end(&mut self) -> impl Future<Output = Result<Position, Error>> + Send;
    /// A rollback: moves each of blue's counters to at least green's next value of the same table
    /// plus `margin` (never back).
    fn counters_ahead(&mut self, green: &[Counter], margin: i128) -> impl Future<Output = Result<Vec<CounterSync>, Error>> + Send;
}

/// Green's part of a cutover from another engine, and of the rollback that fences it.
pub(crate) trait OpenedSide: SideFence {
    /// Green of `config` (`target.url`), connected.
    fn connect(config: &Config) -> impl Future<Output = Result<Self, Error>> + Send;
    /// How each of `tables` on green differs from what the conversion makes of blue's (one line per
    /// table: missing, a column's name, type or `NOT NULL`); empty when they are equal.
    fn differences(&mut self, tables: &[GreenTable]) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
    /// The tables of `schemas` with a generated key (an identity).
    fn counted(&mut self, schemas: &[String]) -> impl Future<Output = Result<Vec<TableName>, Error>> + Send;
    /// Moves each table's generated key to at least blue's next value plus `margin` (never back).
    fn counters_ahead(&mut self, blue: &[Counter], margin: i128) -> impl Future<Output = Result<Vec<CounterSync>, Error>> + Send;
    fn identify(&mut self) -> impl Future<Output = Identity> + Send;

    // A rollback fences green ([`SideFence`]) and reads its counters.
    /// The next value of every identity of a table in `schemas`.
    fn counters(&mut self, schemas: &[String]) -> impl Future<Output = Result<Vec<Counter>, Error>> + Send;
    /// Every table green has in `schemas`.
    fn tables(&mut self, schemas: &[String]) -> impl Future<Output = Result<Vec<TableName>, Error>> + Send;
    /// Each `CHECK` the conversion makes on `tables` (its range checks and the way back's guard) that
    /// green's table lacks — dropped, or a table made before the guard — one line each with the
    /// statement that adds it. Other checks green has (the operator's) are not compared.
    fn missing_checks(&mut self, tables: &[GreenTable]) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
}

/// The cutover of blue's side `S` into green's side `T` through the conversion `C`.
#[allow(missing_debug_implementations)]
pub(crate) struct ComposedCutover<S: SourceSide, T: TargetSide, C> {
    admin: Composed<S, T, C>,
    config: Config,
    blue: S::Fenced,
    /// Opened when first needed: undoing the fence (a recovery after a crash) must not depend on green.
    green: Option<T::Opened>,
    keep: Vec<String>,
    /// The stream back's names, when the cutover arms it (`cutover.reverse`).
    back: Option<Names>,
    /// The type map of blue's selected columns as the pre-checks read it, one line each.
    type_map: Vec<String>,
    /// Blue's definitions when they were last settled, and the tables selected then.
    mark: Option<Mark>,
    selected: Vec<TableName>,
    /// Whether green was fenced (by a rollback) when the pre-checks read it; `None` when they did not
    /// run (a cutover completed after a crash).
    green_fenced: Option<bool>,
}

impl<S: SourceSide, T: TargetSide, C: Convert> ComposedCutover<S, T, C> {
    /// A cutover of the stream `names`; with `reverse`, it arms the stream back (green → blue)
    /// inside the pause.
    pub(crate) async fn connect(config: &Config, names: &Names, reverse: bool) -> Result<Self, Error> {
        let admin = Composed::new(config, names.clone())?;
        let blue = S::Fenced::connect(config).await?;
        Ok(ComposedCutover {
            admin,
            config: config.clone(),
            blue,
            green: None,
            keep: config.cutover.keep_definitions.clone(),
            back: reverse.then(|| Names::reverse_of(names)),
            type_map: Vec::new(),
            mark: None,
            selected: Vec::new(),
            green_fenced: None,
        })
    }

    /// Green's session, opened on first use.
    async fn green(&mut self) -> Result<&mut T::Opened, Error> {
        if self.green.is_none() {
            self.green = Some(T::Opened::connect(&self.config).await?);
        }
        self.green.as_mut().ok_or_else(|| Error::Internal("the cutover's session on green is missing".into()))
    }

    /// Blue's selected tables as green is to hold them now.
    async fn expected(&self) -> Result<(Vec<BlueTable>, Vec<GreenTable>), Error> {
        let blue = self.admin.source.select().await?;
        let green = blue.iter().map(|t| self.admin.convert.green(t)).collect::<Result<Vec<_>, _>>()?;
        Ok((blue, green))
    }

    /// How green's definitions stand against blue's now: green's tables against the type map's of
    /// blue's, blue's other objects against `cutover.keep_definitions`. Changes nothing.
    pub(crate) async fn definitions(&mut self) -> Result<Definitions, Error> {
        let (blue, green) = self.expected().await?;
        let differences = self.green().await?.differences(&green).await?;
        let mut found = self.objects(blue).await?;
        found.differences = differences;
        Ok(found)
    }

    /// Blue's objects and column behaviours green gets no translation of, sorted into sequences
    /// (never carried), those `cutover.keep_definitions` names and the rest — blue's side of
    /// [`ComposedCutover::definitions`], which `check` reads without green. Refuses when turnout's
    /// account cannot see every object.
    pub(crate) async fn objects(&mut self, tables: Vec<BlueTable>) -> Result<Definitions, Error> {
        self.blue.visible().await?;
        let names: Vec<TableName> = tables.iter().map(|t| t.name.clone()).collect();
        let mut objects = self.blue.objects(&names).await?;
        objects.extend(behaviours(&tables, self.admin.convert.as_ref()));
        // A sequence's next value would not move past blue's on green: refused even when kept.
        let (sequences, objects): (Vec<String>, Vec<String>) = objects.into_iter().partition(|o| o.starts_with("SEQUENCE "));
        let (kept, untranslated): (Vec<String>, Vec<String>) = objects.into_iter().partition(|o| self.keep.contains(o));
        Ok(Definitions { tables, differences: Vec::new(), sequences, untranslated, kept })
    }

    /// Refuses while green's tables are not what the conversion makes of blue's now, or blue has an
    /// object green gets no translation of that the operator has not kept; returns blue's tables and
    /// the objects kept.
    async fn compare(&mut self) -> Result<(Vec<BlueTable>, Vec<String>), Error> {
        let found = self.definitions().await?;
        if !found.differences.is_empty() {
            let differences = found.differences;
            return Err(DefinitionRefusal::Differ { from: Side::Blue, to: Side::Green, count: differences.len(), objects: differences.join("\n") }.into());
        }
        if !found.sequences.is_empty() {
            return Err(DefinitionRefusal::Uncarried {
                from: Side::Blue,
                to: Side::Green,
                count: found.sequences.len(),
                objects: found.sequences.iter().map(|s| format!("{s}: {SEQUENCE_WHY}")).collect::<Vec<_>>().join("\n"),
            }
            .into());
        }
        if let Some(example) = found.untranslated.first() {
            return Err(DefinitionRefusal::NotTranslated {
                from: Side::Blue,
                to: Side::Green,
                from_engine: S::ENGINE,
                to_engine: T::ENGINE,
                count: found.untranslated.len(),
                objects: found.untranslated.join(", "),
                example: example.clone(),
            }
            .into());
        }
        Ok((found.tables, found.kept))
    }

    /// Moves green's counters to blue's plus `margin`; the line to say and how many moved.
    async fn counters(&mut self, margin: i128, what: &str) -> Result<(String, usize), Error> {
        let blue = self.blue.counters().await?;
        let done = self.green().await?.counters_ahead(&blue, margin).await?;
        let moved = done.iter().filter(|c| c.changed).count();
        Ok((format!("{what}: {moved} of {} identity counters moved on green", done.len()), moved))
    }
}

/// Why a sequence refuses the cutover even when kept.
const SEQUENCE_WHY: &str = "its next value on green would not be moved past blue's at the switch; use AUTO_INCREMENT on blue, or drop it";

/// Green's definitions against blue's, as [`ComposedCutover::definitions`] finds them.
#[derive(Debug, Default)]
pub(crate) struct Definitions {
    /// Blue's selected tables, as its catalog describes them now.
    pub tables: Vec<BlueTable>,
    /// How green's tables differ from the type map's of blue's, one line each.
    pub differences: Vec<String>,
    /// Blue's sequences (never carried).
    pub sequences: Vec<String>,
    /// Blue's objects with no translation that `cutover.keep_definitions` does not name.
    pub untranslated: Vec<String>,
    /// Those it names.
    pub kept: Vec<String>,
}

impl Definitions {
    /// `verify`'s line for them: equal when nothing differs and nothing is left untranslated.
    pub(crate) fn check(&self) -> crate::source::contract::compare::TableCheck {
        let mut notes = self.differences.clone();
        notes.extend(self.sequences.iter().map(|s| format!("{s}: {SEQUENCE_WHY}")));
        notes.extend(self.untranslated.iter().map(|o| format!("{o}: on blue, not translated; make it on green and name it in cutover.keep_definitions")));
        notes.extend(self.kept.iter().map(|o| format!("{o}: kept as the operator made it on green (cutover.keep_definitions)")));
        let compared = i64::try_from(self.tables.len() + self.sequences.len() + self.untranslated.len() + self.kept.len()).unwrap_or(i64::MAX);
        let equal = self.differences.is_empty() && self.sequences.is_empty() && self.untranslated.is_empty();
        crate::source::contract::compare::TableCheck {
            table: crate::source::contract::compare::DEFINITIONS.into(),
            blue_rows: compared,
            green_rows: compared,
            equal,
            notes,
        }
    }
}

/// What blue's server does to the selected tables' rows that green is not made to do: a column's
/// default the type map does not carry (an insert that leaves the column out gets it on blue) and `ON UPDATE` (an update sets the
/// column on blue), named as `cutover.keep_definitions` names them (`DEFAULT shop.t.c`,
/// `ON UPDATE shop.t.c`). Replication carries the values blue's server wrote; after the switch the
/// application's writes on green would get none.
fn behaviours<C: Convert>(tables: &[BlueTable], convert: &C) -> Vec<String> {
    let mut out = Vec::new();
    for t in tables.iter().filter(|t| !t.heartbeat) {
        for c in &t.columns {
            // A constant the type map carries is green's own DEFAULT (compared with green's tables).
            if c.default.is_some() && convert.green_default(t, c).is_none() {
                out.push(format!("DEFAULT {}.{}", t.name, c.name));
            }
            if c.on_update {
                out.push(format!("ON UPDATE {}.{}", t.name, c.name));
            }
        }
    }
    out
}

/// Each selected column's place in the type map, as a certificate records it:
/// `shop.t.c: int(11) → integer (exact)`.
fn type_map<C: Convert>(tables: &[BlueTable], convert: &C) -> Vec<String> {
    let mut out = Vec::new();
    for t in tables.iter().filter(|t| !t.heartbeat) {
        for c in &t.columns {
            out.push(match convert.map(t, c) {
                super::Mapping::Mapped { green, class, accepted: Some(becomes), affected: Some(what), .. } => {
                    format!("{}.{}: {} → {green} ({class}: {what} accepted as {} in convert.accept)", t.name, c.name, c.column_type, becomes.word())
                }
                super::Mapping::Mapped { green, class, note: "", .. } => format!("{}.{}: {} → {green} ({class})", t.name, c.name, c.column_type),
                super::Mapping::Mapped { green, class, note, .. } => format!("{}.{}: {} → {green} ({class}: {note})", t.name, c.name, c.column_type),
                super::Mapping::Refused { why } => format!("{}.{}: {} refused: {why}", t.name, c.name, c.column_type),
            });
        }
    }
    out
}

/// `mark` without the tables of blue's database `filter` leaves out: one of those created or dropped
/// (a scratch table, an online schema change's shadow table) changes nothing green gets. A table the
/// selection takes in is a change the mark names.
fn selected_only(mut mark: Mark, filter: &crate::tables::TableFilter) -> Mark {
    mark.retain(|name, _| match name.strip_prefix("BASE TABLE ").and_then(|t| t.split_once('.')) {
        Some((schema, table)) => filter.selects(&TableName::new(schema, table)),
        None => true,
    });
    mark
}

/// The objects created, changed or dropped between two marks, named.
fn changes(before: &Mark, now: &Mark) -> Vec<String> {
    let mut changed: Vec<String> = now
        .iter()
        .filter_map(|(name, digest)| match before.get(name) {
            None => Some(format!("{name} created")),
            Some(d) if d != digest => Some(format!("{name} changed")),
            Some(_) => None,
        })
        .collect();
    changed.extend(before.keys().filter(|name| !now.contains_key(*name)).map(|name| format!("{name} dropped")));
    changed
}

impl<S: SourceSide, T: TargetSide, C: Convert> Procedure for ComposedCutover<S, T, C> {
    fn fence_kind(&self) -> crate::config::Fence {
        self.blue.kind()
    }

    async fn preflight(&mut self) -> Result<Vec<String>, Error> {
        let mut warnings = self.blue.preflight().await?;
        let (blue, kept) = self.compare().await?;
        self.type_map = type_map(&blue, self.admin.convert.as_ref());
        if self.back.is_some() {
            warnings.extend(self.reversible(&blue, &kept).await?);
        }
        if !kept.is_empty() {
            warnings.push(format!("kept as the operator made them on green (cutover.keep_definitions): {}", kept.join(", ")));
        }
        // Every table with a counter on blue has its identity on green.
        let schemas: Vec<String> = blue.iter().map(|t| t.name.schema.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let green = self.green().await?;
        let counted = green.counted(&schemas).await?;
        // Read here, not inside the pause: only a rollback fences green, and none runs meanwhile.
        self.green_fenced = Some(green.is_fenced().await?);
        let missing: Vec<String> =
            blue.iter().filter(|t| t.columns.iter().any(|c| c.auto_increment) && !counted.contains(&t.name)).map(|t| t.name.to_string()).collect();
        if !missing.is_empty() {
            return Err(DefinitionRefusal::Differ {
                from: Side::Blue,
                to: Side::Green,
                count: missing.len(),
                objects: missing.iter().map(|t| format!("{t}: AUTO_INCREMENT on blue, no identity on green")).collect::<Vec<_>>().join("\n"),
            }
            .into());
        }
        tracing::debug!(tables = blue.len(), "green's tables are what the conversion makes of blue's");
        Ok(warnings)
    }

    /// After the lag wait: compares again and marks blue's definitions (nothing is carried: blue's
    /// tables reach green through the stream, every other object is the operator's).
    async fn settle_definitions(&mut self, _apply: bool) -> Result<Option<String>, Error> {
        let started = std::time::Instant::now();
        // Marked first: a change made while the comparison runs is then seen before the fence.
        let selected: Vec<TableName> = self.admin.source.select().await?.into_iter().map(|t| t.name).collect();
        let mark = selected_only(self.blue.mark(&selected).await?, &self.config.table_filter()?);
        let (blue, kept) = self.compare().await?;
        self.selected = selected;
        let (tables, objects) = (blue.len(), mark.len());
        self.mark = Some(mark);
        Ok(Some(format!(
            "green's {tables} tables are what the type map makes of blue's after the lag wait; {objects} of blue's definitions marked{} ({} ms)",
            if kept.is_empty() { String::new() } else { format!("; kept as the operator made them on green: {}", kept.join(", ")) },
            started.elapsed().as_millis()
        )))
    }

    async fn definitions_unchanged(&mut self, when: &'static str) -> Result<(), Error> {
        let Some(before) = &self.mark else { return Ok(()) };
        let now = self.blue.mark(&self.selected).await?;
        let now = selected_only(now, &self.config.table_filter()?);
        let changed = changes(before, &now);
        if changed.is_empty() {
            return Ok(());
        }
        Err(DefinitionRefusal::ChangedSince { from: Side::Blue, to: Side::Green, when, changes: changed.join(", ") }.into())
    }

    async fn check_fence(&mut self) -> Result<(), Error> {
        self.blue.check_fence().await
    }

    async fn counters_ahead(&mut self) -> Result<String, Error> {
        Ok(self.counters(COUNTER_MARGIN, &format!("{COUNTER_MARGIN} values ahead of blue")).await?.0)
    }

    async fn fence(&mut self, budget: Duration) -> Result<String, Error> {
        self.blue.fence(budget).await
    }

    async fn write_sentinel(&mut self, id: &str) -> Result<(), Error> {
        self.blue.write_sentinel(id).await
    }

    async fn top_up(&mut self) -> Result<(String, usize), Error> {
        self.counters(0, "checked against blue's final values").await
    }

    async fn identify(&mut self) -> (Identity, Identity) {
        let blue = self.blue.identify().await;
        let green = match self.green().await {
            Ok(green) => green.identify().await,
            Err(e) => Identity { version: format!("unreadable: {e}"), identity: String::new() },
        };
        (blue, green)
    }

    async fn findings(&mut self) -> Vec<String> {
        self.blue.findings().await
    }

    /// Green's fence from a rollback (a generation it armed cuts over again), lifted inside the
    /// pause just before traffic moves; nothing when the pre-checks found green not fenced.
    async fn open_green(&mut self) -> Result<Option<String>, Error> {
        let fenced = self.green_fenced;
        let green = self.green().await?;
        let fenced = match fenced {
            Some(fenced) => fenced,
            None => green.is_fenced().await?,
        };
        if !fenced {
            return Ok(None);
        }
        Ok(Some(format!("green: {} (its fence from the rollback)", green.lift().await?)))
    }

    async fn lift_fence(&mut self) -> Result<String, Error> {
        self.blue.lift().await
    }

    async fn fenced(&mut self) -> Result<bool, Error> {
        self.blue.is_fenced().await
    }

    fn fenced_position(&self) -> Option<Position> {
        self.blue.committed()
    }

    fn type_map(&self) -> Vec<String> {
        self.type_map.clone()
    }

    async fn arm_reverse(&mut self) -> Result<Option<(String, Position)>, Error> {
        let Some(names) = self.back.clone() else { return Ok(None) };
        let started = std::time::Instant::now();
        let tables: Vec<TableName> = self.admin.source.select().await?.into_iter().filter(|t| !t.heartbeat).map(|t| t.name).collect();
        let forward = crate::source::SourceAdmin::names(&self.admin).origin.clone();
        let position = self.admin.target.arm_back(&names, &tables, &forward).await?;
        let line = format!(
            "prepared the stream back in {} ms: publication and slot {} on green ({} tables) from {position}",
            started.elapsed().as_millis(),
            names.slot,
            tables.len()
        );
        Ok(Some((line, position)))
    }

    async fn disarm_reverse(&mut self) -> Result<Option<String>, Error> {
        let Some(names) = self.back.clone() else { return Ok(None) };
        let mut done = self.admin.target.drop_back(&names).await?;
        done.extend(self.admin.source.drop_back(&names.origin).await?);
        Ok(Some(done.join("; ")))
    }
}

impl<S: SourceSide, T: TargetSide, C: Convert> ComposedCutover<S, T, C> {
    /// Refuses a cutover with a way back while green could take a write the stream back could not
    /// apply to blue: a value no guard keeps out ([`Convert::unguarded`]). Green must be able to have
    /// a slot. Blue's triggers (kept: green's forms are the operator's) are parked on blue for the
    /// rollback window ([`SourceSide::open_for_back`]); the warnings say so.
    async fn reversible(&mut self, blue: &[BlueTable], kept: &[String]) -> Result<Vec<String>, Error> {
        let mut found: Vec<String> = blue.iter().filter(|t| !t.heartbeat).flat_map(|t| self.admin.convert.unguarded(t)).collect();
        // A command switch moves the application back only with its way back.
        if self.config.cutover.switch == crate::config::Switch::Command && self.config.cutover.command.as_ref().is_none_or(|c| c.back_argv.is_none()) {
            found.push("cutover.switch = \"command\" without cutover.command.back_argv: a rollback could not move the application back; set it".into());
        }
        // Green's guard, as the conversion makes it, on every table green holds now.
        let green: Vec<GreenTable> = blue.iter().filter(|t| !t.heartbeat).map(|t| self.admin.convert.green(t)).collect::<Result<_, _>>()?;
        found.extend(self.green().await?.missing_checks(&green).await?);
        if !found.is_empty() {
            return Err(crate::error::CutoverCheck::Irreversible { count: found.len(), what: found.join("\n") }.into());
        }
        self.admin.target.may_arm_back().await?;
        let triggers: Vec<&str> = kept.iter().filter(|k| k.starts_with("TRIGGER ")).map(String::as_str).collect();
        Ok(if triggers.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "blue's triggers are parked on blue for the rollback window — dropped before the stream back first applies (green's forms do \
                 their work; their rows come back), created again by a rollback: {}",
                triggers.join(", ")
            )]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(entries: &[(&str, &str)]) -> Mark {
        entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_table_the_selection_takes_in_is_marked_and_one_it_leaves_out_is_not() {
        let rules = crate::tables::NameRules::mysql("app");
        let filter = crate::tables::TableFilter::with_rules(None, &["app._*_gho".to_owned()], &rules).expect("filter");
        let before = selected_only(mark(&[("BASE TABLE app.t", ""), ("TABLE app.t", "1")]), &filter);
        let now = selected_only(mark(&[("BASE TABLE app.t", ""), ("BASE TABLE app.n", ""), ("BASE TABLE app._t_gho", ""), ("TABLE app.t", "1")]), &filter);
        assert_eq!(changes(&before, &now), vec!["BASE TABLE app.n created"], "a shadow table left out by tables.exclude is not a change");
    }

    #[test]
    fn every_object_created_changed_or_dropped_between_two_marks_is_named() {
        let before = mark(&[("VIEW app.v", "1"), ("TABLE app.t", "2"), ("TRIGGER app.g", "3")]);
        let now = mark(&[("VIEW app.v", "1"), ("TABLE app.t", "9"), ("EVENT app.e", "4")]);
        assert_eq!(changes(&before, &now), vec!["EVENT app.e created", "TABLE app.t changed", "TRIGGER app.g dropped"]);
        assert!(changes(&now, &now).is_empty());
    }
}
