//! The MySQL family's inventory ([`crate::source::contract::inventory`]): every object of blue's
//! database, read from `information_schema`, and what turnout does with each class. Closed: a table
//! type, an engine or a routine type turnout does not know is refused.
//!
//! | class | handling |
//! | --- | --- |
//! | InnoDB table (partitioned or not), generated and invisible columns | streamed (generated columns computed on green) |
//! | table of another engine (MyISAM, Aria, MEMORY, …), system-versioned table | refused: not applied exactly once / stamped by each server |
//! | a cascading foreign key from a table left out | refused: the cascade is not in the binlog |
//! | table left out by `[tables]` | left out |
//! | view, stored function and procedure, FULLTEXT and SPATIAL index | created with the schema copy, compared at the cutover |
//! | trigger | moved to the side that takes the writes inside the write pause |
//! | event | created disabled on green; enabled there inside the pause, disabled where the writes leave |
//! | MariaDB SEQUENCE | created with the schema copy; moved ahead of blue's at the cutover |
//! | a definer (of a view, routine, trigger or event) green lacks | refused: the object would fail on green |
//! | an unknown table type, engine or routine type | refused |

use super::sql_error;
use crate::error::Error;
use crate::source::contract::inventory::{Class, Handling, Inventory};
use crate::tables::Selection;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;

/// Engines whose changes turnout applies exactly once.
const TRANSACTIONAL: &[&str] = &["InnoDB"];

/// Grouped objects: `(class, handling) → (what, fix, objects)`, in the order first met.
#[derive(Default)]
struct Grouped {
    order: Vec<(String, Handling)>,
    classes: BTreeMap<(String, Handling), Class>,
}

impl Grouped {
    fn put(&mut self, class: &str, handling: Handling, what: &str, fix: Option<String>, object: String) {
        let key = (class.to_string(), handling);
        let c = self.classes.entry(key.clone()).or_insert_with(|| {
            self.order.push(key);
            Class { fix, ..Class::new(class, handling, what) }
        });
        c.objects.push(object);
    }

    fn into_inventory(mut self) -> Inventory {
        let mut inventory = Inventory::default();
        for key in self.order {
            if let Some(c) = self.classes.remove(&key) {
                let objects = c.objects.clone();
                inventory.add(c.with_objects(objects));
            }
        }
        inventory
    }
}

/// `user@host` as `'user'@'host'`, for a `CREATE USER`.
fn account(definer: &str) -> String {
    match definer.rsplit_once('@') {
        Some((user, host)) => format!("'{user}'@'{host}'"),
        None => format!("'{definer}'"),
    }
}

/// The accounts green has, as `user@host`; `None` when turnout's account may not read them.
async fn green_accounts(green: &mut mysql_async::Conn) -> Option<Vec<String>> {
    green.query::<String, _>("SELECT CONCAT(User, '@', Host) FROM mysql.user").await.ok()
}

/// Takes the inventory of blue's `database` (`blue`), its tables decided against `selection` and
/// `infos` as `run` selects them; with `green`, whether green has the accounts the definers name.
pub async fn take(
    blue: &mut mysql_async::Conn,
    green: Option<&mut mysql_async::Conn>,
    database: &str,
    selection: &Selection,
    heartbeat: &str,
) -> Result<Inventory, Error> {
    let mut g = Grouped::default();
    tables_into(&mut g, blue, database, selection, heartbeat).await?;
    columns_into(&mut g, blue, database, selection).await?;
    programs_into(&mut g, blue, database, selection).await?;
    if let Some(green) = green {
        definers_into(&mut g, blue, green, database).await?;
    }
    Ok(g.into_inventory())
}

