//! The one seam between turnout's generic layer — `run`, the cutover and rollback, live verify,
//! `check`, `verify`, `teardown` — and a source family. A family implements [`Family`] once, in its
//! own module tree under `source/` ([`super::pg::Pg`], [`super::mysql::MySql`]); [`crate::with_family!`] is
//! the only place that picks one, from [`crate::config::SourceKind`].
//!
//! Adding a source family therefore means: a module tree under `source/` implementing [`Family`]
//! (with its [`SourceAdmin`], cutover [`Procedure`] and live-verify [`Backend`]), a `SourceKind`
//! variant recognising its URL scheme in `config.rs`, and one arm in [`crate::with_family!`].

use super::{Names, SourceAdmin};
use crate::config::Config;
use crate::error::Error;
use crate::journal::ReverseArm;
use crate::source::contract::canary::GreenReads;
use crate::source::contract::compare::Backend;
use crate::source::contract::marker::WatchStream;
use crate::source::contract::procedure::Procedure;
use crate::status::foreign::Side;
use crate::tables::NameRules;
use futures_util::future::BoxFuture;
use std::future::Future;
use turnout_decoders::schema::TableName;
use turnout_decoders::Position;

/// Everything turnout does that differs per source family.
pub(crate) trait Family: 'static {
    /// The stream's administration (set-up, snapshot, heartbeat, check, verify, teardown) and the
    /// change stream it opens.
    type Admin: SourceAdmin;
    /// The source's side of a cutover and of a rollback.
    type Cutover: Procedure;
    /// Blue's and green's sessions for `verify --live`.
    type Live: Backend + Send;
    /// Green as a read canary sees it.
    type Green: GreenReads + 'static;

    /// Checks the family's own settings: both URLs, and the fence and switch it can work with. The
    /// error names the field and the fix.
    fn validate(config: &Config) -> Result<(), Error>;

    /// How `[tables]` patterns name this family's tables.
    fn name_rules(config: &Config) -> Result<NameRules, Error>;

    /// The forward stream named `names` (`Names::none()` for commands that create nothing).
    fn admin(config: &Config, names: Names) -> Result<Self::Admin, Error>;

    /// The stream of the rollback window (green → blue): the family's own administration where one
    /// engine is on both sides, another where green's engine differs from blue's.
    type Back: SourceAdmin;

    /// The reverse stream of the rollback window: `back` is the configuration with blue and green
    /// swapped; it starts at the hand-off position `arm` records and never passes on what the
    /// forward stream wrote.
    fn back_admin(back: &Config, arm: &ReverseArm) -> Result<Self::Back, Error>;

    /// The forward stream again after a rollback that armed it (`cutover.iterate`, where
    /// [`Family::ITERATES`]): `config` unswapped, from the hand-off position `arm` records, never
    /// passing on what the reverse stream wrote.
    fn reverse_admin(config: &Config, arm: &ReverseArm) -> Result<Self::Admin, Error>;

    /// The cutover of the forward stream `forward`, arming the reverse stream when `reverse`.
    fn cutover(config: &Config, forward: &Names, reverse: bool) -> impl Future<Output = Result<Self::Cutover, Error>> + Send;

    /// The rollback of the generation `forward`: the same procedure with the roles swapped (green
    /// fenced, blue receiving traffic), arming blue → green replication again as the next generation
    /// ([`Names::next_generation`]) when `again` (only when [`Family::ITERATES`]): what
    /// [`Procedure::arm_reverse`] returns is then the hand-off position on blue, after which the
    /// reverse stream's writes on blue are dropped.
    fn rollback(config: &Config, forward: &Names, again: bool) -> impl Future<Output = Result<Self::Cutover, Error>> + Send;

    /// Whether a rollback can arm blue → green replication again (`cutover.iterate`), so that a later
    /// cutover needs no new copy. The stream then runs on as [`Family::reverse_admin`] of the
    /// rollback's arm, with `config` unswapped.
    const ITERATES: bool;

    /// After a rollback that armed replication again: releases what the reverse stream `names` holds
    /// on green (PostgreSQL: its slot and publication), keeping what the next stream still needs to
    /// recognise the reverse stream's writes on blue (its origin). Best effort; one line per thing
    /// done.
    fn release_reverse(config: &Config, names: &Names) -> impl Future<Output = Vec<String>> + Send;

    /// `verify --live`'s backend for `config` (already swapped in the rollback window).
    fn live(config: &Config) -> Result<Self::Live, Error>;

    /// Before the reverse stream starts: releases what the forward stream holds on blue and will never
    /// read again (PostgreSQL: the forward slot). Best effort; failures are logged.
    fn before_reverse(config: &Config, forward: &Names) -> impl Future<Output = ()> + Send;

    /// Drops what the reverse stream `names` used, each if it exists; one line per thing done.
    fn drop_reverse(config: &Config, names: &Names) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Whether this family can watch `side` for writes that are not turnout's ([`crate::watch`]); a
    /// server of the family that cannot after all says so through [`Family::watch_unavailable`].
    fn watches(side: crate::status::foreign::Side) -> bool;

    /// Why `side`'s server cannot be watched at all (the watch is not built for it), if so: the watch
    /// is then shown `unavailable` with this reason and stops; the side counts as not watched (and a
    /// watch of green that was asked for refuses the cutover).
    fn watch_unavailable(config: &Config, side: Side) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// The watch of `side`: a stream of that side's log that drops every change turnout made there,
    /// starting after `from` (what the watch already read) or where the watch begins, that position,
    /// and what of the log could not be read since `from` (it is counted as a foreign write). Only
    /// called when [`Family::watches`].
    fn watch_stream(
        config: &Config,
        forward: &Names,
        side: Side,
        from: Option<&Position>,
    ) -> impl Future<Output = Result<WatchStream<<Self::Admin as SourceAdmin>::Stream>, Error>> + Send;

    /// A session on `side` that writes marks for the watch ([`crate::source::contract::marker::Marker`]).
    fn watch_marker(config: &Config, side: Side) -> impl Future<Output = Result<Box<dyn crate::source::contract::marker::Marker>, Error>> + Send;

    /// Green for the read canary ([`crate::canary`]): sessions opened on first use.
    fn canary_green(config: &Config) -> Result<Self::Green, Error>;

    /// Drops what the watch of `side` holds on the servers, if anything. Best effort.
    fn drop_watch(config: &Config, forward: &Names, side: Side) -> impl Future<Output = ()> + Send;
}

