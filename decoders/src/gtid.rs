//! GTID states of the MySQL family: MariaDB's last GTID per replication domain, and MySQL's executed
//! GTID set, tagged GTIDs (MySQL 8.3+, `uuid:tag:n`) included.
//!
//! A state is what a binlog position includes ([`crate::position::BinlogPosition`]); two states
//! compare as sets of transactions ([`GtidState::compare`]), which is what survives a failover. Text
//! forms are the servers' own (`@@gtid_binlog_pos`, `@@gtid_executed`); the serialized form of an
//! untagged MySQL set is the one earlier versions wrote, so a recorded position still reads.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// One MariaDB GTID: `domain-server-sequence`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub sequence: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.sequence)
    }
}

/// The source of a MySQL GTID: the server UUID and, for a tagged GTID (MySQL 8.3+), its tag —
/// lowercase, empty when untagged. Ordered as MySQL orders them: by UUID bytes, then tag, so a UUID's
/// untagged transactions come first.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Tsid {
    pub uuid: [u8; 16],
    pub tag: String,
}

/// One past the largest transaction number MySQL hands out (2^63 - 1).
const MAX_GNO: u64 = i64::MAX as u64;

/// The longest tag MySQL accepts.
pub const TAG_MAX_LEN: usize = 32;

impl Tsid {
    /// An untagged source.
    pub fn untagged(uuid: [u8; 16]) -> Tsid {
        Tsid { uuid, tag: String::new() }
    }

    /// A tagged source; `tag` is checked as MySQL checks it and kept lowercase.
    pub fn tagged(uuid: [u8; 16], tag: &str) -> Result<Tsid, String> {
        Ok(Tsid { uuid, tag: tag_text(tag)? })
    }

    /// The UUID in MySQL's text form (lowercase, hyphenated).
    pub fn uuid_text(&self) -> String {
        uuid_text(&self.uuid)
    }
}

impl fmt::Display for Tsid {
    /// `uuid` or `uuid:tag`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uuid_text())?;
        if !self.tag.is_empty() {
            write!(f, ":{}", self.tag)?;
        }
        Ok(())
    }
}

/// A GTID tag as MySQL stores it: 1 to 32 characters, a letter or `_` first, then letters, digits
/// or `_`; lowercased.
pub fn tag_text(tag: &str) -> Result<String, String> {
    let t = tag.trim();
    let mut chars = t.chars();
    let first = chars.next().ok_or_else(|| "an empty GTID tag".to_owned())?;
    let valid = (first.is_ascii_alphabetic() || first == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid || t.len() > TAG_MAX_LEN {
        return Err(format!("'{tag}' is not a GTID tag (a letter or _ first, then letters, digits or _, at most {TAG_MAX_LEN} characters)"));
    }
    Ok(t.to_ascii_lowercase())
}

fn uuid_text(uuid: &[u8; 16]) -> String {
    let h: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn parse_uuid(uuid: &str) -> Option<[u8; 16]> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || uuid.len() != 36 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

/// A MySQL GTID set: per source, inclusive intervals of transaction numbers, ascending and apart.
pub type MySqlSets = BTreeMap<Tsid, Vec<(u64, u64)>>;

/// The GTID state of a MySQL-protocol source at a position.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub enum GtidState {
    /// No GTIDs (a server without them, or none seen yet).
    #[default]
    None,
    /// MariaDB: the last GTID of each replication domain, as `@@gtid_binlog_pos` prints it
    /// (`0-1-100,1-2-5`). In GTID strict mode sequence numbers only grow within a domain.
    MariaDb(BTreeMap<u32, MariaGtid>),
    /// MySQL: the executed GTID set, source → inclusive intervals of transaction numbers
    /// (`3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:turnout_9:1-3`). Serialized as a list of
    /// `(uuid, intervals)` pairs, `(uuid, intervals, tag)` for a tagged source.
    MySql(#[serde(with = "tsid_keyed")] MySqlSets),
}

/// A MySQL GTID set as a list of `(uuid, intervals)` or `(uuid, intervals, tag)` entries (JSON map
/// keys must be strings; the untagged form is the one earlier versions wrote).
mod tsid_keyed {
    use super::*;

    pub fn serialize<S: Serializer>(map: &MySqlSets, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(map.len()))?;
        for (tsid, intervals) in map {
            if tsid.tag.is_empty() {
                seq.serialize_element(&(&tsid.uuid, intervals))?;
            } else {
                seq.serialize_element(&(&tsid.uuid, intervals, &tsid.tag))?;
            }
        }
        seq.end()
    }

    struct Entry(Tsid, Vec<(u64, u64)>);

    impl<'de> Deserialize<'de> for Entry {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Entry;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a GTID set entry: [uuid, intervals] or [uuid, intervals, tag]")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
                    let uuid: [u8; 16] = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                    let intervals: Vec<(u64, u64)> = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                    let tsid = match seq.next_element::<String>()? {
                        None => Tsid::untagged(uuid),
                        Some(tag) => Tsid::tagged(uuid, &tag).map_err(de::Error::custom)?,
                    };
                    Ok(Entry(tsid, intervals))
                }
            }
            d.deserialize_seq(V)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MySqlSets, D::Error> {
        Ok(Vec::<Entry>::deserialize(d)?.into_iter().map(|Entry(t, i)| (t, i)).collect())
    }
}

