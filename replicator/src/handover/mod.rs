//! Downstream consumers of blue's change log carried over to green with their place kept
//! (`[[handover]]`).
//!
//! A consumer — Debezium, a warehouse loader, `pg_recvlogical` — reads blue through a logical slot.
//! At the cutover, inside the write pause, green is proven to hold every write blue committed and
//! nothing has been written on green for the application yet: the one moment where "the same place"
//! has an exact answer on green. turnout makes each carried consumer's slot on green before the fence
//! (creating a slot waits for a consistent point, which may not fit the pause), moves it inside the
//! pause to green's hand-off position — past everything turnout's own apply wrote there, so the
//! consumer never sees it as new — and proves the slot stands exactly there.
//!
//! Guarantees, for a carried consumer that reads blue up to the fence and then green from its slot:
//! every change the application committed is delivered once — those committed before the fence from
//! blue, those after the switch from green. Before the fence each consumer must have read blue's log
//! up to where it stood when the wait began (`handover.wait`); one that has not refuses the cutover
//! (default) or is recorded with the range of blue's log it must still read (`on_lag = "record"`).
//! After the switch the reverse stream (green → blue) starts applying only once every carried
//! consumer has read blue up to the fence, or its wait ran out: until then nothing but the cutover's
//! own marks lies past the fence in blue's log.

pub mod mysql;
pub mod pg;
mod repoint;

use crate::status::Direction;
use serde::{Deserialize, Serialize};

pub use crate::status::consumers::Consumer;

/// What a cutover (rollback) did for one carried consumer: where it stopped on the side writes left
/// and where it resumes on the side they moved to. Kept in the state store and the certificate,
/// shown by `GET /handover`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handed {
    /// The consumer: its slot on both sides under the same name (PostgreSQL), or the account of its
    /// binlog dump sessions (MySQL/MariaDB).
    pub consumer: String,
    /// The slot's output plugin (PostgreSQL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub plugin: String,
    /// The publications made (or found equal) on the side writes move to.
    pub publications: Vec<String>,
    /// The position the consumer's slot had confirmed on the fenced side when the cutover checked it,
    /// before the fence.
    pub consumed: String,
    /// The fence on the fenced side: the consumer reads it up to here (the cutover's sentinel), no
    /// further.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fence: Option<String>,
    /// PostgreSQL: where the fenced side's log stood just before the sentinel — every write it
    /// committed ends there or before; a consumer whose slot confirmed this far holds them all (a
    /// reader stopping at the fence confirms at least this much, whatever its plugin prints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_before: Option<String>,
    /// Where the consumer resumes on the other side: its slot there stands at this position, proven.
    pub resume: String,
    /// After the switch: the range of the fenced side's log the consumer had still not read when its
    /// wait ran out (`from..to`); none once it read up to the fence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<String>,
    /// How long the wait for the consumer to read blue up to the fence may take (`handover.wait`).
    #[serde(default)]
    pub wait_ms: u64,
    /// PostgreSQL: the role of the session reading the slot when the cutover prepared it, for the
    /// repoint commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader: Option<String>,
    /// The consumer's reader leaves out changes with a replication origin (`handover.filters_origin`):
    /// the stream that follows does not wait for it to let go of its slot on the fenced side.
    #[serde(default)]
    pub filters_origin: bool,
    /// After the switch: the consumer was seen to have read the fenced side up to the fence; one
    /// that does not leave out changes with an origin may be stopped now.
    #[serde(default)]
    pub reached: bool,
    /// What the operator must know about the consumer after the switch: a reader still attached to
    /// the fenced side when its wait ran out receives the window's changes there too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The hand-over of the last cutover (rollback): kept in the state store, shown by `GET /handover`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The cutover (rollback) that handed the consumers over.
    pub cutover: String,
    /// Which way: a cutover hands consumers from blue to green, a rollback back.
    pub direction: Direction,
    pub consumers: Vec<Handed>,
    /// The stream that follows (the reverse stream after a cutover, the next generation after a
    /// rollback) waited for every consumer to read the fenced side up to the fence (or its wait ran
    /// out) and may now apply there.
    #[serde(default)]
    pub settled: bool,
}

