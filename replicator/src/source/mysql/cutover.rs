//! The MySQL/MariaDB side of a cutover: the `read_only` fence (or none), the sentinel as row 2 of the
//! heartbeat table written by turnout's own session (which `read_only` exempts: it holds `READ ONLY
//! ADMIN` on MariaDB, `CONNECTION_ADMIN` on MySQL), AUTO_INCREMENT counters and MariaDB sequences
//! moved ahead of blue's on green, and green made writable (`read_only = OFF`) before traffic
//! arrives. On Oracle MySQL the fence is sealed with `super_read_only` right after the sentinel, and
//! the proof also waits for every GTID blue executed (see [`turnout_cutover::ReadOnlyFence::seal`]).
//!
//! Reverse replication (green → blue after the switch). MariaDB: armed before the fence
//! ([`Procedure::arm_reverse`]): green's binlog end and the GTID state there are the hand-off
//! position, recorded as the reverse stream's progress on blue; transactions in the forward apply's
//! GTID domain are dropped by the reverse stream, so nothing turnout wrote goes back. Oracle MySQL
//! has no GTID domains, so the hand-off position is read once green is proven complete, inside the
//! pause: blue is sealed, so the forward apply has nothing left to write, and the application is not
//! on green yet — everything after that point in green's binlog is the application's. Blue being
//! under `super_read_only` then, the position is journaled, and the reverse stream lowers blue to
//! `read_only`, drops the triggers copied to green and records it there when it starts
//! ([`crate::source::mysql::MySqlAdmin::reverse`]). The same
//! procedure runs a rollback with the roles swapped ([`MySqlCutover::connect_back`]): green is fenced
//! (`read_only`, sealed on MySQL), its sentinel row proves blue has everything, and blue's
//! `read_only` from the cutover is lifted just before traffic returns.
//!
//! Clients see the pause as errors, not waits: a write under `read_only` fails with error 1290
//! (`ER_OPTION_PREVENTS_STATEMENT`), and sessions open at the fence are ended (the client sees 2013
//! "Lost connection" or 1927 "Connection was killed"). A transaction that failed so did not commit
//! and can be retried; a client that retries on these errors with a new connection reaches green once
//! the switch is done.

mod checks;

use super::fenced::MySqlFenced;
use crate::config::{reversed, Config};
use crate::error::{CutoverCheck, Error, Side};
use crate::source::contract::procedure::{Identity, Procedure};
use crate::source::mysql::{connect, database, options};
use crate::source::Names;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use turnout_cutover::{sync_counters, CounterSync};
use turnout_decoders::{GtidState, Position};

/// How long the comparison of schema objects after the lag wait waits for DDL made during it to
/// reach the other side through the stream before it refuses.
const SCHEMA_SETTLE: Duration = Duration::from_secs(5);

/// Values green's AUTO_INCREMENT counters and sequences are moved ahead of blue's before the fence.
const COUNTER_MARGIN: u64 = 1_000;

/// How long moving a counter on green may wait for a table another session holds.
const COUNTER_LOCK_WAIT: Duration = Duration::from_secs(10);

/// How long arming waits for a transaction of the forward apply in green's binlog (a heartbeat is
/// applied every heartbeat interval).
const MARKED_WAIT: Duration = Duration::from_secs(10);

/// The reverse stream a cutover arms.
pub(crate) struct Reverse {
    /// Its names: `origin` names its progress record on blue.
    pub names: Names,
    /// The forward stream's name, whose GTID domain the reverse stream drops.
    pub forward_origin: String,
}

impl Reverse {
    /// The reverse stream of the forward stream named `forward`.
    pub(crate) fn after(forward: &Names) -> Reverse {
        Reverse { names: Names::reverse_of(forward), forward_origin: forward.origin.clone() }
    }
}

