//! The state store under the corpus: hostile writes on every protocol to a durable store,
//! then every key it lists is read back (Get, at the latest revision and at the one it was
//! written at), and the store restarts clean with the same keys and values. A write that is
//! acknowledged but cannot be read back, or a record that stops the store from starting,
//! fails this test.

use portway::pb::portway::state::v1 as api;
use portway::pb::portway::state::v1::state_service_client::StateServiceClient;
use portway::services::ServiceOptions;
use portway::services::state::{StateOptions, Store};
use prost::Message as _;
use serde_json::json;

use super::grpc::{Case, Over, run_cases};
use super::wire::{Read, Req, env, nested};
use super::ws_json::{ws_row, ws_run};
use super::{Row, STATE, common, config, judge};

/// A gateway with the interop service (the corpus's healthy calls use it) and a durable
/// state store in `dir`.
async fn start(dir: &std::path::Path) -> (common::TestServer, Store) {
    let mut options = ServiceOptions::default();
    options.interop = true;
    options.max_message_bytes = super::LIMIT;
    options.state = StateOptions::durable(dir);
    let mounted = portway::services::mount(&options).await.expect("mount");
    let store = mounted.state.clone();
    (common::start_routes(mounted.routes, config()).await, store)
}

/// A `PutRequest` as raw protobuf: key bytes as given, the value's encoding as given.
fn raw_put(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x0a, key.len() as u8];
    out.extend_from_slice(key);
    out.push(0x12);
    out.extend_from_slice(&varint(value.len()));
    out.extend_from_slice(value);
    out
}

fn varint(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(n as u64, &mut out);
    out
}

/// `google.protobuf.Value` with `number_value` = `n`.
fn number(n: f64) -> Vec<u8> {
    [vec![0x11], n.to_le_bytes().to_vec()].concat()
}

/// A `Value` of `levels` nested lists around a null.
fn lists(levels: usize) -> Vec<u8> {
    (0..levels).fold(vec![0x08, 0x00], |inner, _| {
        let list = [vec![0x0a], varint(inner.len()), inner].concat();
        [vec![0x32], varint(list.len()), list].concat()
    })
}

fn grpc_cases() -> Vec<Case> {
    let put = |name: &str, key: &[u8], value: Vec<u8>, want| Case {
        name: format!("store/grpc-{name}"),
        read: Read::Grpc,
        req: Req::post(format!("{STATE}/Put"), "application/grpc", env(0, &raw_put(key, &value))),
        want,
        over: Over::H2,
    };
    vec![
        put("put-ok", b"g/ok", number(1.0), "grpc 0"),
        put("put-31-levels", b"g/deep", lists(31), "grpc 0"),
        put("put-32-levels", b"g/too-deep", lists(32), "grpc 3"),
        put("put-200-levels", b"g/far-too-deep", lists(200), "grpc 13"),
        put("put-nan", b"g/nan", number(f64::NAN), "grpc 3"),
        put("put-infinity", b"g/inf", number(f64::INFINITY), "grpc 3"),
        put("put-key-not-utf8", b"g/\xff\xfe", number(1.0), "grpc 13"),
        put("put-empty-key", b"", number(1.0), "grpc 3"),
        put("put-key-with-nul", b"g/\0nul", number(1.0), "grpc 0"),
        put("put-value-over-the-limit", b"g/big", [vec![0x1a], varint(20_000), vec![b'x'; 20_000]].concat(), "grpc 8"),
    ]
}

