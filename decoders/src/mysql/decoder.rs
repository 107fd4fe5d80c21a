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
//! FULL), a statement-based row change, a transaction without a GTID (MariaDB ignoring
//! `@mariadb_slave_capability = 4`), XA, or DDL on a replicated table other than `ALTER TABLE … ADD`
//! (columns or indexes) and `TRUNCATE` is an error naming the setting or statement and the fix.
//! Schemas: the first table map of a table, and every one that differs from the last, is announced
//! with a `Relation` before its rows.
//!
//! A decoder built with [`BinlogDecoder::skipping_domain`] passes on nothing of a MariaDB
//! transaction in that GTID domain (turnout's own writes, read back by a reverse stream): no
//! `Begin`, rows, DDL or `Commit` — but its GTID still enters the state, so positions after it
//! include it.

use super::binlog::{self, BinlogEvent, BinlogValue, ColumnMeta, Event, FieldType, FormatDescription, RowImage, TableMap};
use crate::error::DecodeError;
use crate::event::{ChangeEvent, Row, TxId};
use crate::position::{BinlogPosition, GtidState, MariaGtid, Position, Timestamp};
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
    /// In the skipped GTID domain: nothing of it is passed on.
    skipped: bool,
}

#[derive(Clone, Copy, Debug)]
enum Gtid {
    Maria(MariaGtid),
    MySql { uuid: [u8; 16], number: u64 },
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
    /// The MariaDB GTID domain whose transactions are read and dropped.
    skip_domain: Option<u32>,
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
            skip_domain: None,
        }
    }

    /// Drops every transaction in MariaDB GTID domain `domain` (see the module documentation).
    pub fn skipping_domain(mut self, domain: Option<u32>) -> BinlogDecoder {
        self.skip_domain = domain;
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
            BinlogEvent::GtidList(_) | BinlogEvent::BinlogCheckpoint(_) | BinlogEvent::AnnotateRows(_) | BinlogEvent::PreviousGtids(_) | BinlogEvent::Stop => {}
            BinlogEvent::MariaGtid(g) => {
                let skipped = self.skip_domain == Some(g.domain_id);
                self.begin(
                    &mut out,
                    Gtid::Maria(MariaGtid { domain: g.domain_id, server: header.server_id, sequence: g.seq_no }),
                    ts,
                    g.is_standalone(),
                    skipped,
                )?;
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
                let gtid = Gtid::MySql { uuid: g.uuid.0, number: u64::try_from(g.gno).unwrap_or_default() };
                self.begin(&mut out, gtid, ts, false, false)?;
            }
            BinlogEvent::Query(q) => self.query(&mut out, &q.schema, &q.sql_text(), header.log_pos, ts)?,
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
                    let schema = if rows.flags & binlog::rows_flags::NO_FOREIGN_KEY_CHECKS != 0 {
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

    /// Whether the open transaction is one of the skipped domain's.
    fn skipping(&self) -> bool {
        self.open.as_ref().is_some_and(|o| o.skipped)
    }

    fn begin(&mut self, out: &mut Decoded, gtid: Gtid, ts: Timestamp, standalone: bool, skipped: bool) -> Result<(), DecodeError> {
        if self.open.is_some() {
            return Err(bad("binlog", "a new transaction began before the previous one ended"));
        }
        let xid: TxId = match gtid {
            Gtid::Maria(g) => g.sequence,
            Gtid::MySql { number, .. } => number,
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
            Some(Gtid::MySql { uuid, number }) => push_mysql(&mut self.gtids, uuid, number),
            None => {}
        }
        let position = self.position(log_pos);
        out.log_end = Some(position.clone());
        if !open.skipped {
            out.events.push(ChangeEvent::Commit { position, commit_ts: open.ts.max(ts) });
        }
        Ok(())
    }

    fn query(&mut self, out: &mut Decoded, db: &str, sql: &str, log_pos: u32, ts: Timestamp) -> Result<(), DecodeError> {
        let statement = Statement::classify(sql, db);
        let Some(open) = self.open.as_mut() else {
            return Err(match statement {
                Statement::Begin => bad(
                    "binlog",
                    "blue sends transactions without GTID events (a BEGIN query): MariaDB ignored @mariadb_slave_capability = 4, \
                     or GTIDs are off; turnout needs GTIDs to resume exactly — use MariaDB 10.0+ / MySQL with gtid_mode = ON",
                ),
                _ => bad("binlog", format!("a statement outside any transaction: {}", abbreviate(sql))),
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
        open.begun = true;
        let standalone = open.standalone;
        if open.skipped {
            // Whatever the statement, it is not passed on; a standalone one ends its transaction.
            return if standalone { self.commit(out, log_pos, ts) } else { Ok(()) };
        }
        match statement {
            Statement::Truncate(t) => {
                if let Some(schema) = self.selected_schema(&t) {
                    out.events.push(ChangeEvent::Truncate { tables: vec![schema], xid: None, cascade: false, restart_identity: false });
                }
            }
            Statement::Dml => return Err(bad("binlog", format!("a row change logged as a statement ({}); set binlog_format = ROW on blue", abbreviate(sql)))),
            Statement::Ddl { tables, additive } => {
                let replicated: Vec<&TableName> = tables.iter().filter(|t| (self.selects)(t)).collect();
                if !replicated.is_empty() {
                    if !additive {
                        return Err(bad(
                            "binlog",
                            format!(
                                "blue ran DDL on replicated table {} that turnout cannot apply safely: `{}`; apply the same change on \
                                 green, then restart turnout (or run `turnout teardown` and start over)",
                                replicated[0],
                                abbreviate(sql)
                            ),
                        ));
                    }
                    out.events.push(ChangeEvent::Ddl { database: db.to_owned(), statement: sql.to_owned(), tables: tables.clone() });
                    // The next table map announces the new shape.
                    for t in &tables {
                        self.announced.remove(t);
                    }
                }
            }
            Statement::Other => {}
            Statement::Begin | Statement::Commit | Statement::Savepoint | Statement::Rollback => {}
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

fn push_mysql(state: &mut GtidState, uuid: [u8; 16], number: u64) {
    if !matches!(state, GtidState::MySql(_)) {
        *state = GtidState::MySql(Default::default());
    }
    if let GtidState::MySql(sets) = state {
        let intervals = sets.entry(uuid).or_default();
        match intervals.last_mut() {
            Some((_, end)) if *end + 1 == number => *end = number,
            Some((_, end)) if *end >= number => {}
            _ => intervals.push((number, number)),
        }
    }
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
    let key: Vec<usize> = tm.primary_key.as_ref().map(|k| k.iter().map(|(i, _)| *i).collect()).unwrap_or_default();
    let mut columns = Vec::with_capacity(tm.columns.len());
    for (i, c) in tm.columns.iter().enumerate() {
        let Some(col_name) = c.name.clone() else {
            return Err(bad("binlog", format!("the table map of {name} has no column names; set binlog_row_metadata = FULL on blue")));
        };
        let real = c.real_type();
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
    let row = |image: RowImage| -> Result<Row, DecodeError> {
        if !image.is_complete() {
            let missing: Vec<String> = image.absent_columns().map(|i| tm.column_name(i)).collect();
            return Err(bad("binlog", format!("a row image of {} lacks columns {}; set binlog_row_image = FULL on blue", schema.name, missing.join(", "))));
        }
        image.into_columns().into_iter().enumerate().map(|(i, v)| value(&tm.columns[i].real_type(), v.unwrap_or(BinlogValue::Null))).collect()
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
    })
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC for seconds since the epoch; 0 is MySQL's zero timestamp.
fn utc_datetime(seconds: u32, micros: u32) -> String {
    if seconds == 0 && micros == 0 {
        return "0000-00-00 00:00:00".into();
    }
    let days = i64::from(seconds / 86_400);
    let rem = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}{}", rem / 3600, rem % 3600 / 60, rem % 60, frac(micros))
}

/// What a logged statement is, as far as replication cares.
#[derive(Debug, PartialEq)]
enum Statement {
    Begin,
    Commit,
    Rollback,
    Savepoint,
    Truncate(TableName),
    /// INSERT/UPDATE/DELETE/REPLACE/LOAD logged as a statement.
    Dml,
    /// Table DDL: the tables it names, and whether it only adds columns or indexes.
    Ddl {
        tables: Vec<TableName>,
        additive: bool,
    },
    /// Anything else (users, grants, databases, maintenance): not a change to replicated rows.
    Other,
}

impl Statement {
    fn classify(sql: &str, db: &str) -> Statement {
        let tokens = tokens(sql);
        let word = |i: usize| tokens.get(i).map(|t| t.to_ascii_uppercase()).unwrap_or_default();
        let table_at = |i: usize| -> Option<(TableName, usize)> { table_name(&tokens, i, db) };
        match word(0).as_str() {
            "BEGIN" => Statement::Begin,
            "START" if word(1) == "TRANSACTION" => Statement::Begin,
            "COMMIT" => Statement::Commit,
            "XA" => Statement::Other,
            "SAVEPOINT" | "RELEASE" => Statement::Savepoint,
            "ROLLBACK" if word(1) == "TO" => Statement::Savepoint,
            "ROLLBACK" => Statement::Rollback,
            "TRUNCATE" => {
                let at = if word(1) == "TABLE" { 2 } else { 1 };
                table_at(at).map_or(Statement::Other, |(t, _)| Statement::Truncate(t))
            }
            "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD" => Statement::Dml,
            "ALTER" if word(1) == "TABLE" || (word(1) == "ONLINE" && word(2) == "TABLE") || (word(1) == "IGNORE" && word(2) == "TABLE") => {
                let mut at = if word(1) == "TABLE" { 2 } else { 3 };
                if word(at) == "IF" && word(at + 1) == "EXISTS" {
                    at += 2;
                }
                match table_at(at) {
                    Some((t, next)) => Statement::Ddl { tables: vec![t], additive: only_adds(&tokens[next..]) },
                    None => Statement::Other,
                }
            }
            "CREATE" | "DROP" | "RENAME" => {
                // CREATE [UNIQUE|FULLTEXT|SPATIAL] INDEX … ON t: additive. CREATE TABLE, DROP, RENAME:
                // not (a table created after the snapshot was never copied).
                let mut i = 1;
                while matches!(word(i).as_str(), "OR" | "REPLACE" | "TEMPORARY" | "UNIQUE" | "FULLTEXT" | "SPATIAL" | "ONLINE") {
                    i += 1;
                }
                match word(i).as_str() {
                    "INDEX" | "KEY" => {
                        let on = (i..tokens.len()).find(|&k| word(k) == "ON");
                        match on.and_then(|k| table_at(k + 1)) {
                            Some((t, _)) => Statement::Ddl { tables: vec![t], additive: word(0) == "CREATE" },
                            None => Statement::Other,
                        }
                    }
                    "TABLE" | "TABLES" => {
                        let mut at = i + 1;
                        if word(at) == "IF" {
                            at += if word(at + 1) == "NOT" { 3 } else { 2 };
                        }
                        let mut tables = Vec::new();
                        while let Some((t, next)) = table_at(at) {
                            tables.push(t);
                            // DROP TABLE a, b / RENAME TABLE a TO b, c TO d
                            match word(next).as_str() {
                                "," | "TO" => at = next + 1,
                                _ => break,
                            }
                        }
                        if tables.is_empty() {
                            Statement::Other
                        } else {
                            Statement::Ddl { tables, additive: false }
                        }
                    }
                    _ => Statement::Other,
                }
            }
            _ => Statement::Other,
        }
    }
}

/// `ADD [COLUMN] …`, `ADD INDEX|KEY|UNIQUE|FULLTEXT|SPATIAL …` clauses only (comma-separated at the top
/// level), plus table options that change no data (ALGORITHM, LOCK).
fn only_adds(rest: &[String]) -> bool {
    let mut clause_start = true;
    let mut depth = 0i32;
    let mut saw_clause = false;
    for (i, t) in rest.iter().enumerate() {
        match t.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => {
                clause_start = true;
                continue;
            }
            _ => {}
        }
        if clause_start && depth == 0 {
            let w = t.to_ascii_uppercase();
            let ok = match w.as_str() {
                "ADD" => true,
                "ALGORITHM" | "LOCK" => rest.get(i + 1).is_some(),
                _ => false,
            };
            if !ok {
                return false;
            }
            if w == "ADD" {
                let next = rest.get(i + 1).map(|s| s.to_ascii_uppercase()).unwrap_or_default();
                // ADD PRIMARY KEY / FOREIGN KEY / CONSTRAINT / PARTITION change identity or behaviour.
                if matches!(next.as_str(), "PRIMARY" | "FOREIGN" | "CONSTRAINT" | "PARTITION" | "CHECK" | "PERIOD" | "SYSTEM") {
                    return false;
                }
            }
            saw_clause = true;
            clause_start = false;
        }
    }
    saw_clause
}

/// A possibly qualified, possibly quoted table name starting at token `i`; returns it and the index
/// of the token after it.
fn table_name(tokens: &[String], i: usize, db: &str) -> Option<(TableName, usize)> {
    let part = |t: &String| -> Option<String> {
        if let Some(inner) = t.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
            return Some(inner.replace("``", "`"));
        }
        let c = t.chars().next()?;
        (c.is_alphanumeric() || c == '_' || c == '$').then(|| t.clone())
    };
    let first = part(tokens.get(i)?)?;
    if tokens.get(i + 1).is_some_and(|t| t == ".") {
        let second = part(tokens.get(i + 2)?)?;
        return Some((TableName::new(first, second), i + 3));
    }
    Some((TableName::new(db, first), i + 1))
}

/// SQL tokens: words, backquoted identifiers, string literals, and single punctuation; comments
/// dropped.
fn tokens(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            // MariaDB's executable comments (/*! … */, /*M! … */) hold real SQL: keep their content.
            let executable = chars.get(i + 2) == Some(&'!') || (chars.get(i + 2) == Some(&'M') && chars.get(i + 3) == Some(&'!'));
            if executable {
                i += if chars.get(i + 2) == Some(&'!') { 3 } else { 4 };
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
        } else if c == '*' && chars.get(i + 1) == Some(&'/') {
            i += 2;
        } else if c == '#' || (c == '-' && chars.get(i + 1) == Some(&'-')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '`' || c == '\'' || c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                if chars[i] == '\\' && c != '`' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            out.push(chars[start..i].iter().collect());
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: &str, name: &str) -> TableName {
        TableName::new(db, name)
    }

    #[test]
    fn statements_are_classified_for_replication() {
        assert_eq!(Statement::classify("BEGIN", "app"), Statement::Begin);
        assert_eq!(Statement::classify("COMMIT", "app"), Statement::Commit);
        assert_eq!(Statement::classify("TRUNCATE TABLE `odd``name`", "app"), Statement::Truncate(t("app", "odd`name")));
        assert_eq!(Statement::classify("truncate other.t2", "app"), Statement::Truncate(t("other", "t2")));
        assert_eq!(
            Statement::classify("ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0, ADD INDEX (c)", "app"),
            Statement::Ddl { tables: vec![t("app", "t")], additive: true }
        );
        assert_eq!(
            Statement::classify("/* turnout */ alter table `s`.`t` add c varchar(10), algorithm=instant", "app"),
            Statement::Ddl { tables: vec![t("s", "t")], additive: true }
        );
        for not_additive in [
            "ALTER TABLE t DROP COLUMN c",
            "ALTER TABLE t ADD COLUMN c INT, MODIFY d BIGINT",
            "ALTER TABLE t RENAME TO u",
            "ALTER TABLE t ADD PRIMARY KEY (id)",
            "ALTER TABLE t CHANGE a b INT",
        ] {
            assert!(matches!(Statement::classify(not_additive, "app"), Statement::Ddl { additive: false, .. }), "{not_additive}");
        }
        assert_eq!(
            Statement::classify("DROP TABLE IF EXISTS a, b /* generated by server */", "app"),
            Statement::Ddl { tables: vec![t("app", "a"), t("app", "b")], additive: false }
        );
        assert_eq!(Statement::classify("RENAME TABLE a TO b", "app"), Statement::Ddl { tables: vec![t("app", "a"), t("app", "b")], additive: false });
        assert_eq!(Statement::classify("CREATE INDEX i ON t (c)", "app"), Statement::Ddl { tables: vec![t("app", "t")], additive: true });
        assert_eq!(Statement::classify("CREATE TABLE IF NOT EXISTS n (id int)", "app"), Statement::Ddl { tables: vec![t("app", "n")], additive: false });
        assert_eq!(Statement::classify("INSERT INTO t VALUES (1)", "app"), Statement::Dml);
        assert_eq!(Statement::classify("GRANT SELECT ON *.* TO x", "app"), Statement::Other);
        assert_eq!(Statement::classify("SAVEPOINT `s1`", "app"), Statement::Savepoint);
        assert_eq!(Statement::classify("ROLLBACK TO `s1`", "app"), Statement::Savepoint);
    }

    #[test]
    fn a_transaction_without_a_gtid_event_is_refused_naming_the_capability() {
        use super::binlog::{event_type, EventHeader, Query, StatusVars};
        // What MariaDB sends a replica that did not set @mariadb_slave_capability = 4: a fake BEGIN.
        let query = Query {
            thread_id: 1,
            exec_time: 0,
            error_code: 0,
            status_vars_raw: Vec::new(),
            status: StatusVars::default(),
            schema: "app".into(),
            sql: b"BEGIN".to_vec(),
        };
        let header = EventHeader { timestamp: 1, type_code: event_type::QUERY, server_id: 1, event_size: 0, log_pos: 100, flags: 0 };
        let mut d = BinlogDecoder::new(GtidState::None, Box::new(|_| true));
        let err = d.apply(Event { header, event: BinlogEvent::Query(query) }).expect_err("refused");
        assert!(err.to_string().contains("@mariadb_slave_capability = 4"), "{err}");
    }

    #[test]
    fn timestamps_print_in_utc_and_zero_stays_zero() {
        assert_eq!(utc_datetime(0, 0), "0000-00-00 00:00:00");
        assert_eq!(utc_datetime(1, 500), "1970-01-01 00:00:01.000500");
        assert_eq!(utc_datetime(951_782_400, 0), "2000-02-29 00:00:00");
        assert_eq!(utc_datetime(2_147_483_647, 999_999), "2038-01-19 03:14:07.999999");
    }

    #[test]
    fn mysql_gtid_numbers_merge_into_intervals() {
        let mut s = GtidState::None;
        let u = [7u8; 16];
        for n in [1, 2, 3, 5] {
            push_mysql(&mut s, u, n);
        }
        assert_eq!(s, GtidState::MySql([(u, vec![(1, 3), (5, 5)])].into_iter().collect()));
    }
}
