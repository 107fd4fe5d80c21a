//! The verify gate of `turnout cutover --verify` (and `cutover.verify = true`): the cutover goes on
//! only if the last live verify (`turnout verify --live`, whose result is kept in
//! `state.dir/verify-last.json`) compared every replicated table of this direction's source, found
//! no difference, and took its oldest snapshot no longer than the allowed age ago.
//!
//! Guarantees: the gate passes only on a result it can attribute — the same source and target
//! (`host:port/database`), the same direction, every table replicated now compared, each round's
//! time known and none in the future. Anything else refuses, naming
//! what is missing and the command that supplies it; a difference refuses naming each table and
//! the keys of the rows found (up to [`NAMED`] per table).

use super::certificate::VerifyResult;
use crate::alerts::rfc3339;
use crate::compared::Finished;
use crate::config::Config;
use crate::error::{Error, Lifecycle};
use crate::status::Direction;
use std::time::Duration;
use turnout_decoders::schema::TableName;

/// Rows named per differing table in a refusal.
const NAMED: usize = 5;

impl super::Controller {
    /// The verify gate, when the request asks for it or the configuration does (`cutover.verify`
    /// gates cutovers; a rollback only when asked): passes, keeping the result for the certificate,
    /// or says why not. A request may ask for a younger verify than the configuration, never an
    /// older one.
    ///
    /// After a rollback that was not proven free of writes on blue that are not turnout's
    /// ([`crate::journal::Resumed::verify_required`]), the next cutover is gated whatever was asked.
    /// From the second generation on, the gate only takes a live verify that began after the stream
    /// resumed: one from before compared another stretch of the stream's history.
    pub(super) async fn verify_gate(&self, request: &super::Request) -> Result<(), Error> {
        let resumed = match self.direction {
            Direction::Forward => self.state.resumed().map_err(Error::during("the verify gate reading the stream's generation"))?,
            Direction::Reverse => None,
        };
        let since = resumed.as_ref().map(|r| r.at_us);
        let required = resumed.and_then(|r| r.verify_required);
        let configured = (self.direction == Direction::Forward && self.config.cutover.verify) || required.is_some();
        if !request.verify && !configured {
            return Ok(());
        }
        let allowed = self.config.cutover.verify_max_age()?;
        let max_age = match request.verify_max_age_ms.map(Duration::from_millis) {
            Some(asked) if configured => asked.min(allowed),
            Some(asked) => asked,
            None => allowed,
        };
        let result = check(&self.config, self.direction, max_age, crate::status::now_micros())
            .await?
            .map_err(|refusal| Lifecycle::Gate { refusal: refusal.to_string(), required: required.clone() })?;
        if let Some(at_us) = since.filter(|at_us| result.oldest_round_at_us < *at_us) {
            let because =
                required.as_deref().map_or_else(|| "a verify from before it compared another stretch of the stream".to_owned(), |why| format!("because {why}"));
            return Err(Lifecycle::VerifyTooOld { resumed_at: rfc3339(at_us), because, oldest: result.oldest_round_at }.into());
        }
        if let Some(why) = required {
            self.say(format!("verify gate: required after the rollback, because {why}"));
        }
        let merged = result.whole_run_finished_at.as_ref().map(|w| format!(" (the whole run of {w}, with what changed since re-checked)")).unwrap_or_default();
        self.say(format!(
            "verify gate: the live verify of {} tables ({} rows) finished {}{merged} found no difference; its oldest snapshot is {} s old",
            result.tables, result.source_rows, result.finished_at, result.age_seconds
        ));
        super::lock(&self.record).verify = Some(result);
        Ok(())
    }
}

