//! The MySQL family's side of the watch for writes that are not turnout's ([`crate::watch`]).
//!
//! - **Green, before the cutover (MariaDB)**: green's binlog, read from its end when the watch first
//!   starts (once the initial copy is whole) with the forward apply's transactions dropped by their
//!   GTID domain — every session of turnout's apply into green writes in a domain of its own
//!   ([`turnout_sinks::mysql::own_domain`]), and the cutover's session on green writes in one next
//!   to it (the counters it moves, [`turnout_sinks::mysql::cutover_domain`]: apart, so that the
//!   apply's domain in green's binlog still proves the apply marks its writes). What is left is foreign: rows of a replicated table, or a DDL statement on
//!   the replicated database.
//! - The mark is a row in `turnout.watch_mark`, committed in green's default domain: not a
//!   replicated table, so it is read as an empty transaction, whose GTID (`@@last_gtid`, which must
//!   have moved) is the mark's position.
//! - Refused, naming the fix, unless green can be read exactly: the binlog settings a reverse stream
//!   needs (ROW, FULL row image and metadata, the grants), `gtid_strict_mode = ON` (GTIDs in one
//!   domain only grow, so a position says what was read), no binlog filter (`binlog_do_db`,
//!   `binlog_ignore_db`), and green itself not writing in turnout's domain.
//! - Where it starts is recorded before it reads: a restart reads on from there (or from the last
//!   transaction it read), never from green's end; a log purged meanwhile stops it, loudly.
//!
//! Not seen: a session on green with `sql_log_bin = 0`, or one that sets turnout's GTID domain.
//!
//! Not built: green on Oracle MySQL (turnout's apply would have to tag its GTIDs,
//! `gtid_next = 'AUTOMATIC:<tag>'`, and the decoder read tagged GTID events), and blue in the
//! rollback window. Both are refused with the setting that turns them off.

use super::admin::MySqlAdmin;
use super::stream::MySqlSource;
use super::{connect, is_mariadb, options, sql_error};
use crate::config::{reversed, Config};
use crate::error::Error;
use crate::source::contract::marker::{Marker, WatchStream};
use crate::source::{Names, SourceAdmin};
use crate::status::foreign::Side;
use mysql_async::prelude::Queryable;
use std::future::Future;
use std::pin::Pin;
use turnout_decoders::{GtidState, Position};

/// Why `side` cannot be watched on this server, if it cannot.
fn not_built(side: Side, what: &str) -> Error {
    let off = match side {
        Side::Green => "[watch] green = false",
        Side::Blue => "[watch] blue = false",
    };
    Error::Setup(format!("watching {side} for writes that are not turnout's is not built for {what}; set {off} to run without it"))
}

/// Green's binlog without turnout's own writes, from `from` (what the watch read) or green's binlog
/// end now.
pub(crate) async fn stream(config: &Config, forward: &Names, side: Side, from: Option<&Position>) -> Result<WatchStream<MySqlSource>, Error> {
    if side == Side::Blue {
        return Err(not_built(side, "MySQL and MariaDB (the rollback window)"));
    }
    let watched = reversed(config);
    let opts = options(watched.source.url.expose(), "target.url")?;
    let mut conn = connect(&opts, "green").await?;
    if !is_mariadb(&mut conn, "green").await? {
        return Err(not_built(side, "an Oracle MySQL green (turnout's writes there would need tagged GTIDs)"));
    }
    // The apply marks its writes in its own domain; an account that may not do so leaves them
    // indistinguishable from the application's.
    let domain = turnout_sinks::mysql::own_domain(&forward.origin);
    readable(&mut conn, &opts, domain).await?;
    let start = match from {
        Some(read) => read.clone(),
        None => super::snapshot::binlog_end(&mut conn, "green").await?,
    };
    let _ = conn.disconnect().await;
    let names = Names { origin: format!("{}_watch", forward.origin), ..Names::none() };
    let admin = MySqlAdmin::watching(&watched, names, &forward.origin)?;
    let stream = admin.open_stream(&start).await?;
    Ok(WatchStream { stream, from: start, unread: None })
}

