//! The Connect protocol through the gateway: unary JSON and proto (POST and GET), streaming
//! envelopes over HTTP/1.1 and HTTP/2, deadlines, errors, compression, and `curl`.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::http::{Request, Response, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use common::http::{self, CONNECT_END, FrameReader, Http, Reply, full, guard, parse_connect_stream};
use portway::Config;
use portway::pb::grpc::testing::{SimpleRequest, SimpleResponse, StreamingInputCallRequest};
use portway::transcode::{Idempotency, MethodDescriptor, MethodTable, RpcKind, codec};
use prost::Message as _;
use serde_json::{Value, json};

const SVC: &str = "/grpc.testing.TestService";

/// Every code with the Connect name and HTTP status the Connect protocol reference gives it.
const CODES: [(i32, &str, u16); 16] = [
    (1, "canceled", 499),
    (2, "unknown", 500),
    (3, "invalid_argument", 400),
    (4, "deadline_exceeded", 504),
    (5, "not_found", 404),
    (6, "already_exists", 409),
    (7, "permission_denied", 403),
    (8, "resource_exhausted", 429),
    (9, "failed_precondition", 400),
    (10, "aborted", 409),
    (11, "out_of_range", 400),
    (12, "unimplemented", 501),
    (13, "internal", 500),
    (14, "unavailable", 503),
    (15, "data_loss", 500),
    (16, "unauthenticated", 401),
];

async fn post(version: Http, url: &str, content_type: &str, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Reply {
    let mut req = http::request("POST", url).header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    http::send(version, req.body(full(body.into())).expect("request")).await
}

async fn get(url: &str) -> Reply {
    http::send(Http::H1, http::request("GET", url).body(full(Vec::new())).expect("request")).await
}

fn envelope_json(v: &Value) -> Vec<u8> {
    http::frame(0, v.to_string().as_bytes())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(bytes)))
}

#[tokio::test]
async fn unary_json_over_h1_and_h2() {
    let server = common::start_interop(Config::default()).await;
    for version in [Http::H1, Http::H2] {
        let reply = post(
            version,
            &format!("{}{SVC}/UnaryCall", server.url()),
            "application/json",
            r#"{"responseSize": 3, "payload": {"body": "AAEC"}}"#,
            &[
                ("connect-protocol-version", "1"),
                ("x-grpc-test-echo-initial", "hello"),
                ("x-grpc-test-echo-trailing-bin", "q6ur"),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(reply.version, version.version());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.json(), json!({"payload": {"body": "AAAA"}}));
        assert_eq!(reply.header("x-grpc-test-echo-initial"), Some("hello"));
        assert_eq!(reply.header("trailer-x-grpc-test-echo-trailing-bin"), Some("q6ur"));
        assert_eq!(reply.header("x-grpc-test-echo-trailing-bin"), None, "trailers are prefixed");
        for h in reply.headers.keys() {
            assert!(!h.as_str().starts_with("grpc-"), "gRPC header {h} leaked into a Connect response");
        }
    }
}

#[tokio::test]
async fn unary_proto_over_h1_and_h2() {
    let server = common::start_interop(Config::default()).await;
    for version in [Http::H1, Http::H2] {
        let req = SimpleRequest { response_size: 1000, ..Default::default() };
        let reply =
            post(version, &format!("{}{SVC}/UnaryCall", server.url()), "application/proto", req.encode_to_vec(), &[])
                .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(reply.header("content-type"), Some("application/proto"));
        let resp = SimpleResponse::decode(reply.body).expect("a SimpleResponse");
        assert_eq!(resp.payload.unwrap().body.len(), 1000);
    }
}

#[tokio::test]
async fn json_field_names_and_unknown_fields() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/UnaryCall", server.url());
    for body in [
        r#"{"responseSize": 2}"#,
        r#"{"response_size": 2}"#,
        r#"{"responseSize": 2, "noSuchField": {"deep": [1, 2]}, "another": null}"#,
        r#"{"responseSize": "2"}"#,
    ] {
        let reply = post(Http::H1, &url, "application/json", body, &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}: {reply:?}");
        assert_eq!(reply.json(), json!({"payload": {"body": "AAA="}}), "{body}");
    }
    // An empty body is the empty message.
    let reply = post(Http::H1, &format!("{}{SVC}/EmptyCall", server.url()), "application/json", "", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json(), json!({}));
}

