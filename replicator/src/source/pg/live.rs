//! `turnout verify --live` on PostgreSQL: snapshots of blue and green at one source position, and
//! the per-chunk statements run inside them.
//!
//! **Snapshots.** Blue's side comes from a temporary logical slot created with an exported snapshot:
//! that snapshot shows exactly the transactions whose commit ends at or before the slot's consistent
//! point P. The running sidecar is asked to hold its apply at P (see [`crate::pipeline::hold`]) —
//! green then shows exactly the same transactions — while verify's green sessions take their
//! snapshots; then released. If the sidecar had already applied past P when it heard of it, the
//! snapshots are taken again with the hold armed before the slot is created, so that nothing beyond
//! the new P can be applied while it is not yet known. Every worker has one blue session that
//! imported the exported snapshot and one green session that began at the hold: all of them
//! `REPEATABLE READ, READ ONLY`. The temporary slot is dropped as soon as the blue sessions imported
//! its snapshot.
//!
//! **Chunks.** Rows are compared in ranges of the table's key (primary key, or the replica identity
//! index) with each side computing, without sorting, the count and the sum of a 64-bit hash of every
//! row's text (`ROW(columns)::text` with turnout's session settings, blue's columns in blue's order).
//! Range bounds are key values as text, cast back to the key columns' types on each side.

use crate::config::Config;
use crate::error::{Error, Side};
use crate::source::contract::compare::{Backend, HoldDriver, Key, Range, Rows, Shape, Snapshots, Sum, ARM_TTL, AT_TTL};
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use turnout_connect::pg::client::{quote_literal, SlotOptions};
use turnout_connect::pg::PgConnection;
use turnout_decoders::schema::{quote_ident, TableName};
use turnout_decoders::{Lsn, Position};

/// PostgreSQL's [`Backend`].
#[allow(missing_debug_implementations)]
pub struct PgLive {
    pub config: Config,
}

impl Backend for PgLive {
    type Session = Client;

    async fn tables(&self, only: Option<&str>) -> Result<Vec<TableName>, Error> {
        crate::source::pg::verify::tables(&self.config, only).await
    }

    fn source(&self) -> Result<String, Error> {
        let options = self.config.source_options()?;
        Ok(format!("{}:{}/{}", options.host, options.port, options.database))
    }

    async fn estimate_rows(&self, tables: &[TableName]) -> Option<u64> {
        let client = turnout_sinks::pg::connect(self.config.source.url.expose()).await.ok()?;
        let names: Vec<String> = tables.iter().map(TableName::quoted).collect();
        let row = client
            .query_one(
                "SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::int8 FROM unnest($1::text[]) AS t(name) \
                 JOIN pg_class c ON c.oid = t.name::regclass OR c.oid IN (SELECT relid FROM pg_partition_tree(t.name::regclass))",
                &[&names],
            )
            .await
            .ok()?;
        u64::try_from(row.get::<_, i64>(0)).ok().filter(|&n| n > 0)
    }

    async fn take<H: HoldDriver>(&self, hold: &H, workers: usize, slot_timeout: Duration) -> Result<Snapshots<Client>, Error> {
        take(&self.config, hold, workers, slot_timeout).await
    }

    async fn shapes(&self, blue: &Client, tables: &[TableName]) -> Result<Vec<Shape>, Error> {
        shapes(blue, tables).await
    }

    async fn target_only_columns(&self, tables: &[TableName]) -> Result<Vec<(TableName, Vec<String>)>, Error> {
        let blue = crate::source::pg::session(self.config.source.url.expose(), self.config.source_side()).await?;
        let green = crate::source::pg::session(self.config.target.url.expose(), self.config.target_side()).await?;
        let mut out = Vec::new();
        for table in tables {
            let name = table.quoted();
            let (on_blue, on_green) = (column_names(&blue, &name, Side::Blue).await?, column_names(&green, &name, Side::Green).await?);
            let only: Vec<String> = on_green.into_iter().filter(|g| !on_blue.contains(g)).map(|g| quote_ident(&g)).collect();
            if !only.is_empty() {
                out.push((table.clone(), only));
            }
        }
        Ok(out)
    }

    async fn span(&self, shape: &Shape, session: &Client, side: Side) -> Result<Option<(i128, i128)>, Error> {
        shape.span(session, side).await
    }

    async fn boundary(&self, shape: &Shape, session: &Client, range: &Range, n: i64, side: Side) -> Result<Option<Key>, Error> {
        shape.boundary(session, range, n, side).await
    }

    async fn sum(&self, shape: &Shape, session: &Client, range: &Range, side: Side) -> Result<Sum, Error> {
        shape.sum(session, range, side).await
    }

    async fn rows(&self, shape: &Shape, session: &Client, range: &Range, side: Side) -> Result<Rows, Error> {
        shape.rows(session, range, side).await
    }
}

