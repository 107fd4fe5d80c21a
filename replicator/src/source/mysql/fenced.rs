//! The fenced side of a MySQL/MariaDB cutover, whatever the other side is: the `read_only` fence (or
//! none), the sentinel as row 2 of the heartbeat table written by turnout's own session (which
//! `read_only` exempts: it holds `READ ONLY ADMIN` on MariaDB, `CONNECTION_ADMIN` on MySQL), on Oracle
//! MySQL the seal (`super_read_only`) right after it with what the side committed, the checks that
//! the fence can hold (privileges, no replication threads, no foreign sessions of turnout's account)
//! and lifting it. The MySQL family's own cutover ([`super::cutover::MySqlCutover`]) and a cutover to
//! another engine ([`crate::source::compose::cutover`]) are both made of it.

use crate::config::{Config, Fence};
use crate::error::{CutoverCheck, Error, Side};
use crate::source::contract::procedure::Identity;
use crate::source::mysql::{connect, database, options, quote};
use crate::source::{HEARTBEAT_TABLE, SENTINEL_ROW};
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use turnout_cutover::ReadOnlyFence;
use turnout_decoders::{BinlogPosition, GtidState, Position};

/// How long a session of turnout's account that turnout did not open may take to go away (a client
/// that just disconnected) before the cutover refuses it.
const SESSION_SETTLE: Duration = Duration::from_secs(2);

/// The side a cutover fences: `source.url` of the configuration it is given (a rollback is given the
/// configuration reversed).
pub(crate) struct MySqlFenced {
    pub(crate) opts: mysql_async::Opts,
    pub(crate) conn: mysql_async::Conn,
    pub(crate) db: String,
    /// `None` for `cutover.fence = "none"`.
    pub(crate) fence: Option<ReadOnlyFence>,
    pub(crate) side: Side,
    /// Oracle MySQL (`super_read_only`, GTID sets), not MariaDB.
    pub(crate) oracle: bool,
    /// What the side committed, read under `super_read_only` (Oracle MySQL).
    pub(crate) committed: Option<Position>,
}

/// What [`MySqlFenced::sessions_check`] leaves to say: accounts the fence does not stop, as
/// (account, the statement that would make it stop them), and warnings.
pub(crate) struct Unfenced {
    pub accounts: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

impl MySqlFenced {
    /// Connects to `config.source.url`, named `side`.
    pub(crate) async fn connect(config: &Config, side: Side) -> Result<MySqlFenced, Error> {
        let opts = options(config.source.url.expose(), "source.url")?;
        let read_only = match config.cutover.fence {
            Fence::ReadOnly => true,
            Fence::None => false,
            Fence::Pgbouncer => return Err(Error::config("cutover.fence", "pgbouncer fronts PostgreSQL only; for MySQL/MariaDB use read-only or none")),
        };
        let mut conn = connect(&opts, side).await?;
        let oracle = !crate::source::mysql::is_mariadb(&mut conn, side).await?;
        let fence =
            read_only.then(|| ReadOnlyFence { own_user: opts.user().unwrap_or_default().to_owned(), oracle, end_first: config.session_hold().is_some() });
        Ok(MySqlFenced { db: database(&opts), opts, conn, fence, side, oracle, committed: None })
    }

    /// `read-only` or `none`.
    pub(crate) fn kind(&self) -> crate::config::Fence {
        if self.fence.is_some() {
            crate::config::Fence::ReadOnly
        } else {
            crate::config::Fence::None
        }
    }

    /// Whether turnout's account here may set `read_only`, write under it and end other sessions.
    pub(crate) async fn privileged(&mut self) -> Result<bool, Error> {
        let grants: Vec<String> = self.conn.query("SHOW GRANTS").await.map_err(Error::mysql(self.side, "reading turnout's grants"))?;
        Ok(turnout_cutover::fence_privileged(&grants, self.oracle))
    }

    /// Refuses, changing nothing, a fence turnout's account could not apply.
    pub(crate) async fn check_fence(&mut self) -> Result<(), Error> {
        let Some(own_user) = self.fence.as_ref().map(|f| f.own_user.clone()) else { return Ok(()) };
        if !self.privileged().await? {
            return Err(CutoverCheck::FencePrivileges { from: self.side, grant: turnout_cutover::fence_grant(&own_user, self.oracle) }.into());
        }
        Ok(())
    }

