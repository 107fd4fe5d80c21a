//! The stateful binlog decoder: owns the format description, the current binlog file, the GTID state
//! and the table-map cache, and turns parsed binlog events into source-neutral [`ChangeEvent`]s.
//!
//! Transactions: a GTID event (MariaDB's, or MySQL's followed by a `BEGIN` query) opens one; an XID
//! event, or a `COMMIT` query, ends it with a [`Position::Binlog`] just past the event and the GTID
//! state including it. A standalone GTID (DDL) holds exactly one statement. Only tables `selects`
//! accepts produce row events; others are read and dropped.
//!
//! Guarantees: nothing is skipped silently — an unknown event type, row images that are not complete
//! (`binlog_row_image` must be FULL), a table map without column names (`binlog_row_metadata` must be
//! FULL), a transaction without a GTID (MariaDB ignoring `@mariadb_slave_capability = 4`), and every
//! Query event the classifier ([`super::statement`]) does not know to be harmless or replayable — a
//! row change logged as a statement, triggers, events, XA, sequences, dropping the replicated
//! database, DDL on a replicated table other than `ALTER TABLE … ADD` (columns or indexes) and
//! `TRUNCATE`, an added column whose existing rows green cannot fill the same, anything
//! unrecognised — is an error naming the statement, its GTID, blue's session and the fix. DDL that is
//! replayed (additive `ALTER TABLE`, views and routines) carries blue's session context (statement
//! time, time zone, `sql_mode`, character sets) ahead of it.
//! Schemas: the first table map of a table, and every one that differs from the last, is announced
//! with a `Relation` before its rows.
//!
//! A decoder built with [`BinlogDecoder::dropping`] passes on nothing of a transaction in one of
//! the given MariaDB GTID domains or with one of the given MySQL GTID tags (turnout's own writes,
//! read back by a reverse stream or a watch): no `Begin`, rows, DDL or `Commit` — but its GTID still
//! enters the state, so positions after it include it.

mod query;
mod rows;

use super::binlog::{self, BinlogEvent, BinlogValue, ColumnMeta, Event, FieldType, FormatDescription, Query, RowImage, TableMap};
use super::statement::{self, Statement};
use crate::error::DecodeError;
use crate::event::{ChangeEvent, Creates, Row, TxId};
use crate::position::{BinlogPosition, GtidState, MariaGtid, Position, Timestamp, Tsid};
use crate::schema::{Column, ColumnType, MySqlType, ReplicaIdentity, TableName, TableSchema};
use crate::value::{TemporalKind, Utf8Bytes, Value};
use bytes::Bytes;
use rows::{row_event, schema_of};
use std::collections::HashMap;
use std::sync::Arc;

/// What one binlog event decoded to.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Change events, in order.
    pub events: Vec<ChangeEvent>,
    /// How far the binlog reaches (from the event's header), when the event says.
    pub log_end: Option<Position>,
}

/// The transaction being read.
#[derive(Debug)]
struct Open {
    gtid: Option<Gtid>,
    ts: Timestamp,
    /// A standalone GTID: one statement, no XID.
    standalone: bool,
    /// A MySQL GTID is followed by a `BEGIN` query before the first change.
    begun: bool,
    /// One of turnout's own ([`OwnWrites`]): nothing of it is passed on.
    skipped: bool,
}

#[derive(Clone, Debug)]
enum Gtid {
    Maria(MariaGtid),
    MySql { tsid: Tsid, number: u64 },
}

/// turnout's own writes in a binlog, which a decoder drops whole: the GTID domains (MariaDB) and the
/// GTID tags (MySQL 8.3+) turnout's sessions write in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnWrites {
    pub domains: Vec<u32>,
    pub tags: Vec<String>,
}

impl OwnWrites {
    /// Whether a transaction of `gtid` is one of these.
    fn holds(&self, gtid: &Gtid) -> bool {
        match gtid {
            Gtid::Maria(g) => self.domains.contains(&g.domain),
            Gtid::MySql { tsid, .. } => !tsid.tag.is_empty() && self.tags.contains(&tsid.tag),
        }
    }
}

/// Which tables replicate.
pub type TableSelector = Box<dyn Fn(&TableName) -> bool + Send + Sync>;