/// The column names of table `name` (quoted, qualified) on one side.
async fn column_names(client: &Client, name: &str, side: Side) -> Result<Vec<String>, Error> {
    let sql = "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped";
    let rows = client.query(sql, &[&name]).await.map_err(|source| Error::Sql { side, context: format!("reading the columns of {name}"), source })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Reads the shapes of `tables` (in the snapshot of `blue`).
async fn shapes(blue: &Client, tables: &[TableName]) -> Result<Vec<Shape>, Error> {
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let quoted = table.quoted();
        let rows = blue
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, NULL), \
                   (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i WHERE i.indrelid = a.attrelid \
                    AND i.indisprimary) AS pk, \
                   (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i WHERE i.indrelid = a.attrelid \
                    AND i.indisreplident) AS ri \
                 FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&quoted],
            )
            .await
            .map_err(Error::blue(format!("reading the columns of {quoted}")))?;
        let columns: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let ranked = |col: usize| -> Vec<(i32, usize, String)> {
            let mut k: Vec<(i32, usize, String)> =
                rows.iter().enumerate().filter_map(|(i, r)| r.get::<_, Option<i32>>(col).map(|p| (p, i, r.get(1)))).collect();
            k.sort();
            k
        };
        let mut key = ranked(2);
        if key.is_empty() {
            key = ranked(3);
        }
        let only = crate::source::pg::catalog::own_rows(blue, table, Side::Blue).await?.starts_with("ONLY ");
        out.push(Shape { table: table.clone(), columns, key: key.into_iter().map(|(_, i, t)| (i, t)).collect(), only });
    }
    Ok(out)
}

/// PostgreSQL's chunk statements.
impl Shape {
    /// How statements name the table: its own rows only.
    fn from(&self) -> String {
        if self.only {
            format!("ONLY {}", self.table.quoted())
        } else {
            self.table.quoted()
        }
    }

    fn cols(&self) -> String {
        self.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
    }

    fn key_cols(&self) -> String {
        self.key.iter().map(|(i, _)| quote_ident(&self.columns[*i])).collect::<Vec<_>>().join(", ")
    }

    /// `(k1, k2) OP ($n::text::t1, $n+1::text::t2)`.
    fn compare(&self, op: &str, first_param: usize) -> String {
        let params: Vec<String> = self.key.iter().enumerate().map(|(j, (_, ty))| format!("${}::text::{ty}", first_param + j)).collect();
        format!("({}) {op} ({})", self.key_cols(), params.join(", "))
    }

