//! Graceful shutdown of the real binary on SIGTERM and SIGINT: it stops accepting, HTTP/2
//! connections get GOAWAY, open streams end with UNAVAILABLE in their protocol's own form
//! (native gRPC trailers, gRPC-Web's trailer frame, Connect's end-of-stream message, a
//! WebSocket `status` frame and then close 1001), a unary call in flight finishes, the process
//! exits as soon as it has (long before the grace period), acknowledged writes are there after
//! a restart, a second signal exits at once, and a call that never finishes holds the process
//! for the grace period it was given, no longer.

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::h2raw::{self, H2};
use common::http::{FrameReader, WEB_TRAILERS, guard, parse_trailer_block};
use common::logged::Logged;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portway::pb::portway::state::v1 as api;
use portway::pb::portway::state::v1::state_service_client::StateServiceClient;
use portway::transcode::framing::encode;
use prost::Message as _;
use rustix::process::Signal;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const STATE: &str = "/portway.state.v1.StateService";
/// Far longer than any test waits: an exit before it is the process noticing it is done.
const GRACE_MS: &str = "120000";
const WITHIN: Duration = Duration::from_secs(30);

fn put(key: &str, value: &str) -> api::PutRequest {
    api::PutRequest {
        key: key.into(),
        value: Some(portway::protojson::Value::from(value.to_string())),
        ..Default::default()
    }
}

async fn state_client(portway: &Logged) -> StateServiceClient<tonic::transport::Channel> {
    let url = format!("http://{}", portway.addr);
    StateServiceClient::new(tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap())
}

/// A streaming POST of one enveloped message over HTTP/1.1; the response body's envelopes.
async fn streaming_post(portway: &Logged, method: &str, content_type: &str, message: Vec<u8>) -> FrameReader {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(format!("http://{}{STATE}/{method}", portway.addr))
        .header("content-type", content_type)
        .body(Full::new(encode(0, &message)))
        .unwrap();
    let resp = guard(client.request(req)).await.unwrap();
    assert_eq!(resp.status(), 200);
    FrameReader::new(resp.into_body())
}

/// A WebSocket with a Watch open as call 1, past its `created` message.
async fn websocket_watch(
    portway: &Logged,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}/ws", portway.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().unwrap());
    let (mut ws, _) = guard(tokio_tungstenite::connect_async(req)).await.unwrap();
    let open =
        json!({"type":"open","id":1,"method":format!("{STATE}/Watch"),"message":{"key":"k/","prefix":true},"end":true});
    ws.send(Message::text(open.to_string())).await.unwrap();
    loop {
        let frame = next_ws(&mut ws).await;
        if frame["type"] == "message" {
            assert_eq!(frame["message"]["created"], true, "{frame}");
            return ws;
        }
    }
}

/// The next JSON frame (heartbeats skipped); `Null` for a close frame, whose code is checked.
async fn next_ws<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
) -> Value {
    loop {
        match guard(ws.next()).await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] != "heartbeat" {
                    return v;
                }
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Away, "close 1001: {frame:?}");
                return Value::Null;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// A native gRPC Put on a raw HTTP/2 connection, its message sent only in part: a unary call
/// in flight. The PING answered after it shows the server has read the request's headers.
async fn unary_in_flight(portway: &Logged, request: &api::PutRequest) -> (H2, u32, Vec<u8>) {
    let mut h2 = H2::handshake(portway.addr, &[]).await;
    let id = h2.next_stream_id();
    let path = format!("{STATE}/Put");
    h2.headers(id, &H2::post(&path, "application/grpc", &[("te", "trailers")]), false).await;
    let envelope = encode(0, &request.encode_to_vec());
    let (first, rest) = envelope.split_at(3);
    h2.data(id, first, false).await;
    h2.ping(*b"inflight").await;
    loop {
        let frame = h2.next().await.expect("the PING's answer");
        if frame.kind == h2raw::PING && frame.has(h2raw::ACK) {
            return (h2, id, rest.to_vec());
        }
    }
}

