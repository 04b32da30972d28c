//! One socket: reads client frames, keeps the table of open calls, sends heartbeats and
//! closes dead peers. Written over any `Sink`/`Stream` of WebSocket messages, so it runs on
//! the real socket and, in tests, on channels.
//!
//! Three kinds of task serve a socket: this reader, a writer ([`super::writer`], the only
//! task that touches the sink) and one task per call ([`super::call`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, Stream, StreamExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{Id as TaskId, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tonic::Status;

use super::call::{CallCtl, Inbound};
use super::close_code;
use super::drain::{self, SessionDrain};
use super::frames::server::{self as frames, Hello};
use super::frames::{ClientFrame, Open, ParseError, Reason, SUBPROTOCOL, canonical_message};
use super::guards::{CallSlots, SocketPermit, TaskGuard};
use super::open::{PreparedCall, prepare, to_binary};
use super::settings::SessionContext;
use super::writer::{Out, Outbox, write_loop};
use crate::metrics::Metrics;
use crate::transcode::{GrpcService, MethodDescriptor};

/// The session's view of an open call.
struct CallHandle {
    method: Arc<MethodDescriptor>,
    inbound: mpsc::Sender<Inbound>,
    ctl: Arc<CallCtl>,
    stop: oneshot::Sender<Status>,
    half_closed: bool,
    task: TaskId,
}

/// Serves one socket until it closes: `sink` and `stream` are its two halves. `permit` is
/// the socket's place among the gateway's sockets, given back when the session ends.
pub(crate) async fn run<S, Si, St, E>(
    sink: Si,
    stream: St,
    ctx: SessionContext<S>,
    metrics: Arc<Metrics>,
    permit: SocketPermit,
) where
    S: GrpcService,
    Si: Sink<Message> + Send + Unpin + 'static,
    Si::Error: std::fmt::Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: Into<axum::BoxError>,
{
    let _reader = TaskGuard::new(&metrics);
    let (out, rx) = Outbox::new();
    let writer = tokio::spawn(write_loop(sink, rx, ctx.limits.idle_timeout, TaskGuard::new(&metrics)));
    let slots = CallSlots::new(ctx.limits.max_calls);
    let mut session =
        Session { out, calls: JoinSet::new(), handles: HashMap::new(), high_water: None, slots, metrics, ctx };
    session.read_loop(stream).await;
    // Dropping the session aborts every call task (each drops its call, cancelling the
    // handler) and the last queue sender, so the writer drains what is queued and ends.
    drop(session);
    let _ = writer.await;
    drop(permit);
}

struct Session<S> {
    out: Outbox,
    calls: JoinSet<u64>,
    handles: HashMap<u64, CallHandle>,
    /// The highest id opened so far: frames for ids at or below it that are not open
    /// belong to calls that ended (or to ids the client skipped).
    high_water: Option<u64>,
    slots: Arc<CallSlots>,
    metrics: Arc<Metrics>,
    ctx: SessionContext<S>,
}

/// What the read loop does after a frame.
enum Flow {
    Continue,
    /// Stop reading; send this close frame first, if any.
    Close(Option<CloseFrame>),
}

