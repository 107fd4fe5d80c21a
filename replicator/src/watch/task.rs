//! The task that watches one side for writes that are not turnout's: the side's log, without
//! turnout's own changes, through the pipeline into a [`Recording`] sink over the state store.

use super::{load, show, StoreLedger};
use crate::config::Config;
use crate::error::{Error, Reaction};
use crate::pipeline::signals::Channels;
use crate::pipeline::{self, Budgets};
use crate::source::family::Family;
use crate::source::Names;
use crate::state::StateStore;
use crate::status::foreign::Side;
use crate::status::{Phase, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use turnout_decoders::Position;
use turnout_sinks::record::{ForeignWrite, Recording};
use turnout_sinks::NoEarly;

/// What one watch watches.
pub struct Watched {
    /// The forward stream (its names say which of turnout's writes are its own on either side).
    pub forward: Names,
    pub side: Side,
    /// Where to begin when it never read before, if the cutover said (blue: the sentinel's commit);
    /// otherwise the family decides.
    pub begin: Option<Position>,
}

/// What the watch holds in memory for transactions still being received, before it spills.
const MEMORY: usize = 64 << 20;

/// Watches `side` until `shutdown` turns true. A failure is handled as [`Error::reaction`] decides
/// ([`crate::retry`]): a transient one is retried with backoff, a resync at once (both shown on
/// `/status` as `retrying` with the error), and a fatal one — a refusal, a missing privilege —
/// stops the watch as `failed` with the error and its advice; either way the cutover's gate cannot
/// be passed ([`super::caught_up`]). It also stops when the family says the side's server cannot be
/// watched at all ([`super::UNAVAILABLE`], with the reason). Green is watched only once the initial copy is whole: the copy writes
/// there without turnout's origin.
pub(crate) async fn run<F: Family>(config: Arc<Config>, watched: Watched, state: StateStore, status: Arc<Status>, mut shutdown: watch::Receiver<bool>) {
    let side = watched.side;
    let failed = |status: &Status, e: &Error| set(status, side, "retrying", Some(e.to_string()));
    match load(&state, side) {
        Ok(kept) => show(&status, side, &kept),
        Err(e) => {
            tracing::error!("the watch for writes on {side} that are not turnout's cannot start: {e}");
            return failed(&status, &e);
        }
    }
    set(&status, side, "waiting", None);
    while side == Side::Green && (status.phase() != Phase::Streaming || status.copying()) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = shutdown.wait_for(|s| *s) => return set(&status, side, "stopped", None),
        }
    }
    let store = match StateStore::open(&config.state.dir.join(format!("watch-{side}"))) {
        Ok(store) => store,
        Err(e) => return failed(&status, &e),
    };
    let mut backoff = crate::retry::Backoff::new();
    while !*shutdown.borrow() {
        let started = std::time::Instant::now();
        let e = match once::<F>(&config, &watched, &state, &store, &status, shutdown.clone()).await {
            Ok(None) => break,
            Ok(Some(why)) => {
                tracing::warn!("{side} is not watched for writes that are not turnout's: {why}");
                return set(&status, side, super::UNAVAILABLE, Some(why));
            }
            Err(e) => e,
        };
        if started.elapsed() >= crate::retry::Backoff::HEALTHY {
            backoff.reset();
        }
        let wait = match e.reaction() {
            (Reaction::Stop, advice) => {
                tracing::error!("the watch for writes on {side} that are not turnout's stopped: {e}; {advice}");
                return set(&status, side, "failed", Some(format!("{e}; {advice}")));
            }
            (Reaction::Resync, _) => Duration::ZERO,
            (Reaction::Retry, _) => backoff.wait(),
        };
        tracing::warn!("the watch for writes on {side} that are not turnout's failed: {e}; retrying in {wait:?}");
        failed(&status, &e);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    set(&status, side, "stopped", None);
}

/// Shows the watch's state, unless a rollback's switch closed it ([`super::close`]).
fn set(status: &Status, side: Side, state: &'static str, error: Option<String>) {
    status.update_watch(side, |w| {
        if w.state != "closed" {
            (w.state, w.error) = (state, error);
        }
    });
}

async fn once<F: Family>(
    config: &Config,
    watched: &Watched,
    state: &StateStore,
    store: &StateStore,
    status: &Arc<Status>,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<String>, Error> {
    let (forward, side) = (&watched.forward, watched.side);
    // Whichever is further: what was counted, or what the watch acknowledged; before either, where
    // the watch is to begin.
    let read = turnout_decoders::Position::latest([load(state, side)?.through, store.applied()?].into_iter().flatten())?;
    let from = read.or_else(|| watched.begin.clone());
    let ledger = Arc::new(StoreLedger { side, state: state.clone(), status: Arc::clone(status) });
    let budgets = Budgets { batch_rows: config.apply_batch_rows(), batch_delay: Duration::ZERO, memory: MEMORY };
    // The pipeline's own progress and signals: nothing of the replication's.
    let (own, channels) = (Arc::new(Status::default()), Arc::new(Channels::default()));
    let env = pipeline::Env { state: store, status: &own, channels: &channels, budgets: &budgets };
    if let Some(why) = F::watch_unavailable(config, side).await? {
        return Ok(Some(why));
    }
    let opened = F::watch_stream(config, forward, side, from.as_ref()).await?;
    let (source, start, gap) = (opened.stream, opened.from, opened.unread);
    // What could not be read is counted as a foreign write: only the operator can say it held none.
    let unread: Vec<ForeignWrite> = gap
        .into_iter()
        .map(|what| ForeignWrite { table: "(unread log)".into(), kind: "gap".into(), key: what, commit: start.to_string(), index: 0, committed_at_us: 0 })
        .collect();
    ledger.begin_at(&start)?;
    ledger.record_writes(&unread, &start)?;
    set(status, side, "watching", None);
    tracing::info!(from = %start, "watching {side} for writes that are not turnout's");
    pipeline::stream(source, Recording::new(ledger, start), NoEarly, env, shutdown).await.map(|()| None)
}
