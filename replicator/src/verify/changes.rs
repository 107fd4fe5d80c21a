//! The continuous verify's re-check of what changed: between whole runs it compares only the chunks
//! holding keys the stream changed since the last run ([`crate::pipeline::changed`]), each a chunk
//! of the last whole run, and merges what it found into the kept result.
//!
//! Guarantees:
//! - A chunk is re-checked whole, every row in its range: a difference anywhere in a changed chunk
//!   is found, whatever changed it.
//! - Compared whole instead: a table whose whole run found a difference (until it is equal again),
//!   a table marked whole, one whose key is not one integer column, or one the last run did not
//!   compare (added to the selection).
//! - The merged result keeps the whole run's snapshot times (the cutover's gate ages it by the whole
//!   run) and says which whole run it builds on (`whole_run_finished_at_us`). Rows the stream did not
//!   change are compared again only by the next whole run: a difference it does not carry (a write
//!   on green that is not turnout's, a cascade only green's foreign keys made) shows up only then.
//!   Hence re-checks are the operator's choice (`verify.whole_every`).

use super::live::{LiveReport, Plan, Range, Recheck};
use crate::compared::{Bound, Finished, TableState};
use crate::pipeline::changed::{Dirty, Taken};
use std::collections::{BTreeMap, BTreeSet};

/// What to re-check: the tables of `last` (the kept result) that `taken` says changed, each whole or
/// only its changed chunks. Empty: nothing changed.
pub fn plan(last: &Finished, taken: &Taken) -> Recheck {
    let mut plans = BTreeMap::new();
    for t in &last.tables {
        if !t.equal() || !t.done || taken.everything.is_some() {
            plans.insert(t.table.clone(), Plan::Whole);
        } else if let Some(plan) = taken.tables.get(&t.table).and_then(|dirty| plan_table(t, dirty)) {
            plans.insert(t.table.clone(), plan);
        }
    }
    Recheck { plans, known: last.tables.iter().map(|t| t.table.clone()).collect() }
}

/// The chunks of `t` holding `dirty`'s keys, or the whole table; none if no key changed.
fn plan_table(t: &TableState, dirty: &Dirty) -> Option<Plan> {
    let (Some(column), None) = (&dirty.column, &dirty.whole) else { return Some(Plan::Whole) };
    if dirty.keys.is_empty() {
        return None;
    }
    let Some(uppers) = integer_uppers(&t.bounds) else { return Some(Plan::Whole) };
    let chosen: BTreeSet<usize> = dirty.keys.keys().map(|k| uppers.partition_point(|u| u.is_some_and(|u| u < *k))).collect();
    let ranges =
        chosen.into_iter().map(|i| Range { lower: i.checked_sub(1).and_then(|p| t.bounds[p].upper.clone()), upper: t.bounds[i].upper.clone() }).collect();
    Some(Plan::Chunks { column: column.clone(), ranges })
}

/// The chunks' upper keys as integers, when every chunk but the last ends at one integer key, in
/// increasing order, and the last runs to the end.
fn integer_uppers(bounds: &[Bound]) -> Option<Vec<Option<i128>>> {
    let (last, rest) = bounds.split_last()?;
    if last.upper.is_some() {
        return None;
    }
    let mut out = Vec::with_capacity(bounds.len());
    for b in rest {
        let n = match b.upper.as_deref() {
            Some([one]) => one.parse::<i128>().ok()?,
            _ => return None,
        };
        if out.last().is_some_and(|p: &Option<i128>| p.is_some_and(|p| p >= n)) {
            return None;
        }
        out.push(Some(n));
    }
    out.push(None);
    Some(out)
}

/// `last` with what `report` re-checked merged in: tables compared whole replace theirs, re-checked
/// chunks replace theirs; the rest is carried. Snapshot times and positions: the whole run's
/// (`whole`), then the re-check's.
pub fn merge(last: &Finished, whole: &(Vec<String>, Vec<i64>), report: &LiveReport, now_us: i64) -> Finished {
    let fresh: BTreeMap<&str, &TableState> = report.tables.iter().map(|t| (t.table.as_str(), t)).collect();
    let mut tables: Vec<TableState> = last
        .tables
        .iter()
        .map(|t| match fresh.get(t.table.as_str()) {
            Some(re) if report.compared_whole.contains(&t.table) => (*re).clone(),
            Some(re) => merge_chunks(t, re),
            None => t.clone(),
        })
        .collect();
    tables.extend(report.tables.iter().filter(|t| !last.tables.iter().any(|l| l.table == t.table)).cloned());
    let mut positions = whole.0.clone();
    positions.extend(report.round_positions.iter().map(ToString::to_string));
    let mut rounds_at_us = whole.1.clone();
    rounds_at_us.extend(report.rounds_at_us.iter().copied());
    let whole_run_finished_at_us = last.whole_run_finished_at_us.or(Some(last.finished_at_us));
    Finished { tables, positions, rounds_at_us, finished_at_us: now_us, whole: true, whole_run_finished_at_us, ..last.clone() }
}

