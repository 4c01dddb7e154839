//! No crate has a module cycle: within each crate, the top-level modules (edges: every `crate::…`
//! path, names the crate root re-exports counted as their module's) and the children of each
//! directory module (edges: every `super::…` path, names its `mod.rs` re-exports counted as
//! their module's) form a graph without a cycle. A failure names the cycle and prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Source without `//` comments (doc comments name modules in links, not uses).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first name of each path `text` reaches through `prefix` (`crate::` or `super::`):
/// `crate::a::B` gives `a`, `crate::{a, b::C}` gives `a` and `b`.
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 1 => {
                        names.push(ident(&group[i..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            names.push(ident(rest).to_owned());
        }
    }
    names
}

/// Names a root file re-exports (`pub use module::{A, b::C as D}`, also `pub(crate) use`),
/// and their module.
fn reexports(root: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for statement in root.split(';') {
        let statement = statement.trim();
        let Some(path) = ["pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|p| statement.strip_prefix(p))
        else {
            continue;
        };
        let module = ident(path).to_owned();
        let Some(items) = path.get(module.len()..) else {
            continue;
        };
        for word in items.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !word.is_empty() && word != "as" && word != "self" {
                names.insert(word.to_owned(), module.clone());
            }
        }
    }
    names
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(sources(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(files)
}

/// The graph of the modules in `dir` (files and directories, but not `root`, the file that
/// declares them), with edges from the paths each reaches through `prefix`.
fn graph(dir: &Path, root: &str, prefix: &str) -> Result<Graph> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("a file name")?
            .to_owned();
        // A module may be a file and a directory at once (`runtime.rs` and `runtime/`): both
        // are its code.
        if path.is_dir() {
            modules.entry(name).or_default().extend(sources(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") && name != root {
            modules.entry(name).or_default().push(path);
        }
    }
    let reexported = reexports(&code(&fs::read_to_string(dir.join(format!("{root}.rs")))?));
    let mut graph = Graph::new();
    for (module, files) in &modules {
        let edges = graph.entry(module.clone()).or_default();
        for file in files {
            for name in paths_after(&code(&fs::read_to_string(file)?), prefix) {
                let target = if modules.contains_key(&name) {
                    Some(name)
                } else {
                    reexported.get(&name).cloned()
                };
                if let Some(target) = target.filter(|t| t != module && modules.contains_key(t)) {
                    edges.insert(target);
                }
            }
        }
    }
    Ok(graph)
}

/// A cycle of `graph`, if it has one (as the modules along it).
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        graph: &'a Graph,
        node: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut found: Vec<String> = path[from..].iter().map(|n| n.to_string()).collect();
                found.push(node.to_owned());
                return Some(found);
            }
            None => {}
        }
        marks.insert(node, Mark::Open);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(graph, next, marks, path) {
                return Some(found);
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut marks, &mut Vec::new()))
}

fn drawn(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(module, uses)| {
            let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
            format!("  {module} -> {}", uses.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every graph of the workspace: each crate's top level, and each directory module's children.
fn graphs() -> Result<Vec<(String, Graph)>> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for entry in fs::read_dir(&crates)? {
        let src = entry?.path().join("src");
        if !src.is_dir() {
            continue;
        }
        let root = if src.join("lib.rs").exists() {
            "lib"
        } else {
            "main"
        };
        out.push((src.display().to_string(), graph(&src, root, "crate::")?));
        for file in sources(&src)? {
            if file.file_name().is_some_and(|n| n == "mod.rs") {
                let dir = file.parent().context("a directory")?;
                out.push((dir.display().to_string(), graph(dir, "mod", "super::")?));
            }
        }
    }
    Ok(out)
}

#[test]
fn no_crate_has_a_module_cycle() -> Result<()> {
    let graphs = graphs()?;
    let find = |suffix: &str| {
        graphs
            .iter()
            .find(|(name, _)| name.ends_with(suffix))
            .map(|(_, g)| g)
    };
    // The graphs are read, not empty: a few edges that must be there.
    for (suffix, from, to) in [
        ("orc-models/src", "gateway", "client"),
        ("orc-models/src", "provider", "error"),
        ("orc-engine/src", "scheduler", "step"),
        ("orc-engine/src/scheduler", "drive", "state"),
        ("orc-pipeline/src", "graph", "plan"),
    ] {
        let graph = find(suffix).with_context(|| format!("no graph of {suffix}"))?;
        ensure!(
            graph.get(from).is_some_and(|uses| uses.contains(to)),
            "{suffix}: {from} -> {to} missing:\n{}",
            drawn(graph)
        );
    }
    let mut cycles = Vec::new();
    for (name, graph) in &graphs {
        if let Some(found) = cycle(graph) {
            cycles.push(format!("{name}: {}\n{}", found.join(" -> "), drawn(graph)));
        }
    }
    ensure!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
    Ok(())
}

#[test]
fn the_reader_sees_every_kind_of_path_and_finds_cycles() {
    let text = code(
        "use crate::a::B;\nuse crate::{c, d::E};\n// use crate::z;\nlet x = crate::f::g();\nuse orc_models::crate_like;",
    );
    assert_eq!(paths_after(&text, "crate::"), ["a", "c", "d", "f"]);
    let lib = "pub use budget::{Budget, HOUR};\npub use spec::Cost as Price;";
    let root = reexports(lib);
    assert_eq!(root.get("HOUR").map(String::as_str), Some("budget"));
    assert_eq!(root.get("Price").map(String::as_str), Some("spec"));
    let edge = |a: &str, b: &str| (a.to_owned(), BTreeSet::from([b.to_owned()]));
    let looped = Graph::from([edge("a", "b"), edge("b", "c"), edge("c", "a")]);
    assert_eq!(
        cycle(&looped),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let chain = Graph::from([edge("a", "b"), edge("b", "c")]);
    assert_eq!(cycle(&chain), None);
}
