//! The workspace's own habits, checked: every `.rs` file opens with a `//!` line,
//! ARCHITECTURE.md's code map names every module file, and every `.rs` file under
//! a `src/` or `tests/` directory is reachable from a target's root by `mod`
//! lines (a test file nothing declares would otherwise never run, and pass).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The repository: the root package's directory.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as paths relative to the repository, without
/// build output (`target/`) and hidden directories.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') && name != "node_modules" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path.strip_prefix(root()).unwrap_or(&path).to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(root().join(rel))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", rel.display()))
}

/// The packages of the workspace (the root's `members`, the root itself, and the
/// excluded fuzz crate), as directories relative to the repository.
fn packages() -> Vec<PathBuf> {
    let manifest: toml::Table = toml::from_str(&read(Path::new("Cargo.toml"))).expect("Cargo.toml");
    let ws = &manifest["workspace"];
    let mut dirs = vec![PathBuf::new()];
    for key in ["members", "exclude"] {
        if let Some(list) = ws.get(key).and_then(|v| v.as_array()) {
            dirs.extend(list.iter().filter_map(|v| v.as_str()).map(PathBuf::from));
        }
    }
    dirs
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let bare: Vec<String> = rust_files(&root())
        .into_iter()
        .filter(|f| !read(f).starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        bare.is_empty(),
        "these files do not open with a `//!` line saying what they are: {bare:?}"
    );
}

