//! The layering check: every crate depends only on crates of lower layers,
//! and inside each crate every module imports only modules of lower ranks,
//! both as ARCHITECTURE.md's layer table lists them. The table is the one
//! source: a crate or module it does not list fails the check, so the
//! diagram cannot drift from the code and the import circle cannot grow
//! back.
//!
//! Module imports are read from the sources (`crate::m`, and `super::m`
//! reaching the crate root), outside comments, test modules included. The
//! root (`lib.rs`, `main.rs`) declares the modules and may use any of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One row of the layer table.
struct Layer {
    krate: String,
    path: PathBuf,
    /// Module name -> rank; peers share a rank.
    ranks: HashMap<String, usize>,
}

/// The rows after `<!-- layers -->` in `text`, lowest layer first:
/// `| n | crate | path | modules |`, modules as ranks separated by `,`
/// (lowest first), peers within a rank by `|` written as `/`.
fn table(text: &str) -> Result<Vec<Layer>, String> {
    let start = text
        .find("<!-- layers -->")
        .ok_or("ARCHITECTURE.md: no `<!-- layers -->` marker before the layer table")?;
    let mut layers = Vec::new();
    for line in text[start..].lines().skip(1) {
        let line = line.trim();
        if line.is_empty() && !layers.is_empty() {
            break;
        }
        if !line.starts_with('|') || line.starts_with("|---") || line.starts_with("| layer") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [_, krate, path, modules] = cells[..] else {
            return Err(format!(
                "ARCHITECTURE.md: layer row {line:?} must have 4 cells"
            ));
        };
        let mut ranks = HashMap::new();
        for (rank, peers) in modules.split(',').enumerate() {
            for m in peers
                .split('/')
                .map(str::trim)
                .filter(|m| !m.is_empty() && *m != "—")
            {
                ranks.insert(m.trim_matches('`').to_string(), rank);
            }
        }
        layers.push(Layer {
            krate: krate.trim_matches('`').to_string(),
            path: PathBuf::from(path.trim_matches('`')),
            ranks,
        });
    }
    if layers.is_empty() {
        return Err("ARCHITECTURE.md: the layer table has no rows".into());
    }
    Ok(layers)
}

/// The `chaos-*` crates a manifest depends on (any dependency section).
fn chaos_deps(manifest: &str) -> Vec<String> {
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line.ends_with("dependencies]");
            continue;
        }
        if in_deps
            && line.starts_with("chaos-")
            && let Some(name) = line.split(['=', '.', ' ']).next()
        {
            deps.push(name.to_string());
        }
    }
    deps
}

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

/// The first identifier of each path that follows `prefix` in `text`,
/// with its byte offset: `crate::a::B` gives `a`, and a group
/// `crate::{a::B, c}` (over several lines too) gives `a` and `c`.
fn targets(text: &str, prefix: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        let s = s.trim_start();
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        s[..end].to_string()
    };
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(prefix) {
        let at = from + i;
        from = at + prefix.len();
        // `prefix` must start a path, not end another name (`my_crate::`).
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let tail = &text[from..];
        if let Some(group) = tail.strip_prefix('{') {
            // Items at the group's top level, split on commas.
            let (mut depth, mut start) = (0usize, 0usize);
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.push((at, ident(&group[start..k])));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push((at, ident(&group[start..k])));
                        start = k + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.push((at, ident(tail)));
        }
    }
    found.retain(|(_, name)| !name.is_empty());
    found
}

/// `text` with its `//` comment lines blanked (line numbers kept).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names the crate root re-exports from its modules (`pub use m::X;`,
/// `use m::{X, Y as Z};`): a file that imports `crate::X` imports `m`.
fn reexports(root: &str, modules: &HashMap<String, usize>) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for stmt in code(root).split(';') {
        let stmt = stmt.trim();
        let Some(path) = stmt
            .strip_prefix("pub use ")
            .or_else(|| stmt.strip_prefix("pub(crate) use "))
            .or_else(|| stmt.strip_prefix("use "))
        else {
            continue;
        };
        let path = path.trim().trim_start_matches("self::");
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        if !modules.contains_key(module) {
            continue;
        }
        let rest = rest.trim().trim_start_matches('{').trim_end_matches('}');
        for item in rest.split(',') {
            let last = item.trim().rsplit(" as ").next().unwrap_or("").trim();
            let name = last.rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() && name != "self" && name != "*" {
                names.insert(name.to_string(), module.to_string());
            }
        }
    }
    names
}

