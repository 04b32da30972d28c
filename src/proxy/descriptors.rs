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
        let mut files = files;
        let (removed, mut changed) = canonical_well_known_types(&mut decoded);
        for name in removed {
            files.remove(&name);
        }
        changed.extend(add_missing_imports(&mut decoded));
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_protos(decoded.values().cloned()).map_err(SchemaError::from)?;
        let normalized = normalize(&mut decoded, &pool);
        if !normalized.is_empty() {
            // What the reflection clients will get must resolve too.
            pool = DescriptorPool::new();
            pool.add_file_descriptor_protos(decoded.values().cloned()).map_err(SchemaError::from)?;
            changed.extend(normalized);
        }
        for name in changed {
            files.insert(name.clone(), Bytes::from(decoded[&name].encode_to_vec()));
        }
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

/// Replaces files that define the well-known types under a name of their own (@grpc/reflection
/// puts them all in `google_protobuf.proto`) with protobuf's own files
/// (`google/protobuf/timestamp.proto`, …): clients that link the well-known types (Go's
/// protobuf runtime, so `buf`) refuse a second definition of them from another file. Returns
/// the names of the files removed and of those added or changed.
fn canonical_well_known_types(files: &mut BTreeMap<String, FileDescriptorProto>) -> (Vec<String>, Vec<String>) {
    let own: Vec<String> = files
        .iter()
        .filter(|(name, f)| f.package() == "google.protobuf" && !name.starts_with("google/protobuf/"))
        .map(|(name, _)| name.clone())
        .collect();
    if own.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let canonical: BTreeMap<String, FileDescriptorProto> =
        DescriptorPool::global().file_descriptor_protos().map(|f| (f.name().to_owned(), f.clone())).collect();
    let known: BTreeSet<String> = canonical.values().flat_map(defined).collect();
    // Only where every type they define is a well-known one: anything else stays as it is.
    if own.iter().any(|name| defined(&files[name]).iter().any(|s| !known.contains(s))) {
        return (Vec::new(), Vec::new());
    }
    let mut changed = Vec::new();
    for name in &own {
        files.remove(name);
    }
    for (name, file) in files.iter_mut() {
        let before = file.dependency.len();
        file.dependency.retain(|d| !own.contains(d));
        if file.dependency.len() != before {
            changed.push(name.clone());
        }
    }
    for (name, file) in canonical {
        if !files.contains_key(&name) {
            files.insert(name.clone(), file);
            changed.push(name);
        }
    }
    (own, changed)
}

/// Writes descriptors the way protoc does where a generator wrote them otherwise (protobufjs,
/// behind @grpc/reflection): type names fully qualified (`.pkg.Msg`, not `Msg`), map entries
/// named `<Field>Entry`, proto3 `optional` fields marked as such. Clients that validate
/// descriptors strictly (Go's, so `buf`) refuse them otherwise. `pool` is built from
/// `files` as they are (it resolves relative names). Returns the names of the files changed.
fn normalize(files: &mut BTreeMap<String, FileDescriptorProto>, pool: &DescriptorPool) -> Vec<String> {
    use prost_reflect::Kind;
    use prost_reflect::prost_types::MessageOptions;

    fn fix(messages: &mut [DescriptorProto], scope: &str, pool: &DescriptorPool) -> bool {
        let mut changed = false;
        for m in messages.iter_mut() {
            let full = qualified(scope, m.name());
            let Some(desc) = pool.get_message_by_name(&full) else { continue };
            let mut renames: Vec<(String, String)> = Vec::new();
            let oneofs: Vec<Option<i32>> = m.field.iter().map(|f| f.oneof_index).collect();
            for f in &mut m.field {
                let Some(fd) = desc.get_field(f.number() as u32) else { continue };
                let mut want = match fd.kind() {
                    Kind::Message(t) => Some(format!(".{}", t.full_name())),
                    Kind::Enum(t) => Some(format!(".{}", t.full_name())),
                    _ => None,
                };
                if let (true, Kind::Message(entry)) = (fd.is_map(), fd.kind()) {
                    let name = format!("{}Entry", heck_camel(f.name()));
                    if entry.name() != name {
                        renames.push((entry.name().to_owned(), name.clone()));
                        want = Some(format!(".{full}.{name}"));
                    }
                }
                if want.is_some() && f.type_name != want {
                    f.type_name = want;
                    changed = true;
                }
                let synthetic = f.oneof_index.and_then(|i| m.oneof_decl.get(i as usize)).is_some_and(|o| {
                    o.name() == format!("_{}", f.name()) && oneofs.iter().filter(|x| **x == f.oneof_index).count() == 1
                });
                if synthetic && !f.proto3_optional() {
                    f.proto3_optional = Some(true);
                    changed = true;
                }
            }
            changed |= synthetic_oneofs_last(m);
            changed |= fix(&mut m.nested_type, &full, pool);
            for (old, new) in renames {
                if let Some(n) = m.nested_type.iter_mut().find(|n| n.name() == old) {
                    n.name = Some(new);
                    n.options.get_or_insert_with(MessageOptions::default).map_entry = Some(true);
                    changed = true;
                }
            }
        }
        changed
    }

    let mut changed = Vec::new();
    for (name, file) in files.iter_mut() {
        let package = file.package().to_owned();
        let mut touched = fix(&mut file.message_type, &package, pool);
        for s in &mut file.service {
            let Some(svc) = pool.get_service_by_name(&qualified(&package, s.name())) else { continue };
            for m in &mut s.method {
                let Some(md) = svc.methods().find(|x| x.name() == m.name()) else { continue };
                let (input, output) = (format!(".{}", md.input().full_name()), format!(".{}", md.output().full_name()));
                if m.input_type() != input || m.output_type() != output {
                    m.input_type = Some(input);
                    m.output_type = Some(output);
                    touched = true;
                }
            }
        }
        if touched {
            changed.push(name.clone());
        }
    }
    changed
}

