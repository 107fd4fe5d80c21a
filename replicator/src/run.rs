//! `turnout run`: prepares the source and green (selection, set-up, schema copy, snapshot), then streams
//! — retrying transient failures with jittered backoff, reconnecting from green's durable position
//! when the stream must resync, stopping on errors the operator must fix, and stopping cleanly on
//! SIGTERM/SIGINT. Source-agnostic: each source plugs in through [`SourceAdmin`].

use crate::config::{reversed, Config};
use crate::error::{Error, Reaction};
use crate::journal::ReverseArm;
use crate::pipeline::signals::Channels;
use crate::pipeline::{self, Budgets};
use crate::source::{Names, SourceAdmin};
use crate::state::StateStore;
use crate::status::foreign::Side;
use crate::status::{Direction, ErrorReport, Phase, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use turnout_decoders::Position;
use turnout_sinks::Sink;

/// Runs until `shutdown` turns true (Ok) or a fatal error. After a completed cutover that armed the
/// reverse stream, replicates green → blue (the rollback window) until a rollback, `turnout finish`
/// or `shutdown`; after a cutover without one (or a rollback), replication stops but the HTTP API
/// keeps serving until `shutdown`.
pub async fn run(config: &Config, external: watch::Receiver<bool>) -> Result<(), Error> {
    // A signing key that cannot be read is refused now, not found out when a cutover ends.
    crate::cutover::certificate::signing_key(&config.cutover)?;
    let state = StateStore::open(&config.state.dir)?;
    let status = Arc::new(Status::default());
    let channels = Arc::new(Channels::default());
    // Forward replication stops on the operator's signal or after a completed cutover; reverse
    // replication on the signal, after a completed rollback or on `turnout finish`.
    let (stop, shutdown) = watch::channel(false);
    let (reverse_stop, reverse_shutdown) = watch::channel(false);
    {
        let (stop, reverse_stop) = (stop.clone(), reverse_stop.clone());
        let mut external = external.clone();
        tokio::spawn(async move {
            let _ = external.wait_for(|s| *s).await;
            let _ = stop.send(true);
            let _ = reverse_stop.send(true);
        });
    }
    let names = Names::for_stream(&state.stream_id()?);
    crate::watch::show_kept(&state, &status)?;
    let resume = match crate::cutover::recover(config, &state, &names).await {
        Ok(resume) => resume,
        Err(e) => {
            // This stream replicates no more (cut over without a way back, the window ended, rolled
            // back): whatever a watch left on the servers goes.
            if crate::cutover::cut_over(&state)? && crate::cutover::open_window(&state)?.is_none() {
                crate::watch::drop_objects(config, &names, &[Side::Green, Side::Blue]).await;
            }
            return Err(e);
        }
    };
    let shared = Arc::new(config.clone());
    let controller = |direction, stop| {
        crate::cutover::Controller::new(direction, Arc::clone(&shared), state.clone(), Arc::clone(&status), Arc::clone(&channels), names.clone(), stop)
    };
    let controllers = crate::http::Controllers { cutover: controller(Direction::Forward, stop), rollback: controller(Direction::Reverse, reverse_stop) };
    let rollback = Arc::clone(&controllers.rollback);
    if config.verify.continuous {
        let (cutover, back) = (Arc::clone(&controllers.cutover), Arc::clone(&controllers.rollback));
        let busy = move || cutover.running() || back.running();
        tokio::spawn(crate::verify::continuous::run(Arc::clone(&shared), Arc::clone(&status), busy, external.clone()));
    }
    let listen = config.http.listen.parse().map_err(|e| Error::config("http.listen", format!("{e}")))?;
    let _http = crate::http::serve(listen, Arc::clone(&status), Arc::clone(&channels), Some(controllers), external.clone())
        .await
        .map_err(|e| Error::config("http.listen", format!("cannot listen on {listen}: {e}")))?;
    let arm = match resume {
        crate::cutover::Resume::Reverse(arm) => {
            // A restart in the window: whatever the green watch left is dropped.
            crate::watch::drop_objects(config, &names, &[Side::Green]).await;
            Some(arm)
        }
        crate::cutover::Resume::Forward => {
            let green = start_watch(&shared, &names, Side::Green, &state, &status, shutdown.clone());
            if green.is_none() {
                crate::watch::drop_objects(config, &names, &[Side::Green]).await;
            }
            crate::with_family!(config, F => replicate(&F::admin(config, names.clone())?, config, &state, &status, &channels, shutdown).await)?;
            if let Some(green) = green {
                let _ = green.await;
                // Green takes the application's writes once a cutover completed: the watch ends.
                if crate::cutover::cut_over(&state)? {
                    crate::watch::drop_objects(config, &names, &[Side::Green]).await;
                }
            }
            // A cutover completed meanwhile may have armed the reverse stream.
            crate::cutover::open_window(&state)?
        }
    };
    let stopping = *external.borrow();
    if let (Some(arm), false) = (arm, stopping) {
        let _window = tokio::spawn(watch_window(Arc::clone(&status), rollback, reverse_shutdown.clone()));
        let blue = start_watch(&shared, &names, Side::Blue, &state, &status, reverse_shutdown.clone());
        let result = run_reverse(config, &status, &channels, &names, &arm, reverse_shutdown).await;
        if let Some(blue) = blue {
            let _ = blue.await;
            // The window ended (a rollback, `turnout finish`, its budget): the forward slot goes.
            if !*external.borrow() {
                crate::watch::drop_objects(config, &names, &[Side::Blue]).await;
            }
        }
        result?;
    }
    let stopping = *external.borrow();
    if !stopping {
        tracing::info!("replication stopped; serving the HTTP API until stopped");
        status.set_phase(Phase::Stopped);
        let mut external = external;
        let _ = external.wait_for(|s| *s).await;
    }
    Ok(())
}

/// Starts the watch of `side` for writes that are not turnout's ([`crate::watch`]) when `[watch]`
/// asks for it and the source family can; it runs until `stop`.
fn start_watch(
    config: &Arc<Config>,
    names: &Names,
    side: Side,
    state: &StateStore,
    status: &Arc<Status>,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    crate::watch::wanted(config, side)
        .then(|| tokio::spawn(crate::watch::task::run(Arc::clone(config), names.clone(), side, state.clone(), Arc::clone(status), stop)))
}

/// Replicates green → blue from the hand-off position until `shutdown` turns true (a rollback's
/// switch, `turnout finish`, or the operator's signal), after releasing what the forward stream holds
/// on blue ([`crate::source::family::Family::before_reverse`]).
async fn run_reverse(
    config: &Config,
    status: &Arc<Status>,
    channels: &Arc<Channels>,
    forward: &Names,
    arm: &ReverseArm,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let back = reversed(config);
    let state = StateStore::open(&back.state.dir)?;
    if state.snapshot_done()?.is_none() {
        // Blue equals green at the hand-off position: nothing to copy.
        state.mark_snapshot_done(&arm.position)?;
        state.record_applied(&arm.position)?;
    }
    crate::with_family!(config, F => F::before_reverse(config, forward).await);
    status.start_reverse();
    let budget = config.cutover.window_budget()?;
    let opened_at_us = if arm.opened_at_us > 0 {
        arm.opened_at_us
    } else {
        if budget.max_age.is_some() {
            tracing::warn!(
                "this cutover was made by an earlier version, which did not record when the rollback window opened: cutover.window_max counts from now"
            );
        }
        crate::status::now_micros()
    };
    status.set_window(opened_at_us, budget);
    tracing::info!(names = %arm.names.origin, from = %arm.position, "replicating green → blue (rollback window)");
    crate::with_family!(config, F => crate::run::replicate(&F::reverse_admin(&back, arm)?, &back, &state, status, channels, shutdown).await)
}

/// Ends the rollback window once its budget is spent (`cutover.window_max`, `cutover.window_max_held`;
/// see [`crate::status::WindowStatus::spent`]) — unless a rollback is running, which ends it anyway —
/// with a critical log line naming the budget; a rollback is then refused naming it. Checks every
/// second until `shutdown`.
async fn watch_window(status: Arc<Status>, rollback: Arc<crate::cutover::Controller>, mut shutdown: watch::Receiver<bool>) {
    // A budget must stay spent for this long (this machine's monotonic clock) before the window ends:
    // one reading after a wall-clock step, or a passing WAL spike, ends nothing.
    const CONFIRM: Duration = Duration::from_secs(10);
    let mut spent_since: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let Some(why) = status.window().and_then(|w| w.spent()) else {
            spent_since = None;
            continue;
        };
        if spent_since.get_or_insert_with(std::time::Instant::now).elapsed() < CONFIRM || rollback.running() {
            continue;
        }
        match rollback.end_window(Some(why.clone())).await {
            Ok(done) => {
                tracing::error!(
                    "the rollback window ended on its own: {why}; {}. Rollback to blue is no longer possible; green is the source of truth",
                    done.join("; ")
                );
                if let Some(w) = status.watched(Side::Blue).filter(|w| w.outstanding() > 0) {
                    tracing::error!(
                        "the rollback window ended with {} writes on blue that turnout did not make and nobody acknowledged: {}. They never \
                         reached green; carry them over by hand",
                        w.outstanding(),
                        w.describe()
                    );
                }
                return;
            }
            Err(e) => tracing::error!("the rollback window's budget is spent ({why}) but ending it failed: {e}; run `turnout finish`"),
        }
    }
}

