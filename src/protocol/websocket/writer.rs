//! The writer: the only task that touches a socket's sink, so frames of every call
//! interleave whole. Producers (the reader, every call) queue frames in an [`Outbox`] of
//! [`OUT_QUEUE`] frames and wait while it is full, so a client that stops reading stops
//! the server.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, SinkExt as _};
use tokio::sync::mpsc;

use super::guards::TaskGuard;

/// Frames waiting for the writer, at most.
pub const OUT_QUEUE: usize = 16;

/// What waits for the writer: kept to 24 bytes (a `Message` takes twice that), because the
/// queue allocates room for a block of them on every socket, idle or not.
pub(super) enum Out {
    Text(String),
    Ping,
    Close(Box<CloseFrame>),
}

impl From<Out> for Message {
    fn from(out: Out) -> Self {
        match out {
            Out::Text(text) => Message::Text(Utf8Bytes::from(text)),
            Out::Ping => Message::Ping(Bytes::new()),
            Out::Close(close) => Message::Close(Some(*close)),
        }
    }
}

/// The queue to the writer.
#[derive(Clone)]
pub(super) struct Outbox(mpsc::Sender<Out>);

impl Outbox {
    /// A queue and the writer's end of it.
    pub(super) fn new() -> (Self, mpsc::Receiver<Out>) {
        let (tx, rx) = mpsc::channel(OUT_QUEUE);
        (Self(tx), rx)
    }

    /// Queues a text frame, waiting while the queue is full; `false` once the socket is gone.
    pub(super) async fn send(&self, text: String) -> bool {
        self.0.send(Out::Text(text)).await.is_ok()
    }

    /// Queues a ping or a close frame.
    pub(super) async fn send_out(&self, out: Out) -> bool {
        self.0.send(out).await.is_ok()
    }

    /// Resolves once the writer has given up (the socket failed or was closed).
    pub(super) async fn closed(&self) {
        self.0.closed().await;
    }
}

/// Feeds queued frames to `sink` and flushes when the queue runs dry, so bursts go out in
/// few writes. A write stuck for `timeout` ends the socket.
pub(super) async fn write_loop<Si>(mut sink: Si, mut rx: mpsc::Receiver<Out>, timeout: Duration, _task: TaskGuard)
where
    Si: Sink<Message> + Unpin,
    Si::Error: std::fmt::Display,
{
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            let closing = matches!(out, Out::Close(_));
            match tokio::time::timeout(timeout, sink.feed(Message::from(out))).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "WebSocket write failed");
                    break 'outer;
                }
                Err(_) => {
                    tracing::debug!("WebSocket write timed out");
                    break 'outer;
                }
            }
            if closing {
                break 'outer;
            }
            next = rx.try_recv().ok();
            if next.is_none() {
                // Before flushing, let the rest of the runtime take one turn: frames that
                // this socket's calls produce meanwhile leave in the same write, and, with
                // many busy sockets on a worker, a socket whose tasks keep waking each other
                // cannot keep the others waiting (at 128 sockets × 1 message in flight, this
                // took p99 latency from ~30 ms to ~2 ms; `portway-bench websocket`).
                tokio::task::yield_now().await;
                next = rx.try_recv().ok();
            }
        }
        match tokio::time::timeout(timeout, sink.flush()).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    rx.close();
    let _ = tokio::time::timeout(timeout, sink.close()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_frames_stay_small() {
        // Every socket's writer queue allocates a block of these, idle or not.
        assert!(std::mem::size_of::<Out>() <= 24, "Out is {} bytes", std::mem::size_of::<Out>());
    }
}
