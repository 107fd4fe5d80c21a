//! Keeping green's tables in step with blue's schema as the stream announces it (Relation messages).
//!
//! A column that blue sends and green lacks is added on green (`ALTER TABLE … ADD COLUMN`), with the
//! same type. Rows that existed before blue added it hold, on blue, the value its `DEFAULT` had at
//! that moment — kept in blue's catalog (`attmissingval`), never written to the change stream — so
//! green's existing rows get exactly that value (`ADD COLUMN … DEFAULT <blue's stored value>`, the
//! default then dropped again). When blue's column has a default but no stored value, while green's
//! table has rows, replication stops naming the column: either the default was set after the column
//! was added (older rows hold NULL) or blue rewrote the table (a volatile default such as
//! `gen_random_uuid()`, a domain with constraints, a later rewrite) and the values are nowhere in the
//! stream — only the operator can tell, and adding the column on green settles it.
//!
//! Anything else that would make applying fail or lose data — a column whose type differs, or a
//! green-only column that is `NOT NULL` without a default (blue dropped or renamed it) — stops
//! replication with an error naming the table, the change and what to run. Nothing is dropped silently.

use super::qualified;
use crate::error::SinkError;
use tokio_postgres::Client;
use turnout_connect::pg::ConnectOptions;
use turnout_decoders::pg::types::oid;
use turnout_decoders::schema::{quote_ident, Column, ColumnType, TableSchema, TypeName};

/// Type OIDs below this are created by initdb from the catalog sources and are the same on every
/// server (`FirstGenbkiObjectId`). pgoutput names every other type in a Type message.
const FIRST_GENBKI_OID: u32 = 10_000;

struct GreenColumn {
    name: String,
    /// The column's type with domains followed to their base type (as pgoutput reports it).
    base_oid: u32,
    /// `namespace.typname` of that base type, unquoted.
    base_name: String,
    /// The column's declared type with its modifier, for messages.
    display: String,
    typmod: i32,
    optional: bool,
}

/// Green's columns; each type is followed through domains (domains over domains too) to its base type,
/// because that is what blue's Relation message carries for a domain column.
const GREEN_COLUMNS: &str = "\
    WITH RECURSIVE chain(attnum, typ, depth) AS ( \
        SELECT a.attnum, a.atttypid, 0 FROM pg_attribute a \
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
      UNION ALL \
        SELECT c.attnum, t.typbasetype, c.depth + 1 FROM chain c JOIN pg_type t ON t.oid = c.typ \
        WHERE t.typtype = 'd' AND c.depth < 64) \
    SELECT DISTINCT ON (c.attnum) a.attname::text, c.typ::int8, n.nspname::text || '.' || t.typname::text, \
           format_type(a.atttypid, a.atttypmod), a.atttypmod, \
           (NOT a.attnotnull OR a.atthasdef OR a.attgenerated <> '' OR a.attidentity <> '') \
    FROM chain c JOIN pg_attribute a ON a.attrelid = to_regclass($1) AND a.attnum = c.attnum \
    JOIN pg_type t ON t.oid = c.typ JOIN pg_namespace n ON n.oid = t.typnamespace \
    ORDER BY c.attnum, c.depth DESC";

/// A PostgreSQL column's type as blue sent it.
struct BlueType<'a> {
    oid: u32,
    modifier: i32,
    name: Option<&'a TypeName>,
}

fn blue_type<'a>(schema: &TableSchema, col: &'a Column) -> Result<BlueType<'a>, SinkError> {
    match &col.ty {
        ColumnType::Pg { oid, modifier, name } => Ok(BlueType { oid: *oid, modifier: *modifier, name: name.as_ref() }),
        ColumnType::MySql(_) => Err(SinkError::Schema {
            table: schema.name.to_string(),
            reason: format!("column \"{}\" comes from a MySQL/MariaDB source; a PostgreSQL green takes PostgreSQL sources only", col.name),
        }),
    }
}

/// Whether values of blue's column (type modifier `blue`) keep their exact text in green's column of
/// the same base type with modifier `green`: the same modifier, no modifier on green, or a wider
/// length or precision where that cannot change how a value prints (varchar, varbit, numeric with the
/// same scale). Everything else — a narrower length, another scale or precision, a wider `char(n)`
/// (which pads) — could change or reject values and is refused.
fn typmod_compatible(base_oid: u32, blue: i32, green: i32) -> bool {
    const VARBIT: u32 = 1562;
    if blue == green || green == -1 {
        return true;
    }
    if blue == -1 {
        return false;
    }
    match base_oid {
        oid::VARCHAR | VARBIT => green > blue,
        // numeric typmod = ((precision << 16) | scale) + 4
        oid::NUMERIC => {
            let (bp, bs) = ((blue - 4) >> 16, (blue - 4) & 0xffff);
            let (gp, gs) = ((green - 4) >> 16, (green - 4) & 0xffff);
            bs == gs && gp >= bp
        }
        _ => false,
    }
}

