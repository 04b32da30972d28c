//! Compiles every `.proto` under `proto/` with no system `protoc`:
//!
//! 1. protox parses the protos into a `FileDescriptorSet`, written to
//!    `OUT_DIR/portway_descriptor.bin` (served by gRPC reflection);
//! 2. tonic-prost-build generates the prost messages and the tonic servers and clients;
//! 3. pbjson-build generates the canonical protobuf JSON serde impls for every message;
//! 4. this script writes `OUT_DIR/pb.rs`, the module tree that includes all of the above, and
//!    `OUT_DIR/method_table.rs`, one entry per RPC (path, kind, idempotency, JSON codecs for
//!    its request and response types). Every JSON path in the gateway reads that table, so a
//!    service added to `proto/` is reachable over every protocol with no hand-written mapping.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost::Message as _;
use prost_types::{DescriptorProto, FileDescriptorSet, MethodOptions, method_options::IdempotencyLevel};

#[path = "build/web_assets.rs"]
mod web_assets;

const WELL_KNOWN: &str = ".google.protobuf";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=proto");
    let files = proto_files(&proto_root)?;
    for f in &files {
        println!("cargo:rerun-if-changed={}", proto_root.join(f).display());
    }

    let fds: FileDescriptorSet = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_bytes = fds.encode_to_vec();
    std::fs::write(out_dir.join("portway_descriptor.bin"), &descriptor_bytes)?;

    let packages: BTreeSet<String> = fds
        .file
        .iter()
        .filter_map(|f| f.package.clone())
        .filter(|p| format!(".{p}") != WELL_KNOWN && !p.starts_with("google.protobuf"))
        .collect();

    tonic_prost_build::configure()
        .compile_well_known_types(true)
        .extern_path(WELL_KNOWN, "::pbjson_types")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds.clone())?;

    let prefixes: Vec<String> = packages.iter().map(|p| format!(".{p}")).collect();
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .extern_path(WELL_KNOWN, "::pbjson_types")
        .ignore_unknown_fields()
        .build(&prefixes)?;
    fast_numbers(&packages, &out_dir)?;

    std::fs::write(out_dir.join("pb.rs"), module_tree(&packages, &out_dir))?;
    std::fs::write(out_dir.join("method_table.rs"), method_table(&fds)?)?;
    web_assets::embed(&out_dir)?;
    Ok(())
}

/// Points the generated JSON impls at `crate::transcode::number::NumberDeserialize`, a
/// drop-in for pbjson's own reader of numeric fields, which builds an error per JSON number
/// (see that module): for messages of numbers (embeddings) it dominated the cost of JSON.
fn fast_numbers(packages: &BTreeSet<String>, out_dir: &Path) -> std::io::Result<()> {
    for pkg in packages {
        let path = out_dir.join(format!("{pkg}.serde.rs"));
        if let Ok(code) = std::fs::read_to_string(&path) {
            let code =
                code.replace("::pbjson::private::NumberDeserialize", "crate::transcode::number::NumberDeserialize");
            std::fs::write(&path, code)?;
        }
    }
    Ok(())
}

