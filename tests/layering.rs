//! The module layering holds: the mutation core at the bottom imports nothing of the crate and does
//! no I/O; every other module imports only the modules listed for it below, and that list has no
//! cycle, so no two modules import each other. Read from the source, so a new `use crate::…`
//! that breaks the layering fails here (and in CI) with the file and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// What each top-level module of `src/` may import from the crate, and why it sits there.
const ALLOWED: &[(&str, &[&str])] = &[
    // The pure core: settings, service-account metadata, names, denials, the plan.
    ("mutate", &["json_scan", "json_text"]),
    // JSON strings written into a byte buffer (the patch, the log line).
    ("json_text", &[]),
    // Buffers a worker thread keeps from one review to the next.
    ("thread_buffers", &[]),
    // The review's JSON reader: a structural index built with SIMD, then one walk over it.
    ("json_scan", &["thread_buffers"]),
    // Leaves with no business rules.
    ("cloud", &[]),
    ("heap", &[]),
    ("tls", &[]),
    // Version, commit and build date, fixed at build time.
    ("build_info", &[]),
    // The seam the server hands requests through; the admission side implements it.
    ("review", &[]),
    ("config", &["mutate", "tls", "cloud"]),
    ("logging", &["config", "json_text"]),
    ("k8s", &["mutate", "heap"]),
    ("metrics", &["build_info", "mutate", "k8s"]),
    (
        "admission",
        &[
            "json_scan",
            "mutate",
            "k8s",
            "metrics",
            "review",
            "thread_buffers",
        ],
    ),
    ("server", &["review", "tls"]),
    ("certs", &["config", "k8s", "tls"]),
    ("inject", &["mutate", "k8s", "config"]),
    // The checks of local inputs (files, certificate directory) before anything else starts.
    ("startup", &["config", "tls"]),
    // Wiring: the process entry points.
    (
        "app",
        &[
            "admission",
            "build_info",
            "certs",
            "config",
            "k8s",
            "logging",
            "metrics",
            "mutate",
            "server",
            "startup",
            "tls",
        ],
    ),
];

/// Crates and paths that mean I/O, a clock or async: none may appear in the core.
const IMPURE: &[&str] = &[
    "tokio::",
    "kube::",
    "hyper::",
    "axum::",
    "rustls::",
    "tracing::",
    "std::fs",
    "std::net",
    "std::io",
    "std::env",
    "std::time",
    "std::thread",
    "async fn",
    ".await",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `.rs` files of top-level module `module`: `src/<module>.rs` and everything under
/// `src/<module>/`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src().join(format!("{module}.rs"));
    if single.exists() {
        files.push(single);
    }
    let mut dirs = vec![src().join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The code of a line, without its `//` comment (doc comments name modules freely).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |at| &line[..at])
}

/// Every top-level module a line names through `crate::`, including `use crate::{a, b::c}`.
fn crate_references(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code(line);
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// The top-level modules `lib.rs` declares.
fn declared_modules() -> BTreeSet<String> {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    lib.lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').to_owned())
        .collect()
}

#[test]
fn every_module_is_placed_in_the_layering() {
    let placed: BTreeSet<String> = ALLOWED.iter().map(|(m, _)| (*m).to_owned()).collect();
    assert_eq!(declared_modules(), placed, "add new modules to ALLOWED");
}

#[test]
fn modules_import_only_what_their_layer_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut violations = Vec::new();
    for (module, may_use) in &allowed {
        for file in files_of(module) {
            let text = fs::read_to_string(&file).expect("readable source");
            for (number, line) in text.lines().enumerate() {
                for used in crate_references(line) {
                    if used != *module && !may_use.contains(&used.as_str()) {
                        violations.push(format!(
                            "{}:{}: {module} imports {used}: {}",
                            file.display(),
                            number + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_layering_has_no_cycle() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit<'a>(
        module: &'a str,
        allowed: &BTreeMap<&'a str, &'a [&'a str]>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Result<(), String> {
        if let Some(at) = path.iter().position(|m| *m == module) {
            return Err(format!("{} -> {module}", path[at..].join(" -> ")));
        }
        if done.contains(module) {
            return Ok(());
        }
        path.push(module);
        for used in allowed.get(module).copied().unwrap_or_default() {
            visit(used, allowed, path, done)?;
        }
        path.pop();
        done.insert(module);
        Ok(())
    }
    let mut done = BTreeSet::new();
    for module in allowed.keys() {
        if let Err(cycle) = visit(module, &allowed, &mut Vec::new(), &mut done) {
            panic!("the layering has a cycle: {cycle}");
        }
    }
}

#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    let mut found = Vec::new();
    for file in files_of("mutate") {
        let text = fs::read_to_string(&file).expect("readable source");
        for (number, line) in text.lines().enumerate() {
            let code = code(line);
            for word in IMPURE {
                if code.contains(word) {
                    found.push(format!(
                        "{}:{}: {word}: {}",
                        file.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn references_are_read_from_every_import_form() {
    assert_eq!(crate_references("use crate::k8s::authz;"), ["k8s"]);
    assert_eq!(
        crate_references("use crate::{config, mutate::names::X};"),
        ["config", "mutate"]
    );
    assert_eq!(
        crate_references("    let x = crate::metrics::Metrics::new(); // crate::app"),
        ["metrics"]
    );
    assert!(crate_references("//! see crate::server").is_empty());
}
