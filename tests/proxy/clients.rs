//! One client per protocol, each able to make a call of every RPC kind its protocol
//! carries, all reporting what the call looked like in one shape ([`Outcome`]), so that a
//! call through portway can be compared with the same call made to the upstream directly.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use portway::transcode::RpcKind;
use tonic::Status;

use crate::common::http::{self, Http, full};
use crate::common::protocols::{RawCodec, bin, code_from_connect, details_of, first_string};

pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// One call: its method, kind, request messages (binary and JSON) and metadata.
pub struct Case {
    pub name: String,
    pub path: String,
    pub kind: RpcKind,
    pub requests: Vec<(Vec<u8>, String)>,
    pub metadata: Vec<(String, String)>,
    /// A JSON response message → its binary encoding.
    pub from_json: fn(&[u8]) -> Vec<u8>,
    /// A binary response message → its canonical encoding (decoded and encoded again:
    /// protobufjs, say, writes default values that prost leaves out).
    pub canonical: fn(&[u8]) -> Vec<u8>,
}

impl Outcome {
    /// The same outcome with its response messages in canonical encoding.
    pub fn canonical(mut self, case: &Case) -> Self {
        self.responses = self.responses.iter().map(|r| (case.canonical)(r)).collect();
        self
    }
}

/// What a call looked like to its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub message: String,
    /// The response messages, binary.
    pub responses: Vec<Vec<u8>>,
    /// `x-grpc-test-echo-initial` in the response headers.
    pub headers_echo: Option<String>,
    /// `x-grpc-test-echo-trailing-bin`, decoded, from the trailers (or with the error).
    pub trailers_echo: Option<Vec<u8>>,
    /// Error details: (type name, value).
    pub details: Vec<(String, Vec<u8>)>,
}

impl Outcome {
    fn new() -> Self {
        Self {
            code: -1,
            message: String::new(),
            responses: Vec::new(),
            headers_echo: None,
            trailers_echo: None,
            details: Vec::new(),
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A client of one protocol.
pub trait Client: Send + Sync {
    fn name(&self) -> String;
    /// Whether the protocol carries calls of `kind`.
    fn carries(&self, kind: RpcKind) -> bool;
    fn call<'a>(&'a self, case: &'a Case) -> BoxFuture<'a, Outcome>;
}

// ----------------------------------------------------------------------------------------
// Native gRPC: tonic's generic client with a pass-through codec, over hyper HTTP/2.

pub struct Native {
    pub url: String,
    pub label: &'static str,
}

fn status_outcome(status: &Status, mut o: Outcome) -> Outcome {
    o.code = status.code() as i32;
    o.message = status.message().to_owned();
    o.trailers_echo = status.metadata().get_bin(ECHO_TRAILING).map(|v| v.to_bytes().expect("base64").to_vec());
    o.details = details_of(status.details());
    o
}

impl Client for Native {
    fn name(&self) -> String {
        self.label.to_owned()
    }

    fn carries(&self, _: RpcKind) -> bool {
        true
    }

    fn call<'a>(&'a self, case: &'a Case) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http::<tonic::body::Body>();
            let mut grpc = tonic::client::Grpc::with_origin(hyper, self.url.parse().expect("uri"));
            let messages: Vec<Bytes> = case.requests.iter().map(|(b, _)| Bytes::from(b.clone())).collect();
            let mut req = tonic::Request::new(futures_util::stream::iter(messages));
            for (k, v) in &case.metadata {
                if k.ends_with("-bin") {
                    let key = tonic::metadata::BinaryMetadataKey::from_bytes(k.as_bytes()).expect("key");
                    req.metadata_mut().insert_bin(key, tonic::metadata::BinaryMetadataValue::from_bytes(&bin(v)));
                } else {
                    let key = tonic::metadata::AsciiMetadataKey::from_bytes(k.as_bytes()).expect("key");
                    req.metadata_mut().insert(key, v.parse().expect("value"));
                }
            }
            grpc.ready().await.expect("ready");
            let mut o = Outcome::new();
            let resp = match grpc.streaming(req, case.path.parse().expect("path"), RawCodec).await {
                Ok(resp) => resp,
                Err(status) => return status_outcome(&status, o),
            };
            o.headers_echo = resp.metadata().get(ECHO_INITIAL).map(|v| v.to_str().expect("ascii").to_owned());
            let mut stream = resp.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(m)) => o.responses.push(m.to_vec()),
                    Ok(None) => break,
                    Err(status) => return status_outcome(&status, o),
                }
            }
            let trailers = stream.trailers().await.expect("trailers").unwrap_or_default();
            o.code = 0;
            o.trailers_echo = trailers.get_bin(ECHO_TRAILING).map(|v| v.to_bytes().expect("base64").to_vec());
            o
        })
    }
}

