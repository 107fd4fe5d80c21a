//! `turnout run`: prepares the source and green (selection, set-up, schema copy, snapshot), then streams
//! — retrying transient failures with jittered backoff, reconnecting from green's durable position
//! when the stream must resync, stopping on errors the operator must fix, and stopping cleanly on
//! SIGTERM/SIGINT. Source-agnostic: each source plugs in through [`SourceAdmin`].

use crate::config::{reversed, Config};
use crate::error::{Error, Reaction};
use crate::journal::ReverseArm;
use crate::pipeline::signals::Channels;
use crate::pipeline::{self, Budgets};
use crate::source::family::Family;
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
/// or `shutdown`. After a rollback that armed blue → green replication again (`cutover.iterate`),
/// the stream runs on as its next generation ([`crate::cutover::again`]) and may be cut over again.
/// After a cutover without a way back, a finished window or a rollback that armed nothing,
/// replication stops but the HTTP API keeps serving until `shutdown`.
pub async fn run(config: &Config, external: watch::Receiver<bool>) -> Result<(), Error> {
    crate::with_family!(config, F => run_as::<F>(config, external).await)
}

/// [`run`] for the source family `F`, picked once for the whole process: the streams, the crash
/// recovery, the watches and the read canary all run `F`'s own types.
async fn run_as<F: Family>(config: &Config, external: watch::Receiver<bool>) -> Result<(), Error> {
    // A signing key that cannot be read is refused now, not found out when a cutover ends.
    crate::cutover::certificate::signing_key(&config.cutover)?;
    let state = StateStore::open(&config.state.dir)?;
    let status = Arc::new(Status::default());
    let channels = Arc::new(Channels::default());
    if crate::verify::continuous::rechecks(config) {
        channels.changes.enable();
    }
    let shared = Arc::new(config.clone());
    tokio::spawn(crate::handover::show_consumers(Arc::clone(&shared), Arc::clone(&status), external.clone()));
    // The API answers from the start, also while a restart settles what the journal left below
    // (`/status` says `settling`; the endpoints that act wait for the controllers).
    let slot = crate::http::ControllerSlot::default();
    let listen = shared.http.listen.parse().map_err(|e| Error::config("http.listen", format!("{e}")))?;
    crate::http::serve(listen, Arc::clone(&status), Arc::clone(&channels), Arc::clone(&slot), external.clone())
        .await
        .map_err(|e| Error::config("http.listen", format!("cannot listen on {listen}: {e}")))?;
    let mut serving: Option<crate::http::Controllers> = None;
    loop {
        let names = state.names()?;
        status.set_generation(names.generation());
        // Forward replication stops on the operator's signal or after a completed cutover; reverse
        // replication on the signal, after a completed rollback or on `turnout finish`.
        let (stop, shutdown) = watch::channel(false);
        let (reverse_stop, reverse_shutdown) = watch::channel(false);
        relay(&external, [stop.clone(), reverse_stop.clone()]);
        crate::watch::show_kept(&state, &status)?;
        let resume = match recover::<F>(config, &state, &names).await? {
            crate::cutover::Resume::Again(arm, rollback) => {
                crate::cutover::again::begin(config, &state, &status, arm, rollback).await?;
                continue;
            }
            crate::cutover::Resume::Forward => None,
            crate::cutover::Resume::Reverse(arm) => Some(arm),
        };
        let window = Generation::<F>::new(&shared, &state, &status, &channels, &names, &external);
        let controllers = match &serving {
            Some(controllers) => {
                controllers.cutover.begin_generation(names.clone(), stop);
                controllers.rollback.begin_generation(names.clone(), reverse_stop);
                controllers.clone()
            }
            None => {
                let controllers = window.serve(stop, reverse_stop)?;
                let _ = slot.set(controllers.clone());
                serving = Some(controllers.clone());
                controllers
            }
        };
        let arm = match resume {
            Some(arm) => {
                // A restart in the window: whatever the green watch left is dropped.
                crate::watch::drop_objects(config, &names, &[Side::Green]).await;
                Some(arm)
            }
            None => window.forward(shutdown).await?,
        };
        let stopping = *external.borrow();
        if let (Some(arm), false) = (arm, stopping) {
            window.reverse(&arm, Arc::clone(&controllers.rollback), reverse_shutdown).await?;
        }
        // A rollback that armed the next generation: the loop begins it.
        let rolled_back = crate::cutover::armed_again(&state)?.is_some();
        let stopping = *external.borrow();
        if !rolled_back || stopping {
            break;
        }
    }
    let stopping = *external.borrow();
    let mut external = external;
    if !stopping {
        tracing::info!("replication stopped; serving the HTTP API until stopped");
        status.set_phase(Phase::Stopped);
        let _ = external.wait_for(|s| *s).await;
    }
    if let Some(controllers) = &serving {
        controllers.canary.stopped().await;
    }
    Ok(())
}

