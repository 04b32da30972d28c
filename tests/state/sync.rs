//! Sync sessions: acknowledgements in order, resends after a dropped connection never
//! apply a write twice, watches inside a session; over gRPC and Connect; how many sessions are
//! remembered, and for how long.

use std::time::Duration;

use futures_util::StreamExt as _;
use portway::Config;
use portway::services::state::StateOptions;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use super::api;
use super::client::{Connect, Item, grpc, put};
use super::common;
use api::sync_request::Request as In;
use api::sync_response::Response as Out;

fn msg(r: In) -> api::SyncRequest {
    api::SyncRequest { request: Some(r) }
}

fn open(session: &str) -> api::SyncRequest {
    msg(In::Open(api::SyncOpen { session_id: session.into() }))
}

fn write(sequence: u64, p: api::PutRequest) -> api::SyncRequest {
    msg(In::Write(api::SyncWrite { sequence, op: Some(api::sync_write::Op::Put(p)) }))
}

/// A session on its own connection.
struct Session {
    tx: mpsc::Sender<api::SyncRequest>,
    rx: tonic::Streaming<api::SyncResponse>,
}

impl Session {
    async fn open(url: &str, id: &str) -> (Self, api::SyncOpened) {
        let mut client = grpc(url).await;
        let (tx, rx) = mpsc::channel(256);
        tx.send(open(id)).await.expect("send");
        let mut rx = client.sync(ReceiverStream::new(rx)).await.expect("sync").into_inner();
        let opened = match rx.message().await.expect("opened").expect("open").response {
            Some(Out::Opened(o)) => o,
            other => panic!("expected opened, got {other:?}"),
        };
        (Self { tx, rx }, opened)
    }

    async fn next(&mut self) -> Out {
        self.rx.message().await.expect("message").expect("session open").response.expect("response")
    }

