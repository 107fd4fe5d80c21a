//! The JSON of `/status` ([`Snapshot`]), as [`super::Status::snapshot`] takes it.

use super::{foreign, verified, AlertLevel, CopyProgress, Direction, ErrorReport, Phase, SlotHealth, TableProgress, WindowStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// The JSON of `/status`.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub phase: Phase,
    /// `forward` (blue → green) or `reverse` (green → blue, the rollback window after a cutover):
    /// every position, lag and counter below is of this direction's stream.
    pub direction: Direction,
    /// Where the application's traffic is, from the cutover's and rollback's journals: `blue`,
    /// `green`, `unsettled` (a cutover or rollback between its fence and its settled end: its
    /// journal completes or undoes it) or `unknown` (before the journals are read).
    pub traffic: &'static str,
    /// True while a restarted sidecar settles what its journal left (an interrupted cutover or
    /// rollback, a fleet's decision awaited): `/status` answers, the endpoints that act answer 503.
    pub settling: bool,
    /// 1 for the stream's first run blue → green; each rollback that armed blue → green replication
    /// again (`cutover.iterate`) begins the next.
    pub generation: u32,
    /// The source position durably applied on green (PostgreSQL LSN, or binlog file:offset and GTIDs).
    pub applied_position: String,
    /// How far the source's log reaches.
    pub source_position: String,
    /// Source log bytes not yet durable on green, where the source can measure them.
    pub lag_bytes: u64,
    /// Age, on blue's clock, of the oldest transaction committed on blue and not yet durable on green;
    /// when nothing is pending, of the newest heartbeat received or transaction durable on green,
    /// whichever is newer (green holds everything blue committed before either). None until measurable.
    pub lag_seconds: Option<f64>,
    /// `lag_bytes` divided by the recent durable apply rate.
    pub predicted_drain_seconds: Option<f64>,
    /// Recent durable progress on green, bytes of source WAL per second.
    pub apply_bytes_per_second: f64,
    pub slot: Option<SlotHealth>,
    pub rows_applied: u64,
    pub transactions_applied: u64,
    pub rows_per_second: f64,
    /// Estimated bytes of everything received and not yet applied held in memory (open transactions,
    /// the batch, the batch in flight); bounded by `apply.memory_budget`.
    pub buffered_bytes: u64,
    /// Source transactions received and not yet durable on green.
    pub pending_transactions: usize,
    /// Bytes of large transactions written to the state store since start.
    pub spilled_bytes_total: u64,
    /// Large transactions applied on green while blue still sent them (streamed, or sent whole and
    /// too large for memory), and committed there.
    pub early_committed_total: u64,
    /// Transactions whose early apply was given up (then applied whole at their commit).
    pub early_given_up_total: u64,
    pub names: Option<crate::names::Names>,
    pub tables: BTreeMap<String, TableProgress>,
    /// The chunked initial copy, when the copy is chunked.
    pub copy: Option<CopyProgress>,
    /// The last error (cleared when streaming resumes), with its class and advice.
    pub last_error: Option<ErrorReport>,
    /// Level of each enabled alert: `lag` (when a lag threshold is configured) and `slot`.
    pub alerts: BTreeMap<String, AlertLevel>,
    /// A live verify's hold on the apply: `idle`, `armed`, `at`, `reached` or `passed` (`turnout verify
    /// --live`); filled in from the pipeline's channels by the HTTP API, `idle` otherwise.
    pub verify_hold: &'static str,
    /// The rollback window, while the reverse stream runs.
    pub window: Option<WindowStatus>,
    /// The watch for writes that are not turnout's, per side watched (`green` before the cutover,
    /// `blue` in the rollback window).
    pub rogue_writes: BTreeMap<foreign::Side, foreign::Watched>,
    /// The continuous verify (`verify.continuous`), when on.
    pub continuous_verify: Option<verified::Verified>,
    /// The read canary, once one was asked for (`turnout canary`).
    pub canary: Option<crate::canary_plan::CanaryStatus>,
    /// Blue's downstream consumers (slots, standbys, binlog readers that are not turnout's), looked at
    /// every 30 s; none before the first look or when blue cannot be read.
    pub consumers: Option<Vec<super::consumers::Consumer>>,
}
