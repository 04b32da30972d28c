//! Bad input on every protocol: unknown methods, unsupported content types, malformed
//! frames and JSON, oversized messages. Each gets the right status, never a panic or a hang.

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use ::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::http::{self, Http, Reply, full, guard, parse_connect_stream};
use portway::Config;
use portway::pb::grpc::testing::{Payload, SimpleRequest, StreamingInputCallRequest};
use prost::Message as _;
use serde_json::json;
use tonic::Code;

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";
const INPUT: &str = "/grpc.testing.TestService/StreamingInputCall";
const OUTPUT: &str = "/grpc.testing.TestService/StreamingOutputCall";
const LIMIT: usize = 1024;

fn limited() -> Config {
    let mut config = Config::default();
    config.max_message_bytes = LIMIT;
    config
}

async fn post(
    version: Http,
    url: &str,
    content_type: &str,
    body: impl Into<bytes::Bytes>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = http::request("POST", url).header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    http::send(version, req.body(full(body.into())).expect("request")).await
}

/// A native gRPC call with a raw body; returns `grpc-status` (trailers or trailers-only).
async fn grpc_raw(url: &str, body: Vec<u8>) -> (i32, String) {
    let reply = post(Http::H2, url, "application/grpc", body, &[("te", "trailers")]).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let map = reply.trailers.as_ref().filter(|t| t.contains_key("grpc-status")).unwrap_or(&reply.headers);
    let code = map.get("grpc-status").unwrap_or_else(|| panic!("no grpc-status: {reply:?}"));
    let message = map.get("grpc-message").map(|m| m.to_str().unwrap().to_string()).unwrap_or_default();
    (code.to_str().unwrap().parse().unwrap(), message)
}

