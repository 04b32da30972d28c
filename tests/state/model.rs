//! A deliberately naive model of the state store's semantics, for property tests: every
//! revision's whole keyspace is kept, every rule is spelled out once, nothing is clever.
//! Random steps are resolved against the model into concrete operations, which both the
//! model and the system under test run; their normalized outcomes must be equal.
//!
//! Shared by the library's tests (against the store directly) and the integration tests
//! (through the gRPC server); the including module provides `api` (the generated
//! `portway.state.v1` types) and `Value` (`google.protobuf.Value`).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use super::Value;
use proptest::prelude::*;

use super::api;

/// Keys chosen so that prefixes overlap.
pub const KEYS: [&str; 5] = ["a", "ab", "b", "ba", "c"];
/// Prefixes for List ("" is everything, "x" matches nothing).
pub const PREFIXES: [&str; 5] = ["", "a", "b", "c", "x"];
/// Sessions for Sync writes.
pub const SESSIONS: [&str; 2] = ["s1", "s2"];

/// Small JSON values, `null` among them.
pub fn value(n: u8) -> Value {
    match n % 4 {
        0 => Value::from(()),
        1 => Value::from(f64::from(n)),
        2 => Value::from(format!("s{n}")),
        _ => Value::from(vec![Value::from(f64::from(n)), Value::from(())]),
    }
}

/// A compare-and-set choice, resolved against the model.
#[derive(Debug, Clone, Copy)]
pub enum Exp {
    /// No compare-and-set.
    Unset,
    /// Must not exist.
    Zero,
    /// The key's current mod revision plus an offset (0: matches).
    Current(i8),
}

/// A random step.
#[derive(Debug, Clone)]
pub enum Step {
    Put { k: usize, v: u8, e: Exp },
    Delete { k: usize, e: Exp },
    Txn { cmp: Vec<(usize, u8, u8, u8)>, success: Vec<(u8, usize, u8)>, failure: Vec<(u8, usize, u8)> },
    PutMany(Vec<(usize, u8, Exp)>),
    Get { k: usize, r: u8 },
    List { p: usize, r: u8, limit: u8, start: Option<usize> },
    History { r: u8 },
    Session { s: usize, seq: u8, k: usize, v: u8, e: Exp },
    Restart,
}

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![Just(Exp::Unset), Just(Exp::Zero), (-1i8..=1).prop_map(Exp::Current)]
}

fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

fn branch() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    prop::collection::vec((0u8..3, key(), any::<u8>()), 0..4)
}

/// Random steps; `restart` includes restarts.
pub fn step(restart: bool) -> BoxedStrategy<Step> {
    let s = prop_oneof![
        6 => (key(), any::<u8>(), exp()).prop_map(|(k, v, e)| Step::Put { k, v, e }),
        3 => (key(), exp()).prop_map(|(k, e)| Step::Delete { k, e }),
        3 => (prop::collection::vec((key(), 0u8..6, 0u8..4, any::<u8>()), 0..3), branch(), branch())
            .prop_map(|(cmp, success, failure)| Step::Txn { cmp, success, failure }),
        2 => prop::collection::vec((key(), any::<u8>(), exp()), 0..4).prop_map(Step::PutMany),
        3 => (key(), any::<u8>()).prop_map(|(k, r)| Step::Get { k, r }),
        2 => (0..PREFIXES.len(), any::<u8>(), 0u8..4, prop::option::of(key()))
            .prop_map(|(p, r, limit, start)| Step::List { p, r, limit, start }),
        1 => any::<u8>().prop_map(|r| Step::History { r }),
        3 => (0..SESSIONS.len(), 1u8..12, key(), any::<u8>(), exp())
            .prop_map(|(s, seq, k, v, e)| Step::Session { s, seq, k, v, e }),
    ];
    if restart { prop_oneof![12 => s, 1 => Just(Step::Restart)].boxed() } else { s.boxed() }
}

/// A comparison target, concrete.
#[derive(Debug, Clone, PartialEq)]
pub enum CmpTarget {
    Unspecified,
    Exists(bool),
    Value(Value),
    Version(i64),
    ModRevision(i64),
    CreateRevision(i64),
}

/// A comparison, concrete. `op` is the `Compare.Operator` number.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmp {
    pub key: String,
    pub target: CmpTarget,
    pub op: i32,
}

/// A transaction operation, concrete.
#[derive(Debug, Clone, PartialEq)]
pub enum TOp {
    Put(String, Value),
    Delete(String),
    Get(String),
}