    async fn ack(&mut self) -> api::SyncAck {
        match self.next().await {
            Out::Ack(a) => a,
            other => panic!("expected an ack, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_after_a_dropped_connection_apply_nothing_twice() {
    let (server, store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let (mut s, opened) = Session::open(&server.url(), "tab-42").await;
    assert_eq!(opened.last_sequence, 0);
    for seq in 1..=20u64 {
        s.tx.send(write(seq, put(&format!("s/{seq}"), f64::from(seq as u32)))).await.expect("send");
    }
    // A compare-and-set that fails is acknowledged with its error, and remembered.
    let mut cas = put("s/1", "never");
    cas.expected_revision = Some(999);
    s.tx.send(write(21, cas.clone())).await.expect("send");
    let mut first = Vec::new();
    for _ in 0..10 {
        first.push(s.ack().await);
    }
    assert_eq!(first.iter().map(|a| a.sequence).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>(), "in order");
    // The connection drops with writes 11..=21 sent but not acknowledged.
    drop(s);

    let (mut s, opened) = Session::open(&server.url(), "tab-42").await;
    assert!((10..=21).contains(&opened.last_sequence), "{opened:?}");
    for seq in 1..=20u64 {
        s.tx.send(write(seq, put(&format!("s/{seq}"), f64::from(seq as u32)))).await.expect("send");
    }
    s.tx.send(write(21, cas.clone())).await.expect("send");
    let mut again = Vec::new();
    for _ in 1..=21 {
        again.push(s.ack().await);
    }
    for (a, b) in first.iter().zip(&again) {
        assert!(b.duplicate);
        assert_eq!((a.sequence, a.revision), (b.sequence, b.revision));
    }
    assert!(again[..20].iter().all(|a| a.error.is_none() && a.succeeded));
    let cas_ack = &again[20];
    assert_eq!(cas_ack.error.as_ref().map(|e| e.code), Some(Code::FailedPrecondition as i32), "{cas_ack:?}");
    // Resending the failed write again answers the same, without re-evaluating it.
    s.tx.send(write(21, cas)).await.expect("send");
    let replay = s.ack().await;
    assert!(replay.duplicate);
    assert_eq!(replay.error, cas_ack.error);

    // Every key was written exactly once.
    assert_eq!(store.revision(), 20);
    for seq in 1..=20 {
        let (e, _) = store.get(&format!("s/{seq}"), 0).expect("get");
        assert_eq!(e.expect("written").version, 1);
    }
}

#[tokio::test]
async fn a_session_watches_and_writes_on_one_stream() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let (mut s, _) = Session::open(&server.url(), "agent").await;
    let watch = api::WatchRequest { key: "w/".into(), prefix: true, ..Default::default() };
    s.tx.send(msg(In::Watch(api::SyncWatch { watch_id: 7, watch: Some(watch) }))).await.expect("send");
    match s.next().await {
        Out::WatchCreated(c) => assert_eq!(c.watch_id, 7),
        other => panic!("expected watch_created, got {other:?}"),
    }
    s.tx.send(write(1, put("w/a", "hi"))).await.expect("send");
    let (mut ack, mut events) = (None, None);
    while ack.is_none() || events.is_none() {
        match s.next().await {
            Out::Ack(a) => ack = Some(a),
            Out::Events(e) => events = Some(e),
            other => panic!("unexpected {other:?}"),
        }
    }
    let (ack, events) = (ack.expect("ack"), events.expect("events"));
    assert_eq!(events.watch_id, 7);
    assert_eq!(events.revision, ack.revision);
    assert_eq!(events.events[0].entry.as_ref().expect("entry").key, "w/a");

    s.tx.send(msg(In::Unwatch(api::SyncUnwatch { watch_id: 7 }))).await.expect("send");
    match s.next().await {
        Out::WatchCanceled(c) => assert_eq!((c.watch_id, c.error), (7, None)),
        other => panic!("expected watch_canceled, got {other:?}"),
    }
    // A watch from a compacted or invalid start is cancelled, the session goes on.
    let bad = api::WatchRequest { key: String::new(), prefix: false, ..Default::default() };
    s.tx.send(msg(In::Watch(api::SyncWatch { watch_id: 8, watch: Some(bad) }))).await.expect("send");
    match s.next().await {
        Out::WatchCanceled(c) => {
            assert_eq!(c.watch_id, 8);
            assert_eq!(c.error.expect("error").code, Code::InvalidArgument as i32);
        }
        other => panic!("expected watch_canceled, got {other:?}"),
    }
    s.tx.send(write(2, put("w/b", "still here"))).await.expect("send");
    assert_eq!(s.ack().await.sequence, 2);
    // Closing the client side ends the session cleanly.
    drop(s.tx);
    let end = tokio::time::timeout(Duration::from_secs(10), s.rx.message()).await.expect("session ends");
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test]
async fn a_session_must_open_first() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let mut client = grpc(&server.url()).await;
    let mut out = client.sync(futures_util::stream::iter([write(1, put("k", 1.0))])).await.expect("sync").into_inner();
    let err = out.next().await.expect("an answer").expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("open"), "{}", err.message());
}

/// Sync over Connect (HTTP/1.1, so half-duplex: the client sends its writes, then reads
/// the acknowledgements): resending the same writes applies nothing twice.
#[tokio::test]
async fn sync_over_connect_json_is_idempotent() {
    let (server, store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let c = Connect::new(&server.url());
    let messages = [
        json!({"open": {"sessionId": "curl-1"}}),
        json!({"write": {"sequence": "1", "put": {"key": "c/1", "value": {"n": 1}}}}),
        json!({"write": {"sequence": "2", "put": {"key": "c/2", "value": [true]}}}),
    ];
    let read = |mut stream: super::client::ConnectStream| async move {
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Item::Message(m) => out.push(m),
                Item::End(end) => {
                    assert_eq!(end.get("error"), None, "{end}");
                    return out;
                }
            }
        }
        panic!("no end-of-stream envelope");
    };
    let first = read(c.stream("Sync", &messages).await).await;
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(first[0]["opened"]["sessionId"], json!("curl-1"));
    assert_eq!(first[1]["ack"]["revision"], json!("1"));
    assert_eq!(first[2]["ack"]["revision"], json!("2"));
    let again = read(c.stream("Sync", &messages).await).await;
    assert_eq!(again[0]["opened"]["lastSequence"], json!("2"));
    assert_eq!(again[1]["ack"]["duplicate"], json!(true));
    assert_eq!(again[2]["ack"]["revision"], json!("2"));
    assert_eq!(store.revision(), 2);
}

