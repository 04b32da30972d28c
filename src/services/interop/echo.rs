//! Echoes the interop metadata (`x-grpc-test-echo-initial` as a response header,
//! `x-grpc-test-echo-trailing-bin` as a trailer), around any gRPC service.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::Frame;
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// Echoes the interop metadata. tonic lets a handler set response headers but not
/// trailers on success, so the trailing echo is added to the response body's trailers here.
#[derive(Debug, Clone)]
pub struct EchoMetadata<S> {
    inner: S,
}

impl<S> EchoMetadata<S> {
    /// Wraps any `TestService` server (or any gRPC service) so that it echoes the interop
    /// metadata; lets a program host its own `TestService` implementation and still pass
    /// the interop metadata tests.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for EchoMetadata<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<Request<Body>> for EchoMetadata<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let initial = req.headers().get(ECHO_INITIAL).cloned();
        let trailing = req.headers().get(ECHO_TRAILING).cloned();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let Ok(mut resp) = fut.await;
            if let Some(v) = initial {
                resp.headers_mut().insert(HeaderName::from_static(ECHO_INITIAL), v);
            }
            let Some(trailing) = trailing else { return Ok(resp) };
            if resp.headers().contains_key("grpc-status") {
                // Trailers-only response: the headers are the trailers.
                resp.headers_mut().insert(HeaderName::from_static(ECHO_TRAILING), trailing);
                return Ok(resp);
            }
            Ok(resp.map(|body| Body::new(AddTrailer { inner: body, value: Some(trailing) })))
        })
    }
}

pin_project! {
    struct AddTrailer {
        #[pin]
        inner: Body,
        value: Option<HeaderValue>,
    }
}

impl http_body::Body for AddTrailer {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        match futures_util::ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => Poll::Ready(Some(Ok(match frame.into_trailers() {
                Ok(mut trailers) => {
                    if let Some(v) = this.value.take() {
                        trailers.insert(HeaderName::from_static(ECHO_TRAILING), v);
                    }
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            }))),
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(this.value.take().map(|v| {
                let mut trailers = HeaderMap::new();
                trailers.insert(HeaderName::from_static(ECHO_TRAILING), v);
                Ok(Frame::trailers(trailers))
            })),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.value.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
