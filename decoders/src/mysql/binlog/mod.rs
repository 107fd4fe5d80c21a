//! The binlog event parser (sans-IO): one complete event in, a typed [`Event`] out.
//!
//! An event is the 19-byte common header of binlog version 4 ([`EventHeader`]), a body, and — when the
//! current [`FormatDescription`] says so — a 4-byte CRC32, which [`parse_event`] verifies. The format
//! description event itself is parsed without a prior one: it carries its own checksum algorithm. Before
//! the first one, use [`FormatDescription::default_v4`].
//!
//! Rows events keep their row images undecoded; [`decode_rows`] decodes them with the [`TableMap`] that the
//! stream bound to their table id (the caller owns that cache). [`split_file`] cuts a binlog file into its
//! raw events.
//!
//! Nothing here panics or allocates more than a small multiple of the input on malformed bytes: every
//! failure is a [`BinlogError`] naming the event type and byte offset.

mod annotate;
mod checkpoint;
mod checksum;
mod column;
mod compressed;
mod error;
mod event;
mod format;
mod gtid_list;
mod gtid_mariadb;
mod gtid_mysql;
mod gtid_tagged;
mod header;
mod heartbeat;
mod json;
mod json_diff;
pub mod json_typed;
mod payload;
mod query;
mod reader;
mod rotate;
mod rows;
mod table_map;
mod values;
mod xid;

pub use annotate::AnnotateRows;
pub use checkpoint::BinlogCheckpoint;
pub use checksum::{crc32, ChecksumAlg};
pub use column::{ColumnMeta, FieldType};
pub use error::BinlogError;
pub use event::{event_type, BinlogEvent, Event};
pub use format::FormatDescription;
pub use gtid_list::{GtidList, GtidListEntry};
pub use gtid_mariadb::{gtid_flags, gtid_flags_extra, MariaGtid, XaId};
pub use gtid_mysql::{GtidSetEntry, MysqlGtid, PreviousGtids, Uuid};
pub use header::{EventHeader, FLAG_ARTIFICIAL, HEADER_LEN};
pub use heartbeat::Heartbeat;
pub use payload::TransactionPayload;
pub use query::{status_code, Query, QueryCharset, StatusVars};
pub use rotate::Rotate;
pub use rows::{decode_rows, rows_flags, RowChange, RowImage, RowsEvent, RowsExtraData, RowsKind};
pub use table_map::{optional_metadata, TableColumn, TableMap};
pub use values::BinlogValue;
pub use xid::{XaPrepare, Xid};

use reader::Reader;

/// The four bytes every binlog file starts with.
pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];

/// Parses one complete event (header, body and checksum, if any) read with format `fde`.
///
/// `bytes` must be exactly the event: its length must equal the header's `event_size`. A checksum that
/// does not match is [`BinlogError::Checksum`]. Event types the server may write but this parser refuses on
/// purpose (MariaDB's compressed events, MySQL partial JSON updates) are [`BinlogError::Unsupported`] naming the
/// server setting that avoids them; other unknown types are [`BinlogEvent::Unknown`].
pub fn parse_event(bytes: &[u8], fde: &FormatDescription) -> Result<Event, BinlogError> {
    let header = EventHeader::parse(bytes)?;
    let t = header.type_code;
    let size_ok = usize::try_from(header.event_size).is_ok_and(|n| n == bytes.len());
    if !size_ok {
        return Err(BinlogError::Malformed {
            event_type: t,
            offset: 9,
            reason: format!("the header says the event has {} bytes, {} were given", header.event_size, bytes.len()),
        });
    }
    if t == event_type::FORMAT_DESCRIPTION {
        let fde = FormatDescription::parse_event(bytes)?;
        return Ok(Event { header, event: BinlogEvent::FormatDescription(fde) });
    }
    let mut trailer = fde.checksum.trailer_len();
    if trailer > 0 {
        let body_end = bytes.len().checked_sub(trailer).filter(|&n| n >= HEADER_LEN).ok_or_else(|| BinlogError::Malformed {
            event_type: t,
            offset: bytes.len(),
            reason: "no room for the 4-byte checksum".into(),
        })?;
        let (covered, stored) = bytes.split_at(body_end);
        let mut s = [0u8; 4];
        s.copy_from_slice(stored);
        let stored = u32::from_le_bytes(s);
        let computed = crc32(covered);
        if stored != computed {
            return Err(BinlogError::Checksum { event_type: t, stored, computed });
        }
    } else if t == event_type::ROTATE && bytes.len() >= HEADER_LEN + 8 + 4 && checksum::has_valid_trailer(bytes) {
        // The fake rotate of a dump precedes the format description: strip its checksum (see rotate.rs).
        trailer = 4;
    }
    let body = bytes.get(HEADER_LEN..bytes.len() - trailer).unwrap_or_default();
    let mut r = Reader::new(body, HEADER_LEN, t);
    let event = parse_body(&mut r, t, fde)?;
    Ok(Event { header, event })
}

