//! Compiles every `.proto` under `proto/` with no system `protoc`:
//!
//! 1. protox parses the protos into a `FileDescriptorSet`, written to
//!    `OUT_DIR/portway_descriptor.bin` (served by gRPC reflection);
//! 2. tonic-prost-build generates the prost messages and the tonic servers and clients;
//! 3. pbjson-build generates the canonical protobuf JSON serde impls for every message, and
//!    `build/json_patch.rs` rewrites them where pbjson departs from the mapping (numbers, open
//!    enums, `null`, map order), pointing them at `src/protojson`, which also provides the
//!    well-known types whose JSON pbjson-types gets wrong;
//! 4. this script writes `OUT_DIR/pb.rs`, the module tree that includes all of the above, and
//!    `OUT_DIR/method_table.rs`, one entry per RPC (path, kind, idempotency, JSON codecs for
//!    its request and response types). Every JSON path in the gateway reads that table, so a
//!    service added to `proto/` is reachable over every protocol with no hand-written mapping.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use heck::{ToSnakeCase, ToUpperCamelCase};

#[path = "build/any_type.rs"]
mod any_type;
#[path = "build/json_patch.rs"]
mod json_patch;
use prost::Message as _;
use prost_types::{DescriptorProto, FileDescriptorSet, MethodOptions, method_options::IdempotencyLevel};

#[path = "build/web_assets.rs"]
mod web_assets;

const WELL_KNOWN: &str = ".google.protobuf";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build/json_patch.rs");
    println!("cargo:rerun-if-changed=build/any_type.rs");
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

    let mut prost = tonic_prost_build::configure()
        .compile_well_known_types(true)
        .extern_path(WELL_KNOWN, "::pbjson_types")
        .btree_map(".")
        .build_client(true)
        .build_server(true);
    for (proto, rust) in own_well_known_types() {
        prost = prost.extern_path(proto, rust);
    }
    prost.compile_fds(fds.clone())?;

    let prefixes: Vec<String> = packages.iter().map(|p| format!(".{p}")).collect();
    let mut json = pbjson_build::Builder::new();
    json.register_descriptors(&descriptor_bytes)?
        .extern_path(WELL_KNOWN, "::pbjson_types")
        .btree_map(["."])
        .ignore_unknown_fields();
    for (proto, rust) in own_well_known_types() {
        json.extern_path(proto, rust);
    }
    json.build(&prefixes)?;
    patch_json(&fds, &packages, &out_dir)?;

    std::fs::write(out_dir.join("any_types.rs"), any_type::generate(&fds, &type_paths(&fds), OWN_WELL_KNOWN))?;
    std::fs::write(out_dir.join("pb.rs"), module_tree(&packages, &out_dir))?;
    std::fs::write(out_dir.join("method_table.rs"), method_table(&fds)?)?;
    web_assets::embed(&out_dir)?;
    Ok(())
}

/// The well-known types whose JSON form `src/protojson` writes (and `Any`, whose type lookup
/// `build/any_type.rs` generates; the rest of `google.protobuf` comes from pbjson-types).
const OWN_WELL_KNOWN: &[&str] = &[
    "Timestamp",
    "Duration",
    "Struct",
    "Value",
    "ListValue",
    "NullValue",
    "FieldMask",
    "DoubleValue",
    "FloatValue",
    "Int64Value",
    "UInt64Value",
    "Int32Value",
    "UInt32Value",
    "BoolValue",
    "StringValue",
    "BytesValue",
];

/// The `extern_path`s of the well-known types portway provides, as (`.google.protobuf.X`,
/// Rust path).
fn own_well_known_types() -> impl Iterator<Item = (String, String)> {
    let own = OWN_WELL_KNOWN.iter().map(|t| (format!("{WELL_KNOWN}.{t}"), format!("crate::protojson::{t}")));
    own.chain([(format!("{WELL_KNOWN}.Any"), any_type::RUST_PATH.to_string())])
}

/// Rewrites pbjson's generated JSON impls where pbjson 0.9 departs from the canonical
/// mapping (see `build/json_patch.rs`); fails the build if they do not have the expected shape.
fn patch_json(fds: &FileDescriptorSet, packages: &BTreeSet<String>, out_dir: &Path) -> std::io::Result<()> {
    for pkg in packages {
        let files = fds.file.iter().filter(|f| f.package() == pkg);
        let mut expect = json_patch::Expect::default();
        let mut has_messages = false;
        for file in files {
            has_messages |= !file.message_type.is_empty() || !file.enum_type.is_empty();
            declared(&file.message_type, &mut expect);
        }
        let path = out_dir.join(format!("{pkg}.serde.rs"));
        match std::fs::read_to_string(&path) {
            Ok(code) => std::fs::write(&path, json_patch::patch(pkg, &code, expect))?,
            Err(e) if has_messages => panic!("build.rs: pbjson-build wrote no {}: {e}", path.display()),
            Err(_) => {}
        }
    }
    Ok(())
}

/// Notes which kinds of field `messages` (and the messages nested in them) declare.
fn declared(messages: &[DescriptorProto], expect: &mut json_patch::Expect) {
    use prost_types::field_descriptor_proto::Type;
    for m in messages {
        for f in &m.field {
            match f.r#type() {
                Type::Enum => expect.enums = true,
                Type::Message | Type::Group | Type::String | Type::Bytes | Type::Bool => {}
                _ => expect.numbers = true,
            }
        }
        declared(&m.nested_type, expect);
    }
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
