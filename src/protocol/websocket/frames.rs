//! The frames of `portway.v1.json`: parsing what a client sends, writing what the server
//! sends. Messages stay raw JSON on the way in (`&RawValue`, borrowed from the frame text, so
//! each message is parsed once, by its codec) and are spliced in as-is on the way out.

use std::borrow::Cow;
use std::fmt;

use http::HeaderMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::transcode::codec::json_size_hint;
use crate::transcode::status::ErrorBody;
use crate::transcode::{CodecError, MessageCodec};

/// The subprotocol this module speaks.
pub const SUBPROTOCOL: &str = "portway.v1.json";
/// A subprotocol that carries a bearer token instead of naming a protocol.
pub const BEARER_PREFIX: &str = "portway.bearer.";
/// The largest call id: integers up to 2^53 − 1 are exact in JavaScript.
pub const MAX_ID: u64 = (1 << 53) - 1;

/// What a client frame asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Open a call.
    Open,
    /// One request message.
    Message,
    /// No more request messages.
    HalfClose,
    /// Cancel the call.
    Cancel,
    /// Grant response credit.
    Credit,
    /// Ask for a pong.
    Ping,
}

/// One client frame. Every kind shares this flat shape (a tagged enum would buffer the
/// frame and lose the borrowed raw message); the session checks which fields a kind needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientFrame<'a> {
    /// The frame's `type`.
    #[serde(rename = "type")]
    pub kind: ClientKind,
    /// The call id.
    #[serde(default)]
    pub id: Option<u64>,
    /// `open`: `/package.Service/Method`.
    #[serde(default, borrow)]
    pub method: Option<Cow<'a, str>>,
    /// `open`: per-call metadata.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// `open`: the deadline in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `open`: initial response credit; `credit`: credit granted.
    #[serde(default)]
    pub credit: Option<u32>,
    /// `open`, `message`: a request message, still JSON text.
    #[serde(default, borrow)]
    pub message: Option<&'a RawValue>,
    /// `open`, `message`: half-close after this frame.
    #[serde(default)]
    pub end: bool,
    /// `ping`: anything, echoed in the pong.
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
}

/// The hot path: a `message` frame in the canonical shape every client library writes,
/// `{"type":"message","id":<id>,"message":<value>}`, split without scanning the message.
///
/// Only this exact byte prefix is accepted, so the frame is valid exactly when `<value>` is
/// one JSON value, which the method's codec checks as it parses it. Anything else (other
/// field orders, whitespace, `"end"`, a value the codec rejects) takes the general path,
/// which parses the frame as a whole and reports errors precisely. Hand-written because a
/// general parser must scan the whole message once to find its end, then the codec parses
/// it again: for a message of numbers the scan costs a sixth of the codec's parse.
pub fn canonical_message(text: &str) -> Option<(u64, &str)> {
    let rest = text.strip_prefix(r#"{"type":"message","id":"#)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    // JSON numbers have no leading zeros.
    if digits == 0 || digits > 16 || (digits > 1 && rest.starts_with('0')) {
        return None;
    }
    let id: u64 = rest[..digits].parse().ok().filter(|id| *id <= MAX_ID)?;
    let value = rest[digits..].strip_prefix(r#","message":"#)?.strip_suffix('}')?;
    match value.as_bytes().first() {
        Some(b) if !b.is_ascii_whitespace() => Some((id, value)),
        _ => None,
    }
}

/// The id of a frame that failed to parse as a whole, if it has a readable one.
pub fn salvage_id(text: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct IdOnly {
        #[serde(default)]
        id: Option<u64>,
    }
    serde_json::from_str::<IdOnly>(text).ok().and_then(|f| f.id)
}

/// Metadata as sent: key → one string or several, in the order given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metadata(pub Vec<(String, Vec<String>)>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Hand-written rather than `#[serde(untagged)]`, which would buffer every value and
        // answer a type error with "data did not match any variant".
        struct Values(Vec<String>);
        impl<'de> Deserialize<'de> for Values {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Values;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string or an array of strings")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Values, E> {
                        Ok(Values(vec![v.to_string()]))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
                        let mut out = Vec::new();
                        while let Some(v) = seq.next_element::<String>()? {
                            out.push(v);
                        }
                        Ok(Values(out))
                    }
                }
                d.deserialize_any(V)
            }
        }
        struct M;
        impl<'de> Visitor<'de> for M {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of metadata")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Values>()? {
                    out.push((k, v.0));
                }
                Ok(Metadata(out))
            }
        }
        d.deserialize_map(M)
    }
}

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
pub struct Hello {
    /// Always `hello`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The negotiated subprotocol.
    pub protocol: &'static str,
    /// Messages either side may send per call before the other grants more.
    pub initial_credit: u32,
    /// The largest message (JSON text) a client may send.
    pub max_message_bytes: usize,
    /// Calls open at once on this socket.
    pub max_calls: usize,
    /// The heartbeat interval.
    pub heartbeat_ms: u64,
    /// Silence after which the socket is closed.
    pub idle_timeout_ms: u64,
}

