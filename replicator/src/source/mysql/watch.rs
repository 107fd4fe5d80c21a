//! The MySQL family's side of the watch for writes that are not turnout's ([`crate::watch`]): the
//! watched side's binlog with turnout's own transactions dropped by their mark — a GTID domain on
//! MariaDB, a GTID tag on Oracle MySQL 8.3+ ([`turnout_sinks::mysql::mark_session`]).
//!
//! - **Green, before the cutover**: green's binlog, read from its end when the watch first starts
//!   (once the initial copy is whole). Every session of turnout's forward apply into green writes
//!   with a mark of its own ([`turnout_sinks::mysql::own_domain`]), and the cutover's session on
//!   green with one next to it (the counters it moves, [`turnout_sinks::mysql::cutover_domain`]:
//!   apart, so that the apply's domain in a MariaDB green's binlog still proves the apply marks its
//!   writes).
//! - **Blue, in the rollback window**: blue's binlog from the cutover's sentinel (the watch's
//!   `begin`, journaled by the cutover) or, for a cutover that journaled none, from the position the
//!   forward stream applied on green (its progress record there) — either proven to hold everything
//!   blue committed before the fence. After it come the reverse stream's apply (its own mark) and
//!   the rollback's counters (the reverse stream's cutover mark), both dropped — and whatever a
//!   client that bypassed the switch wrote.
//! - What is left is foreign: rows of a replicated table, or a DDL statement on the replicated
//!   database (or anything a replicating stream would refuse).
//! - The mark is a row in `turnout.watch_mark`, committed without turnout's mark: not a replicated
//!   table, so it is read as an empty transaction. Its position says what was committed before it:
//!   MariaDB, the side's whole GTID state (`@@gtid_binlog_pos` read before it) with the mark's own
//!   GTID (`@@last_gtid`, which must have moved) in its domain; Oracle MySQL, `@@GLOBAL.gtid_executed`
//!   read after it with every tagged source cut back to what it held before the mark (untagged
//!   transactions are never dropped, so the watch reads past each of them; a tagged one committed
//!   after the mark may be turnout's, which the watch would read past only with the next foreign
//!   commit). A watch that read past it read everything committed before, and the rollback's
//!   closing mark compares with the hand-off, a whole state too.
//! - Refused, naming the fix, unless the side can be read exactly: MariaDB `gtid_strict_mode = ON`
//!   (GTIDs in one domain only grow, so a position says what was read), Oracle MySQL 8.3+ with
//!   `gtid_mode = ON`; no binlog filter (`binlog_do_db`, `binlog_ignore_db`); the MariaDB side itself
//!   not writing in a domain turnout's writes are known by; turnout's account allowed to mark its
//!   writes; and on green the binlog settings and grants a reverse stream needs (blue's are the
//!   forward stream's).
//! - Where it starts is recorded before it reads: a restart reads on from there (or from the last
//!   transaction it read), never from the side's binlog end; a log purged meanwhile stops it, loudly.
//!
//! Not seen: a session with `sql_log_bin = 0`, or one that marks its writes as turnout's itself.
//! An Oracle MySQL server before 8.3 (no GTID tags) is *unavailable* ([`unavailable`]): green's
//! watch then refuses the cutover until `[watch] green` is turned off, and blue counts as not
//! watched.

use super::admin::MySqlAdmin;
use super::stream::MySqlSource;
use super::{connect, is_mariadb, options, sql_error};
use crate::config::{reversed, Config};
use crate::error::{Error, WatchRefusal};
use crate::source::contract::marker::{Marker, WatchStream};
use crate::source::{Names, SourceAdmin};
use crate::status::foreign::Side;
use mysql_async::prelude::Queryable;
use std::future::Future;
use std::pin::Pin;
use turnout_decoders::{GtidState, Position};

/// The side's URL and the stream whose writes there are turnout's (its apply's and its cutover's
/// GTID domains): green — the forward stream; blue — the reverse stream.
fn watched(config: &Config, forward: &Names, side: Side) -> (String, String) {
    match side {
        Side::Green => (config.target.url.expose().to_owned(), forward.origin.clone()),
        Side::Blue => (config.source.url.expose().to_owned(), Names::reverse_of(forward).origin),
    }
}