/// Turns every one of `stops` true when the operator's signal comes.
fn relay<const N: usize>(external: &watch::Receiver<bool>, stops: [watch::Sender<bool>; N]) {
    let mut external = external.clone();
    tokio::spawn(async move {
        let _ = external.wait_for(|s| *s).await;
        for stop in stops {
            let _ = stop.send(true);
        }
    });
}

/// Settles what the journal left and says how the stream resumes. When it cannot (this stream
/// replicates no more: cut over without a way back, the window ended, rolled back), whatever a
/// watch left on the servers goes, and the reads follow the writes, should a crash have come
/// between the switch and them.
async fn recover<F: Family>(config: &Config, state: &StateStore, names: &Names) -> Result<crate::cutover::Resume, Error> {
    match crate::cutover::recover::<F>(config, state, names).await {
        Ok(resume) => Ok(resume),
        Err(e) => {
            if crate::cutover::cut_over(state)? && crate::cutover::open_window(state)?.is_none() {
                crate::watch::drop_objects(config, names, &[Side::Green, Side::Blue]).await;
                for line in crate::canary::settle(config, state).await {
                    tracing::info!("{line}");
                }
            }
            Err(e)
        }
    }
}

/// One generation of the stream as `run` drives it: blue → green until a cutover, then the rollback
/// window.
struct Generation<'a, F> {
    config: &'a Arc<Config>,
    state: &'a StateStore,
    status: &'a Arc<Status>,
    channels: &'a Arc<Channels>,
    names: &'a Names,
    /// The operator's signal.
    external: &'a watch::Receiver<bool>,
    family: std::marker::PhantomData<fn() -> F>,
}

impl<'a, F: Family> Generation<'a, F> {
    fn new(
        config: &'a Arc<Config>,
        state: &'a StateStore,
        status: &'a Arc<Status>,
        channels: &'a Arc<Channels>,
        names: &'a Names,
        external: &'a watch::Receiver<bool>,
    ) -> Self {
        Generation { config, state, status, channels, names, external, family: std::marker::PhantomData }
    }

    /// Starts what lives as long as the process, on the first generation: the cutover's and the
    /// rollback's controllers, the read canary and continuous verify (the HTTP API serves them).
    fn serve(&self, stop: watch::Sender<bool>, reverse_stop: watch::Sender<bool>) -> Result<crate::http::Controllers, Error> {
        let (shared, status, channels, external) = (self.config, self.status, self.channels, self.external);
        let controller = |direction, stop| {
            crate::cutover::Controller::new(
                direction,
                Arc::clone(shared),
                self.state.clone(),
                Arc::clone(status),
                Arc::clone(channels),
                self.names.clone(),
                stop,
            )
        };
        let canary = crate::canary::Canary::start::<F>(Arc::clone(shared), self.state.clone(), Arc::clone(status), Arc::clone(channels), external.clone())?;
        let controllers = crate::http::Controllers {
            cutover: controller(Direction::Forward, stop),
            rollback: controller(Direction::Reverse, reverse_stop),
            canary: Arc::new(canary),
        };
        if shared.verify.continuous {
            let (cutover, back) = (Arc::clone(&controllers.cutover), Arc::clone(&controllers.rollback));
            let busy = move || cutover.running() || back.running();
            tokio::spawn(crate::verify::continuous::run(Arc::clone(shared), Arc::clone(status), Arc::clone(channels), busy, external.clone()));
        }
        Ok(controllers)
    }