    /// Refuses a fenced side that is itself a replica: replication threads write through `read_only`.
    pub(crate) async fn refuse_a_replica(&mut self, to: Side) -> Result<(), Error> {
        if self.fence.is_none() {
            return Ok(());
        }
        let from = self.side;
        let channels = turnout_cutover::running_replication(&mut self.conn, from).await.map_err(Error::from)?;
        if !channels.is_empty() {
            let each: Vec<String> = channels.iter().map(|c| if c.is_empty() { "the default channel".to_owned() } else { format!("channel '{c}'") }).collect();
            return Err(CutoverCheck::FencedIsReplica { from, to, channels: each.join(", "), oracle: self.oracle }.into());
        }
        Ok(())
    }

    /// Refuses sessions of turnout's account that turnout did not open (the fence cannot stop them);
    /// returns the accounts the fence does not stop and, on MariaDB, a warning for each enabled event
    /// that runs as one of them (MariaDB has no seal to stop it). Nothing to check without a fence.
    pub(crate) async fn sessions_check(&mut self, to: Side) -> Result<Unfenced, Error> {
        let from = self.side;
        let mut unfenced = Unfenced { accounts: Vec::new(), warnings: Vec::new() };
        let Some(fence) = &self.fence else { return Ok(unfenced) };
        let own = turnout_connect::mysql::conn::own_sessions(&self.opts);
        let mut foreign = fence.foreign_sessions(&mut self.conn, &own).await.map_err(Error::from)?;
        // A client that just disconnected is listed until the server ends its thread, and a session
        // turnout is opening is listed before turnout knows its id: only sessions still there, and
        // still not turnout's, after a moment are refused.
        let settled = Instant::now() + SESSION_SETTLE;
        while !foreign.is_empty() && Instant::now() < settled {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let own = turnout_connect::mysql::conn::own_sessions(&self.opts);
            let again = fence.foreign_sessions(&mut self.conn, &own).await.map_err(Error::from)?;
            foreign.retain(|s| again.contains(s));
        }
        if !foreign.is_empty() {
            return Err(CutoverCheck::ForeignSessions { from, sessions: foreign.join(", ") }.into());
        }
        unfenced.accounts = fence.unfenced_accounts(&mut self.conn).await.map_err(Error::from)?;
        if !self.oracle {
            // An event runs as its definer: one that writes through read_only may write between the fence
            // and the hand-over (Oracle MySQL's seal and proof cover that time; MariaDB has no seal).
            let events: Vec<(String, String)> = self
                .conn
                .exec("SELECT EVENT_NAME, DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND STATUS = 'ENABLED'", (&self.db,))
                .await
                .map_err(Error::mysql(from, "listing the events"))?;
            let plain = |account: &str| account.replace('\'', "");
            for (event, definer) in events.into_iter().filter(|(_, d)| unfenced.accounts.iter().any(|(account, _)| plain(account) == *d)) {
                unfenced.warnings.push(format!(
                    "event {event} runs as {definer}, which may write while {from} is read-only: a write of its between the fence and the \
                     switch would stay on {from} only; stop {from}'s event scheduler before the cutover (SET GLOBAL event_scheduler = OFF: the cutover \
                     still enables the event on {to})"
                ));
            }
        }
        Ok(unfenced)
    }

    /// Fences writes within `budget`; what it did.
    pub(crate) async fn apply(&mut self, budget: Duration) -> Result<String, Error> {
        let from = self.side;
        let Some(fence) = &self.fence else { return Ok("no fence (cutover.fence = none): the operator stopped the writers".into()) };
        let own = turnout_connect::mysql::conn::own_sessions(&self.opts);
        let report = fence.apply(&mut self.conn, budget, &own).await.map_err(Error::from)?;
        Ok(format!(
            "fenced writes on {from} (read_only = ON{}) in {} ms{}",
            if self.oracle { ", super_read_only after the sentinel" } else { "" },
            report.took.as_millis(),
            if report.ended_sessions.is_empty() {
                String::new()
            } else {
                format!("; ended {} sessions: {}", report.ended_sessions.len(), report.ended_sessions.join(", "))
            }
        ))
    }

