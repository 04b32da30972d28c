//! Assembling the one service stack every protocol ends in:
//!
//! ```text
//! Drain ─► Deadline ─► MessageLimit ─► Recover ─► [CatchPanic ─► shared layers ─►] [Buffer ─►] CatchPanic ─► [your layers ─►] HideProtocol ─► your service
//! ```
//!
//! - `Drain` ([`crate::middleware::shutdown`]) ends streams in progress with `UNAVAILABLE` when
//!   the gateway shuts down, for every protocol at once.
//! - [`CatchPanic`] turns a panic in the caller's service or layers (in `call`, in the
//!   response future, in the response body) into `INTERNAL` for that call only. It sits
//!   right around the caller's code, inside the buffer of a layered stack: a layer that
//!   panicked in the buffer's worker task would otherwise end the worker, and every later
//!   call with it.
//! - [`Recover`] turns every error of the caller's service and layers (anything
//!   `Into<BoxError>`: a `tonic::transport::Error` from a `Channel`, tower's `Overloaded` or
//!   `Elapsed`) into a gRPC status, once, so everything above it, and every adapter, deals
//!   in statuses only.
//! - Layers added with [`crate::GatewayBuilder::layer`] need not be `Clone` (tower's
//!   `RateLimit` is not): the gateway clones its stack for every request, so a layered stack
//!   is put behind one `tower::buffer::Buffer`, which is. A stack without layers is not
//!   buffered: the default path pays nothing for a feature it does not use. The buffer costs
//!   a channel hop per call, and it is what makes a rate limit *one* limit for the whole
//!   gateway rather than one per connection or per clone.
//! - Layers added with [`crate::GatewayBuilder::shared_layer`] are `Clone` and share their
//!   state between clones, so they go on the stack as it is, outside the buffer if there is
//!   one, with a `CatchPanic` of their own; a stack with only shared layers has no buffer.
//! - [`HideProtocol`] takes the gateway's protocol marker out of the request, so layers see
//!   it and the service does not. Without layers nobody could read the marker, so the gateway
//!   sets none (an extension costs two allocations per call) and there is nothing to hide.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::body::Body;
use tower::buffer::Buffer;
use tower::layer::util::{Identity, Stack};
use tower::util::{BoxCloneSyncService, BoxService};
use tower::{BoxError, Layer, Service, ServiceExt as _};

use crate::config::Config;
use crate::middleware::deadline::DeadlineLayer;
use crate::middleware::limit::MessageLimitLayer;
use crate::middleware::panic::{CatchPanic, CatchPanicFuture, PanicGuard};
use crate::middleware::shutdown::{DrainLayer, Shutdown};
use crate::protocol::Protocol;
use crate::transcode::{GrpcStack, SharedMethods};

/// How the layers given to [`crate::GatewayBuilder::layer`] are put on a service: implemented
/// for tower's [`Identity`] (no layers: the service as it is) and [`Stack`] (layers: behind a
/// buffer). Not meant to be implemented elsewhere.
pub trait StackLayers<S>: sealed::Sealed {
    /// Whether there are layers, which the gateway then marks requests for.
    #[doc(hidden)]
    const LAYERED: bool;

    /// What the layers make of the service: `Clone`, so that the shared layers (and the
    /// gateway's own) can go on it.
    #[doc(hidden)]
    type Service: Service<Request<Body>, Response = Response<Self::Body>, Error = Self::Error, Future = Self::Future>
        + Clone
        + Send
        + Sync
        + 'static;
    #[doc(hidden)]
    type Body: http_body::Body<Data = Bytes, Error = Self::BodyError> + Send + 'static;
    #[doc(hidden)]
    type BodyError: Into<BoxError>;
    #[doc(hidden)]
    type Error: Into<BoxError>;
    #[doc(hidden)]
    type Future: Future<Output = Result<Response<Self::Body>, Self::Error>> + Send + 'static;

    /// The service with the layers on (and the protocol marker hidden from it).
    #[doc(hidden)]
    fn assemble(self, service: S, buffer: usize) -> Self::Service;
}

