//! PostgreSQL's side of the rollback window: the reverse stream's publication on green, and what the
//! forward and reverse streams leave behind (slots, publication, origin) dropped when the window ends.

use crate::config::{reversed, Config};
use crate::error::{Error, Side};
use crate::source::Names;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use turnout_decoders::schema::quote_ident;

/// Creates (or brings up to date) the publication of the stream a switch arms, on the side traffic
/// moves to (`config`'s target: green for a cutover's reverse stream; blue, with `config` swapped, for
/// the next generation a rollback arms), for the tables `[tables]` selects there — both sides have
/// the same schema. Returns how many tables it publishes.
pub(crate) async fn publish_on_green(config: &Config, names: &Names) -> Result<usize, Error> {
    use crate::source::pg::{catalog, setup};
    let back = reversed(config);
    let mut green = turnout_connect::pg::PgConnection::connect(&back.source_options()?, false).await.map_err(Error::Source)?;
    // The side may stand behind the last switch's read-only fence (blue in the rollback window, when
    // a rollback arms the next generation): turnout's own session writes regardless.
    green.simple_query("SET default_transaction_read_only = off").await.map_err(Error::Source)?;
    let mut selection = catalog::select_tables(&mut green, &back.table_filter()?).await?;
    setup::refuse_tables_without_identity(&mut selection, back.tables.skip_without_identity)?;
    setup::sync_publication(&mut green, &names.publication, &selection, false).await?;
    green.close().await;
    Ok(selection.tables.len())
}

/// Drops the forward stream's slot on blue, never read again once the reverse stream runs: it would
/// hold blue's WAL for the whole rollback window. Best effort (`turnout teardown` drops it too).
pub(crate) async fn drop_forward_slot(config: &Config, forward: &Names) {
    match super::session(config.source.url.expose(), Side::Blue).await {
        Ok(blue) => match drop_slot_when_free(&blue, Side::Blue, &forward.slot, true).await {
            Ok(()) => tracing::info!(slot = %forward.slot, "dropped the forward slot on blue"),
            Err(e) => tracing::warn!("dropping the forward slot {} on blue failed: {e}; `turnout teardown` drops it", forward.slot),
        },
        Err(e) => tracing::warn!("connecting to blue to drop the forward slot failed: {e}"),
    }
}

/// Drops the slot and the publication `names` gives on the server at `url`, each if it exists.
pub(crate) async fn drop_slot_and_publication(url: &str, names: &Names) -> Result<(), Error> {
    let green = super::session(url, Side::Green).await?;
    drop_slot_when_free(&green, Side::Green, &names.slot, true).await?;
    green
        .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&names.publication)))
        .await
        .map_err(Error::green(format!("dropping publication {}", names.publication)))
}

/// Drops what the reverse stream used, each if it exists: its slot and publication on green and its
/// origin on blue. Returns one line per thing done.
pub(crate) async fn drop_reverse(config: &Config, names: &Names) -> Result<Vec<String>, Error> {
    drop_slot_and_publication(config.target.url.expose(), names).await?;
    let blue = crate::source::pg::session(config.source.url.expose(), config.source_side()).await?;
    drop_origin_when_free(&blue, &names.origin).await?;
    Ok(vec![
        format!("dropped slot {} on green (if it existed)", names.slot),
        format!("dropped publication {} on green (if it existed)", names.publication),
        format!("dropped replication origin {} on blue (if it existed)", names.origin),
    ])
}

/// Drops `origin` if it exists, retrying for up to 10 s while an apply session of turnout's that
/// was told to stop (or whose process ended) still holds it.
pub(crate) async fn drop_origin_when_free(client: &Client, origin: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match turnout_sinks::pg::drop_origin(client, origin).await {
            Ok(()) => return Ok(()),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(Error::Sink(e)),
        }
    }
}

/// Drops `slot` if it exists, retrying for up to 10 s while the walsender that streamed it lets go.
/// With `end_walsender`, that walsender (turnout's own, being stopped) is ended first; without, a
/// slot still streamed after 10 s (by a turnout running elsewhere) is refused, naming it.
pub(crate) async fn drop_slot_when_free(client: &Client, side: Side, slot: &str, end_walsender: bool) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if end_walsender {
            let sql = "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL";
            let _ = client.execute(sql, &[&slot]).await;
        }
        match client.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", &[&slot]).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) => {
                // Still streamed after 10 s: a refusal, with the server's words (which session holds it).
                let fix = if end_walsender { "" } else { "; stop what still streams it (a turnout running elsewhere?) and run this again" };
                return Err(Error::Setup(format!("{side}: dropping slot {slot}: {}{fix}", turnout_sinks::error::describe_pg_error(&e))));
            }
            Err(source) => return Err(Error::Sql { side, context: format!("dropping slot {slot}"), source }),
        }
    }
}
