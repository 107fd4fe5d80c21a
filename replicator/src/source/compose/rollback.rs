//! The rollback of a composition: green's side fences itself (its database read-only for the
//! application) and writes the sentinel the stream back carries to blue; blue's counters are moved
//! past green's identities; blue's own fence from the cutover is lifted just before traffic returns.
//! The steps around it — pause budget, proof, journal, switch — are every family's
//! ([`crate::cutover`]); the switch back is `cutover.command.back_argv` (a proxy cannot turn a
//! PostgreSQL client into a MySQL one).
//!
//! [`ComposedProcedure`] is a composition's [`Procedure`] in either direction: the cutover
//! ([`super::cutover::ComposedCutover`]) or this rollback.

use super::cutover::{ComposedCutover, FencedSide, OpenedSide, SideFence};
use super::{Convert, SourceSide, TargetSide};
use crate::config::Config;
use crate::error::Error;
use crate::source::contract::procedure::{Identity, Procedure};
use crate::source::Names;
use std::time::Duration;
use turnout_decoders::Position;

/// Values blue's counters are moved ahead of green's before the fence.
const COUNTER_MARGIN: i128 = 1_000;

/// The rollback of blue's side `S` and green's side `T`: green fenced, blue opened.
#[allow(missing_debug_implementations)]
pub(crate) struct ComposedRollback<S: SourceSide, T: TargetSide, C> {
    config: Config,
    /// Each side's session, opened when first needed: settling a rollback after a crash needs only
    /// the side it acts on (undoing green's fence, or completing the switch to blue).
    blue: Option<S::Fenced>,
    green: Option<T::Opened>,
    convert: C,
    /// The schemas of blue's selected tables, read once before the fence: the counters inside the
    /// pause do not read blue's catalog again.
    schemas: Vec<String>,
    /// The generation this rollback arms (`cutover.iterate`), if any.
    again: Option<Names>,
    /// Whether blue has triggers parked for the window, as the pre-checks read it; `None` when they
    /// did not run (a rollback completed after a crash).
    parked: Option<bool>,
}

impl<S: SourceSide, T: TargetSide, C: Convert> ComposedRollback<S, T, C> {
    /// Connects nothing yet: each side's session is opened at its first step. With `again`, the
    /// generation it arms.
    pub(crate) fn new(config: &Config, again: Option<Names>) -> Self {
        ComposedRollback { config: config.clone(), blue: None, green: None, convert: C::from_config(config), schemas: Vec::new(), again, parked: None }
    }

    async fn green(&mut self) -> Result<&mut T::Opened, Error> {
        if self.green.is_none() {
            self.green = Some(T::Opened::connect(&self.config).await?);
        }
        self.green.as_mut().ok_or_else(|| Error::Internal("the rollback's session on green is missing".into()))
    }

    /// Blue's selected tables, as its catalog describes them now.
    async fn selected(&self) -> Result<Vec<super::BlueTable>, Error> {
        S::new(&self.config, &Names::none())?.select().await
    }

    async fn blue(&mut self) -> Result<&mut S::Fenced, Error> {
        if self.blue.is_none() {
            self.blue = Some(S::Fenced::connect(&self.config).await?);
        }
        self.blue.as_mut().ok_or_else(|| Error::Internal("the rollback's session on blue is missing".into()))
    }

    /// Moves blue's counters to green's plus `margin`; the line to say and how many moved.
    async fn counters(&mut self, margin: i128, what: &str) -> Result<(String, usize), Error> {
        if self.schemas.is_empty() {
            self.schemas = schemas_of(self.selected().await?.iter().map(|t| &t.name));
        }
        let schemas = self.schemas.clone();
        let green = self.green().await?.counters(&schemas).await?;
        let done = self.blue().await?.counters_ahead(&green, margin).await?;
        let moved = done.iter().filter(|c| c.changed).count();
        Ok((format!("{what}: {moved} of {} AUTO_INCREMENT counters moved on blue", done.len()), moved))
    }
}

