//! An upstream that is down, or dies during a call, or restarts: calls end `UNAVAILABLE`
//! naming the upstream (never a hang), health says so, and calls succeed again once it is
//! back, without restarting portway.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use portway::Config;
use portway::pb::grpc::health::v1::HealthCheckRequest;
use portway::pb::grpc::health::v1::health_check_response::ServingStatus;
use portway::pb::grpc::health::v1::health_client::HealthClient;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{ResponseParameters, SimpleRequest, StreamingOutputCallRequest};
use portway::proxy::{ProxyConfig, UpstreamConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tonic::Code;

use crate::clients;
use crate::common::http::{self, guard};
use crate::gateway::Proxied;
use crate::upstream::{Lang, Upstream};

const SERVICE: &str = "grpc.testing.TestService";

async fn proxied(up: &Upstream) -> Proxied {
    let mut proxy = ProxyConfig::default();
    proxy.upstreams = vec![UpstreamConfig::new("worker", vec![up.url().parse().expect("target")])];
    proxy.health_interval = Duration::from_millis(200);
    Proxied::with(proxy, Config::default()).await
}

/// A slow server stream: `n` messages, one every 20 ms.
fn slow_stream(n: usize) -> StreamingOutputCallRequest {
    let p = ResponseParameters { size: 10, interval_us: 20_000, ..Default::default() };
    StreamingOutputCallRequest { response_parameters: vec![p; n], ..Default::default() }
}

/// Waits until portway's health service reports `service` as `want`.
async fn health_becomes(portway: &Proxied, service: &str, want: ServingStatus) {
    let mut health = HealthClient::new(portway.channel().await);
    let mut watch = health.watch(HealthCheckRequest { service: service.into() }).await.expect("watch").into_inner();
    loop {
        let status = tokio::time::timeout(Duration::from_secs(30), watch.message())
            .await
            .unwrap_or_else(|_| panic!("{service} did not become {want:?} within 30 s"))
            .expect("watch message")
            .expect("watch open");
        if status.status() == want {
            return;
        }
    }
}

/// `GET /healthz` answers `code`, portway itself serving and the upstream `upstream`.
async fn assert_healthz(portway: &Proxied, code: u16, upstream: &str) {
    let req = http::request("GET", &format!("{}/healthz", portway.url())).body(http::full("")).expect("request");
    let reply = http::send(http::Http::H1, req).await;
    let body = String::from_utf8_lossy(&reply.body);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(reply.status.as_u16(), code, "{body}");
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(lines[0], "SERVING", "{body}");
    assert!(lines[1].starts_with("upstream worker ") && lines[1].ends_with(&format!("): {upstream}")), "{body}");
}

fn assert_names_the_upstream(status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("upstream worker"), "{status:?}");
}

#[tokio::test]
async fn a_crash_during_a_stream_ends_it_unavailable_and_calls_succeed_once_it_is_back() {
    for lang in Lang::ALL {
        let mut up = Upstream::start(lang, &[]).await;
        let portway = proxied(&up).await;
        let mut client = TestServiceClient::new(portway.channel().await);
        // A native gRPC stream and a WebSocket stream, both in flight.
        let mut native = client.streaming_output_call(slow_stream(500)).await.expect("stream").into_inner();
        assert!(native.message().await.expect("first message").is_some());
        let mut ws = ws_stream(&portway, &serde_json::to_string(&slow_stream(500)).expect("JSON")).await;
        assert_eq!(next_frame(&mut ws).await["type"], "headers");
        assert_eq!(next_frame(&mut ws).await["type"], "message");

        up.kill().await;
        let end = guard(async {
            loop {
                match native.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{lang:?}: the stream ended OK although the upstream died"),
                    Err(status) => break status,
                }
            }
        })
        .await;
        assert_names_the_upstream(&end);
        let status = guard(async {
            loop {
                let f = next_frame(&mut ws).await;
                if f["type"] == "status" {
                    break f;
                }
            }
        })
        .await;
        assert_eq!(status["code"], "unavailable", "{lang:?}: {status}");
        assert!(status["message"].as_str().unwrap_or_default().contains("upstream worker"), "{status}");

        // Down: every new call fails at once, naming the upstream.
        let down = guard(client.unary_call(SimpleRequest::default())).await.expect_err("the upstream is down");
        assert_names_the_upstream(&down);
        health_becomes(&portway, SERVICE, ServingStatus::NotServing).await;
        assert_healthz(&portway, 503, "NOT_SERVING").await;

        up.restart(&[]).await;
        // Back: calls succeed again, on the same portway.
        let resp = guard(client.unary_call(SimpleRequest { response_size: 3, ..Default::default() }))
            .await
            .unwrap_or_else(|s| panic!("{lang:?}: after the restart: {s:?}"));
        assert_eq!(resp.into_inner().payload.expect("payload").body.len(), 3);
        health_becomes(&portway, SERVICE, ServingStatus::Serving).await;
        assert_healthz(&portway, 200, "SERVING").await;
    }
}

#[tokio::test]
async fn an_upstream_that_is_down_fails_calls_at_once_on_every_protocol() {
    let mut up = Upstream::start(Lang::Python, &[]).await;
    let portway = proxied(&up).await;
    up.kill().await;
    let case = crate::parity::unary_case();
    for client in clients::all(&up.url(), &portway.url(), portway.addr).iter().skip(1) {
        let o = guard(client.call(&case)).await;
        assert_eq!(o.code, Code::Unavailable as i32, "{}: {o:?}", client.name());
        assert!(o.message.contains("upstream worker"), "{}: {o:?}", client.name());
    }
}

pub async fn ws_stream(
    portway: &Proxied,
    request_json: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    ws_open(portway, "/grpc.testing.TestService/StreamingOutputCall", request_json, None).await
}

pub async fn ws_open(
    portway: &Proxied,
    method: &str,
    request_json: &str,
    credit: Option<u32>,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}/ws", portway.addr).into_client_request().expect("request");
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connect");
    let mut open = serde_json::json!({
        "type": "open", "id": 1, "method": method,
        "message": serde_json::from_str::<serde_json::Value>(request_json).expect("JSON"), "end": true,
    });
    if let Some(c) = credit {
        open["credit"] = c.into();
    }
    socket.send(WsMessage::text(open.to_string())).await.expect("send open");
    socket
}

/// The next frame of call 1 (or of the socket), skipping `hello`, `credit` and heartbeats.
pub async fn next_frame(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> serde_json::Value {
    loop {
        let frame = guard(socket.next()).await.expect("socket open").expect("frame");
        let WsMessage::Text(text) = frame else { continue };
        let f: serde_json::Value = serde_json::from_str(&text).expect("frame JSON");
        if !matches!(f["type"].as_str(), Some("hello" | "credit" | "heartbeat")) {
            return f;
        }
    }
}
