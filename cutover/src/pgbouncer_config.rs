//! Rewriting one entry of the `[databases]` section of `pgbouncer.ini` so that it points at another
//! server, and writing the file back atomically.
//!
//! The entry's connect string (`app = host=10.0.0.5 port=5432 dbname=app pool_size=20`) is parsed the
//! way pgbouncer parses it: `key=value` pairs separated by spaces, values optionally in single quotes
//! with `''` for a quote. Only `host`, `port` and `dbname` change (they are added when missing); every
//! other pair keeps its exact text, and every other line of the file — comments, other entries, other
//! sections — is left byte for byte as it was.

use crate::error::CutoverError;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use turnout_connect::pg::ConnectOptions;

/// Where a `[databases]` entry sends its clients: `host=… port=… dbname=…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// A host name, an IP address, or a unix socket directory.
    pub host: String,
    pub port: u16,
    /// The database on that server.
    pub dbname: String,
}

impl Endpoint {
    /// Host, port and database of a `postgres://` URL (user and password are not used). `field`
    /// names the setting in errors, e.g. `target.url`.
    pub fn from_url(url: &str, field: &'static str) -> Result<Self, CutoverError> {
        let opts = ConnectOptions::from_url(url, field).map_err(|e| CutoverError::Config { field, reason: e.to_string() })?;
        Ok(Endpoint { host: opts.host, port: opts.port, dbname: opts.database })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host={} port={} dbname={}", quote_value(&self.host), self.port, quote_value(&self.dbname))
    }
}

/// What [`point_database`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRewrite {
    /// host, port and dbname of the entry before (as written, `-` where the entry left one out).
    pub previous: String,
    /// Whether the file changed (false: it already pointed there).
    pub changed: bool,
}

/// Points the `[databases]` entry `database` of the pgbouncer configuration file `path` at `to`.
///
/// Idempotent: when the entry already points at `to`, the file is not touched. Otherwise the new
/// text goes to a temporary file in the same directory with the original's permission bits and
/// owner, is synced, and replaces the original by `rename` — pgbouncer never reads half a file. A
/// symlinked path is resolved and its target replaced. pgbouncer only notices after `RELOAD`.
pub fn point_database(path: &Path, database: &str, to: &Endpoint) -> Result<EntryRewrite, CutoverError> {
    let config_error = |problem: String| CutoverError::PgBouncerConfig { path: path.to_path_buf(), problem };
    let real = std::fs::canonicalize(path).map_err(|e| config_error(format!("cannot resolve the path: {e}; check cutover.pgbouncer.config_file")))?;
    let text = std::fs::read_to_string(&real).map_err(|e| config_error(format!("cannot read it: {e}")))?;
    let (new_text, previous) = rewrite_entry(&text, database, to).map_err(config_error)?;
    if new_text == text {
        return Ok(EntryRewrite { previous, changed: false });
    }
    write_atomically(&real, path, &new_text)?;
    Ok(EntryRewrite { previous, changed: true })
}

/// One `key=value` pair of a connect string.
#[derive(Debug)]
struct Pair<'a> {
    key: &'a str,
    value: String,
    /// The pair exactly as written, kept for pairs that do not change.
    raw: &'a str,
}

