//! Native gRPC and gRPC-Web: what the gateway adds in front of the stack (and of tonic-web).
//!
//! - Only `POST` is a gRPC call. Any other method on a gRPC content type is answered as
//!   grpc-go answers it: HTTP 405 (`Allow: POST`) with `INTERNAL` in a trailers-only
//!   response ([`method_not_allowed`]).
//! - The JSON codec (`application/grpc+json`, `application/grpc-web+json`,
//!   `application/grpc-web-text+json`): [`GrpcJson`] transcodes every message, envelope by
//!   envelope as the bodies stream, with the same method table and codecs as every JSON path,
//!   and sends binary protobuf to the stack. A method the table does not know is
//!   `UNIMPLEMENTED`. connect-node's gRPC-Web transport speaks it with
//!   `useBinaryFormat: false`; the text variant costs nothing more (tonic-web decodes the
//!   base64 first), so it is served too.
//! - gRPC-Web ([`GrpcWebAdapter`]) is tonic-web's, which knows its four content types only as
//!   exact strings: a content type written otherwise (in capitals, with parameters) is put in
//!   its canonical form first, so that it is not refused (HTTP/1.1) or taken for native gRPC
//!   (HTTP/2).

mod bodies;
mod text;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer as _, Service, ServiceExt as _};

use self::bodies::{JsonRequest, JsonResponse};
use self::text::TextRequest;
use crate::transcode::call::{GRPC_ACCEPT_ENCODING, GRPC_ENCODING};
use crate::transcode::compression::{self, Encoding};
use crate::transcode::{GrpcService, Invoker};

const GRPC_WEB: &str = "application/grpc-web";
const GRPC_WEB_PROTO: &str = "application/grpc-web+proto";
const GRPC_WEB_TEXT: &str = "application/grpc-web-text";
const GRPC_WEB_TEXT_PROTO: &str = "application/grpc-web-text+proto";

/// A trailers-only gRPC response carrying `status`.
fn trailers_only(status: Status, content_type: &'static str) -> Response<Body> {
    let (mut parts, ()) = status.into_http::<()>().into_parts();
    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Response::from_parts(parts, Body::empty())
}

/// The answer to a gRPC request whose method is not `POST`.
pub(crate) fn method_not_allowed(method: &Method) -> Response<Body> {
    let status = Status::internal(format!("a gRPC call is a POST request, not {method}"));
    let mut resp = trailers_only(status, "application/grpc");
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST"));
    resp
}

/// The JSON codec on native gRPC: a native gRPC request whose messages are canonical JSON
/// goes to the stack as binary protobuf, and the response comes back as JSON.
pub(crate) struct GrpcJson<S> {
    invoker: Invoker<S>,
    max_message_bytes: usize,
}

impl<S: Clone> Clone for GrpcJson<S> {
    fn clone(&self) -> Self {
        Self { invoker: self.invoker.clone(), max_message_bytes: self.max_message_bytes }
    }
}

impl<S> GrpcJson<S> {
    pub(crate) fn new(invoker: Invoker<S>, max_message_bytes: usize) -> Self {
        Self { invoker, max_message_bytes }
    }
}

/// A response on the way: boxed, as the adapter's future holds the stack's.
pub(crate) type GrpcFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<S: GrpcService> Service<Request<Body>> for GrpcJson<S> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = GrpcFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        const JSON: &str = "application/grpc+json";
        let method = match self.invoker.resolve(req.uri().path()) {
            Ok(m) => m.clone(),
            Err(status) => return Box::pin(std::future::ready(Ok(trailers_only(status, JSON)))),
        };
        let codec = match Encoding::parse(req.headers().get(GRPC_ENCODING).map(HeaderValue::as_bytes)) {
            Encoding::Identity => None,
            Encoding::Known(codec) => Some(codec),
            Encoding::Unknown => {
                let status = Status::unimplemented(format!(
                    "the request is compressed in an encoding the gateway does not read; it reads {}",
                    compression::READABLE
                ));
                let mut resp = trailers_only(status, JSON);
                resp.headers_mut().insert(GRPC_ACCEPT_ENCODING, HeaderValue::from_static(compression::READABLE));
                return Box::pin(std::future::ready(Ok(resp)));
            }
        };
        let max = self.max_message_bytes;
        let (mut parts, body) = req.into_parts();
        parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        // The messages go to the stack uncompressed.
        parts.headers.remove(GRPC_ENCODING);
        let body = Body::new(JsonRequest::new(body, method.clone(), codec, max));
        let call = self.invoker.forward(Request::from_parts(parts, body));
        Box::pin(async move {
            let Ok(resp) = call.await;
            let (mut parts, body) = resp.into_parts();
            let is_grpc =
                parts.headers.get(CONTENT_TYPE).is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
            if !is_grpc {
                return Ok(Response::from_parts(parts, body));
            }
            parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
            let codec = match Encoding::parse(parts.headers.get(GRPC_ENCODING).map(HeaderValue::as_bytes)) {
                Encoding::Known(codec) => Some(codec),
                _ => None,
            };
            Ok(Response::from_parts(parts, Body::new(JsonResponse::new(body, method, codec, max))))
        })
    }
}