/// The hand-over of one cutover in progress: a session on the side writes move to, opened before
/// the fence, and the consumers prepared there.
pub enum Session {
    Pg { to: tokio_postgres::Client, to_side: crate::error::Side, prepared: Vec<pg::Prepared> },
    MySql { to: mysql_async::Conn, to_side: crate::error::Side, prepared: Vec<mysql::Prepared> },
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("consumers", &self.consumers()).finish()
    }
}

impl Session {
    /// Before the fence of a cutover (`Forward`) or rollback (`Reverse`): prepares every consumer
    /// `[[handover]]` carries ([`pg::prepare`], [`mysql::prepare`]). None when no entry carries one.
    pub async fn prepare(config: &crate::config::Config, direction: Direction, state: &crate::state::StateStore) -> Result<Option<Session>, crate::Error> {
        if config.handover.is_empty() {
            return Ok(None);
        }
        let (from_url, to_url) = urls(config, direction);
        let (from_side, to_side) = direction.ends();
        let session = match config.source_kind() {
            crate::config::SourceKind::Pg => {
                let from = crate::source::pg::session(from_url, from_side).await?;
                let to = crate::source::pg::session(to_url, to_side).await?;
                // A rollback moves the slots the cutover carried only where their consumers read up to its fence.
                let read_to: Vec<(String, turnout_decoders::Lsn)> = match direction {
                    Direction::Reverse => current(state, Direction::Forward)?
                        .map(|r| {
                            r.consumers
                                .iter()
                                .filter_map(|c| Some((c.consumer.clone(), c.committed_before.as_deref().or(c.fence.as_deref())?.parse().ok()?)))
                                .collect()
                        })
                        .unwrap_or_default(),
                    Direction::Forward => Vec::new(),
                };
                let prepared = pg::prepare(&from, &to, &config.handover, (from_side, to_side), &read_to).await?;
                Session::Pg { to, to_side, prepared }
            }
            crate::config::SourceKind::MySql => {
                let (mut from, own) = mysql_session(from_url, from_side).await?;
                let prepared = mysql::prepare(&mut from, from_side, &own, &config.handover).await?;
                let (to, _) = mysql_session(to_url, to_side).await?;
                Session::MySql { to, to_side, prepared }
            }
            #[cfg(test)]
            crate::config::SourceKind::Stub => return Err(crate::Error::Setup("the stub family has no consumers to hand over".into())),
        };
        if session.consumers().is_empty() {
            tracing::info!("[[handover]] carries no consumer: {from_side} has none it names");
            return Ok(None);
        }
        Ok(Some(session))
    }

    /// The consumers being carried.
    pub fn consumers(&self) -> Vec<&str> {
        match self {
            Session::Pg { prepared, .. } => prepared.iter().map(|p| p.slot.as_str()).collect(),
            Session::MySql { prepared, .. } => prepared.iter().map(|p| p.account.as_str()).collect(),
        }
    }

    /// Inside the pause, after the proof ([`pg::hand_off`], [`mysql::hand_off`]); `fence` is the
    /// sentinel's position on the fenced side, `fenced` where that side stood before the sentinel
    /// (PostgreSQL: every write it committed ends there or before).
    pub async fn hand_off(&mut self, fence: Option<String>, fenced: Option<String>) -> Result<Vec<Handed>, crate::Error> {
        match self {
            Session::Pg { to, to_side, prepared } => pg::hand_off(to, *to_side, prepared, fence, fenced).await,
            Session::MySql { to, to_side, prepared } => mysql::hand_off(to, *to_side, prepared, fence).await,
        }
    }
}

/// A MySQL/MariaDB session from `url` on `side`, and the account it uses (turnout's own).
async fn mysql_session(url: &str, side: crate::error::Side) -> Result<(mysql_async::Conn, String), crate::Error> {
    let opts = crate::source::mysql::options(url, if side == crate::error::Side::Blue { "source.url" } else { "target.url" })?;
    let own = opts.user().unwrap_or_default().to_owned();
    Ok((crate::source::mysql::connect(&opts, side).await?, own))
}

