//! The PostgreSQL side of a cutover: the pgbouncer or read-only fence, the sentinel as a transactional
//! logical message (PostgreSQL 14+), sequences moved ahead of blue's on green, and the reverse stream
//! armed with writes fenced. The same procedure runs a rollback with the roles swapped
//! ([`PgCutover::connect_back`]): green is fenced, blue receives traffic again.

use crate::config::{Config, Fence, Switch};
use crate::error::{CutoverCheck, Error, Side};
use crate::source::contract::procedure::{Identity, Procedure};
use crate::source::Names;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use turnout_cutover::{PgBouncerAdmin, SequencePlan, TrafficSwitch, WriteFence};
use turnout_decoders::{Lsn, Position};

/// Values green's sequences are moved ahead of blue's before the fence, so that normally nothing is
/// written on green while writes are paused.
const SEQUENCE_MARGIN: u32 = 1_000;

/// How long creating the slot a switch arms may wait for transactions on the side traffic moves to
/// (before the fence): green for a cutover, blue for a rollback.
const SLOT_WAIT: Duration = Duration::from_secs(30);

/// How long the switch waits for the sessions a lifted read-only fence left (read-only) to end.
const REOPEN_LIMIT: Duration = Duration::from_secs(2);

/// A cutover from a PostgreSQL blue (or, from [`PgCutover::connect_back`], a rollback from green). In
/// this type "blue" is the side being fenced and "green" the side traffic moves to.
pub(crate) struct PgCutover {
    blue: Client,
    fence: WriteFence,
    target_url: String,
    /// Green's session and the sequences moved ahead, once [`Procedure::counters_ahead`] ran.
    sequences: Option<(Client, SequencePlan)>,
    /// A cutover arming the reverse stream: its names and the configuration.
    reverse: Option<(Names, Config)>,
    /// The read-only fence the last switch left on the side traffic moves to (blue's from the
    /// cutover, for a rollback; green's from a rollback, for the next generation's cutover), lifted
    /// just before traffic moves.
    reopen: Option<WriteFence>,
    /// Which tables replicate (their schema objects are compared before the fence).
    filter: crate::tables::TableFilter,
    skip_without_identity: bool,
    /// The names of the fenced side and of the side traffic moves to (`blue`, `green` for a cutover).
    sides: (Side, Side),
    /// The fenced side's inventory as the pre-checks took it.
    inventory: Option<crate::source::contract::inventory::InventorySummary>,
    /// Whether the side traffic moves to was read-only for the application when looked at before the
    /// fence (nothing fences it again meanwhile: a read canary stands down while a cutover runs).
    reopen_needed: bool,
    /// What the definitions' settling needs: both sides' connection settings, `source.pg_dump`
    /// and `cutover.keep_definitions`.
    definitions: DefinitionSettings,
    /// The settling's outcome, once [`Procedure::settle_definitions`] ran: its mark is checked again
    /// inside the pause.
    settled: Option<super::definitions::Settled>,
    /// The fenced side's WAL insert position just before the sentinel: every write it committed
    /// ends at or before it ([`Procedure::fenced_position`]).
    fenced_at: Option<turnout_decoders::Lsn>,
    /// Generated columns computed through the database's own functions that
    /// `cutover.keep_definitions` names (see [`super::definitions::generated`]).
    generated_kept: Vec<String>,
    /// Tables `[tables]` leaves out, as the pre-checks found them: a materialized view reading one
    /// is not compared (green's copy of that table is not blue's).
    left_out: Vec<turnout_decoders::schema::TableName>,
}

/// What the definitions' settling reads from the configuration.
struct DefinitionSettings {
    fenced: turnout_connect::pg::ConnectOptions,
    other: turnout_connect::pg::ConnectOptions,
    pg_dump: Option<std::path::PathBuf>,
    keep: Vec<String>,
}

impl DefinitionSettings {
    /// For a cutover (`back` false: blue fenced) or a rollback (green fenced).
    fn of(config: &Config, back: bool) -> Result<DefinitionSettings, Error> {
        let (blue, green) = (config.source_options()?, config.target_options()?);
        let (fenced, other) = if back { (green, blue) } else { (blue, green) };
        Ok(DefinitionSettings { fenced, other, pg_dump: config.source.pg_dump.clone(), keep: config.cutover.keep_definitions.clone() })
    }
}