/// Decodes one binlog stream. Create one per connection.
pub struct BinlogDecoder {
    fde: FormatDescription,
    file: String,
    gtids: GtidState,
    tables: HashMap<u64, (TableMap, Option<Arc<TableSchema>>)>,
    announced: HashMap<TableName, Arc<TableSchema>>,
    /// Per table id: a schema and its copy for rows written without foreign key checks.
    unchecked: HashMap<u64, (Arc<TableSchema>, Arc<TableSchema>)>,
    open: Option<Open>,
    selects: TableSelector,
    /// Transactions read and dropped.
    own: OwnWrites,
    /// The databases replicated tables live in; dropping one stops the stream (all, when empty).
    databases: Vec<String>,
    /// Blue's global `explicit_defaults_for_timestamp`, for replayed DDL whose Query event does not
    /// record it (MariaDB never does; MySQL logs it for DDL with TIMESTAMP columns).
    explicit_defaults_for_timestamp: Option<bool>,
    /// Reading a log for what was written there (the watch for writes that are not turnout's): a
    /// statement a stream would refuse is passed on as [`ChangeEvent::Ddl`] instead, to be counted.
    watching: bool,
    /// A plain `CREATE TABLE` of a selected table is passed on ([`BinlogDecoder::creating_tables`]).
    creating_tables: bool,
}

impl std::fmt::Debug for BinlogDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogDecoder").field("file", &self.file).field("gtids", &self.gtids.to_string()).finish_non_exhaustive()
    }
}

fn bad(context: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Unsupported { context, reason: reason.into() }
}

impl BinlogDecoder {
    /// A decoder for a stream that starts after `gtids` (the state replication resumes from).
    pub fn new(gtids: GtidState, selects: TableSelector) -> BinlogDecoder {
        BinlogDecoder {
            fde: FormatDescription::default_v4(),
            file: String::new(),
            gtids,
            tables: HashMap::new(),
            announced: HashMap::new(),
            unchecked: HashMap::new(),
            open: None,
            selects,
            own: OwnWrites::default(),
            databases: Vec::new(),
            explicit_defaults_for_timestamp: None,
            watching: false,
            creating_tables: false,
        }
    }

    /// For a stream whose target makes each table from blue's catalog itself (across engines): a
    /// `CREATE TABLE` of one selected table that creates it empty, as its own transaction, is passed
    /// on as [`ChangeEvent::Ddl`] with `creates` — its rows follow in the binlog. Without it (and for
    /// `CREATE OR REPLACE`, `CREATE TABLE … SELECT`) the stream stops naming the statement.
    pub fn creating_tables(mut self, creating: bool) -> BinlogDecoder {
        self.creating_tables = creating;
        self
    }

    /// For the watch for writes that are not turnout's: statements a replicating stream refuses
    /// (DDL it cannot apply, statement-format DML, …) are passed on as [`ChangeEvent::Ddl`] — each
    /// one is a write on the watched side, which the watch counts; nothing is applied from it.
    pub fn watching(mut self, watching: bool) -> BinlogDecoder {
        self.watching = watching;
        self
    }

    /// The databases the replicated tables live in: a `DROP DATABASE` of another one changes none of
    /// their rows. Without them every `DROP DATABASE` stops the stream.
    pub fn replicating(mut self, databases: Vec<String>) -> BinlogDecoder {
        self.databases = databases;
        self
    }

    /// Replays DDL with `explicit_defaults_for_timestamp` set to blue's global value where the Query
    /// event does not record the session's own (with it OFF, an added TIMESTAMP column is NOT NULL
    /// DEFAULT CURRENT_TIMESTAMP and fills existing rows; green's session has it ON).
    pub fn with_explicit_defaults_for_timestamp(mut self, global: Option<bool>) -> BinlogDecoder {
        self.explicit_defaults_for_timestamp = global;
        self
    }

    /// Drops every transaction of `own` (see the module documentation).
    pub fn dropping(mut self, own: OwnWrites) -> BinlogDecoder {
        self.own = own;
        self
    }

    /// The GTID state including every transaction this stream committed.
    pub fn gtids(&self) -> &GtidState {
        &self.gtids
    }

    /// The binlog file being read.
    pub fn file(&self) -> &str {
        &self.file
    }

    fn position(&self, offset: u32) -> Position {
        Position::Binlog(BinlogPosition { file: self.file.clone(), offset: u64::from(offset), gtids: self.gtids.clone() })
    }

    /// Parses and decodes one complete raw event (header, body and checksum).
    pub fn decode(&mut self, raw: &[u8]) -> Result<Decoded, DecodeError> {
        let event = binlog::parse_event(raw, &self.fde).map_err(DecodeError::Binlog)?;
        self.apply(event)
    }