impl GtidState {
    /// Whether the transaction `gtid` is part of this state (MariaDB: its domain's last sequence number
    /// is at or beyond it).
    pub fn contains_maria(&self, gtid: &MariaGtid) -> bool {
        match self {
            GtidState::MariaDb(domains) => domains.get(&gtid.domain).is_some_and(|last| last.sequence >= gtid.sequence),
            _ => false,
        }
    }

    /// Parses MariaDB's GTID position text (`0-1-100,1-2-5`, as `@@gtid_binlog_pos` and
    /// `BINLOG_GTID_POS()` print it); empty text is the empty state.
    pub fn parse_maria(text: &str) -> Result<GtidState, String> {
        let mut domains = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let (Some(d), Some(s), Some(n), None) = (it.next(), it.next(), it.next(), it.next()) else {
                return Err(format!("'{part}' is not a MariaDB GTID (domain-server-sequence)"));
            };
            let parse = |x: &str| x.parse::<u64>().map_err(|_| format!("'{part}' is not a MariaDB GTID (domain-server-sequence)"));
            let domain = u32::try_from(parse(d)?).map_err(|_| format!("domain of '{part}' is too large"))?;
            let server = u32::try_from(parse(s)?).map_err(|_| format!("server id of '{part}' is too large"))?;
            domains.insert(domain, MariaGtid { domain, server, sequence: parse(n)? });
        }
        Ok(if domains.is_empty() { GtidState::None } else { GtidState::MariaDb(domains) })
    }

    /// Parses MySQL's GTID set text (`3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:tag:1-3,…`, as
    /// `@@gtid_executed` prints it, newlines after commas included); empty text is the empty state.
    /// Within a UUID's part a tag applies to the intervals after it; intervals are merged.
    pub fn parse_mysql(text: &str) -> Result<GtidState, String> {
        let mut sets = MySqlSets::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split(':').map(str::trim);
            let uuid = it.next().unwrap_or_default();
            let bytes = parse_uuid(uuid).ok_or_else(|| format!("'{part}' is not a MySQL GTID set (uuid:interval…)"))?;
            let mut tsid = Tsid::untagged(bytes);
            for item in it {
                if item.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                    tsid = Tsid::tagged(bytes, item).map_err(|e| format!("in '{part}': {e}"))?;
                    continue;
                }
                let (a, b) = item.split_once('-').unwrap_or((item, item));
                let (Ok(a), Ok(b)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) else {
                    return Err(format!("'{item}' in '{part}' is not a GTID interval or tag"));
                };
                if a == 0 || b < a || b >= MAX_GNO {
                    return Err(format!("'{item}' in '{part}' is not a GTID interval (numbers 1 to 2^63 - 2)"));
                }
                add_interval(sets.entry(tsid.clone()).or_default(), a, b);
            }
        }
        Ok(if sets.is_empty() { GtidState::None } else { GtidState::MySql(sets) })
    }

    /// Parses either server's GTID text: MySQL's sets have a `:` after the source UUID, MariaDB's
    /// positions never do.
    pub fn parse(text: &str) -> Result<GtidState, String> {
        if text.contains(':') {
            GtidState::parse_mysql(text)
        } else {
            GtidState::parse_maria(text)
        }
    }

    /// How this state compares with `other` as sets of transactions: `Greater` when it holds every
    /// transaction of `other` and more, `Equal` when the same, `Less` when `other` holds more, and
    /// `None` when each holds one the other lacks (two branches of history) or they are of different
    /// servers' kinds. A MariaDB domain missing from one side counts as one with no transaction; in
    /// GTID strict mode a domain's sequence numbers only grow, so the last one stands for all before it.
    /// A MySQL tagged source is a source of its own.
    pub fn compare(&self, other: &GtidState) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering;
        let combine = |acc: Ordering, o: Ordering| -> Option<Ordering> {
            match (acc, o) {
                (Ordering::Equal, x) | (x, Ordering::Equal) => Some(x),
                (a, b) if a == b => Some(a),
                _ => None,
            }
        };
        match (self, other) {
            (GtidState::None, GtidState::None) => Some(Ordering::Equal),
            (GtidState::MariaDb(a), GtidState::MariaDb(b)) => {
                let mut acc = Ordering::Equal;
                for domain in a.keys().chain(b.keys()) {
                    let seq = |m: &BTreeMap<u32, MariaGtid>| m.get(domain).map_or(0, |g| g.sequence);
                    // One sequence number from two servers: two histories, not the same point.
                    if let (Some(x), Some(y)) = (a.get(domain), b.get(domain)) {
                        if x.sequence == y.sequence && x.server != y.server {
                            return None;
                        }
                    }
                    acc = combine(acc, seq(a).cmp(&seq(b)))?;
                }
                Some(acc)
            }
            (GtidState::MySql(a), GtidState::MySql(b)) => match (holds(a, b), holds(b, a)) {
                (true, true) => Some(Ordering::Equal),
                (true, false) => Some(Ordering::Greater),
                (false, true) => Some(Ordering::Less),
                (false, false) => None,
            },
            // A state with transactions against an empty one of another kind: the empty one is older.
            (GtidState::None, _) => Some(Ordering::Less),
            (_, GtidState::None) => Some(Ordering::Greater),
            _ => None,
        }
    }

    /// Adds a MariaDB GTID (the newest of its domain).
    pub fn push_maria(&mut self, gtid: MariaGtid) {
        if !matches!(self, GtidState::MariaDb(_)) {
            *self = GtidState::MariaDb(BTreeMap::new());
        }
        if let GtidState::MariaDb(domains) = self {
            domains.insert(gtid.domain, gtid);
        }
    }

    /// Adds transaction `number` of MySQL source `tsid`, anywhere among its intervals (a number may
    /// fill a gap: a Group Replication primary that switched over and back, a replica applying out
    /// of order), merging neighbours. False when the set already held it.
    pub fn push_mysql(&mut self, tsid: &Tsid, number: u64) -> bool {
        if !matches!(self, GtidState::MySql(_)) {
            *self = GtidState::MySql(MySqlSets::new());
        }
        let GtidState::MySql(sets) = self else { return false };
        let intervals = match sets.get_mut(tsid) {
            Some(i) => i,
            None => sets.entry(tsid.clone()).or_default(),
        };
        if covers(Some(intervals), number, number) {
            return false;
        }
        add_interval(intervals, number, number);
        true
    }

    /// Adds transactions `lo..=hi` of MySQL source `tsid` (numbers from 1), merging with what the set
    /// holds.
    pub fn push_mysql_interval(&mut self, tsid: &Tsid, lo: u64, hi: u64) {
        if !matches!(self, GtidState::MySql(_)) {
            *self = GtidState::MySql(MySqlSets::new());
        }
        if let GtidState::MySql(sets) = self {
            add_interval(sets.entry(tsid.clone()).or_default(), lo, hi);
        }
    }

    /// MySQL: this set with each tagged source cut back to what `earlier` holds of it — every
    /// untagged transaction of this set, and the tagged ones `earlier` already had. Other states are
    /// returned as they are.
    pub fn tagged_as_of(&self, earlier: &GtidState) -> GtidState {
        let GtidState::MySql(sets) = self else { return self.clone() };
        let earlier = match earlier {
            GtidState::MySql(e) => Some(e),
            _ => None,
        };
        let mut out = MySqlSets::new();
        for (tsid, intervals) in sets {
            if tsid.tag.is_empty() {
                out.insert(tsid.clone(), intervals.clone());
            } else if let Some(e) = earlier.and_then(|e| e.get(tsid)) {
                out.insert(tsid.clone(), e.clone());
            }
        }
        if out.is_empty() {
            GtidState::None
        } else {
            GtidState::MySql(out)
        }
    }
}

