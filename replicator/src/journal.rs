//! The cutover journal: where a cutover or rollback is, written to the state store (synced) before
//! each step acts, so a restart after a crash knows whether to undo the fence or complete the switch
//! (see [`crate::cutover`]).

use crate::names::Names;
use crate::status::Direction;
use serde::{Deserialize, Serialize};
use turnout_decoders::Position;

/// Where a cutover is; journaled before each step acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Waiting,
    Fencing,
    SequencesSynced,
    SentinelApplied,
    /// Creating the reverse stream's slot on green (recovered like the steps before: undone). Written
    /// by earlier versions, which created the slot inside the pause; read for their journals.
    ArmingReverse,
    /// Fenced and proven, one pair of a fleet cutover: its vote is cast (or about to be) and it holds
    /// for the fleet's decision, which a restart reads from etcd to switch or undo
    /// ([`crate::fleet::settle`]). Never undone without that decision.
    Prepared,
    Switching,
    Done,
    Undone,
    Failed,
}

impl Step {
    /// The fence may be in place and the switch has not started: undo on recovery.
    pub(crate) fn fence_may_be_up(self) -> bool {
        matches!(self, Step::Fencing | Step::SentinelApplied | Step::SequencesSynced | Step::ArmingReverse)
    }

    /// Only a restart settles this step (undoes the fence or completes the switch): nothing may
    /// overwrite the journal entry that says so.
    pub(crate) fn unsettled(self) -> bool {
        self.fence_may_be_up() || matches!(self, Step::Prepared | Step::Switching)
    }
}

/// The reverse stream a cutover armed: green → blue from `position`, the consistent point of the slot
/// created on green just before the fence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReverseArm {
    /// Green's publication and slot, blue's replication origin.
    pub names: Names,
    /// The forward stream's origin on green: changes carrying it never go back to blue.
    pub forward_origin: String,
    /// The hand-off position on green.
    pub position: Position,
    /// `turnout finish` ended the rollback window: the reverse stream and what it used are gone.
    #[serde(default)]
    pub finished: bool,
    /// When the reverse stream was armed (microseconds since the epoch; 0 in journals of earlier
    /// versions): the rollback window's age counts from here (`cutover.window_max`).
    #[serde(default)]
    pub opened_at_us: i64,
    /// Why the window ended on its own (its budget ran out), when it did.
    #[serde(default)]
    pub ended: Option<String>,
    /// A cutover's: the sentinel's commit on blue, proven applied on green. Blue's watch in the window
    /// begins there where the family reads blue's log from any position (MariaDB), so a write through
    /// the fence after it counts even if the forward stream carried it to green before it stopped.
    #[serde(default)]
    pub sentinel: Option<Position>,
}

/// The journal entry of the current (or last) cutover.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Journal {
    pub id: String,
    /// A cutover (traffic to green) or a rollback (traffic back to blue); journaled apart.
    #[serde(default)]
    pub direction: Direction,
    pub step: Step,
    pub fence: String,
    pub switch: String,
    /// Why it ended, for Undone/Failed; the summary for Done.
    pub message: Option<String>,
    /// The reverse stream this cutover armed (none for a rollback, or with `cutover.reverse = false`).
    #[serde(default)]
    pub reverse: Option<ReverseArm>,
    /// The fleet vote this cutover holds for (`Step::Prepared`), when it is one pair of a fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::Held>,
    /// The haproxy server whose session limit this run lowered to hold new sessions through the
    /// pause, journaled before it did: the undo, the switch or a restart gives it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HeldSlot>,
}

/// A haproxy server's session limit as it was before a hold (0: none), and where: enough to give
/// it back whatever the configuration says by then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSlot {
    pub admin_socket: std::path::PathBuf,
    pub backend: String,
    pub server: String,
    pub limit: u32,
    /// Given back: nothing left to do. A slot journaled and not given back is given back by the
    /// next run or restart.
    #[serde(default)]
    pub released: bool,
}

/// This stream after a rollback armed blue → green replication again (`cutover.iterate`): the
/// generation it now runs as, from the rollback's hand-off position on blue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resumed {
    /// The generation's names (slot and publication on blue, origin on green), the origin whose
    /// writes on blue it drops (the rollback window's reverse stream: they came from green), and the
    /// hand-off position on blue.
    pub arm: ReverseArm,
    /// The rollback this generation follows.
    pub rollback: String,
    /// When it began (microseconds since the epoch).
    pub at_us: i64,
    /// Why the next cutover is gated on a live verify that began after `at_us`, when blue's rollback
    /// window was not proven free of writes turnout did not make (they are on blue, never on green).
    #[serde(default)]
    pub verify_required: Option<String>,
}
