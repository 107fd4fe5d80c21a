//! MySQL's `JSON` as PostgreSQL's `jsonb`: a document's text as green will hold and print it.
//!
//! Both engines store a parsed document, not its text, and normalize it the same way in the two
//! places that matter: an object's members are kept once (the last of duplicate keys wins) and
//! ordered shorter key first, then by the keys' bytes; whitespace is not kept. What differs is
//! numbers and a few strings:
//! - MySQL keeps a number as a 64-bit signed or unsigned integer, a double, or (from `CAST` of a
//!   `DECIMAL`) a decimal; `jsonb` keeps every number as a `numeric` of its written digits. Every
//!   integer, decimal and double MySQL prints is a finite decimal, so it arrives with the same value
//!   (`1e20` as `100000000000000000000`, as `numeric` prints it), except a double's negative zero,
//!   which `numeric` does not have (refused by value).
//! - A typed `DATE`, `TIME` or `DATETIME` scalar (what `JSON_OBJECT('at', NOW())` stores) would be a
//!   plain string in `jsonb`: refused by value (the binlog's document says so; the copy reads a mark
//!   blue's own comparison sets, see `source::mysql::side::selected`).
//! - `jsonb` cannot hold the character U+0000 in a string (`\u0000`): refused by value.
//!
//! [`jsonb`] parses blue's text and prints it as PostgreSQL's `jsonb_out` does (`{"a": 1, "b": [2]}`,
//! strings escaped as `escape_json` escapes them), so the value written to green and the text `verify`
//! compares with green's `doc::text` are one; a difference in that printing would show in `verify`,
//! never silently.

use super::{Affected, Class, GreenType};
use std::fmt::Write;
use turnout_decoders::pg::types::oid;

/// Green's type of a `JSON` column.
pub(super) fn green() -> GreenType {
    GreenType {
        ddl: "jsonb".into(),
        oid: oid::JSONB,
        typmod: -1,
        check: None,
        class: Class::Lossy,
        note: "the same document (members once, ordered as both engines order them; numbers as numeric); typed DATE/TIME scalars, \\u0000 and -0.0 refused",
        affected: Some(Affected::JsonInexact),
    }
}

/// Deepest nesting accepted (MySQL refuses documents deeper than 100).
const MAX_DEPTH: usize = 100;

/// The reason a document has no exact `jsonb`.
pub(super) const NUL: &str =
    "jsonb cannot hold the character U+0000 (\\u0000) in a string; remove it on blue (REPLACE in the document), or leave the table out";
pub(super) const NEGATIVE_ZERO: &str =
    "jsonb keeps numbers as numeric, which has no negative zero (-0.0 would arrive as 0.0); make it 0 on blue, or leave the table out";
pub(super) const TYPED: &str =
    "the document holds a typed DATE, TIME or DATETIME scalar (as JSON_OBJECT of a date column stores it), which jsonb would hold as a plain string; \
     store it on blue as a string (JSON_SET(doc, path, CAST(value AS CHAR))), or leave the table out";
const BROKEN: &str = "blue's document text does not parse as JSON: report it";

/// Green's `jsonb` text of blue's document text.
pub(super) fn jsonb(text: &str) -> Result<String, &'static str> {
    let mut parser = Parser { bytes: text.as_bytes(), at: 0 };
    let mut out = String::with_capacity(text.len() + 8);
    parser.value(&mut out, 0)?;
    parser.space();
    if parser.at != parser.bytes.len() {
        return Err(BROKEN);
    }
    Ok(out)
}

