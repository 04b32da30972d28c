//! In-process gRPC calls: how the JSON and WebSocket adapters reach the service stack.
//!
//! An adapter hands over binary messages; this module frames them as an ordinary
//! `application/grpc` HTTP/2 request, sends it to the stack (no socket), and reads the
//! response frames and the `grpc-status` trailers back. Streaming stays streaming both
//! ways; backpressure flows through a bounded channel on the request side and through
//! body polling on the response side.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use http_body::Frame;
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::ServiceExt as _;

use super::framing::{self, Decoder, FLAG_COMPRESSED};
use super::stack::GrpcService;
use super::status::{code_from_http, decode_bin_value};
use super::timeout::{GRPC_TIMEOUT, format_grpc_timeout};

// Looked up on every call: as `HeaderName`s they are hashed, not parsed, on each lookup.
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");
pub(crate) const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
pub(crate) const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");

/// Headers that belong to HTTP or to a protocol, never to a call's metadata.
pub fn is_reserved_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "content-type"
            | "content-length"
            | "content-encoding"
            | "accept-encoding"
            | "accept"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
            | "http2-settings"
            | "sec-websocket-key"
            | "sec-websocket-version"
            | "sec-websocket-protocol"
            | "sec-websocket-extensions"
            | "sec-websocket-accept"
    ) || n.starts_with("grpc-")
        || n.starts_with("connect-")
        || n.starts_with("access-control-")
}

/// What an adapter knows before the call starts.
#[derive(Debug, Default)]
pub struct CallSetup {
    /// `/pkg.Service/Method`.
    pub path: String,
    /// Custom metadata for the call (reserved headers are dropped).
    pub metadata: HeaderMap,
    /// The call's deadline, sent as `grpc-timeout`.
    pub timeout: Option<Duration>,
    /// Request extensions to carry over (the peer address, for `Request::remote_addr`).
    pub extensions: http::Extensions,
}

/// The request side of a call.
pub enum RequestMessages {
    /// Exactly one binary message (unary and server-streaming calls).
    One(Bytes),
    /// Binary messages as the client sends them; dropping the sender half-closes.
    Stream(mpsc::Receiver<Bytes>),
}

/// One step of a running call.
#[derive(Debug)]
pub enum CallEvent {
    /// One binary response message.
    Message(Bytes),
    /// The call ended: `Code::Ok` or an error; the status metadata holds the trailers.
    End(Status),
}

/// A running call: its response headers, then messages, then one final status.
pub struct Call {
    headers: HeaderMap,
    body: Option<Body>,
    decoder: Decoder,
    pending_end: Option<Status>,
}