impl<S: SourceSide, T: TargetSide, C: Convert> Procedure for ComposedRollback<S, T, C> {
    fn fence_kind(&self) -> crate::config::Fence {
        crate::config::Fence::ReadOnly
    }

    /// Refuses while green has a table the stream back does not carry (one made on green in the
    /// window): a rollback would leave its rows behind.
    async fn preflight(&mut self) -> Result<Vec<String>, Error> {
        // Read here, not inside the pause: the stream back parked them before it first applied.
        self.parked = Some(self.blue().await?.parked().await?);
        let selected = self.selected().await?;
        // A guard dropped in the window let green take what blue cannot: put back, it checks green's rows.
        let green: Vec<super::GreenTable> = selected.iter().filter(|t| !t.heartbeat).map(|t| self.convert.green(t)).collect::<Result<_, _>>()?;
        let missing = self.green().await?.missing_checks(&green).await?;
        if !missing.is_empty() {
            return Err(crate::error::CutoverCheck::GuardMissing { count: missing.len(), what: missing.join("\n") }.into());
        }
        let carried: Vec<turnout_decoders::TableName> = selected.into_iter().map(|t| t.name).collect();
        self.schemas = schemas_of(carried.iter());
        let schemas = self.schemas.clone();
        let left: Vec<String> = self.green().await?.tables(&schemas).await?.into_iter().filter(|t| !carried.contains(t)).map(|t| t.to_string()).collect();
        if !left.is_empty() {
            return Err(crate::error::CutoverCheck::NotCarriedBack { count: left.len(), tables: left.join(", ") }.into());
        }
        Ok(Vec::new())
    }

    async fn check_fence(&mut self) -> Result<(), Error> {
        self.green().await?.check_fence().await
    }

    async fn counters_ahead(&mut self) -> Result<String, Error> {
        Ok(self.counters(COUNTER_MARGIN, &format!("{COUNTER_MARGIN} values ahead of green")).await?.0)
    }

    async fn fence(&mut self, budget: Duration) -> Result<String, Error> {
        self.green().await?.fence(budget).await
    }

    async fn write_sentinel(&mut self, id: &str) -> Result<(), Error> {
        self.green().await?.write_sentinel(id).await
    }

    async fn top_up(&mut self) -> Result<(String, usize), Error> {
        self.counters(0, "checked against green's final values").await
    }

    async fn identify(&mut self) -> (Identity, Identity) {
        let green = match self.green().await {
            Ok(green) => green.identify().await,
            Err(e) => Identity { version: format!("unreadable: {e}"), identity: String::new() },
        };
        let blue = match self.blue().await {
            Ok(blue) => blue.identify().await,
            Err(e) => Identity { version: format!("unreadable: {e}"), identity: String::new() },
        };
        (green, blue)
    }

