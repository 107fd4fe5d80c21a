//! Table patterns of `tables.include` and `tables.exclude`: `schema.table`, where either part may
//! use `*` for any run of characters (`public.*`, `*.audit_*`, `sales.orders`).
//!
//! Names are written as in SQL and as `pg_dump -t` takes them: unquoted letters fold to lower case,
//! and a part (or a piece of one) in double quotes is taken literally — case, dots and `*` included,
//! `""` standing for one `"` (`public."Orders"`, `"my.schema".*`). A pattern without a dot names a
//! table of schema `public` (`orders` is `public.orders`; write `*.orders` for every schema).
//!
//! With MySQL/MariaDB ([`NameRules::mysql`]) the schema is the database, names keep their case (table
//! names are case-sensitive on Linux servers), backticks quote like double quotes, and a pattern without
//! a dot names a table of the source database.

use turnout_decoders::schema::TableName;

/// One element of a pattern part: a literal character or the `*` wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    Char(char),
    Any,
}

/// A parsed `schema.table` pattern. Matching is exact on the catalog names, with `*` matching any
/// run of characters (also none) within one part; it never crosses the dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePattern {
    text: String,
    schema: Vec<Piece>,
    table: Vec<Piece>,
}

/// The advice every malformed-pattern error ends with.
const FORM: &str = "write schema.table, e.g. \"sales.orders\", \"public.*\" or \"*.audit_*\" \
     (double-quote a name with capitals, dots or other characters: 'public.\"Order Lines\"')";

/// How names in patterns are read: PostgreSQL's or MySQL's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRules {
    /// Unquoted letters fold to lower case (PostgreSQL).
    fold_case: bool,
    /// The schema of a pattern without a dot.
    default_schema: String,
}

impl NameRules {
    /// PostgreSQL: unquoted names fold to lower case; no schema means `public`.
    pub fn postgres() -> NameRules {
        NameRules { fold_case: true, default_schema: "public".into() }
    }

    /// MySQL/MariaDB: names keep their case; no database means `database` (the source's).
    pub fn mysql(database: &str) -> NameRules {
        NameRules { fold_case: false, default_schema: database.into() }
    }
}

impl TablePattern {
    /// Parses a pattern with PostgreSQL's rules; the error says what is wrong and how to write it.
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<TablePattern, String> {
        TablePattern::parse_with(text, &NameRules::postgres())
    }

    /// Parses a pattern with `rules`; the error says what is wrong and how to write it.
    pub fn parse_with(text: &str, rules: &NameRules) -> Result<TablePattern, String> {
        let mut parts: Vec<Vec<Piece>> = vec![Vec::new()];
        // Whether the current part has a quoted section (`""` is a part, though an empty one).
        let mut quoted = vec![false];
        let mut chars = text.chars().enumerate().peekable();
        // The quote character of the quoted section the parser is in.
        let mut in_quotes: Option<char> = None;
        while let Some((i, c)) = chars.next() {
            let Some(part) = parts.last_mut() else { break };
            if let Some(q) = in_quotes {
                match c {
                    c if c == q && chars.peek().is_some_and(|&(_, n)| n == q) => {
                        chars.next();
                        part.push(Piece::Char(q));
                    }
                    c if c == q => in_quotes = None,
                    other => part.push(Piece::Char(other)),
                }
                continue;
            }
            match c {
                '"' | '`' if c == '"' || !rules.fold_case => {
                    in_quotes = Some(c);
                    if let Some(q) = quoted.last_mut() {
                        *q = true;
                    }
                }
                '.' => {
                    parts.push(Vec::new());
                    quoted.push(false);
                }
                '*' => part.push(Piece::Any),
                c if c.is_alphanumeric() || c == '_' || c == '$' => {
                    part.push(Piece::Char(if rules.fold_case { c.to_ascii_lowercase() } else { c }));
                }
                c if c.is_whitespace() => {
                    return Err(format!("'{text}' has a space at character {}; remove it, or {FORM}", i + 1));
                }
                c => return Err(format!("'{text}' has '{c}' at character {}, which a name may not hold unquoted; {FORM}", i + 1)),
            }
        }
        if in_quotes.is_some() {
            return Err(format!("'{text}' has an unterminated double quote; {FORM}"));
        }
        if parts.len() > 2 {
            return Err(format!("'{text}' has {} dot-separated parts, not two; {FORM}", parts.len()));
        }
        for (part, was_quoted) in parts.iter().zip(&quoted) {
            if part.is_empty() {
                let what = if *was_quoted { "an empty quoted name" } else { "an empty part" };
                return Err(format!("'{text}' has {what}; {FORM}"));
            }
        }
        let table = parts.pop().unwrap_or_default();
        let schema = parts.pop().unwrap_or_else(|| rules.default_schema.chars().map(Piece::Char).collect());
        Ok(TablePattern { text: text.to_string(), schema, table })
    }