/// The new file text with the entry `database` pointing at `to`, and a description of where it
/// pointed before. Errors are sentences about the file's content.
pub(crate) fn rewrite_entry(text: &str, database: &str, to: &Endpoint) -> Result<(String, String), String> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut section = String::new();
    let mut found: Option<String> = None;
    let mut has_fallback = false;
    let mut has_include = false;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_number = index + 1;
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let trimmed = body.trim_start();
        if trimmed.starts_with("%include") {
            has_include = true;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            section = rest.split(']').next().unwrap_or_default().trim().to_ascii_lowercase();
        }
        let entry = if section == "databases" { parse_entry_line(body) } else { None };
        match entry {
            Some((key, value_start)) if key == database => {
                if found.is_some() {
                    return Err(format!(
                        "the [databases] entry {database} appears more than once (again on line {line_number}); keep one and run the cutover again"
                    ));
                }
                let connstring = &body[value_start..];
                let pairs = parse_connstring(connstring)
                    .map_err(|reason| format!("line {line_number}, the [databases] entry {database}: {reason}; fix the entry by hand"))?;
                found = Some(describe_target(&pairs));
                out.push_str(&body[..value_start]);
                out.push_str(&rebuild(&pairs, to));
                out.push_str(ending);
            }
            Some((key, _)) => {
                has_fallback |= key == "*";
                out.push_str(line);
            }
            None => out.push_str(line),
        }
    }
    match found {
        Some(previous) => Ok((out, previous)),
        None => {
            let mut problem = format!("has no [databases] entry named {database}");
            if has_fallback {
                problem.push_str(" (only the fallback entry `*`)");
            }
            if has_include {
                problem.push_str("; it uses %include, but turnout only rewrites entries in this file itself");
            }
            problem.push_str(&format!(
                "; add a line `{database} = host=… port=… dbname=…` under [databases] (and RELOAD pgbouncer), or set cutover.pgbouncer.database to an existing entry"
            ));
            Err(problem)
        }
    }
}

/// For a `key = value` line: the key (unquoted) and the byte offset where the value starts.
/// `None` for blank lines, comments, section headers and anything else.
fn parse_entry_line(body: &str) -> Option<(String, usize)> {
    let start = body.len() - body.trim_start().len();
    let rest = &body[start..];
    if rest.is_empty() || rest.starts_with([';', '#', '[', '%']) {
        return None;
    }
    let (key, after_key) = if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find('"')?;
        (quoted[..end].to_string(), start + 1 + end + 1)
    } else {
        let end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        (rest[..end].to_string(), start + end)
    };
    let after = &body[after_key..];
    let equals = after.len() - after.trim_start().len();
    if !after[equals..].starts_with('=') {
        return None;
    }
    let value = &after[equals + 1..];
    let value_start = after_key + equals + 1 + (value.len() - value.trim_start().len());
    Some((key, value_start))
}

/// Splits a connect string into pairs as pgbouncer does. Errors describe the first problem.
fn parse_connstring(s: &str) -> Result<Vec<Pair<'_>>, String> {
    let mut pairs = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= bytes.len() {
            return Ok(pairs);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[start..i];
        i = skip_ws(i);
        if i >= bytes.len() || bytes[i] != b'=' || key.is_empty() {
            return Err(format!("expected key=value at {:?}", &s[start..]));
        }
        i = skip_ws(i + 1);
        let mut value = String::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(format!("the quoted value of {key} has no closing quote")),
                    Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => {
                        value.push('\'');
                        i += 2;
                    }
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(_) => {
                        // Copy one whole UTF-8 character.
                        let ch = s[i..].chars().next().unwrap_or_default();
                        value.push(ch);
                        i += ch.len_utf8().max(1);
                    }
                }
            }
        } else {
            let value_start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&s[value_start..i]);
        }
        if value.is_empty() {
            return Err(format!("{key} has an empty value"));
        }
        pairs.push(Pair { key, value, raw: &s[start..i] });
    }
}

