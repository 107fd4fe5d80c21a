//! The event type codes (MySQL `Log_event_type`, MariaDB's additions from 160 on) and [`BinlogEvent`], one
//! parsed event of any family. Types this parser does not decode come back as [`BinlogEvent::Unknown`] with
//! their body: nothing is skipped silently, the caller decides.

use super::annotate::AnnotateRows;
use super::checkpoint::BinlogCheckpoint;
use super::format::FormatDescription;
use super::gtid_list::GtidList;
use super::gtid_mariadb::MariaGtid;
use super::gtid_mysql::{MysqlGtid, PreviousGtids};
use super::header::EventHeader;
use super::heartbeat::Heartbeat;
use super::query::Query;
use super::rotate::Rotate;
use super::rows::RowsEvent;
use super::table_map::TableMap;
use super::xid::{XaPrepare, Xid};

/// Event type codes.
pub mod event_type {
    pub const QUERY: u8 = 0x02;
    pub const STOP: u8 = 0x03;
    pub const ROTATE: u8 = 0x04;
    pub const FORMAT_DESCRIPTION: u8 = 0x0F;
    pub const XID: u8 = 0x10;
    pub const TABLE_MAP: u8 = 0x13;
    pub const WRITE_ROWS_V1: u8 = 0x17;
    pub const UPDATE_ROWS_V1: u8 = 0x18;
    pub const DELETE_ROWS_V1: u8 = 0x19;
    pub const HEARTBEAT: u8 = 0x1B;
    /// MySQL 8.0.26+: the dump thread's heartbeat with its fields as type-length-value entries.
    pub const HEARTBEAT_V2: u8 = 0x29;
    /// MySQL 8.3+: the GTID event of a tagged transaction.
    pub const MYSQL_GTID_TAGGED: u8 = 0x2A;
    pub const ROWS_QUERY: u8 = 0x1D;
    pub const WRITE_ROWS_V2: u8 = 0x1E;
    pub const UPDATE_ROWS_V2: u8 = 0x1F;
    pub const DELETE_ROWS_V2: u8 = 0x20;
    pub const MYSQL_GTID: u8 = 0x21;
    pub const MYSQL_ANONYMOUS_GTID: u8 = 0x22;
    pub const PREVIOUS_GTIDS: u8 = 0x23;
    pub const XA_PREPARE: u8 = 0x26;
    pub const PARTIAL_UPDATE_ROWS: u8 = 0x27;
    pub const TRANSACTION_PAYLOAD: u8 = 0x28;
    pub const MARIADB_ANNOTATE_ROWS: u8 = 0xA0;
    pub const MARIADB_BINLOG_CHECKPOINT: u8 = 0xA1;
    pub const MARIADB_GTID: u8 = 0xA2;
    pub const MARIADB_GTID_LIST: u8 = 0xA3;
    pub const MARIADB_START_ENCRYPTION: u8 = 0xA4;
    pub const MARIADB_QUERY_COMPRESSED: u8 = 0xA5;
    pub const MARIADB_WRITE_ROWS_COMPRESSED_V1: u8 = 0xA6;
    pub const MARIADB_UPDATE_ROWS_COMPRESSED_V1: u8 = 0xA7;
    pub const MARIADB_DELETE_ROWS_COMPRESSED_V1: u8 = 0xA8;
    pub const MARIADB_WRITE_ROWS_COMPRESSED: u8 = 0xA9;
    pub const MARIADB_UPDATE_ROWS_COMPRESSED: u8 = 0xAA;
    pub const MARIADB_DELETE_ROWS_COMPRESSED: u8 = 0xAB;

