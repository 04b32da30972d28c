//! The message size limit ([`crate::Config::max_message_bytes`]) for every protocol,
//! enforced once on the service stack.
//!
//! The JSON adapters check the messages they decode themselves, but native gRPC and
//! gRPC-Web bodies reach the services untouched, and a service's own limit (if it set one)
//! is not the gateway's: tonic also reports it as `OUT_OF_RANGE`, where the gRPC spec
//! (`doc/statuscodes.md`) says an oversized message is `RESOURCE_EXHAUSTED`. This layer
//! reads the 5-byte envelope headers as the bodies stream by (without buffering payloads):
//!
//! - a request message over the limit fails the request body with `RESOURCE_EXHAUSTED`,
//!   which the service sees as the error of its next read and answers with;
//! - a response message over the limit is not relayed: the response ends with
//!   `RESOURCE_EXHAUSTED` trailers instead, and the rest of the service's response is dropped.
//!
//! Compressed messages are measured as sent; their decompressed size is the decoder's
//! business (tonic enforces its own limit there, as `RESOURCE_EXHAUSTED`).
//!
//! The envelope scanning is hand-written: [`crate::transcode::framing::Decoder`] buffers
//! whole messages and tonic's decoder is private, while this only needs the headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::body::Body;

use crate::middleware::deadline::upper_bound_only;
use crate::transcode::framing::HEADER_LEN;

/// Adds [`MessageLimit`] to a service.
#[derive(Debug, Clone)]
pub struct MessageLimitLayer {
    max: usize,
}

impl MessageLimitLayer {
    /// Refuses messages larger than `max` bytes, in both directions.
    pub fn new(max: usize) -> Self {
        Self { max }
    }
}

impl<S> tower::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MessageLimit { inner, max: self.max }
    }
}

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub struct MessageLimit<S> {
    inner: S,
    max: usize,
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

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let max = self.max;
        let req = req.map(|body| {
            Body::new(LimitedRequest { inner: body, scanner: Scanner::new(max), error: None, failed: false })
        });
        MessageLimitFuture { inner: self.inner.call(req), max }
    }
}

pin_project! {
    /// The response of a [`MessageLimit`] call, its body limited once it arrives.
    pub struct MessageLimitFuture<F> {
        #[pin]
        inner: F,
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
        let resp = std::task::ready!(this.inner.poll(cx))?;
        // Only gRPC bodies are made of envelopes; leave anything else (an HTTP error page
        // from a misconfigured service, say) as it is.
        let is_grpc = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
        if !is_grpc {
            return Poll::Ready(Ok(resp));
        }
        let max = *this.max;
        Poll::Ready(Ok(
            resp.map(|body| Body::new(LimitedResponse { inner: Some(body), scanner: Scanner::new(max), cut: None }))
        ))
    }
}

/// Follows the envelopes in a byte stream: where each header starts, how long each payload is.
/// (The call metrics count messages with it too, with no limit.)
#[derive(Debug)]
pub(crate) struct Scanner {
    max: usize,
    /// Envelope headers seen so far: the messages begun.
    pub(crate) messages: u64,
    /// Payload bytes of the current message still to come.
    remaining: usize,
    /// The bytes of an envelope header seen so far (at most [`HEADER_LEN`]).
    header: [u8; HEADER_LEN],
    header_len: usize,
}

/// A message that declared more bytes than the limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLarge {
    /// The declared length.
    len: usize,
    /// How many bytes of the chunk come before the oversized message's header (0 when the
    /// header began in an earlier chunk): the messages before it may still be relayed.
    release: usize,
}

impl Scanner {
    pub(crate) fn new(max: usize) -> Self {
        Self { max, messages: 0, remaining: 0, header: [0; HEADER_LEN], header_len: 0 }
    }