/// Puts the oneofs of proto3 `optional` fields after the message's real oneofs, where protoc
/// puts them (and Go requires them). Returns whether it moved any.
fn synthetic_oneofs_last(m: &mut DescriptorProto) -> bool {
    let synthetic: Vec<bool> = (0..m.oneof_decl.len())
        .map(|i| m.field.iter().any(|f| f.oneof_index == Some(i as i32) && f.proto3_optional()))
        .collect();
    let order: Vec<usize> =
        (0..synthetic.len()).filter(|&i| !synthetic[i]).chain((0..synthetic.len()).filter(|&i| synthetic[i])).collect();
    if order.iter().enumerate().all(|(new, &old)| new == old) {
        return false;
    }
    let decls = std::mem::take(&mut m.oneof_decl);
    m.oneof_decl = order.iter().map(|&old| decls[old].clone()).collect();
    for f in &mut m.field {
        if let Some(old) = f.oneof_index {
            f.oneof_index = order.iter().position(|&o| o as i32 == old).map(|new| new as i32);
        }
    }
    true
}

/// `snake_case` → `SnakeCase`, as protoc names map entries (`counts` → `CountsEntry`).
fn heck_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
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

/// The fully-qualified names (no leading dot) of the messages and enums a file defines. Map
/// entries are left out: they are used only where they are defined, and their names differ
/// between compilers (`FieldsEntry`, or protobufjs's `Fields`).
fn defined(file: &FileDescriptorProto) -> Vec<String> {
    fn walk(prefix: &str, messages: &[DescriptorProto], out: &mut Vec<String>) {
        for m in messages {
            if m.options.as_ref().is_some_and(|o| o.map_entry()) {
                continue;
            }
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
    fn names_are_qualified_map_entries_named_and_optional_fields_marked_as_protoc_does() {
        use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
        use prost_reflect::prost_types::{FieldDescriptorProto, MessageOptions, OneofDescriptorProto};
        let field =
            |name: &str, number, r#type: Type, type_name: Option<&str>, oneof: Option<i32>| FieldDescriptorProto {
                name: Some(name.into()),
                number: Some(number),
                label: Some(if name == "counts" { Label::Repeated } else { Label::Optional } as i32),
                r#type: Some(r#type as i32),
                type_name: type_name.map(Into::into),
                oneof_index: oneof,
                ..Default::default()
            };
        // What protobufjs writes: relative names, a map entry named after the field, a
        // proto3 `optional` field whose oneof comes first and is not marked synthetic.
        let entry = DescriptorProto {
            name: Some("Counts".into()),
            field: vec![field("key", 1, Type::String, None, None), field("value", 2, Type::Message, Some("Msg"), None)],
            options: Some(MessageOptions { map_entry: Some(true), ..Default::default() }),
            ..Default::default()
        };
        let msg = DescriptorProto {
            name: Some("Msg".into()),
            field: vec![
                field("maybe", 1, Type::Int32, None, Some(0)),
                field("a", 2, Type::String, None, Some(1)),
                field("b", 3, Type::Message, Some("Msg"), Some(1)),
                field("counts", 4, Type::Message, Some("Counts"), None),
            ],
            nested_type: vec![entry],
            oneof_decl: vec![
                OneofDescriptorProto { name: Some("_maybe".into()), ..Default::default() },
                OneofDescriptorProto { name: Some("choice".into()), ..Default::default() },
            ],
            ..Default::default()
        };
        let file = FileDescriptorProto {
            name: Some("acme.proto".into()),
            package: Some("acme".into()),
            message_type: vec![msg],
            syntax: Some("proto3".into()),
            ..Default::default()
        };
        let files = [("acme.proto".to_owned(), Bytes::from(file.encode_to_vec()))].into();
        let d = Descriptors::new(&[], files).expect("resolves");
        let fixed = FileDescriptorProto::decode(d.files["acme.proto"].as_ref()).expect("decodes");
        let m = &fixed.message_type[0];
        let names: Vec<_> = m.oneof_decl.iter().map(|o| o.name()).collect();
        assert_eq!(names, ["choice", "_maybe"]);
        assert_eq!((m.field[0].oneof_index, m.field[0].proto3_optional), (Some(1), Some(true)));
        assert_eq!(m.field[1].oneof_index, Some(0));
        assert_eq!(m.field[2].type_name(), ".acme.Msg");
        assert_eq!(m.field[3].type_name(), ".acme.Msg.CountsEntry");
        assert_eq!(m.nested_type[0].name(), "CountsEntry");
        assert_eq!(m.nested_type[0].field[1].type_name(), ".acme.Msg");
        assert!(d.schema.codec("acme.Msg").is_some());
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
        // The well-known types come from protobuf's own file, not from one named otherwise.
        let repaired = FileDescriptorProto::decode(d.files["acme.proto"].as_ref()).expect("decodes");
        assert_eq!(repaired.dependency, ["google/protobuf/empty.proto"]);
        assert!(!d.files.contains_key("google_protobuf.proto"));
        assert!(d.files.contains_key("google/protobuf/empty.proto"));
        let codec = d.schema.codec("acme.Req").expect("described");
        use crate::transcode::MessageCodec as _;
        assert_eq!(
            codec.binary_to_json(&codec.json_to_binary(br#"{"e": {}}"#).expect("reads")).expect("writes"),
            br#"{"e":{}}"#
        );
    }
}
