//! What a statement logged in a binlog Query event is, as far as replication cares — the one
//! classifier every Query event goes through.
//!
//! Fail closed: a statement is passed over only when it is *known* to change no replicated row
//! (accounts and privileges, maintenance, temporary tables, plugins). Everything else is either
//! replicated exactly (transaction control, `TRUNCATE`, additive table DDL, views and stored
//! routines) or refused by name (row changes logged as statements, triggers and events, XA, other
//! table DDL, and anything this classifier does not recognise).

use crate::schema::TableName;

/// A logged statement's kind.
#[derive(Debug, PartialEq)]
pub(super) enum Statement {
    Begin,
    Commit,
    Rollback,
    Savepoint,
    Truncate(TableName),
    /// A statement that can change rows and was logged as text (a session with `binlog_format` =
    /// STATEMENT or MIXED): INSERT/UPDATE/DELETE/REPLACE/LOAD, and SELECT/DO/CALL, which may call a
    /// stored function that writes.
    Dml,
    /// Table DDL: the tables it names, and whether it only adds columns or indexes.
    Ddl {
        tables: Vec<TableName>,
        additive: bool,
    },
    /// `CREATE TABLE` of one table. `plain` when it only creates an empty table — not `OR REPLACE`
    /// (which drops the table it replaces), not filled by a query (`… SELECT`, `TABLE`, `VALUES`,
    /// `WITH`, MySQL's `… START TRANSACTION` form of them in a row-format binlog) —, so that a stream
    /// whose target makes the table from blue's catalog may carry it
    /// ([`super::decoder::BinlogDecoder::creating_tables`]). `if_not_exists`: logged also when the
    /// table existed, and then left as it was.
    CreateTable {
        table: TableName,
        plain: bool,
        if_not_exists: bool,
    },
    /// `CREATE/ALTER/DROP VIEW | FUNCTION | PROCEDURE | PACKAGE`: a schema object that holds no rows
    /// and runs only when called; replayed on green with blue's session context.
    Routine {
        object: TableName,
    },
    /// A statement whose effect on green would differ from blue's or cannot be replayed exactly:
    /// triggers (they would fire again for replicated rows), events (they would run on green), XA,
    /// sequences, dropping a database. What it is, for the message.
    Refused(&'static str),
    /// `DROP DATABASE | SCHEMA name`: refused when replicated tables live there.
    DropDatabase(String),
    /// Known to change no replicated row: accounts, privileges, maintenance, temporary tables,
    /// databases created or altered, plugins, `FLUSH`.
    NoRowChange,
    /// Not recognised: refused, never passed over.
    Unknown,
}

impl Statement {
    pub(super) fn classify(sql: &str, db: &str) -> Statement {
        let tokens = tokens(sql);
        let word = |i: usize| tokens.get(i).map(|t| t.to_ascii_uppercase()).unwrap_or_default();
        let table_at = |i: usize| -> Option<(TableName, usize)> { table_name(&tokens, i, db) };
        match word(0).as_str() {
            "BEGIN" => Statement::Begin,
            "START" if word(1) == "TRANSACTION" => Statement::Begin,
            "COMMIT" => Statement::Commit,
            "XA" => Statement::Refused("an XA transaction"),
            "SAVEPOINT" | "RELEASE" => Statement::Savepoint,
            "ROLLBACK" if word(1) == "TO" => Statement::Savepoint,
            "ROLLBACK" => Statement::Rollback,
            "TRUNCATE" => {
                let at = if word(1) == "TABLE" { 2 } else { 1 };
                table_at(at).map_or(Statement::Unknown, |(t, _)| Statement::Truncate(t))
            }
            "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD" | "SELECT" | "DO" | "CALL" | "WITH" | "HANDLER" | "EXECUTE" => Statement::Dml,
            "GRANT" | "REVOKE" | "FLUSH" | "ANALYZE" | "OPTIMIZE" | "REPAIR" | "INSTALL" | "UNINSTALL" => Statement::NoRowChange,
            "SET" if matches!(word(1).as_str(), "PASSWORD" | "DEFAULT") => Statement::NoRowChange,
            "ALTER" if word(1) == "TABLE" || (word(1) == "ONLINE" && word(2) == "TABLE") || (word(1) == "IGNORE" && word(2) == "TABLE") => {
                let mut at = if word(1) == "TABLE" { 2 } else { 3 };
                if word(at) == "IF" && word(at + 1) == "EXISTS" {
                    at += 2;
                }
                match table_at(at) {
                    Some((t, next)) => Statement::Ddl { tables: vec![t], additive: only_adds(&tokens[next..]) },
                    None => Statement::Unknown,
                }
            }
            "CREATE" | "DROP" | "RENAME" | "ALTER" => Self::definition(&tokens, db),
            _ => Statement::Unknown,
        }
    }