/// Why the gate refuses the last live verify: each names what is missing and the command that
/// supplies it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GateRefusal {
    #[error("--verify: no live verify has finished for this stream; {AGAIN}")]
    NoVerify,
    #[error("--verify: the last live verify compared {compared} against {against} ({direction:?}), not this {}'s {source_now} against {target_now}; {AGAIN}", .direction_now.what())]
    OtherStream { compared: String, against: String, direction: Direction, source_now: String, target_now: String, direction_now: Direction },
    #[error("--verify: the last live verify compared one table (--table); the gate needs every table: {AGAIN}")]
    OneTable,
    #[error("--verify: the last live verify did not compare {} of the tables replicated now ({}): selected or created since; {AGAIN}", .0.len(), .0.join(", "))]
    NotCompared(Vec<String>),
    #[error("--verify: the last live verify does not say when each of its snapshots was taken (an older turnout wrote it); {AGAIN}")]
    Undated,
    #[error("--verify: the last live verify's snapshots are dated up to {}, after this machine's clock; {AGAIN}", rfc3339(*.0))]
    FromTheFuture(i64),
    #[error(
        "--verify: the last live verify (finished {}) found differences in {} tables — {}. Find their cause (`turnout verify --live \
         --show-values` prints the values), repair green, verify again, then cut over",
        rfc3339(*.finished_at_us), .tables.len(), .tables.join("; ")
    )]
    Differences { finished_at_us: i64, tables: Vec<String> },
    #[error(
        "--verify: the last live verify's oldest snapshot is {} s old, older than the {} s allowed (--verify-max-age, \
         cutover.verify_max_age); {AGAIN}", .age.as_secs(), .max_age.as_secs()
    )]
    TooOld { age: Duration, max_age: Duration },
}

/// What every refusal but a difference tells the operator to do.
const AGAIN: &str = "run `turnout verify --live` (with the sidecar streaming), then cut over";

/// Whether the last live verify lets this direction's cutover go on: the result for the
/// certificate, or the gate's refusal; an error when what the gate reads cannot be read.
pub(crate) async fn check(config: &Config, direction: Direction, max_age: Duration, now_us: i64) -> Result<Result<VerifyResult, GateRefusal>, Error> {
    // The direction's own configuration: in the rollback window green is the source, and the
    // verify kept its result in the reverse stream's state directory.
    let source_config = match direction {
        Direction::Forward => config.clone(),
        Direction::Reverse => crate::config::reversed(config),
    };
    let last = Finished::load(&source_config.state.dir).map_err(Error::during("the verify gate reading the last live verify"))?;
    let Some(last) = last else {
        return Ok(Err(GateRefusal::NoVerify));
    };
    // The pair's family is the forward configuration's (a composition's swapped one names another).
    let (source, tables) = crate::source::family::of(config).replicated(&source_config).await?;
    let target = crate::compared::address(source_config.target.url.expose());
    let tables: Vec<String> = tables.iter().map(TableName::quoted).collect();
    Ok(judge(&last, direction, &source, &target, &tables, max_age, now_us))
}

/// The gate's verdict on `last` for this direction's `source`, `target` and replicated `tables`.
fn judge(
    last: &Finished,
    direction: Direction,
    source: &str,
    target: &str,
    tables: &[String],
    max_age: Duration,
    now_us: i64,
) -> Result<VerifyResult, GateRefusal> {
    if last.direction != direction || last.source != source || last.target != target {
        return Err(GateRefusal::OtherStream {
            compared: last.source.clone(),
            against: last.target.clone(),
            direction: last.direction,
            source_now: source.to_owned(),
            target_now: target.to_owned(),
            direction_now: direction,
        });
    }
    if !last.whole {
        return Err(GateRefusal::OneTable);
    }
    let missing: Vec<String> = tables.iter().filter(|name| !last.tables.iter().any(|t| &t.table == *name && t.done)).cloned().collect();
    if !missing.is_empty() {
        return Err(GateRefusal::NotCompared(missing));
    }
    let oldest = match last.rounds_at_us.iter().min() {
        Some(oldest) if last.rounds_at_us.len() == last.positions.len() => *oldest,
        _ => return Err(GateRefusal::Undated),
    };
    if let Some(newest) = last.rounds_at_us.iter().copied().filter(|at| *at > now_us).max() {
        return Err(GateRefusal::FromTheFuture(newest));
    }
    let age = Duration::from_micros(u64::try_from(now_us - oldest).unwrap_or(0));
    let differing: Vec<String> = last.tables.iter().filter(|t| !t.equal()).map(describe).collect();
    if !differing.is_empty() {
        return Err(GateRefusal::Differences { finished_at_us: last.finished_at_us, tables: differing });
    }
    if age > max_age {
        return Err(GateRefusal::TooOld { age, max_age });
    }
    Ok(VerifyResult {
        equal: true,
        tables: last.tables.len(),
        source_rows: last.tables.iter().map(|t| t.source_rows).sum(),
        positions: last.positions.clone(),
        oldest_round_at: rfc3339(oldest),
        oldest_round_at_us: oldest,
        age_seconds: age.as_secs(),
        finished_at: rfc3339(last.finished_at_us),
        whole_run_finished_at: last.whole_run_finished_at_us.map(rfc3339),
    })
}

