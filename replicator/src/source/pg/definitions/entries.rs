//! A `pg_dump --schema-only` script as its entries, and two such scripts compared entry by entry.
//!
//! pg_dump writes every object it dumps as one entry headed by a comment block
//! (`-- Name: N; Type: T; Schema: S; Owner: -`), in an order that creates what an object depends on
//! before it. Two scripts made by the same pg_dump from two databases of the same server print the
//! same definition as the same text, whatever server version first defined it: that is what the
//! comparison relies on ([`super`]).

use std::collections::BTreeMap;

/// One object of a schema script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// pg_dump's type of the entry: `VIEW`, `FUNCTION`, `INDEX`, `FK CONSTRAINT`, `COMMENT`, …
    pub kind: String,
    /// The schema it is in (`None` for objects outside schemas: extensions, casts, schemas).
    pub schema: Option<String>,
    /// pg_dump's name of the entry (a trigger's is `table trigger`, a function's `f(integer)`).
    pub tag: String,
    /// Its statements, without pg_dump's comment header, blank lines at either end, or the session
    /// settings pg_dump writes between entries.
    pub sql: String,
}

impl Entry {
    /// How the entry is named to the operator and keyed in a comparison: `VIEW public.totals`.
    pub fn key(&self) -> String {
        // pg_dump names a comment by what it is on (`VIEW recent`, `COLUMN t.c`).
        if let (true, Some(schema), Some((on, name))) = (self.kind == "COMMENT", &self.schema, self.tag.split_once(' ')) {
            return format!("COMMENT ON {on} {schema}.{name}");
        }
        match &self.schema {
            Some(s) => format!("{} {s}.{}", self.kind, self.tag),
            None => format!("{} {}", self.kind, self.tag),
        }
    }

    /// Whether turnout made it (its heartbeat table and what hangs off it): left out of comparisons.
    fn is_turnouts(&self) -> bool {
        self.tag.split([' ', '.', '(']).any(|part| part.starts_with("turnout_"))
    }
}

/// A schema script as its session preamble (the `SET` lines before the first entry, which the
/// entries' statements rely on, e.g. an empty `search_path`) and its entries in order, turnout's own
/// objects left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Script {
    pub preamble: String,
    pub entries: Vec<Entry>,
}

/// Whether `line` is one of the session settings pg_dump writes before the first entry and between
/// entries (`SET default_tablespace = '';`, `SELECT pg_catalog.set_config('search_path', …);`).
fn is_setting(line: &str) -> bool {
    (line.starts_with("SET ") && line.ends_with(';')) || line.starts_with("SELECT pg_catalog.set_config(")
}

/// Whether `line` is the end of one of pg_dump's comment blocks or trailer (`--`, the closing
/// `-- PostgreSQL database dump complete`) rather than a statement.
fn is_trailer(line: &str) -> bool {
    line.trim().is_empty() || line == "--" || line.starts_with("-- PostgreSQL database dump") || is_setting(line)
}

/// Parses a script pg_dump wrote (psql meta-commands already removed).
pub(crate) fn parse(script: &str) -> Script {
    let mut out = Script::default();
    let mut preamble: Vec<&str> = Vec::new();
    let mut current: Option<(Entry, Vec<&str>)> = None;
    let mut skip_comment_close = false;
    for line in script.lines() {
        let line = line.trim_end();
        if let Some(header) = line.strip_prefix("-- Name: ") {
            if let Some((entry, lines)) = current.take() {
                out.entries.push(finish(entry, lines));
            }
            current = Some((header_entry(header), Vec::new()));
            skip_comment_close = true;
            continue;
        }
        if skip_comment_close && line == "--" {
            skip_comment_close = false;
            continue;
        }
        skip_comment_close = false;
        match current.as_mut() {
            Some((_, lines)) => lines.push(line),
            None if is_setting(line) => preamble.push(line),
            None => {}
        }
    }
    if let Some((entry, lines)) = current.take() {
        out.entries.push(finish(entry, lines));
    }
    out.entries.retain(|e| !e.is_turnouts());
    out.preamble = preamble.join("\n");
    out
}

fn header_entry(header: &str) -> Entry {
    let mut fields = header.split("; ");
    let tag = fields.next().unwrap_or_default().to_owned();
    let rest: Vec<&str> = fields.collect();
    let field = |key: &str| rest.iter().find_map(|f| f.strip_prefix(key)).unwrap_or_default().to_owned();
    let schema = field("Schema: ");
    Entry { kind: field("Type: "), schema: (!schema.is_empty() && schema != "-").then_some(schema), tag, sql: String::new() }
}

fn finish(mut entry: Entry, mut lines: Vec<&str>) -> Entry {
    while lines.last().is_some_and(|l| is_trailer(l)) {
        lines.pop();
    }
    let start = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(lines.len());
    entry.sql = lines[start..].join("\n");
    entry
}

/// How one object differs between the side whose definitions are wanted and the side that has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Difference {
    /// Only the wanted side has it.
    Missing(Entry),
    /// Only the other side has it.
    Extra(Entry),
    /// Both have it, defined differently.
    Changed { want: Entry, have: Entry },
}

impl Difference {
    /// The object's name as the operator reads it: `VIEW public.totals`.
    pub fn key(&self) -> String {
        match self {
            Difference::Missing(e) | Difference::Extra(e) | Difference::Changed { want: e, .. } => e.key(),
        }
    }

    /// One line for the operator: what differs, with the differing lines of a changed definition.
    pub fn describe(&self, wanted: &str, other: &str) -> String {
        match self {
            Difference::Missing(e) => format!("{} is on {wanted} only", e.key()),
            Difference::Extra(e) => format!("{} is on {other} only", e.key()),
            Difference::Changed { want, have } => {
                let (w, h) = first_difference(&want.sql, &have.sql);
                format!("{} differs ({wanted}: `{w}`; {other}: `{h}`)", want.key())
            }
        }
    }
}

