//! Positions in a source log and source-clock timestamps.
//!
//! A PostgreSQL [`Lsn`] is a 64-bit byte position in the write-ahead log, written as two hexadecimal
//! halves (`16/B374D848`). [`Position`] wraps the position type of each supported source; positions are
//! totally ordered inside one source log and never compared across logs.

use std::fmt;
use std::str::FromStr;

/// A PostgreSQL write-ahead-log position (`pg_lsn`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `0/0`, the invalid position; `START_REPLICATION … 0/0` means "from the slot's confirmed position".
    pub const ZERO: Lsn = Lsn(0);

    /// Bytes from `earlier` to `self`, zero when `earlier` is ahead.
    pub fn bytes_since(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lsn({self})")
    }
}

/// The text given is not an LSN of the form `XXX/XXX` (hexadecimal halves of at most 8 digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an LSN: expected two hexadecimal halves like 16/B374D848")]
pub struct ParseLsnError(pub String);

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLsnError(s.to_owned());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(err)?;
        let valid = |h: &str| !h.is_empty() && h.len() <= 8 && h.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid(hi) || !valid(lo) {
            return Err(err());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((hi << 32) | lo))
    }
}

/// A position in one source's change log.
///
/// Ordering is total for positions of the same variant. Comparing positions of different sources is a
/// programming error and yields `None` from `partial_cmp`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Position {
    /// PostgreSQL logical replication: the end LSN of a commit, or the LSN of a message.
    Pg(Lsn),
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Position::Pg(a), Position::Pg(b)) => Some(a.cmp(b)),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Pg(lsn) => lsn.fmt(f),
        }
    }
}

/// Microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's timestamp epoch.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A point in time on the **source's** clock, in microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From PostgreSQL's wire form: microseconds since 2000-01-01 UTC.
    pub fn from_pg_micros(micros: i64) -> Timestamp {
        Timestamp(micros.saturating_add(PG_EPOCH_OFFSET_MICROS))
    }

    /// To PostgreSQL's wire form: microseconds since 2000-01-01 UTC.
    pub fn to_pg_micros(self) -> i64 {
        self.0.saturating_sub(PG_EPOCH_OFFSET_MICROS)
    }

    /// The local clock now. Only for messages this process sends (standby status updates).
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_through_text() {
        for text in ["0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "0/1"] {
            let lsn: Lsn = text.parse().expect("valid");
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!("16/B374D848".parse::<Lsn>().map(|l| l.0), Ok(0x16_B374_D848));
    }

    #[test]
    fn lsn_rejects_malformed_text() {
        for text in ["", "16", "/1", "1/", "G/0", "123456789/0", "1/2/3", "-1/0"] {
            assert!(text.parse::<Lsn>().is_err(), "{text} should not parse");
        }
    }

    #[test]
    fn timestamps_convert_between_epochs() {
        assert_eq!(Timestamp::from_pg_micros(0).0, PG_EPOCH_OFFSET_MICROS);
        assert_eq!(Timestamp(5).to_pg_micros(), 5 - PG_EPOCH_OFFSET_MICROS);
    }

    proptest::proptest! {
        #[test]
        fn any_lsn_round_trips(v: u64) {
            let text = Lsn(v).to_string();
            proptest::prop_assert_eq!(text.parse::<Lsn>(), Ok(Lsn(v)));
        }
    }
}
