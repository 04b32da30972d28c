//! Watch: live across protocols, no gap and no duplicate across reconnects (gRPC and
//! Connect streaming), concurrent writers and watchers, compaction, slow watchers.

use std::collections::BTreeSet;

use portway::Config;
use portway::services::state::StateOptions;
use serde_json::json;
use tonic::Code;

use super::api;
use super::client::{Connect, Grpc, Item, detail, grpc, json_detail, put, watch_prefix};
use super::common;

/// Reads a gRPC watch until `until` (inclusive) or until it has seen `max` revisions;
/// returns every event's revision.
async fn read_grpc(stream: &mut tonic::Streaming<api::WatchResponse>, until: i64, max: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    while seen.len() < max && seen.last().is_none_or(|r| *r < until) {
        let msg = stream.message().await.expect("watch message").expect("watch open");
        assert!(!msg.created);
        let mut last = 0;
        for e in &msg.events {
            let en = e.entry.as_ref().expect("entry");
            seen.push(en.mod_revision);
            last = en.mod_revision;
        }
        assert_eq!(msg.revision, last, "message revision is its last event's");
    }
    seen
}

async fn open_grpc(client: &mut Grpc, req: api::WatchRequest) -> (tonic::Streaming<api::WatchResponse>, i64) {
    let mut stream = client.watch(req).await.expect("watch").into_inner();
    let created = stream.message().await.expect("created").expect("created message");
    assert!(created.created);
    (stream, created.revision)
}

/// The acceptance path: a write made with Connect JSON (curl) is seen live by a native
/// gRPC watcher and by a Connect streaming watcher.
#[tokio::test]
async fn a_connect_write_is_seen_live_over_grpc_and_connect_streaming() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let c = Connect::new(&server.url());
    let mut g = grpc(&server.url()).await;
    let (mut grpc_watch, _) = open_grpc(&mut g, api::WatchRequest { key: "doc/1".into(), ..Default::default() }).await;
    let mut connect_watch = c.stream("Watch", &[json!({"key": "doc/1"})]).await;
    let created = connect_watch.message().await;
    assert_eq!(created["created"], json!(true), "{created}");

    let (status, body) = c.unary("Put", json!({"key": "doc/1", "value": {"title": "hello"}})).await;
    assert_eq!(status, 200, "{body}");
    let revision: i64 = body["revision"].as_str().expect("int64 as string").parse().expect("number");

    let msg = grpc_watch.message().await.expect("event").expect("open");
    let e = &msg.events[0];
    assert_eq!(e.r#type, api::event::Type::Put as i32);
    let entry = e.entry.as_ref().expect("entry");
    assert_eq!((entry.key.as_str(), entry.mod_revision), ("doc/1", revision));
    let title = match &entry.value.as_ref().and_then(|v| v.kind.clone()) {
        Some(portway::protojson::value::Kind::StructValue(s)) => s.fields["title"].clone(),
        other => panic!("unexpected value {other:?}"),
    };
    assert_eq!(title, portway::protojson::Value::from("hello"));

    let msg = connect_watch.message().await;
    assert_eq!(msg["events"][0]["type"], json!("PUT"), "{msg}");
    assert_eq!(msg["events"][0]["entry"]["value"], json!({"title": "hello"}));
    assert_eq!(msg["events"][0]["entry"]["modRevision"], json!(revision.to_string()));
}

