//! Blue's catalog (PostgreSQL): the user tables the `[tables]` filter chooses from, and the
//! statement that makes a table without a key replicable.

use crate::error::Error;
use crate::tables::{select, CatalogTable, Selection, TableFilter};
use turnout_connect::pg::PgConnection;
use turnout_decoders::schema::{quote_ident, TableName};

/// `WHERE` condition selecting user tables (`c`) in user schemas (`n`), not owned by an extension.
pub const USER_TABLE_CONDITION: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')";

/// The catalog query listing every user table with its parent partition, whether it lacks a replica
/// identity and whether the role may read it: what [`select_tables`] selects from.
pub static TABLES_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT n.nspname, c.relname, pn.nspname, pc.relname, \
             c.relkind = 'r' AND (c.relreplident = 'n' \
               OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) \
               OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))), \
             has_table_privilege(c.oid, 'SELECT') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_inherits h ON c.relispartition AND h.inhrelid = c.oid \
             LEFT JOIN pg_class pc ON pc.oid = h.inhparent \
             LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND {USER_TABLE_CONDITION} ORDER BY 1, 2"
    )
});

/// Lists blue's user tables and applies `filter`. Errors: a pattern that selects or leaves out a
/// partition on its own, or a configured filter that selects nothing (both naming the field); a
/// failed catalog query.
pub async fn select_tables(conn: &mut PgConnection, filter: &TableFilter) -> Result<Selection, Error> {
    let rows = conn.simple_query(TABLES_SQL.as_str()).await.map_err(Error::Source)?;
    let text = |r: &[Option<String>], i: usize| r.get(i).cloned().flatten();
    let tables = rows
        .iter()
        .map(|r| CatalogTable {
            name: TableName::new(text(r, 0).unwrap_or_default(), text(r, 1).unwrap_or_default()),
            parent: text(r, 2).zip(text(r, 3)).map(|(s, n)| TableName::new(s, n)),
            no_identity: text(r, 4).as_deref() == Some("t"),
            readable: text(r, 5).as_deref() != Some("f"),
        })
        .collect();
    select(tables, filter)
}

/// How a statement names `table` to read or change its own rows and no inheritance child's:
/// `ONLY "s"."t"` for an ordinary table, a partitioned table as it is (its rows are its partitions'
/// — `ONLY` would name none of them). Read on `side`, whose table it is.
pub async fn own_rows(client: &tokio_postgres::Client, table: &TableName, side: crate::error::Side) -> Result<String, Error> {
    let row = client
        .query_opt("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", &[&table.quoted()])
        .await
        .map_err(Error::sql(side, format!("reading the kind of {table}")))?;
    Ok(own_rows_of(table, row.map(|r| r.get::<_, String>(0)).as_deref()))
}

/// [`own_rows`] for a table of `relkind` (`None`: not known, named as it is).
pub fn own_rows_of(table: &TableName, relkind: Option<&str>) -> String {
    match relkind {
        Some("r") => format!("ONLY {}", table.quoted()),
        _ => table.quoted(),
    }
}

/// The `ALTER TABLE … REPLICA IDENTITY FULL` that makes a table replicable.
pub fn identity_fix(t: &TableName) -> String {
    format!("ALTER TABLE {}.{} REPLICA IDENTITY FULL;", quote_ident(&t.schema), quote_ident(&t.name))
}
