//! JSON ⇄ protobuf from descriptors known only at run time (a proxied server's reflection,
//! a descriptor-set file, an embedder's `FILE_DESCRIPTOR_SET`), behind the same
//! [`MessageCodec`] as the generated codecs, printing the same bytes for the same message.
//!
//! prost-reflect resolves the descriptors; the codec itself goes straight between JSON and
//! the wire format (`ser`, `de`, by per-type plans computed once: `plan`), without building
//! dynamic messages: prost-reflect's `DynamicMessage` and its serde impls cost four times the
//! generated path, write fields in number order and maps in hash order, and read numbers and
//! `null` by other rules than the generated code. What has a JSON rule of its own (numbers,
//! bytes, the well-known types) is handed to the very code the generated path uses (`shared`).

mod de;
mod plan;
mod ser;
mod shared;
#[cfg(test)]
mod tests;
mod wire;

use std::sync::Arc;

use prost_reflect::prost_types::method_options::IdempotencyLevel;
use prost_reflect::{DescriptorPool, MessageDescriptor, MethodDescriptor as ProtoMethod};
use serde::de::DeserializeSeed as _;

use super::codec::{CodecError, MessageCodec, json_size_hint};
use super::method::{Idempotency, MethodDescriptor, MethodTable, RpcKind};
use plan::Plans;

/// Why a set of descriptors could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the protobuf descriptors are not usable: {0}")]
pub struct SchemaError(#[from] prost_reflect::DescriptorError);

/// Protobuf descriptors learned at run time, and the JSON plans of their message types.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Schema {
    pool: DescriptorPool,
    plans: Arc<Plans>,
}

impl Schema {
    /// Reads an encoded `FileDescriptorSet` (what `protoc --include_imports
    /// --descriptor_set_out`, `buf build -o` and tonic-build's `FILE_DESCRIPTOR_SET` hold).
    /// Every file's imports must be in the set.
    pub fn decode(file_descriptor_set: &[u8]) -> Result<Self, SchemaError> {
        Ok(Self::from_pool(DescriptorPool::decode(file_descriptor_set)?))
    }

    /// The descriptors of `pool`.
    pub fn from_pool(pool: DescriptorPool) -> Self {
        super::codec::register_any_types();
        let plans = Arc::new(Plans::new(&pool));
        Self { pool, plans }
    }

    /// The descriptor pool.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The fully-qualified names of the services the descriptors declare.
    pub fn services(&self) -> impl Iterator<Item = String> + '_ {
        self.pool.services().map(|s| s.full_name().to_owned())
    }

    /// The codec of message type `type_name` (fully qualified, no leading dot).
    pub fn codec(&self, type_name: &str) -> Option<DynamicCodec> {
        let index = self.plans.index(type_name)?;
        Some(DynamicCodec { plans: self.plans.clone(), index })
    }

    fn codec_of(&self, desc: &MessageDescriptor) -> Arc<dyn MessageCodec> {
        // Every message of the pool has a plan.
        let index = self.plans.index(desc.full_name()).unwrap_or_default();
        Arc::new(DynamicCodec { plans: self.plans.clone(), index })
    }

    /// One method-table entry per method of every service, with codecs from these
    /// descriptors.
    pub fn methods(&self) -> impl Iterator<Item = MethodDescriptor> + '_ {
        self.pool.services().flat_map(|s| s.methods().collect::<Vec<_>>()).map(|m| self.method(&m))
    }

    /// The methods of service `name` only.
    pub fn service_methods(&self, name: &str) -> Vec<MethodDescriptor> {
        self.pool.get_service_by_name(name).map(|s| s.methods().map(|m| self.method(&m)).collect()).unwrap_or_default()
    }

    fn method(&self, m: &ProtoMethod) -> MethodDescriptor {
        let kind = match (m.is_client_streaming(), m.is_server_streaming()) {
            (false, false) => RpcKind::Unary,
            (false, true) => RpcKind::ServerStreaming,
            (true, false) => RpcKind::ClientStreaming,
            (true, true) => RpcKind::BidiStreaming,
        };
        let idempotency = match m.method_descriptor_proto().options.as_ref().map(|o| o.idempotency_level()) {
            Some(IdempotencyLevel::NoSideEffects) => Idempotency::NoSideEffects,
            Some(IdempotencyLevel::Idempotent) => Idempotency::Idempotent,
            _ => Idempotency::Unknown,
        };
        let (input, output) = (self.codec_of(&m.input()), self.codec_of(&m.output()));
        MethodDescriptor::new(m.parent_service().full_name(), m.name(), kind, idempotency, input, output)
    }

    /// Adds every method of these descriptors that `table` does not have yet: entries
    /// already there (the generated ones, whose codecs are faster) win.
    pub fn extend_table(&self, table: &mut MethodTable) {
        for method in self.methods() {
            if table.get(method.path()).is_none() {
                table.insert(method);
            }
        }
    }
}

/// The [`MessageCodec`] of one message type known from descriptors.
#[derive(Clone)]
pub struct DynamicCodec {
    plans: Arc<Plans>,
    index: usize,
}

impl MessageCodec for DynamicCodec {
    fn type_name(&self) -> &str {
        &self.plans.get(self.index).full_name
    }

    fn json_to_binary(&self, json: &[u8]) -> Result<Vec<u8>, CodecError> {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let invalid = |e: serde_json::Error| CodecError(format!("invalid JSON for {}: {e}", self.type_name()));
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let binary = de::MessageSeed { plans: &self.plans, index: self.index }
            .deserialize(&mut deserializer)
            .map_err(invalid)?;
        deserializer.end().map_err(invalid)?;
        Ok(binary)
    }

    fn binary_to_json(&self, binary: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(json_size_hint(binary.len()));
        self.binary_to_json_into(binary, &mut out)?;
        Ok(out)
    }

    fn binary_to_json_into(&self, binary: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let message =
            ser::MessageJson { plans: &self.plans, index: self.index, spans: ser::Spans::One(binary), depth: 0 };
        // Writing valid protobuf as JSON cannot fail: every error is in the binary.
        shared::to_writer(&message, out)
            .map_err(|e| CodecError(format!("invalid protobuf for {}: {e}", self.type_name())))
    }
}

impl std::fmt::Debug for DynamicCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DynamicCodec").field(&self.type_name()).finish()
    }
}