/// A concrete operation, as both the model and the system run it.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Put { key: String, value: Value, expected: Option<i64> },
    Delete { key: String, expected: Option<i64> },
    Txn { compare: Vec<Cmp>, success: Vec<TOp>, failure: Vec<TOp> },
    PutMany(Vec<(String, Value, Option<i64>)>),
    Get { key: String, revision: i64 },
    List { prefix: String, revision: i64, limit: i64, start_key: String },
    History { start: i64 },
    Session { session: String, sequence: u64, key: String, value: Value, expected: Option<i64> },
    Restart,
}

/// An entry, without its timestamp.
pub type E = (String, Value, i64, i64, i64);

/// Normalizes an API entry.
pub fn entry(e: &api::Entry) -> E {
    (e.key.clone(), e.value.clone().unwrap_or(Value { kind: None }), e.create_revision, e.mod_revision, e.version)
}

/// The errors the model predicts.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrKind {
    NotFound,
    Conflict { current: i64 },
    Compacted { oldest: i64 },
    Future,
    Invalid,
    TooOld,
}

/// One transaction result.
#[derive(Debug, Clone, PartialEq)]
pub enum R {
    Put(E),
    Delete(bool, Option<E>),
    Get(Option<E>),
}

/// A normalized outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Err(ErrKind),
    Put {
        revision: i64,
        entry: E,
    },
    Delete {
        revision: i64,
        deleted: bool,
        prev: Option<E>,
    },
    Txn {
        succeeded: bool,
        revision: i64,
        results: Vec<R>,
    },
    PutMany {
        revision: i64,
        count: i64,
    },
    Get {
        revision: i64,
        entry: E,
    },
    List {
        revision: i64,
        entries: Vec<E>,
        more: bool,
        next_key: String,
    },
    /// (revision, key, is_put, entry for puts)
    History(Vec<(i64, String, bool, Option<E>)>),
    Session {
        revision: i64,
        duplicate: bool,
        succeeded: bool,
        error: Option<ErrKind>,
    },
    Restarted,
}

#[derive(Debug, Clone)]
struct SessRec {
    revision: i64,
    error: Option<ErrKind>,
}

/// The model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Keep this many revisions of events (the store's `history_revisions`).
    pub keep: i64,
    /// The store's `max_txn_ops`.
    pub max_ops: usize,
    /// The store's `session_window`.
    pub window: usize,
    /// Keyspace after every revision (index = revision).
    snapshots: Vec<BTreeMap<String, E>>,
    /// (revision, key, is_put, entry)
    events: Vec<(i64, String, bool, Option<E>)>,
    sessions: HashMap<String, BTreeMap<u64, SessRec>>,
}

impl Model {
    pub fn new(keep: i64, max_ops: usize, window: usize) -> Self {
        Self { keep, max_ops, window, snapshots: vec![BTreeMap::new()], events: Vec::new(), sessions: HashMap::new() }
    }

    pub fn revision(&self) -> i64 {
        self.snapshots.len() as i64 - 1
    }

    pub fn compact(&self) -> i64 {
        if self.keep > 0 { (self.revision() - self.keep).max(0) } else { 0 }
    }

    fn now(&self) -> &BTreeMap<String, E> {
        self.snapshots.last().expect("revision 0 exists")
    }

    fn mod_rev(&self, key: &str) -> i64 {
        self.now().get(key).map_or(0, |e| e.3)
    }

    fn resolve_exp(&self, key: &str, e: Exp) -> Option<i64> {
        match e {
            Exp::Unset => None,
            Exp::Zero => Some(0),
            Exp::Current(off) => Some((self.mod_rev(key) + i64::from(off)).max(0)),
        }
    }

    fn resolve_rev(&self, r: u8) -> i64 {
        match r {
            0 => 0,
            255 => self.revision() + 1,
            r => i64::from(r) * (self.revision() + 1) / 255,
        }
    }