/// Blue's tables and views by kind: streamed, copied, or refused naming why.
async fn tables_into(g: &mut Grouped, blue: &mut mysql_async::Conn, database: &str, selection: &Selection, heartbeat: &str) -> Result<(), Error> {
    let e = |what: &'static str| move |err| sql_error(crate::error::Side::Blue, what, err);
    let selected = |name: &str| selection.tables.iter().any(|t| t.name == name);
    let tables: Vec<(String, String, Option<String>, Option<String>)> = blue
        .exec("SELECT TABLE_NAME, TABLE_TYPE, ENGINE, CREATE_OPTIONS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1", (database,))
        .await
        .map_err(e("listing the tables"))?;
    for (name, kind, engine, options) in tables {
        if name == heartbeat {
            continue;
        }
        let engine = engine.unwrap_or_default();
        let exclude = format!("or leave it out with tables.exclude = [\"{database}.{name}\"]");
        match kind.as_str() {
            "BASE TABLE" | "SYSTEM VERSIONED" if !selected(&name) => g.put("table not replicated", Handling::LeftOut, "left out by [tables]", None, name),
            "SYSTEM VERSIONED" => g.put(
                "system-versioned table",
                Handling::Refused,
                "each server stamps its own ROW_START/ROW_END and keeps its own history",
                Some(format!("ALTER TABLE … DROP SYSTEM VERSIONING on blue if its history is not needed, {exclude}")),
                name,
            ),
            "BASE TABLE" if !TRANSACTIONAL.iter().any(|t| t.eq_ignore_ascii_case(&engine)) => g.put(
                &format!("{engine} table"),
                Handling::Refused,
                "its changes are not transactional, so turnout cannot apply them exactly once",
                Some(format!("ALTER TABLE … ENGINE = InnoDB on blue, {exclude}")),
                name,
            ),
            "BASE TABLE" if options.as_deref().unwrap_or_default().to_ascii_lowercase().contains("partitioned") => {
                g.put("partitioned table", Handling::Streamed, "copied, then streamed; its partitions with it", None, name)
            }
            "BASE TABLE" => g.put("table", Handling::Streamed, "copied, then streamed", None, name),
            "VIEW" => g.put("view", Handling::Copied, "created with the schema copy, compared at the cutover", None, name),
            "SEQUENCE" => g.put("sequence", Handling::AtCutover, "created with the schema copy; moved ahead of blue's at the cutover", None, name),
            other => g.put(
                &format!("{other} object"),
                Handling::Refused,
                "a kind of table turnout does not know",
                Some("drop it on blue, or move this database without turnout".into()),
                name,
            ),
        }
    }
    Ok(())
}

/// The selected tables' generated and invisible columns and full-text and spatial indexes.
async fn columns_into(g: &mut Grouped, blue: &mut mysql_async::Conn, database: &str, selection: &Selection) -> Result<(), Error> {
    let e = |what: &'static str| move |err| sql_error(crate::error::Side::Blue, what, err);
    let selected = |name: &str| selection.tables.iter().any(|t| t.name == name);
    let columns: Vec<(String, String, String)> = blue
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, CONCAT(IF(COALESCE(GENERATION_EXPRESSION, '') <> '', 'g', ''), IF(EXTRA LIKE '%INVISIBLE%', 'i', '')) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY 1, ORDINAL_POSITION",
            (database,),
        )
        .await
        .map_err(e("listing the columns"))?;
    for (table, column, marks) in columns.into_iter().filter(|(t, ..)| selected(t)) {
        if marks.contains('g') {
            g.put("generated column", Handling::Streamed, "computed on green from the columns turnout writes", None, format!("{table}.{column}"));
        }
        if marks.contains('i') {
            g.put("invisible column", Handling::Streamed, "copied and streamed like any column", None, format!("{table}.{column}"));
        }
    }
    let indexes: Vec<(String, String, String)> = blue
        .exec(
            "SELECT DISTINCT TABLE_NAME, INDEX_NAME, INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND INDEX_TYPE IN ('FULLTEXT', 'SPATIAL')",
            (database,),
        )
        .await
        .map_err(e("listing the indexes"))?;
    for (table, index, kind) in indexes.into_iter().filter(|(t, ..)| selected(t)) {
        g.put(
            &format!("{} index", kind.to_ascii_lowercase()),
            Handling::Copied,
            "created with the schema copy, compared at the cutover",
            None,
            format!("{table}.{index}"),
        );
    }
    Ok(())
}

/// Blue's stored routines, the selected tables' triggers and the database's events.
async fn programs_into(g: &mut Grouped, blue: &mut mysql_async::Conn, database: &str, selection: &Selection) -> Result<(), Error> {
    let e = |what: &'static str| move |err| sql_error(crate::error::Side::Blue, what, err);
    let selected = |name: &str| selection.tables.iter().any(|t| t.name == name);
    let routines: Vec<(String, String)> = blue
        .exec("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY 1, 2", (database,))
        .await
        .map_err(e("listing the stored routines"))?;
    for (kind, name) in routines {
        match kind.as_str() {
            "FUNCTION" | "PROCEDURE" => {
                g.put(&format!("stored {}", kind.to_ascii_lowercase()), Handling::Copied, "created with the schema copy, compared at the cutover", None, name)
            }
            other => g.put(
                &format!("{} routine", other.to_ascii_lowercase()),
                Handling::Refused,
                "a kind of routine turnout does not know",
                Some("drop it on blue, or create it on green yourself and move this database without turnout".into()),
                name,
            ),
        }
    }
    let triggers: Vec<(String, String)> = blue
        .exec("SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY 1, 2", (database,))
        .await
        .map_err(e("listing the triggers"))?;
    for (table, name) in triggers.into_iter().filter(|(t, _)| selected(t)) {
        g.put("trigger", Handling::AtCutover, "moved to the side that takes the writes inside the write pause", None, format!("{table}.{name}"));
    }
    let events: Vec<String> =
        blue.exec("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY 1", (database,)).await.map_err(e("listing the events"))?;
    for name in events {
        g.put("event", Handling::AtCutover, "created disabled on green; enabled there inside the write pause, disabled on blue", None, name);
    }
    Ok(())
}