impl PgCutover {
    /// A session on the side traffic moves to, whose failures are that side's.
    async fn other(&self) -> Result<Client, Error> {
        super::session(&self.target_url, self.sides.1).await
    }

    /// A session on blue (directly, not through pgbouncer) for the fence, the sentinel and sequences;
    /// with `reverse`, the cutover arms the reverse stream under those names.
    ///
    /// Green's database may be read-only for the application — a rollback's fence (a generation
    /// after it), or a read canary's — so that is lifted just before traffic moves.
    pub(crate) async fn connect(config: &Config, reverse: Option<Names>) -> Result<PgCutover, Error> {
        let (fence, _) = build(config)?;
        // Whatever the fence is now: the rollback's may have been read-only. Lifting it is a no-op
        // when green's database is not read-only.
        let reopen = Some(WriteFence::ReadOnly { database: config.target_options()?.database });
        let blue = crate::source::pg::session(config.source.url.expose(), config.source_side()).await?;
        Ok(PgCutover {
            blue,
            fence,
            target_url: config.target.url.expose().to_owned(),
            sequences: None,
            reverse: reverse.map(|names| (names, config.clone())),
            reopen,
            filter: config.table_filter()?,
            skip_without_identity: config.tables.skip_without_identity,
            sides: (Side::Blue, Side::Green),
            inventory: None,
            reopen_needed: true,
            definitions: DefinitionSettings::of(config, false)?,
            settled: None,
            fenced_at: None,
            generated_kept: Vec::new(),
            left_out: Vec::new(),
        })
    }

    /// A rollback: fences green the way the cutover fenced blue (the same pgbouncer entry, or green's
    /// database read-only), writes the sentinel on green, moves blue's sequences ahead of green's, and
    /// lifts blue's read-only fence just before traffic returns.
    /// With `again`, it arms blue → green replication under those names, as a cutover arms the
    /// reverse stream: publication and slot on blue, whose consistent point (before green is fenced)
    /// is the hand-off, and green's origin set to it.
    pub(crate) async fn connect_back(config: &Config, again: Option<Names>) -> Result<PgCutover, Error> {
        let fence = match build(config)?.0 {
            WriteFence::ReadOnly { .. } => WriteFence::ReadOnly { database: config.target_options()?.database },
            other => other,
        };
        let reopen =
            (config.cutover.fence == Fence::ReadOnly).then(|| config.source_options().map(|o| WriteFence::ReadOnly { database: o.database })).transpose()?;
        let green = crate::source::pg::session(config.target.url.expose(), config.target_side()).await?;
        Ok(PgCutover {
            blue: green,
            fence,
            target_url: config.source.url.expose().to_owned(),
            sequences: None,
            reverse: again.map(|names| (names, crate::config::reversed(config))),
            reopen,
            filter: config.table_filter()?,
            skip_without_identity: config.tables.skip_without_identity,
            sides: (Side::Green, Side::Blue),
            inventory: None,
            reopen_needed: true,
            definitions: DefinitionSettings::of(config, true)?,
            settled: None,
            fenced_at: None,
            generated_kept: Vec::new(),
            left_out: Vec::new(),
        })
    }
}

impl Procedure for PgCutover {
    fn fence_kind(&self) -> crate::config::Fence {
        use turnout_cutover::WriteFence;
        match self.fence {
            WriteFence::PgBouncer { .. } => crate::config::Fence::Pgbouncer,
            WriteFence::ReadOnly { .. } => crate::config::Fence::ReadOnly,
            WriteFence::None => crate::config::Fence::None,
        }
    }

    async fn preflight(&mut self) -> Result<Vec<String>, Error> {
        let supported: bool = self
            .blue
            .query_one("SELECT current_setting('server_version_num')::int >= 140000", &[])
            .await
            .map_err(Error::blue("reading blue's server version"))?
            .get(0);
        if !supported {
            return Err(CutoverCheck::PgTooOld.into());
        }
        // The other side's definitions are made the fenced side's after the lag wait
        // (`settle_definitions`); here only what refuses before anything waits.
        let other = self.other().await.map_err(Error::during("connecting to compare the schemas"))?;
        // Nothing on the fenced side unaccounted for, and what the schema copy brings over is there.
        let inventory = super::inventory::before_fence(&self.blue, &other, &self.filter, self.skip_without_identity).await?;
        if self.reverse.is_some() {
            super::inventory::way_back(&self.blue, &other, &self.filter, self.skip_without_identity).await?;
        }
        self.inventory = Some(inventory.summary());
        let left_out = crate::source::pg::drift::selection(&self.blue, &self.filter, self.skip_without_identity, self.sides.0).await?.left_out();
        self.generated_kept = super::definitions::generated::check(&self.blue, self.sides.0, &left_out, &self.definitions.keep).await?;
        self.left_out = left_out;
        Ok(Vec::new())
    }

