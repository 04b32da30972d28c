use std::convert::Infallible;

use http::HeaderValue;
use http_body::Body as _;
use http_body_util::StreamBody;

use super::*;
use crate::testing::{Frames, body_contract};

fn trailers(status: &'static str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static(status));
    t
}

fn response(inner: Body, shutdown: &Shutdown) -> DrainResponse {
    DrainResponse { inner: Some(inner), watch: shutdown.watch(), since_drain: None, settle: None }
}

/// A body that yields one data frame every time it is polled, forever.
fn endless() -> Body {
    Body::new(StreamBody::new(futures_util::stream::repeat_with(|| {
        Ok::<_, Status>(Frame::data(Bytes::from_static(b"m")))
    })))
}

/// A body that waits forever.
fn waiting() -> Body {
    Body::new(StreamBody::new(futures_util::stream::pending::<Result<Frame<Bytes>, Status>>()))
}

fn status_of(t: Option<HeaderMap>) -> Option<HeaderValue> {
    t.and_then(|t| t.get("grpc-status").cloned())
}

#[tokio::test]
async fn a_unary_answer_ends_as_it_would_have() {
    let shutdown = Shutdown::default();
    shutdown.begin();
    let frames = Frames::new(vec![Frame::data(Bytes::from_static(b"abc")), Frame::trailers(trailers("0"))]);
    let out = body_contract(response(Body::new(frames), &shutdown)).await;
    assert_eq!(out.data, b"abc");
    assert_eq!(status_of(out.trailers), Some(HeaderValue::from_static("0")));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_stream_ends_unavailable_when_the_drain_begins() {
    let shutdown = Shutdown::default();
    let mut body = response(waiting(), &shutdown);
    let first = futures_util::FutureExt::now_or_never(std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)));
    assert!(first.is_none(), "before the drain the stream waits");
    assert_eq!(shutdown.registered(), 1, "registered once it waited");
    let begin = shutdown.clone();
    tokio::spawn(async move { begin.begin() });
    let out = body_contract(body).await;
    assert_eq!(status_of(out.trailers), Some(HeaderValue::from(tonic::Code::Unavailable as i32)));
    assert!(shutdown.registered() == 0, "the body's registration is gone with it");
}

#[tokio::test]
async fn a_busy_stream_delivers_the_message_in_flight_then_ends() {
    let shutdown = Shutdown::default();
    let mut body = response(endless(), &shutdown);
    for _ in 0..3 {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(frame.is_some_and(|f| f.is_ok_and(|f| f.is_data())));
    }
    shutdown.begin();
    let out = body_contract(body).await;
    assert_eq!(out.data, b"m", "one message after the drain began");
    assert_eq!(status_of(out.trailers), Some(HeaderValue::from(tonic::Code::Unavailable as i32)));
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_its_client_fails_unavailable() {
    let shutdown = Shutdown::default();
    let mut body = DrainRequest::new(waiting(), shutdown.watch());
    let first = futures_util::FutureExt::now_or_never(std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)));
    assert!(first.is_none());
    shutdown.begin();
    let out = body_contract(body).await;
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(out.errors[0].contains("Unavailable"), "{:?}", out.errors);
}

#[tokio::test]
async fn a_complete_request_is_untouched() {
    let shutdown = Shutdown::default();
    shutdown.begin();
    let frames = Frames::new(vec![Frame::data(Bytes::from_static(b"req"))]);
    let out = body_contract(DrainRequest::new(Body::new(frames), shutdown.watch())).await;
    assert_eq!(out.data, b"req");
    assert!(out.errors.is_empty());
}

#[tokio::test]
async fn the_layer_leaves_trailers_only_answers_and_other_content_alone() {
    use tower::{Layer as _, ServiceExt as _};
    let shutdown = Shutdown::default();
    let svc = tower::service_fn(|req: Request<Body>| async move {
        let mut resp = Response::new(Body::empty());
        if req.uri().path() == "/grpc" {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        }
        Ok::<_, Infallible>(resp)
    });
    let svc = DrainLayer::new(shutdown.clone()).layer(svc);
    for path in ["/grpc", "/other"] {
        let resp = svc.clone().oneshot(Request::builder().uri(path).body(Body::empty()).unwrap()).await.unwrap();
        assert!(http_body::Body::is_end_stream(resp.body()), "{path}: still over at once");
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_in_the_middle_of_its_message_is_waited_for() {
    let shutdown = Shutdown::default();
    // Half a message (a header announcing 4 bytes, and 2 of them), then the client is slow.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Status>>(4);
    tx.send(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x04ab")))).await.unwrap();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut body = DrainRequest::new(Body::new(StreamBody::new(stream)), shutdown.watch());
    let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
    assert!(first.is_some_and(|f| f.is_ok()));
    shutdown.begin();
    let rest = tokio::spawn(async move {
        tokio::time::sleep(SETTLE * 10).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"cd")))).await.unwrap();
        tx
    });
    let out = body_contract(body).await;
    assert_eq!(out.data, b"cd", "the rest of the message arrived, long after the settle time");
    assert!(out.errors.iter().any(|e| e.contains("Unavailable")), "then, between messages: {:?}", out.errors);
    drop(rest.await);
}