/// Opens session `id` on a new connection and sends write 1 (a put of `key`); what `opened`
/// said and the write's ack.
async fn write_one(url: &str, id: &str, key: &str) -> (api::SyncOpened, api::SyncAck) {
    let (mut s, opened) = Session::open(url, id).await;
    s.tx.send(write(1, put(key, id))).await.expect("send");
    (opened, s.ack().await)
}

/// `max_sessions`: with room for two, a third session's first write forgets the least
/// recently active one, whose resend then applies again (a new revision, the key's second
/// version), while the other's resend is still a duplicate.
#[tokio::test]
async fn past_max_sessions_the_least_recently_active_is_forgotten() {
    let mut options = StateOptions::memory();
    options.max_sessions = 2;
    let (server, store) = common::start_state(options, Config::default()).await;
    let url = server.url();
    let mut revisions = Vec::new();
    for id in ["oldest", "middle", "newest"] {
        let (opened, ack) = write_one(&url, id, &format!("m/{id}")).await;
        assert_eq!((opened.last_sequence, ack.duplicate), (0, false), "{id}: {opened:?} {ack:?}");
        revisions.push(ack.revision);
        // Sessions are ordered by the millisecond of their last write: keep them apart.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // "middle" is remembered: its resend is acknowledged as before and applies nothing.
    let (opened, ack) = write_one(&url, "middle", "m/middle").await;
    assert_eq!(opened.last_sequence, 1, "{opened:?}");
    assert!(ack.duplicate && ack.revision == revisions[1], "{ack:?}");
    // "oldest" was forgotten when "newest" wrote: its resend is a new write.
    let (opened, ack) = write_one(&url, "oldest", "m/oldest").await;
    assert_eq!(opened.last_sequence, 0, "the least recently active session is still remembered: {opened:?}");
    assert!(!ack.duplicate && ack.revision > revisions[2], "{ack:?}");
    let (entry, _) = store.get("m/oldest", 0).expect("get");
    assert_eq!(entry.expect("written").version, 2, "applied again");
}

/// `session_ttl`: a session idle for longer is forgotten (by the next housekeeping pass,
/// within a second), not before; its resend then applies again.
#[tokio::test]
async fn an_idle_session_is_forgotten_after_its_ttl() {
    let ttl = Duration::from_secs(2);
    let mut options = StateOptions::memory();
    options.session_ttl = ttl;
    let (server, store) = common::start_state(options, Config::default()).await;
    let url = server.url();
    // Taken before the write, so that the session's last activity is no earlier.
    let written = tokio::time::Instant::now();
    let (_, ack) = write_one(&url, "idle", "t/idle").await;
    assert!(!ack.duplicate, "{ack:?}");
    // Reopening (below) reads the session without touching it.
    let forgotten = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (_, opened) = Session::open(&url, "idle").await;
            if opened.last_sequence == 0 {
                return written.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the idle session was never forgotten");
    assert!(forgotten >= ttl, "forgotten {forgotten:?} after its last write, before its TTL ({ttl:?})");
    let (_, again) = write_one(&url, "idle", "t/idle").await;
    assert!(!again.duplicate && again.revision > ack.revision, "{again:?}");
    let (entry, _) = store.get("t/idle", 0).expect("get");
    assert_eq!(entry.expect("written").version, 2, "applied again");
}