fn parse_body(r: &mut Reader<'_>, t: u8, fde: &FormatDescription) -> Result<BinlogEvent, BinlogError> {
    use event_type::*;
    let post = fde.post_header_len(t);
    let unsupported = |reason, fix| Err(BinlogError::Unsupported { event_type: t, reason, fix });
    Ok(match t {
        QUERY => BinlogEvent::Query(Query::parse(r, post)?),
        STOP => BinlogEvent::Stop,
        ROTATE => BinlogEvent::Rotate(Rotate::parse(r, post)?),
        XID => BinlogEvent::Xid(Xid::parse(r)?),
        XA_PREPARE => BinlogEvent::XaPrepare(XaPrepare::parse(r)?),
        TABLE_MAP => BinlogEvent::TableMap(TableMap::parse(r, post, fde.is_mariadb())?),
        WRITE_ROWS_V1 | UPDATE_ROWS_V1 | DELETE_ROWS_V1 | WRITE_ROWS_V2 | UPDATE_ROWS_V2 | DELETE_ROWS_V2 | PARTIAL_UPDATE_ROWS => {
            BinlogEvent::Rows(RowsEvent::parse(r, t, post)?)
        }
        HEARTBEAT => BinlogEvent::Heartbeat(Heartbeat::parse(r)?),
        // Only a sign of life from the dump thread, never logged and changing nothing: its fields
        // (file name and position as type-length-value entries) are not needed.
        HEARTBEAT_V2 => {
            let _fields = r.rest();
            BinlogEvent::Heartbeat(Heartbeat { file_name: String::new() })
        }
        MYSQL_GTID => BinlogEvent::MysqlGtid(gtid_mysql::MysqlGtid::parse(r, true)?),
        MYSQL_ANONYMOUS_GTID => BinlogEvent::MysqlGtid(gtid_mysql::MysqlGtid::parse(r, false)?),
        MYSQL_GTID_TAGGED => BinlogEvent::MysqlGtid(gtid_tagged::parse(r)?),
        PREVIOUS_GTIDS => BinlogEvent::PreviousGtids(PreviousGtids::parse(r)?),
        MARIADB_ANNOTATE_ROWS => BinlogEvent::AnnotateRows(AnnotateRows::parse(r)),
        MARIADB_BINLOG_CHECKPOINT => BinlogEvent::BinlogCheckpoint(BinlogCheckpoint::parse(r)?),
        MARIADB_GTID => BinlogEvent::MariaGtid(MariaGtid::parse(r)?),
        MARIADB_GTID_LIST => BinlogEvent::GtidList(GtidList::parse(r)?),
        TRANSACTION_PAYLOAD => BinlogEvent::TransactionPayload(TransactionPayload::parse(r)?),
        MARIADB_QUERY_COMPRESSED
        | MARIADB_WRITE_ROWS_COMPRESSED_V1
        | MARIADB_UPDATE_ROWS_COMPRESSED_V1
        | MARIADB_DELETE_ROWS_COMPRESSED_V1
        | MARIADB_WRITE_ROWS_COMPRESSED
        | MARIADB_UPDATE_ROWS_COMPRESSED
        | MARIADB_DELETE_ROWS_COMPRESSED => return unsupported("compressed binlog events are not decompressed", "SET GLOBAL log_bin_compress = OFF"),
        MARIADB_START_ENCRYPTION => {
            return unsupported(
                "the binlog file is encrypted; events after this one cannot be read from the file",
                "read the binlog through the server (binlog dump), which decrypts it",
            )
        }
        _ => BinlogEvent::Unknown { type_code: t, data: r.rest().to_vec() },
    })
}

/// Cuts a binlog file (starting with [`BINLOG_MAGIC`]) into its raw events, each to be given to
/// [`parse_event`]. Yields an error and stops at a bad magic number or an event size that does not fit.
pub fn split_file(bytes: &[u8]) -> SplitFile<'_> {
    SplitFile { bytes, pos: 0, failed: false }
}

/// The iterator of [`split_file`].
#[derive(Clone, Debug)]
pub struct SplitFile<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> SplitFile<'a> {
    /// Byte offset in the file of the next event (its binlog position).
    pub fn position(&self) -> usize {
        self.pos.max(BINLOG_MAGIC.len())
    }

    fn fail(&mut self, offset: usize, reason: String) -> Option<Result<&'a [u8], BinlogError>> {
        self.failed = true;
        Some(Err(BinlogError::Malformed { event_type: 0, offset, reason }))
    }
}

impl<'a> Iterator for SplitFile<'a> {
    type Item = Result<&'a [u8], BinlogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.pos == 0 {
            if self.bytes.get(..4) != Some(&BINLOG_MAGIC[..]) {
                return self.fail(0, "not a binlog file: it does not start with \\xfebin".into());
            }
            self.pos = 4;
        }
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        let Some(size) = rest.get(9..13) else {
            return self.fail(self.pos, format!("{} bytes at the end of the file are not an event header", rest.len()));
        };
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size < HEADER_LEN || size > rest.len() {
            let reason = format!("event size {size} at file position {}, {} bytes left", self.pos, rest.len());
            return self.fail(self.pos, reason);
        }
        let event = rest.get(..size)?;
        self.pos += size;
        Some(Ok(event))
    }
}

#[cfg(test)]
mod tests;