/// A cutover from a MySQL/MariaDB blue (or, from [`MySqlCutover::connect_back`], a rollback from
/// green). In this type "blue" is the side being fenced and "green" the side traffic moves to.
pub(crate) struct MySqlCutover {
    /// The fenced side: its session, the fence and the sentinel.
    blue: MySqlFenced,
    /// The fenced side's URL, for the reverse stream's progress record there.
    blue_url: String,
    green_opts: mysql_async::Opts,
    /// Opened when first needed: undoing the fence must not depend on green.
    green: Option<mysql_async::Conn>,
    blue_db: String,
    green_db: String,
    /// The names of the fenced side and of the side traffic moves to (`blue`, `green` for a cutover).
    sides: (Side, Side),
    /// A cutover arming the reverse stream.
    reverse: Option<Reverse>,
    /// Which tables replicate (their schema objects are compared before the fence).
    filter: crate::tables::TableFilter,
    /// The fenced side is Oracle MySQL (`super_read_only`, GTID sets), not MariaDB.
    oracle: bool,
    /// The side traffic moves to is Oracle MySQL (no GTID domains: the reverse stream's hand-off is
    /// read inside the pause), learnt by the preflight; until then taken to be the fenced side's.
    green_oracle: Option<bool>,
    /// The mark of the session on green's writes (the cutover domain of the stream into it,
    /// [`turnout_sinks::mysql::cutover_domain`]: a GTID domain on MariaDB, a GTID tag on Oracle MySQL),
    /// which the watch of that side drops.
    green_mark: Option<u32>,
    /// A watch reads the side traffic moves to (`[watch] green` for a cutover, `[watch] blue` for a
    /// rollback): its Oracle MySQL session tags its writes.
    green_watched: bool,
    /// The fenced side's inventory as the pre-checks took it.
    inventory: Option<crate::source::contract::inventory::InventorySummary>,
}

impl MySqlCutover {
    /// A cutover of the stream `forward`; with `reverse`, it arms the reverse stream. Its session on
    /// green writes (the counters it moves) in the cutover's GTID domain (MariaDB) or with its GTID
    /// tag (Oracle MySQL), so the watch of green ([`crate::source::mysql::watch`]) knows them as
    /// turnout's.
    pub(crate) async fn connect(config: &Config, forward: &Names, reverse: Option<Reverse>) -> Result<MySqlCutover, Error> {
        let mut cutover = Self::connect_sides(config, (Side::Blue, Side::Green)).await?;
        cutover.reverse = reverse;
        cutover.green_mark = Some(turnout_sinks::mysql::cutover_domain(&forward.origin));
        cutover.green_watched = config.watch.green;
        Ok(cutover)
    }

    /// A rollback: fences green with `read_only`, writes the sentinel there, moves blue's counters
    /// ahead of green's and lifts blue's `read_only` just before traffic returns.
    ///
    /// With `again`, it arms blue → green replication as the stream's next generation, as a cutover
    /// arms the reverse stream with the roles swapped. Its session on blue writes (the counters it
    /// moves) with the reverse stream's cutover mark, which the watch of blue drops.
    pub(crate) async fn connect_back(config: &Config, forward: &Names, again: Option<Reverse>) -> Result<MySqlCutover, Error> {
        let mut rollback = Self::connect_sides(&reversed(config), (Side::Green, Side::Blue)).await?;
        rollback.reverse = again;
        rollback.green_mark = Some(turnout_sinks::mysql::cutover_domain(&Names::reverse_of(forward).origin));
        rollback.green_watched = config.watch.blue;
        Ok(rollback)
    }

    async fn connect_sides(config: &Config, sides: (Side, Side)) -> Result<MySqlCutover, Error> {
        let green_opts = options(config.target.url.expose(), "target.url")?;
        let blue = MySqlFenced::connect(config, sides.0).await?;
        Ok(MySqlCutover {
            blue_db: blue.db.clone(),
            green_db: database(&green_opts),
            oracle: blue.oracle,
            blue,
            blue_url: config.source.url.expose().to_owned(),
            green_opts,
            green: None,
            sides,
            reverse: None,
            filter: config.table_filter()?,
            green_oracle: None,
            green_mark: None,
            green_watched: false,
            inventory: None,
        })
    }

