//! The bodies of a forwarded call, as they pass through untouched.
//!
//! - [`WatchedRequest`]: the client's request body on its way to the upstream; when it fails
//!   (a message over the gateway's limit, say), the status is kept, so the call ends with it
//!   instead of with whatever the upstream made of a stream cut short (the upstream's stream
//!   is reset, never ended: it never sees a truncated request as complete).
//! - [`UpstreamResponse`]: the upstream's response body on its way back; when the upstream's
//!   connection fails between two messages (it crashed, or restarts), the call ends with
//!   `UNAVAILABLE` trailers that name the upstream, which every protocol can show.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use tonic::Status;
use tonic::body::Body;

use crate::transcode::framing::Envelopes;

/// Where a failed request body leaves its status for the response to end with.
#[derive(Clone, Default)]
pub(super) struct RequestFailure(Arc<Mutex<Option<Status>>>);

impl RequestFailure {
    fn set(&self, status: Status) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
    }

    /// The status the request body failed with, if it did.
    pub(super) fn get(&self) -> Option<Status> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// A request body that records its failure in a [`RequestFailure`].
pub(super) struct WatchedRequest {
    pub(super) inner: Body,
    pub(super) failure: RequestFailure,
}

impl http_body::Body for WatchedRequest {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Err(status)) = &frame {
            self.failure.set(status.clone());
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream's response body; see the [module docs](self).
pub(super) struct UpstreamResponse {
    inner: Option<Body>,
    envelopes: Envelopes,
    /// Says which upstream, in the status of a failed call.
    upstream: Arc<str>,
    failure: RequestFailure,
}

impl UpstreamResponse {
    pub(super) fn new(inner: Body, upstream: Arc<str>, failure: RequestFailure) -> Self {
        Self { inner: Some(inner), envelopes: Envelopes::default(), upstream, failure }
    }
}

/// `status` as gRPC trailers.
pub(super) fn trailers(status: &Status) -> HeaderMap {
    // tonic writes (and percent-encodes) a status only as a response's headers.
    let mut headers = status.clone().into_http::<()>().into_parts().0.headers;
    headers.remove(http::header::CONTENT_TYPE);
    headers
}

impl http_body::Body for UpstreamResponse {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(Pin::new(inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.envelopes.feed(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            None => {
                self.inner = None;
                Poll::Ready(None)
            }
            Some(Err(error)) => {
                self.inner = None;
                let status = self.failure.get().unwrap_or_else(|| {
                    Status::unavailable(format!(
                        "upstream {} failed during the call: {}",
                        self.upstream,
                        error.message()
                    ))
                });
                if self.envelopes.between_messages() {
                    Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
                } else {
                    // Trailers after half a message would read as a corrupt message: reset.
                    Poll::Ready(Some(Err(status)))
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.inner {
            Some(inner) => {
                // It may end early with trailers: promise no more than the upper bound.
                let mut hint = http_body::SizeHint::new();
                if let Some(upper) = inner.size_hint().upper() {
                    hint.set_upper(upper);
                }
                hint
            }
            None => http_body::SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_know_where_messages_end() {
        let mut e = Envelopes::default();
        assert!(e.between_messages());
        e.feed(&[0, 0, 0]);
        assert!(!e.between_messages(), "half a header");
        e.feed(&[0, 3, b'a']);
        assert!(!e.between_messages(), "two payload bytes to come");
        e.feed(b"bc\x00\x00\x00\x00\x00");
        assert!(e.between_messages(), "one message, then an empty one");
        e.feed(&[1, 0, 0, 0, 1, b'z', 0]);
        assert!(!e.between_messages());
    }
}
