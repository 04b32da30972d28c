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
        let mut out = Vec::with_capacity(json_size_hint(binary.len()));
        self.binary_to_json_into(binary, &mut out)?;
        Ok(out)
    }

    fn binary_to_json_into(&self, binary: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let message =
            T::decode(binary).map_err(|e| CodecError(format!("invalid protobuf for {}: {e}", self.type_name)))?;
        let mut serializer = serde_json::Serializer::with_formatter(out, NumberFormatter);
        message
            .serialize(&mut serializer)
            .map_err(|e| CodecError(format!("cannot encode {} as JSON: {e}", self.type_name)))
    }
}

/// serde_json's compact output, except that a `float` or `double` holding a whole number
/// (up to 2^53, where every integer is exact) is written without a fraction: `1`, not `1.0`,
/// as protobuf's C++ and Go JSON printers write it. So a JSON document stored in a
/// `google.protobuf.Value` comes back as it was sent. Negative zero keeps its sign (`-0.0`).
/// NaN and the infinities never get here: the generated code writes them as strings.
struct NumberFormatter;

/// 2^53 − 1, JavaScript's `Number.MAX_SAFE_INTEGER`: every integer up to it in size is
/// exactly a `f64`, and pbjson refuses larger ones where it expects a float.
const EXACT_F64_INTEGERS: f64 = 9_007_199_254_740_991.0;
/// 2^24: every integer up to it in size is exactly a `f32`; beyond, the shortest decimal
/// form (what serde_json writes) is the better rendering.
const EXACT_F32_INTEGERS: f64 = 16_777_216.0;

/// `value` as an integer, if it is a whole number no larger than `limit` in size (and not
/// negative zero, which keeps its sign).
fn whole(value: f64, limit: f64) -> Option<i64> {
    // In range, so the conversion is exact.
    (value.fract() == 0.0 && value.abs() <= limit && !(value == 0.0 && value.is_sign_negative()))
        .then_some(value as i64)
}

impl serde_json::ser::Formatter for NumberFormatter {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f64) -> std::io::Result<()> {
        match whole(value, EXACT_F64_INTEGERS) {
            Some(i) => self.write_i64(writer, i),
            None => serde_json::ser::CompactFormatter.write_f64(writer, value),
        }
    }

    fn write_f32<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f32) -> std::io::Result<()> {
        match whole(f64::from(value), EXACT_F32_INTEGERS) {
            Some(i) => self.write_i64(writer, i),
            None => serde_json::ser::CompactFormatter.write_f32(writer, value),
        }
    }
}

/// The codec for a generated type; used by the generated method table.
pub fn codec<T>(type_name: &'static str) -> Arc<dyn MessageCodec>
where
    T: prost::Message + Default + Serialize + DeserializeOwned + 'static,
{
    Arc::new(PbjsonCodec::<T>::new(type_name))
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn value_json(number: f64) -> String {
        let codec = PbjsonCodec::<pbjson_types::Value>::new("google.protobuf.Value");
        let value = pbjson_types::Value { kind: Some(pbjson_types::value::Kind::NumberValue(number)) };
        String::from_utf8(codec.binary_to_json(&value.encode_to_vec()).expect("encodes")).expect("UTF-8")
    }

    #[test]
    fn whole_numbers_are_written_without_a_fraction() {
        assert_eq!(value_json(1.0), "1");
        assert_eq!(value_json(-3.0), "-3");
        assert_eq!(value_json(0.0), "0");
        assert_eq!(value_json(9_007_199_254_740_991.0), "9007199254740991");
        assert_eq!(value_json(9_007_199_254_740_992.0), "9007199254740992.0");
        assert_eq!(value_json(1.5), "1.5");
        assert_eq!(value_json(-0.0), "-0.0");
        assert_eq!(value_json(1e300), "1e+300");
        // And they read back as the same numbers.
        let codec = PbjsonCodec::<pbjson_types::Value>::new("google.protobuf.Value");
        for n in [1.0, -3.0, 1.5, 1e300, -9_007_199_254_740_991.0, 9_007_199_254_740_992.0] {
            let binary = codec.json_to_binary(value_json(n).as_bytes()).expect("decodes");
            let back = pbjson_types::Value::decode(binary.as_slice()).expect("protobuf");
            assert_eq!(back.kind, Some(pbjson_types::value::Kind::NumberValue(n)));
        }
    }

    #[test]
    fn floats_follow_the_same_rule() {
        let codec = PbjsonCodec::<pbjson_types::FloatValue>::new("google.protobuf.FloatValue");
        let json = |v: f32| {
            let bin = pbjson_types::FloatValue { value: v }.encode_to_vec();
            String::from_utf8(codec.binary_to_json(&bin).expect("encodes")).expect("UTF-8")
        };
        assert_eq!(json(2.0), "2");
        assert_eq!(json(0.1), "0.1");
        for v in [2.0, 0.1, 16_777_216.0, -16_777_216.0, 3e38] {
            let binary = codec.json_to_binary(json(v).as_bytes()).expect("decodes");
            assert_eq!(pbjson_types::FloatValue::decode(binary.as_slice()).expect("protobuf").value, v);
        }
    }
}