/// What blue's rows that predate an added column hold in it.
#[derive(Debug, PartialEq)]
enum Existing {
    /// NULL: the column was added without a default (or blue's table is not known to us).
    Null,
    /// The value blue stored for them when the column was added (text in turnout's session formats).
    Stored(String),
    /// Unknown: the column has a default but blue stores no value for older rows — it was added with
    /// a volatile default (blue rewrote the table), the table was rewritten since, or the default was
    /// set after the column was added. `String` is blue's default expression.
    Unknown(String),
}

/// Blue's catalog entry for `column` of `table`. `Null` when the column is gone from blue by now.
async fn existing_on_blue(blue: &Client, table: &str, column: &str) -> Result<Existing, SinkError> {
    let row = blue
        .query_opt(
            "SELECT a.atthasmissing, (a.attmissingval::text::text[])[1], pg_get_expr(d.adbin, d.adrelid) \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
            &[&table, &column],
        )
        .await
        .map_err(SinkError::target(format!("reading blue's default of column \"{column}\" of {table}")))?;
    Ok(match row {
        None => Existing::Null,
        Some(r) => match (r.get::<_, bool>(0), r.get::<_, Option<String>>(1), r.get::<_, Option<String>>(2)) {
            (true, Some(value), _) => Existing::Stored(value),
            (_, _, Some(default)) => Existing::Unknown(default),
            _ => Existing::Null,
        },
    })
}

/// The statements that add `column` (of SQL type `type_sql`) to green's `table`, given what blue's
/// older rows hold in it; `Unknown` is an error when green's table has rows.
async fn add_column(client: &Client, table: &str, column: &str, type_sql: &str, existing: Existing) -> Result<Vec<String>, SinkError> {
    let col = quote_ident(column);
    Ok(match existing {
        Existing::Null => vec![format!("ALTER TABLE {table} ADD COLUMN {col} {type_sql}")],
        Existing::Stored(value) => vec![
            format!("ALTER TABLE {table} ADD COLUMN {col} {type_sql} DEFAULT '{}'::{type_sql}", value.replace('\'', "''")),
            format!("ALTER TABLE {table} ALTER COLUMN {col} DROP DEFAULT"),
        ],
        Existing::Unknown(default) => {
            let rows = client
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
                .await
                .map_err(SinkError::target(format!("reading whether {table} has rows")))?;
            if rows.get::<_, bool>(0) {
                return Err(SinkError::Schema {
                    table: table.to_owned(),
                    reason: format!(
                        "blue added column {col} with the default {default} but keeps no value for the rows that existed \
                         before: either the default was set after the column was added (those rows hold NULL) or blue \
                         rewrote the table (a volatile default such as gen_random_uuid() or clock_timestamp(), a domain with \
                         constraints, a later rewrite) and their values are not in the change stream. Add the column on \
                         green with the values blue's rows hold (ALTER TABLE {table} ADD COLUMN {col} {type_sql}; then copy \
                         the column from blue by key unless those rows hold NULL) and restart"
                    ),
                });
            }
            vec![format!("ALTER TABLE {table} ADD COLUMN {col} {type_sql}")]
        }
    })
}