fn connect_cases() -> Vec<Case> {
    let put = |name: &str, body: String, want| Case {
        name: format!("store/connect-{name}"),
        read: Read::Connect,
        req: Req::post(format!("{STATE}/Put"), "application/json", body),
        want,
        over: Over::Both,
    };
    let bad = "connect 400 invalid_argument";
    vec![
        put("put-ok", json!({"key":"c/ok","value":{"a":[1,"two",null,true]}}).to_string(), "connect 200 ok"),
        put(
            "put-31-levels",
            format!(r#"{{"key":"c/deep","value":{}1{}}}"#, "[".repeat(30), "]".repeat(30)),
            "connect 200 ok",
        ),
        put("put-40-levels", format!(r#"{{"key":"c/too-deep","value":{}}}"#, nested(40)), bad),
        put("put-lone-surrogate", r#"{"key":"c/\ud800","value":1}"#.into(), bad),
        put("put-number-1e400", r#"{"key":"c/huge","value":1e400}"#.into(), bad),
        put("put-unicode-key", json!({"key":"c/ключ/🔑/\u{202e}","value":"x"}).to_string(), "connect 200 ok"),
        put("put-empty-key", r#"{"key":"","value":1}"#.into(), bad),
        put("put-key-over-the-limit", json!({"key":"c/".to_string() + &"k".repeat(5000),"value":1}).to_string(), bad),
    ]
}

fn ws_rows() -> Vec<super::ws_json::WsRow> {
    let open = |id: u64, message: serde_json::Value| {
        json!({"type":"open","id":id,"method":format!("{STATE}/Put"),"message":message,"end":true}).to_string()
    };
    vec![
        ws_row("store/websocket-put-ok", open(2, json!({"key":"w/ok","value":{"x":1.5}})), Some(2), "status ok"),
        ws_row(
            "store/websocket-put-40-levels",
            open(
                2,
                json!({"key":"w/too-deep","value": serde_json::from_str::<serde_json::Value>(&nested(40)).unwrap()}),
            ),
            Some(2),
            "status invalid_argument",
        ),
        ws_row(
            "store/websocket-put-wrong-type",
            open(2, json!({"key":7,"value":1})),
            Some(2),
            "status invalid_argument",
        ),
    ]
}

/// Every key listed, read back with Get at the latest revision and at its own `mod_revision`:
/// `(key, value)` pairs (values as protobuf bytes), or what failed.
async fn read_back(url: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string()).map_err(|e| e.to_string())?;
    let mut client = StateServiceClient::new(channel.connect().await.map_err(|e| e.to_string())?);
    let mut list = client.list(api::ListRequest::default()).await.map_err(|e| format!("List: {e}"))?.into_inner();
    let mut entries = Vec::new();
    while let Some(page) = list.message().await.map_err(|e| format!("List: {e}"))? {
        entries.extend(page.entries);
    }
    let mut out = Vec::new();
    for e in entries {
        for revision in [0, e.mod_revision] {
            let got = client.get(api::GetRequest { key: e.key.clone(), revision }).await;
            let got = got.map_err(|s| format!("Get {:?} at {revision}: {s}", e.key))?.into_inner();
            let value = got.entry.and_then(|g| g.value).map(|v| v.encode_to_vec()).unwrap_or_default();
            if value != e.value.as_ref().map(prost::Message::encode_to_vec).unwrap_or_default() {
                return Err(format!("Get {:?} at {revision} differs from List", e.key));
            }
        }
        out.push((e.key.clone(), e.value.map(|v| v.encode_to_vec()).unwrap_or_default()));
    }
    Ok(out)
}

#[tokio::test]
async fn hostile_writes_leave_the_store_readable_and_restartable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, store) = start(dir.path()).await;
    let mut rows = run_cases(server.addr, grpc_cases()).await;
    rows.extend(run_cases(server.addr, connect_cases()).await);
    for r in ws_rows() {
        let got = ws_run(server.addr, &r).await;
        rows.push(Row { name: r.name().into(), want: r.want().into(), got });
    }
    judge("store", &rows);

    let before = read_back(&server.url()).await.expect("every key reads back");
    // What was accepted is there: one key per accepted row (the HTTP/1.1 and HTTP/2 runs of
    // a Connect row write the same key).
    let keys: Vec<&str> = before.iter().map(|(k, _)| k.as_str()).collect();
    for key in ["g/ok", "g/deep", "g/\0nul", "c/ok", "c/deep", "c/ключ/🔑/\u{202e}", "w/ok"] {
        assert!(keys.contains(&key), "{key:?} missing from {keys:?}");
    }
    assert_eq!(keys.len(), 7, "{keys:?}");

    drop(server);
    store.shutdown().await;
    drop(store);
    let (server, store) = start(dir.path()).await;
    assert!(store.open_report().is_clean(), "{:?}", store.open_report());
    let after = read_back(&server.url()).await.expect("every key reads back after a restart");
    assert_eq!(after, before, "the same keys and values after a restart");
}
