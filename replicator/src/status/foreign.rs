//! What `/status` shows of the watch for writes that are not turnout's (see [`crate::watch`]): per
//! watched side, its state, how far its log was read and the foreign writes seen.

use serde::Serialize;
use turnout_decoders::Position;
use turnout_sinks::record::ForeignWrite;

/// The side watched for writes that are not turnout's: green before the cutover (anything written
/// there is not blue's and would make green differ), blue in the rollback window (a write there
/// that the reverse stream did not make is a split brain).
pub use turnout_decoders::Side;

/// One side's watch as `/status` shows it.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Watched {
    /// `waiting` (green: until the initial copy is whole), `watching`, `retrying` (the last attempt
    /// failed: see `error`) or `stopped`.
    pub state: &'static str,
    /// How far the side's log was read: every foreign write before it is counted.
    pub read_through: Option<String>,
    /// Foreign writes seen since the watch began.
    pub seen: u64,
    /// Of those, acknowledged by the operator (`turnout rogue-writes --acknowledge`).
    pub acknowledged: u64,
    /// The oldest foreign writes not acknowledged (at most [`SHOWN`]).
    pub unacknowledged: Vec<ForeignWrite>,
    pub error: Option<String>,
    /// The position behind `read_through`.
    #[serde(skip)]
    pub through: Option<Position>,
    /// Where the watch closed ([`crate::watch::close`]): a mark written at the switch, or how far it
    /// had read then. Writes committed after it are the application's and are not counted.
    #[serde(skip)]
    pub closed_at: Option<Position>,
}

/// How many unacknowledged foreign writes are kept and shown, oldest first.
pub const SHOWN: usize = 100;

impl Watched {
    /// Foreign writes not acknowledged.
    pub fn outstanding(&self) -> u64 {
        self.seen.saturating_sub(self.acknowledged)
    }

    /// `app.orders (id=5) insert, app.orders (id=6) delete and 3 more`: what an operator reads in an
    /// alert or a refusal.
    pub fn describe(&self) -> String {
        const NAMED: usize = 5;
        let named: Vec<String> = self.unacknowledged.iter().take(NAMED).map(|w| format!("{} {} {}", w.table, w.key, w.kind).replace("  ", " ")).collect();
        let more = self.outstanding().saturating_sub(named.len() as u64);
        match more {
            0 => named.join(", "),
            more => format!("{} and {more} more", named.join(", ")),
        }
    }
}
