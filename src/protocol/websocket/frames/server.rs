//! Server frames: each written straight to its JSON text.

use http::HeaderMap;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::transcode::codec::json_size_hint;
use crate::transcode::status::ErrorBody;
use crate::transcode::{CodecError, MessageCodec};

/// Serializes a header map as `{"key": ["value", ...]}`, skipping values that are not
/// visible ASCII (HTTP allows them; JSON strings cannot carry them faithfully).
struct MetadataOut<'a>(&'a HeaderMap);

impl Serialize for MetadataOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.keys_len()))?;
        for key in self.0.keys() {
            let values: Vec<&str> = self.0.get_all(key).iter().filter_map(|v| v.to_str().ok()).collect();
            map.serialize_entry(key.as_str(), &values)?;
        }
        map.end()
    }
}

/// `{"type":"hello",...}`: the limits in force, sent first on every socket.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Hello {
    /// Always `hello`.
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// The negotiated subprotocol.
    pub(crate) protocol: &'static str,
    /// Messages either side may send per call before the other grants more.
    pub(crate) initial_credit: u32,
    /// The largest message (JSON text) a client may send.
    pub(crate) max_message_bytes: usize,
    /// Calls open at once on this socket.
    pub(crate) max_calls: usize,
    /// The heartbeat interval.
    pub(crate) heartbeat_ms: u64,
    /// Silence after which the socket is closed.
    pub(crate) idle_timeout_ms: u64,
}

/// Serializes a frame the server builds; these types cannot fail to serialize.
fn to_text<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize a WebSocket frame");
        String::from(r#"{"type":"error","reason":"internal","message":"frame serialization failed"}"#)
    })
}

/// `{"type":"hello",...}`.
pub(crate) fn hello(hello: &Hello) -> String {
    to_text(hello)
}

/// `{"type":"headers","id":1,"metadata":{...}}`.
pub(crate) fn headers(id: u64, metadata: &HeaderMap) -> String {
    #[derive(Serialize)]
    struct F<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: u64,
        metadata: MetadataOut<'a>,
    }
    to_text(&F { kind: "headers", id, metadata: MetadataOut(metadata) })
}

/// `{"type":"message","id":1,"message":<json>}`, the codec writing the message's JSON
/// straight into the frame.
pub(crate) fn message(id: u64, codec: &dyn MessageCodec, binary: &[u8]) -> Result<String, CodecError> {
    let mut out = Vec::with_capacity(json_size_hint(binary.len()) + 48);
    out.extend_from_slice(br#"{"type":"message","id":"#);
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(br#","message":"#);
    codec.binary_to_json_into(binary, &mut out)?;
    out.push(b'}');
    String::from_utf8(out).map_err(|e| CodecError(format!("{} produced invalid UTF-8: {e}", codec.type_name())))
}

/// `{"type":"status","id":1,"code":"ok",...,"trailers":{...}}`: the end of a call.
pub(crate) fn status(id: u64, status: &tonic::Status) -> String {
    #[derive(Serialize)]
    struct F<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: u64,
        #[serde(flatten)]
        error: ErrorBody,
        trailers: MetadataOut<'a>,
    }
    let trailers = status.metadata().clone().into_headers();
    to_text(&F { kind: "status", id, error: ErrorBody::from_status(status), trailers: MetadataOut(&trailers) })
}

/// `{"type":"credit","id":1,"credit":8}`.
pub(crate) fn credit(id: u64, credit: u32) -> String {
    format!(r#"{{"type":"credit","id":{id},"credit":{credit}}}"#)
}

/// Why a frame was rejected without ending a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reason {
    /// Not a frame this protocol knows.
    MalformedFrame,
    /// `open` with the id of a call still open.
    DuplicateId,
    /// `open` with an id not above every id opened before.
    StaleId,
    /// A frame for an id never opened.
    UnknownId,
    /// A second `half_close`.
    AlreadyHalfClosed,
    /// A binary WebSocket frame.
    BinaryFrame,
}

/// `{"type":"error","id":1,"reason":"unknown_id","message":"..."}`.
pub(crate) fn error(id: Option<u64>, reason: Reason, message: &str) -> String {
    #[derive(Serialize)]
    struct F<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        reason: Reason,
        message: &'a str,
    }
    to_text(&F { kind: "error", id, reason, message })
}

/// `{"type":"pong","data":...}`.
pub(crate) fn pong(data: Option<&RawValue>) -> String {
    match data {
        Some(d) => format!(r#"{{"type":"pong","data":{}}}"#, d.get()),
        None => String::from(r#"{"type":"pong"}"#),
    }
}

/// `{"type":"heartbeat"}`.
pub(crate) const HEARTBEAT: &str = r#"{"type":"heartbeat"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_frames() {
        let codec = crate::transcode::codec::<crate::pb::grpc::testing::SimpleResponse>("grpc.testing.SimpleResponse");
        let reply = crate::pb::grpc::testing::SimpleResponse { server_id: "s".into(), ..Default::default() };
        let binary = prost::Message::encode_to_vec(&reply);
        assert_eq!(message(5, &*codec, &binary).unwrap(), r#"{"type":"message","id":5,"message":{"serverId":"s"}}"#);
        assert!(message(5, &*codec, &[0xff]).is_err());
        assert_eq!(credit(2, 8), r#"{"type":"credit","id":2,"credit":8}"#);
        let mut trailers = tonic::metadata::MetadataMap::new();
        trailers.insert("t", "v".parse().unwrap());
        let st = tonic::Status::with_metadata(tonic::Code::NotFound, "gone", trailers);
        let v: serde_json::Value = serde_json::from_str(&status(1, &st)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"status","id":1,"code":"not_found","message":"gone","trailers":{"t":["v"]}})
        );
        let ok: serde_json::Value = serde_json::from_str(&status(1, &tonic::Status::ok(""))).unwrap();
        assert_eq!(ok, serde_json::json!({"type":"status","id":1,"code":"ok","trailers":{}}));
        let e: serde_json::Value = serde_json::from_str(&error(None, Reason::UnknownId, "x")).unwrap();
        assert_eq!(e, serde_json::json!({"type":"error","reason":"unknown_id","message":"x"}));
        let raw = RawValue::from_string("[1,\"a\"]".into()).unwrap();
        assert_eq!(pong(Some(&raw)), r#"{"type":"pong","data":[1,"a"]}"#);
    }
}
