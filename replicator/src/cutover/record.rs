//! What a running cutover (rollback, rehearsal) did, gathered step by step, and the certificate made
//! from it and its journal when it ends ([`super::certificate`]).

use super::certificate::{journal_digest, Certificate, RogueWrites, Server, StepTime, VerifyResult, FORMAT};
use super::{Journal, Step};
use crate::alerts::rfc3339;
use crate::config::Config;
use crate::status::Direction;

pub(crate) use crate::source::contract::procedure::Identity;

/// The facts of one cutover, as far as it got.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub started_us: i64,
    pub rehearse: bool,
    /// The rehearsal reached its end and undid the fence as planned.
    pub rehearsed: bool,
    /// The fenced side and the other, as they identified themselves.
    pub sides: Option<(Identity, Identity)>,
    pub sentinel: Option<String>,
    pub fenced: Option<String>,
    pub applied: Option<String>,
    pub steps: Vec<StepTime>,
    pub pause_us: Option<u64>,
    pub counters: Vec<String>,
    pub verify: Option<VerifyResult>,
    pub findings: Vec<String>,
    /// What the watch for writes that are not turnout's saw, when the gate read it.
    pub rogue_writes: Option<RogueWrites>,
    /// The fenced side's inventory, as the pre-checks took it.
    pub inventory: Option<crate::source::contract::inventory::InventorySummary>,
    /// The consumers handed over inside the pause.
    pub handover: Vec<crate::handover::Handed>,
    /// What the definitions' settling compared and carried, one line per settling.
    pub definitions: Vec<String>,
    /// The type map between two engines, one line per column (empty within one engine).
    pub type_map: Vec<String>,
}

impl Record {
    pub fn started(rehearse: bool) -> Record {
        Record { started_us: crate::status::now_micros(), rehearse, ..Record::default() }
    }

    /// The certificate of the cutover `journal` ended with, over its journal `entries`.
    pub fn certificate(&self, config: &Config, journal: &Journal, entries: &[Vec<u8>], stream: String) -> Certificate {
        let direction = journal.direction;
        let (from_role, to_role) = direction.ends();
        let (blue, green) = (crate::compared::address(config.source.url.expose()), crate::compared::address(config.target.url.expose()));
        let (from_address, to_address) = match direction {
            Direction::Forward => (blue, green),
            Direction::Reverse => (green, blue),
        };
        let (from, to) = self.sides.clone().unwrap_or_default();
        let server = |role: turnout_decoders::Side, address: String, id: Identity| Server {
            role: role.name().into(),
            address,
            version: id.version,
            identity: id.identity,
        };
        let outcome = match journal.step {
            Step::Done => "done",
            Step::Undone if self.rehearsed => "rehearsed",
            Step::Undone => "undone",
            Step::Failed => "failed",
            _ => "interrupted",
        };
        Certificate {
            format: FORMAT,
            kind: if self.rehearse { format!("{} rehearsal", direction.what()) } else { direction.what().into() },
            id: journal.id.clone(),
            stream,
            outcome: outcome.into(),
            message: journal.message.clone(),
            started_at: rfc3339(self.started_us),
            finished_at: rfc3339(crate::status::now_micros()),
            from: server(from_role, from_address, from),
            to: server(to_role, to_address, to),
            fence: journal.fence.clone(),
            switch: if self.rehearse { format!("{} (not used: rehearsal)", journal.switch) } else { journal.switch.clone() },
            sentinel: self.sentinel.clone(),
            fenced_position: self.fenced.clone(),
            applied_at_proof: self.applied.clone(),
            steps: self.steps.clone(),
            write_pause_us: self.pause_us,
            counters: self.counters.clone(),
            verify: self.verify.clone(),
            rogue_writes: self.rogue_writes.clone().unwrap_or(RogueWrites { watched: false, side: None, seen: 0, acknowledged: 0 }),
            findings: self.findings.clone(),
            inventory: self.inventory.clone(),
            handover: self.handover.clone(),
            definitions: self.definitions.clone(),
            type_map: self.type_map.clone(),
            journal: journal_digest(entries),
            digest: String::new(),
            signature: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_address_names_no_credentials() {
        use crate::compared::address;
        assert_eq!(address("postgres://app:secret@db.example:6432/shop?sslmode=require"), "db.example:6432/shop");
        assert_eq!(address("postgresql://app@db/shop"), "db:5432/shop");
        assert_eq!(address("mysql://root:pw@10.0.0.5/app"), "10.0.0.5:3306/app");
        assert_eq!(address("mariadb://root@10.0.0.5/app"), "10.0.0.5:3306/app");
    }
}
