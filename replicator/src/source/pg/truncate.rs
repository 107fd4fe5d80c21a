//! `TRUNCATE` of one partition, carried to green.
//!
//! turnout publishes partitions through their root (`publish_via_partition_root`), and then
//! PostgreSQL sends nothing for a `TRUNCATE` aimed at a partition: blue's partition would be empty and
//! green's full. So every leaf partition of a replicated partitioned table gets a statement-level
//! `AFTER TRUNCATE` trigger of turnout's (`turnout_truncate`), whose function writes a transactional
//! logical message (prefix [`crate::source::TRUNCATE_PREFIX`], the partition's schema and name) in the
//! truncating transaction, at the statement's place in it; the pipeline turns the message into a
//! `TRUNCATE` of that partition on green ([`crate::pipeline`]). A `TRUNCATE` of the root still arrives
//! from pgoutput; the partitions' messages after it empty what is already empty.
//!
//! The triggers are made when `turnout run` starts and, for partitions made later, by the stream's
//! watch every few seconds. PostgreSQL 13 carries no logical messages in pgoutput: there the leaf's
//! trigger fires `BEFORE TRUNCATE` and refuses the statement, naming the fix — loud on blue rather
//! than silent on green — unless the statement truncates the replicated root, which pgoutput does
//! send: the root's own triggers (`BEFORE` and `AFTER TRUNCATE`, function [`ROOT_FUNCTION`]) mark the
//! statement with a transaction-local setting ([`ROOT_MARK`]) that its partitions' triggers read.
//! PostgreSQL fires every `BEFORE` trigger of a `TRUNCATE` (the root's first, as it is named first)
//! before any `AFTER` trigger, so the mark covers exactly that statement. `turnout teardown` removes
//! the functions and, with them, the triggers.

use crate::error::{Error, Side};
use tokio_postgres::Client;
use turnout_decoders::schema::TableName;

/// The trigger turnout puts on each leaf partition.
pub const TRIGGER: &str = "turnout_truncate";
/// Its function, in `public`.
pub const FUNCTION: &str = "turnout_truncate_note";
/// The function of the root's triggers on PostgreSQL 13, in `public`.
pub const ROOT_FUNCTION: &str = "turnout_truncate_root";
/// The transaction-local setting that marks a `TRUNCATE` of the root on PostgreSQL 13.
pub const ROOT_MARK: &str = "turnout.truncate_root";
/// The root's `AFTER TRUNCATE` trigger on PostgreSQL 13 (its `BEFORE` one is [`TRIGGER`]).
const ROOT_END: &str = "turnout_truncate_end";

/// The function's body: the message on PostgreSQL 14+, a refusal on 13.
fn function_sql(major: i32) -> String {
    let body = if major >= 14 {
        format!("PERFORM pg_logical_emit_message(true, '{}', TG_TABLE_SCHEMA || chr(10) || TG_TABLE_NAME); RETURN NULL;", crate::source::TRUNCATE_PREFIX)
    } else {
        format!(
            "IF current_setting('{ROOT_MARK}', true) IS DISTINCT FROM 'on' THEN \
             RAISE EXCEPTION 'turnout: TRUNCATE of partition %.% is not carried to green on PostgreSQL 13', TG_TABLE_SCHEMA, TG_TABLE_NAME \
             USING HINT = 'DELETE its rows instead, or TRUNCATE the partitioned table'; END IF; RETURN NULL;"
        )
    };
    format!("CREATE OR REPLACE FUNCTION public.{FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $turnout$ BEGIN {body} END $turnout$")
}

/// The root's function on PostgreSQL 13: marks the statement before, clears the mark after.
fn root_function_sql() -> String {
    format!(
        "CREATE OR REPLACE FUNCTION public.{ROOT_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $turnout$ BEGIN \
         PERFORM set_config('{ROOT_MARK}', CASE TG_WHEN WHEN 'BEFORE' THEN 'on' ELSE '' END, true); RETURN NULL; END $turnout$"
    )
}

/// The statements that make the triggers on `leaves` and, on PostgreSQL 13, on `roots`.
fn triggers_sql(major: i32, leaves: &[String], roots: &[String]) -> String {
    let mut sql = format!("BEGIN; {};", function_sql(major));
    let when = if major >= 14 { "AFTER" } else { "BEFORE" };
    for leaf in leaves {
        sql.push_str(&format!(" CREATE TRIGGER {TRIGGER} {when} TRUNCATE ON {leaf} FOR EACH STATEMENT EXECUTE FUNCTION public.{FUNCTION}();"));
    }
    if major < 14 && !roots.is_empty() {
        sql.push_str(&format!(" {};", root_function_sql()));
        for root in roots {
            sql.push_str(&format!(
                " CREATE TRIGGER {TRIGGER} BEFORE TRUNCATE ON {root} FOR EACH STATEMENT EXECUTE FUNCTION public.{ROOT_FUNCTION}(); \
                 CREATE TRIGGER {ROOT_END} AFTER TRUNCATE ON {root} FOR EACH STATEMENT EXECUTE FUNCTION public.{ROOT_FUNCTION}();"
            ));
        }
    }
    sql.push_str(" COMMIT");
    sql
}