fn url_key(side: Side) -> &'static str {
    match side {
        Side::Green => "target.url",
        Side::Blue => "source.url",
    }
}

/// Why `side` cannot be watched at all, if it cannot: an Oracle MySQL server before 8.3, whose
/// GTIDs have no tags to mark turnout's writes with.
pub(crate) async fn unavailable(config: &Config, side: Side) -> Result<Option<String>, Error> {
    let url = match side {
        Side::Green => config.target.url.expose(),
        Side::Blue => config.source.url.expose(),
    };
    let mut conn = connect(&options(url, url_key(side))?, side).await?;
    let mariadb = is_mariadb(&mut conn, side).await?;
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(|e| sql_error(side, "reading the version", e))?;
    let _ = conn.disconnect().await;
    let version = version.unwrap_or_default();
    let off = match side {
        Side::Green => "set [watch] green = false to cut over without it",
        Side::Blue => "blue counts as not watched in the rollback window",
    };
    Ok((!mariadb && !tags_gtids(&version)).then(|| {
        format!(
            "{side} is Oracle MySQL {version}, which cannot tag GTIDs (MySQL 8.3+), so turnout's writes there cannot be told from others'; \
             {side} cannot be watched for writes that are not turnout's; {off}"
        )
    }))
}

/// Whether an Oracle MySQL server of `version` (`VERSION()`) tags GTIDs: 8.3 and later.
fn tags_gtids(version: &str) -> bool {
    let mut parts = version.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (8, 3)
}

/// The side's binlog without turnout's own writes, from `from` (what the watch read) or where the
/// watch begins: green's binlog end now, or on blue the forward stream's applied position.
pub(crate) async fn stream(config: &Config, forward: &Names, side: Side, from: Option<&Position>) -> Result<WatchStream<MySqlSource>, Error> {
    let (url, stream) = watched(config, forward, side);
    let opts = options(&url, url_key(side))?;
    let mut conn = connect(&opts, side).await?;
    // The apply marks its writes in its own domain; an account that may not do so leaves them
    // indistinguishable from the application's.
    readable(&mut conn, &opts, side, &stream).await?;
    let start = match (from, side) {
        (Some(read), _) => read.clone(),
        (None, Side::Green) => super::snapshot::binlog_end(&mut conn, crate::error::Side::Green).await?,
        (None, Side::Blue) => turnout_sinks::mysql::read_progress(config.target.url.expose(), &forward.origin)
            .await
            .map_err(Error::Sink)?
            .ok_or_else(|| WatchRefusal::NoProgressRecord { origin: forward.origin.clone() })?,
    };
    let _ = conn.disconnect().await;
    // The watched side as the stream's source.
    let source = match side {
        Side::Green => reversed(config),
        Side::Blue => config.clone(),
    };
    let names = Names { origin: format!("{}_watch", forward.origin), ..Names::none() };
    let admin = MySqlAdmin::watching(&source, names, &stream, side)?;
    let stream = admin.open_stream(&start).await?;
    Ok(WatchStream { stream, from: start, unread: None })
}

