//! [`Crossing`]: the [`Family`] of a composition of a source side and a target side of different
//! engines: the stream, the cutover, the stream back, the rollback, the live (both ways), and the stream again after a rollback (`cutover.iterate`). What a composition
//! cannot do yet — the chunked copy, the watch for foreign writes, the read canary, handing consumers
//! over — is refused before anything changes, naming it; [`Unbuilt`] is the one type that refuses
//! each.

use super::live::{ComposedLive, LiveBlue, LiveGreen};
use super::{Composed, Convert, SourceSide, TargetSide};
use crate::config::Config;
use crate::error::{Error, SchemaRefusal, Side as ErrorSide};
use crate::journal::ReverseArm;
use crate::source::contract::compare::{Backend, HoldDriver, Key, Range, Rows, Shape, Snapshots, Sum};
use crate::source::contract::marker::{Marker, WatchStream};
use crate::source::contract::procedure::{Identity, Procedure};
use crate::source::family::Family;
use crate::source::Names;
use crate::status::foreign::Side;
use std::marker::PhantomData;
use std::time::Duration;
use turnout_decoders::schema::TableName;
use turnout_decoders::Position;

/// The refusal of `what` for the composition of `S` and `T`.
pub(crate) fn unbuilt<S: SourceSide, T: TargetSide>(what: &'static str) -> Error {
    Unbuilt::of::<S, T>(what).error()
}

/// Blue's side `S`, green's side `T`, the conversion `C`.
#[allow(missing_debug_implementations)]
pub(crate) struct Crossing<S, T, C>(PhantomData<Sides<S, T, C>>);

/// The three parts, as a type only (never built).
type Sides<S, T, C> = fn() -> (S, T, C);

impl<S: LiveBlue, T: LiveGreen, C: Convert> Family for Crossing<S, T, C> {
    type Admin = Composed<S, T, C>;
    type Cutover = super::rollback::ComposedProcedure<S, T, C>;
    type Back = super::back::Back<S, T, C>;
    type Live = ComposedLive<S, T, C>;
    type Green = Unbuilt;

    /// The sides check their own URLs when they are made; here, what a composition refuses up front.
    fn validate(config: &Config) -> Result<(), Error> {
        if !config.handover.is_empty() {
            return Err(Error::config(
                "handover",
                format!("hands consumers over within one engine; {} → {} has none to hand over: remove [[handover]]", S::ENGINE, T::ENGINE),
            ));
        }
        Ok(())
    }

    /// Blue's names (a MySQL database is green's schema of the same name).
    fn name_rules(config: &Config) -> Result<crate::tables::NameRules, Error> {
        S::name_rules(config)
    }

    fn admin(config: &Config, names: Names) -> Result<Self::Admin, Error> {
        Composed::new(config, names)
    }

    fn back_admin(back: &Config, arm: &ReverseArm) -> Result<Self::Back, Error> {
        super::back::Back::new(back, arm)
    }

    /// The stream again from the hand-off a rollback read on blue ([`Composed::next`]).
    fn reverse_admin(config: &Config, arm: &ReverseArm) -> Result<Self::Admin, Error> {
        Composed::next(config, arm)
    }

    async fn cutover(config: &Config, forward: &Names, reverse: bool) -> Result<Self::Cutover, Error> {
        Ok(super::rollback::ComposedProcedure::Cutover(super::cutover::ComposedCutover::connect(config, forward, reverse).await?))
    }

    /// Green fenced, proven by the stream back, blue's counters moved past green's, traffic moved
    /// back by `cutover.command.back_argv`; with `again`, the next generation armed at the end of
    /// blue's log inside the pause.
    async fn rollback(config: &Config, forward: &Names, again: bool) -> Result<Self::Cutover, Error> {
        let again = again.then(|| forward.next_generation());
        Ok(super::rollback::ComposedProcedure::Rollback(super::rollback::ComposedRollback::new(config, again)))
    }

    const ITERATES: bool = true;

    /// The stream back's slot and publication on green and its progress record on blue: the next
    /// generation drops the stream back's writes by their marks, not by these.
    async fn release_reverse(config: &Config, names: &Names) -> Vec<String> {
        match Self::drop_reverse(config, names).await {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!("releasing the stream back {} failed: {e}; it is tried again at the next start, and `turnout teardown` drops it", names.slot);
                Vec::new()
            }
        }
    }

    /// Blue and green compared at one position of the source's log ([`super::live`]): blue's, or
    /// in the rollback window (`config` swapped: green's engine is the source) green's.
    fn live(config: &Config) -> Result<ComposedLive<S, T, C>, Error> {
        if config.source_kind() == S::KIND {
            ComposedLive::new(config)
        } else {
            ComposedLive::back(config)
        }
    }

    async fn before_reverse(_config: &Config, _forward: &Names) {}

    /// The stream back's slot and publication on green, its progress record on blue.
    async fn drop_reverse(config: &Config, names: &Names) -> Result<Vec<String>, Error> {
        let mut done = T::new(config, names)?.drop_back(names).await?;
        done.extend(S::new(config, names)?.drop_back(&names.origin).await?);
        Ok(done)
    }

    fn watches(_side: Side) -> bool {
        false
    }

    async fn watch_unavailable(_config: &Config, side: Side) -> Result<Option<String>, Error> {
        Ok(Some(format!("the watch of {side} from {} to {} is not built yet", S::ENGINE, T::ENGINE)))
    }

    async fn watch_stream(
        _config: &Config,
        _forward: &Names,
        _side: Side,
        _from: Option<&Position>,
    ) -> Result<WatchStream<<Self::Admin as crate::source::SourceAdmin>::Stream>, Error> {
        Err(unbuilt::<S, T>("the watch for foreign writes"))
    }

    async fn watch_marker(_config: &Config, _side: Side) -> Result<Box<dyn Marker>, Error> {
        Err(unbuilt::<S, T>("the watch for foreign writes"))
    }

    fn canary_green(_config: &Config) -> Result<Unbuilt, Error> {
        Err(unbuilt::<S, T>("the read canary"))
    }

    async fn drop_watch(_config: &Config, _forward: &Names, _side: Side) {}
}

