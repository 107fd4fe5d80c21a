//! The one error type of the binlog parser and row decoder, [`BinlogError`], and how the pipeline should
//! react to each kind.
//!
//! Every error names the event type it happened in and, where bytes were being read, the byte offset
//! inside the event (counted from the first byte of the 19-byte common header).

use super::event_type;
use crate::ErrorClass;

/// A binlog event or row image that could not be parsed or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BinlogError {
    /// The bytes do not form a valid event: truncated, a length or count larger than what is left, an
    /// unknown code that cannot be skipped, trailing garbage.
    #[error("malformed {} event (type 0x{event_type:02x}) at byte {offset}: {reason}", event_type::name(*event_type))]
    Malformed { event_type: u8, offset: usize, reason: String },

    /// The CRC32 stored at the end of the event does not match its bytes.
    #[error(
        "checksum mismatch in {} event (type 0x{event_type:02x}): stored 0x{stored:08x}, computed 0x{computed:08x}",
        event_type::name(*event_type)
    )]
    Checksum { event_type: u8, stored: u32, computed: u32 },

    /// The server wrote an event this parser deliberately does not decode; `fix` is the server setting
    /// that makes it write a supported form instead.
    #[error("unsupported {} event (type 0x{event_type:02x}): {reason}; fix: {fix}", event_type::name(*event_type))]
    Unsupported { event_type: u8, reason: &'static str, fix: &'static str },

    /// One column value of a row image could not be decoded. `column` is the column's index in the table
    /// map, `field_type` its MySQL type code, `offset` the byte offset inside the rows event.
    #[error("{table}, column {column} (type {field_type}) at byte {offset} of the rows event: {reason}")]
    BadValue { table: String, column: usize, field_type: u8, offset: usize, reason: String },

    /// A rows event was decoded with a table map that does not describe it (another table id or another
    /// column count): the caller's table-map cache is out of step with the stream.
    #[error(
        "rows event for table id {rows_table_id} ({rows_columns} columns) does not match the table map of {table} (id {map_table_id}, {map_columns} columns)"
    )]
    TableMismatch { table: String, rows_table_id: u64, rows_columns: usize, map_table_id: u64, map_columns: usize },
}

impl BinlogError {
    /// How the pipeline should react: malformed bytes, bad checksums and unsupported events are fatal (the
    /// same bytes come back on a retry); a table-map mismatch needs the stream to be read again from the
    /// transaction's start so the cache is rebuilt.
    pub fn class(&self) -> ErrorClass {
        match self {
            BinlogError::TableMismatch { .. } => ErrorClass::Resync,
            BinlogError::Malformed { .. } | BinlogError::Checksum { .. } | BinlogError::Unsupported { .. } | BinlogError::BadValue { .. } => ErrorClass::Fatal,
        }
    }

    /// The event type code the error happened in, when it is known.
    pub fn event_type(&self) -> Option<u8> {
        match self {
            BinlogError::Malformed { event_type, .. } | BinlogError::Checksum { event_type, .. } | BinlogError::Unsupported { event_type, .. } => {
                Some(*event_type)
            }
            BinlogError::BadValue { .. } | BinlogError::TableMismatch { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bytes_are_fatal_and_a_table_mismatch_needs_a_resync() {
        let e = BinlogError::Malformed { event_type: 0x13, offset: 20, reason: "truncated".into() };
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert!(e.to_string().contains("TABLE_MAP"), "{e}");
        let e = BinlogError::TableMismatch { table: "db.t".into(), rows_table_id: 1, rows_columns: 2, map_table_id: 3, map_columns: 2 };
        assert_eq!(e.class(), ErrorClass::Resync);
    }
}
