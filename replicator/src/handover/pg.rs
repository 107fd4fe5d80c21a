//! The hand-over on PostgreSQL: consumers are logical replication slots.

use super::{Consumer, Handed};
use crate::config::handover::{Handover, OnLag};
use crate::error::{Error, HandoverRefusal, Side};
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use turnout_decoders::schema::quote_ident;
use turnout_decoders::Lsn;

/// How often the waits look at a slot again.
const POLL: Duration = Duration::from_millis(100);

/// Every consumer of blue's log: slots that are not turnout's (temporary ones are a session's own and
/// go with it) and connected standbys that use no slot.
pub async fn discover(blue: &Client, carried: &[Handover]) -> Result<Vec<Consumer>, Error> {
    let slots = blue
        .query(
            "SELECT s.slot_name::text, s.slot_type::text, s.plugin::text, s.database::text, s.active, \
                    NULLIF(COALESCE(a.application_name, '') || COALESCE('@' || host(a.client_addr), ''), ''), \
                    COALESCE(s.confirmed_flush_lsn, s.restart_lsn)::text, \
                    pg_wal_lsn_diff(pg_current_wal_lsn(), COALESCE(s.confirmed_flush_lsn, s.restart_lsn))::int8 \
             FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid \
             WHERE NOT s.temporary AND s.slot_name::text NOT LIKE 'turnout\\_%' ORDER BY 1",
            &[],
        )
        .await
        .map_err(Error::blue("listing replication slots"))?;
    let current: String = blue.query_one("SELECT current_database()::text", &[]).await.map_err(Error::blue("reading the database name"))?.get(0);
    let mut out: Vec<Consumer> = slots
        .iter()
        .map(|r| {
            let (name, kind): (String, String) = (r.get(0), r.get(1));
            let database: Option<String> = r.get(3);
            let carried = kind == "logical" && database.as_deref() == Some(current.as_str()) && carries(carried, &name);
            Consumer { name, kind, plugin: r.get(2), database, active: r.get(4), client: r.get(5), position: r.get(6), behind_bytes: r.get(7), carried }
        })
        .collect();
    let standbys = blue
        .query(
            "SELECT COALESCE(NULLIF(r.application_name, ''), 'pid ' || r.pid)::text, host(r.client_addr), r.replay_lsn::text, \
                    pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::int8 \
             FROM pg_stat_replication r WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots s WHERE s.active_pid = r.pid) ORDER BY 1",
            &[],
        )
        .await
        .map_err(Error::blue("listing connected standbys"))?;
    out.extend(standbys.iter().map(|r| Consumer {
        name: r.get(0),
        kind: "standby".into(),
        plugin: None,
        database: None,
        active: true,
        client: r.get(1),
        position: r.get(2),
        behind_bytes: r.get(3),
        carried: false,
    }));
    Ok(out)
}

/// Whether the entries carry the logical slot `name`.
fn carries(entries: &[Handover], name: &str) -> bool {
    entries.iter().any(|e| e.every_slot() || e.slot == name)
}

/// One carried consumer, its slot made on green, before the fence.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub slot: String,
    pub plugin: String,
    pub publications: Vec<String>,
    /// What the slot on the fenced side had confirmed when the wait ended.
    pub consumed: Lsn,
    pub wait: Duration,
    pub on_lag: OnLag,
    /// The role of the session reading the slot on the fenced side, when one was.
    pub reader: Option<String>,
    pub filters_origin: bool,
}

