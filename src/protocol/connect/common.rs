//! What the Connect adapter's unary and streaming paths share: the adapter's state, the
//! refusals before a call starts, header parsing, and the error response.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use tonic::Status;

use super::super::Encoding;
use crate::transcode::framing::{self, gzip};
use crate::transcode::status::{ErrorBody, http_status};
use crate::transcode::{Invoker, MethodDescriptor, RpcKind};
use crate::transcode::{compression, limits};

// `HeaderName`s, not `&str`s: a lookup by `&str` parses the name on every request.
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("connect-protocol-version");
const TIMEOUT_MS: HeaderName = HeaderName::from_static("connect-timeout-ms");
pub(super) const STREAM_ENCODING: HeaderName = HeaderName::from_static("connect-content-encoding");
pub(super) const STREAM_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("connect-accept-encoding");

/// The adapter's state: the invoker and its one limit.
pub(super) struct Adapter<S> {
    pub invoker: Invoker<S>,
    /// The largest message, decoded, either way.
    pub max_message_bytes: usize,
}

impl<S> Adapter<S> {
    /// The most bytes a request message may take in `encoding` before decoding: the message
    /// limit for protobuf, the JSON text bound for JSON (`crate::transcode::limits`).
    pub(super) fn text_limit(&self, encoding: Encoding) -> usize {
        match encoding {
            Encoding::Json => limits::json_text(self.max_message_bytes),
            Encoding::Proto => self.max_message_bytes,
        }
    }

    /// Refuses a decoded (binary) request message over the message limit.
    pub(super) fn check_decoded(&self, message: &[u8]) -> Result<(), Status> {
        if message.len() > self.max_message_bytes {
            return Err(too_large(message.len(), self.max_message_bytes));
        }
        Ok(())
    }
}

/// Whether a response may be gzip-compressed for a client that sent `accept` (its
/// `accept-encoding`, or `connect-accept-encoding` on streams) and compressed its request
/// with `sent`: accepted explicitly, or (with no list) compressed the same way, as the
/// Connect implementations negotiate it.
pub(super) fn response_gzip(accept: Option<&str>, sent: Option<&str>) -> bool {
    match accept {
        Some(accept) => compression::accepts_gzip(accept),
        None => sent.is_some_and(|s| s.eq_ignore_ascii_case("gzip")),
    }
}

/// Why a request was refused before any call started.
pub(super) enum Rejection {
    Status(Status),
    WrongShape(RpcKind),
    GetNotAllowed,
}

impl From<Status> for Rejection {
    fn from(s: Status) -> Self {
        Self::Status(s)
    }
}

impl Rejection {
    pub(super) fn into_unary_response(self, encoding: Encoding) -> Response<Body> {
        match self {
            Self::Status(status) => error_response(&status, &HeaderMap::new(), encoding),
            Self::WrongShape(kind) => {
                let hint = if kind == RpcKind::Unary {
                    "a unary method: use application/json or application/proto"
                } else {
                    "a streaming method: use application/connect+json or application/connect+proto"
                };
                let mut resp =
                    error_response(&Status::unimplemented(format!("this is {hint}")), &HeaderMap::new(), encoding);
                *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
                resp
            }
            Self::GetNotAllowed => {
                let status =
                    Status::unimplemented("GET is only allowed for methods marked idempotency_level = NO_SIDE_EFFECTS");
                let mut resp = error_response(&status, &HeaderMap::new(), encoding);
                *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST"));
                resp
            }
        }
    }
}

/// The method, if JSON needs it. Binary protobuf is relayed as is, so a method the table
/// does not know (a proxied service, say) still works with `application/proto`.
pub(super) fn resolve<S>(
    invoker: &Invoker<S>,
    path: &str,
    encoding: Encoding,
) -> Result<Option<Arc<MethodDescriptor>>, Rejection> {
    match invoker.resolve(path) {
        Ok(m) => Ok(Some(m)),
        Err(_) if encoding == Encoding::Proto => Ok(None),
        Err(status) => Err(status.into()),
    }
}

pub(super) fn check_protocol_version(headers: &HeaderMap) -> Result<(), Status> {
    match header_str(headers, PROTOCOL_VERSION) {
        None | Some("1") => Ok(()),
        Some(v) => Err(Status::invalid_argument(format!("unsupported {PROTOCOL_VERSION}: {v:?}"))),
    }
}

pub(super) fn connect_timeout(headers: &HeaderMap) -> Result<Option<Duration>, Status> {
    match header_str(headers, TIMEOUT_MS) {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(v.parse::<u64>().ok().map(Duration::from_millis))
        }
        Some(v) => Err(Status::invalid_argument(format!("invalid {TIMEOUT_MS}: {v:?}"))),
    }
}

pub(super) fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn decompress_status(e: gzip::DecompressError) -> Status {
    match e {
        gzip::DecompressError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        gzip::DecompressError::Invalid(_) => Status::invalid_argument(e.to_string()),
    }
}

pub(super) fn too_large(len: usize, limit: usize) -> Status {
    Status::resource_exhausted(format!("message of {len} bytes is larger than the limit of {limit} bytes"))
}

/// Refuses an encoded (JSON text or protobuf, uncompressed) request message over `limit`.
pub(super) fn check_text(message: &[u8], limit: usize) -> Result<(), Status> {
    if message.len() > limit {
        return Err(Status::resource_exhausted(format!(
            "message of {} bytes (encoded) is larger than the limit of {limit} bytes",
            message.len()
        )));
    }
    Ok(())
}

pub(super) fn frame_status(e: framing::FrameError) -> Status {
    match e {
        framing::FrameError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        framing::FrameError::Truncated(_) => Status::invalid_argument(e.to_string()),
    }
}

/// `trailer-` prefixed headers: how Connect unary responses carry trailers.
pub(super) fn append_trailers(headers: &mut HeaderMap, trailers: HeaderMap) {
    let mut last = None;
    for (name, value) in trailers {
        if let Some(n) = name {
            last = HeaderName::from_bytes(format!("trailer-{n}").as_bytes()).ok();
        }
        if let Some(n) = &last {
            headers.append(n.clone(), value);
        }
    }
}

/// A Connect unary error: the mapped HTTP status and the JSON error object.
pub(super) fn error_response(status: &Status, headers: &HeaderMap, _encoding: Encoding) -> Response<Body> {
    let body = serde_json::to_vec(&ErrorBody::from_status(status)).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = http_status(status.code());
    *resp.headers_mut() = headers.clone();
    let mut trailers = status.metadata().clone().into_headers();
    // A rate limit's hint is for HTTP clients and proxies too: a plain header (429, 503).
    if let Some(retry) = trailers.remove(RETRY_AFTER) {
        resp.headers_mut().insert(RETRY_AFTER, retry);
    }
    append_trailers(resp.headers_mut(), trailers);
    // Connect errors are always JSON, whatever the request's encoding.
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