    /// A random step as a concrete operation against the current state.
    pub fn resolve(&self, step: &Step) -> Op {
        let k = |i: usize| KEYS[i].to_string();
        let tops = |ops: &[(u8, usize, u8)]| {
            ops.iter()
                .map(|(kind, i, v)| match kind {
                    0 => TOp::Put(k(*i), value(*v)),
                    1 => TOp::Delete(k(*i)),
                    _ => TOp::Get(k(*i)),
                })
                .collect()
        };
        match step {
            Step::Put { k: i, v, e } => {
                Op::Put { key: k(*i), value: value(*v), expected: self.resolve_exp(KEYS[*i], *e) }
            }
            Step::Delete { k: i, e } => Op::Delete { key: k(*i), expected: self.resolve_exp(KEYS[*i], *e) },
            Step::Txn { cmp, success, failure } => Op::Txn {
                compare: cmp
                    .iter()
                    .map(|(i, target, op, n)| {
                        let cur = self.now().get(KEYS[*i]);
                        // Operands near the real ones, so comparisons go both ways.
                        let near = |actual: i64| (actual + i64::from(*n % 3) - 1).max(0);
                        let target = match target {
                            0 => CmpTarget::Unspecified,
                            1 => CmpTarget::Exists(n % 2 == 0),
                            2 => CmpTarget::Value(if n % 2 == 0 {
                                cur.map_or_else(|| value(*n), |e| e.1.clone())
                            } else {
                                value(*n)
                            }),
                            3 => CmpTarget::Version(near(cur.map_or(0, |e| e.4))),
                            4 => CmpTarget::ModRevision(near(cur.map_or(0, |e| e.3))),
                            _ => CmpTarget::CreateRevision(near(cur.map_or(0, |e| e.2))),
                        };
                        Cmp { key: k(*i), target, op: i32::from(*op) }
                    })
                    .collect(),
                success: tops(success),
                failure: tops(failure),
            },
            Step::PutMany(puts) => {
                Op::PutMany(puts.iter().map(|(i, v, e)| (k(*i), value(*v), self.resolve_exp(KEYS[*i], *e))).collect())
            }
            Step::Get { k: i, r } => Op::Get { key: k(*i), revision: self.resolve_rev(*r) },
            Step::List { p, r, limit, start } => Op::List {
                prefix: PREFIXES[*p].to_string(),
                revision: self.resolve_rev(*r),
                limit: i64::from(*limit),
                start_key: start.map(k).unwrap_or_default(),
            },
            Step::History { r } => Op::History { start: self.resolve_rev(*r) },
            Step::Session { s, seq, k: i, v, e } => Op::Session {
                session: SESSIONS[*s].to_string(),
                sequence: u64::from(*seq),
                key: k(*i),
                value: value(*v),
                expected: self.resolve_exp(KEYS[*i], *e),
            },
            Step::Restart => Op::Restart,
        }
    }

    fn read_rev(&self, requested: i64) -> Result<i64, ErrKind> {
        let rev = self.revision();
        if requested == 0 || requested == rev {
            Ok(rev)
        } else if requested < 0 {
            Err(ErrKind::Invalid)
        } else if requested > rev {
            Err(ErrKind::Future)
        } else if requested <= self.compact() {
            Err(ErrKind::Compacted { oldest: self.compact() + 1 })
        } else {
            Ok(requested)
        }
    }

    /// Commits `changes` (key → new entry or delete) as the next revision, if any.
    fn commit(&mut self, changes: Vec<(String, Option<Value>)>) -> i64 {
        if changes.is_empty() {
            return self.revision();
        }
        let next = self.revision() + 1;
        let mut keys = self.now().clone();
        for (key, v) in changes {
            match v {
                Some(v) => {
                    let prev = keys.get(&key);
                    let e = (key.clone(), v, prev.map_or(next, |p| p.2), next, prev.map_or(1, |p| p.4 + 1));
                    self.events.push((next, key.clone(), true, Some(e.clone())));
                    keys.insert(key, e);
                }
                None => {
                    self.events.push((next, key.clone(), false, None));
                    keys.remove(&key);
                }
            }
        }
        self.snapshots.push(keys);
        next
    }

    fn check(&self, key: &str, expected: Option<i64>) -> Result<(), ErrKind> {
        match expected {
            Some(e) if e != self.mod_rev(key) => Err(ErrKind::Conflict { current: self.mod_rev(key) }),
            _ => Ok(()),
        }
    }

    fn holds(&self, c: &Cmp) -> bool {
        let cur = self.now().get(&c.key);
        let ord = |a: i64, b: i64| match c.op {
            0 => a == b,
            1 => a != b,
            2 => a < b,
            _ => a > b,
        };
        match &c.target {
            CmpTarget::Unspecified => unreachable!("validated"),
            CmpTarget::Exists(b) => (cur.is_some() == *b) == (c.op == 0),
            CmpTarget::Value(v) => cur.is_some_and(|e| &e.1 == v) == (c.op == 0),
            CmpTarget::Version(n) => ord(cur.map_or(0, |e| e.4), *n),
            CmpTarget::ModRevision(n) => ord(cur.map_or(0, |e| e.3), *n),
            CmpTarget::CreateRevision(n) => ord(cur.map_or(0, |e| e.2), *n),
        }
    }

