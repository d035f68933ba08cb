//! A test of the catalog's shape: the graph of which module uses which, read from
//! the sources (`use` trees, `crate::`/`super::` paths, and a parent's paths into
//! its own submodules), has no cycle, and the layers the architecture names hold:
//! nothing points back at `server` or into `api`, and watch history depends on the
//! database layer only.
//!
//! A name a parent re-exports (`pub use store::Outcome` in `history/mod.rs`) counts
//! as a use of the module that defines it, so a re-export cannot hide a cycle.
//! Test code (`#[cfg(test)] mod …`) and comments are not read. `KF_CATALOG_SRC`
//! points the test at another tree (to check an older commit's sources).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path without `crate::` (`""` is the crate root).
type Module = String;

/// A path as written (segments), with the name it brings into scope.
type Bound = (Vec<String>, String);

/// A `use` statement: whether it is `pub`, and what it binds.
type UseStatement = (bool, Vec<Bound>);

/// One source file: its module path and its code.
struct Source {
    module: Module,
    code: String,
}

/// The code of a file without comment lines and without its trailing test module.
fn code_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines[i + 1..]
                .iter()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The module a file under `src/` holds: `api/mod.rs` → `api`, `db/batch.rs` →
/// `db::batch`, `lib.rs` → the root.
fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

fn read_tree(root: &Path) -> Vec<Source> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<Source>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read src")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under src");
                let module = module_of(relative);
                if module == "module_graph" {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read source");
                out.push(Source {
                    module,
                    code: code_of(&text),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Sep,
    Open,
    Close,
    Comma,
    Star,
}

fn tokens(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token::Ident(s[start..i].to_string()));
            continue;
        }
        match c {
            b':' if b.get(i + 1) == Some(&b':') => {
                out.push(Token::Sep);
                i += 1;
            }
            b'{' => out.push(Token::Open),
            b'}' => out.push(Token::Close),
            b',' => out.push(Token::Comma),
            b'*' => out.push(Token::Star),
            _ => {}
        }
        i += 1;
    }
    out
}

/// Expands a use tree (`a::{b, c::{d as e}}`) into its paths, each with the name it
/// brings into scope.
fn expand(t: &[Token], pos: &mut usize, prefix: &[String], out: &mut Vec<Bound>) {
    let mut path = prefix.to_vec();
    loop {
        match t.get(*pos) {
            Some(Token::Ident(id)) if id == "self" && path.len() == prefix.len() => {
                *pos += 1;
            }
            Some(Token::Ident(id)) => {
                path.push(id.clone());
                *pos += 1;
            }
            Some(Token::Star) => {
                *pos += 1;
                return;
            }
            Some(Token::Open) => {
                *pos += 1;
                while !matches!(t.get(*pos), Some(Token::Close) | None) {
                    expand(t, pos, &path, out);
                    if t.get(*pos) == Some(&Token::Comma) {
                        *pos += 1;
                    }
                }
                *pos += 1;
                return;
            }
            _ => break,
        }
        match t.get(*pos) {
            Some(Token::Sep) => *pos += 1,
            Some(Token::Ident(kw)) if kw == "as" => {
                *pos += 1;
                if let Some(Token::Ident(alias)) = t.get(*pos) {
                    *pos += 1;
                    out.push((path, alias.clone()));
                }
                return;
            }
            _ => break,
        }
    }
    if let Some(name) = path.last().cloned() {
        out.push((path, name));
    }
}

