//! One client per protocol (native gRPC, gRPC-Web binary and text, Connect JSON and proto,
//! WebSocket JSON), each making a unary call with metadata and reporting what it saw in one
//! [`Outcome`], so that tests can compare the protocols (tests/parity.rs, tests/auth.rs).

// Test code may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::{Buf as _, BufMut as _, Bytes};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::http::{self, Http, full};

pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// One RPC, with its request in both encodings and a way to turn a JSON response into the
/// binary one, so that every protocol's answer can be compared as protobuf.
pub struct Rpc {
    pub path: &'static str,
    pub proto: Vec<u8>,
    pub json: String,
    /// JSON response → canonical binary encoding.
    pub response_from_json: fn(&[u8]) -> Vec<u8>,
    /// Binary response → canonical binary encoding (decode, re-encode).
    pub response_from_proto: fn(&[u8]) -> Vec<u8>,
}

pub fn rpc<Req, Resp>(path: &'static str, req: Req) -> Rpc
where
    Req: Message + Serialize,
    Resp: Message + Default + DeserializeOwned,
{
    Rpc {
        path,
        proto: req.encode_to_vec(),
        json: serde_json::to_string(&req).expect("request JSON"),
        response_from_json: |b| serde_json::from_slice::<Resp>(b).expect("response JSON").encode_to_vec(),
        response_from_proto: |b| Resp::decode(b).expect("response protobuf").encode_to_vec(),
    }
}

/// What one call looked like to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub message: String,
    /// The response message, canonically encoded (success only).
    pub response: Option<Vec<u8>>,
    /// `x-grpc-test-echo-initial` in the response headers (initial metadata).
    pub headers_echo: Option<String>,
    /// `x-grpc-test-echo-trailing-bin`, decoded, in the trailers (or with the error status).
    pub trailers_echo: Option<Vec<u8>>,
    /// Error details: (type name, value) pairs.
    pub details: Vec<(String, Vec<u8>)>,
    /// `retry-after` in the response's headers or trailers (the call's status metadata).
    pub retry_after: Option<String>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A client of one protocol that can make a unary call.
pub trait ProtocolClient: Send + Sync {
    fn name(&self) -> &'static str;
    fn unary<'a>(
        &'a self,
        rpc: &'a Rpc,
        metadata: &'a [(&'a str, &'a str)],
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Outcome>;
}

pub fn details_of(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    if raw.is_empty() {
        return Vec::new();
    }
    let status = portway::pb::google::rpc::Status::decode(raw).expect("google.rpc.Status");
    status
        .details
        .into_iter()
        .map(|a| (a.type_url.rsplit('/').next().unwrap_or_default().to_string(), a.value.to_vec()))
        .collect()
}

pub fn bin(value: &str) -> Vec<u8> {
    STANDARD_NO_PAD.decode(value.trim_end_matches('=')).expect("base64 metadata")
}

// --------------------------------------------------------------------------------------
// Native gRPC: tonic's generic client (the generated clients' engine) with a pass-through
// codec, over a hyper HTTP/2 connection (tonic's own channel would also time calls out on
// the client side and report CANCELLED, hiding what the server said).

#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

pub struct Native {
    pub url: String,
}

impl ProtocolClient for Native {
    fn name(&self) -> &'static str {
        "grpc"
    }

    fn unary<'a>(
        &'a self,
        rpc: &'a Rpc,
        metadata: &'a [(&'a str, &'a str)],
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http::<tonic::body::Body>();
            let mut grpc = tonic::client::Grpc::with_origin(hyper, self.url.parse().expect("uri"));
            let mut req = tonic::Request::new(Bytes::from(rpc.proto.clone()));
            for (k, v) in metadata {
                if k.ends_with("-bin") {
                    let key = tonic::metadata::BinaryMetadataKey::from_bytes(k.as_bytes()).unwrap();
                    req.metadata_mut().insert_bin(key, tonic::metadata::BinaryMetadataValue::from_bytes(&bin(v)));
                } else {
                    let key = tonic::metadata::AsciiMetadataKey::from_bytes(k.as_bytes()).unwrap();
                    req.metadata_mut().insert(key, v.parse().unwrap());
                }
            }
            if let Some(t) = timeout {
                req.set_timeout(t);
            }
            grpc.ready().await.expect("ready");
            let path = rpc.path.parse().expect("path");
            // The streaming API on a unary method keeps headers and trailers apart.
            let status = match grpc.server_streaming(req, path, RawCodec).await {
                Err(status) => status,
                Ok(resp) => {
                    let headers_echo = resp.metadata().get(ECHO_INITIAL).map(|v| v.to_str().unwrap().to_string());
                    let mut stream = resp.into_inner();
                    let mut messages = Vec::new();
                    let end = loop {
                        match stream.message().await {
                            Ok(Some(m)) => messages.push(m),
                            Ok(None) => break None,
                            Err(status) => break Some(status),
                        }
                    };
                    match end {
                        Some(status) => {
                            let mut o = status_outcome(&status);
                            o.headers_echo = headers_echo;
                            return o;
                        }
                        None => {
                            let trailers = stream.trailers().await.expect("trailers").unwrap_or_default();
                            assert_eq!(messages.len(), 1, "a unary call answers one message");
                            return Outcome {
                                code: 0,
                                message: String::new(),
                                response: Some((rpc.response_from_proto)(&messages[0])),
                                headers_echo,
                                trailers_echo: trailers.get_bin(ECHO_TRAILING).map(|v| v.to_bytes().unwrap().to_vec()),
                                details: Vec::new(),
                                retry_after: None,
                            };
                        }
                    }
                }
            };
            status_outcome(&status)
        })
    }
}

