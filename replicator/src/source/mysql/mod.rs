//! MySQL and MariaDB as a source: the binlog stream ([`stream`]) and its administration ([`admin`]):
//! table selection, binlog settings, schema copy and consistent snapshot, heartbeats, the preflight
//! check, verify digests and teardown.
//!
//! Blue's database is the one the `source.url` names; its tables are `database.table`.

pub mod admin;
pub(crate) mod canary;
pub mod catalog;
pub mod check;
pub mod chunks;
pub mod crossing;
pub mod cutover;
pub mod drift;
pub(crate) mod fenced;
pub(crate) mod generated;
pub mod heartbeat;
pub mod inventory;
pub mod live;
pub mod portable;
pub mod programs;
pub(crate) mod rehearsal;
pub(crate) mod side;
pub(crate) mod side_live;
pub mod snapshot;
pub mod stream;
pub mod typed_json;
pub mod verify;
pub(crate) mod watch;

pub use admin::MySqlAdmin;
pub use stream::MySqlSource;

use crate::config::Config;
use crate::journal::ReverseArm;
use crate::source::family::Family;
use crate::source::Names;

/// MySQL's and MariaDB's [`Family`]: the binlog by GTID, the `read_only` fence (sealed with
/// `super_read_only` on Oracle MySQL) with a heartbeat-row sentinel, and a reverse stream from green's
/// binlog.
#[allow(missing_debug_implementations)]
pub struct MySql;

impl Family for MySql {
    type Admin = MySqlAdmin;
    type Cutover = cutover::MySqlCutover;
    type Live = live::MySqlLive;
    type Green = canary::MySqlGreen;

    fn validate(config: &Config) -> Result<(), Error> {
        options(config.source.url.expose(), "source.url")?;
        options(config.target.url.expose(), "target.url")?;
        if config.cutover.fence == crate::config::Fence::Pgbouncer || config.cutover.switch == crate::config::Switch::Pgbouncer {
            return Err(Error::config(
                "cutover.fence",
                "pgbouncer fronts PostgreSQL only; for MySQL/MariaDB use read-only or none (and switch haproxy, command or none)",
            ));
        }
        Ok(())
    }

    /// Case kept; blue's database when no schema is given.
    fn name_rules(config: &Config) -> Result<crate::tables::NameRules, Error> {
        let opts = options(config.source.url.expose(), "source.url")?;
        Ok(crate::tables::NameRules::mysql(&database(&opts)))
    }

    fn admin(config: &Config, names: Names) -> Result<MySqlAdmin, Error> {
        MySqlAdmin::new(config, names)
    }

    type Back = MySqlAdmin;

    fn back_admin(back: &Config, arm: &ReverseArm) -> Result<MySqlAdmin, Error> {
        Self::reverse_admin(back, arm)
    }

    fn reverse_admin(back: &Config, arm: &ReverseArm) -> Result<MySqlAdmin, Error> {
        MySqlAdmin::reverse(back, arm.names.clone(), &arm.forward_origin, arm.position.clone())
    }

    async fn cutover(config: &Config, forward: &Names, reverse: bool) -> Result<cutover::MySqlCutover, Error> {
        cutover::MySqlCutover::connect(config, forward, reverse.then(|| cutover::Reverse::after(forward))).await
    }

    /// With `again`, the rollback arms the next generation as a cutover arms the reverse stream, the
    /// roles swapped: MariaDB — blue's binlog end and GTID state before green is fenced, the reverse
    /// apply's writes on blue dropped by their GTID domain; Oracle MySQL — blue's binlog end inside the
    /// pause, once blue is proven complete and green sealed, so nothing of the reverse apply's follows.
    async fn rollback(config: &Config, forward: &Names, again: bool) -> Result<cutover::MySqlCutover, Error> {
        let again = again.then(|| cutover::Reverse { names: forward.next_generation(), forward_origin: Names::reverse_of(forward).origin });
        cutover::MySqlCutover::connect_back(config, forward, again).await
    }