/// Before the fence: for every carried consumer, its publications made (or found equal) on the side
/// writes move to (`to`), its slot made there (or found idle) and moved up to that side's log now,
/// and its slot on the fenced side (`from`) read up to where that side's log stood when the wait
/// began — within the entry's `wait`, or refused (`on_lag = "refuse"`). Idempotent: a slot an undone
/// cutover made is used again. `sides` names (from, to).
/// `read_to`: for a rollback, where each consumer the cutover carried must have read the side writes
/// return to (the cutover's fence) before its slot there may move to the rollback's hand-off — or
/// the part it had not read would be skipped.
pub async fn prepare(
    from: &Client,
    to: &Client,
    entries: &[Handover],
    (from_side, to_side): (crate::error::Side, crate::error::Side),
    read_to: &[(String, Lsn)],
) -> Result<Vec<Prepared>, Error> {
    let mut prepared = Vec::new();
    let major = crate::source::pg::definitions::major(from, from_side).await?;
    for Carried { slot, plugin, two_phase, entry } in resolve(from, from_side, entries).await? {
        // A slot its consumer dropped there is made anew at the hand-off: nothing of it is skipped.
        if let Some((_, fence)) = read_to.iter().find(|(s, _)| *s == slot) {
            if let Some((false, at)) = confirmed_reaches(to, to_side, &slot, *fence, Duration::ZERO).await? {
                return Err(HandoverRefusal::BehindFence { slot: slot.clone(), side: to_side, at: at.to_string(), fence: fence.to_string() }.into());
            }
        }
        for publication in &entry.publications {
            same_publication((from, from_side), (to, to_side), publication).await?;
        }
        make_slot(to, to_side, &slot, &plugin, two_phase).await?;
        let reader: Option<String> = from
            .query_opt("SELECT a.usename::text FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE s.slot_name = $1", &[&slot])
            .await
            .map_err(Error::sql(from_side, format!("reading who reads slot {slot}")))?
            .and_then(|r| r.get(0));
        let filters_origin = filters_origin(entry, &slot, &plugin, major);
        prepared.push(Prepared {
            slot,
            plugin,
            publications: entry.publications.clone(),
            consumed: Lsn(0),
            wait: entry.wait()?,
            on_lag: entry.on_lag,
            reader,
            filters_origin,
        });
    }
    let now: String = from.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.map_err(Error::sql(from_side, "reading the log position"))?.get(0);
    let target = lsn_of(&now)?;
    for p in &mut prepared {
        let Some((reached, at)) = confirmed_reaches(from, from_side, &p.slot, target, p.wait).await? else {
            return Err(HandoverRefusal::SlotGone { slot: p.slot.clone(), side: from_side }.into());
        };
        p.consumed = at;
        if !reached && p.on_lag == OnLag::Refuse {
            return Err(HandoverRefusal::Behind {
                slot: p.slot.clone(),
                side: from_side,
                at: at.to_string(),
                target: target.to_string(),
                wait_s: p.wait.as_secs(),
            }
            .into());
        }
    }
    // Move the slots up to the other side's log now, after the waits: inside the pause only what was
    // applied since is decoded.
    advance(to, to_side, &prepared).await?;
    Ok(prepared)
}

/// Whether the entry's `filters_origin` holds: a plugin that cannot leave out changes with an origin
/// on this server does not, whatever the entry says (the stream back then waits for the reader to
/// let go, as for any reader).
fn filters_origin(entry: &Handover, slot: &str, plugin: &str, major: i32) -> bool {
    if entry.filters_origin && super::origin_filter(plugin, major).is_none() {
        tracing::warn!(
            "[[handover]] slot {slot}: filters_origin = true, but its plugin {plugin} cannot leave out changes with an origin on \
             PostgreSQL {major}; the stream back waits for its reader to let go of the slot as for any reader"
        );
        return false;
    }
    entry.filters_origin
}