/// Refuses a side whose binlog cannot show every write exactly, naming the first problem's fix.
async fn readable(conn: &mut mysql_async::Conn, opts: &mysql_async::Opts, side: Side, stream: &str) -> Result<(), Error> {
    let own = turnout_sinks::mysql::own_domain(stream);
    let off = match side {
        Side::Green => "[watch] green = false",
        Side::Blue => "[watch] blue = false",
    };
    let refuse = |what: String, fix: String| Error::from(WatchRefusal::Unwatchable { side, what, fix, off });
    let mariadb = is_mariadb(conn, side).await?;
    let user = opts.user().unwrap_or_default().to_owned();
    if side == Side::Green {
        if let Some((what, fix)) = super::check::reverse_problems(conn, &user, !mariadb).await.into_iter().next() {
            return Err(refuse(what, fix));
        }
    }
    if mariadb {
        if !super::check::variable(conn, "gtid_strict_mode").await.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1") {
            return Err(refuse(
                format!("gtid_strict_mode is OFF on {side}, so a transaction's GTID may go backwards and read as already seen"),
                format!("SET GLOBAL gtid_strict_mode = ON; and in {side}'s configuration"),
            ));
        }
        let cutover = turnout_sinks::mysql::cutover_domain(stream);
        if let Some(domain) = super::check::variable(conn, "gtid_domain_id").await.filter(|v| *v == own.to_string() || *v == cutover.to_string()) {
            return Err(refuse(
                format!("{side}'s own gtid_domain_id is {domain}, a domain turnout's writes are known by"),
                format!("give {side} another gtid_domain_id"),
            ));
        }
    } else if !super::check::variable(conn, "gtid_mode").await.is_some_and(|v| v.eq_ignore_ascii_case("ON")) {
        return Err(refuse(
            format!("{side}'s gtid_mode is not ON, and turnout's writes are known by their GTID tags"),
            format!("enable GTIDs (gtid_mode = ON, enforce_gtid_consistency = ON) on {side}"),
        ));
    } else if super::check::variable(conn, "log_replica_updates").await.is_some_and(|v| v == "0" || v.eq_ignore_ascii_case("OFF")) {
        // A mark's position is the executed GTID set: a GTID that never reaches the binlog could
        // never be read past.
        return Err(refuse(
            format!("{side} does not log what it replicates from elsewhere (log_replica_updates = OFF): those GTIDs are executed but not in its binlog"),
            format!("set log_replica_updates = ON on {side}"),
        ));
    }
    let statement = if mariadb { "SHOW MASTER STATUS" } else { "SHOW BINARY LOG STATUS" };
    let row: Option<mysql_async::Row> = conn.query_first(statement).await.map_err(|e| sql_error(side, statement, e))?;
    let filtered = row.is_some_and(|r| {
        let text = |i: usize| String::from_utf8_lossy(&r.get::<Vec<u8>, _>(i).unwrap_or_default()).into_owned();
        !text(2).is_empty() || !text(3).is_empty()
    });
    if filtered {
        return Err(refuse(format!("{side}'s binlog is filtered by database (binlog_do_db / binlog_ignore_db)"), format!("remove the filter on {side}")));
    }
    turnout_sinks::mysql::mark_session(conn, mariadb, own).await.map_err(|e| {
        refuse(format!("turnout's account may not mark its writes on {side} ({e})"), format!("{} on {side}", turnout_sinks::mysql::mark_grant(mariadb)))
    })
}

/// A session variable's text (empty: none).
async fn text(conn: &mut mysql_async::Conn, side: Side, variable: &str) -> Result<String, Error> {
    let context = format!("reading {variable} for the watch's mark");
    let value: Option<String> = conn.query_first(format!("SELECT {variable}")).await.map_err(|e| sql_error(side, &context, e))?;
    Ok(value.unwrap_or_default())
}

/// GTIDs the watch's mark read on `side`.
fn parse(side: Side, text: &str) -> Result<GtidState, Error> {
    GtidState::parse(text).map_err(|e| Error::Unexpected { side, what: format!("the GTIDs '{text}' of the watch's mark ({e})") })
}

/// A session on a side that commits marks.
pub(crate) struct MySqlMarker {
    conn: mysql_async::Conn,
    side: Side,
    mariadb: bool,
}

impl MySqlMarker {
    pub(crate) async fn open(config: &Config, side: Side) -> Result<MySqlMarker, Error> {
        let url = match side {
            Side::Green => config.target.url.expose(),
            Side::Blue => config.source.url.expose(),
        };
        let mut conn = connect(&options(url, url_key(side))?, side).await?;
        let mariadb = is_mariadb(&mut conn, side).await?;
        // The mark must be a row event; setting the session's format needs BINLOG ADMIN, so only
        // where the server's is not ROW already.
        let format = text(&mut conn, side, "@@SESSION.binlog_format").await?;
        if !format.eq_ignore_ascii_case("ROW") {
            conn.query_drop("SET SESSION binlog_format = 'ROW'").await.map_err(|e| WatchRefusal::NoRowEvents {
                side,
                format: format.clone(),
                cause: e.to_string(),
            })?;
        }
        conn.query_drop("CREATE DATABASE IF NOT EXISTS turnout; CREATE TABLE IF NOT EXISTS turnout.watch_mark (id INT PRIMARY KEY, at DATETIME(6) NOT NULL)")
            .await
            .map_err(|e| sql_error(side, "creating turnout.watch_mark for the watch's mark", e))?;
        Ok(MySqlMarker { conn, side, mariadb })
    }

