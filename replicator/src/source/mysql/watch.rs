//! The MySQL family's side of the watch for writes that are not turnout's ([`crate::watch`]).
//!
//! - **Green, before the cutover (MariaDB)**: green's binlog, read from its end when the watch first
//!   starts (once the initial copy is whole) with the forward apply's transactions dropped by their
//!   GTID domain — every session of turnout's apply into green writes in a domain of its own
//!   ([`turnout_sinks::mysql::own_domain`]), and so does the cutover's session on green (the
//!   counters it moves). What is left is foreign: rows of a replicated table, or a DDL statement on
//!   the replicated database.
//! - The mark is a row in `turnout.watch_mark`, committed in the mark session's own domain: not a
//!   replicated table, so it is read as an empty transaction, whose GTID (`@@last_gtid`) is the mark's
//!   position.
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
    conn.query_drop(format!("SET SESSION gtid_domain_id = {domain}")).await.map_err(|e| {
        Error::Setup(format!(
            "turnout's account may not set gtid_domain_id on green ({e}), so its writes there cannot be told from the application's: \
             GRANT BINLOG REPLAY ON *.* on green (or set [watch] green = false)"
        ))
    })?;
    let start = match from {
        Some(read) => read.clone(),
        None => super::snapshot::binlog_end(&mut conn, "green").await?,
    };
    let _ = conn.disconnect().await;
    let names = Names { origin: format!("{}_watch", forward.origin), ..Names::none() };
    let admin = MySqlAdmin::watching(&watched, names, domain)?;
    let stream = admin.open_stream(&start).await?;
    Ok(WatchStream { stream, from: start, unread: None })
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
        conn.query_drop("CREATE DATABASE IF NOT EXISTS turnout; CREATE TABLE IF NOT EXISTS turnout.watch_mark (id INT PRIMARY KEY, at DATETIME(6) NOT NULL)")
            .await
            .map_err(|e| sql_error("green", "creating turnout.watch_mark for the watch's mark", e))?;
        Ok(MySqlMarker { conn })
    }
}

impl Marker for MySqlMarker {
    fn mark(&mut self) -> Pin<Box<dyn Future<Output = Result<Position, Error>> + Send + '_>> {
        Box::pin(async move {
            self.conn
                .query_drop("REPLACE INTO turnout.watch_mark VALUES (1, UTC_TIMESTAMP(6))")
                .await
                .map_err(|e| sql_error("green", "writing the watch's mark", e))?;
            let gtid: Option<String> = self.conn.query_first("SELECT @@last_gtid").await.map_err(|e| sql_error("green", "reading the mark's GTID", e))?;
            let gtid = gtid
                .filter(|g| !g.is_empty())
                .ok_or_else(|| Error::Setup("green's binlog shows no GTID for the watch's mark: it needs binary logging on (log_bin) to be watched".into()))?;
            let gtids =
                GtidState::parse_maria(&gtid).map_err(|e| Error::Setup(format!("the watch's mark has the GTID '{gtid}', which does not parse: {e}")))?;
            Ok(Position::Binlog(turnout_decoders::BinlogPosition { gtids, ..Default::default() }))
        })
    }
}