    /// Replicates blue → green (watching green when asked) until `shutdown`; returns the reverse
    /// stream a cutover completed meanwhile armed, if one did.
    async fn forward(&self, shutdown: watch::Receiver<bool>) -> Result<Option<ReverseArm>, Error> {
        let (config, state, names) = (self.config.as_ref(), self.state, self.names);
        let green = start_watch::<F>(self.config, names, (Side::Green, None), state, self.status, shutdown.clone());
        if green.is_none() {
            crate::watch::drop_objects(config, names, &[Side::Green]).await;
        }
        let resumed = state.resumed()?;
        if let Some(resumed) = &resumed {
            crate::cutover::again::again_released(config, resumed).await;
        }
        if resumed.is_some() {
            // Nothing is applied to green before the consumers a rollback carried back read it up to
            // the rollback's fence.
            crate::handover::settle(config, state, crate::status::Direction::Reverse).await?;
            for line in crate::handover::drop_after_rollback(config, state).await {
                tracing::info!("{line}");
            }
        }
        // A generation a rollback armed starts at its hand-off and drops the reverse apply's writes on
        // blue, as the reverse stream drops the forward apply's on green.
        let admin = match &resumed {
            Some(resumed) => F::reverse_admin(config, &resumed.arm)?,
            None => F::admin(config, names.clone())?,
        };
        replicate(&admin, config, state, self.status, self.channels, shutdown).await?;
        if let Some(green) = green {
            let _ = green.await;
            // Green takes the application's writes once a cutover completed: the watch ends.
            if crate::cutover::cut_over(state)? {
                crate::watch::drop_objects(config, names, &[Side::Green]).await;
            }
        }
        // A cutover completed meanwhile may have armed the reverse stream.
        crate::cutover::open_window(state)
    }

    /// The rollback window: replicates green → blue from `arm` (watching blue when asked, ending the
    /// window when its budget is spent) until a rollback, `turnout finish` or the signal.
    async fn reverse(&self, arm: &ReverseArm, rollback: Arc<crate::cutover::Controller>, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        let (config, names) = (self.config.as_ref(), self.names);
        let _window = tokio::spawn(watch_window(Arc::clone(self.status), rollback, shutdown.clone()));
        // Blue's watch stops after the reverse stream: after a rollback that armed the next
        // generation, once it read up to where it closed at the switch (`crate::cutover::again`).
        let (watch_stop, watch_shutdown) = watch::channel(false);
        relay(self.external, [watch_stop.clone()]);
        let blue = start_watch::<F>(self.config, names, (Side::Blue, arm.sentinel.clone()), self.state, self.status, watch_shutdown);
        // Nothing is applied to blue before the consumers carried over read it up to the fence.
        let result = match crate::handover::settle(config, self.state, Direction::Forward).await {
            Ok(()) => run_reverse::<F>(config, self.status, self.channels, names, arm, shutdown.clone()).await,
            Err(e) => Err(e),
        };
        // `turnout finish` (or the budget) may end the window while the reverse stream starts, dropping
        // what it starts from: what it then fails on is moot — there is no window left to replicate.
        let result = match result {
            Err(e) if crate::cutover::window_over(self.state)? => {
                tracing::info!("the rollback window ended while the reverse stream started ({e}); it stops");
                Ok(())
            }
            other => other,
        };
        if let Some(blue) = blue {
            let closed_at = self.status.watched(Side::Blue).and_then(|w| w.closed_at);
            if let (Some(closed_at), Some(_)) = (closed_at, crate::cutover::armed_again(self.state)?) {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                if let Err(e) = crate::watch::caught_up(self.status, Side::Blue, &closed_at, deadline).await {
                    tracing::warn!("{e}");
                }
            }
            let _ = watch_stop.send(true);
            let _ = blue.await;
            // The window ended (a rollback, `turnout finish`, its budget): the forward slot goes.
            // Not on the operator's signal nor on an error: the window goes on after a restart.
            if crate::cutover::window_over(self.state)? {
                crate::watch::drop_objects(config, names, &[Side::Blue]).await;
            }
        }
        // Writes stay on green for good: the consumers carried there no longer need their slots on blue.
        if crate::cutover::window_finished(self.state)? {
            for line in crate::handover::drop_left(config, self.state).await {
                tracing::info!("{line}");
            }
        }
        result
    }
}

