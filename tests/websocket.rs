//! The WebSocket protocol (`portway.v1.json`, docs/websocket-protocol.md) against a real
//! gateway on a real socket: every RPC kind, parity with native gRPC, flow control,
//! cancellation, heartbeats, every malformed input, HTTP/2 extended CONNECT, and a soak.

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt as _, Stream, StreamExt as _};
use portway::Config;
use portway::metrics::Metrics;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::test_service_server::{TestService, TestServiceServer};
use portway::pb::grpc::testing::{
    EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};
use tonic::{Code, Status};

use common::TestServer;
use common::http::eventually;

const TS: &str = "/grpc.testing.TestService";

// ---------------------------------------------------------------------------------------
// A minimal client for the protocol.

struct Ws<S> {
    inner: WebSocketStream<S>,
    /// Frames read while waiting for another call's.
    stash: VecDeque<Value>,
    hello: Value,
}

/// Everything one call received.
#[derive(Debug, Default)]
struct Outcome {
    headers: Option<Value>,
    messages: Vec<Value>,
    status: Value,
    credits: Vec<u64>,
}

impl Outcome {
    fn code(&self) -> &str {
        self.status["code"].as_str().unwrap_or("<none>")
    }
}

async fn connect(server: &TestServer) -> Ws<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    connect_with(server, "/ws", &[]).await
}