/// The URLs of the side writes leave and the side they move to.
fn urls(config: &crate::config::Config, direction: Direction) -> (&str, &str) {
    match direction {
        Direction::Forward => (config.source.url.expose(), config.target.url.expose()),
        Direction::Reverse => (config.target.url.expose(), config.source.url.expose()),
    }
}

/// The hand-over record of the switch of `direction` that completed: none when the record belongs
/// to an attempt that was undone (written inside its pause, before the point of no return).
fn current(state: &crate::state::StateStore, direction: Direction) -> Result<Option<Record>, crate::Error> {
    let Some(record) = state.handover::<Record>(direction)? else { return Ok(None) };
    // The journal of that switch says whether it completed; once a rollback's next generation began,
    // the journals are closed and the record is the last switch's.
    let undone = state.journal(direction)?.is_some_and(|j| j.id == record.cutover && j.step != crate::journal::Step::Done);
    Ok((!undone).then_some(record))
}

/// After a switch, before the stream that follows applies to the fenced side (the reverse stream
/// after a cutover, the next generation after a rollback): each consumer the switch carried has read
/// the fenced side up to the fence (`reached`, kept in the record at once: its reader may be stopped
/// at the fence now),
/// or its gap is recorded; then each reader that does not leave out changes with an origin has let
/// go of the fenced side, or its note says it did not ([`pg::read_to_fence`], [`pg::let_go`] and
/// their MySQL counterparts). Runs once per switch; the record says so.
pub async fn settle(config: &crate::config::Config, state: &crate::state::StateStore, direction: Direction) -> Result<(), crate::Error> {
    let Some(mut record) = current(state, direction)? else { return Ok(()) };
    if record.settled || record.consumers.is_empty() {
        return Ok(());
    }
    let (from, to) = direction.ends();
    let (url, to_url) = urls(config, direction);
    // Each consumer's wait counts from when it can first be looked at (after the checkpoint).
    let deadlines = |consumers: &[Handed]| -> Vec<std::time::Instant> {
        consumers.iter().map(|c| std::time::Instant::now() + std::time::Duration::from_millis(c.wait_ms)).collect()
    };
    let open = |c: &Handed| c.gap.is_none() && !c.reached;
    match config.source_kind() {
        crate::config::SourceKind::Pg => {
            // A slot's advanced position reaches disk at the next checkpoint: until then a crash of
            // that server would put it back before the hand-off, and its consumer would see turnout's
            // apply again. One now, before the consumers are told to read there.
            let to_client = crate::source::pg::session(to_url, to).await?;
            if let Err(e) = to_client.batch_execute("CHECKPOINT").await {
                tracing::warn!(
                    "CHECKPOINT on {to} failed ({}): the consumers' slots there are on disk only after its next checkpoint; run CHECKPOINT \
                     on {to} (as a superuser or a pg_checkpoint member) before the consumers read there",
                    turnout_sinks::pg::describe_error(&e)
                );
            }
            let fenced = crate::source::pg::session(url, from).await?;
            let deadlines = deadlines(&record.consumers);
            for (c, deadline) in record.consumers.iter_mut().zip(&deadlines).filter(|(c, _)| open(c)) {
                pg::read_to_fence(&fenced, c, from, *deadline).await?;
            }
            // Said before the wait for the readers to let go: an operator stops each one now.
            state.put_handover(direction, &record, true)?;
            for (c, deadline) in record.consumers.iter_mut().zip(&deadlines).filter(|(c, _)| c.reached && c.note.is_none()) {
                pg::let_go(&fenced, c, from, *deadline).await?;
            }
        }
        crate::config::SourceKind::MySql => {
            let (mut fenced, own) = mysql_session(url, from).await?;
            let deadlines = deadlines(&record.consumers);
            for (c, deadline) in record.consumers.iter_mut().zip(&deadlines).filter(|(c, _)| open(c)) {
                mysql::read_to_fence(&mut fenced, from, &own, c, *deadline).await?;
            }
            state.put_handover(direction, &record, true)?;
            for (c, deadline) in record.consumers.iter_mut().zip(&deadlines).filter(|(c, _)| c.reached && c.note.is_none()) {
                mysql::let_go(&mut fenced, from, &own, c, *deadline).await?;
            }
        }
        #[cfg(test)]
        crate::config::SourceKind::Stub => {}
    }
    record.settled = true;
    state.put_handover(direction, &record, true)?;
    for c in &record.consumers {
        match &c.gap {
            None => tracing::info!("the consumer {} read {from} up to the fence; it resumes on {to} at {}", c.consumer, c.resume),
            Some(gap) => tracing::warn!("the consumer {} must still read {gap} on {from} before it resumes on {to} at {}", c.consumer, c.resume),
        }
    }
    Ok(())
}