/// The slots the entries carry, with the plugin of each and its entry; a named slot that `from`
/// lacks (or that is not a logical slot of this database) is refused.
async fn resolve<'a>(from: &Client, side: Side, entries: &'a [Handover]) -> Result<Vec<Carried<'a>>, Error> {
    // `two_phase` exists from PostgreSQL 14 on: read through the row's JSON, absent before.
    let rows = from
        .query(
            "SELECT slot_name::text, plugin::text, COALESCE((to_jsonb(s) ->> 'two_phase')::bool, false) FROM pg_replication_slots s \
             WHERE slot_type = 'logical' AND NOT temporary AND database = current_database() AND slot_name::text NOT LIKE 'turnout\\_%' \
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(Error::sql(side, "listing logical slots"))?;
    let slots: Vec<(String, String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let mut out: Vec<Carried> = Vec::new();
    for entry in entries.iter().filter(|e| !e.every_slot()) {
        let Some((name, plugin, two_phase)) = slots.iter().find(|(n, _, _)| *n == entry.slot) else {
            return Err(HandoverRefusal::NoSuchSlot { slot: entry.slot.clone(), side }.into());
        };
        out.push(Carried { slot: name.clone(), plugin: entry.plugin.clone().unwrap_or_else(|| plugin.clone()), two_phase: *two_phase, entry });
    }
    if let Some(all) = entries.iter().find(|e| e.every_slot()) {
        for (name, plugin, two_phase) in &slots {
            if !out.iter().any(|c| c.slot == *name) {
                out.push(Carried { slot: name.clone(), plugin: plugin.clone(), two_phase: *two_phase, entry: all });
            }
        }
    }
    Ok(out)
}

/// A slot on the fenced side that an entry carries.
struct Carried<'a> {
    slot: String,
    plugin: String,
    /// The slot decodes prepared transactions at PREPARE (PostgreSQL 14 and newer): the one made on
    /// the other side must too, or its consumer would see them differently.
    two_phase: bool,
    entry: &'a Handover,
}

/// A publication the consumer reads, on green as on blue: made there with blue's definition when
/// green lacks it; compared when green has it. A definition turnout does not make (row filters,
/// column lists, schemas) is refused when green lacks it.
async fn same_publication((from, from_side): (&Client, Side), (to, to_side): (&Client, Side), name: &str) -> Result<(), Error> {
    let Some(on_from) = publication(from, from_side, name).await? else {
        return Err(HandoverRefusal::NoSuchPublication { name: name.to_owned(), side: from_side }.into());
    };
    match publication(to, to_side, name).await? {
        Some(on_to) if on_to == on_from => Ok(()),
        Some(on_to) => Err(HandoverRefusal::PublicationDiffers {
            name: name.to_owned(),
            from: from_side,
            to: to_side,
            on_from: on_from.describe(),
            on_to: on_to.describe(),
        }
        .into()),
        None if on_from.filtered => Err(HandoverRefusal::PublicationFiltered { name: name.to_owned(), from: from_side, to: to_side }.into()),
        None => {
            let tables = if on_from.all_tables {
                "FOR ALL TABLES".to_string()
            } else if on_from.tables.is_empty() {
                String::new()
            } else {
                format!("FOR TABLE {}", on_from.tables.iter().map(|t| qualified(t)).collect::<Vec<_>>().join(", "))
            };
            let sql = format!(
                "CREATE PUBLICATION {} {tables} WITH (publish = '{}', publish_via_partition_root = {})",
                quote_ident(name),
                on_from.publish,
                on_from.via_root
            );
            to.batch_execute(&sql).await.map_err(Error::sql(to_side, format!("creating publication {name}")))?;
            tracing::info!("created publication {name} on {to_side} as on {from_side}");
            Ok(())
        }
    }
}