/// The accounts blue's views, routines, triggers and events run as, each refused when green lacks it.
async fn definers_into(g: &mut Grouped, blue: &mut mysql_async::Conn, green: &mut mysql_async::Conn, database: &str) -> Result<(), Error> {
    let e = |what: &'static str| move |err| sql_error(crate::error::Side::Blue, what, err);
    let definers: Vec<String> = blue
        .exec(
            "SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? UNION SELECT DEFINER FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? UNION SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? \
             UNION SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?",
            (database, database, database, database),
        )
        .await
        .map_err(e("listing the definers"))?;
    match green_accounts(green).await {
        Some(accounts) => {
            for definer in definers.into_iter().filter(|d| !accounts.contains(d)) {
                g.put(
                    "definer green lacks",
                    Handling::Refused,
                    "views, routines, triggers or events run as this account, which does not exist on green: they would fail there",
                    Some(format!("CREATE USER {} on green, with the grants it has on blue", account(&definer))),
                    definer,
                );
            }
        }
        None => {
            for definer in definers {
                g.put(
                    "definer",
                    Handling::Operator,
                    "turnout's account may not read green's accounts to check that it exists there",
                    Some(format!("make sure {} exists on green (or GRANT SELECT ON mysql.user to turnout's account)", account(&definer))),
                    definer,
                );
            }
        }
    }
    Ok(())
}

/// Before a cutover that arms the way back: within one family, the collations the replicated tables
/// of the side traffic moves to (`other`, database `other_db`) use that the fenced side's server lacks
/// (refused: the reverse stream's DDL would fail there; across the families the crossing's own
/// equivalences decide). Returns a warning when `other`'s database defaults to a collation the fenced
/// side lacks (MariaDB 11.8's `uca1400` on 10.11): a table the application creates there after the
/// cutover could not come back.
pub async fn way_back(
    fenced: &mut mysql_async::Conn,
    other: &mut mysql_async::Conn,
    other_db: &str,
    tables: &[String],
    same_family: bool,
) -> Result<Option<String>, Error> {
    let known: Vec<String> = fenced
        .query("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "listing the collations", e))?;
    if same_family {
        let used: Vec<(String, String)> = other
            .exec(
                "SELECT DISTINCT TABLE_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND COLLATION_NAME IS NOT NULL \
                 UNION SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_COLLATION IS NOT NULL",
                (other_db, other_db),
            )
            .await
            .map_err(|e| sql_error(crate::error::Side::Green, "listing the collations", e))?;
        let mut problems: Vec<String> = used
            .into_iter()
            .filter(|(t, c)| tables.contains(t) && !known.contains(c))
            .map(|(t, c)| format!("table {t} uses collation {c}, which the other side's server does not have"))
            .collect();
        problems.sort();
        problems.dedup();
        if !problems.is_empty() {
            return Err(Error::Setup(format!(
                "the way back could not carry what the side traffic moves to holds: {}. Resolve it there (ALTER TABLE … CONVERT TO \
                 CHARACTER SET … COLLATE … with a collation both servers have), or cut over without a way back (cutover.reverse = false)",
                problems.join("; ")
            )));
        }
    }
    let default: Option<String> = other
        .exec_first("SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (other_db,))
        .await
        .map_err(|e| sql_error(crate::error::Side::Green, "reading the database's default collation", e))?;
    Ok(default.filter(|d| !known.contains(d)).map(|d| {
        format!(
            "database {other_db} defaults to collation {d}, which the other side's server does not have: a table created there after the \
             cutover would stop the way back; ALTER DATABASE `{other_db}` COLLATE a collation both have before the cutover"
        )
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_definer_becomes_an_account() {
        assert_eq!(super::account("root@localhost"), "'root'@'localhost'");
        assert_eq!(super::account("app@%"), "'app'@'%'");
    }
}
