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

use super::binlog::{self, BinlogEvent, BinlogValue, ColumnMeta, Event, FieldType, FormatDescription, Query, RowImage, TableMap};
use super::statement::{self, Statement};
use crate::error::DecodeError;
use crate::event::{ChangeEvent, Row, TxId};
use crate::position::{BinlogPosition, GtidState, MariaGtid, Position, Timestamp, Tsid};
use crate::schema::{Column, ColumnType, MySqlType, ReplicaIdentity, TableName, TableSchema};
use crate::value::{TemporalKind, Utf8Bytes, Value};
use bytes::Bytes;
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
        }
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
                        out.events.push(ChangeEvent::Ddl { database: q.schema.clone(), statement: sql.to_string(), tables: Vec::new() });
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
            BinlogEvent::Rows(rows) => {
                let Some(open) = self.open.as_ref() else {
                    return Err(bad("binlog", "a rows event outside any transaction"));
                };
                if !open.begun {
                    return Err(bad("binlog", "a rows event before the transaction's BEGIN"));
                }
                if open.skipped {
                    return Ok(out);
                }
                let Some((tm, schema)) = self.tables.get(&rows.table_id) else {
                    return Err(DecodeError::UnknownRelation { relation_id: u32::try_from(rows.table_id).unwrap_or(u32::MAX) });
                };
                if let Some(schema) = schema.clone() {
                    // A session with foreign_key_checks = 0 wrote these rows: its changes did not
                    // cascade on blue, and must not on green.
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
                    for change in binlog::decode_rows(&rows, tm).map_err(DecodeError::Binlog)? {
                        out.events.push(row_event(&schema, tm, change)?);
                    }
                }
            }
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

    fn query(&mut self, out: &mut Decoded, q: &Query, seconds: u32, log_pos: u32) -> Result<(), DecodeError> {
        let ts = query_time(seconds, q);
        let (db, sql) = (q.schema.as_str(), q.sql_text());
        let statement = Statement::classify(&sql, db);
        let Some(open) = self.open.as_mut() else {
            return Err(match statement {
                Statement::Begin => bad(
                    "binlog",
                    "blue sends transactions without GTID events (a BEGIN query): MariaDB ignored @mariadb_slave_capability = 4, \
                     or GTIDs are off; turnout needs GTIDs to resume exactly — use MariaDB 10.0+ / MySQL with gtid_mode = ON",
                ),
                _ => bad("binlog", format!("a statement outside any transaction: {}", abbreviate(&sql))),
            });
        };
        match statement {
            Statement::Begin => {
                open.begun = true;
                return Ok(());
            }
            Statement::Commit => return self.commit(out, log_pos, ts),
            Statement::Savepoint => return Ok(()),
            Statement::Rollback => {
                return Err(bad("binlog", "a transaction logged with ROLLBACK (it changed a non-transactional table); turnout replicates InnoDB tables only"))
            }
            _ => {}
        }
        // MySQL marks no GTID standalone: a statement right after its GTID event, without a BEGIN, is
        // a whole transaction (DDL, TRUNCATE), as MariaDB's standalone GTIDs say outright.
        let standalone = open.standalone || (!open.begun && matches!(open.gtid, Some(Gtid::MySql { .. })));
        open.begun = true;
        let gtid = match &open.gtid {
            Some(Gtid::Maria(g)) => g.to_string(),
            Some(Gtid::MySql { tsid, number }) => format!("{tsid}:{number}"),
            None => "none".into(),
        };
        if open.skipped {
            // Whatever the statement, it is not passed on; a standalone one ends its transaction.
            return if standalone { self.commit(out, log_pos, ts) } else { Ok(()) };
        }
        // Where a refusal names the statement: its GTID and blue's session (thread id).
        let at = || format!("GTID {gtid}, blue session (thread id) {}", q.thread_id);
        match statement {
            Statement::Truncate(t) => {
                if let Some(schema) = self.selected_schema(&t) {
                    out.events.push(ChangeEvent::Truncate { tables: vec![schema], xid: None, cascade: false, restart_identity: false });
                }
            }
            Statement::Dml => {
                return Err(bad(
                    "binlog",
                    format!(
                        "blue logged a statement that can change rows as text instead of row events (`{}`, {}): that session runs with \
                         binlog_format = STATEMENT or MIXED, and turnout cannot know which rows it changed. Set binlog_format = ROW \
                         globally on blue and end the sessions opened before (pooled connections keep their own setting), then run \
                         `turnout teardown` and start over — green may already lack this statement's changes",
                        abbreviate(&sql),
                        at()
                    ),
                ))
            }
            Statement::Ddl { tables, additive } => {
                let replicated: Vec<&TableName> = tables.iter().filter(|t| (self.selects)(t)).collect();
                if !replicated.is_empty() {
                    if !additive && sql.trim_end().to_ascii_uppercase().ends_with("START TRANSACTION") {
                        // MySQL 8.0.21+ logs CREATE TABLE … SELECT as the table's DDL and its rows in one
                        // transaction; the rows would need the table first, outside it.
                        return Err(bad(
                            "binlog",
                            format!(
                                "blue created replicated table {} with CREATE TABLE … SELECT (`{}`, {}), which MySQL logs as the table and its \
                                 rows in one transaction; turnout cannot create a table mid-transaction on green. Leave such tables out \
                                 (tables.exclude) or create them with CREATE TABLE and then INSERT … SELECT; run `turnout teardown` and start over",
                                replicated[0],
                                abbreviate(&sql),
                                at()
                            ),
                        ));
                    }
                    if !additive {
                        return Err(bad(
                            "binlog",
                            format!(
                                "blue ran DDL on replicated table {} that turnout cannot apply safely: `{}` ({}); apply the same change on \
                                 green, then restart turnout (or run `turnout teardown` and start over)",
                                replicated[0],
                                abbreviate(&sql),
                                at()
                            ),
                        ));
                    }
                    if let Some((column, why)) = statement::unreproducible_column(&statement::tokens(&sql)) {
                        return Err(bad(
                            "binlog",
                            format!(
                                "blue added column `{column}` to {} and filled its existing rows with values green cannot reproduce: {why} \
                                 (`{}`, {}). Run `turnout teardown` and start over (the new snapshot copies blue's values), or give the \
                                 column a constant default on blue",
                                replicated[0],
                                abbreviate(&sql),
                                at()
                            ),
                        ));
                    }
                    out.events.push(ChangeEvent::Ddl {
                        database: db.to_owned(),
                        statement: with_session(q, seconds, &sql, self.explicit_defaults_for_timestamp),
                        tables: tables.clone(),
                    });
                    // The next table map announces the new shape.
                    for t in &tables {
                        self.announced.remove(t);
                    }
                }
            }
            Statement::Routine { object } => {
                if (self.selects)(&object) {
                    out.events.push(ChangeEvent::Ddl {
                        database: db.to_owned(),
                        statement: with_session(q, seconds, &sql, self.explicit_defaults_for_timestamp),
                        tables: Vec::new(),
                    });
                }
            }
            Statement::Refused(what) => {
                let fix = match what {
                    "a trigger" => {
                        "turnout never creates triggers on green before the cutover, where they would fire again for rows blue's \
                                    triggers already changed; drop it on blue and create it on both sides after the cutover"
                    }
                    "an event" => "an event on green would change rows that blue's binlog also carries; create events on green after the cutover",
                    _ => "turnout cannot replay it exactly on green",
                };
                return Err(bad(
                    "binlog",
                    format!("blue's binlog holds {what} (`{}`, {}): {fix}. Then run `turnout teardown` and start over", abbreviate(&sql), at()),
                ));
            }
            Statement::Unknown => {
                return Err(bad(
                    "binlog",
                    format!(
                        "blue's binlog holds a statement turnout does not recognise (`{}`, {}); it is never passed over, since it might \
                         change replicated rows. If it changes none, run `turnout teardown` and start over after it",
                        abbreviate(&sql),
                        at()
                    ),
                ));
            }
            Statement::DropDatabase(name) if self.databases.is_empty() || self.databases.contains(&name) => {
                return Err(bad(
                    "binlog",
                    format!(
                        "blue dropped database `{name}`, where replicated tables live (`{}`, {}); turnout will not drop them on green. \
                         Run `turnout teardown` and start over",
                        abbreviate(&sql),
                        at()
                    ),
                ));
            }
            Statement::DropDatabase(_) | Statement::NoRowChange | Statement::Begin | Statement::Commit | Statement::Savepoint | Statement::Rollback => {}
        }
        if standalone {
            self.commit(out, log_pos, ts)?;
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

/// When blue ran `q`: the event header's seconds and, where the server logged them, microseconds.
fn query_time(seconds: u32, q: &Query) -> Timestamp {
    Timestamp(i64::from(seconds) * 1_000_000 + i64::from(q.status.microseconds.unwrap_or(0)))
}

/// `sql` preceded by the session settings blue ran it with, as far as the Query event records them:
/// the statement's time (so `CURRENT_TIMESTAMP` defaults fill existing rows with blue's value), time
/// zone (a TIMESTAMP literal means the same instant), `sql_mode` and the character sets and
/// collations (literals, routine bodies and new columns as blue read them). The sink restores its
/// own session after running it.
fn with_session(q: &Query, seconds: u32, sql: &str, explicit_defaults_global: Option<bool>) -> String {
    let mut set = vec![match q.status.microseconds {
        Some(micros) => format!("timestamp = {seconds}.{micros:06}"),
        None => format!("timestamp = {seconds}"),
    }];
    if let Some(zone) = &q.status.time_zone {
        set.push(format!("time_zone = '{}'", zone.replace('\\', "\\\\").replace('\'', "''")));
    }
    if let Some(mode) = q.status.sql_mode {
        set.push(format!("sql_mode = {mode}"));
    }
    if let Some(c) = q.status.charset {
        set.push(format!("character_set_client = {}, collation_connection = {}, collation_server = {}", c.client, c.connection, c.server));
    }
    if let Some(db) = q.status.charset_database {
        set.push(format!("collation_database = {db}"));
    }
    // MySQL logs it for DDL with TIMESTAMP columns: with it OFF a new TIMESTAMP column is NOT NULL
    // DEFAULT CURRENT_TIMESTAMP, and existing rows get a time where blue's have NULL.
    if let Some(explicit) = q.status.explicit_defaults_for_timestamp.or(explicit_defaults_global) {
        set.push(format!("explicit_defaults_for_timestamp = {}", if explicit { "ON" } else { "OFF" }));
    }
    format!("SET {};\n{sql}", set.join(", "))
}

fn abbreviate(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        format!("{}…", one_line.chars().take(200).collect::<String>())
    } else {
        one_line
    }
}

/// A table's schema from its table map (binlog_row_metadata = FULL).
fn schema_of(name: &TableName, tm: &TableMap) -> Result<TableSchema, DecodeError> {
    if let Some(code) = tm.unknown_type {
        return Err(bad(
            "binlog",
            format!("{name} has a column of type {code}, which turnout cannot decode; leave the table out with tables.exclude = [\"{name}\"] or change the column's type on blue"),
        ));
    }
    let key: Vec<usize> = tm.primary_key.as_ref().map(|k| k.iter().map(|(i, _)| *i).collect()).unwrap_or_default();
    let mut columns = Vec::with_capacity(tm.columns.len());
    for (i, c) in tm.columns.iter().enumerate() {
        let Some(col_name) = c.name.clone() else {
            return Err(bad("binlog", format!("the table map of {name} has no column names; set binlog_row_metadata = FULL on blue")));
        };
        let real = c.real_type().uncompressed();
        let meta = match &c.meta {
            ColumnMeta::None | ColumnMeta::TypedArray { .. } => 0,
            ColumnMeta::Float { pack_length } | ColumnMeta::Enum { pack_length } | ColumnMeta::Set { pack_length } => u16::from(*pack_length),
            ColumnMeta::VarChar { max_length } | ColumnMeta::String { max_length } => *max_length,
            ColumnMeta::Bit { bits, bytes } => u16::from(*bytes) * 8 + u16::from(*bits),
            ColumnMeta::NewDecimal { precision, scale } => (u16::from(*precision) << 8) | u16::from(*scale),
            ColumnMeta::Blob { length_bytes } => u16::from(*length_bytes),
            ColumnMeta::Fsp(f) => u16::from(*f),
        };
        let members = c.members.as_ref().map(|m| m.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()).unwrap_or_default();
        let ty = MySqlType { code: real.code(), meta, unsigned: c.unsigned, charset: c.collation.and_then(|x| u16::try_from(x).ok()), members };
        columns.push(Column { name: col_name, ty: ColumnType::MySql(ty), is_key: key.is_empty() || key.contains(&i) });
    }
    Ok(TableSchema {
        relation_id: tm.table_id,
        name: name.clone(),
        replica_identity: if key.is_empty() { ReplicaIdentity::Full } else { ReplicaIdentity::Default },
        columns,
        foreign_key_checks: true,
    })
}

/// A row of a rows event as a change event.
fn row_event(schema: &Arc<TableSchema>, tm: &TableMap, change: binlog::RowChange) -> Result<ChangeEvent, DecodeError> {
    // A column absent from an image is `Unchanged`: MariaDB 11 leaves generated columns out even
    // under binlog_row_image = FULL, and green computes those itself. Any other absent column (a
    // session with binlog_row_image = MINIMAL) makes the sink refuse the row when it would need the
    // value, naming the column; a key column is refused here, as the row could not be found.
    let row = |image: RowImage| -> Result<Row, DecodeError> {
        let key_missing: Vec<String> = image.absent_columns().filter(|i| schema.columns.get(*i).is_some_and(|c| c.is_key)).map(|i| tm.column_name(i)).collect();
        if !key_missing.is_empty() && schema.replica_identity != ReplicaIdentity::Full {
            return Err(bad(
                "binlog",
                format!("a row image of {} lacks key columns {}; set binlog_row_image = FULL on blue", schema.name, key_missing.join(", ")),
            ));
        }
        image
            .into_columns()
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Some(v) => value(&tm.columns[i].real_type(), v).map(|v| padded(schema.columns.get(i).map(|c| &c.ty), v)),
                None => Ok(Value::Unchanged),
            })
            .collect()
    };
    let key_of = |r: &Row| -> Row { schema.key_indexes().map(|i| r[i].clone()).collect() };
    let full = schema.replica_identity == ReplicaIdentity::Full;
    Ok(match change {
        binlog::RowChange::Insert { after } => ChangeEvent::Insert { table: Arc::clone(schema), xid: None, after: row(after)? },
        binlog::RowChange::Update { before, after } => {
            let before = row(before)?;
            let after = row(after)?;
            ChangeEvent::Update { table: Arc::clone(schema), xid: None, key: key_of(&before), before: full.then_some(before), after }
        }
        binlog::RowChange::Delete { before } => {
            let before = row(before)?;
            ChangeEvent::Delete { table: Arc::clone(schema), xid: None, key: key_of(&before), before: full.then_some(before) }
        }
    })
}