    /// Commits the sentinel row carrying `id`; on Oracle MySQL then seals the side and keeps what it
    /// committed ([`MySqlFenced::committed`]).
    pub(crate) async fn write_sentinel(&mut self, id: &str) -> Result<(), Error> {
        let number = u64::from_str_radix(id, 16).map_err(|_| Error::Internal(format!("cutover id {id} is not a 64-bit hex number")))?.cast_signed();
        let table = format!("{}.{}", quote(&self.db), quote(HEARTBEAT_TABLE));
        self.conn
            .query_drop(format!("INSERT INTO {table} (id, at_us) VALUES ({SENTINEL_ROW}, {number}) ON DUPLICATE KEY UPDATE at_us = VALUES(at_us)"))
            .await
            .map_err(Error::mysql(self.side, "writing the sentinel"))?;
        let Some(fence) = &self.fence else { return Ok(()) };
        if let Some(executed) = fence.seal(&mut self.conn).await.map_err(Error::from)? {
            let gtids =
                GtidState::parse_mysql(&executed).map_err(|e| Error::Unexpected { side: self.side, what: format!("gtid_executed '{executed}' ({e})") })?;
            self.committed = Some(Position::Binlog(BinlogPosition { file: String::new(), offset: 0, gtids }));
        }
        Ok(())
    }

    /// Whether the fence is in place now, read from the server; false without a fence.
    pub(crate) async fn is_fenced(&mut self) -> Result<bool, Error> {
        match &self.fence {
            None => Ok(false),
            Some(fence) => fence.is_fenced(&mut self.conn).await.map_err(Error::from),
        }
    }

    /// Lifts the fence (safe after a failed or partial one); what it did.
    pub(crate) async fn lift(&mut self) -> Result<String, Error> {
        let from = self.side;
        let Some(fence) = &self.fence else { return Ok("no fence to undo".to_owned()) };
        let old = self.conn.id();
        if fence.undo(&mut self.conn).await.is_err() {
            // The session may be gone (the server restarted, the network broke): once more on a
            // new one — after ending the old one, whose seal (a statement given up at the
            // pause's deadline) could otherwise still take effect after this undo.
            let mut fresh = connect(&self.opts, from).await?;
            let sealing: Option<u64> = fresh
                .exec_first("SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SET GLOBAL super_read_only%'", (old,))
                .await
                .map_err(Error::mysql(from, "looking for turnout's old session"))?;
            if let Some(id) = sealing {
                match fresh.query_drop(format!("KILL CONNECTION {id}")).await {
                    Ok(()) | Err(mysql_async::Error::Server(_)) => {}
                    Err(e) => return Err(Error::mysql(from, "ending turnout's old session")(e)),
                }
            }
            fence.undo(&mut fresh).await.map_err(Error::from)?;
            self.conn = fresh;
        }
        if fence.is_fenced(&mut self.conn).await.map_err(Error::from)? {
            return Err(CutoverCheck::StillReadOnly { from }.into());
        }
        Ok(format!("undid the fence (read_only = OFF{}): {from} takes writes again", if self.oracle { ", super_read_only = OFF" } else { "" }))
    }

    /// What the side says it is, for the certificate.
    pub(crate) async fn identify(&mut self) -> Identity {
        super::rehearsal::identity(&mut self.conn).await
    }

