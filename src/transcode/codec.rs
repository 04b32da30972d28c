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

use crate::protojson;

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
    /// Like [`binary_to_json`](Self::binary_to_json), but appends the JSON to `out`, so an
    /// adapter can write a message straight into its own frame instead of copying it there
    /// (the WebSocket adapter does). On error, `out` may hold a partial message.
    fn binary_to_json_into(&self, binary: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&self.binary_to_json(binary)?);
        Ok(())
    }
}

/// A first guess at the JSON size of a binary message, so the output buffer rarely grows
/// (each growth copies what was written so far): numbers take about three times their
/// binary size as text, bytes four thirds (base64).
pub fn json_size_hint(binary_len: usize) -> usize {
    binary_len.saturating_mul(3).saturating_add(32)
}

/// A [`MessageCodec`] built on a prost type and its pbjson-generated serde impls, with the
/// canonical text rules of [`crate::protojson`]. It reads JSON nested as deep as the parser
/// takes ([`protojson::PARSER_MAX_DEPTH`]); the gateway wraps every codec of its method table
/// in [`DepthLimited`] with the configured limit.
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
        let mut out = Vec::with_capacity(json_size_hint(binary.len()));
        self.binary_to_json_into(binary, &mut out)?;
        Ok(out)
    }

    fn binary_to_json_into(&self, binary: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let message =
            T::decode(binary).map_err(|e| CodecError(format!("invalid protobuf for {}: {e}", self.type_name)))?;
        protojson::to_writer(&message, out)
            .map_err(|e| CodecError(format!("cannot encode {} as JSON: {e}", self.type_name)))
    }
}

/// A codec that refuses JSON nested deeper than `max_depth` levels before the codec it wraps
/// reads it, so that one limit holds for every JSON path whatever the codec (generated or
/// learned at run time). Writing JSON is passed through: binary messages are bounded by
/// prost's own recursion limit.
pub struct DepthLimited {
    inner: Arc<dyn MessageCodec>,
    max_depth: usize,
}

impl DepthLimited {
    /// `inner`, reading JSON at most `max_depth` levels deep.
    pub fn new(inner: Arc<dyn MessageCodec>, max_depth: usize) -> Self {
        Self { inner, max_depth }
    }
}

impl MessageCodec for DepthLimited {
    fn type_name(&self) -> &str {
        self.inner.type_name()
    }

    fn json_to_binary(&self, json: &[u8]) -> Result<Vec<u8>, CodecError> {
        protojson::check_depth(json, self.max_depth)
            .map_err(|e| CodecError(format!("invalid JSON for {}: {e}", self.inner.type_name())))?;
        self.inner.json_to_binary(json)
    }

    fn binary_to_json(&self, binary: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.inner.binary_to_json(binary)
    }

    fn binary_to_json_into(&self, binary: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.inner.binary_to_json_into(binary, out)
    }
}

