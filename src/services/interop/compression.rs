//! Per-message compression for the interop service, as the interop spec's compression cases
//! need it: the handlers learn whether each request message arrived compressed
//! (`expect_compressed`) and choose, per response message, whether it goes out compressed
//! (`response_compressed`, `ResponseParameters.compressed`).
//!
//! tonic 0.14 cannot do either: its server compresses every response message once the client
//! accepts an encoding (`send_compressed`), `Response::disable_compression` covers unary and
//! client-streaming responses only, there is no per-item control on response streams, and a
//! handler never sees a request message's compressed flag. So this wrapper does the gzip
//! framing itself around the generated server (which then sees and sends only uncompressed
//! messages), and talks to the handlers through a [`CallContext`] request extension.
//!
//! Request messages are decompressed here, bounded by the message limit: a message that
//! decompresses past it fails the call with `RESOURCE_EXHAUSTED`, the gateway's code for an
//! oversized message (tonic's own decoder would say `OUT_OF_RANGE`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;

use crate::transcode::framing::{Decoder, FLAG_COMPRESSED, FrameError, encode_into, gzip};

const GRPC_ENCODING: &str = "grpc-encoding";
const GRPC_ACCEPT_ENCODING: &str = "grpc-accept-encoding";

/// What one call's handler and its wire framing tell each other, in message order.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The largest message the service reads or writes (the gateway's message limit).
    pub max_message_bytes: usize,
    received: Arc<Mutex<VecDeque<bool>>>,
    send: Arc<Mutex<VecDeque<bool>>>,
}

impl CallContext {
    fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes, received: Arc::default(), send: Arc::default() }
    }

    /// Whether the next request message (in the order the handler reads them) arrived
    /// compressed. Call once per message read.
    pub fn next_request_compressed(&self) -> bool {
        lock(&self.received).pop_front().unwrap_or(false)
    }

    /// Asks for the next response message (in the order the handler produces them) to be
    /// compressed, or not. Call once per message, before yielding it. Compression needs a
    /// client that accepts gzip; without it every message goes out uncompressed.
    pub fn compress_next_response(&self, compress: bool) {
        lock(&self.send).push_back(compress);
    }
}

fn lock(m: &Mutex<VecDeque<bool>>) -> std::sync::MutexGuard<'_, VecDeque<bool>> {
    // A panic while holding the lock leaves a queue of bools: still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wraps a gRPC server: decompresses request messages, compresses the response messages
/// its handlers ask for, and hands each call a [`CallContext`].
#[derive(Debug, Clone)]
pub struct PerMessageCompression<S> {
    inner: S,
    max_message_bytes: usize,
}

impl<S> PerMessageCompression<S> {
    /// `max_message_bytes` bounds every message, decompressed.
    pub fn new(inner: S, max_message_bytes: usize) -> Self {
        Self { inner, max_message_bytes }
    }
}

impl<S: NamedService> NamedService for PerMessageCompression<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<Request<Body>> for PerMessageCompression<S>
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
        let ctx = CallContext::new(self.max_message_bytes);
        let accepts_gzip = req
            .headers()
            .get_all(GRPC_ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|e| e.trim().eq_ignore_ascii_case("gzip"));
        let (mut parts, body) = req.into_parts();
        let encoding = parts.headers.remove(GRPC_ENCODING);
        let decoder = RequestMessages {
            inner: body,
            frames: Decoder::new(self.max_message_bytes),
            encoding: encoding.and_then(|v| v.to_str().ok().map(str::to_ascii_lowercase)),
            max: self.max_message_bytes,
            received: ctx.received.clone(),
            failed: false,
        };
        parts.extensions.insert(ctx.clone());
        let fut = self.inner.call(Request::from_parts(parts, Body::new(decoder)));
        Box::pin(async move {
            let Ok(resp) = fut.await;
            if !accepts_gzip || resp.headers().contains_key("grpc-status") {
                return Ok(resp);
            }
            let (mut parts, body) = resp.into_parts();
            parts.headers.insert(GRPC_ENCODING, HeaderValue::from_static("gzip"));
            let body = ResponseMessages { inner: body, frames: Decoder::new(usize::MAX), send: ctx.send };
            Ok(Response::from_parts(parts, Body::new(body)))
        })
    }
}

