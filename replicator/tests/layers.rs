//! The replicator's layers, checked against its source (docs/src/explanation/architecture.md): its
//! top-level modules import each other without a cycle, and a source family (`source/`) reaches
//! nothing above it — neither the pipeline nor any command (check, verify, cutover, rollback, run,
//! the HTTP API, the CLI, the demo). A module "imports" another where its code (not its comments or
//! unit tests) names `crate::<module>`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())).join("src")
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            rust_files(&entry.expect("entry").path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The modules `text` names as `crate::<module>`, outside comments and its unit-test module.
fn imports(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        for (at, _) in line.match_indices("crate::") {
            let name: String = line[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
            if modules.contains(&name) {
                out.insert(name);
            }
        }
    }
    out
}

/// Top-level module → the top-level modules its files import.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src()).expect("src") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else { continue };
        if name == "lib" || name == "main" {
            continue;
        }
        rust_files(&path, files.entry(name).or_default());
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(module, paths)| {
            let mut deps = BTreeSet::new();
            for p in paths {
                deps.extend(imports(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())), &modules));
            }
            deps.remove(module);
            (module.clone(), deps)
        })
        .collect()
}

/// A cycle through `graph`, if there is one, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_top_level_modules_import_each_other_without_a_cycle() {
    let graph = graph();
    assert!(graph.len() > 15 && graph.contains_key("source") && graph.contains_key("cutover"), "{graph:?}");
    if let Some(found) = cycle(&graph) {
        panic!("an import cycle: {} (graph: {graph:#?})", found.join(" → "));
    }
    // The check itself sees cycles.
    let mut looped = graph.clone();
    looped.entry("names".into()).or_default().insert("run".into());
    assert!(cycle(&looped).is_some_and(|c| c.contains(&"names".to_owned())));
}

#[test]
fn a_source_family_reaches_nothing_above_it() {
    let graph = graph();
    let above = ["pipeline", "check", "verify", "cutover", "rollback", "run", "http", "control", "cli", "demo"];
    let reached: Vec<&String> = graph["source"].iter().filter(|m| above.contains(&m.as_str())).collect();
    assert!(reached.is_empty(), "source/ imports {reached:?}");
    assert!(graph["pipeline"].contains("source"), "the pipeline consumes sources: {:?}", graph["pipeline"]);
}

/// The `[dependencies]` of the workspace crate in `dir`, by name.
fn dependencies(dir: &str) -> BTreeSet<String> {
    let path =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())).join("..").join(dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("a manifest");
    let manifest: toml::Table = text.parse().expect("TOML");
    manifest.get("dependencies").and_then(|d| d.as_table()).map(|d| d.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn the_decoders_do_no_io_and_the_binlog_is_parsed_by_them_alone() {
    let io = ["tokio", "tokio-rustls", "rustls", "postgres-protocol", "mysql_async", "tokio-postgres", "turnout-connect"];
    let decoders = dependencies("decoders");
    let reached: Vec<&&str> = io.iter().filter(|c| decoders.contains(**c)).collect();
    assert!(reached.is_empty(), "decoders depends on {reached:?}");
    assert!(dependencies("connect").contains("turnout-decoders"), "the connections build on the decoders' framing");
    // mysql_async's binlog feature would compile in a second binlog parser.
    let root = std::fs::read_to_string(
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())).join("../Cargo.toml"),
    )
    .expect("workspace manifest");
    let workspace: toml::Table = root.parse().expect("TOML");
    let features = workspace["workspace"]["dependencies"]["mysql_async"].get("features").and_then(|f| f.as_array()).cloned().unwrap_or_default();
    assert!(!features.iter().any(|f| f.as_str() == Some("binlog")), "mysql_async features {features:?}");
}
