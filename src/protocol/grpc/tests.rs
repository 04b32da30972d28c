//! The JSON codec and the gRPC-Web adapter against a stub stack, and their bodies.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body::Frame;
use http_body_util::BodyExt as _;
use tonic::body::Body;
use tower::ServiceExt as _;

use super::bodies::{JsonRequest, JsonResponse};
use super::*;
use crate::testing::{Frames, Stub, body_contract};
use crate::transcode::compression::Codec;
use crate::transcode::framing::{self, FLAG_COMPRESSED, encode};
use crate::transcode::{MethodDescriptor, MethodTable};

fn invoker() -> (Invoker<Stub>, Stub) {
    let stub = Stub::default();
    (Invoker::new(stub.clone(), crate::transcode::SharedMethods::new(MethodTable::generated())), stub)
}

fn unary() -> Arc<MethodDescriptor> {
    MethodTable::generated().get("/grpc.testing.TestService/UnaryCall").cloned().unwrap()
}

fn post(path: &str, content_type: &str, body: Bytes) -> Request<Body> {
    Request::post(path).header("content-type", content_type).body(Body::new(http_body_util::Full::new(body))).unwrap()
}

fn envelopes(body: &[u8]) -> Vec<(u8, Bytes)> {
    let mut decoder = framing::Decoder::new(1 << 20);
    decoder.push(body);
    std::iter::from_fn(|| decoder.next_envelope().unwrap()).map(|e| (e.flags, e.payload)).collect()
}

#[tokio::test]
async fn grpc_json_reaches_the_stack_as_protobuf_and_comes_back_as_json() {
    let (invoker, stub) = invoker();
    let req = post("/grpc.testing.TestService/UnaryCall", "application/grpc+json", encode(0, b"{}"));
    let resp = GrpcJson::new(invoker, 1024).oneshot(req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/grpc+json");
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(envelopes(&collected.to_bytes()), [(0, Bytes::from_static(b"{}"))]);
    assert_eq!(stub.seen()[0].headers["content-type"], "application/grpc");
}

#[tokio::test]
async fn an_unknown_method_with_the_json_codec_is_unimplemented() {
    let (invoker, stub) = invoker();
    let req = post("/grpc.testing.TestService/Nope", "application/grpc+json", encode(0, b"{}"));
    let resp = GrpcJson::new(invoker, 1024).oneshot(req).await.unwrap();
    assert_eq!(resp.headers()["grpc-status"], "12");
    assert_eq!(resp.headers()["content-type"], "application/grpc+json");
    assert!(stub.seen().is_empty(), "JSON needs the method table; the stack is not called");
}

#[tokio::test]
async fn grpc_web_json_is_framed_by_tonic_web_and_labelled_json() {
    let (invoker, stub) = invoker();
    let adapter = GrpcWebAdapter::new(invoker, stub.clone(), 1024);
    for (content_type, want) in [
        ("application/grpc-web+json", "application/grpc-web+json"),
        ("application/grpc-web-text+json", "application/grpc-web-text+json"),
    ] {
        let text = content_type.contains("text");
        let body = encode(0, b"{}");
        let body = if text { Bytes::from(base64_encode(&body)) } else { body };
        let mut req = post("/grpc.testing.TestService/UnaryCall", content_type, body);
        req.headers_mut().insert("accept", HeaderValue::from_static(if text { want } else { "*/*" }));
        let resp = adapter.serve(req, true).await;
        assert_eq!(resp.headers()["content-type"], want);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let raw = if text { base64_decode(&bytes) } else { bytes.to_vec() };
        let frames = envelopes(&raw);
        assert_eq!(frames[0], (0, Bytes::from_static(b"{}")), "{content_type}");
        assert_eq!(frames[1].0, 0x80, "the trailers frame");
    }
}

#[tokio::test]
async fn grpc_web_content_types_are_put_in_the_form_tonic_web_knows() {
    let (invoker, stub) = invoker();
    let adapter = GrpcWebAdapter::new(invoker, stub.clone(), 1024);
    let req = post("/grpc.testing.TestService/UnaryCall", "Application/GRPC-Web+Proto; charset=utf-8", encode(0, b""));
    let resp = adapter.serve(req, false).await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/grpc-web+proto");
    assert_eq!(stub.seen().len(), 1);
}

#[test]
fn other_methods_than_post_are_refused_as_grpc_go_refuses_them() {
    let resp = method_not_allowed(&Method::GET);
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    assert_eq!(resp.headers()["grpc-status"], "13");
    assert_eq!(resp.headers()["content-type"], "application/grpc");
}

#[tokio::test]
async fn the_bodies_say_when_they_are_over() {
    let request = |chunks: Vec<Bytes>| Body::new(Frames::new(chunks.into_iter().map(Frame::data).collect()));
    let two = [encode(0, br#"{"responseSize": 3}"#), encode(0, b"{}")].concat();
    let out = body_contract(JsonRequest::new(request(vec![Bytes::from(two)]), unary(), None, 1024)).await;
    assert_eq!(envelopes(&out.data).len(), 2);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // Compressed JSON comes out uncompressed protobuf.
    let zipped = encode(FLAG_COMPRESSED, &compression::compress(Codec::Gzip, br#"{"responseSize": 3}"#));
    let out = body_contract(JsonRequest::new(request(vec![zipped]), unary(), Some(Codec::Gzip), 1024)).await;
    assert_eq!(envelopes(&out.data)[0].0, 0);
    // Bad JSON, or a truncated envelope: an error, then the end.
    let out = body_contract(JsonRequest::new(request(vec![encode(0, b"{nope")]), unary(), None, 1024)).await;
    assert!(out.errors[0].contains("InvalidArgument"), "{:?}", out.errors);
    let out =
        body_contract(JsonRequest::new(request(vec![Bytes::from_static(&[0, 0, 0, 0, 9, 1])]), unary(), None, 1024))
            .await;
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    // Responses: messages as JSON (compressed again if they came compressed), trailers as they are.
    let mut ok = http::HeaderMap::new();
    ok.insert("grpc-status", HeaderValue::from_static("0"));
    let binary = crate::pb::grpc::testing::SimpleResponse::default();
    let zipped = encode(FLAG_COMPRESSED, &compression::compress(Codec::Gzip, &prost::Message::encode_to_vec(&binary)));
    let frames = vec![Frame::data(encode(0, &[])), Frame::data(zipped), Frame::trailers(ok)];
    let out = body_contract(JsonResponse::new(Body::new(Frames::new(frames)), unary(), Some(Codec::Gzip), 1024)).await;
    let got = envelopes(&out.data);
    assert_eq!(got[0], (0, Bytes::from_static(b"{}")));
    assert_eq!(got[1].0, FLAG_COMPRESSED);
    assert_eq!(compression::decompress(Codec::Gzip, &got[1].1, 100).unwrap(), b"{}");
    assert!(out.trailers.is_some());
    // A message that is not the method's type ends the response with INTERNAL.
    let frames = vec![Frame::data(encode(0, &[0xff, 0xff])), Frame::trailers(http::HeaderMap::new())];
    let out = body_contract(JsonResponse::new(Body::new(Frames::new(frames)), unary(), None, 1024)).await;
    assert_eq!(out.trailers.map(|t| t["grpc-status"].clone()), Some(HeaderValue::from_static("13")));
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// tonic-web encodes each frame on its own, padded: decode quad by quad.
fn base64_decode(data: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    data.chunks(4).flat_map(|quad| base64::engine::general_purpose::STANDARD.decode(quad).unwrap()).collect()
}