/// A gRPC-Web call with a raw (binary) body.
async fn web_raw(version: Http, url: &str, body: Vec<u8>) -> http::WebReply {
    let reply = post(version, url, "application/grpc-web+proto", body, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    http::parse_web(reply.status, reply.version, reply.headers, &reply.body)
}

fn big_request(n: usize) -> Vec<u8> {
    SimpleRequest { payload: Some(Payload { r#type: 0, body: vec![1; n] }), ..Default::default() }.encode_to_vec()
}

#[tokio::test]
async fn unknown_services_and_methods_on_every_protocol() {
    let server = common::start_interop(Config::default()).await;
    for path in ["/no.such.Service/Method", "/grpc.testing.TestService/NoSuchMethod"] {
        let url = format!("{}{path}", server.url());
        assert_eq!(guard(grpc_raw(&url, http::frame(0, &[]))).await.0, Code::Unimplemented as i32, "{path}");
        for (version, text) in [(Http::H1, false), (Http::H2, true)] {
            let reply = http::grpc_web_call(version, text, &url, &[&[]], &[]).await;
            assert_eq!(reply.code(), Code::Unimplemented as i32, "{path}");
        }
        for ct in ["application/json", "application/proto"] {
            let reply = post(Http::H1, &url, ct, "", &[]).await;
            assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED, "{path} {ct}: {reply:?}");
            assert_eq!(reply.json()["code"], "unimplemented");
        }
        for ct in ["application/connect+json", "application/connect+proto"] {
            let body = if ct.ends_with("json") { http::frame(0, b"{}") } else { http::frame(0, &[]) };
            let reply = post(Http::H2, &url, ct, body, &[]).await;
            let stream = parse_connect_stream(&reply.body);
            assert_eq!(stream.end["error"]["code"], "unimplemented", "{path} {ct}: {:?}", stream.end);
        }
        let reply = http::send(
            Http::H1,
            http::request("GET", &format!("{url}?encoding=json&message=%7B%7D")).body(full(Vec::new())).unwrap(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED, "GET {path}: {reply:?}");
    }
}

#[tokio::test]
async fn unsupported_content_types_are_415() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{UNARY}", server.url());
    for ct in
        [Some("text/plain"), Some("application/xml"), Some("application/grpcx"), Some("multipart/form-data"), None]
    {
        let mut req = http::request("POST", &url);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        for version in [Http::H1, Http::H2] {
            let reply = http::send(version, req_clone(&req).body(full("hello")).unwrap()).await;
            assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}: {reply:?}");
            assert!(reply.header("accept-post").is_some_and(|v| v.contains("application/json")));
        }
    }
}

fn req_clone(b: &::http::request::Builder) -> ::http::request::Builder {
    let mut out = ::http::Request::builder().method(b.method_ref().unwrap().clone()).uri(b.uri_ref().unwrap().clone());
    for (k, v) in b.headers_ref().unwrap() {
        out = out.header(k, v);
    }
    out
}

#[tokio::test]
async fn malformed_grpc_and_grpc_web_frames() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{UNARY}", server.url());
    let valid = SimpleRequest { response_size: 1, ..Default::default() }.encode_to_vec();

    // The body ends inside a frame: the declared length is a lie.
    let mut truncated = http::frame(0, &valid);
    truncated[4] += 50;
    assert_eq!(guard(grpc_raw(&url, truncated.clone())).await.0, Code::Internal as i32);
    for version in [Http::H1, Http::H2] {
        assert_eq!(guard(web_raw(version, &url, truncated.clone())).await.code(), Code::Internal as i32);
    }
    // Only part of a frame header.
    assert_eq!(guard(grpc_raw(&url, vec![0, 0])).await.0, Code::Internal as i32);
    // Bytes that are not a SimpleRequest.
    let garbage = http::frame(0, &[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(guard(grpc_raw(&url, garbage.clone())).await.0, Code::Internal as i32);
    assert_eq!(guard(web_raw(Http::H1, &url, garbage)).await.code(), Code::Internal as i32);
    // A compressed flag without a negotiated encoding.
    let reply = guard(grpc_raw(&url, http::frame(1, &valid))).await;
    assert_eq!(reply.0, Code::Internal as i32, "{reply:?}");
    // gRPC-Web text that is not base64: a trailers-only INTERNAL.
    let reply = post(Http::H1, &url, "application/grpc-web-text", "!!!not base64!!!", &[]).await;
    let web = http::parse_web(reply.status, reply.version, reply.headers, &reply.body);
    assert_eq!(web.code(), Code::Internal as i32, "{web:?}");
}

#[tokio::test]
async fn malformed_json_is_invalid_argument() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{UNARY}", server.url());
    for body in [
        r#"{"responseSize": "#,
        r#"{"responseSize": 1,}"#,
        r#"not json"#,
        r#"{"responseSize": "abc"}"#,
        r#"{"responseSize": {}}"#,
        r#"{"responseSize": 1.5}"#,
        r#"{"responseSize": 99999999999}"#,
        r#"{"payload": 5}"#,
        r#"{"payload": {"body": "not base64 ☺"}}"#,
        r#"{"responseType": "NO_SUCH_ENUM"}"#,
        r#"[]"#,
        r#""a string""#,
    ] {
        let reply = post(Http::H1, &url, "application/json", body, &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {reply:?}");
        assert_eq!(reply.json()["code"], "invalid_argument", "{body}");
    }
    // Binary that is not the message: as gRPC answers it (the service decodes it).
    let reply = post(Http::H1, &url, "application/proto", vec![0xff, 0xff, 0xff], &[]).await;
    assert_eq!(reply.json()["code"], "internal", "{reply:?}");
}

#[tokio::test]
async fn malformed_connect_envelopes() {
    let server = common::start_interop(Config::default()).await;
    let out = format!("{}{OUTPUT}", server.url());
    let input = format!("{}{INPUT}", server.url());
    let ok = json!({"responseParameters": [{"size": 1}]}).to_string();

    let mut truncated = http::frame(0, ok.as_bytes());
    truncated.truncate(truncated.len() - 3);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // Server streaming reads one message.
        (&out, truncated.clone(), "invalid_argument"),
        (&out, vec![0, 0], "invalid_argument"),
        (&out, http::frame(0, b"{broken"), "invalid_argument"),
        // Request cardinality: a server-streaming call takes exactly one message.
        (&out, Vec::new(), "unimplemented"),
        (&out, [http::frame(0, ok.as_bytes()), http::frame(0, ok.as_bytes())].concat(), "unimplemented"),
        (&out, http::frame(2, b"{}"), "invalid_argument"),
        // Client streaming pumps messages as they come.
        (&input, truncated, "invalid_argument"),
        (&input, [http::frame(0, b"{}"), http::frame(0, b"{\"payload\": 7}")].concat(), "invalid_argument"),
        (&input, http::frame(1, b"not gzip"), "internal"),
    ];
    for (url, body, want) in cases {
        for version in [Http::H1, Http::H2] {
            let reply = guard(post(version, url, "application/connect+json", body.clone(), &[])).await;
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            let stream = parse_connect_stream(&reply.body);
            assert_eq!(stream.end["error"]["code"], want, "{url} {body:?}: {:?}", stream.end);
        }
    }
}

#[tokio::test]
async fn oversized_requests_are_resource_exhausted_on_every_protocol() {
    let server = common::start_interop(limited()).await;
    let unary = format!("{}{UNARY}", server.url());
    let big = big_request(LIMIT + 100);
    let small = big_request(10);

    // Native gRPC and gRPC-Web.
    let (code, message) = guard(grpc_raw(&unary, http::frame(0, &big))).await;
    assert_eq!(code, Code::ResourceExhausted as i32, "native gRPC: {message}");
    assert_eq!(guard(grpc_raw(&unary, http::frame(0, &small))).await.0, 0, "a small message still passes");
    for version in [Http::H1, Http::H2] {
        let reply = guard(web_raw(version, &unary, http::frame(0, &big))).await;
        assert_eq!(reply.code(), Code::ResourceExhausted as i32, "gRPC-Web {version:?}: {reply:?}");
        for text in [false, true] {
            let reply = http::grpc_web_call(version, text, &unary, &[&big], &[]).await;
            assert_eq!(reply.code(), Code::ResourceExhausted as i32, "gRPC-Web {version:?} text={text}");
        }
    }
    // A frame that merely claims to be huge is refused before its bytes arrive.
    let (code, _) = guard(grpc_raw(&unary, vec![0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])).await;
    assert_eq!(code, Code::ResourceExhausted as i32);

    // Connect unary, JSON and binary; GET.
    let json_big = json!({"payload": {"body": STANDARD.encode(vec![1u8; LIMIT])}}).to_string();
    let reply = post(Http::H1, &unary, "application/json", json_big.clone(), &[]).await;
    assert_eq!(
        (reply.status, reply.json()["code"].clone()),
        (StatusCode::TOO_MANY_REQUESTS, json!("resource_exhausted"))
    );
    let reply = post(Http::H2, &unary, "application/proto", big.clone(), &[]).await;
    assert_eq!(reply.json()["code"], "resource_exhausted", "{reply:?}");
    let cacheable = format!("{}/grpc.testing.TestService/CacheableUnaryCall", server.url());
    let reply = http::send(
        Http::H1,
        http::request("GET", &format!("{cacheable}?encoding=proto&base64=1&message={}", URL_SAFE_NO_PAD.encode(&big)))
            .body(full(Vec::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.json()["code"], "resource_exhausted", "{reply:?}");

    // Connect streaming: one oversized envelope among small ones.
    let input = format!("{}{INPUT}", server.url());
    let msg = |n: usize| {
        StreamingInputCallRequest { payload: Some(Payload { r#type: 0, body: vec![1; n] }), ..Default::default() }
            .encode_to_vec()
    };
    let body = [http::frame(0, &msg(10)), http::frame(0, &msg(LIMIT + 1))].concat();
    let reply = post(Http::H2, &input, "application/connect+proto", body, &[]).await;
    let stream = parse_connect_stream(&reply.body);
    assert_eq!(stream.end["error"]["code"], "resource_exhausted", "{:?}", stream.end);
}

#[tokio::test]
async fn compressed_bombs_are_resource_exhausted() {
    let server = common::start_interop(limited()).await;
    let unary = format!("{}{UNARY}", server.url());
    // A small gzip body that inflates past the limit.
    let bomb_json = json!({"payload": {"body": STANDARD.encode(vec![0u8; 20 * LIMIT])}}).to_string();
    let gz = http::gzip(bomb_json.as_bytes());
    assert!(gz.len() < LIMIT, "the compressed body itself is under the limit");
    let reply = post(Http::H1, &unary, "application/json", gz.clone(), &[("content-encoding", "gzip")]).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{reply:?}");
    assert_eq!(reply.json()["code"], "resource_exhausted");

    let reply = post(
        Http::H2,
        &format!("{}{INPUT}", server.url()),
        "application/connect+json",
        http::frame(1, &gz),
        &[("connect-content-encoding", "gzip")],
    )
    .await;
    let stream = parse_connect_stream(&reply.body);
    assert_eq!(stream.end["error"]["code"], "resource_exhausted", "{:?}", stream.end);

    // Corrupt gzip is the client's error, not a size problem.
    let reply = post(Http::H1, &unary, "application/json", "not gzip", &[("content-encoding", "gzip")]).await;
    assert_eq!(reply.json()["code"], "invalid_argument", "{reply:?}");

    // Native gRPC with a gzip frame.
    let big = big_request(20 * LIMIT);
    let reply = post(
        Http::H2,
        &unary,
        "application/grpc",
        http::frame(1, &http::gzip(&big)),
        &[("te", "trailers"), ("grpc-encoding", "gzip")],
    )
    .await;
    let code = reply.trailers.as_ref().and_then(|t| t.get("grpc-status")).or(reply.headers.get("grpc-status")).unwrap();
    assert_eq!(code, "8", "{reply:?}");
}

#[tokio::test]
async fn oversized_responses_are_not_relayed() {
    // The scripted service sets no size limit of its own: the gateway's must hold.
    let (server, mut dropped) = common::start_scripted(limited()).await;
    let unary = format!("{}{UNARY}", server.url());
    let req = SimpleRequest { response_size: (LIMIT * 2) as i32, ..Default::default() }.encode_to_vec();
    let (code, message) = guard(grpc_raw(&unary, http::frame(0, &req))).await;
    assert_eq!(code, Code::ResourceExhausted as i32, "native gRPC relayed an oversized response: {message}");
    for (version, text) in [(Http::H1, false), (Http::H2, true)] {
        let web = http::grpc_web_call(version, text, &unary, &[&req], &[]).await;
        assert_eq!(web.code(), Code::ResourceExhausted as i32, "{web:?}");
        assert!(web.messages.is_empty(), "no part of the oversized message is relayed");
    }
    for ct in ["application/proto", "application/json"] {
        let body = if ct == "application/json" {
            format!("{{\"responseSize\": {}}}", LIMIT * 2).into_bytes()
        } else {
            req.clone()
        };
        let reply = post(Http::H1, &unary, ct, body, &[]).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{reply:?}");
        assert_eq!(reply.json()["code"], "resource_exhausted");
    }

    // A stream is cut at the oversized message, after relaying the ones before it.
    let stream_req = portway::pb::grpc::testing::StreamingOutputCallRequest {
        response_parameters: [10, LIMIT as i32 * 2, 10]
            .iter()
            .map(|&size| portway::pb::grpc::testing::ResponseParameters { size, ..Default::default() })
            .collect(),
        ..Default::default()
    };
    let reply = post(
        Http::H2,
        &format!("{}{OUTPUT}", server.url()),
        "application/grpc",
        http::frame(0, &stream_req.encode_to_vec()),
        &[("te", "trailers")],
    )
    .await;
    let frames = http::parse_frames(&reply.body);
    assert_eq!(frames.len(), 1, "only the first message is relayed: {reply:?}");
    assert_eq!(reply.trailers.as_ref().and_then(|t| t.get("grpc-status")).map(|v| v.to_str().unwrap()), Some("8"));
    assert_eq!(guard(dropped.recv()).await, Some("streaming_output_call"), "the service's stream is dropped");
}

// A service that breaks the unary contract, to see what the JSON adapters make of it:
// `/portway.test.Bad/Zero` answers no message, `/portway.test.Bad/Two` two messages.
#[derive(Clone)]
struct Bad;

impl tonic::server::NamedService for Bad {
    const NAME: &'static str = "portway.test.Bad";
}

impl tower::Service<::http::Request<tonic::body::Body>> for Bad {
    type Response = ::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ::http::Request<tonic::body::Body>) -> Self::Future {
        let count = if req.uri().path().ends_with("/Two") { 2 } else { 0 };
        let mut frames: Vec<Result<hyper::body::Frame<bytes::Bytes>, tonic::Status>> =
            (0..count).map(|_| Ok(hyper::body::Frame::data(bytes::Bytes::from(http::frame(0, &[]))))).collect();
        let mut trailers = ::http::HeaderMap::new();
        trailers.insert("grpc-status", ::http::HeaderValue::from_static("0"));
        frames.push(Ok(hyper::body::Frame::trailers(trailers)));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let resp = ::http::Response::builder()
            .header("content-type", "application/grpc")
            .body(tonic::body::Body::new(body))
            .expect("response");
        std::future::ready(Ok(resp))
    }
}

#[tokio::test]
async fn unary_response_cardinality_is_unimplemented() {
    let server = common::start_routes(tonic::service::Routes::new(Bad), Config::default()).await;
    for method in ["Zero", "Two"] {
        let url = format!("{}/portway.test.Bad/{method}", server.url());
        let reply = post(Http::H1, &url, "application/proto", Vec::new(), &[]).await;
        assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED, "{method}: {reply:?}");
        assert_eq!(reply.json()["code"], "unimplemented", "{method}");
    }
}