    async fn findings(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Blue's fence from the cutover, lifted inside the pause just before traffic returns.
    /// Blue's triggers parked for the window created again, then blue's fence lifted: before the
    /// application writes there.
    async fn open_green(&mut self) -> Result<Option<String>, Error> {
        let parked = self.parked;
        let blue = self.blue().await?;
        let restored = if parked == Some(false) { Vec::new() } else { blue.restore_parked().await? };
        let lifted = blue.lift().await?;
        Ok(Some(if restored.is_empty() {
            format!("blue: {lifted}")
        } else {
            format!("blue: created again the {} triggers parked for the window ({}); {lifted}", restored.len(), restored.join(", "))
        }))
    }

    async fn lift_fence(&mut self) -> Result<String, Error> {
        self.green().await?.lift().await
    }

    async fn fenced(&mut self) -> Result<bool, Error> {
        self.green().await?.is_fenced().await
    }

    fn fenced_position(&self) -> Option<Position> {
        self.green.as_ref().and_then(|g| g.committed())
    }

    /// Inside the pause, once blue is proven to hold everything green committed and green is
    /// fenced: nothing of the stream back's follows on blue.
    fn arms_reverse_after_proof(&self) -> bool {
        true
    }

    /// The next generation's start: the end of blue's log now. It is recorded on green when the
    /// generation starts ([`super::Composed::next`]); nothing is made before.
    async fn arm_reverse(&mut self) -> Result<Option<(String, Position)>, Error> {
        let Some(names) = self.again.clone() else { return Ok(None) };
        let started = std::time::Instant::now();
        let position = self.blue().await?.log_end().await?;
        let line = format!(
            "prepared replication blue → green again in {} ms: blue's log from {position}, read once blue held everything green committed \
             (green fenced); generation {} records it on green when it starts",
            started.elapsed().as_millis(),
            names.origin
        );
        Ok(Some((line, position)))
    }
}

/// The schemas of `tables`, each once.
fn schemas_of<'a>(tables: impl Iterator<Item = &'a turnout_decoders::TableName>) -> Vec<String> {
    tables.map(|t| t.schema.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect()
}

/// A composition's procedure in either direction.
#[allow(missing_debug_implementations, clippy::large_enum_variant)]
pub(crate) enum ComposedProcedure<S: SourceSide, T: TargetSide, C> {
    Cutover(ComposedCutover<S, T, C>),
    Rollback(ComposedRollback<S, T, C>),
}

/// Calls `$call` on whichever procedure `$self` holds.
macro_rules! either {
    ($self:expr, $p:ident => $call:expr) => {
        match $self {
            ComposedProcedure::Cutover($p) => $call,
            ComposedProcedure::Rollback($p) => $call,
        }
    };
}

impl<S: SourceSide, T: TargetSide, C: Convert> Procedure for ComposedProcedure<S, T, C> {
    fn fence_kind(&self) -> crate::config::Fence {
        either!(self, p => p.fence_kind())
    }
    async fn preflight(&mut self) -> Result<Vec<String>, Error> {
        either!(self, p => p.preflight().await)
    }
    async fn settle_definitions(&mut self, apply: bool) -> Result<Option<String>, Error> {
        either!(self, p => p.settle_definitions(apply).await)
    }
    async fn definitions_unchanged(&mut self, when: &'static str) -> Result<(), Error> {
        either!(self, p => p.definitions_unchanged(when).await)
    }
    async fn check_fence(&mut self) -> Result<(), Error> {
        either!(self, p => p.check_fence().await)
    }
    async fn counters_ahead(&mut self) -> Result<String, Error> {
        either!(self, p => p.counters_ahead().await)
    }
    async fn fence(&mut self, budget: Duration) -> Result<String, Error> {
        either!(self, p => p.fence(budget).await)
    }
    async fn write_sentinel(&mut self, id: &str) -> Result<(), Error> {
        either!(self, p => p.write_sentinel(id).await)
    }
    async fn top_up(&mut self) -> Result<(String, usize), Error> {
        either!(self, p => p.top_up().await)
    }
    async fn identify(&mut self) -> (Identity, Identity) {
        either!(self, p => p.identify().await)
    }
    async fn findings(&mut self) -> Vec<String> {
        either!(self, p => p.findings().await)
    }
    async fn open_green(&mut self) -> Result<Option<String>, Error> {
        either!(self, p => p.open_green().await)
    }
    async fn lift_fence(&mut self) -> Result<String, Error> {
        either!(self, p => p.lift_fence().await)
    }
    async fn fenced(&mut self) -> Result<bool, Error> {
        either!(self, p => p.fenced().await)
    }
    async fn disarm_reverse(&mut self) -> Result<Option<String>, Error> {
        either!(self, p => p.disarm_reverse().await)
    }
    async fn arm_reverse(&mut self) -> Result<Option<(String, Position)>, Error> {
        either!(self, p => p.arm_reverse().await)
    }
    fn arms_reverse_after_proof(&self) -> bool {
        either!(self, p => p.arms_reverse_after_proof())
    }
    fn fenced_position(&self) -> Option<Position> {
        either!(self, p => p.fenced_position())
    }
    fn type_map(&self) -> Vec<String> {
        either!(self, p => p.type_map())
    }
}
