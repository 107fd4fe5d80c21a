//! The inventory: every object on a source, read from its catalogs, grouped in classes, each class
//! with what turnout does about it. The list of classes a family knows is closed: an object of a class
//! the family does not know is refused, never passed over.
//!
//! `turnout check` prints it; `turnout run` refuses to start while any class is [`Handling::Refused`];
//! the stream takes it again while it runs (a table made unlogged, a large object created); the cutover
//! takes it once more before the fence and records its [`Inventory::digest`] in the certificate.

use crate::error::Error;
use crate::source::contract::report::Findings;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What turnout does with the objects of one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// Their rows' changes flow continuously through the stream.
    Streamed,
    /// Created on green with the schema copy (or by the operator) and compared with blue's by the
    /// cutover, which refuses while they differ.
    Copied,
    /// Brought to green by the cutover: before the fence (materialized views refreshed, views and
    /// routines created), or inside the pause (sequence and AUTO_INCREMENT values).
    AtCutover,
    /// turnout does not move them: named, with the command that does.
    Operator,
    /// Not replicated, by the configuration (`[tables]`) or because they are no part of the database
    /// (another session's temporary table).
    LeftOut,
    /// turnout stops while any exists: named, with the fix.
    Refused,
}

impl Handling {
    /// How `check` prints it.
    pub fn word(self) -> &'static str {
        match self {
            Handling::Streamed => "streamed",
            Handling::Copied => "copied",
            Handling::AtCutover => "at cutover",
            Handling::Operator => "operator",
            Handling::LeftOut => "left out",
            Handling::Refused => "REFUSED",
        }
    }
}

/// One class of object and what happens to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// What the objects are, e.g. `table`, `unlogged table`, `large object`.
    pub class: String,
    pub handling: Handling,
    /// Each object's name, sorted.
    pub objects: Vec<String>,
    /// Objects counted beyond those named (a class with very many, such as large objects).
    pub more: u64,
    /// What turnout does with them, in a few words.
    pub what: String,
    /// What the operator does: the fix of a refusal, the command for an operator's class.
    pub fix: Option<String>,
}

/// At most this many objects of a class are named in a line.
const NAMED: usize = 8;

impl Class {
    pub fn new(class: impl Into<String>, handling: Handling, what: impl Into<String>) -> Class {
        Class { class: class.into(), handling, objects: Vec::new(), more: 0, what: what.into(), fix: None }
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Class {
        self.fix = Some(fix.into());
        self
    }

    pub fn with_objects(mut self, mut objects: Vec<String>) -> Class {
        objects.sort();
        objects.dedup();
        self.objects = objects;
        self
    }

    /// `count` objects of which `objects` are named (the first few of a very large class).
    pub fn with_count(mut self, objects: Vec<String>, count: u64) -> Class {
        self = self.with_objects(objects);
        self.more = count.saturating_sub(self.objects.len() as u64);
        self
    }

    /// How many objects the class has.
    pub fn count(&self) -> u64 {
        self.objects.len() as u64 + self.more
    }

    /// The first objects' names, and how many more there are.
    pub fn named(&self) -> String {
        let mut names: Vec<&str> = self.objects.iter().take(NAMED).map(String::as_str).collect();
        let more = self.count().saturating_sub(names.len() as u64);
        let more = format!("and {more} more");
        if self.count() > names.len() as u64 {
            names.push(&more);
        }
        names.join(", ")
    }
}

/// Every class of object on one server, in the order the family lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub classes: Vec<Class>,
}

impl Inventory {
    /// Adds `class` when it has objects (a class with none says nothing).
    pub fn add(&mut self, class: Class) {
        if class.count() > 0 {
            self.classes.push(class);
        }
    }

    /// The classes turnout refuses.
    pub fn refused(&self) -> impl Iterator<Item = &Class> {
        self.classes.iter().filter(|c| c.handling == Handling::Refused)
    }

    /// `Ok` when nothing is refused; otherwise the error naming every refused class, its objects and
    /// its fix. `doing` says what cannot go on ("replication cannot start").
    pub fn refusal(&self, doing: &str) -> Result<(), Error> {
        let lines: Vec<String> = self
            .refused()
            .map(|c| format!("- {} ({}): {}; {}", c.class, c.named(), c.what, c.fix.as_deref().unwrap_or("leave it out with tables.exclude")))
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        Err(Error::Setup(format!("blue has objects turnout cannot replicate exactly, so {doing} (green would silently differ):\n{}", lines.join("\n"))))
    }

