//! MySQL's partial JSON updates (`binlog_row_value_options = PARTIAL_JSON`, PARTIAL_UPDATE_ROWS_EVENT):
//! the after image of a JSON column that `JSON_SET`, `JSON_REPLACE` or `JSON_REMOVE` changed in place
//! holds a *diff vector* instead of the new document. turnout applies it to the old document from the
//! before image (full with `binlog_row_image = FULL`) and hands the pipeline the new document's text, so
//! green receives whole values as from any other update.
//!
//! The rules are MySQL's own replica's (`apply_json_diffs`, `sql/json_diff.cc`), so the result is the
//! document blue stored:
//! - a diff vector is a 4-byte length, then diffs: operation (0 REPLACE, 1 INSERT, 2 REMOVE), the path
//!   as text (length-encoded), and for REPLACE and INSERT the new value as binary JSON (length-encoded);
//! - paths hold member names and array cells only (`[n]`, `[last]`, `[last-n]`), seeked exactly: no
//!   auto-wrapping of scalars, no wildcards; the root path is refused;
//! - REPLACE needs the value to exist; INSERT needs the parent and, in an object, a new member name (an
//!   array cell past the end appends); REMOVE needs the member or an array cell within bounds.
//!
//! Anything else — a path that does not resolve, an unknown operation, bytes that do not parse — is an
//! error: the old document is not the one blue changed, and guessing would make green differ.
//!
//! Object members are kept in MySQL's storage order (shorter key first, then by bytes), the order the
//! binary format stores and prints them in, so an inserted member lands where blue's document has it.

use super::json::{escape_into, to_text_exact};
use std::cmp::Ordering;

/// What one diff does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonDiffOp {
    Replace,
    Insert,
    Remove,
}

/// One diff of a vector: the operation, its path's text and, except for REMOVE, the new value's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonDiff {
    pub op: JsonDiffOp,
    pub path: String,
    pub value: Option<String>,
}

/// Reads the diffs of a diff vector's body (the bytes after its 4-byte length).
pub(crate) fn parse_diffs(mut bytes: &[u8]) -> Result<Vec<JsonDiff>, String> {
    let mut diffs = Vec::new();
    while let Some((&op, rest)) = bytes.split_first() {
        let op = match op {
            0 => JsonDiffOp::Replace,
            1 => JsonDiffOp::Insert,
            2 => JsonDiffOp::Remove,
            other => return Err(format!("unknown JSON diff operation {other}")),
        };
        let (path, rest) = lenenc_bytes(rest, "JSON diff path")?;
        let path = std::str::from_utf8(path).map_err(|_| "a JSON diff path that is not UTF-8".to_owned())?.to_owned();
        bytes = rest;
        let value = if op == JsonDiffOp::Remove {
            None
        } else {
            let (doc, rest) = lenenc_bytes(bytes, "JSON diff value")?;
            bytes = rest;
            Some(to_text_exact(doc).map_err(|e| format!("the value of the JSON diff at {path}: {e}"))?)
        };
        diffs.push(JsonDiff { op, path, value });
    }
    Ok(diffs)
}

/// A length-encoded length (MySQL `net_field_length`), then that many bytes.
fn lenenc_bytes<'a>(bytes: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let truncated = || format!("truncated {what}");
    let (&first, rest) = bytes.split_first().ok_or_else(truncated)?;
    let (len, rest) = match first {
        0..=0xfa => (u64::from(first), rest),
        0xfc..=0xfe => {
            let n = match first {
                0xfc => 2,
                0xfd => 3,
                _ => 8,
            };
            let b = rest.get(..n).ok_or_else(truncated)?;
            (b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)), &rest[n..])
        }
        other => return Err(format!("{what}: 0x{other:02x} is not a length-encoded integer")),
    };
    let len = usize::try_from(len).map_err(|_| truncated())?;
    if len > rest.len() {
        return Err(format!("{what} of {len} bytes with {} left", rest.len()));
    }
    Ok(rest.split_at(len))
}

/// Applies `diffs`, in order, to the document `doc` (JSON text as turnout prints MySQL's binary JSON)
/// and returns the new document's text.
pub(crate) fn apply(doc: &str, diffs: &[JsonDiff]) -> Result<String, String> {
    let mut root = Parser::parse(doc).map_err(|e| format!("the old document: {e}"))?;
    for diff in diffs {
        apply_one(&mut root, diff).map_err(|e| format!("{} {}: {e}", op_name(diff.op), diff.path))?;
    }
    let mut out = String::with_capacity(doc.len() + 64);
    root.render(&mut out);
    Ok(out)
}