async fn connect_with(
    server: &TestServer,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Ws<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let mut req = format!("ws://{}{path_and_query}", server.addr).into_client_request().expect("request");
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().unwrap());
    for (k, v) in headers {
        req.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let (inner, resp) = tokio_tungstenite::connect_async(req).await.expect("websocket connect");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "portway.v1.json");
    Ws::start(inner).await
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ws<S> {
    async fn start(inner: WebSocketStream<S>) -> Self {
        let mut ws = Ws { inner, stash: VecDeque::new(), hello: Value::Null };
        let hello = ws.next_frame().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        ws.hello = hello;
        ws
    }

    async fn send(&mut self, frame: Value) {
        self.inner.send(Message::text(frame.to_string())).await.expect("send");
    }

    async fn send_text(&mut self, text: &str) {
        self.inner.send(Message::text(text.to_string())).await.expect("send");
    }

    /// The next WebSocket message of any kind (pings are answered by the codec).
    async fn next_raw(&mut self) -> Option<Message> {
        match tokio::time::timeout(Duration::from_secs(20), self.inner.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            Ok(Some(Err(e))) => panic!("read failed: {e}"),
            Ok(None) => None,
            Err(_) => panic!("no frame within 20 s"),
        }
    }

    /// The next JSON frame, stashed ones first, skipping heartbeats.
    async fn next_frame(&mut self) -> Value {
        match self.stash.pop_front() {
            Some(v) => v,
            None => self.next_frame_unstashed().await,
        }
    }

    /// The next frame that is about call `id` (others are kept for later).
    async fn next_for(&mut self, id: u64) -> Value {
        if let Some(pos) = self.stash.iter().position(|v| v["id"] == id) {
            return self.stash.remove(pos).expect("present");
        }
        loop {
            let v = self.next_frame_unstashed().await;
            if v["id"] == id {
                return v;
            }
            self.stash.push_back(v);
        }
    }

    /// The next JSON frame from the socket, skipping heartbeats.
    async fn next_frame_unstashed(&mut self) -> Value {
        loop {
            match self.next_raw().await {
                Some(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("server frames are JSON");
                    if v["type"] != "heartbeat" {
                        return v;
                    }
                }
                Some(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads call `id` to its status frame.
    async fn finish(&mut self, id: u64) -> Outcome {
        let mut out = Outcome::default();
        loop {
            let v = self.next_for(id).await;
            match v["type"].as_str() {
                Some("headers") => {
                    assert!(out.headers.is_none() && out.messages.is_empty(), "headers once, first: {v}");
                    out.headers = Some(v["metadata"].clone());
                }
                Some("message") => out.messages.push(v["message"].clone()),
                Some("credit") => out.credits.push(v["credit"].as_u64().expect("credit")),
                Some("status") => {
                    out.status = v;
                    return out;
                }
                _ => panic!("unexpected frame for call {id}: {v}"),
            }
        }
    }

    /// A unary call in one frame.
    async fn unary(&mut self, id: u64, method: &str, message: Value) -> Outcome {
        self.send(json!({"type":"open","id":id,"method":format!("{TS}/{method}"),"message":message,"end":true})).await;
        self.finish(id).await
    }

    /// Expects the socket to be closed with `code`.
    async fn expect_close(&mut self, code: u16) -> String {
        loop {
            match self.next_raw().await {
                Some(Message::Close(Some(CloseFrame { code: c, reason }))) => {
                    assert_eq!(u16::from(c), code, "close reason: {reason}");
                    return reason.to_string();
                }
                Some(Message::Text(_) | Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("expected close {code}, got {other:?}"),
            }
        }
    }
}

fn b64(n: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(vec![0u8; n])
}

fn body_len(message: &Value) -> usize {
    let body = message["payload"]["body"].as_str().unwrap_or("");
    base64::engine::general_purpose::STANDARD.decode(body).expect("base64").len()
}

/// Waits until every WebSocket gauge is back to zero (sockets, calls, tasks).
async fn settled(metrics: &Metrics) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = (
            metrics.websockets_open.load(Ordering::Relaxed),
            metrics.websocket_calls_open.load(Ordering::Relaxed),
            metrics.websocket_tasks.load(Ordering::Relaxed),
        );
        if now == (0, 0, 0) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "gauges did not return to zero: {now:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `f` holds, polling (the thing waited for has no event to await).
fn config(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    f(&mut c);
    c
}

// ---------------------------------------------------------------------------------------
// A probe service: records what its handlers see and lets tests hold them.

#[derive(Clone, Default)]
struct Probe {
    /// Messages the endless stream has produced.
    produced: Arc<AtomicUsize>,
    /// Flips to true when a handler's stream is dropped (the handler ended).
    ended: Arc<watch::Sender<bool>>,
    /// Holds StreamingInputCall before it reads anything.
    release: Arc<Notify>,
}

struct EndGuard(Arc<watch::Sender<bool>>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl TestService for Probe {
    async fn empty_call(&self, _: tonic::Request<Empty>) -> Result<tonic::Response<Empty>, Status> {
        // An error with details, as google.rpc.Status in grpc-status-details-bin.
        use prost::Message as _;
        let details = portway::pb::google::rpc::Status {
            code: Code::FailedPrecondition as i32,
            message: "with details".into(),
            details: vec![portway::protojson::Any {
                type_url: "type.googleapis.com/grpc.testing.Empty".into(),
                value: vec![1, 2, 3].into(),
            }],
        };
        Err(Status::with_details(Code::FailedPrecondition, "with details", details.encode_to_vec().into()))
    }

    async fn unary_call(&self, req: tonic::Request<SimpleRequest>) -> Result<tonic::Response<SimpleResponse>, Status> {
        let get = |k: &str| req.metadata().get(k).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        let seen = format!(
            "authorization={};cookie={};x-team={};peer={}",
            get("authorization"),
            get("cookie"),
            get("x-team"),
            req.remote_addr().map_or("-".into(), |a| a.ip().to_string())
        );
        Ok(tonic::Response::new(SimpleResponse {
            payload: Some(Payload { body: seen.into_bytes(), ..Default::default() }),
            ..Default::default()
        }))
    }

    async fn cacheable_unary_call(
        &self,
        _: tonic::Request<SimpleRequest>,
    ) -> Result<tonic::Response<SimpleResponse>, Status> {
        Err(Status::unimplemented("probe"))
    }

    type StreamingOutputCallStream = BoxStream<StreamingOutputCallResponse>;

    /// An endless stream that counts what it produced.
    async fn streaming_output_call(
        &self,
        _: tonic::Request<StreamingOutputCallRequest>,
    ) -> Result<tonic::Response<Self::StreamingOutputCallStream>, Status> {
        let produced = self.produced.clone();
        let guard = EndGuard(self.ended.clone());
        let stream = async_stream::stream! {
            let _guard = guard;
            loop {
                produced.fetch_add(1, Ordering::SeqCst);
                yield Ok(StreamingOutputCallResponse { payload: Some(Payload { body: vec![7; 8], ..Default::default() }) });
            }
        };
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    /// Waits for `release`, then reads everything.
    async fn streaming_input_call(
        &self,
        req: tonic::Request<tonic::Streaming<StreamingInputCallRequest>>,
    ) -> Result<tonic::Response<StreamingInputCallResponse>, Status> {
        let _guard = EndGuard(self.ended.clone());
        self.release.notified().await;
        let mut stream = req.into_inner();
        let mut n = 0;
        while stream.message().await?.is_some() {
            n += 1;
        }
        Ok(tonic::Response::new(StreamingInputCallResponse { aggregated_payload_size: n }))
    }

    type FullDuplexCallStream = BoxStream<StreamingOutputCallResponse>;

    /// Never answers; reports when it is dropped.
    async fn full_duplex_call(
        &self,
        _: tonic::Request<tonic::Streaming<StreamingOutputCallRequest>>,
    ) -> Result<tonic::Response<Self::FullDuplexCallStream>, Status> {
        let guard = EndGuard(self.ended.clone());
        let stream = async_stream::stream! {
            let _guard = guard;
            std::future::pending::<()>().await;
            yield Ok(StreamingOutputCallResponse::default());
        };
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    type HalfDuplexCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn half_duplex_call(
        &self,
        _: tonic::Request<tonic::Streaming<StreamingOutputCallRequest>>,
    ) -> Result<tonic::Response<Self::HalfDuplexCallStream>, Status> {
        Err(Status::unimplemented("probe"))
    }

    async fn unimplemented_call(&self, _: tonic::Request<Empty>) -> Result<tonic::Response<Empty>, Status> {
        Err(Status::unimplemented("probe"))
    }
}

async fn start_probe(probe: &Probe, config: Config) -> TestServer {
    let routes = tonic::service::Routes::new(TestServiceServer::new(probe.clone()));
    common::start_routes(routes, config).await
}

// ---------------------------------------------------------------------------------------
// Every RPC kind.

#[tokio::test]
async fn unary_call_in_one_frame() {
    let server = common::start_interop(Config::default()).await;
    let mut ws = connect(&server).await;
    assert_eq!(ws.hello["protocol"], "portway.v1.json");
    assert_eq!(ws.hello["initialCredit"], 16);
    assert_eq!(ws.hello["maxMessageBytes"], 4 * 1024 * 1024);
    assert_eq!(ws.hello["maxCalls"], 100);
    let out = ws.unary(1, "UnaryCall", json!({"responseSize": 3, "fillServerId": true})).await;
    assert_eq!(out.code(), "ok", "{:?}", out.status);
    assert_eq!(out.headers, Some(json!({})));
    assert_eq!(out.messages, vec![json!({"payload": {"body": "AAAA"}, "serverId": "portway"})]);
    assert_eq!(out.status["trailers"], json!({}));
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn every_rpc_kind() {
    let server = common::start_interop(Config::default()).await;
    let mut ws = connect(&server).await;

    // Server streaming.
    let req = json!({"responseParameters": [{"size": 1}, {"size": 2}, {"size": 3}]});
    ws.send(json!({"type":"open","id":1,"method":format!("{TS}/StreamingOutputCall"),"message":req,"end":true})).await;
    let out = ws.finish(1).await;
    assert_eq!(out.code(), "ok");
    assert_eq!(out.messages.iter().map(body_len).collect::<Vec<_>>(), [1, 2, 3]);

    // Client streaming: open, three messages, half-close.
    ws.send(json!({"type":"open","id":2,"method":format!("{TS}/StreamingInputCall")})).await;
    for n in [10, 20, 30] {
        ws.send(json!({"type":"message","id":2,"message":{"payload":{"body": b64(n)}}})).await;
    }
    ws.send(json!({"type":"half_close","id":2})).await;
    let out = ws.finish(2).await;
    assert_eq!(out.code(), "ok");
    assert_eq!(out.messages, vec![json!({"aggregatedPayloadSize": 60})]);

    // Bidi: each request answered before the next is sent (ping-pong).
    ws.send(json!({"type":"open","id":3,"method":format!("{TS}/FullDuplexCall")})).await;
    assert_eq!(ws.next_for(3).await["type"], "headers");
    for n in 1..=5 {
        ws.send(json!({"type":"message","id":3,"message":{"responseParameters":[{"size": n}]}})).await;
        let v = ws.next_for(3).await;
        assert_eq!(v["type"], "message", "{v}");
        assert_eq!(body_len(&v["message"]), n);
    }
    ws.send(json!({"type":"half_close","id":3})).await;
    let out = ws.finish(3).await;
    assert_eq!(out.code(), "ok");
    assert!(out.messages.is_empty());

    // Half duplex: everything after the half-close.
    ws.send(json!({"type":"open","id":4,"method":format!("{TS}/HalfDuplexCall"),
        "message":{"responseParameters":[{"size":4}]}}))
        .await;
    ws.send(json!({"type":"message","id":4,"message":{"responseParameters":[{"size":5}]},"end":true})).await;
    let out = ws.finish(4).await;
    assert_eq!(out.code(), "ok");
    assert_eq!(out.messages.iter().map(body_len).collect::<Vec<_>>(), [4, 5]);

    // Health too: every mounted service in the method table is reachable.
    ws.send(json!({"type":"open","id":5,"method":"/grpc.health.v1.Health/Check","message":{},"end":true})).await;
    let out = ws.finish(5).await;
    assert_eq!(out.messages, vec![json!({"status": "SERVING"})]);
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn many_concurrent_calls_on_one_socket() {
    let server = common::start_interop(Config::default()).await;
    let mut ws = connect(&server).await;
    // 40 streams and 40 unary calls, all open at once, answers interleaved.
    for i in 0..40u64 {
        let params: Vec<Value> = (0..3).map(|k| json!({"size": i as usize + k, "intervalUs": 1000})).collect();
        ws.send(json!({"type":"open","id":2*i,"method":format!("{TS}/StreamingOutputCall"),
            "message":{"responseParameters":params},"end":true}))
            .await;
        ws.send(json!({"type":"open","id":2*i+1,"method":format!("{TS}/UnaryCall"),
            "message":{"responseSize": i},"end":true}))
            .await;
    }
    for i in (0..40u64).rev() {
        let out = ws.finish(2 * i + 1).await;
        assert_eq!(out.code(), "ok");
        assert_eq!(body_len(&out.messages[0]), i as usize);
        let out = ws.finish(2 * i).await;
        assert_eq!(out.code(), "ok");
        let want: Vec<usize> = (0..3).map(|k| i as usize + k).collect();
        assert_eq!(out.messages.iter().map(body_len).collect::<Vec<_>>(), want);
    }
    assert_eq!(server.metrics.websocket_calls_open.load(Ordering::Relaxed), 0);
    drop(ws);
    settled(&server.metrics).await;
}

// ---------------------------------------------------------------------------------------
// Parity with native gRPC.

#[tokio::test]
async fn status_codes_match_native_grpc() {
    let server = common::start_interop(Config::default()).await;
    let mut native = TestServiceClient::new(server.channel().await);
    let mut ws = connect(&server).await;
    for code in 1..=16 {
        let message = format!("status {code} on purpose");
        let native_status = native
            .unary_call(SimpleRequest {
                response_status: Some(EchoStatus { code, message: message.clone() }),
                ..Default::default()
            })
            .await
            .expect_err("an error status");
        let out =
            ws.unary(code as u64, "UnaryCall", json!({"responseStatus": {"code": code, "message": message}})).await;
        assert_eq!(native_status.code(), Code::from_i32(code));
        assert_eq!(
            out.code(),
            portway::transcode::status::connect_code(native_status.code()),
            "code {code}: {:?}",
            out.status
        );
        assert_eq!(out.status["message"], native_status.message(), "code {code}");
        assert!(out.messages.is_empty());
    }
    // The same on a stream, after messages were sent.
    ws.send(json!({"type":"open","id":100,"method":format!("{TS}/StreamingOutputCall"),
        "message":{"responseParameters":[{"size":1}],"responseStatus":{"code":5,"message":"gone"}},"end":true}))
        .await;
    let out = ws.finish(100).await;
    assert_eq!(out.messages.len(), 1);
    assert_eq!((out.code(), out.status["message"].as_str()), ("not_found", Some("gone")));
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn metadata_echo_matches_native_grpc() {
    let server = common::start_interop(Config::default()).await;
    let mut native = TestServiceClient::new(server.channel().await);
    let trailing = base64::engine::general_purpose::STANDARD_NO_PAD.encode([0xab, 0xab, 0xab]);

    let mut req = tonic::Request::new(SimpleRequest { response_size: 1, ..Default::default() });
    req.metadata_mut().insert("x-grpc-test-echo-initial", "test_initial_metadata_value".parse().unwrap());
    req.metadata_mut()
        .insert_bin("x-grpc-test-echo-trailing-bin", tonic::metadata::MetadataValue::from_bytes(&[0xab; 3]));
    // tonic folds a unary call's trailers into the response metadata.
    let resp = native.unary_call(req).await.expect("native call");
    let native_initial = resp.metadata().get("x-grpc-test-echo-initial").cloned();
    let native_trailing = resp.metadata().get_bin("x-grpc-test-echo-trailing-bin").map(|v| v.to_bytes().unwrap());

    let mut ws = connect(&server).await;
    ws.send(json!({"type":"open","id":1,"method":format!("{TS}/UnaryCall"),"end":true,
        "message":{"responseSize":1},
        "metadata":{"x-grpc-test-echo-initial":"test_initial_metadata_value",
                    "x-grpc-test-echo-trailing-bin":trailing}}))
        .await;
    let out = ws.finish(1).await;
    assert_eq!(out.code(), "ok");
    let headers = out.headers.expect("headers");
    assert_eq!(headers["x-grpc-test-echo-initial"], json!([native_initial.unwrap().to_str().unwrap()]));
    let ws_trailing = out.status["trailers"]["x-grpc-test-echo-trailing-bin"][0].as_str().expect("trailer");
    let ws_trailing = base64::engine::general_purpose::STANDARD_NO_PAD.decode(ws_trailing.trim_end_matches('='));
    assert_eq!(ws_trailing.unwrap(), native_trailing.expect("native trailer").to_vec());

    // A failing call: the echo arrives as trailers (trailers-only), as natively.
    ws.send(json!({"type":"open","id":2,"method":format!("{TS}/UnaryCall"),"end":true,
        "message":{"responseStatus":{"code":3,"message":"bad"}},
        "metadata":{"x-grpc-test-echo-initial":"v"}}))
        .await;
    let out = ws.finish(2).await;
    assert_eq!(out.code(), "invalid_argument");
    assert_eq!(out.status["trailers"]["x-grpc-test-echo-initial"], json!(["v"]));
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn error_details_match_native_grpc() {
    let probe = Probe::default();
    let server = start_probe(&probe, Config::default()).await;
    let native = TestServiceClient::new(server.channel().await).empty_call(Empty {}).await.expect_err("error");
    let mut ws = connect(&server).await;
    let out = ws.unary(1, "EmptyCall", json!({})).await;
    assert_eq!(out.code(), "failed_precondition");
    assert_eq!(out.status["message"], native.message());
    assert_eq!(out.status["details"], json!([{"type": "grpc.testing.Empty", "value": "AQID"}]));
    assert!(!native.details().is_empty());
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn deadline_exceeded_matches_native_grpc() {
    let server = common::start_interop(Config::default()).await;
    let mut native = TestServiceClient::new(server.channel().await);
    let slow = StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters { size: 1, interval_us: 5_000_000, ..Default::default() }],
        ..Default::default()
    };
    let mut req = tonic::Request::new(slow);
    req.set_timeout(Duration::from_millis(100));
    let native_status = match native.streaming_output_call(req).await {
        Err(s) => s,
        Ok(resp) => resp.into_inner().message().await.expect_err("deadline"),
    };
    assert_eq!(native_status.code(), Code::DeadlineExceeded);

    let mut ws = connect(&server).await;
    ws.send(json!({"type":"open","id":1,"method":format!("{TS}/StreamingOutputCall"),"timeoutMs":100,"end":true,
        "message":{"responseParameters":[{"size":1,"intervalUs":5000000}]}}))
        .await;
    let out = ws.finish(1).await;
    assert_eq!(out.code(), "deadline_exceeded");
    assert_eq!(out.status["message"], native_status.message());
    drop(ws);
    settled(&server.metrics).await;
}

// ---------------------------------------------------------------------------------------
// Cancellation and flow control.

#[tokio::test]
async fn cancel_reaches_the_handler() {
    let probe = Probe::default();
    let server = start_probe(&probe, Config::default()).await;
    let mut ended = probe.ended.subscribe();
    let mut ws = connect(&server).await;
    ws.send(json!({"type":"open","id":1,"method":format!("{TS}/FullDuplexCall"),"message":{}})).await;
    assert_eq!(ws.next_for(1).await["type"], "headers");
    assert_eq!(server.metrics.websocket_calls_open.load(Ordering::Relaxed), 1);
    assert!(!*ended.borrow());
    ws.send(json!({"type":"cancel","id":1})).await;
    let out = ws.finish(1).await;
    assert_eq!(out.code(), "canceled");
    tokio::time::timeout(Duration::from_secs(10), ended.wait_for(|e| *e)).await.expect("handler ended").unwrap();
    eventually("the call gauge to drop", || server.metrics.websocket_calls_open.load(Ordering::Relaxed) == 0).await;
    // The socket goes on; cancelling a call that ended is dropped silently.
    ws.send(json!({"type":"cancel","id":1})).await;
    ws.send(json!({"type":"ping","data":"after"})).await;
    assert_eq!(ws.next_frame().await, json!({"type":"pong","data":"after"}));
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn interop_stream_is_cancelled_by_cancel_and_by_close() {
    let server = common::start_interop(Config::default()).await;
    let mut ws = connect(&server).await;
    let slow = json!({"responseParameters":[{"size":1,"intervalUs":30000000}]});
    ws.send(json!({"type":"open","id":1,"method":format!("{TS}/FullDuplexCall"),"message":slow})).await;
    ws.send(json!({"type":"open","id":2,"method":format!("{TS}/FullDuplexCall"),"message":slow})).await;
    assert_eq!(ws.next_for(1).await["type"], "headers");
    assert_eq!(ws.next_for(2).await["type"], "headers");
    assert_eq!(server.metrics.websocket_calls_open.load(Ordering::Relaxed), 2);
    ws.send(json!({"type":"cancel","id":1})).await;
    assert_eq!(ws.finish(1).await.code(), "canceled");
    eventually("one call left", || server.metrics.websocket_calls_open.load(Ordering::Relaxed) == 1).await;
    // Closing the socket cancels the other.
    ws.inner.close(None).await.expect("close");
    settled(&server.metrics).await;
}

#[tokio::test]
async fn response_credit_bounds_the_server() {
    let server = common::start_interop(Config::default()).await;
    let mut ws = connect(&server).await;
    let params: Vec<Value> = (1..=5).map(|n| json!({"size": n})).collect();
    ws.send(json!({"type":"open","id":1,"method":format!("{TS}/StreamingOutputCall"),"credit":1,"end":true,
        "message":{"responseParameters":params}}))
        .await;
    assert_eq!(ws.next_for(1).await["type"], "headers");
    assert_eq!(body_len(&ws.next_for(1).await["message"]), 1);
    for expected in 2..=3 {
        // Nothing more arrives without credit: a ping round trip and a pause later, still nothing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        ws.send(json!({"type":"ping"})).await;
        assert_eq!(ws.next_frame().await, json!({"type":"pong"}));
        assert!(ws.stash.is_empty(), "frames without credit: {:?}", ws.stash);
        ws.send(json!({"type":"credit","id":1,"credit":1})).await;
        assert_eq!(body_len(&ws.next_for(1).await["message"]), expected);
    }
    ws.send(json!({"type":"credit","id":1,"credit":100})).await;
    let out = ws.finish(1).await;
    assert_eq!(out.messages.iter().map(body_len).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(out.code(), "ok");
    drop(ws);
    settled(&server.metrics).await;
}

/// `headers` and `status` frames need no credit: the protocol document's own example (credit
/// 2, two messages), a unary call with credit 1, and an error with credit 0 all finish.
#[tokio::test]
async fn status_frames_need_no_credit() {
    let server = common::start_interop(Config::default()).await;
    let mut ws = connect(&server).await;
    // docs/websocket-protocol.md, "A call, frame by frame".
    ws.send_text(
        r#"{"type":"open","id":7,"method":"/grpc.testing.TestService/FullDuplexCall","credit":2,
        "metadata":{"x-grpc-test-echo-initial":"hi"},"message":{"responseParameters":[{"size":1}]}}"#,
    )
    .await;
    assert_eq!(ws.next_for(7).await, json!({"type":"headers","id":7,"metadata":{"x-grpc-test-echo-initial":["hi"]}}));
    assert_eq!(ws.next_for(7).await, json!({"type":"message","id":7,"message":{"payload":{"body":"AA=="}}}));
    ws.send_text(r#"{"type":"message","id":7,"message":{"responseParameters":[{"size":2}]},"end":true}"#).await;
    assert_eq!(ws.next_for(7).await, json!({"type":"message","id":7,"message":{"payload":{"body":"AAA="}}}));
    assert_eq!(ws.next_for(7).await, json!({"type":"status","id":7,"code":"ok","trailers":{}}));

    ws.send(json!({"type":"open","id":8,"method":format!("{TS}/UnaryCall"),"credit":1,"message":{},"end":true})).await;
    assert_eq!(ws.finish(8).await.code(), "ok");
    let error = json!({"responseStatus":{"code":5,"message":"gone"}});
    ws.send(json!({"type":"open","id":9,"method":format!("{TS}/UnaryCall"),"credit":0,"message":error,"end":true}))
        .await;
    let out = ws.finish(9).await;
    assert_eq!((out.code(), out.status["message"].as_str()), ("not_found", Some("gone")));
    drop(ws);
    settled(&server.metrics).await;
}

/// `timeoutMs: 0` is a deadline that passed before the call started: `deadline_exceeded`,
/// whatever the method, as native gRPC ends a call whose deadline passed.
#[tokio::test]
async fn a_zero_timeout_is_deadline_exceeded() {
    let server = common::start_interop(Config::default()).await;
    let mut ws = connect(&server).await;
    ws.send(json!({"type":"open","id":1,"method":format!("{TS}/UnaryCall"),"timeoutMs":0,"message":{},"end":true}))
        .await;
    let out = ws.finish(1).await;
    assert_eq!(out.code(), "deadline_exceeded");
    assert!(out.headers.is_none(), "the call never started");
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn no_credit_holds_the_handler_back() {
    let probe = Probe::default();
    let server = start_probe(&probe, Config::default()).await;
    let mut ws = connect(&server).await;
    ws.send(
        json!({"type":"open","id":1,"method":format!("{TS}/StreamingOutputCall"),"credit":1,"message":{},"end":true}),
    )
    .await;
    assert_eq!(ws.next_for(1).await["type"], "headers");
    assert_eq!(ws.next_for(1).await["type"], "message");
    // The endless handler stops once the bounded buffers between it and the socket are
    // full: its count stops moving.
    let stalled = async {
        let mut last = probe.produced.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = probe.produced.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let held_at = tokio::time::timeout(Duration::from_secs(10), stalled).await.expect("the handler stalls");
    assert!(held_at < 20_000, "the handler ran ahead by {held_at} messages");
    ws.send(json!({"type":"ping"})).await;
    assert_eq!(ws.next_frame().await["type"], "pong");
    assert!(ws.stash.is_empty());
    // Granting more lets exactly that many through, and the handler moves again.
    ws.send(json!({"type":"credit","id":1,"credit":3})).await;
    for _ in 0..3 {
        assert_eq!(ws.next_for(1).await["type"], "message");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws.send(json!({"type":"ping"})).await;
    assert_eq!(ws.next_frame().await["type"], "pong");
    assert!(ws.stash.is_empty(), "more than granted: {:?}", ws.stash);
    ws.send(json!({"type":"credit","id":1,"credit":100000})).await;
    eventually("the handler to move again", || probe.produced.load(Ordering::SeqCst) > held_at).await;
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn request_credit_is_granted_as_the_handler_reads() {
    let server = common::start_interop(config(|c| c.websocket.initial_credit = 2)).await;
    let mut ws = connect(&server).await;
    assert_eq!(ws.hello["initialCredit"], 2);
    ws.send(json!({"type":"open","id":1,"method":format!("{TS}/StreamingInputCall")})).await;
    // A client that only sends with credit gets every message through.
    let mut credit = 2;
    for _ in 0..10 {
        while credit == 0 {
            let v = ws.next_for(1).await;
            match v["type"].as_str() {
                Some("credit") => credit += v["credit"].as_u64().unwrap(),
                Some("headers") => {}
                _ => panic!("unexpected {v}"),
            }
        }
        ws.send(json!({"type":"message","id":1,"message":{"payload":{"body":b64(3)}}})).await;
        credit -= 1;
    }
    ws.send(json!({"type":"half_close","id":1})).await;
    let out = ws.finish(1).await;
    assert_eq!(out.code(), "ok", "{:?}", out.status);
    assert_eq!(out.messages, vec![json!({"aggregatedPayloadSize": 30})]);
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn a_message_without_credit_ends_the_call() {
    let probe = Probe::default();
    let server = start_probe(&probe, config(|c| c.websocket.initial_credit = 2)).await;
    let mut ws = connect(&server).await;
    // The handler reads nothing until released, so credit stops coming back once the one
    // message its request stream holds is in: a client that ignores credit is stopped.
    ws.send(json!({"type":"open","id":1,"method":format!("{TS}/StreamingInputCall"),"message":{}})).await;
    for _ in 0..10 {
        ws.send(json!({"type":"message","id":1,"message":{}})).await;
    }
    let out = ws.finish(1).await;
    assert_eq!(out.code(), "resource_exhausted");
    assert!(out.status["message"].as_str().unwrap().contains("without credit"), "{:?}", out.status);
    // Credit granted: for the one message handed to the handler's request stream.
    assert_eq!(out.credits, [1]);
    drop(ws);
    settled(&server.metrics).await;
}

// ---------------------------------------------------------------------------------------
// Heartbeats and dead peers.

#[tokio::test]
async fn heartbeats_and_pings() {
    let server = common::start_interop(config(|c| {
        c.websocket.heartbeat_interval = Duration::from_millis(50);
        c.websocket.idle_timeout = Duration::from_secs(30);
    }))
    .await;
    let mut ws = connect(&server).await;
    assert_eq!(ws.hello["heartbeatMs"], 50);
    let (mut heartbeats, mut pings) = (0, 0);
    while heartbeats < 3 || pings < 3 {
        match ws.next_raw().await {
            Some(Message::Text(t)) => {
                assert_eq!(t.as_str(), r#"{"type":"heartbeat"}"#);
                heartbeats += 1;
            }
            Some(Message::Ping(_)) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.send(json!({"type":"ping","data":{"t":12345}})).await;
    assert_eq!(ws.next_frame().await, json!({"type":"pong","data":{"t":12345}}));
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn a_silent_peer_is_closed_and_a_live_one_is_not() {
    let server = common::start_interop(config(|c| {
        c.websocket.heartbeat_interval = Duration::from_millis(100);
        c.websocket.idle_timeout = Duration::from_millis(1000);
    }))
    .await;
    // A live client answers pings as it reads: still open after several idle timeouts.
    let mut live = connect(&server).await;
    let until = tokio::time::Instant::now() + Duration::from_millis(3500);
    while tokio::time::Instant::now() < until {
        let _ = live.next_raw().await.expect("open");
    }
    let out = live.unary(1, "EmptyCall", json!({})).await;
    assert_eq!(out.code(), "ok");
    drop(live);
    settled(&server.metrics).await;

    // A client that reads nothing answers no ping: closed with 4000, its call cancelled.
    // (A raw socket: a WebSocket library would answer the pings as soon as it reads.)
    let mut tcp = raw_handshake(server.addr).await;
    let open = json!({"type":"open","id":1,"method":format!("{TS}/FullDuplexCall"),
        "message":{"responseParameters":[{"size":1,"intervalUs":30000000}]}});
    raw_send_text(&mut tcp, &open.to_string()).await;
    eventually("the call to open", || server.metrics.websocket_calls_open.load(Ordering::Relaxed) == 1).await;
    settled(&server.metrics).await;
    let frames = raw_read_all(&mut tcp).await;
    let close = frames.iter().find(|(op, _)| *op == 0x8).expect("a close frame");
    assert_eq!(u16::from_be_bytes([close.1[0], close.1[1]]), 4000);
    assert!(String::from_utf8_lossy(&close.1[2..]).contains("idle"));
    assert!(frames.iter().any(|(op, _)| *op == 0x9), "pings were sent");
}

#[tokio::test]
async fn broken_websocket_frames_close_with_the_right_code() {
    use tokio::io::AsyncWriteExt as _;
    let server = common::start_interop(Config::default()).await;
    // Invalid UTF-8 in a text frame: 1007.
    let mut tcp = raw_handshake(server.addr).await;
    let mask = [1u8, 2, 3, 4];
    let payload = [0xffu8, 0xfe, 0x41];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&frame).await.unwrap();
    let frames = raw_read_all(&mut tcp).await;
    let close = frames.iter().find(|(op, _)| *op == 0x8).expect("a close frame");
    assert_eq!(u16::from_be_bytes([close.1[0], close.1[1]]), 1007);
    // An unmasked client frame is a protocol violation: 1002.
    let mut tcp = raw_handshake(server.addr).await;
    tcp.write_all(&[0x81, 0x02, b'{', b'}']).await.unwrap();
    let frames = raw_read_all(&mut tcp).await;
    let close = frames.iter().find(|(op, _)| *op == 0x8).expect("a close frame");
    assert_eq!(u16::from_be_bytes([close.1[0], close.1[1]]), 1002);
    settled(&server.metrics).await;
}

/// An HTTP/1.1 WebSocket handshake by hand; returns the socket after the 101.
async fn raw_handshake(addr: std::net::SocketAddr) -> TcpStream {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = "GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
               sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               sec-websocket-protocol: portway.v1.json\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// Sends one masked text frame (clients must mask).
async fn raw_send_text(tcp: &mut TcpStream, text: &str) {
    use tokio::io::AsyncWriteExt as _;
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut frame = vec![0x81u8];
    let len = text.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&frame).await.unwrap();
}

/// Reads to end of stream and splits what came into (opcode, payload) frames.
async fn raw_read_all(tcp: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt as _;
    let mut data = Vec::new();
    let _ = tcp.read_to_end(&mut data).await;
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 2 <= data.len() {
        let op = data[at] & 0x0f;
        let mut len = usize::from(data[at + 1] & 0x7f);
        at += 2;
        if len == 126 {
            len = usize::from(u16::from_be_bytes([data[at], data[at + 1]]));
            at += 2;
        } else if len == 127 {
            len = u64::from_be_bytes(data[at..at + 8].try_into().unwrap()) as usize;
            at += 8;
        }
        frames.push((op, data[at..at + len].to_vec()));
        at += len;
    }
    frames
}

// ---------------------------------------------------------------------------------------
// Malformed input: clear errors, the socket stays open.

#[tokio::test]
async fn malformed_frames_get_error_frames() {
    let server = common::start_interop(config(|c| c.websocket.max_calls_per_socket = 2)).await;
    let mut ws = connect(&server).await;
    let cases: Vec<(&str, Value)> = vec![
        ("not json", json!({"type":"error","reason":"malformed_frame"})),
        (r#"{"type":"bogus","id":5}"#, json!({"type":"error","id":5,"reason":"malformed_frame"})),
        (r#"[1,2]"#, json!({"type":"error","reason":"malformed_frame"})),
        (r#"{"type":"message","message":{}}"#, json!({"type":"error","reason":"malformed_frame"})),
        (r#"{"type":"cancel","id":9007199254740992}"#, json!({"type":"error","reason":"malformed_frame"})),
        (r#"{"type":"open","id":"one"}"#, json!({"type":"error","reason":"malformed_frame"})),
        (r#"{"type":"message","id":999,"message":{}}"#, json!({"type":"error","id":999,"reason":"unknown_id"})),
        (r#"{"type":"credit","id":998,"credit":1}"#, json!({"type":"error","id":998,"reason":"unknown_id"})),
        (r#"{"type":"half_close","id":997}"#, json!({"type":"error","id":997,"reason":"unknown_id"})),
    ];
    for (text, want) in cases {
        ws.send_text(text).await;
        let got = ws.next_frame().await;
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&got[k], v, "{text} -> {got}");
        }
        assert!(got["message"].as_str().is_some_and(|m| !m.is_empty()), "{got}");
        if want.get("id").is_none() {
            assert!(got.get("id").is_none(), "{text} -> {got}");
        }
    }
    ws.inner.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(ws.next_frame().await["reason"], "binary_frame");

    // Duplicate and stale ids.
    let slow = json!({"responseParameters":[{"size":1,"intervalUs":30000000}]});
    ws.send(json!({"type":"open","id":1000,"method":format!("{TS}/FullDuplexCall"),"message":slow})).await;
    ws.send(json!({"type":"open","id":1000,"method":format!("{TS}/UnaryCall"),"message":{},"end":true})).await;
    let v = ws.next_for(1000).await;
    let v = if v["type"] == "headers" { ws.next_for(1000).await } else { v };
    assert_eq!((v["type"].as_str(), v["reason"].as_str()), (Some("error"), Some("duplicate_id")), "{v}");
    ws.send(json!({"type":"open","id":10,"method":format!("{TS}/UnaryCall"),"message":{},"end":true})).await;
    let v = ws.next_for(10).await;
    assert_eq!((v["type"].as_str(), v["reason"].as_str()), (Some("error"), Some("stale_id")), "{v}");
    // Half-close twice.
    ws.send(json!({"type":"half_close","id":1000})).await;
    ws.send(json!({"type":"half_close","id":1000})).await;
    assert_eq!(ws.next_for(1000).await["reason"], "already_half_closed");

    // Too many calls (the limit is 2): the third open is refused with a status.
    ws.send(json!({"type":"open","id":1001,"method":format!("{TS}/FullDuplexCall"),"message":slow})).await;
    assert_eq!(ws.next_for(1001).await["type"], "headers");
    let out = ws.unary(1002, "UnaryCall", json!({})).await;
    assert_eq!(out.code(), "resource_exhausted");
    assert!(out.status["message"].as_str().unwrap().contains("too many open calls"));

    // The first call still works: cancel it, then the socket serves new calls.
    ws.send(json!({"type":"cancel","id":1000})).await;
    assert_eq!(ws.finish(1000).await.code(), "canceled");
    ws.send(json!({"type":"cancel","id":1001})).await;
    assert_eq!(ws.finish(1001).await.code(), "canceled");
    let out = ws.unary(1003, "UnaryCall", json!({"responseSize": 1})).await;
    assert_eq!(out.code(), "ok");
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn bad_opens_and_messages_end_their_call() {
    let server = common::start_interop(config(|c| c.websocket.max_message_bytes = Some(1024))).await;
    let mut ws = connect(&server).await;
    assert_eq!(ws.hello["maxMessageBytes"], 1024);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"type":"open","id":1}), "invalid_argument", "method"),
        (json!({"type":"open","id":2,"method":"/grpc.testing.TestService/Nope"}), "unimplemented", "unknown method"),
        (json!({"type":"open","id":3,"method":"/no.Such/Thing"}), "unimplemented", "unknown service"),
        (
            json!({"type":"open","id":4,"method":format!("{TS}/UnaryCall"),"message":{"responseSize":"x"}}),
            "invalid_argument",
            "SimpleRequest",
        ),
        (
            json!({"type":"open","id":5,"method":format!("{TS}/UnaryCall"),"message":{"payload":{"body":b64(2000)}}}),
            "resource_exhausted",
            "larger than the limit of 1024",
        ),
        (
            json!({"type":"open","id":6,"method":format!("{TS}/UnaryCall"),"metadata":{"Bad Key":"v"}}),
            "invalid_argument",
            "metadata key",
        ),
        (
            json!({"type":"open","id":7,"method":format!("{TS}/UnaryCall"),"metadata":{"grpc-timeout":"1S"}}),
            "invalid_argument",
            "reserved",
        ),
        (
            json!({"type":"open","id":8,"method":format!("{TS}/UnaryCall"),"metadata":{"x-bin":"!!"}}),
            "invalid_argument",
            "base64",
        ),
    ];
    for (frame, code, text) in cases {
        let id = frame["id"].as_u64().unwrap();
        ws.send(frame).await;
        let out = ws.finish(id).await;
        assert!(out.headers.is_none());
        assert_eq!(out.code(), code, "{:?}", out.status);
        assert!(out.status["message"].as_str().unwrap().contains(text), "{:?}", out.status);
    }
    // Inside a running call: a message over the limit, then a bad one on another call,
    // then a message after half-close on a third.
    for (id, bad) in [
        (20, json!({"type":"message","id":20,"message":{"payload":{"body":b64(2000)}}})),
        (21, json!({"type":"message","id":21,"message":{"payload":7}})),
    ] {
        ws.send(json!({"type":"open","id":id,"method":format!("{TS}/StreamingInputCall")})).await;
        ws.send(bad).await;
        let out = ws.finish(id).await;
        assert_ne!(out.code(), "ok");
        assert!(["resource_exhausted", "invalid_argument"].contains(&out.code()), "{:?}", out.status);
    }
    ws.send(json!({"type":"open","id":22,"method":format!("{TS}/StreamingInputCall"),"message":{},"end":true})).await;
    ws.send(json!({"type":"message","id":22,"message":{}})).await;
    let out = ws.finish(22).await;
    // Either the call ended on its own first (ok), or the late message ended it.
    assert!(["ok", "invalid_argument"].contains(&out.code()), "{:?}", out.status);
    let out = ws.unary(23, "UnaryCall", json!({"responseSize": 2})).await;
    assert_eq!(out.code(), "ok");
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn a_frame_over_the_hard_limit_closes_with_1009() {
    let server = common::start_interop(config(|c| {
        c.websocket.max_message_bytes = Some(1024);
        c.websocket.max_frame_bytes = Some(4096);
    }))
    .await;
    let mut ws = connect(&server).await;
    // Under the frame cap but over the message limit: a per-call status, socket open.
    let out = ws.unary(1, "UnaryCall", json!({"payload":{"body":b64(2000)}})).await;
    assert_eq!(out.code(), "resource_exhausted");
    // Over the frame cap: the frame cannot be skipped; the socket closes with 1009.
    ws.send(json!({"type":"open","id":2,"method":format!("{TS}/UnaryCall"),"message":{"payload":{"body":b64(8000)}}}))
        .await;
    ws.expect_close(1009).await;
    settled(&server.metrics).await;
}

// ---------------------------------------------------------------------------------------
// The handshake: path, subprotocol, limits, connection metadata, HTTP/2.

#[tokio::test]
async fn handshake_refusals() {
    let server = common::start_interop(config(|c| c.websocket.max_sockets = 1)).await;
    let status_of = |path: &'static str, protocol: &'static str| {
        let addr = server.addr;
        async move {
            let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
            req.headers_mut().insert("sec-websocket-protocol", protocol.parse().unwrap());
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => 101,
                Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
                Err(e) => panic!("unexpected {e}"),
            }
        }
    };
    assert_eq!(status_of("/elsewhere", "portway.v1.json").await, 404);
    assert_eq!(status_of("/ws", "graphql-ws").await, 400);
    assert_eq!(status_of("/ws", "portway.bearer.abc").await, 400);
    // One socket is the limit: a second one is refused until the first closes.
    let first = connect(&server).await;
    assert_eq!(status_of("/ws", "portway.v1.json").await, 503);
    drop(first);
    settled(&server.metrics).await;
    let again = connect(&server).await;
    drop(again);
    // A plain GET with an upgrade header but no key is not a handshake.
    let resp = reqwest_like_get(server.addr, "/ws").await;
    assert_eq!(resp, 400);
    settled(&server.metrics).await;
}

/// A `POST` with the upgrade headers is a handshake gone wrong, and gets the handshake's
/// reason, not the static files' bare 405.
#[tokio::test]
async fn a_post_upgrade_gets_the_handshake_reason() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = common::start_interop(Config::default()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let req = "POST /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
               sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\ncontent-length: 0\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("GET") {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await.expect("an answer").unwrap();
        assert!(n > 0, "closed before the reason: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 405"), "{text}");
}

/// A GET /ws with `Upgrade: websocket` and nothing else, over HTTP/1.1.
async fn reqwest_like_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line")
}

fn seen(out: &Outcome) -> String {
    let body = out.messages[0]["payload"]["body"].as_str().expect("body");
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body).unwrap()).unwrap()
}

#[tokio::test]
async fn connection_metadata_reaches_every_call() {
    let probe = Probe::default();
    let server = start_probe(&probe, Config::default()).await;

    // Upgrade headers, a cookie (no Origin: not a browser, trusted) and the peer address.
    let mut ws = connect_with(&server, "/ws", &[("x-team", "blue"), ("cookie", "sid=1")]).await;
    let out = ws.unary(1, "UnaryCall", json!({})).await;
    assert_eq!(seen(&out), "authorization=-;cookie=sid=1;x-team=blue;peer=127.0.0.1");
    // Per-call metadata overrides the connection's.
    ws.send(json!({"type":"open","id":2,"method":format!("{TS}/UnaryCall"),"message":{},"end":true,
        "metadata":{"x-team":["red"],"authorization":"Bearer call"}}))
        .await;
    assert_eq!(seen(&ws.finish(2).await), "authorization=Bearer call;cookie=sid=1;x-team=red;peer=127.0.0.1");
    drop(ws);

    // The bearer token as a subprotocol; a cross-site page's cookie is not forwarded.
    let mut req = format!("ws://{}/ws", server.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json, portway.bearer.tok-123".parse().unwrap());
    req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    req.headers_mut().insert("cookie", "sid=1".parse().unwrap());
    let (inner, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "portway.v1.json");
    let mut ws = Ws::start(inner).await;
    let out = ws.unary(1, "UnaryCall", json!({})).await;
    assert_eq!(seen(&out), "authorization=Bearer tok-123;cookie=-;x-team=-;peer=127.0.0.1");
    drop(ws);

    // The token in the query; a same-origin page's cookie is forwarded.
    let host = server.addr.to_string();
    let origin = format!("http://{host}");
    let mut ws = connect_with(&server, "/ws?access_token=q%2Dtok", &[("origin", &origin), ("cookie", "sid=2")]).await;
    let out = ws.unary(1, "UnaryCall", json!({})).await;
    assert_eq!(seen(&out), "authorization=Bearer q-tok;cookie=sid=2;x-team=-;peer=127.0.0.1");
    drop(ws);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn an_origin_outside_the_list_is_refused() {
    let server = common::start_interop(config(|c| {
        c.cors.allowed_origins =
            portway::config::AllowedOrigins::List(vec![http::HeaderValue::from_static("https://app.example")]);
    }))
    .await;
    let try_origin = |origin: &'static str| {
        let addr = server.addr;
        async move {
            let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
            req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().unwrap());
            req.headers_mut().insert("origin", origin.parse().unwrap());
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => 101,
                Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(try_origin("https://evil.example").await, 403);
    assert_eq!(try_origin("https://app.example").await, 101);
    settled(&server.metrics).await;
}

#[tokio::test]
async fn http2_extended_connect() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let server = common::start_interop(Config::default()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.expect("h2 handshake");
    tokio::spawn(conn);
    // The server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) arrive with its first answer.
    let ready = http::Request::get(format!("http://{}/healthz", server.addr))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(ready).await.unwrap().status(), 200);

    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{}/ws", server.addr))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "portway.v1.json")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
    let resp = sender.send_request(req).await.expect("extended CONNECT");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["sec-websocket-protocol"], "portway.v1.json");
    let upgraded = hyper::upgrade::on(resp).await.expect("upgraded stream");
    let inner = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    let mut ws = Ws::start(inner).await;
    let out = ws.unary(1, "UnaryCall", json!({"responseSize": 5})).await;
    assert_eq!(out.code(), "ok");
    assert_eq!(body_len(&out.messages[0]), 5);
    ws.send(json!({"type":"open","id":2,"method":format!("{TS}/FullDuplexCall"),
        "message":{"responseParameters":[{"size":2}]}}))
        .await;
    assert_eq!(ws.next_for(2).await["type"], "headers");
    assert_eq!(body_len(&ws.next_for(2).await["message"]), 2);
    ws.send(json!({"type":"half_close","id":2})).await;
    assert_eq!(ws.finish(2).await.code(), "ok");
    // Many sockets can share the one HTTP/2 connection; closing this one ends its session.
    ws.inner.close(None).await.unwrap();
    settled(&server.metrics).await;
}

// ---------------------------------------------------------------------------------------
// Soak: 100 sockets with streams open, then closed; everything returns to zero.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_hundred_sockets() {
    let secs: u64 = std::env::var("PORTWAY_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let server = common::start_interop(Config::default()).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let mut ws = connect(&server).await;
        tasks.spawn(async move {
            // A bidi stream that keeps flowing, plus a server stream that stays open.
            ws.send(json!({"type":"open","id":1,"method":format!("{TS}/StreamingOutputCall"),"end":true,
                "message":{"responseParameters":[{"size":1,"intervalUs":2000000000}]}}))
                .await;
            ws.send(json!({"type":"open","id":2,"method":format!("{TS}/FullDuplexCall")})).await;
            let mut exchanged = 0u64;
            while tokio::time::Instant::now() < until {
                ws.send(json!({"type":"message","id":2,"message":{"responseParameters":[{"size":16}]}})).await;
                loop {
                    let v = ws.next_for(2).await;
                    match v["type"].as_str() {
                        Some("message") => break,
                        Some("headers" | "credit") => {}
                        _ => panic!("unexpected {v}"),
                    }
                }
                ws.send(json!({"type":"credit","id":2,"credit":1})).await;
                exchanged += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ws.inner.close(None).await.expect("close");
            // Read to the end of the close handshake.
            while let Some(Ok(_)) = ws.inner.next().await {}
            exchanged
        });
    }
    assert_eq!(server.metrics.websockets_open.load(Ordering::Relaxed), 100);
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done.expect("socket task");
    }
    assert!(total >= 100, "every socket exchanged messages ({total})");
    settled(&server.metrics).await;
    let text = server_metrics(&server).await;
    for gauge in ["portway_websockets_open 0", "portway_websocket_calls_open 0", "portway_websocket_tasks 0"] {
        assert!(text.lines().any(|l| l == gauge), "{gauge} in\n{text}");
    }
}

async fn server_metrics(server: &TestServer) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn the_message_limit_is_on_the_decoded_message_both_ways() {
    const LIMIT: usize = 64 * 1024;
    let server = common::start_interop(config(|c| c.max_message_bytes = LIMIT)).await;
    let mut ws = connect(&server).await;
    assert_eq!(ws.hello["maxMessageBytes"], LIMIT);
    // A payload of n bytes is n + 8 bytes of message (tags and lengths). 1 KiB under the
    // limit is ~86 KiB of JSON (base64): it passes; over the limit it does not.
    let under = LIMIT - 1024 - 8;
    let out = ws.unary(1, "UnaryCall", json!({"payload":{"body":b64(under)}})).await;
    assert_eq!(out.code(), "ok", "{:?}", out.status);
    let out = ws.unary(2, "UnaryCall", json!({"payload":{"body":b64(LIMIT)}})).await;
    assert_eq!(out.code(), "resource_exhausted", "{:?}", out.status);
    // Responses the same.
    let out = ws.unary(3, "UnaryCall", json!({"responseSize": under})).await;
    assert_eq!(out.code(), "ok", "{:?}", out.status);
    let out = ws.unary(4, "UnaryCall", json!({"responseSize": LIMIT})).await;
    assert_eq!(out.code(), "resource_exhausted", "{:?}", out.status);
    assert!(out.messages.is_empty());
    drop(ws);
    settled(&server.metrics).await;
}
