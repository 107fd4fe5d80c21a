//! Blue's catalog (MySQL/MariaDB): the base tables of the source database the `[tables]` filter chooses
//! from, their engines and keys, and the columns turnout reads and writes.

use super::{quote, sql_error};
use crate::error::Error;
use crate::tables::{select, CatalogTable, Selection, TableFilter};
use mysql_async::prelude::Queryable;
use turnout_decoders::TableName;

/// One base table of blue's database as information_schema lists it.
#[derive(Clone, Debug)]
pub struct TableInfo {
    pub name: TableName,
    pub engine: String,
    pub has_primary_key: bool,
    /// MariaDB `WITH SYSTEM VERSIONING`: its period columns and history are stamped by each server.
    pub versioned: bool,
}

/// Every base table of `database`, system-versioned ones included (information_schema lists them
/// apart from base tables, and leaving them out would skip their changes without a word).
pub async fn tables(conn: &mut mysql_async::Conn, database: &str) -> Result<Vec<TableInfo>, Error> {
    /// Name, engine, primary key columns, TABLE_TYPE.
    type TableRow = (Vec<u8>, Option<Vec<u8>>, i64, String);
    let rows: Vec<TableRow> = conn
        .exec(
            "SELECT t.TABLE_NAME, t.ENGINE, \
                    (SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS c WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA \
                       AND c.TABLE_NAME = t.TABLE_NAME AND c.CONSTRAINT_TYPE = 'PRIMARY KEY'), t.TABLE_TYPE \
             FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = ? AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY t.TABLE_NAME",
            (database,),
        )
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "listing the tables", e))?;
    Ok(rows
        .into_iter()
        .map(|(name, engine, pk, kind)| TableInfo {
            name: TableName::new(database, String::from_utf8_lossy(&name).into_owned()),
            engine: engine.map(|e| String::from_utf8_lossy(&e).into_owned()).unwrap_or_default(),
            has_primary_key: pk > 0,
            versioned: kind == "SYSTEM VERSIONED",
        })
        .collect())
}

/// The MariaDB SEQUENCE objects of `database`, by name.
pub async fn sequences(conn: &mut mysql_async::Conn, database: &str) -> Result<Vec<String>, Error> {
    conn.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME", (database,))
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "listing the sequences", e))
}

/// Applies `filter` to blue's tables. Tables without a primary key replicate (rows are matched on every
/// column); selected tables turnout cannot apply exactly are listed by [`unreplicable`].
pub async fn select_tables(conn: &mut mysql_async::Conn, database: &str, filter: &TableFilter) -> Result<(Selection, Vec<TableInfo>), Error> {
    let infos = tables(conn, database).await?;
    let catalog = infos.iter().map(|t| CatalogTable { name: t.name.clone(), parent: None, no_identity: false, readable: true }).collect();
    Ok((select(catalog, filter)?, infos))
}

/// A selected table turnout cannot apply exactly, what it is and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreplicable {
    pub table: TableName,
    pub problem: String,
    pub fix: String,
}

/// Selected tables `check` and `run` refuse: another engine than InnoDB (changes are not
/// transactional, so a crash could apply part of a statement) and system-versioned tables (each
/// server stamps its own `ROW_START`/`ROW_END` and keeps its own history, so green's would differ).
pub fn unreplicable(selection: &Selection, infos: &[TableInfo]) -> Vec<Unreplicable> {
    let mut out = Vec::new();
    let exclude = |t: &TableName| format!("(or leave it out with tables.exclude = [\"{t}\"])");
    for t in infos.iter().filter(|t| selection.tables.contains(&t.name)) {
        let table = format!("{}.{}", quote(&t.name.schema), quote(&t.name.name));
        if !t.engine.eq_ignore_ascii_case("InnoDB") {
            out.push(Unreplicable {
                table: t.name.clone(),
                problem: format!("{} uses engine {}, whose changes are not transactional, so turnout cannot apply them exactly once", t.name, t.engine),
                fix: format!("run ALTER TABLE {table} ENGINE = InnoDB; on blue {}", exclude(&t.name)),
            });
        }
        if t.versioned {
            out.push(Unreplicable {
                table: t.name.clone(),
                problem: format!(
                    "{} is system-versioned: green would stamp its own ROW_START/ROW_END and keep its own history, so its rows would differ from blue's",
                    t.name
                ),
                fix: format!("run ALTER TABLE {table} DROP SYSTEM VERSIONING; on blue if its history is not needed {}", exclude(&t.name)),
            });
        }
    }
    out
}

