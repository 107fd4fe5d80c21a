//! Blue's and green's schema objects compared, for the cutover to refuse while they differ.
//!
//! The binlog carries rows and some DDL; a change made outside it (on green by hand, on blue in a
//! session with `sql_log_bin = 0`) or DDL turnout cannot replay leaves green's schema different from
//! blue's, and after the cutover the application would meet the difference. Compared, per replicated
//! table: its columns (type, nullability, default, extra, generation expression, character set and
//! collation), its indexes (uniqueness, columns with prefix lengths, type) and its constraints
//! (foreign keys with their rules, checks); per database: views (definition, security), stored
//! functions and procedures (body, parameters, data access, determinism, security), events (definer,
//! schedule, body — not whether enabled: green's are disabled until the cutover enables them, see
//! [`super::programs`]) and whether each replicated table exists. Triggers are left out on purpose
//! (they move inside the write pause, see `turnout_cutover::hand_over_triggers`), and so are counters
//! (synced at the cutover) and table options that change no behaviour (row format, comments,
//! statistics).

use super::{portable, sql_error};
use crate::error::Error;
use crate::source::drift::{compare, Objects};
use mysql_async::prelude::Queryable;

/// What one object query yields: the object's kind and name, and its description.
struct Query {
    kind: &'static str,
    /// Columns: table, name, then the description's parts. `?` is the database.
    sql: &'static str,
    /// Whether the first column is a table name that must be replicated for the row to count.
    per_table: bool,
    /// Oracle MySQL's form, where its information_schema differs.
    oracle_sql: Option<&'static str>,
}

const QUERIES: &[Query] = &[
    Query {
        kind: "table",
        sql: "SELECT TABLE_NAME, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW'",
        per_table: true,
        oracle_sql: None,
    },
    Query {
        kind: "column",
        sql: "SELECT TABLE_NAME, COLUMN_NAME, CONCAT_WS(' ', COLUMN_TYPE, IF(IS_NULLABLE = 'YES', 'NULL', 'NOT NULL'), \
              CONCAT('DEFAULT ', COLUMN_DEFAULT), NULLIF(EXTRA, ''), CONCAT('AS (', GENERATION_EXPRESSION, ')'), \
              CONCAT('CHARACTER SET ', CHARACTER_SET_NAME), CONCAT('COLLATE ', COLLATION_NAME)) \
              FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?",
        per_table: true,
        oracle_sql: None,
    },
    Query {
        kind: "index",
        sql: "SELECT TABLE_NAME, INDEX_NAME, CONCAT(IF(NON_UNIQUE = 0, 'UNIQUE ', ''), INDEX_TYPE, ' (', \
              GROUP_CONCAT(CONCAT(IFNULL(COLUMN_NAME, '(expression)'), IFNULL(CONCAT('(', SUB_PART, ')'), ''), IF(COLLATION = 'D', ' DESC', '')) \
              ORDER BY SEQ_IN_INDEX SEPARATOR ', '), ')') \
              FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE, INDEX_TYPE",
        per_table: true,
        oracle_sql: None,
    },
    Query {
        kind: "foreign key",
        sql: "SELECT r.TABLE_NAME, r.CONSTRAINT_NAME, CONCAT('(', GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ', '), \
              ') REFERENCES ', r.REFERENCED_TABLE_NAME, ' (', GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ', '), \
              ') ON UPDATE ', r.UPDATE_RULE, ' ON DELETE ', r.DELETE_RULE) \
              FROM information_schema.REFERENTIAL_CONSTRAINTS r JOIN information_schema.KEY_COLUMN_USAGE k \
              ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA AND k.TABLE_NAME = r.TABLE_NAME AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME \
              WHERE r.CONSTRAINT_SCHEMA = ? GROUP BY r.TABLE_NAME, r.CONSTRAINT_NAME, r.REFERENCED_TABLE_NAME, r.UPDATE_RULE, r.DELETE_RULE",
        per_table: true,
        oracle_sql: None,
    },
    Query {
        kind: "check constraint",
        sql: "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?",
        per_table: true,
        // MySQL's CHECK_CONSTRAINTS has no table name; its constraint names are unique per schema.
        oracle_sql: Some(
            "SELECT tc.TABLE_NAME, tc.CONSTRAINT_NAME, cc.CHECK_CLAUSE FROM information_schema.TABLE_CONSTRAINTS tc \
             JOIN information_schema.CHECK_CONSTRAINTS cc ON cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME \
             WHERE tc.CONSTRAINT_SCHEMA = ? AND tc.CONSTRAINT_TYPE = 'CHECK'",
        ),
    },
    Query {
        kind: "view",
        sql: "SELECT '', TABLE_NAME, CONCAT_WS(' ', SECURITY_TYPE, CHECK_OPTION, VIEW_DEFINITION) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?",
        per_table: false,
        oracle_sql: None,
    },
    Query {
        kind: "event",
        sql: "SELECT '', EVENT_NAME, CONCAT_WS(' ', DEFINER, EVENT_TYPE, EXECUTE_AT, INTERVAL_VALUE, INTERVAL_FIELD, STARTS, ENDS, ON_COMPLETION, \
              EVENT_DEFINITION) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?",
        per_table: false,
        oracle_sql: None,
    },
    Query {
        kind: "routine",
        sql: "SELECT '', CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME), CONCAT_WS(' ', \
              (SELECT GROUP_CONCAT(CONCAT_WS(' ', PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER) ORDER BY ORDINAL_POSITION SEPARATOR ', ') \
               FROM information_schema.PARAMETERS p WHERE p.SPECIFIC_SCHEMA = r.ROUTINE_SCHEMA AND p.SPECIFIC_NAME = r.SPECIFIC_NAME \
               AND p.ROUTINE_TYPE = r.ROUTINE_TYPE), \
              SQL_DATA_ACCESS, IS_DETERMINISTIC, SECURITY_TYPE, ROUTINE_DEFINITION) \
              FROM information_schema.ROUTINES r WHERE ROUTINE_SCHEMA = ?",
        per_table: false,
        oracle_sql: None,
    },
];

