//! The Connect protocol: JSON (and binary protobuf) over plain HTTP, so that `curl`,
//! Connect clients and `buf curl` can call any method.
//!
//! - unary: `POST /pkg.Svc/Method` with `application/json` or `application/proto`; errors
//!   as `{"code": "not_found", "message": ..., "details": [...]}` with the mapped HTTP status;
//!   trailers as `trailer-*` headers;
//! - unary over `GET` for methods marked `NO_SIDE_EFFECTS`
//!   (`?encoding=json&message=...[&base64=1][&compression=gzip]`);
//! - streaming: `application/connect+json` / `+proto` envelopes, ending with the
//!   end-of-stream envelope `{"error": ..., "metadata": ...}`; always HTTP 200.
//!
//! Every call goes to the service stack in-process as native gRPC (see
//! [`crate::transcode::Invoker`]); `Connect-Timeout-Ms` becomes `grpc-timeout`.

mod common;
mod stream;
mod unary;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::Status;

use self::common::{Adapter, Rejection};
use super::{Encoding, Protocol, classify};
use crate::transcode::{GrpcService, Idempotency, Invoker, RpcKind};

/// The Connect adapter: serves the requests [`classify`] calls Connect (unary, streaming,
/// `GET`), every call going to `S` in-process.
pub(crate) struct ConnectService<S> {
    adapter: Arc<Adapter<S>>,
}

impl<S> Clone for ConnectService<S> {
    fn clone(&self) -> Self {
        Self { adapter: self.adapter.clone() }
    }
}

impl<S> ConnectService<S> {
    /// The adapter for `invoker`, refusing messages over `max_message_bytes` either way.
    pub(crate) fn new(invoker: Invoker<S>, max_message_bytes: usize) -> Self {
        Self { adapter: Arc::new(Adapter { invoker, max_message_bytes }) }
    }
}

impl<S: GrpcService> ConnectService<S> {
    /// Serves a request already classified as `protocol` (the gateway's path: no second look).
    pub(crate) fn serve(&self, req: Request<Body>, protocol: Protocol) -> ConnectFuture {
        let adapter = self.adapter.clone();
        Box::pin(async move {
            match protocol {
                Protocol::ConnectUnary(encoding) => unary::unary(&adapter, req, encoding).await,
                Protocol::ConnectStream(encoding) => stream::stream(&adapter, req, encoding).await,
                Protocol::ConnectGet => unary::get(&adapter, req).await,
                _ => {
                    let status = Status::unimplemented("not a Connect request");
                    let mut resp = Rejection::Status(status).into_unary_response(Encoding::Json);
                    *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
                    resp
                }
            }
        })
    }
}

impl<S> ConnectService<S> {
    /// The answer to a request to an RPC path whose HTTP method no RPC protocol uses there
    /// ([`Protocol::MethodNotAllowed`]): 405 with `allow`, as the Connect implementations
    /// answer it: `POST`, and `GET` too for a unary method marked `NO_SIDE_EFFECTS` (Connect's
    /// `GET` form). Sent before the body is read; the listener drains it or closes.
    pub(crate) fn method_not_allowed(&self, method: &Method, path: &str) -> Response<Body> {
        let get = self
            .adapter
            .invoker
            .resolve(path)
            .is_ok_and(|m| m.kind() == RpcKind::Unary && m.idempotency() == Idempotency::NoSideEffects);
        let (allow, text) = if get {
            ("GET, POST", "POST, or GET with ?encoding=…&message=… (this method has no side effects)")
        } else {
            ("POST", "POST")
        };
        let mut resp = Response::new(Body::from(format!("an RPC is not called with {method}: use {text}\n")));
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        let headers = resp.headers_mut();
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        resp
    }
}

/// A response on the way. Boxed: the adapter's futures are large, and the gateway's future,
/// moved on every request whatever its protocol, stays small.
pub(crate) type ConnectFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

impl<S: GrpcService> tower::Service<Request<Body>> for ConnectService<S> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = futures_util::future::Map<ConnectFuture, fn(Response<Body>) -> Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        use futures_util::FutureExt as _;
        // The gateway's marker when there is one, or a look of our own.
        let protocol = req.extensions().get::<Protocol>().copied().unwrap_or_else(|| classify(&req));
        self.serve(req, protocol).map(Ok)
    }
}

#[cfg(test)]
mod tests;
