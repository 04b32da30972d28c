//! The interop service through its real wrappers, on in-memory bodies: per-message
//! compression both ways, the message limit, and lazily produced streams.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, Request};
use http_body_util::BodyExt;
use prost::Message;
use tonic::Code;
use tonic::body::Body;
use tower::ServiceExt;

use super::*;
use crate::transcode::framing::{Decoder, encode_into, gzip};

const LIMIT: usize = 64 * 1024;
const UNARY: &str = "/grpc.testing.TestService/UnaryCall";
const OUTPUT: &str = "/grpc.testing.TestService/StreamingOutputCall";
const INPUT: &str = "/grpc.testing.TestService/StreamingInputCall";

/// The messages as (flags, payload) and the status of a call made with `frames`.
struct Answer {
    headers: HeaderMap,
    messages: Vec<(u8, Bytes)>,
    code: Code,
    message: String,
}

async fn call(path: &str, headers: &[(&'static str, &'static str)], frames: &[(bool, Vec<u8>)]) -> Answer {
    let mut body = BytesMut::new();
    for (compress, msg) in frames {
        if *compress {
            encode_into(&mut body, 1, &gzip::compress(msg));
        } else {
            encode_into(&mut body, 0, msg);
        }
    }
    let mut req = Request::post(path).header("content-type", "application/grpc").header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::new(http_body_util::Full::new(body.freeze()))).expect("request");
    let Ok(resp) = service(LIMIT).oneshot(req).await;
    let (parts, body) = resp.into_parts();
    let collected =
        tokio::time::timeout(Duration::from_secs(10), body.collect()).await.expect("in time").expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = if parts.headers.contains_key("grpc-status") { &parts.headers } else { &trailers };
    let status = tonic::Status::from_header_map(status).expect("a grpc-status");
    let (code, message) = (status.code(), status.message().to_owned());
    let mut decoder = Decoder::new(usize::MAX);
    decoder.push(&collected.to_bytes());
    let mut messages = Vec::new();
    while let Some(env) = decoder.next_envelope().expect("frames") {
        messages.push((env.flags, env.payload));
    }
    Answer { headers: parts.headers, messages, code, message }
}

fn unary(f: impl FnOnce(&mut SimpleRequest)) -> Vec<u8> {
    let mut req = SimpleRequest { response_size: 1000, ..Default::default() };
    f(&mut req);
    req.encode_to_vec()
}

const ON: Option<BoolValue> = Some(BoolValue { value: true });
const GZIP_IN: (&str, &str) = ("grpc-encoding", "gzip");
const GZIP_OUT: (&str, &str) = ("grpc-accept-encoding", "gzip");

#[tokio::test]
async fn expect_compressed_refuses_an_uncompressed_request() {
    let a = call(UNARY, &[], &[(false, unary(|r| r.expect_compressed = ON))]).await;
    assert_eq!(a.code, Code::InvalidArgument, "{}", a.message);
    let a = call(UNARY, &[GZIP_IN], &[(true, unary(|r| r.expect_compressed = ON))]).await;
    assert_eq!(a.code, Code::Ok, "{}", a.message);
    assert_eq!(
        SimpleResponse::decode(a.messages[0].1.clone()).expect("response").payload.expect("payload").body.len(),
        1000
    );
}

#[tokio::test]
async fn expect_compressed_is_checked_per_streamed_message() {
    let msg = |expect: bool| {
        StreamingInputCallRequest {
            payload: Some(Payload { body: vec![0; 100], ..Default::default() }),
            expect_compressed: Some(BoolValue { value: expect }),
        }
        .encode_to_vec()
    };
    let a = call(INPUT, &[GZIP_IN], &[(true, msg(true)), (false, msg(false))]).await;
    assert_eq!(a.code, Code::Ok, "{}", a.message);
    assert_eq!(
        StreamingInputCallResponse::decode(a.messages[0].1.clone()).expect("response").aggregated_payload_size,
        200
    );
    let a = call(INPUT, &[GZIP_IN], &[(true, msg(true)), (false, msg(true))]).await;
    assert_eq!(a.code, Code::InvalidArgument, "{}", a.message);
}