    fn inventory(&self) -> Option<crate::source::contract::inventory::InventorySummary> {
        self.inventory.clone()
    }

    async fn settle_definitions(&mut self, apply: bool) -> Result<Option<String>, Error> {
        let (from, to) = self.sides;
        let left_out = crate::source::pg::drift::selection(&self.blue, &self.filter, self.skip_without_identity, from).await?.left_out();
        let d = &self.definitions;
        let settle = super::definitions::Settle {
            fenced: &self.blue,
            fenced_options: &d.fenced,
            other_options: &d.other,
            sides: (from, to),
            pg_dump: d.pg_dump.as_deref(),
            left_out: &left_out,
            keep: &d.keep,
            apply,
        };
        // A generated column added during the lag wait is checked too.
        self.generated_kept = super::definitions::generated::check(&self.blue, from, &left_out, &d.keep).await?;
        let settled = settle.run().await?;
        let mut line = settled.line((from, to));
        if !self.generated_kept.is_empty() {
            line.push_str(&format!("; computed on {to}, kept by cutover.keep_definitions: {}", self.generated_kept.join(", ")));
        }
        self.settled = Some(settled);
        Ok(Some(line))
    }

    async fn definitions_unchanged(&mut self, when: &'static str) -> Result<(), Error> {
        if let Some(settled) = &mut self.settled {
            settled.unchanged(&self.blue, self.sides, when).await?;
        }
        // Materialized views' rows: a view refreshed on the fenced side since is refreshed again.
        if let Some((green, _)) = &self.sequences {
            match super::definitions::contents::settle(&self.blue, green, self.sides, &self.definitions.keep, &self.left_out).await {
                Ok(contents) if !contents.refreshed.is_empty() => {
                    tracing::info!("refreshed on {} again{when}, their rows now {}'s: {}", self.sides.1, self.sides.0, contents.refreshed.join(", "));
                }
                Ok(_) => {}
                // A fleet committed: this pair cannot undo, and a view's rows do not stop a switch
                // the other pairs made; green's are its refresh, said.
                Err(e) if when == crate::source::contract::procedure::AFTER_COMMIT => tracing::warn!("{e}; switching anyway: the fleet committed"),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn check_fence(&mut self) -> Result<(), Error> {
        self.fence.check(&self.blue).await.map_err(Error::from)
    }

    async fn counters_ahead(&mut self) -> Result<String, Error> {
        let green = self.other().await.map_err(Error::during("connecting to green for the sequences"))?;
        let (seqs, plan) =
            turnout_cutover::sync_sequences_ahead(&self.blue, &green, SEQUENCE_MARGIN).await.map_err(Error::during("syncing sequences failed"))?;
        let (from, to) = self.sides;
        let refreshed = super::inventory::refresh_materialized_views(&self.blue, &green, to.name()).await?;
        // A view the fenced side keeps frozen refuses here, before the fence, rather than in the pause.
        let contents = super::definitions::contents::settle(&self.blue, &green, self.sides, &self.definitions.keep, &self.left_out).await?;
        // Read now, on this session, so that the pause opens no session and asks nothing when there is
        // nothing to lift.
        self.reopen_needed = match &self.reopen {
            Some(fence) => fence.needs_reopen(&green).await.map_err(Error::from)?,
            None => false,
        };
        self.sequences = Some((green, plan));
        let mut views = if refreshed == 0 { String::new() } else { format!("; refreshed {refreshed} materialized views on {to} (populated on {from})") };
        views.push_str(&contents.line(to));
        Ok(format!("moved {} of {} sequences on green {SEQUENCE_MARGIN} values ahead of blue{views}", seqs.iter().filter(|s| s.changed).count(), seqs.len()))
    }

    async fn fence(&mut self, budget: Duration) -> Result<String, Error> {
        let report = self.fence.apply(&self.blue, budget).await.map_err(Error::from)?;
        Ok(format!(
            "fenced writes on blue ({}) in {} ms{}",
            self.fence.kind(),
            report.took.as_millis(),
            if report.ended_sessions.is_empty() { String::new() } else { format!("; ended {} sessions", report.ended_sessions.len()) }
        ))
    }

    /// The fenced side's WAL position first (every write it committed ends there or before: what a
    /// consumer must have confirmed to hold them all), then the sentinel's transaction, then a
    /// non-transactional message ([`crate::source::FENCE_END_PREFIX`]): the fence a consumer is given
    /// is the end of the sentinel's commit record, and with that record after it no transaction can
    /// begin exactly there — the reverse stream's first apply on the fenced side would otherwise start
    /// at the fence, and a reader stopping at it inclusively (`pg_recvlogical --endpos`, a reader
    /// taking every transaction that begins by the fence) would receive that change from both sides.
    async fn write_sentinel(&mut self, id: &str) -> Result<(), Error> {
        self.fenced_at = emit_sentinel(&self.blue, self.sides.0, id).await?;
        Ok(())
    }

    fn fenced_position(&self) -> Option<Position> {
        self.fenced_at.map(Position::Pg)
    }

    async fn top_up(&mut self) -> Result<(String, usize), Error> {
        let Some((green, plan)) = &self.sequences else { return Ok(("no sequences to check".into(), 0)) };
        let moved = plan.top_up(&self.blue, green).await.map_err(Error::during("syncing sequences failed"))?;
        Ok((format!("checked {} sequences against blue ({moved} topped up on green)", plan.len()), moved))
    }

    async fn identify(&mut self) -> (Identity, Identity) {
        let fenced = super::rehearsal::identity(&self.blue).await;
        let other = match self.other().await {
            Ok(other) => super::rehearsal::identity(&other).await,
            Err(e) => Identity { version: format!("unreadable: {e}"), identity: String::new() },
        };
        (fenced, other)
    }

    async fn findings(&mut self) -> Vec<String> {
        let (from, to) = self.sides;
        let mut found = super::rehearsal::long_transactions(&self.blue, from.name()).await;
        match self.other().await {
            Ok(other) => found.extend(super::rehearsal::blockers(&other, to.name()).await),
            Err(e) => found.push(format!("{to}: could not connect to look for sessions blocking the apply: {e}")),
        }
        found
    }

    async fn open_green(&mut self) -> Result<Option<String>, Error> {
        let Some(fence) = &self.reopen else { return Ok(None) };
        if !self.reopen_needed {
            return Ok(None);
        }
        let to = self.sides.1;
        // The session the counters were moved on, opened before the fence.
        let opened;
        let other = match &self.sequences {
            Some((green, _)) => green,
            None => {
                opened = self.other().await.map_err(Error::during(format!("connecting to {to} to lift its fence")))?;
                &opened
            }
        };
        // Inside the pause: the default goes at once; read-only sessions left (they can only read)
        // never hold the switch up.
        let Some(left) = fence.reopen(other, REOPEN_LIMIT).await.map_err(Error::from)? else { return Ok(None) };
        let from = if to == Side::Blue { "the cutover" } else { "the rollback or the read canary" };
        let left = if left.is_empty() { String::new() } else { format!(" (read-only sessions left, reading only: {})", left.join("; ")) };
        Ok(Some(format!("lifted {to}'s read-only fence from {from}{left}")))
    }

    async fn fenced(&mut self) -> Result<bool, Error> {
        self.fence.is_fenced(&self.blue).await.map_err(Error::from)
    }

    async fn lift_fence(&mut self) -> Result<String, Error> {
        self.fence.undo(&self.blue).await.map_err(Error::from)?;
        Ok(format!("undid the fence ({}): {} takes writes again", self.fence.kind(), self.sides.0))
    }

    async fn disarm_reverse(&mut self) -> Result<Option<String>, Error> {
        let Some((names, config)) = self.reverse.as_ref() else { return Ok(None) };
        super::reverse::drop_reverse(config, names).await?;
        Ok(Some("dropped the reverse stream's slot, publication and origin".into()))
    }

    /// A cutover arms green → blue (slot and publication on green, origin on blue); a rollback with
    /// `again` arms blue → green (slot and publication on blue, origin on green). In both the slot
    /// is on the side traffic moves to, created before the fence, and its consistent point is the
    /// hand-off.
    async fn arm_reverse(&mut self) -> Result<Option<(String, Position)>, Error> {
        let Some((names, config)) = &self.reverse else { return Ok(None) };
        let (from, to) = self.sides;
        let off = if to == Side::Green {
            "set cutover.reverse = false to cut over without a way back"
        } else {
            "set cutover.iterate = false to roll back without replicating to green again"
        };
        let other = self.other().await.map_err(Error::during(format!("connecting to {to}")))?;
        may_arm(&other, (from, to), off).await?;
        if to == Side::Blue && foreign_origins(&other, names).await? {
            return Ok(None);
        }
        let tables = super::reverse::publish_on_green(config, names).await?;
        turnout_sinks::pg::ensure_origin(&self.blue, &names.origin)
            .await
            .map_err(Error::during(format!("creating replication origin {} on {from}", names.origin)))?;
        let created = Instant::now();
        let lsn = create_slot(&other, names, to).await?;
        turnout_sinks::pg::advance_origin(&self.blue, &names.origin, lsn).await.map_err(Error::during(format!("setting origin {} on {from}", names.origin)))?;
        let what = if to == Side::Green { "reverse replication" } else { "replication blue → green again" };
        let line = format!(
            "prepared {what} in {} ms: publication {} on {to} ({tables} tables), slot {} on {to} from {lsn}, replication origin {} on {from}",
            created.elapsed().as_millis(),
            names.publication,
            names.slot,
            names.origin
        );
        Ok(Some((line, Position::Pg(lsn))))
    }
}

/// Writes the sentinel `id` on the fenced side (`side`, through `client`): its WAL insert position
/// first (every write it committed ends there or before), then the sentinel's transaction, then a
/// non-transactional message ([`crate::source::FENCE_END_PREFIX`]) — see
/// [`Procedure::write_sentinel`] of [`PgCutover`]. One round trip; returns that position.
pub(crate) async fn emit_sentinel(client: &Client, side: Side, id: &str) -> Result<Option<Lsn>, Error> {
    let messages = client
        .simple_query(&format!(
            "SELECT pg_current_wal_insert_lsn()::text; \
             BEGIN READ WRITE; SELECT pg_logical_emit_message(true, '{}', '{id}'); COMMIT; \
             BEGIN READ WRITE; SELECT pg_logical_emit_message(false, '{}', '{id}'); COMMIT",
            crate::source::SENTINEL_PREFIX,
            crate::source::FENCE_END_PREFIX
        ))
        .await
        .map_err(Error::sql(side, "writing the sentinel"))?;
    Ok(messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|at| at.parse().ok()),
        _ => None,
    }))
}

