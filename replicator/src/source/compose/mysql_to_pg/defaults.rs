//! Blue's column defaults in the type map: a constant green holds exactly is carried as green's
//! `DEFAULT` (a number, a string, a date or wall-clock time, an `ENUM`/`SET` member); anything else —
//! an expression, a function such as `current_timestamp()`, a `TIMESTAMP` constant (read in the
//! session time zone of the statement that set it), a zero date, bytes — is not, and the cutover
//! refuses it until the operator makes it on green and keeps it.

use super::members::pg_literal;
use super::BlueType;

/// The text of a MySQL string literal (`'it''s'`, `'a\'b'`, `'\\'`), or `None` when `sql` is not one.
fn unquoted(sql: &str) -> Option<String> {
    let inner = sql.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            '\'' => return None,
            '\\' => out.push(match chars.next()? {
                '0' => '\0',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'Z' => '\u{1a}',
                'b' => '\u{8}',
                other => other,
            }),
            c => out.push(c),
        }
    }
    Some(out)
}

/// Whether `text` is a plain decimal number (`-12`, `3.50`, `1e3` is not).
fn number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.') && digits.chars().filter(|&c| c == '.').count() <= 1
}

/// Green's `DEFAULT` expression for blue's default `sql` on a column of type `blue`, when it is a
/// constant green holds exactly.
pub(super) fn carried(blue: &BlueType, sql: &str) -> Option<String> {
    let constant = unquoted(sql).or_else(|| number(sql).then(|| sql.to_owned()))?;
    if constant.contains('\0') {
        return None;
    }
    match blue {
        BlueType::Int { .. } | BlueType::Decimal { .. } | BlueType::Float { .. } | BlueType::Year | BlueType::Counter => number(&constant).then_some(constant),
        BlueType::Text { .. } | BlueType::Char { .. } | BlueType::Enum { .. } | BlueType::Set { .. } => {
            let text = if matches!(blue, BlueType::Char { .. }) { constant.trim_end_matches(' ').to_owned() } else { constant };
            Some(pg_literal(&text))
        }
        BlueType::Date | BlueType::DateTime { .. } => {
            let plain = constant.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | ':' | ' ' | '.'));
            let zero = constant.get(..10).is_none_or(|d| d.split('-').any(|p| p.trim_start_matches('0').is_empty()));
            (plain && !zero).then(|| pg_literal(&constant))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_carried_and_everything_else_is_left_to_the_operator() {
        let text = BlueType::Text { chars: Some(10), encoding: None };
        let int = BlueType::Int { bytes: 4, unsigned: false };
        assert_eq!(carried(&text, "'none'").as_deref(), Some("'none'"));
        assert_eq!(carried(&text, "'it''s'").as_deref(), Some("'it''s'"));
        assert_eq!(carried(&text, r"'a\'b\\c'").as_deref(), Some(r"'a''b\c'"));
        assert_eq!(carried(&text, r"'nul\0'"), None, "PostgreSQL text holds no NUL");
        assert_eq!(carried(&int, "0").as_deref(), Some("0"));
        assert_eq!(carried(&int, "'-12'").as_deref(), Some("-12"));
        assert_eq!(carried(&int, "'x'"), None);
        assert_eq!(carried(&BlueType::Decimal { precision: 5, scale: 2, unsigned: false }, "3.50").as_deref(), Some("3.50"));
        assert_eq!(carried(&BlueType::Char { chars: 3, encoding: None }, "'a  '").as_deref(), Some("'a'"));
        assert_eq!(carried(&BlueType::Date, "'2024-02-29'").as_deref(), Some("'2024-02-29'"));
        assert_eq!(carried(&BlueType::Date, "'0000-00-00'"), None, "a zero date");
        assert_eq!(carried(&BlueType::DateTime { fsp: 0 }, "current_timestamp()"), None, "a function");
        assert_eq!(carried(&BlueType::Timestamp { fsp: 0 }, "'2024-01-01 00:00:00'"), None, "read in a session's time zone");
        assert_eq!(carried(&int, "(1 + 1)"), None, "an expression");
        assert_eq!(carried(&BlueType::Bytes { length: Some(4), fixed: false }, "'ab'"), None);
    }
}
