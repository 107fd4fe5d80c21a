//! Materialized views' rows at the switch.
//!
//! A materialized view holds the rows its query returned when it was last refreshed, not what the
//! query returns now; logical replication carries none of its rows, and no statement writes rows
//! into one. So green's can only be refreshed, and a refresh gives blue's rows only while nothing
//! the query reads changed on blue since blue's own last refresh. A view blue keeps *frozen* (its
//! tables changed since) cannot be made equal on green: green's refresh would answer with what
//! blue's would answer only after the application's next refresh.
//!
//! [`settle`] compares each populated view's rows on both sides by a digest (how many rows, and the
//! sum of a 64-bit hash of each row's text, `hashtextextended`, which hashes the text's bytes alike on
//! every supported major: order does not matter, every column does), refreshes the other
//! side's where they differ and compares again. Still different refuses the cutover naming the view
//! and the fix (refresh it on the fenced side first, or keep green's by naming
//! `MATERIALIZED VIEW DATA schema.view` in `cutover.keep_definitions`). A view populated on one
//! side only is made so on the other (`REFRESH … WITH NO DATA` empties green's).
//!
//! The cutover runs it before the fence and again inside the write pause: nothing refreshes a view
//! on a fenced side (a `REFRESH` is a write), and green's tables then hold every row blue's do, so
//! equal digests in the pause mean green's views answer as blue's at the switch. Its cost in the
//! pause is reading each view once on each side, at the same time: about 0.25 s per million rows
//! (PostgreSQL 15, this project's 2-core machines; 3× less than an `md5` digest).

use crate::error::{DefinitionRefusal, Error, Side};
use std::collections::BTreeMap;
use tokio_postgres::Client;
use turnout_decoders::schema::TableName;

/// The word `cutover.keep_definitions` names a view's rows with, as pg_dump names the entry that
/// fills one.
pub(crate) const KEEP_KIND: &str = "MATERIALIZED VIEW DATA";

/// How many times differing views are refreshed before those still different are refused: a view
/// reading another needs its input refreshed first.
const PASSES: usize = 3;

/// A view's state on one side: `None` when it is not populated, else its digest.
type Digest = Option<(i64, String)>;

/// What [`settle`] compared and did.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    /// Views whose rows were compared (populated on either side, not kept).
    pub compared: usize,
    /// Views refreshed on the other side to make their rows equal, as `schema.view`.
    pub refreshed: Vec<String>,
    /// Views whose rows `cutover.keep_definitions` keeps as the other side has them.
    pub kept: Vec<String>,
}

impl Contents {
    /// The words the cutover adds to its line (empty when there are no views).
    pub fn line(&self, to: Side) -> String {
        let mut line = String::new();
        if self.compared > 0 {
            line.push_str(&format!("; the rows of {} materialized views equal on {to}", self.compared));
        }
        if !self.kept.is_empty() {
            line.push_str(&format!("; {to}'s rows kept by cutover.keep_definitions: {}", self.kept.join(", ")));
        }
        line
    }
}

/// Every populated view's rows made equal on `other` (refreshed where they differ), or the refusal
/// naming those a refresh does not make equal.
pub(crate) async fn settle(fenced: &Client, other: &Client, sides: (Side, Side), keep: &[String], left_out: &[TableName]) -> Result<Contents, Error> {
    let (from, to) = sides;
    let (mut ours, theirs) = tokio::try_join!(catalog(fenced, from), catalog(other, to))?;
    // A view reading a table `[tables]` leaves out is not comparable: green's table is not blue's.
    if !left_out.is_empty() {
        let reading = reads_left_out(fenced, from, left_out).await?;
        ours.retain(|v, _| !reading.contains(&v.display));
    }
    // A view only one side has is the definitions' settling's to name, not this comparison's.
    let (kept, views): (Vec<View>, Vec<View>) = ours
        .iter()
        .filter(|(v, populated)| (**populated || theirs.get(*v) == Some(&true)) && theirs.contains_key(*v))
        .map(|(v, _)| v.clone())
        .partition(|v| keep.iter().any(|k| *k == format!("{KEEP_KIND} {}", v.display)));
    let mut contents = Contents { compared: views.len(), refreshed: Vec::new(), kept: kept.into_iter().map(|v| v.display).collect() };
    if views.is_empty() {
        return Ok(contents);
    }
    let (want, have) = tokio::try_join!(digests(fenced, &views, &ours, from), digests(other, &views, &theirs, to))?;
    let differ = differing(&want, &have);
    if differ.is_empty() {
        return Ok(contents);
    }
    // A view reading another is refreshed after it: passes until nothing more comes equal.
    let mut left = differ.clone();
    let mut have = BTreeMap::new();
    for _ in 0..PASSES {
        for view in &left {
            let refreshed = other.batch_execute(&refresh_sql(view, want[view].is_some())).await;
            if refreshed.is_err() {
                let _ = other.batch_execute("ROLLBACK").await;
            }
            match refreshed {
                Ok(()) => {}
                // It reads a view not populated yet: refreshed in a later pass.
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => {}
                Err(e) => {
                    let object = format!("materialized view {}'s rows", view.display);
                    return Err(DefinitionRefusal::NotApplied { from, to, object, cause: turnout_sinks::pg::describe_error(&e) }.into());
                }
            }
        }
        let now = catalog(other, to).await?;
        have = digests(other, &left, &now, to).await?;
        let still = differing(&want, &have);
        if still.is_empty() || still.len() == left.len() {
            break;
        }
        left = still;
    }
    let frozen: Vec<String> = differing(&want, &have).into_iter().map(|v| describe(&v, &want[&v], &have[&v], sides)).collect();
    if !frozen.is_empty() {
        return Err(DefinitionRefusal::Frozen { from, to, views: frozen.join("; "), example: format!("{KEEP_KIND} {}", differ[0].display) }.into());
    }
    contents.refreshed = differ.into_iter().map(|v| v.display).collect();
    Ok(contents)
}

