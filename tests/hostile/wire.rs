//! What the rows send (requests, envelopes, messages) and how a response becomes an outcome
//! string: `grpc 13`, `http 415`, `connect 400 invalid_argument`, `end resource_exhausted`.
//! The decoding is written here, not borrowed from the crate: a test that decoded with the
//! code under test would not notice when that code is wrong.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portway::pb::grpc::testing::{Payload, SimpleRequest, StreamingOutputCallRequest};
use prost::Message as _;

use super::common::http::{gzip, parse_trailer_block};

/// How a response is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Native gRPC: `grpc-status` in the trailers or the headers.
    Grpc,
    /// gRPC-Web: trailers-only, or the trailer frame in the body.
    GrpcWeb,
    /// gRPC-Web text: the same, base64 in the body.
    GrpcWebText,
    /// Connect unary: the HTTP status and the error object's code.
    Connect,
    /// Connect streaming: the end-of-stream message's error code.
    ConnectStream,
}

/// One HTTP request, as the row sends it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body one byte at a time (one DATA frame or one write per byte).
    pub trickle: bool,
}

impl Req {
    pub fn post(path: impl Into<String>, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        let mut headers = Vec::new();
        if !content_type.is_empty() {
            headers.push(("content-type".to_string(), content_type.to_string()));
        }
        if content_type.starts_with("application/grpc") && !content_type.starts_with("application/grpc-web") {
            headers.push(("te".into(), "trailers".into()));
        }
        // As the grpc-web runtime does in text mode: without it the answer is binary.
        if content_type.starts_with("application/grpc-web-text") {
            headers.push(("accept".into(), "application/grpc-web-text".into()));
        }
        Self { method: "POST", path: path.into(), headers, body: body.into(), trickle: false }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self { method: "GET", path: path.into(), headers: Vec::new(), body: Vec::new(), trickle: false }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    pub fn trickle(mut self) -> Self {
        self.trickle = true;
        self
    }
}

/// A response as read off the wire.
#[derive(Debug, Default)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One envelope (gRPC, gRPC-Web, Connect streaming).
pub fn env(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An envelope header declaring `len` bytes, followed by `payload` (a lie when they differ).
pub fn env_claiming(flags: u8, len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `SimpleRequest { response_size }`.
pub fn simple(response_size: i32) -> Vec<u8> {
    SimpleRequest { response_size, ..Default::default() }.encode_to_vec()
}

/// A `SimpleRequest` whose encoding is exactly `len` bytes (`len` ≥ 4).
pub fn simple_of_len(len: usize) -> Vec<u8> {
    // Field 3 (payload) and field 2 (body) add a tag and a length each.
    for body in (len.saturating_sub(8)..len).rev() {
        let m = SimpleRequest {
            payload: Some(Payload { body: vec![7; body], ..Default::default() }),
            ..Default::default()
        }
        .encode_to_vec();
        if m.len() == len {
            return m;
        }
    }
    panic!("no SimpleRequest of {len} bytes");
}

/// A `StreamingOutputCallRequest` asking for one response of `size` bytes.
pub fn output(size: i32) -> Vec<u8> {
    StreamingOutputCallRequest {
        response_parameters: vec![portway::pb::grpc::testing::ResponseParameters { size, ..Default::default() }],
        ..Default::default()
    }
    .encode_to_vec()
}

/// gzip of a `SimpleRequest` that inflates to `n` bytes: small on the wire, big decoded.
pub fn gzip_bomb(n: usize) -> Vec<u8> {
    gzip(&simple_of_len(n))
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// JSON nested `levels` deep in arrays.
pub fn nested(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// The outcome string of a response.
pub fn outcome(read: Read, resp: &Resp) -> String {
    match read {
        Read::Grpc => {
            if resp.status != 200 {
                return format!("http {}", resp.status);
            }
            let code = resp.trailer("grpc-status").or_else(|| resp.header("grpc-status"));
            format!("grpc {}", code.unwrap_or("none"))
        }
        Read::GrpcWeb | Read::GrpcWebText => {
            if resp.status != 200 {
                return format!("http {}", resp.status);
            }
            if let Some(code) = resp.header("grpc-status") {
                return format!("grpc {code}");
            }
            let body = if read == Read::GrpcWebText {
                let clean: Vec<u8> = resp.body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
                let mut out = Vec::new();
                for quad in clean.chunks(4) {
                    match STANDARD.decode(quad) {
                        Ok(b) => out.extend(b),
                        Err(_) => return "garbled base64".into(),
                    }
                }
                out
            } else {
                resp.body.clone()
            };
            match frames(&body).and_then(|f| f.into_iter().find(|(flags, _)| flags & 0x80 != 0)) {
                Some((_, block)) => {
                    let trailers = parse_trailer_block(&block);
                    let code = trailers.get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("none");
                    format!("grpc {code}")
                }
                None => "grpc none".into(),
            }
        }
        Read::Connect => {
            let code = if resp.status == 200 {
                "ok".to_string()
            } else {
                serde_json::from_slice::<serde_json::Value>(&resp.body)
                    .ok()
                    .and_then(|v| v["code"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "(no error object)".into())
            };
            format!("connect {} {code}", resp.status)
        }
        Read::ConnectStream => {
            if resp.status != 200 {
                let code = serde_json::from_slice::<serde_json::Value>(&resp.body)
                    .ok()
                    .and_then(|v| v["code"].as_str().map(str::to_string))
                    .unwrap_or_default();
                return format!("http {} {code}", resp.status).trim_end().to_string();
            }
            let Some(frames) = frames(&resp.body) else { return "garbled envelopes".into() };
            match frames.last() {
                Some((0x02, end)) => match serde_json::from_slice::<serde_json::Value>(end) {
                    Ok(v) => format!("end {}", v["error"]["code"].as_str().unwrap_or("ok")),
                    Err(_) => "end (not JSON)".into(),
                },
                _ => "no end-of-stream".into(),
            }
        }
    }
}

/// Splits a body into envelopes; `None` if it does not split cleanly.
pub fn frames(mut body: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = body.get(5..5 + len)?;
        out.push((body[0], payload.to_vec()));
        body = &body[5 + len..];
    }
    Some(out)
}
