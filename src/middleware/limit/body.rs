//! The two body wrappers of the message limit: requests and responses.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;

use super::scan::{Refused, Scanner};
use crate::middleware::deadline::upper_bound_only;

/// What a body has released to pass on, and what it holds back until it may.
#[derive(Default)]
struct Queue {
    /// Bytes after the last release point: one envelope in progress (a header cut off by
    /// its chunk, or a compressed message not yet measured whole).
    held: Vec<Bytes>,
    /// Released frames not yet passed on.
    ready: VecDeque<Frame<Bytes>>,
}

impl Queue {
    /// Queues a chunk of which the first `release` bytes (and everything held) may go.
    fn release(&mut self, data: Bytes, release: usize) {
        if release == 0 {
            if !data.is_empty() {
                self.held.push(data);
            }
            return;
        }
        self.ready.extend(self.held.drain(..).map(Frame::data));
        if release == data.len() {
            self.ready.push_back(Frame::data(data));
        } else {
            self.ready.push_back(Frame::data(data.slice(..release)));
            self.held.push(data.slice(release..));
        }
    }

    /// The end of the body: what is held (a truncated envelope) goes too, for the decoder
    /// to report.
    fn flush(&mut self) {
        self.ready.extend(self.held.drain(..).map(Frame::data));
    }

    fn clear(&mut self) {
        self.held.clear();
        self.ready.clear();
    }

    fn is_empty(&self) -> bool {
        self.held.is_empty() && self.ready.is_empty()
    }

    fn bytes(&self) -> u64 {
        let ready: usize = self.ready.iter().filter_map(Frame::data_ref).map(Bytes::len).sum();
        let held: usize = self.held.iter().map(Bytes::len).sum();
        (ready + held) as u64
    }
}

/// A request body that fails with the status of the first message that may not pass.
///
/// For a method that takes exactly one request message (unary and server-streaming), it
/// also holds the message back until the request stream ends, so that zero or two messages
/// fail the call with `UNIMPLEMENTED` before the handler runs, as gRPC's status code table
/// says a request cardinality violation does.
pub(super) struct LimitedRequest {
    inner: Body,
    scanner: Scanner,
    queue: Queue,
    /// The error still to report, after what is queued.
    error: Option<Status>,
    /// Nothing more is read from `inner` (it ended, failed, or the body was refused).
    done: bool,
    /// Exactly one message is allowed.
    single: bool,
}

impl LimitedRequest {
    pub(super) fn new(inner: Body, scanner: Scanner, single: bool) -> Self {
        Self { inner, scanner, queue: Queue::default(), error: None, done: false, single }
    }

    fn fail(&mut self, status: Status) {
        self.error = Some(status);
        self.done = true;
    }
}

impl http_body::Body for LimitedRequest {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if this.done || !this.single {
                if let Some(frame) = this.queue.ready.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(status) = this.error.take() {
                    return Poll::Ready(Some(Err(status)));
                }
                if this.done {
                    return Poll::Ready(None);
                }
            }
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(status)) => {
                    this.queue.clear();
                    this.fail(status);
                    continue;
                }
                None => {
                    this.done = true;
                    if this.single && this.scanner.messages == 0 && this.queue.is_empty() {
                        this.fail(Status::unimplemented("a method that takes one request message got none"));
                    }
                    this.queue.flush();
                    continue;
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(trailers) => {
                    this.queue.flush();
                    this.queue.ready.push_back(trailers);
                    continue;
                }
            };
            match this.scanner.scan(&data) {
                Ok(_) if this.single && this.scanner.messages > 1 => {
                    this.queue.clear();
                    this.fail(Status::unimplemented("a method that takes one request message got more than one"));
                }
                // The usual case: a whole chunk of whole messages, passed on as it is.
                Ok(release) if !this.single && release == data.len() && this.queue.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                // The usual unary case: the one message, whole, in the body's last chunk
                // (the client's END_STREAM came with it): nothing to hold back.
                Ok(release)
                    if release == data.len()
                        && this.queue.is_empty()
                        && this.scanner.messages == 1
                        && this.inner.is_end_stream() =>
                {
                    this.done = true;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(release) => this.queue.release(data, release),
                Err(Refused { refusal, release }) => {
                    // The service sees the messages before the refused one, then the error
                    // (a method taking one message sees only the error).
                    if this.single || release == 0 {
                        this.queue.clear();
                    } else {
                        this.queue.release(data.slice(..release), release);
                    }
                    let status = this.scanner.status(refusal);
                    this.fail(status);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not over while an error or a held message is still to be reported: a hyper client
        // forwarding this body would otherwise half-close early and the upstream see a
        // truncated stream.
        if self.error.is_some() || !self.queue.is_empty() {
            return false;
        }
        // A method taking one message learns what it got only from the end of the stream.
        self.done || (!self.single && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            return SizeHint::with_exact(self.queue.bytes());
        }
        let mut hint = upper_bound_only(self.inner.size_hint());
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(self.queue.bytes()));
        }
        hint
    }
}

/// A response body that stops relaying at the first message that may not pass, and ends
/// with its status as trailers instead.
pub(super) struct LimitedResponse {
    /// `None` once the response ended or was cut short (dropping it cancels the service's
    /// stream).
    inner: Option<Body>,
    scanner: Scanner,
    queue: Queue,
    /// The trailers that end a response cut short, still to send.
    cut: Option<HeaderMap>,
}

impl LimitedResponse {
    pub(super) fn new(inner: Body, scanner: Scanner) -> Self {
        Self { inner: Some(inner), scanner, queue: Queue::default(), cut: None }
    }
}

impl http_body::Body for LimitedResponse {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some(frame) = this.queue.ready.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if let Some(trailers) = this.cut.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
            let frame = match ready!(Pin::new(inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(status)) => return Poll::Ready(Some(Err(status))),
                None => {
                    this.inner = None;
                    this.queue.flush();
                    continue;
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(trailers) => {
                    this.queue.flush();
                    this.queue.ready.push_back(trailers);
                    continue;
                }
            };
            match this.scanner.scan(&data) {
                // The usual case: a whole chunk of whole messages, passed on as it is.
                // (Slicing a `Bytes` that came from a `Vec`, as tonic's encoder makes them,
                // allocates.)
                Ok(release) if release == data.len() && this.queue.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(release) => this.queue.release(data, release),
                Err(Refused { refusal, release }) => {
                    this.inner = None;
                    let status = this.scanner.status(refusal);
                    tracing::warn!(%status, "a service sent a message that may not pass; ending the response");
                    let mut trailers = HeaderMap::new();
                    if let Err(e) = status.add_header(&mut trailers) {
                        tracing::error!(error = %e, "could not encode a status");
                    }
                    // The messages before the refused one are relayed first.
                    if release == 0 {
                        this.queue.held.clear();
                    } else {
                        this.queue.release(data.slice(..release), release);
                    }
                    this.cut = Some(trailers);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut.is_none() && self.queue.is_empty() && self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => {
                let mut hint = upper_bound_only(inner.size_hint());
                if let Some(upper) = hint.upper() {
                    hint.set_upper(upper.saturating_add(self.queue.bytes()));
                }
                hint
            }
            None => SizeHint::with_exact(self.queue.bytes()),
        }
    }
}
