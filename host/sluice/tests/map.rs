//! The map is checked against the territory: the README's Architecture block (crates and their
//! edges) and crate table against the `Cargo.toml` files, every crate's `# Layout` table against
//! its modules, and the shapes the design keeps — no circle among a crate's modules, no library
//! source file over 15 KB, the shipping binary free of the test kit. A crate added, an edge
//! drawn or a module declared without the map following fails here, naming what differs.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[path = "map/support.rs"]
mod map_support;
use map_support::{declared_modules, layout_modules, module_edges, strongly_connected};

/// The workspace's root (two levels above this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// Every crate under `host/`: its folder name → (package name, its normal `sluice-*` deps).
fn crates() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("host")).expect("host/") {
        let dir = entry.expect("an entry").path();
        let Ok(toml) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let mut name = String::new();
        let mut deps = BTreeSet::new();
        let mut section = String::new();
        for line in toml.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
            } else if section == "[package]" && line.starts_with("name") {
                name = line.split('"').nth(1).unwrap_or_default().to_string();
            } else if section == "[dependencies]" && line.starts_with("sluice-") {
                let dep = line.split(['.', ' ', '=']).next().unwrap_or_default();
                deps.insert(dep.to_string());
            }
        }
        let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
        out.insert(folder, (name, deps));
    }
    out
}

/// The README's Architecture block: crate → the crates it depends on (short names as written).
fn readme_graph() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = readme
        .split("## Architecture")
        .nth(1)
        .expect("README.md has an Architecture section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the Architecture section opens with a code block");
    let mut graph = BTreeMap::new();
    for line in block.lines().filter(|l| l.contains('→')) {
        let (name, rest) = line.split_once('→').unwrap();
        let rest = rest.split('(').next().unwrap_or_default();
        let deps = rest
            .split(',')
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .map(|d| format!("sluice-{d}"))
            .collect();
        graph.insert(name.trim().to_string(), deps);
    }
    graph
}

#[test]
fn the_readme_draws_every_crate_and_every_edge() {
    let crates = crates();
    let drawn = readme_graph();
    let actual: BTreeMap<String, BTreeSet<String>> = crates
        .values()
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect();
    let missing: Vec<&String> = actual.keys().filter(|c| !drawn.contains_key(*c)).collect();
    let extra: Vec<&String> = drawn.keys().filter(|c| !actual.contains_key(*c)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README's Architecture block: crates not drawn {missing:?}, drawn but gone {extra:?}"
    );
    let mut wrong = Vec::new();
    for (name, deps) in &actual {
        let shown = &drawn[name];
        if shown != deps {
            let lacks: Vec<_> = deps.difference(shown).collect();
            let more: Vec<_> = shown.difference(deps).collect();
            wrong.push(format!(
                "{name}: edges not drawn {lacks:?}, drawn but absent {more:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "README's Architecture block:\n{}",
        wrong.join("\n")
    );

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let untabled: Vec<&String> = actual
        .keys()
        .filter(|c| !readme.contains(&format!("| `{c}` |")))
        .collect();
    assert!(
        untabled.is_empty(),
        "README's crate table lacks {untabled:?}"
    );
}

#[test]
fn the_crate_graph_has_no_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = crates()
        .values()
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect();
    let circles = strongly_connected(&graph);
    assert!(circles.is_empty(), "crates in a circle: {circles:?}");
}

#[test]
fn the_shipping_binary_does_not_link_the_test_kit() {
    let (_, deps) = &crates()["sluice"];
    assert!(
        !deps.contains("sluice-testkit"),
        "sluice depends on sluice-testkit"
    );
    let testkit_users: Vec<String> = crates()
        .values()
        .filter(|(n, d)| n != "sluice-testkit" && d.contains("sluice-testkit"))
        .map(|(n, _)| n.clone())
        .collect();
    assert!(
        testkit_users.is_empty(),
        "normal dependencies on the test kit: {testkit_users:?}"
    );
}

/// A crate's root source file and its `src/` folder.
fn crate_root(folder: &str) -> (PathBuf, PathBuf) {
    let src = root().join("host").join(folder).join("src");
    let lib = src.join("lib.rs");
    let file = if lib.exists() {
        lib
    } else {
        src.join("main.rs")
    };
    (file, src)
}

#[test]
fn every_layout_table_names_every_module() {
    let mut wrong = Vec::new();
    for folder in crates().keys() {
        let (file, _) = crate_root(folder);
        let text = std::fs::read_to_string(&file).unwrap();
        let declared = declared_modules(&text);
        let Some(listed) = layout_modules(&text) else {
            wrong.push(format!("{}: no `# Layout` table", file.display()));
            continue;
        };
        let unlisted: Vec<_> = declared.difference(&listed).collect();
        let gone: Vec<_> = listed.difference(&declared).collect();
        if !unlisted.is_empty() || !gone.is_empty() {
            wrong.push(format!(
                "{}: modules not in its Layout {unlisted:?}, in its Layout but not declared {gone:?}",
                file.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_crate_has_a_module_circle() {
    let mut circles = Vec::new();
    for folder in crates().keys() {
        let (file, src) = crate_root(folder);
        let edges = module_edges(&file, &src);
        for circle in strongly_connected(&edges) {
            circles.push(format!("{folder}: {circle:?}"));
        }
    }
    assert!(
        circles.is_empty(),
        "module circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn no_library_source_file_is_over_15_kb() {
    const LIMIT: u64 = 15 * 1024;
    let mut big = Vec::new();
    let mut stack: Vec<PathBuf> = crates().keys().map(|folder| crate_root(folder).1).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let size = path.metadata().unwrap().len();
                if size > LIMIT {
                    big.push(format!("{} ({size} bytes)", path.display()));
                }
            }
        }
    }
    assert!(big.is_empty(), "library files over 15 KB: {big:?}");
}
