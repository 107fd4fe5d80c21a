//! Triggers parked on a MySQL/MariaDB blue for the rollback window of a cutover to another engine.
//!
//! Across engines the triggers cannot change sides as [`crate::hand_over_triggers`] moves them: green's
//! form of a trigger is the operator's (`cutover.keep_definitions`). But blue's own must not fire
//! while the stream back applies green's rows to blue — green's form already did their work, and the
//! rows it wrote come back too. So before the stream back first applies, [`park`] saves each trigger
//! of blue's replicated tables in `turnout.parked_triggers` on blue (its statement with its definer,
//! the `sql_mode` and character sets it was created under, its place in the firing order) and drops
//! it; the rollback's [`unpark`] creates them again as they were, in their firing order, inside its
//! write pause before blue takes the application's writes, and forgets them.
//!
//! Both are idempotent, for a step repeated after a crash: a trigger saved once is never saved again
//! (a second [`park`] keeps the first definition and drops what is left), one already created is
//! kept. Nothing enters the binlog (`sql_log_bin = 0`): streams read it, and trigger DDL stops them.

use crate::error::{CutoverError, Side};
use crate::triggers::{create, definitions, TriggerDefinition};
use mysql_async::prelude::Queryable;
use turnout_sinks::mysql::literal::ident as quote;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS turnout.parked_triggers (db VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, \
     seq INT NOT NULL, tbl VARCHAR(64) NOT NULL, sql_mode TEXT NOT NULL, statement LONGBLOB NOT NULL, character_set_client VARCHAR(64) NOT NULL, \
     collation_connection VARCHAR(64) NOT NULL, database_collation VARCHAR(64) NOT NULL, definer VARCHAR(300) NOT NULL, \
     PRIMARY KEY (db, name)) ENGINE = InnoDB";

/// Runs `work` with the session's writes kept out of the binlog, restoring it after.
async fn unlogged<T>(
    conn: &mut mysql_async::Conn,
    side: Side,
    work: impl AsyncFnOnce(&mut mysql_async::Conn) -> Result<T, CutoverError>,
) -> Result<T, CutoverError> {
    conn.query_drop("SET SESSION sql_log_bin = 0").await.map_err(CutoverError::mysql(side, "SET sql_log_bin = 0 (needs BINLOG ADMIN or SUPER)"))?;
    let result = work(conn).await;
    conn.query_drop("SET SESSION sql_log_bin = 1").await.map_err(CutoverError::mysql(side, "SET sql_log_bin = 1"))?;
    result
}

/// Saves, then drops, the triggers of `database` on `tables`; `` `table`.`trigger` `` of each one
/// dropped now. See the module documentation.
pub async fn park(conn: &mut mysql_async::Conn, database: &str, tables: &[String], side: Side) -> Result<Vec<String>, CutoverError> {
    let found = definitions(conn, database, Some(tables), side).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    unlogged(conn, side, async |conn| {
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS turnout; {TABLE}"))
            .await
            .map_err(CutoverError::mysql(side, "creating turnout.parked_triggers"))?;
        let first: Option<i64> = conn
            .exec_first("SELECT COALESCE(MAX(seq) + 1, 0) FROM turnout.parked_triggers WHERE db = ?", (database,))
            .await
            .map_err(CutoverError::mysql(side, "reading turnout.parked_triggers"))?;
        let mut dropped = Vec::with_capacity(found.len());
        for (seq, d) in (first.unwrap_or(0)..).zip(&found) {
            conn.exec_drop(
                "INSERT IGNORE INTO turnout.parked_triggers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    database,
                    &d.name,
                    seq,
                    &d.table,
                    &d.sql_mode,
                    &d.statement,
                    &d.character_set_client,
                    &d.collation_connection,
                    &d.database_collation,
                    &d.definer,
                ),
            )
            .await
            .map_err(CutoverError::mysql(side, format!("saving trigger {} in turnout.parked_triggers", d.name)))?;
            conn.query_drop(format!("DROP TRIGGER IF EXISTS {}.{}", quote(database), quote(&d.name)))
                .await
                .map_err(CutoverError::mysql(side, format!("dropping trigger {} for the rollback window", d.name)))?;
            dropped.push(format!("{}.{}", quote(&d.table), quote(&d.name)));
        }
        Ok(dropped)
    })
    .await
}

/// The triggers parked for `database`, in their firing order (none when nothing was parked).
pub async fn parked(conn: &mut mysql_async::Conn, database: &str, side: Side) -> Result<Vec<TriggerDefinition>, CutoverError> {
    let exists: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'turnout' AND TABLE_NAME = 'parked_triggers'")
        .await
        .map_err(CutoverError::mysql(side, "looking for turnout.parked_triggers"))?;
    if exists.unwrap_or(0) == 0 {
        return Ok(Vec::new());
    }
    type Saved = (String, String, String, Vec<u8>, String, String, String, String);
    let rows: Vec<Saved> = conn
        .exec(
            "SELECT tbl, name, sql_mode, statement, character_set_client, collation_connection, database_collation, definer \
             FROM turnout.parked_triggers WHERE db = ? ORDER BY seq",
            (database,),
        )
        .await
        .map_err(CutoverError::mysql(side, "reading turnout.parked_triggers"))?;
    Ok(rows
        .into_iter()
        .map(|(table, name, sql_mode, statement, character_set_client, collation_connection, database_collation, definer)| TriggerDefinition {
            table,
            name,
            sql_mode,
            statement,
            character_set_client,
            collation_connection,
            database_collation,
            definer,
        })
        .collect())
}

/// Creates again every trigger parked for `database`, in its firing order, and forgets them (the
/// table goes once empty); `` `table`.`trigger` `` of each one. See the module documentation.
pub async fn unpark(conn: &mut mysql_async::Conn, database: &str, side: Side) -> Result<Vec<String>, CutoverError> {
    let saved = parked(conn, database, side).await?;
    if saved.is_empty() {
        return Ok(Vec::new());
    }
    let existing: Vec<String> = conn
        .exec("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", (database,))
        .await
        .map_err(CutoverError::mysql(side, "listing the triggers"))?;
    unlogged(conn, side, async |conn| {
        let mut created = Vec::with_capacity(saved.len());
        for d in &saved {
            if !existing.contains(&d.name) {
                create(conn, database, d, side).await?;
            }
            created.push(format!("{}.{}", quote(&d.table), quote(&d.name)));
        }
        conn.exec_drop("DELETE FROM turnout.parked_triggers WHERE db = ?", (database,))
            .await
            .map_err(CutoverError::mysql(side, "forgetting the parked triggers"))?;
        let left: Option<i64> =
            conn.query_first("SELECT COUNT(*) FROM turnout.parked_triggers").await.map_err(CutoverError::mysql(side, "counting turnout.parked_triggers"))?;
        if left == Some(0) {
            conn.query_drop("DROP TABLE turnout.parked_triggers").await.map_err(CutoverError::mysql(side, "dropping turnout.parked_triggers"))?;
        }
        Ok(created)
    })
    .await
}