/// Starts the watch of `side` for writes that are not turnout's ([`crate::watch`]) when `[watch]`
/// asks for it and the source family can; it runs until `stop`.
fn start_watch<F: Family>(
    config: &Arc<Config>,
    names: &Names,
    (side, begin): (Side, Option<turnout_decoders::Position>),
    state: &StateStore,
    status: &Arc<Status>,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let watched = crate::watch::task::Watched { forward: names.clone(), side, begin };
    crate::watch::wanted(config, side).then(|| tokio::spawn(crate::watch::task::run::<F>(Arc::clone(config), watched, state.clone(), Arc::clone(status), stop)))
}

/// Replicates green → blue from the hand-off position until `shutdown` turns true (a rollback's
/// switch, `turnout finish`, or the operator's signal), after releasing what the forward stream holds
/// on blue ([`crate::source::family::Family::before_reverse`]).
async fn run_reverse<F: Family>(
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
    crate::source::family::of(config).before_reverse(config, forward).await;
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
    crate::run::replicate(&F::back_admin(&back, arm)?, &back, &state, status, channels, shutdown).await
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
        // Blue's log read up to now first, as `finish` does: what was written there before the end
        // is counted (and named below) — but a budget ends the window even when it cannot be.
        if let Err(e) = rollback.read_blue_up_to_now().await {
            tracing::error!("before the rollback window ends on its own: {e}; writes on blue after what its watch read are not counted");
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
    let mut backoff = crate::retry::Backoff::new();
    loop {
        let started = std::time::Instant::now();
        let result = run_once(admin, config, state, status, channels, shutdown.clone()).await;
        if started.elapsed() >= crate::retry::Backoff::HEALTHY {
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
        match green_at.try_cmp(recorded) {
            Ok(std::cmp::Ordering::Less) => format!(
                "green's recorded position {green_at} is behind the {recorded} this state directory saw applied: green was restored \
                 or its progress record ({record}) rolled back"
            ),
            Err(_) => format!(
                "green's recorded position {green_at} cannot be compared with the {recorded} this state directory saw applied \
                 (another server's history, or a diverged GTID state)"
            ),
            Ok(_) => return Ok(()),
        }
    };
    Err(Error::Setup(format!("{problem}. Replicating from here could lose or repeat changes; run `turnout teardown` and start over")))
}

/// `turnout teardown`: drops what turnout created on both sides, and the state directory.
/// Every generation's objects go, the newest first ([`crate::cutover::again`]), the next one a
/// rollback may have armed included; the state directory only with the first generation's, last, so
/// a failure halfway leaves the names for a second attempt.
pub async fn teardown(config: &Config) -> Result<Vec<String>, Error> {
    let (generations, canary, handed) = {
        let state = StateStore::open(&config.state.dir)?;
        // The read endpoint where the writes are, and a canary's fence on green lifted, first.
        let handed = state.handover::<crate::handover::Record>(Direction::Forward)?.is_some();
        (state.every_generation()?, crate::canary::settle(config, &state).await, handed)
    };
    // The later generations' teardowns see no state directory to remove.
    let mut kept = config.clone();
    kept.state.dir = config.state.dir.join("no-such-directory");
    let mut done: Vec<String> = canary;
    for (i, names) in generations.into_iter().enumerate().rev() {
        let config = if i == 0 { config } else { &kept };
        done.extend(crate::with_family!(config, F => F::admin(config, names)?.teardown().await)?);
    }
    // Slots a cutover that never completed made on green for its consumers; once one handed them
    // over they are the consumers' own.
    if !handed {
        done.extend(crate::handover::drop_unused(config).await);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

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
