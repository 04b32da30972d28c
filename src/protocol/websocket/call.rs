//! One call on a socket: a task that runs an in-process gRPC call and moves its messages
//! between the socket and the service, under flow control in both directions.
//!
//! Response side: the task polls [`Call::next`] only while the client has granted credit.
//! With none left it stops, the in-process response body is no longer polled, and the
//! service's handler blocks on its own bounded stream: backpressure reaches the service.
//!
//! Request side: the session queues at most `initial_credit` messages per call (the client
//! may not send more without a grant); the task hands them one at a time to the request
//! stream (a channel of one) and grants credit back as the handler takes them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};
use tonic::Status;

use super::frames;
use super::session::{Outbox, TaskGuard};
use crate::gateway::Shared;
use crate::transcode::{Call, CallEvent, CallSetup, MethodDescriptor, RequestMessages, call};

/// What the session hands a call after it opened.
#[derive(Debug)]
pub(super) enum Inbound {
    /// One request message, already binary protobuf.
    Message(Bytes),
    /// The client sends no more.
    HalfClose,
}

/// Credit counters shared by the session (which reads the client's frames) and the task.
#[derive(Debug)]
pub(super) struct CallCtl {
    /// Response messages the client still allows.
    server_credit: AtomicU32,
    /// Request messages the client may still send.
    client_credit: AtomicU32,
    /// Wakes the task when the client grants response credit.
    granted: Notify,
}

impl CallCtl {
    pub(super) fn new(server_credit: u32, client_credit: u32) -> Self {
        Self {
            server_credit: AtomicU32::new(server_credit),
            client_credit: AtomicU32::new(client_credit),
            granted: Notify::new(),
        }
    }

    /// The client granted `n` more response messages.
    pub(super) fn grant_server(&self, n: u32) {
        let _ = self.server_credit.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| Some(c.saturating_add(n)));
        self.granted.notify_one();
    }

    /// Uses one unit of the client's request credit; `false` if it had none.
    pub(super) fn take_client(&self) -> bool {
        self.client_credit.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1)).is_ok()
    }
}

/// Everything a call task needs; [`CallTask::run`] consumes it.
pub(super) struct CallTask {
    pub id: u64,
    pub shared: Arc<Shared>,
    pub method: Arc<MethodDescriptor>,
    pub setup: CallSetup,
    /// The message of the `open` frame, if it had one.
    pub first: Option<Bytes>,
    /// The `open` frame half-closed.
    pub ended_at_open: bool,
    pub inbound: mpsc::Receiver<Inbound>,
    pub ctl: Arc<CallCtl>,
    /// The session ends the call early (client cancel, a bad frame) by sending the status
    /// to report; dropping the sender (the socket closed) ends it without a word.
    pub stop: oneshot::Receiver<Status>,
    pub out: Outbox,
    /// The request credit window (the server's initial credit).
    pub window: u32,
    pub max_message: usize,
    pub _guards: (TaskGuard, CallGuard),
}

/// Counts an open call in `websocket_calls_open` until dropped.
pub(super) struct CallGuard(Arc<crate::metrics::Metrics>);

