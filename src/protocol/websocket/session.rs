//! One socket: reads client frames, keeps the table of open calls, sends heartbeats and
//! closes dead peers. Written over any `Sink`/`Stream` of WebSocket messages, so it runs on
//! the real socket and, in tests, on channels.
//!
//! Three kinds of task serve a socket: this reader, a writer (the only task that touches the
//! sink, so frames of all calls interleave whole), and one task per call
//! ([`super::call`]). Frames wait for the writer in a queue of [`OUT_QUEUE`] frames; every
//! producer waits when it is full, so a client that stops reading stops the server.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{Id as TaskId, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tonic::Status;

use super::call::{CallCtl, CallGuard, CallTask, Inbound};
use super::frames::{self, ClientFrame, ClientKind, MAX_ID, Reason};
use crate::gateway::Shared;
use crate::metrics::Metrics;
use crate::transcode::call::is_reserved_header;
use crate::transcode::status::decode_bin_value;
use crate::transcode::{CallSetup, MethodDescriptor};

/// Frames waiting for the writer, at most.
pub const OUT_QUEUE: usize = 16;

/// Close code: nothing arrived for the idle timeout.
pub const CLOSE_IDLE: u16 = 4000;

/// The numbers a session enforces, resolved from [`crate::config::WebSocketConfig`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message JSON a client may send.
    pub max_message_bytes: usize,
    /// Calls open at once.
    pub max_calls: usize,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Silence (or a stuck write) after which the socket is closed.
    pub idle_timeout: Duration,
    /// Per-call credit, both directions.
    pub initial_credit: u32,
}

impl Limits {
    /// The limits `shared.config` asks for.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let ws = &config.websocket;
        Self {
            max_message_bytes: ws.max_message_bytes.unwrap_or(config.max_message_bytes),
            max_calls: ws.max_calls_per_socket,
            // A zero interval would spin (and tokio refuses it).
            heartbeat: ws.heartbeat_interval.max(Duration::from_millis(1)),
            idle_timeout: ws.idle_timeout.max(Duration::from_millis(1)),
            initial_credit: ws.initial_credit.max(1),
        }
    }
}

/// What every call on a socket inherits from the upgrade request.
pub struct SessionContext {
    /// The gateway's stack, methods, config and counters.
    pub shared: Arc<Shared>,
    /// Connection-level metadata (upgrade headers, cookies when trusted, the bearer token).
    pub metadata: HeaderMap,
    /// Request extensions carried into every call (the peer address).
    pub extensions: http::Extensions,
    /// The limits in force.
    pub limits: Limits,
}

/// Counts a live session task in `websocket_tasks` until dropped.
pub(super) struct TaskGuard(Arc<Metrics>);

