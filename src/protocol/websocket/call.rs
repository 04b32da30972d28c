//! One call on a socket: a task that runs an in-process gRPC call and moves its messages
//! between the socket and the service, under flow control in both directions.
//!
//! Response side: the task sends a message only while the client has granted credit. With
//! none left it reads at most one message ahead (to learn whether the call is over: the
//! `status` frame needs no credit), then stops polling the in-process response body, and the
//! service's handler blocks on its own bounded stream: backpressure reaches the service.
//!
//! Request side: the session queues at most `initial_credit` messages per call (the client
//! may not send more without a grant); the task hands them one at a time to the request
//! stream (a channel of one) and grants credit back as the handler takes them: in batches of
//! half the window, or at once when the client has none left.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};
use tonic::Status;

use super::frames::server as frames;
use super::guards::{CallSlot, TaskGuard};
use super::writer::Outbox;
use crate::transcode::{Call, CallEvent, CallSetup, GrpcService, Invoker, MethodDescriptor, RequestMessages};

/// What the session hands a call after it opened.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// One request message, already binary protobuf.
    Message(Bytes),
    /// The client sends no more.
    HalfClose,
}

/// Credit counters shared by the session (which reads the client's frames) and the task.
#[derive(Debug)]
pub(crate) struct CallCtl {
    /// Response messages the client still allows.
    server_credit: AtomicU32,
    /// Request messages the client may still send.
    client_credit: AtomicU32,
    /// Wakes the task when the client grants response credit.
    granted: Notify,
    /// Wakes the task when the client has used its last request credit.
    exhausted: Notify,
}

impl CallCtl {
    pub(crate) fn new(server_credit: u32, client_credit: u32) -> Self {
        Self {
            server_credit: AtomicU32::new(server_credit),
            client_credit: AtomicU32::new(client_credit),
            granted: Notify::new(),
            exhausted: Notify::new(),
        }
    }

    /// The client granted `n` more response messages.
    pub(crate) fn grant_server(&self, n: u32) {
        let _ = self.server_credit.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| Some(c.saturating_add(n)));
        self.granted.notify_one();
    }

    /// Uses one unit of the client's request credit; `false` if it had none.
    pub(crate) fn take_client(&self) -> bool {
        match self.client_credit.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1)) {
            Ok(1) => {
                // The last one: the task grants what it has forwarded so far at once.
                self.exhausted.notify_one();
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }
}

/// Everything a call task needs; [`CallTask::run`] consumes it.
pub(crate) struct CallTask<S> {
    pub id: u64,
    pub invoker: Invoker<S>,
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
    /// The call's place among the socket's `max_calls`, held until this task ends.
    pub slot: CallSlot,
    pub _task: TaskGuard,
}

impl<S: GrpcService> CallTask<S> {
    /// Runs the call to its end; returns its id. Dropping the future (the socket closed)
    /// drops the in-process call, which cancels the handler.
    pub(crate) async fn run(mut self) -> u64 {
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
        let invoker = self.invoker.clone();
        let start = invoker.start(setup, messages, self.max_message);
        tokio::pin!(start);
        let mut running: Option<Call> = None;
        // A response message read while the client had granted no credit.
        let mut held: Option<Bytes> = None;
        let mut ungranted: u32 = 0;
        let grant_batch = (self.window / 2).max(1);

        loop {
            let has_credit = self.ctl.server_credit.load(Ordering::Acquire) > 0;
            if has_credit && let Some(bin) = held.take() {
                if !self.send_message(&bin).await {
                    return id;
                }
                continue;
            }
            // The branches only decide; the work happens below, once every borrow is over.
            // A stop comes first: when the session stops a call it also drops the call's
            // queue, which must not be mistaken for a half-close (the handler would then
            // finish, and report OK instead of the session's status).
            let step = tokio::select! {
                biased;
                stopped = &mut self.stop => Step::Stop(stopped.ok()),
                started = &mut start, if running.is_none() => Step::Started(started),
                event = next_event(&mut running), if running.is_some() && held.is_none() => Step::Event(event),
                () = self.ctl.granted.notified(), if held.is_some() => Step::Nothing,
                () = self.ctl.exhausted.notified(), if ungranted > 0 => Step::Exhausted,
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
                        self.finish(&status).await;
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
                    if self.ctl.server_credit.load(Ordering::Acquire) == 0 {
                        held = Some(bin);
                    } else if !self.send_message(&bin).await {
                        return id;
                    }
                }
                Step::Event(CallEvent::End(status)) => {
                    self.finish(&status).await;
                    return id;
                }
                Step::Forwarded => {
                    ungranted += 1;
                    let client_left = self.ctl.client_credit.load(Ordering::Acquire);
                    if (ungranted >= grant_batch || client_left == 0) && !self.grant(&mut ungranted).await {
                        return id;
                    }
                }
                Step::Exhausted => {
                    if self.ctl.client_credit.load(Ordering::Acquire) == 0 && !self.grant(&mut ungranted).await {
                        return id;
                    }
                }
                Step::RequestGone => {
                    // Half-closed, or the handler stopped reading its request stream: accept
                    // no more (and grant no more credit); the call's status follows.
                    pending = None;
                    request = None;
                    reading = false;
                    ungranted = 0;
                }
            }
        }
    }

    /// Sends one response message, using one unit of credit; `false` once the socket is gone
    /// or the call ended on a bad message.
    async fn send_message(&mut self, bin: &Bytes) -> bool {
        self.ctl.server_credit.fetch_sub(1, Ordering::AcqRel);
        match frames::message(self.id, self.method.response(), bin) {
            Ok(frame) => self.out.send(frame).await,
            Err(error) => {
                tracing::error!(method = self.method.path(), %error, "service sent an undecodable response");
                self.finish(&Status::internal("service sent an invalid response")).await;
                false
            }
        }
    }

    /// Grants the client the request credit the handler has taken; `false` once the socket
    /// is gone.
    async fn grant(&mut self, ungranted: &mut u32) -> bool {
        let n = std::mem::take(ungranted);
        if n == 0 {
            return true;
        }
        self.ctl.client_credit.fetch_add(n, Ordering::AcqRel);
        self.out.send(frames::credit(self.id, n)).await
    }

    /// Queues the call's last frame. The call stops counting as open for the client first;
    /// the task (and its slot) lives until the frame is queued.
    async fn finish(&mut self, status: &Status) {
        self.slot.ending();
        self.out.send(frames::status(self.id, status)).await;
    }
}

/// What one turn of a call task's loop found.
enum Step {
    Nothing,
    Stop(Option<Status>),
    Started(Call),
    Event(CallEvent),
    Forwarded,
    Exhausted,
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
