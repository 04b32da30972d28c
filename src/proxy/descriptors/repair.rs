//! Descriptors made whole, and written the way protoc writes them, where a generator did
//! otherwise (see each function).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_reflect::DescriptorPool;
use prost_reflect::prost_types::{DescriptorProto, FileDescriptorProto};

/// Replaces files that define the well-known types under a name of their own (@grpc/reflection
/// puts them all in `google_protobuf.proto`) with protobuf's own files
/// (`google/protobuf/timestamp.proto`, …): clients that link the well-known types (Go's
/// protobuf runtime, so `buf`) refuse a second definition of them from another file. Returns
/// the names of the files removed and of those added or changed.
pub(super) fn canonical_well_known_types(
    files: &mut BTreeMap<String, FileDescriptorProto>,
) -> (Vec<String>, Vec<String>) {
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
pub(super) fn normalize(files: &mut BTreeMap<String, FileDescriptorProto>, pool: &DescriptorPool) -> Vec<String> {
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
pub(super) fn add_missing_imports(files: &mut BTreeMap<String, FileDescriptorProto>) -> Vec<String> {
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

/// `package.name`, or `name` in the root package.
pub(super) fn qualified(package: &str, name: &str) -> String {
    if package.is_empty() { name.to_owned() } else { format!("{package}.{name}") }
}