    /// For a rehearsal: transactions the fence would wait for inside the pause.
    pub(crate) async fn long_transactions(&mut self) -> Vec<String> {
        let own = turnout_connect::mysql::conn::own_sessions(&self.opts);
        super::rehearsal::long_transactions(&mut self.conn, self.side, &own, true).await
    }
}

/// One query of [`FencedSide::mark`](crate::source::compose::cutover::FencedSide::mark): an object's name and a digest of its definition, per row
/// (`SHA2`: Oracle MySQL 9 has no `MD5`). `?` is the database; `{in}` limits a table's parts to the
/// selected tables by the column `per_table` names.
struct MarkQuery {
    sql: &'static str,
    per_table: Option<&'static str>,
    /// `Some(true)`: Oracle MySQL's form only; `Some(false)`: MariaDB's.
    oracle: Option<bool>,
}

const MARKS: &[MarkQuery] = &[
    // Every table of the database: one created after the mark (which the stream would make on a
    // green of another engine) is then a change, like any other.
    MarkQuery {
        sql: "SELECT CONCAT('BASE TABLE ', TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
        per_table: None,
        oracle: None,
    },
    MarkQuery {
        sql: "SELECT CONCAT('TABLE ', TABLE_SCHEMA, '.', TABLE_NAME), SHA2(GROUP_CONCAT(CONCAT_WS(0x1f, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
               IFNULL(COLUMN_DEFAULT, 0x00), EXTRA, IFNULL(GENERATION_EXPRESSION, ''), IFNULL(COLLATION_NAME, '')) ORDER BY ORDINAL_POSITION SEPARATOR 0x1e), 256) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?{in} GROUP BY TABLE_SCHEMA, TABLE_NAME",
        per_table: Some("TABLE_NAME"),
        oracle: None,
    },
    MarkQuery {
        sql: "SELECT CONCAT('INDEX ', TABLE_SCHEMA, '.', TABLE_NAME, '.', INDEX_NAME), SHA2(GROUP_CONCAT(CONCAT_WS(0x1f, NON_UNIQUE, IFNULL(COLUMN_NAME, ''), \
               IFNULL(SUB_PART, ''), INDEX_TYPE) ORDER BY SEQ_IN_INDEX SEPARATOR 0x1e), 256) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?{in} \
             GROUP BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME",
        per_table: Some("TABLE_NAME"),
        oracle: Some(false),
    },
    MarkQuery {
        sql: "SELECT CONCAT('INDEX ', TABLE_SCHEMA, '.', TABLE_NAME, '.', INDEX_NAME), SHA2(GROUP_CONCAT(CONCAT_WS(0x1f, NON_UNIQUE, IFNULL(COLUMN_NAME, ''), \
               IFNULL(SUB_PART, ''), INDEX_TYPE, IFNULL(EXPRESSION, ''), IS_VISIBLE) ORDER BY SEQ_IN_INDEX SEPARATOR 0x1e), 256) \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?{in} GROUP BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME",
        per_table: Some("TABLE_NAME"),
        oracle: Some(true),
    },
    MarkQuery {
        sql: "SELECT CONCAT('FOREIGN KEY ', CONSTRAINT_SCHEMA, '.', TABLE_NAME, '.', CONSTRAINT_NAME), SHA2(CONCAT_WS(0x1f, REFERENCED_TABLE_NAME, \
               UPDATE_RULE, DELETE_RULE), 256) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?{in}",
        per_table: Some("TABLE_NAME"),
        oracle: None,
    },
    MarkQuery {
        sql: "SELECT CONCAT('FOREIGN KEY COLUMNS ', TABLE_SCHEMA, '.', TABLE_NAME, '.', CONSTRAINT_NAME), SHA2(GROUP_CONCAT(CONCAT_WS(0x1f, COLUMN_NAME, \
               REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME) ORDER BY ORDINAL_POSITION SEPARATOR 0x1e), 256) \
             FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL{in} \
             GROUP BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME",
        per_table: Some("TABLE_NAME"),
        oracle: None,
    },
    // MariaDB names a CHECK per table (a column's takes the column's name).
    MarkQuery {
        sql: "SELECT CONCAT('CHECK ', CONSTRAINT_SCHEMA, '.', TABLE_NAME, '.', CONSTRAINT_NAME), SHA2(CHECK_CLAUSE, 256) \
             FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?{in}",
        per_table: Some("TABLE_NAME"),
        oracle: Some(false),
    },
    MarkQuery {
        sql: "SELECT CONCAT('CHECK ', t.TABLE_SCHEMA, '.', t.TABLE_NAME, '.', t.CONSTRAINT_NAME), SHA2(CONCAT_WS(0x1f, c.CHECK_CLAUSE, t.ENFORCED), 256) \
             FROM information_schema.TABLE_CONSTRAINTS t JOIN information_schema.CHECK_CONSTRAINTS c ON c.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA \
               AND c.CONSTRAINT_NAME = t.CONSTRAINT_NAME WHERE t.CONSTRAINT_SCHEMA = ? AND t.CONSTRAINT_TYPE = 'CHECK'{in}",
        per_table: Some("t.TABLE_NAME"),
        oracle: Some(true),
    },
    MarkQuery {
        sql: "SELECT CONCAT('VIEW ', TABLE_SCHEMA, '.', TABLE_NAME), SHA2(CONCAT_WS(0x1f, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE, DEFINER), 256) \
             FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?",
        per_table: None,
        oracle: None,
    },
    MarkQuery {
        sql: "SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_SCHEMA, '.', ROUTINE_NAME), SHA2(CONCAT_WS(0x1f, IFNULL(ROUTINE_DEFINITION, ''), CREATED, \
               LAST_ALTERED, SECURITY_TYPE, DEFINER, IS_DETERMINISTIC, SQL_DATA_ACCESS), 256) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
        per_table: None,
        oracle: None,
    },
    MarkQuery {
        sql: "SELECT CONCAT('TRIGGER ', TRIGGER_SCHEMA, '.', TRIGGER_NAME), SHA2(CONCAT_WS(0x1f, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, \
               ACTION_STATEMENT, CREATED), 256) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
        per_table: None,
        oracle: None,
    },
    MarkQuery {
        sql: "SELECT CONCAT('EVENT ', EVENT_SCHEMA, '.', EVENT_NAME), SHA2(CONCAT_WS(0x1f, IFNULL(EVENT_DEFINITION, ''), CREATED, LAST_ALTERED, STATUS), 256) \
             FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?",
        per_table: None,
        oracle: None,
    },
    MarkQuery {
        sql: "SELECT CONCAT('SEQUENCE ', TABLE_SCHEMA, '.', TABLE_NAME), SHA2(CONCAT_WS(0x1f, CREATE_TIME, TABLE_COMMENT), 256) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'SEQUENCE'",
        per_table: None,
        oracle: None,
    },
];