// ----------------------------------------------------------------------------------------
// gRPC-Web, binary or text: every message in one request body.

pub struct Web {
    pub url: String,
    pub version: Http,
    pub text: bool,
}

impl Client for Web {
    fn name(&self) -> String {
        format!("{} ({:?})", if self.text { "grpc-web-text" } else { "grpc-web" }, self.version)
    }

    fn carries(&self, kind: RpcKind) -> bool {
        // Browsers cannot stream a request body: no bidi.
        kind != RpcKind::BidiStreaming
    }

    fn call<'a>(&'a self, case: &'a Case) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let md: Vec<(&str, &str)> = case.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let messages: Vec<&[u8]> = case.requests.iter().map(|(b, _)| b.as_slice()).collect();
            let url = format!("{}{}", self.url, case.path);
            let reply = http::grpc_web_call(self.version, self.text, &url, &messages, &md).await;
            let mut o = Outcome::new();
            o.code = reply.code();
            // A message with OK means nothing (grpc-js sends `grpc-message: OK`); clients drop it.
            o.message = if o.code == 0 { String::new() } else { reply.message() };
            o.responses = reply.messages.iter().map(|m| m.to_vec()).collect();
            if !reply.trailers_only {
                o.headers_echo = reply.headers.get(ECHO_INITIAL).map(|v| v.to_str().expect("ascii").to_owned());
            }
            o.trailers_echo = reply.trailers.get(ECHO_TRAILING).map(|v| bin(v.to_str().expect("ascii")));
            o.details = reply
                .trailers
                .get("grpc-status-details-bin")
                .map(|v| details_of(&bin(v.to_str().expect("ascii"))))
                .unwrap_or_default();
            o
        })
    }
}

// ----------------------------------------------------------------------------------------
// Connect: unary (JSON or binary), or streaming (envelopes, JSON or binary).

pub struct Connect {
    pub url: String,
    pub version: Http,
    pub json: bool,
}

fn connect_error(err: &serde_json::Value, o: &mut Outcome) {
    o.code = code_from_connect(err["code"].as_str().expect("code"));
    o.message = err["message"].as_str().unwrap_or_default().to_owned();
    o.details = err["details"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .map(|d| (d["type"].as_str().expect("type").to_owned(), bin(d["value"].as_str().expect("value"))))
                .collect()
        })
        .unwrap_or_default();
}

impl Client for Connect {
    fn name(&self) -> String {
        format!("{} ({:?})", if self.json { "connect-json" } else { "connect-proto" }, self.version)
    }

    fn carries(&self, kind: RpcKind) -> bool {
        // Connect streams a request body only over HTTP/2.
        kind != RpcKind::BidiStreaming || self.version == Http::H2
    }

    fn call<'a>(&'a self, case: &'a Case) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let unary = case.kind == RpcKind::Unary;
            let encoding = if self.json { "json" } else { "proto" };
            let content_type =
                if unary { format!("application/{encoding}") } else { format!("application/connect+{encoding}") };
            let payload = |(b, j): &(Vec<u8>, String)| if self.json { j.clone().into_bytes() } else { b.clone() };
            let body = if unary {
                payload(&case.requests[0])
            } else {
                case.requests.iter().flat_map(|r| http::frame(0, &payload(r))).collect()
            };
            let mut req = http::request("POST", &format!("{}{}", self.url, case.path))
                .header("content-type", content_type)
                .header("connect-protocol-version", "1");
            for (k, v) in &case.metadata {
                req = req.header(k.as_str(), v.as_str());
            }
            let reply = http::send(self.version, req.body(full(body)).expect("request")).await;
            let mut o = Outcome::new();
            o.headers_echo = reply.header(ECHO_INITIAL).map(str::to_owned);
            let response = |b: &[u8]| if self.json { (case.from_json)(b) } else { b.to_vec() };
            if unary {
                o.trailers_echo = reply.header(&format!("trailer-{ECHO_TRAILING}")).map(bin);
                if reply.status == ::http::StatusCode::OK {
                    o.code = 0;
                    o.responses.push(response(&reply.body));
                } else {
                    connect_error(&reply.json(), &mut o);
                }
                return o;
            }
            let stream = http::parse_connect_stream(&reply.body);
            o.responses = stream.messages.iter().map(|m| response(m)).collect();
            match stream.end.get("error") {
                Some(err) => connect_error(err, &mut o),
                None => o.code = 0,
            }
            o.trailers_echo = stream.end["metadata"][ECHO_TRAILING][0].as_str().map(bin);
            o
        })
    }
}