pub fn status_outcome(status: &Status) -> Outcome {
    Outcome {
        code: status.code() as i32,
        message: status.message().to_string(),
        response: None,
        headers_echo: None,
        trailers_echo: status.metadata().get_bin(ECHO_TRAILING).map(|v| v.to_bytes().unwrap().to_vec()),
        details: details_of(status.details()),
        retry_after: status.metadata().get("retry-after").map(|v| v.to_str().unwrap().to_string()),
    }
}

// --------------------------------------------------------------------------------------
// gRPC-Web, binary or text, over a plain HTTP client.

pub struct Web {
    pub url: String,
    pub version: Http,
    pub text: bool,
}

impl ProtocolClient for Web {
    fn name(&self) -> &'static str {
        if self.text { "grpc-web-text" } else { "grpc-web" }
    }

    fn unary<'a>(
        &'a self,
        rpc: &'a Rpc,
        metadata: &'a [(&'a str, &'a str)],
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut md: Vec<(&str, String)> = metadata.iter().map(|(k, v)| (*k, v.to_string())).collect();
            if let Some(t) = timeout {
                md.push(("grpc-timeout", format!("{}m", t.as_millis())));
            }
            let md_refs: Vec<(&str, &str)> = md.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let url = format!("{}{}", self.url, rpc.path);
            let reply = http::grpc_web_call(self.version, self.text, &url, &[&rpc.proto], &md_refs).await;
            let code = reply.code();
            let headers_echo = if reply.trailers_only {
                None
            } else {
                reply.headers.get(ECHO_INITIAL).map(|v| v.to_str().unwrap().to_string())
            };
            Outcome {
                code,
                message: reply.message(),
                response: (code == 0).then(|| {
                    assert_eq!(reply.messages.len(), 1, "a unary call answers one message");
                    (rpc.response_from_proto)(&reply.messages[0])
                }),
                headers_echo,
                trailers_echo: reply.trailers.get(ECHO_TRAILING).map(|v| bin(v.to_str().unwrap())),
                details: reply
                    .trailers
                    .get("grpc-status-details-bin")
                    .map(|v| details_of(&bin(v.to_str().unwrap())))
                    .unwrap_or_default(),
                retry_after: reply.headers.get("retry-after").map(|v| v.to_str().unwrap().to_string()),
            }
        })
    }
}

// --------------------------------------------------------------------------------------
// Connect unary, JSON or binary, over a plain HTTP client.

pub struct Connect {
    pub url: String,
    pub version: Http,
    pub json: bool,
}

/// Connect code names, from the protocol reference (not from the code under test).
pub fn code_from_connect(name: &str) -> i32 {
    let names = [
        "ok",
        "canceled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
    ];
    names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("unknown Connect code {name}")) as i32
}