/// One differing table and the keys of its first rows.
fn describe(table: &crate::compared::TableState) -> String {
    let rows: Vec<String> = table.differences.iter().take(NAMED).map(crate::compared::RowDiff::describe).collect();
    let more = (table.differences.len() + usize::try_from(table.more_differences).unwrap_or(usize::MAX)).saturating_sub(rows.len());
    match (rows.is_empty(), more) {
        (true, _) => format!("{}: {} chunks differ (keyless: rows not located)", table.table, table.differing_chunks),
        (false, 0) => format!("{}: {}", table.table, rows.join(", ")),
        (false, more) => format!("{}: {} and {more} more", table.table, rows.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compared::DiffKind;
    use crate::compared::{RowDiff, TableState, FINISHED_VERSION};

    const HOUR: Duration = Duration::from_secs(3600);
    const NOW: i64 = 1_800_000_000_000_000;

    fn finished() -> Finished {
        let table = |name: &str| TableState { table: name.into(), done: true, source_rows: 10, target_rows: 10, chunks: 1, ..TableState::default() };
        Finished {
            version: FINISHED_VERSION,
            source: "blue:5432/app".into(),
            target: "green:5432/app".into(),
            direction: Direction::Forward,
            whole: true,
            tables: vec![table("public.a"), table("public.b")],
            positions: vec!["0/10".into(), "0/20".into()],
            rounds_at_us: vec![NOW - 600_000_000, NOW - 60_000_000],
            finished_at_us: NOW - 30_000_000,
            whole_run_finished_at_us: None,
        }
    }

    fn verdict(last: &Finished, tables: &[&str]) -> Result<VerifyResult, GateRefusal> {
        let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
        judge(last, Direction::Forward, "blue:5432/app", "green:5432/app", &tables, HOUR, NOW)
    }

    #[test]
    fn a_whole_equal_recent_verify_of_this_stream_passes_aged_by_its_oldest_round() {
        let result = verdict(&finished(), &["public.a", "public.b"]).expect("passes");
        assert_eq!((result.tables, result.source_rows, result.age_seconds), (2, 20, 600));
        assert!(judge(&finished(), Direction::Forward, "blue:5432/app", "green:5432/app", &[], Duration::from_secs(599), NOW)
            .expect_err("too old")
            .to_string()
            .contains("600 s old"));
    }

    #[test]
    fn anything_the_gate_cannot_attribute_is_refused_naming_it() {
        let refused = |last: Finished, tables: &[&str], says: &str| {
            let e = verdict(&last, tables).expect_err(says).to_string();
            assert!(e.contains(says), "{e}");
        };
        refused(finished(), &["public.a", "public.b", "public.c"], "did not compare 1 of the tables replicated now (public.c)");
        refused(Finished { direction: Direction::Reverse, ..finished() }, &["public.a"], "not this cutover's");
        refused(Finished { source: "other:5432/app".into(), ..finished() }, &["public.a"], "not this cutover's");
        refused(Finished { target: "elsewhere:5432/app".into(), ..finished() }, &["public.a"], "not this cutover's");
        refused(Finished { whole: false, ..finished() }, &["public.a"], "compared one table");
        refused(Finished { rounds_at_us: vec![NOW - 60_000_000], ..finished() }, &["public.a"], "does not say when");
        refused(Finished { rounds_at_us: vec![NOW + 60_000_000, NOW], ..finished() }, &["public.a"], "after this machine's clock");
        let mut differs = finished();
        differs.tables[1].differing_chunks = 1;
        differs.tables[1].record(RowDiff { kind: DiffKind::Extra, key: vec![("id".into(), "7".into())], columns: Vec::new(), values: Vec::new() });
        refused(differs, &["public.a"], "public.b: (id=7) only on the target");
        let mut unfinished = finished();
        unfinished.tables[0].done = false;
        refused(unfinished, &["public.a"], "did not compare 1");
    }
}
