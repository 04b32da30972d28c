//! Client frames, parsed into a typed [`ClientFrame`]: each kind carries exactly the fields
//! it needs, so the session never checks for a missing one.
//!
//! The JSON is read into one flat wire shape first, then checked into its kind: a serde
//! tagged enum would buffer the frame and could not borrow the raw message from it.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tonic::Status;

/// The largest call id: integers up to 2^53 − 1 are exact in JavaScript.
pub(crate) const MAX_ID: u64 = (1 << 53) - 1;

/// One frame from the client.
#[derive(Debug)]
pub(crate) enum ClientFrame<'a> {
    /// Open a call.
    Open(Open<'a>),
    /// One request message, still JSON text; `end` half-closes after it.
    Message { id: u64, message: &'a RawValue, end: bool },
    /// No more request messages.
    HalfClose { id: u64 },
    /// Cancel the call.
    Cancel { id: u64 },
    /// Grant `credit` more response messages.
    Credit { id: u64, credit: u32 },
    /// Ask for a pong carrying `data`.
    Ping { data: Option<&'a RawValue> },
}

/// An `open` frame.
#[derive(Debug)]
pub(crate) struct Open<'a> {
    pub id: u64,
    /// `/package.Service/Method`.
    pub method: Cow<'a, str>,
    pub metadata: Metadata,
    /// The deadline in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Initial response credit (default: the server's initial credit).
    pub credit: Option<u32>,
    /// The first request message, if any.
    pub message: Option<&'a RawValue>,
    /// Half-close right away.
    pub end: bool,
}

/// Why a frame is not one the session can act on.
#[derive(Debug)]
pub(crate) enum ParseError {
    /// Not a frame of this protocol: answered with an `error` frame.
    Malformed { id: Option<u64>, message: String },
    /// An `open` that names a call but cannot start one: the call ends with `status`.
    Refused { id: u64, status: Status },
}

/// The wire shape every kind shares.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    credit: Option<u32>,
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
    #[serde(default)]
    end: bool,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Open,
    Message,
    HalfClose,
    Cancel,
    Credit,
    Ping,
}

impl<'a> ClientFrame<'a> {
    /// Parses one text frame.
    pub(crate) fn parse(text: &'a str) -> Result<Self, ParseError> {
        let wire: Wire<'a> = serde_json::from_str(text)
            .map_err(|e| ParseError::Malformed { id: salvage_id(text), message: format!("invalid frame: {e}") })?;
        if wire.kind == Kind::Ping {
            return Ok(Self::Ping { data: wire.data });
        }
        let id = match wire.id {
            Some(id) if id <= MAX_ID => id,
            Some(id) => {
                let message = format!("call ids are integers from 0 to 2^53-1, not {id}");
                return Err(ParseError::Malformed { id: None, message });
            }
            None => return Err(ParseError::Malformed { id: None, message: "this frame needs an \"id\"".into() }),
        };
        let missing = |field: &str, kind: &str| ParseError::Malformed {
            id: Some(id),
            message: format!("a {kind} frame needs a \"{field}\""),
        };
        Ok(match wire.kind {
            Kind::Open => {
                let Some(method) = wire.method else {
                    let status = Status::invalid_argument("an open frame needs a \"method\"");
                    return Err(ParseError::Refused { id, status });
                };
                Self::Open(Open {
                    id,
                    method,
                    metadata: wire.metadata.unwrap_or_default(),
                    timeout_ms: wire.timeout_ms,
                    credit: wire.credit,
                    message: wire.message,
                    end: wire.end,
                })
            }
            Kind::Message => {
                Self::Message { id, message: wire.message.ok_or_else(|| missing("message", "message"))?, end: wire.end }
            }
            Kind::HalfClose => Self::HalfClose { id },
            Kind::Cancel => Self::Cancel { id },
            Kind::Credit => Self::Credit { id, credit: wire.credit.ok_or_else(|| missing("credit", "credit"))? },
            Kind::Ping => Self::Ping { data: wire.data },
        })
    }
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
pub(crate) fn canonical_message(text: &str) -> Option<(u64, &str)> {
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

/// The id of a frame (an object) that failed to parse as a whole, if it has a readable one.
fn salvage_id(text: &str) -> Option<u64> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    #[derive(Deserialize)]
    struct IdOnly {
        #[serde(default)]
        id: Option<u64>,
    }
    serde_json::from_str::<IdOnly>(text).ok().and_then(|f| f.id)
}

/// Metadata as sent: key → one string or several, in the order given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Metadata(pub Vec<(String, Vec<String>)>);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_open_with_a_borrowed_message() {
        let text = r#"{"type":"open","id":3,"method":"/a.B/C","metadata":{"k":"v","m":["1","2"]},
            "timeoutMs":250,"credit":4,"message":{"x":[1,2,{"y":"z"}]},"end":true,"future":1}"#;
        let Ok(ClientFrame::Open(open)) = ClientFrame::parse(text) else { panic!("an open") };
        assert_eq!(open.id, 3);
        assert_eq!(open.method, "/a.B/C");
        assert_eq!(open.metadata.0, vec![("k".into(), vec!["v".into()]), ("m".into(), vec!["1".into(), "2".into()])]);
        assert_eq!(open.timeout_ms, Some(250));
        assert_eq!(open.credit, Some(4));
        assert_eq!(open.message.map(RawValue::get), Some(r#"{"x":[1,2,{"y":"z"}]}"#));
        assert!(open.end);
    }

    #[test]
    fn every_kind_carries_what_it_needs() {
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"message","id":1,"message":[1],"end":true}"#),
            Ok(ClientFrame::Message { id: 1, end: true, message }) if message.get() == "[1]"
        ));
        assert!(matches!(ClientFrame::parse(r#"{"type":"half_close","id":2}"#), Ok(ClientFrame::HalfClose { id: 2 })));
        assert!(matches!(ClientFrame::parse(r#"{"type":"cancel","id":3}"#), Ok(ClientFrame::Cancel { id: 3 })));
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"credit","id":4,"credit":9}"#),
            Ok(ClientFrame::Credit { id: 4, credit: 9 })
        ));
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"ping","data":{"a":1}}"#),
            Ok(ClientFrame::Ping { data: Some(d) }) if d.get() == r#"{"a":1}"#
        ));
        assert!(matches!(ClientFrame::parse(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping { data: None })));
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        let malformed = |text: &str| match ClientFrame::parse(text) {
            Err(ParseError::Malformed { id, message }) => {
                assert!(!message.is_empty());
                id
            }
            other => panic!("{text}: {other:?}"),
        };
        for (bad, id) in [
            (r#"{"type":"nope","id":1}"#, Some(1)),
            (r#"{"id":1}"#, Some(1)),
            (r#"[1]"#, None),
            (r#"{"type":"message","id":-1}"#, None),
            (r#"{"type":"message","id":1.5}"#, None),
            (r#"{"type":"open","id":9,"metadata":{"k":1}}"#, Some(9)),
            (r#"{"type":"open","id":1,"end":null}"#, Some(1)),
            ("not json", None),
            (r#"{"type":"message","id":4}"#, Some(4)),
            (r#"{"type":"credit","id":5}"#, Some(5)),
            (r#"{"type":"cancel"}"#, None),
            (r#"{"type":"cancel","id":9007199254740992}"#, None),
        ] {
            assert_eq!(malformed(bad), id, "{bad}");
        }
        match ClientFrame::parse(r#"{"type":"open","id":7}"#) {
            Err(ParseError::Refused { id: 7, status }) => assert_eq!(status.code(), tonic::Code::InvalidArgument),
            other => panic!("{other:?}"),
        }
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
}
