//! `turnout verify`: compares the contents of every replicated table (or one) on blue and green.
//!
//! Each side computes, in one statement, the row count and an order-independent digest of every
//! row's text form ([`ROW_HASH`] summed), with the same session settings on both sides so that values
//! print identically. Each side reads a table's own rows (`ONLY` an inheritance
//! parent) with `row_security = off`, so a policy cannot hide rows from both sides alike. Meaningful
//! when green has caught up and blue is quiet (after a cutover, or with writes paused); on a live blue,
//! a difference may only be lag. Read-only.

use crate::config::Config;
use crate::error::{Error, Side};
use crate::source::contract::compare::TableCheck;
use tokio_postgres::Client;
use turnout_connect::pg::PgConnection;
use turnout_decoders::TableName;

/// The hash of one row's text, `{}` the row: PostgreSQL's 64-bit hash of text
/// (`hashtextextended`, the function hash partitioning relies on, so the same on every major since
/// 11 — on servers of one byte order: a big-endian one against a little-endian one differs on every
/// row, loudly), over the text's bytes (`COLLATE "C"`), named with its schema so that a function of
/// the database's own cannot stand in for it. A changed, missing or extra row goes unnoticed only if
/// its hash collides with another's in 64 bits; both sides' servers hash at the speed of the servers'
/// own cheapest hash, instead of an md5 per row and a sort of them all (7× slower on 2,000,000 rows).
pub(crate) const ROW_HASH: &str = "pg_catalog.hashtextextended(({})::text COLLATE pg_catalog.\"C\", 0::int8)";

/// The digest statement for one table: the row count and the exact sum (`numeric`) of every row's
/// [`ROW_HASH`]. The row is taken as `ROW(r.*)`: a reference `r.*` always names the table alias,
/// whereas a bare `r` would name a column called `r` if the table has one.
fn digest_sql(table: &str) -> String {
    format!("SELECT count(*), COALESCE(sum({}), 0)::text FROM {table} r", ROW_HASH.replace("{}", "ROW(r.*)"))
}

/// The digest of `table`'s own rows on one side (an inheritance parent's without its children's).
async fn digest(client: &Client, table: &TableName, side: Side) -> Result<(i64, String), Error> {
    let from = super::catalog::own_rows(client, table, side).await?;
    let context = format!("reading {table}");
    let row = client.query_one(&digest_sql(&from), &[]).await.map_err(|source| Error::Sql { side, context, source })?;
    Ok((row.get(0), row.get(1)))
}

/// An ordinary session to `url` whose reads row-level security never filters: with `row_security =
/// off` a policy that would hide rows is an error instead (turnout's role must bypass it).
pub async fn unfiltered(url: &str, side: Side) -> Result<Client, Error> {
    let client = super::session(url, side).await?;
    client.batch_execute("SET row_security = off").await.map_err(Error::sql(side, "SET row_security = off"))?;
    Ok(client)
}

/// The tables `run` replicates (or only `only`, as `schema.table`), without turnout's heartbeat table.
pub async fn tables(config: &Config, only: Option<&str>) -> Result<Vec<TableName>, Error> {
    Ok(match only {
        Some(t) => {
            let (schema, name) = t.split_once('.').unwrap_or(("public", t));
            vec![TableName::new(schema, name)]
        }
        None => {
            let mut admin = PgConnection::connect(&config.source_options()?, false).await.map_err(Error::Source)?;
            let selection = super::catalog::select_tables(&mut admin, &config.table_filter()?).await?;
            admin.close().await;
            selection.tables.iter().filter(|t| !(t.schema == "public" && t.name == super::heartbeat::TABLE)).cloned().collect()
        }
    })
}

/// Compares the tables `run` replicates (or only `only`, as `schema.table`).
pub async fn run(config: &Config, only: Option<&str>) -> Result<Vec<TableCheck>, Error> {
    let tables = tables(config, only).await?;
    let blue = unfiltered(config.source.url.expose(), Side::Blue).await?;
    let green = unfiltered(config.target.url.expose(), Side::Green).await?;
    let mut out = Vec::with_capacity(tables.len());
    for table in &tables {
        let (b, g) = tokio::try_join!(digest(&blue, table, Side::Blue), digest(&green, table, Side::Green))?;
        out.push(TableCheck { equal: b == g, blue_rows: b.0, green_rows: g.0, table: table.quoted(), notes: Vec::new() });
    }
    if only.is_none() {
        out.push(definitions(config, &blue).await?);
    }
    Ok(out)
}

/// Blue's and green's definitions compared as the cutover compares them
/// ([`super::definitions`]), changing nothing on green: one check, its notes each difference.
async fn definitions(config: &Config, blue: &Client) -> Result<TableCheck, Error> {
    compare_definitions(config, blue, false).await
}

/// `turnout verify --live`'s check of every definition: the side writes go to (`back`: green, in
/// the rollback window) against the other, as [`definitions`] compares them.
pub async fn live_definitions(config: &Config, back: bool) -> Result<TableCheck, Error> {
    let (url, side) = if back { (config.target.url.expose(), Side::Green) } else { (config.source.url.expose(), Side::Blue) };
    compare_definitions(config, &unfiltered(url, side).await?, back).await
}

async fn compare_definitions(config: &Config, source: &Client, back: bool) -> Result<TableCheck, Error> {
    let (blue, green) = (config.source_options()?, config.target_options()?);
    let ((fenced_options, other_options), sides) = if back { ((green, blue), (Side::Green, Side::Blue)) } else { ((blue, green), (Side::Blue, Side::Green)) };
    let left_out = super::drift::selection(source, &config.table_filter()?, config.tables.skip_without_identity, sides.0).await?.left_out();
    let settle = super::definitions::Settle {
        fenced: source,
        fenced_options: &fenced_options,
        other_options: &other_options,
        sides,
        pg_dump: config.source.pg_dump.as_deref(),
        left_out: &left_out,
        keep: &config.cutover.keep_definitions,
        apply: false,
    };
    let settled = settle.run().await?;
    let compared = i64::try_from(settled.compared).unwrap_or(i64::MAX);
    let mut notes = settled.differences.clone();
    notes.extend(settled.kept.iter().map(|k| format!("{k}: kept different by cutover.keep_definitions")));
    Ok(TableCheck {
        table: crate::source::contract::compare::DEFINITIONS.into(),
        blue_rows: compared,
        green_rows: compared,
        equal: settled.differences.is_empty(),
        notes,
    })
}
