//! Bad input and limits: the right code, a clear message, typed details; over gRPC and
//! Connect JSON.

use portway::Config;
use portway::services::state::StateOptions;
use serde_json::json;
use tonic::Code;

use super::api;
use super::client::{Connect, detail, grpc, json_detail, put, watch_prefix};
use super::common;

fn limited() -> StateOptions {
    let mut o = StateOptions::memory();
    o.max_key_bytes = 16;
    o.max_value_bytes = 64;
    o.max_txn_ops = 2;
    o.max_watchers = 2;
    o
}

fn assert_limit(err: &tonic::Status, code: Code, limit: &str, max: i64, actual: i64) {
    assert_eq!(err.code(), code, "{err:?}");
    let d: api::LimitDetail = detail(err, "LimitDetail").unwrap_or_else(|| panic!("no LimitDetail in {err:?}"));
    assert_eq!((d.limit.as_str(), d.max, d.actual), (limit, max, actual));
    assert!(err.message().contains(&max.to_string()), "{}", err.message());
}

#[tokio::test]
async fn limits_are_enforced_with_clear_errors() {
    let (server, _store) = common::start_state(limited(), Config::default()).await;
    let mut g = grpc(&server.url()).await;

    let err = g.put(put(&"k".repeat(17), 1.0)).await.expect_err("key too long");
    assert_limit(&err, Code::InvalidArgument, "max_key_bytes", 16, 17);

    let err = g.put(put("k", "x".repeat(100))).await.expect_err("value too large");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(detail::<api::LimitDetail>(&err, "LimitDetail").is_some_and(|d| d.limit == "max_value_bytes"));

    let op = |k: &str| api::Op { op: Some(api::op::Op::Get(api::GetOp { key: k.into() })) };
    let err = g
        .txn(api::TxnRequest { success: vec![op("a"), op("b"), op("c")], ..Default::default() })
        .await
        .expect_err("too many ops");
    assert_limit(&err, Code::InvalidArgument, "max_txn_ops", 2, 3);

    let puts = (0..3).map(|i| put(&format!("m{i}"), 1.0)).collect::<Vec<_>>();
    let err = g.put_many(futures_util::stream::iter(puts)).await.expect_err("too many puts");
    assert_limit(&err, Code::InvalidArgument, "max_txn_ops", 2, 3);

    let (_w1, _w2) = (
        g.watch(watch_prefix("", 0)).await.expect("first watch"),
        g.watch(watch_prefix("", 0)).await.expect("second watch"),
    );
    let err = g.watch(watch_prefix("", 0)).await.expect_err("third watch");
    assert_limit(&err, Code::ResourceExhausted, "max_watchers", 2, 3);

    // The same over Connect JSON: code, HTTP status and details.
    let c = Connect::new(&server.url());
    let (status, body) = c.unary("Put", json!({"key": "k".repeat(17), "value": 1})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], json!("invalid_argument"));
    let d: api::LimitDetail = json_detail(&body, "LimitDetail").expect("detail");
    assert_eq!(d.limit, "max_key_bytes");
}

#[tokio::test]
async fn the_server_message_limit_applies() {
    let mut config = Config::default();
    config.max_message_bytes = 4096;
    let (server, _store) = common::start_state(StateOptions::memory(), config).await;
    let mut g = grpc(&server.url()).await;
    let err = g.put(put("k", "x".repeat(8192))).await.expect_err("message too large");
    // The gateway's message limit layer answers before the service decodes anything.
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("4096"), "{}", err.message());
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let mut g = grpc(&server.url()).await;
    g.put(put("k", 1.0)).await.expect("put");

    let err = g.put(put("", 1.0)).await.expect_err("empty key");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("empty"), "{}", err.message());

    let err = g.put(put("n", f64::NAN)).await.expect_err("NaN is not JSON");
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = g.get(api::GetRequest { key: "missing".into(), revision: 0 }).await.expect_err("absent");
    assert_eq!(err.code(), Code::NotFound);

    let err = g.get(api::GetRequest { key: "k".into(), revision: 99 }).await.expect_err("future");
    assert_eq!(err.code(), Code::OutOfRange);

    let err =
        g.list(api::ListRequest { limit: -1, ..Default::default() }).await.map(|_| ()).expect_err("negative limit");
    assert_eq!(err.code(), Code::InvalidArgument);

    let cmp = api::Compare { key: "k".into(), ..Default::default() };
    let err = g.txn(api::TxnRequest { compare: vec![cmp], ..Default::default() }).await.expect_err("no target");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("target"), "{}", err.message());

    let err = g.watch(api::WatchRequest::default()).await.map(|_| ()).expect_err("empty key without prefix");
    assert_eq!(err.code(), Code::InvalidArgument);

    let mut cas = put("k", 2.0);
    cas.expected_revision = Some(0);
    let err = g.put(cas).await.expect_err("exists");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let d: api::ConflictDetail = detail(&err, "ConflictDetail").expect("detail");
    assert_eq!((d.key.as_str(), d.current_revision, d.expected_revision), ("k", 1, 0));
}

/// Compare-and-set over Connect JSON, as curl would do it: int64 as strings or numbers,
/// the conflict's current revision in the error details.
#[tokio::test]
async fn compare_and_set_over_connect_json() {
    let (server, _store) = common::start_state(StateOptions::memory(), Config::default()).await;
    let c = Connect::new(&server.url());
    let (status, body) = c.unary("Put", json!({"key": "cfg", "value": {"v": 1}, "expectedRevision": "0"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = c.unary("Put", json!({"key": "cfg", "value": {"v": 2}, "expectedRevision": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entry"]["version"], json!("2"));
    let (status, body) = c.unary("Put", json!({"key": "cfg", "value": {"v": 3}, "expectedRevision": "1"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], json!("failed_precondition"));
    let d: api::ConflictDetail = json_detail(&body, "ConflictDetail").expect("detail");
    assert_eq!((d.current_revision, d.expected_revision), (2, 1));
    let (status, body) = c.unary("Delete", json!({"key": "cfg", "expectedRevision": "2"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], json!(true));
    let (status, body) = c.unary("Get", json!({"key": "cfg"})).await;
    assert_eq!((status, body["code"].clone()), (404, json!("not_found")));
}