#[tokio::test]
async fn responses_are_compressed_only_when_asked() {
    let a = call(UNARY, &[GZIP_OUT], &[(false, unary(|r| r.response_compressed = ON))]).await;
    assert_eq!((a.code, a.messages.len(), a.messages[0].0), (Code::Ok, 1, 1));
    assert_eq!(a.headers.get("grpc-encoding").map(|v| v.as_bytes()), Some(&b"gzip"[..]));
    let body = gzip::decompress(&a.messages[0].1, LIMIT).expect("gzip");
    assert_eq!(SimpleResponse::decode(&body[..]).expect("response").payload.expect("payload").body.len(), 1000);

    let a = call(UNARY, &[GZIP_OUT], &[(false, unary(|_| {}))]).await;
    assert_eq!(a.messages[0].0, 0, "not asked for: not compressed");
    // A client that does not accept gzip gets nothing compressed, asked or not.
    let a = call(UNARY, &[], &[(false, unary(|r| r.response_compressed = ON))]).await;
    assert_eq!((a.code, a.messages[0].0), (Code::Ok, 0));
    assert!(!a.headers.contains_key("grpc-encoding"));
}

#[tokio::test]
async fn streamed_responses_are_compressed_per_message() {
    let param = |size, value| ResponseParameters { size, compressed: Some(BoolValue { value }), ..Default::default() };
    let req = StreamingOutputCallRequest {
        response_parameters: vec![param(31415, true), param(92, false), param(7, true)],
        ..Default::default()
    };
    let a = call(OUTPUT, &[GZIP_OUT], &[(false, req.encode_to_vec())]).await;
    assert_eq!(a.code, Code::Ok, "{}", a.message);
    assert_eq!(a.messages.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 0, 1]);
}

#[tokio::test]
async fn a_request_that_decompresses_past_the_limit_is_resource_exhausted() {
    let bomb = unary(|r| r.payload = Some(Payload { body: vec![0; 4 * LIMIT], ..Default::default() }));
    let a = call(UNARY, &[GZIP_IN], &[(true, bomb)]).await;
    assert_eq!(a.code, Code::ResourceExhausted, "{}", a.message);
    let a = call(UNARY, &[("grpc-encoding", "br")], &[(true, unary(|_| {}))]).await;
    assert_eq!(a.code, Code::Unimplemented, "{}", a.message);
    let a = call(UNARY, &[], &[(true, unary(|_| {}))]).await;
    assert_eq!(a.code, Code::Internal, "{}", a.message);
}

#[tokio::test]
async fn a_huge_response_size_is_refused_before_allocating() {
    // 2 GiB would be allocated (and then refused) if the size were not checked first.
    let a = call(UNARY, &[], &[(false, unary(|r| r.response_size = i32::MAX))]).await;
    assert_eq!(a.code, Code::ResourceExhausted, "{}", a.message);
    assert!(a.message.contains("limit of 65536 bytes"), "{}", a.message);
    let a = call(UNARY, &[], &[(false, unary(|r| r.response_size = LIMIT as i32))]).await;
    assert_eq!(a.code, Code::Ok, "a payload at the limit is the service's to produce: {}", a.message);
}

#[tokio::test]
async fn streamed_responses_are_produced_lazily() {
    // A million 4 MiB responses: a stream that built them up front would never return.
    let params = vec![ResponseParameters { size: 4 << 20, ..Default::default() }; 1_000_000];
    let req = tonic::Request::new(StreamingOutputCallRequest { response_parameters: params, ..Default::default() });
    let mut stream = Interop.streaming_output_call(req).await.expect("call").into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("in time");
    assert_eq!(first.expect("one").expect("ok").payload.expect("payload").body.len(), 4 << 20);
}

#[tokio::test]
async fn half_duplex_bounds_what_it_holds() {
    let params = vec![ResponseParameters { size: 1, ..Default::default() }; MAX_HALF_DUPLEX_RESPONSES + 1];
    let req = StreamingOutputCallRequest { response_parameters: params, ..Default::default() }.encode_to_vec();
    let a = call("/grpc.testing.TestService/HalfDuplexCall", &[], &[(false, req)]).await;
    assert_eq!(a.code, Code::ResourceExhausted, "{}", a.message);
}
