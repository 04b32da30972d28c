//! Graceful shutdown on the service stack: when the gateway starts draining, every call that
//! is a stream in progress ends with `UNAVAILABLE`, while unary calls finish.
//!
//! The listener starts the drain ([`Shutdown::begin`]); [`DrainLayer`], the outermost layer of
//! the stack, then ends the calls that would otherwise keep the process up for the whole
//! grace period. Every adapter renders the status in its protocol's own form, as it renders
//! any other: native gRPC and gRPC-Web trailers, the Connect end-of-stream message or error,
//! a WebSocket `status` frame.
//!
//! What counts as a stream in progress is read from the bodies, not from the method (the
//! stack also fronts services whose methods it does not know):
//!
//! - a **response body** that waits for its service — a server stream between messages, a
//!   watch — ends with `UNAVAILABLE` trailers. One message already on its way when the drain
//!   begins is still delivered; a body whose trailers are ready (every unary call: its one
//!   message, then its status) ends as it would have. Since a unary answer relayed from
//!   another server may wait a moment for its trailers, a waiting body is cut only after
//!   [`SETTLE`];
//! - a **request body** that waits for its client between two messages for longer than
//!   [`SETTLE`] (a client or bidi stream) fails with `UNAVAILABLE`, which the service's handler
//!   sees as the error of its next read and answers with. A message the client is still
//!   sending (a large unary request on a slow link) is waited for.
//!
//! A unary call's handler, which has its whole request and has not answered yet, is left to
//! finish within the grace period.
//!
//! Waking every waiting body at once is what [`Shutdown`] is for: a body registers its waker
//! once, the first time it waits (a lock), and from then on only updates it (an atomic); a
//! body that never waits — every unary response — never registers. tokio's `Notify` would
//! take a lock on every poll of every waiting stream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tonic::Status;
use tonic::body::Body;

pub(crate) use crate::drain::Shutdown;
use crate::drain::{DrainWatch, drained_status};
use crate::transcode::framing::Envelopes;

/// How long a waiting body is given, once the drain has begun, before it is cut: a unary
/// answer's trailers relayed from another server arrive within it; a stream waiting for its
/// next message or for its client is ended after it.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);

/// Adds [`Drain`] to a service.
#[derive(Debug, Clone)]
pub(crate) struct DrainLayer {
    shutdown: Shutdown,
}

impl DrainLayer {
    pub(crate) fn new(shutdown: Shutdown) -> Self {
        Self { shutdown }
    }
}

impl<S> tower::Layer<S> for DrainLayer {
    type Service = Drain<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Drain { inner, shutdown: self.shutdown.clone() }
    }
}

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct Drain<S> {
    inner: S,
    shutdown: Shutdown,
}

impl<S> tower::Service<Request<Body>> for Drain<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = DrainFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // A request already complete has nothing to wait for.
        let req = if http_body::Body::is_end_stream(req.body()) {
            req
        } else {
            let watch = self.shutdown.watch();
            req.map(|inner| Body::new(DrainRequest::new(inner, watch)))
        };
        DrainFuture { inner: self.inner.call(req), shutdown: Some(self.shutdown.clone()) }
    }
}

pin_project! {
    /// The response future of [`Drain`]: its body is watched once it arrives.
    pub(crate) struct DrainFuture<F> {
        #[pin]
        inner: F,
        shutdown: Option<Shutdown>,
    }
}

impl<F, E> Future for DrainFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.inner.poll(cx))?;
        let Some(shutdown) = this.shutdown.take() else { return Poll::Ready(Ok(resp)) };
        // A trailers-only answer is over already; anything but gRPC is left as it is.
        let grpc = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
        if !grpc || http_body::Body::is_end_stream(resp.body()) {
            return Poll::Ready(Ok(resp));
        }
        let watch = shutdown.watch();
        Poll::Ready(Ok(
            resp.map(|inner| Body::new(DrainResponse { inner: Some(inner), watch, since_drain: None, settle: None }))
        ))
    }
}

/// Polls `settle`, arming it at [`SETTLE`] from now on its first poll.
fn settled(settle: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    settle.get_or_insert_with(|| Box::pin(tokio::time::sleep(SETTLE))).as_mut().poll(cx).is_ready()
}

/// A request body that fails with `UNAVAILABLE` once the drain has begun and it has waited
/// for its client, between two messages, for [`SETTLE`].
struct DrainRequest {
    inner: Option<Body>,
    watch: DrainWatch,
    envelopes: Envelopes,
    settle: Option<Pin<Box<Sleep>>>,
}

impl DrainRequest {
    fn new(inner: Body, watch: DrainWatch) -> Self {
        Self { inner: Some(inner), watch, envelopes: Envelopes::new(), settle: None }
    }
}

impl http_body::Body for DrainRequest {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                this.envelopes.feed(data.map_or(&[][..], |d| &d[..]));
                this.settle = None;
            }
            return Poll::Ready(frame);
        }
        if this.watch.poll_draining(cx).is_pending()
            || !this.envelopes.between_messages()
            || !settled(&mut this.settle, cx)
        {
            return Poll::Pending;
        }
        this.inner = None;
        Poll::Ready(Some(Err(drained_status())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.as_ref().map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// A response body that ends with `UNAVAILABLE` trailers once the drain has begun (see the
/// [module docs](self)).
struct DrainResponse {
    inner: Option<Body>,
    watch: DrainWatch,
    /// Data frames relayed since the drain was first seen; `None` before.
    since_drain: Option<u32>,
    settle: Option<Pin<Box<Sleep>>>,
}

impl DrainResponse {
    fn cut(&mut self) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.inner = None;
        let mut trailers = HeaderMap::new();
        let _ = drained_status().add_header(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

impl http_body::Body for DrainResponse {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                if this.since_drain.is_none() && this.watch.is_draining() {
                    this.since_drain = Some(0);
                }
                match &mut this.since_drain {
                    // The message in flight when the drain began goes out; a second does not.
                    Some(n) if *n >= 1 => this.cut(),
                    Some(n) => {
                        *n += 1;
                        Poll::Ready(Some(Ok(frame)))
                    }
                    None => Poll::Ready(Some(Ok(frame))),
                }
            }
            Poll::Ready(other) => {
                // Trailers, an error or the end: the call ended by itself.
                if !matches!(other, Some(Ok(_))) {
                    this.inner = None;
                }
                Poll::Ready(other)
            }
            Poll::Pending => {
                if this.watch.poll_draining(cx).is_pending() {
                    return Poll::Pending;
                }
                this.since_drain.get_or_insert(0);
                if settled(&mut this.settle, cx) { this.cut() } else { Poll::Pending }
            }
        }
    }

    // Delegated, so that hyper decides END_STREAM exactly as it would without the wrapper.
    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.as_ref().map_or_else(
            || http_body::SizeHint::with_exact(0),
            |b| crate::middleware::deadline::upper_bound_only(b.size_hint()),
        )
    }
}

#[cfg(test)]
mod tests;
