//! Blue's and green's schema objects compared, for the cutover to refuse while they differ.
//!
//! The binlog carries rows and some DDL; a change made outside it (on green by hand, on blue in a
//! session with `sql_log_bin = 0`) or DDL turnout cannot replay leaves green's schema different from
//! blue's, and after the cutover the application would meet the difference. Compared, per replicated
//! table: its columns (type, nullability, default, extra, generation expression, character set and
//! collation), its indexes (uniqueness, columns with prefix lengths, type) and its constraints
//! (foreign keys with their rules, checks); per database: views (definition, security), stored
//! functions and procedures (body, parameters, data access, determinism, security) and whether each
//! replicated table exists. Triggers are left out on purpose (they move inside the write pause, see
//! `turnout_cutover::hand_over_triggers`), and so are events (they stay on blue: an event on green
//! before the cutover would change rows that blue's binlog also carries), counters (synced at the
//! cutover) and table options that change no behaviour (row format, comments, statistics).

use super::sql_error;
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
async fn objects(conn: &mut mysql_async::Conn, database: &str, tables: &[String], side: &str) -> Result<Objects, Error> {
    let mut out = Objects::new();
    let oracle = !super::is_mariadb(conn, side).await?;
    for q in QUERIES {
        type ObjectRow = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);
        let sql = q.oracle_sql.filter(|_| oracle).unwrap_or(q.sql);
        let rows: Vec<ObjectRow> = conn.exec(sql, (database,)).await.map_err(|e| sql_error(side, &format!("reading the {}s to compare", q.kind), e))?;
        for (table, name, description) in rows {
            let (table, name) = (String::from_utf8_lossy(&table).into_owned(), String::from_utf8_lossy(&name).into_owned());
            if q.per_table && !tables.contains(&table) {
                continue;
            }
            let key = if q.per_table && q.kind != "table" { format!("{} `{table}`.`{name}`", q.kind) } else { format!("{} `{name}`", q.kind) };
            out.insert(key, description.map(|d| String::from_utf8_lossy(&d).into_owned()).unwrap_or_default());
        }
    }
    Ok(out)
}

/// Each difference between blue's and green's schema objects (see the module documentation), as one
/// line naming the object and what to do. `tables` are the replicated tables' names (in blue's
/// database, which green's has the same name as).
pub async fn differences(blue: &mut mysql_async::Conn, green: &mut mysql_async::Conn, database: &str, tables: &[String]) -> Result<Vec<String>, Error> {
    let b = objects(blue, database, tables, "blue").await?;
    let g = objects(green, database, tables, "green").await?;
    Ok(compare(&b, &g))
}
