//! natter-local's modules import each other without cycles, so that they stay in the layers
//! `src/lib.rs` describes.
//!
//! The test reads the crate's sources (`src/**/*.rs`, without the binaries), collects each
//! top-level module's `crate::<module>` paths (including grouped ones, `use crate::{a, b::C}`)
//! outside comments and literals, and looks for a cycle in the resulting graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module name → the other modules it names.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The source with comments, string literals and char literals blanked out (newlines kept).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        // What precedes an `r` that may open a raw string: nothing of an identifier but `b`.
        let before = |k: usize| i.checked_sub(k).map(|j| chars[j]);
        let raw_may_start = !before(1).is_some_and(is_ident)
            || (before(1) == Some('b') && !before(2).is_some_and(is_ident));
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && raw_may_start && matches!(next, Some('"' | '#')) && {
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            chars.get(i + 1 + hashes) == Some(&'"')
        } {
            // A raw string: r"..." or r#"..."# (also br"...", whose b is kept as code).
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            i += hashes + 2;
            out.push_str(&" ".repeat(hashes + 2));
            while i < chars.len() {
                if chars[i] == '"'
                    && chars[i + 1..].iter().take_while(|&&c| c == '#').count() >= hashes
                {
                    out.push_str(&" ".repeat(hashes + 1));
                    i += hashes + 1;
                    break;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\u{1F44D}'); a lifetime ('a) stays code.
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The top-level modules that code names through `crate::` paths: `crate::a::f`, `use crate::a;`,
/// `use crate::{a, b::{C, D}}` (a and b).
fn crate_references(code: &str) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let ident_at = |s: &str| -> String { s.chars().take_while(|&c| is_ident(c)).collect() };
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate") {
        if code[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = code[at + "crate".len()..].trim_start();
        let Some(rest) = rest.strip_prefix("::") else {
            continue; // `pub(crate)`, or a word that only starts with `crate`
        };
        let rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // The first segment of every item at the group's top level.
            let mut depth = 1;
            let mut item_start = true;
            let mut chars = group.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    c if item_start && depth == 1 && is_ident(c) => {
                        let name = ident_at(&group[i..]);
                        for _ in 1..name.chars().count() {
                            chars.next();
                        }
                        found.insert(name);
                        item_start = false;
                    }
                    _ => item_start = false,
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    // `crate::self` in a group names the crate root, not a module.
    found.remove("self");
    found
}

/// Each top-level module's sources: `src/a.rs` and everything under `src/a/` are module `a`.
/// `lib.rs`, `main.rs` and `src/bin/` (other crates) are left out.
fn module_sources(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                rust_files(&path, into);
            } else if path.extension().is_some_and(|e| e == "rs") {
                into.push(path);
            }
        }
    }
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("the crate's src directory") {
        let path = entry.expect("a directory entry").path();
        let Some(stem) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if path.is_dir() {
            if stem != "bin" {
                rust_files(&path, modules.entry(stem).or_default());
            }
        } else if path.extension().is_some_and(|e| e == "rs") && stem != "lib" && stem != "main" {
            modules.entry(stem).or_default().push(path);
        }
    }
    modules
}

/// The import graph of sources given as (module, source text) pairs; every `crate::` path must
/// name one of the modules (an edge through a re-export in the crate root would be missed).
fn graph_of<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Graph, String> {
    let sources: Vec<(&str, &str)> = sources.into_iter().collect();
    let names: BTreeSet<&str> = sources.iter().map(|(m, _)| *m).collect();
    let mut graph = Graph::new();
    for (module, source) in &sources {
        let edges = graph.entry(module.to_string()).or_default();
        for target in crate_references(&code_only(source)) {
            if !names.contains(target.as_str()) {
                return Err(format!(
                    "{module} names crate::{target}, which is no module"
                ));
            }
            if target != *module {
                edges.insert(target);
            }
        }
    }
    Ok(graph)
}

/// A cycle of the graph, as the path that closes it (`[a, b, a]`), if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Active) => {
                let start = path.iter().position(|n| n == node).expect("on the path");
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Active);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