    /// `CREATE | DROP | RENAME | ALTER …` other than `ALTER TABLE`.
    /// Where the object kind is, past the modifiers before it (OR REPLACE, ALGORITHM = …, DEFINER =
    /// user@host, SQL SECURITY …, AGGREGATE, TEMPORARY, UNIQUE/FULLTEXT/SPATIAL, ONLINE), and
    /// whether one of them is TEMPORARY. `word` gives the upper-cased token at an index.
    fn past_modifiers(word: &dyn Fn(usize) -> String) -> (usize, bool) {
        let mut i = 1;
        let mut temporary = false;
        loop {
            match word(i).as_str() {
                "OR" | "REPLACE" | "UNIQUE" | "FULLTEXT" | "SPATIAL" | "ONLINE" | "AGGREGATE" => i += 1,
                "TEMPORARY" => {
                    temporary = true;
                    i += 1;
                }
                "ALGORITHM" if word(i + 1) == "=" => i += 3,
                "SQL" if word(i + 1) == "SECURITY" => i += 3,
                "DEFINER" if word(i + 1) == "=" => {
                    // user, or user@host (quoted parts), or CURRENT_USER[()]
                    i += 3;
                    if word(i) == "@" || word(i) == "(" {
                        i += 2;
                    }
                }
                _ => return (i, temporary),
            }
        }
    }

