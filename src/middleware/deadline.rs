//! Deadlines for every protocol, enforced once on the service stack.
//!
//! Routes do not enforce `grpc-timeout` (tonic's own `GrpcTimeout` layer is private to
//! its transport server), and a deadline must also cover a streaming response body, not
//! just the time to its headers. Every adapter turns its protocol's timeout
//! (`Connect-Timeout-Ms`, the WebSocket `timeout_ms`) into `grpc-timeout`, so this one
//! layer gives all of them the same semantics: when the deadline passes, the handler is
//! dropped (cancelled) and the call ends with `DEADLINE_EXCEEDED`; a deadline that has passed
//! already when the call arrives (`grpc-timeout: 0n`, or one of a few nanoseconds) ends it
//! without running the handler.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tonic::body::Body;

use crate::transcode::timeout::{GRPC_TIMEOUT, parse_grpc_timeout};

/// Adds [`Deadline`] to a service.
#[derive(Debug, Clone, Default)]
pub struct DeadlineLayer {
    max: Option<Duration>,
}

impl DeadlineLayer {
    /// Enforces the caller's `grpc-timeout`; with `max`, also caps it (and applies `max`
    /// to calls that set none).
    pub fn new(max: Option<Duration>) -> Self {
        Self { max }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner, max: self.max }
    }
}

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    max: Option<Duration>,
}

/// The call's deadline: the client's `grpc-timeout`, capped by `max`. A malformed header
/// is refused rather than ignored (the client expects a deadline) with `INTERNAL`, as
/// grpc-go answers it: gRPC's status code table reserves `INVALID_ARGUMENT` for
/// applications, never the library.
fn timeout_of(headers: &HeaderMap, max: Option<Duration>) -> Result<Option<Duration>, tonic::Status> {
    let asked = match headers.get(GRPC_TIMEOUT) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(parse_grpc_timeout).ok_or_else(|| {
            tonic::Status::internal(format!(
                "the grpc-timeout header \"{}\" is malformed: it must be 1 to 8 digits and a unit \
                         (H, M, S, m, u or n)",
                String::from_utf8_lossy(v.as_bytes())
            ))
        })?),
    };
    Ok(match (asked, max) {
        (Some(a), Some(m)) => Some(a.min(m)),
        (a, m) => a.or(m),
    })
}

impl<S, B> tower::Service<Request<B>> for Deadline<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match timeout_of(req.headers(), self.max) {
            Err(status) => DeadlineFuture { inner: None, sleep: None, early: Some(status), checked: true },
            // A deadline of zero (`grpc-timeout: 0n`, `Connect-Timeout-Ms: 0`) has passed
            // already: the call ends without reaching the service, as gRPC ends a call whose
            // deadline passed before it started.
            Ok(Some(t)) if t.is_zero() => {
                DeadlineFuture { inner: None, sleep: None, early: Some(deadline_status()), checked: true }
            }
            Ok(timeout) => {
                let sleep = timeout.map(|t| Box::pin(tokio::time::sleep_until(Instant::now() + t)));
                let checked = sleep.is_none();
                DeadlineFuture { inner: Some(self.inner.call(req)), sleep, early: None, checked }
            }
        }
    }
}

fn status_response(status: &tonic::Status) -> Response<Body> {
    let (parts, ()) = status.clone().into_http::<()>().into_parts();
    Response::from_parts(parts, Body::empty())
}

fn deadline_status() -> tonic::Status {
    tonic::Status::deadline_exceeded("deadline exceeded")
}

pin_project! {
    /// The response future of [`Deadline`].
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: Option<F>,
        sleep: Option<Pin<Box<Sleep>>>,
        early: Option<tonic::Status>,
        // Whether the deadline was compared with the clock before the service's future was
        // first polled: tokio's timer counts in milliseconds, so a deadline a few
        // nanoseconds away would not fire before a quick handler had answered.
        checked: bool,
    }
}