    const ITERATES: bool = true;

    /// The reverse stream's progress record on blue; green's binlogs follow green's own retention.
    async fn release_reverse(config: &Config, names: &Names) -> Vec<String> {
        match Self::drop_reverse(config, names).await {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!("deleting the reverse stream's progress record {} on blue failed: {e}; `turnout teardown` deletes it", names.origin);
                Vec::new()
            }
        }
    }

    fn live(config: &Config) -> Result<live::MySqlLive, Error> {
        live::MySqlLive::new(config)
    }

    /// Nothing: the forward stream holds nothing on blue (binlogs follow blue's own retention).
    async fn before_reverse(_config: &Config, _forward: &Names) {}

    /// Its progress record on blue; green's binlogs follow green's own retention.
    async fn drop_reverse(config: &Config, names: &Names) -> Result<Vec<String>, Error> {
        turnout_sinks::mysql::drop_progress(config.source.url.expose(), &names.origin).await.map_err(Error::Sink)?;
        Ok(vec![format!("deleted the reverse stream's progress record {} on blue (if it existed)", names.origin)])
    }

    /// Both sides: the side's binlog without the GTID domains (MariaDB) or tags (Oracle MySQL 8.3+)
    /// turnout writes with there (see [`watch`]). An Oracle MySQL side before 8.3 is unavailable
    /// ([`Family::watch_unavailable`]).
    fn watches(_side: crate::status::foreign::Side) -> bool {
        true
    }

    async fn watch_unavailable(config: &Config, side: crate::status::foreign::Side) -> Result<Option<String>, Error> {
        watch::unavailable(config, side).await
    }

    async fn watch_stream(
        config: &Config,
        forward: &Names,
        side: crate::status::foreign::Side,
        from: Option<&turnout_decoders::Position>,
    ) -> Result<crate::source::contract::marker::WatchStream<stream::MySqlSource>, Error> {
        watch::stream(config, forward, side, from).await
    }

    async fn watch_marker(config: &Config, side: crate::status::foreign::Side) -> Result<Box<dyn crate::source::contract::marker::Marker>, Error> {
        Ok(Box::new(watch::MySqlMarker::open(config, side).await?))
    }

    fn canary_green(config: &Config) -> Result<canary::MySqlGreen, Error> {
        canary::MySqlGreen::new(config)
    }

    /// The marks' table on the side (the side's binlog follows its own retention).
    async fn drop_watch(config: &Config, _forward: &Names, side: crate::status::foreign::Side) {
        match watch::drop_marks(config, side).await {
            Ok(true) => tracing::info!("dropped turnout.watch_mark on {side}, the watch's marks"),
            Ok(false) => {}
            Err(e) => tracing::warn!("dropping turnout.watch_mark on {side} failed: {e}; `turnout teardown` drops it"),
        }
    }
}

use crate::error::{Error, Side};
use mysql_async::prelude::Queryable;

/// `side`'s `VERSION()`.
pub async fn version(conn: &mut mysql_async::Conn, side: crate::error::Side) -> Result<String, Error> {
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(|e| sql_error(side, "reading the version", e))?;
    Ok(version.unwrap_or_default())
}

/// True when `side` is MariaDB, false for Oracle MySQL (`VERSION()` names MariaDB).
pub async fn is_mariadb(conn: &mut mysql_async::Conn, side: crate::error::Side) -> Result<bool, Error> {
    Ok(version(conn, side).await?.to_ascii_lowercase().contains("mariadb"))
}

/// Connection options from a `mysql://` (or `mariadb://`) URL; the error names `field`.
pub fn options(url: &str, field: &str) -> Result<mysql_async::Opts, Error> {
    let opts = turnout_connect::mysql::conn::options(url).map_err(|e| Error::config(field, e))?;
    if opts.db_name().is_none_or(str::is_empty) {
        return Err(Error::config(field, "names no database; write mysql://user:password@host:3306/database"));
    }
    Ok(opts)
}

