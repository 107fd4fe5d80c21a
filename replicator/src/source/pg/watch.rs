//! PostgreSQL's side of the watch for writes that are not turnout's ([`crate::watch`]).
//!
//! - **Green, before the cutover**: a slot and a publication of their own on green
//!   (`turnout_<id>_watch`), created once the initial copy is whole (the copy writes without an
//!   origin). Every change turnout's forward apply makes carries its replication origin and is
//!   dropped; what is left is foreign. Dropped when the cutover completes, or when `[watch] green`
//!   is turned off.
//! - **Blue, in the rollback window**: the forward stream's own slot on blue, kept after the cutover
//!   instead of dropped. It stands at the position green proved: everything after it is either the
//!   reverse stream's apply (its origin, dropped) or foreign. Dropped when the window ends.

use super::PgSource;
use crate::config::{reversed, Config};
use crate::error::{Error, WatchRefusal};
use crate::source::contract::marker::WatchStream;
use crate::source::Names;
use crate::status::foreign::Side;
use std::str::FromStr;
use turnout_decoders::{Lsn, Position};

/// The names of green's watch slot and publication.
pub(crate) fn green_names(forward: &Names) -> Names {
    let base = format!("{}_watch", forward.slot);
    Names { publication: base.clone(), slot: base.clone(), origin: base }
}

fn lsn(text: &str, what: &str) -> Result<Lsn, Error> {
    Lsn::from_str(text).map_err(|e| Error::Internal(format!("{what}: '{text}' is not an LSN ({e})")))
}

/// The slot's confirmed position, if the slot exists.
async fn confirmed(client: &tokio_postgres::Client, slot: &str, side: Side) -> Result<Option<Lsn>, Error> {
    let row = client
        .query_opt("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .map_err(Error::sql(side, format!("reading slot {slot}")))?;
    match row.and_then(|r| r.get::<_, Option<String>>(0)) {
        Some(text) => Ok(Some(lsn(&text, "the slot's confirmed_flush_lsn")?)),
        None => Ok(None),
    }
}

/// The stream of `side`'s log without turnout's own changes, the position it starts after, and — when
/// green's watch slot had to be made again although the watch had read before (dropped by someone,
/// or lost in a failover) — what was not read.
pub(crate) async fn stream(config: &Config, forward: &Names, side: Side, from: Option<&Position>) -> Result<WatchStream<PgSource>, Error> {
    let (watched, names, own_origin) = match side {
        Side::Green => {
            let names = green_names(forward);
            super::reverse::publish_on_green(config, &names).await?;
            (reversed(config), names, forward.origin.clone())
        }
        Side::Blue => (config.clone(), forward.clone(), Names::reverse_of(forward).origin),
    };
    let client = crate::source::pg::session(watched.source.url.expose(), watched.source_side()).await?;
    let mut gap = None;
    let start = match (confirmed(&client, &names.slot, side).await?, side) {
        (Some(at), _) => at,
        (None, Side::Green) => {
            let row = client
                .query_one("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", &[&names.slot])
                .await
                .map_err(|e| WatchRefusal::NoSlot { slot: names.slot.clone(), cause: turnout_sinks::pg::describe_error(&e) })?;
            let at = lsn(&row.get::<_, String>(0), "the new slot's position")?;
            if let Some(read) = from {
                gap = Some(format!("the watch slot {} was gone and was made again: green's log from {read} to {at} was not read", names.slot));
            }
            at
        }
        (None, Side::Blue) => return Err(WatchRefusal::ForwardSlotGone { slot: names.slot.clone() }.into()),
    };
    let from = from.and_then(Position::lsn).map_or(start, |f| f.max(start));
    let source = PgSource::watching(&watched.source_options()?, &names.slot, &names.publication, from, config.receive_timeout(), &own_origin).await?;
    Ok(WatchStream { stream: source, from: Position::Pg(from), unread: gap })
}

/// A session on a watched side that commits marks: transactional logical messages.
pub(crate) struct PgMarker {
    client: tokio_postgres::Client,
    side: Side,
}

impl PgMarker {
    pub(crate) async fn open(config: &Config, side: Side) -> Result<PgMarker, Error> {
        let url = match side {
            Side::Green => config.target.url.expose(),
            Side::Blue => config.source.url.expose(),
        };
        let client = super::session(url, side).await?;
        // A read-only fence left on the database does not stop the mark.
        client.batch_execute("SET default_transaction_read_only = off").await.map_err(Error::sql(side, "preparing the watch's mark"))?;
        Ok(PgMarker { client, side })
    }
}

impl crate::source::contract::marker::Marker for PgMarker {
    fn mark(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Position, Error>> + Send + '_>> {
        Box::pin(async move {
            let row = self
                .client
                .query_one("SELECT pg_logical_emit_message(true, 'turnout.watch', now()::text)::text", &[])
                .await
                .map_err(Error::sql(self.side, "writing the watch's mark"))?;
            Ok(Position::Pg(lsn(&row.get::<_, String>(0), "the mark's position")?))
        })
    }
}

/// Drops what the watch of `side` holds, if it exists: green's watch slot and publication, or the
/// forward slot on blue. Best effort (`turnout teardown` drops them too).
pub(crate) async fn drop(config: &Config, forward: &Names, side: Side) {
    match side {
        Side::Blue => super::reverse::drop_forward_slot(config, forward).await,
        Side::Green => {
            let names = green_names(forward);
            match super::reverse::drop_slot_and_publication(config.target.url.expose(), &names).await {
                Ok(()) => tracing::info!(slot = %names.slot, "dropped the watch slot and publication on green (if they existed)"),
                Err(e) => tracing::warn!("dropping the watch slot {} on green failed: {e}; `turnout teardown` drops it", names.slot),
            }
        }
    }
}