impl<F, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(status) = this.early.take() {
            return Poll::Ready(Ok(status_response(&status)));
        }
        if !*this.checked {
            *this.checked = true;
            if let Some(sleep) = this.sleep.as_ref()
                && Instant::now() >= sleep.deadline()
            {
                // Passed before the handler ran: it never runs.
                this.inner.set(None);
                *this.sleep = None;
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Ok(status_response(&deadline_status())));
        };
        if let Poll::Ready(res) = inner.poll(cx) {
            let sleep = this.sleep.take();
            return Poll::Ready(res.map(|resp| match sleep {
                None => resp,
                Some(sleep) => resp.map(|body| Body::new(DeadlineBody { inner: body, sleep: Some(sleep) })),
            }));
        }
        if let Some(sleep) = this.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            // Drop the handler's future: that is what cancels it.
            this.inner.set(None);
            return Poll::Ready(Ok(status_response(&deadline_status())));
        }
        Poll::Pending
    }
}

pin_project! {
    /// A response body that ends with `DEADLINE_EXCEEDED` trailers when the deadline passes.
    struct DeadlineBody {
        #[pin]
        inner: Body,
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let Some(sleep) = this.sleep.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            if frame.as_ref().is_some_and(|f| f.as_ref().is_ok_and(Frame::is_trailers)) || frame.is_none() {
                *this.sleep = None;
            }
            return Poll::Ready(frame);
        }
        ready!(sleep.as_mut().poll(cx));
        *this.sleep = None;
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from(tonic::Code::DeadlineExceeded as i32));
        trailers.insert("grpc-message", HeaderValue::from_static("deadline%20exceeded"));
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    // hyper puts END_STREAM on the HEADERS frame only when the body says it is over: a
    // trailers-only error must not turn into HEADERS + an empty DATA frame with END_STREAM
    // (grpcio and grpc-js reject that), so both ends ask the inner body.
    fn is_end_stream(&self) -> bool {
        self.sleep.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        upper_bound_only(self.inner.size_hint())
    }
}

/// A body that may end before its inner body (cut short by a deadline or a limit) can
/// promise no more than the inner body's upper bound.
pub(crate) fn upper_bound_only(inner: http_body::SizeHint) -> http_body::SizeHint {
    let mut hint = http_body::SizeHint::new();
    if let Some(upper) = inner.upper() {
        hint.set_upper(upper);
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_with_max() {
        let mut h = HeaderMap::new();
        assert_eq!(timeout_of(&h, None).unwrap(), None);
        assert_eq!(timeout_of(&h, Some(Duration::from_secs(1))).unwrap(), Some(Duration::from_secs(1)));
        h.insert(GRPC_TIMEOUT, HeaderValue::from_static("5S"));
        assert_eq!(timeout_of(&h, Some(Duration::from_secs(1))).unwrap(), Some(Duration::from_secs(1)));
        h.insert(GRPC_TIMEOUT, HeaderValue::from_static("bogus"));
        assert!(timeout_of(&h, None).is_err());
    }

    #[tokio::test]
    async fn the_body_says_when_it_is_over() {
        use crate::testing::{Frames, body_contract};
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let frames = || Frames::new(vec![Frame::data(Bytes::from_static(b"abc")), Frame::trailers(trailers.clone())]);
        let far = || Some(Box::pin(tokio::time::sleep(Duration::from_secs(3600))));
        let out = body_contract(DeadlineBody { inner: Body::new(frames()), sleep: far() }).await;
        assert_eq!(out.data, b"abc");
        assert_eq!(out.trailers.map(|t| t["grpc-status"].clone()), Some(HeaderValue::from_static("0")));
        // An inner body that is over at once (a trailers-only error): over at once too.
        let out = body_contract(DeadlineBody { inner: Body::empty(), sleep: far() }).await;
        assert!(out.data.is_empty() && out.trailers.is_none());
        // The deadline passes while the inner body waits: DEADLINE_EXCEEDED trailers, then over.
        let never =
            http_body_util::StreamBody::new(futures_util::stream::pending::<Result<Frame<Bytes>, tonic::Status>>());
        let now = Some(Box::pin(tokio::time::sleep(Duration::ZERO)));
        let out = body_contract(DeadlineBody { inner: Body::new(never), sleep: now }).await;
        assert_eq!(out.trailers.map(|t| t["grpc-status"].clone()), Some(HeaderValue::from_static("4")));
    }
}
