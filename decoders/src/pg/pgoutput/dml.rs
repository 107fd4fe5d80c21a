//! Row changes: Insert (`I`), Update (`U`), Delete (`D`), Truncate (`T`) and their TupleData.

use super::super::cursor::Cursor;
use super::stream_xid;
use crate::error::DecodeError;
use bytes::Bytes;

/// One column of a TupleData.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TupleValue {
    /// `n`: NULL.
    Null,
    /// `u`: an unchanged TOASTed value that was not sent.
    Unchanged,
    /// `t`: the value in the type's text format.
    Text(Bytes),
    /// `b`: the value in the type's binary format.
    Binary(Bytes),
}

/// Int16 column count, then per column a kind byte (`n`, `u`, `t`, `b`) and for `t`/`b` an Int32 length
/// and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TupleData(pub Vec<TupleValue>);

impl TupleData {
    pub(super) fn parse(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        // Each column needs at least its kind byte.
        let n = c.count16("tuple column count", 1)?;
        let mut cols = Vec::with_capacity(n);
        for _ in 0..n {
            let at = c.offset();
            let kind = c.u8("tuple column kind")?;
            cols.push(match kind {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::Unchanged,
                b't' => {
                    let len = c.length("column value length")?;
                    TupleValue::Text(c.bytes(len, "column value")?)
                }
                b'b' => {
                    let len = c.length("column value length")?;
                    TupleValue::Binary(c.bytes(len, "column value")?)
                }
                other => {
                    let mut e = c.error(format!("unknown tuple column kind 0x{other:02x}"));
                    if let DecodeError::Malformed { offset, .. } = &mut e {
                        *offset = at;
                    }
                    return Err(e);
                }
            });
        }
        Ok(TupleData(cols))
    }
}

fn expect_byte(c: &mut Cursor<'_>, want: u8, what: &str) -> Result<(), DecodeError> {
    let at = c.offset();
    let got = c.u8(what)?;
    if got != want {
        let mut e = c.error(format!("expected {what} '{}' but found 0x{got:02x}", char::from(want)));
        if let DecodeError::Malformed { offset, .. } = &mut e {
            *offset = at;
        }
        return Err(e);
    }
    Ok(())
}

/// `I`: [Int32 xid], Int32 relation id, `N`, TupleData.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insert {
    pub xid: Option<u32>,
    pub relation_id: u32,
    pub new: TupleData,
}

impl Insert {
    pub(super) fn parse(c: &mut Cursor<'_>, in_stream: bool) -> Result<Self, DecodeError> {
        let xid = stream_xid(c, in_stream)?;
        let relation_id = c.u32("relation id")?;
        expect_byte(c, b'N', "new tuple marker")?;
        Ok(Insert { xid, relation_id, new: TupleData::parse(c)? })
    }
}

/// The old row sent with an Update or Delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OldTuple {
    /// `K`: only the replica identity columns are set; others are `n`.
    Key(TupleData),
    /// `O`: the whole old row (REPLICA IDENTITY FULL).
    Old(TupleData),
}

/// `U`: [Int32 xid], Int32 relation id, optionally `K` or `O` and a TupleData, then `N` and a TupleData.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub xid: Option<u32>,
    pub relation_id: u32,
    pub old: Option<OldTuple>,
    pub new: TupleData,
}

impl Update {
    pub(super) fn parse(c: &mut Cursor<'_>, in_stream: bool) -> Result<Self, DecodeError> {
        let xid = stream_xid(c, in_stream)?;
        let relation_id = c.u32("relation id")?;
        let at = c.offset();
        let old = match c.u8("tuple marker")? {
            b'K' => Some(OldTuple::Key(TupleData::parse(c)?)),
            b'O' => Some(OldTuple::Old(TupleData::parse(c)?)),
            b'N' => None,
            other => {
                let mut e = c.error(format!("expected tuple marker K, O or N but found 0x{other:02x}"));
                if let DecodeError::Malformed { offset, .. } = &mut e {
                    *offset = at;
                }
                return Err(e);
            }
        };
        if old.is_some() {
            expect_byte(c, b'N', "new tuple marker")?;
        }
        Ok(Update { xid, relation_id, old, new: TupleData::parse(c)? })
    }
}

/// `D`: [Int32 xid], Int32 relation id, `K` or `O`, TupleData.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    pub xid: Option<u32>,
    pub relation_id: u32,
    pub old: OldTuple,
}

impl Delete {
    pub(super) fn parse(c: &mut Cursor<'_>, in_stream: bool) -> Result<Self, DecodeError> {
        let xid = stream_xid(c, in_stream)?;
        let relation_id = c.u32("relation id")?;
        let at = c.offset();
        let old = match c.u8("tuple marker")? {
            b'K' => OldTuple::Key(TupleData::parse(c)?),
            b'O' => OldTuple::Old(TupleData::parse(c)?),
            other => {
                let mut e = c.error(format!("expected tuple marker K or O but found 0x{other:02x}"));
                if let DecodeError::Malformed { offset, .. } = &mut e {
                    *offset = at;
                }
                return Err(e);
            }
        };
        Ok(Delete { xid, relation_id, old })
    }
}

/// `T`: [Int32 xid], Int32 relation count, Int8 options (1 = CASCADE, 2 = RESTART IDENTITY),
/// Int32 relation id per relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncate {
    pub xid: Option<u32>,
    pub cascade: bool,
    pub restart_identity: bool,
    pub relation_ids: Vec<u32>,
}

impl Truncate {
    pub(super) fn parse(c: &mut Cursor<'_>, in_stream: bool) -> Result<Self, DecodeError> {
        let xid = stream_xid(c, in_stream)?;
        // The options byte follows the count, hence the +1 when checking plausibility below.
        let n = c.count32("relation count", 4)?;
        let options = c.u8("options")?;
        if n.saturating_mul(4) > c.remaining() {
            return Err(c.error(format!("relation count {n} exceeds the {} bytes left", c.remaining())));
        }
        let mut relation_ids = Vec::with_capacity(n);
        for _ in 0..n {
            relation_ids.push(c.u32("relation id")?);
        }
        Ok(Truncate { xid, cascade: options & 1 != 0, restart_identity: options & 2 != 0, relation_ids })
    }
}
