//! API messages ⇄ engine types, with every check on client input: key and value limits,
//! operation counts, enum values, the `null` rule. Nothing here trusts the request.

use std::collections::HashSet;

use crate::protojson::Value;
use crate::protojson::value::Kind;
use prost::Message as _;

use super::engine::{Compare, Event, KeyFilter, OpOutput, Operator, PutSpec, Target, TxnOp, WriteOp, WriteOutput};
use super::error::StoreError;
use super::options::StateOptions;
use crate::pb::portway::state::v1 as api;

fn limit(limit: &'static str, what: &'static str, max: usize, actual: usize) -> StoreError {
    StoreError::Limit {
        limit,
        what,
        max: i64::try_from(max).unwrap_or(i64::MAX),
        actual: i64::try_from(actual).unwrap_or(i64::MAX),
        exhausted: false,
    }
}

/// Checks a key that is read or written: non-empty and within `max_key_bytes`.
pub fn key(key: &str, options: &StateOptions) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::Invalid("key must not be empty".into()));
    }
    prefix(key, options)
}

/// Checks a prefix (may be empty): within `max_key_bytes`.
pub fn prefix(key: &str, options: &StateOptions) -> Result<(), StoreError> {
    if key.len() > options.max_key_bytes {
        return Err(limit("max_key_bytes", "key length in bytes", options.max_key_bytes, key.len()));
    }
    Ok(())
}

/// The stored form of a value: unset means JSON `null` (protobuf JSON cannot tell `null`
/// from absent), nested unset values become `null` too, non-finite numbers (not JSON) are
/// refused, the nesting must be within `max_value_depth` (so that every stored record and
/// every response carrying the value decodes again: see `depth.rs`), and the encoding must
/// fit `max_value_bytes`.
pub fn value(value: Option<Value>, options: &StateOptions) -> Result<Value, StoreError> {
    let mut v = value.unwrap_or_default();
    normalize(&mut v)?;
    let depth = depth(&v);
    if depth > options.max_value_depth {
        return Err(limit(
            "max_value_depth",
            "value nesting depth (arrays and objects)",
            options.max_value_depth,
            depth,
        ));
    }
    let size = v.encoded_len();
    if size > options.max_value_bytes {
        return Err(limit("max_value_bytes", "value size in bytes", options.max_value_bytes, size));
    }
    Ok(v)
}

/// Normalizes `v` in place: unset → `null`, a null's enum value → 0, non-finite numbers
/// refused. Iterative: the depth is not bounded yet.
fn normalize(v: &mut Value) -> Result<(), StoreError> {
    let mut pending: Vec<&mut Value> = vec![v];
    while let Some(v) = pending.pop() {
        match v.kind.get_or_insert(Kind::NullValue(0)) {
            Kind::NumberValue(n) if !n.is_finite() => {
                return Err(StoreError::Invalid(format!("value holds {n}, which JSON cannot represent")));
            }
            Kind::NullValue(n) => *n = 0,
            Kind::ListValue(l) => pending.extend(l.values.iter_mut()),
            Kind::StructValue(s) => pending.extend(s.fields.values_mut()),
            Kind::NumberValue(_) | Kind::StringValue(_) | Kind::BoolValue(_) => {}
        }
    }
    Ok(())
}

