//! Catalog queries on blue shared by `check` and `run`: which tables replicate, and which of them
//! cannot replicate UPDATE/DELETE.

use turnout_decoders::pg::PgConnection;
use turnout_decoders::schema::{quote_ident, TableName};
use turnout_decoders::DecodeError;

/// `FROM … WHERE …` selecting user tables (`c`) in user schemas (`n`), not owned by an extension.
pub const USER_TABLES: &str = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')";

/// Ordinary tables whose UPDATEs and DELETEs cannot be replicated: no primary key and no REPLICA
/// IDENTITY FULL (or an identity of NOTHING, or a dropped identity index). Columns: schema, name.
pub fn tables_without_identity_sql() -> String {
    format!(
        "SELECT n.nspname, c.relname {USER_TABLES} AND c.relkind = 'r' AND ( \
         c.relreplident = 'n' \
         OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) \
         OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))) \
         ORDER BY 1, 2"
    )
}

/// The tables that replicate: ordinary and partitioned tables that are not partitions (partitions
/// replicate through their root).
pub async fn replicated_tables(conn: &mut PgConnection) -> Result<Vec<TableName>, DecodeError> {
    let rows = conn
        .simple_query(&format!("SELECT n.nspname, c.relname {USER_TABLES} AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1, 2"))
        .await?;
    Ok(rows.into_iter().map(|r| TableName::new(r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default())).collect())
}

/// The `ALTER TABLE … REPLICA IDENTITY FULL` that makes a table replicable.
pub fn identity_fix(schema: &str, name: &str) -> String {
    format!("ALTER TABLE {}.{} REPLICA IDENTITY FULL;", quote_ident(schema), quote_ident(name))
}
