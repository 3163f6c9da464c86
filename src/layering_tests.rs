//! The top-level modules form layers: no module imports, directly or
//! through others, one that imports it back (issue 12, item 8). This reads
//! the sources as text, so it also holds for code behind `cfg(test)`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SELF: &str = "layering_tests";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `crate::x` and `crate::{x::.., y}` as module names.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                found.insert(ident(part.trim()));
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

/// Module -> the other top-level modules it names.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(src) else {
        return modules;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "lib" || name == "main" || name == SELF {
            continue;
        }
        let mut files = Vec::new();
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p.clone());
        } else {
            continue;
        }
        let refs: BTreeSet<String> = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| referenced(&t))
            .collect();
        modules
            .entry(name)
            .or_insert_with(BTreeSet::new)
            .extend(refs);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    for (name, refs) in modules.iter_mut() {
        refs.retain(|r| r != name && names.contains(r));
    }
    modules
}

/// A path `from -> .. -> from`, if there is one.
fn cycle_through(from: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().cloned().unwrap_or_default();
        for next in graph.get(&last).into_iter().flatten() {
            if next == from {
                let mut cycle = path.clone();
                cycle.push(from.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn grouped_and_plain_imports_are_both_seen() {
    let refs = referenced("use crate::config::Config;\nuse crate::{net::tls, usage};\n");
    let want: BTreeSet<String> = ["config", "net", "usage"].map(String::from).into();
    assert_eq!(refs, want);
}

#[test]
fn no_top_level_module_imports_itself_through_others() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = edges(&src);
    assert!(
        graph.len() > 5,
        "read too few modules from {}",
        src.display()
    );
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_through(m, &graph))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}
