//! Blue's objects put in their classes: what [`super::take`] read from the catalogs, decided.

use super::{Elsewhere, Relation, Role};
use crate::source::contract::inventory::{Class, Handling, Inventory};
use crate::tables::Selection;
use std::collections::{BTreeMap, BTreeSet};
use turnout_decoders::schema::TableName;

/// Groups objects into named classes, each added in the order they were first met.
#[derive(Default)]
struct Grouped {
    order: Vec<(String, Handling)>,
    classes: BTreeMap<(String, Handling), (Class, Vec<String>)>,
}

impl Grouped {
    fn put(&mut self, class: &str, handling: Handling, what: &str, fix: Option<String>, object: String) {
        let key = (class.to_string(), handling);
        let entry = self.classes.entry(key.clone()).or_insert_with(|| {
            self.order.push(key);
            let mut c = Class::new(class, handling, what);
            c.fix = fix;
            (c, Vec::new())
        });
        entry.1.push(object);
    }

    fn into_inventory(mut self, inventory: &mut Inventory) {
        for key in self.order {
            if let Some((class, objects)) = self.classes.remove(&key) {
                inventory.add(class.with_objects(objects));
            }
        }
    }
}

/// Every object of blue in its class, decided ([`Handling`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn classify(
    role: &Role,
    relations: &[Relation],
    objects: &[(String, String, Option<String>)],
    unknown: &[String],
    attached: &[(String, TableName, String, String)],
    elsewhere: &Elsewhere,
    lacks: &(Vec<String>, Vec<String>),
    selection: &Selection,
) -> Inventory {
    // A partition goes wherever its root goes: the selection's left-out tables include partitions.
    let left_out: BTreeSet<TableName> = selection.left_out().into_iter().collect();
    let mut g = Grouped::default();
    relations_into(&mut g, role, relations, &left_out, selection);
    ownership_into(&mut g, role, relations);
    attached_into(&mut g, relations, attached, &left_out);
    objects_into(&mut g, objects, lacks);
    unknown_into(&mut g, unknown, lacks);
    let mut inventory = Inventory::default();
    g.into_inventory(&mut inventory);
    elsewhere_into(&mut inventory, elsewhere);
    inventory
}

/// Whether a relation's rows replicate: a table or partitioned table the selection keeps.
fn replicated(r: &Relation, left_out: &BTreeSet<TableName>) -> bool {
    matches!(r.kind, 'r' | 'p') && !left_out.contains(&r.name)
}

/// Tables, views, sequences and the other relations, each by kind, persistence and row security.
fn relations_into(g: &mut Grouped, role: &Role, relations: &[Relation], left_out: &BTreeSet<TableName>, selection: &Selection) {
    let is_replicated = |r: &Relation| replicated(r, left_out);
    let fix_logged = |t: &TableName| format!("ALTER TABLE {} SET LOGGED on blue (its changes are then logged), or leave it out (tables.exclude)", t.quoted());
    for r in relations {
        let name = r.name.to_string();
        if r.temporary {
            g.put("temporary table", Handling::LeftOut, "another session's, not part of the database", None, name);
            continue;
        }
        match (r.kind, r.persistence) {
            ('r' | 'p', 'p' | 'u') if !is_replicated(r) => {
                let what = if selection.skipped.iter().any(|(root, _)| *root == r.name) {
                    "left out: no replica identity (tables.skip_without_identity)"
                } else {
                    "left out by [tables]"
                };
                g.put("table not replicated", Handling::LeftOut, what, None, name);
            }
            ('r' | 'p', 'u') => {
                g.put(
                    "unlogged table",
                    Handling::Refused,
                    "never written to the WAL, so logical replication carries none of its changes: green would keep the copy's rows",
                    Some(fix_logged(&r.name)),
                    name,
                );
            }
            ('r' | 'p', 'p') => replicated_table_into(g, role, r, name),
            ('v', 'p') => g.put("view", Handling::Copied, "created with the schema, compared at the cutover", None, name),
            ('m', 'p') => g.put(
                "materialized view",
                Handling::AtCutover,
                "created with the schema; refreshed on green before the fence, its rows compared with blue's there and inside the pause (a view blue keeps frozen refuses)",
                None,
                name,
            ),
            ('m', 'u') => g.put(
                "unlogged materialized view",
                Handling::AtCutover,
                "created with the schema; refreshed on green before the fence, its rows compared with blue's there and inside the pause (a view blue keeps frozen refuses)",
                None,
                name,
            ),
            ('S', 'p' | 'u') => g.put("sequence", Handling::AtCutover, "created with the schema; moved ahead of blue's value at the cutover", None, name),
            ('i' | 'I', _) => g.put("index", Handling::Copied, "created with the schema, compared at the cutover", None, name),
            ('c', _) => g.put("composite type", Handling::Copied, "created with the schema", None, name),
            ('f', _) => g.put("foreign table", Handling::Copied, "created with the schema; its rows stay on the foreign server", None, name),
            (kind, persistence) => g.put(
                &format!("relation of kind '{kind}' ({persistence})"),
                Handling::Refused,
                "a kind of relation turnout does not know",
                Some("leave it out of the database turnout replicates, or drop it".into()),
                name,
            ),
        }
    }
}

