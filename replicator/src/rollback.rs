//! The rollback window after a cutover: the reverse stream green → blue that the cutover armed before
//! writes were fenced, and what `turnout finish` and `turnout teardown` drop.
//!
//! Guarantees:
//! - No write green accepts is missed: the hand-off position is taken on green before traffic moves,
//!   so every transaction green commits for the application commits after it. PostgreSQL: the
//!   reverse slot's consistent point, where blue's origin starts, before the fence. MariaDB: green's
//!   binlog end and GTID state there, before the fence, recorded as the reverse stream's progress on
//!   blue. Oracle MySQL: the same, read inside the pause once green is proven complete and recorded on
//!   blue when the reverse stream starts.
//! - Nothing goes round in a loop: what turnout's forward apply wrote on green is marked and dropped,
//!   or precedes the hand-off. PostgreSQL: its replication origin (`origin 'none'` on 16+, and by the
//!   Origin message on every version). MariaDB: its own GTID domain, whose transactions the reverse
//!   stream reads and drops. Oracle MySQL: blue is sealed when the hand-off is read, so the forward
//!   apply has nothing left to write after it.
//! - The reverse stream is the forward pipeline with the roles swapped ([`crate::config::reversed`]):
//!   the same exactly-once apply (blue's origin, or blue's progress row, advances in the transaction
//!   that applies), lag, metrics and alerts; its state lives in `state.dir/reverse`.
//! - Blue stays fenced for applications (pgbouncer / haproxy point at green, a read-only fence stays
//!   on blue's database); turnout's own apply session on blue writes regardless.

use crate::config::{reversed, Config, SourceKind};
use crate::cutover::ReverseArm;
use crate::error::Error;
use crate::source::pg::admin::PgAdmin;
use crate::source::Names;
use crate::state::StateStore;
use crate::status::Status;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_postgres::Client;
use turnout_decoders::schema::quote_ident;

/// Replicates green → blue from the hand-off position until `shutdown` turns true (a rollback's
/// switch, `turnout finish`, or the operator's signal). PostgreSQL: drops the forward slot on blue
/// first, as it is never read again and would hold blue's WAL for the whole window.
pub async fn run_reverse(config: &Config, status: &Arc<Status>, forward: &Names, arm: &ReverseArm, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let back = reversed(config);
    let state = StateStore::open(&back.state.dir)?;
    if state.snapshot_done()?.is_none() {
        // Blue equals green at the hand-off position: nothing to copy.
        state.mark_snapshot_done(&arm.position)?;
        state.record_applied(&arm.position)?;
    }
    if config.source_kind() == SourceKind::Pg {
        match turnout_sinks::pg::connect(config.source.url.expose()).await {
            Ok(blue) => match drop_slot_when_free(&blue, &forward.slot).await {
                Ok(()) => tracing::info!(slot = %forward.slot, "dropped the forward slot on blue"),
                Err(e) => tracing::warn!("dropping the forward slot {} on blue failed: {e}; `turnout teardown` drops it", forward.slot),
            },
            Err(e) => tracing::warn!("connecting to blue to drop the forward slot failed: {e}"),
        }
    }
    status.start_reverse();
    tracing::info!(names = %arm.names.origin, from = %arm.position, "replicating green → blue (rollback window)");
    match config.source_kind() {
        SourceKind::Pg => crate::run::replicate(&PgAdmin::reverse(&back, arm.names.clone(), &arm.forward_origin), &back, &state, status, shutdown).await,
        SourceKind::MySql => {
            let admin = crate::source::mysql::MySqlAdmin::reverse(&back, arm.names.clone(), &arm.forward_origin, arm.position.clone())?;
            crate::run::replicate(&admin, &back, &state, status, shutdown).await
        }
    }
}

/// Creates (or brings up to date) the reverse stream's publication on green for the tables `[tables]`
/// selects there — green has blue's schema. Returns how many tables it publishes.
pub async fn publish_on_green(config: &Config, names: &Names) -> Result<usize, Error> {
    use crate::source::pg::{catalog, setup};
    let back = reversed(config);
    let mut green = turnout_decoders::pg::PgConnection::connect(&back.source_options()?, false).await.map_err(Error::Source)?;
    let mut selection = catalog::select_tables(&mut green, &back.table_filter()?).await?;
    setup::refuse_tables_without_identity(&mut selection, back.tables.skip_without_identity)?;
    setup::sync_publication(&mut green, &names.publication, &selection, false).await?;
    green.close().await;
    Ok(selection.tables.len())
}

/// Drops what the reverse stream used, each if it exists — PostgreSQL: its slot and publication on
/// green and its origin on blue; MySQL/MariaDB: its progress record on blue. Returns one line per
/// thing done.
pub async fn drop_reverse(config: &Config, names: &Names) -> Result<Vec<String>, Error> {
    if config.source_kind() == SourceKind::MySql {
        turnout_sinks::mysql::drop_progress(config.source.url.expose(), &names.origin).await.map_err(Error::Sink)?;
        return Ok(vec![format!("deleted the reverse stream's progress record {} on blue (if it existed)", names.origin)]);
    }
    let green = turnout_sinks::pg::connect(config.target.url.expose()).await.map_err(Error::Sink)?;
    drop_slot_when_free(&green, &names.slot).await.map_err(Error::Setup)?;
    green
        .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&names.publication)))
        .await
        .map_err(Error::green(format!("dropping publication {}", names.publication)))?;
    let blue = turnout_sinks::pg::connect(config.source.url.expose()).await.map_err(Error::Sink)?;
    // The reverse apply session may still hold the origin for a moment after it was told to stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match turnout_sinks::pg::drop_origin(&blue, &names.origin).await {
            Ok(()) => break,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(Error::Sink(e)),
        }
    }
    Ok(vec![
        format!("dropped slot {} on green (if it existed)", names.slot),
        format!("dropped publication {} on green (if it existed)", names.publication),
        format!("dropped replication origin {} on blue (if it existed)", names.origin),
    ])
}

/// Drops `slot` if it exists, ending the walsender that still streams it (turnout's own, being
/// stopped) and retrying for up to 10 s while it lets go.
async fn drop_slot_when_free(client: &Client, slot: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ =
            client.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL", &[&slot]).await;
        match client.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", &[&slot]).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("dropping slot {slot}: {e}")),
        }
    }
}