/// Serializes a frame the server builds; these types cannot fail to serialize.
fn to_text<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize a WebSocket frame");
        String::from(r#"{"type":"error","reason":"internal","message":"frame serialization failed"}"#)
    })
}

/// `{"type":"hello",...}`.
pub fn hello(hello: &Hello) -> String {
    to_text(hello)
}

/// `{"type":"headers","id":1,"metadata":{...}}`.
pub fn headers(id: u64, metadata: &HeaderMap) -> String {
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
pub fn message(id: u64, codec: &dyn MessageCodec, binary: &[u8]) -> Result<String, CodecError> {
    let mut out = Vec::with_capacity(json_size_hint(binary.len()) + 48);
    out.extend_from_slice(br#"{"type":"message","id":"#);
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(br#","message":"#);
    codec.binary_to_json_into(binary, &mut out)?;
    out.push(b'}');
    String::from_utf8(out).map_err(|e| CodecError(format!("{} produced invalid UTF-8: {e}", codec.type_name())))
}

/// `{"type":"status","id":1,"code":"ok",...,"trailers":{...}}`: the end of a call.
pub fn status(id: u64, status: &tonic::Status) -> String {
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
pub fn credit(id: u64, credit: u32) -> String {
    format!(r#"{{"type":"credit","id":{id},"credit":{credit}}}"#)
}

/// Why a frame was rejected without ending a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
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
pub fn error(id: Option<u64>, reason: Reason, message: &str) -> String {
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
pub fn pong(data: Option<&RawValue>) -> String {
    match data {
        Some(d) => format!(r#"{{"type":"pong","data":{}}}"#, d.get()),
        None => String::from(r#"{"type":"pong"}"#),
    }
}

/// `{"type":"heartbeat"}`.
pub const HEARTBEAT: &str = r#"{"type":"heartbeat"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_open_with_a_borrowed_message() {
        let text = r#"{"type":"open","id":3,"method":"/a.B/C","metadata":{"k":"v","m":["1","2"]},
            "timeoutMs":250,"credit":4,"message":{"x":[1,2,{"y":"z"}]},"end":true,"future":1}"#;
        let f: ClientFrame = serde_json::from_str(text).unwrap();
        assert_eq!(f.kind, ClientKind::Open);
        assert_eq!(f.id, Some(3));
        assert_eq!(f.method.as_deref(), Some("/a.B/C"));
        assert_eq!(
            f.metadata.unwrap().0,
            vec![("k".into(), vec!["v".into()]), ("m".into(), vec!["1".into(), "2".into()])]
        );
        assert_eq!(f.timeout_ms, Some(250));
        assert_eq!(f.credit, Some(4));
        assert_eq!(f.message.unwrap().get(), r#"{"x":[1,2,{"y":"z"}]}"#);
        assert!(f.end);
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        for bad in [
            r#"{"type":"nope","id":1}"#,
            r#"{"id":1}"#,
            r#"[1]"#,
            r#"{"type":"message","id":-1}"#,
            r#"{"type":"message","id":1.5}"#,
            r#"{"type":"open","id":1,"metadata":{"k":1}}"#,
            r#"{"type":"open","id":1,"end":null}"#,
            "not json",
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
        assert_eq!(salvage_id(r#"{"type":"nope","id":7}"#), Some(7));
        assert_eq!(salvage_id(r#"{"type":"open","id":9,"metadata":{"k":1}}"#), Some(9));
        assert_eq!(salvage_id("not json"), None);
    }

    #[test]
    fn splits_canonical_message_frames() {
        let ok = r#"{"type":"message","id":42,"message":{"values":[1,2]}}"#;
        assert_eq!(canonical_message(ok), Some((42, r#"{"values":[1,2]}"#)));
        assert_eq!(canonical_message(r#"{"type":"message","id":0,"message":{}}"#), Some((0, "{}")));
        for other in [
            r#"{"type":"message","id":01,"message":{}}"#,
            r#"{"type":"message","id":-1,"message":{}}"#,
            r#"{"type":"message","id":9007199254740992,"message":{}}"#,
            r#"{"type":"message","id":1,"message": {}}"#,
            r#"{"type":"message","id":1,"message":}"#,
            r#"{"type":"message", "id":1,"message":{}}"#,
            r#"{"id":1,"type":"message","message":{}}"#,
            r#"{"type":"open","id":1,"message":{}}"#,
        ] {
            assert_eq!(canonical_message(other), None, "{other}");
        }
        // What is split off may be more (or less) than one JSON value; the codec's parse
        // rejects it, and the frame then takes the general path.
        let codec = crate::transcode::codec::<crate::pb::grpc::testing::Empty>("grpc.testing.Empty");
        for (frame, value) in [
            (r#"{"type":"message","id":1,"message":{},"end":true}"#, r#"{},"end":true"#),
            (r#"{"type":"message","id":1,"message":{}"#, "{"),
            (r#"{"type":"message","id":1,"message":{}}}"#, "{}}"),
        ] {
            assert_eq!(canonical_message(frame), Some((1, value)));
            assert!(codec.json_to_binary(value.as_bytes()).is_err(), "{value}");
        }
    }

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