// ------------------------------------------------------------------------------------
// int64 and bytes: the interop messages have no int64 field, so mount a tiny echo service
// over `google.protobuf.UninterpretedOption` (uint64, int64, double, bytes fields).

type Echoed = pbjson_types::UninterpretedOption;

#[derive(Clone)]
struct EchoOption;

impl tonic::server::NamedService for EchoOption {
    const NAME: &'static str = "portway.test.Echo";
}

struct EchoHandler;

impl tonic::server::UnaryService<Echoed> for EchoHandler {
    type Response = Echoed;
    type Future = std::future::Ready<Result<tonic::Response<Echoed>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<Echoed>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(req.into_inner())))
    }
}

impl tower::Service<Request<tonic::body::Body>> for EchoOption {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Echoed, Echoed>::default());
            Ok(grpc.unary(EchoHandler, req).await)
        })
    }
}

#[tokio::test]
async fn int64_and_bytes_use_canonical_json() {
    let mut methods = MethodTable::generated();
    let c = || codec::<Echoed>("google.protobuf.UninterpretedOption");
    methods.insert(MethodDescriptor::new("portway.test.Echo", "Echo", RpcKind::Unary, Idempotency::Unknown, c(), c()));
    let routes = tonic::service::Routes::new(EchoOption);
    let server = common::start_gateway(portway::Gateway::builder(routes).methods(methods)).await;
    let url = format!("{}/portway.test.Echo/Echo", server.url());

    let reply = post(
        Http::H1,
        &url,
        "application/json",
        r#"{"positiveIntValue": "18446744073709551615", "negativeIntValue": "-9223372036854775808",
            "stringValue": "3q2+7w==", "doubleValue": 1.5}"#,
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.json(),
        json!({"positiveIntValue": "18446744073709551615", "negativeIntValue": "-9223372036854775808",
               "stringValue": "3q2+7w==", "doubleValue": 1.5})
    );
    // Numbers are accepted for 64-bit integers, URL-safe base64 for bytes; output is canonical.
    let reply =
        post(Http::H1, &url, "application/json", r#"{"negative_int_value": -5, "string_value": "3q2-7w"}"#, &[]).await;
    assert_eq!(reply.json(), json!({"negativeIntValue": "-5", "stringValue": "3q2+7w=="}), "{reply:?}");
    // The binary form agrees.
    let binary = Echoed::decode(
        post(
            Http::H1,
            &url,
            "application/proto",
            Echoed { negative_int_value: Some(-7), ..Default::default() }.encode_to_vec(),
            &[],
        )
        .await
        .body,
    )
    .expect("decode");
    assert_eq!(binary.negative_int_value, Some(-7));
}

// ------------------------------------------------------------------------------------

