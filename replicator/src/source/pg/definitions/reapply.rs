//! The statements that make one object on the side traffic moves to defined as on the fenced side,
//! from the two entries pg_dump printed for it ([`super::entries`]), each object in one transaction.
//!
//! What can be replaced in place is (`CREATE OR REPLACE` for views, functions, procedures and rules;
//! `ALTER SEQUENCE` with the wanted options; `ALTER TYPE … ADD VALUE` for enum labels added); what
//! cannot is dropped and created again in the same transaction (triggers, policies, indexes,
//! constraints, materialized views, statistics objects) — which fails, naming the object, when
//! something else depends on it. Attributes a removal shows as a missing entry (a default, a comment,
//! row-level security) are removed. An object only the other side has is not dropped: it may be the
//! operator's (an index made for the new version), so it is refused, naming the `DROP` to run or the
//! setting that keeps it. What this module cannot carry (a table's columns, an identity's options, a
//! composite type's attributes) is refused naming the object and the fix; nothing is changed then.

use super::entries::{Difference, Entry};
use turnout_decoders::schema::quote_ident;

/// What to run on the other side for one difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The object, as the operator reads it.
    pub object: String,
    /// What the plan does, in a few words (`replaced`, `created`, `labels added`).
    pub action: &'static str,
    /// Statements run in one transaction.
    pub statements: Vec<String>,
}

/// Why a difference cannot be carried by turnout: the object and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Uncarried {
    pub object: String,
    pub fix: String,
}

/// The plan for `d`, or why turnout cannot carry it. `other` names the side that changes (`green`).
pub(crate) fn plan(d: &Difference, other: &str) -> Result<Plan, Uncarried> {
    let object = d.key();
    let plan = |action, statements: Vec<String>| Ok(Plan { object: object.clone(), action, statements });
    match d {
        Difference::Missing(want) => match want.kind.as_str() {
            "TABLE" | "FOREIGN TABLE" | "TABLE ATTACH" => Err(Uncarried {
                object,
                fix: format!(
                    "a table is created on {other} with its rows: start turnout run again (it adds a selected table to the stream and copies it) \
                     or leave it out with tables.exclude"
                ),
            }),
            _ => plan("created", vec![want.sql.clone()]),
        },
        Difference::Changed { want, have } => changed(want, have, other).map(|(action, statements)| Plan { object, action, statements }),
        Difference::Extra(have) => removed(have, other).map(|(action, statements)| Plan { object, action, statements }),
    }
}

