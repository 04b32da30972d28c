//! The descriptors of an upstream's services, from its reflection or from a descriptor-set
//! file, made whole: a file that uses a type from another file without importing it (the
//! files @grpc/reflection synthesizes per package import nothing) gets the import, so that
//! the descriptors resolve, here and for the reflection clients portway serves them to.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::DescriptorPool;
use prost_reflect::prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

use crate::transcode::dynamic::{Schema, SchemaError};

/// Services a proxy never forwards: portway answers them itself, for every service it serves.
pub const OWN_SERVICES: [&str; 3] =
    ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// One upstream's services and descriptors.
#[derive(Debug, Clone)]
pub struct Descriptors {
    /// The services to forward (never portway's own, [`OWN_SERVICES`]).
    pub services: Vec<String>,
    /// Every file, encoded, by name (the originals where nothing was added).
    pub files: BTreeMap<String, Bytes>,
    /// The same, resolved: codecs and method-table entries.
    pub schema: Schema,
}

/// Why descriptors could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorsError {
    /// A descriptor-set file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A descriptor-set file does not hold a `FileDescriptorSet`.
    #[error(
        "{path} is not a FileDescriptorSet (write one with `buf build -o FILE` or `protoc --include_imports --descriptor_set_out=FILE`): {source}"
    )]
    Decode {
        /// The file.
        path: String,
        /// Why.
        source: prost::DecodeError,
    },
    /// A file descriptor does not decode.
    #[error("a file descriptor does not decode: {0}")]
    File(prost::DecodeError),
    /// The descriptors do not resolve.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

impl Descriptors {
    /// The services `listed` (by reflection, say) whose descriptors are among `files`.
    pub fn new(listed: &[String], files: BTreeMap<String, Bytes>) -> Result<Self, DescriptorsError> {
        let mut decoded = BTreeMap::new();
        for (name, raw) in &files {
            decoded.insert(name.clone(), FileDescriptorProto::decode(raw.as_ref()).map_err(DescriptorsError::File)?);
        }
        let repaired = add_missing_imports(&mut decoded);
        let mut files = files;
        for name in repaired {
            files.insert(name.clone(), Bytes::from(decoded[&name].encode_to_vec()));
        }
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_protos(decoded.into_values()).map_err(SchemaError::from)?;
        let schema = Schema::from_pool(pool);
        let described: BTreeSet<String> = schema.services().collect();
        let services =
            listed.iter().filter(|s| described.contains(*s) && !OWN_SERVICES.contains(&s.as_str())).cloned().collect();
        Ok(Self { services, files, schema })
    }

    /// Every service of a descriptor-set file (what `buf build -o` or `protoc
    /// --include_imports --descriptor_set_out` writes).
    pub fn read(path: &Path) -> Result<Self, DescriptorsError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| DescriptorsError::Read { path: shown.clone(), source })?;
        Self::decode(&bytes).map_err(|e| match e {
            DescriptorsError::File(source) => DescriptorsError::Decode { path: shown, source },
            other => other,
        })
    }

    /// Every service of an encoded `FileDescriptorSet`.
    pub fn decode(file_descriptor_set: &[u8]) -> Result<Self, DescriptorsError> {
        let set = FileDescriptorSet::decode(file_descriptor_set).map_err(DescriptorsError::File)?;
        let mut services = Vec::new();
        let mut files = BTreeMap::new();
        for file in set.file {
            for s in &file.service {
                services.push(qualified(file.package(), s.name()));
            }
            files.insert(file.name().to_owned(), Bytes::from(file.encode_to_vec()));
        }
        Self::new(&services, files)
    }
}

fn qualified(package: &str, name: &str) -> String {
    if package.is_empty() { name.to_owned() } else { format!("{package}.{name}") }
}

/// Adds to each file the imports it needs and does not declare (the file defining a type it
/// uses); returns the names of the files it changed.
fn add_missing_imports(files: &mut BTreeMap<String, FileDescriptorProto>) -> Vec<String> {
    let mut defined_in: HashMap<String, String> = HashMap::new();
    for (name, file) in files.iter() {
        for symbol in defined(file) {
            defined_in.entry(symbol).or_insert_with(|| name.clone());
        }
    }
    let mut changed = Vec::new();
    let names: Vec<String> = files.keys().cloned().collect();
    for name in names {
        let visible = visible_symbols(files, &name);
        let file = &files[&name];
        let mut needed: BTreeSet<String> = BTreeSet::new();
        for used in used(file) {
            let used = used.trim_start_matches('.');
            if !visible.contains(used)
                && let Some(home) = defined_in.get(used)
                && *home != name
            {
                needed.insert(home.clone());
            }
        }
        if !needed.is_empty()
            && let Some(file) = files.get_mut(&name)
        {
            file.dependency.extend(needed);
            changed.push(name);
        }
    }
    changed
}

