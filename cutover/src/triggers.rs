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
    // (start, end, upper-cased word or None for a quoted part) of each token.
    let mut tokens: Vec<(usize, usize, Option<String>)> = Vec::new();
    let mut i = 0;
    while i < statement.len() && tokens.len() < 64 {
        let c = statement[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if matches!(c, b'`' | b'\'' | b'"') {
            let start = i;
            i += 1;
            while i < statement.len() && statement[i] != c {
                i += 1;
            }
            i += 1;
            tokens.push((start, i.min(statement.len()), None));
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
            let start = i;
            while i < statement.len() && (statement[i].is_ascii_alphanumeric() || statement[i] == b'_' || statement[i] == b'$') {
                i += 1;
            }
            tokens.push((start, i, Some(String::from_utf8_lossy(&statement[start..i]).to_ascii_uppercase())));
        } else {
            tokens.push((i, i + 1, None));
            i += 1;
        }
        let n = tokens.len();
        if n >= 5 {
            let word = |k: usize| tokens[k].2.as_deref().unwrap_or("");
            if word(n - 5) == "FOR" && word(n - 4) == "EACH" && word(n - 3) == "ROW" && matches!(word(n - 2), "FOLLOWS" | "PRECEDES") {
                let mut out = statement[..tokens[n - 2].0].to_vec();
                out.extend_from_slice(&statement[tokens[n - 1].1..]);
                return out;
            }
        }
    }
    statement.to_vec()
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
    let tables: Vec<String> = to
        .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (to_db,))
        .await
        .map_err(CutoverError::mysql(sides.1, "listing the tables"))?;
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

/// The scratch table a trigger is tried on, in turnout's own database on the other side.
const TRIAL_TABLE: &str = "`turnout`.`trigger_trial`";

/// Creates each of `definitions` once on a scratch copy of its table in turnout's own database on
/// the side they move to (`to`, whose replicated tables are in `to_db`) — outside the binlog, the
/// copy dropped with it at once — so that a statement that side cannot take (the other MySQL
/// family's syntax, a definer or a setting it lacks) refuses the cutover before the fence, not
/// inside the switch, which past the proof can only be completed. `Err` names the trigger.
pub async fn try_create(to: &mut mysql_async::Conn, to_db: &str, definitions: &[TriggerDefinition], side: Side) -> Result<(), CutoverError> {
    if definitions.is_empty() {
        return Ok(());
    }
    to.query_drop("SET SESSION sql_log_bin = 0").await.map_err(CutoverError::mysql(side, "SET sql_log_bin = 0 (needs BINLOG ADMIN or SUPER)"))?;
    let result = async {
        to.query_drop("CREATE DATABASE IF NOT EXISTS turnout").await.map_err(CutoverError::mysql(side, "creating turnout's database"))?;
        for d in definitions {
            let statement = without_order_clause(&d.statement);
            let Some(statement) = on_table(&statement, &d.table, TRIAL_TABLE) else {
                // A statement turnout cannot point elsewhere: its settings at least are tried.
                probe_context(to, d, side).await?;
                continue;
            };
            to.query_drop(format!("DROP TABLE IF EXISTS {TRIAL_TABLE}")).await.map_err(CutoverError::mysql(side, "dropping the trigger trial table"))?;
            to.query_drop(format!("CREATE TABLE {TRIAL_TABLE} LIKE {}.{}", quote(to_db), quote(&d.table)))
                .await
                .map_err(CutoverError::mysql(side, format!("copying table {} to try trigger {} on", d.table, d.name)))?;
            let created = create(to, "turnout", &TriggerDefinition { statement, ..d.clone() }, side).await;
            to.query_drop(format!("DROP TABLE IF EXISTS {TRIAL_TABLE}")).await.map_err(CutoverError::mysql(side, "dropping the trigger trial table"))?;
            created?;
        }
        Ok::<(), CutoverError>(())
    }
    .await;
    to.query_drop("SET SESSION sql_log_bin = 1").await.map_err(CutoverError::mysql(side, "SET sql_log_bin = 1"))?;
    to.query_drop(format!("USE {}", quote(to_db))).await.map_err(CutoverError::mysql(side, format!("USE {to_db}")))?;
    result
}

/// `statement` with the table after its `ON` (`` `t` `` or `` `db`.`t` ``) replaced by `other`;
/// `None` when it names the table some other way.
fn on_table(statement: &[u8], table: &str, other: &str) -> Option<Vec<u8>> {
    let quoted = quote(table);
    let text = std::str::from_utf8(statement).ok()?;
    let upper = text.to_ascii_uppercase();
    let mut from = 0;
    while let Some(at) = upper[from..].find(" ON ").map(|i| i + from) {
        let rest = &text[at + 4..];
        let name_len = if rest.starts_with(&quoted) {
            Some(quoted.len())
        } else {
            // `db`.`t`
            rest.strip_prefix('`').and_then(|r| r.find("`.").map(|dot| dot + 3)).filter(|&n| rest[n..].starts_with(&quoted)).map(|n| n + quoted.len())
        };
        if let Some(len) = name_len {
            let mut out = text[..at + 4].to_owned();
            out.push_str(other);
            out.push_str(&rest[len..]);
            return Some(out.into_bytes());
        }
        from = at + 4;
    }
    None
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

/// Whether the server behind `conn` knows the session settings `d` was created under (its
/// `sql_mode` and collations; across the MySQL family one may not): `Err` names the setting it
/// refused. The session is restored either way.
async fn probe_context(conn: &mut mysql_async::Conn, d: &TriggerDefinition, side: Side) -> Result<(), CutoverError> {
    let tried = match context(conn, d, side).await {
        Ok(context) => conn.query_drop(context).await,
        Err(e) => Err(mysql_async::Error::Other(e.to_string().into())),
    };
    conn.query_drop("SET NAMES utf8mb4, character_set_results = NULL, sql_mode = DEFAULT, collation_database = DEFAULT")
        .await
        .map_err(CutoverError::mysql(side, "restoring the session after trying a trigger's settings"))?;
    tried.map_err(CutoverError::mysql(side, format!("taking the session settings trigger {} was created under", d.name)))
}

/// Creates `d` in `database` under the session settings it was created with, then restores
/// turnout's session (utf8mb4, raw results, the server's sql_mode).
async fn create(conn: &mut mysql_async::Conn, database: &str, d: &TriggerDefinition, side: Side) -> Result<(), CutoverError> {
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
    use super::{on_table, without_order_clause};

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
        let on = |statement: &str, table: &str| on_table(statement.as_bytes(), table, "`turnout`.`trigger_trial`").map(|s| String::from_utf8(s).expect("utf8"));
        assert_eq!(
            on("CREATE DEFINER=`root`@`%` TRIGGER `t_on` AFTER INSERT ON `t` FOR EACH ROW INSERT INTO audit VALUES (NEW.id)", "t").as_deref(),
            Some("CREATE DEFINER=`root`@`%` TRIGGER `t_on` AFTER INSERT ON `turnout`.`trigger_trial` FOR EACH ROW INSERT INTO audit VALUES (NEW.id)")
        );
        assert_eq!(
            on("CREATE TRIGGER x BEFORE UPDATE on `app`.`odd ``name` FOR EACH ROW SET NEW.a = 1", "odd `name").as_deref(),
            Some("CREATE TRIGGER x BEFORE UPDATE on `turnout`.`trigger_trial` FOR EACH ROW SET NEW.a = 1")
        );
        assert_eq!(on("CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW SET NEW.a = 1", "t"), None, "an unquoted name is not guessed at");
    }
}