/// Whether the SQL that rebuilds a binlog document with its typed scalars (`json_typed`) holds a
/// date or time: only `DECIMAL` scalars have an exact `jsonb` (their digits).
pub(super) fn typed_dates(sql: &str) -> bool {
    // Strings are written as hexadecimal there, so only a typed scalar spells these.
    sql.contains(" AS DATE") || sql.contains(" AS TIME(")
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.bytes.get(self.at).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.at).copied();
        self.at += 1;
        b
    }

    fn literal(&mut self, word: &str, out: &mut String) -> Result<(), &'static str> {
        if self.bytes.get(self.at..self.at + word.len()) != Some(word.as_bytes()) {
            return Err(BROKEN);
        }
        self.at += word.len();
        out.push_str(word);
        Ok(())
    }

    fn value(&mut self, out: &mut String, depth: usize) -> Result<(), &'static str> {
        if depth > MAX_DEPTH {
            return Err("a document nested deeper than MySQL allows: report it");
        }
        self.space();
        match self.bytes.get(self.at) {
            Some(b'{') => self.object(out, depth),
            Some(b'[') => self.array(out, depth),
            Some(b'"') => {
                let s = self.string()?;
                escaped(out, &s);
                Ok(())
            }
            Some(b't') => self.literal("true", out),
            Some(b'f') => self.literal("false", out),
            Some(b'n') => self.literal("null", out),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            _ => Err(BROKEN),
        }
    }

    fn object(&mut self, out: &mut String, depth: usize) -> Result<(), &'static str> {
        self.at += 1;
        let mut members: Vec<(String, String)> = Vec::new();
        self.space();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
        } else {
            loop {
                self.space();
                if self.bytes.get(self.at) != Some(&b'"') {
                    return Err(BROKEN);
                }
                let key = self.string()?;
                self.space();
                if self.next() != Some(b':') {
                    return Err(BROKEN);
                }
                let mut value = String::new();
                self.value(&mut value, depth + 1)?;
                // The last of duplicate keys wins, in both engines.
                members.retain(|(k, _)| *k != key);
                members.push((key, value));
                self.space();
                match self.next() {
                    Some(b',') => {}
                    Some(b'}') => break,
                    _ => return Err(BROKEN),
                }
            }
        }
        // jsonb's order: shorter keys first, keys of one length by their bytes.
        members.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes())));
        out.push('{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            escaped(out, key);
            out.push_str(": ");
            out.push_str(value);
        }
        out.push('}');
        Ok(())
    }

    fn array(&mut self, out: &mut String, depth: usize) -> Result<(), &'static str> {
        self.at += 1;
        out.push('[');
        self.space();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
        } else {
            let mut first = true;
            loop {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                self.value(out, depth + 1)?;
                self.space();
                match self.next() {
                    Some(b',') => {}
                    Some(b']') => break,
                    _ => return Err(BROKEN),
                }
            }
        }
        out.push(']');
        Ok(())
    }

    /// A string's characters, its escapes decoded.
    fn string(&mut self) -> Result<String, &'static str> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.next().ok_or(BROKEN)? {
                b'"' => break,
                b'\\' => match self.next().ok_or(BROKEN)? {
                    b'"' => out.push(b'"'),
                    b'\\' => out.push(b'\\'),
                    b'/' => out.push(b'/'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let c = self.unicode()?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err(BROKEN),
                },
                0 => return Err(NUL),
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| BROKEN)
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let digits = self.bytes.get(self.at..self.at + 4).ok_or(BROKEN)?;
        let text = std::str::from_utf8(digits).map_err(|_| BROKEN)?;
        let n = u32::from_str_radix(text, 16).map_err(|_| BROKEN)?;
        self.at += 4;
        Ok(n)
    }

    /// The character of a `\uXXXX` escape (a surrogate pair's two escapes).
    fn unicode(&mut self) -> Result<char, &'static str> {
        let first = self.hex4()?;
        let code = match first {
            0 => return Err(NUL),
            0xD800..=0xDBFF => {
                if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                    return Err(BROKEN);
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(BROKEN);
                }
                0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(BROKEN),
            c => c,
        };
        char::from_u32(code).ok_or(BROKEN)
    }

    /// A number as `numeric_in` reads it and `numeric_out` prints it: no exponent, as many
    /// fractional digits as written less the exponent (none below zero), no negative zero.
    fn number(&mut self, out: &mut String) -> Result<(), &'static str> {
        let negative = self.bytes.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let digits = |p: &mut Self| {
            let start = p.at;
            while p.bytes.get(p.at).is_some_and(u8::is_ascii_digit) {
                p.at += 1;
            }
            std::str::from_utf8(&p.bytes[start..p.at]).unwrap_or_default().to_owned()
        };
        let whole = digits(self);
        if whole.is_empty() {
            return Err(BROKEN);
        }
        let fraction = if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            let f = digits(self);
            if f.is_empty() {
                return Err(BROKEN);
            }
            f
        } else {
            String::new()
        };
        let mut exponent: i64 = 0;
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            let sign = match self.bytes.get(self.at) {
                Some(b'-') => {
                    self.at += 1;
                    -1
                }
                Some(b'+') => {
                    self.at += 1;
                    1
                }
                _ => 1,
            };
            let e = digits(self);
            // numeric_in's own limit; no MySQL number comes near it.
            exponent = sign * e.parse::<i64>().ok().filter(|e| *e <= 1000).ok_or(BROKEN)?;
        }
        let all = format!("{whole}{fraction}");
        if all.bytes().all(|b| b == b'0') && negative {
            return Err(NEGATIVE_ZERO);
        }
        // The value is all × 10^shift.
        let shift = exponent - i64::try_from(fraction.len()).map_err(|_| BROKEN)?;
        let (int_part, frac_part) = if shift >= 0 {
            (format!("{all}{}", "0".repeat(usize::try_from(shift).map_err(|_| BROKEN)?)), String::new())
        } else {
            let n = usize::try_from(-shift).map_err(|_| BROKEN)?;
            let padded = if all.len() < n { format!("{}{all}", "0".repeat(n - all.len())) } else { all };
            let (i, f) = padded.split_at(padded.len() - n);
            (i.to_owned(), f.to_owned())
        };
        let int_part = int_part.trim_start_matches('0');
        if negative {
            out.push('-');
        }
        out.push_str(if int_part.is_empty() { "0" } else { int_part });
        if !frac_part.is_empty() {
            out.push('.');
            out.push_str(&frac_part);
        }
        Ok(())
    }
}