    /// Decodes one parsed event.
    pub fn apply(&mut self, event: Event) -> Result<Decoded, DecodeError> {
        let Event { header, event } = event;
        let mut out = Decoded::default();
        let ts = Timestamp(i64::from(header.timestamp) * 1_000_000);
        // Artificial events (the fake Rotate a dump starts with) and heartbeats carry no real offset.
        if header.log_pos != 0 && !self.file.is_empty() {
            out.log_end = Some(self.position(header.log_pos));
        }
        match event {
            BinlogEvent::FormatDescription(fde) => self.fde = fde,
            BinlogEvent::Rotate(r) => {
                self.file = r.file_name;
                out.log_end = None;
            }
            BinlogEvent::Heartbeat(_) => {}
            BinlogEvent::TransactionPayload(p) => return self.payload(&p, header.log_pos),
            BinlogEvent::GtidList(_) | BinlogEvent::BinlogCheckpoint(_) | BinlogEvent::AnnotateRows(_) | BinlogEvent::PreviousGtids(_) | BinlogEvent::Stop => {}
            BinlogEvent::MariaGtid(g) => {
                let gtid = Gtid::Maria(MariaGtid { domain: g.domain_id, server: header.server_id, sequence: g.seq_no });
                let skipped = self.own.holds(&gtid);
                self.begin(&mut out, gtid, ts, g.is_standalone(), skipped)?;
                if let Some(o) = self.open.as_mut() {
                    o.begun = true;
                }
                if g.xa_id.is_some() {
                    return Err(bad(
                        "binlog",
                        "an XA transaction: turnout cannot replicate XA PREPARE / XA COMMIT; finish XA transactions on blue before replicating",
                    ));
                }
            }
            BinlogEvent::MysqlGtid(g) => {
                if !g.assigned {
                    return Err(bad("binlog", "an anonymous transaction: MySQL must run with gtid_mode = ON"));
                }
                let tsid = Tsid { uuid: g.uuid.0, tag: g.tag.unwrap_or_default() };
                let gtid = Gtid::MySql { tsid, number: u64::try_from(g.gno).unwrap_or_default() };
                let skipped = self.own.holds(&gtid);
                self.begin(&mut out, gtid, ts, false, skipped)?;
            }
            BinlogEvent::Query(q) => {
                let standalone = self.open.as_ref().map(|o| o.standalone || (!o.begun && matches!(o.gtid, Some(Gtid::MySql { .. }))));
                match self.query(&mut out, &q, header.timestamp, header.log_pos) {
                    Err(DecodeError::Unsupported { .. }) if self.watching && self.open.is_some() => {
                        let sql = q.sql_text();
                        out.events.push(ChangeEvent::Ddl { database: q.schema.clone(), statement: sql.to_string(), tables: Vec::new(), creates: Creates::No });
                        if standalone == Some(true) || sql.trim().eq_ignore_ascii_case("ROLLBACK") {
                            self.commit(&mut out, header.log_pos, ts)?;
                        }
                    }
                    other => other?,
                }
            }
            BinlogEvent::TableMap(tm) if self.skipping() => {
                // Its rows are dropped; the next transaction maps the table again.
                self.tables.insert(tm.table_id, (tm, None));
            }
            BinlogEvent::TableMap(tm) => self.table_map(&mut out, tm)?,
            BinlogEvent::Rows(rows) => self.rows(&mut out, &rows)?,
            BinlogEvent::Xid(_) => self.commit(&mut out, header.log_pos, ts)?,
            BinlogEvent::XaPrepare(_) => return Err(bad("binlog", "an XA PREPARE: turnout cannot replicate XA transactions; finish them on blue first")),
            BinlogEvent::Unknown { type_code, .. } => {
                return Err(bad(
                    "binlog",
                    format!("event type {type_code} ({}) is not understood, and turnout never skips an event silently", binlog::event_type::name(type_code)),
                ))
            }
        }
        Ok(out)
    }

    /// A rows event of the open transaction: its row changes, with the table's schema as the
    /// session that wrote them saw foreign keys; nothing for a skipped transaction or table.
    fn rows(&mut self, out: &mut Decoded, rows: &binlog::RowsEvent) -> Result<(), DecodeError> {
        let Some(open) = self.open.as_ref() else {
            return Err(bad("binlog", "a rows event outside any transaction"));
        };
        if !open.begun {
            return Err(bad("binlog", "a rows event before the transaction's BEGIN"));
        }
        if open.skipped {
            return Ok(());
        }
        let Some((tm, schema)) = self.tables.get(&rows.table_id) else {
            return Err(DecodeError::UnknownRelation { relation_id: u32::try_from(rows.table_id).unwrap_or(u32::MAX) });
        };
        if let Some(schema) = schema.clone() {
            // Rows a session wrote with foreign_key_checks = 0 did not cascade on blue, and must
            // not on green; where MySQL's SQL layer enforces foreign keys, the cascaded rows are
            // logged themselves, so green must not cascade again either.
            let unchecked = binlog::rows_flags::NO_FOREIGN_KEY_CHECKS | binlog::rows_flags::USE_SQL_FOREIGN_KEY;
            let schema = if rows.flags & unchecked != 0 {
                match self.unchecked.get(&rows.table_id) {
                    Some((checked, unchecked)) if Arc::ptr_eq(checked, &schema) => Arc::clone(unchecked),
                    _ => {
                        let unchecked = Arc::new(TableSchema { foreign_key_checks: false, ..(*schema).clone() });
                        self.unchecked.insert(rows.table_id, (schema, Arc::clone(&unchecked)));
                        unchecked
                    }
                }
            } else {
                schema
            };
            for change in binlog::decode_rows(rows, tm).map_err(DecodeError::Binlog)? {
                out.events.push(row_event(&schema, tm, change)?);
            }
        }
        Ok(())
    }

