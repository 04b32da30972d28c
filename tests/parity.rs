//! Parity: the same calls through every protocol give the same response messages, the same
//! metadata and the same status codes.
//!
//! Each protocol is a [`ProtocolClient`] (native gRPC, gRPC-Web binary and text, Connect JSON
//! and proto, WebSocket JSON); a new protocol joins the comparison with one more
//! implementation in [`clients`].

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::{Buf as _, BufMut as _, Bytes};
use common::http::{self, Http, full, guard};
use portway::Config;
use portway::pb::grpc::testing::{EchoStatus, Empty, Payload, SimpleRequest, SimpleResponse};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// One RPC, with its request in both encodings and a way to turn a JSON response into the
/// binary one, so that every protocol's answer can be compared as protobuf.
struct Rpc {
    path: &'static str,
    proto: Vec<u8>,
    json: String,
    /// JSON response → canonical binary encoding.
    response_from_json: fn(&[u8]) -> Vec<u8>,
    /// Binary response → canonical binary encoding (decode, re-encode).
    response_from_proto: fn(&[u8]) -> Vec<u8>,
}

fn rpc<Req, Resp>(path: &'static str, req: Req) -> Rpc
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
struct Outcome {
    code: i32,
    message: String,
    /// The response message, canonically encoded (success only).
    response: Option<Vec<u8>>,
    /// `x-grpc-test-echo-initial` in the response headers (initial metadata).
    headers_echo: Option<String>,
    /// `x-grpc-test-echo-trailing-bin`, decoded, in the trailers (or with the error status).
    trailers_echo: Option<Vec<u8>>,
    /// Error details: (type name, value) pairs.
    details: Vec<(String, Vec<u8>)>,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A client of one protocol that can make a unary call.
trait ProtocolClient: Send + Sync {
    fn name(&self) -> &'static str;
    fn unary<'a>(
        &'a self,
        rpc: &'a Rpc,
        metadata: &'a [(&'a str, &'a str)],
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Outcome>;
}

fn details_of(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
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

fn bin(value: &str) -> Vec<u8> {
    STANDARD_NO_PAD.decode(value.trim_end_matches('=')).expect("base64 metadata")
}

// --------------------------------------------------------------------------------------
// Native gRPC: tonic's generic client (the generated clients' engine) with a pass-through
// codec, over a hyper HTTP/2 connection (tonic's own channel would also time calls out on
// the client side and report CANCELLED, hiding what the server said).

#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

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

struct Native {
    url: String,
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
                            };
                        }
                    }
                }
            };
            status_outcome(&status)
        })
    }
}

fn status_outcome(status: &Status) -> Outcome {
    Outcome {
        code: status.code() as i32,
        message: status.message().to_string(),
        response: None,
        headers_echo: None,
        trailers_echo: status.metadata().get_bin(ECHO_TRAILING).map(|v| v.to_bytes().unwrap().to_vec()),
        details: details_of(status.details()),
    }
}

// --------------------------------------------------------------------------------------
// gRPC-Web, binary or text, over a plain HTTP client.

struct Web {
    url: String,
    version: Http,
    text: bool,
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
            }
        })
    }
}

// --------------------------------------------------------------------------------------
// Connect unary, JSON or binary, over a plain HTTP client.

struct Connect {
    url: String,
    version: Http,
    json: bool,
}

/// Connect code names, from the protocol reference (not from the code under test).
fn code_from_connect(name: &str) -> i32 {
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
            }
        })
    }
}

// --------------------------------------------------------------------------------------
// WebSocket JSON (`portway.v1.json`): one socket per call here, a whole unary call in one
// `open` frame; the frames are read until the call's `status`.

struct WebSocket {
    addr: std::net::SocketAddr,
}