/// A value's nesting depth: how many arrays and objects lie inside one another on its
/// deepest path (a scalar: 0; `[1]`: 1; `{"a": [1]}`: 2). Iterative, as above.
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    // Each value with the number of arrays and objects around it.
    let mut pending: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, around)) = pending.pop() {
        match &v.kind {
            Some(Kind::ListValue(l)) => {
                deepest = deepest.max(around + 1);
                pending.extend(l.values.iter().map(|item| (item, around + 1)));
            }
            Some(Kind::StructValue(s)) => {
                deepest = deepest.max(around + 1);
                pending.extend(s.fields.values().map(|item| (item, around + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// A watch or replay filter from a key and a prefix flag ("" alone means every key for
/// History; Watch needs `prefix` to watch everything).
pub fn filter(key: String, prefix: bool, options: &StateOptions) -> Result<KeyFilter, StoreError> {
    if prefix {
        self::prefix(&key, options)?;
    } else {
        self::key(&key, options)?;
    }
    Ok(KeyFilter { key, prefix })
}

/// Cuts `events` (in revision order) into messages of about `budget` bytes without
/// splitting a revision; returns each message's events with its last revision.
pub fn chunk_events(events: &[Event], with_prev: bool, budget: usize) -> Vec<(Vec<api::Event>, i64)> {
    let mut out = Vec::new();
    let mut current: Vec<api::Event> = Vec::new();
    let mut size = 0usize;
    let mut last = 0i64;
    let mut i = 0;
    while i < events.len() {
        let revision = events[i].entry.mod_revision;
        let mut group = Vec::new();
        let mut group_size = 0usize;
        while i < events.len() && events[i].entry.mod_revision == revision {
            let e = events[i].to_api(with_prev);
            group_size += e.encoded_len() + 4;
            group.push(e);
            i += 1;
        }
        if !current.is_empty() && size + group_size > budget {
            out.push((std::mem::take(&mut current), last));
            size = 0;
        }
        current.extend(group);
        size += group_size;
        last = revision;
    }
    if !current.is_empty() {
        out.push((current, last));
    }
    out
}

fn expected(expected: Option<i64>) -> Result<Option<i64>, StoreError> {
    match expected {
        Some(e) if e < 0 => Err(StoreError::Invalid(format!("expected_revision {e} is negative"))),
        other => Ok(other),
    }
}

/// A Put request as a put.
pub fn put_spec(req: api::PutRequest, options: &StateOptions) -> Result<PutSpec, StoreError> {
    key(&req.key, options)?;
    Ok(PutSpec { value: value(req.value, options)?, expected: expected(req.expected_revision)?, key: req.key })
}

/// A Put request as a write.
pub fn put(req: api::PutRequest, options: &StateOptions) -> Result<WriteOp, StoreError> {
    Ok(WriteOp::Put(put_spec(req, options)?))
}

/// A Delete request as a write.
pub fn delete(req: api::DeleteRequest, options: &StateOptions) -> Result<WriteOp, StoreError> {
    key(&req.key, options)?;
    Ok(WriteOp::Delete { expected: expected(req.expected_revision)?, key: req.key })
}

/// Checks an operation count.
pub fn ops_count(what: &'static str, n: usize, options: &StateOptions) -> Result<(), StoreError> {
    if n > options.max_txn_ops {
        return Err(limit("max_txn_ops", what, options.max_txn_ops, n));
    }
    Ok(())
}

/// PutMany's puts as one write: keys distinct, count within `max_txn_ops`.
pub fn put_many(puts: Vec<PutSpec>, options: &StateOptions) -> Result<WriteOp, StoreError> {
    ops_count("puts in one PutMany", puts.len(), options)?;
    let mut seen = HashSet::new();
    for p in &puts {
        if !seen.insert(p.key.as_str()) {
            return Err(StoreError::Invalid(format!("key {:?} appears twice in one PutMany", p.key)));
        }
    }
    Ok(WriteOp::PutMany(puts))
}

fn compare(c: api::Compare, options: &StateOptions) -> Result<Compare, StoreError> {
    use api::compare::{Operator as O, Target as T};
    key(&c.key, options)?;
    let operator = match O::try_from(c.operator) {
        Ok(O::Equal) => Operator::Equal,
        Ok(O::NotEqual) => Operator::NotEqual,
        Ok(O::Less) => Operator::Less,
        Ok(O::Greater) => Operator::Greater,
        Err(_) => return Err(StoreError::Invalid(format!("unknown compare operator {}", c.operator))),
    };
    let ordered = matches!(operator, Operator::Less | Operator::Greater);
    let target = match T::try_from(c.target) {
        Ok(T::Exists) | Ok(T::Value) if ordered => {
            return Err(StoreError::Invalid(format!(
                "compare on key {:?}: EXISTS and VALUE take only EQUAL or NOT_EQUAL",
                c.key
            )));
        }
        Ok(T::Exists) => Target::Exists(c.exists),
        Ok(T::Value) => Target::Value(value(c.value, options)?),
        Ok(T::Version) => Target::Version(c.version),
        Ok(T::ModRevision) => Target::ModRevision(c.mod_revision),
        Ok(T::CreateRevision) => Target::CreateRevision(c.create_revision),
        Ok(T::Unspecified) => {
            return Err(StoreError::Invalid(format!(
                "compare on key {:?} has no target (EXISTS, VALUE, VERSION, MOD_REVISION or CREATE_REVISION)",
                c.key
            )));
        }
        Err(_) => return Err(StoreError::Invalid(format!("unknown compare target {}", c.target))),
    };
    Ok(Compare { key: c.key, target, operator })
}

fn branch(ops: Vec<api::Op>, name: &str, options: &StateOptions) -> Result<Vec<TxnOp>, StoreError> {
    let mut written = HashSet::new();
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let op = match op.op {
            Some(api::op::Op::Put(p)) => {
                key(&p.key, options)?;
                TxnOp::Put { value: value(p.value, options)?, key: p.key }
            }
            Some(api::op::Op::Delete(d)) => {
                key(&d.key, options)?;
                TxnOp::Delete { key: d.key }
            }
            Some(api::op::Op::Get(g)) => {
                key(&g.key, options)?;
                TxnOp::Get { key: g.key }
            }
            None => {
                return Err(StoreError::Invalid(format!("an operation in {name} is empty (set put, delete or get)")));
            }
        };
        if let TxnOp::Put { key, .. } | TxnOp::Delete { key } = &op
            && !written.insert(key.clone())
        {
            return Err(StoreError::Invalid(format!("key {key:?} is written twice in {name}")));
        }
        out.push(op);
    }
    Ok(out)
}

/// A Txn request as a write.
pub fn txn(req: api::TxnRequest, options: &StateOptions) -> Result<WriteOp, StoreError> {
    ops_count("comparisons in one transaction", req.compare.len(), options)?;
    ops_count("operations in one transaction branch", req.success.len(), options)?;
    ops_count("operations in one transaction branch", req.failure.len(), options)?;
    Ok(WriteOp::Txn {
        compare: req.compare.into_iter().map(|c| compare(c, options)).collect::<Result<_, _>>()?,
        success: branch(req.success, "success", options)?,
        failure: branch(req.failure, "failure", options)?,
    })
}

fn entry(e: &super::engine::EntryRef) -> api::Entry {
    (**e).clone()
}

/// The Put answer.
pub fn put_response(out: &WriteOutput, return_prev: bool) -> api::PutResponse {
    match out.results.first() {
        Some(OpOutput::Put { entry: e, prev }) => api::PutResponse {
            revision: out.revision,
            entry: Some(entry(e)),
            prev_entry: if return_prev { prev.as_ref().map(entry) } else { None },
        },
        _ => api::PutResponse { revision: out.revision, ..Default::default() },
    }
}

/// The Delete answer.
pub fn delete_response(out: &WriteOutput) -> api::DeleteResponse {
    match out.results.first() {
        Some(OpOutput::Delete { prev }) => api::DeleteResponse {
            revision: out.revision,
            deleted: prev.is_some(),
            prev_entry: prev.as_ref().map(entry),
        },
        _ => api::DeleteResponse { revision: out.revision, ..Default::default() },
    }
}

/// The Txn answer.
pub fn txn_response(out: &WriteOutput) -> api::TxnResponse {
    let revision = out.revision;
    let results = out
        .results
        .iter()
        .map(|r| api::OpResult {
            result: Some(match r {
                OpOutput::Put { entry: e, prev } => api::op_result::Result::Put(api::PutResponse {
                    revision,
                    entry: Some(entry(e)),
                    prev_entry: prev.as_ref().map(entry),
                }),
                OpOutput::Delete { prev } => api::op_result::Result::Delete(api::DeleteResponse {
                    revision,
                    deleted: prev.is_some(),
                    prev_entry: prev.as_ref().map(entry),
                }),
                OpOutput::Get { entry: e } => {
                    api::op_result::Result::Get(api::GetResponse { entry: e.as_ref().map(entry), revision })
                }
            }),
        })
        .collect();
    api::TxnResponse { succeeded: out.succeeded, revision, results }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_values_are_null_and_nan_is_refused() {
        let o = StateOptions::memory();
        assert_eq!(value(None, &o).unwrap(), Value::from(()));
        let nested = Value::from(vec![Value { kind: None }]);
        assert_eq!(value(Some(nested), &o).unwrap(), Value::from(vec![Value::from(())]));
        assert!(matches!(value(Some(Value::from(f64::NAN)), &o), Err(StoreError::Invalid(_))));
        assert!(matches!(value(Some(Value::from(f64::INFINITY)), &o), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn depth_counts_arrays_and_objects_inside_one_another() {
        let obj =
            |k: &str, v: Value| Value::from([(k.to_string(), v)].into_iter().collect::<crate::protojson::Struct>());
        let cases = [
            (Value::from(1.0), 0),
            (Value::from(()), 0),
            (Value { kind: None }, 0),
            (Value::from(Vec::<Value>::new()), 1),
            (Value::from(crate::protojson::Struct::default()), 1),
            (Value::from(vec![Value::from(1.0)]), 1),
            (obj("a", Value::from(vec![Value::from(1.0)])), 2),
            // The deepest path counts, not the number of containers.
            (Value::from(vec![Value::from(vec![]), obj("a", obj("b", Value::from(true))), Value::from("s")]), 3),
        ];
        for (v, depth) in cases {
            assert_eq!(super::depth(&v), depth, "{v:?}");
            let o = StateOptions { max_value_depth: depth, ..StateOptions::memory() };
            assert!(value(Some(v.clone()), &o).is_ok(), "{v:?} at its own depth");
            if depth > 0 {
                let o = StateOptions { max_value_depth: depth - 1, ..StateOptions::memory() };
                let err = value(Some(v.clone()), &o).unwrap_err();
                assert!(
                    matches!(err, StoreError::Limit { limit: "max_value_depth", actual, .. } if actual == depth as i64),
                    "{err:?}"
                );
            }
        }
    }

    #[test]
    fn a_value_built_in_memory_is_measured_however_deep() {
        // Decoding stops at 100 messages, but a value built in memory can be deeper: it is
        // measured exactly and refused.
        let deep = (0..1000).fold(Value::from(1.0), |inner, _| Value::from(vec![inner]));
        let err = value(Some(deep), &StateOptions::memory()).unwrap_err();
        assert!(matches!(err, StoreError::Limit { limit: "max_value_depth", actual: 1000, .. }), "{err:?}");
    }

    #[test]
    fn limits_are_enforced() {
        let o = StateOptions { max_key_bytes: 3, max_value_bytes: 8, max_txn_ops: 1, ..StateOptions::memory() };
        assert!(matches!(key("abcd", &o), Err(StoreError::Limit { limit: "max_key_bytes", .. })));
        assert!(matches!(key("", &o), Err(StoreError::Invalid(_))));
        assert!(matches!(
            value(Some(Value::from("0123456789")), &o),
            Err(StoreError::Limit { limit: "max_value_bytes", .. })
        ));
        let two = api::TxnRequest { success: vec![api::Op::default(), api::Op::default()], ..Default::default() };
        assert!(matches!(txn(two, &o), Err(StoreError::Limit { limit: "max_txn_ops", .. })));
    }

    #[test]
    fn a_branch_may_not_write_a_key_twice() {
        let o = StateOptions::memory();
        let put = |k: &str| api::Op { op: Some(api::op::Op::Put(api::PutOp { key: k.into(), value: None })) };
        let req = api::TxnRequest { success: vec![put("a"), put("a")], ..Default::default() };
        assert!(matches!(txn(req, &o), Err(StoreError::Invalid(m)) if m.contains("twice")));
    }
}
