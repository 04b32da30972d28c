//! A damaged store file: a record that cannot be read back is reported (with its key or
//! revision and what is wrong) and left out, and the store starts and serves the rest; a
//! file redb itself cannot open is refused with a sentence that names it.
//!
//! What redb does, found by these tests: it does not verify checksums when it opens a file
//! that was closed cleanly, so damaged record bytes reach the store's decoder (and are
//! skipped here). A file that was not closed cleanly (kill -9) is verified: if the last
//! commit fails its checksum, redb rolls back to the commit before (reported here; after a
//! plain crash that is a commit the kill cut short, never acknowledged). A file
//! shorter than its own layout is refused outright ("File truncated below stored layout"),
//! and a file truncated to nothing is taken for a new database (reported here).

use std::path::{Path, PathBuf};

use portway::Config;
use portway::protojson::Value;
use portway::services::state::engine::{DedupKey, PutSpec, WriteOp};
use portway::services::state::{StateOptions, Store};
use prost::Message as _;
use redb::TableDefinition;
use tonic::Code;

use super::api;
use super::client::{Child, detail, grpc, put, watch_prefix};
use super::common;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<i64, &[u8]> = TableDefinition::new("log");
const DEDUP: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dedup");

/// The layout of a log record in the `log` table (a private type of the backend).
#[derive(Clone, PartialEq, prost::Message)]
struct StoredRecord {
    #[prost(int64, tag = "1")]
    revision: i64,
    #[prost(int64, tag = "2")]
    time_ms: i64,
    #[prost(message, repeated, tag = "3")]
    events: Vec<api::Event>,
}

fn file(dir: &Path) -> PathBuf {
    dir.join("state.redb")
}

fn marker(i: usize) -> String {
    format!("MARKER-{i:04}-some-payload")
}

fn spec(key: &str, value: impl Into<Value>) -> WriteOp {
    WriteOp::Put(PutSpec { key: key.into(), value: value.into(), expected: None })
}

/// Writes `k00` … `k{n-1}` (revisions 1..=n, values [`marker`]) and closes the store.
async fn fill(dir: &Path, n: usize) {
    let store = Store::open(StateOptions::durable(dir)).await.expect("open");
    for i in 0..n {
        store.write(spec(&format!("k{i:02}"), marker(i))).await.expect("write");
    }
    store.shutdown().await;
}

fn arrays(levels: usize) -> Value {
    (0..levels).fold(Value::from(1.0), |inner, _| Value::from(vec![inner]))
}

fn skipped(store: &Store) -> Vec<String> {
    store.open_report().skipped.iter().map(ToString::to_string).collect()
}

/// Flips the first byte of every copy of `needle` in the file to 0xFF (not UTF-8).
fn flip(path: &Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).expect("read");
    let hits: Vec<usize> =
        bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect();
    for &h in &hits {
        bytes[h] = 0xff;
    }
    std::fs::write(path, &bytes).expect("write");
    hits.len()
}

#[tokio::test]
async fn damaged_record_bytes_are_skipped_and_reported_and_the_rest_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 20).await;
    // k07's value, in its live entry and in the log record of revision 8.
    assert_eq!(flip(&file(dir.path()), marker(7).as_bytes()), 2, "one copy in `kv`, one in `log`");

    let (server, store) = common::start_state(StateOptions::durable(dir.path()), Config::default()).await;
    let report = skipped(&store);
    assert_eq!(report.len(), 2, "{report:#?}");
    assert!(
        report.iter().any(|r| r.starts_with("the log record of revision 8: ") && r.contains("UTF-8")),
        "{report:#?}"
    );
    assert!(
        report.iter().any(|r| r.starts_with("the entry of key \"k07\": ") && r.contains("not served")),
        "{report:#?}"
    );
    let notes = &store.open_report().notes;
    assert!(notes.iter().any(|n| n.contains("history up to revision 8 is treated as compacted")), "{notes:?}");
    let stats = store.stats();
    assert_eq!((stats.skipped_records, stats.keys, stats.revision, stats.compact_revision), (2, 19, 20, 8));

    // The rest is served, and the history from revision 9 on.
    let mut g = grpc(&server.url()).await;
    let err = g.get(api::GetRequest { key: "k07".into(), revision: 0 }).await.expect_err("skipped");
    assert_eq!(err.code(), Code::NotFound);
    let e = g.get(api::GetRequest { key: "k06".into(), revision: 0 }).await.expect("k06").into_inner().entry;
    assert_eq!(e.and_then(|e| e.value), Some(Value::from(marker(6))));
    let mut list = g.list(api::ListRequest::default()).await.expect("list").into_inner();
    let mut keys = 0;
    while let Some(page) = list.message().await.expect("page") {
        keys += page.entries.len();
    }
    assert_eq!(keys, 19);
    let err = g.history(api::HistoryRequest { start_revision: 1, ..Default::default() }).await.expect_err("compacted");
    assert_eq!(err.code(), Code::OutOfRange);
    let d: api::CompactedDetail = detail(&err, "CompactedDetail").expect("detail");
    assert_eq!(d.oldest_revision, 9);
    let mut watch = g.watch(watch_prefix("k", 9)).await.expect("watch from 9").into_inner();
    assert!(watch.message().await.expect("created").expect("created").created);
    assert_eq!(
        watch.message().await.expect("replay").expect("open").events[0].entry.as_ref().map(|e| e.mod_revision),
        Some(9)
    );

    // Writing the key again repairs it for good: the next start reports nothing.
    g.put(put("k07", "again")).await.expect("put");
    drop((watch, g, server));
    store.shutdown().await;
    let store = Store::open(StateOptions::durable(dir.path())).await.expect("reopen");
    assert!(store.open_report().is_clean(), "{:?}", store.open_report());
    assert_eq!(store.get("k07", 0).expect("get").0.and_then(|e| e.value.clone()), Some(Value::from("again")));
    store.shutdown().await;
}

