//! Relation (`R`) and Type (`Y`).

use super::super::cursor::Cursor;
use super::stream_xid;
use crate::error::DecodeError;

/// One column of a Relation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn {
    /// Int8 flags: 1 marks a column of the replica identity.
    pub flags: u8,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// `R`: [Int32 xid], Int32 relation id, String namespace, String name, Int8 replica identity,
/// Int16 column count, then per column Int8 flags, String name, Int32 type OID, Int32 type modifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub xid: Option<u32>,
    pub relation_id: u32,
    pub namespace: String,
    pub name: String,
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

impl Relation {
    pub(super) fn parse(c: &mut Cursor<'_>, in_stream: bool) -> Result<Self, DecodeError> {
        let xid = stream_xid(c, in_stream)?;
        let relation_id = c.u32("relation id")?;
        let namespace = c.cstr("namespace")?;
        let name = c.cstr("relation name")?;
        let replica_identity = c.u8("replica identity")?;
        // Each column needs at least flags + NUL + type oid + typmod = 10 bytes.
        let n = c.count16("column count", 10)?;
        let mut columns = Vec::with_capacity(n);
        for _ in 0..n {
            columns.push(RelationColumn {
                flags: c.u8("column flags")?,
                name: c.cstr("column name")?,
                type_oid: c.u32("column type oid")?,
                type_modifier: c.i32("column type modifier")?,
            });
        }
        Ok(Relation { xid, relation_id, namespace, name, replica_identity, columns })
    }
}

/// `Y`: [Int32 xid], Int32 type OID, String namespace, String type name. Sent before the first use of
/// a non-built-in type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeMessage {
    pub xid: Option<u32>,
    pub type_oid: u32,
    pub namespace: String,
    pub name: String,
}

impl TypeMessage {
    pub(super) fn parse(c: &mut Cursor<'_>, in_stream: bool) -> Result<Self, DecodeError> {
        Ok(TypeMessage { xid: stream_xid(c, in_stream)?, type_oid: c.u32("type oid")?, namespace: c.cstr("type namespace")?, name: c.cstr("type name")? })
    }
}
