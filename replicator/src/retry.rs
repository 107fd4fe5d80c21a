//! Retrying after a failure, the same way everywhere: what to do is [`crate::Error::reaction`]'s
//! decision (retry with backoff, reconnect at once, or stop), and the waits are [`Backoff`]'s. The
//! stream (`run`), the watch for writes that are not turnout's and the cutover's steps before the
//! fence use it; a fatal error is never retried.

use std::time::Duration;

/// Backoff after a transient failure: from 0.5 s doubling to 30 s, each wait drawn at random from its
/// upper half (so many sidecars do not retry in step); back to the start once streaming has run
/// cleanly for a minute.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(500);
    pub const MAX: Duration = Duration::from_secs(30);
    /// Streaming this long without an error counts as recovered.
    pub const HEALTHY: Duration = Duration::from_secs(60);

    pub fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The next wait, and the one after it doubled.
    pub fn wait(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let half = d / 2;
        half + half.mul_f64(jitter())
    }

    /// Back to the first wait (after a healthy stretch).
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// A number in [0, 1) from the clock's nanoseconds (randomness enough to spread retries).
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
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
}
