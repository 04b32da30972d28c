//! The session over channels instead of a socket, on a stub stack.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::Message;
use http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::super::close_code;
use super::super::guards::SocketPermit;
use super::super::settings::{Limits, SessionContext};
use super::*;
use crate::config::Config;
use crate::testing::Stub;
use crate::transcode::{Invoker, MethodTable};

const TS: &str = "/grpc.testing.TestService";

struct Harness {
    to_server: mpsc::Sender<Result<Message, Infallible>>,
    from_server: mpsc::Receiver<Message>,
    metrics: Arc<Metrics>,
    stub: Stub,
    session: tokio::task::JoinHandle<()>,
}

/// A session on the stub stack; the client's side of the sink holds `out` frames.
fn harness_with(config: Config, out: usize) -> Harness {
    let stub = Stub::default();
    let invoker = Invoker::new(stub.clone(), crate::transcode::SharedMethods::new(MethodTable::generated()));
    let metrics = Arc::new(Metrics::default());
    let (to_server, inbound) = mpsc::channel(8);
    let (outbound, from_server) = mpsc::channel(out);
    let sink = Box::pin(futures_util::sink::unfold(outbound, |tx: mpsc::Sender<Message>, msg: Message| async move {
        tx.send(msg).await.map(|()| tx).map_err(|_| "receiver gone")
    }));
    let stream = tokio_stream::wrappers::ReceiverStream::new(inbound);
    let permit = SocketPermit::try_acquire(&Arc::new(Semaphore::new(1)), &metrics).expect("a permit");
    let limits = Limits::from_config(&config);
    let ctx = SessionContext {
        invoker,
        metadata: HeaderMap::new(),
        extensions: http::Extensions::new(),
        limits,
        shutdown: Default::default(),
    };
    let session = tokio::spawn(run(sink, stream, ctx, metrics.clone(), permit));
    Harness { to_server, from_server, metrics, stub, session }
}

fn harness(config: Config) -> Harness {
    harness_with(config, 8)
}

impl Harness {
    async fn send(&self, frame: Value) {
        self.to_server.send(Ok(Message::Text(frame.to_string().into()))).await.expect("session reads");
    }