fn op_name(op: JsonDiffOp) -> &'static str {
    match op {
        JsonDiffOp::Replace => "REPLACE",
        JsonDiffOp::Insert => "INSERT",
        JsonDiffOp::Remove => "REMOVE",
    }
}

fn apply_one(root: &mut Node, diff: &JsonDiff) -> Result<(), String> {
    let legs = parse_path(&diff.path)?;
    let Some((last, parents)) = legs.split_last() else {
        return Err("a diff of the whole document (MySQL logs those as full values)".into());
    };
    let value = || -> Result<Node, String> {
        let node = Parser::parse(diff.value.as_deref().unwrap_or("")).map_err(|e| format!("the new value: {e}"))?;
        // The document stays within the depth the parser allows, so rendering and dropping it
        // cannot recurse without bound (MySQL refuses documents deeper than 100 anyway).
        if legs.len() + node.depth() > MAX_DEPTH {
            return Err(format!("the new document would nest deeper than {MAX_DEPTH}"));
        }
        Ok(node)
    };
    let parent = seek(root, parents).ok_or("the path's parent is not in the old document")?;
    match (diff.op, parent, last) {
        (JsonDiffOp::Replace, Node::Object(members), Leg::Member(name)) => {
            let slot = members.iter_mut().find(|(k, _)| k == name).ok_or("no such member in the old document")?;
            slot.1 = value()?;
        }
        (JsonDiffOp::Replace, Node::Array(items), Leg::Cell(cell)) => {
            let (at, within) = cell.position(items.len());
            if !within {
                return Err(format!("array cell out of bounds (the array has {} elements)", items.len()));
            }
            items[at] = value()?;
        }
        (JsonDiffOp::Insert, Node::Object(members), Leg::Member(name)) => {
            if members.iter().any(|(k, _)| k == name) {
                return Err("the member already exists".into());
            }
            let at = members.iter().position(|(k, _)| key_order(k, name) == Ordering::Greater).unwrap_or(members.len());
            members.insert(at, (name.clone(), value()?));
        }
        (JsonDiffOp::Insert, Node::Array(items), Leg::Cell(cell)) => {
            let (at, _) = cell.position(items.len());
            items.insert(at.min(items.len()), value()?);
        }
        (JsonDiffOp::Remove, Node::Object(members), Leg::Member(name)) => {
            let at = members.iter().position(|(k, _)| k == name).ok_or("no such member in the old document")?;
            members.remove(at);
        }
        (JsonDiffOp::Remove, Node::Array(items), Leg::Cell(cell)) => {
            let (at, within) = cell.position(items.len());
            if !within {
                return Err(format!("array cell out of bounds (the array has {} elements)", items.len()));
            }
            items.remove(at);
        }
        _ => return Err("the path's last step does not match the kind of value it reaches".into()),
    }
    Ok(())
}

/// MySQL's order of object members: the shorter key (in bytes) first, equal lengths by their bytes.
fn key_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// The value `legs` lead to from `node`, seeked exactly (no auto-wrapping).
fn seek<'a>(node: &'a mut Node, legs: &[Leg]) -> Option<&'a mut Node> {
    let Some((leg, rest)) = legs.split_first() else { return Some(node) };
    let next = match (node, leg) {
        (Node::Object(members), Leg::Member(name)) => members.iter_mut().find(|(k, _)| k == name).map(|(_, v)| v)?,
        (Node::Array(items), Leg::Cell(cell)) => {
            let (at, within) = cell.position(items.len());
            if !within {
                return None;
            }
            items.get_mut(at)?
        }
        _ => return None,
    };
    seek(next, rest)
}

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Leg {
    Member(String),
    Cell(Cell),
}

/// An array cell: `[n]` counts from the start, `[last-n]` from the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cell {
    index: u64,
    from_end: bool,
}