type Steps = (&'static str, Vec<String>);

fn changed(want: &Entry, have: &Entry, other: &str) -> Result<Steps, Uncarried> {
    let key = want.key();
    let refuse =
        |why: &str| Err(Uncarried { object: key.clone(), fix: format!("{why}; make it on {other} as on the fenced side by hand, then cut over again") });
    let sql = want.sql.as_str();
    match want.kind.as_str() {
        "VIEW" => or_replace(sql, "CREATE VIEW ", "CREATE OR REPLACE VIEW ")
            .map_or_else(|| refuse("its definition is not a CREATE VIEW"), |s| Ok(("replaced", vec![s]))),
        "FUNCTION" | "PROCEDURE" => or_replace(sql, "CREATE FUNCTION ", "CREATE OR REPLACE FUNCTION ")
            .or_else(|| or_replace(sql, "CREATE PROCEDURE ", "CREATE OR REPLACE PROCEDURE "))
            .map_or_else(|| refuse("its definition is not a CREATE FUNCTION or PROCEDURE"), |s| Ok(("replaced", vec![s]))),
        "RULE" => or_replace(sql, "CREATE RULE ", "CREATE OR REPLACE RULE ")
            .map_or_else(|| refuse("its definition is not a CREATE RULE"), |s| Ok(("replaced", vec![s]))),
        "MATERIALIZED VIEW" => Ok(("created again", vec![format!("DROP MATERIALIZED VIEW {}", qualified(want)), sql.to_owned()])),
        "INDEX" => Ok(("created again", vec![format!("DROP INDEX {}", qualified(want)), sql.to_owned()])),
        "STATISTICS" => Ok(("created again", vec![format!("DROP STATISTICS {}", qualified(want)), sql.to_owned()])),
        "TRIGGER" => match on_table(have, &["CREATE TRIGGER ", "CREATE CONSTRAINT TRIGGER "]) {
            Some((name, table)) => Ok(("created again", vec![format!("DROP TRIGGER {name} ON {table}"), sql.to_owned()])),
            None => refuse("turnout could not read the trigger's name and table"),
        },
        "POLICY" => match on_table(have, &["CREATE POLICY "]) {
            Some((name, table)) => Ok(("created again", vec![format!("DROP POLICY {name} ON {table}"), sql.to_owned()])),
            None => refuse("turnout could not read the policy's name and table"),
        },
        "CONSTRAINT" | "FK CONSTRAINT" | "CHECK CONSTRAINT" => match drop_constraint(have) {
            Some(drop) => Ok(("created again", vec![drop, sql.to_owned()])),
            None => refuse("turnout could not read the constraint's table and name"),
        },
        "DEFAULT" | "COMMENT" | "ROW SECURITY" | "SECURITY LABEL" => Ok(("set", vec![sql.to_owned()])),
        "SEQUENCE" => match sql.strip_prefix("CREATE SEQUENCE ") {
            Some(rest) if !rest.contains(";\n") => Ok(("altered", vec![format!("ALTER SEQUENCE {rest}")])),
            _ => refuse("an identity column's or unlogged sequence's options changed"),
        },
        "TYPE" => match (enum_labels(sql), enum_labels(&have.sql)) {
            (Some(wanted), Some(had)) => match added_labels(&want_type(sql), &wanted, &had) {
                Some(statements) => Ok(("labels added", statements)),
                None => refuse("an enum label was removed, renamed or moved, which PostgreSQL cannot do to a type in use"),
            },
            _ => refuse("a type other than an enum changed (a composite type's attributes, a range)"),
        },
        "DOMAIN" => match domain_changes(sql, &have.sql) {
            Some(statements) => Ok(("altered", statements)),
            None => refuse("a domain's base type or collation changed"),
        },
        "TABLE" => match table_changes(sql, &have.sql) {
            Some(statements) => Ok(("altered", statements)),
            None => refuse("a table's columns or options differ beyond its constraints, defaults and NOT NULL, which the change stream does not carry"),
        },
        "FOREIGN TABLE" => refuse("a foreign table's columns or options differ"),
        _ => refuse("turnout does not replace objects of this kind"),
    }
}

fn removed(have: &Entry, other: &str) -> Result<Steps, Uncarried> {
    let key = have.key();
    let sql = have.sql.as_str();
    match have.kind.as_str() {
        "DEFAULT" => sql
            .split_once(" SET DEFAULT ")
            .map(|(head, _)| Ok(("dropped", vec![format!("{head} DROP DEFAULT")])))
            .unwrap_or_else(|| Err(Uncarried { object: key.clone(), fix: format!("drop the default on {other}") })),
        "COMMENT" => comment_removed(sql)
            .map(|s| Ok(("dropped", vec![s])))
            .unwrap_or_else(|| Err(Uncarried { object: key.clone(), fix: format!("remove the comment on {other} (COMMENT ON … IS NULL)") })),
        "ROW SECURITY" => Ok(("disabled", vec![sql.replace(" ENABLE ROW LEVEL SECURITY", " DISABLE ROW LEVEL SECURITY")])),
        _ => Err(Uncarried {
            object: key.clone(),
            fix: format!(
                "the fenced side has no such object (dropped after the copy?): drop it on {other} ({}), or keep it there by naming it in \
                 cutover.keep_definitions = [\"{key}\"]",
                drop_hint(have)
            ),
        }),
    }
}

/// The statement that drops `e`, for the operator to read.
fn drop_hint(e: &Entry) -> String {
    match e.kind.as_str() {
        "TRIGGER" | "POLICY" => on_table(e, &["CREATE TRIGGER ", "CREATE CONSTRAINT TRIGGER ", "CREATE POLICY "])
            .map(|(name, table)| format!("DROP {} {name} ON {table}", e.kind))
            .unwrap_or_else(|| format!("DROP {} …", e.kind)),
        "CONSTRAINT" | "FK CONSTRAINT" | "CHECK CONSTRAINT" => drop_constraint(e).unwrap_or_else(|| "ALTER TABLE … DROP CONSTRAINT …".into()),
        "FUNCTION" | "PROCEDURE" | "AGGREGATE" => format!("DROP {} {}.{}", e.kind, quote_ident(e.schema.as_deref().unwrap_or("public")), e.tag),
        _ => format!("DROP {} {}", e.kind, qualified(e)),
    }
}

/// `sql` with its leading `from` made `to`, when it starts so.
fn or_replace(sql: &str, from: &str, to: &str) -> Option<String> {
    sql.strip_prefix(from).map(|rest| format!("{to}{rest}"))
}

/// The entry's schema-qualified, quoted name (for an entry whose tag is its name).
fn qualified(e: &Entry) -> String {
    match &e.schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&e.tag)),
        None => quote_ident(&e.tag),
    }
}

