//! Blue's downstream consumers on `/status` (as [`crate::handover`] finds them).

use serde::{Deserialize, Serialize};

/// A consumer of blue's change log found on blue (`turnout check`, `GET /handover`, `/status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// The slot's name, or the standby's `application_name` when it uses no slot.
    pub name: String,
    /// `logical` or `physical` slot, or `standby` (a connected standby without a slot).
    pub kind: String,
    /// The logical slot's output plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// The database a logical slot decodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// A session reads it now.
    pub active: bool,
    /// The client reading it, when active (`application_name@address`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// How far it has read: `confirmed_flush_lsn` of a logical slot, `restart_lsn` of a physical
    /// one, `replay_lsn` of a standby.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Bytes of blue's log it has not read yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind_bytes: Option<i64>,
    /// A `[[handover]]` entry carries it over at the cutover.
    pub carried: bool,
}