/// `base` with the chunks `re` compared again in place of its own.
fn merge_chunks(base: &TableState, re: &TableState) -> TableState {
    let mut t = base.clone();
    for b in &re.bounds {
        match t.bounds.iter_mut().find(|x| x.upper == b.upper) {
            Some(slot) => *slot = b.clone(),
            // Not a chunk of the base: the re-check's ranges come from it, so this is a bug; the
            // table is taken as the re-check found it, and counted differing.
            None => return TableState { differing_chunks: re.differing_chunks.max(1), ..re.clone() },
        }
    }
    t.source_rows = t.bounds.iter().map(|b| b.source_rows).sum();
    t.target_rows = t.bounds.iter().map(|b| b.target_rows).sum();
    t.differing_chunks = t.bounds.iter().filter(|b| b.differs).count() as u64;
    t.differences.clone_from(&re.differences);
    t.more_differences = re.more_differences;
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::position::Lsn;
    use turnout_decoders::Position;

    fn bound(upper: Option<i64>, rows: u64) -> Bound {
        Bound { upper: upper.map(|u| vec![u.to_string()]), source_rows: rows, target_rows: rows, differs: false }
    }

    fn table(name: &str, bounds: Vec<Bound>) -> TableState {
        let rows = bounds.iter().map(|b| b.source_rows).sum();
        TableState { table: name.into(), done: true, source_rows: rows, target_rows: rows, chunks: bounds.len() as u64, bounds, ..TableState::default() }
    }

    fn finished(tables: Vec<TableState>) -> Finished {
        Finished {
            version: crate::compared::FINISHED_VERSION,
            source: "blue:5432/app".into(),
            target: "green:5432/app".into(),
            direction: crate::status::Direction::Forward,
            whole: true,
            tables,
            positions: vec!["0/10".into()],
            rounds_at_us: vec![1],
            finished_at_us: 2,
            whole_run_finished_at_us: None,
        }
    }

    fn keys(column: &str, keys: &[i128]) -> Dirty {
        Dirty { column: Some(column.into()), keys: keys.iter().map(|k| (*k, std::sync::Arc::new(Position::Pg(Lsn(5))))).collect(), whole: None }
    }

    #[test]
    fn changed_keys_pick_the_chunks_that_hold_them() {
        let last = finished(vec![table("public.t", vec![bound(Some(100), 100), bound(Some(200), 100), bound(Some(300), 100), bound(None, 7)])]);
        let mut taken = Taken::default();
        taken.tables.insert("public.t".into(), keys("id", &[-5, 100, 150, 5000]));
        let plan = plan(&last, &taken).plans;
        let Plan::Chunks { column, ranges } = &plan["public.t"] else { panic!("{plan:?}") };
        assert_eq!(column, "id");
        let got: Vec<(Option<String>, Option<String>)> =
            ranges.iter().map(|r| (r.lower.as_ref().map(|k| k[0].clone()), r.upper.as_ref().map(|k| k[0].clone()))).collect();
        assert_eq!(got, vec![(None, Some("100".into())), (Some("100".into()), Some("200".into())), (Some("300".into()), None)]);
    }

    #[test]
    fn unchanged_tables_are_not_planned_and_anything_unsure_is_compared_whole() {
        let t = table("public.t", vec![bound(Some(100), 100), bound(None, 7)]);
        let text = TableState { bounds: vec![Bound { upper: Some(vec!["b".into()]), ..bound(None, 1) }, bound(None, 1)], ..table("public.s", vec![]) };
        let differing = TableState { differing_chunks: 1, ..table("public.d", vec![bound(None, 3)]) };
        let last = finished(vec![t, text, differing]);
        let mut taken = Taken::default();
        taken.tables.insert("public.s".into(), keys("k", &[1]));
        let plan = plan(&last, &taken).plans;
        assert!(!plan.contains_key("public.t"), "not changed");
        assert_eq!(plan["public.s"], Plan::Whole, "its chunks do not end at integers");
        assert_eq!(plan["public.d"], Plan::Whole, "it differed");
        taken.everything = Some(std::sync::Arc::new(Position::Pg(Lsn(9))));
        assert!(super::plan(&last, &taken).plans.values().all(|p| *p == Plan::Whole), "a DDL statement: every table");
        let mut taken = Taken::default();
        taken.tables.insert("public.t".into(), Dirty { whole: Some(None), ..Dirty::default() });
        assert_eq!(super::plan(&last, &taken).plans["public.t"], Plan::Whole);
    }

    #[test]
    fn a_re_check_replaces_its_chunks_and_keeps_the_whole_runs_times() {
        let last = finished(vec![table("public.t", vec![bound(Some(100), 100), bound(Some(200), 100), bound(None, 7)])]);
        let mut re = table("public.t", vec![Bound { differs: true, target_rows: 99, ..bound(Some(200), 100) }]);
        re.differing_chunks = 1;
        re.differences = vec![crate::compared::RowDiff {
            kind: crate::compared::DiffKind::Missing,
            key: vec![("id".into(), "150".into())],
            columns: vec![],
            values: vec![],
        }];
        let report = LiveReport {
            tables: vec![re],
            positions: vec![],
            direction: crate::status::Direction::Forward,
            resumed: false,
            rows: 100,
            elapsed: std::time::Duration::ZERO,
            target_only_columns: vec![],
            round_positions: vec![Position::Pg(Lsn(0x20))],
            rounds_at_us: vec![50],
            compared_whole: BTreeSet::new(),
            kept: None,
        };
        let merged = merge(&last, &(last.positions.clone(), last.rounds_at_us.clone()), &report, 60);
        let t = &merged.tables[0];
        assert!(!t.equal());
        assert_eq!((t.source_rows, t.target_rows, t.bounds.len()), (207, 206, 3));
        assert_eq!(t.differences.len(), 1);
        assert_eq!(merged.rounds_at_us, vec![1, 50], "the gate ages the result by the whole run");
        assert_eq!(merged.positions, vec!["0/10".to_owned(), "0/20".to_owned()]);
        assert_eq!(merged.finished_at_us, 60);
        assert_eq!(merged.whole_run_finished_at_us, Some(2), "it says which whole run it builds on");
    }
}