    /// Commits the mark row.
    async fn write(&mut self) -> Result<(), Error> {
        self.conn
            .query_drop("REPLACE INTO turnout.watch_mark VALUES (1, UTC_TIMESTAMP(6))")
            .await
            .map_err(|e| sql_error(self.side, "writing the watch's mark", e))
    }

    /// MariaDB: the whole GTID state before the mark, with the mark's own GTID in its domain.
    async fn mark_maria(&mut self) -> Result<GtidState, Error> {
        let side = self.side;
        let before = text(&mut self.conn, side, "@@last_gtid").await?;
        // Everything committed before the mark: the mark adds its own GTID to it.
        let state = text(&mut self.conn, side, "@@GLOBAL.gtid_binlog_pos").await?;
        self.write().await?;
        let gtid = text(&mut self.conn, side, "@@last_gtid").await?;
        if gtid.is_empty() || gtid == before {
            return Err(WatchRefusal::MarkNotLogged { side, before }.into());
        }
        let mut gtids = parse(side, &state)?;
        if let GtidState::MariaDb(own) = parse(side, &gtid)? {
            for g in own.into_values() {
                gtids.push_maria(g);
            }
        }
        Ok(gtids)
    }

    /// Oracle MySQL: the executed set after the mark with its tagged sources as they were before
    /// (see the module documentation); the mark itself, untagged, must have added to it.
    async fn mark_mysql(&mut self) -> Result<GtidState, Error> {
        let side = self.side;
        let before = parse(side, &text(&mut self.conn, side, "@@GLOBAL.gtid_executed").await?)?;
        self.write().await?;
        let after = parse(side, &text(&mut self.conn, side, "@@GLOBAL.gtid_executed").await?)?;
        let gtids = after.tagged_as_of(&before);
        if gtids.compare(&before) != Some(std::cmp::Ordering::Greater) {
            return Err(WatchRefusal::MarkWithoutGtid { side }.into());
        }
        Ok(gtids)
    }
}

impl Marker for MySqlMarker {
    fn mark(&mut self) -> Pin<Box<dyn Future<Output = Result<Position, Error>> + Send + '_>> {
        Box::pin(async move {
            let gtids = if self.mariadb { self.mark_maria().await? } else { self.mark_mysql().await? };
            Ok(Position::Binlog(turnout_decoders::BinlogPosition { gtids, ..Default::default() }))
        })
    }
}

/// Drops the marks' table on `side`, and turnout's database there once it holds nothing else
/// (`turnout teardown`, and when the side's watch ends). Returns whether the table existed.
pub(crate) async fn drop_marks(config: &Config, side: Side) -> Result<bool, Error> {
    let url = match side {
        Side::Green => config.target.url.expose(),
        Side::Blue => config.source.url.expose(),
    };
    let mut conn = connect(&options(url, url_key(side))?, side).await?;
    let tables: Vec<String> = conn
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'turnout'")
        .await
        .map_err(|e| sql_error(side, "looking for turnout.watch_mark", e))?;
    if !tables.iter().any(|t| t == "watch_mark") {
        return Ok(false);
    }
    conn.query_drop("DROP TABLE IF EXISTS turnout.watch_mark").await.map_err(|e| sql_error(side, "dropping turnout.watch_mark", e))?;
    if tables.len() == 1 {
        conn.query_drop("DROP DATABASE IF EXISTS turnout").await.map_err(|e| sql_error(side, "dropping the database turnout", e))?;
    }
    let _ = conn.disconnect().await;
    Ok(true)
}
