//! Which tables replicate: the `[tables]` filter applied to the source's catalog (read by each
//! source's own catalog module), and which selected tables cannot replicate UPDATE/DELETE.
//!
//! Selection rules:
//! - The filter is applied to the tables that replicate on their own: ordinary tables and partition
//!   roots. A partition replicates through its root (`publish_via_partition_root`), so it goes wherever
//!   its root goes.
//! - A pattern that matches a partition is checked against the root: an `include` pattern matching a
//!   partition whose root no `include` pattern matches, or an `exclude` pattern matching a partition
//!   of a selected root, is an error naming the pattern and the root to write instead — a partition
//!   cannot be selected or left out on its own.
//! - A configured filter that selects no table at all is an error naming `tables.include`.

mod pattern;

pub use pattern::{NameRules, TablePattern};

use crate::error::Error;
use std::collections::{BTreeMap, BTreeSet};
use turnout_decoders::schema::TableName;

/// The `[tables]` include/exclude patterns, each with its field path (`tables.include[2]`).
#[derive(Clone, Debug, Default)]
pub struct TableFilter {
    /// `None`: every table.
    include: Option<Vec<(String, TablePattern)>>,
    exclude: Vec<(String, TablePattern)>,
}

impl TableFilter {
    /// Parses the patterns; the error names the field path of the first malformed one.
    pub fn new(include: Option<&[String]>, exclude: &[String]) -> Result<TableFilter, Error> {
        TableFilter::with_rules(include, exclude, &NameRules::postgres())
    }

    /// As [`TableFilter::new`], reading names with `rules` (MySQL's: case kept, backticks, the source
    /// database as default schema).
    pub fn with_rules(include: Option<&[String]>, exclude: &[String], rules: &NameRules) -> Result<TableFilter, Error> {
        let parse = |field: &str, list: &[String]| -> Result<Vec<(String, TablePattern)>, Error> {
            list.iter()
                .enumerate()
                .map(|(i, text)| {
                    let path = format!("{field}[{i}]");
                    TablePattern::parse_with(text, rules).map(|p| (path.clone(), p)).map_err(|reason| Error::config(path, reason))
                })
                .collect()
        };
        let include = match include {
            Some([]) => {
                return Err(Error::config(
                    "tables.include",
                    "is empty, which would select no table; remove it to replicate every table, or list patterns such as \"public.*\"",
                ))
            }
            Some(list) => Some(parse("tables.include", list)?),
            None => None,
        };
        Ok(TableFilter { include, exclude: parse("tables.exclude", exclude)? })
    }

    /// True when no pattern is configured: every user table replicates.
    pub fn is_everything(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    fn included(&self, t: &TableName) -> bool {
        self.include.as_ref().is_none_or(|list| list.iter().any(|(_, p)| p.matches(t)))
    }

    fn excluded(&self, t: &TableName) -> bool {
        self.exclude.iter().any(|(_, p)| p.matches(t))
    }

    /// Whether the filter selects `t` (an ordinary table or a partition root).
    pub fn selects(&self, t: &TableName) -> bool {
        self.included(t) && !self.excluded(t)
    }

    /// Both pattern lists as written, for messages.
    fn describe(&self) -> String {
        let list = |v: &[(String, TablePattern)]| v.iter().map(|(_, p)| format!("\"{}\"", p.as_str())).collect::<Vec<_>>().join(", ");
        let include = self.include.as_deref().map_or_else(|| "every table".to_string(), |v| format!("[{}]", list(v)));
        if self.exclude.is_empty() {
            format!("tables.include = {include}")
        } else {
            format!("tables.include = {include} minus tables.exclude = [{}]", list(&self.exclude))
        }
    }
}

/// A user table (ordinary or partitioned) of the source as its catalog lists it.
#[derive(Clone, Debug)]
pub struct CatalogTable {
    pub name: TableName,
    /// The table this one is a partition of (PostgreSQL).
    pub parent: Option<TableName>,
    /// A table whose UPDATEs and DELETEs cannot be replicated: PostgreSQL: no primary key and no
    /// REPLICA IDENTITY FULL (or an identity of NOTHING, or a dropped identity index).
    pub no_identity: bool,
    /// The connected role may SELECT it.
    pub readable: bool,
}

/// The tables that replicate, and what the filter left out. Partitions are not listed in
/// [`Selection::tables`]: they replicate through their root.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Ordinary tables and partition roots that replicate, sorted by schema and name.
    pub tables: Vec<TableName>,
    /// True when no filter is configured and no table was skipped: the publication may be `FOR ALL
    /// TABLES` and the schema copy takes the whole database.
    pub everything: bool,
    /// Roots the filter left out (partitions not counted).
    pub excluded: Vec<TableName>,
    /// Roots left out by `tables.skip_without_identity`, with the table lacking an identity (the
    /// root itself or one of its partitions).
    pub skipped: Vec<(TableName, TableName)>,
    /// `(field path, pattern)` of each include pattern that matches no table.
    pub unmatched: Vec<(String, String)>,
    /// Every table (partitions included), with its root.
    listing: Vec<(CatalogTable, TableName)>,
}

