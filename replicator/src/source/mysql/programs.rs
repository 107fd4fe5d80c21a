//! Blue's views, stored functions and procedures and events created on green with the schema copy —
//! the objects an application uses that rows do not carry (sakila's 7 views, 3 procedures and 3
//! functions were missing on green, and the cutover then refused 13 times).
//!
//! Each is created from `SHOW CREATE …` as blue defined it: its definer, SQL SECURITY, and the
//! `sql_mode`, character sets and (events) time zone it was created under. Views that read other views
//! are created after them (a pass creates what it can; a view whose table or view is missing waits for
//! the next pass). Events are created **disabled** on green: while turnout replicates, an event there
//! would change rows that blue's event also changes and blue's binlog carries; the cutover enables on
//! the side traffic moves to the events enabled on the fenced side, and disables them there
//! ([`hand_over_events`]). Triggers are not created here: they move inside the write pause
//! (`turnout_cutover::hand_over_triggers`). Later changes arrive through the binlog (views and
//! routines replay; event DDL stops the stream naming it).

use super::{quote, sql_error};
use crate::error::{Error, SchemaRefusal, Side};
use mysql_async::prelude::Queryable;

/// One object of blue's database as `SHOW CREATE` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// `VIEW`, `FUNCTION`, `PROCEDURE` or `EVENT`.
    pub kind: &'static str,
    pub name: String,
    pub statement: String,
    /// The session it must be created in: `sql_mode`, `time_zone` (events), character set and collation.
    pub sql_mode: Option<String>,
    pub time_zone: Option<String>,
    pub character_set_client: String,
    pub collation_connection: String,
}

/// `text` as a MySQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

fn text(v: &mysql_async::Value) -> String {
    match v {
        mysql_async::Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        mysql_async::Value::NULL => String::new(),
        other => other.as_sql(true),
    }
}

/// The names of `database`'s objects of each kind, in an order that creates a view's dependencies first
/// where names allow it (the passes settle the rest).
async fn names(conn: &mut mysql_async::Conn, database: &str, side: crate::error::Side) -> Result<Vec<(&'static str, String)>, Error> {
    let mut out = Vec::new();
    let views: Vec<String> = conn
        .exec("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", (database,))
        .await
        .map_err(|e| sql_error(side, "listing the views", e))?;
    out.extend(views.into_iter().map(|v| ("VIEW", v)));
    let routines: Vec<(String, String)> = conn
        .exec("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY 1, 2", (database,))
        .await
        .map_err(|e| sql_error(side, "listing the stored routines", e))?;
    for (kind, name) in routines {
        match kind.as_str() {
            "FUNCTION" => out.push(("FUNCTION", name)),
            "PROCEDURE" => out.push(("PROCEDURE", name)),
            other => return Err(SchemaRefusal::UnknownRoutine { side, name, kind: other.to_owned() }.into()),
        }
    }
    let events: Vec<String> = conn
        .exec("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME", (database,))
        .await
        .map_err(|e| sql_error(side, "listing the events", e))?;
    out.extend(events.into_iter().map(|e| ("EVENT", e)));
    Ok(out)
}

/// Every view, stored function and procedure and event of `database`, as `SHOW CREATE` gives it.
pub async fn definitions(conn: &mut mysql_async::Conn, database: &str, side: crate::error::Side) -> Result<Vec<Program>, Error> {
    let mut out = Vec::new();
    for (kind, name) in names(conn, database, side).await? {
        let row: Option<mysql_async::Row> = conn.query_first(format!("SHOW CREATE {kind} {}.{}", quote(database), quote(&name))).await.map_err(|e| {
            sql_error(side, &format!("reading the definition of {kind} {name} (SHOW CREATE {kind} needs SHOW VIEW or the routine's privileges)"), e)
        })?;
        let Some(row) = row else { continue };
        let column = |label: &str| -> Option<String> {
            row.columns_ref().iter().position(|c| c.name_str().eq_ignore_ascii_case(label)).and_then(|i| row.as_ref(i).map(text))
        };
        let statement = column(&format!("Create {}", kind.to_ascii_lowercase())).filter(|s| !s.is_empty()).ok_or_else(|| SchemaRefusal::NoDefinition {
            side,
            kind,
            name: name.clone(),
        })?;
        out.push(Program {
            kind,
            name,
            statement,
            sql_mode: column("sql_mode"),
            time_zone: column("time_zone"),
            character_set_client: column("character_set_client").unwrap_or_else(|| "utf8mb4".into()),
            collation_connection: column("collation_connection").unwrap_or_else(|| "utf8mb4_general_ci".into()),
        });
    }
    Ok(out)
}

/// An event's `CREATE EVENT` with its status made `DISABLE`, or `None` when the statement is not in the
/// form the server prints (`… ON COMPLETION [NOT] PRESERVE {ENABLE | DISABLE | DISABLE ON SLAVE |
/// DISABLE ON REPLICA} [COMMENT …] DO …`).
pub fn disabled(statement: &str) -> Option<String> {
    let at = statement.find(" PRESERVE ")? + " PRESERVE ".len();
    let rest = &statement[at..];
    for status in ["DISABLE ON SLAVE ", "DISABLE ON REPLICA ", "ENABLE ", "DISABLE "] {
        if let Some(after) = rest.strip_prefix(status) {
            return Some(format!("{}DISABLE {after}", &statement[..at]));
        }
    }
    None
}