impl Cell {
    /// The position in an array of `len` elements and whether it is within bounds (MySQL's
    /// `Json_array_index`): from the start, past the end clamps to `len`; from the end, past the start
    /// clamps to 0.
    fn position(self, len: usize) -> (usize, bool) {
        let index = usize::try_from(self.index).unwrap_or(usize::MAX);
        let within = index < len;
        let at = if self.from_end {
            if within {
                len - index - 1
            } else {
                0
            }
        } else {
            index.min(len)
        };
        (at, within)
    }
}

/// A path as MySQL prints it (`Json_path::to_string`): `$`, then `.name` or `."quoted name"` and
/// `[n]`, `[last]`, `[last-n]`, with no space anywhere. Wildcards, ellipses and ranges are refused:
/// diffs never hold them. Nothing is trimmed: MySQL prints some member names with Unicode spaces
/// (U+00A0, U+0085) unquoted, and they are part of the name.
fn parse_path(path: &str) -> Result<Vec<Leg>, String> {
    let mut rest = path.strip_prefix('$').ok_or("a path that does not start with $")?;
    let mut legs = Vec::new();
    while let Some(c) = rest.chars().next() {
        match c {
            '.' => {
                let after = &rest[1..];
                if after.starts_with('"') {
                    let end = string_end(after).ok_or("an unterminated quoted member name")?;
                    legs.push(Leg::Member(unescape(&after[..end])?));
                    rest = &after[end..];
                } else {
                    let end = after.find(['.', '[']).unwrap_or(after.len());
                    let name = &after[..end];
                    if name.is_empty() || name.contains(['*', ' ', '"']) {
                        return Err(format!("a member step MySQL does not log in a diff: `{path}`"));
                    }
                    legs.push(Leg::Member(name.to_owned()));
                    rest = &after[end..];
                }
            }
            '[' => {
                let end = rest.find(']').ok_or("an unterminated array cell")?;
                legs.push(Leg::Cell(parse_cell(&rest[1..end]).ok_or_else(|| format!("an array step MySQL does not log in a diff: `{path}`"))?));
                rest = &rest[end + 1..];
            }
            _ => return Err(format!("cannot read the path `{path}`")),
        }
    }
    Ok(legs)
}

fn parse_cell(s: &str) -> Option<Cell> {
    if let Some(tail) = s.strip_prefix("last") {
        if tail.is_empty() {
            return Some(Cell { index: 0, from_end: true });
        }
        let n = tail.strip_prefix('-')?;
        return digits(n).map(|index| Cell { index, from_end: true });
    }
    digits(s).map(|index| Cell { index, from_end: false })
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A parsed document: scalars keep their text exactly as printed, so an unchanged part renders as it
/// was; member names are kept unescaped, for paths to match and for ordering.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Scalar(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    /// How deeply containers nest in this value (a scalar: 0). Values come from [`Parser`], whose
    /// own depth limit bounds this recursion.
    fn depth(&self) -> usize {
        match self {
            Node::Scalar(_) => 0,
            Node::Array(items) => 1 + items.iter().map(Node::depth).max().unwrap_or(0),
            Node::Object(members) => 1 + members.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
        }
    }

    /// The text in MySQL's print format: `{"a": 1, "b": [true, null]}`.
    fn render(&self, out: &mut String) {
        match self {
            Node::Scalar(text) => out.push_str(text),
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Node::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    escape_into(out, key);
                    out.push_str(": ");
                    value.render(out);
                }
                out.push('}');
            }
        }
    }
}

/// Nesting deeper than this is refused, as MySQL refuses it.
use super::json::MAX_DEPTH;

