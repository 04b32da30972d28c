//! The bodies of an observed call: they count bytes and gRPC messages as they stream by
//! (reading only the envelope headers, with the message limit's envelope tracker), and the response
//! body takes the status from the trailers. Counts are kept in the body and handed to the
//! call's state once, when the body is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;

use super::call_state::CallState;
use crate::transcode::framing::Envelopes;

/// Which way a body goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

pin_project! {
    /// A body counted into its call's state. Delegates `is_end_stream` and `size_hint`.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        state: Arc<CallState>,
        direction: Direction,
        scanner: Envelopes,
        bytes: u64,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let (messages, bytes) = match this.direction {
                Direction::Request => (&this.state.messages_in, &this.state.bytes_in),
                Direction::Response => (&this.state.messages_out, &this.state.bytes_out),
            };
            messages.fetch_add(this.scanner.messages, Ordering::Relaxed);
            bytes.fetch_add(*this.bytes, Ordering::Relaxed);
        }
    }
}

impl<B> ObservedBody<B> {
    pub(crate) fn new(inner: B, state: Arc<CallState>, direction: Direction) -> Self {
        Self { inner, state, direction, scanner: Envelopes::new(), bytes: 0 }
    }
}

impl<B> std::fmt::Debug for ObservedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedBody").field("direction", &self.direction).finish_non_exhaustive()
    }
}

impl<B> http_body::Body for ObservedBody<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                    this.scanner.feed(data);
                } else if let Some(trailers) = frame.trailers_ref()
                    && *this.direction == Direction::Response
                {
                    this.state.status_from(trailers);
                    this.state.end();
                }
            }
            None if *this.direction == Direction::Response => this.state.end(),
            _ => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use http::HeaderMap;
    use http_body::Frame;

    use super::*;
    use crate::metrics::Metrics;
    use crate::metrics::calls::CallTable;
    use crate::testing::{Frames, body_contract};

    fn envelope(len: usize) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&u32::try_from(len).expect("small").to_be_bytes());
        out.resize(5 + len, 7);
        out
    }

    /// Two request messages cut mid-header, three response messages and NOT_FOUND trailers:
    /// the bodies relay everything, keep the body contract, and the call is recorded once,
    /// with its counts and code, when the last of them is gone.
    #[tokio::test]
    async fn bodies_count_messages_and_bytes_and_read_the_status() {
        let metrics = Arc::new(Metrics::default());
        let table = Arc::new(CallTable::default());
        metrics.register(|r| r.register_collector(Box::new(table.clone())));
        let state = CallState::start(&table, "grpc", Arc::from("/a.B/C"), None);

        let request = [envelope(3), envelope(10)].concat();
        let (first, second) = request.split_at(7);
        let frames = vec![Frame::data(Bytes::copy_from_slice(first)), Frame::data(Bytes::copy_from_slice(second))];
        let body = ObservedBody::new(Frames::new(frames), state.clone(), Direction::Request);
        assert_eq!(body_contract(body).await.data, request);

        let response = [envelope(0), envelope(1), envelope(2)].concat();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("5"));
        let frames = vec![Frame::data(Bytes::from(response.clone())), Frame::trailers(trailers)];
        let body = ObservedBody::new(Frames::new(frames), state.clone(), Direction::Response);
        let out = body_contract(body).await;
        assert_eq!((out.data, out.trailers.is_some()), (response.clone(), true));

        let labels = "{protocol=\"grpc\",method=\"/a.B/C\",code=\"NOT_FOUND\"}";
        assert!(!metrics.render().contains(labels), "recorded while the call was still held");
        drop(state);
        let text = metrics.render();
        for (name, v) in [
            ("portway_calls_total", 1),
            ("portway_call_request_messages_total", 2),
            ("portway_call_request_bytes_total", request.len()),
            ("portway_call_response_messages_total", 3),
            ("portway_call_response_bytes_total", response.len()),
            ("portway_call_duration_seconds_count", 1),
        ] {
            assert!(text.contains(&format!("{name}{labels} {v}\n")), "{name} {v} not in:\n{text}");
        }
        assert!(text.contains("portway_calls_in_flight{protocol=\"grpc\"} 0\n"), "{text}");
    }
}
