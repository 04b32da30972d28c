//! gRPC-Web through the gateway: binary and text, over HTTP/1.1 and HTTP/2, with a plain
//! HTTP client (hyper) and with tonic-web's own client layer; CORS as browsers use it.

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use ::http::{HeaderName, HeaderValue, Request, StatusCode};
use common::http::{self, Http, Reply, guard};
use portway::Config;
use portway::config::AllowedOrigins;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{
    EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use prost::Message as _;
use tonic::Code;

const SVC: &str = "/grpc.testing.TestService";
const ALL: [(Http, bool); 4] = [(Http::H1, false), (Http::H1, true), (Http::H2, false), (Http::H2, true)];
const ECHO: [(&str, &str); 2] =
    [("x-grpc-test-echo-initial", "test_initial_metadata_value"), ("x-grpc-test-echo-trailing-bin", "q6ur")];

fn params(sizes: &[i32]) -> Vec<ResponseParameters> {
    sizes.iter().map(|&size| ResponseParameters { size, ..Default::default() }).collect()
}

#[tokio::test]
async fn unary_binary_and_text_over_h1_and_h2() {
    let server = common::start_interop(Config::default()).await;
    for (version, text) in ALL {
        let req = SimpleRequest { response_size: 42, ..Default::default() }.encode_to_vec();
        let reply =
            http::grpc_web_call(version, text, &format!("{}{SVC}/UnaryCall", server.url()), &[&req], &ECHO).await;
        let what = format!("{version:?} text={text}");
        assert_eq!(reply.version, version.version(), "{what}");
        assert_eq!(reply.code(), 0, "{what}: {reply:?}");
        assert!(!reply.trailers_only, "{what}: a message and a trailers frame");
        assert_eq!(reply.messages.len(), 1, "{what}");
        let resp = SimpleResponse::decode(reply.messages[0].clone()).expect("SimpleResponse");
        assert_eq!(resp.payload.map(|p| p.body.len()), Some(42), "{what}");
        assert_eq!(reply.headers.get("x-grpc-test-echo-initial").unwrap(), "test_initial_metadata_value", "{what}");
        assert_eq!(reply.trailers.get("x-grpc-test-echo-trailing-bin").unwrap(), "q6ur", "{what}");
        assert!(reply.headers.get("x-grpc-test-echo-trailing-bin").is_none(), "{what}: trailer sent as a header");
    }
}

#[tokio::test]
async fn empty_call() {
    let server = common::start_interop(Config::default()).await;
    for (version, text) in ALL {
        let reply = http::grpc_web_call(version, text, &format!("{}{SVC}/EmptyCall", server.url()), &[&[]], &[]).await;
        assert_eq!(reply.code(), 0);
        assert_eq!(reply.messages, vec![bytes::Bytes::new()]);
    }
}

#[tokio::test]
async fn server_streaming_over_h1_and_h2() {
    let server = common::start_interop(Config::default()).await;
    let want = [31_415, 9, 2_653, 58_979];
    let req = StreamingOutputCallRequest { response_parameters: params(&want), ..Default::default() }.encode_to_vec();
    for (version, text) in ALL {
        let reply =
            http::grpc_web_call(version, text, &format!("{}{SVC}/StreamingOutputCall", server.url()), &[&req], &ECHO)
                .await;
        assert_eq!(reply.code(), 0, "{reply:?}");
        let got: Vec<usize> = reply
            .messages
            .iter()
            .map(|m| StreamingOutputCallResponse::decode(m.clone()).unwrap().payload.unwrap().body.len())
            .collect();
        assert_eq!(got, want.map(|s| s as usize), "{version:?} text={text}");
        assert_eq!(reply.trailers.get("x-grpc-test-echo-trailing-bin").unwrap(), "q6ur");
    }
}

#[tokio::test]
async fn client_streaming_with_several_frames_in_one_body() {
    let server = common::start_interop(Config::default()).await;
    let msgs: Vec<Vec<u8>> = [27_182, 8, 1_828, 45_904]
        .iter()
        .map(|&n| {
            StreamingInputCallRequest { payload: Some(Payload { r#type: 0, body: vec![1; n] }), ..Default::default() }
                .encode_to_vec()
        })
        .collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    for (version, text) in ALL {
        let reply =
            http::grpc_web_call(version, text, &format!("{}{SVC}/StreamingInputCall", server.url()), &refs, &[]).await;
        assert_eq!(reply.code(), 0, "{reply:?}");
        let resp = StreamingInputCallResponse::decode(reply.messages[0].clone()).unwrap();
        assert_eq!(resp.aggregated_payload_size, 74_922, "{version:?} text={text}");
    }
}

#[tokio::test]
async fn half_duplex_with_several_frames_in_one_body() {
    let server = common::start_interop(Config::default()).await;
    let a = StreamingOutputCallRequest { response_parameters: params(&[1, 2]), ..Default::default() }.encode_to_vec();
    let b = StreamingOutputCallRequest { response_parameters: params(&[3]), ..Default::default() }.encode_to_vec();
    for (version, text) in ALL {
        let url = format!("{}{SVC}/HalfDuplexCall", server.url());
        let reply = http::grpc_web_call(version, text, &url, &[&a, &b], &[]).await;
        assert_eq!(reply.code(), 0, "{reply:?}");
        assert_eq!(reply.messages.len(), 3, "{version:?} text={text}");
    }
}

#[tokio::test]
async fn errors_come_in_the_trailers() {
    let server = common::start_interop(Config::default()).await;
    for (version, text) in ALL {
        // An error before any message: a trailers-only response.
        let req = SimpleRequest {
            response_status: Some(EchoStatus { code: 5, message: "not here ☺".into() }),
            ..Default::default()
        }
        .encode_to_vec();
        let reply =
            http::grpc_web_call(version, text, &format!("{}{SVC}/UnaryCall", server.url()), &[&req], &ECHO).await;
        assert_eq!(reply.code(), 5, "{reply:?}");
        assert_eq!(reply.message(), "not here ☺");
        assert!(reply.messages.is_empty());
        assert_eq!(reply.trailers.get("x-grpc-test-echo-trailing-bin").unwrap(), "q6ur");

        // An error after messages: the status is in the trailers frame.
        let req = StreamingOutputCallRequest {
            response_parameters: params(&[1, 2]),
            response_status: Some(EchoStatus { code: 9, message: "too late".into() }),
            ..Default::default()
        }
        .encode_to_vec();
        let url = format!("{}{SVC}/StreamingOutputCall", server.url());
        let reply = http::grpc_web_call(version, text, &url, &[&req], &ECHO).await;
        assert!(!reply.trailers_only, "{reply:?}");
        assert_eq!(reply.messages.len(), 2);
        assert_eq!(reply.code(), 9);
        assert_eq!(reply.message(), "too late");
        assert_eq!(reply.trailers.get("x-grpc-test-echo-trailing-bin").unwrap(), "q6ur");
    }
}

#[tokio::test]
async fn unknown_methods_are_unimplemented() {
    let server = common::start_interop(Config::default()).await;
    for (version, text) in ALL {
        for path in [
            "/grpc.testing.TestService/NoSuchMethod",
            "/no.such.Service/Method",
            "/grpc.testing.TestService/UnimplementedCall",
        ] {
            let reply = http::grpc_web_call(version, text, &format!("{}{path}", server.url()), &[&[]], &[]).await;
            assert_eq!(reply.code(), Code::Unimplemented as i32, "{path}: {reply:?}");
        }
    }
}

#[tokio::test]
async fn grpc_timeout_is_honoured() {
    let (server, mut dropped) = common::start_scripted(Config::default()).await;
    let req = StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters { size: 1, interval_us: 30_000_000, ..Default::default() }],
        ..Default::default()
    }
    .encode_to_vec();
    for (version, text) in ALL {
        let url = format!("{}{SVC}/StreamingOutputCall", server.url());
        let reply = http::grpc_web_call(version, text, &url, &[&req], &[("grpc-timeout", "200m")]).await;
        assert_eq!(reply.code(), Code::DeadlineExceeded as i32, "{version:?} text={text}: {reply:?}");
        assert_eq!(guard(dropped.recv()).await, Some("streaming_output_call"));
    }
}

fn preflight(url: &str, origin: &str) -> Request<http::ReqBody> {
    http::request("OPTIONS", url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-grpc-web,content-type,x-user-agent,grpc-timeout")
        .body(http::full(Vec::new()))
        .expect("request")
}

fn header_list(reply: &Reply, name: &str) -> Vec<String> {
    reply
        .headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(',').map(|s| s.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .collect()
}

async fn web_post_with_origin(version: Http, url: &str, origin: &str) -> Reply {
    let req = http::request("POST", url)
        .header("origin", origin)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(http::full(http::frame(0, &[])))
        .expect("request");
    http::send(version, req).await
}

#[tokio::test]
async fn cors_preflight_and_exposed_headers_for_any_origin() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{SVC}/EmptyCall", server.url());
    for version in [Http::H1, Http::H2] {
        let reply = http::send(version, preflight(&url, "https://app.example.com")).await;
        assert!(reply.status.is_success(), "{reply:?}");
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        let methods = header_list(&reply, "access-control-allow-methods");
        assert!(methods.contains(&"post".to_string()), "{methods:?}");
        let allowed = header_list(&reply, "access-control-allow-headers");
        for h in ["x-grpc-web", "content-type", "x-user-agent", "grpc-timeout"] {
            assert!(allowed.contains(&h.to_string()), "{h} not allowed: {allowed:?}");
        }
        assert_eq!(reply.header("access-control-max-age"), Some("7200"), "the default: two hours");
        assert_eq!(reply.header("access-control-allow-credentials"), None, "never with any origin");

        let reply = web_post_with_origin(version, &url, "https://app.example.com").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        let exposed = header_list(&reply, "access-control-expose-headers");
        for h in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
            assert!(exposed.contains(&h.to_string()), "{h} not exposed: {exposed:?}");
        }
    }
}

#[tokio::test]
async fn cors_origin_list_allows_only_listed_origins() {
    let mut config = Config::default();
    config.cors.allowed_origins = AllowedOrigins::List(vec![HeaderValue::from_static("https://app.example.com")]);
    config.cors.expose_headers = vec![HeaderName::from_static("x-custom")];
    config.cors.allow_credentials = true;
    config.cors.max_age = std::time::Duration::from_secs(60);
    let server = common::start_interop(config).await;
    let url = format!("{}{SVC}/EmptyCall", server.url());

    let ok = http::send(Http::H1, preflight(&url, "https://app.example.com")).await;
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-max-age"), Some("60"));
    let bad = http::send(Http::H1, preflight(&url, "https://evil.example.com")).await;
    assert_eq!(bad.header("access-control-allow-origin"), None, "{bad:?}");

    let ok = web_post_with_origin(Http::H1, &url, "https://app.example.com").await;
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://app.example.com"));
    let exposed = header_list(&ok, "access-control-expose-headers");
    assert!(exposed.contains(&"x-custom".to_string()), "{exposed:?}");
    assert!(exposed.contains(&"grpc-status".to_string()), "{exposed:?}");
    let bad = web_post_with_origin(Http::H1, &url, "https://evil.example.com").await;
    assert_eq!(bad.header("access-control-allow-origin"), None);
}

/// The generated tonic client speaking gRPC-Web over HTTP/1.1 through tonic-web's client layer.
fn web_client(
    server: &common::TestServer,
) -> TestServiceClient<
    tonic_web::GrpcWebClientService<
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            tonic_web::GrpcWebCall<tonic::body::Body>,
        >,
    >,
> {
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let svc = tower::ServiceBuilder::new().layer(tonic_web::GrpcWebClientLayer::new()).service(hyper);
    TestServiceClient::with_origin(svc, server.url().parse().expect("uri"))
}

#[tokio::test]
async fn tonic_web_client_layer() {
    let server = common::start_interop(Config::default()).await;
    let mut client = web_client(&server);
    guard(client.empty_call(Empty {})).await.expect("EmptyCall");
    let resp =
        guard(client.unary_call(SimpleRequest { response_size: 1234, ..Default::default() })).await.expect("UnaryCall");
    assert_eq!(resp.into_inner().payload.unwrap().body.len(), 1234);

    let mut stream = guard(client.streaming_output_call(StreamingOutputCallRequest {
        response_parameters: params(&[5, 6, 7]),
        ..Default::default()
    }))
    .await
    .expect("StreamingOutputCall")
    .into_inner();
    let mut got = Vec::new();
    while let Some(m) = guard(stream.message()).await.expect("message") {
        got.push(m.payload.unwrap().body.len());
    }
    assert_eq!(got, [5, 6, 7]);

    let mut req = tonic::Request::new(SimpleRequest {
        response_status: Some(EchoStatus { code: 7, message: "nope".into() }),
        ..Default::default()
    });
    req.metadata_mut().insert("x-grpc-test-echo-initial", "hello".parse().unwrap());
    let status = guard(client.unary_call(req)).await.expect_err("fails");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "nope");

    // Every one of those calls was served as gRPC-Web, none as native gRPC.
    let metrics = server.metrics.render();
    assert!(metrics.contains("portway_requests_total{protocol=\"grpc_web\"} 4"), "{metrics}");
    assert!(metrics.contains("portway_requests_total{protocol=\"grpc\"} 0"), "{metrics}");
}