/// The symbols a file and everything it imports (transitively) define.
fn visible_symbols(files: &BTreeMap<String, FileDescriptorProto>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_owned()];
    let mut symbols = BTreeSet::new();
    while let Some(n) = todo.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        if let Some(file) = files.get(&n) {
            symbols.extend(defined(file));
            todo.extend(file.dependency.iter().cloned());
        }
    }
    symbols
}

/// The fully-qualified names (no leading dot) of the messages and enums a file defines.
fn defined(file: &FileDescriptorProto) -> Vec<String> {
    fn walk(prefix: &str, messages: &[DescriptorProto], out: &mut Vec<String>) {
        for m in messages {
            let name = qualified(prefix, m.name());
            out.extend(m.enum_type.iter().map(|e| qualified(&name, e.name())));
            walk(&name, &m.nested_type, out);
            out.push(name);
        }
    }
    let mut out: Vec<String> = file.enum_type.iter().map(|e| qualified(file.package(), e.name())).collect();
    walk(file.package(), &file.message_type, &mut out);
    out
}

/// The type names a file refers to (fields, methods, extensions), as written.
fn used(file: &FileDescriptorProto) -> Vec<String> {
    fn walk(messages: &[DescriptorProto], out: &mut Vec<String>) {
        for m in messages {
            out.extend(m.field.iter().chain(&m.extension).filter_map(|f| f.type_name.clone()));
            out.extend(m.extension.iter().filter_map(|f| f.extendee.clone()));
            walk(&m.nested_type, out);
        }
    }
    let mut out = Vec::new();
    walk(&file.message_type, &mut out);
    for s in &file.service {
        for m in &s.method {
            out.extend([m.input_type.clone(), m.output_type.clone()].into_iter().flatten());
        }
    }
    out.extend(file.extension.iter().flat_map(|f| [f.type_name.clone(), f.extendee.clone()]).flatten());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portway_own_descriptor_set_reads_whole() {
        let d = Descriptors::decode(crate::pb::FILE_DESCRIPTOR_SET).expect("decodes");
        assert!(d.services.contains(&"grpc.testing.TestService".to_string()), "{:?}", d.services);
        assert!(!d.services.iter().any(|s| OWN_SERVICES.contains(&s.as_str())));
        assert!(d.schema.codec("portway.state.v1.PutRequest").is_some());
    }

    #[test]
    fn a_file_that_does_not_import_what_it_uses_gets_the_import() {
        use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
        use prost_reflect::prost_types::{FieldDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};
        let wkt = FileDescriptorProto {
            name: Some("google_protobuf.proto".into()),
            package: Some("google.protobuf".into()),
            message_type: vec![DescriptorProto { name: Some("Empty".into()), ..Default::default() }],
            syntax: Some("proto3".into()),
            ..Default::default()
        };
        let api = FileDescriptorProto {
            name: Some("acme.proto".into()),
            package: Some("acme".into()),
            message_type: vec![DescriptorProto {
                name: Some("Req".into()),
                field: vec![FieldDescriptorProto {
                    name: Some("e".into()),
                    number: Some(1),
                    label: Some(Label::Optional as i32),
                    r#type: Some(Type::Message as i32),
                    type_name: Some(".google.protobuf.Empty".into()),
                    json_name: Some("e".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            service: vec![ServiceDescriptorProto {
                name: Some("Api".into()),
                method: vec![MethodDescriptorProto {
                    name: Some("Call".into()),
                    input_type: Some(".acme.Req".into()),
                    output_type: Some(".google.protobuf.Empty".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            syntax: Some("proto3".into()),
            ..Default::default()
        };
        let files: BTreeMap<String, Bytes> =
            [&wkt, &api].iter().map(|f| (f.name().to_owned(), Bytes::from(f.encode_to_vec()))).collect();
        let d = Descriptors::new(&["acme.Api".into(), "grpc.health.v1.Health".into()], files).expect("resolves");
        assert_eq!(d.services, ["acme.Api"]);
        let repaired = FileDescriptorProto::decode(d.files["acme.proto"].as_ref()).expect("decodes");
        assert_eq!(repaired.dependency, ["google_protobuf.proto"]);
        assert_eq!(d.files["google_protobuf.proto"], Bytes::from(wkt.encode_to_vec()), "untouched files stay as sent");
        let codec = d.schema.codec("acme.Req").expect("described");
        use crate::transcode::MessageCodec as _;
        assert_eq!(
            codec.binary_to_json(&codec.json_to_binary(br#"{"e": {}}"#).expect("reads")).expect("writes"),
            br#"{"e":{}}"#
        );
    }
}