/// A replicated, logged table: streamed as its kind says; refused when its row-level security
/// applies to turnout's role.
fn replicated_table_into(g: &mut Grouped, role: &Role, r: &Relation, name: String) {
    let (class, what) = if r.partition {
        ("partition", "streamed through its root")
    } else if r.inherits {
        ("inheritance child", "streamed as a table of its own; its parents are read ONLY")
    } else if r.kind == 'p' {
        ("partitioned table", "copied, then streamed; its partitions through it")
    } else if r.parent {
        ("inheritance parent", "copied and verified ONLY (its children are tables of their own), then streamed")
    } else {
        ("table", "copied, then streamed")
    };
    g.put(class, Handling::Streamed, what, None, name.clone());
    if !r.row_security {
        return;
    }
    if !role.bypasses && (!r.owned || r.forced) {
        let fix = format!(
            "ALTER ROLE \"{}\" BYPASSRLS on blue (as a superuser), or connect as the tables' owner when they do not FORCE ROW LEVEL SECURITY",
            role.name
        );
        g.put(
            "table with row-level security",
            Handling::Refused,
            "its policies apply to turnout's role, so the copy and verify would read fewer rows than blue holds",
            Some(fix),
            name,
        );
    } else {
        g.put("table with row-level security", Handling::Streamed, "read with row_security = off: turnout's role bypasses its policies", None, name);
    }
}

/// Owners other than turnout's role and granted privileges: the schema copy runs without them.
fn ownership_into(g: &mut Grouped, role: &Role, relations: &[Relation]) {
    // Owners and grants: the schema copy runs without them (pg_dump --no-owner --no-privileges).
    let owners: BTreeSet<&str> = relations.iter().filter(|r| !r.temporary && r.owner != role.name).map(|r| r.owner.as_str()).collect();
    for owner in owners {
        g.put(
            "owner",
            Handling::Operator,
            "green's copies are owned by the role turnout connects as",
            Some(
                "give green's objects blue's owners before the cutover (ALTER … OWNER TO …), after creating the roles on green (pg_dumpall --roles-only)"
                    .into(),
            ),
            owner.to_string(),
        );
    }
    for r in relations.iter().filter(|r| r.granted && !r.temporary) {
        g.put(
            "privileges",
            Handling::Operator,
            "GRANTs are not copied with the schema",
            Some("grant the same on green before the cutover (pg_dump --schema-only --section=pre-data lists them as GRANT statements)".into()),
            r.name.to_string(),
        );
    }
}

/// Triggers, rules and policies on the relations that replicate (or that views and foreign tables carry).
fn attached_into(g: &mut Grouped, relations: &[Relation], attached: &[(String, TableName, String, String)], left_out: &BTreeSet<TableName>) {
    let is_replicated = |r: &Relation| replicated(r, left_out);
    for (kind, table, name, enabled) in attached {
        if !relations.iter().any(|r| r.name == *table && is_replicated(r)) && !relations.iter().any(|r| r.name == *table && matches!(r.kind, 'v' | 'm' | 'f')) {
            continue;
        }
        let object = format!("{name} on {table}");
        if matches!(kind.as_str(), "trigger" | "rule") && matches!(enabled.as_str(), "A" | "R") {
            g.put(
                &format!("{kind} that fires for replicated rows"),
                Handling::Refused,
                "enabled ALWAYS or REPLICA, so on green it would fire again for every row turnout applies",
                Some(format!("ALTER TABLE {} ENABLE {} {name} on blue (an ordinary {kind}), or drop it", table.quoted(), kind.to_uppercase())),
                object,
            );
        } else {
            g.put(kind, Handling::Copied, "created with the schema; does not fire for turnout's apply", None, object);
        }
    }
}

