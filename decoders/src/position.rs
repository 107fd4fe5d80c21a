//! Positions in a source log and source-clock timestamps.
//!
//! A PostgreSQL [`Lsn`] is a 64-bit byte position in the write-ahead log, written as two hexadecimal
//! halves (`16/B374D848`). A MySQL/MariaDB [`BinlogPosition`] is a binlog file and offset together with
//! the GTID state that includes every transaction up to it. [`Position`] is either; positions are
//! ordered inside one source log (see [`Position::try_cmp`]) and never compared across logs: there is no
//! `<` on positions, so every comparison says what an unordered pair means.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use crate::gtid::{GtidState, MariaGtid, Tsid};

/// A PostgreSQL write-ahead-log position (`pg_lsn`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
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

/// A position in a MySQL/MariaDB binary log: the file and the offset just past an event (where
/// reading by file and offset resumes), and the GTID state that includes every transaction committed
/// up to there (where reading by GTID resumes).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub struct BinlogPosition {
    pub file: String,
    pub offset: u64,
    pub gtids: GtidState,
}

impl BinlogPosition {
    /// The file's sequence number: the digits after the last `.` (`mysql-bin.000012` → 12), and the
    /// base name before it. Binlog files of one server are numbered in the order they were written.
    fn file_order(&self) -> Option<(&str, u64)> {
        let (base, number) = self.file.rsplit_once('.')?;
        Some((base, number.parse().ok()?))
    }
}

/// A position in one source's change log.
///
/// Positions of the same log are ordered as the log is: PostgreSQL by LSN. Binlog positions are
/// ordered by their **GTID state** whenever both carry one — the transactions they include, per
/// MariaDB domain or MySQL source UUID — because that is what survives a failover: a promoted replica
/// or another Galera node has binlog files and offsets of its own, but the same GTIDs. The file and
/// offset only order positions whose GTID states are equal (heartbeats and events between two
/// transactions) and positions without GTIDs. Positions of different sources, two GTID states that
/// each hold a transaction the other lacks, or binlogs of different base names without GTIDs are
/// unordered ([`Position::try_cmp`] is [`Incomparable`]): callers treat that as an error, never as "not newer".
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Position {
    /// PostgreSQL logical replication: the end LSN of a commit, or the LSN of a message.
    Pg(Lsn),
    /// MySQL/MariaDB binlog: just past a transaction's last event.
    Binlog(BinlogPosition),
}

impl Position {
    /// Bytes of log from `earlier` to `self` where the source can tell (zero when `earlier` is ahead):
    /// PostgreSQL always, a binlog within one file.
    pub fn bytes_since(&self, earlier: &Position) -> Option<u64> {
        match (self, earlier) {
            (Position::Pg(a), Position::Pg(b)) => Some(a.bytes_since(*b)),
            (Position::Binlog(a), Position::Binlog(b)) if a.file == b.file => Some(a.offset.saturating_sub(b.offset)),
            _ => None,
        }
    }

    /// The PostgreSQL LSN, if this is a PostgreSQL position.
    pub fn lsn(&self) -> Option<Lsn> {
        match self {
            Position::Pg(l) => Some(*l),
            Position::Binlog(_) => None,
        }
    }

    /// Whether this is the start of a log before anything was applied: what a sink reports when green
    /// holds no progress record for the stream.
    pub fn is_start(&self) -> bool {
        match self {
            Position::Pg(l) => *l == Lsn::ZERO,
            Position::Binlog(b) => b.file.is_empty() && b.offset == 0 && b.gtids == GtidState::None,
        }
    }

    /// How `self` stands against `other` in their log, or [`Incomparable`] when no order relates
    /// them: a PostgreSQL LSN against a binlog position, two GTID sets neither of which contains the
    /// other, two binlog files of different base names without GTIDs. Callers decide what an
    /// unordered pair means for them; it is never taken for "not later".
    pub fn try_cmp(&self, other: &Position) -> Result<std::cmp::Ordering, Incomparable> {
        self.order(other).ok_or_else(|| Incomparable { a: self.to_string(), b: other.to_string() })
    }

    /// The later of two positions of the same log; [`Incomparable`] when they are unordered.
    pub fn try_max(self, other: Position) -> Result<Position, Incomparable> {
        Ok(match self.try_cmp(&other)? {
            std::cmp::Ordering::Less => other,
            _ => self,
        })
    }

    /// The latest of `positions` (none when there are none); [`Incomparable`] when two are unordered.
    pub fn latest(positions: impl IntoIterator<Item = Position>) -> Result<Option<Position>, Incomparable> {
        let mut positions = positions.into_iter();
        let Some(first) = positions.next() else { return Ok(None) };
        positions.try_fold(first, Position::try_max).map(Some)
    }

    /// Whether `self` is at or past `other`; [`Incomparable`] when they are unordered.
    pub fn reached(&self, other: &Position) -> Result<bool, Incomparable> {
        Ok(self.try_cmp(other)?.is_ge())
    }

    fn order(&self, other: &Position) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Position::Pg(a), Position::Pg(b)) => Some(a.cmp(b)),
            (Position::Binlog(a), Position::Binlog(b)) => {
                if a.gtids != GtidState::None && b.gtids != GtidState::None {
                    let by_gtids = a.gtids.compare(&b.gtids)?;
                    if by_gtids != std::cmp::Ordering::Equal {
                        return Some(by_gtids);
                    }
                    // The same transactions: ordered by offset within one file; in different files
                    // they may be two servers' logs (a failover between transactions), whose file
                    // numbers say nothing about each other — the same point.
                    if a.file != b.file {
                        return Some(std::cmp::Ordering::Equal);
                    }
                }
                if a.file == b.file {
                    return Some(a.offset.cmp(&b.offset));
                }
                let ((base_a, n_a), (base_b, n_b)) = (a.file_order()?, b.file_order()?);
                (base_a == base_b).then(|| n_a.cmp(&n_b).then(a.offset.cmp(&b.offset)))
            }
            _ => None,
        }
    }
}