/// Creates `p` in `database` over `conn`, in the session it was defined in (restored after).
async fn create(conn: &mut mysql_async::Conn, database: &str, p: &Program, statement: &str) -> Result<(), mysql_async::Error> {
    let mut settings =
        vec![format!("character_set_client = {}", literal(&p.character_set_client)), format!("collation_connection = {}", literal(&p.collation_connection))];
    if let Some(mode) = &p.sql_mode {
        settings.push(format!("sql_mode = {}", literal(mode)));
    }
    if let Some(zone) = p.time_zone.as_ref().filter(|z| !z.is_empty()) {
        settings.push(format!("time_zone = {}", literal(zone)));
    }
    conn.query_drop(format!(
        "SET @turnout_mode = @@SESSION.sql_mode, @turnout_zone = @@SESSION.time_zone, @turnout_cs = @@SESSION.character_set_client, \
         @turnout_coll = @@SESSION.collation_connection; USE {}; SET SESSION {}",
        quote(database),
        settings.join(", ")
    ))
    .await?;
    let created = conn.query_drop(statement).await;
    let restored = conn
        .query_drop("SET SESSION sql_mode = @turnout_mode, time_zone = @turnout_zone, character_set_client = @turnout_cs, collation_connection = @turnout_coll")
        .await;
    created.and(restored)
}

