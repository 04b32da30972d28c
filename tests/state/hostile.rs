//! Nothing a client sends can make stored data unreadable: writes whose revision would not
//! fit in one message, odd strings in keys and values, non-finite numbers anywhere in a
//! value, long histories, Sync resends of refused writes; over gRPC and Connect JSON, and
//! across a restart.

use portway::Config;
use portway::protojson::{Struct, Value};
use portway::services::state::StateOptions;
use serde_json::json;
use tonic::Code;

use super::api;
use super::client::{Connect, Grpc, detail, grpc, put, watch_prefix};
use super::common;

/// A gateway whose messages are at most 64 KiB, so that a revision too large for one
/// message takes 64 KiB of values, not megabytes.
const MESSAGE: usize = 64 * 1024;

fn small_messages() -> Config {
    let mut config = Config::default();
    config.max_message_bytes = MESSAGE;
    config
}

fn op_put(key: &str, v: Value) -> api::Op {
    api::Op { op: Some(api::op::Op::Put(api::PutOp { key: key.into(), value: Some(v) })) }
}

fn op_get(key: &str) -> api::Op {
    api::Op { op: Some(api::op::Op::Get(api::GetOp { key: key.into() })) }
}

fn assert_too_large(err: &tonic::Status) {
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let d: api::LimitDetail = detail(err, "LimitDetail").unwrap_or_else(|| panic!("no LimitDetail: {err:?}"));
    assert_eq!((d.limit.as_str(), d.max), ("max_message_bytes", MESSAGE as i64), "{err:?}");
    assert!(d.actual > MESSAGE as i64);
}