    /// A MySQL transaction payload: its events, decompressed, decoded in order as if they had come one
    /// by one. They end where the payload ends (`log_pos`), which is where its commit is.
    fn payload(&mut self, p: &binlog::TransactionPayload, log_pos: u32) -> Result<Decoded, DecodeError> {
        let inner_fde = binlog::FormatDescription { checksum: binlog::ChecksumAlg::Off, ..self.fde.clone() };
        let mut out = Decoded::default();
        let events = p.events().map_err(|e| bad("binlog", format!("a transaction payload: {e}")))?;
        for raw in &events {
            let mut event = binlog::parse_event(raw, &inner_fde).map_err(DecodeError::Binlog)?;
            if matches!(event.event, BinlogEvent::TransactionPayload(_) | BinlogEvent::FormatDescription(_) | BinlogEvent::Rotate(_)) {
                return Err(bad("binlog", format!("a transaction payload holds a {} event", binlog::event_type::name(event.header.type_code))));
            }
            event.header.log_pos = log_pos;
            let decoded = self.apply(event)?;
            out.events.extend(decoded.events);
            out.log_end = decoded.log_end.or(out.log_end);
        }
        Ok(out)
    }

    /// Whether the open transaction is one of the skipped domain's.
    fn skipping(&self) -> bool {
        self.open.as_ref().is_some_and(|o| o.skipped)
    }

    fn begin(&mut self, out: &mut Decoded, gtid: Gtid, ts: Timestamp, standalone: bool, skipped: bool) -> Result<(), DecodeError> {
        if self.open.is_some() {
            return Err(bad("binlog", "a new transaction began before the previous one ended"));
        }
        let xid: TxId = match &gtid {
            Gtid::Maria(g) => g.sequence,
            Gtid::MySql { number, .. } => *number,
        };
        self.open = Some(Open { gtid: Some(gtid), ts, standalone, begun: false, skipped });
        if !skipped {
            out.events.push(ChangeEvent::Begin { xid, commit_position: None, commit_ts: ts });
        }
        Ok(())
    }

    fn commit(&mut self, out: &mut Decoded, log_pos: u32, ts: Timestamp) -> Result<(), DecodeError> {
        let open = self.open.take().ok_or_else(|| bad("binlog", "a commit without a transaction"))?;
        match open.gtid {
            Some(Gtid::Maria(g)) => self.gtids.push_maria(g),
            Some(Gtid::MySql { tsid, number }) if !self.gtids.push_mysql(&tsid, number) => {
                return Err(bad("binlog", format!("blue sent transaction {tsid}:{number} again: it is already in the GTID set turnout has applied")));
            }
            Some(Gtid::MySql { .. }) | None => {}
        }
        let position = self.position(log_pos);
        out.log_end = Some(position.clone());
        if !open.skipped {
            out.events.push(ChangeEvent::Commit { position, commit_ts: open.ts.max(ts) });
        }
        Ok(())
    }

    /// The last announced schema of a selected table.
    fn selected_schema(&self, t: &TableName) -> Option<Arc<TableSchema>> {
        if !(self.selects)(t) {
            return None;
        }
        self.announced.get(t).cloned().or_else(|| {
            Some(Arc::new(TableSchema {
                relation_id: 0,
                name: t.clone(),
                replica_identity: ReplicaIdentity::Full,
                columns: Vec::new(),
                foreign_key_checks: true,
            }))
        })
    }

    fn table_map(&mut self, out: &mut Decoded, tm: TableMap) -> Result<(), DecodeError> {
        let name = TableName::new(tm.schema.clone(), tm.table.clone());
        if !(self.selects)(&name) {
            self.tables.insert(tm.table_id, (tm, None));
            return Ok(());
        }
        let schema = Arc::new(schema_of(&name, &tm)?);
        let same = self.announced.get(&name).is_some_and(|s| s.columns == schema.columns && s.replica_identity == schema.replica_identity);
        let schema = if same {
            self.announced.get(&name).cloned().unwrap_or(schema)
        } else {
            self.announced.insert(name, Arc::clone(&schema));
            out.events.push(ChangeEvent::Relation(Arc::clone(&schema)));
            schema
        };
        self.tables.insert(tm.table_id, (tm, Some(schema)));
        Ok(())
    }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
