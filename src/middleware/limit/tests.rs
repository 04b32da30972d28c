//! The message limit's bodies and service, on hand-made bodies and a stub stack.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use tonic::body::Body;

use super::body::{LimitedRequest, LimitedResponse};
use super::scan::{Direction, Scanner};
use super::*;
use crate::testing::{Frames, body_contract};
use crate::transcode::compression::Codec;
use crate::transcode::framing::{FLAG_COMPRESSED, encode, gzip};

fn envelope(len: usize) -> Vec<u8> {
    encode(0, &vec![7; len]).to_vec()
}

fn ok() -> HeaderMap {
    let mut ok = HeaderMap::new();
    ok.insert("grpc-status", HeaderValue::from_static("0"));
    ok
}

fn body(chunks: &[Vec<u8>], trailers: bool) -> Body {
    let mut frames: Vec<Frame<Bytes>> = chunks.iter().map(|c| Frame::data(Bytes::from(c.clone()))).collect();
    if trailers {
        frames.push(Frame::trailers(ok()));
    }
    Body::new(Frames::new(frames))
}

fn request(chunks: &[Vec<u8>], max: usize, single: bool) -> LimitedRequest {
    LimitedRequest::new(body(chunks, false), Scanner::new(max, Direction::Request, Encoding::Identity), single)
}

fn response(chunks: &[Vec<u8>], max: usize, encoding: Encoding) -> LimitedResponse {
    LimitedResponse::new(body(chunks, true), Scanner::new(max, Direction::Response, encoding))
}

fn status_of(trailers: Option<HeaderMap>) -> Option<HeaderValue> {
    trailers.map(|t| t["grpc-status"].clone())
}

#[tokio::test]
async fn within_the_limit_everything_passes() {
    let small = [envelope(3), envelope(0)].concat();
    assert_eq!(body_contract(request(std::slice::from_ref(&small), 10, false)).await.data, small);
    let out = body_contract(response(std::slice::from_ref(&small), 10, Encoding::Identity)).await;
    assert_eq!((out.data, out.trailers.is_some()), (small.clone(), true));
    // Split anywhere, the same bytes come out.
    for split in 0..small.len() {
        let (a, b) = small.split_at(split);
        let chunks = [a.to_vec(), b.to_vec()];
        assert_eq!(body_contract(request(&chunks, 10, false)).await.data, small, "split at {split}");
        assert_eq!(body_contract(response(&chunks, 10, Encoding::Identity)).await.data, small, "split at {split}");
    }
}

#[tokio::test]
async fn over_the_limit_the_messages_before_pass_then_the_status() {
    let over = [envelope(3), envelope(11)].concat();
    let out = body_contract(request(std::slice::from_ref(&over), 10, false)).await;
    assert_eq!(out.data, envelope(3));
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let out = body_contract(response(&[over], 10, Encoding::Identity)).await;
    assert_eq!(out.data, envelope(3));
    assert_eq!(status_of(out.trailers), Some(HeaderValue::from_static("8")));
}

#[tokio::test]
async fn compressed_responses_are_limited_by_their_decompressed_size() {
    // 4 MiB + 11 bytes of zeros compress to a few KiB: the old check let them through.
    let max = 4 * 1024 * 1024;
    let bomb = encode(FLAG_COMPRESSED, &gzip::compress(&vec![0; max + 11])).to_vec();
    assert!(bomb.len() < max / 100, "{}", bomb.len());
    let out = body_contract(response(&[envelope(3), bomb.clone()], max, Encoding::Known(Codec::Gzip))).await;
    assert_eq!(out.data, envelope(3), "nothing of the oversized message");
    assert_eq!(status_of(out.trailers), Some(HeaderValue::from_static("8")));
    // At the limit it passes, whole, however it is split.
    let fits = encode(FLAG_COMPRESSED, &gzip::compress(&vec![0; max])).to_vec();
    let halves = [fits[..fits.len() / 2].to_vec(), fits[fits.len() / 2..].to_vec()];
    let out = body_contract(response(&halves, max, Encoding::Known(Codec::Gzip))).await;
    assert_eq!(out.data, fits);
    assert_eq!(status_of(out.trailers), Some(HeaderValue::from_static("0")));
    // A request bomb fails the request body.
    let req = LimitedRequest::new(
        body(&[bomb], false),
        Scanner::new(max, Direction::Request, Encoding::Known(Codec::Gzip)),
        false,
    );
    let out = body_contract(req).await;
    assert!(out.data.is_empty());
    assert!(out.errors[0].contains("once decompressed"), "{:?}", out.errors);
}