/// Reads one identifier as pg_dump prints it (quoted when it must be) from the start of `s`:
/// (the identifier as written, the rest).
fn ident(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut i = 0;
        let bytes = rest.as_bytes();
        while i < bytes.len() {
            if bytes[i] == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                return Some((&s[..i + 2], &rest[i + 1..]));
            }
            i += 1;
        }
        return None;
    }
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

/// A possibly qualified name (`schema.name`) from the start of `s`: (the name as written, the rest).
fn qualified_ident(s: &str) -> Option<(&str, &str)> {
    let (_, mut rest) = ident(s)?;
    while let Some(after_dot) = rest.strip_prefix('.') {
        rest = ident(after_dot)?.1;
    }
    Some((&s[..s.len() - rest.len()], rest))
}

/// A trigger's or policy's name and table from its `CREATE … name … ON table` statement.
fn on_table<'a>(e: &'a Entry, prefixes: &[&str]) -> Option<(&'a str, &'a str)> {
    let rest = prefixes.iter().find_map(|p| e.sql.strip_prefix(p))?;
    let (name, rest) = ident(rest)?;
    let at = rest.find(" ON ")?;
    let (table, _) = qualified_ident(&rest[at + 4..])?;
    Some((name, table))
}

/// The `ALTER … DROP CONSTRAINT` undoing an `ALTER TABLE [ONLY] t ADD CONSTRAINT c …` or
/// `ALTER DOMAIN d ADD CONSTRAINT c …` entry.
fn drop_constraint(e: &Entry) -> Option<String> {
    let (what, rest) = ["ALTER TABLE ONLY ", "ALTER TABLE ", "ALTER DOMAIN "].iter().find_map(|p| e.sql.strip_prefix(p).map(|r| (p.trim_end(), r)))?;
    let (target, rest) = qualified_ident(rest)?;
    let rest = rest.trim_start_matches(['\n', ' ', '\t']).strip_prefix("ADD CONSTRAINT ")?;
    let (name, _) = ident(rest)?;
    Some(format!("{what} {target} DROP CONSTRAINT {name}"))
}

/// `COMMENT ON x IS '…';` as `COMMENT ON x IS NULL;`.
fn comment_removed(sql: &str) -> Option<String> {
    let at = sql.find(" IS '").or_else(|| sql.find(" IS E'"))?;
    sql.starts_with("COMMENT ON ").then(|| format!("{} IS NULL", &sql[..at]))
}

/// A domain as pg_dump prints it: `CREATE DOMAIN name AS type [COLLATE c] [DEFAULT e] [NOT NULL]`,
/// then one `\n\tCONSTRAINT name definition` per validated constraint.
struct Domain<'a> {
    name: &'a str,
    base: &'a str,
    default: Option<&'a str>,
    not_null: bool,
    constraints: Vec<(&'a str, &'a str)>,
}

fn domain(sql: &str) -> Option<Domain<'_>> {
    let sql = sql.strip_suffix(';')?;
    let mut parts = sql.split("\n\tCONSTRAINT ");
    let head = parts.next()?.strip_prefix("CREATE DOMAIN ")?;
    let (name, rest) = qualified_ident(head)?;
    let rest = rest.strip_prefix(" AS ")?;
    let (rest, not_null) = match rest.strip_suffix(" NOT NULL") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (base, default) = match rest.split_once(" DEFAULT ") {
        Some((b, d)) => (b, Some(d)),
        None => (rest, None),
    };
    let constraints = parts.map(|c| ident(c).map(|(n, def)| (n, def.trim_start()))).collect::<Option<Vec<_>>>()?;
    Some(Domain { name, base, default, not_null, constraints })
}