/// The last stream id of a GOAWAY frame.
fn last_stream(goaway: &h2raw::Frame) -> u32 {
    u32::from_be_bytes([goaway.payload[0], goaway.payload[1], goaway.payload[2], goaway.payload[3]]) & 0x7fff_ffff
}

#[tokio::test]
async fn sigterm_ends_streams_drains_unary_calls_and_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let args = ["--storage", "durable", "--data-dir", &data, "--shutdown-grace-ms", GRACE_MS];
    let mut portway = Logged::start(&args).await;
    let mut grpc = state_client(&portway).await;
    for i in 0..50 {
        guard(grpc.put(put(&format!("k/{i}"), "acknowledged"))).await.unwrap();
    }

    // A stream open on every protocol, each past its first message.
    let watch = api::WatchRequest { key: "k/".into(), prefix: true, ..Default::default() };
    let mut native = guard(grpc.watch(watch.clone())).await.unwrap().into_inner();
    assert!(guard(native.message()).await.unwrap().unwrap().created);
    let mut web = streaming_post(&portway, "Watch", "application/grpc-web+proto", watch.encode_to_vec()).await;
    let (flags, first) = web.next().await.unwrap();
    assert!(flags == 0 && api::WatchResponse::decode(first).unwrap().created);
    let connect_watch = serde_json::to_vec(&json!({"key":"k/","prefix":true})).unwrap();
    let mut connect = streaming_post(&portway, "Watch", "application/connect+json", connect_watch).await;
    let (flags, first) = connect.next().await.unwrap();
    assert_eq!(flags, 0);
    assert_eq!(serde_json::from_slice::<Value>(&first).unwrap()["created"], true);
    let mut ws = websocket_watch(&portway).await;
    let (mut h2, id, rest) = unary_in_flight(&portway, &put("drained", "finished after the signal")).await;

    portway.signal(Signal::TERM);
    portway.wait_for("shutting down").await;

    // HTTP/2: GOAWAY (NO_ERROR) on the connection with the unary call in flight, which it
    // names as processed (h2 first sends one for every stream, then the final one).
    let goaway = guard(async {
        loop {
            match h2.next().await {
                Some(f) if f.kind == h2raw::GOAWAY && last_stream(&f) < 0x7fff_ffff => return f,
                Some(f) if f.kind == h2raw::PING && !f.has(h2raw::ACK) => {
                    let payload = f.payload.clone();
                    h2.send(h2raw::PING, h2raw::ACK, 0, &payload).await;
                }
                Some(_) => {}
                None => panic!("the connection ended without GOAWAY"),
            }
        }
    })
    .await;
    assert_eq!(last_stream(&goaway), id, "{}", goaway.describe());
    assert_eq!(goaway.error_code(), Some(0), "{}", goaway.describe());

    // Every stream ends with UNAVAILABLE, in its own form.
    let status = guard(native.message()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "native gRPC: {status:?}");
    let (flags, trailers) = web.next().await.unwrap();
    assert_eq!(flags, WEB_TRAILERS);
    assert_eq!(parse_trailer_block(&trailers)["grpc-status"], "14", "gRPC-Web");
    let (flags, end) = connect.next().await.unwrap();
    assert_eq!(flags & 0x02, 0x02, "Connect end-of-stream");
    let end: Value = serde_json::from_slice(&end).unwrap();
    assert_eq!(end["error"]["code"], "unavailable", "Connect: {end}");
    let status = next_ws(&mut ws).await;
    assert_eq!((status["type"].as_str(), status["id"].as_u64()), (Some("status"), Some(1)), "{status}");
    assert_eq!(status["code"], "unavailable", "WebSocket: {status}");
    assert_eq!(next_ws(&mut ws).await, Value::Null, "then the socket closes with 1001");

    // No new connections, while the unary call still holds the process up.
    assert!(tokio::net::TcpStream::connect(portway.addr).await.is_err(), "the listener is closed");

    // The unary call in flight finishes and is answered OK.
    h2.data(id, &rest, true).await;
    let answer = h2.stream(id).await;
    assert_eq!(answer.last("grpc-status"), Some("0"), "{}", answer.describe());
    drop(h2);

    // Done: the process exits long before its grace period.
    let exit = portway.exit_within(WITHIN).await;
    assert!(exit.success(), "{exit:?}");
    portway.wait_for("stopped").await;

    // Every acknowledged write is there after a restart.
    let portway = Logged::start(&["--storage", "durable", "--data-dir", &data]).await;
    let mut grpc = state_client(&portway).await;
    let get = api::GetRequest { key: "drained".into(), ..Default::default() };
    assert!(guard(grpc.get(get)).await.unwrap().into_inner().entry.is_some(), "the drained call's write");
    for i in 0..50 {
        let get = api::GetRequest { key: format!("k/{i}"), ..Default::default() };
        assert!(guard(grpc.get(get)).await.unwrap().into_inner().entry.is_some(), "k/{i}");
    }
}

