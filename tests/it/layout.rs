//! The layout rules: tools reach the exchange over gRPC through public seams only, never through `grpc::`, `server::`, `store::` or `admin::`; layers never import upwards; test files share helpers only through `common`.
//!
//! A tool that imports a handler module, builds server state itself or opens
//! the store breaks whenever the server is restructured, and may bypass the
//! authorization and access-log path every caller is meant to go through. The
//! seams a tool may use are the generated clients (`proto::*_client`),
//! `tools::connect`, and the crate-root `dossier_in_process`, `BuiltState`
//! and `AppState` (for bench's in-process baseline, over a state the
//! `cadrex bench` command builds).
//!
//! Commands that open the store — `seed`, and the store side of `bench`
//! (targets, the in-process state, the raw-insert yardstick) — live in
//! `admin`, which may not import `tools` either: `cadrex bench` in `main.rs`
//! hands the one to the other.

use std::path::{Path, PathBuf};

/// Modules no tool may name.
const FORBIDDEN: [&str; 4] = ["grpc", "server", "admin", "store"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file without `//` comments (doc comments name modules in prose).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path a file names from the crate root, `crate::a::b` and
/// `cadrex::a::b`, with `crate::{a::b, c}` groups expanded one level (enough
/// for rustfmt's import style), as `a::b…` strings.
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for root in ["crate::", "cadrex::"] {
        let mut rest = code;
        while let Some(i) = rest.find(root) {
            // `foo_crate::` or `my_cadrex::` are other roots.
            let before = rest[..i].chars().last();
            rest = &rest[i + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let (mut depth, mut end) = (1, group.len());
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                let mut depth = 0;
                let mut item = String::new();
                for c in group[..end].chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            paths.push(std::mem::take(&mut item));
                            continue;
                        }
                        _ => {}
                    }
                    if !c.is_whitespace() {
                        item.push(c);
                    }
                }
                paths.push(item);
                paths.retain(|p| !p.is_empty());
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                paths.push(rest[..end].to_string());
            }
        }
    }
    paths
}

fn module(path: &str) -> &str {
    path.split("::").next().unwrap_or("")
}

#[test]
fn tools_use_only_public_seams() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tools");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() >= 7, "src/tools holds the tools: {files:?}");
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for path in crate_paths(&code(&text)) {
            if FORBIDDEN.contains(&module(&path)) {
                violations.push(format!("{}: {path}", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "tools reach into server internals (see tests/it/layout.rs):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_check_sees_every_import_form() {
    let forms = "use crate::grpc::AppState;\n\
                 use crate::{proto, server};\n\
                 let s = cadrex::store::sqlite::SqliteStore::open();\n\
                 // crate::grpc in a comment is prose\n\
                 use crate::{\n    store::{self, Store},\n    tools::connect,\n};";
    let paths = crate_paths(&code(forms));
    let modules: Vec<&str> = paths.iter().map(|p| module(p)).collect();
    assert_eq!(
        modules,
        ["grpc", "proto", "server", "store", "tools", "store"],
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p == "store::sqlite::SqliteStore::open")
    );
}

/// The crate modules and external crates each layer must not name, so that
/// data flows one way: wire → identity → use case → domain rules → store. An arrow back
/// up (a use case importing the gRPC layer) is a design bug.
const LAYERS: &[(&str, &[&str], &[&str])] = &[
    // (directory under src/, crate modules it must not name, crates it must not name)
    // Types and rules, no I/O: the domain names nothing above it, nor the
    // transport, database or runtime crates. `error` (FieldViolation) and
    // `proto` (the contract's message types) are shared vocabulary, not layers.
    (
        "domain",
        &[
            "identity",
            "authz",
            "tls",
            "config",
            "access_log",
            "store",
            "app",
            "grpc",
            "server",
            "tools",
            "admin",
        ],
        &["tonic::", "sqlx::", "tokio::"],
    ),
    ("app", &["grpc", "server", "tools", "admin"], &["tonic::"]),
    // Operator commands and client tools share plumbing that sits below
    // both (`pki`, `protojson`, `crypto`, `rng`), never each other; only the
    // tools are kept off the store, which the operator commands open.
    ("admin", &["tools", "grpc", "server"], &[]),
    ("tools", &["admin", "grpc", "server", "store"], &[]),
    (
        "store",
        &["grpc", "server", "tools", "admin", "app"],
        &["tonic::"],
    ),
];

#[test]
fn layers_do_not_import_upwards() {
    let mut violations = Vec::new();
    for (layer, modules, crates) in LAYERS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(layer);
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        assert!(!files.is_empty(), "src/{layer} holds files");
        for file in &files {
            let code = code(&std::fs::read_to_string(file).unwrap());
            for path in crate_paths(&code) {
                if modules.contains(&module(&path)) {
                    violations.push(format!("{}: crate::{path}", file.display()));
                }
            }
            for c in *crates {
                if code.contains(c) {
                    violations.push(format!("{}: {c}", file.display()));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "a layer imports from above it (see tests/it/layout.rs):\n{}",
        violations.join("\n")
    );
}

/// Test files share helpers only through `common` (TestServer, fixtures,
/// the catalog scan, wire-level editing): no test file imports another's, so
/// a test can be moved or deleted without breaking the others.
#[test]
fn tests_share_helpers_only_through_common() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let test_modules: Vec<String> = files
        .iter()
        .filter(|f| f.parent() == Some(dir.as_path()))
        .filter_map(|f| f.file_stem()?.to_str().map(str::to_string))
        .filter(|m| m != "main" && m != "common")
        .collect();
    assert!(test_modules.len() > 20, "{test_modules:?}");
    let mut bad = Vec::new();
    for f in &files {
        let text = code(&std::fs::read_to_string(f).unwrap());
        let mut rest = text.as_str();
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if test_modules.contains(&name) {
                bad.push(format!("{} uses crate::{name}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// `lib.rs` only declares modules and re-exports (the server's state is
/// built in `state`), so `server` and the crate root do not depend on each
/// other both ways.
#[test]
fn the_crate_root_only_declares() {
    let lib = code(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap(),
    );
    for line in lib.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with("pub mod ")
                || line.starts_with("mod ")
                || line.starts_with("pub use ")
                || line.starts_with("#![")
                || line.starts_with("//!"),
            "src/lib.rs holds more than declarations: {line}"
        );
    }
}