/// The codec for a generated type; used by the generated method table. Also registers the
/// types a `google.protobuf.Any` may hold (the generated `any_type`) for its JSON.
pub fn codec<T>(type_name: &'static str) -> Arc<dyn MessageCodec>
where
    T: prost::Message + Default + Serialize + DeserializeOwned + 'static,
{
    register_any_types();
    Arc::new(PbjsonCodec::<T>::new(type_name))
}

/// Registers the types a `google.protobuf.Any` may hold (the generated `any_type`) with
/// [`protojson::any`]; every codec calls it before its first use.
pub(crate) fn register_any_types() {
    protojson::any::register_types(any_type);
}

include!(concat!(env!("OUT_DIR"), "/any_types.rs"));

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::protojson::{FloatValue, Value, value::Kind};

    fn value_json(number: f64) -> String {
        let codec = PbjsonCodec::<Value>::new("google.protobuf.Value");
        let value = Value { kind: Some(Kind::NumberValue(number)) };
        String::from_utf8(codec.binary_to_json(&value.encode_to_vec()).expect("encodes")).expect("UTF-8")
    }

    #[test]
    fn whole_numbers_are_written_without_a_fraction() {
        assert_eq!(value_json(1.0), "1");
        assert_eq!(value_json(-3.0), "-3");
        assert_eq!(value_json(9_007_199_254_740_992.0), "9007199254740992.0");
        assert_eq!(value_json(1.5), "1.5");
        assert_eq!(value_json(-0.0), "-0.0");
        // And they read back as the same numbers.
        let codec = PbjsonCodec::<Value>::new("google.protobuf.Value");
        for n in [1.0, -3.0, 1.5, 1e300, -9_007_199_254_740_991.0, 9_007_199_254_740_992.0] {
            let binary = codec.json_to_binary(value_json(n).as_bytes()).expect("decodes");
            let back = Value::decode(binary.as_slice()).expect("protobuf");
            assert_eq!(back.kind, Some(Kind::NumberValue(n)));
        }
    }

    #[test]
    fn floats_follow_the_same_rule() {
        let codec = PbjsonCodec::<FloatValue>::new("google.protobuf.FloatValue");
        let json = |v: f32| {
            let bin = FloatValue { value: v }.encode_to_vec();
            String::from_utf8(codec.binary_to_json(&bin).expect("encodes")).expect("UTF-8")
        };
        assert_eq!(json(2.0), "2");
        assert_eq!(json(0.1), "0.1");
        assert_eq!(json(f32::NAN), "\"NaN\"");
        for v in [2.0, 0.1, 16_777_216.0, -16_777_216.0, 3e38, f32::INFINITY] {
            let binary = codec.json_to_binary(json(v).as_bytes()).expect("decodes");
            assert_eq!(FloatValue::decode(binary.as_slice()).expect("protobuf").value, v);
        }
    }

    #[test]
    fn the_depth_limit_refuses_deep_json_before_parsing_it() {
        let codec = DepthLimited::new(codec::<Value>("google.protobuf.Value"), 32);
        let nested = |levels: usize| "[".repeat(levels) + &"]".repeat(levels);
        assert!(codec.json_to_binary(nested(32).as_bytes()).is_ok());
        let err = codec.json_to_binary(nested(33).as_bytes()).unwrap_err();
        assert_eq!(
            err.0,
            "invalid JSON for google.protobuf.Value: the JSON nests objects and arrays more than 32 levels deep"
        );
        assert!(codec.json_to_binary(nested(100_000).as_bytes()).is_err());
        assert_eq!(codec.type_name(), "google.protobuf.Value");
    }

    #[test]
    fn hostile_bytes_are_errors() {
        let codec = DepthLimited::new(codec::<Value>("google.protobuf.Value"), 32);
        for input in [&b"\"\xff\xfe\""[..], b"{\"a\xc3\": 1}", b"[1,", b"\"\\ud800\"", b"1 2", b"\x00", b"nul"] {
            let err = codec.json_to_binary(input).expect_err("refused");
            assert!(err.0.starts_with("invalid JSON for google.protobuf.Value: "), "{err}");
        }
    }

    #[test]
    fn without_a_limit_the_parser_stops_at_its_own_and_the_stack_holds() {
        // The deepest JSON serde_json parses, read on a thread with a tokio worker's stack.
        let codec = PbjsonCodec::<Value>::new("google.protobuf.Value");
        let ok = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let at_limit = "[".repeat(protojson::PARSER_MAX_DEPTH) + &"]".repeat(protojson::PARSER_MAX_DEPTH);
                let beyond = "[".repeat(100_000) + &"]".repeat(100_000);
                (codec.json_to_binary(at_limit.as_bytes()).is_ok(), codec.json_to_binary(beyond.as_bytes()).is_err())
            })
            .expect("spawns")
            .join()
            .expect("no stack overflow");
        assert_eq!(ok, (true, true));
    }
}