/// `schema.table` as stored in `pg_publication_tables` (two parts), quoted.
fn qualified(text: &str) -> String {
    let (schema, table) = text.split_once('\u{1f}').unwrap_or(("public", text));
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// A publication's definition, as far as the hand-over compares it.
#[derive(Debug, PartialEq, Eq)]
struct Publication {
    all_tables: bool,
    publish: String,
    via_root: bool,
    tables: Vec<String>,
    filtered: bool,
}

impl Publication {
    fn describe(&self) -> String {
        format!(
            "{}, publish '{}', via root {}",
            if self.all_tables { "all tables".into() } else { format!("tables [{}]", self.tables.join(", ").replace('\u{1f}', ".")) },
            self.publish,
            self.via_root
        )
    }
}

async fn publication(client: &Client, side: Side, name: &str) -> Result<Option<Publication>, Error> {
    let Some(row) = client
        .query_opt(
            "SELECT puballtables, concat_ws(', ', CASE WHEN pubinsert THEN 'insert' END, CASE WHEN pubupdate THEN 'update' END, \
                    CASE WHEN pubdelete THEN 'delete' END, CASE WHEN pubtruncate THEN 'truncate' END), pubviaroot \
             FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(Error::sql(side, format!("reading publication {name}")))?
    else {
        return Ok(None);
    };
    // Row filters and column lists exist from PostgreSQL 15 on.
    let v15 = client
        .query_one("SELECT current_setting('server_version_num')::int >= 150000", &[])
        .await
        .map_err(Error::sql(side, "reading the version"))?
        .get::<_, bool>(0);
    let filter = if v15 {
        "(rowfilter IS NOT NULL OR attnames IS NOT NULL AND cardinality(attnames) < (SELECT count(*) FROM pg_attribute WHERE attrelid = format('%I.%I', schemaname, tablename)::regclass AND attnum > 0 AND NOT attisdropped))"
    } else {
        "false"
    };
    let tables = client
        .query(&format!("SELECT schemaname::text || chr(31) || tablename::text, {filter} FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1"), &[&name])
        .await
        .map_err(Error::sql(side, format!("listing the tables of publication {name}")))?;
    Ok(Some(Publication {
        all_tables: row.get(0),
        publish: row.get(1),
        via_root: row.get(2),
        filtered: tables.iter().any(|r| r.get::<_, Option<bool>>(1).unwrap_or(false)),
        tables: tables.iter().map(|r| r.get(0)).collect(),
    }))
}

/// The consumer's slot on the side writes move to: made with `plugin`, or the one found there (an
/// undone cutover's, or before a rollback the one the consumer read before the cutover), if idle and
/// of that plugin.
async fn make_slot(to: &Client, side: Side, slot: &str, plugin: &str, two_phase: bool) -> Result<(), Error> {
    let existing = to
        .query_opt(
            "SELECT slot_type::text, plugin::text, active, COALESCE((to_jsonb(s) ->> 'two_phase')::bool, false) FROM pg_replication_slots s \
             WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(Error::sql(side, format!("reading slot {slot}")))?;
    match existing {
        Some(r) if r.get::<_, String>(0) != "logical" || r.get::<_, Option<String>>(1).as_deref() != Some(plugin) || r.get::<_, bool>(3) != two_phase => {
            Err(HandoverRefusal::SlotOfAnotherKind { side, slot: slot.to_owned(), plugin: plugin.to_owned(), two_phase }.into())
        }
        Some(r) if r.get::<_, bool>(2) => Err(HandoverRefusal::SlotInUse { side, slot: slot.to_owned() }.into()),
        Some(_) => Ok(()),
        None => {
            // Creating a logical slot waits for every transaction holding an xid there (prepared ones
            // too): bounded, so the cutover refuses instead of hanging before the fence.
            to.batch_execute("SET statement_timeout = '30s'").await.map_err(Error::sql(side, "bounding the slot's creation"))?;
            // The four-argument form exists from PostgreSQL 14 on; only a two-phase slot needs it.
            let made = match two_phase {
                true => to.query_one("SELECT lsn::text FROM pg_create_logical_replication_slot($1, $2, false, true)", &[&slot, &plugin]).await,
                false => to.query_one("SELECT lsn::text FROM pg_create_logical_replication_slot($1, $2)", &[&slot, &plugin]).await,
            };
            let _ = to.batch_execute("RESET statement_timeout").await;
            made.map_err(Error::sql(
                side,
                format!(
                    "creating slot {slot} ({plugin}) for its consumer (within 30 s: it waits for every transaction on {side} holding an xid, \
                     prepared ones included — end them)"
                ),
            ))?;
            tracing::info!("created slot {slot} ({plugin}) on {side} for the hand-over");
            Ok(())
        }
    }
}

/// Moves every prepared slot on `to` to its flushed log position, in one statement; returns it.
async fn advance(to: &Client, side: Side, prepared: &[Prepared]) -> Result<Lsn, Error> {
    let slots: Vec<&str> = prepared.iter().map(|p| p.slot.as_str()).collect();
    let row = to
        .query_one(
            "SELECT h.lsn::text, (SELECT count(*) FROM unnest($1::text[]) AS s(name), LATERAL pg_replication_slot_advance(s.name, h.lsn)) \
             FROM (SELECT pg_current_wal_flush_lsn() AS lsn) h",
            &[&slots],
        )
        .await
        .map_err(Error::sql(side, "moving the consumers' slots to the log's position"))?;
    lsn_of(&row.get::<_, String>(0))
}

/// Inside the pause, after the proof: every prepared slot on the side writes move to (`to`) moved to
/// that side's flushed log position — past all of turnout's apply, before any write of the
/// application — and proven to stand exactly there. `fence` is the fenced side's sentinel.
pub async fn hand_off(to: &Client, side: Side, prepared: &[Prepared], fence: Option<String>, fenced: Option<String>) -> Result<Vec<Handed>, Error> {
    let at = advance(to, side, prepared).await?;
    let slots: Vec<&str> = prepared.iter().map(|p| p.slot.as_str()).collect();
    let rows = to
        .query("SELECT slot_name::text, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = ANY($1)", &[&slots])
        .await
        .map_err(Error::sql(side, "reading the consumers' slots"))?;
    let mut handed = Vec::new();
    for p in prepared {
        let stands = rows.iter().find(|r| r.get::<_, String>(0) == p.slot).and_then(|r| r.get::<_, Option<String>>(1));
        if stands.as_deref().map(lsn_of).transpose()? != Some(at) {
            return Err(
                HandoverRefusal::NotAtHandOff { slot: p.slot.clone(), stands: stands.unwrap_or_else(|| "nowhere (gone)".into()), at: at.to_string() }.into()
            );
        }
        handed.push(Handed {
            consumer: p.slot.clone(),
            plugin: p.plugin.clone(),
            publications: p.publications.clone(),
            consumed: p.consumed.to_string(),
            fence: fence.clone(),
            committed_before: fenced.clone(),
            resume: at.to_string(),
            gap: None,
            wait_ms: u64::try_from(p.wait.as_millis()).unwrap_or(u64::MAX),
            reader: p.reader.clone(),
            filters_origin: p.filters_origin,
            reached: false,
            note: None,
        });
    }
    Ok(handed)
}

/// After the switch, before the stream that follows applies to the fenced side (`fenced`, named
/// `side`): the consumer's slot there read up to the fence by `deadline` (`reached`); one that has
/// not gets its gap recorded (its slot there is kept).
pub async fn read_to_fence(fenced: &Client, h: &mut Handed, side: crate::error::Side, deadline: Instant) -> Result<(), Error> {
    let Some(fence) = h.fence.as_deref().map(lsn_of).transpose()? else { return Ok(()) };
    // Every write the fenced side committed ends at `committed_before` (the fence when unknown): a
    // reader that stopped at the fence confirmed at least that much — one that prints the sentinel's
    // message but not its empty commit (test_decoding's skip-empty-xacts) confirms the message, short
    // of the fence.
    let needed = h.committed_before.as_deref().map(lsn_of).transpose()?.unwrap_or(fence);
    // A consumer that dropped its slot there itself (Debezium's slot.drop.on.stop, an operator
    // after --endpos) has nothing left to wait for; what it read is its own to say.
    let Some((reached, at)) = confirmed_reaches(fenced, side, &h.consumer, needed, deadline.saturating_duration_since(Instant::now())).await? else {
        tracing::warn!("the consumer's slot {} is gone from {side}: whether it read up to the fence {fence} is its own to say", h.consumer);
        h.gap = Some(format!("unknown (slot dropped on {side})..{fence}"));
        return Ok(());
    };
    if reached {
        h.reached = true;
    } else {
        tracing::warn!("the consumer of slot {} has read {side} only up to {at}, not to the fence {fence}: it must still read {at}..{fence} there", h.consumer);
        h.gap = Some(format!("{at}..{fence}"));
    }
    Ok(())
}

/// Then, for a consumer whose reader does not leave out changes with an origin: its reader let go
/// of the slot on the fenced side (it stopped at the fence) by `deadline`; one still attached would
/// receive the stream's changes there too, which its note says.
pub async fn let_go(fenced: &Client, h: &mut Handed, side: crate::error::Side, deadline: Instant) -> Result<(), Error> {
    if h.filters_origin || released(fenced, side, &h.consumer, deadline).await? {
        return Ok(());
    }
    let note = format!(
        "its reader still read {side} past the fence {} when its wait ran out: it receives the changes applied to {side} from now on, \
         which it also receives where writes went — stop it, or have it leave out changes with an origin",
        h.fence.as_deref().unwrap_or_default()
    );
    tracing::warn!("the consumer of slot {}: {note}", h.consumer);
    h.note = Some(note);
    Ok(())
}

/// Waits until `deadline` for no session to read `slot` on `client`; whether none does.
pub(super) async fn released(client: &Client, side: Side, slot: &str, deadline: Instant) -> Result<bool, Error> {
    loop {
        let active = client
            .query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
            .await
            .map_err(Error::sql(side, format!("reading slot {slot}")))?
            .is_some_and(|r| r.get::<_, bool>(0));
        if !active {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Drops `slot` on `side` once its consumer moved on (`why`), unless it is being read; says which.
pub async fn drop_slot(client: &Client, slot: &str, side: crate::error::Side, why: &str) -> String {
    let dropped = client.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", &[&slot]).await;
    match dropped {
        Ok(rows) if rows.len() == 1 => format!("dropped slot {slot} on {side}: {why}"),
        Ok(_) => format!(
            "WARNING: slot {slot} on {side} is still being read (or gone), so it was kept; it holds {side}'s WAL until dropped: \
             SELECT pg_drop_replication_slot('{slot}') there once its consumer moved"
        ),
        Err(e) => format!("WARNING: dropping slot {slot} on {side} failed ({}); drop it there by hand", turnout_sinks::pg::describe_error(&e)),
    }
}

/// Waits up to `wait` for `slot`'s confirmed position on `client` (`side`) to reach `target`;
/// returns whether it did and where it stands — none when there is no slot of that name.
async fn confirmed_reaches(client: &Client, side: Side, slot: &str, target: Lsn, wait: Duration) -> Result<Option<(bool, Lsn)>, Error> {
    let deadline = Instant::now() + wait;
    loop {
        let row = client
            .query_opt("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
            .await
            .map_err(Error::sql(side, format!("reading slot {slot}")))?;
        let Some(row) = row else { return Ok(None) };
        let Some(text) = row.get::<_, Option<String>>(0) else {
            return Err(HandoverRefusal::NoConfirmedPosition { side, slot: slot.to_owned() }.into());
        };
        let at = lsn_of(&text)?;
        if at >= target || Instant::now() >= deadline {
            return Ok(Some((at >= target, at)));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn lsn_of(text: &str) -> Result<Lsn, Error> {
    text.parse().map_err(|e| Error::Internal(format!("an LSN a server answered, '{text}', does not parse: {e}")))
}
