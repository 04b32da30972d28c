//! Layers on the service stack through `GatewayBuilder::layer`, with no adapter code: tower's
//! `RateLimit` (not `Clone`) under `LoadShed` (whose error is a `BoxError`), and a tonic
//! `Channel` (whose error is a `transport::Error`) as the service itself. Each is exercised
//! on every protocol: native gRPC, gRPC-Web, Connect and WebSocket.

mod common;

use std::time::Duration;

use common::http::{self, Http, full, request};
use common::{TestServer, serve_gateway};
use futures_util::{SinkExt as _, StreamExt as _};
use portway::Config;
use portway::pb::grpc::testing::SimpleRequest;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::services::ServiceOptions;
use prost::Message as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tonic::Code;
use tower::limit::RateLimitLayer;
use tower::load_shed::LoadShedLayer;

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";

/// The protocols, each making one unary call and reporting its gRPC code.
#[derive(Debug, Clone, Copy)]
enum Client {
    Grpc,
    GrpcWeb,
    Connect,
    WebSocket,
}

const CLIENTS: [Client; 4] = [Client::Grpc, Client::GrpcWeb, Client::Connect, Client::WebSocket];

impl Client {
    async fn call(self, server: &TestServer) -> Code {
        match self {
            Client::Grpc => {
                let mut client = TestServiceClient::new(server.channel().await);
                match client.unary_call(SimpleRequest::default()).await {
                    Ok(_) => Code::Ok,
                    Err(status) => status.code(),
                }
            }
            Client::GrpcWeb => {
                let req = SimpleRequest::default().encode_to_vec();
                let url = format!("{}{UNARY}", server.url());
                Code::from_i32(http::grpc_web_call(Http::H1, false, &url, &[&req], &[]).await.code())
            }
            Client::Connect => {
                let req = request("POST", &format!("{}{UNARY}", server.url()))
                    .header("content-type", "application/json")
                    .body(full("{}"))
                    .expect("request");
                let reply = http::send(Http::H1, req).await;
                if reply.status.is_success() {
                    return Code::Ok;
                }
                let code = reply.json()["code"].as_str().unwrap_or_default().to_string();
                connect_code(&code)
            }
            Client::WebSocket => {
                let mut req = format!("ws://{}/ws", server.addr).into_client_request().expect("request");
                req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().expect("header"));
                let (mut ws, _) = http::guard(tokio_tungstenite::connect_async(req)).await.expect("connect");
                let open = json!({"type":"open","id":1,"method":UNARY,"message":{},"end":true});
                ws.send(Message::text(open.to_string())).await.expect("send");
                loop {
                    let msg = http::guard(ws.next()).await.expect("a frame").expect("read");
                    let Message::Text(text) = msg else { continue };
                    let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    if frame["type"] == "status" {
                        return connect_code(frame["code"].as_str().unwrap_or_default());
                    }
                }
            }
        }
    }
}

/// The gRPC code for a Connect (and WebSocket) code name.
fn connect_code(name: &str) -> Code {
    (0..=16).map(Code::from_i32).find(|c| portway::transcode::status::connect_code(*c) == name).unwrap_or(Code::Unknown)
}

async fn interop_routes() -> tonic::service::Routes {
    common::mount_interop(ServiceOptions::default()).await.routes
}

/// One call per hour, and no waiting for the next: the first call on each protocol passes,
/// the second is shed with `RESOURCE_EXHAUSTED` (tonic's code for `Overloaded`).
#[tokio::test]
async fn rate_limit_and_load_shed_on_every_protocol() {
    for client in CLIENTS {
        let builder = portway::Gateway::builder(interop_routes().await)
            .config(Config::default())
            .layer(LoadShedLayer::new())
            .layer(RateLimitLayer::new(1, Duration::from_secs(3600)));
        let server = serve_gateway(builder.build()).await;
        assert_eq!(client.call(&server).await, Code::Ok, "{client:?}: the first call passes");
        assert_eq!(client.call(&server).await, Code::ResourceExhausted, "{client:?}: the second is shed");
    }
}

/// A layered stack is shared: the limit is one limit for the whole gateway, whichever
/// protocol (and connection) the calls come from.
#[tokio::test]
async fn one_rate_limit_for_every_protocol() {
    let builder = portway::Gateway::builder(interop_routes().await)
        .layer(LoadShedLayer::new())
        .layer(RateLimitLayer::new(2, Duration::from_secs(3600)));
    let server = serve_gateway(builder.build()).await;
    assert_eq!(Client::Grpc.call(&server).await, Code::Ok);
    assert_eq!(Client::WebSocket.call(&server).await, Code::Ok);
    for client in CLIENTS {
        assert_eq!(client.call(&server).await, Code::ResourceExhausted, "{client:?}");
    }
}

/// A `Channel` to a server that is not there: its transport error is `UNAVAILABLE` on every
/// protocol.
#[tokio::test]
async fn a_channel_that_cannot_connect_is_unavailable_everywhere() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("url").connect_lazy();
    let server = serve_gateway(portway::Gateway::builder(channel).build()).await;
    for client in CLIENTS {
        assert_eq!(client.call(&server).await, Code::Unavailable, "{client:?}");
    }
}
