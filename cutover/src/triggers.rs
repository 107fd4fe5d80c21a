//! Triggers change sides at a MySQL/MariaDB cutover.
//!
//! While turnout replicates, the side it applies to must have no trigger on a replicated table: the
//! other side's triggers already wrote their effects into its binlog as rows, and a trigger on the
//! applying side would make the same change a second time (a `BEFORE UPDATE` overwriting the value
//! blue wrote, an `AFTER INSERT` into an audit table doubling each row). So green has none before the
//! cutover, and inside the write pause — after green proved it applied everything, before traffic
//! arrives — [`hand_over`] creates the fenced side's triggers on the other side, exactly as they were
//! defined (the statement with its definer, and the `sql_mode` and character sets it was created
//! under, in their firing order), and drops them on the fenced side, which the reverse stream applies
//! to from then on. A rollback hands them back the same way.
//!
//! On Oracle MySQL the fenced side is sealed (`super_read_only`), which refuses `DROP TRIGGER`: there
//! the triggers are only copied inside the pause (`drop_from = false`), and [`drop_handed_over`]
//! drops them on the fenced side when something first applies to it — the reverse stream, which
//! lowers the seal to `read_only` first. Until then nothing writes there, so nothing fires.
//!
//! Idempotent, for a cutover completed after a crash: a trigger already on the other side is kept,
//! one already gone from the fenced side is not dropped again. Neither change enters a binlog
//! (`sql_log_bin = 0`): both streams read binlogs, and trigger DDL in them stops a stream.

use crate::error::{CutoverError, Side};
use mysql_async::prelude::Queryable;
use turnout_sinks::mysql::literal::ident as quote;

/// One trigger as `SHOW CREATE TRIGGER` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerDefinition {
    pub table: String,
    pub name: String,
    pub sql_mode: String,
    /// The `CREATE TRIGGER` statement as written, with its definer.
    pub statement: Vec<u8>,
    pub character_set_client: String,
    pub collation_connection: String,
    pub database_collation: String,
    /// `user@host` of the definer.
    pub definer: String,
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// The triggers of `database` on `tables` (all its tables when `None`), in the order they fire
/// (table, timing, event, action order): creating them in this order keeps `FOLLOWS`/`PRECEDES`.
pub async fn definitions(conn: &mut mysql_async::Conn, database: &str, tables: Option<&[String]>, side: Side) -> Result<Vec<TriggerDefinition>, CutoverError> {
    let listed: Vec<(String, String, String)> = conn
        .exec(
            "SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME, DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? \
             ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            (database,),
        )
        .await
        .map_err(CutoverError::mysql(side, "listing the triggers"))?;
    let mut out = Vec::new();
    for (table, name, definer) in listed {
        if tables.is_some_and(|ts| !ts.contains(&table)) {
            continue;
        }
        let row: Option<mysql_async::Row> = conn
            .query_first(format!("SHOW CREATE TRIGGER {}.{}", quote(database), quote(&name)))
            .await
            .map_err(CutoverError::mysql(side, format!("reading trigger {name}")))?;
        let Some(row) = row else { continue };
        let text = |i: usize| -> String { row.get::<Option<Vec<u8>>, _>(i).flatten().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default() };
        out.push(TriggerDefinition {
            table,
            name,
            sql_mode: text(1),
            statement: row.get::<Option<Vec<u8>>, _>(2).flatten().unwrap_or_default(),
            character_set_client: text(3),
            collation_connection: text(4),
            database_collation: text(5),
            definer,
        });
    }
    Ok(out)
}

/// `statement` without its `FOLLOWS t` / `PRECEDES t` after `FOR EACH ROW`: triggers are created in
/// their firing order, each after those before it, which gives the same order — and a `PRECEDES`
/// would name a trigger not created yet.
fn without_order_clause(statement: &[u8]) -> Vec<u8> {
    let tokens = head_tokens(statement, 2);
    let word = |k: usize| tokens[k].word.as_deref().unwrap_or("");
    let n = tokens.len();
    if n >= 5 && word(n - 5) == "FOR" && word(n - 4) == "EACH" && word(n - 3) == "ROW" && matches!(word(n - 2), "FOLLOWS" | "PRECEDES") {
        let mut out = statement[..tokens[n - 2].start].to_vec();
        out.extend_from_slice(&statement[tokens[n - 1].end..]);
        return out;
    }
    statement.to_vec()
}

