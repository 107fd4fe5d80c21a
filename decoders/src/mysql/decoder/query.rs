//! A QUERY event: a transaction's BEGIN, DDL (with the session state it ran under), or a statement
//! logged as a statement, which turnout cannot replicate exactly and refuses.

use super::*;

impl BinlogDecoder {
    pub(super) fn query(&mut self, out: &mut Decoded, q: &Query, seconds: u32, log_pos: u32) -> Result<(), DecodeError> {
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
            Statement::Dml => return Err(statement_logged(&sql, &at())),
            Statement::Ddl { tables, additive } => self.ddl(out, q, seconds, (&sql, &at()), tables, additive)?,
            Statement::CreateTable { table, plain, if_not_exists } if plain && standalone && self.creating_tables && (self.selects)(&table) => {
                out.events.push(ChangeEvent::Ddl {
                    database: db.to_owned(),
                    statement: with_session(q, seconds, &sql, self.explicit_defaults_for_timestamp),
                    tables: vec![table.clone()],
                    creates: if if_not_exists { Creates::IfNotExists } else { Creates::New },
                });
                self.announced.remove(&table);
            }
            // CREATE TABLE … SELECT is logged as the table's DDL and its rows in one transaction:
            // MariaDB's in a group of its own, MySQL's (8.0.21+) ending in START TRANSACTION.
            Statement::CreateTable { table, .. }
                if (!standalone || sql.trim_end().to_ascii_uppercase().ends_with("START TRANSACTION")) && (self.selects)(&table) =>
            {
                return Err(filled_create(&table, &sql, &at()))
            }
            Statement::CreateTable { table, .. } => self.ddl(out, q, seconds, (&sql, &at()), vec![table], false)?,
            Statement::Routine { object } => {
                if (self.selects)(&object) {
                    out.events.push(ChangeEvent::Ddl {
                        database: db.to_owned(),
                        statement: with_session(q, seconds, &sql, self.explicit_defaults_for_timestamp),
                        tables: Vec::new(),
                        creates: Creates::No,
                    });
                }
            }
            Statement::Refused(what) => return Err(refused(what, &sql, &at())),
            Statement::Unknown => return Err(unknown(&sql, &at())),
            Statement::DropDatabase(name) if self.databases.is_empty() || self.databases.contains(&name) => return Err(dropped_database(&name, &sql, &at())),
            Statement::DropDatabase(_) | Statement::NoRowChange | Statement::Begin | Statement::Commit | Statement::Savepoint | Statement::Rollback => {}
        }
        if standalone {
            self.commit(out, log_pos, ts)?;
        }
        Ok(())
    }

    /// DDL on replicated tables: passed on when it only adds what green can reproduce, refused
    /// naming the statement (`sql`) and where blue ran it (`at`) otherwise.
    fn ddl(&mut self, out: &mut Decoded, q: &Query, seconds: u32, (sql, at): (&str, &str), tables: Vec<TableName>, additive: bool) -> Result<(), DecodeError> {
        let db = q.schema.as_str();
        let replicated: Vec<&TableName> = tables.iter().filter(|t| (self.selects)(t)).collect();
        if !replicated.is_empty() {
            if !additive {
                return Err(bad(
                    "binlog",
                    format!(
                        "blue ran DDL on replicated table {} that turnout cannot apply safely: `{}` ({}); a restart reads the same \
                         statement again, so run `turnout teardown` and start over (the new copy takes blue's table as it is now)",
                        replicated[0],
                        abbreviate(sql),
                        at
                    ),
                ));
            }
            if let Some((column, why)) = statement::unreproducible_column(&statement::tokens(sql)) {
                return Err(bad(
                    "binlog",
                    format!(
                        "blue added column `{column}` to {} and filled its existing rows with values green cannot reproduce: {why} \
                         (`{}`, {}). Run `turnout teardown` and start over (the new snapshot copies blue's values), or give the \
                         column a constant default on blue",
                        replicated[0],
                        abbreviate(sql),
                        at
                    ),
                ));
            }
            out.events.push(ChangeEvent::Ddl {
                database: db.to_owned(),
                statement: with_session(q, seconds, sql, self.explicit_defaults_for_timestamp),
                tables: tables.clone(),
                creates: Creates::No,
            });
            // The next table map announces the new shape.
            for t in &tables {
                self.announced.remove(t);
            }
        }
        Ok(())
    }
}

