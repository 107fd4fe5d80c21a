//! The stateful pgoutput decoder: owns the relation and type caches and turns parsed pgoutput messages
//! into [`ChangeEvent`]s with typed values.
//!
//! Guarantees: one input message yields at most one event, in input order; nothing is dropped — a value
//! of an unknown type passes through as text, an unchanged TOAST column as [`Value::Unchanged`]; a row
//! change for a relation that was never announced is [`DecodeError::UnknownRelation`] (reconnect to
//! resync), never a guess. A Relation message inside a streamed (in-progress) transaction describes the
//! table only for that transaction — it may change the schema and then roll back — so it is kept
//! apart and becomes the stream's schema only when the transaction commits (as PostgreSQL's own apply
//! worker does); other transactions keep decoding with the schema they were sent.

use super::pgoutput::{self, OldTuple, PgOutputMessage, TupleData, TupleValue};
use super::types;
use crate::error::DecodeError;
use crate::event::{ChangeEvent, Row};
use crate::position::{Position, Timestamp};
use crate::schema::{Column, ColumnType, ReplicaIdentity, TableName, TableSchema, TypeName};
use crate::value::Value;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

/// The logical-message prefix of turnout's own heartbeats. The content is the source clock in
/// microseconds since the Unix epoch, as decimal text.
pub const HEARTBEAT_PREFIX: &str = "turnout.heartbeat";

/// Decodes one replication stream. Create one per connection: caches are only valid for the stream
/// that announced them (PostgreSQL resends Relation messages on every new connection).
#[derive(Debug, Default)]
pub struct PgOutputDecoder {
    relations: HashMap<u32, Arc<TableSchema>>,
    type_names: HashMap<u32, TypeName>,
    /// The xid of the streamed transaction whose segment is open, between Stream Start and Stop.
    stream_xid: Option<u32>,
    /// Relations announced inside streamed transactions, by top-level xid, until they commit or abort.
    stream_relations: HashMap<u32, HashMap<u32, Arc<TableSchema>>>,
}

