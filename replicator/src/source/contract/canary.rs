//! Green as a read canary sees it ([`crate::canary`]): a probe run the way readers reach green,
//! green's own count of failures, and a fence on the application's writes there. A family
//! implements [`GreenReads`] once; the canary's loop, ramp and journal are the same for every family,
//! and so are the bounds on each call ([`probe`], [`failures`], [`fence`]).

use crate::error::Error;
use std::future::Future;
use std::time::{Duration, Instant};

/// What the canary asks of green. Sessions are opened on first use and opened again after a
/// failure; every method is safe to call again.
pub(crate) trait GreenReads: Send {
    /// Runs `sql` once on a read-only session of `canary.probe_url` (opened if there is none); an
    /// error is the server's or the connection's, on green. Unbounded: see [`probe`].
    fn probe_once(&mut self, sql: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Drops the probe's session (the next probe opens a new one).
    fn drop_probe(&mut self);

    /// Green's count of failures so far — PostgreSQL: transactions rolled back in green's database;
    /// Oracle MySQL: errors raised (`performance_schema`) — or `None` where the server keeps no such
    /// count turnout can read. Only differences between two readings mean anything.
    fn failures(&mut self) -> impl Future<Output = Option<u64>> + Send;

    /// Makes green refuse the application's writes while turnout's apply goes on — PostgreSQL: its
    /// database read-only by default and the other client sessions ended; the MySQL family:
    /// `read_only`. Returns what it did, or `None` when green already refused them (then nothing was
    /// changed, and [`GreenReads::unfence`] must not be called for this canary).
    fn fence(&mut self) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Lifts what [`GreenReads::fence`] did; returns what it did.
    fn unfence(&mut self) -> impl Future<Output = Result<String, Error>> + Send;
}

/// How long turnout's own statements on green (counters, the fence) may take.
pub(crate) const GREEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a probe gave no time.
#[derive(Debug)]
pub(crate) enum ProbeFailure {
    /// Cut off after this long (its session is dropped).
    NoAnswer(Duration),
    /// The server's or the connection's error.
    Failed(Error),
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeFailure::NoAnswer(after) => write!(f, "no answer within {} ms", after.as_millis()),
            ProbeFailure::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Runs the probe `sql` on green and returns how long it took, cut off at `timeout`; after any
/// failure the probe's session is dropped, so the next probe starts on a new one.
pub(crate) async fn probe<G: GreenReads>(green: &mut G, sql: &str, timeout: Duration) -> Result<Duration, ProbeFailure> {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, green.probe_once(sql)).await {
        Ok(done) => done.map_err(ProbeFailure::Failed),
        Err(_) => Err(ProbeFailure::NoAnswer(timeout)),
    };
    if outcome.is_err() {
        green.drop_probe();
    }
    outcome.map(|()| started.elapsed())
}

/// Green's count of failures ([`GreenReads::failures`]), `None` too when it takes longer than
/// [`GREEN_TIMEOUT`].
pub(crate) async fn failures<G: GreenReads>(green: &mut G) -> Option<u64> {
    tokio::time::timeout(GREEN_TIMEOUT, green.failures()).await.ok().flatten()
}

/// Green's fence on the application's writes ([`GreenReads::fence`]), an error when it takes longer
/// than [`GREEN_TIMEOUT`].
pub(crate) async fn fence<G: GreenReads>(green: &mut G) -> Result<Option<String>, Error> {
    tokio::time::timeout(GREEN_TIMEOUT, green.fence())
        .await
        .unwrap_or_else(|_| Err(crate::error::CanaryRefusal::NoAnswer { secs: GREEN_TIMEOUT.as_secs() }.into()))
}