/// The refusal of a replicated `table` created with its rows in one transaction (`CREATE TABLE …
/// SELECT`, as both servers log it in row format).
fn filled_create(table: &TableName, sql: &str, at: &str) -> DecodeError {
    bad(
        "binlog",
        format!(
            "blue created replicated table {table} with CREATE TABLE … SELECT (`{}`, {at}), which is logged as the table and its \
             rows in one transaction; turnout cannot create a table mid-transaction on green. Leave such tables out \
             (tables.exclude) or create them with CREATE TABLE and then INSERT … SELECT; run `turnout teardown` and start over",
            abbreviate(sql)
        ),
    )
}

/// A statement that can change rows logged as text: its session ran with `binlog_format =
/// STATEMENT` or `MIXED`.
fn statement_logged(sql: &str, at: &str) -> DecodeError {
    bad(
        "binlog",
        format!(
            "blue logged a statement that can change rows as text instead of row events (`{}`, {at}): that session runs with \
             binlog_format = STATEMENT or MIXED, and turnout cannot know which rows it changed. Set binlog_format = ROW \
             globally on blue and end the sessions opened before (pooled connections keep their own setting), then run \
             `turnout teardown` and start over — green may already lack this statement's changes",
            abbreviate(sql)
        ),
    )
}

/// A trigger, an event or another object turnout never replays.
fn refused(what: &str, sql: &str, at: &str) -> DecodeError {
    let fix = match what {
        "a trigger" => {
            "turnout never creates triggers on green before the cutover, where they would fire again for rows blue's \
             triggers already changed; drop it on blue and create it on both sides after the cutover"
        }
        "an event" => "an event on green would change rows that blue's binlog also carries; create events on green after the cutover",
        _ => "turnout cannot replay it exactly on green",
    };
    bad("binlog", format!("blue's binlog holds {what} (`{}`, {at}): {fix}. Then run `turnout teardown` and start over", abbreviate(sql)))
}

/// A statement turnout does not recognise: never passed over, since it might change replicated rows.
fn unknown(sql: &str, at: &str) -> DecodeError {
    bad(
        "binlog",
        format!(
            "blue's binlog holds a statement turnout does not recognise (`{}`, {at}); it is never passed over, since it might \
             change replicated rows. If it changes none, run `turnout teardown` and start over after it",
            abbreviate(sql)
        ),
    )
}

/// A dropped database where replicated tables live.
fn dropped_database(name: &str, sql: &str, at: &str) -> DecodeError {
    bad(
        "binlog",
        format!(
            "blue dropped database `{name}`, where replicated tables live (`{}`, {at}); turnout will not drop them on green. \
             Run `turnout teardown` and start over",
            abbreviate(sql)
        ),
    )
}

/// When blue ran `q`: the event header's seconds and, where the server logged them, microseconds.
pub(super) fn query_time(seconds: u32, q: &Query) -> Timestamp {
    Timestamp(i64::from(seconds) * 1_000_000 + i64::from(q.status.microseconds.unwrap_or(0)))
}

/// `sql` preceded by the session settings blue ran it with, as far as the Query event records them:
/// the statement's time (so `CURRENT_TIMESTAMP` defaults fill existing rows with blue's value), time
/// zone (a TIMESTAMP literal means the same instant), `sql_mode` and the character sets and
/// collations (literals, routine bodies and new columns as blue read them). The sink restores its
/// own session after running it.
pub(super) fn with_session(q: &Query, seconds: u32, sql: &str, explicit_defaults_global: Option<bool>) -> String {
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

pub(super) fn abbreviate(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        format!("{}…", one_line.chars().take(200).collect::<String>())
    } else {
        one_line
    }
}