/// Once writes stay on green for good (`turnout finish`, or the window's budget spent): the slots the
/// cutover carried are dropped on blue, each named. One still read, or whose consumer has a gap to
/// read there, is kept with a warning (it holds blue's WAL until dropped).
pub async fn drop_left(config: &crate::config::Config, state: &crate::state::StateStore) -> Vec<String> {
    // Only what the cutover that completed handed over, once each consumer was seen to read blue up
    // to the fence (or its gap recorded).
    let Ok(Some(record)) = current(state, Direction::Forward) else { return Vec::new() };
    if !record.settled {
        return vec!["WARNING: the consumers' slots on blue were kept: the hand-over never saw them read blue up to the fence".into()];
    }
    // MySQL/MariaDB keep no place for a binlog reader: nothing to drop.
    if record.consumers.is_empty() || config.source_kind() != crate::config::SourceKind::Pg {
        return Vec::new();
    }
    let blue = match crate::source::pg::session(config.source.url.expose(), config.source_side()).await {
        Ok(c) => c,
        Err(e) => return vec![format!("WARNING: the consumers' slots on blue were not dropped ({e}); drop them there by hand")],
    };
    let mut lines = Vec::new();
    for c in &record.consumers {
        match &c.gap {
            // Its consumer still needs what the slot holds.
            Some(gap) => lines.push(format!("WARNING: slot {} on blue is kept: its consumer must still read {gap} there; drop it once it has", c.consumer)),
            None => lines.push(pg::drop_slot(&blue, &c.consumer, crate::error::Side::Blue, &format!("its consumer resumed on green at {}", c.resume)).await),
        }
    }
    lines
}

/// After a rollback carried the consumers back to blue and they read green up to its fence (the
/// next generation's start, `cutover.iterate`): their slots on green, which the cutover made, are
/// dropped there — each would hold green's WAL while the next generation streams, and the next
/// cutover makes them again before its fence. One whose consumer has a gap to read on green is kept
/// with a warning; one still read is dropped once its reader lets go, within the consumer's wait, or
/// kept with a warning.
pub async fn drop_after_rollback(config: &crate::config::Config, state: &crate::state::StateStore) -> Vec<String> {
    let Ok(Some(record)) = current(state, Direction::Reverse) else { return Vec::new() };
    if !record.settled || record.consumers.is_empty() || config.source_kind() != crate::config::SourceKind::Pg {
        return Vec::new();
    }
    let mut lines = Vec::new();
    let mut slots = Vec::new();
    for c in &record.consumers {
        match &c.gap {
            Some(gap) => lines.push(format!("WARNING: slot {} on green is kept: its consumer must still read {gap} there; drop it once it has", c.consumer)),
            None => slots.push((c.consumer.clone(), c.resume.clone(), std::time::Duration::from_millis(c.wait_ms))),
        }
    }
    // A reader that leaves out changes with an origin may still read green: each slot goes once its
    // reader let go of it, within the consumer's wait, before the generation streams (no cutover can
    // begin meanwhile and reuse it).
    let green = match crate::source::pg::session(config.target.url.expose(), config.target_side()).await {
        Ok(c) => c,
        Err(e) => return vec![format!("WARNING: the consumers' slots on green were not dropped after the rollback ({e}); drop them there by hand")],
    };
    for (slot, resume, wait) in slots {
        let deadline = std::time::Instant::now() + wait;
        if let Err(e) = pg::released(&green, config.target_side(), &slot, deadline).await {
            lines.push(format!("WARNING: slot {slot} on green was not dropped after the rollback ({e}); drop it there once its consumer moved"));
            continue;
        }
        let why = format!("its consumer read green up to the rollback's fence and resumed on blue at {resume}");
        lines.push(pg::drop_slot(&green, &slot, config.target_side(), &why).await);
    }
    lines
}