/// The tables of `database`: a trigger moves only onto a table the other side has.
async fn tables(conn: &mut mysql_async::Conn, database: &str, side: Side) -> Result<Vec<String>, CutoverError> {
    conn.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (database,))
        .await
        .map_err(CutoverError::mysql(side, "listing the tables"))
}

/// What [`hand_over`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handover {
    /// `` `table`.`trigger` `` of each trigger now on the other side.
    pub moved: Vec<String>,
}

/// Creates `from`'s triggers (in `from_db`, on the tables `to_db` has) on `to`, then drops them on
/// `from`. See the module documentation.
pub async fn hand_over(
    from: &mut mysql_async::Conn,
    to: &mut mysql_async::Conn,
    from_db: &str,
    to_db: &str,
    sides: (Side, Side),
    drop_from: bool,
) -> Result<Handover, CutoverError> {
    // Inside the write pause: with no trigger on the fenced side, one query is all it costs.
    let mut definitions = definitions(from, from_db, None, sides.0).await?;
    if definitions.is_empty() {
        return Ok(Handover { moved: Vec::new() });
    }
    let tables = tables(to, to_db, sides.1).await?;
    definitions.retain(|d| tables.contains(&d.table));
    let existing: Vec<String> = to
        .exec("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", (to_db,))
        .await
        .map_err(CutoverError::mysql(sides.1, "listing the triggers"))?;
    let mut moved = Vec::new();
    if definitions.is_empty() {
        return Ok(Handover { moved });
    }
    // Kept out of both binlogs: the forward stream still reads the fenced side's, the reverse stream
    // will read the other's, and each would (rightly) stop at trigger DDL it cannot replay.
    for (conn, side) in [(&mut *from, sides.0), (&mut *to, sides.1)] {
        conn.query_drop("SET SESSION sql_log_bin = 0").await.map_err(CutoverError::mysql(side, "SET sql_log_bin = 0 (needs BINLOG ADMIN or SUPER)"))?;
    }
    let result = async {
        for d in &definitions {
            if !existing.contains(&d.name) {
                create(to, to_db, d, sides.1).await?;
            }
            moved.push(format!("{}.{}", quote(&d.table), quote(&d.name)));
        }
        for d in definitions.iter().filter(|_| drop_from) {
            from.query_drop(format!("DROP TRIGGER IF EXISTS {}.{}", quote(from_db), quote(&d.name)))
                .await
                .map_err(CutoverError::mysql(sides.0, format!("dropping trigger {} after creating it on the other side", d.name)))?;
        }
        Ok::<(), CutoverError>(())
    }
    .await;
    for (conn, side) in [(from, sides.0), (to, sides.1)] {
        conn.query_drop("SET SESSION sql_log_bin = 1").await.map_err(CutoverError::mysql(side, "SET sql_log_bin = 1"))?;
    }
    result.map(|()| Handover { moved })
}

/// Drops from `fenced` (database `fenced_db`) every trigger `other` (database `other_db`) has by the
/// same name on the same table — those a [`hand_over`] without `drop_from` copied there — out of the
/// binlog. Returns the names dropped. Idempotent.
pub async fn drop_handed_over(
    fenced: &mut mysql_async::Conn,
    other: &mut mysql_async::Conn,
    fenced_db: &str,
    other_db: &str,
    sides: (Side, Side),
) -> Result<Vec<String>, CutoverError> {
    let list = "SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY 1, 2";
    let on_other: Vec<(String, String)> = other.exec(list, (other_db,)).await.map_err(CutoverError::mysql(sides.1, "listing the triggers"))?;
    let on_fenced: Vec<(String, String)> = fenced.exec(list, (fenced_db,)).await.map_err(CutoverError::mysql(sides.0, "listing the triggers"))?;
    let handed: Vec<&(String, String)> = on_fenced.iter().filter(|t| on_other.contains(t)).collect();
    if handed.is_empty() {
        return Ok(Vec::new());
    }
    fenced.query_drop("SET SESSION sql_log_bin = 0").await.map_err(CutoverError::mysql(sides.0, "SET sql_log_bin = 0 (needs BINLOG ADMIN or SUPER)"))?;
    let mut dropped = Vec::new();
    let result = async {
        for (table, name) in handed {
            fenced
                .query_drop(format!("DROP TRIGGER IF EXISTS {}.{}", quote(fenced_db), quote(name)))
                .await
                .map_err(CutoverError::mysql(sides.0, format!("dropping trigger {name}, which the other side has now")))?;
            dropped.push(format!("{}.{}", quote(table), quote(name)));
        }
        Ok::<(), CutoverError>(())
    }
    .await;
    fenced.query_drop("SET SESSION sql_log_bin = 1").await.map_err(CutoverError::mysql(sides.0, "SET sql_log_bin = 1"))?;
    result.map(|()| dropped)
}

