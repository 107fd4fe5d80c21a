//! `turnout verify` for a composed pair: blue read in one consistent snapshot and converted by the
//! type map, green read by its own canonical text of each column, both digested alike.
//!
//! A row's canonical text is each column's value in one form both engines can be made to print — an
//! integer or a decimal as its digits, a float as the hex of its IEEE bits, a date or a time stamp as
//! `YYYY-MM-DD[ HH:MM:SS.ffffff]` (UTC), a `TIME` as its microseconds, a string as itself, bytes as lower-case
//! hex — each prefixed by its length in bytes (`N` for NULL) and joined with `|`, so no two rows share
//! one. The digest is the count, the sum of the first 8 bytes and the XOR of the next 8 bytes of each
//! row's SHA-256: no sort is needed (the engines order strings differently), and a changed, missing or
//! extra row shows. The target side names the canonical form of each of its types
//! ([`super::TargetSide::canonical`] and the SQL it digests green with). Read-only; meaningful once
//! green caught up with a quiet blue.

use super::{Composed, Convert, SourceSide, TargetSide};
use crate::error::Error;
use crate::source::contract::compare::TableCheck;
use turnout_decoders::schema::TableSchema;
use turnout_decoders::Value;

/// Count and order-independent digest of a table's canonical rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Digest {
    pub rows: i64,
    sum: u128,
    xor: u64,
}

impl Digest {
    /// Adds one row's canonical text.
    pub(crate) fn add(&mut self, row: &str) {
        let hash = ring::digest::digest(&ring::digest::SHA256, row.as_bytes());
        let bytes = hash.as_ref();
        let word = |at: usize| bytes.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes);
        self.rows += 1;
        self.sum = self.sum.wrapping_add(u128::from(word(0)));
        self.xor ^= word(8);
    }

    /// The digest as text (not the count): what a live verify's chunk sums compare.
    pub(crate) fn text(&self) -> String {
        format!("{:032x}{:016x}", self.sum, self.xor)
    }
}

/// One field of a canonical row: its length in bytes and itself, `N` for NULL.
pub(crate) fn field(text: Option<&str>) -> String {
    match text {
        Some(t) => format!("{}:{t}", t.len()),
        None => "N".into(),
    }
}

/// The canonical row of `row` (values as green holds them) in `green`'s columns.
fn canonical_row<T: TargetSide>(green: &TableSchema, row: &[Value]) -> Result<String, Error> {
    let mut fields = Vec::with_capacity(row.len());
    for (column, value) in green.columns.iter().zip(row) {
        let text = match value {
            Value::Null => None,
            v => Some(T::canonical(column, v)?),
        };
        fields.push(field(text.as_deref()));
    }
    Ok(fields.join("|"))
}

/// Whether `only` (`schema.table`, or a table of blue's database) names `name`.
fn named(only: Option<&str>, name: &turnout_decoders::TableName) -> bool {
    match only {
        None => true,
        Some(o) => o == name.to_string() || o == name.name,
    }
}

impl<S: SourceSide, T: TargetSide, C: Convert> Composed<S, T, C> {
    /// Compares every replicated table (or `only`) by count and digest.
    pub(crate) async fn compare(&self, only: Option<&str>) -> Result<Vec<TableCheck>, Error> {
        let mut tables = self.source.select().await?;
        tables.retain(|t| !t.heartbeat && named(only, &t.name));
        if tables.is_empty() {
            return Err(Error::config("--table", format!("names no replicated table ({})", only.unwrap_or("none selected"))));
        }
        let green = tables.iter().map(|t| self.convert.green(t)).collect::<Result<Vec<_>, _>>()?;
        let mut snapshot = self.source.snapshot(&tables).await?;
        let mut blue = vec![Digest::default(); tables.len()];
        while let Some(batch) = snapshot.batches.recv().await {
            let (i, rows) = batch?;
            let (Some(table), Some(digest), Some(g)) = (tables.get(i), blue.get_mut(i), green.get(i)) else {
                return Err(Error::Setup(format!("the snapshot sent a table it was not given ({i})")));
            };
            for row in rows {
                digest.add(&canonical_row::<T>(&g.schema, &self.convert.row(table, row)?)?);
            }
        }
        snapshot.reader.await.map_err(|e| Error::Setup(format!("blue's snapshot reader ended without finishing: {e}")))?;
        let mut checks = Vec::with_capacity(tables.len());
        for (g, b) in green.iter().zip(blue) {
            let on_green = self.target.digest(g).await?;
            checks.push(TableCheck { table: g.schema.name.to_string(), blue_rows: b.rows, green_rows: on_green.rows, equal: b == on_green, notes: Vec::new() });
        }
        Ok(checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_order_independent_and_sees_a_changed_missing_or_extra_row() {
        let digest = |rows: &[&str]| {
            let mut d = Digest::default();
            for r in rows {
                d.add(r);
            }
            d
        };
        assert_eq!(digest(&["1:a|N", "1:b|2:xy"]), digest(&["1:b|2:xy", "1:a|N"]));
        assert_ne!(digest(&["1:a|N", "1:b|2:xy"]), digest(&["1:a|N", "1:b|2:xz"]));
        assert_ne!(digest(&["1:a|N"]), digest(&["1:a|N", "1:a|N"]));
        // The length prefix keeps a NULL from the text "N" and a `|` inside a value from a field break.
        assert_ne!(field(None), field(Some("N")));
        assert_ne!([field(Some("a|1:b")), field(None)].join("|"), [field(Some("a")), field(Some("b|N"))].join("|"));
    }
}
