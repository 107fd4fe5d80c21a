//! The verify gate of `turnout cutover --verify` (and `cutover.verify = true`): the cutover goes on
//! only if the last live verify (`turnout verify --live`, whose result is kept in
//! `state.dir/verify-last.json`) compared every replicated table of this direction's source, found
//! no difference, and took its oldest snapshot no longer than the allowed age ago.
//!
//! Guarantees: the gate passes only on a result it can attribute — the same source (`host:port/
//! database`), the same direction, the whole selection, a known age. Anything else refuses, naming
//! what is missing and the command that supplies it; a difference refuses naming each table and
//! the keys of the rows found (up to [`NAMED`] per table).

use super::certificate::VerifyResult;
use crate::alerts::rfc3339;
use crate::compared::{DiffKind, Finished};
use crate::config::Config;
use crate::status::Direction;
use std::time::Duration;

/// Rows named per differing table in a refusal.
const NAMED: usize = 5;

/// Whether the last live verify lets this direction's cutover go on: the result for the certificate,
/// or why not (one line for the operator).
pub(crate) fn check(config: &Config, direction: Direction, max_age: Duration, now_us: i64) -> Result<VerifyResult, String> {
    let again = "run `turnout verify --live` (with the sidecar streaming), then cut over";
    let last = Finished::load(&config.state.dir).map_err(|e| format!("the verify gate cannot read the last live verify: {e}"))?;
    let Some(last) = last else {
        return Err(format!("--verify: no live verify has finished for this stream; {again}"));
    };
    let source_config = match direction {
        Direction::Forward => config.clone(),
        Direction::Reverse => crate::config::reversed(config),
    };
    let source = crate::with_family!(source_config, F => F::live(&source_config).and_then(|b| crate::source::contract::compare::Backend::source(&b)))
        .map_err(|e| format!("the verify gate cannot name this stream's source: {e}"))?;
    if last.direction != direction || last.source != source {
        return Err(format!(
            "--verify: the last live verify compared {} as the source ({:?}), not this {}'s source {source}; {again}",
            last.source,
            last.direction,
            direction.what()
        ));
    }
    if !last.whole {
        return Err(format!("--verify: the last live verify compared one table (--table); the gate needs every table: {again}"));
    }
    let Some(oldest) = last.rounds_at_us.iter().min().copied() else {
        return Err(format!("--verify: the last live verify does not say when its snapshots were taken (an older turnout wrote it); {again}"));
    };
    let age = Duration::from_micros(u64::try_from(now_us.saturating_sub(oldest)).unwrap_or(0));
    let differing: Vec<String> = last.tables.iter().filter(|t| !t.equal()).map(describe).collect();
    if !differing.is_empty() {
        return Err(format!(
            "--verify: the last live verify (finished {}) found differences in {} tables — {}. Find their cause (`turnout verify --live \
             --show-values` prints the values), repair green, verify again, then cut over",
            rfc3339(last.finished_at_us),
            differing.len(),
            differing.join("; ")
        ));
    }
    if age > max_age {
        return Err(format!(
            "--verify: the last live verify's oldest snapshot is {} s old, older than the {} s allowed (--verify-max-age, \
             cutover.verify_max_age); {again}",
            age.as_secs(),
            max_age.as_secs()
        ));
    }
    Ok(VerifyResult {
        equal: true,
        tables: last.tables.len(),
        source_rows: last.tables.iter().map(|t| t.source_rows).sum(),
        positions: last.positions,
        oldest_round_at: rfc3339(oldest),
        age_seconds: age.as_secs(),
        finished_at: rfc3339(last.finished_at_us),
    })
}

/// One differing table and the keys of its first rows.
fn describe(table: &crate::compared::TableState) -> String {
    let rows: Vec<String> = table
        .differences
        .iter()
        .take(NAMED)
        .map(|d| {
            let key: Vec<String> = d.key.iter().map(|(c, v)| format!("{c}={v}")).collect();
            let kind = match d.kind {
                DiffKind::Missing => "missing on the target",
                DiffKind::Extra => "only on the target",
                DiffKind::Changed => "changed",
            };
            format!("({}) {kind}", key.join(", "))
        })
        .collect();
    let more = (table.differences.len() + usize::try_from(table.more_differences).unwrap_or(usize::MAX)).saturating_sub(rows.len());
    match (rows.is_empty(), more) {
        (true, _) => format!("{}: {} chunks differ (keyless: rows not located)", table.table, table.differing_chunks),
        (false, 0) => format!("{}: {}", table.table, rows.join(", ")),
        (false, more) => format!("{}: {} and {more} more", table.table, rows.join(", ")),
    }
}