// ----------------------------------------------------------------------------------------
// WebSocket JSON (portway.v1.json): one socket per call; every message sent, then the
// frames read until the call's status.

pub struct WebSocket {
    pub addr: std::net::SocketAddr,
}

impl Client for WebSocket {
    fn name(&self) -> String {
        "websocket".into()
    }

    fn carries(&self, _: RpcKind) -> bool {
        true
    }

    fn call<'a>(&'a self, case: &'a Case) -> BoxFuture<'a, Outcome> {
        use futures_util::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::Message as WsMessage;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        Box::pin(async move {
            let mut req = format!("ws://{}/ws", self.addr).into_client_request().expect("request");
            req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().expect("header"));
            let (mut socket, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connect");
            let metadata: serde_json::Map<String, serde_json::Value> =
                case.metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect();
            let json = |i: usize| serde_json::from_str::<serde_json::Value>(&case.requests[i].1).expect("request JSON");
            let last = case.requests.len() - 1;
            let open = serde_json::json!({
                "type": "open", "id": 1, "method": case.path, "metadata": metadata,
                "message": json(0), "end": last == 0,
            });
            socket.send(WsMessage::text(open.to_string())).await.expect("send open");
            for i in 1..=last {
                let m = serde_json::json!({"type": "message", "id": 1, "message": json(i), "end": i == last});
                socket.send(WsMessage::text(m.to_string())).await.expect("send message");
            }
            let mut o = Outcome::new();
            while let Some(frame) = socket.next().await {
                let WsMessage::Text(text) = frame.expect("websocket frame") else { continue };
                let f: serde_json::Value = serde_json::from_str(&text).expect("frame JSON");
                match f["type"].as_str().expect("frame type") {
                    "headers" => o.headers_echo = first_string(&f["metadata"][ECHO_INITIAL]),
                    "message" => o.responses.push((case.from_json)(f["message"].to_string().as_bytes())),
                    "status" => {
                        o.code = code_from_connect(f["code"].as_str().expect("code"));
                        if o.code != 0 {
                            o.message = f["message"].as_str().unwrap_or_default().to_owned();
                        }
                        o.trailers_echo = first_string(&f["trailers"][ECHO_TRAILING]).map(|v| bin(&v));
                        if let Some(ds) = f["details"].as_array() {
                            o.details = ds
                                .iter()
                                .map(|d| {
                                    (
                                        d["type"].as_str().expect("type").to_owned(),
                                        bin(d["value"].as_str().expect("value")),
                                    )
                                })
                                .collect();
                        }
                        break;
                    }
                    "hello" | "credit" | "heartbeat" => {}
                    other => panic!("unexpected frame {other}: {text}"),
                }
            }
            o
        })
    }
}

/// Every client of portway at `server`, the reference client of the upstream first.
pub fn all(upstream_url: &str, portway_url: &str, portway_addr: std::net::SocketAddr) -> Vec<Box<dyn Client>> {
    vec![
        Box::new(Native { url: upstream_url.to_owned(), label: "direct grpc" }),
        Box::new(Native { url: portway_url.to_owned(), label: "grpc" }),
        Box::new(Web { url: portway_url.to_owned(), version: Http::H1, text: false }),
        Box::new(Web { url: portway_url.to_owned(), version: Http::H2, text: true }),
        Box::new(Connect { url: portway_url.to_owned(), version: Http::H1, json: true }),
        Box::new(Connect { url: portway_url.to_owned(), version: Http::H2, json: false }),
        Box::new(Connect { url: portway_url.to_owned(), version: Http::H2, json: true }),
        Box::new(WebSocket { addr: portway_addr }),
    ]
}