/// A view: `schema.view` as the operator names it, and its quoted form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct View {
    display: String,
    quoted: String,
}

/// The views (`schema.view`) whose query reads one of `left_out`, directly.
async fn reads_left_out(client: &Client, side: Side, left_out: &[TableName]) -> Result<Vec<String>, Error> {
    let tables: Vec<String> = left_out.iter().map(|t| format!("{}.{}", t.schema, t.name)).collect();
    let sql = "SELECT DISTINCT vn.nspname || '.' || v.relname FROM pg_class v JOIN pg_namespace vn ON vn.oid = v.relnamespace \
               JOIN pg_rewrite r ON r.ev_class = v.oid JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
               AND d.refclassid = 'pg_class'::regclass JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
               WHERE v.relkind = 'm' AND t.oid <> v.oid AND (tn.nspname || '.' || t.relname) = ANY($1)";
    let rows = client.query(sql, &[&tables]).await.map_err(Error::sql(side, format!("reading which materialized views on {side} read tables left out")))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One side's materialized views (an extension's left out: it makes its own) and whether each is
/// populated.
async fn catalog(client: &Client, side: Side) -> Result<BTreeMap<View, bool>, Error> {
    let sql = "SELECT m.schemaname || '.' || m.matviewname, quote_ident(m.schemaname) || '.' || quote_ident(m.matviewname), m.ispopulated \
               FROM pg_matviews m WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
               AND d.objid = format('%I.%I', m.schemaname, m.matviewname)::regclass AND d.deptype = 'e')";
    let rows = client.query(sql, &[]).await.map_err(Error::sql(side, format!("listing {side}'s materialized views")))?;
    Ok(rows.iter().map(|r| (View { display: r.get(0), quoted: r.get(1) }, r.get(2))).collect())
}

/// Each view's digest on one side (`None` where that side has not populated it), in one statement.
async fn digests(client: &Client, views: &[View], populated: &BTreeMap<View, bool>, side: Side) -> Result<BTreeMap<View, Digest>, Error> {
    let mut out: BTreeMap<View, Digest> = views.iter().map(|v| (v.clone(), None)).collect();
    let read: Vec<&View> = views.iter().filter(|v| populated.get(*v) == Some(&true)).collect();
    if read.is_empty() {
        return Ok(out);
    }
    let sql = read
        .iter()
        .enumerate()
        .map(|(i, v)| format!("SELECT {i}, count(*), coalesce(sum(hashtextextended((t.*)::text, 0)::numeric), 0)::text FROM {} t", v.quoted))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows = client.query(sql.as_str(), &[]).await.map_err(Error::sql(side, format!("reading {side}'s materialized views' rows")))?;
    for r in rows {
        let i: i32 = r.get(0);
        let view = read[usize::try_from(i).unwrap_or_default()];
        out.insert(view.clone(), Some((r.get(1), r.get(2))));
    }
    Ok(out)
}

fn differing(want: &BTreeMap<View, Digest>, have: &BTreeMap<View, Digest>) -> Vec<View> {
    have.iter().filter(|(v, d)| want.get(*v) != Some(*d)).map(|(v, _)| v.clone()).collect()
}

/// How long a refresh waits for a lock on the other side: a reader holding the view (the read
/// canary's, an operator's) fails it, naming it, instead of holding the write pause.
const REFRESH_LOCK_TIMEOUT: &str = "2s";

/// The statements refreshing `view` (`WITH NO DATA` where the fenced side's is not populated), in a
/// transaction of their own under [`REFRESH_LOCK_TIMEOUT`].
fn refresh_sql(view: &View, populated: bool) -> String {
    format!(
        "BEGIN; SET LOCAL lock_timeout = '{REFRESH_LOCK_TIMEOUT}'; REFRESH MATERIALIZED VIEW {}{}; COMMIT",
        view.quoted,
        if populated { "" } else { " WITH NO DATA" }
    )
}

fn describe(view: &View, want: &Digest, have: &Digest, (from, to): (Side, Side)) -> String {
    let rows = |d: &Digest| d.as_ref().map_or("not populated".to_owned(), |(n, _)| format!("{n} rows"));
    format!("{} ({from}: {}; {to} refreshed: {})", view.display, rows(want), rows(have))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str) -> View {
        View { display: name.into(), quoted: name.into() }
    }

    #[test]
    fn a_view_differs_by_its_rows_or_by_being_populated() {
        let want: BTreeMap<View, Digest> = [(view("a"), Some((2, "9".into()))), (view("b"), None), (view("c"), Some((1, "5".into())))].into_iter().collect();
        let have: BTreeMap<View, Digest> =
            [(view("a"), Some((2, "9".into()))), (view("b"), Some((0, "0".into()))), (view("c"), Some((1, "6".into())))].into_iter().collect();
        assert_eq!(differing(&want, &have), vec![view("b"), view("c")]);
        assert_eq!(describe(&view("c"), &want[&view("c")], &have[&view("c")], (Side::Blue, Side::Green)), "c (blue: 1 rows; green refreshed: 1 rows)");
        assert_eq!(describe(&view("b"), &want[&view("b")], &have[&view("b")], (Side::Blue, Side::Green)), "b (blue: not populated; green refreshed: 0 rows)");
    }
}