/// Creates each of `definitions` on a table `to_db` has once on a scratch copy of that table in
/// turnout's own database on the side they move to (`to`) — outside the binlog, the copy dropped
/// with it at once — so that a statement that side cannot take (the other MySQL family's syntax, a
/// definer or a setting it lacks) refuses the cutover before the fence, not inside the switch,
/// which past the proof can only be completed. `Err` names the trigger; so does a statement whose
/// table turnout cannot find to point at the copy.
pub async fn try_create(to: &mut mysql_async::Conn, to_db: &str, definitions: &[TriggerDefinition], side: Side) -> Result<(), CutoverError> {
    let tables = tables(to, to_db, side).await?;
    // What the hand-over would create: a trigger on a table green lacks (not replicated) is skipped there.
    let definitions: Vec<&TriggerDefinition> = definitions.iter().filter(|d| tables.contains(&d.table)).collect();
    if definitions.is_empty() {
        return Ok(());
    }
    // One scratch table per trial, so that two streams sharing turnout's database never meet.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let trial = format!("`turnout`.{}", quote(&format!("trigger_trial_{:x}_{nanos:x}", std::process::id())));
    to.query_drop("SET SESSION sql_log_bin = 0").await.map_err(CutoverError::mysql(side, "SET sql_log_bin = 0 (needs BINLOG ADMIN or SUPER)"))?;
    let result = async {
        to.query_drop("CREATE DATABASE IF NOT EXISTS turnout").await.map_err(CutoverError::mysql(side, "creating turnout's database"))?;
        for d in definitions {
            let statement =
                trial_statement(&without_order_clause(&d.statement), &trial).ok_or_else(|| CutoverError::TriggerForm { side, trigger: d.name.clone() })?;
            // A trigger of that name left in turnout's database would be taken for this one.
            to.query_drop(format!("DROP TRIGGER IF EXISTS `turnout`.{}", quote(&d.name))).await.map_err(CutoverError::mysql(side, "dropping an old trial"))?;
            to.query_drop(format!("DROP TABLE IF EXISTS {trial}")).await.map_err(CutoverError::mysql(side, "dropping the trigger trial table"))?;
            to.query_drop(format!("CREATE TABLE {trial} LIKE {}.{}", quote(to_db), quote(&d.table)))
                .await
                .map_err(CutoverError::mysql(side, format!("copying table {} to try trigger {} on", d.table, d.name)))?;
            let created = create(to, "turnout", &TriggerDefinition { statement, ..d.clone() }, side).await;
            to.query_drop(format!("DROP TABLE IF EXISTS {trial}")).await.map_err(CutoverError::mysql(side, "dropping the trigger trial table"))?;
            created?;
        }
        Ok::<(), CutoverError>(())
    }
    .await;
    to.query_drop("SET SESSION sql_log_bin = 1").await.map_err(CutoverError::mysql(side, "SET sql_log_bin = 1"))?;
    to.query_drop(format!("USE {}", quote(to_db))).await.map_err(CutoverError::mysql(side, format!("USE {to_db}")))?;
    result
}

/// A token of a trigger statement's head: its bytes, and its upper-cased text unless quoted.
struct HeadToken {
    start: usize,
    end: usize,
    word: Option<String>,
}