impl ProtocolClient for Connect {
    fn name(&self) -> &'static str {
        if self.json { "connect-json" } else { "connect-proto" }
    }

    fn unary<'a>(
        &'a self,
        rpc: &'a Rpc,
        metadata: &'a [(&'a str, &'a str)],
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (ct, body) = if self.json {
                ("application/json", rpc.json.clone().into_bytes())
            } else {
                ("application/proto", rpc.proto.clone())
            };
            let mut req = http::request("POST", &format!("{}{}", self.url, rpc.path))
                .header("content-type", ct)
                .header("connect-protocol-version", "1");
            for (k, v) in metadata {
                req = req.header(*k, *v);
            }
            if let Some(t) = timeout {
                req = req.header("connect-timeout-ms", t.as_millis().to_string());
            }
            let reply = http::send(self.version, req.body(full(body)).expect("request")).await;
            let trailers_echo = reply.header(&format!("trailer-{ECHO_TRAILING}")).map(bin);
            let headers_echo = reply.header(ECHO_INITIAL).map(str::to_string);
            if reply.status == ::http::StatusCode::OK {
                let response = if self.json {
                    (rpc.response_from_json)(&reply.body)
                } else {
                    (rpc.response_from_proto)(&reply.body)
                };
                return Outcome {
                    code: 0,
                    message: String::new(),
                    response: Some(response),
                    headers_echo,
                    trailers_echo,
                    details: Vec::new(),
                    retry_after: None,
                };
            }
            let err = reply.json();
            let details = err["details"]
                .as_array()
                .map(|ds| {
                    ds.iter()
                        .map(|d| (d["type"].as_str().unwrap().to_string(), bin(d["value"].as_str().unwrap())))
                        .collect()
                })
                .unwrap_or_default();
            Outcome {
                code: code_from_connect(err["code"].as_str().expect("code")),
                message: err["message"].as_str().unwrap_or_default().to_string(),
                response: None,
                headers_echo,
                trailers_echo,
                details,
                retry_after: reply.header("retry-after").map(str::to_string),
            }
        })
    }
}

// --------------------------------------------------------------------------------------
// WebSocket JSON (`portway.v1.json`): one socket per call here, a whole unary call in one
// `open` frame; the frames are read until the call's `status`.

pub struct WebSocket {
    pub addr: std::net::SocketAddr,
}

pub fn first_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Array(a) => a.first().and_then(|x| x.as_str()).map(str::to_string),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl ProtocolClient for WebSocket {
    fn name(&self) -> &'static str {
        "websocket"
    }

    fn unary<'a>(
        &'a self,
        rpc: &'a Rpc,
        metadata: &'a [(&'a str, &'a str)],
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Outcome> {
        use futures_util::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::Message as WsMessage;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        Box::pin(async move {
            let mut req = format!("ws://{}/ws", self.addr).into_client_request().expect("request");
            req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().expect("header"));
            let (mut socket, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connect");
            let metadata: serde_json::Map<String, serde_json::Value> =
                metadata.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
            let mut open = serde_json::json!({
                "type": "open",
                "id": 1,
                "method": rpc.path,
                "metadata": metadata,
                "message": serde_json::from_str::<serde_json::Value>(&rpc.json).expect("request JSON"),
                "end": true,
            });
            if let Some(t) = timeout {
                open["timeoutMs"] = serde_json::Value::from(u64::try_from(t.as_millis()).expect("timeout"));
            }
            socket.send(WsMessage::text(open.to_string())).await.expect("send open");
            let mut outcome = Outcome {
                code: -1,
                message: String::new(),
                response: None,
                headers_echo: None,
                trailers_echo: None,
                details: Vec::new(),
                retry_after: None,
            };
            let mut response = None;
            while let Some(frame) = socket.next().await {
                let WsMessage::Text(text) = frame.expect("websocket frame") else { continue };
                let f: serde_json::Value = serde_json::from_str(&text).expect("frame JSON");
                match f["type"].as_str().expect("frame type") {
                    "headers" => outcome.headers_echo = first_string(&f["metadata"][ECHO_INITIAL]),
                    "message" => {
                        response = Some((rpc.response_from_json)(f["message"].to_string().as_bytes()));
                    }
                    "status" => {
                        outcome.code = code_from_connect(f["code"].as_str().expect("code"));
                        outcome.message = f["message"].as_str().unwrap_or_default().to_string();
                        outcome.trailers_echo = first_string(&f["trailers"][ECHO_TRAILING]).map(|v| bin(&v));
                        outcome.retry_after = first_string(&f["trailers"]["retry-after"]);
                        outcome.details = f["details"]
                            .as_array()
                            .map(|ds| {
                                ds.iter()
                                    .map(|d| {
                                        (
                                            d["type"].as_str().expect("type").to_string(),
                                            bin(d["value"].as_str().expect("value")),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        break;
                    }
                    "hello" | "credit" | "heartbeat" => {}
                    other => panic!("unexpected frame {other}: {text}"),
                }
            }
            if outcome.code == 0 {
                outcome.response = response;
            }
            outcome
        })
    }
}

// --------------------------------------------------------------------------------------

pub fn clients(server: &super::TestServer) -> Vec<Box<dyn ProtocolClient>> {
    let url = server.url();
    vec![
        Box::new(Native { url: url.clone() }),
        Box::new(Web { url: url.clone(), version: Http::H1, text: false }),
        Box::new(Web { url: url.clone(), version: Http::H2, text: true }),
        Box::new(Connect { url: url.clone(), version: Http::H1, json: true }),
        Box::new(Connect { url, version: Http::H2, json: false }),
        Box::new(WebSocket { addr: server.addr }),
    ]
}