/// gRPC-Web, binary and text, with the protobuf and JSON codecs: tonic-web's service on the
/// stack, and on the JSON codec.
pub(crate) struct GrpcWebAdapter<S> {
    proto: tonic_web::GrpcWebService<S>,
    json: tonic_web::GrpcWebService<GrpcJson<S>>,
}

impl<S: GrpcService> GrpcWebAdapter<S> {
    pub(crate) fn new(invoker: Invoker<S>, stack: S, max_message_bytes: usize) -> Self {
        Self {
            proto: tonic_web::GrpcWebLayer::new().layer(stack),
            json: tonic_web::GrpcWebLayer::new().layer(GrpcJson::new(invoker, max_message_bytes)),
        }
    }

    /// Serves a gRPC-Web request, with the JSON codec if `json`.
    ///
    /// A text request's base64 is decoded here ([`text`]), and tonic-web gets it as binary
    /// gRPC-Web; the response is text or binary as the client's `accept` asks, as tonic-web
    /// decides it.
    pub(crate) async fn serve(&self, mut req: Request<Body>, json: bool) -> Response<Body> {
        let headers = req.headers_mut();
        let text = is_text(headers.get(CONTENT_TYPE));
        if !json {
            if text {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(GRPC_WEB_PROTO));
                let Ok(resp) = self.proto.clone().oneshot(req.map(TextRequest::new)).await;
                return resp;
            }
            canonical_proto_content_type(headers);
            let Ok(resp) = self.proto.clone().oneshot(req).await;
            return resp;
        }
        // tonic-web decodes the framing, the JSON codec the messages.
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(GRPC_WEB));
        if is_text(headers.get(ACCEPT)) {
            headers.insert(ACCEPT, HeaderValue::from_static(GRPC_WEB_TEXT));
        }
        let json = self.json.clone();
        let Ok(mut resp) = if text { json.oneshot(req.map(TextRequest::new)).await } else { json.oneshot(req).await };
        // tonic-web names the codec `+proto`; the messages it framed are JSON.
        let framing = resp.headers().get(CONTENT_TYPE).map(|ct| is_text(Some(ct)));
        if let Some(text) = framing {
            let ct = if text { "application/grpc-web-text+json" } else { "application/grpc-web+json" };
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        resp
    }
}

impl<S: Clone> Clone for GrpcWebAdapter<S> {
    fn clone(&self) -> Self {
        Self { proto: self.proto.clone(), json: self.json.clone() }
    }
}

/// Whether a gRPC-Web content type (or `accept` value) names the text (base64) framing.
fn is_text(value: Option<&HeaderValue>) -> bool {
    value.is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= GRPC_WEB_TEXT.len() && v[..GRPC_WEB_TEXT.len()].eq_ignore_ascii_case(GRPC_WEB_TEXT.as_bytes())
    })
}

/// Puts a gRPC-Web protobuf content type in the exact form tonic-web recognises.
fn canonical_proto_content_type(headers: &mut HeaderMap) {
    let Some(ct) = headers.get(CONTENT_TYPE) else { return };
    if [GRPC_WEB_PROTO, GRPC_WEB, GRPC_WEB_TEXT, GRPC_WEB_TEXT_PROTO].iter().any(|c| ct.as_bytes() == c.as_bytes()) {
        return;
    }
    let canonical = if is_text(Some(ct)) { GRPC_WEB_TEXT_PROTO } else { GRPC_WEB_PROTO };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(canonical));
}

#[cfg(test)]
mod tests;