/// The code map of ARCHITECTURE.md by top-level bullet, keyed by the directory
/// (or file) the bullet opens with: "* `edge/` (`keyframe-edge`) — …" → `edge/`.
fn code_map() -> Vec<(String, String)> {
    let text = read(Path::new("ARCHITECTURE.md"));
    let start = text
        .find("## Code map")
        .expect("ARCHITECTURE.md has a code map");
    let rest = &text[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in rest[..end].lines() {
        if let Some(bullet) = line.strip_prefix("* `") {
            let head = bullet.split('`').next().unwrap_or_default().to_string();
            sections.push((head, String::new()));
        }
        if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    sections
}

/// Whether `text` names `token` in backticks, alone or as the end of a longer
/// path (`policy/directives.rs`, `tests/support/tls.rs`) or a `{a,b}` group.
fn names(text: &str, token: &str) -> bool {
    text.split('`').skip(1).step_by(2).any(|quoted| {
        quoted == token
            || quoted.ends_with(&format!("/{token}"))
            || quoted.strip_suffix(".rs").is_some_and(|q| {
                // `bench/src/{client,targets,units}.rs`
                q.rsplit_once('{').is_some_and(|(_, group)| {
                    group
                        .trim_end_matches('}')
                        .split(',')
                        .any(|g| format!("{}.rs", g.trim()) == token)
                })
            })
    })
}

/// Every module file (under a `src/` directory, and the fuzz targets) is named in
/// the code map's bullet of its crate: its file name, or for a `mod.rs` the
/// directory (`policy/`). A library's `lib.rs` is its crate's bullet itself.
#[test]
fn the_code_map_names_every_module_file() {
    let sections = code_map();
    let mut missing = Vec::new();
    for file in rust_files(&root()) {
        let path = file.to_string_lossy().replace('\\', "/");
        let in_src = path.starts_with("src/") || path.contains("/src/");
        if !in_src && !path.contains("/fuzz_targets/") || path.ends_with("/src/lib.rs") {
            continue;
        }
        // The bullets of the longest directory that holds the file.
        let owner = sections
            .iter()
            .filter(|(head, _)| head.ends_with('/') && path.starts_with(head.as_str()))
            .map(|(head, _)| head.len())
            .max()
            .unwrap_or(0);
        let text: String = sections
            .iter()
            .filter(|(head, _)| {
                owner == 0 || head.len() == owner && path.starts_with(head.as_str())
            })
            .map(|(_, body)| body.as_str())
            .collect();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = file
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| format!("{}/", n.to_string_lossy()))
            .unwrap_or_default();
        let named = names(&text, &name)
            || names(&text, &path)
            || (name == "mod.rs" && names(&text, &parent));
        if !named {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name these files (add each to its crate's \
         bullet): {missing:?}"
    );
}

/// The `mod` declarations of a file: `(name, #[path] if any)`. Inline modules
/// (`mod x { … }`) declare no file and are skipped.
fn mod_lines(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut path_attr = None;
    for line in text.lines().map(str::trim) {
        if let Some(p) = line
            .strip_prefix("#[path = \"")
            .and_then(|p| p.strip_suffix("\"]"))
        {
            path_attr = Some(p.to_string());
            continue;
        }
        if line.starts_with("#[") || line.starts_with("///") {
            continue;
        }
        let decl = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("pub(crate) mod "))
            .or_else(|| line.strip_prefix("mod "));
        if let Some(name) = decl.and_then(|d| d.strip_suffix(';')) {
            out.push((name.trim().to_string(), path_attr.take()));
        } else {
            path_attr = None;
        }
    }
    out
}

/// The files reachable from `roots` by `mod` lines (the roots included).
fn reachable(roots: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<(PathBuf, bool)> = roots.iter().map(|r| (r.clone(), true)).collect();
    while let Some((file, owns_dir)) = stack.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root().join(&file)) else {
            continue;
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        // `a/b.rs` keeps its submodules in `a/b/`; `main.rs`, `lib.rs`, `mod.rs`
        // and crate roots in their own directory.
        let sub = if owns_dir {
            dir.clone()
        } else {
            dir.join(file.file_stem().unwrap_or_default())
        };
        for (name, path) in mod_lines(&text) {
            match path {
                Some(p) => stack.push((normalize(&dir.join(p)), true)),
                None => {
                    let flat = sub.join(format!("{name}.rs"));
                    if root().join(&flat).is_file() {
                        stack.push((flat, false));
                    } else {
                        stack.push((sub.join(&name).join("mod.rs"), true));
                    }
                }
            }
        }
    }
    seen
}

/// `a/b/../c` → `a/c`.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The roots of a package's targets whose files live in `src/` or `tests/`:
/// the library and binaries, and the test targets (declared ones, and those
/// cargo finds itself unless `autotests = false`).
fn target_roots(pkg: &Path) -> Vec<PathBuf> {
    let manifest: toml::Table = toml::from_str(&read(&pkg.join("Cargo.toml"))).expect("Cargo.toml");
    let mut roots = Vec::new();
    for auto in ["src/lib.rs", "src/main.rs"] {
        if root().join(pkg).join(auto).is_file() {
            roots.push(pkg.join(auto));
        }
    }
    for kind in ["lib", "bin", "test"] {
        let declared = match manifest.get(kind) {
            Some(toml::Value::Array(a)) => a.clone(),
            Some(t @ toml::Value::Table(_)) => vec![t.clone()],
            _ => Vec::new(),
        };
        for t in declared {
            if let Some(p) = t.get("path").and_then(|p| p.as_str()) {
                roots.push(pkg.join(p));
            } else if let (Some(name), "test") = (t.get("name").and_then(|n| n.as_str()), kind) {
                roots.push(pkg.join("tests").join(format!("{name}.rs")));
                roots.push(pkg.join("tests").join(name).join("main.rs"));
            }
        }
    }
    let autotests = manifest
        .get("package")
        .and_then(|p| p.get("autotests"))
        .and_then(|a| a.as_bool())
        .unwrap_or(true);
    if autotests {
        if let Ok(entries) = std::fs::read_dir(root().join(pkg).join("tests")) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "rs") {
                    roots.push(pkg.join("tests").join(e.file_name()));
                } else if p.join("main.rs").is_file() {
                    roots.push(pkg.join("tests").join(e.file_name()).join("main.rs"));
                }
            }
        }
    }
    roots
}

/// A file in `src/` or `tests/` that no `mod` line reaches is never compiled: a
/// test there would never run, and the suite would pass without it.
#[test]
fn every_source_and_test_file_is_reachable_from_a_target() {
    // One set for the workspace: a test may include another package's support
    // file by `#[path]`.
    let mut seen = BTreeSet::new();
    for pkg in packages() {
        seen.extend(reachable(&target_roots(&pkg)));
    }
    let mut unreachable: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pkg in packages() {
        for dir in ["src", "tests"] {
            for file in rust_files(&root().join(&pkg).join(dir)) {
                if !seen.contains(&file) {
                    unreachable
                        .entry(pkg.display().to_string())
                        .or_default()
                        .push(file.display().to_string());
                }
            }
        }
    }
    assert!(
        unreachable.is_empty(),
        "files no target reaches by `mod` lines (declare them, or delete them): \
         {unreachable:?}"
    );
}