    /// Scans `data` and returns how many of its bytes can be passed on now: all of them,
    /// except the start of an envelope header that the chunk cuts off (held back until the
    /// header is complete, so that an oversized message's header is never relayed).
    pub(crate) fn scan(&mut self, data: &[u8]) -> Result<usize, TooLarge> {
        let mut i = 0;
        let mut release = 0;
        while i < data.len() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len() - i);
                self.remaining -= n;
                i += n;
                release = i;
                continue;
            }
            if self.header_len == 0
                && let Some(&[_, a, b, c, d]) = data.get(i..i + HEADER_LEN)
            {
                // The usual case: the whole header in this chunk.
                let len = u32::from_be_bytes([a, b, c, d]) as usize;
                if len > self.max {
                    return Err(TooLarge { len, release });
                }
                i += HEADER_LEN;
                self.messages += 1;
                self.remaining = len;
                release = i;
                continue;
            }
            let n = (HEADER_LEN - self.header_len).min(data.len() - i);
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[i..i + n]);
            self.header_len += n;
            i += n;
            if self.header_len == HEADER_LEN {
                let [_, a, b, c, d] = self.header;
                let len = u32::from_be_bytes([a, b, c, d]) as usize;
                if len > self.max {
                    return Err(TooLarge { len, release });
                }
                self.header_len = 0;
                self.messages += 1;
                self.remaining = len;
                release = i;
            }
        }
        Ok(release)
    }

    fn status(&self, what: &str, len: usize) -> Status {
        Status::resource_exhausted(format!(
            "{what} message of {len} bytes is larger than the limit of {} bytes",
            self.max
        ))
    }
}

/// Whether a stream of envelopes is between two messages or inside one, for the drain at
/// shutdown (`super::shutdown`), which lets a request finish the message it is sending.
#[derive(Debug)]
pub(crate) struct Envelopes(Scanner);

impl Envelopes {
    pub(crate) fn new() -> Self {
        Self(Scanner::new(usize::MAX))
    }

    /// Takes the next bytes of the stream.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        let _ = self.0.scan(data);
    }

    /// No message begun and unfinished.
    pub(crate) fn between_messages(&self) -> bool {
        self.0.remaining == 0 && self.0.header_len == 0
    }
}

/// A request body that fails with `RESOURCE_EXHAUSTED` at the first oversized message.
struct LimitedRequest {
    inner: Body,
    scanner: Scanner,
    /// Set once an oversized message was seen: the error still to report, then `None` and
    /// `failed` for good.
    error: Option<Status>,
    failed: bool,
}