/// With nothing open, the process exits on SIGINT at once.
#[tokio::test]
async fn sigint_with_nothing_open_exits_at_once() {
    let mut portway = Logged::start(&["--storage", "memory", "--shutdown-grace-ms", GRACE_MS]).await;
    let mut grpc = state_client(&portway).await;
    guard(grpc.put(put("a", "b"))).await.unwrap();
    portway.signal(Signal::INT);
    let exit = portway.exit_within(WITHIN).await;
    assert!(exit.success(), "{exit:?}");
}

/// A unary call that does not finish holds the process for the grace period; a second
/// signal ends it at once.
#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let mut portway = Logged::start(&["--storage", "memory", "--shutdown-grace-ms", GRACE_MS]).await;
    let (_h2, _, _) = unary_in_flight(&portway, &put("never", "finished")).await;
    portway.signal(Signal::TERM);
    portway.wait_for("shutting down").await;
    portway.signal(Signal::INT);
    portway.wait_for("second signal").await;
    let exit = portway.exit_within(WITHIN).await;
    assert_eq!(exit.code(), Some(130), "{exit:?}");
}

/// Signals `portway` (started with `--shutdown-grace-ms GRACE`) while a unary call that never
/// finishes is in flight; how long after the signal the process exited, and its log.
async fn exit_with_a_call_in_flight(grace: &[&str]) -> (Duration, Logged) {
    let args: Vec<&str> = ["--storage", "memory"].iter().chain(grace).copied().collect();
    let mut portway = Logged::start(&args).await;
    let (h2, _, _) = unary_in_flight(&portway, &put("never", "finished")).await;
    let signalled = tokio::time::Instant::now();
    portway.signal(Signal::TERM);
    let exit = portway.exit_within(WITHIN).await;
    let took = signalled.elapsed();
    assert!(exit.success(), "{exit:?}");
    drop(h2);
    (took, portway)
}

/// `--shutdown-grace-ms`: a call that never finishes holds the process for the grace period
/// and no longer; then the connections are closed and the process exits. A short grace ends
/// well before the default (10 s) would; a longer one holds the process past the short one's.
/// The longer one is given as `--shutdown-grace 4s`, beside a `--shutdown-grace-ms` of 500
/// whose place it takes.
/// The upper bound leaves seconds for a loaded machine (a timer fires after its deadline,
/// never before); it is not a claim about speed.
#[tokio::test]
async fn the_grace_period_bounds_the_wait_for_calls_in_flight() {
    let ((short, mut short_log), (long, mut long_log)) = tokio::join!(
        exit_with_a_call_in_flight(&["--shutdown-grace-ms", "500"]),
        exit_with_a_call_in_flight(&["--shutdown-grace-ms", "500", "--shutdown-grace", "4s"])
    );
    println!("grace 500 ms: exited {short:?} after SIGTERM; grace 4 s: {long:?}");
    assert!(short >= Duration::from_millis(500), "exited {short:?} after the signal, before its grace");
    assert!(short < Duration::from_secs(5), "a 500 ms grace held the process {short:?}");
    assert!(long >= Duration::from_secs(4), "exited {long:?} after the signal, before its 4 s grace");
    assert!(long < Duration::from_secs(9), "a 4 s grace held the process {long:?}");
    for log in [&mut short_log, &mut long_log] {
        log.wait_for("shutdown grace period over").await;
        log.wait_for("stopped").await;
    }
}