impl TaskGuard {
    pub(super) fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.websocket_tasks.fetch_add(1, Ordering::Relaxed);
        Self(metrics.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.websocket_tasks.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts an open socket in `websockets_open` until dropped. Taken before the handshake,
/// so the socket limit also covers upgrades in progress.
pub struct SocketSlot(Arc<Metrics>);

impl SocketSlot {
    /// A slot, unless `max` sockets are open already.
    pub fn try_acquire(metrics: &Arc<Metrics>, max: usize) -> Option<Self> {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        metrics
            .websockets_open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Self(metrics.clone()))
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.websockets_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What waits for the writer: kept to 24 bytes (a `Message` takes twice that), because the
/// queue allocates room for a block of them on every socket, idle or not.
enum Out {
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
    /// Queues a text frame, waiting while the queue is full; `false` once the socket is gone.
    pub(super) async fn send(&self, text: String) -> bool {
        self.0.send(Out::Text(text)).await.is_ok()
    }

    async fn send_out(&self, out: Out) -> bool {
        self.0.send(out).await.is_ok()
    }
}

/// The session's view of an open call.
struct CallHandle {
    method: Arc<MethodDescriptor>,
    inbound: mpsc::Sender<Inbound>,
    ctl: Arc<CallCtl>,
    stop: oneshot::Sender<Status>,
    half_closed: bool,
    task: TaskId,
}

/// Serves one socket until it closes: `sink` and `stream` are its two halves.
pub async fn run<Si, St, E>(sink: Si, stream: St, ctx: SessionContext, slot: SocketSlot)
where
    Si: Sink<Message> + Send + Unpin + 'static,
    Si::Error: std::fmt::Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: Into<axum::BoxError>,
{
    let metrics = ctx.shared.metrics.clone();
    let _reader = TaskGuard::new(&metrics);
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(write_loop(sink, rx, ctx.limits.idle_timeout, TaskGuard::new(&metrics)));
    let mut session =
        Session { out: Outbox(tx), calls: JoinSet::new(), handles: HashMap::new(), high_water: None, ctx };
    session.read_loop(stream).await;
    // Dropping the session aborts every call task (each drops its call, cancelling the
    // handler) and the last queue sender, so the writer drains what is queued and ends.
    drop(session);
    let _ = writer.await;
    drop(slot);
}

struct Session {
    out: Outbox,
    calls: JoinSet<u64>,
    handles: HashMap<u64, CallHandle>,
    /// The highest id opened so far: frames for ids at or below it that are not open
    /// belong to calls that ended.
    high_water: Option<u64>,
    ctx: SessionContext,
}

/// What the read loop does after a frame.
enum Flow {
    Continue,
    /// Stop reading; send this close frame first, if any.
    Close(Option<CloseFrame>),
}

impl Session {
    async fn read_loop<St, E>(&mut self, mut stream: St)
    where
        St: Stream<Item = Result<Message, E>> + Unpin,
        E: Into<axum::BoxError>,
    {
        let limits = self.ctx.limits.clone();
        let hello = frames::Hello {
            kind: "hello",
            protocol: frames::SUBPROTOCOL,
            initial_credit: limits.initial_credit,
            max_message_bytes: limits.max_message_bytes,
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

        let close = loop {
            tokio::select! {
                () = self.out.0.closed() => break None, // the writer gave up
                Some(joined) = self.calls.join_next_with_id(), if !self.calls.is_empty() => {
                    let task = match &joined {
                        Ok((task, _)) => *task,
                        Err(e) => e.id(),
                    };
                    self.handles.retain(|_, h| h.task != task);
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
                        Some(Err(e)) => Flow::Close(close_for_read_error(e.into())),
                        None => Flow::Close(None),
                    };
                    if let Flow::Close(close) = flow {
                        break close;
                    }
                }
                _ = heartbeat.tick() => {
                    if !self.out.send(frames::HEARTBEAT.to_string()).await
                        || !self.out.send_out(Out::Ping).await
                    {
                        break None;
                    }
                }
                () = &mut idle => {
                    let deadline = last_heard + limits.idle_timeout;
                    if deadline <= Instant::now() {
                        tracing::debug!("closing an idle WebSocket");
                        break Some(CloseFrame {
                            code: CLOSE_IDLE,
                            reason: Utf8Bytes::from_static("idle timeout: nothing received from the client"),
                        });
                    }
                    idle.as_mut().reset(deadline);
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
            Message::Binary(_) => {
                self.error(None, Reason::BinaryFrame, "portway.v1.json uses text frames only").await;
                Flow::Continue
            }
            // The codec answers pings itself; any frame counts as a sign of life.
            Message::Ping(_) | Message::Pong(_) => Flow::Continue,
            Message::Close(_) => Flow::Close(None),
        }
    }

    /// The hot path: a message frame in canonical shape, for an open call, that its codec
    /// accepts. `None` for anything else, which takes the general path ([`Self::on_message`]).
    fn fast_path(&mut self, msg: &Message) -> Option<Flow> {
        let Message::Text(text) = msg else { return None };
        let (id, json) = frames::canonical_message(text.as_str())?;
        let handle = self.handles.get(&id)?;
        if json.len() > self.ctx.limits.max_message_bytes {
            return None;
        }
        let binary = handle.method.request().json_to_binary(json.as_bytes()).ok()?;
        Some(self.deliver(id, Bytes::from(binary), false))
    }

    /// A text frame that [`Self::fast_path`] did not take.
    async fn on_text(&mut self, text: &str) -> Flow {
        let frame: ClientFrame<'_> = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let id = frames::salvage_id(text);
                self.error(id, Reason::MalformedFrame, &format!("invalid frame: {e}")).await;
                return Flow::Continue;
            }
        };
        if frame.kind == ClientKind::Ping {
            return self.reply(frames::pong(frame.data)).await;
        }
        let id = match frame.id {
            Some(id) if id <= MAX_ID => id,
            Some(id) => {
                let msg = format!("call ids are integers from 0 to 2^53-1, not {id}");
                self.error(None, Reason::MalformedFrame, &msg).await;
                return Flow::Continue;
            }
            None => {
                self.error(None, Reason::MalformedFrame, "this frame needs an \"id\"").await;
                return Flow::Continue;
            }
        };
        match frame.kind {
            ClientKind::Open => self.open(id, frame).await,
            ClientKind::Message => self.message(id, frame).await,
            ClientKind::HalfClose => self.half_close(id).await,
            ClientKind::Cancel => {
                if self.handles.contains_key(&id) {
                    self.stop(id, Status::cancelled("cancelled by the client"));
                    Flow::Continue
                } else {
                    self.not_open(id, "cancel").await
                }
            }
            ClientKind::Credit => match (self.handles.get(&id), frame.credit) {
                (_, None) => {
                    self.error(Some(id), Reason::MalformedFrame, "a credit frame needs \"credit\"").await;
                    Flow::Continue
                }
                (Some(h), Some(n)) => {
                    h.ctl.grant_server(n);
                    Flow::Continue
                }
                (None, Some(_)) => self.not_open(id, "credit").await,
            },
            ClientKind::Ping => Flow::Continue,
        }
    }

    async fn open(&mut self, id: u64, frame: ClientFrame<'_>) -> Flow {
        if self.handles.contains_key(&id) {
            let msg = format!("call {id} is already open; this open was ignored");
            return self.error_flow(Some(id), Reason::DuplicateId, &msg).await;
        }
        if let Some(hw) = self.high_water
            && id <= hw
        {
            let msg = format!("call ids must increase: {id} is not above {hw}, the last id opened");
            return self.error_flow(Some(id), Reason::StaleId, &msg).await;
        }
        self.high_water = Some(id);
        match self.prepare(id, frame) {
            Ok(PreparedCall { task, inbound, stop }) => {
                let (method, ctl, half_closed) = (task.method.clone(), task.ctl.clone(), task.ended_at_open);
                let task_id = self.calls.spawn(task.run()).id();
                self.handles.insert(id, CallHandle { method, inbound, ctl, stop, half_closed, task: task_id });
                Flow::Continue
            }
            Err(status) => self.reply(frames::status(id, &status)).await,
        }
    }

    /// Checks an `open` frame and builds its task, or the status that refuses it.
    fn prepare(&mut self, id: u64, frame: ClientFrame<'_>) -> Result<PreparedCall, Status> {
        let limits = &self.ctx.limits;
        let path = frame.method.ok_or_else(|| Status::invalid_argument("an open frame needs a \"method\""))?;
        let method = self.ctx.shared.methods.get(&path).cloned().ok_or_else(|| {
            let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
            if self.ctx.shared.methods.has_service(service) {
                Status::unimplemented(format!("unknown method {path}"))
            } else {
                Status::unimplemented(format!("unknown service {service}"))
            }
        })?;
        if self.handles.len() >= limits.max_calls {
            return Err(Status::resource_exhausted(format!(
                "too many open calls on this socket (the limit is {})",
                limits.max_calls
            )));
        }
        let metadata = merge_metadata(&self.ctx.metadata, frame.metadata.unwrap_or_default())?;
        let first = match frame.message {
            Some(raw) => Some(to_binary(&method, raw.get(), limits.max_message_bytes)?),
            None => None,
        };
        let window = limits.initial_credit;
        let client_credit = window - u32::from(first.is_some());
        let ctl = Arc::new(CallCtl::new(frame.credit.unwrap_or(window), client_credit));
        let setup = CallSetup {
            path: path.into_owned(),
            metadata,
            timeout: frame.timeout_ms.map(Duration::from_millis),
            extensions: self.ctx.extensions.clone(),
        };
        // Room for every message the client may send without a grant, and the half-close.
        let (inbound_tx, inbound_rx) = mpsc::channel(window as usize + 1);
        let (stop_tx, stop_rx) = oneshot::channel();
        let metrics = &self.ctx.shared.metrics;
        Ok(PreparedCall {
            task: CallTask {
                id,
                shared: self.ctx.shared.clone(),
                method,
                setup,
                first,
                ended_at_open: frame.end,
                inbound: inbound_rx,
                ctl,
                stop: stop_rx,
                out: self.out.clone(),
                window,
                max_message: self.ctx.shared.config.max_message_bytes,
                _guards: (TaskGuard::new(metrics), CallGuard::new(metrics)),
            },
            inbound: inbound_tx,
            stop: stop_tx,
        })
    }

    async fn message(&mut self, id: u64, frame: ClientFrame<'_>) -> Flow {
        let Some(handle) = self.handles.get(&id) else {
            return self.not_open(id, "message").await;
        };
        let Some(raw) = frame.message else {
            return self.error_flow(Some(id), Reason::MalformedFrame, "a message frame needs a \"message\"").await;
        };
        match to_binary(&handle.method, raw.get(), self.ctx.limits.max_message_bytes) {
            Ok(binary) => self.deliver(id, binary, frame.end),
            Err(status) => {
                self.stop(id, status);
                Flow::Continue
            }
        }
    }

    /// Hands one request message (and maybe the half-close) to open call `id`.
    fn deliver(&mut self, id: u64, binary: Bytes, end: bool) -> Flow {
        let Some(handle) = self.handles.get_mut(&id) else { return Flow::Continue };
        if handle.half_closed {
            self.stop(id, Status::invalid_argument("message after half-close"));
            return Flow::Continue;
        }
        if !handle.ctl.take_client() {
            self.stop(id, Status::resource_exhausted("flow control: message sent without credit"));
            return Flow::Continue;
        }
        match handle.inbound.try_send(Inbound::Message(binary)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stop(id, Status::resource_exhausted("flow control: message sent without credit"));
                return Flow::Continue;
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
            return self.error_flow(Some(id), Reason::AlreadyHalfClosed, "the call was already half-closed").await;
        }
        handle.half_closed = true;
        // The queue always has room for the half-close; if the call ended, nothing to do.
        let _ = handle.inbound.try_send(Inbound::HalfClose);
        Flow::Continue
    }

    /// Ends call `id` early: its task drops the call and reports `status`.
    fn stop(&mut self, id: u64, status: Status) {
        if let Some(handle) = self.handles.remove(&id) {
            let _ = handle.stop.send(status);
        }
    }

    /// A frame for an id that is not open: an ended call's (dropped) or an unknown one.
    async fn not_open(&mut self, id: u64, kind: &str) -> Flow {
        if self.high_water.is_some_and(|hw| id <= hw) {
            return Flow::Continue;
        }
        let msg = format!("{kind} for call {id}, which was never opened");
        self.error_flow(Some(id), Reason::UnknownId, &msg).await
    }

    async fn error(&self, id: Option<u64>, reason: Reason, message: &str) {
        self.out.send(frames::error(id, reason, message)).await;
    }

    async fn error_flow(&self, id: Option<u64>, reason: Reason, message: &str) -> Flow {
        self.reply(frames::error(id, reason, message)).await
    }

    async fn reply(&self, frame: String) -> Flow {
        if self.out.send(frame).await { Flow::Continue } else { Flow::Close(None) }
    }
}

/// A call ready to spawn, with the session's ends of its channels.
struct PreparedCall {
    task: CallTask,
    inbound: mpsc::Sender<Inbound>,
    stop: oneshot::Sender<Status>,
}

/// Transcodes one request message, enforcing the message limit on its JSON text.
fn to_binary(method: &MethodDescriptor, json: &str, limit: usize) -> Result<Bytes, Status> {
    if json.len() > limit {
        return Err(Status::resource_exhausted(format!(
            "message of {} bytes is larger than the limit of {limit} bytes",
            json.len()
        )));
    }
    method.request().json_to_binary(json.as_bytes()).map(Bytes::from).map_err(|e| Status::invalid_argument(e.0))
}

/// The call's metadata: the connection's, with the frame's keys replacing theirs.
fn merge_metadata(connection: &HeaderMap, per_call: frames::Metadata) -> Result<HeaderMap, Status> {
    let mut out = connection.clone();
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (key, values) in per_call.0 {
        let name = HeaderName::from_bytes(key.as_bytes())
            .ok()
            .filter(|n| n.as_str() == key)
            .ok_or_else(|| Status::invalid_argument(format!("invalid metadata key {key:?} (keys are lower-case)")))?;
        if is_reserved_header(&name) {
            return Err(Status::invalid_argument(format!("metadata key {key:?} is reserved")));
        }
        if !replaced.contains(&name) {
            out.remove(&name);
            replaced.push(name.clone());
        }
        for value in values {
            if key.ends_with("-bin") && decode_bin_value(&value).is_none() {
                return Err(Status::invalid_argument(format!("metadata {key:?} is not base64")));
            }
            let value = HeaderValue::from_str(&value)
                .map_err(|_| Status::invalid_argument(format!("invalid value for metadata {key:?}")))?;
            out.append(name.clone(), value);
        }
    }
    Ok(out)
}

/// The close frame for a read error, when the socket can still carry one.
fn close_for_read_error(error: axum::BoxError) -> Option<CloseFrame> {
    // axum wraps the codec's error; look through both layers.
    let inner: axum::BoxError = match error.downcast::<axum::Error>() {
        Ok(e) => e.into_inner(),
        Err(e) => e,
    };
    let Some(e) = inner.downcast_ref::<tungstenite::Error>() else {
        tracing::debug!(error = %inner, "WebSocket read failed");
        return None;
    };
    let (code, reason) = match e {
        tungstenite::Error::Capacity(c) => (1009, c.to_string()),
        tungstenite::Error::Utf8(_) => (1007, "text frame is not valid UTF-8".to_string()),
        tungstenite::Error::Protocol(p) => (1002, p.to_string()),
        other => {
            tracing::debug!(error = %other, "WebSocket read failed");
            return None;
        }
    };
    tracing::debug!(code, %reason, "closing a WebSocket after a read error");
    // A close reason is at most 123 bytes.
    let mut reason = reason;
    if reason.len() > 123 {
        let mut cut = 123;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    Some(CloseFrame { code, reason: Utf8Bytes::from(reason) })
}

/// The writer: the only user of the sink. Feeds queued frames and flushes when the queue
/// runs dry, so bursts go out in few writes. A write stuck for `timeout` ends the socket.
async fn write_loop<Si>(mut sink: Si, mut rx: mpsc::Receiver<Out>, timeout: Duration, _task: TaskGuard)
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
    //! The session over channels instead of a socket.

    use std::convert::Infallible;

    use tower::util::BoxCloneSyncService;

    use super::*;
    use crate::config::Config;
    use crate::services::{ServiceOptions, mount};
    use crate::transcode::MethodTable;

    struct Harness {
        to_server: mpsc::Sender<Result<Message, Infallible>>,
        from_server: mpsc::Receiver<Message>,
        metrics: Arc<Metrics>,
        session: tokio::task::JoinHandle<()>,
    }

    async fn harness(config: Config) -> Harness {
        let options = ServiceOptions { interop: true, ..Default::default() };
        let mounted = mount(&options).await.expect("mount");
        let shared = Arc::new(Shared {
            stack: BoxCloneSyncService::new(mounted.routes),
            methods: MethodTable::generated(),
            metrics: Arc::default(),
            config,
        });
        let metrics = shared.metrics.clone();
        let (to_server, inbound) = mpsc::channel(8);
        let (outbound, from_server) = mpsc::channel(8);
        let sink =
            Box::pin(futures_util::sink::unfold(outbound, |tx: mpsc::Sender<Message>, msg: Message| async move {
                tx.send(msg).await.map(|()| tx).map_err(|_| "receiver gone")
            }));
        let stream = tokio_stream::wrappers::ReceiverStream::new(inbound);
        let slot = SocketSlot::try_acquire(&metrics, 1).expect("a slot");
        let limits = Limits::from_config(&shared.config);
        let ctx = SessionContext { shared, metadata: HeaderMap::new(), extensions: http::Extensions::new(), limits };
        let session = tokio::spawn(run(sink, stream, ctx, slot));
        Harness { to_server, from_server, metrics, session }
    }

    impl Harness {
        async fn send(&self, text: &str) {
            self.to_server.send(Ok(Message::Text(text.into()))).await.expect("session reads");
        }

        async fn recv(&mut self) -> serde_json::Value {
            loop {
                match self.from_server.recv().await.expect("a frame") {
                    Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
                    Message::Ping(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    #[test]
    fn queued_frames_stay_small() {
        // Every socket's writer queue allocates a block of these, idle or not.
        assert!(std::mem::size_of::<Out>() <= 24, "Out is {} bytes", std::mem::size_of::<Out>());
    }

    #[tokio::test]
    async fn serves_calls_over_channels_and_cleans_up() {
        let mut h = harness(Config::default()).await;
        assert_eq!(h.recv().await["type"], "hello");
        h.send(r#"{"type":"open","id":1,"method":"/grpc.testing.TestService/UnaryCall","message":{"responseSize":2},"end":true}"#)
            .await;
        assert_eq!(h.recv().await["type"], "headers");
        assert_eq!(h.recv().await, serde_json::json!({"type":"message","id":1,"message":{"payload":{"body":"AAA="}}}));
        assert_eq!(h.recv().await["code"], "ok");
        h.send(r#"{"type":"ping","data":1}"#).await;
        assert_eq!(h.recv().await, serde_json::json!({"type":"pong","data":1}));

        // A stream left open; ending the input cancels it and ends every task.
        h.send(r#"{"type":"open","id":2,"method":"/grpc.testing.TestService/FullDuplexCall"}"#).await;
        assert_eq!(h.recv().await["type"], "headers");
        assert_eq!(h.metrics.websocket_calls_open.load(Ordering::Relaxed), 1);
        assert_eq!(h.metrics.websocket_tasks.load(Ordering::Relaxed), 3);
        drop(h.to_server);
        h.session.await.expect("session ends");
        assert_eq!(h.metrics.websockets_open.load(Ordering::Relaxed), 0);
        assert_eq!(h.metrics.websocket_tasks.load(Ordering::Relaxed), 0);
        // Call tasks are aborted when the session ends; their guards drop with them.
        for _ in 0..100 {
            if h.metrics.websocket_calls_open.load(Ordering::Relaxed) == 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the call gauge did not return to zero");
    }

    #[tokio::test]
    async fn idle_sessions_are_closed() {
        let mut config = Config::default();
        config.websocket.heartbeat_interval = Duration::from_millis(40);
        config.websocket.idle_timeout = Duration::from_millis(100);
        let mut h = harness(config).await;
        assert_eq!(h.recv().await["type"], "hello");
        // Two heartbeats (and pings) pass unanswered, then the close.
        assert_eq!(h.recv().await["type"], "heartbeat");
        assert_eq!(h.recv().await["type"], "heartbeat");
        loop {
            match h.from_server.recv().await.expect("a frame") {
                Message::Close(Some(c)) => {
                    assert_eq!(c.code, CLOSE_IDLE);
                    break;
                }
                Message::Ping(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        h.session.await.expect("session ends");
        assert_eq!(h.metrics.websocket_tasks.load(Ordering::Relaxed), 0);
    }
}
