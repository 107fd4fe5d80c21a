//! The stateful pgoutput decoder: owns the relation and type caches and turns parsed pgoutput messages
//! into [`ChangeEvent`]s with typed values.
//!
//! Guarantees: one input message yields at most one event, in input order; nothing is dropped — a value
//! of an unknown type passes through as text, an unchanged TOAST column as [`Value::Unchanged`]; a row
//! change for a relation that was never announced is [`DecodeError::UnknownRelation`] (reconnect to
//! resync), never a guess.

use super::pgoutput::{self, OldTuple, PgOutputMessage, TupleData, TupleValue};
use super::types;
use crate::error::DecodeError;
use crate::event::{ChangeEvent, Row};
use crate::position::{Position, Timestamp};
use crate::schema::{Column, ReplicaIdentity, TableName, TableSchema};
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
    type_names: HashMap<u32, String>,
    /// The xid of the streamed transaction whose segment is open, between Stream Start and Stop.
    stream_xid: Option<u32>,
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

    /// Parses and decodes one XLogData payload.
    pub fn decode(&mut self, data: &Bytes) -> Result<Option<ChangeEvent>, DecodeError> {
        let msg = pgoutput::parse(data, self.in_stream())?;
        self.apply(msg)
    }

    /// Decodes one parsed message, updating the caches.
    pub fn apply(&mut self, msg: PgOutputMessage) -> Result<Option<ChangeEvent>, DecodeError> {
        Ok(Some(match msg {
            PgOutputMessage::Begin(b) => ChangeEvent::Begin {
                xid: b.xid,
                commit_position: Some(Position::Pg(b.final_lsn)),
                commit_ts: b.commit_ts,
            },
            PgOutputMessage::Commit(c) => ChangeEvent::Commit {
                position: Position::Pg(c.end_lsn),
                commit_lsn: c.commit_lsn,
                commit_ts: c.commit_ts,
            },
            PgOutputMessage::Origin(o) => ChangeEvent::Origin { name: o.name, origin_lsn: o.origin_lsn },
            PgOutputMessage::Type(t) => {
                self.type_names.insert(t.type_oid, format!("{}.{}", t.namespace, t.name));
                return Ok(None);
            }
            PgOutputMessage::Relation(r) => {
                let replica_identity = ReplicaIdentity::from_byte(r.replica_identity).ok_or_else(|| {
                    DecodeError::Malformed {
                        context: "pgoutput",
                        tag: 'R',
                        offset: 0,
                        reason: format!("unknown replica identity 0x{:02x}", r.replica_identity),
                    }
                })?;
                let columns = r
                    .columns
                    .into_iter()
                    .map(|c| Column {
                        type_name: self.type_names.get(&c.type_oid).cloned(),
                        name: c.name,
                        type_oid: c.type_oid,
                        type_modifier: c.type_modifier,
                        is_key: c.flags & 1 == 1,
                    })
                    .collect();
                let schema = Arc::new(TableSchema {
                    relation_id: r.relation_id,
                    name: TableName::new(r.namespace, r.name),
                    replica_identity,
                    columns,
                });
                self.relations.insert(r.relation_id, Arc::clone(&schema));
                ChangeEvent::Relation(schema)
            }
            PgOutputMessage::Insert(i) => {
                let table = self.table(i.relation_id)?;
                let after = row(&table, i.new)?;
                ChangeEvent::Insert { table, xid: i.xid, after }
            }
            PgOutputMessage::Update(u) => {
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
                ChangeEvent::Update { table, xid: u.xid, key, before, after }
            }
            PgOutputMessage::Delete(d) => {
                let table = self.table(d.relation_id)?;
                let (key, before) = match d.old {
                    OldTuple::Key(k) => (key_of(&table, &row(&table, k)?), None),
                    OldTuple::Old(o) => {
                        let before = row(&table, o)?;
                        (key_of(&table, &before), Some(before))
                    }
                };
                ChangeEvent::Delete { table, xid: d.xid, key, before }
            }
            PgOutputMessage::Truncate(t) => {
                let tables = t.relation_ids.iter().map(|&id| self.table(id)).collect::<Result<_, _>>()?;
                ChangeEvent::Truncate { tables, xid: t.xid, cascade: t.cascade, restart_identity: t.restart_identity }
            }
            PgOutputMessage::Message(m) => {
                let position = Position::Pg(m.lsn);
                match heartbeat_ts(&m.prefix, &m.content) {
                    Some(ts) if !m.transactional => ChangeEvent::Heartbeat { position, ts },
                    _ => ChangeEvent::Message {
                        xid: m.xid,
                        transactional: m.transactional,
                        position,
                        prefix: m.prefix,
                        content: m.content,
                    },
                }
            }
            PgOutputMessage::StreamStart(s) => {
                self.stream_xid = Some(s.xid);
                ChangeEvent::StreamStart { xid: s.xid, first_segment: s.first_segment }
            }
            PgOutputMessage::StreamStop => {
                self.stream_xid = None;
                ChangeEvent::StreamStop
            }
            PgOutputMessage::StreamCommit(c) => ChangeEvent::StreamCommit {
                xid: c.xid,
                position: Position::Pg(c.end_lsn),
                commit_lsn: c.commit_lsn,
                commit_ts: c.commit_ts,
            },
            PgOutputMessage::StreamAbort(a) => ChangeEvent::StreamAbort {
                xid: a.xid,
                subxid: a.subxid,
                abort_lsn: a.abort_lsn,
                abort_ts: a.abort_ts,
            },
            PgOutputMessage::BeginPrepare(b) => ChangeEvent::BeginPrepare {
                xid: b.xid,
                gid: b.gid,
                prepare_lsn: b.prepare_lsn,
                end_lsn: b.end_lsn,
                prepare_ts: b.prepare_ts,
            },
            PgOutputMessage::Prepare(p) => ChangeEvent::Prepare {
                xid: p.xid,
                gid: p.gid,
                prepare_lsn: p.prepare_lsn,
                end_lsn: p.end_lsn,
                prepare_ts: p.prepare_ts,
                streamed: p.streamed,
            },
            PgOutputMessage::CommitPrepared(c) => ChangeEvent::CommitPrepared {
                xid: c.xid,
                gid: c.gid,
                commit_lsn: c.commit_lsn,
                end_lsn: c.end_lsn,
                commit_ts: c.commit_ts,
            },
            PgOutputMessage::RollbackPrepared(r) => ChangeEvent::RollbackPrepared {
                xid: r.xid,
                gid: r.gid,
                prepare_end_lsn: r.prepare_end_lsn,
                rollback_end_lsn: r.rollback_end_lsn,
                prepare_ts: r.prepare_ts,
                rollback_ts: r.rollback_ts,
            },
        }))
    }

    fn table(&self, relation_id: u32) -> Result<Arc<TableSchema>, DecodeError> {
        self.relations.get(&relation_id).cloned().ok_or(DecodeError::UnknownRelation { relation_id })
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
        return Err(DecodeError::ColumnCountMismatch {
            table: table.name.to_string(),
            expected: table.columns.len(),
            got: tuple.0.len(),
        });
    }
    tuple
        .0
        .into_iter()
        .zip(&table.columns)
        .map(|(v, col)| {
            let decoded = match v {
                TupleValue::Null => return Ok(Value::Null),
                TupleValue::Unchanged => return Ok(Value::Unchanged),
                TupleValue::Text(raw) => types::decode_text(col.type_oid, raw),
                TupleValue::Binary(raw) => types::decode_binary(col.type_oid, raw),
            };
            decoded.map_err(|reason| DecodeError::BadValue {
                table: table.name.to_string(),
                column: col.name.clone(),
                type_oid: col.type_oid,
                reason,
            })
        })
        .collect()
}

fn key_of(table: &TableSchema, row: &Row) -> Row {
    table.key_indexes().map(|i| row[i].clone()).collect()
}
