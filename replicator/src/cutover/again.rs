//! Cutting over again after a rollback (`cutover.iterate`): the rollback arms blue → green
//! replication as a cutover arms the reverse stream, the roles swapped; once it completed, the stream
//! runs on as its next generation — names of its own (`turnout_<id>_g2`, …: PostgreSQL's slot on
//! blue and origin on green, the MySQL family's progress record on green) — and `turnout cutover` may
//! run again with no new copy.
//!
//! Guarantees:
//! - Nothing is lost or applied twice: before the hand-off blue holds what green holds (applied by
//!   the forward stream before the cutover, or by the reverse stream from green) and whatever was
//!   written on blue bypassing the switch; after it, nothing of the reverse stream's that is not
//!   dropped, and after the switch the application's writes. PostgreSQL: the consistent point of the
//!   slot created on blue before green is fenced; the reverse apply's last writes carry its origin.
//!   MariaDB: blue's binlog position before the fence; they carry the reverse apply's GTID domain.
//!   Oracle MySQL: blue's binlog end in the pause, with green sealed, so none follow.
//! - Writes on blue that were not turnout's during the rollback window, before the hand-off, are on
//!   blue and never on green (those after it are carried, but may race the reverse stream's).
//!   Unless blue's watch counted the whole window up to the hand-off and saw none, the next cutover
//!   is gated on a live verify that began after the generation did
//!   ([`crate::journal::Resumed::verify_required`]).
//! - Beginning a generation is one synced write ([`StateStore::begin_generation`]); what the window
//!   left in the state directory (the reverse stream's state, the watches' positions) is removed
//!   before it, so a crash at any point begins it again from the same rollback journal.

use crate::config::{reversed, Config};
use crate::error::Error;
use crate::journal::{Resumed, ReverseArm};
use crate::source::Names;
use crate::state::StateStore;
use crate::state::StoreError;
use crate::status::foreign::Side;
use crate::status::Status;
use turnout_decoders::Position;

/// Begins the generation the rollback `rollback` armed (`arm`): the state store moves to it, what
/// the rollback window left is removed or released, and `/status` starts over.
pub async fn begin(config: &Config, state: &StateStore, status: &Status, arm: ReverseArm, rollback: String) -> Result<(), Error> {
    let previous = state.names()?;
    let verify_required = unproven(config, state, status, &arm.position)?;
    // What the window left: the reverse stream's and the watches' state, and a live verify's progress
    // from before, which compared another stretch of the stream (nothing resumes it; the gate refuses
    // its result anyway, [`crate::journal::Resumed::at_us`]).
    let dir = &config.state.dir;
    let left = [reversed(config).state.dir, dir.join(format!("watch-{}", Side::Green)), dir.join(format!("watch-{}", Side::Blue))]
        .into_iter()
        .chain([crate::compared::path(dir), crate::compared::background_path(dir)]);
    for path in left {
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::file("removing (what the rollback window left)", &path)(e).into());
            }
            _ => {}
        }
    }
    state.spill_clear()?;
    // The reverse stream stopped at the rollback's switch: what it holds on green goes first, so a
    // crash after the generation began leaves nothing holding green's WAL.
    let released = release(config, &previous).await;
    let (generation, from) = (arm.names.generation(), arm.position.clone());
    let resumed = Resumed { arm, rollback: rollback.clone(), at_us: crate::status::now_micros(), verify_required };
    state.begin_generation(&resumed)?;
    status.start_again();
    status.set_generation(generation);
    tracing::warn!(
        generation,
        "traffic was rolled back to blue (rollback {rollback}); replicating blue → green again from {from} as generation {generation} ({}): \
         `turnout cutover` may run again",
        if released.is_empty() { "nothing to release on green".to_owned() } else { released.join("; ") }
    );
    if let Some(why) = &resumed.verify_required {
        tracing::warn!("the next cutover is gated on a live verify that begins from now on, because {why}");
    }
    Ok(())
}

/// Releases what the generation `previous` left: its reverse stream's slot and publication on green
/// and what its watches held (PostgreSQL: the forward slot blue's watch read, which a crash right
/// after the rollback's switch can leave behind). Each thing if it exists; best effort, so it runs
/// again each time a generation after it starts ([`again_released`]).
async fn release(config: &Config, previous: &Names) -> Vec<String> {
    let released = crate::source::family::of(config).release_reverse(config, &Names::reverse_of(previous)).await;
    crate::watch::drop_objects(config, previous, &[Side::Green, Side::Blue]).await;
    released
}

/// When the generation `resumed` starts: what the generation before it left is released again, in
/// case that failed as it began (a server out of reach for a moment).
pub async fn again_released(config: &Config, resumed: &Resumed) {
    // The previous generation's reverse origin is `<its names>_back`.
    if let Some(base) = resumed.arm.forward_origin.strip_suffix("_back") {
        let previous = Names { publication: base.to_owned(), slot: base.to_owned(), origin: base.to_owned() };
        release(config, &previous).await;
    }
}

/// Why blue's rollback window is not proven free of writes that were not turnout's, if it is not:
/// blue was not watched, its watch saw such writes, or it had not read up to the hand-off.
fn unproven(config: &Config, state: &StateStore, status: &Status, hand_off: &Position) -> Result<Option<String>, Error> {
    let blue = blue_unproven(config, state, status, hand_off)?;
    // Green's watch of the next generation begins once it streams, from where green's log is then:
    // what a client still on green wrote after the rollback's switch is not counted.
    let green = crate::watch::wanted(config, Side::Green)
        .then(|| "green was not watched from the rollback's switch until the next generation's watch began".to_owned());
    let reasons: Vec<String> = blue.into_iter().chain(green).collect();
    Ok((!reasons.is_empty()).then(|| reasons.join("; and ")))
}

/// Why blue's window is not shown free of writes that bypassed the switch, if it is not.
fn blue_unproven(config: &Config, state: &StateStore, status: &Status, hand_off: &Position) -> Result<Option<String>, Error> {
    if !crate::watch::watching(config, status, Side::Blue) {
        let why = status.watched(Side::Blue).filter(|w| w.state == crate::watch::UNAVAILABLE).and_then(|w| w.error);
        let why = why.map_or_else(|| "[watch] blue = false".to_owned(), |e| format!("unavailable: {e}"));
        return Ok(Some(format!("blue was not watched in the rollback window for writes that are not turnout's ({why})")));
    }
    let kept = crate::watch::load(state, Side::Blue)?;
    if kept.seen > 0 {
        return Ok(Some(format!(
            "{} writes on blue in the rollback window were not turnout's: those before the hand-off are on blue and never reached green",
            kept.seen
        )));
    }
    // Counted: read up to where the watch closed at the rollback's switch (a mark there, read
    // after the switch), or to where it stood then.
    let counted = crate::watch::counted_through(status, Side::Blue);
    let through = turnout_decoders::Position::latest([counted, kept.through].into_iter().flatten())?;
    match through {
        Some(through) if through.reached(hand_off)? => Ok(None),
        Some(through) => Ok(Some(format!("blue's watch counted blue's log only to {through}, not to the hand-off at {hand_off}"))),
        None => Ok(Some(format!(
            "blue's watch cannot show it counted blue's log up to the hand-off at {hand_off} (it had not read that far, or a restart lost \
             how far it read)"
        ))),
    }
}