/// The `ALTER DOMAIN` statements that make the domain `have` defines into the one `want` defines;
/// `None` when the base type (or its collation) differs, which no `ALTER DOMAIN` changes.
fn domain_changes(want: &str, have: &str) -> Option<Vec<String>> {
    let (w, h) = (domain(want)?, domain(have)?);
    if w.base != h.base || w.name != h.name {
        return None;
    }
    let name = w.name;
    let mut out = Vec::new();
    for (c, def) in &h.constraints {
        if !w.constraints.contains(&(c, def)) {
            out.push(format!("ALTER DOMAIN {name} DROP CONSTRAINT {c}"));
        }
    }
    if w.default != h.default {
        out.push(match w.default {
            Some(d) => format!("ALTER DOMAIN {name} SET DEFAULT {d}"),
            None => format!("ALTER DOMAIN {name} DROP DEFAULT"),
        });
    }
    if w.not_null != h.not_null {
        out.push(format!("ALTER DOMAIN {name} {} NOT NULL", if w.not_null { "SET" } else { "DROP" }));
    }
    for (c, def) in &w.constraints {
        if !h.constraints.contains(&(c, def)) {
            out.push(format!("ALTER DOMAIN {name} ADD CONSTRAINT {c} {def}"));
        }
    }
    Some(out)
}

/// A table as pg_dump prints it: `CREATE TABLE name (` element lines `)` and what follows (partition
/// key, further statements); each element a column or a `CONSTRAINT`.
struct Table<'a> {
    name: &'a str,
    columns: Vec<&'a str>,
    constraints: Vec<(&'a str, &'a str)>,
    rest: &'a str,
}

fn table(sql: &str) -> Option<Table<'_>> {
    let head = ["CREATE TABLE ", "CREATE UNLOGGED TABLE "].iter().find_map(|p| sql.strip_prefix(p))?;
    let (name, rest) = qualified_ident(head)?;
    let body = rest.strip_prefix(" (\n")?;
    let end = body.find("\n)")?;
    let (elements, rest) = (&body[..end], &body[end + 2..]);
    let mut columns = Vec::new();
    let mut constraints = Vec::new();
    for line in elements.lines() {
        let line = line.trim().trim_end_matches(',');
        match line.strip_prefix("CONSTRAINT ") {
            Some(c) => constraints.push(ident(c).map(|(n, def)| (n, def.trim_start()))?),
            None => columns.push(line),
        }
    }
    Some(Table { name, columns, constraints, rest })
}

/// A column line as (name and type, default, NOT NULL).
fn column(line: &str) -> (&str, Option<&str>, bool) {
    let (line, not_null) = match line.strip_suffix(" NOT NULL") {
        Some(l) => (l, true),
        None => (line, false),
    };
    match line.split_once(" DEFAULT ") {
        Some((head, default)) => (head, Some(default), not_null),
        None => (line, None, not_null),
    }
}

/// The `ALTER TABLE` statements that make the table `have` defines into the one `want` defines, when
/// they differ only in constraints, column defaults and `NOT NULL`; `None` otherwise (a column added,
/// dropped or retyped is the change stream's or the operator's).
fn table_changes(want: &str, have: &str) -> Option<Vec<String>> {
    let (w, h) = (table(want)?, table(have)?);
    if w.name != h.name || w.rest != h.rest || w.columns.len() != h.columns.len() {
        return None;
    }
    let name = w.name;
    let mut out = Vec::new();
    for (c, def) in &h.constraints {
        if !w.constraints.contains(&(c, def)) {
            out.push(format!("ALTER TABLE {name} DROP CONSTRAINT {c}"));
        }
    }
    for (wc, hc) in w.columns.iter().zip(&h.columns) {
        let ((whead, wdefault, wnn), (hhead, hdefault, hnn)) = (column(wc), column(hc));
        if whead != hhead || whead.contains(" GENERATED ") {
            if wc != hc {
                return None;
            }
            continue;
        }
        let (col, _) = ident(whead)?;
        if wdefault != hdefault {
            out.push(match wdefault {
                Some(d) => format!("ALTER TABLE ONLY {name} ALTER COLUMN {col} SET DEFAULT {d}"),
                None => format!("ALTER TABLE ONLY {name} ALTER COLUMN {col} DROP DEFAULT"),
            });
        }
        if wnn != hnn {
            out.push(format!("ALTER TABLE {name} ALTER COLUMN {col} {} NOT NULL", if wnn { "SET" } else { "DROP" }));
        }
    }
    for (c, def) in &w.constraints {
        if !h.constraints.contains(&(c, def)) {
            out.push(format!("ALTER TABLE {name} ADD CONSTRAINT {c} {def}"));
        }
    }
    Some(out)
}