/// Whether `to` can be armed for replication `to` → `from`: `wal_level = logical`, and turnout's role
/// there may create replication slots; `off` says how to go on without arming.
pub(crate) async fn may_arm(other: &Client, (from, to): (Side, Side), off: &str) -> Result<(), Error> {
    let row = other
        .query_one(
            "SELECT current_setting('wal_level'), r.rolsuper OR r.rolreplication, current_user::text FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(Error::sql(to, format!("reading {to}'s wal_level")))?;
    let (wal_level, may, role): (String, bool, String) = (row.get(0), row.get(1), row.get(2));
    if wal_level != "logical" {
        return Err(CutoverCheck::NoLogicalWal { from, to, wal_level, off: off.to_owned() }.into());
    }
    if !may {
        return Err(CutoverCheck::NoReplicationRole { role, to, off: off.to_owned() }.into());
    }
    Ok(())
}

/// Whether blue has replication origins that are not turnout's. The next generation drops the
/// reverse apply's writes by their origin, on PostgreSQL 16+ on the server with every other
/// origin's: changes another subscription replays into blue would never reach green. Such a blue is
/// not armed; the rollback goes on.
async fn foreign_origins(other: &Client, names: &Names) -> Result<bool, Error> {
    let stream = names.slot.rsplit_once("_g").map_or(names.slot.as_str(), |(base, _)| base);
    let others: Option<String> = other
        .query_one("SELECT string_agg(roname, ', ' ORDER BY roname) FROM pg_replication_origin WHERE left(roname, length($1)) <> $1", &[&stream])
        .await
        .map_err(Error::sql(Side::Blue, "reading blue's replication origins"))?
        .get(0);
    let Some(others) = others else { return Ok(false) };
    tracing::warn!(
        "blue has replication origins that are not turnout's ({others}): the changes they replay could not be told from the \
         reverse stream's, so this rollback arms no stream blue → green; replication stops after it"
    );
    Ok(true)
}

/// Creates the reverse stream's slot on `on_to` and returns its consistent point. Creating
/// a logical slot waits for every transaction there that holds an xid; nothing is paused yet, but
/// the wait is bounded, and prepared transactions (which would hold it up) are refused first.
pub(crate) async fn create_slot(other: &Client, names: &Names, on_to: Side) -> Result<Lsn, Error> {
    let to = on_to.name();
    let prepared: Vec<String> = other
        .query("SELECT gid FROM pg_prepared_xacts", &[])
        .await
        .map_err(Error::sql(on_to, format!("reading prepared transactions on {to}")))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !prepared.is_empty() {
        return Err(CutoverCheck::PreparedHoldSlot { to: on_to, prepared: prepared.join(", "), slot: names.slot.clone() }.into());
    }
    // Creating a logical slot waits for every transaction there that holds an xid; nothing is
    // paused yet, but the wait is bounded.
    // A slot of this name that nothing reads is what an earlier attempt left (an undo whose drop
    // failed): no stream began from it, so it goes.
    other
        .execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", &[&names.slot])
        .await
        .map_err(Error::sql(on_to, format!("dropping a leftover slot {} on {to}", names.slot)))?;
    let ms = SLOT_WAIT.as_millis();
    other.batch_execute(&format!("SET statement_timeout = {ms}")).await.map_err(Error::sql(on_to, "bounding the slot's wait"))?;
    let slot = other.query_one("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", &[&names.slot]).await;
    let _ = other.batch_execute("RESET statement_timeout").await;
    let lsn: String = match slot {
        Ok(row) => row.get(0),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) => {
            let why = if on_to == Side::Blue {
                " — on blue these may be the reverse stream's own apply of a long transaction on green; let it finish, or set \
                 cutover.iterate = false to roll back without replicating to green again"
            } else {
                ""
            };
            return Err(
                CutoverCheck::SlotSlow { slot: names.slot.clone(), to: on_to, ms, holders: crate::source::pg::live::xid_holders(other).await, why }.into()
            );
        }
        Err(e) => return Err(Error::sql(on_to, format!("creating slot {} on {to}", names.slot))(e)),
    };
    lsn.parse().map_err(|e| Error::Unexpected { side: on_to, what: format!("the LSN {lsn} ({e})") })
}