impl<S: GrpcService> Session<S> {
    async fn read_loop<St, E>(&mut self, mut stream: St)
    where
        St: Stream<Item = Result<Message, E>> + Unpin,
        E: Into<axum::BoxError>,
    {
        let limits = self.ctx.limits.clone();
        let hello = Hello {
            kind: "hello",
            protocol: SUBPROTOCOL,
            initial_credit: limits.initial_credit,
            max_message_bytes: limits.announced_message_bytes(),
            max_calls: limits.max_calls,
            heartbeat_ms: u64::try_from(limits.heartbeat.as_millis()).unwrap_or(u64::MAX),
            idle_timeout_ms: u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        if !self.out.send(frames::hello(&hello)).await {
            return;
        }
        let mut heartbeat = tokio::time::interval_at(Instant::now() + limits.heartbeat, limits.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let idle = tokio::time::sleep(limits.idle_timeout);
        tokio::pin!(idle);
        let mut drain = SessionDrain::new(&self.ctx.shutdown);

        let close = loop {
            if drain.is_draining() && self.calls.is_empty() {
                break Some(drain::going_away());
            }
            // Biased, frames last: a call task that ended is joined (and its handle
            // dropped) before the next frame is read, so ended calls never pile up.
            tokio::select! {
                biased;
                () = self.out.closed() => break None, // the writer gave up
                Some(joined) = self.calls.join_next_with_id(), if !self.calls.is_empty() => {
                    match joined {
                        Ok((task, id)) => {
                            if self.handles.get(&id).is_some_and(|h| h.task == task) {
                                self.handles.remove(&id);
                            }
                        }
                        Err(e) => {
                            let task = e.id();
                            self.handles.retain(|_, h| h.task != task);
                        }
                    }
                }
                () = drain.begun() => {}
                _ = heartbeat.tick() => {
                    if !self.out.send(frames::HEARTBEAT.to_string()).await || !self.out.send_out(Out::Ping).await {
                        break None;
                    }
                }
                () = &mut idle => {
                    let deadline = last_heard + limits.idle_timeout;
                    if deadline <= Instant::now() {
                        tracing::debug!("closing an idle WebSocket");
                        break Some(CloseFrame {
                            code: close_code::IDLE,
                            reason: Utf8Bytes::from_static("idle timeout: nothing received from the client"),
                        });
                    }
                    idle.as_mut().reset(deadline);
                }
                frame = stream.next() => {
                    last_heard = Instant::now();
                    let flow = match frame {
                        // Message frames take the synchronous fast path; everything else is
                        // boxed, so that its (large) future is not part of every idle
                        // socket's state.
                        Some(Ok(msg)) => match self.fast_path(&msg) {
                            Some(flow) => flow,
                            None => Box::pin(self.on_message(msg)).await,
                        },
                        Some(Err(e)) => Flow::Close(close_code::for_read_error(e.into())),
                        None => Flow::Close(None),
                    };
                    if let Flow::Close(close) = flow {
                        break close;
                    }
                }
            }
        };
        if let Some(close) = close {
            // Best effort: the writer may be gone already.
            let _ = tokio::time::timeout(limits.idle_timeout, self.out.send_out(Out::Close(Box::new(close)))).await;
        }
    }

    async fn on_message(&mut self, msg: Message) -> Flow {
        match msg {
            Message::Text(text) => self.on_text(text.as_str()).await,
            Message::Binary(_) => self.error(None, Reason::BinaryFrame, "portway.v1.json uses text frames only").await,
            // The codec answers pings itself; any frame counts as a sign of life.
            Message::Ping(_) | Message::Pong(_) => Flow::Continue,
            Message::Close(_) => Flow::Close(None),
        }
    }

    /// The hot path: a message frame in canonical shape, for an open call, that its codec
    /// accepts. `None` for anything else, which takes the general path ([`Self::on_message`]).
    fn fast_path(&mut self, msg: &Message) -> Option<Flow> {
        let Message::Text(text) = msg else { return None };
        let (id, json) = canonical_message(text.as_str())?;
        let handle = self.handles.get(&id)?;
        if json.len() > self.ctx.limits.max_message_bytes {
            return None;
        }
        let binary = handle.method.request().json_to_binary(json.as_bytes()).ok()?;
        Some(self.deliver(id, Bytes::from(binary), false))
    }

    /// A text frame that [`Self::fast_path`] did not take.
    async fn on_text(&mut self, text: &str) -> Flow {
        match ClientFrame::parse(text) {
            Ok(ClientFrame::Ping { data }) => self.reply(frames::pong(data)).await,
            Ok(ClientFrame::Open(open)) => self.open(open).await,
            Ok(ClientFrame::Message { id, message, end }) => {
                let Some(handle) = self.handles.get(&id) else { return self.not_open(id, "message").await };
                match to_binary(&handle.method, message.get(), self.ctx.limits.max_message_bytes) {
                    Ok(binary) => self.deliver(id, binary, end),
                    Err(status) => self.stop(id, status),
                }
            }
            Ok(ClientFrame::HalfClose { id }) => self.half_close(id).await,
            Ok(ClientFrame::Cancel { id }) => {
                if self.handles.contains_key(&id) {
                    self.stop(id, Status::cancelled("cancelled by the client"))
                } else {
                    self.not_open(id, "cancel").await
                }
            }
            Ok(ClientFrame::Credit { id, credit }) => match self.handles.get(&id) {
                Some(h) => {
                    h.ctl.grant_server(credit);
                    Flow::Continue
                }
                None => self.not_open(id, "credit").await,
            },
            Err(ParseError::Malformed { id, message }) => self.error(id, Reason::MalformedFrame, &message).await,
            Err(ParseError::Refused { id, status }) => match self.claim_id(id).await {
                Ok(()) => self.reply(frames::status(id, &status)).await,
                Err(flow) => flow,
            },
        }
    }

    /// Takes `id` for a new call: it must not be open, and must be above every id opened
    /// before. `Err` holds what to do instead (an error frame was sent).
    async fn claim_id(&mut self, id: u64) -> Result<(), Flow> {
        if self.handles.contains_key(&id) {
            let msg = format!("call {id} is already open; this open was ignored");
            return Err(self.error(Some(id), Reason::DuplicateId, &msg).await);
        }
        if let Some(hw) = self.high_water
            && id <= hw
        {
            let msg = format!("call ids must increase: {id} is not above {hw}, the last id opened");
            return Err(self.error(Some(id), Reason::StaleId, &msg).await);
        }
        self.high_water = Some(id);
        Ok(())
    }

    async fn open(&mut self, open: Open<'_>) -> Flow {
        let id = open.id;
        if let Err(flow) = self.claim_id(id).await {
            return flow;
        }
        if self.ctx.shutdown.is_draining() {
            return self.reply(frames::status(id, &drain::refused())).await;
        }
        let method = match self.ctx.invoker.resolve(&open.method) {
            Ok(m) => m,
            Err(status) => return self.reply(frames::status(id, &status)).await,
        };
        // Waits (and so stops reading) while every slot is held by a call whose last frame
        // has not reached the writer yet.
        let Some(slot) = self.slots.acquire(&self.metrics).await else {
            let status = Status::resource_exhausted(format!(
                "too many open calls on this socket (the limit is {})",
                self.ctx.limits.max_calls
            ));
            return self.reply(frames::status(id, &status)).await;
        };
        match prepare(&self.ctx, open, method, slot, &self.out, &self.metrics) {
            Ok(PreparedCall { task, inbound, stop }) => {
                let (method, ctl, half_closed) = (task.method.clone(), task.ctl.clone(), task.ended_at_open);
                let task_id = self.calls.spawn(task.run()).id();
                self.handles.insert(id, CallHandle { method, inbound, ctl, stop, half_closed, task: task_id });
                Flow::Continue
            }
            Err(status) => self.reply(frames::status(id, &status)).await,
        }
    }

    /// Hands one request message (and maybe the half-close) to open call `id`.
    fn deliver(&mut self, id: u64, binary: Bytes, end: bool) -> Flow {
        let Some(handle) = self.handles.get_mut(&id) else { return Flow::Continue };
        if handle.half_closed {
            return self.stop(id, Status::invalid_argument("message after half-close"));
        }
        if !handle.ctl.take_client() {
            return self.stop(id, Status::resource_exhausted("flow control: message sent without credit"));
        }
        match handle.inbound.try_send(Inbound::Message(binary)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return self.stop(id, Status::resource_exhausted("flow control: message sent without credit"));
            }
            // The call ended; its status is on the way.
            Err(mpsc::error::TrySendError::Closed(_)) => return Flow::Continue,
        }
        if end {
            handle.half_closed = true;
            let _ = handle.inbound.try_send(Inbound::HalfClose);
        }
        Flow::Continue
    }

    async fn half_close(&mut self, id: u64) -> Flow {
        let Some(handle) = self.handles.get_mut(&id) else {
            return self.not_open(id, "half_close").await;
        };
        if handle.half_closed {
            return self.error(Some(id), Reason::AlreadyHalfClosed, "the call was already half-closed").await;
        }
        handle.half_closed = true;
        // The queue always has room for the half-close; if the call ended, nothing to do.
        let _ = handle.inbound.try_send(Inbound::HalfClose);
        Flow::Continue
    }

    /// Ends call `id` early: its task drops the call and reports `status`.
    fn stop(&mut self, id: u64, status: Status) -> Flow {
        if let Some(handle) = self.handles.remove(&id) {
            let _ = handle.stop.send(status);
        }
        Flow::Continue
    }

    /// A frame for an id that is not open. At or below the highest id opened, it belongs to
    /// a call that ended (the frame raced with its end) or to an id the client skipped: the
    /// session remembers only the highest id, so both are dropped silently. Above it, the
    /// id was never opened.
    async fn not_open(&mut self, id: u64, kind: &str) -> Flow {
        if self.high_water.is_some_and(|hw| id <= hw) {
            return Flow::Continue;
        }
        let msg = format!("{kind} for call {id}, which was never opened");
        self.error(Some(id), Reason::UnknownId, &msg).await
    }

    async fn error(&self, id: Option<u64>, reason: Reason, message: &str) -> Flow {
        self.reply(frames::error(id, reason, message)).await
    }

    async fn reply(&self, frame: String) -> Flow {
        if self.out.send(frame).await { Flow::Continue } else { Flow::Close(None) }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
