//! `/metrics` after real calls on every protocol, through `ObserveLayer` on the one stack:
//! the same series and counts whichever protocol carried the call, an error code, a method
//! the gateway does not know (one `unknown` label, whatever the path), and gauges that go up
//! while calls are open and back down once they are gone.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http::{self, Http, full, request};
use common::{TestServer, serve_gateway};
use futures_util::{SinkExt as _, StreamExt as _};
use portway::metrics::Metrics;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{EchoStatus, SimpleRequest, StreamingOutputCallRequest};
use portway::services::ServiceOptions;
use prost::Message as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";
const DUPLEX: &str = "/grpc.testing.TestService/FullDuplexCall";
const PROTOCOLS: [&str; 4] = ["grpc", "grpc_web", "connect", "websocket"];

/// The interop service behind a gateway with call metrics, as the binary builds it.
async fn observed() -> TestServer {
    let routes = common::mount_interop(ServiceOptions::default()).await.routes;
    let metrics = Arc::new(Metrics::default());
    let observe = portway::ObserveLayer::new(&metrics, portway::ObserveLayer::known_methods());
    serve_gateway(portway::Gateway::builder(routes).metrics(metrics).shared_layer(observe).build()).await
}

/// `/metrics`, fetched over HTTP as a scraper does.
async fn scrape(server: &TestServer) -> String {
    let reply =
        http::send(Http::H1, request("GET", &format!("{}/metrics", server.url())).body(full("")).expect("a request"))
            .await;
    assert!(reply.header("content-type").expect("a content type").starts_with("application/openmetrics-text"));
    String::from_utf8(reply.body.to_vec()).expect("UTF-8")
}

/// The value of the series `name{labels}` (labels as written, in order), if present.
fn value(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = if labels.is_empty() { format!("{name} ") } else { format!("{name}{{{labels}}} ") };
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().parse().expect("a number"))
}

fn call_labels(protocol: &str, method: &str, code: &str) -> String {
    format!("protocol=\"{protocol}\",method=\"{method}\",code=\"{code}\"")
}

/// The request, as protobuf and as JSON, of a `UnaryCall` answered with `code` (0: OK).
fn unary_request(code: i32) -> (Vec<u8>, Value) {
    let status = (code != 0).then(|| EchoStatus { code, message: "as asked".into() });
    let json = match code {
        0 => json!({}),
        _ => json!({"responseStatus": {"code": code, "message": "as asked"}}),
    };
    (SimpleRequest { response_status: status, ..Default::default() }.encode_to_vec(), json)
}