fn frac(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    }
}

/// A `BINARY(n)` value with the trailing zero bytes the binlog leaves out put back: the server stores
/// and compares all `n` bytes, so `X'00'` would neither find nor write the row holding `0x00000000`.
fn padded(ty: Option<&ColumnType>, v: Value) -> Value {
    match (ty, v) {
        (Some(ColumnType::MySql(t)), Value::Bytes(b)) if t.code == 254 && matches!(t.charset, None | Some(63)) && b.len() < usize::from(t.meta) => {
            let mut full = b.to_vec();
            full.resize(usize::from(t.meta), 0);
            Value::Bytes(Bytes::from(full))
        }
        (_, v) => v,
    }
}

/// A binlog value in the model (see `MySqlType` and the sink's literal rules).
fn value(field: &FieldType, v: BinlogValue) -> Result<Value, DecodeError> {
    let temporal = |kind, s: String| Value::Temporal(kind, Utf8Bytes::from_string(s));
    Ok(match v {
        BinlogValue::Null => Value::Null,
        BinlogValue::Int(i) => Value::Int8(i),
        BinlogValue::UInt(u) => Value::UInt8(u),
        BinlogValue::Float(f) => Value::Float4(f),
        BinlogValue::Double(f) => Value::Float8(f),
        BinlogValue::Decimal(d) => Value::Numeric(Utf8Bytes::from_string(d)),
        BinlogValue::Year(y) => Value::Int8(i64::from(y)),
        BinlogValue::Date { year, month, day } => temporal(TemporalKind::Date, format!("{year:04}-{month:02}-{day:02}")),
        BinlogValue::Time { negative, hours, minutes, seconds, micros } => {
            temporal(TemporalKind::Time, format!("{}{hours:02}:{minutes:02}:{seconds:02}{}", if negative { "-" } else { "" }, frac(micros)))
        }
        BinlogValue::DateTime { year, month, day, hour, minute, second, micros } => {
            temporal(TemporalKind::Timestamp, format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}{}", frac(micros)))
        }
        BinlogValue::Timestamp { seconds, micros } => temporal(TemporalKind::TimestampTz, utc_datetime(seconds, micros)),
        BinlogValue::Bit { bytes, .. } => Value::Bytes(Bytes::from(bytes)),
        BinlogValue::Enum(i) => Value::UInt8(u64::from(i)),
        BinlogValue::Set(m) => Value::UInt8(m),
        BinlogValue::Bytes(b) | BinlogValue::Geometry(b) => Value::Bytes(Bytes::from(b)),
        BinlogValue::Json(text) => {
            let _ = field;
            Value::Json { jsonb: false, text: Utf8Bytes::from_string(text) }
        }
        BinlogValue::TypedJson { text, sql } => Value::TypedJson { text: Utf8Bytes::from_string(text), sql: Utf8Bytes::from_string(sql) },
    })
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC for seconds since the epoch; 0 is MySQL's zero timestamp.
fn utc_datetime(seconds: u32, micros: u32) -> String {
    if seconds == 0 && micros == 0 {
        return "0000-00-00 00:00:00".into();
    }
    let days = i64::from(seconds / 86_400);
    let rem = seconds % 86_400;
    let (year, month, day) = crate::calendar::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}{}", rem / 3600, rem % 3600 / 60, rem % 60, frac(micros))
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
