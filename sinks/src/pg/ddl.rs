//! Keeping green's tables in step with blue's schema as the stream announces it (Relation messages).
//!
//! A column that blue sends and green lacks is added on green (`ALTER TABLE … ADD COLUMN`), with the
//! same type. Anything else that would make applying fail or lose data — a column whose type differs,
//! or a green-only column that is `NOT NULL` without a default (blue dropped or renamed it) — stops
//! replication with an error naming the table, the change and what to run. Nothing is dropped silently.

use super::qualified;
use crate::error::SinkError;
use tokio_postgres::Client;
use turnout_decoders::schema::{quote_ident, TableSchema};

/// Type OIDs below this are built in and identical on every PostgreSQL server.
const FIRST_NORMAL_OID: u32 = 16384;

struct GreenColumn {
    name: String,
    type_oid: u32,
    type_name: String,
    qualified_type: String,
    optional: bool,
}

/// The DDL to run on green so that rows of `schema` apply; an error when no safe DDL exists.
pub async fn plan(client: &Client, schema: &TableSchema) -> Result<Vec<String>, SinkError> {
    let table = qualified(&schema.name);
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid::int8, format_type(a.atttypid, NULL), \
                    quote_ident(n.nspname) || '.' || quote_ident(t.typname), \
                    (NOT a.attnotnull OR a.atthasdef OR a.attgenerated <> '' OR a.attidentity <> '') \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table],
        )
        .await
        .map_err(SinkError::target(format!("reading the columns of {table}")))?;
    if rows.is_empty() {
        return Err(SinkError::Schema {
            table: schema.name.to_string(),
            reason: "is replicated from blue but does not exist on green; create it on green and restart".into(),
        });
    }
    let green: Vec<GreenColumn> = rows
        .iter()
        .map(|r| GreenColumn {
            name: r.get(0),
            type_oid: u32::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            type_name: r.get(2),
            qualified_type: r.get(3),
            optional: r.get(4),
        })
        .collect();
    let mut ddl = Vec::new();
    for col in &schema.columns {
        match green.iter().find(|g| g.name == col.name) {
            Some(g) => {
                let same = if col.type_oid < FIRST_NORMAL_OID {
                    g.type_oid == col.type_oid
                } else {
                    // User-defined types have server-local OIDs: compare by name when blue sent it.
                    col.type_name.as_deref().is_none_or(|n| same_type_name(n, &g.qualified_type))
                };
                if !same {
                    return Err(SinkError::Schema {
                        table: schema.name.to_string(),
                        reason: format!(
                            "column \"{}\" has type {} on green but blue now sends type {}; change it on green \
                             (ALTER TABLE {table} ALTER COLUMN {} TYPE …) and restart",
                            col.name,
                            g.type_name,
                            col.type_name.clone().unwrap_or_else(|| format!("oid {}", col.type_oid)),
                            quote_ident(&col.name)
                        ),
                    });
                }
            }
            None => {
                let type_sql = if col.type_oid < FIRST_NORMAL_OID {
                    let row = client
                        .query_one("SELECT format_type($1::int8::oid, $2)", &[&i64::from(col.type_oid), &col.type_modifier])
                        .await
                        .map_err(SinkError::target("naming a column type"))?;
                    row.get::<_, String>(0)
                } else {
                    match &col.type_name {
                        Some(n) => n.split('.').map(quote_ident).collect::<Vec<_>>().join("."),
                        None => {
                            return Err(SinkError::Schema {
                                table: schema.name.to_string(),
                                reason: format!(
                                    "blue added column \"{}\" of a user-defined type that blue did not name; add it on green and restart",
                                    col.name
                                ),
                            })
                        }
                    }
                };
                ddl.push(format!("ALTER TABLE {table} ADD COLUMN {} {type_sql}", quote_ident(&col.name)));
            }
        }
    }
    for g in &green {
        if !g.optional && !schema.columns.iter().any(|c| c.name == g.name) {
            return Err(SinkError::Schema {
                table: schema.name.to_string(),
                reason: format!(
                    "green column \"{}\" is NOT NULL without a default but blue no longer sends it (dropped or renamed on \
                     blue?); drop or rename it on green too (ALTER TABLE {table} DROP COLUMN {}) and restart",
                    g.name,
                    quote_ident(&g.name)
                ),
            });
        }
    }
    Ok(ddl)
}

/// `public.mood` (from a pgoutput Type message) against green's `quote_ident`-ed `public.mood`.
fn same_type_name(blue: &str, green_qualified: &str) -> bool {
    let quoted: Vec<String> = blue.split('.').map(quote_ident).collect();
    let bare: String = green_qualified.replace('"', "");
    quoted.join(".").replace('"', "") == bare
}