/// The object classes of a MySQL/MariaDB database other than tables' columns, as
/// `cutover.keep_definitions` names them, each from its catalog. `{in}` as in [`MARKS`].
const OBJECTS: &[(&str, Option<&str>)] = &[
    ("SELECT CONCAT('VIEW ', TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?", None),
    ("SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_SCHEMA, '.', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?", None),
    ("SELECT CONCAT('TRIGGER ', TRIGGER_SCHEMA, '.', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", None),
    ("SELECT CONCAT('EVENT ', EVENT_SCHEMA, '.', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?", None),
    ("SELECT CONCAT('SEQUENCE ', TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'SEQUENCE'", None),
    // A CHECK of a replicated table: green keeps to blue's types, not to blue's other rules.
    (
        "SELECT CONCAT('CHECK ', TABLE_SCHEMA, '.', TABLE_NAME, '.', CONSTRAINT_NAME) FROM information_schema.TABLE_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = ? AND CONSTRAINT_TYPE = 'CHECK'{in}",
        Some("TABLE_NAME"),
    ),
];

/// `sql` with `?` as `db` and `{in}` limiting `column` to `tables` (of `db`), or removed.
fn scoped(sql: &str, column: Option<&str>, db: &str, tables: &[turnout_decoders::TableName]) -> String {
    let clause = match column {
        Some(column) => {
            let names: Vec<String> = tables.iter().filter(|t| t.schema == db).map(|t| super::programs::literal(&t.name)).collect();
            if names.is_empty() {
                " AND FALSE".to_owned()
            } else {
                format!(" AND {column} IN ({})", names.join(", "))
            }
        }
        None => String::new(),
    };
    // The database first: a table's name may hold a `?`.
    sql.replace('?', &super::programs::literal(db)).replace("{in}", &clause)
}

/// Whether turnout's account sees every object of `db` in its catalog: MySQL and MariaDB list a
/// trigger only to an account with `TRIGGER`, an event with `EVENT`, a view's text with `SHOW VIEW`,
/// a routine with `SHOW_ROUTINE` (MySQL) or `SELECT` on `mysql.proc` (MariaDB) — or global `SELECT`.
/// The grants it lacks, named.
fn unseen(grants: &[String], db: &str, oracle: bool) -> Vec<&'static str> {
    let upper: Vec<String> = grants.iter().map(|g| g.to_ascii_uppercase().replace('`', "")).collect();
    let on_db = format!(" ON {}.* ", db.to_ascii_uppercase());
    let granted = |privilege: &str, objects: &[&str]| {
        upper.iter().any(|g| {
            let Some((privileges, rest)) = g.strip_prefix("GRANT ").and_then(|g| g.split_once(" ON ")) else { return false };
            let object = format!(" ON {} ", rest.split(" TO ").next().unwrap_or_default().trim());
            let listed = privileges.split(',').any(|p| p.trim() == privilege || p.trim() == "ALL PRIVILEGES" || p.trim() == "ALL");
            listed && objects.iter().any(|o| object == *o)
        })
    };
    let mut missing = Vec::new();
    let everywhere = [" ON *.* ", on_db.as_str()];
    for (privilege, name) in [("TRIGGER", "TRIGGER"), ("EVENT", "EVENT"), ("SHOW VIEW", "SHOW VIEW")] {
        if !granted(privilege, &everywhere) {
            missing.push(name);
        }
    }
    let routines = if oracle { granted("SHOW_ROUTINE", &[" ON *.* "]) } else { granted("SELECT", &[" ON MYSQL.* ", " ON MYSQL.PROC "]) };
    if !routines && !granted("SELECT", &[" ON *.* "]) {
        missing.push(if oracle { "SHOW_ROUTINE" } else { "SELECT ON mysql.proc" });
    }
    missing
}

