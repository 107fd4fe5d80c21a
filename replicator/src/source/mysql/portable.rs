//! Schema descriptions in a form both MySQL families print alike, for comparing an Oracle MySQL
//! side with a MariaDB side ([`super::drift`] across families).
//!
//! The two families describe the same definition differently in `information_schema`: MariaDB keeps
//! integer display widths (`int(11)`, `year(4)`), quotes literal defaults (`'x'`) and prints an
//! explicit `DEFAULT NULL` as the text `NULL`; MySQL marks expression defaults `DEFAULT_GENERATED`,
//! names `CURRENT_TIMESTAMP` in capitals and without `()`; MySQL parenthesises every operation of a
//! generated column or CHECK clause (`((`a` > 0) and (`s` <> _utf8mb4\'\'))`) where MariaDB prints
//! the minimum (`` `a` > 0 and `s` <> '' ``). Each function here maps both to one form, and only
//! what is written the same way in either family compares equal: expressions are parsed and printed
//! fully parenthesised, so `(a + b) * 2` never equals `a + b * 2`. An expression the parser does not
//! know is compared by its text without spaces, quotes of names or charset introducers — a
//! difference then shows and the cutover refuses, never the other way round.

/// Integer types whose display width MariaDB prints and MySQL 8+ drops (`year` only as `year(4)`:
/// MariaDB's `YEAR(2)` is another type).
const WIDTH_TYPES: &[&str] = &["tinyint", "smallint", "mediumint", "int", "bigint", "year"];

/// A column type as both families print it: display widths dropped except where they mean
/// something (`tinyint(1)`, which connectors read as a boolean, and `zerofill`, which pads to it).
/// Both print type names in lower case; the rest (ENUM and SET members) is kept as it is.
pub fn column_type(column_type: &str) -> String {
    // An ENUM's or SET's members are text, never a width (`enum('int(11)')`).
    let members = column_type.starts_with("enum(") || column_type.starts_with("set(");
    if members || column_type.contains("zerofill") || column_type.starts_with("tinyint(1)") {
        return column_type.to_owned();
    }
    strip_widths(column_type)
}

