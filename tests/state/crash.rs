//! Crash safety: a real `portway` process is killed with SIGKILL while writes are in
//! flight, again and again; after each restart on the same data directory every
//! acknowledged write is there, and Sync resends are still recognised.

use std::time::Duration;

use futures_util::StreamExt as _;

use super::api;
use super::client::{Child, grpc, put};
use super::trials::{self, Plan};

/// The short run of the crash trials (`tests/state/trials.rs`; the recorded run of 100 is
/// `scripts/crash-trials`): five kills mid-write, and after every restart each acknowledged
/// write is there with its value and revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = Plan {
        bin: std::path::PathBuf::from(env!("CARGO_BIN_EXE_portway")),
        data_dir: dir.path().to_path_buf(),
        trials: 5,
        writers: 16,
        min_acks: 100,
        max_extra_delay: Duration::from_millis(100),
        seed: 0x5eed,
    };
    let totals = trials::run(&plan, |_, _| {}).await;
    assert!(totals.problems.is_empty(), "{:#?}", totals.problems);
    assert_eq!((totals.trials, totals.starts, totals.lost), (5, 6, 0), "{totals:?}");
    assert!(totals.acknowledged >= 5 * 100, "{totals:?}");
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