/// Writers keep writing while a watcher disconnects and resumes from the last revision it
/// saw + 1, several times: it sees every revision exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_watch_resumes_without_gap_or_duplicate_under_concurrent_writers() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 150;
    const TOTAL: i64 = (WRITERS * PER_WRITER) as i64;

    let mut watchers = Vec::new();
    for w in 0..3usize {
        let url = server.url();
        // Register every watcher before the first write, from revision 1.
        let mut client = grpc(&url).await;
        let first = open_grpc(&mut client, watch_prefix("room/", 1)).await;
        watchers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let (mut stream, _) = first;
            // Reconnect after every 97 + w revisions (new connection each time).
            loop {
                let got = read_grpc(&mut stream, TOTAL, 97 + w).await;
                seen.extend(got);
                if seen.last() == Some(&TOTAL) {
                    return seen;
                }
                drop(stream);
                let mut client = grpc(&url).await;
                let next = seen.last().copied().unwrap_or(0) + 1;
                stream = open_grpc(&mut client, watch_prefix("room/", next)).await.0;
            }
        }));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let url = server.url();
        writers.push(tokio::spawn(async move {
            let mut client = grpc(&url).await;
            for i in 0..PER_WRITER {
                client.put(put(&format!("room/{}", i % 7), format!("{w}:{i}"))).await.expect("put");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    for w in watchers {
        let seen = w.await.expect("watcher");
        assert_eq!(seen, (1..=TOTAL).collect::<Vec<_>>(), "every revision exactly once, in order");
    }
}

fn connect_revisions(msg: &serde_json::Value) -> Vec<i64> {
    msg["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| e["entry"]["modRevision"].as_str().expect("revision").parse::<i64>().expect("number"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_watch_resumes_without_gap_or_duplicate() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let c = Connect::new(&server.url());
    const TOTAL: i64 = 200;
    let writer = {
        let url = server.url();
        tokio::spawn(async move {
            let mut client = grpc(&url).await;
            for i in 0..TOTAL {
                client.put(put(&format!("feed/{}", i % 3), f64::from(i as i32))).await.expect("put");
            }
        })
    };
    let mut seen: Vec<i64> = Vec::new();
    let mut start = 1;
    while seen.last() != Some(&TOTAL) {
        let mut stream = c.stream("Watch", &[json!({"key": "feed/", "prefix": true, "startRevision": start})]).await;
        assert_eq!(stream.message().await["created"], json!(true));
        // Read a few messages, then hang up (drop the response) and resume.
        for _ in 0..25 {
            match stream.next().await {
                Some(Item::Message(m)) => seen.extend(connect_revisions(&m)),
                other => panic!("watch ended: {other:?}"),
            }
            if seen.last() == Some(&TOTAL) {
                break;
            }
        }
        drop(stream);
        start = seen.last().copied().unwrap_or(0) + 1;
    }
    writer.await.expect("writer");
    assert_eq!(seen, (1..=TOTAL).collect::<Vec<_>>());
}

#[tokio::test]
async fn compacted_start_is_out_of_range_naming_the_oldest_revision() {
    let mut options = StateOptions::memory();
    options.history_revisions = 5;
    let (server, _store) = common::start_state(options, Config::default()).await;
    let mut g = grpc(&server.url()).await;
    for i in 0..20 {
        g.put(put("k", f64::from(i))).await.expect("put");
    }
    // Revisions 16..=20 are kept.
    let err = g.watch(watch_prefix("", 3)).await.expect_err("compacted");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let d: api::CompactedDetail = detail(&err, "CompactedDetail").expect("detail");
    assert_eq!((d.requested_revision, d.oldest_revision, d.current_revision), (3, 16, 20));
    assert!(err.message().contains("16"), "{}", err.message());

    let err = g.get(api::GetRequest { key: "k".into(), revision: 15 }).await.expect_err("compacted");
    assert_eq!(err.code(), Code::OutOfRange);
    let past = g.get(api::GetRequest { key: "k".into(), revision: 16 }).await.expect("kept").into_inner();
    assert_eq!(past.entry.expect("entry").value, Some(portway::protojson::Value::from(15.0)));

    let (mut stream, _) = open_grpc(&mut g, watch_prefix("", 16)).await;
    assert_eq!(read_grpc(&mut stream, 20, 100).await, vec![16, 17, 18, 19, 20]);

    let mut history = g.history(api::HistoryRequest { start_revision: 1, ..Default::default() }).await;
    let err = match &mut history {
        Ok(s) => s.get_mut().message().await.expect_err("compacted"),
        Err(e) => e.clone(),
    };
    assert_eq!(err.code(), Code::OutOfRange);

    // The same over Connect streaming: the end-of-stream error carries the detail.
    let c = Connect::new(&server.url());
    let mut stream = c.stream("Watch", &[json!({"key": "", "prefix": true, "startRevision": "2"})]).await;
    match stream.next().await {
        Some(Item::End(end)) => {
            assert_eq!(end["error"]["code"], json!("out_of_range"), "{end}");
            let d: api::CompactedDetail = json_detail(&end["error"], "CompactedDetail").expect("detail");
            assert_eq!(d.oldest_revision, 16);
        }
        other => panic!("expected the end of the stream, got {other:?}"),
    }
}

/// A watcher that stops reading is cut off with RESOURCE_EXHAUSTED naming the revision to
/// resume from; resuming there continues without a gap. Writers are never blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_cut_off_with_a_resume_revision() {
    let mut options = StateOptions::memory();
    options.watch_buffer = 2;
    let (server, _store) = common::start_state(options, Config::default()).await;
    let mut g = grpc(&server.url()).await;
    let mut w = grpc(&server.url()).await;
    let (mut slow, _) = open_grpc(&mut w, watch_prefix("big/", 0)).await;
    const TOTAL: i64 = 200;
    let blob = "x".repeat(32 * 1024);
    for i in 0..TOTAL {
        // Each write is its own commit; the watcher reads nothing meanwhile.
        g.put(put(&format!("big/{}", i % 4), blob.clone())).await.expect("writers are never blocked by watchers");
    }
    let mut seen = Vec::new();
    let err = loop {
        match slow.message().await {
            Ok(Some(msg)) => seen.extend(msg.events.iter().map(|e| e.entry.as_ref().expect("entry").mod_revision)),
            Ok(None) => panic!("the watch ended without an error after {} events", seen.len()),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let d: api::WatchLaggedDetail = detail(&err, "WatchLaggedDetail").expect("detail");
    assert!(d.resume_revision < TOTAL, "it fell behind: {d:?}");
    assert!(err.message().contains(&d.resume_revision.to_string()), "{}", err.message());
    assert_eq!(seen, (1..d.resume_revision).collect::<Vec<_>>(), "no gap before the cut");

    let (mut resumed, _) = open_grpc(&mut w, watch_prefix("big/", d.resume_revision)).await;
    let rest = read_grpc(&mut resumed, TOTAL, usize::MAX).await;
    assert_eq!(rest, (d.resume_revision..=TOTAL).collect::<Vec<_>>());
}

/// Watches on different keys see only their own keys; a watch from a past revision gets the
/// log first, then live events.
#[tokio::test]
async fn watch_filters_and_replays_history_then_goes_live() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let mut g = grpc(&server.url()).await;
    for k in ["a/1", "b/1", "a/2", "ab"] {
        g.put(put(k, k)).await.expect("put");
    }
    let (mut prefix_a, head) = open_grpc(&mut g.clone(), watch_prefix("a/", 1)).await;
    assert_eq!(head, 4);
    let (mut exact, _) = open_grpc(
        &mut g.clone(),
        api::WatchRequest { key: "ab".into(), start_revision: 1, prev_entry: true, ..Default::default() },
    )
    .await;
    assert_eq!(read_grpc(&mut prefix_a, 3, 10).await, vec![1, 3]);
    assert_eq!(read_grpc(&mut exact, 4, 10).await, vec![4]);
    g.put(put("ab", "again")).await.expect("put");
    g.delete(api::DeleteRequest { key: "a/1".into(), expected_revision: None }).await.expect("delete");
    let msg = exact.message().await.expect("event").expect("open");
    let prev = msg.events[0].prev_entry.as_ref().expect("prev_entry asked for");
    assert_eq!(prev.value, Some(portway::protojson::Value::from("ab")));
    let msg = prefix_a.message().await.expect("event").expect("open");
    assert_eq!(msg.events[0].r#type, api::event::Type::Delete as i32);
    assert_eq!(msg.events[0].entry.as_ref().expect("entry").key, "a/1");
    assert!(msg.events[0].prev_entry.is_none(), "prev_entry not asked for");

    // A transaction's events share one revision and arrive in one message.
    let op = |k: &str| api::Op { op: Some(api::op::Op::Put(api::PutOp { key: k.into(), value: None })) };
    g.txn(api::TxnRequest { success: vec![op("a/x"), op("a/y")], ..Default::default() }).await.expect("txn");
    let msg = prefix_a.message().await.expect("event").expect("open");
    let keys: BTreeSet<_> = msg.events.iter().map(|e| e.entry.as_ref().expect("entry").key.clone()).collect();
    assert_eq!(keys, BTreeSet::from(["a/x".to_string(), "a/y".to_string()]));
    assert!(msg.events.iter().all(|e| e.entry.as_ref().expect("entry").mod_revision == 7));
}
