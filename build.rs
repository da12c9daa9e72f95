//! Compiles the protos under proto/ with protox (no system protoc) and generates tonic code, and lists the shipped Cedar policy files.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The script itself too: its outputs change when it does (a checkout
    // switched in one target directory kept an older run's outputs).
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=policies");
    let files = [
        "proto/cadrex/v1/cadres.proto",
        "proto/cadrex/v1/system.proto",
        "proto/cadrex/v1/access_log.proto",
        "proto/cadrex/v1/common.proto",
        "proto/cadrex/v1/records.proto",
        "proto/cadrex/v1/changes.proto",
        "proto/cadrex/v1/opinions.proto",
        "proto/cadrex/v1/dossier.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    write_policy_list(&out)?;
    // The encoded set also feeds server reflection.
    let bytes = prost::Message::encode_to_vec(&fds);
    std::fs::write(out.join("cadrex_descriptor.bin"), bytes)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}

/// Writes `shipped_policies.rs`: every `policies/*.cedar` as (file name, text), sorted by
/// name, so that a new policy file (an agency's, say) is embedded without a Rust edit.
fn write_policy_list(out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("policies");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut list = String::from("&[\n");
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("policy file name is not UTF-8: {}", path.display()))?;
        let abs = path
            .to_str()
            .ok_or_else(|| format!("policy path is not UTF-8: {}", path.display()))?;
        // Debug formatting quotes and escapes, so any path is a valid literal.
        list.push_str(&format!("    ({name:?}, include_str!({abs:?})),\n"));
    }
    list.push(']');
    std::fs::write(out.join("shipped_policies.rs"), list)?;
    Ok(())
}
