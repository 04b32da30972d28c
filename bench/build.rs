//! Generates the connect-rust baseline's code for `grpc.testing.TestService` (the same protos
//! portway's interop service is built from) without a system `protoc`: protox parses the protos
//! into a `FileDescriptorSet` and connectrpc-build reads it as a precompiled set.

use std::path::PathBuf;

use prost::Message as _;

const FILES: [&str; 3] = ["grpc/testing/empty.proto", "grpc/testing/messages.proto", "grpc/testing/test.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from("../proto");
    for f in FILES {
        println!("cargo:rerun-if-changed={}", proto_root.join(f).display());
    }
    let fds = protox::compile(FILES, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let set = out_dir.join("grpc_testing.fds");
    std::fs::write(&set, fds.encode_to_vec())?;
    connectrpc_build::Config::new().descriptor_set(&set).files(&FILES).include_file("_connectrpc.rs").compile()?;
    Ok(())
}
