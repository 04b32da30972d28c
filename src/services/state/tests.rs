//! Property tests of the semantic layer against a naive model (`tests/state/model.rs`):
//! random operation sequences through [`Store`] (the engine, the writer and a backend),
//! with the memory backend and with redb (restarting on the same file in between).

use proptest::prelude::*;

use super::convert;
use super::engine::{DedupKey, SessionOutcome};
use super::{StateOptions, Store, StoreError};
use crate::pb::portway::state::v1 as api;
use crate::protojson::Value;

#[path = "../../../tests/state/model.rs"]
mod model;

use model::{ErrKind, Model, Op, Outcome, Step, requests};

fn err_kind(e: StoreError) -> ErrKind {
    match e {
        StoreError::NotFound { .. } => ErrKind::NotFound,
        StoreError::Conflict { current, .. } => ErrKind::Conflict { current },
        StoreError::Compacted { oldest, .. } => ErrKind::Compacted { oldest },
        StoreError::FutureRevision { .. } => ErrKind::Future,
        StoreError::Invalid(_) | StoreError::Limit { exhausted: false, .. } => ErrKind::Invalid,
        StoreError::SequenceTooOld { .. } => ErrKind::TooOld,
        other => panic!("unexpected store error {other:?}"),
    }
}

fn rpc_err_kind(s: &crate::pb::google::rpc::Status) -> ErrKind {
    use prost::Message as _;
    let detail = s.details.first().expect("conflict detail");
    assert!(detail.type_url.ends_with("portway.state.v1.ConflictDetail"), "{s:?}");
    let d = api::ConflictDetail::decode(detail.value.as_ref()).expect("decodes");
    ErrKind::Conflict { current: d.current_revision }
}

/// Runs one concrete operation against the store, normalized like the model's answer.
async fn run(store: &mut Store, options: &StateOptions, op: &Op) -> Outcome {
    let result: Result<Outcome, StoreError> = async {
        Ok(match op {
            Op::Put { key, value, expected } => {
                let out = store.write(convert::put(requests::put(key, value, *expected), options)?).await?;
                let r = convert::put_response(&out, false);
                Outcome::Put { revision: r.revision, entry: model::entry(r.entry.as_ref().expect("entry")) }
            }
            Op::Delete { key, expected } => {
                let out = store.write(convert::delete(requests::delete(key, *expected), options)?).await?;
                let r = convert::delete_response(&out);
                Outcome::Delete {
                    revision: r.revision,
                    deleted: r.deleted,
                    prev: r.prev_entry.as_ref().map(model::entry),
                }
            }
            Op::Txn { compare, success, failure } => {
                let out = store.write(convert::txn(requests::txn(compare, success, failure), options)?).await?;
                requests::txn_outcome(&convert::txn_response(&out))
            }
            Op::PutMany(puts) => {
                let specs = puts
                    .iter()
                    .map(|(k, v, e)| convert::put_spec(requests::put(k, v, *e), options))
                    .collect::<Result<Vec<_>, _>>()?;
                let out = store.write(convert::put_many(specs, options)?).await?;
                Outcome::PutMany { revision: out.revision, count: out.results.len() as i64 }
            }
            Op::Get { key, revision } => {
                let (e, at) = store.get(key, *revision)?;
                let e = e.ok_or(StoreError::NotFound { key: key.clone() })?;
                Outcome::Get { revision: at, entry: model::entry(&e) }
            }
            Op::List { prefix, revision, limit, start_key } => {
                let page = store.list(prefix, start_key, *revision, *limit as usize)?;
                Outcome::List {
                    revision: page.revision,
                    entries: page.entries.iter().map(|e| model::entry(e)).collect(),
                    more: page.more,
                    next_key: page.next_key,
                }
            }
            Op::History { start } => {
                let start = if *start == 0 { store.compact_revision() + 1 } else { *start };
                let records = store.records(start, i64::MAX, usize::MAX)?;
                let events: Vec<api::Event> =
                    records.iter().flat_map(|r| r.events.iter().map(|e| e.to_api(false))).collect();
                requests::history_outcome(&events)
            }
            Op::Session { session, sequence, key, value, expected } => {
                let op = convert::put(requests::put(key, value, *expected), options)?;
                let key = DedupKey { session: session.clone(), sequence: *sequence };
                match store.write_in_session(key, op).await?.await? {
                    SessionOutcome::Fresh(Ok(out)) => {
                        Outcome::Session { revision: out.revision, duplicate: false, succeeded: true, error: None }
                    }
                    SessionOutcome::Fresh(Err(e)) => {
                        Outcome::Session { revision: 0, duplicate: false, succeeded: false, error: Some(err_kind(e)) }
                    }
                    SessionOutcome::Duplicate(rec) => Outcome::Session {
                        revision: rec.revision,
                        duplicate: true,
                        succeeded: rec.succeeded,
                        error: rec.error.as_ref().map(rpc_err_kind),
                    },
                }
            }
            Op::Restart => {
                if options.storage == super::StorageKind::Durable {
                    store.shutdown().await;
                    *store = Store::open(options.clone()).await.expect("reopen");
                }
                Outcome::Restarted
            }
        })
    }
    .await;
    result.unwrap_or_else(|e| Outcome::Err(err_kind(e)))
}