/// Puts the trigger on every leaf partition below `roots` that lacks it (creating the function first
/// when any does); returns how many it made. `side` is the server's (blue, or green for the reverse
/// stream). A role that may not make them is refused, naming the grant.
pub async fn ensure(client: &Client, roots: &[TableName], side: Side) -> Result<usize, Error> {
    let names: Vec<String> = roots.iter().map(TableName::quoted).collect();
    let rows = client
        .query(
            "SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(c.relname), p.level = 0 \
             FROM unnest($1::text[]) r, pg_partition_tree(to_regclass(r)) p \
             JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE ((p.isleaf AND p.level > 0 AND c.relkind = 'r') OR (p.level = 0 AND c.relkind = 'p')) \
               AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = $2)",
            &[&names, &TRIGGER],
        )
        .await
        .map_err(Error::sql(side, "listing the partitions"))?;
    let (mut leaves, mut tops) = (Vec::new(), Vec::new());
    for row in &rows {
        if row.get::<_, bool>(1) {
            tops.push(row.get::<_, String>(0))
        } else {
            leaves.push(row.get::<_, String>(0))
        }
    }
    let major = super::definitions::major(client, side).await?;
    if major >= 14 {
        tops.clear();
    }
    if leaves.is_empty() && tops.is_empty() {
        return Ok(0);
    }
    if let Err(e) = client.batch_execute(&triggers_sql(major, &leaves, &tops)).await {
        let _ = client.batch_execute("ROLLBACK").await;
        let all: Vec<&str> = leaves.iter().chain(&tops).map(String::as_str).collect();
        return Err(Error::Setup(format!(
            "turnout puts a TRUNCATE trigger on each partition so that a TRUNCATE of one partition reaches green (publishing through the \
             root, PostgreSQL sends none), and could not on {side} ({}): {}. Let turnout's role own the partitioned tables or GRANT \
             TRIGGER on them, and CREATE on schema public",
            all.join(", "),
            turnout_sinks::pg::describe_error(&e)
        )));
    }
    tracing::info!(partitions = leaves.len(), "{side}: partitions note their TRUNCATE in the stream: {}", leaves.join(", "));
    Ok(leaves.len())
}

/// Drops turnout's truncate functions on a side and, with them, every trigger that calls them.
pub async fn remove(client: &Client, side: Side) -> Result<(), Error> {
    client
        .batch_execute(&format!("DROP FUNCTION IF EXISTS public.{FUNCTION}() CASCADE; DROP FUNCTION IF EXISTS public.{ROOT_FUNCTION}() CASCADE"))
        .await
        .map_err(Error::sql(side, "dropping turnout's TRUNCATE triggers on the partitions"))
}

/// The partition a truncate message names (`schema\nname`), or `None` when the message is not one.
pub fn partition(content: &[u8]) -> Option<TableName> {
    let text = std::str::from_utf8(content).ok()?;
    let (schema, name) = text.split_once('\n')?;
    (!schema.is_empty() && !name.is_empty()).then(|| TableName::new(schema, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_notes_on_14_and_refuses_on_13() {
        assert!(function_sql(15).contains("pg_logical_emit_message(true, 'turnout.truncate'"));
        assert!(function_sql(13).contains("RAISE EXCEPTION") && !function_sql(13).contains("emit_message"));
        let on_13 = triggers_sql(13, &["p.a".into()], &["p.root".into()]);
        assert!(on_13.contains("BEFORE TRUNCATE ON p.a") && on_13.contains("AFTER TRUNCATE ON p.root") && on_13.contains(ROOT_MARK));
        let on_15 = triggers_sql(15, &["p.a".into()], &["p.root".into()]);
        assert!(on_15.contains("AFTER TRUNCATE ON p.a") && !on_15.contains("p.root"));
        assert_eq!(partition(b"sales\norders_2024"), Some(TableName::new("sales", "orders_2024")));
        assert_eq!(partition(b"no newline"), None);
        assert_eq!(partition(b"\nx"), None);
    }
}