impl PgOutputDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// True between Stream Start and Stream Stop.
    pub fn in_stream(&self) -> bool {
        self.stream_xid.is_some()
    }

    /// The cached schema of a relation id.
    pub fn relation(&self, relation_id: u32) -> Option<&Arc<TableSchema>> {
        self.relations.get(&relation_id)
    }

    /// Relations announced by streamed transactions that have not committed or aborted yet.
    pub fn pending_stream_relations(&self) -> usize {
        self.stream_relations.values().map(HashMap::len).sum()
    }

    /// Parses and decodes one XLogData payload.
    pub fn decode(&mut self, data: &Bytes) -> Result<Option<ChangeEvent>, DecodeError> {
        let msg = pgoutput::parse(data, self.in_stream())?;
        self.apply(msg)
    }

    /// Decodes one parsed message, updating the caches.
    pub fn apply(&mut self, msg: PgOutputMessage) -> Result<Option<ChangeEvent>, DecodeError> {
        Ok(Some(match msg {
            PgOutputMessage::Begin(b) => ChangeEvent::Begin { xid: u64::from(b.xid), commit_position: Some(Position::Pg(b.final_lsn)), commit_ts: b.commit_ts },
            PgOutputMessage::Commit(c) => ChangeEvent::Commit { position: Position::Pg(c.end_lsn), commit_ts: c.commit_ts },
            PgOutputMessage::Origin(o) => ChangeEvent::Origin { name: o.name, origin_position: Some(Position::Pg(o.origin_lsn)) },
            PgOutputMessage::Type(t) => {
                // pgoutput sends pg_catalog as an empty namespace.
                let schema = if t.namespace.is_empty() { "pg_catalog".to_owned() } else { t.namespace };
                self.type_names.insert(t.type_oid, TypeName { schema, name: t.name });
                return Ok(None);
            }
            PgOutputMessage::Relation(r) => self.announce(r)?,
            PgOutputMessage::Insert(i) => {
                let table = self.table(i.relation_id)?;
                let after = row(&table, i.new)?;
                ChangeEvent::Insert { table, xid: i.xid.map(u64::from), after }
            }
            PgOutputMessage::Update(u) => self.update(u)?,
            PgOutputMessage::Delete(d) => self.delete(d)?,
            PgOutputMessage::Truncate(t) => {
                let tables = t.relation_ids.iter().map(|&id| self.table(id)).collect::<Result<_, _>>()?;
                ChangeEvent::Truncate { tables, xid: t.xid.map(u64::from), cascade: t.cascade, restart_identity: t.restart_identity }
            }
            PgOutputMessage::Message(m) => {
                let position = Position::Pg(m.lsn);
                match heartbeat_ts(&m.prefix, &m.content) {
                    Some(ts) if !m.transactional => ChangeEvent::Heartbeat { position, ts },
                    _ => ChangeEvent::Message { xid: m.xid.map(u64::from), transactional: m.transactional, position, prefix: m.prefix, content: m.content },
                }
            }
            PgOutputMessage::StreamStart(s) => {
                self.stream_xid = Some(s.xid);
                ChangeEvent::StreamStart { xid: u64::from(s.xid), first_segment: s.first_segment }
            }
            PgOutputMessage::StreamStop => {
                self.stream_xid = None;
                ChangeEvent::StreamStop
            }
            PgOutputMessage::StreamCommit(c) => {
                // Its schema changes now hold for everything after it.
                if let Some(relations) = self.stream_relations.remove(&c.xid) {
                    self.relations.extend(relations);
                }
                ChangeEvent::StreamCommit { xid: u64::from(c.xid), position: Position::Pg(c.end_lsn), commit_ts: c.commit_ts }
            }
            PgOutputMessage::StreamAbort(a) => {
                if a.xid == a.subxid {
                    self.stream_relations.remove(&a.xid);
                }
                ChangeEvent::StreamAbort {
                    xid: u64::from(a.xid),
                    subxid: u64::from(a.subxid),
                    abort_position: a.abort_lsn.map(Position::Pg),
                    abort_ts: a.abort_ts,
                }
            }
            PgOutputMessage::BeginPrepare(b) => begin_prepare(b),
            PgOutputMessage::Prepare(p) => prepare(p),
            PgOutputMessage::CommitPrepared(c) => commit_prepared(c),
            PgOutputMessage::RollbackPrepared(r) => rollback_prepared(r),
        }))
    }

    /// A relation's schema, kept for the rows that follow (inside a stream segment, for that stream
    /// only until it commits).
    fn announce(&mut self, r: pgoutput::Relation) -> Result<ChangeEvent, DecodeError> {
        let replica_identity = ReplicaIdentity::from_byte(r.replica_identity).ok_or_else(|| DecodeError::Malformed {
            context: "pgoutput",
            tag: 'R',
            offset: 0,
            reason: format!("unknown replica identity 0x{:02x}", r.replica_identity),
        })?;
        let columns = r
            .columns
            .into_iter()
            .map(|c| Column {
                ty: ColumnType::Pg { oid: c.type_oid, modifier: c.type_modifier, name: self.type_names.get(&c.type_oid).cloned() },
                name: c.name,
                is_key: c.flags & 1 == 1,
            })
            .collect();
        let schema = Arc::new(TableSchema {
            relation_id: u64::from(r.relation_id),
            name: TableName::new(r.namespace, r.name),
            replica_identity,
            columns,
            foreign_key_checks: true,
        });
        match self.stream_xid {
            Some(xid) => {
                self.stream_relations.entry(xid).or_default().insert(r.relation_id, Arc::clone(&schema));
            }
            None => {
                self.relations.insert(r.relation_id, Arc::clone(&schema));
            }
        }
        Ok(ChangeEvent::Relation(schema))
    }

    /// An update, keyed by its old key (or whole old row under REPLICA IDENTITY FULL), else by the
    /// new row's key.
    fn update(&self, u: pgoutput::Update) -> Result<ChangeEvent, DecodeError> {
        let table = self.table(u.relation_id)?;
        let after = row(&table, u.new)?;
        let (key, before) = match u.old {
            Some(OldTuple::Key(k)) => (key_of(&table, &row(&table, k)?), None),
            Some(OldTuple::Old(o)) => {
                let before = row(&table, o)?;
                (key_of(&table, &before), Some(before))
            }
            None => (key_of(&table, &after), None),
        };
        Ok(ChangeEvent::Update { table, xid: u.xid.map(u64::from), key, before, after })
    }

    /// A delete, keyed by its old key or whole old row.
    fn delete(&self, d: pgoutput::Delete) -> Result<ChangeEvent, DecodeError> {
        let table = self.table(d.relation_id)?;
        let (key, before) = match d.old {
            OldTuple::Key(k) => (key_of(&table, &row(&table, k)?), None),
            OldTuple::Old(o) => {
                let before = row(&table, o)?;
                (key_of(&table, &before), Some(before))
            }
        };
        Ok(ChangeEvent::Delete { table, xid: d.xid.map(u64::from), key, before })
    }

    /// A relation as the message being decoded sees it: inside a stream segment the stream's own
    /// announcement first.
    fn table(&self, relation_id: u32) -> Result<Arc<TableSchema>, DecodeError> {
        self.stream_xid
            .and_then(|xid| self.stream_relations.get(&xid)?.get(&relation_id))
            .or_else(|| self.relations.get(&relation_id))
            .cloned()
            .ok_or(DecodeError::UnknownRelation { relation_id })
    }
}

/// Two-phase messages, which pgoutput sends only when two-phase decoding is asked.
fn begin_prepare(b: pgoutput::BeginPrepare) -> ChangeEvent {
    ChangeEvent::BeginPrepare {
        xid: u64::from(b.xid),
        gid: b.gid,
        prepare_position: Position::Pg(b.prepare_lsn),
        end_position: Position::Pg(b.end_lsn),
        prepare_ts: b.prepare_ts,
    }
}