/// A JSON text reader for the text turnout prints (and any valid JSON text).
struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn parse(s: &'a str) -> Result<Node, String> {
        let mut p = Parser { s, at: 0 };
        let node = p.value(0)?;
        p.skip_ws();
        if p.at != s.len() {
            return Err(format!("text after the document at byte {}", p.at));
        }
        Ok(node)
    }

    fn skip_ws(&mut self) {
        while self.s.as_bytes().get(self.at).is_some_and(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.as_bytes().get(self.at).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", char::from(b), self.at))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH}"));
        }
        match self.peek().ok_or("truncated document")? {
            b'{' => {
                self.at += 1;
                let mut members = Vec::new();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Ok(Node::Object(members));
                }
                loop {
                    self.peek();
                    let raw = self.string()?;
                    let key = unescape(raw)?;
                    self.expect(b':')?;
                    members.push((key, self.value(depth + 1)?));
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Node::Object(members));
                        }
                        _ => return Err(format!("expected `,` or `}}` at byte {}", self.at)),
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Ok(Node::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Node::Array(items));
                        }
                        _ => return Err(format!("expected `,` or `]` at byte {}", self.at)),
                    }
                }
            }
            b'"' => Ok(Node::Scalar(self.string()?.to_owned())),
            _ => {
                let start = self.at;
                while self.s.as_bytes().get(self.at).is_some_and(|b| !matches!(b, b',' | b']' | b'}' | b' ' | b'\n' | b'\t' | b'\r')) {
                    self.at += 1;
                }
                let token = &self.s[start..self.at];
                let number = token.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
                if token.is_empty() || !(number || matches!(token, "true" | "false" | "null")) {
                    return Err(format!("`{token}` at byte {start} is not a JSON value"));
                }
                Ok(Node::Scalar(token.to_owned()))
            }
        }
    }

    /// A quoted string at the current position, quotes and escapes included, as written.
    fn string(&mut self) -> Result<&'a str, String> {
        let rest = &self.s[self.at..];
        if !rest.starts_with('"') {
            return Err(format!("expected a string at byte {}", self.at));
        }
        let end = string_end(rest).ok_or("an unterminated string")?;
        self.at += end;
        Ok(&rest[..end])
    }
}

/// The length of the quoted string `s` starts with, quotes included.
fn string_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The text of a quoted JSON string (`"a\"b"` → `a"b`).
fn unescape(quoted: &str) -> Result<String, String> {
    let inner = quoted.strip_prefix('"').and_then(|s| s.strip_suffix('"')).ok_or("a string without its quotes")?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().ok_or("a string ending in a backslash")? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let first = hex_unit(&mut chars)?;
                let code = if (0xd800..0xdc00).contains(&first) {
                    if chars.next() != Some('\\') || chars.next() != Some('u') {
                        return Err("an unpaired surrogate escape".into());
                    }
                    let second = hex_unit(&mut chars)?;
                    0x10000 + ((first - 0xd800) << 10) + (second.wrapping_sub(0xdc00) & 0x3ff)
                } else {
                    first
                };
                out.push(char::from_u32(code).ok_or_else(|| format!("a bad \\u escape {code:#x}"))?);
            }
            other => return Err(format!("an unknown escape `\\{other}`")),
        }
    }
    Ok(out)
}