/// What a composition cannot do yet, as each contract's type: every step refuses naming it, before
/// anything changes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unbuilt {
    what: &'static str,
    from: &'static str,
    to: &'static str,
}

impl Unbuilt {
    pub(crate) fn of<S: SourceSide, T: TargetSide>(what: &'static str) -> Unbuilt {
        Unbuilt { what, from: S::ENGINE, to: T::ENGINE }
    }

    fn error(self) -> Error {
        SchemaRefusal::NotBuilt { what: self.what, from: self.from, to: self.to, fix: "replicate within one engine for now" }.into()
    }

    fn refuse<T>(&self) -> Result<T, Error> {
        Err(self.error())
    }
}

impl Procedure for Unbuilt {
    fn fence_kind(&self) -> crate::config::Fence {
        crate::config::Fence::None
    }
    async fn preflight(&mut self) -> Result<Vec<String>, Error> {
        self.refuse()
    }
    async fn check_fence(&mut self) -> Result<(), Error> {
        self.refuse()
    }
    async fn counters_ahead(&mut self) -> Result<String, Error> {
        self.refuse()
    }
    async fn fence(&mut self, _budget: Duration) -> Result<String, Error> {
        self.refuse()
    }
    async fn write_sentinel(&mut self, _id: &str) -> Result<(), Error> {
        self.refuse()
    }
    async fn top_up(&mut self) -> Result<(String, usize), Error> {
        self.refuse()
    }
    async fn identify(&mut self) -> (Identity, Identity) {
        (Identity::default(), Identity::default())
    }
    async fn findings(&mut self) -> Vec<String> {
        Vec::new()
    }
    async fn open_green(&mut self) -> Result<Option<String>, Error> {
        Ok(None)
    }
    async fn lift_fence(&mut self) -> Result<String, Error> {
        Ok("nothing was fenced".into())
    }
    async fn fenced(&mut self) -> Result<bool, Error> {
        Ok(false)
    }
}

impl Backend for Unbuilt {
    type Session = ();
    async fn tables(&self, _only: Option<&str>) -> Result<Vec<TableName>, Error> {
        self.refuse()
    }
    fn source(&self) -> Result<String, Error> {
        self.refuse()
    }
    async fn estimate_rows(&self, _tables: &[TableName]) -> Option<u64> {
        None
    }
    async fn take<H: HoldDriver>(&self, _hold: &H, _workers: usize, _slot_timeout: Duration) -> Result<Snapshots<()>, Error> {
        self.refuse()
    }
    async fn shapes(&self, _blue: &(), _tables: &[TableName]) -> Result<Vec<Shape>, Error> {
        self.refuse()
    }
    async fn boundary(&self, _shape: &Shape, _session: &(), _range: &Range, _n: i64, _side: ErrorSide) -> Result<Option<Key>, Error> {
        self.refuse()
    }
    async fn sum(&self, _shape: &Shape, _session: &(), _range: &Range, _side: ErrorSide) -> Result<Sum, Error> {
        self.refuse()
    }
    async fn rows(&self, _shape: &Shape, _session: &(), _range: &Range, _side: ErrorSide) -> Result<Rows, Error> {
        self.refuse()
    }
    async fn target_only_columns(&self, _tables: &[TableName]) -> Result<Vec<(TableName, Vec<String>)>, Error> {
        self.refuse()
    }
}

impl crate::source::contract::canary::GreenReads for Unbuilt {
    async fn probe_once(&mut self, _sql: &str) -> Result<(), Error> {
        self.refuse()
    }
    fn drop_probe(&mut self) {}
    async fn failures(&mut self) -> Option<u64> {
        None
    }
    async fn fence(&mut self) -> Result<Option<String>, Error> {
        self.refuse()
    }
    async fn unfence(&mut self) -> Result<String, Error> {
        self.refuse()
    }
}

impl crate::copy::Copier for Unbuilt {
    type Round = ();
    async fn open(&self) -> Result<((), Position), Error> {
        self.refuse()
    }
    async fn nudge(&self) -> Result<(), Error> {
        self.refuse()
    }
    async fn copy(&self, _round: (), _chunks: Vec<crate::copy::Chunk>, _progress: &crate::copy::Progress) -> Result<(), Error> {
        self.refuse()
    }
    async fn clear(&self, _chunks: &[crate::copy::Chunk]) -> Result<(), Error> {
        self.refuse()
    }
}