/// Backoff after a transient failure: from 0.5 s doubling to 30 s, each wait drawn at random from its
/// upper half (so many sidecars do not retry in step); back to the start once streaming has run
/// cleanly for a minute.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);
    /// Streaming this long without an error counts as recovered.
    const HEALTHY: Duration = Duration::from_secs(60);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    fn wait(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let half = d / 2;
        half + half.mul_f64(jitter())
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// A number in [0, 1) from the clock's nanoseconds (randomness enough to spread retries).
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

/// Prepares and streams through `admin` until `shutdown` turns true or an error the operator must fix
/// (retrying, resyncing or stopping as [`Error::reaction`] decides). `turnout run` calls it with the
/// configured source's administration; tests call it with wrapped ones.
pub async fn replicate<A: SourceAdmin>(
    admin: &A,
    config: &Config,
    state: &StateStore,
    status: &Arc<Status>,
    channels: &Arc<Channels>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let names = admin.names().clone();
    status.set_names(names.clone());
    tracing::info!(slot = %names.slot, publication = %names.publication, origin = %names.origin, "starting");
    let _heartbeats = tokio::spawn(admin.heartbeat(Arc::clone(status), shutdown.clone()));
    let _alerts = tokio::spawn(crate::alerts::run(config.alerts.clone(), Arc::clone(status), shutdown.clone()));
    let mut backoff = Backoff::new();
    loop {
        let started = std::time::Instant::now();
        let result = run_once(admin, config, state, status, channels, shutdown.clone()).await;
        if started.elapsed() >= Backoff::HEALTHY {
            backoff.reset();
        }
        let e = match result {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let (reaction, advice) = e.reaction();
        status.set_error(Some(ErrorReport { message: e.to_string(), class: reaction.name(), advice: advice.clone() }));
        match reaction {
            Reaction::Stop => {
                tracing::error!("{e}; {advice}");
                return Err(e);
            }
            Reaction::Resync => {
                tracing::warn!("{e}; reconnecting from the position durable on green");
                status.set_phase(Phase::Retrying);
            }
            Reaction::Retry => {
                let wait = backoff.wait();
                tracing::warn!("{e}; retrying in {wait:?} ({advice})");
                status.set_phase(Phase::Retrying);
                let mut stop = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
            }
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
}

async fn run_once<A: SourceAdmin>(
    admin: &A,
    config: &Config,
    state: &StateStore,
    status: &Arc<Status>,
    channels: &Arc<Channels>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    admin.prepare(state, status).await?;
    let sink = admin.open_sink().await?;
    let green_at = sink.applied();
    if let Some(recorded) = state.applied()? {
        check_green_not_behind(&green_at, &recorded, &admin.names().origin)?;
    }
    let sink = crate::copy::Copying::open(sink, admin.copier()?, state, status, config.snapshot_workers()).await?;
    let source = admin.open_stream(&green_at).await?;
    let budgets = Budgets { batch_rows: config.apply_batch_rows(), batch_delay: config.apply_batch_delay(), memory: config.apply_memory_budget()? };
    let env = pipeline::Env { state, status, channels, budgets: &budgets };
    // While chunks remain, streamed transactions are applied whole at their commit, whose position
    // the chunked copy's barrier needs.
    let streaming = async {
        if sink.copying() {
            pipeline::stream(source, sink, turnout_sinks::early::NoEarly, env, shutdown).await
        } else {
            pipeline::stream(source, sink, admin.open_early(), env, shutdown).await
        }
    };
    tokio::select! {
        result = streaming => result,
        e = admin.watch() => Err(e),
    }
}

/// Green's own record of what it applied must be at or beyond what this state directory saw applied:
/// anything else (a record behind, a record missing, one that cannot be compared) means green was
/// restored, its progress record dropped or blue is another server's history, and streaming from
/// green's record would repeat or lose changes. Fails closed.
fn check_green_not_behind(green_at: &Position, recorded: &Position, record: &str) -> Result<(), Error> {
    let problem = if green_at.is_start() && !recorded.is_start() {
        format!("green holds no progress record ({record}) but this state directory saw {recorded} applied: green's turnout progress was dropped or green was restored from a dump without it")
    } else {
        match green_at.partial_cmp(recorded) {
            Some(std::cmp::Ordering::Less) => format!(
                "green's recorded position {green_at} is behind the {recorded} this state directory saw applied: green was restored \
                 or its progress record ({record}) rolled back"
            ),
            None => format!(
                "green's recorded position {green_at} cannot be compared with the {recorded} this state directory saw applied \
                 (another server's history, or a diverged GTID state)"
            ),
            Some(_) => return Ok(()),
        }
    };
    Err(Error::Setup(format!("{problem}. Replicating from here could lose or repeat changes; run `turnout teardown` and start over")))
}

/// `turnout teardown`: drops what turnout created on both sides, and the state directory.
pub async fn teardown(config: &Config) -> Result<Vec<String>, Error> {
    let names = {
        let state = StateStore::open(&config.state.dir)?;
        Names::for_stream(&state.stream_id()?)
    };
    crate::with_family!(config, F => F::admin(config, names)?.teardown().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<Duration> = (0..10).map(|_| b.wait()).collect();
        assert!(waits[0] >= Duration::from_millis(250) && waits[0] <= Duration::from_millis(500), "{waits:?}");
        assert!(waits[9] >= Duration::from_secs(15) && waits[9] <= Duration::from_secs(30), "{waits:?}");
        b.reset();
        assert!(b.wait() <= Duration::from_millis(500));
    }

    #[test]
    fn green_missing_behind_or_incomparable_progress_is_refused() {
        use turnout_decoders::position::{BinlogPosition, GtidState};
        let at = |file: &str, offset: u64, gtids: &str| {
            Position::Binlog(BinlogPosition { file: file.into(), offset, gtids: GtidState::parse_maria(gtids).expect("gtids") })
        };
        let recorded = at("mysql-bin.000003", 900, "0-1-50");
        let missing = Position::Binlog(BinlogPosition::default());
        let e = check_green_not_behind(&missing, &recorded, "turnout_x").expect_err("a missing record is refused").to_string();
        assert!(e.contains("no progress record") && e.contains("teardown"), "{e}");
        assert!(check_green_not_behind(&at("mysql-bin.000003", 500, "0-1-49"), &recorded, "r").is_err());
        assert!(check_green_not_behind(&at("mysql-bin.000004", 4, "0-1-51,1-1-1"), &at("mysql-bin.000003", 4, "0-1-52"), "r").is_err());
        assert!(check_green_not_behind(&at("mysql-bin.000001", 4, "0-1-50"), &recorded, "r").is_ok(), "same GTIDs on another server");
        assert!(check_green_not_behind(&at("mysql-bin.000001", 4, "0-1-60"), &recorded, "r").is_ok());
        assert!(check_green_not_behind(&Position::Pg(turnout_decoders::Lsn(0)), &Position::Pg(turnout_decoders::Lsn(5)), "r").is_err());
    }
}