/// What a family does that needs none of its types — the watch, the rollback window's objects, the
/// verify gate's view, the canary's fence — as one object: [`of`] picks it from the configuration once, and a command or
/// a long-lived task (the cutover controller, the watch) calls it without picking again. Each
/// method is [`Family`]'s of the same name.
pub(crate) trait Operations: Send + Sync {
    /// [`Family::ITERATES`].
    fn iterates(&self) -> bool;
    /// [`Family::watches`].
    fn watches(&self, side: Side) -> bool;
    /// [`Family::watch_marker`].
    fn watch_marker<'a>(&self, config: &'a Config, side: Side) -> BoxFuture<'a, Result<Box<dyn crate::source::contract::marker::Marker>, Error>>;
    /// [`Family::drop_watch`].
    fn drop_watch<'a>(&self, config: &'a Config, forward: &'a Names, side: Side) -> BoxFuture<'a, ()>;
    /// [`Family::release_reverse`].
    fn release_reverse<'a>(&self, config: &'a Config, names: &'a Names) -> BoxFuture<'a, Vec<String>>;
    /// [`Family::before_reverse`].
    fn before_reverse<'a>(&self, config: &'a Config, forward: &'a Names) -> BoxFuture<'a, ()>;
    /// [`Family::drop_reverse`].
    fn drop_reverse<'a>(&self, config: &'a Config, names: &'a Names) -> BoxFuture<'a, Result<Vec<String>, Error>>;
    /// The stream's source as `verify --live` names it, and the tables it replicates now (the verify
    /// gate's view, through [`Family::live`]); each failure names what the gate was doing.
    fn replicated<'a>(&self, config: &'a Config) -> BoxFuture<'a, Result<(String, Vec<TableName>), Error>>;
    /// Lifts the read canary's fence on green ([`Family::canary_green`], [`GreenReads::unfence`]).
    fn unfence_green<'a>(&self, config: &'a Config) -> BoxFuture<'a, Result<String, Error>>;
}

