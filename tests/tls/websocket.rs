//! WebSocket (`portway.v1.json`) over TLS: an HTTP/1.1 upgrade on a connection that
//! negotiated `http/1.1`, and RFC 8441 extended CONNECT on one that negotiated `h2` (what a
//! browser does over TLS), with several sockets and gRPC calls sharing that one connection.

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::clients::{Alpn, connector, handshake};
use super::common::http::guard;
use super::pki::Ca;

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";

/// The next JSON frame that is not a heartbeat.
async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    loop {
        match guard(ws.next()).await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] != "heartbeat" {
                    return v;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// A unary call on `ws` (after its hello); returns the response message's body length.
async fn unary_on<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, id: u64, size: usize) -> usize {
    let open = json!({"type":"open","id":id,"method":UNARY,"message":{"responseSize":size},"end":true});
    ws.send(Message::text(open.to_string())).await.unwrap();
    let mut len = None;
    loop {
        let v = next_frame(ws).await;
        assert_eq!(v["id"], id, "{v}");
        match v["type"].as_str() {
            Some("headers" | "credit") => {}
            Some("message") => {
                let body = v["message"]["payload"]["body"].as_str().unwrap_or("");
                len = Some(body.len() / 4 * 3);
            }
            Some("status") => {
                assert_eq!(v["code"], "ok", "{v}");
                return len.expect("a message before the status");
            }
            _ => panic!("unexpected {v}"),
        }
    }
}

async fn hello<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) {
    let v = next_frame(ws).await;
    assert_eq!(v["type"], "hello", "{v}");
}

#[tokio::test]
async fn websocket_over_tls_on_http_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let server = super::start(&ca, dir.path()).await;
    let tls = guard(handshake(server.addr, &connector(&ca, Alpn::Http11, None))).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut req = format!("wss://localhost:{}/ws", server.addr.port()).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().unwrap());
    let (mut ws, resp) = guard(tokio_tungstenite::client_async(req, tls)).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "portway.v1.json");
    hello(&mut ws).await;
    assert_eq!(unary_on(&mut ws, 1, 6).await, 6);
    ws.close(None).await.unwrap();
}

/// What a browser does over TLS: ALPN `h2`, then WebSocket as an extended CONNECT stream
/// (RFC 8441); two sockets and plain requests share the one connection.
#[tokio::test]
async fn websocket_over_tls_on_http_2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let server = super::start(&ca, dir.path()).await;
    let tls = guard(handshake(server.addr, &connector(&ca, Alpn::Both, None))).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        guard(hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))).await.unwrap();
    tokio::spawn(conn);
    // The server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) arrive with its first answer.
    let ready = http::Request::get("https://localhost/healthz").body(http_body_util::Empty::<Bytes>::new()).unwrap();
    assert_eq!(guard(sender.send_request(ready)).await.unwrap().status(), 200);

    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("https://localhost/ws")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-protocol", "portway.v1.json")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        req.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
        let resp = guard(sender.send_request(req)).await.expect("extended CONNECT");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["sec-websocket-protocol"], "portway.v1.json");
        let upgraded = guard(hyper::upgrade::on(resp)).await.expect("upgraded stream");
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
        hello(&mut ws).await;
        sockets.push(ws);
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        assert_eq!(unary_on(ws, 1, 3 * (i + 1)).await, 3 * (i + 1));
    }
    // The connection still serves plain requests beside the sockets.
    let again = http::Request::get("https://localhost/healthz").body(http_body_util::Empty::<Bytes>::new()).unwrap();
    assert_eq!(guard(sender.send_request(again)).await.unwrap().status(), 200);
    for mut ws in sockets {
        ws.close(None).await.unwrap();
    }
}