/// Every other object `pg_identify_object` names, by kind; an unknown kind is refused.
fn objects_into(g: &mut Grouped, objects: &[(String, String, Option<String>)], lacks: &(Vec<String>, Vec<String>)) {
    for (kind, identity, _) in objects {
        let (handling, what, fix): (Handling, &str, Option<String>) = match kind.as_str() {
            "type"
            | "schema"
            | "cast"
            | "collation"
            | "conversion"
            | "language"
            | "operator"
            | "operator class"
            | "operator family"
            | "access method"
            | "text search parser"
            | "text search dictionary"
            | "text search template"
            | "text search configuration"
            | "transform"
            | "foreign-data wrapper"
            | "server"
            | "user mapping"
            | "aggregate" => (Handling::Copied, "created with the schema", None),
            "function" | "procedure" => (Handling::Copied, "created with the schema, compared at the cutover", None),
            "event trigger" => (Handling::Copied, "created with the schema; fires on green for DDL there", None),
            "extension" if lacks.0.iter().any(|e| e.split(' ').next() == Some(identity.as_str())) => (
                Handling::Refused,
                "green's server does not have it, so the schema copy cannot create it",
                Some(format!("install the extension {identity} on green's server (its package for green's PostgreSQL version)")),
            ),
            "extension" => (Handling::Copied, "created on green with CREATE EXTENSION (green's version of it)", None),
            "publication" if identity.starts_with("turnout_") => continue,
            "publication" => (
                Handling::Operator,
                "not copied: a downstream consumer reads it",
                Some(
                    "name it in the consumer's [[handover]] publications (the cutover makes it on green as on blue), or create it on green \
                     yourself (pg_dump --schema-only prints its CREATE PUBLICATION)"
                        .into(),
                ),
            ),
            "default acl" => {
                (Handling::Operator, "default privileges are not copied", Some("run the same ALTER DEFAULT PRIVILEGES on green before the cutover".into()))
            }
            _ => (
                Handling::Refused,
                "a kind of object turnout does not know",
                Some("drop it on blue, or move this database without turnout; turnout cannot tell whether green would be the same".into()),
            ),
        };
        g.put(kind, handling, what, fix, identity.clone());
    }
}

/// Catalogs turnout does not know that hold user objects, and collations green's server lacks.
fn unknown_into(g: &mut Grouped, unknown: &[String], lacks: &(Vec<String>, Vec<String>)) {
    for catalog in unknown {
        g.put(
            "objects of an unknown catalog",
            Handling::Refused,
            "a catalog turnout does not know holds user objects",
            Some("move this database with a turnout that knows this server version".into()),
            catalog.clone(),
        );
    }
    for collation in &lacks.1 {
        g.put(
            "collation green lacks",
            Handling::Refused,
            "columns use it and green's server does not have it",
            Some("install the locale on green's server (locale-gen, or an ICU collation) and run pg_import_system_collations".into()),
            collation.clone(),
        );
    }
}

/// What lives outside the database's own catalogs: large objects, subscriptions, slots, settings.
fn elsewhere_into(inventory: &mut Inventory, elsewhere: &Elsewhere) {
    let (count, named) = &elsewhere.large_objects;
    inventory.add(
        Class::new(
            "large object",
            Handling::Refused,
            "logical replication carries no large object and the copy takes none: green's rows would name objects that do not exist",
        )
        .with_fix("store them in bytea columns (lo_get), or unlink them (lo_unlink) if nothing reads them")
        .with_count(named.clone(), *count),
    );
    inventory.add(
        Class::new("subscription", Handling::Operator, "blue replicates from another server; green does not")
            .with_fix("at the cutover create the subscription on green (copy_data = false, from where blue's stopped) and drop it on blue")
            .with_objects(elsewhere.subscriptions.clone()),
    );
    inventory.add(
        Class::new(
            "logical replication slot",
            Handling::Operator,
            "a downstream consumer of blue's changes: the cutover carries it to green when a [[handover]] entry names it and leaves it on blue otherwise",
        )
        .with_fix("`turnout check`'s consumers list says which are carried; carry one with a [[handover]] entry (slot = its name)")
        .with_objects(elsewhere.logical_slots.clone()),
    );
    inventory.add(
        Class::new("physical replication slot", Handling::Operator, "a standby or backup of blue; it does not follow the cutover")
            .with_fix("build green's standbys before the cutover")
            .with_objects(elsewhere.physical_slots.clone()),
    );
    inventory.add(
        Class::new("database setting", Handling::AtCutover, "made equal on green with the definitions, after the cutover's lag wait")
            .with_objects(elsewhere.settings.clone()),
    );
}