/// `s` as a JSON string, escaped as PostgreSQL's `escape_json` escapes it.
fn escaped(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_print_as_jsonb_prints_them() {
        for (mysql, pg) in [
            (r#"{"b": 1, "a": [true, false, null], "aa": {}}"#, r#"{"a": [true, false, null], "b": 1, "aa": {}}"#),
            (r#"{"a":1,"a":2}"#, r#"{"a": 2}"#),
            ("[]", "[]"),
            ("  [ 1 , [ ] ]  ", "[1, []]"),
            ("null", "null"),
            (r#""x""#, r#""x""#),
            // MySQL's doubles and integers, as numeric prints them.
            ("1e20", "100000000000000000000"),
            ("1.5e-7", "0.00000015"),
            ("-0.00000015", "-0.00000015"),
            ("100.0", "100.0"),
            ("1.50", "1.50"),
            ("1.50e1", "15.0"),
            ("1E+2", "100"),
            ("5e-324", &format!("0.{}5", "0".repeat(323))),
            ("18446744073709551615", "18446744073709551615"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("0", "0"),
            ("0.0", "0.0"),
            // Escapes decoded, then written as escape_json writes them.
            (r#""a\"b\\c\/d\u00e9\ud83d\ude00\u0001\n\t\u001f""#, "\"a\\\"b\\\\c/dé😀\\u0001\\n\\t\\u001f\""),
            ("\"\u{7f}é\"", "\"\u{7f}é\""),
        ] {
            assert_eq!(jsonb(mysql).as_deref(), Ok(pg), "{mysql}");
        }
        // Keys of one length by their bytes (UTF-8), shorter first.
        assert_eq!(jsonb(r#"{"é": 1, "z": 2, "ab": 3}"#).as_deref(), Ok(r#"{"z": 2, "ab": 3, "é": 1}"#));
    }

    #[test]
    fn what_jsonb_cannot_hold_and_broken_text_are_refused() {
        assert_eq!(jsonb(r#"["a\u0000b"]"#), Err(NUL));
        assert_eq!(jsonb("-0.0"), Err(NEGATIVE_ZERO));
        assert_eq!(jsonb("[-0]"), Err(NEGATIVE_ZERO));
        for broken in ["", "{", "[1,]", "{\"a\" 1}", "01x", "1.", "\"\\ud800\"", "\"\\x\"", "tru", "[1] 2", "1e1001"] {
            assert!(jsonb(broken).is_err(), "{broken}");
        }
        let deep = format!("{}{}", "[".repeat(102), "]".repeat(102));
        assert!(jsonb(&deep).is_err());
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(jsonb(&fine).is_ok());
    }

    #[test]
    fn only_dates_and_times_make_a_typed_document_inexact() {
        assert!(!typed_dates("JSON_OBJECT(CONVERT(X'61' USING utf8mb4), CAST('1.50' AS DECIMAL(3,2)))"));
        assert!(typed_dates("JSON_ARRAY(CAST('2024-01-01' AS DATE))"));
        assert!(typed_dates("JSON_ARRAY(CAST('2024-01-01 00:00:00.000000' AS DATETIME(6)))"));
        assert!(typed_dates("JSON_ARRAY(CAST('10:00:00.000000' AS TIME(6)))"));
    }
}