/// One side's objects in `database`, restricted to `tables` where an object belongs to a table.
/// `across`: the other side is of the other family, and columns, CHECK clauses, views and routines
/// are described as both families print them ([`across_families`]).
/// `oracle`: this side is Oracle MySQL.
async fn objects(
    conn: &mut mysql_async::Conn,
    database: &str,
    tables: &[String],
    side: crate::error::Side,
    oracle: bool,
    across: bool,
) -> Result<Objects, Error> {
    let mut out = Objects::new();
    for q in QUERIES {
        if across && ACROSS_OWN.contains(&q.kind) {
            continue;
        }
        type ObjectRow = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);
        let sql = q.oracle_sql.filter(|_| oracle).unwrap_or(q.sql);
        let rows: Vec<ObjectRow> = conn.exec(sql, (database,)).await.map_err(|e| sql_error(side, &format!("reading the {}s to compare", q.kind), e))?;
        for (table, name, description) in rows {
            let (table, name) = (String::from_utf8_lossy(&table).into_owned(), String::from_utf8_lossy(&name).into_owned());
            if q.per_table && !tables.contains(&table) {
                continue;
            }
            let key = if q.per_table && q.kind != "table" { format!("{} `{table}`.`{name}`", q.kind) } else { format!("{} `{name}`", q.kind) };
            let description = description.map(|d| String::from_utf8_lossy(&d).into_owned()).unwrap_or_default();
            let description = match q.kind {
                "routine" if across => portable::strip_widths(&description),
                // InnoDB's NO ACTION is RESTRICT; MariaDB prints one, MySQL the other.
                "foreign key" if across => description.replace("NO ACTION", "RESTRICT"),
                _ => description,
            };
            out.insert(key, description);
        }
    }
    if across {
        across_families(conn, database, tables, side, oracle, &mut out).await?;
    }
    Ok(out)
}

/// The objects [`across_families`] describes itself when the sides' families differ.
const ACROSS_OWN: &[&str] = &["column", "check constraint", "view"];

