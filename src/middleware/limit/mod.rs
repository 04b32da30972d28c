//! The message limit ([`crate::Config::max_message_bytes`]) for every protocol, enforced once
//! on the service stack, and the other rules every gRPC body's envelopes must keep.
//!
//! The limit is the size of a message decoded: its binary protobuf encoding, after
//! decompression, in both directions. The JSON adapters measure the messages they transcode
//! themselves, but native gRPC and gRPC-Web bodies reach the services untouched, and a
//! service's own limit (if it set one) is not the gateway's: tonic reports it as
//! `OUT_OF_RANGE`, where gRPC's `doc/statuscodes.md` says an oversized message is
//! `RESOURCE_EXHAUSTED`. This layer reads the 5-byte envelope headers as the bodies stream by,
//! without buffering payloads:
//!
//! - a message flagged compressed is streamed through an inflater that counts its output
//!   and keeps none of it ([`crate::transcode::compression::Meter`]), stopping at the limit;
//!   its bytes are held back until it has been measured whole (it is in memory already: the
//!   sender framed it), so that no byte of an oversized message is relayed. Its compressed
//!   length may exceed the limit slightly ([`crate::transcode::limits::compressed`]);
//! - a request message over the limit fails the request body with `RESOURCE_EXHAUSTED`,
//!   which the service sees as the error of its next read and answers with;
//! - a response message over the limit is not relayed: the response ends with
//!   `RESOURCE_EXHAUSTED` trailers instead, and the rest of the service's response is dropped;
//! - a request compressed in an encoding the gateway cannot read (so cannot measure) is
//!   answered `UNIMPLEMENTED` with the encodings it reads in `grpc-accept-encoding`, as
//!   gRPC's compression spec says; and the encodings a client accepts are narrowed to those,
//!   so that a service never compresses a response the gateway cannot measure;
//! - a message whose flags have bits set that gRPC reserves (anything but 0x01, compressed;
//!   a gRPC-Web trailer frame, 0x80, sent by a client, too) is refused with `INTERNAL`, the
//!   status of a malformed frame, in either direction, like one over the limit;
//! - a method of the method table that takes exactly one request message (unary and
//!   server-streaming) gets exactly one: zero or two fail the call with `UNIMPLEMENTED`
//!   before the handler runs (a request cardinality violation, in gRPC's status code table).
//!   Methods the table does not know (a proxied service's, say) are left to their server.

mod body;
mod scan;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::body::Body;

use self::body::{LimitedRequest, LimitedResponse};
use self::scan::{Direction, Scanner};
use crate::transcode::SharedMethods;
use crate::transcode::call::{GRPC_ACCEPT_ENCODING, GRPC_ENCODING};
use crate::transcode::compression::{self, Encoding};

/// Adds [`MessageLimit`] to a service.
#[derive(Debug, Clone)]
pub struct MessageLimitLayer {
    max: usize,
    methods: SharedMethods,
}

impl MessageLimitLayer {
    /// Refuses messages larger than `max` bytes, in both directions; `methods` says which
    /// methods take exactly one request message.
    pub fn new(max: usize, methods: SharedMethods) -> Self {
        Self { max, methods }
    }
}

impl<S> tower::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MessageLimit { inner, max: self.max, methods: self.methods.clone() }
    }
}

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub struct MessageLimit<S> {
    inner: S,
    max: usize,
    methods: SharedMethods,
}

impl<S> tower::Service<Request<Body>> for MessageLimit<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    // Not boxed: this layer sits on every call of every protocol, and the stack around it
    // is boxed once already.
    type Future = MessageLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let max = self.max;
        let encoding = Encoding::parse(req.headers().get(GRPC_ENCODING).map(HeaderValue::as_bytes));
        if encoding == Encoding::Unknown {
            return MessageLimitFuture { inner: None, early: Some(unreadable_encoding()), max };
        }
        narrow_accepted(req.headers_mut());
        let single = self.methods.load().get(req.uri().path()).is_some_and(|m| !m.kind().client_streams());
        let scanner = Scanner::new(max, Direction::Request, encoding);
        let req = req.map(|body| Body::new(LimitedRequest::new(body, scanner, single)));
        MessageLimitFuture { inner: Some(self.inner.call(req)), early: None, max }
    }
}

/// Leaves in `grpc-accept-encoding` only the encodings the gateway can read. The usual lists
/// (`identity,deflate,gzip`, `gzip`) pass untouched.
fn narrow_accepted(headers: &mut http::HeaderMap) {
    let Some(accept) = headers.get(GRPC_ACCEPT_ENCODING) else { return };
    if compression::all_readable(accept.as_bytes()) {
        return;
    }
    let kept = compression::readable_only(accept.as_bytes());
    match HeaderValue::from_bytes(&kept) {
        Ok(value) if !kept.is_empty() => {
            headers.insert(GRPC_ACCEPT_ENCODING, value);
        }
        _ => {
            headers.remove(GRPC_ACCEPT_ENCODING);
        }
    }
}

/// The answer to a request compressed in an encoding the gateway cannot read.
fn unreadable_encoding() -> Response<Body> {
    let status = Status::unimplemented(format!(
        "the request is compressed in an encoding the gateway does not read; it reads {}",
        compression::READABLE
    ));
    let (mut parts, ()) = status.into_http::<()>().into_parts();
    parts.headers.insert(GRPC_ACCEPT_ENCODING, HeaderValue::from_static(compression::READABLE));
    Response::from_parts(parts, Body::empty())
}

pin_project! {
    /// The response of a [`MessageLimit`] call, its body limited once it arrives.
    pub struct MessageLimitFuture<F> {
        #[pin]
        inner: Option<F>,
        early: Option<Response<Body>>,
        max: usize,
    }
}

impl<F, E> Future for MessageLimitFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let early = this.early.take().unwrap_or_else(|| {
                let (parts, ()) = Status::internal("polled after completion").into_http::<()>().into_parts();
                Response::from_parts(parts, Body::empty())
            });
            return Poll::Ready(Ok(early));
        };
        let resp = std::task::ready!(inner.poll(cx))?;
        // Only gRPC bodies are made of envelopes; leave anything else (an HTTP error page
        // from a misconfigured service, say) as it is.
        let is_grpc = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
        if !is_grpc {
            return Poll::Ready(Ok(resp));
        }
        let encoding = Encoding::parse(resp.headers().get(GRPC_ENCODING).map(HeaderValue::as_bytes));
        let scanner = Scanner::new(*this.max, Direction::Response, encoding);
        Poll::Ready(Ok(resp.map(|body| Body::new(LimitedResponse::new(body, scanner)))))
    }
}

#[cfg(test)]
mod tests;
