//! The crate's modules depend on each other without a cycle: every `crate::…` path in
//! `src/` (in `use` lines and inline, names re-exported at the root counted as their
//! module's) is an edge from the file's top-level module to the module it names. A
//! failure names the cycle and prints the whole graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

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

/// The first name of each path `text` reaches through `crate::`: `crate::a::B` gives
/// `a`, `crate::{a, b::C}` gives `a` and `b`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
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

/// Names `lib.rs` re-exports (`pub use module::{A, b::C as D}`), and their module.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
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

/// The module graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> Result<Graph> {
    let mut files = Vec::new();
    let mut modules = BTreeSet::new();
    for entry in fs::read_dir(src)? {
        let path = entry?.path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("a file name")?
            .to_owned();
        if path.is_dir() {
            for inner in fs::read_dir(&path)? {
                files.push((name.clone(), inner?.path()));
            }
            modules.insert(name);
        } else if name != "lib" {
            files.push((name.clone(), path));
            modules.insert(name);
        }
    }
    let lib = code(&fs::read_to_string(src.join("lib.rs"))?);
    let root = reexports(&lib);
    let mut graph = Graph::new();
    for (module, path) in files {
        let text = code(&fs::read_to_string(&path)?);
        let edges = graph.entry(module.clone()).or_default();
        for name in crate_paths(&text) {
            let target = if modules.contains(&name) {
                Some(name)
            } else {
                root.get(&name).cloned()
            };
            if let Some(target) = target.filter(|t| *t != module) {
                edges.insert(target);
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

#[test]
fn the_modules_form_no_cycle() -> Result<()> {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))?;
    let drawn: Vec<String> = graph
        .iter()
        .map(|(module, uses)| {
            let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
            format!("{module} -> {}", uses.join(", "))
        })
        .collect();
    // The graph is read, not empty: the gateway uses the client, the client the
    // providers, and the providers the error type.
    for (from, to) in [
        ("gateway", "client"),
        ("client", "provider"),
        ("provider", "error"),
    ] {
        ensure!(
            graph.get(from).is_some_and(|uses| uses.contains(to)),
            "{from} -> {to} missing:\n{}",
            drawn.join("\n")
        );
    }
    if let Some(found) = cycle(&graph) {
        anyhow::bail!(
            "module cycle: {}\nthe graph:\n{}",
            found.join(" -> "),
            drawn.join("\n")
        );
    }
    Ok(())
}

#[test]
fn the_reader_sees_every_kind_of_path_and_finds_cycles() {
    let text = code(
        "use crate::a::B;\nuse crate::{c, d::E};\n// use crate::z;\nlet x = crate::f::g();\nuse orc_models::crate_like;",
    );
    assert_eq!(crate_paths(&text), ["a", "c", "d", "f"]);
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
