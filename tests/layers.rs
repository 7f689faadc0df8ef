//! The crate's top-level modules import each other without a circle: spec → plan
//! data → the engine and the clients below the parts → the parts (`components`) →
//! deploy → the commands. Read from the `use crate::…` lines and `crate::x::` paths
//! of every file under src/ (tests, comments and doc links aside), so a change that
//! closes a circle fails here, with the circle named, rather than in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a file belongs to: `src/deploy/hosts.rs` → "deploy".
fn module_of(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The code of a file that is not a test: up to its `#[cfg(test)]` module, without
/// comments. A file that is a test module as a whole (`mod tests;`) has none.
fn code(file: &Path, text: &str) -> String {
    if file.file_stem().is_some_and(|s| s == "tests") {
        return String::new();
    }
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines.peek().is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules `code` names: `crate::x` paths, and each name of a grouped
/// `use crate::{a, b::c}`.
fn named(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            found.extend(group.split(',').map(|p| ident(p.trim())).filter(|p| !p.is_empty() && p != "self"));
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(&src) {
        let me = module_of(&src, &file);
        if me == "main" || me == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let targets = named(&code(&file, &text));
        edges.entry(me.clone()).or_default().extend(targets.into_iter().filter(|t| *t != me));
    }
    edges
}

/// A circle through `from`, if there is one: depth-first from each module.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        edges: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut found = path[i..].to_vec();
            found.push(at.to_string());
            return Some(found);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(found) = walk(edges, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|m| walk(edges, m, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let edges = graph();
    assert!(edges.len() > 10, "the modules were not found: {edges:?}");
    if let Some(found) = circle(&edges) {
        let imports: Vec<String> = found.windows(2).map(|w| format!("{} uses {}", w[0], w[1])).collect();
        panic!("an import circle: {}\n(all: {edges:#?})", imports.join(", "));
    }
}

#[test]
fn the_circle_finder_finds_circles() {
    let edges = |pairs: &[(&str, &str)]| {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            map.entry(a.to_string()).or_default().insert(b.to_string());
        }
        map
    };
    assert_eq!(circle(&edges(&[("plan", "spec"), ("components", "plan"), ("deploy", "components")])), None);
    assert_eq!(
        circle(&edges(&[("plan", "components"), ("components", "deploy"), ("deploy", "plan")])),
        Some(vec!["components".into(), "deploy".into(), "plan".into(), "components".into()])
    );
    let code = code(
        Path::new("src/x.rs"),
        "use crate::{plan::Plan, spec};\n// crate::deploy\nfn f() { crate::engine::x(); }\n#[cfg(test)]\nmod tests {\n use crate::commands;\n}\n",
    );
    assert_eq!(named(&code), BTreeSet::from(["engine".into(), "plan".into(), "spec".into()]));
}