    fn txn(&mut self, compare: &[Cmp], success: &[TOp], failure: &[TOp]) -> Result<Outcome, ErrKind> {
        if compare.len() > self.max_ops || success.len() > self.max_ops || failure.len() > self.max_ops {
            return Err(ErrKind::Invalid);
        }
        for c in compare {
            let ordered = c.op >= 2;
            match c.target {
                CmpTarget::Unspecified => return Err(ErrKind::Invalid),
                CmpTarget::Exists(_) | CmpTarget::Value(_) if ordered => return Err(ErrKind::Invalid),
                _ => {}
            }
        }
        for branch in [success, failure] {
            let mut written = std::collections::HashSet::new();
            for op in branch {
                if let TOp::Put(k, _) | TOp::Delete(k) = op
                    && !written.insert(k)
                {
                    return Err(ErrKind::Invalid);
                }
            }
        }
        let succeeded = compare.iter().all(|c| self.holds(c));
        let ops = if succeeded { success } else { failure };
        // Run the branch against a working copy, then commit its changes.
        let mut work = self.now().clone();
        let next = self.revision() + 1;
        let mut changes = Vec::new();
        let mut results = Vec::new();
        for op in ops {
            match op {
                TOp::Put(k, v) => {
                    let prev = work.get(k);
                    let e = (k.clone(), v.clone(), prev.map_or(next, |p| p.2), next, prev.map_or(1, |p| p.4 + 1));
                    work.insert(k.clone(), e.clone());
                    changes.push((k.clone(), Some(v.clone())));
                    results.push(R::Put(e));
                }
                TOp::Delete(k) => {
                    let prev = work.remove(k);
                    if prev.is_some() {
                        changes.push((k.clone(), None));
                    }
                    results.push(R::Delete(prev.is_some(), prev));
                }
                TOp::Get(k) => results.push(R::Get(work.get(k).cloned())),
            }
        }
        let revision = self.commit(changes);
        Ok(Outcome::Txn { succeeded, revision, results })
    }

    /// Runs `op`; returns what the system must answer.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match self.try_apply(op) {
            Ok(o) => o,
            Err(e) => Outcome::Err(e),
        }
    }

    fn try_apply(&mut self, op: &Op) -> Result<Outcome, ErrKind> {
        match op {
            Op::Put { key, value, expected } => {
                self.check(key, *expected)?;
                let revision = self.commit(vec![(key.clone(), Some(value.clone()))]);
                Ok(Outcome::Put { revision, entry: self.now()[key].clone() })
            }
            Op::Delete { key, expected } => {
                self.check(key, *expected)?;
                let prev = self.now().get(key).cloned();
                let changes = if prev.is_some() { vec![(key.clone(), None)] } else { Vec::new() };
                let revision = self.commit(changes);
                Ok(Outcome::Delete { revision, deleted: prev.is_some(), prev })
            }
            Op::Txn { compare, success, failure } => self.txn(compare, success, failure),
            Op::PutMany(puts) => {
                if puts.len() > self.max_ops {
                    return Err(ErrKind::Invalid);
                }
                let mut seen = std::collections::HashSet::new();
                if !puts.iter().all(|(k, _, _)| seen.insert(k)) {
                    return Err(ErrKind::Invalid);
                }
                for (k, _, e) in puts {
                    self.check(k, *e)?;
                }
                let revision = self.commit(puts.iter().map(|(k, v, _)| (k.clone(), Some(v.clone()))).collect());
                Ok(Outcome::PutMany { revision, count: puts.len() as i64 })
            }
            Op::Get { key, revision } => {
                let at = self.read_rev(*revision)?;
                let e = self.snapshots[at as usize].get(key).cloned().ok_or(ErrKind::NotFound)?;
                Ok(Outcome::Get { revision: at, entry: e })
            }
            Op::List { prefix, revision, limit, start_key } => {
                let at = self.read_rev(*revision)?;
                if !start_key.is_empty() && !start_key.starts_with(prefix.as_str()) {
                    return Err(ErrKind::Invalid);
                }
                let all: Vec<&E> = self.snapshots[at as usize]
                    .iter()
                    .filter(|(k, _)| k.starts_with(prefix.as_str()) && k.as_str() >= start_key.as_str())
                    .map(|(_, e)| e)
                    .collect();
                let limit = if *limit == 0 { usize::MAX } else { *limit as usize };
                let more = all.len() > limit;
                let next_key = if more { all[limit].0.clone() } else { String::new() };
                Ok(Outcome::List {
                    revision: at,
                    entries: all.into_iter().take(limit).cloned().collect(),
                    more,
                    next_key,
                })
            }
            Op::History { start } => {
                let start = if *start == 0 { self.compact() + 1 } else { *start };
                if start <= self.compact() {
                    return Err(ErrKind::Compacted { oldest: self.compact() + 1 });
                }
                Ok(Outcome::History(self.events.iter().filter(|e| e.0 >= start).cloned().collect()))
            }
            Op::Session { session, sequence, key, value, expected } => {
                let recs = self.sessions.entry(session.clone()).or_default();
                if let Some(r) = recs.get(sequence) {
                    return Ok(Outcome::Session {
                        revision: r.revision,
                        duplicate: true,
                        succeeded: r.error.is_none(),
                        error: r.error.clone(),
                    });
                }
                if recs.len() >= self.window && recs.keys().next().is_some_and(|min| sequence < min) {
                    return Err(ErrKind::TooOld);
                }
                let result = self.check(key, *expected).map(|()| self.commit(vec![(key.clone(), Some(value.clone()))]));
                let rec = match &result {
                    Ok(rev) => SessRec { revision: *rev, error: None },
                    Err(e) => SessRec { revision: 0, error: Some(e.clone()) },
                };
                let recs = self.sessions.entry(session.clone()).or_default();
                recs.insert(*sequence, rec.clone());
                while recs.len() > self.window {
                    let min = *recs.keys().next().expect("non-empty");
                    recs.remove(&min);
                }
                Ok(Outcome::Session {
                    revision: rec.revision,
                    duplicate: false,
                    succeeded: rec.error.is_none(),
                    error: rec.error,
                })
            }
            Op::Restart => Ok(Outcome::Restarted),
        }
    }
}