impl Selection {
    /// Selected tables that cannot replicate their UPDATEs and DELETEs: `(root, table lacking an
    /// identity)`, the second being the root itself or one of its partitions.
    pub fn without_identity(&self) -> Vec<(TableName, TableName)> {
        let selected: BTreeSet<&TableName> = self.tables.iter().collect();
        self.listing.iter().filter(|(t, root)| t.no_identity && selected.contains(root)).map(|(t, root)| (root.clone(), t.name.clone())).collect()
    }

    /// Selected tables the connected role may not SELECT.
    pub fn unreadable(&self) -> Vec<TableName> {
        let selected: BTreeSet<&TableName> = self.tables.iter().collect();
        self.listing.iter().filter(|(t, _)| !t.readable && selected.contains(&t.name)).map(|(t, _)| t.name.clone()).collect()
    }

    /// Every ordinary and partition root table of blue, selected or not.
    pub fn all_roots(&self) -> Vec<TableName> {
        self.listing.iter().filter(|(t, _)| t.parent.is_none()).map(|(t, _)| t.name.clone()).collect()
    }

    /// Every table (partitions included) that does not replicate; the schema copy leaves them out.
    pub fn left_out(&self) -> Vec<TableName> {
        let selected: BTreeSet<&TableName> = self.tables.iter().collect();
        self.listing.iter().filter(|(_, root)| !selected.contains(root)).map(|(t, _)| t.name.clone()).collect()
    }

    /// Leaves out every selected root that has a table without an identity, recording why.
    pub fn skip_without_identity(&mut self) {
        let lacking = self.without_identity();
        if lacking.is_empty() {
            return;
        }
        let roots: BTreeSet<&TableName> = lacking.iter().map(|(root, _)| root).collect();
        self.tables.retain(|t| !roots.contains(t));
        self.everything = false;
        self.skipped.extend(lacking);
    }
}