    fn definition(tokens: &[String], db: &str) -> Statement {
        let word = |i: usize| tokens.get(i).map(|t| t.to_ascii_uppercase()).unwrap_or_default();
        let table_at = |i: usize| -> Option<(TableName, usize)> { table_name(tokens, i, db) };
        let verb = word(0);
        let (i, temporary) = Self::past_modifiers(&word);
        let if_exists = |at: usize| -> usize {
            if word(at) == "IF" {
                at + if word(at + 1) == "NOT" { 3 } else { 2 }
            } else {
                at
            }
        };
        match word(i).as_str() {
            _ if temporary => Statement::NoRowChange,
            "INDEX" | "KEY" => {
                let on = (i..tokens.len()).find(|&k| word(k) == "ON");
                match on.and_then(|k| table_at(k + 1)) {
                    Some((t, _)) => Statement::Ddl { tables: vec![t], additive: verb == "CREATE" },
                    None => Statement::Unknown,
                }
            }
            "TABLE" | "TABLES" => {
                // CREATE TABLE, DROP, RENAME: not additive (a table created after the snapshot was
                // never copied).
                let mut at = if_exists(i + 1);
                let mut tables = Vec::new();
                while let Some((t, next)) = table_at(at) {
                    tables.push(t);
                    // DROP TABLE a, b / RENAME TABLE a TO b, c TO d
                    match word(next).as_str() {
                        "," | "TO" => at = next + 1,
                        _ => break,
                    }
                }
                match (verb.as_str(), tables.as_slice()) {
                    (_, []) => Statement::Unknown,
                    ("CREATE", [table]) => {
                        Statement::CreateTable { table: table.clone(), plain: word(1) != "OR" && empty(tokens), if_not_exists: word(i + 1) == "IF" }
                    }
                    _ => Statement::Ddl { tables, additive: false },
                }
            }
            "VIEW" | "FUNCTION" | "PROCEDURE" | "PACKAGE" if verb != "RENAME" => {
                let mut at = if_exists(i + 1);
                if word(at) == "BODY" {
                    at = if_exists(at + 1);
                }
                table_at(at).map_or(Statement::Unknown, |(object, _)| Statement::Routine { object })
            }
            "TRIGGER" => Statement::Refused("a trigger"),
            "EVENT" => Statement::Refused("an event"),
            "SEQUENCE" => Statement::Refused("a sequence"),
            "DATABASE" | "SCHEMA" if verb == "DROP" => {
                let at = if_exists(i + 1);
                match tokens.get(at) {
                    Some(name) => Statement::DropDatabase(name.trim_matches('`').replace("``", "`")),
                    None => Statement::Unknown,
                }
            }
            "DATABASE" | "SCHEMA" => Statement::NoRowChange,
            "USER" | "ROLE" | "SERVER" => Statement::NoRowChange,
            _ => Statement::Unknown,
        }
    }
}

/// Functions whose value for an existing row green reproduces exactly when it runs blue's ALTER
/// with blue's statement time (`SET timestamp`) and session: clock functions read the statement's
/// time, the others are pure.
const REPRODUCIBLE_FUNCTIONS: &[&str] = &[
    "CURRENT_TIMESTAMP",
    "NOW",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "CURDATE",
    "CURRENT_DATE",
    "CURTIME",
    "CURRENT_TIME",
    "UTC_TIMESTAMP",
    "UTC_DATE",
    "UTC_TIME",
    "UNIX_TIMESTAMP",
    "CONCAT",
    "CONCAT_WS",
    "LOWER",
    "UPPER",
    "LCASE",
    "UCASE",
    "ABS",
    "ROUND",
    "FLOOR",
    "CEIL",
    "CEILING",
    "COALESCE",
    "IFNULL",
    "IF",
    "NULLIF",
    "CAST",
    "CONVERT",
    "DATE_ADD",
    "DATE_SUB",
    "DATE_FORMAT",
    "JSON_OBJECT",
    "JSON_ARRAY",
    "JSON_QUOTE",
    "LEFT",
    "RIGHT",
    "SUBSTRING",
    "SUBSTR",
    "REPLACE",
    "TRIM",
    "LENGTH",
    "CHAR_LENGTH",
    "HEX",
    "UNHEX",
    "MD5",
    "SHA1",
    "SHA2",
    "CRC32",
    "GREATEST",
    "LEAST",
    "MOD",
    "POW",
    "POWER",
    "SQRT",
];

/// Words that, in a default expression, read something green does not share with blue.
const VOLATILE_WORDS: &[&str] = &["NEXT", "PREVIOUS", "SYSDATE", "CURRENT_USER", "CURRENT_ROLE", "USER"];

/// In the clauses of an additive `ALTER TABLE` (the tokens after the table name): the first added
/// column whose values for the rows that already exist green cannot reproduce from the statement
/// and blue's session context — a default calling a function outside [`REPRODUCIBLE_FUNCTIONS`]
/// (`UUID()`, `RAND()`, `SYSDATE()`, a sequence…), or `AUTO_INCREMENT` (numbers rows in scan order).
/// Returns the column and why.
pub(super) fn unreproducible_column(rest: &[String]) -> Option<(String, String)> {
    let upper: Vec<String> = rest.iter().map(|t| t.to_ascii_uppercase()).collect();
    let keyword = |w: &str| matches!(w, "COLUMN" | "IF" | "NOT" | "EXISTS" | "(" | "," | ")");
    let mut column = String::new();
    let mut depth = 0i32;
    // The depth of an `ADD (a …, b …)` group, where each element starts with a column name.
    let mut group: Option<i32> = None;
    let mut i = 0;
    while i < rest.len() {
        let w = upper[i].as_str();
        let starts_name = match w {
            "ADD" | "COLUMN" | "EXISTS" => true,
            "(" => {
                depth += 1;
                if i > 0 && upper[i - 1] == "ADD" {
                    group = Some(depth);
                }
                group == Some(depth)
            }
            ")" => {
                if group == Some(depth) {
                    group = None;
                }
                depth -= 1;
                false
            }
            "," => group == Some(depth),
            _ => false,
        };
        if starts_name && rest.get(i + 1).is_some_and(|n| !keyword(&n.to_ascii_uppercase())) {
            column = rest[i + 1].trim_matches('`').replace("``", "`");
        }
        if w == "AUTO_INCREMENT" || w == "SERIAL" {
            return Some((column, "AUTO_INCREMENT numbers the existing rows in the order the server reads them".into()));
        }
        if w == "DEFAULT" {
            // The default's tokens: a parenthesised expression, or one word with its argument list.
            let (from, to) = match upper.get(i + 1).map(String::as_str) {
                Some("(") => (i + 1, closing(&upper, i + 1)),
                Some(_) if upper.get(i + 2).is_some_and(|t| t == "(") => (i + 1, closing(&upper, i + 2)),
                _ => (i + 1, i + 1),
            };
            let to = to.min(upper.len().saturating_sub(1));
            for k in from..=to {
                let t = upper[k].as_str();
                let call = upper.get(k + 1).is_some_and(|n| n == "(") && t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
                if (call && !REPRODUCIBLE_FUNCTIONS.contains(&t)) || VOLATILE_WORDS.contains(&t) {
                    return Some((column, format!("its default calls {}, which gives green other values than blue", rest[k])));
                }
            }
            // The default's parentheses are balanced: skip them without changing the depth.
            i = to.max(i);
        }
        i += 1;
    }
    None
}

/// Whether a `CREATE TABLE` statement's `tokens` create the table empty: no `SELECT` anywhere, and
/// outside parentheses nothing that brings rows (`AS`, `IGNORE`/`REPLACE`, `TABLE`, `VALUES`,
/// `WITH`, MySQL's trailing `START TRANSACTION`) past the `CREATE TABLE` itself. Unknown forms count
/// as not empty.
fn empty(tokens: &[String]) -> bool {
    let mut depth = 0i32;
    for (k, token) in tokens.iter().enumerate() {
        let word = token.to_ascii_uppercase();
        match word.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "SELECT" => return false,
            "TABLE" if k > 1 && depth == 0 => return false,
            "AS" | "IGNORE" | "REPLACE" | "VALUES" | "WITH" | "START" if depth == 0 => return false,
            _ => {}
        }
    }
    true
}

