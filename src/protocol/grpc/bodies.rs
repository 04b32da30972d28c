//! The bodies of the JSON codec on gRPC and gRPC-Web: each transcodes one envelope at a
//! time as it streams by, JSON → binary protobuf for requests, binary → JSON for responses,
//! keeping each message's compressed flag.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;

use crate::transcode::compression::{self, Codec};
use crate::transcode::framing::{self, Decoder, Envelope, FLAG_COMPRESSED, GRPC_RESERVED_FLAGS, gzip::DecompressError};
use crate::transcode::{MethodDescriptor, limits};

/// A request body of JSON envelopes, read as binary protobuf envelopes (uncompressed).
pub(super) struct JsonRequest {
    inner: Body,
    decoder: Decoder,
    method: Arc<MethodDescriptor>,
    /// The request's `grpc-encoding`, for envelopes flagged compressed.
    codec: Option<Codec>,
    max_message: usize,
    max_json: usize,
    /// The inner body has ended (or failed): nothing more is read from it.
    done: bool,
    /// An error still to report.
    error: Option<Status>,
}

impl JsonRequest {
    pub(super) fn new(inner: Body, method: Arc<MethodDescriptor>, codec: Option<Codec>, max_message: usize) -> Self {
        let max_json = limits::json_text(max_message);
        // The declared length of a compressed envelope may exceed its text a little.
        let wire = if codec.is_some() { limits::compressed(max_json) } else { max_json };
        Self { inner, decoder: Decoder::new(wire), method, codec, max_message, max_json, done: false, error: None }
    }

    /// Nothing more is read or handed on after `status`.
    fn fail(&mut self, status: Status) -> Status {
        self.done = true;
        self.decoder = Decoder::new(0);
        status
    }

    fn transcode(&self, env: Envelope) -> Result<Bytes, Status> {
        // Checked here: the message goes on re-framed, so the stack never sees these flags.
        if env.flags & GRPC_RESERVED_FLAGS != 0 {
            return Err(framing::reserved_flags_status("request", env.flags));
        }
        let json = if env.flags & FLAG_COMPRESSED != 0 {
            let Some(codec) = self.codec else {
                return Err(Status::internal("a request message is flagged compressed, but grpc-encoding names none"));
            };
            Bytes::from(compression::decompress(codec, &env.payload, self.max_json).map_err(|e| match e {
                DecompressError::TooLarge { .. } => Status::resource_exhausted(format!(
                    "request message is larger than the JSON limit of {} bytes once decompressed",
                    self.max_json
                )),
                DecompressError::Invalid(_) => Status::internal(format!("request message: {e}")),
            })?)
        } else if env.payload.len() > self.max_json {
            return Err(json_too_large(env.payload.len(), self.max_json));
        } else {
            env.payload
        };
        let binary = self.method.request().json_to_binary(&json).map_err(|e| Status::invalid_argument(e.0))?;
        if binary.len() > self.max_message {
            return Err(Status::resource_exhausted(format!(
                "request message of {} bytes is larger than the limit of {} bytes",
                binary.len(),
                self.max_message
            )));
        }
        Ok(framing::encode(0, &binary))
    }
}

fn json_too_large(len: usize, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "request message of {len} bytes of JSON is larger than the limit of {limit} bytes"
    ))
}

fn frame_status(e: framing::FrameError) -> Status {
    match e {
        framing::FrameError::TooLarge { len, limit } => json_too_large(len, limit),
        framing::FrameError::Truncated(_) => Status::internal(format!("request {e}")),
    }
}