impl crate::source::compose::cutover::SideFence for MySqlFenced {
    async fn check_fence(&mut self) -> Result<(), Error> {
        MySqlFenced::check_fence(self).await
    }

    async fn fence(&mut self, budget: Duration) -> Result<String, Error> {
        self.apply(budget).await
    }

    async fn write_sentinel(&mut self, id: &str) -> Result<(), Error> {
        MySqlFenced::write_sentinel(self, id).await
    }

    fn committed(&self) -> Option<Position> {
        self.committed.clone()
    }

    async fn is_fenced(&mut self) -> Result<bool, Error> {
        MySqlFenced::is_fenced(self).await
    }

    async fn lift(&mut self) -> Result<String, Error> {
        MySqlFenced::lift(self).await
    }
}

impl crate::source::compose::cutover::FencedSide for MySqlFenced {
    async fn connect(config: &Config) -> Result<MySqlFenced, Error> {
        MySqlFenced::connect(config, Side::Blue).await
    }

    fn kind(&self) -> crate::config::Fence {
        MySqlFenced::kind(self)
    }

    async fn visible(&mut self) -> Result<(), Error> {
        let grants: Vec<String> = self.conn.query("SHOW GRANTS").await.map_err(Error::mysql(self.side, "reading turnout's grants"))?;
        let missing = unseen(&grants, &self.db, self.oracle);
        if !missing.is_empty() {
            let user = self.opts.user().unwrap_or_default().to_owned();
            return Err(crate::error::DefinitionRefusal::Unseen { from: self.side, missing: missing.join(", "), db: self.db.clone(), user }.into());
        }
        Ok(())
    }

    async fn preflight(&mut self) -> Result<Vec<String>, Error> {
        self.refuse_a_replica(Side::Green).await?;
        let unfenced = self.sessions_check(Side::Green).await?;
        let mut warnings = unfenced.warnings;
        warnings.extend(
            unfenced.accounts.into_iter().map(|(account, revoke)| {
                format!("account {account} can still write while blue is fenced (READ ONLY ADMIN, CONNECTION_ADMIN or SUPER): {revoke}")
            }),
        );
        Ok(warnings)
    }

    async fn identify(&mut self) -> Identity {
        MySqlFenced::identify(self).await
    }

    async fn findings(&mut self) -> Vec<String> {
        self.long_transactions().await
    }

    async fn counters(&mut self) -> Result<Vec<crate::source::compose::cutover::Counter>, Error> {
        let db = self.db.clone();
        let read = turnout_cutover::auto_increments(&mut self.conn, self.side, &db).await.map_err(Error::from)?;
        Ok(read.into_iter().map(|(name, next)| (turnout_decoders::TableName { schema: db.clone(), name }, next)).collect())
    }

    async fn restore_parked(&mut self) -> Result<Vec<String>, Error> {
        turnout_cutover::unpark_triggers(&mut self.conn, &self.db, self.side).await.map_err(Error::from)
    }

    async fn parked(&mut self) -> Result<bool, Error> {
        Ok(!turnout_cutover::parked_triggers(&mut self.conn, &self.db, self.side).await.map_err(Error::from)?.is_empty())
    }

    async fn log_end(&mut self) -> Result<Position, Error> {
        super::snapshot::binlog_end(&mut self.conn, self.side).await
    }