    /// The server's name for an event type code (`UNKNOWN` for others).
    pub fn name(code: u8) -> &'static str {
        match code {
            0x01 => "START_V3",
            QUERY => "QUERY",
            STOP => "STOP",
            ROTATE => "ROTATE",
            0x05 => "INTVAR",
            0x06 => "LOAD",
            0x07 => "SLAVE",
            0x08 => "CREATE_FILE",
            0x09 => "APPEND_BLOCK",
            0x0A => "EXEC_LOAD",
            0x0B => "DELETE_FILE",
            0x0C => "NEW_LOAD",
            0x0D => "RAND",
            0x0E => "USER_VAR",
            FORMAT_DESCRIPTION => "FORMAT_DESCRIPTION",
            XID => "XID",
            0x11 => "BEGIN_LOAD_QUERY",
            0x12 => "EXECUTE_LOAD_QUERY",
            TABLE_MAP => "TABLE_MAP",
            0x14 => "PRE_GA_WRITE_ROWS",
            0x15 => "PRE_GA_UPDATE_ROWS",
            0x16 => "PRE_GA_DELETE_ROWS",
            WRITE_ROWS_V1 => "WRITE_ROWS_V1",
            UPDATE_ROWS_V1 => "UPDATE_ROWS_V1",
            DELETE_ROWS_V1 => "DELETE_ROWS_V1",
            0x1A => "INCIDENT",
            HEARTBEAT => "HEARTBEAT",
            0x1C => "IGNORABLE",
            ROWS_QUERY => "ROWS_QUERY",
            WRITE_ROWS_V2 => "WRITE_ROWS",
            UPDATE_ROWS_V2 => "UPDATE_ROWS",
            DELETE_ROWS_V2 => "DELETE_ROWS",
            MYSQL_GTID => "GTID",
            MYSQL_ANONYMOUS_GTID => "ANONYMOUS_GTID",
            PREVIOUS_GTIDS => "PREVIOUS_GTIDS",
            0x24 => "TRANSACTION_CONTEXT",
            0x25 => "VIEW_CHANGE",
            XA_PREPARE => "XA_PREPARE",
            PARTIAL_UPDATE_ROWS => "PARTIAL_UPDATE_ROWS",
            TRANSACTION_PAYLOAD => "TRANSACTION_PAYLOAD",
            HEARTBEAT_V2 => "HEARTBEAT_V2",
            MYSQL_GTID_TAGGED => "GTID_TAGGED",
            MARIADB_ANNOTATE_ROWS => "ANNOTATE_ROWS",
            MARIADB_BINLOG_CHECKPOINT => "BINLOG_CHECKPOINT",
            MARIADB_GTID => "MARIADB_GTID",
            MARIADB_GTID_LIST => "GTID_LIST",
            MARIADB_START_ENCRYPTION => "START_ENCRYPTION",
            MARIADB_QUERY_COMPRESSED => "QUERY_COMPRESSED",
            MARIADB_WRITE_ROWS_COMPRESSED_V1 => "WRITE_ROWS_COMPRESSED_V1",
            MARIADB_UPDATE_ROWS_COMPRESSED_V1 => "UPDATE_ROWS_COMPRESSED_V1",
            MARIADB_DELETE_ROWS_COMPRESSED_V1 => "DELETE_ROWS_COMPRESSED_V1",
            MARIADB_WRITE_ROWS_COMPRESSED => "WRITE_ROWS_COMPRESSED",
            MARIADB_UPDATE_ROWS_COMPRESSED => "UPDATE_ROWS_COMPRESSED",
            MARIADB_DELETE_ROWS_COMPRESSED => "DELETE_ROWS_COMPRESSED",
            _ => "UNKNOWN",
        }
    }
}

/// One parsed event: its common header and its body.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub header: EventHeader,
    pub event: BinlogEvent,
}

/// The body of one event, by family.
#[derive(Clone, Debug, PartialEq)]
pub enum BinlogEvent {
    FormatDescription(FormatDescription),
    Rotate(Rotate),
    Query(Query),
    Xid(Xid),
    XaPrepare(XaPrepare),
    /// STOP_EVENT (0x03): the server shut down; the body is empty.
    Stop,
    MariaGtid(MariaGtid),
    GtidList(GtidList),
    BinlogCheckpoint(BinlogCheckpoint),
    AnnotateRows(AnnotateRows),
    /// MySQL GTID_LOG_EVENT (0x21), ANONYMOUS_GTID_LOG_EVENT (0x22) or GTID_TAGGED_LOG_EVENT (0x2A).
    MysqlGtid(MysqlGtid),
    PreviousGtids(PreviousGtids),
    Heartbeat(Heartbeat),
    /// MySQL: a transaction's events in one (compressed) payload.
    TransactionPayload(super::payload::TransactionPayload),
    TableMap(TableMap),
    /// WRITE/UPDATE/DELETE rows, version 1 or 2; decode its rows with [`super::decode_rows`].
    Rows(RowsEvent),
    /// An event type this parser does not decode: its code and body (without header and checksum).
    Unknown {
        type_code: u8,
        data: Vec<u8>,
    },
}

impl BinlogEvent {
    /// True for an event that ends a transaction: XID, a `COMMIT` query, an XA PREPARE.
    pub fn ends_transaction(&self) -> bool {
        match self {
            BinlogEvent::Xid(_) | BinlogEvent::XaPrepare(_) => true,
            BinlogEvent::Query(q) => q.is_commit(),
            _ => false,
        }
    }
}
