//! The layout the README and `src/lib.rs` describe, checked: the module
//! graph from `crate::` paths has no cycle, `plan/` and `account/` (pure)
//! read only plain data, and no function outside tests is longer than a screen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of `src/` (by path, `""` for the crate root) and its text
/// without its `#[cfg(test)] mod tests`.
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests {") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.insert(parts.join("::"), text);
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The longest known module that `path` (`a::b::c`) starts with.
fn module_of<'a>(path: &str, mods: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len()).rev().find_map(|k| {
        let p = parts[..k].join("::");
        mods.get_key_value(&p).map(|(k, _)| k.as_str())
    })
}

/// Paths named after `crate::`, also inside `use crate::{a, b::c}`
/// groups (one level deep, which is all the code uses).
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item: String = item
                    .trim()
                    .chars()
                    .take_while(|&c| is_ident(c) || c == ':')
                    .collect();
                if !item.is_empty() {
                    out.push(item.trim_end_matches(':').to_string());
                }
            }
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|&c| is_ident(c) || c == ':')
            .collect();
        out.push(path.trim_end_matches(':').to_string());
    }
    out
}

/// Edges module -> module, from `crate::` paths and, in a parent, from
/// `child::` paths to the modules it declares.
fn graph(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in mods {
        let edges = g.entry(m.clone()).or_default();
        for p in crate_paths(text) {
            if let Some(to) = module_of(&p, mods)
                && to != m
                && !to.is_empty()
            {
                edges.insert(to.to_string());
            }
        }
        for line in text.lines() {
            let Some(child) = line
                .strip_prefix("pub mod ")
                .and_then(|l| l.strip_suffix(';'))
            else {
                continue;
            };
            let full = if m.is_empty() {
                child.to_string()
            } else {
                format!("{m}::{child}")
            };
            let used = text.match_indices(&format!("{child}::")).any(|(i, _)| {
                !text[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| is_ident(c) || c == ':')
            });
            if used {
                edges.insert(full);
            }
        }
    }
    g
}

/// A cycle in `g`, as the modules along it, if there is one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

#[test]
fn the_module_graph_has_no_cycle_between_files_or_folders() {
    let mods = modules();
    let g = graph(&mods);
    assert!(g.len() > 30, "found only {} modules", g.len());
    assert_eq!(cycle(&g), None, "a cycle between modules");
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &g {
        for to in tos {
            if top(from) != top(to) {
                folders
                    .entry(top(from).to_string())
                    .or_default()
                    .insert(top(to).to_string());
            }
        }
    }
    assert_eq!(cycle(&folders), None, "a cycle between folders");
}

#[test]
fn plan_and_render_read_only_plain_data() {
    let mods = modules();
    let g = graph(&mods);
    let pure = ["config", "error", "worker", "plan", "account", "render"];
    for (from, tos) in &g {
        let allowed: &[&str] = match top(from) {
            "plan" => &pure[..4],
            "render" => &pure,
            "account" => &["account"],
            "worker" | "config" => &["config", "error", "worker"],
            _ => continue,
        };
        for to in tos {
            assert!(
                allowed.contains(&top(to)),
                "{from} uses {to}: {} may use only {allowed:?}",
                top(from)
            );
        }
    }
}

#[test]
fn no_function_is_longer_than_80_lines() {
    let mut long = Vec::new();
    for (m, text) in modules() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let indent = &line[..line.len() - t.len()];
            let t = t
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
                .trim_start_matches("unsafe ");
            if !t.starts_with("fn ") || line.ends_with(';') {
                continue;
            }
            let end = format!("{indent}}}");
            let n = lines[i..]
                .iter()
                .position(|l| *l == end)
                .map_or(0, |k| k + 1);
            if n > 80 {
                long.push(format!("{m}: {} ({n} lines)", t.split('(').next().unwrap()));
            }
        }
    }
    assert!(long.is_empty(), "too long: {long:#?}");
}