    /// Blue's and green's sessions, green's opened on first use.
    async fn sessions(&mut self) -> Result<(&mut mysql_async::Conn, &mut mysql_async::Conn), Error> {
        if self.green.is_none() {
            let mut green = connect(&self.green_opts, self.sides.1).await?;
            // Moving a counter takes a metadata lock; a table held by another session must not hang
            // the cutover (the fence's own waits are bounded separately).
            green
                .query_drop(format!("SET SESSION lock_wait_timeout = {}", COUNTER_LOCK_WAIT.as_secs()))
                .await
                .map_err(Error::mysql(self.sides.1, "bounding lock waits"))?;
            if let Some(mark) = self.green_mark {
                let mariadb = crate::source::mysql::is_mariadb(&mut green, self.sides.1).await?;
                // Oracle MySQL's tags only where a watch reads them.
                let marked = if mariadb || self.green_watched { turnout_sinks::mysql::mark_session(&mut green, mariadb, mark).await } else { Ok(()) };
                if let Err(e) = marked {
                    let (on, grant) = (self.sides.1, turnout_sinks::mysql::mark_grant(mariadb));
                    tracing::warn!("the cutover's writes on {on} are not marked as turnout's: {e}; {grant} on {on} to mark them");
                }
            }
            self.green = Some(green);
        }
        let green = self.green.as_mut().ok_or_else(|| Error::Internal("the cutover's session on green is missing".into()))?;
        Ok((&mut self.blue.conn, green))
    }

    async fn sync(&mut self, margin: u64) -> Result<Vec<CounterSync>, Error> {
        let (blue_db, green_db) = (self.blue_db.clone(), self.green_db.clone());
        let (blue, green) = self.sessions().await?;
        sync_counters(blue, green, &blue_db, &green_db, margin).await.map_err(Error::from)
    }
}

impl MySqlCutover {
    /// On Oracle MySQL: reads the other side's binlog end once it is proven complete — the hand-off
    /// position (see the module's documentation). The fenced side is sealed, so it is not recorded
    /// there now: the armed stream records it when it starts.
    async fn arm_reverse_in_pause(&mut self) -> Result<Option<(String, Position)>, Error> {
        let started = Instant::now();
        let ((from, to), what) = (self.sides, self.armed());
        let (_, green) = self.sessions().await?;
        let position = crate::source::mysql::snapshot::binlog_end(green, to).await?;
        // A MariaDB side has no seal: turnout's own heartbeat still writes there, and those rows may
        // follow — into the heartbeat table only.
        let after = if self.oracle {
            "nothing turnout applies is after it"
        } else {
            "after it only turnout's heartbeats, unless an account the warnings named wrote through read_only"
        };
        let line = format!(
            "prepared {what} in {} ms: {to}'s binlog from {position}, read once {to} held everything {from} committed \
             ({after}); the stream records it on {from} when it starts",
            started.elapsed().as_millis()
        );
        Ok(Some((line, position)))
    }

    /// What arming makes, for messages: a cutover's reverse stream, or a rollback's next generation.
    fn armed(&self) -> &'static str {
        if self.sides.1 == Side::Green {
            "reverse replication"
        } else {
            "replication blue → green again"
        }
    }
}

/// The warning for an account the fence does not stop.
fn unfenced_warning(account: &str, revoke: &str, from: Side, oracle: bool) -> String {
    if oracle {
        format!(
            "account {account} can write through read_only (CONNECTION_ADMIN or SUPER): super_read_only stops it inside the pause, \
             but not while {from} is read_only for the reverse stream after the switch: {revoke}"
        )
    } else {
        format!("account {account} can still write while {from} is read-only (READ ONLY ADMIN or SUPER): {revoke}")
    }
}

fn counters_line(done: &[CounterSync], what: &str, on: Side) -> String {
    format!("{what}: {} of {} AUTO_INCREMENT counters and sequences moved on {on}", done.iter().filter(|c| c.changed).count(), done.len())
}

impl Procedure for MySqlCutover {
    fn inventory(&self) -> Option<crate::source::contract::inventory::InventorySummary> {
        self.inventory.clone()
    }