/// All `.proto` files under `root`, relative to it, in a stable order.
fn proto_files(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let rel = path.strip_prefix(root).expect("walked from root");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `pub mod a { pub mod b { include!("a.b.rs"); include!("a.b.serde.rs"); } }` for every package.
fn module_tree(packages: &BTreeSet<String>, out_dir: &Path) -> String {
    #[derive(Default)]
    struct Node {
        children: BTreeMap<String, Node>,
        package: Option<String>,
    }
    let mut root = Node::default();
    for pkg in packages {
        let mut node = &mut root;
        for seg in pkg.split('.') {
            node = node.children.entry(seg.to_string()).or_default();
        }
        node.package = Some(pkg.clone());
    }
    fn emit(node: &Node, out: &mut String, out_dir: &Path) {
        if let Some(pkg) = &node.package {
            for suffix in ["rs", "serde.rs"] {
                let file = format!("{pkg}.{suffix}");
                if out_dir.join(&file).exists() {
                    let _ = writeln!(out, "include!(concat!(env!(\"OUT_DIR\"), \"/{file}\"));");
                }
            }
        }
        for (name, child) in &node.children {
            let _ = writeln!(out, "#[allow(missing_docs, clippy::all, clippy::pedantic)]");
            let _ = writeln!(out, "pub mod {name} {{");
            emit(child, out, out_dir);
            let _ = writeln!(out, "}}");
        }
    }
    let mut out = String::from("// @generated by build.rs: the module tree of every compiled package.\n");
    emit(&root, &mut out, out_dir);
    out
}

/// Maps fully-qualified proto type names (`.pkg.Outer.Inner`) to Rust paths.
fn type_paths(fds: &FileDescriptorSet) -> BTreeMap<String, String> {
    fn walk(prefix_proto: &str, prefix_rust: &str, msgs: &[DescriptorProto], out: &mut BTreeMap<String, String>) {
        for m in msgs {
            let name = m.name();
            let proto = format!("{prefix_proto}.{name}");
            let rust = format!("{prefix_rust}::{}", name.to_upper_camel_case());
            out.insert(proto.clone(), rust);
            let nested_mod = format!("{prefix_rust}::{}", name.to_snake_case());
            walk(&proto, &nested_mod, &m.nested_type, out);
        }
    }
    let mut out = BTreeMap::new();
    for file in &fds.file {
        let pkg = file.package();
        let proto_prefix = if pkg.is_empty() { String::new() } else { format!(".{pkg}") };
        let rust_prefix = if proto_prefix.starts_with(WELL_KNOWN) {
            "::pbjson_types".to_string()
        } else {
            let mut p = String::from("crate::pb");
            for seg in pkg.split('.').filter(|s| !s.is_empty()) {
                p.push_str("::");
                p.push_str(seg);
            }
            p
        };
        walk(&proto_prefix, &rust_prefix, &file.message_type, &mut out);
    }
    out
}

/// One `MethodDescriptor` per RPC of every service in every compiled file.
fn method_table(fds: &FileDescriptorSet) -> Result<String, Box<dyn std::error::Error>> {
    let paths = type_paths(fds);
    let mut out = String::from(
        "// @generated by build.rs: one entry per RPC in proto/.\n\
         /// The method table generated from `proto/`: every RPC with its path, kind,\n\
         /// idempotency and the canonical-JSON codecs of its request and response types.\n\
         pub fn generated_methods() -> ::std::vec::Vec<crate::transcode::MethodDescriptor> {\n\
         use crate::transcode::{MethodDescriptor, RpcKind, Idempotency, codec};\n\
         ::std::vec![\n",
    );
    for file in &fds.file {
        let pkg = file.package();
        for svc in &file.service {
            let service = if pkg.is_empty() { svc.name().to_string() } else { format!("{pkg}.{}", svc.name()) };
            for m in &svc.method {
                let kind = match (m.client_streaming(), m.server_streaming()) {
                    (false, false) => "Unary",
                    (false, true) => "ServerStreaming",
                    (true, false) => "ClientStreaming",
                    (true, true) => "BidiStreaming",
                };
                let idempotency = match m.options.as_ref().map(MethodOptions::idempotency_level) {
                    Some(IdempotencyLevel::NoSideEffects) => "NoSideEffects",
                    Some(IdempotencyLevel::Idempotent) => "Idempotent",
                    _ => "Unknown",
                };
                let input = paths.get(m.input_type()).ok_or_else(|| format!("unknown type {}", m.input_type()))?;
                let output = paths.get(m.output_type()).ok_or_else(|| format!("unknown type {}", m.output_type()))?;
                writeln!(
                    out,
                    "MethodDescriptor::new(\"{service}\", \"{}\", RpcKind::{kind}, Idempotency::{idempotency}, \
                     codec::<{input}>(\"{}\"), codec::<{output}>(\"{}\")),",
                    m.name(),
                    m.input_type().trim_start_matches('.'),
                    m.output_type().trim_start_matches('.'),
                )?;
            }
        }
    }
    out.push_str("]\n}\n");
    Ok(out)
}
