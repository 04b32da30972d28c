//! Crash safety: a real `portway` process is killed with SIGKILL while writes are in
//! flight; after a restart on the same data directory every acknowledged write is there,
//! and Sync resends are still recognised.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt as _;
use tokio::sync::{Mutex, Notify};

use super::api;
use super::client::{Child, grpc, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8 path").to_string();
    let child = Child::start(&["--data-dir", &data_dir]).await;

    const WRITERS: usize = 16;
    const KILL_AFTER: usize = 400;
    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (url, acked, count, enough) = (child.url.clone(), acked.clone(), count.clone(), enough.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = grpc(&url).await;
            for i in 0.. {
                let key = format!("crash/{w}/{i}");
                // Fails once the process is gone; the writes acknowledged before count.
                let Ok(resp) = client.put(put(&key, f64::from(i))).await else { return };
                acked.lock().await.push((key, resp.into_inner().revision));
                if count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    enough.notify_one();
                }
            }
        }));
    }
    enough.notified().await;
    child.kill9().await;
    for t in tasks {
        t.await.expect("writer task");
    }
    let acked = acked.lock().await.clone();
    assert!(acked.len() >= KILL_AFTER);

    let child = Child::start(&["--data-dir", &data_dir]).await;
    let mut client = grpc(&child.url).await;
    for (key, revision) in &acked {
        let e = client
            .get(api::GetRequest { key: key.clone(), revision: 0 })
            .await
            .unwrap_or_else(|s| panic!("acknowledged write {key} lost: {s}"))
            .into_inner()
            .entry
            .expect("entry");
        assert_eq!(e.mod_revision, *revision, "{key}");
        assert_eq!(e.version, 1, "{key} written once");
    }
    // Revisions are dense: every acknowledged revision is at most the current one.
    let head = client.get(api::GetRequest { key: acked[0].0.clone(), revision: 0 }).await.expect("get").into_inner();
    assert!(acked.iter().all(|(_, r)| *r <= head.revision));
    child.kill9().await;
}

fn sync_msg(r: api::sync_request::Request) -> api::SyncRequest {
    api::SyncRequest { request: Some(r) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_deduplication_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8 path").to_string();
    let writes = |session: &str| {
        let mut msgs =
            vec![sync_msg(api::sync_request::Request::Open(api::SyncOpen { session_id: session.to_string() }))];
        for seq in 1..=30u64 {
            msgs.push(sync_msg(api::sync_request::Request::Write(api::SyncWrite {
                sequence: seq,
                op: Some(api::sync_write::Op::Put(put(&format!("sync/{seq}"), f64::from(seq as u32)))),
            })));
        }
        msgs
    };
    let acks = |url: String, msgs: Vec<api::SyncRequest>| async move {
        let mut client = grpc(&url).await;
        let mut out = client.sync(futures_util::stream::iter(msgs)).await.expect("sync").into_inner();
        let mut acks = Vec::new();
        let mut opened = None;
        while let Some(m) = out.next().await {
            match m.expect("message").response {
                Some(api::sync_response::Response::Ack(a)) => acks.push(a),
                Some(api::sync_response::Response::Opened(o)) => opened = Some(o),
                other => panic!("unexpected {other:?}"),
            }
        }
        (opened.expect("opened"), acks)
    };

    let child = Child::start(&["--data-dir", &data_dir]).await;
    let (opened, first) = acks(child.url.clone(), writes("agent-7")).await;
    assert_eq!(opened.last_sequence, 0);
    assert_eq!(first.len(), 30);
    assert!(first.iter().all(|a| !a.duplicate && a.error.is_none()));
    child.kill9().await;

    let child = Child::start(&["--data-dir", &data_dir]).await;
    let (opened, again) = acks(child.url.clone(), writes("agent-7")).await;
    assert_eq!(opened.last_sequence, 30, "the session is remembered across the crash");
    assert_eq!(opened.revision, 30, "nothing was applied twice");
    for (a, b) in first.iter().zip(&again) {
        assert!(b.duplicate, "{b:?}");
        assert_eq!((a.sequence, a.revision), (b.sequence, b.revision));
    }
    child.kill9().await;
}
