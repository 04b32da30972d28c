//! JSON ⇄ protobuf for one message type.
//!
//! [`MessageCodec`] is the one interface every JSON path uses. The generated method table
//! fills it with [`PbjsonCodec`] (the pbjson serde impls of a prost type); a proxy that
//! learns its types at run time (from reflection or a descriptor file) can add its own
//! implementation without touching any protocol adapter.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a message could not be transcoded. The caller decides the status code: bad input
/// from a client is `INVALID_ARGUMENT`, a bad message from the service is `INTERNAL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// Converts one protobuf message type between its binary encoding and the protobuf
/// canonical JSON mapping.
pub trait MessageCodec: Send + Sync + 'static {
    /// The fully-qualified protobuf type name, e.g. `grpc.testing.SimpleRequest`.
    fn type_name(&self) -> &str;
    /// Parses canonical JSON (either field-name style accepted, unknown fields ignored) and
    /// returns the binary protobuf encoding. An empty input is the empty message.
    fn json_to_binary(&self, json: &[u8]) -> Result<Vec<u8>, CodecError>;
    /// Decodes binary protobuf and returns canonical JSON (lowerCamelCase field names).
    fn binary_to_json(&self, binary: &[u8]) -> Result<Vec<u8>, CodecError>;
}

/// A [`MessageCodec`] built on a prost type and its pbjson-generated serde impls.
pub struct PbjsonCodec<T> {
    type_name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> PbjsonCodec<T> {
    /// A codec for `T`, whose protobuf full name is `type_name`.
    pub const fn new(type_name: &'static str) -> Self {
        Self { type_name, _type: PhantomData }
    }
}

impl<T> MessageCodec for PbjsonCodec<T>
where
    T: prost::Message + Default + Serialize + DeserializeOwned + 'static,
{
    fn type_name(&self) -> &str {
        self.type_name
    }

    fn json_to_binary(&self, json: &[u8]) -> Result<Vec<u8>, CodecError> {
        let is_blank = json.iter().all(u8::is_ascii_whitespace);
        let message: T = if is_blank {
            T::default()
        } else {
            serde_json::from_slice(json).map_err(|e| CodecError(format!("invalid JSON for {}: {e}", self.type_name)))?
        };
        Ok(message.encode_to_vec())
    }

    fn binary_to_json(&self, binary: &[u8]) -> Result<Vec<u8>, CodecError> {
        let message =
            T::decode(binary).map_err(|e| CodecError(format!("invalid protobuf for {}: {e}", self.type_name)))?;
        // Sized for the usual expansion (field names, base64 of bytes fields), so that the
        // buffer seldom grows while it is written.
        let mut json = Vec::with_capacity(binary.len().saturating_mul(2).saturating_add(64));
        serde_json::to_writer(&mut json, &message)
            .map_err(|e| CodecError(format!("cannot encode {} as JSON: {e}", self.type_name)))?;
        Ok(json)
    }
}

/// The codec for a generated type; used by the generated method table.
pub fn codec<T>(type_name: &'static str) -> Arc<dyn MessageCodec>
where
    T: prost::Message + Default + Serialize + DeserializeOwned + 'static,
{
    Arc::new(PbjsonCodec::<T>::new(type_name))
}