/// Refuses a green whose binlog cannot show every write exactly, naming the first problem's fix.
async fn readable(conn: &mut mysql_async::Conn, opts: &mysql_async::Opts, domain: u32) -> Result<(), Error> {
    let refuse = |what: String, fix: String| {
        Error::Setup(format!("green cannot be watched for writes that are not turnout's: {what}; {fix} (or set [watch] green = false)"))
    };
    let user = opts.user().unwrap_or_default().to_owned();
    if let Some((what, fix)) = super::check::reverse_problems(conn, &user, false).await.into_iter().next() {
        return Err(refuse(what, fix));
    }
    if !super::check::variable(conn, "gtid_strict_mode").await.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1") {
        return Err(refuse(
            "gtid_strict_mode is OFF on green, so a transaction's GTID may go backwards and read as already seen".into(),
            "SET GLOBAL gtid_strict_mode = ON; and in green's configuration".into(),
        ));
    }
    if super::check::variable(conn, "gtid_domain_id").await.is_some_and(|v| v == domain.to_string()) {
        return Err(refuse(
            format!("green's own gtid_domain_id is {domain}, the domain turnout's writes are known by"),
            "give green another gtid_domain_id".into(),
        ));
    }
    let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await.map_err(|e| sql_error("green", "SHOW MASTER STATUS", e))?;
    let filtered = row.is_some_and(|r| {
        let text = |i: usize| String::from_utf8_lossy(&r.get::<Vec<u8>, _>(i).unwrap_or_default()).into_owned();
        !text(2).is_empty() || !text(3).is_empty()
    });
    if filtered {
        return Err(refuse("green's binlog is filtered by database (binlog_do_db / binlog_ignore_db)".into(), "remove the filter on green".into()));
    }
    conn.query_drop(format!("SET SESSION gtid_domain_id = {domain}"))
        .await
        .map_err(|e| refuse(format!("turnout's account may not set gtid_domain_id on green ({e})"), "GRANT BINLOG REPLAY ON *.* on green".into()))
}

/// The session's last binlogged GTID (empty: none yet).
async fn last_gtid(conn: &mut mysql_async::Conn) -> Result<String, Error> {
    let gtid: Option<String> = conn.query_first("SELECT @@last_gtid").await.map_err(|e| sql_error("green", "reading the mark's GTID", e))?;
    Ok(gtid.unwrap_or_default())
}

/// A session on green that commits marks.
pub(crate) struct MySqlMarker {
    conn: mysql_async::Conn,
}

impl MySqlMarker {
    pub(crate) async fn open(config: &Config, side: Side) -> Result<MySqlMarker, Error> {
        if side == Side::Blue {
            return Err(not_built(side, "MySQL and MariaDB (the rollback window)"));
        }
        let opts = options(config.target.url.expose(), "target.url")?;
        let mut conn = connect(&opts, "green").await?;
        conn.query_drop("SET SESSION binlog_format = 'ROW'").await.map_err(|e| sql_error("green", "setting the mark's binlog_format", e))?;
        conn.query_drop("CREATE DATABASE IF NOT EXISTS turnout; CREATE TABLE IF NOT EXISTS turnout.watch_mark (id INT PRIMARY KEY, at DATETIME(6) NOT NULL)")
            .await
            .map_err(|e| sql_error("green", "creating turnout.watch_mark for the watch's mark", e))?;
        Ok(MySqlMarker { conn })
    }
}

impl Marker for MySqlMarker {
    fn mark(&mut self) -> Pin<Box<dyn Future<Output = Result<Position, Error>> + Send + '_>> {
        Box::pin(async move {
            let before = last_gtid(&mut self.conn).await?;
            self.conn
                .query_drop("REPLACE INTO turnout.watch_mark VALUES (1, UTC_TIMESTAMP(6))")
                .await
                .map_err(|e| sql_error("green", "writing the watch's mark", e))?;
            let gtid = last_gtid(&mut self.conn).await?;
            if gtid.is_empty() || gtid == before {
                return Err(Error::Setup(format!(
                    "green's binlog shows no transaction for the watch's mark (@@last_gtid stayed '{before}'): it must log every write \
                     (log_bin on, no binlog filter) to be watched"
                )));
            }
            let gtids =
                GtidState::parse_maria(&gtid).map_err(|e| Error::Setup(format!("the watch's mark has the GTID '{gtid}', which does not parse: {e}")))?;
            Ok(Position::Binlog(turnout_decoders::BinlogPosition { gtids, ..Default::default() }))
        })
    }
}