/// The four hex digits of a `\u` escape.
fn hex_unit(chars: &mut std::str::Chars<'_>) -> Result<u32, String> {
    let hex: String = chars.by_ref().take(4).collect();
    if hex.len() != 4 {
        return Err(format!("a short \\u escape `{hex}`"));
    }
    u32::from_str_radix(&hex, 16).map_err(|_| format!("a bad \\u escape `{hex}`"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::json::tests::J;
    use super::*;

    /// A diff vector body (without its 4-byte length).
    pub(crate) fn vector(diffs: &[(u8, &str, Option<J>)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (op, path, value) in diffs {
            b.push(*op);
            b.push(u8::try_from(path.len()).unwrap_or(0));
            b.extend_from_slice(path.as_bytes());
            if let Some(v) = value {
                let doc = v.encode();
                match u8::try_from(doc.len()) {
                    Ok(n) if n < 251 => b.push(n),
                    _ => {
                        b.push(0xfc);
                        b.extend_from_slice(&u16::try_from(doc.len()).unwrap_or(u16::MAX).to_le_bytes());
                    }
                }
                b.extend_from_slice(&doc);
            }
        }
        b
    }

    fn applied(doc: &str, diffs: &[(u8, &str, Option<J>)]) -> Result<String, String> {
        apply(doc, &parse_diffs(&vector(diffs))?)
    }

    #[test]
    fn replace_insert_and_remove_follow_mysql_and_keep_its_member_order() {
        let doc = r#"{"a": 1, "c": {"d": "x"}, "bb": [1, 2, 3]}"#;
        let out = applied(
            doc,
            &[
                (0, "$.a", Some(J::I16(2))),
                (0, "$.bb[1]", Some(J::Str("two".into()))),
                (1, "$.new", Some(J::Double(3.5))),
                (1, "$.bb[5]", Some(J::I16(9))),
                (2, "$.c.d", None),
                (1, "$.e", Some(J::Null)),
            ],
        );
        // MySQL's own result of the same JSON_SET / JSON_REMOVE (a real 9.7): members shorter first.
        assert_eq!(out.as_deref(), Ok(r#"{"a": 2, "c": {}, "e": null, "bb": [1, "two", 3, 9], "new": 3.5}"#));
    }

    #[test]
    fn last_cells_quoted_members_and_escapes_resolve() {
        let doc = r#"{"a b": [1, 2, 3], "q\"k": {"é": true}}"#;
        let out = applied(doc, &[(0, "$.\"a b\"[last]", Some(J::I16(30))), (2, "$.\"a b\"[last-2]", None), (0, "$.\"q\\\"k\".é", Some(J::Bool(false)))]);
        assert_eq!(out.as_deref(), Ok(r#"{"a b": [2, 30], "q\"k": {"é": false}}"#));
        let out = applied("[1]", &[(1, "$[0]", Some(J::Array(vec![J::Str("a\nb".into())], false)))]);
        assert_eq!(out.as_deref(), Ok(r#"[["a\nb"], 1]"#));
    }

    #[test]
    fn a_diff_that_does_not_fit_the_old_document_is_an_error_never_a_guess() {
        let doc = r#"{"a": 1, "b": [1]}"#;
        for (diff, why) in [
            ((0, "$", Some(J::I16(1))), "whole document"),
            ((0, "$.x", Some(J::I16(1))), "no such member"),
            ((1, "$.a", Some(J::I16(1))), "already exists"),
            ((2, "$.b[1]", None), "out of bounds"),
            ((0, "$.a[0]", Some(J::I16(1))), "does not match"),
            ((0, "$.b[*]", Some(J::I16(1))), "does not log"),
            ((2, "$.x.y", None), "parent"),
        ] {
            let path = diff.1;
            let e = applied(doc, &[diff]).expect_err(path);
            assert!(e.contains(why) && e.contains(path), "{path}: {e}");
        }
        assert!(parse_diffs(&[3, 1, b'$']).is_err_and(|e| e.contains("operation 3")));
        assert!(parse_diffs(&[0, 9, b'$']).is_err_and(|e| e.contains("truncated") || e.contains("bytes with")));
        assert!(parse_diffs(&[0, 1, b'$']).is_err());
    }

    #[test]
    fn unicode_spaces_in_an_unquoted_member_name_are_part_of_the_name() {
        // MySQL prints a name holding U+00A0 unquoted; trimming it would pick another member.
        let doc = "{\"k\": 0, \"\u{a0}k\": 1, \"tag\": 2, \"tag\u{a0}\": 3}";
        let out = applied(doc, &[(0, "$.\u{a0}k", Some(J::I16(9))), (2, "$.tag\u{a0}", None)]);
        assert_eq!(out.as_deref(), Ok("{\"k\": 0, \"\u{a0}k\": 9, \"tag\": 2}"));
        for spaced in ["$. k", "$ .k", "$.k ", "$[ 0]", "$[last - 1]"] {
            assert!(applied("{\"k\": [1]}", &[(2, spaced, None)]).is_err(), "{spaced}");
        }
    }

    #[test]
    fn a_diff_cannot_nest_the_document_beyond_the_depth_limit() {
        let deep = (0..MAX_DEPTH - 1).fold(J::Null, |inner, _| J::Array(vec![inner], false));
        assert!(applied("[]", &[(1, "$[0]", Some(deep.clone()))]).is_ok());
        let e = applied("[[]]", &[(1, "$[0][0]", Some(deep))]).expect_err("too deep");
        assert!(e.contains("deeper"), "{e}");
    }

    #[test]
    fn the_printed_text_of_any_document_parses_and_renders_unchanged() {
        for text in [
            r#"{"a": {"b": [1, -2, 3.5, "é", null, true, false]}, "k": 18446744073709551615}"#,
            r#"[]"#,
            r#"{}"#,
            r#""a\"\\\u0001""#,
            r#"[[[{"x": [1e300, -0.0]}]]]"#,
        ] {
            let mut out = String::new();
            Parser::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).render(&mut out);
            assert_eq!(out, text);
        }
        assert!(Parser::parse("{\"a\": 1} x").is_err());
        assert!(Parser::parse("[nope]").is_err());
        assert!(Parser::parse(&"[".repeat(200)).is_err());
    }
}