/// Every `int(11)`-style display width in `text` removed (parameter and return types of routines).
pub fn strip_widths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('(') {
        let (head, tail) = rest.split_at(open);
        let word_start = head.rfind(|c: char| !c.is_ascii_alphanumeric() && c != '_').map_or(0, |i| i + 1);
        let word = head[word_start..].to_ascii_lowercase();
        let close = tail.find(')');
        let digits = close.is_some_and(|c| c > 1 && tail[1..c].bytes().all(|b| b.is_ascii_digit()));
        let width = close.map(|c| &tail[1..c]);
        let keep_one = (word == "tinyint" && width == Some("1")) || (word == "year" && width != Some("4"));
        out.push_str(head);
        match close {
            Some(c) if digits && WIDTH_TYPES.contains(&word.as_str()) && !keep_one => rest = &tail[c + 1..],
            _ => {
                out.push('(');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A column's default as both families print it, `None` for none (MariaDB's text `NULL` included).
/// Literals keep their text, quoted unless the column is `numeric` (MariaDB quotes them, MySQL does
/// not); expressions (`current_timestamp(3)`) are lower-cased, `()` dropped.
pub fn default(default: Option<&str>, extra: &str, mariadb: bool, numeric: bool) -> Option<String> {
    let d = default?;
    if mariadb {
        if d == "NULL" {
            return None;
        }
        if d.starts_with('\'') && d.ends_with('\'') && d.len() >= 2 {
            // MariaDB escapes the value it quotes (`\\`, `\n`, `''`); MySQL prints it raw.
            let chars: Vec<char> = d.chars().collect();
            let (value, _) = quoted(&chars, 1, '\'', true);
            return Some(format!("'{value}'"));
        }
        return Some(if numeric { d.to_owned() } else { expression_word(d) });
    }
    if extra.to_ascii_uppercase().contains("DEFAULT_GENERATED") {
        return Some(expression_word(d));
    }
    Some(if numeric { d.to_owned() } else { format!("'{d}'") })
}

/// Data types whose literal defaults neither family quotes.
pub fn numeric(data_type: &str) -> bool {
    ["tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "float", "double", "bit", "year"].contains(&data_type.to_ascii_lowercase().as_str())
}

/// `CURRENT_TIMESTAMP()` / `current_timestamp` alike.
fn expression_word(e: &str) -> String {
    e.to_ascii_lowercase().replace("()", "")
}

/// EXTRA without MySQL's `DEFAULT_GENERATED` marker, lower-cased, `()` dropped.
pub fn extra(extra: &str) -> String {
    let words: Vec<&str> = extra.split_whitespace().filter(|w| !w.eq_ignore_ascii_case("DEFAULT_GENERATED")).collect();
    expression_word(&words.join(" "))
}

/// An expression (generated column, CHECK clause) in one canonical form: parsed and printed as a
/// fully parenthesised prefix form, or, when it does not parse, its tokens without whitespace and
/// name quotes. `escaped`: the text is MySQL's CHECK_CLAUSE, which escapes every quote and backslash
/// once more (`_utf8mb4\'x\'`).
pub fn expression(text: &str, escaped: bool) -> String {
    let text = if escaped { unescape(text) } else { text.to_owned() };
    let tokens = tokens(&text);
    let mut p = Parser { tokens: &tokens, at: 0 };
    match p.or() {
        Some(e) if p.at == tokens.len() => e,
        _ => tokens.iter().map(Token::text).collect::<Vec<_>>().join(""),
    }
}

/// `\'` and `\\` read as `'` and `\`, in one pass.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('\'' | '\\'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Character sets whose introducer (`_utf8mb4'x'`) both families' text of one literal may differ by;
/// any other (`_binary`, `_latin1`) changes how the literal compares and is kept.
const UTF8_INTRODUCERS: &[&str] = &["_utf8mb4", "_utf8mb3", "_utf8"];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Word(String),
    Number(String),
    Str(String),
    Op(String),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Name(s) | Token::Word(s) | Token::Number(s) | Token::Op(s) => s.clone(),
            Token::Str(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

/// The quoted run from `at` (after its opening `quote`) to the closing one, a doubled quote read as
/// one, and with `escapes` MySQL's backslash escapes (`\%` and `\_` keep their backslash, as LIKE
/// patterns need); and the index after it.
fn quoted(chars: &[char], at: usize, quote: char, escapes: bool) -> (String, usize) {
    let mut s = String::new();
    let mut i = at;
    while i < chars.len() {
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                s.push(quote);
                i += 2;
                continue;
            }
            break;
        }
        if escapes && chars[i] == '\\' && i + 1 < chars.len() {
            let next = chars[i + 1];
            match next {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '0' => s.push('\0'),
                'b' => s.push('\u{8}'),
                'Z' => s.push('\u{1a}'),
                '%' | '_' => {
                    s.push('\\');
                    s.push(next);
                }
                other => s.push(other),
            }
            i += 2;
            continue;
        }
        s.push(chars[i]);
        i += 1;
    }
    (s, i + 1)
}

fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '`' {
            let (name, next) = quoted(&chars, i + 1, '`', false);
            i = next;
            out.push(Token::Name(name.to_lowercase()));
        } else if c == '\'' {
            let (s, next) = quoted(&chars, i + 1, '\'', true);
            i = next;
            out.push(Token::Str(s));
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Number(chars[start..i].iter().collect::<String>().to_ascii_lowercase()));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            // A UTF-8 introducer (`_utf8mb4'x'`) says how the literal was read, not its value.
            if UTF8_INTRODUCERS.contains(&word.as_str()) && chars.get(i) == Some(&'\'') {
                continue;
            }
            out.push(Token::Word(word));
        } else {
            let three: String = chars[i..chars.len().min(i + 3)].iter().collect();
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = if three == "<=>" {
                three
            } else if ["<=", ">=", "<>", "!=", "||", "&&", "<<", ">>"].contains(&two.as_str()) {
                two
            } else {
                c.to_string()
            };
            i += op.chars().count();
            out.push(Token::Op(match op.as_str() {
                "!=" => "<>".into(),
                "&&" => "and".into(),
                "||" => "or".into(),
                _ => op,
            }));
        }
    }
    out
}