impl http_body::Body for LimitedRequest {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if let Some(status) = this.error.take() {
            return Poll::Ready(Some(Err(status)));
        }
        if this.failed {
            return Poll::Ready(None);
        }
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(f)) = &frame
            && let Some(data) = f.data_ref()
            && let Err(TooLarge { len, release }) = this.scanner.scan(data)
        {
            // Nothing more of this body is read; the service sees the messages before the
            // oversized one, then the error.
            this.failed = true;
            let status = this.scanner.status("request", len);
            if release == 0 {
                return Poll::Ready(Some(Err(status)));
            }
            this.error = Some(status);
            return Poll::Ready(Some(Ok(Frame::data(data.slice(..release)))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        // Not over while the error is still to be reported: a hyper client forwarding this
        // body would otherwise half-close early and the upstream see a truncated stream.
        self.error.is_none() && (self.failed || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        upper_bound_only(self.inner.size_hint())
    }
}

/// A response body that stops relaying at the first oversized message.
struct LimitedResponse {
    /// `None` once the response was cut short (dropping it cancels the service's stream).
    inner: Option<Body>,
    scanner: Scanner,
    /// The trailers that end a response cut short, still to send.
    cut: Option<HeaderMap>,
}

impl http_body::Body for LimitedResponse {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some(trailers) = this.cut.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
            let pending_before = this.scanner.header_len;
            let held: [u8; HEADER_LEN] = this.scanner.header;
            let frame = match std::task::ready!(Pin::new(inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            let release = match this.scanner.scan(&data) {
                Ok(release) => release,
                Err(TooLarge { len, release }) => {
                    this.inner = None;
                    let status = this.scanner.status("response", len);
                    tracing::warn!(%status, "a service sent a message over the limit; ending the response");
                    let mut trailers = HeaderMap::new();
                    if let Err(e) = status.add_header(&mut trailers) {
                        tracing::error!(error = %e, "could not encode a status");
                    }
                    // The messages before the oversized one are relayed first.
                    this.cut = Some(trailers);
                    release
                }
            };
            if release == 0 {
                continue; // only part of a header so far (or nothing to relay)
            }
            if pending_before == 0 {
                // Slicing a `Bytes` that came from a `Vec` (as tonic's encoder makes them)
                // allocates; a whole chunk, the usual case, is passed on as it is.
                let data = if release == data.len() { data } else { data.slice(..release) };
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            // A header began in an earlier chunk: relay its held-back start first.
            let mut out = BytesMut::with_capacity(pending_before + release);
            out.extend_from_slice(&held[..pending_before]);
            out.extend_from_slice(&data[..release]);
            return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut.is_none() && self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.inner {
            Some(inner) => upper_bound_only(inner.size_hint()),
            None => http_body::SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(len: usize) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(&(len as u32).to_be_bytes());
        v.extend(std::iter::repeat_n(7, len));
        v
    }

    #[test]
    fn releases_everything_but_a_cut_header() {
        let wire: Vec<u8> = [envelope(3), envelope(0), envelope(10)].concat();
        for split in 0..wire.len() {
            let mut s = Scanner::new(10);
            let (a, b) = wire.split_at(split);
            let ra = s.scan(a).unwrap();
            let held = a.len() - ra;
            let rb = s.scan(b).unwrap();
            assert_eq!(rb, b.len(), "split at {split}: the rest is released");
            assert_eq!(held + rb + ra, wire.len(), "split at {split}");
            assert!(held < HEADER_LEN, "split at {split}: only a header's start is held back");
        }
    }

    #[test]
    fn refuses_oversized_messages_after_releasing_the_ones_before() {
        let wire: Vec<u8> = [envelope(3), envelope(11)].concat();
        let first = HEADER_LEN + 3;
        for split in 0..wire.len() {
            // What `LimitedResponse` relays: released bytes, plus a held-back header start
            // once the next chunk releases something.
            let mut s = Scanner::new(10);
            let (a, b) = wire.split_at(split);
            let relayed = match s.scan(a) {
                Err(e) => {
                    assert_eq!(e.len, 11);
                    e.release
                }
                Ok(released) => {
                    let held = a.len() - released;
                    let e = s.scan(b).expect_err("the second message is too large");
                    assert_eq!(e.len, 11);
                    released + if e.release > 0 { held + e.release } else { 0 }
                }
            };
            assert_eq!(relayed, first, "split at {split}: all of the first message, nothing of the second");
        }
    }

    #[tokio::test]
    async fn the_bodies_say_when_they_are_over() {
        use crate::testing::{Frames, body_contract};
        let mut ok = HeaderMap::new();
        ok.insert("grpc-status", http::HeaderValue::from_static("0"));
        let body = |chunks: &[Vec<u8>], trailers: bool| {
            let mut frames: Vec<Frame<Bytes>> = chunks.iter().map(|c| Frame::data(Bytes::from(c.clone()))).collect();
            if trailers {
                frames.push(Frame::trailers(ok.clone()));
            }
            Body::new(Frames::new(frames))
        };
        let small = [envelope(3), envelope(0)].concat();
        // Within the limit both bodies pass everything on.
        let request = LimitedRequest {
            inner: body(std::slice::from_ref(&small), false),
            scanner: Scanner::new(10),
            error: None,
            failed: false,
        };
        assert_eq!(body_contract(request).await.data, small);
        let response = LimitedResponse {
            inner: Some(body(std::slice::from_ref(&small), true)),
            scanner: Scanner::new(10),
            cut: None,
        };
        let out = body_contract(response).await;
        assert_eq!((out.data, out.trailers.is_some()), (small.clone(), true));
        // Over it: the request relays the message before, then its error, then ends.
        let over = [envelope(3), envelope(11)].concat();
        let request = LimitedRequest {
            inner: body(std::slice::from_ref(&over), false),
            scanner: Scanner::new(10),
            error: None,
            failed: false,
        };
        let out = body_contract(request).await;
        assert_eq!(out.data, envelope(3));
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        // The response relays the message before, then RESOURCE_EXHAUSTED trailers, then ends.
        let response = LimitedResponse { inner: Some(body(&[over], true)), scanner: Scanner::new(10), cut: None };
        let out = body_contract(response).await;
        assert_eq!(out.data, envelope(3));
        assert_eq!(out.trailers.map(|t| t["grpc-status"].clone()), Some(http::HeaderValue::from_static("8")));
    }
}