/// `user@host:port/database` of a URL, without its password.
pub fn redacted(opts: &mysql_async::Opts) -> String {
    format!("{}@{}:{}/{}", opts.user().unwrap_or(""), opts.ip_or_hostname(), opts.tcp_port(), opts.db_name().unwrap_or(""))
}

/// The database a URL names.
pub fn database(opts: &mysql_async::Opts) -> String {
    opts.db_name().unwrap_or_default().to_owned()
}

/// A session on blue (or green) with turnout's settings: UTC, utf8mb4 statements, raw column bytes
/// in results (no conversion to the connection's character set).
pub async fn connect(opts: &mysql_async::Opts, side: crate::error::Side) -> Result<mysql_async::Conn, Error> {
    let mut conn = turnout_connect::mysql::conn::open(opts).await.map_err(|e| sql_error(side, "connecting", e))?;
    conn.query_drop("SET NAMES utf8mb4, time_zone = '+00:00', character_set_results = NULL").await.map_err(|e| sql_error(side, "setting the session", e))?;
    // MySQL: a primary key it generated (`my_row_id`, sql_generate_invisible_primary_key) is in the
    // binlog even where the server hides it from SHOW CREATE TABLE and information_schema; turnout
    // must see it to copy it. MariaDB has no such variable.
    let _ = conn.query_drop("SET SESSION show_gipk_in_create_table_and_information_schema = ON").await;
    Ok(conn)
}

/// A failed statement on `side` as [`Error::MySql`]: the side, the server's error code, SQLSTATE and
/// message, and the retry class the driver's error has ([`turnout_sinks::error::classify_mysql`]) —
/// the same for either side, so a refusal on blue keeps its code and its advice.
pub fn sql_error(side: Side, context: &str, e: mysql_async::Error) -> Error {
    Error::MySql { side, context: context.to_owned(), source: e }
}

/// Quotes a MySQL identifier with backticks.
pub use turnout_sinks::mysql::literal::ident as quote;

/// `` `db`.`table` ``.
pub fn qualified(t: &turnout_decoders::TableName) -> String {
    format!("{}.{}", quote(&t.schema), quote(&t.name))
}

/// What is wrong with a cascading foreign key from a left-out table.
pub fn cascade_problem(h: &catalog::HiddenCascade) -> String {
    format!(
        "{} has foreign key {} ({}) to {}, which is not replicated: blue applies that cascade without writing it to the binlog, \
         so green would keep the rows it changes",
        h.child, h.constraint, h.rules, h.parent
    )
}

/// The fix for [`cascade_problem`].
pub fn cascade_fix(h: &catalog::HiddenCascade) -> String {
    format!("replicate {} too (tables.include), or leave out {} (tables.exclude)", h.parent, h.child)
}

/// Before a stream applies into a side a cutover fenced: Oracle MySQL's `super_read_only` (which
/// stops turnout's apply too) lowered to `read_only` — applications stay fenced, turnout's
/// `CONNECTION_ADMIN` writes through it. A no-op on MariaDB and on a side not sealed.
pub(crate) async fn lower_seal(conn: &mut mysql_async::Conn, side: crate::error::Side) -> Result<(), Error> {
    if is_mariadb(conn, side).await? {
        return Ok(());
    }
    let sealed: Option<i64> = conn.query_first("SELECT @@GLOBAL.super_read_only").await.map_err(|e| sql_error(side, "reading super_read_only", e))?;
    if sealed == Some(1) {
        conn.query_drop("SET GLOBAL super_read_only = OFF").await.map_err(|e| sql_error(side, "lowering super_read_only to read_only for the stream", e))?;
        tracing::info!("{side}: super_read_only lowered to read_only for the stream into it (applications stay fenced)");
    }
    Ok(())
}
