//! Stored generated columns computed through a function the database defines.
//!
//! Neither the copy nor pgoutput carries a stored generated column's value: green computes it again
//! when turnout writes the row, in turnout's session. PostgreSQL lets a generated column call only
//! functions labelled `IMMUTABLE`, and its own functions are labelled truly; one the application
//! defined may be labelled `IMMUTABLE` and still read a setting (`TimeZone`, `DateStyle`,
//! `search_path`, …) or a table, and then green's values are not the ones blue computed in the
//! application's sessions — on every row, copied and streamed alike, with nothing stopping.
//!
//! turnout cannot tell a truly immutable function from a mislabelled one, so the cutover refuses such
//! a column, naming it and the functions, until the operator has compared the column (`turnout
//! verify` compares every column) and names it in `cutover.keep_definitions` as
//! `GENERATED schema.table.column`; the certificate records each one kept.

use crate::error::{DefinitionRefusal, Error, Side};
use turnout_decoders::schema::TableName;

/// The word `cutover.keep_definitions` names such a column with.
pub(crate) const KEEP_KIND: &str = "GENERATED";

/// Stored generated columns of replicated tables whose expression calls a function (directly or
/// through an operator) that the database defines, with those functions.
const SQL: &str = "SELECT n.nspname, c.relname, a.attname, string_agg(DISTINCT p.oid::regprocedure::text, ', ') \
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
    JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid \
    LEFT JOIN pg_operator o ON d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid \
    JOIN pg_proc p ON p.oid = CASE WHEN d.refclassid = 'pg_proc'::regclass THEN d.refobjid ELSE o.oprcode END \
    WHERE a.attgenerated = 's' AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND p.oid >= 16384 \
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";

/// The columns `keep` names (as `GENERATED schema.table.column`), or the refusal naming the others.
/// Tables in `left_out` do not replicate and are not looked at.
pub(crate) async fn check(fenced: &tokio_postgres::Client, side: Side, left_out: &[TableName], keep: &[String]) -> Result<Vec<String>, Error> {
    let rows = fenced.query(SQL, &[]).await.map_err(Error::sql(side, format!("listing {side}'s generated columns")))?;
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for r in rows {
        let (schema, table, column, functions): (String, String, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        if left_out.iter().any(|t| t.schema == schema && t.name == table) {
            continue;
        }
        let key = format!("{KEEP_KIND} {schema}.{table}.{column}");
        if keep.contains(&key) {
            kept.push(key);
        } else {
            refused.push((key, functions));
        }
    }
    if let Some((example, _)) = refused.first() {
        let columns = refused.iter().map(|(k, f)| format!("{} (through {f})", k.trim_start_matches(KEEP_KIND).trim_start())).collect::<Vec<_>>().join("; ");
        return Err(DefinitionRefusal::GeneratedThrough { from: side, columns, example: example.clone() }.into());
    }
    Ok(kept)
}
