//! The Connect adapter against a stub stack.

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::*;
use crate::testing::Stub;
use crate::transcode::MethodTable;
use crate::transcode::framing::{self, FLAG_END_STREAM};

fn adapter() -> (ConnectService<Stub>, Stub) {
    let stub = Stub::default();
    (
        ConnectService::new(
            Invoker::new(stub.clone(), crate::transcode::SharedMethods::new(MethodTable::generated())),
            1024,
        ),
        stub,
    )
}

async fn post(path: &str, content_type: &str, body: impl Into<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>, Stub) {
    let (service, stub) = adapter();
    let req = Request::post(path).header("content-type", content_type).body(body.into()).unwrap();
    let resp = service.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body, stub)
}

#[tokio::test]
async fn unary_json_reaches_the_stack_and_comes_back() {
    let (status, headers, body, stub) = post("/grpc.testing.TestService/UnaryCall", "application/json", "{}").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"{}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["trailer-x-stub"], "t");
    let seen = stub.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/grpc.testing.TestService/UnaryCall");
    assert_eq!(seen[0].headers["content-type"], "application/grpc");
}

#[tokio::test]
async fn unknown_methods_are_refused_for_json_and_relayed_for_proto() {
    let (status, _, body, stub) = post("/grpc.testing.TestService/Nope", "application/json", "{}").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["message"], "unknown method /grpc.testing.TestService/Nope");
    assert!(stub.seen().is_empty(), "JSON needs the method table; the stack is not called");
    let (status, _, body, stub) = post("/other.Service/Method", "application/proto", Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["message"], "stub: no such method", "the stack's own answer");
    assert_eq!(stub.seen().len(), 1);
}

#[tokio::test]
async fn server_streams_end_with_the_end_of_stream_envelope() {
    let request = framing::encode(0, b"{}");
    let (status, _, body, _) =
        post("/grpc.testing.TestService/StreamingOutputCall", "application/connect+json", request.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let mut decoder = framing::Decoder::new(1024);
    decoder.push(&body);
    let mut envelopes = Vec::new();
    while let Some(env) = decoder.next_envelope().unwrap() {
        envelopes.push(env);
    }
    assert_eq!(envelopes.len(), 3, "two messages and the end");
    assert_eq!(&envelopes[0].payload[..], b"{}");
    assert_eq!(envelopes[2].flags, FLAG_END_STREAM);
    assert_eq!(&envelopes[2].payload[..], b"{}", "OK: no error, no metadata");
}

#[tokio::test]
async fn trailers_only_errors_keep_their_code() {
    let (status, _, body, _) = post("/grpc.testing.TestService/UnimplementedCall", "application/json", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error, serde_json::json!({"code":"not_found","message":"stub: not found"}));
}