/// The type's name in a `CREATE TYPE name AS ENUM (…)` statement.
fn want_type(sql: &str) -> String {
    sql.strip_prefix("CREATE TYPE ").and_then(qualified_ident).map(|(n, _)| n.to_owned()).unwrap_or_default()
}

/// An enum's labels, as SQL literals in their order, from `CREATE TYPE … AS ENUM (…);`.
fn enum_labels(sql: &str) -> Option<Vec<String>> {
    let list = sql.split_once(" AS ENUM (")?.1.trim_end().strip_suffix(");")?;
    let mut labels = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let body = rest.strip_prefix('\'')?;
        let mut i = 0;
        let bytes = body.as_bytes();
        loop {
            if i >= bytes.len() {
                return None;
            }
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                break;
            }
            i += 1;
        }
        labels.push(format!("'{}'", &body[..i]));
        rest = body[i + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    Some(labels)
}

/// `ALTER TYPE … ADD VALUE` for each label `wanted` has and `had` lacks, placed next to its
/// neighbour; `None` unless `had` is `wanted` with labels left out (a label removed, renamed or moved
/// cannot be carried).
fn added_labels(name: &str, wanted: &[String], had: &[String]) -> Option<Vec<String>> {
    let mut it = had.iter().peekable();
    for w in wanted {
        if it.peek() == Some(&w) {
            it.next();
        }
    }
    if it.next().is_some() || name.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut present: Vec<&String> = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        if had.contains(w) {
            present.push(w);
            continue;
        }
        let place = match present.last() {
            Some(prev) => format!(" AFTER {prev}"),
            None => match wanted[i + 1..].iter().find(|n| had.contains(n)) {
                Some(next) => format!(" BEFORE {next}"),
                None => String::new(),
            },
        };
        out.push(format!("ALTER TYPE {name} ADD VALUE {w}{place}"));
        present.push(w);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: &str, tag: &str, sql: &str) -> Entry {
        Entry { kind: kind.into(), schema: Some("public".into()), tag: tag.into(), sql: sql.into() }
    }

    fn changed_plan(kind: &str, tag: &str, want: &str, have: &str) -> Result<Plan, Uncarried> {
        plan(&Difference::Changed { want: e(kind, tag, want), have: e(kind, tag, have) }, "green")
    }

    #[test]
    fn views_functions_and_rules_are_replaced_in_place() {
        let p = changed_plan("VIEW", "v", "CREATE VIEW public.v AS\n SELECT 1;", "CREATE VIEW public.v AS\n SELECT 2;").expect("plan");
        assert_eq!(p.statements, ["CREATE OR REPLACE VIEW public.v AS\n SELECT 1;"]);
        let p = changed_plan("FUNCTION", "f(integer)", "CREATE FUNCTION public.f(x integer) RETURNS integer STRICT", "x").expect("plan");
        assert_eq!(p.statements, ["CREATE OR REPLACE FUNCTION public.f(x integer) RETURNS integer STRICT"]);
        let p = changed_plan("PROCEDURE", "p()", "CREATE PROCEDURE public.p() BEGIN ATOMIC END;", "x").expect("plan");
        assert!(p.statements[0].starts_with("CREATE OR REPLACE PROCEDURE"));
    }

    #[test]
    fn triggers_policies_and_constraints_are_dropped_and_created_in_one_go() {
        let p = changed_plan(
            "TRIGGER",
            "v \"Odd\" trg",
            "CREATE TRIGGER \"Odd\"\" trg\" INSTEAD OF INSERT ON public.v FOR EACH ROW EXECUTE FUNCTION public.f2();",
            "CREATE TRIGGER \"Odd\"\" trg\" INSTEAD OF INSERT ON public.v FOR EACH ROW EXECUTE FUNCTION public.f();",
        )
        .expect("plan");
        assert_eq!(p.statements[0], "DROP TRIGGER \"Odd\"\" trg\" ON public.v");
        let p = changed_plan("POLICY", "t p", "CREATE POLICY p ON \"my schema\".t USING ((a > 1));", "CREATE POLICY p ON \"my schema\".t USING ((a > 0));")
            .expect("plan");
        assert_eq!(p.statements[0], "DROP POLICY p ON \"my schema\".t");
        let p = changed_plan(
            "CHECK CONSTRAINT",
            "t c",
            "ALTER TABLE public.t\n    ADD CONSTRAINT c CHECK ((a > 1)) NOT VALID;",
            "ALTER TABLE public.t\n    ADD CONSTRAINT c CHECK ((a > 0)) NOT VALID;",
        )
        .expect("plan");
        assert_eq!(p.statements[0], "ALTER TABLE public.t DROP CONSTRAINT c");
        let p = changed_plan(
            "FK CONSTRAINT",
            "t t_fk",
            "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_fk FOREIGN KEY (a) REFERENCES public.u(id);",
            "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_fk FOREIGN KEY (a) REFERENCES public.w(id);",
        )
        .expect("plan");
        assert_eq!(p.statements[0], "ALTER TABLE ONLY public.t DROP CONSTRAINT t_fk");
        let p = changed_plan(
            "INDEX",
            "Big Idx",
            "CREATE UNIQUE INDEX \"Big Idx\" ON public.t USING btree (a);",
            "CREATE INDEX \"Big Idx\" ON public.t USING btree (a);",
        )
        .expect("plan");
        assert_eq!(p.statements[0], "DROP INDEX \"public\".\"Big Idx\"");
    }

    #[test]
    fn a_sequence_is_altered_to_its_options_and_an_identity_refused() {
        let p = changed_plan(
            "SEQUENCE",
            "s",
            "CREATE SEQUENCE public.s\n    START WITH 1\n    INCREMENT BY 5\n    CACHE 1;",
            "CREATE SEQUENCE public.s\n    START WITH 1\n    INCREMENT BY 1\n    CACHE 1;",
        )
        .expect("plan");
        assert_eq!(p.statements, ["ALTER SEQUENCE public.s\n    START WITH 1\n    INCREMENT BY 5\n    CACHE 1;"]);
        assert!(
            changed_plan("SEQUENCE", "t_id_seq", "ALTER TABLE public.t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (\n INCREMENT BY 5\n);", "x").is_err()
        );
    }

    #[test]
    fn enum_labels_added_anywhere_are_added_next_to_their_neighbours_and_a_removal_is_refused() {
        let p = changed_plan(
            "TYPE",
            "mood",
            "CREATE TYPE public.mood AS ENUM (\n    'new',\n    'sad',\n    'it''s ok',\n    'happy'\n);",
            "CREATE TYPE public.mood AS ENUM (\n    'sad',\n    'happy'\n);",
        )
        .expect("plan");
        assert_eq!(p.statements, ["ALTER TYPE public.mood ADD VALUE 'new' BEFORE 'sad'", "ALTER TYPE public.mood ADD VALUE 'it''s ok' AFTER 'sad'"]);
        let removed =
            changed_plan("TYPE", "mood", "CREATE TYPE public.mood AS ENUM (\n    'sad'\n);", "CREATE TYPE public.mood AS ENUM (\n    'sad',\n    'happy'\n);");
        assert!(removed.expect_err("refused").fix.contains("removed, renamed or moved"));
        let moved = changed_plan("TYPE", "mood", "CREATE TYPE public.mood AS ENUM ('b', 'a');", "CREATE TYPE public.mood AS ENUM ('a', 'b');");
        assert!(moved.is_err());
    }

    #[test]
    fn a_domain_gains_and_loses_constraints_defaults_and_not_null_by_alter_domain() {
        let have = "CREATE DOMAIN public.positive AS integer DEFAULT 1\n\tCONSTRAINT positive_check CHECK ((VALUE > 0));";
        let want =
            "CREATE DOMAIN public.positive AS integer NOT NULL\n\tCONSTRAINT positive_check CHECK ((VALUE > 0))\n\tCONSTRAINT small CHECK ((VALUE < 100));";
        let p = changed_plan("DOMAIN", "positive", want, have).expect("plan");
        assert_eq!(
            p.statements,
            [
                "ALTER DOMAIN public.positive DROP DEFAULT",
                "ALTER DOMAIN public.positive SET NOT NULL",
                "ALTER DOMAIN public.positive ADD CONSTRAINT small CHECK ((VALUE < 100))"
            ]
        );
        let other_base = changed_plan("DOMAIN", "positive", "CREATE DOMAIN public.positive AS bigint;", "CREATE DOMAIN public.positive AS integer;");
        assert!(other_base.is_err());
    }

    #[test]
    fn a_table_gains_constraints_defaults_and_not_null_and_a_column_change_is_refused() {
        let have =
            "CREATE TABLE public.t (\n    id bigint NOT NULL,\n    note text,\n    qty integer DEFAULT 1,\n    CONSTRAINT old_check CHECK ((id > 0))\n);";
        let want = "CREATE TABLE public.t (\n    id bigint NOT NULL,\n    note text NOT NULL,\n    qty integer DEFAULT 2,\n    CONSTRAINT note_short CHECK ((length(note) < 100))\n);";
        let p = changed_plan("TABLE", "t", want, have).expect("plan");
        assert_eq!(
            p.statements,
            [
                "ALTER TABLE public.t DROP CONSTRAINT old_check",
                "ALTER TABLE public.t ALTER COLUMN note SET NOT NULL",
                "ALTER TABLE ONLY public.t ALTER COLUMN qty SET DEFAULT 2",
                "ALTER TABLE public.t ADD CONSTRAINT note_short CHECK ((length(note) < 100))"
            ]
        );
        let retyped = "CREATE TABLE public.t (\n    id bigint NOT NULL,\n    note varchar(10),\n    qty integer DEFAULT 1,\n    CONSTRAINT old_check CHECK ((id > 0))\n);";
        assert!(changed_plan("TABLE", "t", retyped, have).is_err(), "a column's type is not the settling's");
        let added = "CREATE TABLE public.t (\n    id bigint NOT NULL,\n    note text,\n    qty integer DEFAULT 1,\n    extra int,\n    CONSTRAINT old_check CHECK ((id > 0))\n);";
        assert!(changed_plan("TABLE", "t", added, have).is_err());
    }

    #[test]
    fn an_attribute_removed_on_the_fenced_side_is_removed_and_an_object_only_green_has_is_refused() {
        let p = plan(&Difference::Extra(e("DEFAULT", "t a", "ALTER TABLE ONLY public.t ALTER COLUMN a SET DEFAULT 5;")), "green").expect("plan");
        assert_eq!(p.statements, ["ALTER TABLE ONLY public.t ALTER COLUMN a DROP DEFAULT"]);
        let p = plan(&Difference::Extra(e("ROW SECURITY", "t", "ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;")), "green").expect("plan");
        assert_eq!(p.statements, ["ALTER TABLE public.t DISABLE ROW LEVEL SECURITY;"]);
        let p = plan(&Difference::Extra(e("COMMENT", "TABLE t", "COMMENT ON TABLE public.t IS 'it''s here';")), "green").expect("plan");
        assert_eq!(p.statements, ["COMMENT ON TABLE public.t IS NULL"]);
        let no = plan(&Difference::Extra(e("INDEX", "extra", "CREATE INDEX extra ON public.t USING btree (a);")), "green").expect_err("refused");
        assert!(no.fix.contains("DROP INDEX \"public\".\"extra\"") && no.fix.contains("cutover.keep_definitions = [\"INDEX public.extra\"]"), "{}", no.fix);
        let table = plan(&Difference::Missing(e("TABLE", "new", "CREATE TABLE public.new (a int);")), "green").expect_err("refused");
        assert!(table.fix.contains("start turnout run again"), "{}", table.fix);
    }
}
