//! Test support: a stub service stack for the adapters' unit tests, and the contract every
//! `http_body::Body` of the crate is held to.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::StreamBody;
use prost::Message as _;
use tonic::Status;
use tonic::body::Body;

use crate::protocol::Protocol;
use crate::transcode::framing;

/// What the stub saw of one call.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub protocol: Option<Protocol>,
}

/// A stub service stack: answers by method name as a gRPC server would, with no service
/// behind it.
///
/// - `UnaryCall`: one empty message, then OK with the trailer `x-stub: t`;
/// - `StreamingOutputCall`: two empty messages, then OK;
/// - `FullDuplexCall`, `StreamingInputCall`: headers, then nothing, ever; the request is
///   never read (a stalled handler);
/// - `UnimplementedCall`: a trailers-only `NOT_FOUND`;
/// - `grpc.health.v1.Health/Check`: `SERVING`;
/// - anything else: a trailers-only `UNIMPLEMENTED`.
#[derive(Clone, Default)]
pub(crate) struct Stub {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    /// Every call the stub has answered so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn ok_trailers(extra: Option<(&'static str, &'static str)>) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("0"));
    if let Some((k, v)) = extra {
        t.insert(k, HeaderValue::from_static(v));
    }
    t
}

/// A response of `frames`; with `hold`, one that never ends and keeps the request body
/// (unread) for as long as it lives, as a stalled handler does.
fn response(frames: Vec<Frame<Bytes>>, hold: Option<Body>) -> Response<Body> {
    let frames = futures_util::stream::iter(frames.into_iter().map(Ok::<_, Status>));
    let body = match hold {
        Some(request) => Body::new(StreamBody::new(
            frames
                .chain(futures_util::stream::poll_fn(move |_| {
                    let _held = &request;
                    Poll::Pending
                }))
                .boxed(),
        )),
        None => Body::new(StreamBody::new(frames.boxed())),
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    resp
}

fn trailers_only(status: &Status) -> Response<Body> {
    let (parts, ()) = status.clone().into_http::<()>().into_parts();
    Response::from_parts(parts, Body::empty())
}

impl tower::Service<Request<Body>> for Stub {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let path = req.uri().path().to_string();
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(Seen {
                path: path.clone(),
                headers: req.headers().clone(),
                protocol: req.extensions().get::<Protocol>().copied(),
            });
        }
        let empty = || Frame::data(framing::encode(0, &[]));
        let resp = match path.rsplit('/').next().unwrap_or_default() {
            "UnaryCall" => response(vec![empty(), Frame::trailers(ok_trailers(Some(("x-stub", "t"))))], None),
            "StreamingOutputCall" => response(vec![empty(), empty(), Frame::trailers(ok_trailers(None))], None),
            "FullDuplexCall" | "StreamingInputCall" => response(Vec::new(), Some(req.into_body())),
            "UnimplementedCall" => trailers_only(&Status::not_found("stub: not found")),
            "Check" => {
                let serving = crate::pb::grpc::health::v1::HealthCheckResponse { status: 1 };
                let frame = Frame::data(framing::encode(0, &serving.encode_to_vec()));
                response(vec![frame, Frame::trailers(ok_trailers(None))], None)
            }
            _ => trailers_only(&Status::unimplemented("stub: no such method")),
        };
        std::future::ready(Ok(resp))
    }
}

/// What a body produced, polled to its end.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    pub data: Vec<u8>,
    pub trailers: Option<HeaderMap>,
    pub errors: Vec<String>,
}

/// Polls `body` to its end, checking at every step that `is_end_stream()` is true exactly
/// when the next poll returns `None`, and that `size_hint()` holds for the data still to
/// come. Returns what it produced.
pub(crate) async fn body_contract<B>(body: B) -> Drained
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut body = body;
    let mut hints = Vec::new();
    let mut out = Drained::default();
    loop {
        let ended = body.is_end_stream();
        hints.push((body.size_hint(), out.data.len()));
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => {
                assert!(ended, "the body ended while is_end_stream() said it was not over");
                break;
            }
            Some(frame) => {
                assert!(!ended, "is_end_stream() said the body was over, but it produced a frame");
                match frame.map(Frame::into_data) {
                    Ok(Ok(chunk)) => out.data.extend_from_slice(&chunk),
                    Ok(Err(frame)) => out.trailers = frame.into_trailers().ok(),
                    Err(e) => out.errors.push(format!("{e:?}")),
                }
            }
        }
    }
    for (hint, before) in hints {
        let rest = (out.data.len() - before) as u64;
        assert!(hint.lower() <= rest, "size_hint lower bound {} over the {rest} bytes that came", hint.lower());
        if let Some(upper) = hint.upper() {
            assert!(rest <= upper, "size_hint upper bound {upper} under the {rest} bytes that came");
        }
    }
    out
}

/// A body that yields `frames` in order and knows exactly when it is over (the contract
/// [`body_contract`] checks), for testing the bodies that wrap one.
pub(crate) struct Frames {
    frames: std::collections::VecDeque<Frame<Bytes>>,
}

impl Frames {
    pub(crate) fn new(frames: Vec<Frame<Bytes>>) -> Self {
        Self { frames: frames.into() }
    }
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Poll::Ready(self.frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.frames.iter().filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum())
    }
}

/// The bodies the stub and [`Frames`] make, checked against the contract themselves.
#[tokio::test]
async fn test_bodies_keep_the_contract() {
    let out =
        body_contract(Frames::new(vec![Frame::data(Bytes::from_static(b"ab")), Frame::trailers(ok_trailers(None))]))
            .await;
    assert_eq!(out.data, b"ab");
    assert!(out.trailers.is_some());
}