    async fn counters_ahead(&mut self, green: &[crate::source::compose::cutover::Counter], margin: i128) -> Result<Vec<turnout_cutover::CounterSync>, Error> {
        let mut done = Vec::new();
        for (table, blue_next) in self.counters().await? {
            let Some((_, green_next)) = green.iter().find(|(t, _)| *t == table) else { continue };
            let wanted = green_next + margin;
            let changed = blue_next < wanted;
            let name = format!("{}.{}", super::quote(&table.schema), super::quote(&table.name));
            if changed {
                self.conn
                    .query_drop(format!("ALTER TABLE {name} AUTO_INCREMENT = {wanted}"))
                    .await
                    .map_err(|e| super::sql_error(self.side, &format!("moving the AUTO_INCREMENT counter of {name} to {wanted}"), e))?;
            }
            done.push(turnout_cutover::CounterSync {
                kind: turnout_cutover::CounterKind::AutoIncrement,
                name,
                blue_next: *green_next,
                green_next: blue_next,
                set_to: if changed { wanted } else { blue_next },
                changed,
            });
        }
        Ok(done)
    }

    async fn objects(&mut self, tables: &[turnout_decoders::TableName]) -> Result<Vec<String>, Error> {
        let statements: Vec<String> = OBJECTS.iter().map(|(sql, column)| scoped(sql, *column, &self.db, tables)).collect();
        let mut out: Vec<String> = self.batch(&statements, "listing the database's objects").await?.into_iter().map(|(name, _)| name).collect();
        out.sort();
        Ok(out)
    }

    async fn mark(&mut self, tables: &[turnout_decoders::TableName]) -> Result<crate::source::compose::cutover::Mark, Error> {
        // A table's columns are digested whole: GROUP_CONCAT must not cut them short.
        let mut statements = vec!["SET SESSION group_concat_max_len = 16777216".to_owned()];
        statements.extend(MARKS.iter().filter(|q| q.oracle.is_none_or(|o| o == self.oracle)).map(|q| scoped(q.sql, q.per_table, &self.db, tables)));
        let rows = self.batch(&statements, "reading the database's definitions").await?;
        Ok(rows.into_iter().map(|(name, digest)| (name, digest.unwrap_or_default())).collect())
    }
}

impl MySqlFenced {
    /// Runs `statements` as one multi-statement round trip — the mark is read
    /// inside the write pause — and returns every row of every result: a name and, where the
    /// statement selects one, a digest.
    async fn batch(&mut self, statements: &[String], what: &'static str) -> Result<Vec<(String, Option<String>)>, Error> {
        let sql = statements.join(";\n");
        let mut result = self.conn.query_iter(sql).await.map_err(Error::mysql(self.side, what))?;
        let mut out = Vec::new();
        while !result.is_empty() {
            let rows: Vec<mysql_async::Row> = result.collect().await.map_err(Error::mysql(self.side, what))?;
            for row in rows {
                let mut row = row.unwrap().into_iter();
                let text = |v: Option<mysql_async::Value>| match v {
                    Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                    _ => None,
                };
                if let Some(name) = text(row.next()) {
                    out.push((name, text(row.next())));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::unseen;

    fn grants(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn an_account_that_cannot_see_every_object_is_told_which_grants_it_lacks() {
        assert!(unseen(&grants(&["GRANT ALL PRIVILEGES ON *.* TO `turnout`@`%` WITH GRANT OPTION"]), "app", false).is_empty());
        let narrow = grants(&["GRANT RELOAD, REPLICATION SLAVE ON *.* TO `t`@`%`", "GRANT SELECT, INSERT, UPDATE, CREATE ON `app`.* TO `t`@`%`"]);
        assert_eq!(unseen(&narrow, "app", false), vec!["TRIGGER", "EVENT", "SHOW VIEW", "SELECT ON mysql.proc"]);
        assert_eq!(unseen(&narrow, "app", true), vec!["TRIGGER", "EVENT", "SHOW VIEW", "SHOW_ROUTINE"]);
        let enough = grants(&[
            "GRANT SHOW_ROUTINE ON *.* TO `t`@`%`",
            "GRANT SELECT, TRIGGER, EVENT, SHOW VIEW ON `app`.* TO `t`@`%`",
            "GRANT SELECT ON `mysql`.`proc` TO `t`@`%`",
        ]);
        assert!(unseen(&enough, "app", true).is_empty());
        assert!(unseen(&enough, "app", false).is_empty());
        // Another database's grants do not count.
        assert_eq!(unseen(&grants(&["GRANT TRIGGER, EVENT, SHOW VIEW ON `other`.* TO `t`@`%`", "GRANT SELECT ON *.* TO `t`@`%`"]), "app", false).len(), 3);
    }
}
