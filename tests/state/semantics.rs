//! The model-based property test again, this time through the real gRPC server (fewer
//! cases than the library's own run against the store), plus the `null` rule over JSON.

use futures_util::StreamExt as _;
use portway::Config;
use portway::services::state::StateOptions;
use proptest::prelude::*;
use serde_json::json;
use tonic::Code;

use super::api;
use super::client::{Connect, Grpc, detail, grpc};
use super::common;
use super::model::{self, ErrKind, Model, Op, Outcome, requests};

fn err_kind(s: &tonic::Status) -> ErrKind {
    match s.code() {
        Code::NotFound => ErrKind::NotFound,
        Code::FailedPrecondition => match detail::<api::ConflictDetail>(s, "ConflictDetail") {
            Some(d) => ErrKind::Conflict { current: d.current_revision },
            None => ErrKind::TooOld,
        },
        Code::OutOfRange => match detail::<api::CompactedDetail>(s, "CompactedDetail") {
            Some(d) if d.oldest_revision > 0 => ErrKind::Compacted { oldest: d.oldest_revision },
            _ => ErrKind::Future,
        },
        Code::InvalidArgument => ErrKind::Invalid,
        _ => panic!("unexpected status {s:?}"),
    }
}

fn rpc_err_kind(s: &portway::pb::google::rpc::Status) -> ErrKind {
    use prost::Message as _;
    let status = tonic::Status::with_details(Code::from_i32(s.code), s.message.clone(), s.encode_to_vec().into());
    err_kind(&status)
}

async fn sync_write(url: &str, session: &str, sequence: u64, put: api::PutRequest) -> Outcome {
    let mut client = grpc(url).await;
    let open = api::SyncRequest {
        request: Some(api::sync_request::Request::Open(api::SyncOpen { session_id: session.into() })),
    };
    let write = api::SyncRequest {
        request: Some(api::sync_request::Request::Write(api::SyncWrite {
            sequence,
            op: Some(api::sync_write::Op::Put(put)),
        })),
    };
    let mut responses = client.sync(futures_util::stream::iter([open, write])).await.expect("sync").into_inner();
    let mut ack = None;
    while let Some(msg) = responses.next().await {
        if let Some(api::sync_response::Response::Ack(a)) = msg.expect("sync message").response {
            ack = Some(a);
        }
    }
    let a = ack.expect("an ack");
    assert_eq!(a.sequence, sequence);
    match a.error.as_ref().map(rpc_err_kind) {
        Some(ErrKind::TooOld) => Outcome::Err(ErrKind::TooOld),
        error => Outcome::Session { revision: a.revision, duplicate: a.duplicate, succeeded: a.succeeded, error },
    }
}