impl CallGuard {
    pub(super) fn new(metrics: &Arc<crate::metrics::Metrics>) -> Self {
        metrics.websocket_calls_open.fetch_add(1, Ordering::Relaxed);
        Self(metrics.clone())
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.websocket_calls_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CallTask {
    /// Runs the call to its end; returns its id. Dropping the future (the socket closed)
    /// drops the in-process call, which cancels the handler.
    pub(super) async fn run(mut self) -> u64 {
        let id = self.id;
        let (messages, mut request, mut pending) = match (self.ended_at_open, self.first.take()) {
            (true, Some(only)) => (RequestMessages::One(only), None, None),
            (ended, first) => {
                let (tx, rx) = mpsc::channel::<Bytes>(1);
                (RequestMessages::Stream(rx), (!ended).then_some(tx), first)
            }
        };
        let mut reading = !self.ended_at_open;
        let setup = std::mem::take(&mut self.setup);
        let stack = self.shared.stack.clone();
        let start = call::start(&stack, setup, messages, self.max_message);
        tokio::pin!(start);
        let mut running: Option<Call> = None;
        let mut to_grant: u32 = 0;
        let grant_batch = (self.window / 2).max(1);

        loop {
            let has_credit = self.ctl.server_credit.load(Ordering::Acquire) > 0;
            // The branches only decide; the work happens below, once every borrow is over.
            // A stop comes first: when the session stops a call it also drops the call's
            // queue, which must not be mistaken for a half-close (the handler would then
            // finish, and report OK instead of the session's status).
            let step = tokio::select! {
                biased;
                stopped = &mut self.stop => Step::Stop(stopped.ok()),
                started = &mut start, if running.is_none() => Step::Started(started),
                event = next_event(&mut running), if running.is_some() && has_credit => Step::Event(event),
                () = self.ctl.granted.notified(), if running.is_some() && !has_credit => Step::Nothing,
                permit = reserve(&request), if pending.is_some() => match permit {
                    Some(permit) => {
                        if let Some(msg) = pending.take() {
                            permit.send(msg);
                        }
                        Step::Forwarded
                    }
                    None => Step::RequestGone,
                },
                inbound = self.inbound.recv(), if reading && pending.is_none() => match inbound {
                    Some(Inbound::Message(msg)) => {
                        pending = Some(msg);
                        Step::Nothing
                    }
                    Some(Inbound::HalfClose) | None => Step::RequestGone,
                },
            };
            match step {
                Step::Nothing => {}
                Step::Stop(status) => {
                    // Dropping the call (or its start) cancels the handler.
                    drop(running);
                    if let Some(status) = status {
                        self.out.send(frames::status(id, &status)).await;
                    }
                    return id;
                }
                Step::Started(call) => {
                    if !self.out.send(frames::headers(id, call.headers())).await {
                        return id;
                    }
                    running = Some(call);
                }
                Step::Event(CallEvent::Message(bin)) => {
                    self.ctl.server_credit.fetch_sub(1, Ordering::AcqRel);
                    let frame = match frames::message(id, self.method.response(), &bin) {
                        Ok(frame) => frame,
                        Err(error) => {
                            tracing::error!(method = self.method.path(), %error, "service sent an undecodable response");
                            let status = Status::internal("service sent an invalid response");
                            self.out.send(frames::status(id, &status)).await;
                            return id;
                        }
                    };
                    if !self.out.send(frame).await {
                        return id;
                    }
                }
                Step::Event(CallEvent::End(status)) => {
                    self.out.send(frames::status(id, &status)).await;
                    return id;
                }
                Step::Forwarded => {
                    to_grant += 1;
                    let client_left = self.ctl.client_credit.load(Ordering::Acquire);
                    if to_grant >= grant_batch || client_left == 0 {
                        self.ctl.client_credit.fetch_add(to_grant, Ordering::AcqRel);
                        let frame = frames::credit(id, to_grant);
                        to_grant = 0;
                        if !self.out.send(frame).await {
                            return id;
                        }
                    }
                }
                Step::RequestGone => {
                    // Half-closed, or the handler stopped reading its request stream: accept
                    // no more (and grant no more credit); the call's status follows.
                    pending = None;
                    request = None;
                    reading = false;
                }
            }
        }
    }
}

/// What one turn of a call task's loop found.
enum Step {
    Nothing,
    Stop(Option<Status>),
    Started(Call),
    Event(CallEvent),
    Forwarded,
    RequestGone,
}

/// The next event of a started call (never resolves before the call started).
async fn next_event(call: &mut Option<Call>) -> CallEvent {
    match call {
        Some(c) => c.next().await,
        None => std::future::pending().await,
    }
}

/// A slot on the request stream; `None` once the handler dropped it (or there is none).
async fn reserve(tx: &Option<mpsc::Sender<Bytes>>) -> Option<mpsc::Permit<'_, Bytes>> {
    match tx {
        Some(tx) => tx.reserve().await.ok(),
        None => std::future::pending().await,
    }
}