/// Each module's layer in an acyclic graph: 1 for a leaf, else one more than its highest import.
fn layers(graph: &Graph) -> BTreeMap<String, usize> {
    fn layer(node: &str, graph: &Graph, memo: &mut BTreeMap<String, usize>) -> usize {
        if let Some(&known) = memo.get(node) {
            return known;
        }
        let below = graph
            .get(node)
            .into_iter()
            .flatten()
            .map(|next| layer(next, graph, memo))
            .max()
            .unwrap_or(0);
        memo.insert(node.to_string(), below + 1);
        below + 1
    }
    let mut memo = BTreeMap::new();
    for node in graph.keys() {
        layer(node, graph, &mut memo);
    }
    memo
}

#[test]
fn natter_local_modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = module_sources(&src);
    let texts: Vec<(String, String)> = modules
        .iter()
        .flat_map(|(module, files)| {
            files.iter().map(move |file| {
                let text = std::fs::read_to_string(file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                (module.clone(), text)
            })
        })
        .collect();
    let graph = graph_of(texts.iter().map(|(m, t)| (m.as_str(), t.as_str())))
        .unwrap_or_else(|e| panic!("{e}"));

    // Every module lib.rs declares is in the graph (and nothing else is), so none is skipped.
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let declared: BTreeSet<String> = code_only(&lib)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            line.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(|m| m.trim().to_string())
        })
        .collect();
    let found: BTreeSet<String> = graph.keys().cloned().collect();
    assert_eq!(
        declared, found,
        "lib.rs's modules and the source files differ"
    );

    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "natter-local's modules import each other in a cycle: {}\nthe imports: {graph:#?}",
            cycle.join(" → ")
        );
    }
    // The layers, for whoever reads the output (`cargo test -- --nocapture`).
    let mut by_layer: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (module, layer) in layers(&graph) {
        by_layer.entry(layer).or_default().push(module);
    }
    for (layer, modules) in by_layer {
        println!("layer {layer}: {}", modules.join(", "));
    }
}

#[test]
fn the_check_finds_a_cycle_through_grouped_imports() {
    let graph = graph_of([
        ("a", "use crate::b::Thing;\nfn f() { crate::c::g(); }"),
        ("b", "use crate::{\n    c::{self, X},\n    d as dee,\n};"),
        ("c", "pub(crate) fn g() {}"),
        ("d", "use crate::{self as root, a};"),
    ])
    .unwrap();
    assert_eq!(graph["a"], ["b", "c"].map(String::from).into());
    assert_eq!(graph["b"], ["c", "d"].map(String::from).into());
    assert_eq!(graph["d"], ["a"].map(String::from).into());
    assert_eq!(
        find_cycle(&graph),
        Some(["a", "b", "d", "a"].map(String::from).to_vec())
    );

    // Without d's import of a, the same modules are acyclic.
    let acyclic = graph_of([
        ("a", "use crate::b::Thing;"),
        ("b", "use crate::{c::{self, X}, d as dee};"),
        ("c", ""),
        ("d", ""),
    ])
    .unwrap();
    assert_eq!(find_cycle(&acyclic), None);
    assert_eq!(layers(&acyclic)["a"], 3);
}

#[test]
fn paths_in_comments_and_literals_are_not_imports() {
    let source = r####"
        //! The doc names crate::a, /* and so does crate::b /* nested crate::c */ */
        /// `crate::d`
        const S: &str = "crate::e \" crate::f";
        const R: &str = r#"crate::g "quoted" "#;
        const B: &[u8] = br"crate::h\";
        const C: char = '"'; const Q: char = '\''; fn l<'a>(x: &'a str) -> &'a str { x }
        use crate::real;
        pub(crate) fn crate_like() { crate::other::f(); }
    "####;
    assert_eq!(
        crate_references(&code_only(source)),
        ["other", "real"].map(String::from).into()
    );
    assert!(graph_of([("a", "use crate::missing;")]).is_err());
}