    /// The `WHERE` condition of `range` and its parameters.
    fn condition<'a>(&self, range: &'a Range, params: &mut Vec<&'a (dyn ToSql + Sync)>) -> String {
        let mut parts = Vec::new();
        if let Some(lower) = &range.lower {
            parts.push(self.compare(">", params.len() + 1));
            params.extend(lower.iter().map(|v| v as &(dyn ToSql + Sync)));
        }
        if let Some(upper) = &range.upper {
            parts.push(self.compare("<=", params.len() + 1));
            params.extend(upper.iter().map(|v| v as &(dyn ToSql + Sync)));
        }
        if parts.is_empty() {
            "true".to_owned()
        } else {
            parts.join(" AND ")
        }
    }

    /// The smallest and largest key when the key is one `smallint`, `integer` or `bigint` column and
    /// the table has rows (both read from the key's index).
    async fn span(&self, client: &Client, side: Side) -> Result<Option<(i128, i128)>, Error> {
        let [(i, ty)] = self.key.as_slice() else { return Ok(None) };
        if !matches!(ty.as_str(), "smallint" | "integer" | "bigint") {
            return Ok(None);
        }
        let column = quote_ident(&self.columns[*i]);
        let sql = format!("SELECT min({column})::text, max({column})::text FROM {}", self.from());
        let row = client.query_one(&sql, &[]).await.map_err(Error::sql(side, format!("reading the key range of {}", self.table.quoted())))?;
        let parse = |j: usize| row.get::<_, Option<String>>(j).and_then(|t| t.parse::<i128>().ok());
        Ok(parse(0).zip(parse(1)))
    }

    /// The key of the `n`th row (1-based) of `range` in key order, if it has that many rows.
    async fn boundary(&self, client: &Client, range: &Range, n: i64, side: Side) -> Result<Option<Key>, Error> {
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let condition = self.condition(range, &mut params);
        let offset = n - 1;
        // The rows skipped are read as keys only; the one found is turned into text outside.
        let keys: Vec<String> = self.key.iter().map(|(i, _)| format!("r.{}", quote_ident(&self.columns[*i]))).collect();
        let texts: Vec<String> = (0..self.key.len()).map(|j| format!("b.k{j}::text")).collect();
        let named: Vec<String> = keys.iter().enumerate().map(|(j, k)| format!("{k} AS k{j}")).collect();
        let sql = format!(
            "SELECT {} FROM (SELECT {} FROM {} r WHERE {condition} ORDER BY {} OFFSET {offset} LIMIT 1) b",
            texts.join(", "),
            named.join(", "),
            self.from(),
            keys.join(", ")
        );
        let row = client.query_opt(&sql, &params).await.map_err(Error::sql(side, format!("reading the keys of {}", self.table.quoted())))?;
        Ok(row.map(|r| (0..self.key.len()).map(|j| r.get::<_, String>(j)).collect()))
    }

    /// Count and hash sum of `range`'s rows.
    async fn sum(&self, client: &Client, range: &Range, side: Side) -> Result<Sum, Error> {
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let condition = self.condition(range, &mut params);
        // The statement locks the table before it runs: a rewrite since the snapshot (which would make
        // the table read empty) is found in the same statement, never missed while it reads.
        let sql = format!(
            "SELECT count(*)::int8, COALESCE(sum({}), 0)::text, {} FROM {} WHERE {condition}",
            super::verify::ROW_HASH.replace("{}", &format!("ROW({})", self.cols())),
            crate::source::pg::snapshot::rewritten_since_snapshot(&self.table),
            self.from()
        );
        let row = client.query_one(&sql, &params).await.map_err(Error::sql(side, format!("checksumming {}", self.table.quoted())))?;
        if let Some(names) = row.get::<_, Option<String>>(2) {
            return Err(crate::source::pg::snapshot::rewritten_error(&names, side));
        }
        Ok(Sum { rows: row.get(0), hash: row.get(1) })
    }

    /// Every row of `range`: its key and the text of every column.
    async fn rows(&self, client: &Client, range: &Range, side: Side) -> Result<Rows, Error> {
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let condition = self.condition(range, &mut params);
        let texts: Vec<String> = self.columns.iter().map(|c| format!("{}::text", quote_ident(c))).collect();
        let sql = format!("SELECT {} FROM {} WHERE {condition}", texts.join(", "), self.from());
        let rows = client.query(&sql, &params).await.map_err(Error::sql(side, format!("reading rows of {}", self.table.quoted())))?;
        Ok(rows
            .iter()
            .map(|r| {
                let values: Vec<Option<String>> = (0..self.columns.len()).map(|j| r.get(j)).collect();
                let key = self.key.iter().map(|(i, _)| values[*i].clone().unwrap_or_default()).collect();
                (key, values)
            })
            .collect())
    }
}

const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Takes snapshots at one source position for `workers` workers (see the module doc). Slot creation
/// waits for blue's transactions that hold an xid; past `slot_timeout` it is given up, naming them.
///
/// First without arming the hold, so that the apply is not held while blue creates the slot: that
/// works unless the sidecar applied a transaction beyond the slot's position before it heard of it
/// (under a heavy write load); then once more with the hold armed first.
async fn take<H: HoldDriver>(config: &Config, hold: &H, workers: usize, slot_timeout: Duration) -> Result<Snapshots<Client>, Error> {
    let source = config.source.url.expose();
    let target = config.target.url.expose();
    let mut blue = Vec::with_capacity(workers);
    let mut green = Vec::with_capacity(workers);
    for _ in 0..workers {
        blue.push(super::verify::unfiltered(source, Side::Blue).await?);
        green.push(super::verify::unfiltered(target, Side::Green).await?);
    }
    let mut options = config.source_options()?;
    options.application_name = format!("turnout verify {}", std::process::id());
    for armed in [false, true] {
        let mut replication = PgConnection::connect(&options, true).await.map_err(Error::Source)?;
        let taken = attempt(&mut replication, hold, armed, &blue, &green, &options.application_name, slot_timeout).await;
        // Applying goes on in any case; the temporary slot goes with its connection.
        let released = hold.step("release", None, Duration::from_secs(1)).await;
        replication.close().await;
        match taken? {
            Some(position) => {
                released?;
                return Ok(Snapshots { blue, green, position: Position::Pg(position), taken: Instant::now() });
            }
            None => {
                tracing::info!("the sidecar had applied past verify's position before it heard of it; again with the apply held first");
                futures_try_all(blue.iter().map(|c| c.batch_execute("ROLLBACK")), Error::blue("ending verify's snapshot")).await?;
            }
        }
    }
    Err(Error::Internal("the sidecar applied past verify's position although it was held".into()))
}

