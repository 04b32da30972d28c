//! The value depth limit (`max_value_depth`, 31 by default): a value nested exactly that
//! deep is written and read back on every path, over native gRPC (binary protobuf, which
//! no JSON limit guards) and Connect JSON, and after a restart of a durable store; one
//! level more is refused with INVALID_ARGUMENT before anything is written.

use portway::Config;
use portway::protojson::{Struct, Value};
use portway::services::state::StateOptions;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use super::api;
use super::client::{Connect, Grpc, Item, detail, grpc, put, watch_prefix};
use super::common;
use api::sync_request::Request as In;
use api::sync_response::Response as Out;

/// The default limit, as documented.
const LIMIT: usize = 31;

/// `levels` objects inside one another (`{"a":{"a":1}}` is 2): the deepest kind of nesting
/// in protobuf (three messages a level).
fn objects(levels: usize) -> Value {
    (0..levels)
        .fold(Value::from(1.0), |inner, _| Value::from([("a".to_string(), inner)].into_iter().collect::<Struct>()))
}

/// `levels` arrays inside one another (`[[1]]` is 2).
fn arrays(levels: usize) -> Value {
    (0..levels).fold(Value::from(1.0), |inner, _| Value::from(vec![inner]))
}

fn json_objects(levels: usize) -> serde_json::Value {
    (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
}

fn value_of(entry: Option<&api::Entry>) -> Option<&Value> {
    entry.and_then(|e| e.value.as_ref())
}

fn put_op(key: &str, v: Value) -> api::Op {
    api::Op { op: Some(api::op::Op::Put(api::PutOp { key: key.into(), value: Some(v) })) }
}

fn get_op(key: &str) -> api::Op {
    api::Op { op: Some(api::op::Op::Get(api::GetOp { key: key.into() })) }
}

fn value_compare(key: &str, v: Value) -> api::Compare {
    api::Compare { key: key.into(), target: api::compare::Target::Value as i32, value: Some(v), ..Default::default() }
}

fn sync_msg(r: In) -> api::SyncRequest {
    api::SyncRequest { request: Some(r) }
}

fn sync_write(sequence: u64, op: api::sync_write::Op) -> api::SyncRequest {
    sync_msg(In::Write(api::SyncWrite { sequence, op: Some(op) }))
}

/// A Sync session on its own connection: the sender and the responses.
async fn session(url: &str, id: &str) -> (mpsc::Sender<api::SyncRequest>, tonic::Streaming<api::SyncResponse>) {
    let mut client = grpc(url).await;
    let (tx, rx) = mpsc::channel(16);
    tx.send(sync_msg(In::Open(api::SyncOpen { session_id: id.into() }))).await.expect("send");
    let mut rx = client.sync(ReceiverStream::new(rx)).await.expect("sync").into_inner();
    match rx.message().await.expect("opened").and_then(|m| m.response) {
        Some(Out::Opened(_)) => {}
        other => panic!("expected opened, got {other:?}"),
    }
    (tx, rx)
}

async fn next_out(rx: &mut tonic::Streaming<api::SyncResponse>) -> Out {
    rx.message().await.expect("sync message").and_then(|m| m.response).expect("sync response")
}

fn assert_depth_refused(err: &tonic::Status, actual: i64) {
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("nesting depth") && err.message().contains("31"), "{}", err.message());
    let d: api::LimitDetail = detail(err, "LimitDetail").unwrap_or_else(|| panic!("no LimitDetail in {err:?}"));
    assert_eq!((d.limit.as_str(), d.max, d.actual), ("max_value_depth", LIMIT as i64, actual));
}