/// Applies `filter` to the tables a source's catalog lists. Errors: a pattern that selects or leaves
/// out a partition on its own, or a configured filter that selects nothing (both naming the field).
pub fn select(tables: Vec<CatalogTable>, filter: &TableFilter) -> Result<Selection, Error> {
    let parents: BTreeMap<TableName, TableName> = tables.iter().filter_map(|t| Some((t.name.clone(), t.parent.clone()?))).collect();
    // Partitions may nest; the bound guards against a cycle in a damaged catalog.
    let root_of = |t: &TableName| {
        let mut at = t.clone();
        for _ in 0..=parents.len() {
            match parents.get(&at) {
                Some(p) => at = p.clone(),
                None => break,
            }
        }
        at
    };
    let listing: Vec<(CatalogTable, TableName)> = tables
        .into_iter()
        .map(|t| {
            let root = root_of(&t.name);
            (t, root)
        })
        .collect();
    let roots: Vec<&TableName> = listing.iter().filter(|(t, _)| t.parent.is_none()).map(|(t, _)| &t.name).collect();
    let selected: BTreeSet<&TableName> = roots.iter().copied().filter(|t| filter.selects(t)).collect();
    for (t, root) in listing.iter().filter(|(t, _)| t.parent.is_some()) {
        for (field, p) in filter.include.iter().flatten() {
            if p.matches(&t.name) && !filter.included(root) {
                return Err(Error::config(
                    field,
                    format!(
                        "'{}' matches {}, a partition of {root}; a partitioned table replicates as a whole through its root, \
                         so select the root ({root}) instead and all its partitions come with it",
                        p.as_str(),
                        t.name
                    ),
                ));
            }
        }
        for (field, p) in &filter.exclude {
            if p.matches(&t.name) && selected.contains(root) {
                return Err(Error::config(
                    field,
                    format!(
                        "'{}' matches {}, a partition of {root}, which is selected; a partition cannot be left out on its own \
                         because it replicates through its root: exclude {root} to leave out the whole table, or narrow the pattern",
                        p.as_str(),
                        t.name
                    ),
                ));
            }
        }
    }
    let unmatched = filter
        .include
        .iter()
        .flatten()
        .filter(|(_, p)| !listing.iter().any(|(t, _)| p.matches(&t.name)))
        .map(|(field, p)| (field.clone(), p.as_str().to_string()))
        .collect();
    if selected.is_empty() && !filter.is_everything() {
        let examples: Vec<String> = roots.iter().take(5).map(|t| t.to_string()).collect();
        let blue = match roots.len() {
            0 => "blue's database has no user tables".to_string(),
            n => format!("none of blue's {n} table(s) ({}{}) is selected", examples.join(", "), if n > 5 { ", …" } else { "" }),
        };
        return Err(Error::config(
            "tables.include",
            format!(
                "selects no table: {blue} by {}; correct the patterns (schema.table; unquoted names fold to lower case, \
                 a name without a schema means public)",
                filter.describe()
            ),
        ));
    }
    let tables: Vec<TableName> = selected.iter().map(|t| (*t).clone()).collect();
    let excluded = roots.iter().filter(|t| !selected.contains(*t)).map(|t| (*t).clone()).collect();
    Ok(Selection { tables, everything: filter.is_everything(), excluded, skipped: Vec::new(), unmatched, listing })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str, parent: Option<(&str, &str)>, no_identity: bool) -> CatalogTable {
        CatalogTable { name: TableName::new(schema, name), parent: parent.map(|(s, n)| TableName::new(s, n)), no_identity, readable: true }
    }

    fn catalog() -> Vec<CatalogTable> {
        vec![
            table("public", "orders", None, false),
            table("public", "audit_log", None, false),
            table("public", "nokey", None, true),
            table("sales", "invoices", None, false),
            table("public", "m", None, false),
            table("public", "m_eu", Some(("public", "m")), false),
            table("public", "m_us", Some(("public", "m")), false),
            table("public", "m_us_old", Some(("public", "m_us")), true),
        ]
    }

    fn filter(include: Option<&[&str]>, exclude: &[&str]) -> TableFilter {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TableFilter::new(include.map(own).as_deref(), &own(exclude)).expect("valid patterns")
    }

    fn names(v: &[TableName]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn no_filter_selects_every_root_and_nested_partitions_follow_it() {
        let s = select(catalog(), &TableFilter::default()).expect("selects");
        assert!(s.everything);
        assert_eq!(names(&s.tables), ["public.audit_log", "public.m", "public.nokey", "public.orders", "sales.invoices"]);
        assert!(s.left_out().is_empty());
        let lacking: Vec<(String, String)> = s.without_identity().iter().map(|(r, t)| (r.to_string(), t.to_string())).collect();
        assert_eq!(lacking, [("public.nokey".to_string(), "public.nokey".to_string()), ("public.m".into(), "public.m_us_old".into())]);
    }

    #[test]
    fn include_and_exclude_select_roots_and_leave_out_their_partitions() {
        let s = select(catalog(), &filter(Some(&["public.*", "sales.invoices"]), &["*.audit_*", "public.m"])).expect("selects");
        assert!(!s.everything);
        assert_eq!(names(&s.tables), ["public.nokey", "public.orders", "sales.invoices"]);
        assert_eq!(names(&s.excluded), ["public.audit_log", "public.m"]);
        let mut left = names(&s.left_out());
        left.sort();
        assert_eq!(left, ["public.audit_log", "public.m", "public.m_eu", "public.m_us", "public.m_us_old"]);
        // Only selected tables count for the identity check.
        assert_eq!(s.without_identity().len(), 1);
    }

    #[test]
    fn skipping_tables_without_identity_leaves_out_the_whole_root() {
        let mut s = select(catalog(), &TableFilter::default()).expect("selects");
        s.skip_without_identity();
        assert!(!s.everything);
        assert_eq!(names(&s.tables), ["public.audit_log", "public.orders", "sales.invoices"]);
        assert_eq!(s.skipped.len(), 2);
        assert!(names(&s.left_out()).contains(&"public.m_eu".to_string()));
    }

    #[test]
    fn a_pattern_matching_only_a_partition_is_an_error_naming_the_root() {
        let err = select(catalog(), &filter(Some(&["public.orders", "public.m_eu"]), &[])).expect_err("partition only").to_string();
        assert!(err.contains("tables.include[1]") && err.contains("public.m_eu") && err.contains("public.m"), "{err}");
        let err = select(catalog(), &filter(None, &["public.m_us"])).expect_err("partition excluded").to_string();
        assert!(err.contains("tables.exclude[0]") && err.contains("exclude public.m"), "{err}");
        // A wildcard that matches a root and its partitions alike is fine, and so is excluding
        // partitions of a root that is left out anyway.
        let s = select(catalog(), &filter(Some(&["public.m*"]), &[])).expect("root and partitions");
        assert_eq!(names(&s.tables), ["public.m"]);
        let s = select(catalog(), &filter(Some(&["public.*"]), &["public.m*"])).expect("root and partitions left out");
        assert!(!s.tables.iter().any(|t| t.name.starts_with('m')));
    }

    #[test]
    fn a_filter_selecting_nothing_is_an_error_naming_tables_include() {
        let err = select(catalog(), &filter(Some(&["nosuch.*"]), &[])).expect_err("nothing").to_string();
        assert!(err.contains("tables.include") && err.contains("selects no table") && err.contains("nosuch.*"), "{err}");
        let err = select(catalog(), &filter(None, &["*.*"])).expect_err("all excluded").to_string();
        assert!(err.contains("tables.include") && err.contains("tables.exclude"), "{err}");
        // Without a filter an empty database is not an error (nothing to replicate yet).
        assert!(select(Vec::new(), &TableFilter::default()).expect("empty").tables.is_empty());
    }

    #[test]
    fn include_patterns_that_match_nothing_are_reported() {
        let s = select(catalog(), &filter(Some(&["public.orders", "archive.*"]), &[])).expect("selects");
        assert_eq!(s.unmatched, [("tables.include[1]".to_string(), "archive.*".to_string())]);
    }

    #[test]
    fn an_empty_include_list_and_malformed_patterns_name_the_field() {
        let err = TableFilter::new(Some(&[]), &[]).expect_err("empty").to_string();
        assert!(err.contains("tables.include") && err.contains("remove it"), "{err}");
        let err = TableFilter::new(Some(&["a.b".into(), "x.y".into(), "a.b.c".into()]), &[]).expect_err("bad").to_string();
        assert!(err.contains("tables.include[2]") && err.contains("schema.table"), "{err}");
        let err = TableFilter::new(None, &["bad pattern".into()]).expect_err("bad").to_string();
        assert!(err.contains("tables.exclude[0]"), "{err}");
    }
}