async fn run(client: &mut Grpc, url: &str, op: &Op) -> Outcome {
    let result: Result<Outcome, tonic::Status> = async {
        Ok(match op {
            Op::Put { key, value, expected } => {
                let r = client.put(requests::put(key, value, *expected)).await?.into_inner();
                Outcome::Put { revision: r.revision, entry: model::entry(r.entry.as_ref().expect("entry")) }
            }
            Op::Delete { key, expected } => {
                let r = client.delete(requests::delete(key, *expected)).await?.into_inner();
                Outcome::Delete {
                    revision: r.revision,
                    deleted: r.deleted,
                    prev: r.prev_entry.as_ref().map(model::entry),
                }
            }
            Op::Txn { compare, success, failure } => {
                requests::txn_outcome(&client.txn(requests::txn(compare, success, failure)).await?.into_inner())
            }
            Op::PutMany(puts) => {
                let reqs: Vec<_> = puts.iter().map(|(k, v, e)| requests::put(k, v, *e)).collect();
                let r = client.put_many(futures_util::stream::iter(reqs)).await?.into_inner();
                Outcome::PutMany { revision: r.revision, count: r.count }
            }
            Op::Get { key, revision } => {
                let r = client.get(api::GetRequest { key: key.clone(), revision: *revision }).await?.into_inner();
                Outcome::Get { revision: r.revision, entry: model::entry(r.entry.as_ref().expect("entry")) }
            }
            Op::List { prefix, revision, limit, start_key } => {
                let req = api::ListRequest {
                    prefix: prefix.clone(),
                    revision: *revision,
                    limit: *limit,
                    start_key: start_key.clone(),
                };
                let mut stream = client.list(req).await?.into_inner();
                let mut entries = Vec::new();
                let (mut revision, mut more, mut next_key) = (0, false, String::new());
                while let Some(msg) = stream.message().await? {
                    entries.extend(msg.entries.iter().map(model::entry));
                    revision = msg.revision;
                    more = msg.more;
                    next_key = msg.next_key;
                }
                Outcome::List { revision, entries, more, next_key }
            }
            Op::History { start } => {
                let mut stream = client
                    .history(api::HistoryRequest { start_revision: *start, ..Default::default() })
                    .await?
                    .into_inner();
                let mut events = Vec::new();
                while let Some(msg) = stream.message().await? {
                    events.extend(msg.events);
                }
                requests::history_outcome(&events)
            }
            Op::Session { session, sequence, key, value, expected } => {
                sync_write(url, session, *sequence, requests::put(key, value, *expected)).await
            }
            Op::Restart => Outcome::Restarted,
        })
    }
    .await;
    result.unwrap_or_else(|s| Outcome::Err(err_kind(&s)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn grpc_server_matches_the_model(keep in 0u64..10, steps in prop::collection::vec(model::step(false), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async {
            let mut options = StateOptions::memory();
            options.history_revisions = keep;
            options.history_age = None;
            options.max_txn_ops = 3;
            options.session_window = 4;
            let (server, _store) = common::start_state(options, Config::default()).await;
            let mut client = grpc(&server.url()).await;
            let mut model = Model::new(keep as i64, 3, 4);
            for (i, step) in steps.iter().enumerate() {
                let op = model.resolve(step);
                let want = model.apply(&op);
                let got = run(&mut client, &server.url(), &op).await;
                prop_assert_eq!(&got, &want, "step {} {:?}", i, op);
            }
            Ok(())
        })?;
    }
}

/// A JSON `null` and an absent value both store `null`; responses always carry the value;
/// nested nulls are kept; a VALUE comparison with `null` matches a stored `null`.
#[tokio::test]
async fn null_values_over_connect_json() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let c = Connect::new(&server.url());
    let (status, body) = c.unary("Put", json!({"key": "n", "value": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entry"]["value"], json!(null));
    assert!(body["entry"].as_object().expect("entry").contains_key("value"), "null is sent, not omitted: {body}");
    let (status, body) = c.unary("Put", json!({"key": "absent"})).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = c.unary("Get", json!({"key": "absent"})).await;
    assert!(body["entry"].as_object().expect("entry").contains_key("value"), "{body}");
    assert_eq!(body["entry"]["value"], json!(null));
    let (_, _) = c.unary("Put", json!({"key": "nested", "value": {"a": null, "b": [null, 1]}})).await;
    let (_, body) = c.unary("Get", json!({"key": "nested"})).await;
    // Exactly as sent: nulls kept, and the whole number written back as `1`, not `1.0`.
    assert_eq!(body["entry"]["value"], json!({"a": null, "b": [null, 1]}));

    let txn = |value: serde_json::Value| {
        json!({
            "compare": [{"key": "n", "target": "VALUE", "value": value}],
            "success": [{"get": {"key": "n"}}],
        })
    };
    let (status, body) = c.unary("Txn", txn(json!(null))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["succeeded"], json!(true), "{body}");
    let (_, body) = c.unary("Txn", txn(json!(0))).await;
    assert_eq!(body.get("succeeded"), None, "false is omitted in canonical JSON: {body}");

    // Over gRPC, an unset value is null too.
    let mut g = grpc(&server.url()).await;
    g.put(api::PutRequest { key: "g".into(), value: None, ..Default::default() }).await.expect("put");
    let e =
        g.get(api::GetRequest { key: "g".into(), revision: 0 }).await.expect("get").into_inner().entry.expect("entry");
    assert_eq!(e.value, Some(portway::protojson::Value::from(())));
}
