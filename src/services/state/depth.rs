//! How deeply a state value may nest, derived from the protos, so that every value the store
//! accepts can be decoded again everywhere it travels.
//!
//! prost decodes at most [`DECODE_LIMIT`] messages nested below the top-level one (as do
//! protobuf's C++, Java and upb decoders: their default recursion limit is 100 too). A
//! `google.protobuf.Value` spends messages on every level of JSON nesting (an array:
//! `Value → ListValue → Value`, 2; an object: `Value → Struct → FieldsEntry → Value`, 3: a
//! map entry is a message on the wire), and every message that carries a value wraps it in
//! more (`TxnResponse → OpResult → PutResponse → Entry → Value`). A value that decodes in
//! its request can therefore be too deep for the stored record or for a response, and
//! could then never be read back.
//!
//! [`derivation`] walks the descriptors compiled into the binary: every request and
//! response type of `portway.state.v1.StateService` and every form a backend stores
//! ([`super::backend::STORED_FORMS`]), finds how deep each one nests its deepest `Value`,
//! and admits the deepest JSON nesting that fits all of them with [`SPARE`] messages to
//! spare. Nothing here is a guess: the tests check every number against prost itself.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message as _;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet};

use super::backend::STORED_FORMS;

/// Messages prost decodes nested below the top-level message (its private `RECURSION_LIMIT`).
pub const DECODE_LIMIT: usize = 100;

/// Nesting levels left free in the deepest carrier even for a value at the limit: a response
/// that one day wraps values one message deeper still carries every value already stored,
/// and a decoder that counts the top-level message against its limit still reads it.
pub const SPARE: usize = 2;

/// The depth the store admits by default when the protos allow it (the gateway's JSON
/// nesting limit has the same default).
pub const PREFERRED_DEPTH: usize = 32;

const VALUE: &str = ".google.protobuf.Value";
const SERVICE: &str = "portway.state.v1.StateService";

/// A message that carries values, and how deep it nests them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carrier {
    /// The message (`portway.state.v1.TxnResponse`) or the stored form (`redb log record`).
    pub what: String,
    /// Messages from the carrier down to its deepest `google.protobuf.Value` (the carrier
    /// itself is 0; `GetResponse → Entry → Value` is 2).
    pub nesting: usize,
}

/// What the limit is derived from, and the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    /// Messages one level of JSON nesting costs at worst (an object: 3).
    pub per_level: usize,
    /// Every message that carries a value, deepest first.
    pub carriers: Vec<Carrier>,
    /// The deepest JSON nesting every carrier decodes with [`SPARE`] levels left:
    /// `(DECODE_LIMIT - SPARE - deepest nesting) / per_level`.
    pub ceiling: usize,
}

impl Derivation {
    /// The carrier that nests values deepest.
    pub fn deepest(&self) -> Option<&Carrier> {
        self.carriers.first()
    }

    /// The default limit: [`PREFERRED_DEPTH`], unless the ceiling is lower.
    pub fn default_depth(&self) -> usize {
        self.ceiling.min(PREFERRED_DEPTH)
    }
}

/// The derivation from the descriptors compiled into the binary (computed once).
pub fn derivation() -> Result<&'static Derivation, &'static str> {
    static DERIVED: OnceLock<Result<Derivation, String>> = OnceLock::new();
    DERIVED.get_or_init(|| derive(crate::pb::FILE_DESCRIPTOR_SET)).as_ref().map_err(String::as_str)
}

/// The default `max_value_depth` (0 if the descriptors cannot be read, which
/// [`super::Store::open`] then reports).
pub fn default_max_value_depth() -> usize {
    derivation().map_or(0, Derivation::default_depth)
}

fn derive(descriptor_set: &[u8]) -> Result<Derivation, String> {
    let set = FileDescriptorSet::decode(descriptor_set)
        .map_err(|e| format!("the compiled-in descriptor set does not decode: {e}"))?;
    let mut messages: HashMap<String, &DescriptorProto> = HashMap::new();
    for file in &set.file {
        let scope = file.package.as_deref().map_or(String::new(), |p| format!(".{p}"));
        for m in &file.message_type {
            index(&scope, m, &mut messages);
        }
    }
    let messages = Messages(messages);
    let per_level = messages
        .deepest_value(VALUE, &mut vec![VALUE.to_string()])
        .ok_or("google.protobuf.Value is not in the descriptor set")?;

    let service = set
        .file
        .iter()
        .filter(|f| f.package.as_deref() == Some("portway.state.v1"))
        .flat_map(|f| &f.service)
        .find(|s| s.name.as_deref() == Some("StateService"))
        .ok_or_else(|| format!("{SERVICE} is not in the descriptor set"))?;
    let mut types: Vec<&str> =
        service.method.iter().flat_map(|m| [m.input_type.as_deref(), m.output_type.as_deref()]).flatten().collect();
    types.sort_unstable();
    types.dedup();
    let mut carriers = Vec::new();
    for t in types {
        if let Some(nesting) = messages.deepest_value(t, &mut vec![t.to_string()]) {
            carriers.push(Carrier { what: t.trim_start_matches('.').to_string(), nesting });
        }
    }
    for form in STORED_FORMS {
        let inner = messages
            .deepest_value(form.message, &mut vec![form.message.to_string()])
            .ok_or_else(|| format!("{} ({}) carries no value", form.what, form.message))?;
        carriers.push(Carrier { what: form.what.to_string(), nesting: inner + form.wrappers });
    }
    carriers.sort_by(|a, b| b.nesting.cmp(&a.nesting).then_with(|| a.what.cmp(&b.what)));
    let deepest = carriers.first().map_or(0, |c| c.nesting);
    let room = DECODE_LIMIT
        .checked_sub(SPARE + deepest)
        .ok_or_else(|| format!("values nest {deepest} messages deep, beyond what protobuf decodes"))?;
    Ok(Derivation { per_level, carriers, ceiling: room / per_level.max(1) })
}

/// Indexes `m` and its nested messages by fully qualified name (`.pkg.Outer.Inner`).
fn index<'a>(scope: &str, m: &'a DescriptorProto, into: &mut HashMap<String, &'a DescriptorProto>) {
    let name = format!("{scope}.{}", m.name());
    for nested in &m.nested_type {
        index(&name, nested, into);
    }
    into.insert(name, m);
}

struct Messages<'a>(HashMap<String, &'a DescriptorProto>);

impl Messages<'_> {
    /// How many messages below `name` its deepest `google.protobuf.Value` field lies (a
    /// `Value` field of `name` itself: 1); `None` if it carries none. A field leading back
    /// into `path` is not followed (no message of the state API nests itself other than
    /// through `Value`).
    fn deepest_value(&self, name: &str, path: &mut Vec<String>) -> Option<usize> {
        let message = self.0.get(name)?;
        let mut deepest = None;
        for field in &message.field {
            if !matches!(field.r#type(), Type::Message | Type::Group) {
                continue;
            }
            let child = field.type_name();
            let below = if child == VALUE {
                Some(1)
            } else if path.iter().any(|p| p == child) {
                None
            } else {
                path.push(child.to_string());
                let d = self.deepest_value(child, path).map(|d| d + 1);
                path.pop();
                d
            };
            deepest = deepest.max(below);
        }
        deepest
    }
}

#[cfg(test)]
#[path = "depth_tests.rs"]
mod tests;
