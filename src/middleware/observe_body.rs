//! The bodies of an observed call: they count bytes and gRPC messages as they stream by
//! (reading only the envelope headers, with the message limit's scanner), and the response
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
use super::limit::Scanner;

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
        scanner: Scanner,
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
        Self { inner, state, direction, scanner: Scanner::new(usize::MAX), bytes: 0 }
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
                    // Without a limit the scanner cannot refuse anything.
                    let _ = this.scanner.scan(data);
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