/// A PutMany of values that each fit, but together make a revision no Watch or History
/// message could carry, is refused: before, every watcher reaching that revision failed
/// on it, again after every resume, until it was compacted.
#[tokio::test]
async fn a_revision_too_large_for_one_message_is_refused_before_it_is_written() {
    let (server, store) = common::start_state(StateOptions::memory(), small_messages()).await;
    let mut g = grpc(&server.url()).await;
    let value = || Value::from("x".repeat(20_000));

    let puts = (0..4).map(|i| put(&format!("big/{i}"), value())).collect::<Vec<_>>();
    assert_too_large(&g.put_many(futures_util::stream::iter(puts)).await.expect_err("80 KB in one revision"));
    assert_eq!(store.revision(), 0, "nothing was written");

    // Three fit (60 KB). Overwriting two of them in one transaction makes a revision of two
    // entries and their previous entries (80 KB): refused; one fits.
    let puts = (0..3).map(|i| put(&format!("big/{i}"), value())).collect::<Vec<_>>();
    assert_eq!(g.put_many(futures_util::stream::iter(puts)).await.expect("60 KB").into_inner().revision, 1);
    let two =
        api::TxnRequest { success: vec![op_put("big/0", value()), op_put("big/1", value())], ..Default::default() };
    assert_too_large(&g.txn(two).await.expect_err("80 KB with previous entries"));
    let one = api::TxnRequest { success: vec![op_put("big/0", value())], ..Default::default() };
    assert_eq!(g.txn(one).await.expect("40 KB").into_inner().revision, 2);
    // A transaction's answer is bounded too: four reads of 20 KB do not fit.
    let reads =
        api::TxnRequest { success: (0..4).map(|i| op_get(&format!("big/{}", i % 3))).collect(), ..Default::default() };
    assert_too_large(&g.txn(reads).await.expect_err("an 80 KB answer"));
    // A Sync write is refused the same way, in its acknowledgement.
    let txn =
        api::TxnRequest { success: vec![op_put("big/1", value()), op_put("big/2", value())], ..Default::default() };
    let msgs = [
        api::SyncRequest { request: Some(api::sync_request::Request::Open(api::SyncOpen { session_id: "s".into() })) },
        api::SyncRequest {
            request: Some(api::sync_request::Request::Write(api::SyncWrite {
                sequence: 1,
                op: Some(api::sync_write::Op::Txn(txn)),
            })),
        },
    ];
    let mut sync = g.sync(futures_util::stream::iter(msgs)).await.expect("sync").into_inner();
    let _opened = sync.message().await.expect("opened");
    match sync.message().await.expect("ack").and_then(|m| m.response) {
        Some(api::sync_response::Response::Ack(a)) => {
            let e = a.error.expect("refused");
            assert_eq!(e.code, Code::InvalidArgument as i32);
            assert!(e.message.contains("max_message_bytes"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.revision(), 2);

    // Every revision that was written is delivered whole, with previous entries.
    let mut w = g.watch(api::WatchRequest { prev_entry: true, ..watch_prefix("big/", 1) }).await.expect("watch");
    let w = w.get_mut();
    assert!(w.message().await.expect("created").expect("created").created);
    let mut revisions = Vec::new();
    while revisions.last() != Some(&2) {
        let msg = w.message().await.expect("events").expect("open");
        revisions.extend(msg.events.iter().map(|e| e.entry.as_ref().map_or(0, |e| e.mod_revision)));
    }
    assert_eq!(revisions, [1, 1, 1, 2]);
    let req = api::HistoryRequest { start_revision: 1, prev_entry: true, ..Default::default() };
    let mut h = g.history(req).await.expect("history").into_inner();
    let mut events = 0;
    while let Some(msg) = h.message().await.expect("history message") {
        events += msg.events.len();
    }
    assert_eq!(events, 4);
}

/// Keys and values with the characters that trip up storage and JSON: NUL, the BOM,
/// noncharacters, the highest code point, line and paragraph separators, combining marks,
/// right-to-left text; a key of exactly `max_key_bytes` made of 4-byte characters. They
/// round-trip over gRPC and Connect JSON and survive a restart. A lone surrogate (not
/// Unicode, so not a protobuf string) is refused.
#[tokio::test]
async fn odd_strings_round_trip_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let odd = [
        "nul\u{0}inside",
        "\u{feff}bom",
        "\u{fffe}\u{ffff}",
        "\u{10ffff}",
        "line\u{2028}para\u{2029}",
        "e\u{301}\u{301}\u{301}",
        "\u{202e}olleh",
        "😀👍🏽",
        "\\\"'`$(){}",
    ];
    let long_key = "😀".repeat(1024); // 4096 bytes, the default limit.
    let (server, store) = common::start_state(StateOptions::durable(dir.path()), Config::default()).await;
    let mut g = grpc(&server.url()).await;
    for s in odd.iter().copied().chain([long_key.as_str()]) {
        let mut fields = Struct::default();
        fields.fields.insert(s.to_string(), Value::from(s.to_string()));
        g.put(put(s, Value::from(fields))).await.unwrap_or_else(|e| panic!("{s:?}: {e}"));
    }
    let err = g.put(put(&format!("{long_key}x"), 1.0)).await.expect_err("one byte over the key limit");
    assert_eq!(err.code(), Code::InvalidArgument);
    let c = Connect::new(&server.url());
    let check = |body: &serde_json::Value, s: &str| {
        assert_eq!(body["entry"]["key"], json!(s), "{body}");
        assert_eq!(body["entry"]["value"], json!({ s: s }), "{body}");
    };
    for s in odd {
        let (status, body) = c.unary("Get", json!({ "key": s })).await;
        assert_eq!(status, 200, "{s:?}: {body}");
        check(&body, s);
    }
    // JSON cannot carry a lone surrogate as a string either.
    let req = http_body_util::Full::new(bytes::Bytes::from_static(br#"{"key":"\ud800","value":1}"#));
    let resp = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(
            http::Request::post(format!("{}/portway.state.v1.StateService/Put", server.url()))
                .header("content-type", "application/json")
                .body(req)
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), 400, "a lone surrogate is refused");

    drop((g, server));
    store.shutdown().await;
    let (server, _store) = common::start_state(StateOptions::durable(dir.path()), Config::default()).await;
    let mut g = grpc(&server.url()).await;
    for s in odd.iter().copied().chain([long_key.as_str()]) {
        let e = g.get(api::GetRequest { key: s.into(), revision: 0 }).await.expect("after restart").into_inner();
        let e = e.entry.expect("entry");
        assert_eq!(e.key, s);
        let mut fields = Struct::default();
        fields.fields.insert(s.to_string(), Value::from(s.to_string()));
        assert_eq!(e.value, Some(Value::from(fields)));
    }
    let mut list = g.list(api::ListRequest::default()).await.expect("list").into_inner();
    let mut keys = 0;
    while let Some(page) = list.message().await.expect("page") {
        keys += page.entries.len();
    }
    assert_eq!(keys, odd.len() + 1);
}

/// NaN and the infinities are not JSON: refused wherever they hide in a value, on every
/// write path. Negative zero is a number and round-trips.
#[tokio::test]
async fn non_finite_numbers_are_refused_anywhere_in_a_value() {
    let (server, store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let mut g = grpc(&server.url()).await;
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut inner = Struct::default();
        inner.fields.insert("deep".into(), Value::from(vec![Value::from(1.0), Value::from(bad)]));
        let hidden = Value::from(vec![Value::from("ok"), Value::from(inner)]);
        let check = |err: tonic::Status| {
            assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
            assert!(err.message().contains("JSON cannot represent"), "{}", err.message());
        };
        check(g.put(put("k", hidden.clone())).await.expect_err("put"));
        let txn = api::TxnRequest { success: vec![op_put("k", hidden.clone())], ..Default::default() };
        check(g.txn(txn).await.expect_err("txn put"));
        let cmp = api::Compare {
            key: "k".into(),
            target: api::compare::Target::Value as i32,
            value: Some(hidden.clone()),
            ..Default::default()
        };
        check(g.txn(api::TxnRequest { compare: vec![cmp], ..Default::default() }).await.expect_err("compare"));
        check(g.put_many(futures_util::stream::iter([put("k", hidden.clone())])).await.expect_err("put many"));
    }
    assert_eq!(store.revision(), 0);
    g.put(put("z", -0.0)).await.expect("negative zero");
    let v = g.get(api::GetRequest { key: "z".into(), revision: 0 }).await.expect("get").into_inner();
    let n = match v.entry.and_then(|e| e.value).and_then(|v| v.kind) {
        Some(portway::protojson::value::Kind::NumberValue(n)) => n,
        other => panic!("{other:?}"),
    };
    assert!(n == 0.0 && n.is_sign_negative());
}

/// A long history of large revisions replays completely, in order, in messages that each
/// fit the limit, and a Sync resend of a refused write (here: nested too deep) gets the
/// same refusal back, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_histories_replay_in_bounded_messages_and_refusals_replay_as_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, store) = common::start_state(StateOptions::durable(dir.path()), small_messages()).await;
    let mut g = grpc(&server.url()).await;
    // 600 revisions, every tenth as large as a revision may be.
    for chunk in 0..60 {
        let mut puts: Vec<api::PutRequest> = (0..9).map(|i| put(&format!("h/{chunk}/{i}"), f64::from(i))).collect();
        puts.push(put(&format!("h/{chunk}/big"), "y".repeat(MESSAGE - 400)));
        for p in puts {
            g.put(p).await.expect("put");
        }
    }
    assert_eq!(store.revision(), 600);
    let req = api::HistoryRequest { start_revision: 1, prev_entry: true, ..Default::default() };
    let mut h = g.history(req).await.expect("history").into_inner();
    let mut next = 1;
    while let Some(msg) = h.message().await.expect("every message fits") {
        assert!(prost::Message::encoded_len(&msg) <= MESSAGE);
        for e in &msg.events {
            assert_eq!(e.entry.as_ref().map(|e| e.mod_revision), Some(next));
            next += 1;
        }
    }
    assert_eq!(next, 601);

    // Refused by the engine (the overwrite and its previous entry do not fit one message):
    // remembered like any outcome. Refused by the request checks (nested too deep):
    // answered the same way again, as a fresh write.
    let too_deep = (0..32).fold(Value::from(1.0), |inner, _| Value::from(vec![inner]));
    let writes = [put("h/0/big", "y".repeat(MESSAGE - 400)), put("h/too-deep", too_deep)];
    let open =
        api::SyncRequest { request: Some(api::sync_request::Request::Open(api::SyncOpen { session_id: "r".into() })) };
    let acks = |g: Grpc| {
        let mut msgs = vec![open.clone()];
        for (sequence, p) in (1..).zip(writes.iter().cloned()) {
            msgs.push(api::SyncRequest {
                request: Some(api::sync_request::Request::Write(api::SyncWrite {
                    sequence,
                    op: Some(api::sync_write::Op::Put(p)),
                })),
            });
        }
        async move {
            let mut g = g;
            let mut s = g.sync(futures_util::stream::iter(msgs)).await.expect("sync").into_inner();
            let _opened = s.message().await.expect("opened");
            let mut acks = Vec::new();
            while let Some(m) = s.message().await.expect("ack") {
                match m.response {
                    Some(api::sync_response::Response::Ack(a)) => {
                        acks.push((a.duplicate, a.error.map(|e| (e.code, e.message))))
                    }
                    other => panic!("{other:?}"),
                }
            }
            acks
        }
    };
    let first = acks(g.clone()).await;
    assert_eq!(first.len(), 2);
    assert!(
        first.iter().all(|(dup, e)| !dup && e.as_ref().is_some_and(|e| e.0 == Code::InvalidArgument as i32)),
        "{first:?}"
    );
    let again = acks(g.clone()).await;
    assert_eq!(again[0], (true, first[0].1.clone()), "remembered: the same refusal, as a duplicate");
    assert_eq!(again[1], (false, first[1].1.clone()), "checked again: the same refusal");
    drop((g, server));
    store.shutdown().await;
    let (server, _store) = common::start_state(StateOptions::durable(dir.path()), small_messages()).await;
    assert_eq!(acks(grpc(&server.url()).await).await, again, "the same after a restart");
}
