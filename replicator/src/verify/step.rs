//! Chunks of a one-column integer key cut by value instead of by row count.
//!
//! A chunk's upper bound by row count is the key of its `n`th row: a read of `n` index entries on
//! the source before the chunk is compared, under the lock that gives chunks out in key order. When
//! the key is one integer column, the bound is computed instead: the chunk after `lower` ends at
//! `lower + width`, and `width` follows the rows the compared chunks actually held, so a dense key
//! gets chunks of about `chunk_rows` rows and a sparse one wider ranges.
//!
//! What this changes is only where chunks end. Every chunk is still `(lower, upper]` of the one
//! before it, the first is open below and the last (the one that reaches the source's largest key
//! in this snapshot) open above, so the chunks of a round still cover every key on either side,
//! rows green has below or above blue's keys included. A chunk may hold more or fewer rows than
//! `chunk_rows` where the density changes; its sum costs the same per row, and a differing chunk is
//! still halved by row count when its rows are located.

use crate::source::contract::compare::{Key, Range};

/// How far one chunk's width may grow or shrink from what the last compared chunk had.
const MAX_FACTOR: i128 = 4;

/// The value steps of one table's chunks in one round: its smallest and largest key in the source's
/// snapshot and the current width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stepper {
    min: i128,
    max: i128,
    width: i128,
    target: i128,
}

impl Stepper {
    /// Steps between `min` and `max` (the source's smallest and largest key), aiming at `chunk_rows`
    /// rows a chunk; the first chunk is `width` wide (what the round before learnt), or assumes a
    /// dense key.
    pub fn new(min: i128, max: i128, chunk_rows: u64, width: Option<i128>) -> Stepper {
        let target = i128::from(chunk_rows.max(1));
        Stepper { min, max, width: width.unwrap_or(target).max(1), target }
    }

    /// The width of the next chunk.
    pub fn width(&self) -> i128 {
        self.width
    }

    /// The upper bound of the chunk after `lower` (from the start when none): `Some(None)` when the
    /// chunk reaches the source's largest key (it is the last, open above), and `None` when `lower` is
    /// not an integer, which no key of this table is (then the chunk is cut by row count).
    pub fn upper(&self, lower: Option<&Key>) -> Option<Option<Key>> {
        let from = match lower {
            None => self.min.checked_sub(1)?,
            Some(key) => single(key)?,
        };
        Some(from.checked_add(self.width).filter(|upper| *upper < self.max).map(|upper| vec![upper.to_string()]))
    }

    /// Learns from a compared chunk: `rows` source rows in `range`. The next width is the one that
    /// would have given that chunk `chunk_rows` rows, at most [`MAX_FACTOR`] times wider or narrower.
    pub fn observe(&mut self, range: &Range, rows: i64) {
        let lower = match &range.lower {
            None => self.min.checked_sub(1),
            Some(key) => single(key),
        };
        let (Some(lower), Some(upper)) = (lower, range.upper.as_ref().and_then(single)) else { return };
        let Some(width) = upper.checked_sub(lower).filter(|w| *w > 0) else { return };
        let rows = i128::from(rows.max(0));
        let next = if rows == 0 {
            width.saturating_mul(MAX_FACTOR)
        } else {
            let scaled = width.saturating_mul(self.target) / rows;
            scaled.clamp(width / MAX_FACTOR, width.saturating_mul(MAX_FACTOR))
        };
        self.width = next.max(1);
    }
}

/// The integer of a one-column key.
fn single(key: &Key) -> Option<i128> {
    match key.as_slice() {
        [one] => one.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: i128) -> Key {
        vec![n.to_string()]
    }

    /// Walks a round's chunks the way verify gives them out, each observed with the rows of `keys`
    /// it holds; returns the chunks.
    fn walk(keys: &[i128], chunk_rows: u64) -> Vec<Range> {
        let mut stepper = Stepper::new(keys[0], keys[keys.len() - 1], chunk_rows, None);
        let mut lower = None;
        let mut out = Vec::new();
        loop {
            let upper = stepper.upper(lower.as_ref()).expect("integer bounds");
            let range = Range { lower: lower.clone(), upper: upper.clone() };
            let (low, up) = (lower.as_ref().and_then(single), upper.as_ref().and_then(single));
            let inside = keys.iter().filter(|k| low.is_none_or(|l| **k > l) && up.is_none_or(|u| **k <= u));
            stepper.observe(&range, inside.count() as i64);
            out.push(range);
            match upper {
                Some(u) => lower = Some(u),
                None => return out,
            }
        }
    }

    #[test]
    fn the_chunks_cover_every_key_once_open_at_both_ends() {
        let keys: Vec<i128> = (0..5_000).map(|i| i * i % 100_003 - 50_000).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let chunks = walk(&keys, 100);
        assert_eq!(chunks.first().map(|c| &c.lower), Some(&None));
        assert_eq!(chunks.last().map(|c| &c.upper), Some(&None));
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].upper, pair[1].lower, "each chunk starts where the one before ends");
        }
    }

    #[test]
    fn a_dense_key_gets_chunks_of_the_asked_rows_and_a_sparse_one_wider_ranges() {
        let dense: Vec<i128> = (1..=20_000).collect();
        let chunks = walk(&dense, 200);
        assert_eq!(chunks.len(), 100, "{chunks:?}");
        let sparse: Vec<i128> = (1..=20_000).map(|i| i * 1_000_000).collect();
        let chunks = walk(&sparse, 200);
        // The width grows by at most 4 a chunk: 200 → 2·10^8 takes 10 chunks, then about 100.
        assert!(chunks.len() < 120, "{} chunks", chunks.len());
        let widths: Vec<i128> = chunks.iter().filter_map(|r| Some(single(r.upper.as_ref()?)? - single(r.lower.as_ref()?)?)).collect();
        let last = widths.last().copied().unwrap_or_default();
        assert!((199_000_000..=201_000_000).contains(&last), "the width settles at 200 keys' worth: {last}");
    }

    #[test]
    fn bounds_at_the_ends_of_the_integer_range_do_not_overflow() {
        let stepper = Stepper::new(i128::from(i64::MIN), i128::from(u64::MAX), 10, None);
        assert_eq!(stepper.upper(None), Some(Some(key(i128::from(i64::MIN) + 9))));
        assert_eq!(stepper.upper(Some(&key(i128::from(u64::MAX) - 5))), Some(None));
        assert_eq!(stepper.upper(Some(&vec!["x".into()])), None, "not an integer: cut by row count");
        let mut wide = Stepper::new(0, i128::MAX, 10, None);
        wide.width = i128::MAX;
        assert_eq!(wide.upper(Some(&key(1))), Some(None));
        wide.observe(&Range { lower: Some(key(0)), upper: Some(key(i128::MAX)) }, 0);
        assert_eq!(wide.width, i128::MAX);
    }

    #[test]
    fn a_single_key_is_one_chunk_open_at_both_ends() {
        let chunks = walk(&[42], 10);
        assert_eq!(chunks, vec![Range::default()]);
    }
}