fn first_string(v: &serde_json::Value) -> Option<String> {
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

fn clients(server: &common::TestServer) -> Vec<Box<dyn ProtocolClient>> {
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

/// Makes the call through every protocol and returns the outcomes, checking they agree;
/// `compare_messages: false` compares codes only (for errors the gateway itself raises,
/// whose wording may differ per protocol).
async fn same_everywhere(
    server: &common::TestServer,
    rpc: &Rpc,
    metadata: &[(&str, &str)],
    timeout: Option<Duration>,
    compare_messages: bool,
) -> Outcome {
    let clients = clients(server);
    let calls = clients.iter().map(|c| async move { (c.name(), guard(c.unary(rpc, metadata, timeout)).await) });
    let outcomes = futures_util::future::join_all(calls).await;
    let (first_name, first) = outcomes[0].clone();
    for (name, o) in &outcomes[1..] {
        if compare_messages {
            assert_eq!(o, &first, "{} differs between {first_name} and {name}", rpc.path);
        } else {
            assert_eq!(o.code, first.code, "{} code differs between {first_name} and {name}: {o:?}", rpc.path);
        }
    }
    first
}

fn echo() -> Vec<(&'static str, &'static str)> {
    vec![(ECHO_INITIAL, "parity-value"), (ECHO_TRAILING, "q6ur")]
}

fn unary(req: SimpleRequest) -> Rpc {
    rpc::<SimpleRequest, SimpleResponse>("/grpc.testing.TestService/UnaryCall", req)
}

#[tokio::test]
async fn successful_calls_agree() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let md = echo();
    let cases = vec![
        rpc::<Empty, Empty>("/grpc.testing.TestService/EmptyCall", Empty {}),
        unary(SimpleRequest::default()),
        unary(SimpleRequest { response_size: 10, fill_server_id: true, ..Default::default() }),
        unary(SimpleRequest {
            response_size: 100_000,
            payload: Some(Payload { r#type: 0, body: vec![9; 50_000] }),
            ..Default::default()
        }),
        rpc::<SimpleRequest, SimpleResponse>(
            "/grpc.testing.TestService/CacheableUnaryCall",
            SimpleRequest { response_size: 3, ..Default::default() },
        ),
    ];
    for case in &cases {
        let o = same_everywhere(&server, case, &md, None, true).await;
        assert_eq!(o.code, 0, "{}: {o:?}", case.path);
        assert!(o.response.is_some());
        assert_eq!(o.headers_echo.as_deref(), Some("parity-value"), "{}", case.path);
        assert_eq!(o.trailers_echo.as_deref(), Some(&[0xab, 0xab, 0xab][..]), "{}", case.path);
    }
    // Without metadata, none comes back.
    let o = same_everywhere(&server, &cases[1], &[], None, true).await;
    assert_eq!((o.headers_echo, o.trailers_echo), (None, None));
}

#[tokio::test]
async fn every_status_code_agrees() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let md = echo();
    for code in 1..=16 {
        let message = format!("status {code}: with spaces, % and ☺");
        let case = unary(SimpleRequest {
            response_status: Some(EchoStatus { code, message: message.clone() }),
            ..Default::default()
        });
        let o = same_everywhere(&server, &case, &md, None, true).await;
        assert_eq!(o.code, code);
        assert_eq!(o.message, message);
        assert_eq!(o.response, None);
        assert_eq!(o.trailers_echo.as_deref(), Some(&[0xab, 0xab, 0xab][..]), "code {code}");
    }
}

#[tokio::test]
async fn error_details_agree() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let case = unary(SimpleRequest {
        payload: Some(Payload { r#type: 0, body: common::scripted::DETAILS.to_vec() }),
        ..Default::default()
    });
    let o = same_everywhere(&server, &case, &[], None, true).await;
    assert_eq!(o.code, Code::NotFound as i32);
    assert_eq!(o.details, vec![("grpc.testing.Empty".to_string(), vec![0xde, 0xad, 0xbe, 0xef])]);
}

#[tokio::test]
async fn deadline_exceeded_agrees() {
    let (server, mut dropped) = common::start_scripted(Config::default()).await;
    let case = unary(SimpleRequest {
        payload: Some(Payload { r#type: 0, body: common::scripted::SLOW.to_vec() }),
        ..Default::default()
    });
    let o = same_everywhere(&server, &case, &[], Some(Duration::from_millis(200)), true).await;
    assert_eq!(o.code, Code::DeadlineExceeded as i32, "{o:?}");
    // Every protocol's call was cancelled on the server.
    for _ in clients(&server) {
        assert_eq!(guard(dropped.recv()).await, Some("unary_call"));
    }
}

#[tokio::test]
async fn unknown_methods_are_unimplemented_everywhere() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let empty = |path| rpc::<Empty, Empty>(path, Empty {});
    for case in [
        empty("/grpc.testing.TestService/UnimplementedCall"),
        empty("/grpc.testing.UnimplementedService/UnimplementedCall"),
        empty("/grpc.testing.TestService/NoSuchMethod"),
        empty("/no.such.Service/Method"),
    ] {
        let o = same_everywhere(&server, &case, &[], None, false).await;
        assert_eq!(o.code, Code::Unimplemented as i32, "{}", case.path);
    }
    // The service's own UNIMPLEMENTED keeps its message everywhere.
    let o = same_everywhere(&server, &empty("/grpc.testing.TestService/UnimplementedCall"), &[], None, true).await;
    assert_eq!(o.message, "UnimplementedCall is not implemented, on purpose");
}

#[tokio::test]
async fn raw_bodies_match_byte_for_byte() {
    // Beyond decoded equality: the binary protocols relay the service's bytes untouched.
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let case = unary(SimpleRequest { response_size: 7, fill_server_id: true, ..Default::default() });
    let native = Native { url: server.url() };
    let o = guard(native.unary(&case, &[], None)).await;
    let reply = http::send(
        Http::H2,
        http::request("POST", &format!("{}{}", server.url(), case.path))
            .header("content-type", "application/proto")
            .body(full(case.proto.clone()))
            .expect("request"),
    )
    .await;
    assert_eq!(o.response.as_deref(), Some(&reply.body[..]));
}

#[tokio::test]
async fn max_call_timeout_caps_calls_without_a_deadline() {
    let mut config = Config::default();
    config.max_call_timeout = Some(Duration::from_millis(200));
    let (server, mut dropped) = common::start_scripted(config).await;
    let slow = unary(SimpleRequest {
        payload: Some(Payload { r#type: 0, body: common::scripted::SLOW.to_vec() }),
        ..Default::default()
    });
    let o = same_everywhere(&server, &slow, &[], None, true).await;
    assert_eq!(o.code, Code::DeadlineExceeded as i32, "{o:?}");
    for _ in clients(&server) {
        assert_eq!(guard(dropped.recv()).await, Some("unary_call"));
    }
    // A longer deadline asked by the client is capped too.
    let o = same_everywhere(&server, &slow, &[], Some(Duration::from_secs(30)), true).await;
    assert_eq!(o.code, Code::DeadlineExceeded as i32, "{o:?}");
    // Fast calls are unaffected.
    let o = same_everywhere(&server, &unary(SimpleRequest::default()), &[], None, true).await;
    assert_eq!(o.code, 0);
}