/// The checks above can fail: a made-up file is reported until it is declared.
#[test]
fn the_checks_notice_a_file_nothing_declares() {
    let seen = reachable(&target_roots(Path::new("")));
    assert!(
        seen.contains(Path::new("src/commands/serve.rs")),
        "{seen:?}"
    );
    assert!(!seen.contains(Path::new("tests/not_declared_anywhere.rs")));
    let map = code_map();
    let body: String = map.iter().map(|(_, b)| b.as_str()).collect();
    assert!(names(&body, "logging.rs"));
    assert!(names(&body, "units.rs"), "the {{a,b}}.rs form");
    assert!(!names(&body, "not_in_the_map.rs"));
}

/// The default a field's doc states: `Default <value>` (the value in backticks,
/// or one word), `Default: none` (`Some("")` means none or empty), or `None`
/// when the doc states none.
fn stated_default(doc: &str) -> Option<String> {
    let at = doc.rfind("Default")?;
    let rest = doc[at + "Default".len()..].trim_start();
    if rest.starts_with(':') {
        return Some(String::new());
    }
    let value = match rest.strip_prefix('`') {
        Some(quoted) => quoted.split('`').next().unwrap_or_default(),
        None => rest
            .split(|c: char| c.is_whitespace() || c == ':')
            .next()
            .unwrap_or_default()
            .trim_end_matches(['.', ',']),
    };
    Some(value.to_string())
}

/// A default as it reads in a doc: strings bare, lists comma-separated.
fn shown(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a.iter().map(shown).collect::<Vec<_>>().join(","),
        toml::Value::Table(t) if t.is_empty() => String::new(),
        other => other.to_string(),
    }
}

/// Every field of the origin's, the edge's and the catalog's config states its
/// default in its doc, and states the one its `Default` gives: the value lives
/// in `Default` (the binary's `[default: …]` help is built from it), and the
/// doc cannot drift from it unnoticed.
#[test]
fn config_docs_state_the_defaults_the_code_gives() {
    fn fields(file: &str) -> Vec<(String, String)> {
        let text = read(Path::new(file));
        let body = text
            .split("pub struct Config {")
            .nth(1)
            .and_then(|b| b.split("\n}\n").next())
            .unwrap_or_else(|| panic!("{file}: no `pub struct Config`"));
        let mut doc = String::new();
        let mut out = Vec::new();
        for line in body.lines().map(str::trim) {
            if let Some(d) = line.strip_prefix("///") {
                doc.push_str(d);
                doc.push(' ');
            } else if let Some(field) = line.strip_prefix("pub ").and_then(|f| f.split_once(':')) {
                out.push((field.0.to_string(), std::mem::take(&mut doc)));
            } else if line.is_empty() {
                doc.clear();
            }
        }
        out
    }
    fn table<T: serde::Serialize>(v: &T) -> toml::Table {
        toml::Table::try_from(v).expect("a config serializes")
    }
    let configs = [
        (
            "origin/src/config.rs",
            table(&keyframe_origin::Config::default()),
        ),
        (
            "edge/src/config.rs",
            table(&keyframe_edge::Config::default()),
        ),
        (
            "catalog/src/config.rs",
            table(&keyframe_catalog::Config::default()),
        ),
    ];
    let mut wrong = Vec::new();
    for (file, defaults) in &configs {
        for (field, doc) in fields(file) {
            let code = defaults.get(&field).map(shown).unwrap_or_default();
            match stated_default(&doc) {
                None => wrong.push(format!("{file}: `{field}` states no default")),
                // `90` for an `f64` of 90.0 is the same default.
                Some(said)
                    if said != code
                        && !said
                            .parse::<f64>()
                            .is_ok_and(|a| code.parse::<f64>().is_ok_and(|b| a == b)) =>
                {
                    wrong.push(format!(
                        "{file}: `{field}` says Default `{said}`, `Default` gives `{code}`"
                    ))
                }
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