/// [`Family`] `F` as [`Operations`].
struct Of<F>(std::marker::PhantomData<fn() -> F>);

impl<F: Family> Operations for Of<F> {
    fn iterates(&self) -> bool {
        F::ITERATES
    }
    fn watches(&self, side: Side) -> bool {
        F::watches(side)
    }
    fn watch_marker<'a>(&self, config: &'a Config, side: Side) -> BoxFuture<'a, Result<Box<dyn crate::source::contract::marker::Marker>, Error>> {
        Box::pin(F::watch_marker(config, side))
    }
    fn drop_watch<'a>(&self, config: &'a Config, forward: &'a Names, side: Side) -> BoxFuture<'a, ()> {
        Box::pin(F::drop_watch(config, forward, side))
    }
    fn release_reverse<'a>(&self, config: &'a Config, names: &'a Names) -> BoxFuture<'a, Vec<String>> {
        Box::pin(F::release_reverse(config, names))
    }
    fn before_reverse<'a>(&self, config: &'a Config, forward: &'a Names) -> BoxFuture<'a, ()> {
        Box::pin(F::before_reverse(config, forward))
    }
    fn drop_reverse<'a>(&self, config: &'a Config, names: &'a Names) -> BoxFuture<'a, Result<Vec<String>, Error>> {
        Box::pin(F::drop_reverse(config, names))
    }
    fn replicated<'a>(&self, config: &'a Config) -> BoxFuture<'a, Result<(String, Vec<TableName>), Error>> {
        Box::pin(async move {
            let backend = F::live(config).map_err(Error::during("the verify gate reaching this stream's source"))?;
            let source = Backend::source(&backend).map_err(Error::during("the verify gate naming this stream's source"))?;
            let tables = backend.tables(None).await.map_err(Error::during("the verify gate listing the replicated tables"))?;
            Ok((source, tables))
        })
    }
    fn unfence_green<'a>(&self, config: &'a Config) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move { F::canary_green(config)?.unfence().await })
    }
}

/// The [`Operations`] of `config`'s source family.
pub(crate) fn of(config: &Config) -> &'static dyn Operations {
    crate::with_family!(config, F => &Of::<F>(std::marker::PhantomData))
}

/// Runs `$body` with the type `$F` bound to the [`Family`] of `$config`'s source and target — the
/// one place that dispatches on the engines (a MySQL/MariaDB blue with a PostgreSQL green is the
/// composition [`crate::source::compose::family::Crossing`] of the two sides):
/// `with_family!(config, F => F::admin(config, names)?.teardown().await)`.
#[macro_export]
macro_rules! with_family {
    ($config:expr, $F:ident => $body:expr) => {
        match ($config.source_kind(), $config.target_kind()) {
            ($crate::config::SourceKind::MySql, $crate::config::SourceKind::Pg) => {
                #[allow(unused_imports)]
                use $crate::source::family::Family as _;
                type $F = $crate::source::compose::family::Crossing<
                    $crate::source::mysql::side::MySqlBlue,
                    $crate::source::pg::target::PgTarget,
                    $crate::source::compose::mysql_to_pg::MySqlToPg,
                >;
                $body
            }
            ($crate::config::SourceKind::Pg, _) => {
                #[allow(unused_imports)]
                use $crate::source::family::Family as _;
                type $F = $crate::source::pg::Pg;
                $body
            }
            ($crate::config::SourceKind::MySql, _) => {
                #[allow(unused_imports)]
                use $crate::source::family::Family as _;
                type $F = $crate::source::mysql::MySql;
                $body
            }
            #[cfg(test)]
            ($crate::config::SourceKind::Stub, _) => {
                #[allow(unused_imports)]
                use $crate::source::family::Family as _;
                type $F = $crate::source::stub::Stub;
                $body
            }
        }
    };
}
