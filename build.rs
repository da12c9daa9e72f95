//! Compiles the protos under proto/ with protox (no system protoc) and generates tonic code.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");
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
    // The encoded set also feeds server reflection.
    let bytes = prost::Message::encode_to_vec(&fds);
    std::fs::write(out.join("cadrex_descriptor.bin"), bytes)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
