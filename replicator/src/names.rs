//! The names of what turnout creates for a stream, derived from the stream id in the state store.

/// Names of the objects turnout creates, derived from the stream id in the state store
/// (`turnout_<id>`): PostgreSQL's publication, slot and green's replication origin.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Names {
    pub publication: String,
    pub slot: String,
    pub origin: String,
}

impl Names {
    pub fn for_stream(id: &str) -> Names {
        let base = format!("turnout_{id}");
        Names { publication: base.clone(), slot: base.clone(), origin: base }
    }

    /// The reverse stream's names after a cutover (`turnout_<id>_back`): green's publication and
    /// slot, blue's replication origin.
    pub fn reverse_of(forward: &Names) -> Names {
        let base = format!("{}_back", forward.slot);
        Names { publication: base.clone(), slot: base.clone(), origin: base }
    }

    /// No names: for commands that never touch what turnout created (`check`, `verify`), which must
    /// not open the state directory a running sidecar holds.
    pub fn none() -> Names {
        Names { publication: String::new(), slot: String::new(), origin: String::new() }
    }
}