/// The API requests for concrete operations, shared by every driver.
pub mod requests {
    use super::*;

    pub fn put(key: &str, value: &Value, expected: Option<i64>) -> api::PutRequest {
        api::PutRequest { key: key.into(), value: Some(value.clone()), expected_revision: expected, return_prev: false }
    }

    pub fn delete(key: &str, expected: Option<i64>) -> api::DeleteRequest {
        api::DeleteRequest { key: key.into(), expected_revision: expected }
    }

    pub fn txn(compare: &[Cmp], success: &[TOp], failure: &[TOp]) -> api::TxnRequest {
        let op = |o: &TOp| api::Op {
            op: Some(match o {
                TOp::Put(k, v) => api::op::Op::Put(api::PutOp { key: k.clone(), value: Some(v.clone()) }),
                TOp::Delete(k) => api::op::Op::Delete(api::DeleteOp { key: k.clone() }),
                TOp::Get(k) => api::op::Op::Get(api::GetOp { key: k.clone() }),
            }),
        };
        let cmp = |c: &Cmp| {
            let mut out = api::Compare { key: c.key.clone(), operator: c.op, ..Default::default() };
            out.target = match &c.target {
                CmpTarget::Unspecified => 0,
                CmpTarget::Exists(b) => {
                    out.exists = *b;
                    1
                }
                CmpTarget::Value(v) => {
                    out.value = Some(v.clone());
                    2
                }
                CmpTarget::Version(n) => {
                    out.version = *n;
                    3
                }
                CmpTarget::ModRevision(n) => {
                    out.mod_revision = *n;
                    4
                }
                CmpTarget::CreateRevision(n) => {
                    out.create_revision = *n;
                    5
                }
            };
            out
        };
        api::TxnRequest {
            compare: compare.iter().map(cmp).collect(),
            success: success.iter().map(op).collect(),
            failure: failure.iter().map(op).collect(),
        }
    }

    pub fn txn_outcome(resp: &api::TxnResponse) -> Outcome {
        let results = resp
            .results
            .iter()
            .map(|r| match &r.result {
                Some(api::op_result::Result::Put(p)) => R::Put(entry(p.entry.as_ref().expect("put entry"))),
                Some(api::op_result::Result::Delete(d)) => R::Delete(d.deleted, d.prev_entry.as_ref().map(entry)),
                Some(api::op_result::Result::Get(g)) => R::Get(g.entry.as_ref().map(entry)),
                None => panic!("empty op result"),
            })
            .collect();
        Outcome::Txn { succeeded: resp.succeeded, revision: resp.revision, results }
    }

    pub fn history_outcome(events: &[api::Event]) -> Outcome {
        Outcome::History(
            events
                .iter()
                .map(|e| {
                    let en = e.entry.as_ref().expect("event entry");
                    let put = e.r#type == api::event::Type::Put as i32;
                    (en.mod_revision, en.key.clone(), put, put.then(|| entry(en)))
                })
                .collect(),
        )
    }
}