/// The connect string with host, port and dbname set to `to`, other pairs as written.
fn rebuild(pairs: &[Pair<'_>], to: &Endpoint) -> String {
    let replacement = |key: &str| match key {
        "host" => Some(format!("host={}", quote_value(&to.host))),
        "port" => Some(format!("port={}", to.port)),
        "dbname" => Some(format!("dbname={}", quote_value(&to.dbname))),
        _ => None,
    };
    let mut parts: Vec<String> = Vec::with_capacity(pairs.len() + 3);
    let mut seen = [false; 3];
    for pair in pairs {
        match replacement(pair.key) {
            Some(new) => {
                if let Some(slot) = ["host", "port", "dbname"].iter().position(|k| *k == pair.key) {
                    // A key given twice: pgbouncer takes the last; the first copy is dropped.
                    if seen[slot] {
                        parts.retain(|p| !p.starts_with(&format!("{}=", pair.key)));
                    }
                    seen[slot] = true;
                }
                parts.push(new);
            }
            None => parts.push(pair.raw.to_string()),
        }
    }
    for (slot, key) in ["host", "port", "dbname"].iter().enumerate() {
        if !seen[slot] {
            if let Some(new) = replacement(key) {
                parts.push(new);
            }
        }
    }
    parts.join(" ")
}

/// `host=… port=… dbname=…` of the pairs, `-` for one left out.
fn describe_target(pairs: &[Pair<'_>]) -> String {
    let value = |key: &str| pairs.iter().rev().find(|p| p.key == key).map(|p| quote_value(&p.value)).unwrap_or_else(|| "-".into());
    format!("host={} port={} dbname={}", value("host"), value("port"), value("dbname"))
}

/// A connect-string value: bare when it has no space or quote, else in single quotes.
fn quote_value(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'') {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// Replaces `path` (not a symlink) with `contents` via a synced temporary file and `rename`,
/// keeping the permission bits and the owner. Errors name the file as configured, `named`.
fn write_atomically(path: &Path, named: &Path, contents: &str) -> Result<(), CutoverError> {
    let fail = |problem: String| CutoverError::PgBouncerConfig { path: named.to_path_buf(), problem };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read its metadata: {e}")))?;
    let dir = path.parent().ok_or_else(|| fail("has no parent directory".into()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.turnout-{}", std::process::id()));
    let result = write_temp(&tmp, &meta, contents, fail)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| fail(format!("cannot replace it with {}: {e}", tmp.display()))));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_temp(tmp: &Path, meta: &std::fs::Metadata, contents: &str, fail: impl Fn(String) -> CutoverError) -> Result<(), CutoverError> {
    let dir_hint = |e: std::io::Error| {
        fail(format!("cannot write {}: {e}; turnout needs write access to the file's directory to replace the file atomically", tmp.display()))
    };
    let _ = std::fs::remove_file(tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp).map_err(dir_hint)?;
    file.write_all(contents.as_bytes()).map_err(dir_hint)?;
    let created = file.metadata().map_err(dir_hint)?;
    if created.uid() != meta.uid() || created.gid() != meta.gid() {
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
            fail(format!(
                "cannot give the rewritten file the original owner {}:{} ({e}); run turnout as that user or as root, or make turnout's user the file's owner",
                meta.uid(),
                meta.gid()
            ))
        })?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(meta.permissions().mode() & 0o7777)).map_err(dir_hint)?;
    file.sync_all().map_err(dir_hint)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn green() -> Endpoint {
        Endpoint { host: "10.0.0.9".into(), port: 5433, dbname: "app".into() }
    }

    fn rewrite(text: &str, db: &str) -> String {
        rewrite_entry(text, db, &green()).expect("rewrites").0
    }

    #[test]
    fn only_the_named_entry_changes_and_its_other_options_stay() {
        let text = "; pgbouncer for app\n[databases]\n# blue\napp = host=10.0.0.5 port=5432 dbname=app pool_size=20 user=svc\n\
                    other = host=10.0.0.5 dbname=other\n\n[pgbouncer]\nlisten_port = 6432\napp = not a database\n";
        let (out, previous) = rewrite_entry(text, "app", &green()).expect("rewrites");
        assert_eq!(
            out,
            "; pgbouncer for app\n[databases]\n# blue\napp = host=10.0.0.9 port=5433 dbname=app pool_size=20 user=svc\n\
             other = host=10.0.0.5 dbname=other\n\n[pgbouncer]\nlisten_port = 6432\napp = not a database\n"
        );
        assert_eq!(previous, "host=10.0.0.5 port=5432 dbname=app");
    }

    #[test]
    fn missing_host_port_and_dbname_are_added() {
        assert_eq!(rewrite("[databases]\napp = pool_size=5\n", "app"), "[databases]\napp = pool_size=5 host=10.0.0.9 port=5433 dbname=app\n");
        assert_eq!(rewrite("[databases]\napp =\n", "app"), "[databases]\napp =host=10.0.0.9 port=5433 dbname=app\n");
    }

    #[test]
    fn spacing_quotes_and_line_endings_are_understood() {
        // No spaces around '=', tabs, CRLF, a quoted value with a space and a doubled quote.
        let text = "[databases]\r\n\tapp=host=old\tport = 5432 application_name='a b''c' dbname=app\r\nx = host=y\r\n";
        assert_eq!(rewrite(text, "app"), "[databases]\r\n\tapp=host=10.0.0.9 port=5433 application_name='a b''c' dbname=app\r\nx = host=y\r\n");
        let (_, previous) = rewrite_entry(text, "app", &green()).expect("rewrites");
        assert_eq!(previous, "host=old port=5432 dbname=app");
    }

    #[test]
    fn quoted_entry_names_and_values_needing_quotes() {
        let to = Endpoint { host: "/run/post gres".into(), port: 5432, dbname: "it's".into() };
        let (out, _) = rewrite_entry("[Databases]\n\"my app\" = host=a\n", "my app", &to).expect("rewrites");
        assert_eq!(out, "[Databases]\n\"my app\" = host='/run/post gres' port=5432 dbname='it''s'\n");
    }

    #[test]
    fn a_commented_out_entry_or_one_in_another_section_is_not_the_entry() {
        let err = rewrite_entry("[databases]\n;app = host=a\n[users]\napp = pool_mode=session\n", "app", &green()).expect_err("none");
        assert!(err.contains("no [databases] entry named app"), "{err}");
    }

    #[test]
    fn no_entry_mentions_the_fallback_and_include() {
        let err = rewrite_entry("[databases]\n* = host=a\n%include /etc/pgbouncer/dbs.ini\n", "app", &green()).expect_err("none");
        assert!(err.contains("fallback entry `*`") && err.contains("%include") && err.contains("app = host="), "{err}");
    }

    #[test]
    fn duplicate_entries_and_broken_connect_strings_are_refused() {
        let err = rewrite_entry("[databases]\napp = host=a\napp = host=b\n", "app", &green()).expect_err("dup");
        assert!(err.contains("more than once") && err.contains("line 3"), "{err}");
        let err = rewrite_entry("[databases]\napp = host='a\n", "app", &green()).expect_err("quote");
        assert!(err.contains("line 2") && err.contains("closing quote"), "{err}");
        let err = rewrite_entry("[databases]\napp = host\n", "app", &green()).expect_err("no value");
        assert!(err.contains("key=value"), "{err}");
    }

    #[test]
    fn a_key_given_twice_keeps_one_copy() {
        assert_eq!(rewrite("[databases]\napp = host=a host=b user=u\n", "app"), "[databases]\napp = host=10.0.0.9 user=u port=5433 dbname=app\n");
    }

    #[test]
    fn rewriting_twice_changes_nothing_the_second_time() {
        let once = rewrite("[databases]\napp = host=a port=1 dbname=b\n", "app");
        assert_eq!(rewrite(&once, "app"), once);
    }

    #[test]
    fn the_file_is_replaced_with_its_permissions_kept_and_symlinks_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("pgbouncer.ini");
        std::fs::write(&real, "[databases]\napp = host=a port=1 dbname=app\n").expect("write");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let link = dir.path().join("current.ini");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");

        let done = point_database(&link, "app", &green()).expect("rewrites");
        assert!(done.changed);
        assert_eq!(done.previous, "host=a port=1 dbname=app");
        assert_eq!(std::fs::read_to_string(&real).expect("read"), "[databases]\napp = host=10.0.0.9 port=5433 dbname=app\n");
        assert_eq!(std::fs::metadata(&real).expect("meta").permissions().mode() & 0o7777, 0o640);
        assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink(), "the symlink was replaced");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").filter_map(Result::ok).map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 2, "temporary file left behind: {leftovers:?}");

        let again = point_database(&link, "app", &green()).expect("idempotent");
        assert!(!again.changed);
    }

    #[test]
    fn a_missing_file_names_the_setting() {
        let err = point_database(Path::new("/nonexistent/pgbouncer.ini"), "app", &green()).expect_err("missing");
        let text = err.to_string();
        assert!(text.contains("/nonexistent/pgbouncer.ini") && text.contains("cutover.pgbouncer.config_file"), "{text}");
    }
}
