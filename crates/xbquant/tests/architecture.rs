//! The crate's layout, checked: its modules depend one way (no circle of `use crate::...`
//! between them, the schemes' submodules counted one by one), and no source file of the
//! workspace outgrows one job (about 600 lines, tests and generated data aside).
//!
//! `element.rs` is left out of the graph on purpose: it is the one place where every kind of
//! job meets the kernels compiled for each element type (the sealed entry points), so it names
//! the job types of every layer, and every layer names `Element`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "py") {
            out.push(path);
        }
    }
}

/// The module a source file of `src/` defines: `format`, `kernel` (its files are one module
/// here), `scheme::compose`, ...
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    match parts.first().map(String::as_str) {
        Some("scheme") if parts.len() > 1 => format!("scheme::{}", parts[1]),
        Some(first) => first.to_string(),
        None => String::new(),
    }
}

/// The paths after each `crate::` of `text`, split at `::` and expanded over braces:
/// `crate::a::{B, c::D}` gives `[a, B]` and `[a, c, D]`.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        expand(&text[at + "crate::".len()..], Vec::new(), &mut out);
    }
    out
}

fn expand(rest: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&inner[start..i], prefix.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], prefix.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if name.is_empty() {
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
    let mut path = prefix;
    path.push(name.clone());
    match rest[name.len()..].strip_prefix("::") {
        Some(next) => expand(next, path, out),
        None => out.push(path),
    }
}

/// The names a module re-exports with `pub use`, and the module (of `modules`) each comes from.
fn reexports(text: &str, base: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("pub use ")) {
        let path = line.trim_start_matches("pub use ").trim_end_matches(';');
        let mut expanded = Vec::new();
        expand(path, Vec::new(), &mut expanded);
        for p in expanded {
            let Some(name) = p.last() else { continue };
            let module = match base {
                "scheme" => format!("scheme::{}", p[0]),
                _ if p[0] == "scheme" && p.len() > 2 => format!("scheme::{}", p[1]),
                _ => p[0].clone(),
            };
            if modules.contains(&module) {
                names.insert(name.clone(), module);
            }
        }
    }
    names
}

#[test]
fn modules_depend_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let read = |p: &str| std::fs::read_to_string(src.join(p)).unwrap();
    let top = reexports(&read("lib.rs"), "lib", &modules);
    let scheme = reexports(&read("scheme/mod.rs"), "scheme", &modules);
    let resolve = |path: &[String]| -> Option<String> {
        let first = path.first()?;
        if first == "scheme" {
            let second = path.get(1)?;
            let sub = format!("scheme::{second}");
            return Some(if modules.contains(&sub) {
                sub
            } else {
                scheme
                    .get(second)
                    .cloned()
                    .unwrap_or_else(|| "scheme".into())
            });
        }
        if modules.contains(first) {
            return Some(first.clone());
        }
        top.get(first).cloned()
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        if from == "lib" || from == "element" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        // Doc comments and examples name the crate's items freely; code is what depends.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for path in crate_paths(&code) {
            if let Some(to) = resolve(&path) {
                let parent =
                    to.starts_with(&format!("{from}::")) || from.starts_with(&format!("{to}::"));
                if to != from && to != "element" && to != "lib" && !parent {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Every module reachable from itself is in a circle.
    let mut circles = Vec::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = stack.pop() {
            if m == start {
                circles.push(start.clone());
                break;
            }
            if seen.insert(m.clone()) {
                stack.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules in a circle of imports: {circles:?}\ngraph: {graph:#?}"
    );
    // The check sees the dependencies that are there.
    assert!(graph["scheme::compose"].contains("scheme::groups"));
    assert!(graph["quantize"].contains("kernel"));
}

#[test]
fn no_source_file_outgrows_one_job() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "bindings"] {
        source_files(&root.join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter(|f| {
            let s = f.to_string_lossy();
            !(s.contains("/tests/") || s.contains("/target/") || s.contains("/benches/"))
        })
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > 600).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "source files over 600 lines: {long:?}");
}
