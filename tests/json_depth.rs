//! One JSON nesting limit for every JSON path (`Config::max_json_depth`, `--max-json-depth`):
//! a message nested deeper fails its call with INVALID_ARGUMENT and a clear message, on
//! Connect and on the WebSocket protocol alike, however deep it is (100,000 levels here: no
//! stack overflow, the connection and the socket keep serving).

mod common;

use common::http::{Http, full, request, send};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use portway::Config;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const EMPTY: &str = "/grpc.testing.TestService/EmptyCall";

/// A JSON value `levels` arrays deep.
fn nested(levels: usize) -> String {
    "[".repeat(levels) + "1" + &"]".repeat(levels)
}

/// An EmptyCall request `value_levels + 1` levels deep (its own braces are one), the depth in a
/// field the message ignores, so that only the JSON limit can answer.
fn request_json(value_levels: usize) -> String {
    format!(r#"{{"unknown": {}}}"#, nested(value_levels))
}

async fn connect_call(server: &common::TestServer, body: String) -> (StatusCode, Value) {
    let req = request("POST", &format!("{}{EMPTY}", server.url()))
        .header("content-type", "application/json")
        .body(full(body))
        .expect("request");
    let reply = send(Http::H1, req).await;
    (reply.status, reply.json())
}

fn config(max_json_depth: usize) -> Config {
    let mut config = Config::default();
    config.max_json_depth = max_json_depth;
    config
}

#[tokio::test]
async fn connect_refuses_json_deeper_than_the_limit() {
    let server = common::start_interop(Config::default()).await;
    // 64 levels, the default, pass; 65 and 100,000 do not.
    let (status, body) = connect_call(&server, request_json(63)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for levels in [64, 100_000] {
        let (status, body) = connect_call(&server, request_json(levels)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "invalid_argument", "{body}");
        let message = body["message"].as_str().expect("message");
        assert!(message.ends_with("the JSON nests objects and arrays more than 64 levels deep"), "{message}");
    }
    // The gateway still serves.
    assert_eq!(connect_call(&server, request_json(1)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_limit_is_configurable() {
    let server = common::start_interop(config(4)).await;
    assert_eq!(connect_call(&server, request_json(3)).await.0, StatusCode::OK);
    let (status, body) = connect_call(&server, request_json(4)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().expect("message").contains("more than 4 levels deep"), "{body}");
    let server = common::start_interop(config(100)).await;
    assert_eq!(connect_call(&server, request_json(99)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn websocket_calls_get_the_same_limit() {
    let server = common::start_interop(Config::default()).await;
    let mut req = format!("ws://{}/ws", server.addr).into_client_request().expect("request");
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connect");
    for (id, levels) in [(1u64, 100_000usize), (2, 64), (3, 63)] {
        let frame =
            format!(r#"{{"type":"open","id":{id},"method":"{EMPTY}","message":{},"end":true}}"#, request_json(levels));
        ws.send(Message::text(frame)).await.expect("send");
    }
    let mut statuses = std::collections::BTreeMap::new();
    while statuses.len() < 3 {
        let Message::Text(t) = ws.next().await.expect("open").expect("frame") else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
        if v["type"] == "status" {
            statuses.insert(v["id"].as_u64().expect("id"), v);
        }
    }
    for id in [1, 2] {
        let status = &statuses[&id];
        assert_eq!(status["code"], json!("invalid_argument"), "{status}");
        let message = status["message"].as_str().expect("message");
        assert!(message.ends_with("more than 64 levels deep"), "{message}");
    }
    assert_eq!(statuses[&3]["code"], json!("ok"), "{}", statuses[&3]);
}