/// One try: the slot and blue's snapshots, the hold at its position and green's snapshots. `None`
/// when the sidecar had already applied past the position (only when not `armed`).
async fn attempt<H: HoldDriver>(
    replication: &mut PgConnection,
    hold: &H,
    armed: bool,
    blue: &[Client],
    green: &[Client],
    application_name: &str,
    slot_timeout: Duration,
) -> Result<Option<Lsn>, Error> {
    if armed {
        hold.step("arm", None, ARM_TTL).await?;
    }
    let sessions: Vec<&Client> = blue.iter().collect();
    let position = import_slot_snapshot(replication, hold, armed, &sessions, application_name, slot_timeout).await?;
    if !hold.step("at", Some(&Position::Pg(position)), AT_TTL).await? {
        return Ok(None);
    }
    let begin = format!("{BEGIN}; SELECT 1");
    futures_try_all(green.iter().map(|c| c.batch_execute(&begin)), Error::green("beginning verify's snapshot")).await?;
    Ok(Some(position))
}

/// Creates verify's temporary slot with an exported snapshot on `replication`'s server (the
/// source), renewing an `armed` hold while it waits, and imports that snapshot into every one of
/// `sessions` (`REPEATABLE READ, READ ONLY`); the slot's consistent point, which the snapshot shows
/// exactly. Past `slot_timeout` it gives up, naming the transactions it waited for.
pub(crate) async fn import_slot_snapshot<H: HoldDriver>(
    replication: &mut PgConnection,
    hold: &H,
    armed: bool,
    sessions: &[&Client],
    application_name: &str,
    slot_timeout: Duration,
) -> Result<Lsn, Error> {
    let blue = sessions;
    let Some(first) = blue.first() else { return Err(Error::Internal("verify's snapshot was asked for no session".into())) };
    let slot_name = format!("turnout_verify_{}", std::process::id());
    let slot_options = SlotOptions { temporary: true, export_snapshot: true, ..SlotOptions::default() };
    let create = tokio::time::timeout(slot_timeout, replication.create_logical_slot(&slot_name, &slot_options));
    // An armed hold lasts ARM_TTL unless renewed: a verify that dies stalls the apply no longer.
    let renew = async {
        loop {
            tokio::time::sleep(ARM_TTL / 3).await;
            if armed {
                hold.step("arm", None, ARM_TTL).await?;
            }
        }
    };
    let slot = tokio::select! {
        created = create => match created {
            Ok(slot) => slot.map_err(|e| slot_error(&e.to_string()))?,
            Err(_) => return Err(slot_timed_out(first, application_name, slot_timeout).await),
        },
        failed = renew => return failed,
    };
    let name = slot.snapshot_name.ok_or_else(|| Error::Unexpected { side: Side::Blue, what: "no exported snapshot for verify's temporary slot".into() })?;
    let import = format!("{BEGIN}; SET TRANSACTION SNAPSHOT {}", quote_literal(&name));
    futures_try_all(blue.iter().map(|c| c.batch_execute(&import)), Error::blue("importing verify's snapshot")).await?;
    Ok(slot.consistent_point)
}

/// Runs every statement at once; the first error, wrapped by `wrap`.
async fn futures_try_all<F>(all: impl Iterator<Item = F>, wrap: impl FnOnce(tokio_postgres::Error) -> Error) -> Result<(), Error>
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let results = futures_util::future::join_all(all).await;
    results.into_iter().collect::<Result<Vec<()>, _>>().map(|_| ()).map_err(wrap)
}

fn slot_error(message: &str) -> Error {
    let advice = if message.contains("all replication slots are in use") {
        " (verify --live needs one free replication slot on blue for a moment: raise max_replication_slots)"
    } else if message.contains("permission denied") || message.contains("must be superuser or replication role") {
        " (the source role needs REPLICATION, as `turnout run` does)"
    } else {
        ""
    };
    Error::Setup(format!("creating verify's temporary slot on blue: {message}{advice}"))
}

/// Stops the slot creation that waited too long and says which transactions it waited for.
async fn slot_timed_out(blue: &Client, application_name: &str, waited: Duration) -> Error {
    let _ = blue.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", &[&application_name]).await;
    Error::Setup(format!(
        "verify's temporary slot on blue was not ready within {waited:?}: creating a logical slot waits for every transaction \
         that holds an xid to end; still running: {}. Run again when they are done",
        xid_holders(blue).await
    ))
}

/// The sessions on this server (but this one) whose transaction holds an xid — what creating a
/// logical slot waits for — as `pid (user, state, xact since …)`, or "none now".
pub async fn xid_holders(client: &Client) -> String {
    let holders = client
        .query(
            "SELECT pid::text || ' (' || coalesce(usename::text, '?') || ', ' || coalesce(state, '?') || ', xact since ' || \
             coalesce(xact_start::text, '?') || ')' FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
             ORDER BY xact_start",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    if holders.is_empty() {
        "none now".into()
    } else {
        holders
    }
}