/// How often `/status` looks at blue's consumers again.
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Keeps `/status`'s list of blue's consumers current until `stop`: looked at now and every
/// [`LOOK_EVERY`]. A look that fails keeps the last list (and logs why at debug level).
pub async fn show_consumers(
    config: std::sync::Arc<crate::config::Config>,
    status: std::sync::Arc<crate::status::Status>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match discover(&config).await {
            Ok(consumers) => status.set_consumers(consumers),
            Err(e) => tracing::debug!("looking at blue's consumers: {e}"),
        }
        if tokio::time::timeout(LOOK_EVERY, stop.wait_for(|s| *s)).await.is_ok() {
            return;
        }
    }
}

/// `turnout teardown` before any cutover handed consumers over: the slots `[[handover]]` names are
/// dropped on green where idle (an undone cutover made them there), each named.
pub async fn drop_unused(config: &crate::config::Config) -> Vec<String> {
    let named: Vec<&str> = config.handover.iter().filter(|e| !e.every_slot() && !e.slot.is_empty()).map(|e| e.slot.as_str()).collect();
    if named.is_empty() || config.source_kind() != crate::config::SourceKind::Pg {
        return Vec::new();
    }
    let green = match crate::source::pg::session(config.target.url.expose(), config.target_side()).await {
        Ok(c) => c,
        Err(e) => return vec![format!("WARNING: the consumers' slots on green were not looked at ({e}); drop those turnout made there by hand")],
    };
    let mut lines = Vec::new();
    for slot in named {
        if green.query_opt("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", &[&slot]).await.ok().flatten().is_some() {
            lines.push(pg::drop_slot(&green, slot, crate::error::Side::Green, "made for its consumer by a cutover that did not complete").await);
        }
    }
    lines
}

/// Blue's consumers now ([`pg::discover`], [`mysql::discover`]).
pub async fn discover(config: &crate::config::Config) -> Result<Vec<Consumer>, crate::Error> {
    match config.source_kind() {
        crate::config::SourceKind::Pg => {
            pg::discover(&crate::source::pg::session(config.source.url.expose(), config.source_side()).await?, &config.handover).await
        }
        crate::config::SourceKind::MySql => {
            let (mut blue, own) = mysql_session(config.source.url.expose(), crate::error::Side::Blue).await?;
            mysql::discover(&mut blue, &own, &config.handover).await
        }
        #[cfg(test)]
        crate::config::SourceKind::Stub => Ok(Vec::new()),
    }
}