/// The first line of each definition that the other lacks (compared without indentation and a
/// list's trailing comma, so that a constraint added at the end names itself, not the line before
/// it), for a message.
fn first_difference(a: &str, b: &str) -> (String, String) {
    let norm = |l: &str| l.trim().trim_end_matches(',').to_owned();
    let (la, lb): (Vec<String>, Vec<String>) = (a.lines().map(norm).collect(), b.lines().map(norm).collect());
    let only = |x: &[String], y: &[String]| x.iter().find(|l| !y.contains(l)).map_or_else(|| "(nothing the other lacks)".to_owned(), |l| short(l));
    (only(&la, &lb), only(&lb, &la))
}

fn short(line: &str) -> String {
    let line = line.trim();
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// Keys every entry (a repeated key, which pg_dump does not write, gets a counter).
fn keyed(entries: &[Entry]) -> Vec<(String, &Entry)> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    entries
        .iter()
        .map(|e| {
            let n = seen.entry(e.key()).or_default();
            *n += 1;
            (if *n == 1 { e.key() } else { format!("{} #{n}", e.key()) }, e)
        })
        .collect()
}

/// Every object defined differently in `have` than in `want`: missing and changed ones in `want`'s
/// order (what they depend on first), then extra ones in the reverse of `have`'s order.
pub(crate) fn compare(want: &[Entry], have: &[Entry]) -> Vec<Difference> {
    let want = keyed(want);
    let have = keyed(have);
    let have_map: BTreeMap<&str, &Entry> = have.iter().map(|(k, e)| (k.as_str(), *e)).collect();
    let want_map: BTreeMap<&str, &Entry> = want.iter().map(|(k, e)| (k.as_str(), *e)).collect();
    let mut out = Vec::new();
    for (k, w) in &want {
        match have_map.get(k.as_str()) {
            None => out.push(Difference::Missing((*w).clone())),
            Some(h) if h.sql != w.sql => out.push(Difference::Changed { want: (*w).clone(), have: (*h).clone() }),
            Some(_) => {}
        }
    }
    for (k, h) in have.iter().rev() {
        if !want_map.contains_key(k.as_str()) {
            out.push(Difference::Extra((*h).clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18\n\nSET statement_timeout = 0;\n\
        SELECT pg_catalog.set_config('search_path', '', false);\nSET check_function_bodies = false;\n\n\
        --\n-- Name: f(integer); Type: FUNCTION; Schema: public; Owner: -\n--\n\n\
        CREATE FUNCTION public.f(x integer) RETURNS integer\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\n-- a comment in the body\nRETURN x;\nEND$$;\n\n\n\
        SET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n\
        --\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.t (\n    id integer NOT NULL\n);\n\n\n\
        --\n-- Name: turnout_heartbeat; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.turnout_heartbeat (id int);\n\n\
        --\n-- Name: turnout_heartbeat turnout_heartbeat_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n--\n\nALTER TABLE x;\n\n\
        --\n-- Name: EXTENSION pg_trgm; Type: COMMENT; Schema: -; Owner: \n--\n\nCOMMENT ON EXTENSION pg_trgm IS 'text similarity';\n\n\
        --\n-- PostgreSQL database dump complete\n--\n\n";

    #[test]
    fn a_script_splits_into_entries_without_headers_settings_or_turnouts_objects() {
        let s = parse(DUMP);
        assert!(s.preamble.contains("set_config('search_path', '', false)") && s.preamble.contains("check_function_bodies"), "{}", s.preamble);
        let keys: Vec<String> = s.entries.iter().map(Entry::key).collect();
        assert_eq!(keys, ["FUNCTION public.f(integer)", "TABLE public.t", "COMMENT EXTENSION pg_trgm"]);
        assert!(s.entries[0].sql.starts_with("CREATE FUNCTION public.f(x integer)"), "{}", s.entries[0].sql);
        assert!(s.entries[0].sql.contains("-- a comment in the body"), "a comment inside a body is the definition's");
        assert!(s.entries[0].sql.ends_with("END$$;"), "settings between entries are not the function's: {:?}", s.entries[0].sql);
        assert_eq!(s.entries[1].sql, "CREATE TABLE public.t (\n    id integer NOT NULL\n);");
        assert_eq!(s.entries[2].sql, "COMMENT ON EXTENSION pg_trgm IS 'text similarity';", "the trailer is not the last entry's");
    }

    #[test]
    fn differences_are_missing_changed_and_extra_in_dependency_order() {
        let e = |kind: &str, tag: &str, sql: &str| Entry { kind: kind.into(), schema: Some("public".into()), tag: tag.into(), sql: sql.into() };
        let want = vec![e("TYPE", "mood", "enum a b"), e("VIEW", "v", "select 1"), e("INDEX", "i", "create index i")];
        let have = vec![e("VIEW", "v", "select 2"), e("INDEX", "i", "create index i"), e("POLICY", "t p", "create policy"), e("VIEW", "w", "x")];
        let d = compare(&want, &have);
        let keys: Vec<String> = d.iter().map(Difference::key).collect();
        assert_eq!(keys, ["TYPE public.mood", "VIEW public.v", "VIEW public.w", "POLICY public.t p"]);
        assert!(matches!(d[0], Difference::Missing(_)));
        assert!(matches!(d[1], Difference::Changed { .. }));
        assert!(matches!(d[2], Difference::Extra(_)));
        assert_eq!(d[1].describe("blue", "green"), "VIEW public.v differs (blue: `select 1`; green: `select 2`)");
        assert!(compare(&want, &want).is_empty());
    }
}
