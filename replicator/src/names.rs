//! The names of what turnout creates for a stream, derived from the stream id in the state store.

/// Names of the objects turnout creates, derived from the stream id in the state store
/// (`turnout_<id>`): PostgreSQL's publication, slot and green's replication origin.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Names {
    pub publication: String,
    pub slot: String,
    pub origin: String,
}

impl Names {
    pub fn for_stream(id: &str) -> Names {
        let base = format!("turnout_{id}");
        Names { publication: base.clone(), slot: base.clone(), origin: base }
    }

    /// The names of the stream that goes on from blue after a rollback armed it
    /// (`turnout_<id>_g2`, then `_g3`, …): every generation has its own slot and publication on blue
    /// and origin on green, so nothing a generation before left (a slot blue's watch still reads, an
    /// origin whose writes the next stream must recognise) is in its way.
    pub fn next_generation(&self) -> Names {
        let (base, generation) = self.split();
        let next = format!("{base}_g{}", generation.saturating_add(1));
        Names { publication: next.clone(), slot: next.clone(), origin: next }
    }

    /// Whether these are a reverse stream's names ([`Names::reverse_of`]).
    pub fn is_reverse(&self) -> bool {
        self.origin.ends_with("_back")
    }

    /// Which generation these names are (1 for the stream's first, [`Names::next_generation`]).
    pub fn generation(&self) -> u32 {
        self.split().1
    }

    /// The first generation's name and this generation's number.
    fn split(&self) -> (&str, u32) {
        match self.slot.rsplit_once("_g") {
            Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => (base, n.parse().unwrap_or(1)),
            _ => (self.slot.as_str(), 1),
        }
    }

    /// The reverse stream's names after a cutover (`turnout_<id>_back`): green's publication and
    /// slot, blue's replication origin.
    pub fn reverse_of(forward: &Names) -> Names {
        let base = format!("{}_back", forward.slot);
        Names { publication: base.clone(), slot: base.clone(), origin: base }
    }

    /// No names: for commands that never touch what turnout created (`check`, `verify`), which must
    /// not open the state directory a running sidecar holds.
    pub fn none() -> Names {
        Names { publication: String::new(), slot: String::new(), origin: String::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::Names;

    #[test]
    fn each_generation_has_names_of_its_own() {
        let first = Names::for_stream("0a1b2c3d");
        assert_eq!(first.generation(), 1);
        let second = first.next_generation();
        assert_eq!(
            (second.slot.as_str(), second.publication.as_str(), second.origin.as_str()),
            ("turnout_0a1b2c3d_g2", "turnout_0a1b2c3d_g2", "turnout_0a1b2c3d_g2")
        );
        assert_eq!(second.generation(), 2);
        assert_eq!(Names::reverse_of(&second).origin, "turnout_0a1b2c3d_g2_back");
        let tenth = (0..8).fold(second, |n, _| n.next_generation());
        assert_eq!((tenth.slot.as_str(), tenth.generation()), ("turnout_0a1b2c3d_g10", 10));
    }
}