    /// Whether the pattern matches the table (both parts).
    pub fn matches(&self, t: &TableName) -> bool {
        glob(&self.schema, &t.schema) && glob(&self.table, &t.name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `*`-glob matching of one part, backtracking to the last `*` on a mismatch (linear in practice,
/// quadratic at worst: patterns and names are short).
fn glob(pattern: &[Piece], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // Position of the last `*` seen and of the name character it is currently stretched to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(Piece::Char(c)) if Some(c) == name.get(n) => {
                p += 1;
                n += 1;
            }
            Some(Piece::Any) => {
                star = Some((p, n));
                p += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).is_some_and(|rest| rest.iter().all(|x| *x == Piece::Any))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, name: &str) -> TableName {
        TableName::new(schema, name)
    }

    fn matches(pattern: &str, schema: &str, name: &str) -> bool {
        TablePattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}")).matches(&t(schema, name))
    }

    #[test]
    fn exact_names_and_the_public_default() {
        assert!(matches("sales.orders", "sales", "orders"));
        assert!(!matches("sales.orders", "sales", "orders2"));
        assert!(!matches("sales.orders", "public", "orders"));
        assert!(matches("orders", "public", "orders"));
        assert!(!matches("orders", "sales", "orders"));
    }

    #[test]
    fn wildcards_match_any_run_within_one_part() {
        assert!(matches("public.*", "public", "anything"));
        assert!(!matches("public.*", "sales", "anything"));
        assert!(matches("*.audit_*", "sales", "audit_2024"));
        assert!(matches("*.audit_*", "public", "audit_"));
        assert!(!matches("*.audit_*", "public", "x_audit_1"));
        assert!(matches("*.*_log", "a", "x_y_log"));
        assert!(!matches("*.*_log", "a", "x_log_old"));
        assert!(matches("s*s.*", "sales", "t"));
        assert!(matches("*.a*b*c", "x", "aXbYbZc"));
        assert!(!matches("*.a*b*c", "x", "aXbYbZ"));
        assert!(matches("*.**", "x", ""));
        // The wildcard never crosses the dot: the schema part only sees the schema.
        assert!(!matches("pub*", "public", "x"));
    }

    #[test]
    fn mysql_names_keep_their_case_take_backticks_and_default_to_the_source_database() {
        let rules = NameRules::mysql("Shop");
        let m = |pattern: &str, schema: &str, name: &str| {
            TablePattern::parse_with(pattern, &rules).unwrap_or_else(|e| panic!("{pattern}: {e}")).matches(&t(schema, name))
        };
        assert!(m("Orders", "Shop", "Orders"));
        assert!(!m("Orders", "Shop", "orders"));
        assert!(!m("orders", "public", "orders"));
        assert!(m("`my.db`.`a``b`", "my.db", "a`b"));
        assert!(m("\"x y\"", "Shop", "x y"));
        assert!(m("*.Audit_*", "other", "Audit_1"));
        // PostgreSQL's rules do not take backticks.
        assert!(TablePattern::parse("`a`.b").is_err());
    }

    #[test]
    fn unquoted_names_fold_to_lower_case_and_quoted_ones_are_literal() {
        assert!(matches("Sales.Orders", "sales", "orders"));
        assert!(!matches("Sales.Orders", "Sales", "Orders"));
        assert!(matches("\"Sales\".\"Orders\"", "Sales", "Orders"));
        assert!(matches("public.\"a.b\"", "public", "a.b"));
        assert!(matches("public.\"x*\"", "public", "x*"));
        assert!(!matches("public.\"x*\"", "public", "xy"));
        assert!(matches("public.\"say \"\"hi\"\"\"", "public", "say \"hi\""));
        assert!(matches("public.\"Order\"_*", "public", "Order_lines"));
        assert!(matches("ünïcode.*", "ünïcode", "t"));
    }

    #[test]
    fn malformed_patterns_say_what_is_wrong_and_how_to_write_it() {
        for (bad, says) in [
            ("", "empty part"),
            ("a.", "empty part"),
            (".a", "empty part"),
            ("a.b.c", "3 dot-separated parts"),
            ("public.\"open", "unterminated double quote"),
            ("public.\"\"", "empty quoted name"),
            ("public. x", "space"),
            ("public.order-lines", "'-'"),
            ("public.x?", "'?'"),
        ] {
            let err = TablePattern::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
            assert!(err.contains("schema.table"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_pattern_keeps_its_text() {
        let p = TablePattern::parse("*.audit_*").expect("valid");
        assert_eq!(p.as_str(), "*.audit_*");
    }
}