/// Blue's downstream consumers ([`crate::handover`]): each carried one is fine; one left behind is a
/// warning naming the `[[handover]]` entry that carries it; an entry naming no slot fails.
pub async fn findings(config: &crate::config::Config) -> crate::source::contract::report::Findings {
    let mut f = crate::source::contract::report::Findings::default();
    let consumers = match discover(config).await {
        Ok(c) => c,
        Err(e) => {
            f.warn(format!("cannot list blue's consumers: {e}"), "fix the connection problems above");
            return f;
        }
    };
    let database = match config.source_kind() {
        crate::config::SourceKind::Pg => config.source_options().map(|o| o.database.clone()).unwrap_or_default(),
        crate::config::SourceKind::MySql => String::new(),
        #[cfg(test)]
        crate::config::SourceKind::Stub => String::new(),
    };
    if consumers.is_empty() {
        f.ok("no replication slot, standby or binlog reader other than turnout's reads blue's log");
    }
    let pg = config.source_kind() == crate::config::SourceKind::Pg;
    let major = match pg {
        true => match crate::source::pg::session(config.source.url.expose(), config.source_side()).await {
            Ok(blue) => crate::source::pg::definitions::major(&blue, crate::error::Side::Blue).await.unwrap_or(0),
            Err(_) => 0,
        },
        false => 0,
    };
    for c in &consumers {
        let at = c.position.as_deref().map(|p| format!(" at {p}")).unwrap_or_default();
        let behind = c.behind_bytes.map(|b| format!(", {b} bytes behind")).unwrap_or_default();
        let state = if c.active { format!("read by {}", c.client.as_deref().unwrap_or("a session")) } else { "idle".into() };
        let what = format!("{} {}{} ({state}{at}{behind})", c.kind, c.name, c.plugin.as_deref().map(|p| format!(" [{p}]")).unwrap_or_default());
        match (c.kind.as_str(), c.carried) {
            (_, true) if pg => match origin_filter(c.plugin.as_deref().unwrap_or_default(), major) {
                Some(how) => f.ok(format!(
                    "{what}: carried over to green at the cutover ([[handover]]); a reader that keeps running across the switch leaves out \
                     the rollback window's changes on blue with {how} (and filters_origin = true)"
                )),
                None => f.warn(
                    format!("{what}: carried over to green at the cutover, but its plugin cannot leave out changes with an origin on this blue"),
                    "stop its reader at the fence (GET /handover prints the commands); the stream back to blue waits for it to let go of its \
                     slot, up to the entry's wait",
                ),
            },
            (_, true) => f.ok(format!("{what}: carried over to green at the cutover ([[handover]]); stop its binlog sessions at the fence")),
            ("logical", false) if c.database.as_deref() == Some(database.as_str()) => f.warn(
                format!("{what}: does not follow the cutover"),
                format!("add [[handover]] slot = \"{}\" to carry its place to green (see the guide's consumer hand-over page)", c.name),
            ),
            ("logical", false) => f.ok(format!("{what}: decodes another database; the cutover leaves it")),
            ("physical" | "standby", false) => {
                f.warn(format!("{what}: a standby or backup of blue; it does not follow the cutover"), "build green's standbys before the cutover")
            }
            (_, false) => f.warn(
                format!("{what}: reads blue's binlog and does not follow the cutover"),
                format!("add [[handover]] account = \"{}\" to have its place on green recorded at the cutover", c.name.split(' ').next().unwrap_or_default()),
            ),
        }
    }
    for entry in config.handover.iter().filter(|e| !e.every_slot()) {
        let found =
            consumers.iter().any(|c| if pg { c.name == entry.slot && c.kind == "logical" } else { c.name.split(' ').next() == Some(entry.account.as_str()) });
        if !found && pg {
            f.fail(format!("[[handover]] names slot {}, which blue does not have", entry.slot), "correct the slot name (the lines above list blue's slots)");
        } else if !found {
            f.warn(
                format!("[[handover]] names account {}, but no session of it reads blue's binlog now", entry.account),
                "start the consumer before the cutover: one that is not reading is refused (on_lag = \"refuse\")",
            );
        }
    }
    f
}

/// How a reader of a slot with `plugin` on PostgreSQL `major` leaves out changes that carry a
/// replication origin (the reverse stream's on blue), if it can.
pub(super) fn origin_filter(plugin: &str, major: i32) -> Option<&'static str> {
    match plugin {
        "test_decoding" => Some("-o only-local=1"),
        "pgoutput" if major >= 16 => Some("the option origin 'none'"),
        _ => None,
    }
}

/// What `GET /handover` shows: blue's consumers now (`discovered`, or why they cannot be listed) and
/// what the last cutover handed over, with the steps to repoint each consumer.
pub async fn view(config: &crate::config::Config, state: &crate::state::StateStore) -> serde_json::Value {
    let discovered = discover(config).await.map_err(|e| e.to_string());
    // The last switch's record: a rollback's when one ran since the cutover.
    let record = current(state, Direction::Reverse).and_then(|r| match r {
        Some(r) => Ok(Some(r)),
        None => current(state, Direction::Forward),
    });
    let record = record.map_err(|e| e.to_string());
    let repoint: Vec<String> = record
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|r| {
            let (from, to) = r.direction.ends();
            let (from_url, to_url) = urls(config, r.direction);
            r.consumers.iter().flat_map(|c| c.repoint(repoint::End { side: from, url: from_url }, repoint::End { side: to, url: to_url })).collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "discovered": discovered.as_ref().ok(),
        "discovery_error": discovered.as_ref().err(),
        "handed_over": record.as_ref().ok().and_then(Option::as_ref),
        "record_error": record.as_ref().err(),
        "repoint": repoint,
    })
}
