//! CORS: browsers get their headers on every protocol; a `POST` without `Origin` (native gRPC,
//! curl, servers) skips the CORS layer; `GET`s always carry `Vary` for caches.

mod common;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portway::Config;
use portway::config::AllowedOrigins;
use portway::pb::grpc::testing::SimpleRequest;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";

async fn send(req: Request<Full<Bytes>>) -> http::Response<Bytes> {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(req).await.expect("request");
    let (parts, body) = resp.into_parts();
    http::Response::from_parts(parts, body.collect().await.expect("body").to_bytes())
}

fn json_post(url: &str, origin: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::post(format!("{url}{UNARY}")).header("content-type", "application/json");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(Full::new(Bytes::from_static(br#"{"responseSize":3}"#))).expect("request")
}

#[tokio::test]
async fn post_without_origin_skips_cors() {
    let server = common::start_interop(Config::default()).await;
    let resp = send(json_post(&server.url(), None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.body().as_ref(), br#"{"payload":{"body":"AAAA"}}"#);
    assert!(resp.headers().get("access-control-allow-origin").is_none(), "{:?}", resp.headers());
    assert!(resp.headers().get("access-control-expose-headers").is_none(), "{:?}", resp.headers());
    assert!(resp.headers().get("vary").is_none(), "{:?}", resp.headers());
}

#[tokio::test]
async fn post_with_origin_gets_cors_headers() {
    let server = common::start_interop(Config::default()).await;
    let resp = send(json_post(&server.url(), Some("https://app.example"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get("access-control-allow-origin"), Some(&HeaderValue::from_static("*")));
    let exposed = resp.headers().get("access-control-expose-headers").expect("expose headers");
    assert!(exposed.to_str().expect("ascii").contains("grpc-status"), "{exposed:?}");
    let vary = resp.headers().get_all("vary").iter().map(|v| v.to_str().unwrap_or_default()).collect::<Vec<_>>();
    assert!(vary.iter().any(|v| v.contains("origin")), "{vary:?}");
}

#[tokio::test]
async fn listed_origins_only() {
    let mut config = Config::default();
    config.cors.allowed_origins = AllowedOrigins::List(vec![HeaderValue::from_static("https://app.example")]);
    let server = common::start_interop(config).await;
    let allowed = send(json_post(&server.url(), Some("https://app.example"))).await;
    assert_eq!(
        allowed.headers().get("access-control-allow-origin"),
        Some(&HeaderValue::from_static("https://app.example"))
    );
    let other = send(json_post(&server.url(), Some("https://evil.example"))).await;
    assert!(other.headers().get("access-control-allow-origin").is_none(), "{:?}", other.headers());
}

#[tokio::test]
async fn preflight_is_answered() {
    let server = common::start_interop(Config::default()).await;
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("{}{UNARY}", server.url()))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = send(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get("access-control-allow-origin"), Some(&HeaderValue::from_static("*")));
    let methods = resp.headers().get("access-control-allow-methods").expect("allow methods");
    assert!(methods.to_str().expect("ascii").contains("POST"), "{methods:?}");
}

#[tokio::test]
async fn get_without_origin_still_varies_on_origin() {
    // A cache must not hand a response made without CORS headers to a browser's request.
    let server = common::start_interop(Config::default()).await;
    let req = Request::get(format!("{}/healthz", server.url())).body(Full::new(Bytes::new())).expect("request");
    let resp = send(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let vary = resp.headers().get_all("vary").iter().map(|v| v.to_str().unwrap_or_default()).collect::<Vec<_>>();
    assert!(vary.iter().any(|v| v.contains("origin")), "{vary:?}");
}

#[tokio::test]
async fn native_grpc_carries_no_cors_headers() {
    let server = common::start_interop(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    let resp = client.unary_call(SimpleRequest { response_size: 2, ..Default::default() }).await.expect("call");
    assert!(resp.metadata().get("access-control-allow-origin").is_none(), "{:?}", resp.metadata());
    assert_eq!(resp.into_inner().payload.expect("payload").body.len(), 2);
}
