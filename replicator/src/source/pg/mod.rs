//! PostgreSQL as a source: the logical-replication stream ([`stream`]), and its administration —
//! catalog and table selection, publication/slot set-up and schema copy, the consistent snapshot,
//! heartbeats, the preflight check and verify digests.

pub mod admin;
pub(crate) mod canary;
pub mod catalog;
pub mod check;
pub mod chunks;
pub mod cutover;
pub(crate) mod definitions;
pub mod drift;
pub mod heartbeat;
pub mod inventory;
pub mod live;
pub(crate) mod opened;
pub mod origin_filter;
pub(crate) mod rehearsal;
pub mod reverse;
pub mod setup;
pub(crate) mod slot_wait;
pub mod snapshot;
pub mod stream;
pub(crate) mod target;
pub(crate) mod target_live;
pub mod truncate;
pub mod verify;
pub(crate) mod watch;

pub use stream::PgSource;

/// A tokio-postgres session to the server at `url`, which is `side`'s, with turnout's session
/// settings ([`turnout_sinks::pg::SESSION_SETTINGS`]); a failure is that side's, with its SQLSTATE
/// and retry class, and an unusable URL names its key.
pub(crate) async fn session(url: &str, side: crate::error::Side) -> Result<tokio_postgres::Client, Error> {
    turnout_sinks::pg::connect(url).await.map_err(|e| session_error(e, side))
}

/// As [`session`], from parsed options (e.g. to another database of the same server).
pub(crate) async fn session_with(options: &turnout_connect::pg::ConnectOptions, side: crate::error::Side) -> Result<tokio_postgres::Client, Error> {
    turnout_sinks::pg::connect_with(options).await.map_err(|e| session_error(e, side))
}

fn session_error(e: turnout_sinks::SinkError, side: crate::error::Side) -> Error {
    use turnout_sinks::SinkError;
    match e {
        SinkError::Target { context, source } => Error::Sql { side, context, source },
        SinkError::Config(reason) => Error::config(if side == crate::error::Side::Blue { "source.url" } else { "target.url" }, reason),
        other => Error::Sink(other),
    }
}

use crate::config::Config;
use crate::error::Error;
use crate::journal::ReverseArm;
use crate::source::family::Family;
use crate::source::Names;
use crate::status::foreign::Side;
use turnout_decoders::Position;

/// PostgreSQL's [`Family`]: logical replication with pgoutput, the pgbouncer or read-only fence with
/// a logical-message sentinel, and a reverse stream from a slot on green.
#[allow(missing_debug_implementations)]
pub struct Pg;

impl Family for Pg {
    type Admin = admin::PgAdmin;
    type Cutover = cutover::PgCutover;
    type Live = live::PgLive;
    type Green = canary::PgGreen;

    fn validate(config: &Config) -> Result<(), Error> {
        config.source_options()?;
        config.target_options()?;
        Ok(())
    }

    /// Folded to lower case unless quoted; `public` when no schema is given.
    fn name_rules(_config: &Config) -> Result<crate::tables::NameRules, Error> {
        Ok(crate::tables::NameRules::postgres())
    }

    fn admin(config: &Config, names: Names) -> Result<admin::PgAdmin, Error> {
        Ok(admin::PgAdmin::new(config, names))
    }

    type Back = admin::PgAdmin;

    fn back_admin(back: &Config, arm: &ReverseArm) -> Result<admin::PgAdmin, Error> {
        Self::reverse_admin(back, arm)
    }

    fn reverse_admin(back: &Config, arm: &ReverseArm) -> Result<admin::PgAdmin, Error> {
        Ok(admin::PgAdmin::reverse(back, arm.names.clone(), &arm.forward_origin))
    }

    async fn cutover(config: &Config, forward: &Names, reverse: bool) -> Result<cutover::PgCutover, Error> {
        cutover::PgCutover::connect(config, reverse.then(|| Names::reverse_of(forward))).await
    }

    async fn rollback(config: &Config, forward: &Names, again: bool) -> Result<cutover::PgCutover, Error> {
        cutover::PgCutover::connect_back(config, again.then(|| forward.next_generation())).await
    }

    const ITERATES: bool = true;

    async fn release_reverse(config: &Config, names: &Names) -> Vec<String> {
        match reverse::drop_slot_and_publication(config.target.url.expose(), names).await {
            Ok(()) => vec![format!("dropped the reverse stream's slot and publication {} on green", names.slot)],
            Err(e) => {
                tracing::warn!("dropping the reverse stream's slot and publication {} on green failed: {e}; `turnout teardown` drops them", names.slot);
                Vec::new()
            }
        }
    }

    fn live(config: &Config) -> Result<live::PgLive, Error> {
        Ok(live::PgLive { config: config.clone() })
    }

    /// Keeps the forward slot when blue is watched in the window ([`watch`]).
    async fn before_reverse(config: &Config, forward: &Names) {
        if !config.watch.blue {
            reverse::drop_forward_slot(config, forward).await;
        }
    }

    async fn drop_reverse(config: &Config, names: &Names) -> Result<Vec<String>, Error> {
        reverse::drop_reverse(config, names).await
    }

    fn watches(_side: crate::status::foreign::Side) -> bool {
        true
    }

    /// Every PostgreSQL server can be watched.
    async fn watch_unavailable(_config: &Config, _side: Side) -> Result<Option<String>, Error> {
        Ok(None)
    }

    async fn watch_stream(
        config: &Config,
        forward: &Names,
        side: Side,
        from: Option<&Position>,
    ) -> Result<crate::source::contract::marker::WatchStream<PgSource>, Error> {
        watch::stream(config, forward, side, from).await
    }

    async fn watch_marker(config: &Config, side: Side) -> Result<Box<dyn crate::source::contract::marker::Marker>, Error> {
        Ok(Box::new(watch::PgMarker::open(config, side).await?))
    }

    fn canary_green(config: &Config) -> Result<canary::PgGreen, Error> {
        canary::PgGreen::new(config)
    }

    async fn drop_watch(config: &Config, forward: &Names, side: Side) {
        watch::drop(config, forward, side).await
    }
}
