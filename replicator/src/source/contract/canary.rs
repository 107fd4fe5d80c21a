//! Green as a read canary sees it ([`crate::canary`]): a probe run the way readers reach green,
//! green's own count of failures, and a fence on the application's writes there. A family
//! implements [`GreenReads`] once; the canary's loop, ramp and journal are the same for every family.

use crate::error::Error;
use std::future::Future;
use std::time::Duration;

/// What the canary asks of green. Sessions are opened on first use and opened again after a
/// failure; every method is safe to call again.
pub(crate) trait GreenReads: Send {
    /// Runs `sql` once on a read-only session of `canary.probe_url` and returns how long it took; an
    /// error is the server's or the connection's, in one line — or that it took longer than
    /// `timeout` (then the session is dropped).
    fn probe(&mut self, sql: &str, timeout: Duration) -> impl Future<Output = Result<Duration, String>> + Send;

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
