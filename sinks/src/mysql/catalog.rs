//! What the sink reads from green's catalog about a table, beyond the schema blue's stream carries.

use crate::error::SinkError;
use mysql_async::prelude::Queryable;
use std::collections::HashSet;
use turnout_decoders::TableName;

/// What the sink needs to know about a green table beyond blue's schema.
#[derive(Debug)]
pub(super) struct TableInfo {
    /// The columns green never takes a value for (virtual and stored generated columns).
    pub generated: HashSet<String>,
    /// Every column green has, generated or not.
    pub columns: HashSet<String>,
    /// Green's columns in their order (a positional INSERT's).
    pub ordered: Vec<String>,
    /// A column is INVISIBLE: a positional INSERT does not take a value for it.
    pub invisible: bool,
    /// Green's columns of Oracle MySQL's JSON type. A source that sends them as text (a MariaDB side,
    /// whose JSON is LONGTEXT) has its text parsed into them ([`super::literal::push`]).
    pub json: HashSet<String>,
    /// Whether the table's changes may fold, once decided against blue's schema (the entry is
    /// dropped whenever blue announces a new one).
    pub foldable: Option<bool>,
    /// Has a foreign key to itself.
    pub self_referencing: bool,
    /// Nothing on green ties this table's rows to each other's order or to other tables: no foreign
    /// key from or to it, no unique key besides the primary key, no trigger, no system versioning.
    /// Changes of different rows of such a table commute with every other change of a batch.
    pub independent: bool,
    /// How its changes conflict with changes other sessions apply at the same time: a foreign key
    /// (green cascades), a trigger or system versioning make it a barrier; a unique key besides the
    /// primary key keeps it to one session at a time (its collation decides which values are equal).
    pub conflicts: crate::Conflicts,
}

async fn count(conn: &mut mysql_async::Conn, table: &TableName, what: &str, sql: &str, params: Vec<&str>) -> Result<u64, SinkError> {
    let n: Option<u64> = conn.exec_first(sql, params).await.map_err(SinkError::mysql(format!("reading the {what} of {table}")))?;
    Ok(n.unwrap_or(0))
}

pub(super) async fn table_info(conn: &mut mysql_async::Conn, table: &TableName) -> Result<TableInfo, SinkError> {
    // Generated means a generation expression: MySQL's EXTRA also says DEFAULT_GENERATED for a
    // column whose default is an expression (`DEFAULT CURRENT_TIMESTAMP`), which takes values.
    // Name, EXTRA, generated, of the JSON type.
    type ColumnRow = (Vec<u8>, Vec<u8>, i64, i64);
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, EXTRA, COALESCE(GENERATION_EXPRESSION, '') <> '', LOWER(DATA_TYPE) = 'json' FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.schema, &table.name),
        )
        .await
        .map_err(SinkError::mysql(format!("reading the columns of {table}")))?;
    if rows.is_empty() {
        return Err(SinkError::Schema {
            table: table.to_string(),
            reason: "does not exist on green; create it (turnout run copies the schema when green lacks the tables)".into(),
        });
    }
    let ordered: Vec<String> = rows.iter().map(|(name, ..)| String::from_utf8_lossy(name).into_owned()).collect();
    let invisible = rows.iter().any(|(_, extra, ..)| String::from_utf8_lossy(extra).to_ascii_uppercase().contains("INVISIBLE"));
    let columns = ordered.iter().cloned().collect();
    let named = |flag: fn(&ColumnRow) -> bool| -> HashSet<String> {
        rows.iter().filter(|r| flag(r)).map(|(name, ..)| String::from_utf8_lossy(name).into_owned()).collect()
    };
    let generated = named(|r| r.2 != 0);
    let json = named(|r| r.3 != 0);
    let Constraints { self_refs, foreign_keys, unique, primary, triggers, versioned } = constraints(conn, table).await?;
    let conflicts = if foreign_keys > 0 || triggers > 0 || versioned > 0 {
        crate::Conflicts::Everything
    } else if unique > 0 {
        crate::Conflicts::Table
    } else {
        crate::Conflicts::Keys(Vec::new())
    };
    Ok(TableInfo {
        generated,
        columns,
        ordered,
        invisible,
        json,
        foldable: None,
        self_referencing: self_refs > 0,
        independent: primary > 0 && foreign_keys == 0 && unique == 0 && triggers == 0 && versioned == 0,
        conflicts,
    })
}

/// How many of each thing that decides how rows of a table on green may be applied it has.
struct Constraints {
    /// Foreign keys from the table to itself.
    self_refs: u64,
    /// Foreign keys from or to the table.
    foreign_keys: u64,
    /// Unique keys besides the primary key.
    unique: u64,
    /// Primary key columns.
    primary: u64,
    triggers: u64,
    /// 1 when it is not a base table (system-versioned).
    versioned: u64,
}

/// Counts `table`'s [`Constraints`] on green.
async fn constraints(conn: &mut mysql_async::Conn, table: &TableName) -> Result<Constraints, SinkError> {
    let (db, name) = (table.schema.as_str(), table.name.as_str());
    let self_refs = count(
        conn,
        table,
        "foreign keys",
        "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?",
        vec![db, name, db, name],
    )
    .await?;
    let foreign_keys = count(
        conn,
        table,
        "foreign keys",
        "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)",
        vec![db, name, db, name],
    )
    .await?;
    let unique = count(
        conn,
        table,
        "unique keys",
        "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY'",
        vec![db, name],
    )
    .await?;
    let primary = count(
        conn,
        table,
        "primary key",
        "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'",
        vec![db, name],
    )
    .await?;
    let triggers = count(
        conn,
        table,
        "triggers",
        "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?",
        vec![db, name],
    )
    .await?;
    let versioned = count(
        conn,
        table,
        "table type",
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE <> 'BASE TABLE'",
        vec![db, name],
    )
    .await?;
    Ok(Constraints { self_refs, foreign_keys, unique, primary, triggers, versioned })
}