#[tokio::test]
async fn get_for_side_effect_free_methods() {
    let server = common::start_interop(Config::default()).await;
    let base = format!("{}{SVC}/CacheableUnaryCall", server.url());

    let message: String = form_urlencoded::byte_serialize(br#"{"responseSize": 4, "fillServerId": true}"#).collect();
    let reply = get(&format!("{base}?connect=v1&encoding=json&message={message}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), json!({"payload": {"body": "AAAAAA=="}, "serverId": "portway"}));
    assert_eq!(
        reply.header("cache-control"),
        Some("max-age=60, public"),
        "the service's cache header reaches the client"
    );

    let proto = SimpleRequest { response_size: 5, ..Default::default() }.encode_to_vec();
    let reply = get(&format!("{base}?encoding=proto&base64=1&message={}", URL_SAFE_NO_PAD.encode(&proto))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/proto"));
    assert_eq!(SimpleResponse::decode(reply.body).unwrap().payload.unwrap().body.len(), 5);

    // Compressed GET: base64 of the gzipped message.
    let gz = http::gzip(br#"{"responseSize": 1}"#);
    let reply =
        get(&format!("{base}?encoding=json&base64=1&compression=gzip&message={}", URL_SAFE_NO_PAD.encode(&gz))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json(), json!({"payload": {"body": "AA=="}}));
}

#[tokio::test]
async fn get_is_refused_for_methods_with_side_effects() {
    let server = common::start_interop(Config::default()).await;
    let reply = get(&format!("{}{SVC}/UnaryCall?encoding=json&message=%7B%7D", server.url())).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{reply:?}");
    assert_eq!(reply.header("allow"), Some("POST"));
    assert_eq!(reply.json()["code"], "unimplemented");
}

#[tokio::test]
async fn server_streaming_json_over_h1_and_h2() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/StreamingOutputCall", server.url());
    let req = json!({"responseParameters": [{"size": 1}, {"size": 2}, {"size": 3}]});
    for version in [Http::H1, Http::H2] {
        let reply = post(
            version,
            &url,
            "application/connect+json",
            envelope_json(&req),
            &[("x-grpc-test-echo-initial", "hi"), ("x-grpc-test-echo-trailing-bin", "q6ur")],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(reply.header("content-type"), Some("application/connect+json"));
        assert_eq!(reply.header("x-grpc-test-echo-initial"), Some("hi"));
        let stream = parse_connect_stream(&reply.body);
        let bodies: Vec<Value> = stream.messages.iter().map(|m| json_of(m)).collect();
        assert_eq!(
            bodies,
            vec![
                json!({"payload": {"body": "AA=="}}),
                json!({"payload": {"body": "AAA="}}),
                json!({"payload": {"body": "AAAA"}})
            ]
        );
        assert_eq!(stream.end, json!({"metadata": {"x-grpc-test-echo-trailing-bin": ["q6ur"]}}));
    }
}

#[tokio::test]
async fn server_streaming_errors_end_the_stream() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/StreamingOutputCall", server.url());
    let req = json!({"responseParameters": [{"size": 1}], "responseStatus": {"code": 9, "message": "stop"}});
    let reply = post(Http::H2, &url, "application/connect+json", envelope_json(&req), &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "streams always answer 200: {reply:?}");
    let stream = parse_connect_stream(&reply.body);
    assert_eq!(stream.messages.len(), 1);
    assert_eq!(stream.end, json!({"error": {"code": "failed_precondition", "message": "stop"}}));

    // An error before any message.
    let req = json!({"responseParameters": [{"size": -1}]});
    let reply = post(Http::H1, &url, "application/connect+json", envelope_json(&req), &[]).await;
    let stream = parse_connect_stream(&reply.body);
    assert!(stream.messages.is_empty());
    assert_eq!(stream.end["error"]["code"], "invalid_argument", "{:?}", stream.end);
}

#[tokio::test]
async fn server_streaming_proto() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/StreamingOutputCall", server.url());
    let req = portway::pb::grpc::testing::StreamingOutputCallRequest {
        response_parameters: vec![portway::pb::grpc::testing::ResponseParameters { size: 7, ..Default::default() }],
        ..Default::default()
    };
    let reply = post(Http::H1, &url, "application/connect+proto", http::frame(0, &req.encode_to_vec()), &[]).await;
    assert_eq!(reply.header("content-type"), Some("application/connect+proto"));
    let stream = parse_connect_stream(&reply.body);
    assert_eq!(stream.messages.len(), 1);
    let msg = portway::pb::grpc::testing::StreamingOutputCallResponse::decode(stream.messages[0].clone()).unwrap();
    assert_eq!(msg.payload.unwrap().body.len(), 7);
    assert_eq!(stream.end, json!({}));
}

#[tokio::test]
async fn client_streaming_over_h2() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/StreamingInputCall", server.url());
    let mut body = Vec::new();
    for n in [27_182, 8, 1_828, 45_904] {
        body.extend(envelope_json(&json!({"payload": {"body": STANDARD.encode(vec![0u8; n])}})));
    }
    let reply = post(Http::H2, &url, "application/connect+json", body, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let stream = parse_connect_stream(&reply.body);
    assert_eq!(
        stream.messages.iter().map(|m| json_of(m)).collect::<Vec<_>>(),
        vec![json!({"aggregatedPayloadSize": 74922})]
    );
    assert_eq!(stream.end, json!({}));

    // The same in binary.
    let mut body = Vec::new();
    for n in [3, 4] {
        let m = StreamingInputCallRequest {
            payload: Some(portway::pb::grpc::testing::Payload { r#type: 0, body: vec![1; n] }),
            ..Default::default()
        };
        body.extend(http::frame(0, &m.encode_to_vec()));
    }
    let reply = post(Http::H2, &url, "application/connect+proto", body, &[]).await;
    let stream = parse_connect_stream(&reply.body);
    let resp = portway::pb::grpc::testing::StreamingInputCallResponse::decode(stream.messages[0].clone()).unwrap();
    assert_eq!(resp.aggregated_payload_size, 7);
}

#[tokio::test]
async fn bidi_ping_pong_over_h2() {
    let server = common::start_interop(Config::default()).await;
    let (tx, body) = http::channel_body();
    let req = http::request("POST", &format!("{}{SVC}/FullDuplexCall", server.url()))
        .header("content-type", "application/connect+json")
        .header("x-grpc-test-echo-trailing-bin", "q6ur")
        .body(body)
        .expect("request");
    let send = tokio::spawn(http::send_streaming(Http::H2, req));
    // The first request goes out before the response headers come back.
    tx.send(Bytes::from(envelope_json(&json!({"responseParameters": [{"size": 1}]})))).await.unwrap();
    let resp = guard(send).await.expect("task");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut reader = FrameReader::new(resp.into_body());
    let (flags, msg) = reader.next().await.expect("a response to the first request");
    assert_eq!((flags, json_of(&msg)), (0, json!({"payload": {"body": "AA=="}})));
    // Each next request is sent only after the previous response arrived.
    for size in [2, 3] {
        tx.send(Bytes::from(envelope_json(&json!({"responseParameters": [{"size": size}]})))).await.unwrap();
        let (flags, msg) = reader.next().await.expect("a response");
        assert_eq!(flags, 0);
        assert_eq!(json_of(&msg)["payload"]["body"], STANDARD.encode(vec![0u8; size]));
    }
    drop(tx); // half-close
    let (flags, end) = reader.next().await.expect("end of stream");
    assert_eq!(flags, CONNECT_END);
    assert_eq!(json_of(&end), json!({"metadata": {"x-grpc-test-echo-trailing-bin": ["q6ur"]}}));
    assert!(reader.next().await.is_none());
}

#[tokio::test]
async fn bidi_proto_in_one_body() {
    use portway::pb::grpc::testing::{ResponseParameters, StreamingOutputCallRequest, StreamingOutputCallResponse};
    let server = common::start_interop(Config::default()).await;
    let mut body = Vec::new();
    for size in [4, 5] {
        let m = StreamingOutputCallRequest {
            response_parameters: vec![ResponseParameters { size, ..Default::default() }],
            ..Default::default()
        };
        body.extend(http::frame(0, &m.encode_to_vec()));
    }
    let reply =
        post(Http::H2, &format!("{}{SVC}/FullDuplexCall", server.url()), "application/connect+proto", body, &[]).await;
    assert_eq!(reply.header("content-type"), Some("application/connect+proto"));
    let stream = parse_connect_stream(&reply.body);
    let sizes: Vec<usize> = stream
        .messages
        .iter()
        .map(|m| StreamingOutputCallResponse::decode(m.clone()).unwrap().payload.unwrap().body.len())
        .collect();
    assert_eq!(sizes, [4, 5]);
    assert_eq!(stream.end, json!({}));
}

#[tokio::test]
async fn connect_timeout_gives_deadline_exceeded() {
    let (server, mut dropped) = common::start_scripted(Config::default()).await;
    let slow = json!({"payload": {"body": STANDARD.encode(common::scripted::SLOW)}});
    let reply = post(
        Http::H1,
        &format!("{}{SVC}/UnaryCall", server.url()),
        "application/json",
        slow.to_string(),
        &[("connect-timeout-ms", "200")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{reply:?}");
    assert_eq!(reply.json()["code"], "deadline_exceeded");
    assert_eq!(guard(dropped.recv()).await, Some("unary_call"), "the handler is cancelled");

    let req = json!({"responseParameters": [{"size": 1}, {"size": 1, "intervalUs": 30_000_000}]});
    let reply = post(
        Http::H2,
        &format!("{}{SVC}/StreamingOutputCall", server.url()),
        "application/connect+json",
        envelope_json(&req),
        &[("connect-timeout-ms", "300")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let stream = parse_connect_stream(&reply.body);
    assert_eq!(stream.messages.len(), 1);
    assert_eq!(stream.end["error"]["code"], "deadline_exceeded", "{:?}", stream.end);
    assert_eq!(guard(dropped.recv()).await, Some("streaming_output_call"));

    // A malformed timeout is the client's error.
    let reply = post(
        Http::H1,
        &format!("{}{SVC}/EmptyCall", server.url()),
        "application/json",
        "{}",
        &[("connect-timeout-ms", "soon")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["code"], "invalid_argument");
}

#[tokio::test]
async fn every_error_code_has_its_http_status() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/UnaryCall", server.url());
    for (code, name, http_status) in CODES {
        let body = json!({"responseStatus": {"code": code, "message": format!("status {code}")}});
        for (ct, payload) in [
            ("application/json", body.to_string().into_bytes()),
            (
                "application/proto",
                SimpleRequest {
                    response_status: Some(portway::pb::grpc::testing::EchoStatus {
                        code,
                        message: format!("status {code}"),
                    }),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        ] {
            let reply = post(Http::H1, &url, ct, payload, &[("x-grpc-test-echo-trailing-bin", "q6ur")]).await;
            assert_eq!(reply.status.as_u16(), http_status, "{name} over {ct}");
            assert_eq!(reply.header("content-type"), Some("application/json"), "errors are always JSON");
            assert_eq!(reply.json(), json!({"code": name, "message": format!("status {code}")}), "{ct}");
            assert_eq!(reply.header("trailer-x-grpc-test-echo-trailing-bin"), Some("q6ur"), "{name}");
        }
    }
}

#[tokio::test]
async fn error_details_are_rendered() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let body = json!({"payload": {"body": STANDARD.encode(common::scripted::DETAILS)}});
    let reply =
        post(Http::H1, &format!("{}{SVC}/UnaryCall", server.url()), "application/json", body.to_string(), &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json(),
        json!({"code": "not_found", "message": "no such thing",
               "details": [{"type": "grpc.testing.Empty", "value": "3q2+7w"}]})
    );
}

#[tokio::test]
async fn gzip_request_bodies() {
    let server = common::start_interop(Config::default()).await;
    let reply = post(
        Http::H1,
        &format!("{}{SVC}/UnaryCall", server.url()),
        "application/json",
        http::gzip(br#"{"responseSize": 2}"#),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json(), json!({"payload": {"body": "AAA="}}));

    // Streaming: the compressed flag on an envelope, with connect-content-encoding.
    let mut body = http::frame(1, &http::gzip(json!({"payload": {"body": "AAAA"}}).to_string().as_bytes()));
    body.extend(http::frame(0, json!({"payload": {"body": "AA=="}}).to_string().as_bytes()));
    let reply = post(
        Http::H2,
        &format!("{}{SVC}/StreamingInputCall", server.url()),
        "application/connect+json",
        body,
        &[("connect-content-encoding", "gzip")],
    )
    .await;
    let stream = parse_connect_stream(&reply.body);
    assert_eq!(json_of(&stream.messages[0]), json!({"aggregatedPayloadSize": 4}), "{:?}", stream.end);

    // An unknown encoding is refused, not misread.
    let reply = post(
        Http::H1,
        &format!("{}{SVC}/UnaryCall", server.url()),
        "application/json",
        "{}",
        &[("content-encoding", "br")],
    )
    .await;
    assert_eq!(reply.json()["code"], "unimplemented", "{reply:?}");
}

#[tokio::test]
async fn wrong_shape_content_types_are_refused() {
    let server = common::start_interop(Config::default()).await;
    // A unary method called with a streaming content type, and the reverse.
    let reply = post(
        Http::H1,
        &format!("{}{SVC}/UnaryCall", server.url()),
        "application/connect+json",
        envelope_json(&json!({})),
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{reply:?}");
    let reply =
        post(Http::H1, &format!("{}{SVC}/StreamingOutputCall", server.url()), "application/json", "{}", &[]).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{reply:?}");
}

/// Runs the real `curl` binary (it must be installed) and returns its stdout.
async fn curl(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("curl").args(&args).output())
        .await
        .expect("task")
        .expect("the curl binary must be installed to run this test");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
async fn curl_as_the_readme_shows_it() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/UnaryCall", server.url());
    let s = |x: &str| x.to_string();
    for http_flag in ["--http1.1", "--http2-prior-knowledge"] {
        let out = guard(curl(vec![
            s("-sS"),
            s(http_flag),
            s("--max-time"),
            s("10"),
            s("-X"),
            s("POST"),
            s("-H"),
            s("content-type: application/json"),
            s("-d"),
            s(r#"{"responseSize":3}"#),
            url.clone(),
        ]))
        .await;
        assert_eq!(json_of(out.as_bytes()), json!({"payload": {"body": "AAAA"}}), "{http_flag}");
    }
    // Errors: -w prints the HTTP status after the body.
    let out = guard(curl(vec![
        s("-sS"),
        s("--max-time"),
        s("10"),
        s("-w"),
        s("\n%{http_code}"),
        s("-H"),
        s("content-type: application/json"),
        s("-d"),
        s(r#"{"responseStatus":{"code":5,"message":"gone"}}"#),
        url.clone(),
    ]))
    .await;
    let (body, code) = out.rsplit_once('\n').expect("status line");
    assert_eq!(code, "404");
    assert_eq!(json_of(body.as_bytes()), json!({"code": "not_found", "message": "gone"}));
    // GET for a cacheable method.
    let out = guard(curl(vec![
        s("-sS"),
        s("--max-time"),
        s("10"),
        s("-G"),
        s("--data-urlencode"),
        s("encoding=json"),
        s("--data-urlencode"),
        s(r#"message={"responseSize":1}"#),
        format!("{}{SVC}/CacheableUnaryCall", server.url()),
    ]))
    .await;
    assert_eq!(json_of(out.as_bytes()), json!({"payload": {"body": "AA=="}}));
}

#[tokio::test]
async fn deadline_while_the_request_stream_is_open() {
    let server = common::start_interop(Config::default()).await;
    let (tx, body) = http::channel_body();
    let req = http::request("POST", &format!("{}{SVC}/StreamingInputCall", server.url()))
        .header("content-type", "application/connect+json")
        .header("connect-timeout-ms", "200")
        .body(body)
        .expect("request");
    tx.send(Bytes::from(envelope_json(&json!({"payload": {"body": "AAAA"}})))).await.unwrap();
    // The request body stays open (tx is alive): only the deadline can end the call.
    let resp = http::send_streaming(Http::H2, req).await;
    let mut reader = FrameReader::new(resp.into_body());
    let (flags, end) = reader.next().await.expect("end of stream");
    assert_eq!(flags, CONNECT_END);
    assert_eq!(json_of(&end)["error"]["code"], "deadline_exceeded");
    drop(tx);
}