impl http_body::Body for JsonRequest {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some(status) = this.error.take() {
                return Poll::Ready(Some(Err(status)));
            }
            match this.decoder.next_envelope() {
                Ok(Some(env)) => match this.transcode(env) {
                    Ok(frame) => return Poll::Ready(Some(Ok(Frame::data(frame)))),
                    Err(status) => return Poll::Ready(Some(Err(this.fail(status)))),
                },
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(this.fail(frame_status(e))))),
            }
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        this.decoder.push(data);
                    }
                }
                Some(Err(status)) => return Poll::Ready(Some(Err(this.fail(status)))),
                None => {
                    this.done = true;
                    if let Err(e) = this.decoder.finish() {
                        this.error = Some(this.fail(frame_status(e)));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.error.is_none() && self.decoder.is_empty() && (self.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // Transcoding changes every length: nothing certain but the end.
        if self.is_end_stream() { SizeHint::with_exact(0) } else { SizeHint::default() }
    }
}

/// A response body of binary envelopes, read as JSON envelopes; a compressed message is
/// compressed again, in the same encoding, once transcoded.
pub(super) struct JsonResponse {
    /// `None` once the response ended or was cut short.
    inner: Option<Body>,
    decoder: Decoder,
    method: Arc<MethodDescriptor>,
    /// The response's `grpc-encoding`.
    codec: Option<Codec>,
    max_message: usize,
    /// The trailers to end with after a message that could not be transcoded.
    cut: Option<HeaderMap>,
}

impl JsonResponse {
    pub(super) fn new(inner: Body, method: Arc<MethodDescriptor>, codec: Option<Codec>, max_message: usize) -> Self {
        // The stack's message limit has checked every message already; this bound only
        // keeps a broken one from being buffered.
        let decoder = Decoder::new(limits::compressed(max_message));
        Self { inner: Some(inner), decoder, method, codec, max_message, cut: None }
    }

    fn transcode(&self, env: Envelope) -> Result<Bytes, Status> {
        let compressed = env.flags & FLAG_COMPRESSED != 0;
        let binary = match (compressed, self.codec) {
            (false, _) => env.payload,
            (true, Some(codec)) => Bytes::from(
                compression::decompress(codec, &env.payload, self.max_message)
                    .map_err(|e| Status::internal(format!("response message: {e}")))?,
            ),
            (true, None) => {
                return Err(Status::internal("the service flagged a message compressed without an encoding"));
            }
        };
        let json = self.method.response().binary_to_json(&binary).map_err(|e| {
            tracing::error!(method = self.method.path(), error = %e, "service sent an undecodable response");
            Status::internal("service sent an invalid response")
        })?;
        Ok(match (compressed, self.codec) {
            (true, Some(codec)) => framing::encode(FLAG_COMPRESSED, &compression::compress(codec, &json)),
            _ => framing::encode(0, &json),
        })
    }

    fn cut(&mut self, status: &Status) {
        self.inner = None;
        self.decoder = Decoder::new(0);
        let mut trailers = HeaderMap::new();
        if let Err(e) = status.add_header(&mut trailers) {
            tracing::error!(error = %e, "could not encode a status");
        }
        self.cut = Some(trailers);
    }
}

impl http_body::Body for JsonResponse {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some(trailers) = this.cut.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            match this.decoder.next_envelope() {
                Ok(Some(env)) => match this.transcode(env) {
                    Ok(frame) => return Poll::Ready(Some(Ok(Frame::data(frame)))),
                    Err(status) => {
                        this.cut(&status);
                        continue;
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    this.cut(&Status::internal(format!("response {e}")));
                    continue;
                }
            }
            let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
            match ready!(Pin::new(inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.decoder.push(&data),
                    Err(trailers) => {
                        if let Err(e) = this.decoder.finish() {
                            this.cut(&Status::internal(format!("response {e}")));
                            continue;
                        }
                        return Poll::Ready(Some(Ok(trailers)));
                    }
                },
                Some(Err(status)) => return Poll::Ready(Some(Err(status))),
                None => {
                    this.inner = None;
                    if let Err(e) = this.decoder.finish() {
                        this.cut(&Status::internal(format!("response {e}")));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut.is_none() && self.decoder.is_empty() && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // Transcoding changes every length: nothing certain but the end.
        if self.is_end_stream() { SizeHint::with_exact(0) } else { SizeHint::default() }
    }
}