/// The DDL to run on green so that rows of `schema` apply; an error when no safe DDL exists. With
/// `source` (blue's connection options), an added column gets the value blue's older rows hold.
pub async fn plan(client: &Client, schema: &TableSchema, source: Option<&ConnectOptions>) -> Result<Vec<String>, SinkError> {
    let table = qualified(&schema.name);
    let rows = client.query(GREEN_COLUMNS, &[&table]).await.map_err(SinkError::target(format!("reading the columns of {table}")))?;
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
            base_oid: u32::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            base_name: r.get(2),
            display: r.get(3),
            typmod: r.get(4),
            optional: r.get(5),
        })
        .collect();
    let mut ddl = Vec::new();
    // Blue is asked only when a column is added (a rare event while streaming), over one session of
    // its own shared by every column this schema adds.
    let mut blue_session: Option<Client> = None;
    for col in &schema.columns {
        let blue = blue_type(schema, col)?;
        match green.iter().find(|g| g.name == col.name) {
            Some(g) => {
                let same_base = match blue.name {
                    // Named by blue (any type not created by initdb, and every domain: pgoutput names
                    // a domain column by its base type).
                    Some(n) => n.to_string() == g.base_name,
                    None if blue.oid < FIRST_GENBKI_OID => g.base_oid == blue.oid,
                    None => false,
                };
                if !same_base || !typmod_compatible(g.base_oid, blue.modifier, g.typmod) {
                    let blue_type = blue_type_text(client, &col.name, &blue).await?;
                    return Err(SinkError::Schema {
                        table: schema.name.to_string(),
                        reason: format!(
                            "column \"{}\" has type {} on green but blue sends {blue_type}{}; make green's column hold the same \
                             values (ALTER TABLE {table} ALTER COLUMN {} TYPE {blue_type}) and restart",
                            col.name,
                            g.display,
                            if same_base { " (a type modifier that could change or reject values)" } else { "" },
                            quote_ident(&col.name)
                        ),
                    });
                }
            }
            None => {
                let type_sql = blue_type_text(client, &col.name, &blue).await?;
                let existing = match (source, &blue_session) {
                    (None, _) => Existing::Null,
                    (Some(_), Some(blue)) => existing_on_blue(blue, &table, &col.name).await?,
                    (Some(opts), None) => {
                        let blue = blue_session.insert(super::connect_with(opts).await?);
                        existing_on_blue(blue, &table, &col.name).await?
                    }
                };
                ddl.extend(add_column(client, &table, &col.name, &type_sql, existing).await?);
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

/// Blue's column type as SQL: built-in types with their modifier (`character(3)`, `numeric(20,6)`),
/// other types by the name blue sent (a domain column by its base type: the stream does not name the
/// domain).
async fn blue_type_text(client: &Client, column: &str, blue: &BlueType<'_>) -> Result<String, SinkError> {
    if blue.oid < FIRST_GENBKI_OID {
        let row = client
            .query_one("SELECT format_type($1::int8::oid, $2)", &[&i64::from(blue.oid), &blue.modifier])
            .await
            .map_err(SinkError::target("naming a column type"))?;
        return Ok(row.get(0));
    }
    match blue.name {
        Some(n) => {
            let row = client
                .query_one(
                    "SELECT format_type(t.oid, $3) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                     WHERE n.nspname = $1 AND t.typname = $2 UNION ALL SELECT NULL LIMIT 1",
                    &[&n.schema, &n.name, &blue.modifier],
                )
                .await
                .map_err(SinkError::target("naming a column type"))?;
            Ok(row.get::<_, Option<String>>(0).unwrap_or_else(|| format!("{}.{}", quote_ident(&n.schema), quote_ident(&n.name))))
        }
        None => Err(SinkError::Schema {
            table: String::new(),
            reason: format!("column \"{column}\" is of a type (oid {}) that blue did not name; create it on green and restart", blue.oid),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `numeric(p,s)`'s typmod.
    fn numeric(p: i32, s: i32) -> i32 {
        ((p << 16) | s) + 4
    }

    #[test]
    fn a_modifier_is_compatible_only_where_no_value_can_change() {
        // varchar(5) → varchar(10) or unlimited: fine; → varchar(3): refused.
        assert!(typmod_compatible(oid::VARCHAR, 9, 14));
        assert!(typmod_compatible(oid::VARCHAR, 9, -1));
        assert!(!typmod_compatible(oid::VARCHAR, 9, 7));
        // char(3) → char(5) pads differently: refused; unlimited bpchar keeps the padded text.
        assert!(!typmod_compatible(oid::BPCHAR, 7, 9));
        assert!(typmod_compatible(oid::BPCHAR, 7, -1));
        // numeric(10,2) → (12,2) fine; → (10,1) or (12,3) changes digits or rounds.
        assert!(typmod_compatible(oid::NUMERIC, numeric(10, 2), numeric(12, 2)));
        assert!(!typmod_compatible(oid::NUMERIC, numeric(10, 2), numeric(10, 1)));
        assert!(!typmod_compatible(oid::NUMERIC, numeric(10, 2), numeric(12, 3)));
        // Unlimited on blue into a constrained green column: refused.
        assert!(!typmod_compatible(oid::NUMERIC, -1, numeric(10, 2)));
        // timestamp(6) → timestamp(3) rounds.
        assert!(!typmod_compatible(oid::TIMESTAMP, 6, 3));
    }
}