/// The tokens of `statement` up to `FOR EACH ROW` and `extra` more (the body is never looked into).
fn head_tokens(statement: &[u8], extra: usize) -> Vec<HeadToken> {
    let mut out: Vec<HeadToken> = Vec::new();
    let mut stop: Option<usize> = None;
    let mut i = 0;
    while i < statement.len() && stop.is_none_or(|stop| out.len() < stop) {
        let c = statement[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if matches!(c, b'`' | b'"' | b'\'') {
            i += 1;
            while i < statement.len() {
                if statement[i] == c {
                    if statement.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push(HeadToken { start, end: i.min(statement.len()), word: None });
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            while i < statement.len() && (statement[i].is_ascii_alphanumeric() || matches!(statement[i], b'_' | b'$') || statement[i] >= 0x80) {
                i += 1;
            }
        } else {
            i += 1;
        }
        out.push(HeadToken { start, end: i, word: Some(String::from_utf8_lossy(&statement[start..i]).to_ascii_uppercase()) });
        let n = out.len();
        if stop.is_none() && n >= 3 && ["FOR", "EACH", "ROW"].iter().zip(&out[n - 3..]).all(|(w, t)| t.word.as_deref() == Some(*w)) {
            stop = Some(n + extra);
        }
    }
    out
}

/// `statement` made to create the trigger on `table` (a qualified name) instead of its own, its name
/// without a schema; `None` when its head is not `… TRIGGER [schema.]name {BEFORE|AFTER} event ON
/// [schema.]table FOR EACH ROW`.
fn trial_statement(statement: &[u8], table: &str) -> Option<Vec<u8>> {
    let tokens = head_tokens(statement, 0);
    let is = |i: usize, w: &str| tokens.get(i).and_then(|t| t.word.as_deref()) == Some(w);
    // A possibly qualified name starting at token `i`: the index of its last part.
    let name_end = |i: usize| if is(i + 1, ".") { i + 2 } else { i };
    let trigger = (0..tokens.len()).find(|&i| is(i, "TRIGGER"))?;
    let name = (trigger + 1, name_end(trigger + 1));
    let timing = name.1 + 1;
    if !(is(timing, "BEFORE") || is(timing, "AFTER")) || !["INSERT", "UPDATE", "DELETE"].iter().any(|e| is(timing + 1, e)) || !is(timing + 2, "ON") {
        return None;
    }
    let on = (timing + 3, name_end(timing + 3));
    if !is(on.1 + 1, "FOR") {
        return None;
    }
    let (name_first, name_last, on_first, on_last) = (tokens.get(name.0)?, tokens.get(name.1)?, tokens.get(on.0)?, tokens.get(on.1)?);
    let mut out = statement[..name_first.start].to_vec();
    out.extend_from_slice(&statement[name_last.start..name_last.end]);
    out.extend_from_slice(&statement[name_last.end..on_first.start]);
    out.extend_from_slice(table.as_bytes());
    out.extend_from_slice(&statement[on_last.end..]);
    Some(out)
}

/// The `SET SESSION` of the settings `d` was created under. `NO_AUTO_CREATE_USER` (MariaDB's
/// default, removed from MySQL 8) is left out: it governs `GRANT`, which no trigger runs. So is a
/// database collation the server does not know (across the MySQL family, e.g. MariaDB 11's
/// `uca1400` ones on MySQL): the trigger then records its own database's, as any trigger made
/// there would — the database it lives in, not the session, decides the default collation of its
/// local variables.
async fn context(conn: &mut mysql_async::Conn, d: &TriggerDefinition, side: Side) -> Result<String, CutoverError> {
    let modes: Vec<&str> = d.sql_mode.split(',').filter(|m| !m.eq_ignore_ascii_case("NO_AUTO_CREATE_USER")).collect();
    let mut context = format!(
        "SET SESSION sql_mode = {}, character_set_client = {}, collation_connection = {}",
        literal(&modes.join(",")),
        literal(&d.character_set_client),
        literal(&d.collation_connection),
    );
    let database = format!(", collation_database = {}", literal(&d.database_collation));
    match conn.query_drop(format!("SET SESSION {}", &database[2..])).await {
        Ok(()) => context.push_str(&database),
        Err(mysql_async::Error::Server(e)) if e.code == 1273 => {}
        Err(e) => return Err(CutoverError::mysql(side, format!("trying the database collation trigger {} was created under", d.name))(e)),
    }
    Ok(context)
}

/// Creates `d` in `database` under the session settings it was created with, then restores
/// turnout's session (utf8mb4, raw results, the server's sql_mode).
pub(crate) async fn create(conn: &mut mysql_async::Conn, database: &str, d: &TriggerDefinition, side: Side) -> Result<(), CutoverError> {
    conn.query_drop(format!("USE {}", quote(database))).await.map_err(CutoverError::mysql(side, format!("USE {database}")))?;
    let context = context(conn, d, side).await?;
    conn.query_drop(context).await.map_err(CutoverError::mysql(side, format!("setting the session trigger {} was created under", d.name)))?;
    let created = conn.query_drop(without_order_clause(&d.statement)).await;
    conn.query_drop("SET NAMES utf8mb4, character_set_results = NULL, sql_mode = DEFAULT, collation_database = DEFAULT")
        .await
        .map_err(CutoverError::mysql(side, "restoring the session after creating a trigger"))?;
    match created {
        Ok(()) => Ok(()),
        // Created by an earlier attempt whose answer was lost.
        Err(mysql_async::Error::Server(e)) if e.code == 1359 => Ok(()),
        Err(e) => Err(CutoverError::mysql(side, format!("creating trigger {} (definer {}) on {}", d.name, d.definer, d.table))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::{trial_statement, without_order_clause};

    #[test]
    fn the_order_clause_is_left_out_and_the_rest_kept_byte_for_byte() {
        let strip = |s: &str| String::from_utf8(without_order_clause(s.as_bytes())).expect("utf8");
        assert_eq!(
            strip("CREATE DEFINER=`root`@`%` TRIGGER b BEFORE INSERT ON t FOR EACH ROW PRECEDES `a` SET NEW.x = 'é FOLLOWS'"),
            "CREATE DEFINER=`root`@`%` TRIGGER b BEFORE INSERT ON t FOR EACH ROW  SET NEW.x = 'é FOLLOWS'"
        );
        assert_eq!(
            strip("create trigger c after update on t for each\nrow follows b begin end"),
            "create trigger c after update on t for each\nrow  begin end"
        );
        let plain = "CREATE TRIGGER d BEFORE DELETE ON t FOR EACH ROW SET @x = 1";
        assert_eq!(strip(plain), plain);
    }

    #[test]
    fn a_trial_points_the_statement_at_the_scratch_table() {
        let trial = |statement: &str| trial_statement(statement.as_bytes(), "`turnout`.`x`").map(|s| String::from_utf8(s).expect("utf8"));
        assert_eq!(
            trial("CREATE DEFINER=`root`@`%` TRIGGER `t_on` AFTER INSERT ON `t` FOR EACH ROW INSERT INTO audit SELECT * FROM a JOIN b ON `t`.id = b.id")
                .as_deref(),
            Some(
                "CREATE DEFINER=`root`@`%` TRIGGER `t_on` AFTER INSERT ON `turnout`.`x` FOR EACH ROW INSERT INTO audit SELECT * FROM a JOIN b ON `t`.id = b.id"
            )
        );
        // MariaDB keeps the statement as typed: unquoted, qualified, any case.
        assert_eq!(
            trial("create trigger app.trg before update on app.orders for each row set new.a = 1").as_deref(),
            Some("create trigger trg before update on `turnout`.`x` for each row set new.a = 1")
        );
        assert_eq!(
            trial("CREATE TRIGGER x BEFORE UPDATE ON `app`.`odd ``name` FOR EACH ROW SET NEW.a = 1").as_deref(),
            Some("CREATE TRIGGER x BEFORE UPDATE ON `turnout`.`x` FOR EACH ROW SET NEW.a = 1")
        );
        assert_eq!(trial("CREATE TRIGGER x ON t FOR EACH ROW SET NEW.a = 1"), None, "no timing: not a form turnout knows");
    }
}