/// The index of the `)` closing the `(` at `open` (the last token when unbalanced).
fn closing(tokens: &[String], open: usize) -> usize {
    let mut depth = 0;
    for (k, t) in tokens.iter().enumerate().skip(open) {
        match t.as_str() {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    tokens.len().saturating_sub(1)
}

/// `ADD [COLUMN] …`, `ADD INDEX|KEY|UNIQUE|FULLTEXT|SPATIAL …` clauses only (comma-separated at the top
/// level), plus table options that change no data (ALGORITHM, LOCK).
pub(super) fn only_adds(rest: &[String]) -> bool {
    let mut clause_start = true;
    let mut depth = 0i32;
    let mut saw_clause = false;
    for (i, t) in rest.iter().enumerate() {
        match t.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => {
                clause_start = true;
                continue;
            }
            _ => {}
        }
        if clause_start && depth == 0 {
            let w = t.to_ascii_uppercase();
            let ok = match w.as_str() {
                "ADD" => true,
                "ALGORITHM" | "LOCK" => rest.get(i + 1).is_some(),
                _ => false,
            };
            if !ok {
                return false;
            }
            if w == "ADD" {
                let next = rest.get(i + 1).map(|s| s.to_ascii_uppercase()).unwrap_or_default();
                // ADD PRIMARY KEY / FOREIGN KEY / CONSTRAINT / PARTITION change identity or behaviour.
                if matches!(next.as_str(), "PRIMARY" | "FOREIGN" | "CONSTRAINT" | "PARTITION" | "CHECK" | "PERIOD" | "SYSTEM") {
                    return false;
                }
            }
            saw_clause = true;
            clause_start = false;
        }
    }
    saw_clause
}

/// A possibly qualified, possibly quoted table name starting at token `i`; returns it and the index
/// of the token after it.
pub(super) fn table_name(tokens: &[String], i: usize, db: &str) -> Option<(TableName, usize)> {
    let part = |t: &String| -> Option<String> {
        if let Some(inner) = t.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
            return Some(inner.replace("``", "`"));
        }
        let c = t.chars().next()?;
        (c.is_alphanumeric() || c == '_' || c == '$').then(|| t.clone())
    };
    let first = part(tokens.get(i)?)?;
    if tokens.get(i + 1).is_some_and(|t| t == ".") {
        let second = part(tokens.get(i + 2)?)?;
        return Some((TableName::new(first, second), i + 3));
    }
    Some((TableName::new(db, first), i + 1))
}