/// Creates on green (`green_db`) every view, stored function and procedure and event of blue's
/// `blue_db` that green lacks; events disabled. With `filtered` (`[tables]` leaves tables out), a view
/// that reads a table green does not have is skipped with a warning (the cutover then names it);
/// otherwise every failure is an error naming the object and the server's words. Returns what it
/// created, as `KIND name`.
pub async fn copy(blue: &mut mysql_async::Conn, green: &mut mysql_async::Conn, blue_db: &str, green_db: &str, filtered: bool) -> Result<Vec<String>, Error> {
    let programs = definitions(blue, blue_db, crate::error::Side::Blue).await?;
    let existing: Vec<(&'static str, String)> = names(green, green_db, crate::error::Side::Green).await?;
    let mut left: Vec<Program> = programs.into_iter().filter(|p| !existing.iter().any(|(k, n)| *k == p.kind && *n == p.name)).collect();
    let mut created = Vec::new();
    // A view reads `blue_db`.`t`: on green it reads green's database.
    let rename = |s: &str| if blue_db == green_db { s.to_owned() } else { s.replace(&format!("{}.", quote(blue_db)), &format!("{}.", quote(green_db))) };
    loop {
        let mut failed: Vec<(Program, mysql_async::Error)> = Vec::new();
        let before = left.len();
        for p in std::mem::take(&mut left) {
            let statement = match p.kind {
                "EVENT" => disabled(&p.statement).ok_or_else(|| SchemaRefusal::UnreadableEvent { name: p.name.clone(), statement: p.statement.clone() })?,
                "VIEW" => rename(&p.statement),
                _ => p.statement.clone(),
            };
            match create(green, green_db, &p, &statement).await {
                Ok(()) => created.push(format!("{} {}", p.kind, p.name)),
                Err(e) => failed.push((p, e)),
            }
        }
        // A view over another view, or a function a view calls, missing yet: another pass.
        let missing_object = |e: &mysql_async::Error| matches!(e, mysql_async::Error::Server(s) if matches!(s.code, 1146 | 1356 | 1305));
        if failed.is_empty() {
            return Ok(created);
        }
        if failed.len() == before || !failed.iter().all(|(_, e)| missing_object(e)) {
            let mut errors = Vec::new();
            for (p, e) in failed {
                if filtered && missing_object(&e) && p.kind == "VIEW" {
                    tracing::warn!("view {} is not created on green: it reads a table [tables] leaves out ({e})", p.name);
                    continue;
                }
                errors.push(format!("{} {}: {e}", p.kind, p.name));
            }
            if errors.is_empty() {
                return Ok(created);
            }
            return Err(SchemaRefusal::ProgramsNotCreated { errors: errors.join("; ") }.into());
        }
        left = failed.into_iter().map(|(p, _)| p).collect();
    }
}

/// Inside the write pause of a cutover (or rollback): enables on the side traffic moves to (`to`, in
/// `to_db`) every event enabled on the fenced side, and disables it on the fenced side (`from`) unless
/// that side is sealed (`disable_from = false`: `super_read_only` refuses it, and nothing an event
/// writes can commit there). Both kept out of the binlogs. Returns the events moved.
pub async fn hand_over_events(
    from: &mut mysql_async::Conn,
    to: &mut mysql_async::Conn,
    from_db: &str,
    to_db: &str,
    sides: (Side, Side),
    disable_from: bool,
) -> Result<Vec<String>, Error> {
    let enabled: Vec<String> = from
        .exec("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND STATUS = 'ENABLED' ORDER BY 1", (from_db,))
        .await
        .map_err(Error::mysql(sides.0, "listing the events"))?;
    if enabled.is_empty() {
        return Ok(Vec::new());
    }
    let on_to: Vec<String> = to
        .exec("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?", (to_db,))
        .await
        .map_err(Error::mysql(sides.1, "listing the events"))?;
    let mut moved = Vec::new();
    for (conn, side, db, on) in [(&mut *to, sides.1, to_db, true), (&mut *from, sides.0, from_db, false)] {
        if !on && !disable_from {
            continue;
        }
        conn.query_drop("SET SESSION sql_log_bin = 0").await.map_err(Error::mysql(side, "SET sql_log_bin = 0 (needs BINLOG ADMIN or SUPER)"))?;
        let result = async {
            for name in enabled.iter().filter(|n| on_to.contains(n)) {
                conn.query_drop(format!("ALTER EVENT {}.{} {}", quote(db), quote(name), if on { "ENABLE" } else { "DISABLE" }))
                    .await
                    .map_err(Error::mysql(side, format!("{} event {name}", if on { "enabling" } else { "disabling" })))?;
                if on {
                    moved.push(name.clone());
                }
            }
            Ok::<(), Error>(())
        }
        .await;
        conn.query_drop("SET SESSION sql_log_bin = 1").await.map_err(Error::mysql(side, "SET sql_log_bin = 1"))?;
        result?;
    }
    Ok(moved)
}

/// When a stream first applies to a side a cutover sealed (Oracle MySQL, where `super_read_only`
/// refused `ALTER EVENT` inside the pause): disables there (`fenced`, in `fenced_db`) every event the
/// `other` side now runs, so that an event whose definer may write through `read_only` cannot change
/// rows the stream also applies. Kept out of the binlog. Returns the events disabled.
pub async fn disable_handed_over_events(
    fenced: &mut mysql_async::Conn,
    other: &mut mysql_async::Conn,
    fenced_db: &str,
    other_db: &str,
    sides: (Side, Side),
) -> Result<Vec<String>, Error> {
    let enabled = "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND STATUS = 'ENABLED' ORDER BY 1";
    let on_other: Vec<String> = other.exec(enabled, (other_db,)).await.map_err(Error::mysql(sides.1, "listing the events"))?;
    let on_fenced: Vec<String> = fenced.exec(enabled, (fenced_db,)).await.map_err(Error::mysql(sides.0, "listing the events"))?;
    let both: Vec<String> = on_fenced.into_iter().filter(|e| on_other.contains(e)).collect();
    if both.is_empty() {
        return Ok(both);
    }
    fenced.query_drop("SET SESSION sql_log_bin = 0").await.map_err(Error::mysql(sides.0, "SET sql_log_bin = 0 (needs BINLOG ADMIN or SUPER)"))?;
    let result = async {
        for name in &both {
            fenced
                .query_drop(format!("ALTER EVENT {}.{} DISABLE", quote(fenced_db), quote(name)))
                .await
                .map_err(Error::mysql(sides.0, format!("disabling event {name}, which the other side runs now")))?;
        }
        Ok::<(), Error>(())
    }
    .await;
    fenced.query_drop("SET SESSION sql_log_bin = 1").await.map_err(Error::mysql(sides.0, "SET sql_log_bin = 1"))?;
    result.map(|()| both)
}

#[cfg(test)]
mod tests {
    use super::disabled;

    #[test]
    fn an_events_status_is_made_disabled_whatever_it_was() {
        let enabled = "CREATE DEFINER=`root`@`localhost` EVENT `purge` ON SCHEDULE EVERY 1 HOUR STARTS '2026-01-01 00:00:00' \
                       ON COMPLETION NOT PRESERVE ENABLE COMMENT 'x' DO DELETE FROM t WHERE at < NOW() - INTERVAL 1 DAY";
        assert_eq!(
            disabled(enabled).as_deref(),
            Some(
                "CREATE DEFINER=`root`@`localhost` EVENT `purge` ON SCHEDULE EVERY 1 HOUR STARTS '2026-01-01 00:00:00' \
                 ON COMPLETION NOT PRESERVE DISABLE COMMENT 'x' DO DELETE FROM t WHERE at < NOW() - INTERVAL 1 DAY"
            )
        );
        let replica = "CREATE EVENT `e` ON SCHEDULE AT '2030-01-01 00:00:00' ON COMPLETION PRESERVE DISABLE ON SLAVE DO SELECT 1";
        assert_eq!(disabled(replica).as_deref(), Some("CREATE EVENT `e` ON SCHEDULE AT '2030-01-01 00:00:00' ON COMPLETION PRESERVE DISABLE DO SELECT 1"));
        assert_eq!(disabled("CREATE EVENT e DO SELECT 1"), None, "a form turnout cannot read is refused, never created enabled");
    }
}