/// How the layers given to [`crate::GatewayBuilder::shared_layer`] are put on what
/// [`StackLayers`] made, with the gateway's own layers on top: implemented for [`Identity`]
/// and [`Stack`]. Not meant to be implemented elsewhere.
pub trait SharedLayers<T>: sealed::Sealed {
    /// Whether there are layers, which the gateway then marks requests for.
    #[doc(hidden)]
    const LAYERED: bool;

    /// The whole stack.
    #[doc(hidden)]
    fn finish(self, inner: T, config: &Config, methods: &SharedMethods, shutdown: &Shutdown) -> GrpcStack;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for tower::layer::util::Identity {}
    impl<I, O> Sealed for tower::layer::util::Stack<I, O> {}
}

impl<S, B> StackLayers<S> for Identity
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    const LAYERED: bool = false;
    type Service = CatchPanic<HideProtocol<S>>;
    type Body = PanicGuard<B>;
    type BodyError = B::Error;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future>;

    fn assemble(self, service: S, _buffer: usize) -> Self::Service {
        // Without any layers the gateway sets no marker, and hiding it costs one branch.
        CatchPanic::new(HideProtocol(service))
    }
}

/// The response future of a layered stack's buffer.
type BufferFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

impl<S, I, O, B> StackLayers<S> for Stack<I, O>
where
    Stack<I, O>: Layer<HideProtocol<S>>,
    <Stack<I, O> as Layer<HideProtocol<S>>>::Service: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    <<Stack<I, O> as Layer<HideProtocol<S>>>::Service as Service<Request<Body>>>::Error: Into<BoxError>,
    <<Stack<I, O> as Layer<HideProtocol<S>>>::Service as Service<Request<Body>>>::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    const LAYERED: bool = true;
    type Service = Buffer<Request<Body>, BufferFuture>;
    type Body = Body;
    type BodyError = tonic::Status;
    type Error = BoxError;
    type Future = <Self::Service as Service<Request<Body>>>::Future;

    fn assemble(self, service: S, buffer: usize) -> Self::Service {
        let layered = CatchPanic::new(self.layer(HideProtocol(service)))
            .map_response(|resp| resp.map(Body::new))
            .map_err(Into::into);
        // One buffer for the whole stack: its worker task owns the layered service (so it
        // need not be `Clone`), and every clone of the stack shares it.
        Buffer::new(BoxService::new(layered), buffer.max(1))
    }
}

impl<T, B> SharedLayers<T> for Identity
where
    T: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
    T::Error: Into<BoxError>,
    T::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    const LAYERED: bool = false;

    fn finish(self, inner: T, config: &Config, methods: &SharedMethods, shutdown: &Shutdown) -> GrpcStack {
        finish(Recover::new(inner), config, methods, shutdown)
    }
}

impl<T, I, O, B> SharedLayers<T> for Stack<I, O>
where
    Stack<I, O>: Layer<T>,
    <Stack<I, O> as Layer<T>>::Service: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
    <<Stack<I, O> as Layer<T>>::Service as Service<Request<Body>>>::Error: Into<BoxError>,
    <<Stack<I, O> as Layer<T>>::Service as Service<Request<Body>>>::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    const LAYERED: bool = true;

    fn finish(self, inner: T, config: &Config, methods: &SharedMethods, shutdown: &Shutdown) -> GrpcStack {
        // A guard of their own: the one below covers only what is under these layers.
        finish(Recover::new(CatchPanic::new(self.layer(inner))), config, methods, shutdown)
    }
}

/// The gateway's own layers on top, boxed once: a stack boxed twice costs two allocations
/// more on every call (one per clone, one per future).
fn finish<T>(bottom: T, config: &Config, methods: &SharedMethods, shutdown: &Shutdown) -> GrpcStack
where
    T: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
    T::Future: Send + 'static,
{
    let limited = MessageLimitLayer::new(config.max_message_bytes, methods.clone()).layer(bottom);
    let deadline = DeadlineLayer::new(config.max_call_timeout).layer(limited);
    BoxCloneSyncService::new(DrainLayer::new(shutdown.clone()).layer(deadline))
}

/// Takes the protocol marker out of a request before it reaches the service.
#[derive(Debug, Clone)]
pub struct HideProtocol<S>(S);