/// The PostgreSQL fence and switch the configuration asks for.
pub fn build(config: &Config) -> Result<(WriteFence, TrafficSwitch), Error> {
    let c = &config.cutover;
    let blue_db = config.source_options()?.database;
    // One admin handle (and so one console session) shared by the fence and the switch.
    let shared = match &c.pgbouncer {
        Some(p) if c.fence == Fence::Pgbouncer || c.switch == Switch::Pgbouncer => {
            let url = p.admin_url.as_ref().ok_or_else(|| Error::config("cutover.pgbouncer.admin_url", "is missing"))?;
            Some(PgBouncerAdmin::from_url(url.expose()).map_err(|e| Error::config("cutover.pgbouncer.admin_url", e.to_string()))?)
        }
        _ => None,
    };
    let admin = || -> Result<(PgBouncerAdmin, String), Error> {
        let p = c.pgbouncer.as_ref().ok_or_else(|| Error::config("cutover.pgbouncer", "is missing"))?;
        let admin = shared.clone().ok_or_else(|| Error::config("cutover.pgbouncer.admin_url", "is missing"))?;
        Ok((admin, p.database.clone().unwrap_or_else(|| blue_db.clone())))
    };
    let fence = match c.fence {
        Fence::Pgbouncer => {
            let (admin, database) = admin()?;
            WriteFence::PgBouncer { admin, database }
        }
        Fence::ReadOnly => WriteFence::ReadOnly { database: blue_db.clone() },
        Fence::None => WriteFence::None,
    };
    let switch = match c.switch {
        Switch::Pgbouncer => {
            let (admin, database) = admin()?;
            let config_file =
                c.pgbouncer.as_ref().and_then(|p| p.config_file.clone()).ok_or_else(|| Error::config("cutover.pgbouncer.config_file", "is missing"))?;
            TrafficSwitch::PgBouncer { admin, database, config_file }
        }
        Switch::Haproxy | Switch::Command | Switch::None => {
            config.plain_switch()?.ok_or_else(|| Error::config("cutover.switch", "a switch without pgbouncer was expected"))?
        }
    };
    Ok((fence, switch))
}
