//! The depth derivation checked against prost itself: for every carrier, a value decodes
//! exactly when the derivation says it does.

use crate::protojson::{Struct, Value};
use prost::Message;

use super::*;
use crate::pb::portway::state::v1 as api;
use crate::services::state::backend;

/// `levels` objects inside one another around a number (`{"a":{"a":1}}` is 2).
pub fn objects(levels: usize) -> Value {
    (0..levels)
        .fold(Value::from(1.0), |inner, _| Value::from([("a".to_string(), inner)].into_iter().collect::<Struct>()))
}

/// `levels` arrays inside one another around a number (`[[1]]` is 2).
pub fn arrays(levels: usize) -> Value {
    (0..levels).fold(Value::from(1.0), |inner, _| Value::from(vec![inner]))
}

fn decodes<M: Message + Default>(m: M) -> bool {
    M::decode(m.encode_to_vec().as_slice()).is_ok()
}

fn entry(v: Value) -> api::Entry {
    api::Entry { key: "k".into(), value: Some(v), ..Default::default() }
}

fn event(v: Value) -> api::Event {
    api::Event { r#type: api::event::Type::Put as i32, entry: Some(entry(v)), prev_entry: None }
}

fn txn_put(v: Value) -> api::TxnRequest {
    let put = api::PutOp { key: "k".into(), value: Some(v) };
    api::TxnRequest { success: vec![api::Op { op: Some(api::op::Op::Put(put)) }], ..Default::default() }
}

/// Encodes `v` at the deepest place of the carrier named `what` and decodes it again.
fn carry(what: &str, v: Value) -> bool {
    use api::op_result::Result as R;
    match what {
        "portway.state.v1.GetResponse" => decodes(api::GetResponse { entry: Some(entry(v)), revision: 1 }),
        "portway.state.v1.PutResponse" => {
            decodes(api::PutResponse { prev_entry: Some(entry(v)), ..Default::default() })
        }
        "portway.state.v1.DeleteResponse" => {
            decodes(api::DeleteResponse { prev_entry: Some(entry(v)), ..Default::default() })
        }
        "portway.state.v1.TxnResponse" => {
            let put = api::PutResponse { entry: Some(entry(v)), ..Default::default() };
            decodes(api::TxnResponse {
                results: vec![api::OpResult { result: Some(R::Put(put)) }],
                ..Default::default()
            })
        }
        "portway.state.v1.ListResponse" => decodes(api::ListResponse { entries: vec![entry(v)], ..Default::default() }),
        "portway.state.v1.WatchResponse" => {
            decodes(api::WatchResponse { events: vec![event(v)], ..Default::default() })
        }
        "portway.state.v1.HistoryResponse" => decodes(api::HistoryResponse { events: vec![event(v)] }),
        "portway.state.v1.SyncResponse" => {
            let events = api::SyncEvents { watch_id: 1, revision: 1, events: vec![event(v)] };
            decodes(api::SyncResponse { response: Some(api::sync_response::Response::Events(events)) })
        }
        "portway.state.v1.PutRequest" => decodes(api::PutRequest { value: Some(v), ..Default::default() }),
        "portway.state.v1.TxnRequest" => decodes(txn_put(v)),
        "portway.state.v1.SyncRequest" => {
            let write = api::SyncWrite { sequence: 1, op: Some(api::sync_write::Op::Txn(txn_put(v))) };
            decodes(api::SyncRequest { request: Some(api::sync_request::Request::Write(write)) })
        }
        "redb table kv (live entries)" => decodes(entry(v)),
        "redb table log (revision records)" => backend::log_record_decodes(v),
        other => panic!("no test carrier for {other}: add one"),
    }
}

#[test]
fn the_derivation_reads_the_protos() {
    let d = derivation().expect("derives");
    assert_eq!(d.per_level, 3, "an object level: Value, Struct, FieldsEntry");
    let table: Vec<(&str, usize)> = d.carriers.iter().map(|c| (c.what.as_str(), c.nesting)).collect();
    assert_eq!(
        table,
        [
            ("portway.state.v1.SyncRequest", 5),
            ("portway.state.v1.SyncResponse", 4),
            ("portway.state.v1.TxnResponse", 4),
            ("portway.state.v1.HistoryResponse", 3),
            ("portway.state.v1.TxnRequest", 3),
            ("portway.state.v1.WatchResponse", 3),
            ("redb table log (revision records)", 3),
            ("portway.state.v1.DeleteResponse", 2),
            ("portway.state.v1.GetResponse", 2),
            ("portway.state.v1.ListResponse", 2),
            ("portway.state.v1.PutResponse", 2),
            ("portway.state.v1.PutRequest", 1),
            ("redb table kv (live entries)", 1),
        ],
        "docs/state-store.md shows this table: update it with the protos"
    );
    // (100 - 2 - 5) / 3 = 31: the number docs/state-store.md and the README give.
    assert_eq!((d.ceiling, d.default_depth()), (31, 31));
    assert_eq!(default_max_value_depth(), 31);
}

#[test]
fn every_carrier_decodes_exactly_what_the_derivation_says() {
    let d = derivation().expect("derives");
    for c in &d.carriers {
        for levels in 0..=50 {
            let fits = |per_level: usize| c.nesting + per_level * levels <= DECODE_LIMIT;
            assert_eq!(carry(&c.what, objects(levels)), fits(3), "{} with {levels} object levels", c.what);
            assert_eq!(carry(&c.what, arrays(levels)), fits(2), "{} with {levels} array levels", c.what);
        }
        // At the limit, the carrier still has the spare levels free.
        assert!(c.nesting + d.per_level * d.ceiling + SPARE <= DECODE_LIMIT, "{}", c.what);
        assert!(carry(&c.what, objects(d.ceiling)), "{}", c.what);
    }
    // And the spare is not wasted: one level more would not fit the deepest carrier.
    let deepest = d.deepest().expect("a carrier");
    assert!(deepest.nesting + d.per_level * (d.ceiling + 1) + SPARE > DECODE_LIMIT);
}

#[test]
fn a_descriptor_set_without_the_service_is_an_error() {
    let err = derive(&[]).expect_err("no service");
    assert!(err.contains("google.protobuf.Value") || err.contains(SERVICE), "{err}");
}