impl<S, B> Service<Request<B>> for HideProtocol<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().remove::<Protocol>();
        self.0.call(req)
    }
}

/// Turns the errors of the service below into gRPC statuses (see [`status_from_error`]).
#[derive(Debug, Clone)]
pub(crate) struct Recover<S> {
    inner: S,
    /// The service failed for good (its `poll_ready` failed): every call gets this.
    broken: Option<Status>,
}

impl<S> Recover<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner, broken: None }
    }
}

impl<S, B> Service<Request<Body>> for Recover<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = RecoverFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.broken.is_none()
            && let Err(e) = ready!(self.inner.poll_ready(cx))
        {
            self.broken = Some(status_from_error(e.into()));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match &self.broken {
            Some(status) => RecoverFuture { inner: None, early: Some(status.clone()) },
            None => RecoverFuture { inner: Some(self.inner.call(req)), early: None },
        }
    }
}

pin_project! {
    /// The response future of [`Recover`].
    pub(crate) struct RecoverFuture<F> {
        #[pin]
        inner: Option<F>,
        early: Option<Status>,
    }
}

impl<F, B, E> Future for RecoverFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result =
            match this.inner.as_pin_mut() {
                Some(inner) => ready!(inner.poll(cx)).map_err(Into::into),
                None => Err(Box::new(this.early.take().unwrap_or_else(|| Status::internal("polled after completion")))
                    as BoxError),
            };
        Poll::Ready(Ok(match result {
            Ok(resp) => resp.map(Body::new),
            Err(e) => status_response(status_from_error(e)),
        }))
    }
}

fn status_response(status: Status) -> Response<Body> {
    let (parts, ()) = status.into_http::<()>().into_parts();
    Response::from_parts(parts, Body::empty())
}

/// The status for a service error. A status is passed on as it is; tonic's mapping covers
/// HTTP/2 and hyper errors and tower's `Overloaded` (`RESOURCE_EXHAUSTED`, as tonic's own
/// server answers it); a tower timeout is `DEADLINE_EXCEEDED`; a transport failure (a
/// `Channel` that cannot reach its server, a buffer whose worker is gone, an I/O error) is
/// `UNAVAILABLE`, which clients may retry. Of an error tonic's mapping does not know, what
/// it says is logged, not sent: it may name internal addresses.
pub(crate) fn status_from_error(error: BoxError) -> Status {
    let error = match Status::try_from_error(error) {
        Ok(status) => return status,
        Err(error) => error,
    };
    let code = crate::transcode::status::error_code(&*error);
    if code == tonic::Code::DeadlineExceeded {
        return Status::deadline_exceeded("the call took longer than the gateway allows");
    }
    let transport = code == tonic::Code::Unavailable;
    tracing::warn!(error = %error, transport, "the service failed a call");
    if transport {
        Status::unavailable("the service is unavailable")
    } else {
        Status::unknown("the service failed the call")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_statuses() {
        let not_found: BoxError = Box::new(Status::not_found("gone"));
        assert_eq!(status_from_error(not_found).code(), tonic::Code::NotFound);
        let io: BoxError = Box::new(std::io::Error::other("connection refused"));
        let status = status_from_error(io);
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(!status.message().contains("refused"), "the cause is logged, not sent");
        let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
        assert_eq!(status_from_error(shed).code(), tonic::Code::ResourceExhausted);
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(status_from_error(elapsed).code(), tonic::Code::DeadlineExceeded);
        let other: BoxError = "something odd".into();
        assert_eq!(status_from_error(other).code(), tonic::Code::Unknown);
        // What a layer above `Recover` records is what `Recover` answers.
        let cases: [(BoxError, tonic::Code); 4] = [
            (Box::new(tower::load_shed::error::Overloaded::new()), tonic::Code::ResourceExhausted),
            (Box::new(tower::timeout::error::Elapsed::new()), tonic::Code::DeadlineExceeded),
            (Box::new(std::io::Error::other("refused")), tonic::Code::Unavailable),
            (Box::new(Status::not_found("gone")), tonic::Code::NotFound),
        ];
        for (error, code) in cases {
            assert_eq!(crate::transcode::status::error_code(&*error), code, "{error}");
        }
    }
}