pin_project! {
    /// The request body, re-framed with every message uncompressed; records each message's
    /// flag for [`CallContext::next_request_compressed`].
    struct RequestMessages {
        #[pin]
        inner: Body,
        frames: Decoder,
        encoding: Option<String>,
        max: usize,
        received: Arc<Mutex<VecDeque<bool>>>,
        failed: bool,
    }
}

impl RequestMessages {
    /// Every whole message buffered so far, uncompressed and re-framed.
    fn drain(
        frames: &mut Decoder,
        encoding: Option<&str>,
        max: usize,
        received: &Mutex<VecDeque<bool>>,
    ) -> Result<Bytes, Status> {
        let mut out = BytesMut::new();
        while let Some(env) = frames.next_envelope().map_err(frame_status)? {
            let compressed = env.flags & FLAG_COMPRESSED != 0;
            let payload = if !compressed {
                env.payload
            } else {
                match encoding {
                    Some("gzip") => gzip::decompress(&env.payload, max).map(Bytes::from).map_err(|e| match e {
                        gzip::DecompressError::TooLarge { limit } => Status::resource_exhausted(format!(
                            "request message is larger than the limit of {limit} bytes once decompressed"
                        )),
                        gzip::DecompressError::Invalid(why) => {
                            Status::internal(format!("a compressed request message is not valid gzip: {why}"))
                        }
                    })?,
                    None | Some("identity") => {
                        return Err(Status::internal(
                            "a request message is flagged compressed, but the call named no grpc-encoding",
                        ));
                    }
                    Some(other) => {
                        return Err(Status::unimplemented(format!(
                            "request messages are compressed with {other:?}; this service accepts gzip"
                        )));
                    }
                }
            };
            lock(received).push_back(compressed);
            encode_into(&mut out, 0, &payload);
        }
        Ok(out.freeze())
    }
}

fn frame_status(e: FrameError) -> Status {
    match e {
        FrameError::TooLarge { len, limit } => Status::resource_exhausted(format!(
            "request message of {len} bytes is larger than the limit of {limit} bytes"
        )),
        FrameError::Truncated(_) => Status::internal(format!("the request body {e}")),
    }
}

impl http_body::Body for RequestMessages {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        loop {
            let frame = match futures_util::ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    return Poll::Ready(match this.frames.finish() {
                        Ok(()) => None,
                        Err(e) => {
                            *this.failed = true;
                            Some(Err(frame_status(e)))
                        }
                    });
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            this.frames.push(&data);
            match Self::drain(this.frames, this.encoding.as_deref(), *this.max, this.received) {
                Ok(out) if out.is_empty() => continue,
                Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                Err(status) => {
                    *this.failed = true;
                    return Poll::Ready(Some(Err(status)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.inner.is_end_stream() && self.frames.finish().is_ok())
    }

    // The decompressed body's size is unknown; only the lower bound of nothing is known.
    fn size_hint(&self) -> http_body::SizeHint {
        if self.is_end_stream() { http_body::SizeHint::with_exact(0) } else { http_body::SizeHint::default() }
    }
}

pin_project! {
    /// The response body, with the messages the handler asked for gzip-compressed.
    struct ResponseMessages {
        #[pin]
        inner: Body,
        frames: Decoder,
        send: Arc<Mutex<VecDeque<bool>>>,
    }
}

impl http_body::Body for ResponseMessages {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut this = self.project();
        loop {
            let frame = match futures_util::ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            this.frames.push(&data);
            let mut out = BytesMut::new();
            // The generated server frames what it encodes whole; lengths were checked there.
            while let Ok(Some(env)) = this.frames.next_envelope() {
                if lock(this.send).pop_front().unwrap_or(false) {
                    encode_into(&mut out, FLAG_COMPRESSED, &gzip::compress(&env.payload));
                } else {
                    encode_into(&mut out, env.flags, &env.payload);
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    // Compression changes the length: only an empty body's size is known.
    fn size_hint(&self) -> http_body::SizeHint {
        if self.inner.is_end_stream() { http_body::SizeHint::with_exact(0) } else { http_body::SizeHint::default() }
    }
}
