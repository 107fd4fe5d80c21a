//! The documentation is checked against itself and the code: every relative link in the README and the book
//! resolves (file and heading), the book's table of contents lists every page, every command-line flag of every
//! command is in the CLI reference and none is documented that does not exist, and every configuration key is in
//! the configuration reference and none is documented that the parser does not accept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())).parent().expect("workspace").to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every markdown page of the book, relative to `docs/src`.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("docs/src"), &mut out);
    out.sort();
    out
}

/// The text outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            code = !code;
            continue;
        }
        if !code {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// GitHub's and mdBook's anchor for a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces as `-`.
fn slug(heading: &str) -> String {
    heading.trim().to_lowercase().chars().filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' ')).map(|c| if c == ' ' { '-' } else { c }).collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text).lines().filter_map(|l| l.strip_prefix('#')).map(|l| slug(l.trim_start_matches('#'))).collect()
}

/// `(target, line)` of every inline link `[text](target)`.
fn links(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in prose(text).lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((after[..end].to_owned(), n + 1));
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_readme_and_the_book_resolves_to_a_file_and_heading() {
    let mut files = pages();
    files.push(root().join("README.md"));
    let mut broken = Vec::new();
    for file in &files {
        let text = read(file);
        for (target, line) in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
            let resolved = if path.is_empty() { file.clone() } else { file.parent().expect("dir").join(path) };
            if !resolved.exists() {
                broken.push(format!("{}:{line}: {target} (no such file)", file.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                if resolved.extension().is_some_and(|e| e == "md") && !anchors(&read(&resolved)).contains(anchor) {
                    broken.push(format!("{}:{line}: {target} (no such heading)", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_links_every_guide_page() {
    let readme = read(&root().join("README.md"));
    let guide = root().join("docs/src/guide");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&guide).expect("guide") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && !readme.contains(&format!("docs/src/guide/{name}")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "the README's documentation list lacks guide pages: {missing:?}");
}

#[test]
fn the_table_of_contents_lists_every_page_of_the_book() {
    let src = root().join("docs/src");
    let summary = read(&src.join("SUMMARY.md"));
    let listed: BTreeSet<PathBuf> = links(&summary).into_iter().map(|(t, _)| src.join(t)).collect();
    let missing: Vec<String> = pages().into_iter().filter(|p| !p.ends_with("SUMMARY.md") && !listed.contains(p)).map(|p| p.display().to_string()).collect();
    assert!(missing.is_empty(), "pages not in SUMMARY.md: {missing:?}");
}

/// The long flags of `turnout <args> --help`.
fn flags(args: &[&str]) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(args).arg("--help").output().expect("turnout --help");
    assert!(out.status.success(), "{args:?}: {out:?}");
    long_flags(&String::from_utf8_lossy(&out.stdout))
}

fn long_flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at + 2;
        let end = text[start..].find(|c: char| !(c.is_ascii_lowercase() || c == '-')).map_or(text.len(), |e| start + e);
        let before_ok = start < 3 || !bytes[start - 3].is_ascii_alphanumeric();
        if end > start && before_ok && bytes[start].is_ascii_lowercase() {
            out.insert(format!("--{}", &text[start..end]));
        }
        i = end.max(start);
    }
    out
}

/// The subcommands `turnout <args> --help` lists.
fn subcommands(args: &[&str]) -> Vec<String> {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_turnout")).args(args).arg("--help").output().expect("turnout --help");
    String::from_utf8_lossy(&help.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_command_line_flag_is_documented_and_every_documented_flag_exists() {
    let commands = subcommands(&[]);
    assert!(commands.len() >= 8, "{commands:?}");
    let mut real = flags(&[]);
    for c in &commands {
        real.extend(flags(&[c.as_str()]));
        // `turnout fleet cutover …`: the flags of a command's own subcommands too.
        for sub in subcommands(&[c.as_str()]) {
            real.extend(flags(&[c.as_str(), sub.as_str()]));
        }
    }
    assert!(real.contains("--waves"), "a subcommand's flags are read: {real:?}");
    assert!(real.contains("--config") && real.contains("--when-lag") && real.contains("--chunk-rows"), "{real:?}");
    real.remove("--help");
    real.remove("--version");
    let reference = read(&root().join("docs/src/reference/cli.md"));
    let documented = long_flags(&reference);
    let undocumented: Vec<&String> = real.difference(&documented).collect();
    let invented: Vec<&String> = documented.difference(&real).collect();
    assert!(undocumented.is_empty(), "flags missing from docs/src/reference/cli.md: {undocumented:?}");
    assert!(invented.is_empty(), "flags in docs/src/reference/cli.md that no command has: {invented:?}");
    for c in &commands {
        assert!(reference.contains(&format!("turnout {c}")), "command {c} is not in docs/src/reference/cli.md");
    }
}

/// The smallest configuration the parser accepts.
const BASE: &str = "[source]\nurl = \"postgres://u@h/db\"\n[target]\nurl = \"postgres://u@h/db\"\n[state]\ndir = \"/tmp/x\"\n";

/// The fields serde names when `section` gets a key it does not know (`deny_unknown_fields`).
fn fields_of(section: &str) -> Option<Vec<String>> {
    let probe = "zz_probe = 1\n";
    let header = format!("[{section}]\n");
    let text = if section.is_empty() {
        format!("{probe}{BASE}")
    } else if BASE.contains(&header) {
        BASE.replace(&header, &format!("{header}{probe}"))
    } else {
        format!("{BASE}{header}{probe}")
    };
    let mut err = turnout::config::Config::parse(&text, |_| None).err()?.to_string();
    if err.contains("expected a sequence") {
        // An array of tables (`[[handover]]`): probe one entry.
        err = turnout::config::Config::parse(&format!("{BASE}[[{section}]]\n{probe}"), |_| None).err()?.to_string();
    }
    if !err.contains("unknown field `zz_probe`") {
        return None;
    }
    let list = err.split("expected one of ").nth(1).or_else(|| err.split("expected ").nth(1))?;
    // "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, `c`".
    let fields: Vec<String> = list.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    (!fields.is_empty()).then_some(fields)
}

/// Every configuration key the parser accepts, as `section.key` paths.
fn accepted_keys(section: &str, out: &mut BTreeSet<String>) {
    let Some(fields) = fields_of(section) else { return };
    for f in fields {
        let path = if section.is_empty() { f.clone() } else { format!("{section}.{f}") };
        if fields_of(&path).is_some() {
            accepted_keys(&path, out);
        } else {
            out.insert(path);
        }
    }
}

/// The keys the configuration reference's table documents: backticked `a.b` in the first column, with
/// `a.{x, y}` expanded.
fn documented_keys(reference: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in reference.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split(" | ").next().unwrap_or("").trim_start_matches("| ");
        for item in first.split('`').skip(1).step_by(2) {
            match item.split_once(".{") {
                Some((prefix, rest)) => {
                    for k in rest.trim_end_matches('}').split(',') {
                        out.insert(format!("{prefix}.{}", k.trim()));
                    }
                }
                None => {
                    out.insert(item.to_owned());
                }
            }
        }
    }
    out
}

#[test]
fn every_configuration_key_is_documented_and_every_documented_key_is_accepted() {
    let mut accepted = BTreeSet::new();
    accepted_keys("", &mut accepted);
    assert!(accepted.contains("source.url") && accepted.contains("cutover.pgbouncer.admin_url"), "{accepted:?}");
    let documented = documented_keys(&read(&root().join("docs/src/reference/configuration.md")));
    let undocumented: Vec<&String> = accepted.difference(&documented).collect();
    let invented: Vec<&String> = documented.difference(&accepted).collect();
    assert!(undocumented.is_empty(), "keys missing from docs/src/reference/configuration.md: {undocumented:?}");
    assert!(invented.is_empty(), "keys in docs/src/reference/configuration.md the parser refuses: {invented:?}");
}
