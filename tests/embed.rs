//! An embedder's own service (hello.v1.Greeter, from its own protos: examples/greeter),
//! mounted with its FILE_DESCRIPTOR_SET: reachable over every protocol, listed by reflection,
//! reported by health; its own reflection and health services merge with portway's.

mod common;

use std::time::Duration;

use common::http::{self, Http, full, guard};
use portway::proxy::reflect;
use portway_example_greeter::hello::greeter_client::GreeterClient;
use portway_example_greeter::hello::{HelloReply, HelloRequest};
use portway_example_greeter::{FILE_DESCRIPTOR_SET, Greeter, GreeterServer};
use prost::Message as _;
use tonic::service::Routes;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The gateway in front of `routes`, with the greeter's descriptors: the documented way.
async fn start(routes: Routes) -> common::TestServer {
    let builder = portway::Gateway::builder(routes).descriptors(&[FILE_DESCRIPTOR_SET]).expect("descriptors");
    common::serve_gateway(builder.build()).await
}

#[tokio::test]
async fn every_protocol_reaches_an_embedded_service_from_its_own_protos() {
    let server = start(Routes::new(GreeterServer::new(Greeter))).await;
    // Native gRPC.
    let mut client = GreeterClient::new(server.channel().await);
    let reply = guard(client.say_hello(HelloRequest { name: "grpc".into(), times: 0 })).await.expect("call");
    assert_eq!(reply.into_inner().message, "Hello, grpc!");
    // Connect JSON, unary and GET (the method is marked free of side effects).
    let url = format!("{}/hello.v1.Greeter/SayHello", server.url());
    let post = http::send(
        Http::H1,
        http::request("POST", &url)
            .header("content-type", "application/json")
            .body(full(r#"{"name":"json"}"#))
            .expect("request"),
    )
    .await;
    assert_eq!(&post.body[..], br#"{"message":"Hello, json!","count":"1"}"#);
    let get = http::send(
        Http::H1,
        http::request("GET", &format!("{url}?encoding=json&message=%7B%22name%22%3A%22get%22%7D"))
            .body(full(""))
            .expect("request"),
    )
    .await;
    assert_eq!(&get.body[..], br#"{"message":"Hello, get!","count":"1"}"#);
    // An error keeps its code.
    let bad = http::send(
        Http::H1,
        http::request("POST", &url).header("content-type", "application/json").body(full("{}")).expect("request"),
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(bad.json()["code"], "invalid_argument");
    // gRPC-Web.
    let req = HelloRequest { name: "web".into(), times: 0 }.encode_to_vec();
    let web = http::grpc_web_call(Http::H1, true, &url, &[&req], &[]).await;
    assert_eq!(HelloReply::decode(web.messages[0].as_ref()).expect("reply").message, "Hello, web!");
    // WebSocket: a server stream.
    let frames = ws_call(&server, "/hello.v1.Greeter/SayHelloStream", r#"{"name":"ws","times":3}"#).await;
    let counts: Vec<&str> = frames.iter().filter_map(|f| f["message"]["count"].as_str()).collect();
    assert_eq!(counts, ["1", "2", "3"]);
    assert_eq!(frames.last().expect("status")["code"], "ok");
}

async fn ws_call(server: &common::TestServer, method: &str, message: &str) -> Vec<serde_json::Value> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://{}/ws", server.addr).into_client_request().expect("request");
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.expect("connect");
    let open = format!(r#"{{"type":"open","id":1,"method":"{method}","message":{message},"end":true}}"#);
    socket.send(WsMessage::text(open)).await.expect("send");
    let mut frames = Vec::new();
    while let Some(frame) = guard(socket.next()).await {
        let WsMessage::Text(text) = frame.expect("frame") else { continue };
        let f: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        if f["id"] == 1 {
            let done = f["type"] == "status";
            frames.push(f);
            if done {
                break;
            }
        }
    }
    frames
}

async fn health(server: &common::TestServer, service: &str) -> Result<ServingStatus, tonic::Code> {
    let mut client = HealthClient::new(server.channel().await);
    match guard(client.check(HealthCheckRequest { service: service.into() })).await {
        Ok(r) => Ok(r.into_inner().status()),
        Err(s) => Err(s.code()),
    }
}

#[tokio::test]
async fn reflection_and_health_cover_the_embedded_service() {
    let server = start(Routes::new(GreeterServer::new(Greeter))).await;
    let reflected = reflect(server.channel().await, Duration::from_secs(10)).await.expect("reflection");
    let mut services = reflected.services.clone();
    services.sort();
    assert_eq!(
        services,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "hello.v1.Greeter"
        ]
    );
    assert!(reflected.files.contains_key("hello/v1/hello.proto"));
    assert_eq!(health(&server, "hello.v1.Greeter").await, Ok(ServingStatus::Serving));
    assert_eq!(health(&server, "").await, Ok(ServingStatus::Serving));
    assert_eq!(health(&server, "no.Such").await, Err(tonic::Code::NotFound));
}

#[tokio::test]
async fn an_embedders_own_reflection_and_health_merge_with_portways() {
    // The embedder mounts its own reflection and health services next to its service.
    let (own_health, own_health_service) = tonic_health::server::health_reporter();
    own_health.set_service_status("hello.v1.Greeter", tonic_health::ServingStatus::NotServing).await;
    own_health.set_service_status("hello.v1.Internal", tonic_health::ServingStatus::Serving).await;
    let own_reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("reflection");
    let mut routes = Routes::builder();
    routes.add_service(GreeterServer::new(Greeter)).add_service(own_health_service).add_service(own_reflection);
    let server = start(routes.routes()).await;
    // No panic at start; one reflection answers for everything.
    let reflected = reflect(server.channel().await, Duration::from_secs(10)).await.expect("reflection");
    assert!(reflected.services.contains(&"hello.v1.Greeter".to_string()));
    assert!(reflected.services.contains(&"grpc.reflection.v1alpha.ServerReflection".to_string()));
    // What the embedder's health service says about its services stands.
    assert_eq!(health(&server, "hello.v1.Greeter").await, Ok(ServingStatus::NotServing));
    assert_eq!(health(&server, "hello.v1.Internal").await, Ok(ServingStatus::Serving));
    assert_eq!(health(&server, "no.Such").await, Err(tonic::Code::NotFound));
}