    fn fence_kind(&self) -> crate::config::Fence {
        self.blue.kind()
    }

    async fn preflight(&mut self) -> Result<Vec<String>, Error> {
        self.preflight_checks().await
    }

    /// The schema objects the pre-checks compared before the lag wait, compared again after it: DDL
    /// reaches the other side through the binlog, so a difference made during the wait is given
    /// [`SCHEMA_SETTLE`] to arrive before it refuses. Changes nothing either way (`apply` is not
    /// needed: the stream carries the definitions).
    async fn settle_definitions(&mut self, _apply: bool) -> Result<Option<String>, Error> {
        let started = Instant::now();
        loop {
            match self.check_schemas_match().await {
                Ok(()) => break,
                Err(e) if started.elapsed() < SCHEMA_SETTLE => {
                    tracing::debug!("schema objects still differ after the lag wait, waiting for the stream: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let (from, to) = self.sides;
        Ok(Some(format!("{from}'s and {to}'s schema objects compared again after the lag wait: equal ({} ms)", started.elapsed().as_millis())))
    }

    fn arms_reverse_after_proof(&self) -> bool {
        self.green_oracle.unwrap_or(self.oracle)
    }

    fn fenced_position(&self) -> Option<Position> {
        self.blue.committed.clone()
    }

    async fn check_fence(&mut self) -> Result<(), Error> {
        self.blue.check_fence().await
    }

    async fn counters_ahead(&mut self) -> Result<String, Error> {
        let done = self.sync(COUNTER_MARGIN).await.map_err(Error::during("syncing AUTO_INCREMENT counters failed"))?;
        Ok(counters_line(&done, &format!("{COUNTER_MARGIN} values ahead of {}", self.sides.0), self.sides.1))
    }

    async fn arm_reverse(&mut self) -> Result<Option<(String, Position)>, Error> {
        if self.reverse.is_none() {
            return Ok(None);
        }
        if self.arms_reverse_after_proof() {
            return self.arm_reverse_in_pause().await;
        }
        let Some(reverse) = &self.reverse else { return Ok(None) };
        let (origin, domain) = (reverse.names.origin.clone(), turnout_sinks::mysql::own_domain(&reverse.forward_origin));
        let ((from, to), what) = (self.sides, self.armed());
        let off = if to == crate::error::Side::Green { "cutover.reverse" } else { "cutover.iterate" };
        let started = Instant::now();
        let (_, green) = self.sessions().await?;
        // The apply into this side marks its transactions with its own GTID domain; unless the
        // binlog shows that domain, its writes could not be told from the application's.
        let position = loop {
            let position = crate::source::mysql::snapshot::binlog_end(green, to).await?;
            let marked = matches!(&position, Position::Binlog(b) if matches!(&b.gtids, GtidState::MariaDb(d) if d.contains_key(&domain)));
            if marked {
                break position;
            }
            if started.elapsed() >= MARKED_WAIT {
                return Err(CutoverCheck::UnmarkedApply { to, domain, off }.into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // The armed stream's progress on the fenced side starts at the hand-off position, as if
        // everything before it had been applied — it is already there.
        turnout_sinks::mysql::record_position(&self.blue_url, &origin, &position)
            .await
            .map_err(Error::during(format!("recording the armed stream's start on {from}")))?;
        let line = format!(
            "prepared {what} in {} ms: {to}'s binlog from {position}, skipping turnout's own writes (GTID domain {domain}); \
             progress record {origin} on {from}",
            started.elapsed().as_millis()
        );
        Ok(Some((line, position)))
    }

    async fn fence(&mut self, budget: Duration) -> Result<String, Error> {
        self.blue.apply(budget).await
    }

    async fn write_sentinel(&mut self, id: &str) -> Result<(), Error> {
        self.blue.write_sentinel(id).await
    }

    async fn top_up(&mut self) -> Result<(String, usize), Error> {
        let done = self.sync(0).await.map_err(Error::during("checking AUTO_INCREMENT counters failed"))?;
        let moved = done.iter().filter(|c| c.changed).count();
        Ok((counters_line(&done, &format!("checked against {}'s final values", self.sides.0), self.sides.1), moved))
    }

    async fn identify(&mut self) -> (Identity, Identity) {
        let fenced = self.blue.identify().await;
        let other = match self.sessions().await {
            Ok((_, green)) => super::rehearsal::identity(green).await,
            Err(e) => Identity { version: format!("unreadable: {e}"), identity: String::new() },
        };
        (fenced, other)
    }

    async fn findings(&mut self) -> Vec<String> {
        let to = self.sides.1;
        let own_other = turnout_connect::mysql::conn::own_sessions(&self.green_opts);
        let mut found = self.blue.long_transactions().await;
        match self.sessions().await {
            Ok((_, green)) => {
                found.extend(super::rehearsal::long_transactions(green, to, &own_other, false).await);
            }
            Err(e) => found.push(format!("{to}: could not connect to look for sessions blocking the apply: {e}")),
        }
        found
    }

    async fn open_green(&mut self) -> Result<Option<String>, Error> {
        let (from, to) = self.sides;
        let (from_db, to_db) = (self.blue_db.clone(), self.green_db.clone());
        let sides = (from, to);
        let mut lines = Vec::new();
        // A sealed side refuses DROP TRIGGER: there the triggers are copied now and dropped when the
        // reverse stream first applies to it (crate::rollback), never by lifting the seal here —
        // a write then would reach green after the hand-off position was read.
        let drop_from = !(self.oracle && self.blue.fence.is_some());
        let (blue, green) = self.sessions().await?;
        // The triggers move inside the pause: before, they would have fired again on rows the
        // stream applies; after, the reverse stream applies to the fenced side.
        let handover = turnout_cutover::hand_over_triggers(blue, green, &from_db, &to_db, sides, drop_from).await.map_err(Error::from)?;
        if !handover.moved.is_empty() {
            let (n, moved) = (handover.moved.len(), handover.moved.join(", "));
            lines.push(if drop_from {
                format!("moved {n} triggers from {from} to {to}: {moved}")
            } else {
                format!("copied {n} triggers from {from} to {to}: {moved}; {from} is sealed, so they are dropped there when something first applies to it")
            });
        }
        // Events likewise: enabled where the writes go, off where they leave.
        let events = crate::source::mysql::programs::hand_over_events(blue, green, &from_db, &to_db, sides, drop_from).await?;
        if !events.is_empty() {
            lines.push(format!(
                "enabled {} events on {to}{}: {}",
                events.len(),
                if drop_from { format!(", disabled on {from}") } else { String::new() },
                events.join(", ")
            ));
        }
        let read_only: Option<i64> = green.query_first("SELECT @@GLOBAL.read_only").await.map_err(Error::mysql(to, "reading read_only"))?;
        if read_only.unwrap_or(0) != 0 {
            green
                .query_drop("SET GLOBAL read_only = OFF")
                .await
                .map_err(Error::mysql(to, format!("{to} is read-only and setting read_only = OFF failed (grant turnout's account on {to} READ ONLY ADMIN)")))?;
            lines.push(format!("{to} was read-only: set read_only = OFF before traffic arrives"));
        }
        Ok((!lines.is_empty()).then(|| lines.join("; ")))
    }

    async fn fenced(&mut self) -> Result<bool, Error> {
        self.blue.is_fenced().await
    }

    async fn lift_fence(&mut self) -> Result<String, Error> {
        self.blue.lift().await
    }

    async fn disarm_reverse(&mut self) -> Result<Option<String>, Error> {
        let Some(reverse) = self.reverse.as_ref() else { return Ok(None) };
        turnout_sinks::mysql::drop_progress(&self.blue_url, &reverse.names.origin)
            .await
            .map_err(Error::during(format!("dropping the armed stream's progress record on {}", self.sides.0)))?;
        Ok(Some(format!("dropped the armed stream's progress record {} on {}", reverse.names.origin, self.sides.0)))
    }
}
