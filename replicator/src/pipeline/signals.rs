//! What the pipeline tells those that wait on it, kept apart from the progress
//! [`crate::status::Status`] shows: the live verify's [`Hold`] on the apply, the cutover
//! [`Sentinels`], and what the stream changed ([`super::changed::Changes`]). The pipeline owns and writes both; the cutover and the HTTP API wait on them and
//! read them. One [`Channels`] serves a sidecar's forward and reverse streams alike.

use super::hold::Hold;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;
use turnout_decoders::Position;

/// The pipeline's channels to the rest of the sidecar.
#[derive(Debug, Default)]
pub struct Channels {
    /// A live verify's hold on the apply.
    pub hold: Hold,
    /// The cutover sentinels the stream carried, and every move of the durable position.
    pub sentinels: Sentinels,
    /// What the stream changed since the continuous verify last compared it.
    pub changes: super::changed::Changes,
    /// A cutover or rollback completed its switch: the read canary moves the reads after the
    /// writes at once instead of at its next check.
    pub reads_follow: tokio::sync::Notify,
    /// Cutovers and rollbacks (rehearsals included) running now: the read canary stands down
    /// meanwhile.
    pub moving: std::sync::atomic::AtomicUsize,
}

/// One running cutover or rollback in [`Channels::moving`], until dropped.
#[derive(Debug)]
pub struct Moving(std::sync::Arc<Channels>);

impl Moving {
    pub fn begin(channels: &std::sync::Arc<Channels>) -> Moving {
        channels.moving.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Moving(std::sync::Arc::clone(channels))
    }
}

impl Drop for Moving {
    fn drop(&mut self) {
        self.0.moving.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        // The canary looks again at once: the reads may follow the writes now.
        self.0.reads_follow.notify_one();
    }
}

/// Cutover sentinels seen in the stream, and a wake-up whenever the position durable on green
/// moves: what a cutover waits on with writes paused (woken by the apply, never polled).
#[derive(Debug, Default)]
pub struct Sentinels {
    /// Sentinel id → commit end of its transaction.
    seen: Mutex<HashMap<String, Position>>,
    durable_moved: Notify,
}

impl Sentinels {
    /// The cutover sentinel `id` arrived in the transaction ending at `commit_end`.
    pub fn seen(&self, id: &str, commit_end: &Position) {
        lock(&self.seen).insert(id.to_owned(), commit_end.clone());
    }

    /// The commit end of sentinel `id`'s transaction, once received.
    pub fn commit(&self, id: &str) -> Option<Position> {
        lock(&self.seen).get(id).cloned()
    }

    /// Returns once the durable position moved. Call it before reading the durable position, then
    /// await: a move in between still wakes it.
    pub fn durable_moved(&self) -> tokio::sync::futures::Notified<'_> {
        self.durable_moved.notified()
    }

    /// The durable position moved (called after [`crate::status::Status::set_applied`]).
    pub(crate) fn durable_advanced(&self) {
        self.durable_moved.notify_waiters();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
