//! `[[handover]]`: the downstream consumers of blue's change log that the cutover carries over to
//! green with their place kept (see [`crate::handover`]).

use crate::duration::parse_duration;
use crate::error::Error;
use serde::Deserialize;
use std::time::Duration;

/// One consumer (or, with `"*"`, every one) whose place in blue's log the cutover hands over to
/// green: on PostgreSQL a logical slot (`slot`), on MySQL/MariaDB the account whose binlog dump
/// sessions read blue (`account`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// PostgreSQL: the consumer's logical replication slot on blue, created on green under the same
    /// name; `"*"` carries every logical slot on blue that is not turnout's.
    #[serde(default)]
    pub slot: String,
    /// MySQL/MariaDB: the account the consumer's binlog dump sessions use on blue (`SHOW PROCESSLIST`
    /// user); `"*"` carries every binlog reader that is not turnout's.
    #[serde(default)]
    pub account: String,
    /// The output plugin of the slot made on green; default: the plugin of blue's slot.
    #[serde(default)]
    pub plugin: Option<String>,
    /// The publications the consumer reads (pgoutput): created on green with blue's definitions
    /// before the cutover when missing there, and checked equal when present.
    #[serde(default)]
    pub publications: Vec<String>,
    /// How long the cutover waits, before the fence, for the consumer to have read blue's log up to
    /// where it stood when the wait began (and, after the switch, up to the fence) — default 30 s.
    #[serde(default = "default_wait")]
    pub wait: String,
    /// What a consumer still behind when `wait` runs out does: `"refuse"` (default) stops the cutover
    /// before the fence; `"record"` goes on and records the range of blue's log it must still read
    /// there (blue's slot is kept).
    #[serde(default)]
    pub on_lag: OnLag,
    /// PostgreSQL: the consumer's reader leaves out changes that carry a replication origin
    /// (`test_decoding`'s `only-local`, pgoutput's `origin = none` on PostgreSQL 16+), so it may keep
    /// reading blue across the cutover: the reverse stream's changes there carry turnout's origin.
    /// Default `false`: after the switch the reverse stream waits (up to `wait`) for the reader to
    /// have read blue up to the fence *and let go of its slot*, so that it cannot receive the
    /// rollback window's changes from blue as well as from green.
    #[serde(default)]
    pub filters_origin: bool,
}

/// What the cutover does about a consumer that has not read blue's log far enough in time.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLag {
    /// Refuse the cutover before the fence, naming the consumer and how far behind it is.
    #[default]
    Refuse,
    /// Go on; the record names the gap the consumer must still read from blue.
    Record,
}

fn default_wait() -> String {
    "30s".into()
}

impl Handover {
    /// `wait` as a duration.
    pub fn wait(&self) -> Result<Duration, Error> {
        parse_duration(&self.wait).map_err(|e| Error::config("handover.wait", e))
    }

    /// Whether this entry carries every consumer that is not turnout's.
    pub fn every_slot(&self) -> bool {
        self.slot == "*" || self.account == "*"
    }

    /// The consumer's name: its slot (PostgreSQL) or account (MySQL/MariaDB).
    pub fn name(&self) -> &str {
        if self.slot.is_empty() {
            &self.account
        } else {
            &self.slot
        }
    }

    /// Checks one entry of a `mysql` (MySQL/MariaDB) or PostgreSQL blue; `at` is its index in the file.
    pub fn validate(&self, at: usize, mysql: bool) -> Result<(), Error> {
        let field = |name: &str| format!("handover[{at}].{name}");
        if mysql {
            if !self.slot.is_empty() || !self.publications.is_empty() || self.plugin.is_some() {
                return Err(Error::config(
                    field(if self.slot.is_empty() { "publications" } else { "slot" }),
                    "is PostgreSQL's; on MySQL/MariaDB name the consumer's account (account = \"debezium\", or \"*\")",
                ));
            }
            if self.filters_origin {
                return Err(Error::config(
                    field("filters_origin"),
                    "is PostgreSQL's: a binlog reader cannot leave out turnout's writes by origin; leave it out (the reverse stream waits for \
                     the consumer to stop reading blue)",
                ));
            }
            if self.account.is_empty() {
                return Err(Error::config(field("account"), "is missing; name the account the consumer's binlog dump sessions use, or \"*\" for all"));
            }
            self.wait().map_err(|_| Error::config(field("wait"), format!("'{}' is not a duration (e.g. \"30s\")", self.wait)))?;
            return Ok(());
        }
        if !self.account.is_empty() {
            return Err(Error::config(field("account"), "is MySQL/MariaDB's; on PostgreSQL name the consumer's slot (slot = \"dbz\")"));
        }
        if self.slot.is_empty() {
            return Err(Error::config(field("slot"), "is empty; name the consumer's replication slot on blue, or \"*\" for all"));
        }
        if self.slot != "*" && !valid_name(&self.slot) {
            return Err(Error::config(field("slot"), format!("'{}' is not a slot name (lower-case letters, digits and _ only)", self.slot)));
        }
        if self.slot.starts_with("turnout_") {
            return Err(Error::config(field("slot"), format!("'{}' is turnout's own slot; name a consumer's", self.slot)));
        }
        if let Some(p) = &self.plugin {
            if p.is_empty() {
                return Err(Error::config(field("plugin"), "is empty; leave it out to use the plugin of blue's slot"));
            }
        }
        if self.every_slot() && self.plugin.is_some() {
            return Err(Error::config(field("plugin"), "cannot be set with slot = \"*\": each slot keeps its own plugin"));
        }
        self.wait().map_err(|_| Error::config(field("wait"), format!("'{}' is not a duration (e.g. \"30s\")", self.wait)))?;
        Ok(())
    }
}

/// A replication slot name as PostgreSQL accepts it.
fn valid_name(name: &str) -> bool {
    name.len() <= 63 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(slot: &str) -> Handover {
        Handover { slot: slot.into(), wait: default_wait(), ..Handover::default() }
    }

    #[test]
    fn an_entry_names_a_consumer_slot_that_is_not_turnouts() {
        assert!(entry("debezium").validate(0, false).is_ok());
        assert!(entry("*").validate(0, false).is_ok());
        for (slot, says) in [("", "is empty"), ("Dbz-1", "is not a slot name"), ("turnout_ab12", "turnout's own slot")] {
            let err = entry(slot).validate(2, false).expect_err(slot).to_string();
            assert!(err.contains("handover[2].slot") && err.contains(says), "{err}");
        }
        let mut all = entry("*");
        all.plugin = Some("pgoutput".into());
        assert!(all.validate(0, false).expect_err("plugin with *").to_string().contains("handover[0].plugin"));
        let mut slow = entry("x");
        slow.wait = "soon".into();
        assert!(slow.validate(1, false).expect_err("wait").to_string().contains("handover[1].wait"));
        let mysql = Handover { account: "debezium".into(), wait: default_wait(), ..Handover::default() };
        assert!(mysql.validate(0, true).is_ok());
        assert!(mysql.validate(0, false).expect_err("account on pg").to_string().contains("handover[0].account"));
        assert!(entry("dbz").validate(3, true).expect_err("slot on mysql").to_string().contains("handover[3].slot"));
    }
}
