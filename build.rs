//! Compiles the wire contract in `proto/` with a pure-Rust protobuf compiler, so a fresh
//! machine needs no system `protoc`.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/govlink/v1/common.proto",
        "proto/govlink/v1/social_security.proto",
        "proto/govlink/v1/public_security.proto",
        "proto/govlink/v1/housing.proto",
        "proto/govlink/v1/provident_fund.proto",
        "proto/govlink/v1/record.proto",
        "proto/govlink/v1/audit.proto",
        "proto/govlink/v1/resolver.proto",
        "proto/govlink/v1/cases.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;

    // Kept for gRPC server reflection.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut encoded = Vec::new();
    prost::Message::encode(&descriptors, &mut encoded)?;
    std::fs::write(out_dir.join("govlink_descriptor.bin"), encoded)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