fn check(mut options: StateOptions, keep: u64, steps: Vec<Step>) -> Result<(), TestCaseError> {
    options.history_revisions = keep;
    options.history_age = None;
    options.max_txn_ops = 3;
    options.session_window = 4;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut store = Store::open(options.clone()).await.expect("open");
        let mut model = Model::new(keep as i64, options.max_txn_ops, options.session_window);
        for (i, step) in steps.iter().enumerate() {
            let op = model.resolve(step);
            let want = model.apply(&op);
            let got = run(&mut store, &options, &op).await;
            prop_assert_eq!(&got, &want, "step {} {:?}", i, op);
            prop_assert_eq!(store.revision(), model.revision());
            prop_assert_eq!(store.compact_revision(), model.compact());
        }
        store.shutdown().await;
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_matches_the_model(keep in 0u64..12, steps in prop::collection::vec(model::step(false), 1..60)) {
        check(StateOptions::memory(), keep, steps)?;
    }
}

proptest! {
    // Every write is an fsync: fewer, and restarts in between.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn durable_store_matches_the_model_across_restarts(
        keep in 0u64..12,
        steps in prop::collection::vec(model::step(true), 1..40),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        check(StateOptions::durable(dir.path()), keep, steps)?;
    }
}

#[tokio::test]
async fn concurrent_writers_are_group_committed_without_losing_a_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(StateOptions::durable(dir.path())).await.expect("open");
    let options = store.options().clone();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let store = store.clone();
        let options = options.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..20 {
                let req = requests::put(&format!("w{w}/{i}"), &Value::from(f64::from(i)), None);
                revs.push(store.write(convert::put(req, &options).expect("valid")).await.expect("written").revision);
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort_unstable();
    // Every write got its own revision, 1..=640, none lost, none shared.
    assert_eq!(all, (1..=640).collect::<Vec<i64>>());
    store.shutdown().await;
    let store = Store::open(StateOptions::durable(dir.path())).await.expect("reopen");
    assert_eq!(store.revision(), 640);
    assert_eq!(store.list("w", "", 0, 0).expect("list").entries.len(), 640);
    store.shutdown().await;
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(StateOptions::durable(dir.path())).await.expect("open");
    let err = Store::open(StateOptions::durable(dir.path())).await.expect_err("locked");
    assert!(err.to_string().contains("already open"), "{err}");
    store.shutdown().await;
}

#[tokio::test]
async fn a_dropped_watcher_frees_its_slot() {
    let mut options = StateOptions::memory();
    options.max_watchers = 1;
    let store = Store::open(options).await.expect("open");
    let filter = || super::engine::KeyFilter { key: "k".into(), prefix: false };
    let first = store.watch(filter(), 0).expect("first watch");
    let refused = store.watch(filter(), 0).map(|_| ()).expect_err("over the limit");
    assert!(matches!(refused, StoreError::Limit { limit: "max_watchers", exhausted: true, .. }), "{refused:?}");
    drop(first);
    store.watch(filter(), 0).expect("the slot is free again");
}