/// Columns, CHECK constraints and views as both families print them ([`portable`]). A MySQL JSON
/// column is what MariaDB makes of one: `longtext` in `utf8mb4_bin` with a `json_valid` check. CHECK
/// constraints are keyed by their clause (MariaDB names a column's own check after the column, MySQL
/// numbers them), views by name, security, check option and the columns they give (each family
/// prints its own resolved form of the definition, which is not compared).
async fn across_families(
    conn: &mut mysql_async::Conn,
    database: &str,
    tables: &[String],
    side: crate::error::Side,
    oracle: bool,
    out: &mut Objects,
) -> Result<(), Error> {
    let views: Vec<(String, String, String)> = conn
        .exec("SELECT TABLE_NAME, SECURITY_TYPE, CHECK_OPTION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?", (database,))
        .await
        .map_err(|e| sql_error(side, "reading the views to compare", e))?;
    for (name, security, check) in &views {
        out.insert(format!("view `{name}`"), format!("{security} {check}"));
    }
    // A view's definition is not compared, but the columns it gives the application are.
    let views: Vec<String> = views.into_iter().map(|(name, ..)| name).collect();
    type ColumnRow = (String, String, String, String, String, Option<String>, String, Option<String>, Option<String>, Option<String>);
    let columns: Vec<ColumnRow> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, GENERATION_EXPRESSION, \
             CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?",
            (database,),
        )
        .await
        .map_err(|e| sql_error(side, "reading the columns to compare", e))?;
    let mut checks: Vec<(String, Option<String>, String)> = Vec::new();
    let mut column_names: Vec<(String, String)> = Vec::new();
    for (table, name, data_type, column_type, nullable, default, extra, generation, charset, collation) in columns {
        if !tables.contains(&table) && !views.contains(&table) {
            continue;
        }
        column_names.push((table.clone(), name.clone()));
        let json = data_type == "json";
        let (column_type, charset, collation) = if json {
            if tables.contains(&table) {
                checks.push((table.clone(), None, format!("json_valid(`{name}`)")));
            }
            ("longtext".to_owned(), Some("utf8mb4".to_owned()), Some("utf8mb4_bin".to_owned()))
        } else {
            (portable::column_type(&column_type), charset, collation)
        };
        let generation = generation.filter(|g| !g.is_empty());
        let parts = [
            Some(column_type),
            Some(if nullable == "YES" { "NULL".to_owned() } else { "NOT NULL".to_owned() }),
            portable::default(default.as_deref(), &extra, !oracle, portable::numeric(&data_type)).map(|d| format!("DEFAULT {d}")),
            Some(portable::extra(&extra)).filter(|e| !e.is_empty()),
            generation.map(|g| format!("AS ({})", portable::expression(&g, oracle))),
            charset.map(|c| format!("CHARACTER SET {c}")),
            collation.map(|c| format!("COLLATE {c}")),
        ];
        out.insert(format!("column `{table}`.`{name}`"), parts.into_iter().flatten().collect::<Vec<_>>().join(" "));
    }
    let sql = QUERIES.iter().find(|q| q.kind == "check constraint").map(|q| q.oracle_sql.filter(|_| oracle).unwrap_or(q.sql)).unwrap_or_default();
    let rows: Vec<(String, String, String)> = conn.exec(sql, (database,)).await.map_err(|e| sql_error(side, "reading the check constraints to compare", e))?;
    checks.extend(rows.into_iter().map(|(table, name, clause)| (table, Some(name), clause)));
    for (table, name, clause) in checks.into_iter().filter(|(t, ..)| tables.contains(t)) {
        // A name the server made up differs between the families (MySQL numbers them, MariaDB names
        // a column's check after the column): such a check is known by its clause.
        // MySQL escapes its own CHECK_CLAUSE (not the `json_valid` stand-in made up above).
        let clause = portable::expression(&clause, oracle && name.is_some());
        let given = name.filter(|n| !generated_check_name(&table, n) && !column_names.iter().any(|(t, c)| t == &table && c == n));
        match given {
            Some(name) => out.insert(format!("check constraint `{table}`.`{name}`"), clause),
            None => out.insert(format!("check constraint on `{table}` {clause}"), String::new()),
        };
    }
    Ok(())
}

/// Whether `name` is one a server gives a CHECK constraint of `table` left unnamed: MySQL's
/// `<table>_chk_<n>`, MariaDB's `CONSTRAINT_<n>`.
fn generated_check_name(table: &str, name: &str) -> bool {
    let numbered = |prefix: &str| name.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    numbered(&format!("{table}_chk_")) || numbered("CONSTRAINT_")
}

/// Each difference between blue's and green's schema objects (see the module documentation), as one
/// line naming the object and what to do. `tables` are the replicated tables' names (in blue's
/// database, which green's has the same name as). Across the MySQL family the objects are described
/// as both families print them ([`portable`]), and a view's definition is not compared.
pub async fn differences(blue: &mut mysql_async::Conn, green: &mut mysql_async::Conn, database: &str, tables: &[String]) -> Result<Vec<String>, Error> {
    let (blue_oracle, green_oracle) = (!super::is_mariadb(blue, crate::error::Side::Blue).await?, !super::is_mariadb(green, crate::error::Side::Green).await?);
    let across = blue_oracle != green_oracle;
    let b = objects(blue, database, tables, crate::error::Side::Blue, blue_oracle, across).await?;
    let g = objects(green, database, tables, crate::error::Side::Green, green_oracle, across).await?;
    Ok(compare(&b, &g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_a_server_made_up_are_taken_for_unnamed_checks() {
        assert!(generated_check_name("block", "block_chk_1"));
        assert!(generated_check_name("block", "CONSTRAINT_12"));
        assert!(!generated_check_name("block", "positive"));
        assert!(!generated_check_name("block", "other_chk_1"), "another table's numbering is a name");
        assert!(!generated_check_name("block", "block_chk_"));
    }
}