/// Starts a call on `stack`. Never fails: a failure to start is a call that ends at once.
pub async fn start<S: GrpcService>(stack: &S, setup: CallSetup, messages: RequestMessages, max_message: usize) -> Call {
    let body = match messages {
        RequestMessages::One(msg) => Body::new(http_body_util::Full::new(framing::encode(0, &msg))),
        RequestMessages::Stream(rx) => Body::new(ChannelBody { rx }),
    };
    let uri = match setup.path.parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return Call::ended(Status::unimplemented(format!("invalid method path {:?}", setup.path))),
    };
    let mut req = Request::new(body);
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    *req.extensions_mut() = setup.extensions;
    let headers = req.headers_mut();
    for (name, value) in &setup.metadata {
        if !is_reserved_header(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    if let Some(t) = setup.timeout
        && let Ok(v) = HeaderValue::from_str(&format_grpc_timeout(t))
    {
        headers.insert(GRPC_TIMEOUT, v);
    }

    let Ok(resp) = stack.clone().oneshot(req).await;
    Call::from_response(resp, max_message)
}

impl Call {
    fn ended(status: Status) -> Self {
        Self { headers: HeaderMap::new(), body: None, decoder: Decoder::new(0), pending_end: Some(status) }
    }

    fn from_response(resp: Response<Body>, max_message: usize) -> Self {
        let (parts, body) = resp.into_parts();
        if parts.headers.contains_key(GRPC_STATUS) {
            // Trailers-only response: the headers are the trailers.
            return Self::ended(status_from_trailers(parts.headers).unwrap_or_else(|| Status::unknown("")));
        }
        if parts.status != http::StatusCode::OK {
            let code = code_from_http(parts.status);
            return Self::ended(Status::new(code, format!("service answered HTTP {}", parts.status)));
        }
        let mut headers = parts.headers;
        headers.remove(CONTENT_TYPE);
        headers.remove(GRPC_ENCODING);
        headers.remove(GRPC_ACCEPT_ENCODING);
        Self { headers, body: Some(body), decoder: Decoder::new(max_message), pending_end: None }
    }

    /// The response headers: the call's initial metadata.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Moves the response headers out (leaving an empty map), for an adapter that puts them
    /// on its own response: cheaper than cloning them.
    pub fn take_headers(&mut self) -> HeaderMap {
        std::mem::take(&mut self.headers)
    }

    /// The next message, or the final status. After `End`, keeps returning `End`.
    pub async fn next(&mut self) -> CallEvent {
        loop {
            match self.decoder.next_envelope() {
                Ok(Some(env)) => {
                    if env.flags & FLAG_COMPRESSED != 0 {
                        return self
                            .fail(Status::internal("service sent a compressed message that was not negotiated"));
                    }
                    return CallEvent::Message(env.payload);
                }
                Ok(None) => {}
                Err(e) => return self.fail(Status::resource_exhausted(format!("response {e}"))),
            }
            if let Some(status) = &self.pending_end {
                return CallEvent::End(status.clone());
            }
            let Some(body) = self.body.as_mut() else {
                return self.fail(Status::internal("call ended twice"));
            };
            match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.decoder.push(&data),
                    Err(frame) => {
                        let trailers = frame.into_trailers().unwrap_or_default();
                        let status = status_from_trailers(trailers)
                            .unwrap_or_else(|| Status::internal("service sent trailers without grpc-status"));
                        self.body = None;
                        if let Err(e) = self.decoder.finish() {
                            return self.fail(Status::internal(format!("response {e}")));
                        }
                        self.pending_end = Some(status);
                    }
                },
                Some(Err(status)) => return self.fail(status),
                None => {
                    self.body = None;
                    return self.fail(Status::internal("service response ended without grpc-status"));
                }
            }
        }
    }

    fn fail(&mut self, status: Status) -> CallEvent {
        self.body = None;
        self.pending_end = Some(status.clone());
        CallEvent::End(status)
    }

    /// Reads a unary response: exactly one message, then OK. Returns the message and the
    /// final (OK) status, or the error status. Any other message count is a response
    /// cardinality violation, which gRPC clients report as `UNIMPLEMENTED`
    /// (`doc/statuscodes.md`).
    pub async fn unary(&mut self) -> Result<(Bytes, Status), Status> {
        let message = match self.next().await {
            CallEvent::Message(m) => m,
            CallEvent::End(s) if s.code() == Code::Ok => {
                return Err(self
                    .fail(Status::unimplemented("service sent no response message to a unary call"))
                    .into_status());
            }
            CallEvent::End(s) => return Err(s),
        };
        match self.next().await {
            CallEvent::End(s) if s.code() == Code::Ok => Ok((message, s)),
            CallEvent::End(s) => Err(s),
            CallEvent::Message(_) => Err(self
                .fail(Status::unimplemented("service sent more than one response message to a unary call"))
                .into_status()),
        }
    }
}

impl CallEvent {
    fn into_status(self) -> Status {
        match self {
            CallEvent::End(s) => s,
            CallEvent::Message(_) => Status::internal("unexpected message"),
        }
    }
}

/// Reads `grpc-status`, `grpc-message` and `grpc-status-details-bin` from a header map,
/// keeping the other entries as the status metadata without a copy. Unlike tonic's own
/// parser, it never panics on a malformed details value (proxied services are not trusted).
fn status_from_trailers(mut headers: HeaderMap) -> Option<Status> {
    let code = headers.remove(GRPC_STATUS)?;
    let code = code.to_str().ok().and_then(|s| s.parse::<i32>().ok()).map_or(Code::Unknown, Code::from_i32);
    let message = headers
        .remove(GRPC_MESSAGE)
        .map(|v| percent_encoding::percent_decode(v.as_bytes()).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    let details = headers
        .remove(GRPC_STATUS_DETAILS)
        .and_then(|v| v.to_str().ok().and_then(decode_bin_value))
        .map(Bytes::from)
        .unwrap_or_default();
    headers.remove(CONTENT_TYPE);
    Some(Status::with_details_and_metadata(code, message, details, tonic::metadata::MetadataMap::from_headers(headers)))
}

/// A request body fed by a channel of binary messages, framed as gRPC on the way out.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|m| m.map(|msg| Ok(Frame::data(framing::encode(0, &msg)))))
    }

    fn is_end_stream(&self) -> bool {
        // Every sender gone and nothing queued: the next poll returns `None`.
        self.rx.is_closed() && self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_request_body_says_when_it_is_over() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        tx.send(Bytes::from_static(b"bc")).await.unwrap();
        drop(tx);
        let out = crate::testing::body_contract(ChannelBody { rx }).await;
        assert_eq!(out.data, [framing::encode(0, b"a"), framing::encode(0, b"bc")].concat());
    }
}