/// SQL tokens: words, backquoted identifiers, string literals, and single punctuation; comments
/// dropped.
pub(super) fn tokens(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            // MariaDB's executable comments (/*! … */, /*M! … */) hold real SQL: keep their content.
            let executable = chars.get(i + 2) == Some(&'!') || (chars.get(i + 2) == Some(&'M') && chars.get(i + 3) == Some(&'!'));
            if executable {
                i += if chars.get(i + 2) == Some(&'!') { 3 } else { 4 };
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
        } else if c == '*' && chars.get(i + 1) == Some(&'/') {
            i += 2;
        } else if c == '#' || (c == '-' && chars.get(i + 1) == Some(&'-')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '`' || c == '\'' || c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                if chars[i] == '\\' && c != '`' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            out.push(chars[start..i].iter().collect());
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: &str, name: &str) -> TableName {
        TableName::new(db, name)
    }
    #[test]
    fn statements_are_classified_for_replication() {
        assert_eq!(Statement::classify("BEGIN", "app"), Statement::Begin);
        assert_eq!(Statement::classify("COMMIT", "app"), Statement::Commit);
        assert_eq!(Statement::classify("TRUNCATE TABLE `odd``name`", "app"), Statement::Truncate(t("app", "odd`name")));
        assert_eq!(Statement::classify("truncate other.t2", "app"), Statement::Truncate(t("other", "t2")));
        assert_eq!(
            Statement::classify("ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0, ADD INDEX (c)", "app"),
            Statement::Ddl { tables: vec![t("app", "t")], additive: true }
        );
        assert_eq!(
            Statement::classify("/* turnout */ alter table `s`.`t` add c varchar(10), algorithm=instant", "app"),
            Statement::Ddl { tables: vec![t("s", "t")], additive: true }
        );
        for not_additive in [
            "ALTER TABLE t DROP COLUMN c",
            "ALTER TABLE t ADD COLUMN c INT, MODIFY d BIGINT",
            "ALTER TABLE t RENAME TO u",
            "ALTER TABLE t ADD PRIMARY KEY (id)",
            "ALTER TABLE t CHANGE a b INT",
        ] {
            assert!(matches!(Statement::classify(not_additive, "app"), Statement::Ddl { additive: false, .. }), "{not_additive}");
        }
        assert_eq!(
            Statement::classify("DROP TABLE IF EXISTS a, b /* generated by server */", "app"),
            Statement::Ddl { tables: vec![t("app", "a"), t("app", "b")], additive: false }
        );
        assert_eq!(Statement::classify("RENAME TABLE a TO b", "app"), Statement::Ddl { tables: vec![t("app", "a"), t("app", "b")], additive: false });
        assert_eq!(Statement::classify("CREATE INDEX i ON t (c)", "app"), Statement::Ddl { tables: vec![t("app", "t")], additive: true });
        for plain in [
            "CREATE TABLE n (id int)",
            "create table `s`.n like m",
            "CREATE TABLE n (LIKE m)",
            "CREATE TABLE `n` (id INT PRIMARY KEY, g INT AS (id + 1), `select` INT) ENGINE = InnoDB COMMENT = 'AS VALUES'",
            "CREATE TABLE n (id INT) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)",
        ] {
            let name = if plain.contains("`s`") { t("s", "n") } else { t("app", "n") };
            assert_eq!(Statement::classify(plain, "app"), Statement::CreateTable { table: name, plain: true, if_not_exists: false }, "{plain}");
        }
        assert_eq!(
            Statement::classify("CREATE TABLE IF NOT EXISTS n (id int)", "app"),
            Statement::CreateTable { table: t("app", "n"), plain: true, if_not_exists: true }
        );
        for filled in [
            "CREATE TABLE n SELECT * FROM m",
            "CREATE TABLE n (id int) AS (SELECT 1)",
            "CREATE OR REPLACE TABLE n (id int)",
            "CREATE TABLE n TABLE m",
            "CREATE TABLE n VALUES ROW(1), ROW(2)",
            "CREATE TABLE n (id INT) IGNORE TABLE m",
            "CREATE TABLE n WITH q AS (TABLE m) TABLE q",
            "CREATE TABLE `n` (`id` int NOT NULL) START TRANSACTION",
            "CREATE TABLE n (id INT) WITH SYSTEM VERSIONING",
        ] {
            assert_eq!(Statement::classify(filled, "app"), Statement::CreateTable { table: t("app", "n"), plain: false, if_not_exists: false }, "{filled}");
        }
        assert_eq!(Statement::classify("INSERT INTO t VALUES (1)", "app"), Statement::Dml);
        assert_eq!(Statement::classify("GRANT SELECT ON *.* TO x", "app"), Statement::NoRowChange);
        assert_eq!(Statement::classify("SAVEPOINT `s1`", "app"), Statement::Savepoint);
        assert_eq!(Statement::classify("ROLLBACK TO `s1`", "app"), Statement::Savepoint);
    }

    #[test]
    fn statements_that_may_change_rows_or_behaviour_are_never_passed_over() {
        for dml in ["SELECT app.f(5)", "DO f()", "CALL p(1)", "LOAD DATA INFILE 'x' INTO TABLE t", "WITH x AS (SELECT 1) UPDATE t SET a = 1"] {
            assert_eq!(Statement::classify(dml, "app"), Statement::Dml, "{dml}");
        }
        for (sql, what) in [
            ("CREATE DEFINER=`root`@`localhost` TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW SET NEW.u = NOW(6)", "a trigger"),
            ("DROP TRIGGER IF EXISTS tr", "a trigger"),
            ("CREATE DEFINER=`root`@`%` EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t", "an event"),
            ("XA START 'x'", "an XA transaction"),
            ("CREATE SEQUENCE s", "a sequence"),
        ] {
            assert_eq!(Statement::classify(sql, "app"), Statement::Refused(what), "{sql}");
        }
        assert_eq!(Statement::classify("DROP DATABASE IF EXISTS `my``db`", "app"), Statement::DropDatabase("my`db".into()));
        assert_eq!(
            Statement::classify("CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS SELECT 1", "app"),
            Statement::Routine { object: t("app", "v") }
        );
        assert_eq!(Statement::classify("DROP PROCEDURE IF EXISTS other.p", "app"), Statement::Routine { object: t("other", "p") });
        assert_eq!(
            Statement::classify("CREATE DEFINER=CURRENT_USER() FUNCTION f(x INT) RETURNS INT DETERMINISTIC RETURN x + 1", "app"),
            Statement::Routine { object: t("app", "f") }
        );
        for harmless in [
            "CREATE USER u IDENTIFIED BY 'x'",
            "FLUSH PRIVILEGES",
            "ANALYZE TABLE t",
            "CREATE DATABASE x",
            "SET PASSWORD FOR u = PASSWORD('x')",
            "DROP /*!40005 TEMPORARY */ TABLE IF EXISTS `t`",
            "CREATE TEMPORARY TABLE t (a INT)",
        ] {
            assert_eq!(Statement::classify(harmless, "app"), Statement::NoRowChange, "{harmless}");
        }
        for unknown in ["SET STATEMENT max_statement_time = 1 FOR ALTER TABLE t ADD c INT", "BINLOG 'AAAA'", "frobnicate"] {
            assert_eq!(Statement::classify(unknown, "app"), Statement::Unknown, "{unknown}");
        }
    }

    fn unreproducible(alter_rest: &str) -> Option<(String, String)> {
        unreproducible_column(&tokens(alter_rest))
    }

    #[test]
    fn added_columns_whose_existing_values_green_cannot_reproduce_are_named() {
        let (c, why) =
            unreproducible("ADD COLUMN created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), ADD COLUMN u VARCHAR(40) DEFAULT (UUID())").expect("uuid");
        assert_eq!(c, "u");
        assert!(why.contains("UUID"), "{why}");
        assert_eq!(unreproducible("ADD `r` DOUBLE DEFAULT RAND()").map(|x| x.0), Some("r".into()));
        assert_eq!(unreproducible("ADD COLUMN IF NOT EXISTS s DATETIME DEFAULT (SYSDATE())").map(|x| x.0), Some("s".into()));
        assert_eq!(unreproducible("ADD n BIGINT DEFAULT (NEXT VALUE FOR seq)").map(|x| x.0), Some("n".into()));
        assert_eq!(unreproducible("ADD id2 INT AUTO_INCREMENT UNIQUE").map(|x| x.0), Some("id2".into()));
        assert_eq!(unreproducible("ADD COLUMN id SERIAL PRIMARY KEY").map(|x| x.0), Some("id".into()), "SERIAL is AUTO_INCREMENT");
        assert_eq!(unreproducible("ADD n BIGINT SERIAL DEFAULT VALUE").map(|x| x.0), Some("n".into()));
        assert_eq!(unreproducible("ADD (a INT DEFAULT 1, b VARCHAR(36) DEFAULT (UUID()))").map(|x| x.0), Some("b".into()));
        for fine in [
            "ADD COLUMN created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)",
            "ADD ts TIMESTAMP DEFAULT '2024-01-01 00:00:00', ADD d DATE DEFAULT (CURRENT_DATE + INTERVAL 1 DAY)",
            "ADD c INT NOT NULL DEFAULT 7, ADD INDEX (c)",
            "ADD j JSON DEFAULT (JSON_OBJECT('a', 1)), ALGORITHM = INSTANT",
        ] {
            assert_eq!(unreproducible(fine), None, "{fine}");
        }
    }
}