/// Two positions no order relates (see [`Position::try_cmp`]): comparing them is a fault in what
/// produced them — two different logs, or a log that forked — never something to guess past.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("positions {a} and {b} cannot be ordered (different logs, or GTID sets neither of which holds the other)")]
pub struct Incomparable {
    pub a: String,
    pub b: String,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Pg(lsn) => lsn.fmt(f),
            Position::Binlog(b) if b.gtids == GtidState::None => {
                write!(f, "{}:{}", b.file, b.offset)
            }
            Position::Binlog(b) => write!(f, "{}:{} ({})", b.file, b.offset, b.gtids),
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
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
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

    fn binlog(file: &str, offset: u64) -> Position {
        Position::Binlog(BinlogPosition { file: file.into(), offset, gtids: GtidState::None })
    }

    #[test]
    fn binlog_positions_order_by_file_number_then_offset_and_never_across_sources() {
        assert_eq!(binlog("mysql-bin.000002", 4).try_cmp(&binlog("mysql-bin.000001", 900)), Ok(std::cmp::Ordering::Greater));
        assert_eq!(binlog("mysql-bin.000010", 4).try_cmp(&binlog("mysql-bin.000009", 4)), Ok(std::cmp::Ordering::Greater), "numbers, not text");
        assert_eq!(binlog("mysql-bin.000001", 5).try_cmp(&binlog("mysql-bin.000001", 4)), Ok(std::cmp::Ordering::Greater));
        assert_eq!(binlog("a.000001", 4).try_cmp(&binlog("b.000002", 4)).ok(), None);
        assert_eq!(binlog("a.000001", 4).try_cmp(&Position::Pg(Lsn(4))).ok(), None);
        assert_eq!(binlog("m.000001", 10).bytes_since(&binlog("m.000001", 4)), Some(6));
        assert_eq!(binlog("m.000002", 10).bytes_since(&binlog("m.000001", 4)), None);
    }

    fn gtid_at(file: &str, offset: u64, gtids: &str) -> Position {
        Position::Binlog(BinlogPosition { file: file.into(), offset, gtids: GtidState::parse_maria(gtids).expect("gtids") })
    }

    #[test]
    fn binlog_positions_with_gtids_order_by_gtids_not_by_file_and_offset() {
        // After a failover the promoted replica's files are its own: a lower file number, a smaller
        // offset, but later transactions.
        let before = gtid_at("mysql-bin.000007", 90_000, "0-1-500");
        let after = gtid_at("mysql-bin.000001", 400, "0-1-500,1-9-1");
        assert_eq!(after.try_cmp(&before), Ok(std::cmp::Ordering::Greater));
        assert_eq!(
            gtid_at("mysql-bin.000001", 400, "0-2-501").try_cmp(&before),
            Ok(std::cmp::Ordering::Greater),
            "a sequence number beyond, from another server"
        );
        assert_eq!(gtid_at("replica-bin.000001", 4, "0-1-499").try_cmp(&before), Ok(std::cmp::Ordering::Less));
        // The same transactions: ordered by offset in one file, equal across servers.
        assert_eq!(gtid_at("mysql-bin.000007", 90_100, "0-1-500").try_cmp(&before), Ok(std::cmp::Ordering::Greater));
        assert_eq!(gtid_at("other-bin.000001", 4, "0-1-500").try_cmp(&before), Ok(std::cmp::Ordering::Equal));
        // The same sequence number written by two servers: two histories.
        assert_eq!(gtid_at("mysql-bin.000001", 4, "0-2-500").try_cmp(&before).ok(), None);
        // Two branches of history (each has a transaction the other lacks): unordered.
        assert_eq!(gtid_at("mysql-bin.000009", 4, "0-1-501,1-1-1").try_cmp(&gtid_at("mysql-bin.000008", 4, "0-1-502")).ok(), None);
    }

    #[test]
    fn the_later_of_two_and_reaching_fail_on_unordered_pairs() {
        let (a, b) = (binlog("m.000001", 4), binlog("m.000002", 4));
        assert_eq!(a.clone().try_max(b.clone()), Ok(b.clone()));
        assert_eq!(b.clone().try_max(a.clone()), Ok(b.clone()));
        assert_eq!(b.reached(&a), Ok(true));
        assert_eq!(a.reached(&b), Ok(false));
        let other = binlog("other.000001", 4);
        let e = a.clone().try_max(other.clone()).expect_err("unordered");
        assert_eq!((e.a.as_str(), e.b.as_str()), ("m.000001:4", "other.000001:4"));
        assert!(a.reached(&other).is_err() && Position::Pg(Lsn(1)).reached(&a).is_err());
        assert_eq!(Position::latest([a.clone(), b.clone(), a.clone()]), Ok(Some(b)));
        assert_eq!(Position::latest([]), Ok(None));
        assert!(Position::latest([a, other]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_lsn_round_trips(v: u64) {
            let text = Lsn(v).to_string();
            proptest::prop_assert_eq!(text.parse::<Lsn>(), Ok(Lsn(v)));
        }
    }
}