/// A foreign key through which changes to a table turnout does not replicate would change a table
/// it does: InnoDB applies the cascade on blue without writing it to the binlog, so green would keep
/// the rows blue changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HiddenCascade {
    pub child: TableName,
    pub parent: TableName,
    pub constraint: String,
    /// `ON DELETE CASCADE`, `ON UPDATE SET NULL`, …
    pub rules: String,
}

/// Selected tables with a cascading (`CASCADE`, `SET NULL`, `SET DEFAULT`) foreign key to a table the
/// selection leaves out.
pub async fn hidden_cascades(conn: &mut mysql_async::Conn, database: &str, selection: &Selection) -> Result<Vec<HiddenCascade>, Error> {
    let rows: Vec<(String, String, String, String, String, String)> = conn
        .exec(
            "SELECT CONSTRAINT_NAME, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE \
             FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY TABLE_NAME, CONSTRAINT_NAME",
            (database,),
        )
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "reading foreign keys", e))?;
    let acts = |rule: &str| !matches!(rule.to_ascii_uppercase().as_str(), "RESTRICT" | "NO ACTION");
    Ok(rows
        .into_iter()
        .filter_map(|(constraint, child, parent_schema, parent, update, delete)| {
            let child = TableName::new(database, child);
            let parent = TableName::new(parent_schema, parent);
            let mut rules = Vec::new();
            if acts(&delete) {
                rules.push(format!("ON DELETE {delete}"));
            }
            if acts(&update) {
                rules.push(format!("ON UPDATE {update}"));
            }
            (selection.tables.contains(&child) && !selection.tables.contains(&parent) && !rules.is_empty()).then(|| HiddenCascade {
                child,
                parent,
                constraint,
                rules: rules.join(" "),
            })
        })
        .collect())
}

/// A column as information_schema describes it.
#[derive(Clone, Debug)]
pub struct ColumnInfo {
    pub name: String,
    /// `DATA_TYPE`: `int`, `varchar`, `enum` …
    pub data_type: String,
    /// Virtual or stored generated column: never written.
    pub generated: bool,
    /// `CHARACTER_SET_NAME` of a character column (`None` for others).
    pub charset: Option<String>,
}

/// The columns of `table` in order.
pub async fn columns(conn: &mut mysql_async::Conn, table: &TableName, side: crate::error::Side) -> Result<Vec<ColumnInfo>, Error> {
    type ColumnRow = (Vec<u8>, Vec<u8>, i64, Option<Vec<u8>>);
    // Generated means a generation expression: MySQL's EXTRA also says DEFAULT_GENERATED for a column
    // whose default is an expression (`DEFAULT CURRENT_TIMESTAMP`), whose values must be copied.
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COALESCE(GENERATION_EXPRESSION, '') <> '', CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| sql_error(side, &format!("reading the columns of {table}"), e))?;
    Ok(rows
        .into_iter()
        .map(|(name, data_type, generated, charset)| ColumnInfo {
            name: String::from_utf8_lossy(&name).into_owned(),
            data_type: String::from_utf8_lossy(&data_type).to_ascii_lowercase(),
            generated: generated != 0,
            charset: charset.map(|c| String::from_utf8_lossy(&c).into_owned()),
        })
        .collect())
}

/// The triggers of `database` on the server, as `` `table`.`trigger` `` (`tables`: only those on
/// these tables; `None`: all).
///
/// On green before the cutover a trigger is a divergence waiting to happen: blue's triggers already
/// wrote their effects into blue's binlog as rows, so a green trigger would apply them a second time
/// (a `BEFORE UPDATE` overwriting blue's value, an `AFTER INSERT` into an audit table doubling it).
pub async fn triggers(conn: &mut mysql_async::Conn, database: &str, tables: Option<&[TableName]>, side: crate::error::Side) -> Result<Vec<String>, Error> {
    let rows: Vec<(String, String)> = conn
        .exec("SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? ORDER BY 1, 2", (database,))
        .await
        .map_err(|e| super::sql_error(side, "reading the triggers", e))?;
    Ok(rows
        .into_iter()
        .filter(|(table, _)| tables.is_none_or(|ts| ts.iter().any(|t| &t.name == table)))
        .map(|(table, trigger)| format!("{}.{}", super::quote(&table), super::quote(&trigger)))
        .collect())
}

/// The refusal for green's `triggers`, naming each and the ways on.
pub fn green_triggers_problem(triggers: &[String]) -> (String, String) {
    (
        format!("green has triggers on replicated tables: {}; they would fire again for rows blue's binlog already carries", triggers.join(", ")),
        "drop them on green (DROP TRIGGER …; keep their SHOW CREATE TRIGGER text) and create them again after the cutover, \
         or leave those tables out with tables.exclude"
            .into(),
    )
}