/// Records forged into every table, as an older build or a damaged disk could leave them:
/// each is skipped or, where the log holds the key's last change, restored from it.
#[tokio::test]
async fn bad_records_in_every_table_are_skipped_or_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(StateOptions::durable(dir.path())).await.expect("open");
    store.write(spec("k1", 1.0)).await.expect("1");
    store.write(spec("k2", 2.0)).await.expect("2");
    store.write(spec("k2", 3.0)).await.expect("3");
    let key = DedupKey { session: "s".into(), sequence: 1 };
    store.write_in_session(key, spec("k3", 4.0)).await.expect("queued").await.expect("4");
    store.shutdown().await;

    {
        let db = redb::Database::create(file(dir.path())).expect("redb");
        let txn = db.begin_write().expect("txn");
        {
            let mut kv = txn.open_table(KV).expect("kv");
            kv.insert("k2", b"\xff\xff\xff".as_slice()).expect("garbage entry");
            // The value of the 50 nested arrays that used to brick the store: it does not
            // decode (101 nested messages). And one of 40: it decodes, but is deeper than
            // every response can carry.
            for (key, levels) in [("k9", 50), ("k8", 40)] {
                let e =
                    api::Entry { key: key.into(), value: Some(arrays(levels)), mod_revision: 4, ..Default::default() };
                kv.insert(key, e.encode_to_vec().as_slice()).expect("deep entry");
            }
            let mut log = txn.open_table(LOG).expect("log");
            log.insert(2, b"\x08".as_slice()).expect("truncated record");
            let deep = api::Entry { key: "k3".into(), value: Some(arrays(40)), mod_revision: 4, ..Default::default() };
            let event = api::Event { r#type: api::event::Type::Put as i32, entry: Some(deep), prev_entry: None };
            let record = StoredRecord { revision: 4, time_ms: 0, events: vec![event] };
            log.insert(4, record.encode_to_vec().as_slice()).expect("deep record");
            txn.open_table(DEDUP).expect("dedup").insert(("s", 1), b"\xff".as_slice()).expect("garbage outcome");
        }
        txn.commit().expect("commit");
    }

    let (server, store) = common::start_state(StateOptions::durable(dir.path()), Config::default()).await;
    let mut report = skipped(&store);
    report.sort();
    assert_eq!(report.len(), 6, "{report:#?}");
    let expect = [
        ("the entry of key \"k2\": ", "restored from the log record of revision 3"),
        ("the entry of key \"k8\": ", "nests 40 levels of arrays and objects, deeper than the 31"),
        ("the entry of key \"k9\": ", "recursion limit reached; the key is not served"),
        ("the log record of revision 2: ", "failed to decode"),
        ("the log record of revision 4: ", "nests 40 levels"),
        ("the outcome of write 1 of Sync session \"s\": ", "a resend of that write applies it again"),
    ];
    for ((start, part), line) in expect.iter().zip(&report) {
        assert!(
            line.starts_with(start) && line.contains(part),
            "{line:?} should start with {start:?} and say {part:?}"
        );
    }
    let notes = &store.open_report().notes;
    assert!(
        notes.iter().any(|n| n.contains("no readable record of revision 2, 4: history up to revision 4")),
        "{notes:?}"
    );

    let mut g = grpc(&server.url()).await;
    let get = |key: &str| api::GetRequest { key: key.into(), revision: 0 };
    let value = |r: api::GetResponse| r.entry.and_then(|e| e.value);
    assert_eq!(value(g.get(get("k1")).await.expect("k1").into_inner()), Some(Value::from(1.0)));
    assert_eq!(value(g.get(get("k2")).await.expect("k2 restored").into_inner()), Some(Value::from(3.0)));
    assert_eq!(value(g.get(get("k3")).await.expect("k3").into_inner()), Some(Value::from(4.0)));
    for key in ["k8", "k9"] {
        assert_eq!(g.get(get(key)).await.expect_err(key).code(), Code::NotFound);
    }
    // The session's outcome is forgotten: its resend applies again (revision 5).
    let mut session = g
        .sync(futures_util::stream::iter([
            api::SyncRequest {
                request: Some(api::sync_request::Request::Open(api::SyncOpen { session_id: "s".into() })),
            },
            api::SyncRequest {
                request: Some(api::sync_request::Request::Write(api::SyncWrite {
                    sequence: 1,
                    op: Some(api::sync_write::Op::Put(put("k3", 4.0))),
                })),
            },
        ]))
        .await
        .expect("sync")
        .into_inner();
    let _opened = session.message().await.expect("opened");
    match session.message().await.expect("ack").and_then(|m| m.response) {
        Some(api::sync_response::Response::Ack(a)) => assert_eq!((a.duplicate, a.revision), (false, 5)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_truncated_file_is_refused_with_a_sentence_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 50).await;
    let path = file(dir.path());
    let len = std::fs::metadata(&path).expect("metadata").len();
    std::fs::OpenOptions::new().write(true).open(&path).expect("open").set_len(len / 2).expect("truncate");

    let err = Store::open(StateOptions::durable(dir.path())).await.expect_err("truncated");
    let msg = err.to_string();
    assert!(msg.contains(&format!("the state store file {} is damaged", path.display())), "{msg}");
    assert!(msg.contains("restore it from a backup, or move it aside to start with an empty store"), "{msg}");

    // What an operator sees: the binary exits at once with that sentence.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portway"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run portway");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Error: opening the state store: the state store file {}", path.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("Backend(") && !stderr.contains("Corrupted("), "a sentence, not a Debug dump: {stderr}");

    // Truncated to nothing, the file looks like a new database: the store starts empty and
    // says so.
    std::fs::OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
    let store = Store::open(StateOptions::durable(dir.path())).await.expect("empty file");
    assert_eq!(store.revision(), 0);
    let notes = &store.open_report().notes;
    assert!(
        notes.iter().any(|n| n.contains("was empty (0 bytes)") && n.contains("restore it from a backup")),
        "{notes:?}"
    );
    store.shutdown().await;
}

/// After kill -9, redb verifies the file; a last commit that fails its checksum is rolled
/// back to the one before, and the store says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_damaged_last_commit_is_rolled_back_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8 path").to_string();
    let child = Child::start(&["--data-dir", &data_dir]).await;
    let mut g = grpc(&child.url).await;
    for i in 0..10 {
        g.put(put(&format!("k{i}"), marker(i))).await.expect("put");
    }
    child.kill9().await;

    // Not damaged: redb verifies the file and finds it intact.
    let store = Store::open(StateOptions::durable(dir.path())).await.expect("open after kill -9");
    assert_eq!(store.revision(), 10);
    let notes = store.open_report().notes.clone();
    store.shutdown().await;
    assert!(notes.iter().any(|n| n.contains("was not closed cleanly") && n.contains("intact")), "{notes:?}");

    let child = Child::start(&["--data-dir", &data_dir]).await;
    let mut g = grpc(&child.url).await;
    g.put(put("last", "LAST-WRITE-MARKER")).await.expect("put");
    child.kill9().await;
    // Only the last commit holds these bytes: damage every copy.
    assert!(flip(&file(dir.path()), b"LAST-WRITE-MARKER") >= 1);

    let store = Store::open(StateOptions::durable(dir.path())).await.expect("open after the rollback");
    let notes = &store.open_report().notes;
    assert!(notes.iter().any(|n| n.contains("rolled back to the commit before")), "{notes:?}");
    assert_eq!(store.revision(), 10, "the damaged commit is gone");
    assert!(store.get("last", 0).expect("get").0.is_none());
    assert_eq!(store.stats().keys, 10, "everything before it is served");
    store.shutdown().await;
}