/// Every violation under `root` (the workspace), one line each.
fn violations(architecture: &str, root: &Path) -> Result<Vec<String>, String> {
    let layers = table(architecture)?;
    let layer_of: HashMap<&str, usize> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.krate.as_str(), i))
        .collect();
    let mut found = Vec::new();
    // Every library crate under crates/ has its row.
    if let Ok(dirs) = std::fs::read_dir(root.join("crates")) {
        let mut dirs: Vec<PathBuf> = dirs.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let rel = Path::new("crates").join(dir.file_name().unwrap());
            if dir.join("Cargo.toml").is_file() && !layers.iter().any(|l| l.path == rel) {
                found.push(format!(
                    "{}: a crate ARCHITECTURE.md's layer table does not list (add its row)",
                    rel.display()
                ));
            }
        }
    }
    for (i, layer) in layers.iter().enumerate() {
        let manifest_path = root.join(&layer.path).join("Cargo.toml");
        let manifest = std::fs::read_to_string(&manifest_path)
            .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
        for dep in chaos_deps(&manifest) {
            match layer_of.get(dep.as_str()) {
                Some(&j) if j < i => {}
                Some(_) => found.push(format!(
                    "{}: {} depends on {dep}, which is not below it in ARCHITECTURE.md's layers",
                    manifest_path.display(),
                    layer.krate
                )),
                None => found.push(format!(
                    "{}: {} depends on {dep}, which ARCHITECTURE.md's layer table does not list (add its row)",
                    manifest_path.display(),
                    layer.krate
                )),
            }
        }
        let src = root.join(&layer.path).join("src");
        let root_file = ["lib.rs", "main.rs"]
            .iter()
            .find_map(|f| std::fs::read_to_string(src.join(f)).ok())
            .unwrap_or_default();
        let named = reexports(&root_file, &layer.ranks);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let parts: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
                continue;
            }
            let module = parts[0].clone();
            let Some(&rank) = layer.ranks.get(&module) else {
                found.push(format!(
                    "{}: module `{module}` of {} is not in ARCHITECTURE.md's layer table (place it)",
                    file.display(),
                    layer.krate
                ));
                continue;
            };
            // `super::` repeated this often reaches the crate root.
            let depth = parts.len() - usize::from(parts.last().is_some_and(|p| p == "mod"));
            let text = code(&std::fs::read_to_string(&file).map_err(|e| e.to_string())?);
            let mut used = targets(&text, "crate::");
            if depth > 0 {
                used.extend(targets(&text, &"super::".repeat(depth)));
            }
            used.sort();
            for (at, name) in used {
                // A module, or a name the root re-exports from one.
                let target = if layer.ranks.contains_key(&name) {
                    name
                } else if let Some(m) = named.get(&name) {
                    m.clone()
                } else {
                    continue;
                };
                if target == module {
                    continue;
                }
                if let Some(&r) = layer.ranks.get(&target)
                    && r >= rank
                {
                    found.push(format!(
                        "{}:{}: `{module}` imports `{target}`, which is not below it in {}'s layers (ARCHITECTURE.md)",
                        file.display(),
                        text[..at].matches('\n').count() + 1,
                        layer.krate
                    ));
                }
            }
        }
    }
    Ok(found)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_import_goes_down_the_layers_architecture_md_draws() {
    let root = workspace();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let found = violations(&text, &root).unwrap();
    assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
}

/// The check itself: an unlisted crate, an upward crate dependency, an
/// import between peers,
/// an upward import through a `use` group over several lines or through a
/// name the crate root re-exports, and an unplaced module are reported; a
/// downward import and a comment are not.
#[test]
fn an_upward_import_or_dependency_is_reported() {
    let dir = std::env::temp_dir().join(format!("chaos-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |p: &str, s: &str| {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    let arch = "<!-- layers -->\n| layer | crate | path | modules, lowest first |\n|---|---|---|---|\n| 1 | chaos-low | low | a / b, c |\n| 2 | chaos-high | high | x |\n";
    write(
        "low/Cargo.toml",
        "[dependencies]\nchaos-high = { path = \"../high\" }\n",
    );
    write(
        "low/src/lib.rs",
        "mod a;\nmod b;\nmod c;\npub use c::Deep;\n",
    );
    write(
        "low/src/a.rs",
        "// crate::c in a comment is no import\nuse crate::{\n    b::X,\n};\nuse super::Deep;\n",
    );
    write("low/src/b.rs", "use crate::a::Thing;\n");
    write("low/src/c/mod.rs", "mod inner;\nuse super::a;\n");
    write("low/src/c/inner.rs", "use super::super::b;\n");
    write(
        "high/Cargo.toml",
        "[dependencies]\nchaos-low.workspace = true\n",
    );
    write("high/src/x.rs", "fn f() { chaos_low::c::g() }\n");
    write("high/src/z.rs", "\n");
    write("crates/unlisted/Cargo.toml", "[package]\n");
    let found = violations(arch, &dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 6, "{found:#?}");
    assert!(
        found[0].contains("crates/unlisted: a crate"),
        "{}",
        found[0]
    );
    assert!(
        found[1].contains("chaos-low depends on chaos-high"),
        "{}",
        found[1]
    );
    // A group over lines, and a name the root re-exports from above.
    assert!(found[2].contains("a.rs:2: `a` imports `b`"), "{}", found[2]);
    assert!(found[3].contains("a.rs:5: `a` imports `c`"), "{}", found[3]);
    assert!(found[4].contains("`b` imports `a`"), "{}", found[4]);
    assert!(
        found[5].contains("module `z` of chaos-high is not in"),
        "{}",
        found[5]
    );
}