/// Every read of `deep/1` (and of the keys the writes above made) carries `deep`.
async fn read_everything_back(g: &mut Grpc, deep: &Value, head: i64) {
    let got = g.get(api::GetRequest { key: "deep/1".into(), revision: 0 }).await.expect("get").into_inner();
    assert_eq!(value_of(got.entry.as_ref()), Some(deep));
    let past = g.get(api::GetRequest { key: "deep/1".into(), revision: 1 }).await.expect("get at 1").into_inner();
    assert_eq!(value_of(past.entry.as_ref()), Some(deep));

    let mut list = g.list(api::ListRequest { prefix: "deep/".into(), ..Default::default() }).await.expect("list");
    let mut listed = 0;
    while let Some(page) = list.get_mut().message().await.expect("list page") {
        for e in &page.entries {
            assert_eq!(e.value.as_ref(), Some(deep), "{}", e.key);
            listed += 1;
        }
    }
    assert!(listed >= 3, "{listed} entries listed");

    let req = api::HistoryRequest { start_revision: 1, prev_entry: true, ..Default::default() };
    let mut history = g.history(req).await.expect("history").into_inner();
    let mut events = 0;
    while let Some(msg) = history.message().await.expect("history message") {
        for e in &msg.events {
            if e.r#type == api::event::Type::Put as i32 {
                assert_eq!(value_of(e.entry.as_ref()), Some(deep));
            }
            if let Some(prev) = &e.prev_entry {
                assert_eq!(prev.value.as_ref(), Some(deep));
            }
            events += 1;
        }
    }
    assert_eq!(events, head, "one event per revision");

    // A replaying watch decodes the same events.
    let mut watch = g.watch(watch_prefix("deep/", 1)).await.expect("watch").into_inner();
    assert!(watch.message().await.expect("created").expect("created").created);
    let mut seen = 0;
    while seen < head {
        let msg = watch.message().await.expect("watch message").expect("watch open");
        seen = msg.revision;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_at_the_limit_is_read_back_on_every_grpc_path_and_after_a_restart() {
    assert_eq!(StateOptions::default().max_value_depth, LIMIT, "docs/state-store.md and the README say 31");
    let dir = tempfile::tempdir().expect("tempdir");
    let deep = objects(LIMIT);
    let (server, store) = common::start_state(StateOptions::durable(dir.path()), Config::default()).await;
    let url = server.url();
    let mut g = grpc(&url).await;
    let mut live = g.watch(api::WatchRequest { prev_entry: true, ..watch_prefix("deep/", 0) }).await.expect("watch");
    assert!(live.get_mut().message().await.expect("created").expect("created").created);
    let (sync_tx, mut sync_rx) = session(&url, "deep-session").await;
    sync_tx
        .send(sync_msg(In::Watch(api::SyncWatch { watch_id: 1, watch: Some(watch_prefix("deep/", 0)) })))
        .await
        .expect("send");
    assert!(matches!(next_out(&mut sync_rx).await, Out::WatchCreated(_)));

    // 1: Put. 2: Put again, with the previous entry back.
    let r = g.put(put("deep/1", deep.clone())).await.expect("put at the limit").into_inner();
    assert_eq!(value_of(r.entry.as_ref()), Some(&deep));
    let r =
        g.put(api::PutRequest { return_prev: true, ..put("deep/1", deep.clone()) }).await.expect("put").into_inner();
    assert_eq!(value_of(r.prev_entry.as_ref()), Some(&deep));
    // 3: a transaction comparing, writing and reading values at the limit.
    let txn = api::TxnRequest {
        compare: vec![value_compare("deep/1", deep.clone())],
        success: vec![put_op("deep/2", deep.clone()), get_op("deep/1"), get_op("deep/2")],
        failure: vec![],
    };
    let r = g.txn(txn).await.expect("txn").into_inner();
    assert!(r.succeeded);
    for result in &r.results {
        let entry = match &result.result {
            Some(api::op_result::Result::Put(p)) => p.entry.as_ref(),
            Some(api::op_result::Result::Get(g)) => g.entry.as_ref(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(value_of(entry), Some(&deep));
    }
    // 4: PutMany.
    let puts = futures_util::stream::iter([put("deep/3", deep.clone())]);
    assert_eq!(g.put_many(puts).await.expect("put many").into_inner().revision, 4);
    // 5, 6: Sync writes, a put and a transaction.
    sync_tx.send(sync_write(1, api::sync_write::Op::Put(put("deep/4", deep.clone())))).await.expect("send");
    let txn = api::TxnRequest { success: vec![put_op("deep/5", deep.clone())], ..Default::default() };
    sync_tx.send(sync_write(2, api::sync_write::Op::Txn(txn))).await.expect("send");
    let (mut acks, mut pushed) = (Vec::new(), Vec::new());
    while acks.len() < 2 || pushed.len() < 6 {
        match next_out(&mut sync_rx).await {
            Out::Ack(a) => acks.push(a),
            Out::Events(e) => pushed.extend(e.events),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(acks.iter().all(|a| a.error.is_none()), "{acks:?}");
    assert!(pushed.iter().all(|e| value_of(e.entry.as_ref()) == Some(&deep)), "Sync pushes carry the value");
    // 7: a delete hands the value back.
    let r = g.delete(api::DeleteRequest { key: "deep/5".into(), expected_revision: None }).await.expect("delete");
    assert_eq!(value_of(r.into_inner().prev_entry.as_ref()), Some(&deep));

    // The live watch got every revision, values and previous entries decoded.
    let mut revisions = Vec::new();
    while revisions.last() != Some(&7) {
        let msg = live.get_mut().message().await.expect("live event").expect("watch open");
        for e in &msg.events {
            if e.r#type == api::event::Type::Put as i32 {
                assert_eq!(value_of(e.entry.as_ref()), Some(&deep));
            }
            if let Some(prev) = &e.prev_entry {
                assert_eq!(prev.value.as_ref(), Some(&deep));
            }
            revisions.push(e.entry.as_ref().expect("entry").mod_revision);
        }
    }
    assert_eq!(revisions, [1, 2, 3, 4, 5, 6, 7]);
    read_everything_back(&mut g, &deep, 7).await;

    // The same after a restart: the stored records decode.
    drop((live, sync_tx, sync_rx, g, server));
    store.shutdown().await;
    drop(store);
    let (server, store) = common::start_state(StateOptions::durable(dir.path()), Config::default()).await;
    assert_eq!(store.revision(), 7);
    read_everything_back(&mut grpc(&server.url()).await, &deep, 7).await;
}

#[tokio::test]
async fn one_level_more_is_refused_on_every_grpc_write_path() {
    let (server, store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let mut g = grpc(&server.url()).await;
    let too_deep = [objects(LIMIT + 1), arrays(LIMIT + 1)];
    for v in &too_deep {
        let err = g.put(put("k", v.clone())).await.expect_err("put");
        assert_depth_refused(&err, 32);
        let txn = api::TxnRequest { success: vec![put_op("k", v.clone())], ..Default::default() };
        assert_depth_refused(&g.txn(txn).await.expect_err("txn put"), 32);
        let txn = api::TxnRequest { compare: vec![value_compare("k", v.clone())], ..Default::default() };
        assert_depth_refused(&g.txn(txn).await.expect_err("txn compare"), 32);
        let puts = futures_util::stream::iter([put("ok", 1.0), put("k", v.clone())]);
        assert_depth_refused(&g.put_many(puts).await.expect_err("put many"), 32);
    }
    // A value nested deeper still (inside one object, past what the 64-level check of old
    // admitted) is refused the same way, with its real depth.
    let mut wide = Struct::default();
    wide.fields.insert("shallow".into(), Value::from(1.0));
    wide.fields.insert("deep".into(), arrays(40));
    assert_depth_refused(&g.put(put("k", Value::from(wide))).await.expect_err("put"), 41);

    // Sync: the write is acknowledged with the error; the session goes on.
    let (tx, mut rx) = session(&server.url(), "too-deep").await;
    tx.send(sync_write(1, api::sync_write::Op::Put(put("k", objects(LIMIT + 1))))).await.expect("send");
    let txn = api::TxnRequest { success: vec![put_op("k", arrays(LIMIT + 1))], ..Default::default() };
    tx.send(sync_write(2, api::sync_write::Op::Txn(txn))).await.expect("send");
    tx.send(sync_write(3, api::sync_write::Op::Put(put("k", objects(LIMIT))))).await.expect("send");
    for sequence in 1..=3 {
        let Out::Ack(ack) = next_out(&mut rx).await else { panic!("expected an ack") };
        assert_eq!(ack.sequence, sequence);
        match ack.error {
            Some(e) if sequence < 3 => {
                assert_eq!(e.code, Code::InvalidArgument as i32, "{e:?}");
                assert!(e.message.contains("max_value_depth"), "{}", e.message);
            }
            None if sequence == 3 => assert_eq!(ack.revision, 1),
            other => panic!("sequence {sequence}: {other:?}"),
        }
    }
    // Inside a Sync transaction, 32 levels of objects are 5 + 96 = 101 nested messages: the
    // request itself is beyond what protobuf decodes, which gRPC reports as INTERNAL. The
    // session ends; nothing was written.
    let txn = api::TxnRequest { success: vec![put_op("k2", objects(LIMIT + 1))], ..Default::default() };
    tx.send(sync_write(4, api::sync_write::Op::Txn(txn))).await.expect("send");
    let err = rx.message().await.expect_err("undecodable request");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(err.message().contains("recursion limit"), "{}", err.message());
    assert_eq!(store.revision(), 1, "only the write at the limit was applied");
    assert!(store.get("k2", 0).expect("get").0.is_none());
}

#[tokio::test]
async fn a_value_at_the_limit_round_trips_over_connect_json() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let c = Connect::new(&server.url());
    let deep = json_objects(LIMIT);
    let mut watch = c.stream("Watch", &[json!({"key": "deep/", "prefix": true, "prevEntry": true})]).await;
    assert_eq!(watch.message().await["created"], json!(true));

    let (status, body) = c.unary("Put", json!({"key": "deep/1", "value": deep})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entry"]["value"], deep);
    let (status, body) = c.unary("Get", json!({"key": "deep/1"})).await;
    assert_eq!((status, &body["entry"]["value"]), (200, &deep), "{body}");
    let txn = json!({
        "compare": [{"key": "deep/1", "target": "VALUE", "value": deep}],
        "success": [{"put": {"key": "deep/2", "value": deep}}, {"get": {"key": "deep/1"}}],
    });
    let (status, body) = c.unary("Txn", txn).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["succeeded"], json!(true));
    assert_eq!(body["results"][0]["put"]["entry"]["value"], deep);
    assert_eq!(body["results"][1]["get"]["entry"]["value"], deep);

    let live = watch.message().await;
    assert_eq!(live["events"][0]["entry"]["value"], deep, "{live}");
    let mut list = c.stream("List", &[json!({"prefix": "deep/"})]).await;
    let page = list.message().await;
    assert_eq!(page["entries"][0]["value"], deep);
    assert_eq!(page["entries"][1]["value"], deep);
    let mut history = c.stream("History", &[json!({"startRevision": "1", "prevEntry": true})]).await;
    let replay = history.message().await;
    assert_eq!(replay["events"][1]["entry"]["value"], deep, "{replay}");

    // A Sync write (Connect over HTTP/1.1 is half-duplex: send, close, read the acks).
    let mut sync = c
        .stream(
            "Sync",
            &[
                json!({"open": {"sessionId": "deep-json"}}),
                json!({"write": {"sequence": "1", "put": {"key": "deep/3", "value": deep}}}),
            ],
        )
        .await;
    let mut acks = Vec::new();
    while let Some(item) = sync.next().await {
        match item {
            Item::Message(m) if m.get("ack").is_some() => acks.push(m),
            Item::Message(_) => {}
            Item::End(end) => assert_eq!(end.get("error"), None, "{end}"),
        }
    }
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["ack"]["revision"], json!("3"), "{acks:?}");
    let (_, body) = c.unary("Get", json!({"key": "deep/3"})).await;
    assert_eq!(body["entry"]["value"], deep);

    // One level more: refused, nothing written.
    let (status, body) = c.unary("Put", json!({"key": "deep/4", "value": json_objects(LIMIT + 1)})).await;
    assert_eq!((status, &body["code"]), (400, &json!("invalid_argument")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("nest")), "{body}");
    let (status, _) = c.unary("Get", json!({"key": "deep/4"})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_lower_limit_is_honoured_and_a_higher_one_refused() {
    let mut options = StateOptions::memory();
    options.max_value_depth = 2;
    let (server, _store) = common::start_state(options, Config::default()).await;
    let mut g = grpc(&server.url()).await;
    g.put(put("two", arrays(2))).await.expect("two levels");
    let err = g.put(put("three", arrays(3))).await.expect_err("three levels");
    assert_eq!(err.code(), Code::InvalidArgument);
    let d: api::LimitDetail = detail(&err, "LimitDetail").expect("detail");
    assert_eq!((d.max, d.actual), (2, 3));

    let mut options = StateOptions::memory();
    options.max_value_depth = LIMIT + 1;
    let err = portway::services::state::Store::open(options).await.expect_err("too deep to read back");
    let msg = err.to_string();
    assert!(msg.contains("max_value_depth 32 is too deep") && msg.contains("set it to 31 or less"), "{msg}");
}