    /// The next text frame. A frame that never comes fails the test instead of hanging it.
    async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.from_server.recv())
                .await
                .expect("a frame within 30 s")
                .expect("a frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
                Message::Ping(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn hello(&mut self) {
        assert_eq!(self.recv().await["type"], "hello");
    }

    fn tasks(&self) -> u64 {
        self.metrics.websocket_tasks.load(Ordering::Relaxed)
    }
}

#[tokio::test]
async fn serves_calls_over_channels_and_cleans_up() {
    let mut h = harness(Config::default());
    h.hello().await;
    h.send(json!({"type":"open","id":1,"method":format!("{TS}/UnaryCall"),"message":{},"end":true})).await;
    assert_eq!(h.recv().await["type"], "headers");
    assert_eq!(h.recv().await, json!({"type":"message","id":1,"message":{}}));
    assert_eq!(h.recv().await, json!({"type":"status","id":1,"code":"ok","trailers":{"x-stub":["t"]}}));
    h.send(json!({"type":"ping","data":1})).await;
    assert_eq!(h.recv().await, json!({"type":"pong","data":1}));

    // A stream left open; ending the input cancels it and ends every task.
    h.send(json!({"type":"open","id":2,"method":format!("{TS}/FullDuplexCall")})).await;
    assert_eq!(h.recv().await["type"], "headers");
    assert_eq!(h.metrics.websocket_calls_open.load(Ordering::Relaxed), 1);
    assert_eq!(h.tasks(), 3);
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
    let mut h = harness(config);
    h.hello().await;
    // Two heartbeats (and pings) pass unanswered, then the close.
    assert_eq!(h.recv().await["type"], "heartbeat");
    assert_eq!(h.recv().await["type"], "heartbeat");
    loop {
        match h.from_server.recv().await.expect("a frame") {
            Message::Close(Some(c)) => {
                assert_eq!(c.code, close_code::IDLE);
                break;
            }
            Message::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    h.session.await.expect("session ends");
    assert_eq!(h.metrics.websocket_tasks.load(Ordering::Relaxed), 0);
}

/// A client that never reads and sends `open` + `cancel` pairs: every cancelled call's task
/// waits for the writer to take its `status`, and holds its call slot until then, so the
/// session stops reading once `max_calls` tasks wait, instead of piling tasks up.
#[tokio::test(start_paused = true)]
async fn cancelled_calls_count_until_their_task_ends() {
    const MAX_CALLS: usize = 4;
    let mut config = Config::default();
    config.websocket.max_calls_per_socket = MAX_CALLS;
    // The client's side of the sink holds one frame and is never read.
    let h = harness_with(config, 1);
    let mut sent = 0;
    for id in 1..=10_000u64 {
        let open = json!({"type":"open","id":id,"method":format!("{TS}/FullDuplexCall")});
        let cancel = json!({"type":"cancel","id":id});
        // Time only passes (paused, it jumps) when every task is blocked: a send that does
        // not complete within a second means the session has stopped reading.
        let pair = async {
            h.send(open).await;
            h.send(cancel).await;
        };
        if tokio::time::timeout(Duration::from_secs(1), pair).await.is_err() {
            break;
        }
        sent += 1;
        // The reader, the writer and at most one task per call slot.
        assert!(h.tasks() <= 2 + MAX_CALLS as u64, "{} tasks after {sent} open+cancel pairs", h.tasks());
        assert!(h.metrics.websocket_calls_open.load(Ordering::Relaxed) <= MAX_CALLS as u64);
    }
    assert!(sent < 10_000, "the session kept reading from a client that never reads");
    assert!(h.tasks() <= 2 + MAX_CALLS as u64, "{} tasks", h.tasks());
}

#[tokio::test]
async fn status_frames_need_no_credit() {
    let mut h = harness(Config::default());
    h.hello().await;
    // Unary with credit 1: the message uses it, the status needs none.
    h.send(json!({"type":"open","id":1,"method":format!("{TS}/UnaryCall"),"credit":1,"message":{},"end":true})).await;
    assert_eq!(h.recv().await["type"], "headers");
    assert_eq!(h.recv().await["type"], "message");
    assert_eq!(h.recv().await["code"], "ok");
    // An error with credit 0.
    h.send(json!({"type":"open","id":2,"method":format!("{TS}/UnimplementedCall"),"credit":0,"message":{},"end":true}))
        .await;
    assert_eq!(h.recv().await["type"], "headers");
    let status = h.recv().await;
    assert_eq!((status["id"].as_u64(), status["code"].as_str()), (Some(2), Some("not_found")), "{status}");
    // Two messages with credit 1: one, then the second waits for a grant; the status after it.
    h.send(
        json!({"type":"open","id":3,"method":format!("{TS}/StreamingOutputCall"),"credit":1,"message":{},"end":true}),
    )
    .await;
    assert_eq!(h.recv().await["type"], "headers");
    assert_eq!(h.recv().await["type"], "message");
    h.send(json!({"type":"ping","data":"between"})).await;
    assert_eq!(h.recv().await["type"], "pong", "the second message waits for credit");
    h.send(json!({"type":"credit","id":3,"credit":1})).await;
    assert_eq!(h.recv().await["type"], "message");
    assert_eq!(h.recv().await["code"], "ok");
}

/// A handler that stops reading lets the client send `initialCredit` + 1 messages: one sits
/// in the handler's request stream, and the server grants it back once the client has used
/// its last credit.
#[tokio::test]
async fn a_stalled_handler_admits_initial_credit_plus_one() {
    let mut config = Config::default();
    config.websocket.initial_credit = 4;
    let mut h = harness(config);
    h.hello().await;
    h.send(json!({"type":"open","id":1,"method":format!("{TS}/StreamingInputCall")})).await;
    assert_eq!(h.recv().await["type"], "headers");
    for _ in 0..4 {
        h.send(json!({"type":"message","id":1,"message":{}})).await;
    }
    assert_eq!(h.recv().await, json!({"type":"credit","id":1,"credit":1}));
    h.send(json!({"type":"message","id":1,"message":{}})).await;
    // The sixth has no credit: the call ends.
    h.send(json!({"type":"message","id":1,"message":{}})).await;
    let status = h.recv().await;
    assert_eq!(status["code"], "resource_exhausted", "{status}");
    assert!(status["message"].as_str().is_some_and(|m| m.contains("without credit")), "{status}");
}

#[tokio::test]
async fn a_zero_timeout_has_passed_before_the_call_starts() {
    let mut h = harness(Config::default());
    h.hello().await;
    h.send(json!({"type":"open","id":1,"method":format!("{TS}/UnaryCall"),"timeoutMs":0,"message":{},"end":true}))
        .await;
    let status = h.recv().await;
    assert_eq!(status["code"], "deadline_exceeded", "{status}");
    assert!(h.stub.seen().is_empty(), "the handler was reached: {:?}", h.stub.seen());
    // Any other timeout reaches the service as grpc-timeout.
    h.send(json!({"type":"open","id":2,"method":format!("{TS}/UnaryCall"),"timeoutMs":1500,"message":{},"end":true}))
        .await;
    assert_eq!(h.recv().await["type"], "headers");
    let seen = h.stub.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["grpc-timeout"], "1500000u");
}

/// The session remembers only the highest id opened: a frame for a lower id that is not
/// open (a call that ended, or an id the client skipped) is dropped silently; above it, the
/// id was never opened.
#[tokio::test]
async fn frames_for_skipped_ids_are_dropped() {
    let mut h = harness(Config::default());
    h.hello().await;
    h.send(json!({"type":"open","id":5,"method":format!("{TS}/FullDuplexCall")})).await;
    assert_eq!(h.recv().await["type"], "headers");
    for frame in [
        json!({"type":"message","id":3,"message":{}}),
        json!({"type":"cancel","id":2}),
        json!({"type":"credit","id":4,"credit":1}),
        json!({"type":"half_close","id":0}),
    ] {
        h.send(frame).await;
    }
    h.send(json!({"type":"ping","data":"after"})).await;
    assert_eq!(h.recv().await, json!({"type":"pong","data":"after"}), "nothing answers the skipped ids");
    h.send(json!({"type":"cancel","id":6})).await;
    let error = h.recv().await;
    assert_eq!((error["type"].as_str(), error["reason"].as_str()), (Some("error"), Some("unknown_id")), "{error}");
    // A skipped id cannot be opened later either: ids only go up.
    h.send(json!({"type":"open","id":4,"method":format!("{TS}/UnaryCall"),"message":{},"end":true})).await;
    assert_eq!(h.recv().await["reason"], "stale_id");
}