fn prepare(p: pgoutput::Prepare) -> ChangeEvent {
    ChangeEvent::Prepare {
        xid: u64::from(p.xid),
        gid: p.gid,
        prepare_position: Position::Pg(p.prepare_lsn),
        end_position: Position::Pg(p.end_lsn),
        prepare_ts: p.prepare_ts,
        streamed: p.streamed,
    }
}

fn commit_prepared(c: pgoutput::CommitPrepared) -> ChangeEvent {
    ChangeEvent::CommitPrepared {
        xid: u64::from(c.xid),
        gid: c.gid,
        commit_position: Position::Pg(c.commit_lsn),
        end_position: Position::Pg(c.end_lsn),
        commit_ts: c.commit_ts,
    }
}

fn rollback_prepared(r: pgoutput::RollbackPrepared) -> ChangeEvent {
    ChangeEvent::RollbackPrepared {
        xid: u64::from(r.xid),
        gid: r.gid,
        prepare_end_position: Position::Pg(r.prepare_end_lsn),
        rollback_end_position: Position::Pg(r.rollback_end_lsn),
        prepare_ts: r.prepare_ts,
        rollback_ts: r.rollback_ts,
    }
}

/// A heartbeat's source-clock timestamp, if `prefix`/`content` are one of turnout's heartbeats.
fn heartbeat_ts(prefix: &str, content: &Bytes) -> Option<Timestamp> {
    if prefix != HEARTBEAT_PREFIX {
        return None;
    }
    std::str::from_utf8(content).ok()?.trim().parse().ok().map(Timestamp)
}

fn row(table: &TableSchema, tuple: TupleData) -> Result<Row, DecodeError> {
    if tuple.0.len() != table.columns.len() {
        return Err(DecodeError::ColumnCountMismatch { table: table.name.to_string(), expected: table.columns.len(), got: tuple.0.len() });
    }
    tuple
        .0
        .into_iter()
        .zip(&table.columns)
        .map(|(v, col)| {
            // Every column of a pgoutput relation is a PostgreSQL type.
            let oid = col.ty.pg_oid().unwrap_or_default();
            let decoded = match v {
                TupleValue::Null => return Ok(Value::Null),
                TupleValue::Unchanged => return Ok(Value::Unchanged),
                TupleValue::Text(raw) => types::decode_text(oid, raw),
                TupleValue::Binary(raw) => types::decode_binary(oid, raw),
            };
            decoded.map_err(|reason| DecodeError::BadValue { table: table.name.to_string(), column: col.name.clone(), type_oid: oid, reason })
        })
        .collect()
}

fn key_of(table: &TableSchema, row: &Row) -> Row {
    table.key_indexes().map(|i| row[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::pgoutput::{Relation, RelationColumn, StreamAbort, StreamCommit, StreamStart};
    use crate::position::Lsn;

    fn relation(columns: usize) -> PgOutputMessage {
        PgOutputMessage::Relation(Relation {
            xid: None,
            relation_id: 7,
            namespace: "public".into(),
            name: "t".into(),
            replica_identity: b'd',
            columns: (0..columns).map(|i| RelationColumn { flags: u8::from(i == 0), name: format!("c{i}"), type_oid: 23, type_modifier: -1 }).collect(),
        })
    }

    fn columns(d: &PgOutputDecoder) -> usize {
        d.relation(7).map(|r| r.columns.len()).unwrap_or(0)
    }

    #[test]
    fn a_relation_announced_in_a_stream_holds_for_others_only_once_the_stream_commits() {
        let mut d = PgOutputDecoder::new();
        d.apply(relation(1)).expect("relation");
        // A streamed transaction adds a column, then rolls back: the table keeps one column.
        d.apply(PgOutputMessage::StreamStart(StreamStart { xid: 5, first_segment: true })).expect("start");
        d.apply(relation(2)).expect("relation in stream");
        assert_eq!(d.table(7).map(|t| t.columns.len()).ok(), Some(2), "the stream decodes with its own schema");
        d.apply(PgOutputMessage::StreamStop).expect("stop");
        assert_eq!(columns(&d), 1, "another transaction must not see the stream's schema");
        d.apply(PgOutputMessage::StreamAbort(StreamAbort { xid: 5, subxid: 5, abort_lsn: None, abort_ts: None })).expect("abort");
        assert_eq!((columns(&d), d.pending_stream_relations()), (1, 0));
        // The same change in a stream that commits: from then on it holds.
        d.apply(PgOutputMessage::StreamStart(StreamStart { xid: 6, first_segment: true })).expect("start");
        d.apply(relation(2)).expect("relation in stream");
        d.apply(PgOutputMessage::StreamStop).expect("stop");
        d.apply(PgOutputMessage::StreamCommit(StreamCommit { xid: 6, flags: 0, commit_lsn: Lsn(1), end_lsn: Lsn(2), commit_ts: Timestamp(0) }))
            .expect("commit");
        assert_eq!(columns(&d), 2);
    }
}