#[tokio::test]
async fn a_single_message_method_gets_exactly_one() {
    let one = envelope(3);
    // One message, whole or split, with the end of the stream: passed on.
    for chunks in [vec![one.clone()], vec![one[..2].to_vec(), one[2..].to_vec()]] {
        let out = body_contract(request(&chunks, 10, true)).await;
        assert_eq!((out.data, out.errors.len()), (one.clone(), 0));
    }
    // None: UNIMPLEMENTED, and nothing else.
    let out = body_contract(request(&[], 10, true)).await;
    assert_eq!(out.errors.len(), 1);
    assert!(out.errors[0].contains("Unimplemented") && out.errors[0].contains("got none"), "{:?}", out.errors);
    // Two, in one chunk or two: UNIMPLEMENTED, and nothing of either.
    for chunks in [vec![[one.clone(), envelope(1)].concat()], vec![one.clone(), envelope(1)]] {
        let out = body_contract(request(&chunks, 10, true)).await;
        assert!(out.data.is_empty(), "nothing is relayed");
        assert!(out.errors[0].contains("more than one"), "{:?}", out.errors);
    }
    // A truncated message is the decoder's to report: passed on as it is.
    let out = body_contract(request(&[one[..6].to_vec()], 10, true)).await;
    assert_eq!((out.data, out.errors.len()), (one[..6].to_vec(), 0));
    // Oversized: RESOURCE_EXHAUSTED, not a count.
    let out = body_contract(request(&[envelope(11)], 10, true)).await;
    assert!(out.errors[0].contains("ResourceExhausted"), "{:?}", out.errors);
}

#[tokio::test]
async fn the_layer_refuses_unreadable_encodings_and_narrows_accepted_ones() {
    use tower::{Layer as _, ServiceExt as _};
    let stub = crate::testing::Stub::default();
    let layer =
        MessageLimitLayer::new(1024, crate::transcode::SharedMethods::new(crate::transcode::MethodTable::generated()));
    let call = |headers: &[(&'static str, &'static str)]| {
        let mut req = Request::post("/grpc.testing.TestService/UnaryCall")
            .header("content-type", "application/grpc")
            .body(Body::new(http_body_util::Full::new(encode(0, &[]))))
            .unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(*k, HeaderValue::from_static(v));
        }
        layer.layer(stub.clone()).oneshot(req)
    };
    let resp = call(&[("grpc-encoding", "zstd")]).await.unwrap();
    assert_eq!(resp.headers()["grpc-status"], "12");
    assert_eq!(resp.headers()["grpc-accept-encoding"], compression::READABLE);
    assert!(stub.seen().is_empty(), "the service never sees it");
    let _ = call(&[("grpc-accept-encoding", "zstd,gzip")]).await.unwrap();
    let _ = call(&[("grpc-accept-encoding", "identity,deflate,gzip")]).await.unwrap();
    let _ = call(&[("grpc-accept-encoding", "snappy")]).await.unwrap();
    let seen: Vec<Option<HeaderValue>> =
        stub.seen().iter().map(|s| s.headers.get("grpc-accept-encoding").cloned()).collect();
    assert_eq!(
        seen,
        [Some(HeaderValue::from_static("gzip")), Some(HeaderValue::from_static("identity,deflate,gzip")), None]
    );
}