/// Binary operators from loosest to tightest; words and symbols alike.
const LEVELS: &[&[&str]] = &[&["or"], &["xor"], &["and"]];
const COMPARISONS: &[&str] = &["=", "<=>", "<>", "<", "<=", ">", ">=", "like", "regexp", "rlike"];
const ARITHMETIC: &[&[&str]] = &[&["|"], &["&"], &["<<", ">>"], &["+", "-"], &["*", "/", "%", "div", "mod"], &["^"]];

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    /// The next token as an operator or keyword, lower-cased.
    fn word(&self) -> Option<&str> {
        match self.peek() {
            Some(Token::Op(s) | Token::Word(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    fn eat(&mut self, w: &str) -> bool {
        if self.word() == Some(w) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Option<String> {
        self.level(0)
    }

    fn level(&mut self, n: usize) -> Option<String> {
        if n == LEVELS.len() {
            return self.not();
        }
        let mut left = self.level(n + 1)?;
        while let Some(op) = self.word().filter(|w| LEVELS[n].contains(w)).map(str::to_owned) {
            self.at += 1;
            let right = self.level(n + 1)?;
            left = format!("({op} {left} {right})");
        }
        Some(left)
    }

    fn not(&mut self) -> Option<String> {
        if self.eat("not") {
            return Some(format!("(not {})", self.not()?));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Option<String> {
        let left = self.arithmetic(0)?;
        if self.eat("is") {
            let negated = self.eat("not");
            let what = self.word().filter(|w| ["null", "true", "false", "unknown"].contains(w))?.to_owned();
            self.at += 1;
            let is = format!("(is {left} {what})");
            return Some(if negated { format!("(not {is})") } else { is });
        }
        let negated = self.eat("not");
        let e = if let Some(op) = self.word().filter(|w| COMPARISONS.contains(w)).map(str::to_owned) {
            self.at += 1;
            format!("({op} {left} {})", self.arithmetic(0)?)
        } else if self.eat("between") {
            let low = self.arithmetic(0)?;
            if !self.eat("and") {
                return None;
            }
            format!("(between {left} {low} {})", self.arithmetic(0)?)
        } else if self.eat("in") {
            format!("(in {left} {})", self.arguments()?)
        } else if negated {
            return None;
        } else {
            return Some(left);
        };
        Some(if negated { format!("(not {e})") } else { e })
    }

    fn arithmetic(&mut self, n: usize) -> Option<String> {
        if n == ARITHMETIC.len() {
            return self.unary();
        }
        let mut left = self.arithmetic(n + 1)?;
        while let Some(op) = self.word().filter(|w| ARITHMETIC[n].contains(w)).map(str::to_owned) {
            self.at += 1;
            let op = if op == "mod" { "%".to_owned() } else { op };
            let right = self.arithmetic(n + 1)?;
            left = format!("({op} {left} {right})");
        }
        Some(left)
    }

    fn unary(&mut self) -> Option<String> {
        for op in ["-", "+", "~", "!"] {
            if self.eat(op) {
                let operand = self.unary()?;
                if op == "+" {
                    return Some(operand);
                }
                // MySQL prints `-5` as `-(5)`: a negated number is the negative number.
                if op == "-" && operand.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
                    return Some(format!("-{operand}"));
                }
                return Some(format!("({} {operand})", if op == "!" { "not" } else { op }));
            }
        }
        self.primary()
    }

    /// `(a, b, …)`, the opening parenthesis next.
    fn arguments(&mut self) -> Option<String> {
        if !self.eat("(") {
            return None;
        }
        let mut items = Vec::new();
        if !self.eat(")") {
            loop {
                items.push(self.or()?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return None;
                }
            }
        }
        Some(format!("[{}]", items.join(" ")))
    }

    fn primary(&mut self) -> Option<String> {
        let token = self.peek()?.clone();
        match token {
            Token::Op(op) if op == "(" => {
                self.at += 1;
                let e = self.or()?;
                self.eat(")").then_some(e)
            }
            Token::Op(_) => None,
            Token::Name(n) => {
                self.at += 1;
                Some(format!("`{n}`"))
            }
            Token::Number(n) => {
                self.at += 1;
                Some(n)
            }
            Token::Str(s) => {
                self.at += 1;
                Some(format!("'{}'", s.replace('\'', "''")))
            }
            Token::Word(w) => {
                self.at += 1;
                if self.word() == Some("(") {
                    return Some(format!("({w} {})", self.arguments()?));
                }
                // A bare word: a column MariaDB prints unquoted, or NULL, TRUE, FALSE.
                Some(if ["null", "true", "false"].contains(&w.as_str()) { w } else { format!("`{w}`") })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs each family printed for one definition on MySQL 9.7 and MariaDB 11.8.
    #[test]
    fn both_families_print_of_one_definition_compares_equal() {
        for (mysql, mariadb) in [
            ("((`id` + `ti`) * 2)", "(`id` + `ti`) * 2"),
            ("((`id` > 0) and (`s` <> _utf8mb4\\'\\'))", "`id` > 0 and `s` <> ''"),
            ("((`ti` between -(5) and 5) or (`ti` is null))", "`ti` between -5 and 5 or `ti` is null"),
            ("(`a` in (1,2,3))", "`a` in (1,2,3)"),
            ("(char_length(`s`) > 0)", "char_length(`s`) > 0"),
            ("(not((`a` like _utf8mb4\\'x%\\')))", "`a`  not like 'x%'"),
            // Quotes and backslashes inside literals, as each server printed them (MySQL escaping its
            // whole text once more).
            (r"(`s` = _utf8mb4\'a\\\'b\')", r"`s` = 'a\'b'"),
            (r"(`s` like _utf8mb4\'a\\\\_%\')", r"`s` like 'a\\_%'"),
        ] {
            assert_eq!(expression(mysql, true), expression(mariadb, false), "{mysql} / {mariadb}");
        }
    }

    #[test]
    fn a_different_grouping_or_value_never_compares_equal() {
        let e = |text: &str| expression(text, false);
        assert_ne!(e("(`a` + `b`) * 2"), e("`a` + `b` * 2"));
        assert_ne!(e("`a` - (`b` - `c`)"), e("`a` - `b` - `c`"));
        assert_ne!(e("`a` > 0"), e("`a` >= 0"));
        assert_ne!(e("`s` <> 'x'"), e("`s` <> 'X'"));
        assert_ne!(e("f(`a`"), e("f(`a`)"), "an unparsed text stays apart from a parsed one");
        assert_ne!(e("`s` = _binary'A'"), e("`s` = 'A'"), "a binary literal compares case-sensitively");
        assert_eq!(e("`s` = _utf8mb4'A'"), e("`s` = 'A'"));
        // One literal `a' or 'b` (MariaDB escapes its quotes) is not two literals.
        assert_ne!(e("`s` <> 'a\\' or \\'b'"), e("`s` <> 'a' or 'b'"));
        assert_eq!(e("`s` <> 'a\\'b'"), e("`s` <> 'a''b'"));
        assert_ne!(e("f('a'',''b'"), e("f('a','b'"), "unparsed literals keep their quotes apart");
        assert_eq!(expression("(`s` <> _utf8mb4\\'a\\\\\\'b\\')", true), e("`s` <> 'a\\'b'"), "MySQL's escaped clause");
    }

    #[test]
    fn types_and_defaults_as_both_families_print_them() {
        assert_eq!(column_type("int(11)"), column_type("int"));
        assert_eq!(column_type("year(4)"), "year");
        assert_eq!(column_type("year(2)"), "year(2)", "MariaDB's two-digit year is another type");
        assert_ne!(column_type("enum('Active','Inactive')"), column_type("enum('active','inactive')"));
        assert_eq!(column_type("bigint(20) unsigned"), "bigint unsigned");
        assert_eq!(column_type("tinyint(1)"), "tinyint(1)", "a boolean to connectors");
        assert_ne!(column_type("tinyint(4)"), column_type("tinyint(1)"));
        assert_eq!(column_type("int(5) unsigned zerofill"), "int(5) unsigned zerofill");
        assert_eq!(column_type("decimal(6,2)"), "decimal(6,2)");
        assert_eq!(strip_widths("IN a int(11), OUT b varchar(5)"), "IN a int, OUT b varchar(5)");
        assert_eq!(default(Some("'a''b'"), "", true, false), default(Some("a'b"), "", false, false));
        assert_eq!(default(Some("'5'"), "", true, false), default(Some("5"), "", false, false), "a string that looks like a number");
        assert_eq!(default(Some("NULL"), "", true, true), None);
        assert_eq!(default(Some("1.50"), "", true, true), default(Some("1.50"), "", false, true));
        assert_eq!(default(Some("b'1'"), "", true, true), default(Some("b'1'"), "", false, true));
        assert_eq!(default(Some("current_timestamp(3)"), "", true, false), default(Some("CURRENT_TIMESTAMP(3)"), "DEFAULT_GENERATED", false, false));
        assert_eq!(default(Some("current_timestamp()"), "", true, false), default(Some("CURRENT_TIMESTAMP"), "DEFAULT_GENERATED", false, false));
        assert_ne!(default(Some("'x'"), "", true, false), default(Some("X"), "", false, false));
        assert_ne!(default(Some("'CURRENT_TIMESTAMP'"), "", true, false), default(Some("CURRENT_TIMESTAMP"), "DEFAULT_GENERATED", false, false));
        // MariaDB's quoted default is escaped, MySQL's raw: `a\b` is one backslash on both.
        assert_eq!(default(Some(r"'a\\b'"), "", true, false), default(Some(r"a\b"), "", false, false));
        assert_ne!(default(Some(r"'a\b'"), "", true, false), default(Some(r"a\\b"), "", false, false));
        assert_eq!(default(Some(r"'x\ny'"), "", true, false), default(Some("x\ny"), "", false, false));
        assert_ne!(column_type("enum('int(11)')"), column_type("enum('int')"));
        assert_eq!(extra("DEFAULT_GENERATED on update CURRENT_TIMESTAMP(3)"), extra("on update current_timestamp(3)"));
    }
}
