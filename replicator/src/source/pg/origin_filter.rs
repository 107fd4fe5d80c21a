//! Loop prevention for the reverse stream (green → blue after a cutover): changes that turnout's own
//! forward apply wrote on green carry its replication origin and must never travel back to blue.
//!
//! PostgreSQL 16+ drops them on the server (`origin 'none'`); on every version this filter also drops
//! them on the client, by the Origin message pgoutput sends at the start of every transaction (and
//! of a streamed transaction's first segment) replayed through a replication origin. Only row changes
//! are dropped: the transaction's Begin and Commit still pass, so positions and acknowledgement
//! move exactly as for any other transaction.

use std::collections::HashSet;
use turnout_decoders::event::TxId;
use turnout_decoders::ChangeEvent;

/// Drops the row changes of transactions replayed through one replication origin.
#[derive(Debug)]
pub struct OriginFilter {
    origin: String,
    /// The plain (not streamed) transaction being received carries the origin.
    skipping: bool,
    /// The streamed transaction whose segment is being received, if any.
    stream: Option<TxId>,
    /// Streamed transactions that carry the origin, until their stream commit or abort.
    streamed: HashSet<TxId>,
}

impl OriginFilter {
    pub fn new(origin: impl Into<String>) -> OriginFilter {
        OriginFilter { origin: origin.into(), skipping: false, stream: None, streamed: HashSet::new() }
    }

    /// Whether `event` passes. Must see every event of the stream, in order.
    pub fn keep(&mut self, event: &ChangeEvent) -> bool {
        match event {
            ChangeEvent::Begin { .. } | ChangeEvent::BeginPrepare { .. } => {
                self.skipping = false;
                true
            }
            ChangeEvent::StreamStart { xid, .. } => {
                self.stream = Some(*xid);
                true
            }
            ChangeEvent::StreamStop => {
                self.stream = None;
                true
            }
            ChangeEvent::Origin { name, .. } if *name == self.origin => {
                match self.stream {
                    Some(xid) => {
                        self.streamed.insert(xid);
                    }
                    None => self.skipping = true,
                }
                true
            }
            ChangeEvent::StreamCommit { xid, .. } => {
                self.streamed.remove(xid);
                true
            }
            ChangeEvent::StreamAbort { xid, subxid, .. } => {
                if xid == subxid {
                    self.streamed.remove(xid);
                }
                true
            }
            ChangeEvent::Insert { .. } | ChangeEvent::Update { .. } | ChangeEvent::Delete { .. } | ChangeEvent::Truncate { .. } => match self.stream {
                Some(xid) => !self.streamed.contains(&xid),
                None => !self.skipping,
            },
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use turnout_decoders::schema::{ReplicaIdentity, TableName, TableSchema};
    use turnout_decoders::{Position, Timestamp};

    fn insert(xid: Option<TxId>) -> ChangeEvent {
        let table = Arc::new(TableSchema {
            relation_id: 1,
            name: TableName::new("public", "t"),
            replica_identity: ReplicaIdentity::Default,
            columns: Vec::new(),
            foreign_key_checks: true,
        });
        ChangeEvent::Insert { table, xid, after: Vec::new() }
    }

    fn begin() -> ChangeEvent {
        ChangeEvent::Begin { xid: 1, commit_position: None, commit_ts: Timestamp(0) }
    }

    fn origin(name: &str) -> ChangeEvent {
        ChangeEvent::Origin { name: name.into(), origin_position: None }
    }

    fn commit() -> ChangeEvent {
        ChangeEvent::Commit { position: Position::Pg(turnout_decoders::Lsn(0)), commit_ts: Timestamp(0) }
    }

    #[test]
    fn drops_the_rows_of_transactions_replayed_through_the_origin_only() {
        let mut f = OriginFilter::new("turnout_ab");
        // turnout's own transaction: Begin and Commit pass, its rows do not.
        assert!(f.keep(&begin()));
        assert!(f.keep(&origin("turnout_ab")));
        assert!(!f.keep(&insert(None)));
        assert!(f.keep(&commit()));
        // The next transaction, without an origin, passes whole.
        assert!(f.keep(&begin()));
        assert!(f.keep(&insert(None)));
        // Another origin (someone else's replication) passes.
        assert!(f.keep(&begin()));
        assert!(f.keep(&origin("sub_other")));
        assert!(f.keep(&insert(None)));
    }

    #[test]
    fn streamed_transactions_are_filtered_by_their_first_segment_origin() {
        let mut f = OriginFilter::new("turnout_ab");
        assert!(f.keep(&ChangeEvent::StreamStart { xid: 7, first_segment: true }));
        assert!(f.keep(&origin("turnout_ab")));
        assert!(!f.keep(&insert(Some(7))));
        assert!(f.keep(&ChangeEvent::StreamStop));
        // Another transaction's segment in between passes.
        assert!(f.keep(&ChangeEvent::StreamStart { xid: 8, first_segment: true }));
        assert!(f.keep(&insert(Some(8))));
        assert!(f.keep(&ChangeEvent::StreamStop));
        // A later segment of 7 (no Origin message again) is still dropped.
        assert!(f.keep(&ChangeEvent::StreamStart { xid: 7, first_segment: false }));
        assert!(!f.keep(&insert(Some(7))));
        assert!(f.keep(&ChangeEvent::StreamStop));
        assert!(f.keep(&ChangeEvent::StreamCommit { xid: 7, position: Position::Pg(turnout_decoders::Lsn(0)), commit_ts: Timestamp(0) }));
        assert!(f.streamed.is_empty());
    }
}