/// Whether `a` holds every transaction of `b`.
fn holds(a: &MySqlSets, b: &MySqlSets) -> bool {
    b.iter().all(|(tsid, set)| set.iter().all(|&(lo, hi)| covers(a.get(tsid), lo, hi)))
}

/// Whether the MySQL intervals `set` hold every transaction number in `lo..=hi`.
fn covers(set: Option<&Vec<(u64, u64)>>, lo: u64, hi: u64) -> bool {
    let Some(set) = set else { return false };
    let mut next = lo;
    for &(a, b) in set {
        if a <= next && b >= next {
            if b >= hi {
                return true;
            }
            next = b + 1;
        }
    }
    false
}

/// Adds `lo..=hi` to ascending, disjoint intervals, merging what it overlaps or touches.
fn add_interval(intervals: &mut Vec<(u64, u64)>, lo: u64, hi: u64) {
    // The first interval that ends at or after `lo - 1` (it may overlap or touch the new one).
    let at = intervals.partition_point(|(_, end)| end.saturating_add(1) < lo);
    let (mut start, mut end) = (lo, hi);
    while at < intervals.len() && intervals[at].0 <= end.saturating_add(1) {
        let (a, b) = intervals.remove(at);
        start = start.min(a);
        end = end.max(b);
    }
    intervals.insert(at, (start, end));
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidState::None => Ok(()),
            GtidState::MariaDb(domains) => {
                let parts: Vec<String> = domains.values().map(ToString::to_string).collect();
                f.write_str(&parts.join(","))
            }
            GtidState::MySql(sets) => {
                // One part per UUID: its untagged intervals, then each tag's (the map's order).
                let mut parts: Vec<(String, String)> = Vec::new();
                for (tsid, intervals) in sets {
                    let uuid = tsid.uuid_text();
                    if parts.last().is_none_or(|(u, _)| *u != uuid) {
                        parts.push((uuid.clone(), uuid));
                    }
                    let Some((_, s)) = parts.last_mut() else { continue };
                    if !tsid.tag.is_empty() {
                        s.push(':');
                        s.push_str(&tsid.tag);
                    }
                    for (a, b) in intervals {
                        if a == b {
                            s.push_str(&format!(":{a}"));
                        } else {
                            s.push_str(&format!(":{a}-{b}"));
                        }
                    }
                }
                let parts: Vec<String> = parts.into_iter().map(|(_, s)| s).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    type Intervals = Vec<(u64, u64)>;

    fn set(parts: Vec<(Tsid, Intervals)>) -> GtidState {
        GtidState::MySql(parts.into_iter().collect())
    }

    #[test]
    fn mysql_gtid_sets_compare_by_inclusion() {
        let (u, v) = (Tsid::untagged([7u8; 16]), Tsid::untagged([9u8; 16]));
        let a = set(vec![(u.clone(), vec![(1, 10)])]);
        let b = set(vec![(u.clone(), vec![(1, 5), (7, 10)])]);
        let c = set(vec![(u.clone(), vec![(1, 10)]), (v.clone(), vec![(1, 1)])]);
        assert_eq!(a.compare(&b), Some(Ordering::Greater));
        assert_eq!(b.compare(&a), Some(Ordering::Less));
        assert_eq!(c.compare(&a), Some(Ordering::Greater));
        assert_eq!(a.compare(&a.clone()), Some(Ordering::Equal));
        assert_eq!(set(vec![(u, vec![(1, 4)]), (v, vec![(1, 1)])]).compare(&a), None);
    }

    #[test]
    fn a_tagged_source_is_a_source_of_its_own() {
        let uuid = [7u8; 16];
        let tagged = Tsid::tagged(uuid, "Turnout_1").expect("tag");
        assert_eq!(tagged.tag, "turnout_1", "tags are kept lowercase");
        let plain = set(vec![(Tsid::untagged(uuid), vec![(1, 10)])]);
        let with_tag = set(vec![(Tsid::untagged(uuid), vec![(1, 10)]), (tagged.clone(), vec![(1, 3)])]);
        assert_eq!(with_tag.compare(&plain), Some(Ordering::Greater));
        // Number 3 of the tag is not number 3 of the UUID.
        let only_tag = set(vec![(tagged, vec![(1, 3)])]);
        assert_eq!(only_tag.compare(&set(vec![(Tsid::untagged(uuid), vec![(1, 3)])])), None);
    }

    #[test]
    fn mysql_text_with_tags_round_trips_as_the_server_prints_it() {
        let text = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7:TAG_b:1-3:9,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:turnout_42:2";
        let s = GtidState::parse_mysql(text).expect("tagged set");
        let printed = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:tag_b:1-3:9,4e11fa47-71ca-11e1-9e33-c80aa9429562:turnout_42:2";
        assert_eq!(s.to_string(), printed);
        assert_eq!(GtidState::parse(&s.to_string()), Ok(s.clone()));
        let GtidState::MySql(sets) = &s else { panic!("a MySQL set") };
        assert_eq!(sets.len(), 3);
        // Two tags, and back to untagged only in the next UUID's part.
        let two = GtidState::parse_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562:a:1:b:2-3").expect("two tags");
        assert_eq!(two.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:a:1:b:2-3");
        // Overlapping and touching intervals merge; the same UUID in two parts is one source.
        let merged = GtidState::parse_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562:5-9:1-4:12,3e11fa47-71ca-11e1-9e33-c80aa9429562:10").expect("merge");
        assert_eq!(merged.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10:12");
        for bad in [
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:9tag:1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:a-b:1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:abcdefghijabcdefghijabcdefghijabc:1",
            "3e11fa47:1-5",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:0",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9223372036854775807",
        ] {
            assert!(GtidState::parse_mysql(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_serialized_set_reads_back_and_an_untagged_one_keeps_the_earlier_form() {
        let uuid = [0x3e; 16];
        let untagged = set(vec![(Tsid::untagged(uuid), vec![(1, 5)])]);
        let json = serde_json::to_string(&untagged).expect("json");
        let earlier = format!("{{\"MySql\":[[{},[[1,5]]]]}}", serde_json::to_string(&uuid).expect("uuid"));
        assert_eq!(json, earlier, "the form earlier versions wrote and read");
        let tagged = set(vec![(Tsid::untagged(uuid), vec![(1, 5)]), (Tsid::tagged(uuid, "t").expect("tag"), vec![(2, 2)])]);
        let json = serde_json::to_string(&tagged).expect("json");
        assert_eq!(serde_json::from_str::<GtidState>(&json).expect("reads back"), tagged);
        let bad_tag = format!("{{\"MySql\":[[{},[[1,5]],\"9\"]]}}", serde_json::to_string(&uuid).expect("uuid"));
        assert!(serde_json::from_str::<GtidState>(&bad_tag).is_err());
    }

    #[test]
    fn pushing_fills_gaps_merges_neighbours_and_refuses_a_repeat() {
        let t = Tsid::tagged([1; 16], "x").expect("tag");
        let mut s = GtidState::None;
        for n in [1, 2, 3, 5] {
            assert!(s.push_mysql(&t, n));
        }
        assert!(!s.push_mysql(&t, 2), "already held");
        assert!(s.push_mysql(&t, 4));
        assert_eq!(s, set(vec![(t, vec![(1, 5)])]));
    }

    #[test]
    fn tagged_transactions_after_an_earlier_set_are_set_aside() {
        let uuid = [2u8; 16];
        let (own, other) = (Tsid::tagged(uuid, "own").expect("tag"), Tsid::tagged(uuid, "other").expect("tag"));
        let before = set(vec![(Tsid::untagged(uuid), vec![(1, 4)]), (own.clone(), vec![(1, 7)])]);
        let after = set(vec![(Tsid::untagged(uuid), vec![(1, 5)]), (own.clone(), vec![(1, 9)]), (other, vec![(1, 1)])]);
        let target = after.tagged_as_of(&before);
        assert_eq!(target, set(vec![(Tsid::untagged(uuid), vec![(1, 5)]), (own, vec![(1, 7)])]));
        assert_eq!(target.compare(&before), Some(Ordering::Greater));
        assert_eq!(after.compare(&target), Some(Ordering::Greater));
    }

    #[test]
    fn maria_gtid_state_contains_what_its_domain_reached() {
        let mut s = GtidState::None;
        s.push_maria(MariaGtid { domain: 0, server: 1, sequence: 10 });
        s.push_maria(MariaGtid { domain: 1, server: 2, sequence: 3 });
        assert!(s.contains_maria(&MariaGtid { domain: 0, server: 9, sequence: 10 }));
        assert!(!s.contains_maria(&MariaGtid { domain: 0, server: 1, sequence: 11 }));
        assert!(!s.contains_maria(&MariaGtid { domain: 2, server: 1, sequence: 1 }));
        assert_eq!(s.to_string(), "0-1-10,1-2-3");
        assert_eq!(GtidState::parse_maria("0-1-10,1-2-3"), Ok(s));
        assert_eq!(GtidState::parse_maria(""), Ok(GtidState::None));
        assert!(GtidState::parse_maria("0-1").is_err() && GtidState::parse_maria("a-b-c").is_err());
        let mysql = GtidState::parse("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:2").expect("mysql");
        assert_eq!(mysql.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,4e11fa47-71ca-11e1-9e33-c80aa9429562:2");
        assert_eq!(GtidState::parse_mysql(&mysql.to_string()), Ok(mysql.clone()));
        let json = serde_json::to_string(&mysql).expect("a MySQL GTID set serializes");
        assert_eq!(serde_json::from_str::<GtidState>(&json).expect("and back"), mysql);
    }

    proptest::proptest! {
        #[test]
        fn any_set_prints_and_parses_back(entries in proptest::collection::vec((0u8..3, proptest::option::of("[a-z_][a-z0-9_]{0,31}"), 1u64..1000, 0u64..5), 1..12)) {
            let mut s = GtidState::None;
            for (u, tag, lo, len) in entries {
                let tsid = match tag {
                    Some(t) => Tsid::tagged([u; 16], &t).expect("generated tags are valid"),
                    None => Tsid::untagged([u; 16]),
                };
                for n in lo..=lo + len {
                    s.push_mysql(&tsid, n);
                }
            }
            proptest::prop_assert_eq!(GtidState::parse_mysql(&s.to_string()), Ok(s.clone()));
            let json = serde_json::to_string(&s).expect("json");
            proptest::prop_assert_eq!(serde_json::from_str::<GtidState>(&json).expect("back"), s);
        }
    }
}