/// One unary call to `path` on `protocol`; the gateway's answer is not the point here.
async fn unary(server: &TestServer, protocol: &str, path: &str, code: i32) {
    let (proto, json) = unary_request(code);
    let url = format!("{}{path}", server.url());
    match protocol {
        "grpc" => {
            let req = request("POST", &url)
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(full(http::frame(0, &proto)))
                .expect("a request");
            http::send(Http::H2, req).await;
        }
        "grpc_web" => {
            http::grpc_web_call(Http::H1, false, &url, &[&proto], &[]).await;
        }
        "connect" => {
            let req = request("POST", &url).header("content-type", "application/json").body(full(json.to_string()));
            http::send(Http::H1, req.expect("a request")).await;
        }
        _ => {
            let mut ws = websocket(server).await;
            let open = json!({"type": "open", "id": 1, "method": path, "message": json, "end": true});
            ws.send(Message::text(open.to_string())).await.expect("send");
            until_status(&mut ws).await;
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn websocket(server: &TestServer) -> Ws {
    let mut req = format!("ws://{}/ws", server.addr).into_client_request().expect("request");
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().expect("header"));
    http::guard(tokio_tungstenite::connect_async(req)).await.expect("connect").0
}

/// Reads frames up to the call's `status` frame.
async fn until_status(ws: &mut Ws) -> Value {
    loop {
        let Message::Text(text) = http::guard(ws.next()).await.expect("a frame").expect("read") else { continue };
        let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
        if frame["type"] == "status" {
            return frame;
        }
    }
}

/// Polls `/metrics` until `check` holds (a gauge settles after the client left).
async fn eventually(server: &TestServer, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + http::GUARD;
    loop {
        let text = scrape(server).await;
        if check(&text) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} never held:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_protocol_is_counted_alike() {
    let server = observed().await;
    for protocol in PROTOCOLS {
        unary(&server, protocol, UNARY, 0).await;
        unary(&server, protocol, UNARY, 0).await;
        unary(&server, protocol, UNARY, 5).await;
    }
    // Native gRPC and gRPC-Web hand any path to the stack; two different unknown paths
    // make one series.
    for protocol in ["grpc", "grpc_web"] {
        unary(&server, protocol, "/no.such.Service/Method", 0).await;
        unary(&server, protocol, "/another.Unknown/Thing", 0).await;
    }
    let text = scrape(&server).await;
    let get = |name: &str, labels: &str| {
        value(&text, name, labels).unwrap_or_else(|| panic!("{name}{{{labels}}} in:\n{text}"))
    };
    let mut bytes = Vec::new();
    for protocol in PROTOCOLS {
        let ok = call_labels(protocol, UNARY, "OK");
        let not_found = call_labels(protocol, UNARY, "NOT_FOUND");
        assert_eq!(get("portway_calls_total", &ok), 2.0, "{protocol}");
        assert_eq!(get("portway_calls_total", &not_found), 1.0, "{protocol}");
        assert_eq!(get("portway_call_duration_seconds_count", &ok), 2.0, "{protocol}");
        assert_eq!(get("portway_call_request_messages_total", &ok), 2.0, "{protocol}");
        assert_eq!(get("portway_call_response_messages_total", &ok), 2.0, "{protocol}");
        assert_eq!(get("portway_call_request_messages_total", &not_found), 1.0, "{protocol}");
        assert_eq!(get("portway_call_response_messages_total", &not_found), 0.0, "{protocol}");
        // An empty request is its 5-byte envelope.
        assert_eq!(get("portway_call_request_bytes_total", &ok), 10.0, "{protocol}");
        bytes.push(get("portway_call_response_bytes_total", &ok));
        assert_eq!(get("portway_calls_in_flight", &format!("protocol=\"{protocol}\"")), 0.0, "{protocol}");
    }
    assert!(bytes.iter().all(|b| *b == bytes[0] && *b >= 10.0), "response bytes differ by protocol: {bytes:?}");
    for protocol in ["grpc", "grpc_web"] {
        assert_eq!(get("portway_calls_total", &call_labels(protocol, "unknown", "UNIMPLEMENTED")), 2.0);
    }
    assert!(!text.contains("no.such.Service") && !text.contains("another.Unknown"), "a client's path became a label");
    assert!(text.ends_with("# EOF\n"), "not a complete OpenMetrics exposition");
}

/// JSON on native gRPC and on gRPC-Web is counted under its protocol, as the binary codec is.
#[tokio::test]
async fn json_codecs_count_under_their_protocol() {
    let server = observed().await;
    let url = format!("{}{UNARY}", server.url());
    let req = request("POST", &url)
        .header("content-type", "application/grpc+json")
        .header("te", "trailers")
        .body(full(http::frame(0, b"{}")))
        .expect("a request");
    http::send(Http::H2, req).await;
    let req = request("POST", &url)
        .header("content-type", "application/grpc-web+json")
        .header("x-grpc-web", "1")
        .body(full(http::frame(0, b"{}")))
        .expect("a request");
    http::send(Http::H1, req).await;
    let text = scrape(&server).await;
    for protocol in ["grpc", "grpc_web"] {
        let ok = call_labels(protocol, UNARY, "OK");
        assert_eq!(value(&text, "portway_calls_total", &ok), Some(1.0), "{protocol}:\n{text}");
    }
    assert!(!text.contains("protocol=\"internal\""), "a JSON call was counted as the gateway's own:\n{text}");
}

#[tokio::test]
async fn gauges_go_up_while_calls_are_open_and_back_down() {
    let server = observed().await;

    // A native gRPC bidi stream, open until its request stream is dropped.
    let mut client = TestServiceClient::new(server.channel().await);
    let (tx, rx) = tokio::sync::mpsc::channel::<StreamingOutputCallRequest>(1);
    let stream = client.full_duplex_call(tokio_stream::wrappers::ReceiverStream::new(rx)).await.expect("call");
    // A WebSocket with a bidi call open on it.
    let mut ws = websocket(&server).await;
    let open = json!({"type": "open", "id": 1, "method": DUPLEX});
    ws.send(Message::text(open.to_string())).await.expect("send");

    eventually(&server, "one call open on each", |t| {
        value(t, "portway_calls_in_flight", "protocol=\"grpc\"") == Some(1.0)
            && value(t, "portway_calls_in_flight", "protocol=\"websocket\"") == Some(1.0)
            && value(t, "portway_websockets_open", "") == Some(1.0)
            && value(t, "portway_websocket_calls_open", "") == Some(1.0)
    })
    .await;

    // The client goes away without finishing: the calls are counted as cancelled.
    drop((tx, stream, client));
    ws.close(None).await.expect("close");
    drop(ws);
    eventually(&server, "everything closed and counted", |t| {
        value(t, "portway_calls_in_flight", "protocol=\"grpc\"") == Some(0.0)
            && value(t, "portway_calls_in_flight", "protocol=\"websocket\"") == Some(0.0)
            && value(t, "portway_websockets_open", "") == Some(0.0)
            && value(t, "portway_websocket_calls_open", "") == Some(0.0)
            && value(t, "portway_calls_total", &call_labels("grpc", DUPLEX, "CANCELLED")) == Some(1.0)
            && value(t, "portway_calls_total", &call_labels("websocket", DUPLEX, "CANCELLED")) == Some(1.0)
    })
    .await;
}
