//! The panic guard against services that panic on purpose, in each of the three places.

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use tower::{Service as _, ServiceExt as _};

use super::*;
use crate::testing::body_contract;

/// Where the stub panics: in `poll_ready`, in `call`, in its future, or in its body's
/// second poll.
#[derive(Clone, Copy)]
enum Where {
    Ready,
    Call,
    Future,
    Body,
    Nowhere,
}

/// One message, then (for [`Where::Body`]) a panic, or the OK trailers.
struct Stream {
    polls: u32,
    panic: bool,
}

impl http_body::Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polls += 1;
        Poll::Ready(match self.polls {
            1 => Some(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0")))),
            2 if self.panic => panic!("the stream broke"),
            2 => {
                let mut t = http::HeaderMap::new();
                t.insert("grpc-status", http::HeaderValue::from_static("0"));
                Some(Ok(Frame::trailers(t)))
            }
            _ => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.polls >= 2
    }
}

#[derive(Clone)]
struct Panicky(Where);

impl tower::Service<Request<()>> for Panicky {
    type Response = Response<Stream>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Stream>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if matches!(self.0, Where::Ready) {
            panic!("readiness broke");
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        let at = self.0;
        // Never reached after `poll_ready` panicked; if it were, the call would pass (OK).
        if matches!(at, Where::Call) {
            panic!("call broke");
        }
        Box::pin(async move {
            tokio::task::yield_now().await;
            if matches!(at, Where::Future) {
                panic!("handler broke: {}", 42);
            }
            Ok(Response::new(Stream { polls: 0, panic: matches!(at, Where::Body) }))
        })
    }
}

fn request() -> Request<()> {
    Request::post("/pkg.Svc/Method?secret=1").body(()).unwrap()
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs one call through the guard; returns the response's status header, what the body
/// produced (checked against the body contract), and the log.
async fn run(at: Where) -> (Option<String>, crate::testing::Drained, String) {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let mut service = CatchPanic::new(Panicky(at));
    let resp = service.ready().await.unwrap().call(request()).await.unwrap();
    let head = resp.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_string());
    let drained = body_contract(resp.into_body()).await;
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    (head, drained, log)
}

fn trailer_status(drained: &crate::testing::Drained) -> Option<&str> {
    drained.trailers.as_ref()?.get("grpc-status")?.to_str().ok()
}

#[tokio::test]
async fn a_panic_in_call_or_future_is_a_trailers_only_internal() {
    for at in [Where::Call, Where::Future] {
        let (head, drained, log) = run(at).await;
        assert_eq!(head.as_deref(), Some("13"), "trailers-only INTERNAL");
        assert!(drained.data.is_empty() && drained.trailers.is_none(), "{drained:?}");
        assert_eq!(log.matches("a service panicked").count(), 1, "logged once: {log}");
        assert!(log.contains("/pkg.Svc/Method") && !log.contains("secret"), "the path, not the query: {log}");
        assert!(log.contains("broke") && log.contains("panic_tests.rs"), "message and location: {log}");
    }
}

/// A panic in `poll_ready` (a buffer's worker polls there) makes the guard ready, and the
/// call that follows is `INTERNAL` without reaching the service; so is the next one.
#[tokio::test]
async fn a_panic_in_poll_ready_is_internal_for_the_call() {
    for _ in 0..2 {
        let (head, drained, log) = run(Where::Ready).await;
        assert_eq!(head.as_deref(), Some("13"), "trailers-only INTERNAL");
        assert!(drained.data.is_empty() && drained.trailers.is_none(), "{drained:?}");
        assert_eq!(log.matches("a service panicked").count(), 1, "logged once: {log}");
        assert!(log.contains("readiness broke") && log.contains("poll_ready"), "{log}");
    }
}

#[tokio::test]
async fn a_panic_in_the_body_ends_it_with_internal_trailers() {
    let (head, drained, log) = run(Where::Body).await;
    assert_eq!(head, None, "the headers went out before the panic");
    assert_eq!(drained.data, b"\0\0\0\0\0", "the message before the panic is kept");
    assert_eq!(trailer_status(&drained), Some("13"));
    let message = drained.trailers.as_ref().and_then(|t| t.get("grpc-message")).unwrap().to_str().unwrap();
    assert!(message.contains("panicked"), "{message}");
    assert_eq!(log.matches("a service panicked").count(), 1, "logged once: {log}");
    assert!(log.contains("the stream broke") && log.contains("response body"), "{log}");
}

#[tokio::test]
async fn calls_that_do_not_panic_pass_untouched() {
    let (head, drained, log) = run(Where::Nowhere).await;
    assert_eq!(head, None);
    assert_eq!(trailer_status(&drained), Some("0"));
    assert!(log.is_empty(), "{log}");
}

#[test]
fn panics_outside_the_guard_still_reach_the_previous_hook() {
    install_hook();
    assert!(!GUARDED.with(Cell::get));
    // A guarded panic leaves the flag as it was, and records where it happened.
    let caught = guarded(|| panic!("inside"));
    assert!(caught.is_err());
    assert!(!GUARDED.with(Cell::get), "the guard is left");
    assert!(LOCATION.with(|l| l.borrow_mut().take()).is_some_and(|at| at.contains("panic_tests.rs")));
}
