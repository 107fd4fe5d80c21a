//! Acknowledgement: what the source is told, and when.
//!
//! Rules: only a [`Durable`] position — committed on green **and** flushed to its disk — is recorded
//! in the state store and acknowledged to the source; the record and the acknowledgement never move
//! back. When nothing received is pending anywhere (no open or buffered transaction, no batch, no
//! apply in flight, nothing unflushed), the source may release everything it sent so far, so an idle
//! source's log does not grow without bound.

use super::apply::Applier;
use super::batch::Batcher;
use super::signals::Sentinels;
use crate::error::Error;
use crate::source::Source;
use crate::state::StateStore;
use crate::status::Status;
use turnout_sinks::{Durable, EarlyApply, Sink};

/// Records `durable` (synced, on the state-store thread), shows it, wakes whoever waits on it, and
/// acknowledges it to the source.
pub async fn durable<S: Source>(source: &mut S, durable: &Durable, state: &StateStore, status: &Status, sentinels: &Sentinels) -> Result<(), Error> {
    state.record_applied_async(durable.position()).await?;
    status.set_applied(durable.position());
    sentinels.durable_advanced();
    source.acknowledge(durable);
    Ok(())
}

/// Nothing received is waiting to be applied or flushed and no transaction is open.
pub fn nothing_pending<K: Sink, E: EarlyApply>(applier: &Applier<K, E>, batcher: &Batcher) -> bool {
    !applier.busy() && batcher.is_empty() && !applier.unflushed() && batcher.assembler.is_idle()
}

/// When nothing is pending, lets the source release everything it sent.
pub fn when_idle<S: Source, K: Sink, E: EarlyApply>(source: &mut S, applier: &Applier<K, E>, batcher: &Batcher) {
    if nothing_pending(applier, batcher) {
        source.acknowledge_idle(&applier.durable);
    }
}