    /// SHA-256 (hex) over every class, its handling and its objects' names in a canonical order:
    /// the same objects treated the same way give the same digest.
    pub fn digest(&self) -> String {
        let mut lines: Vec<String> = self
            .classes
            .iter()
            .flat_map(|c| {
                let more = (c.more > 0).then(|| format!("{}\t{}\t+{}\n", c.class, c.handling.word(), c.more));
                c.objects.iter().map(move |o| format!("{}\t{}\t{o}\n", c.class, c.handling.word())).chain(more)
            })
            .collect();
        lines.sort();
        let d = ring::digest::digest(&ring::digest::SHA256, lines.concat().as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The number of objects in all.
    pub fn objects(&self) -> u64 {
        self.classes.iter().map(Class::count).sum()
    }

    /// One `check` finding per class: refused classes fail, the operator's warn, the rest are fine.
    pub fn findings(&self) -> Findings {
        let mut f = Findings::default();
        for c in &self.classes {
            let what = format!("{} × {} [{}]: {} — {}", c.count(), c.class, c.handling.word(), c.named(), c.what);
            match c.handling {
                Handling::Refused => f.fail(what, c.fix.clone().unwrap_or_else(|| "leave it out with tables.exclude".into())),
                Handling::Operator => f.warn(what, c.fix.clone().unwrap_or_default()),
                _ => f.ok(what),
            }
        }
        f
    }

    /// What the certificate records: the digest and the count of objects per handling.
    pub fn summary(&self) -> InventorySummary {
        let mut per: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for c in &self.classes {
            *per.entry(c.handling.word().to_string()).or_default() += c.count();
        }
        InventorySummary { sha256: self.digest(), objects: self.objects(), handled: per }
    }
}

/// The inventory as a certificate records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySummary {
    /// [`Inventory::digest`].
    pub sha256: String,
    pub objects: u64,
    /// Objects per handling (`streamed`, `copied`, …).
    pub handled: std::collections::BTreeMap<String, u64>,
}

impl fmt::Display for Inventory {
    /// A table: class, count, what happens, fix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.classes.iter().map(|c| c.class.len()).max().unwrap_or(5).max(5);
        writeln!(f, "  {:<width$}  {:>6}  {:<10}  what happens", "class", "count", "handling")?;
        for c in &self.classes {
            writeln!(f, "  {:<width$}  {:>6}  {:<10}  {}: {}", c.class, c.count(), c.handling.word(), c.what, c.named())?;
            if let Some(fix) = &c.fix {
                writeln!(f, "  {:<width$}  {:>6}  {:<10}  fix: {fix}", "", "", "")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Inventory {
        let mut i = Inventory::default();
        i.add(Class::new("table", Handling::Streamed, "changes stream").with_objects(vec!["public.b".into(), "public.a".into()]));
        i.add(Class::new("large object", Handling::Refused, "never copied or streamed").with_fix("convert them to bytea").with_objects(vec!["16401".into()]));
        i.add(Class::new("view", Handling::Copied, "schema copy").with_objects(Vec::new()));
        i
    }

    #[test]
    fn an_empty_class_is_not_listed_and_objects_are_sorted() {
        let i = sample();
        assert_eq!(i.classes.len(), 2);
        assert_eq!(i.classes[0].objects, ["public.a", "public.b"]);
        assert_eq!(i.objects(), 3);
    }

    #[test]
    fn a_refused_class_is_an_error_naming_its_objects_and_fix() {
        let e = sample().refusal("replication cannot start").expect_err("refused").to_string();
        assert!(e.contains("large object (16401)") && e.contains("convert them to bytea") && e.contains("replication cannot start"), "{e}");
        let mut fine = sample();
        fine.classes.retain(|c| c.handling != Handling::Refused);
        assert!(fine.refusal("x").is_ok());
    }

    #[test]
    fn the_digest_changes_with_an_object_or_a_handling_and_not_with_order() {
        let a = sample();
        let mut reordered = sample();
        reordered.classes.reverse();
        assert_eq!(a.digest(), reordered.digest());
        let mut more = sample();
        more.classes[0].objects.push("public.c".into());
        assert_ne!(a.digest(), more.digest());
        let mut handled = sample();
        handled.classes[1].handling = Handling::Operator;
        assert_ne!(a.digest(), handled.digest());
        assert_eq!(a.summary().handled.get("REFUSED"), Some(&1));
    }

    #[test]
    fn many_objects_are_named_up_to_a_bound() {
        let c = Class::new("table", Handling::Streamed, "x").with_objects((0..20).map(|n| format!("t{n:02}")).collect());
        assert!(c.named().ends_with("and 12 more"), "{}", c.named());
        let counted = Class::new("large object", Handling::Refused, "x").with_count(vec!["16500".into(), "16501".into()], 5000);
        assert_eq!(counted.count(), 5000);
        assert_eq!(counted.named(), "16500, 16501, and 4998 more");
        let mut a = Inventory::default();
        a.add(counted.clone());
        let mut b = Inventory::default();
        b.add(Class { more: 4999, ..counted });
        assert_ne!(a.digest(), b.digest(), "a count beyond the named objects is in the digest");
    }
}