/// The `use` statements of some code: (is `pub`, paths with the names they bind),
/// and the code with them cut out.
fn use_statements(code: &str) -> (Vec<UseStatement>, String) {
    let mut uses = Vec::new();
    let mut rest = String::new();
    let mut text = code;
    loop {
        let found = ["pub use ", "pub(crate) use ", "use "]
            .iter()
            .filter_map(|kw| {
                let mut from = 0;
                while let Some(at) = text[from..].find(kw) {
                    let at = from + at;
                    // A statement: only whitespace before it on its line.
                    let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
                    if text[line_start..at].trim().is_empty() {
                        return Some((at, kw.len(), kw.starts_with("pub")));
                    }
                    from = at + kw.len();
                }
                None
            })
            .min_by_key(|&(at, _, _)| at);
        let Some((at, len, public)) = found else {
            rest.push_str(text);
            break;
        };
        let Some(end) = text[at..].find(';') else {
            rest.push_str(text);
            break;
        };
        rest.push_str(&text[..at]);
        let toks = tokens(&text[at + len..at + end]);
        let mut paths = Vec::new();
        let mut pos = 0;
        expand(&toks, &mut pos, &[], &mut paths);
        uses.push((public, paths));
        text = &text[at + end + 1..];
    }
    (uses, rest)
}

/// Paths in code that start with `crate`, `super` or one of `children`.
fn inline_paths(code: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let t = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let starts = match &t[i] {
            Token::Ident(id) => {
                (id == "crate" || id == "super" || children.contains(id))
                    && (i == 0 || t[i - 1] != Token::Sep)
                    && t.get(i + 1) == Some(&Token::Sep)
            }
            _ => false,
        };
        if !starts {
            i += 1;
            continue;
        }
        let mut path = Vec::new();
        while let Some(Token::Ident(id)) = t.get(i) {
            path.push(id.clone());
            i += 1;
            if t.get(i) != Some(&Token::Sep) {
                break;
            }
            i += 1;
        }
        out.push(path);
    }
    out
}

fn parent(m: &str) -> Module {
    m.rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}

/// Module-level dependencies of the sources: module → modules it uses.
fn graph(sources: &[Source]) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();
    let children = |m: &str| -> BTreeSet<String> {
        modules
            .iter()
            .filter(|c| !c.is_empty() && parent(c) == m)
            .map(|c| c.rsplit("::").next().unwrap_or(c).to_string())
            .collect()
    };
    // Absolute segments of a path written in module `m`.
    let absolute = |m: &str, path: &[String]| -> Option<Vec<String>> {
        let mut base: Vec<String> = if m.is_empty() {
            Vec::new()
        } else {
            m.split("::").map(String::from).collect()
        };
        let mut rest = path;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            Some(first) if children(m).contains(first) => {}
            _ => return None,
        }
        base.extend(rest.iter().cloned());
        Some(base)
    };
    // Re-exports: (module, name) → the absolute path it stands for.
    let mut exports: BTreeMap<(Module, String), Vec<String>> = BTreeMap::new();
    let mut parsed = Vec::new();
    for s in sources {
        let (uses, rest) = use_statements(&s.code);
        for (public, paths) in &uses {
            if !public {
                continue;
            }
            for (path, name) in paths {
                if let Some(abs) = absolute(&s.module, path) {
                    exports.insert((s.module.clone(), name.clone()), abs);
                }
            }
        }
        parsed.push((s, uses, rest));
    }
    // The module that defines what an absolute path names.
    let resolve = |abs: &[String]| -> Module {
        let mut path = abs.to_vec();
        for _ in 0..16 {
            let mut k = path.len();
            while k > 0 && !modules.contains(&path[..k].join("::")) {
                k -= 1;
            }
            let module = path[..k].join("::");
            match path.get(k) {
                Some(name) => match exports.get(&(module.clone(), name.clone())) {
                    Some(target) => {
                        let mut next = target.clone();
                        next.extend(path[k + 1..].iter().cloned());
                        path = next;
                    }
                    None => return module,
                },
                None => return module,
            }
        }
        path.join("::")
    };
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (s, uses, rest) in parsed {
        let mut paths: Vec<Vec<String>> = uses
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(path, _)| path.clone()))
            .collect();
        paths.extend(inline_paths(&rest, &children(&s.module)));
        let deps = g.entry(s.module.clone()).or_default();
        for p in paths {
            if let Some(abs) = absolute(&s.module, &p) {
                let target = resolve(&abs);
                // The crate root only declares modules and re-exports.
                if target != s.module && !target.is_empty() {
                    deps.insert(target);
                }
            }
        }
    }
    g.remove("");
    g
}

