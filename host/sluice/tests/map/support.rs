//! Reading the map and the code: the modules a crate root declares, those its `# Layout` table
//! names, the references between its modules, and the circles of a graph.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules `text` (a crate root) declares: `mod x;`, `pub mod x;`, `pub(crate) mod x;`
/// (test-only modules left out: they are not part of the map).
pub fn declared_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut test_only = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("#[cfg(test)]") {
            test_only = true;
            continue;
        }
        let rest = line
            .strip_prefix("pub(crate) ")
            .or_else(|| line.strip_prefix("pub "))
            .unwrap_or(line);
        if let Some(name) = rest.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            if !test_only {
                out.insert(name.trim().to_string());
            }
        }
        if !line.starts_with("#[") {
            test_only = false;
        }
    }
    out
}

/// The modules the `# Layout` table of `text`'s crate doc names in its first column
/// (`` `x` `` or `` [`x`] ``; "this file" and paths into other crates aside), if it has one.
pub fn layout_modules(text: &str) -> Option<BTreeSet<String>> {
    let doc: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(str::trim)
        .collect();
    let start = doc.iter().position(|l| *l == "# Layout")?;
    let mut out = BTreeSet::new();
    let mut in_table = false;
    for line in &doc[start + 1..] {
        if line.starts_with('|') {
            if !in_table {
                // the header row
                in_table = true;
                continue;
            }
            let first = line.trim_matches('|').split('|').next().unwrap_or_default();
            // one module a row, or several: `` [`a`], [`b`] ``
            for name in first.split(',') {
                let name = name.trim().trim_start_matches('[').trim_end_matches(']');
                let name = name.trim_matches('`');
                let is_module = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if is_module {
                    out.insert(name.to_string());
                }
            }
        } else if in_table {
            break;
        }
    }
    Some(out)
}

/// `text` without `//` comments (line and doc comments), so prose naming a module is no edge.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // a `//` inside a string literal (a URL) keeps its line
            Some(at) if !l[..at].contains('"') => &l[..at],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment of each item of a `{a::b, c, d::{e, f}}` group.
fn group_heads(group: &str) -> Vec<String> {
    let (mut out, mut depth, mut item) = (Vec::new(), 0, String::new());
    for ch in group.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            out.push(std::mem::take(&mut item));
        } else {
            item.push(ch);
        }
    }
    out.push(item);
    out.iter()
        .filter_map(|i| {
            let head: String = i
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!head.is_empty()).then_some(head)
        })
        .collect()
}

/// The names a file reaches at the crate's top: after `crate::`, and after `super::` from a
/// file `depth` folders below `src/` (0: `src/x.rs`, whose `super` is the root).
fn root_references(text: &str, depth: usize) -> Vec<String> {
    let mut prefixes = vec!["crate::".to_string()];
    prefixes.push("super::".repeat(depth + 1));
    let mut names = Vec::new();
    for prefix in &prefixes {
        let mut from = 0;
        while let Some(at) = text[from..].find(prefix.as_str()) {
            let at = from + at;
            from = at + prefix.len();
            // `super::super::x` is not `super::x` from a deeper file: skip longer runs
            let before = &text[..at];
            if before.ends_with("::") || before.ends_with(|c: char| c.is_alphanumeric()) {
                continue;
            }
            let rest = &text[from..];
            if rest.starts_with("super::") {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 1;
                let end = group
                    .char_indices()
                    .find(|(_, c)| {
                        match c {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map_or(group.len(), |(i, _)| i);
                names.extend(group_heads(&group[..end]));
            } else {
                let head: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !head.is_empty() {
                    names.push(head);
                }
            }
        }
    }
    names
}

/// Names the crate root re-exports from its modules (`pub use m::{A, B}`, `pub use m::A`):
/// a reference to `crate::A` is one to `m`.
fn reexports(root_text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let code = code_only(root_text);
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let Some(path) = stmt
            .strip_prefix("pub use ")
            .or_else(|| stmt.strip_prefix("pub(crate) use "))
            .or_else(|| stmt.strip_prefix("use "))
        else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.rsplit(" as ").next().unwrap_or_default();
            let name = name.rsplit("::").next().unwrap_or_default().trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// Every `.rs` file of module `m` and its depth below `src/`.
fn module_files(src: &Path, m: &str) -> Vec<(std::path::PathBuf, usize)> {
    let mut files = Vec::new();
    for top in [src.join(format!("{m}.rs")), src.join(m).join("mod.rs")] {
        if top.exists() {
            files.push((top, 0));
        }
    }
    let mut stack = vec![(src.join(m), 1)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push((p, depth + 1));
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("mod.rs") {
                files.push((p, depth));
            }
        }
    }
    files
}

/// A crate's module graph: for each module the root declares, the other modules its files reach
/// (directly, or through a name the root re-exports).
pub fn module_edges(root_file: &Path, src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let root_text = std::fs::read_to_string(root_file).unwrap();
    let mut modules = declared_modules(&root_text);
    // test-only modules take part in circles too
    for line in root_text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            modules.insert(name.to_string());
        }
    }
    let reexported = reexports(&root_text);
    let mut graph = BTreeMap::new();
    for m in &modules {
        let mut reached = BTreeSet::new();
        for (file, depth) in module_files(src, m) {
            let text = code_only(&std::fs::read_to_string(&file).unwrap());
            for name in root_references(&text, depth) {
                let target = match modules.contains(&name) {
                    true => Some(name),
                    false => reexported.get(&name).cloned(),
                };
                if let Some(t) = target.filter(|t| t != m && modules.contains(t)) {
                    reached.insert(t);
                }
            }
        }
        graph.insert(m.clone(), reached);
    }
    graph
}

/// The circles of `graph` (its strongly connected parts of more than one node), by Tarjan.
pub fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let graph = self.graph;
            for w in graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !graph.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut part = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    part.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if part.len() > 1 {
                    part.sort();
                    self.found.push(part);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn a_circle_of_modules_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(strongly_connected(&graph), vec![vec!["a", "b", "c"]]);
}

#[test]
fn references_through_groups_and_reexports_are_edges() {
    let text = "use crate::{alpha::X, beta, gamma::{Y, Z}};\nlet q = super::delta::f();\n";
    let mut got = root_references(text, 0);
    got.sort();
    assert_eq!(got, ["alpha", "beta", "delta", "gamma"]);
    let re = reexports("pub use tiered::TieredCache;\npub use locator::{A, B as C};\n");
    assert_eq!(re["TieredCache"], "tiered");
    assert_eq!(re["C"], "locator");
}