/// A cycle in `g`, if there is one, as the modules along it.
fn cycle(g: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        g: &BTreeMap<Module, BTreeSet<Module>>,
        m: &Module,
        marks: &mut BTreeMap<Module, Mark>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        match marks.get(m) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|x| x == m).unwrap_or(0);
                let mut c = stack[from..].to_vec();
                c.push(m.clone());
                return Some(c);
            }
            None => {}
        }
        marks.insert(m.clone(), Mark::Open);
        stack.push(m.clone());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, d, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(m.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for m in g.keys() {
        if let Some(c) = visit(g, m, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn within(m: &str, top: &str) -> bool {
    m == top || m.starts_with(&format!("{top}::"))
}

#[test]
fn the_catalog_has_no_import_cycle_and_its_layers_hold() {
    let src = std::env::var("KF_CATALOG_SRC")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/src").to_string());
    let g = graph(&read_tree(Path::new(&src)));
    // The reader must see the edges it is meant to see, or the test proves nothing.
    for (from, to) in [
        ("server", "api"),
        ("api", "api::content"),
        ("api::content", "api::extract"),
        ("api::history", "history::fold"),
        ("history::store", "history::trending"),
        ("history::writer", "history::store"),
    ] {
        assert!(
            g.get(from).is_some_and(|d| d.contains(to)),
            "the reader missed {from} → {to}: {:?}",
            g.get(from)
        );
    }
    if let Some(c) = cycle(&g) {
        panic!(
            "import cycle among the catalog's modules: {}",
            c.join(" → ")
        );
    }
    for (m, deps) in &g {
        for d in deps {
            assert!(
                !(d == "server" && m != "server"),
                "{m} uses the composition root `server`"
            );
            assert!(
                !within(d, "api") || within(m, "api") || m == "server",
                "{m} reaches into the API layer ({d})"
            );
            assert!(
                !within(m, "history") || within(d, "history") || within(d, "db"),
                "watch history depends on the database layer only, but {m} uses {d}"
            );
        }
    }
}

#[test]
fn the_reader_finds_a_cycle_through_a_reexport() {
    let source = |module: &str, code: &str| Source {
        module: module.to_string(),
        code: code_of(code),
    };
    // The old shape: handlers take the error from the composition root, which
    // mounts the handlers; and a sibling reached through its parent's re-export.
    let old = [
        source("", "pub mod api;\npub mod server;\n"),
        source(
            "api",
            "pub mod content;\npub use content::load;\nfn routes() { content::list() }",
        ),
        source(
            "api::content",
            "use crate::server::{\n    ApiError,\n    AppState as S,\n};\n\
             // crate::nothing::here\npub fn list() {}\n",
        ),
        source("server", "fn router() { crate::api::routes() }\n"),
    ];
    let g = graph(&old);
    assert!(g["api"].contains("api::content"));
    let c = cycle(&g).expect("the cycle");
    assert!(c.contains(&"server".to_string()) && c.contains(&"api::content".to_string()));

    let fixed = [
        source("", "pub mod api;\npub mod server;\n"),
        source(
            "api",
            "pub mod content;\npub mod error;\nfn routes() { content::list() }",
        ),
        source(
            "api::content",
            "use super::error::ApiError;\npub fn list() {}\n",
        ),
        source("api::error", "pub struct ApiError;\n"),
        source(
            "server",
            "use crate::api::error::ApiError;\nfn router() { crate::api::routes() }\n\
             #[cfg(test)]\nmod tests {\n    use crate::api::content::list;\n}\n",
        ),
    ];
    assert_eq!(cycle(&graph(&fixed)), None);

    // A re-export does not hide a use: `crate::api::load` is `api::content`'s.
    let through = [
        source("", "pub mod api;\npub mod cache;\n"),
        source("api", "pub mod content;\npub use content::load;\n"),
        source("api::content", "use crate::cache::Hot;\npub fn load() {}\n"),
        source("cache", "pub struct Hot;\nfn f() { crate::api::load() }\n"),
    ];
    let g = graph(&through);
    assert!(g["cache"].contains("api::content"), "{g:?}");
    assert!(cycle(&g).is_some());
}
