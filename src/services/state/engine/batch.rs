//! Evaluating a group of writes: revision assignment, compare-and-set, transactions and
//! the deduplication of Sync writes, in an overlay over the committed [`State`], so that
//! nothing is visible before the backend has made the resulting [`Commit`] durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::protojson::Value;

use super::state::State;
use super::types::{
    Commit, Compare, DedupKey, DedupRecord, EntryRef, Event, EventKind, OpOutput, Operator, RecordRef, RevisionRecord,
    SessionOutcome, Target, TxnOp, WriteOp, WriteOutput,
};
use super::{retention, size};
use crate::pb::portway::state::v1 as api;
use crate::services::state::error::StoreError;
use crate::services::state::options::StateOptions;

/// A group of writes evaluated against the committed state, in order, each seeing the
/// ones before it.
pub struct Batch<'a> {
    state: &'a State,
    options: &'a StateOptions,
    now_ms: i64,
    time: crate::protojson::Timestamp,
    revision: i64,
    overlay: HashMap<String, Option<EntryRef>>,
    /// What the write being evaluated replaced in `overlay`, to take it back if it fails.
    undo: Vec<(String, Option<Option<EntryRef>>)>,
    records: Vec<RecordRef>,
    dedup: HashMap<String, BTreeMap<u64, DedupRecord>>,
}

impl<'a> Batch<'a> {
    /// Starts a batch at `now_ms` (Unix milliseconds; entries' update time).
    pub fn new(state: &'a State, options: &'a StateOptions, now_ms: i64) -> Self {
        let time = crate::protojson::Timestamp {
            seconds: now_ms.div_euclid(1000),
            nanos: i32::try_from(now_ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
        };
        Self {
            state,
            options,
            now_ms,
            time,
            revision: state.revision,
            overlay: HashMap::new(),
            undo: Vec::new(),
            records: Vec::new(),
            dedup: HashMap::new(),
        }
    }

    fn current(&self, key: &str) -> Option<EntryRef> {
        match self.overlay.get(key) {
            Some(e) => e.clone(),
            None => self.state.keys.get(key).cloned(),
        }
    }

    fn check_expected(&self, key: &str, expected: Option<i64>) -> Result<(), StoreError> {
        let Some(expected) = expected else { return Ok(()) };
        let current = self.current(key).map_or(0, |e| e.mod_revision);
        if current == expected { Ok(()) } else { Err(StoreError::Conflict { key: key.to_string(), expected, current }) }
    }

    fn holds(&self, c: &Compare) -> bool {
        let entry = self.current(&c.key);
        let ord = |actual: i64, want: i64| match c.operator {
            Operator::Equal => actual == want,
            Operator::NotEqual => actual != want,
            Operator::Less => actual < want,
            Operator::Greater => actual > want,
        };
        match &c.target {
            Target::Exists(want) => {
                let exists = entry.is_some();
                if c.operator == Operator::NotEqual { exists != *want } else { exists == *want }
            }
            Target::Value(want) => {
                let equal = entry.as_ref().is_some_and(|e| e.value.as_ref() == Some(want));
                if c.operator == Operator::NotEqual { !equal } else { equal }
            }
            Target::Version(v) => ord(entry.map_or(0, |e| e.version), *v),
            Target::ModRevision(v) => ord(entry.map_or(0, |e| e.mod_revision), *v),
            Target::CreateRevision(v) => ord(entry.map_or(0, |e| e.create_revision), *v),
        }
    }

    fn put(&mut self, key: &str, value: &Value, next: i64, events: &mut Vec<Event>) -> OpOutput {
        let prev = self.current(key);
        let entry = Arc::new(api::Entry {
            key: key.to_string(),
            value: Some(value.clone()),
            create_revision: prev.as_ref().map_or(next, |p| p.create_revision),
            mod_revision: next,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            update_time: Some(self.time),
        });
        let replaced = self.overlay.insert(key.to_string(), Some(entry.clone()));
        self.undo.push((key.to_string(), replaced));
        events.push(Event { kind: EventKind::Put, entry: entry.clone(), prev: prev.clone() });
        OpOutput::Put { entry, prev }
    }

    fn delete(&mut self, key: &str, next: i64, events: &mut Vec<Event>) -> OpOutput {
        let prev = self.current(key);
        if prev.is_some() {
            let tombstone = Arc::new(api::Entry {
                key: key.to_string(),
                mod_revision: next,
                update_time: Some(self.time),
                ..Default::default()
            });
            let replaced = self.overlay.insert(key.to_string(), None);
            self.undo.push((key.to_string(), replaced));
            events.push(Event { kind: EventKind::Delete, entry: tombstone, prev: prev.clone() });
        }
        OpOutput::Delete { prev }
    }

    /// Evaluates one write. On error nothing of it is applied.
    pub fn apply(&mut self, op: &WriteOp) -> Result<WriteOutput, StoreError> {
        self.undo.clear();
        let next = self.revision + 1;
        let mut events = Vec::new();
        let mut results = Vec::new();
        let mut succeeded = true;
        match op {
            WriteOp::Put(p) => {
                self.check_expected(&p.key, p.expected)?;
                results.push(self.put(&p.key, &p.value, next, &mut events));
            }
            WriteOp::Delete { key, expected } => {
                self.check_expected(key, *expected)?;
                results.push(self.delete(key, next, &mut events));
            }
            WriteOp::Txn { compare, success, failure } => {
                succeeded = compare.iter().all(|c| self.holds(c));
                for op in if succeeded { success } else { failure } {
                    let out = match op {
                        TxnOp::Put { key, value } => self.put(key, value, next, &mut events),
                        TxnOp::Delete { key } => self.delete(key, next, &mut events),
                        TxnOp::Get { key } => OpOutput::Get { entry: self.current(key) },
                    };
                    results.push(out);
                }
            }
            WriteOp::PutMany(puts) => {
                for p in puts {
                    self.check_expected(&p.key, p.expected)?;
                }
                for p in puts {
                    results.push(self.put(&p.key, &p.value, next, &mut events));
                }
            }
        }
        let answer = matches!(op, WriteOp::Txn { .. }).then_some(results.as_slice());
        if let Err(e) = size::check(&events, answer, self.options) {
            for (key, replaced) in self.undo.drain(..).rev() {
                match replaced {
                    Some(entry) => self.overlay.insert(key, entry),
                    None => self.overlay.remove(&key),
                };
            }
            return Err(e);
        }
        let revision = if events.is_empty() {
            self.revision
        } else {
            self.revision = next;
            self.records.push(Arc::new(RevisionRecord { revision: next, time_ms: self.now_ms, events }));
            next
        };
        Ok(WriteOutput { revision, succeeded, results })
    }

    fn remembered(&self, key: &DedupKey) -> Option<&DedupRecord> {
        self.dedup
            .get(&key.session)
            .and_then(|m| m.get(&key.sequence))
            .or_else(|| self.state.sessions.get(&key.session).and_then(|s| s.records.get(&key.sequence)))
    }

    /// Evaluates one write of a Sync session: applies it unless the session already did.
    /// A sequence older than the session's window is refused (nothing is applied).
    pub fn apply_in_session(&mut self, key: &DedupKey, op: &WriteOp) -> Result<SessionOutcome, StoreError> {
        if let Some(rec) = self.remembered(key) {
            return Ok(SessionOutcome::Duplicate(rec.clone()));
        }
        let committed = self.state.sessions.get(&key.session).map(|s| &s.records);
        let staged = self.dedup.get(&key.session);
        let len = committed.map_or(0, BTreeMap::len) + staged.map_or(0, BTreeMap::len);
        let oldest = committed
            .and_then(|m| m.keys().next().copied())
            .into_iter()
            .chain(staged.and_then(|m| m.keys().next().copied()))
            .min();
        if let Some(oldest) = oldest
            && len >= self.options.session_window
            && key.sequence < oldest
        {
            return Err(StoreError::SequenceTooOld { session: key.session.clone(), sequence: key.sequence, oldest });
        }
        let result = self.apply(op);
        let record = match &result {
            Ok(out) => DedupRecord { revision: out.revision, succeeded: out.succeeded, error: None },
            Err(e) => DedupRecord { revision: 0, succeeded: false, error: Some(e.to_rpc_status()) },
        };
        self.dedup.entry(key.session.clone()).or_default().insert(key.sequence, record);
        Ok(SessionOutcome::Fresh(result))
    }

    /// The new revision the batch has reached so far.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Ends the batch: what to persist. With `housekeeping`, also forgets sessions idle
    /// for longer than the session TTL.
    pub fn finish(self, housekeeping: bool) -> Commit {
        let state = self.state;
        let options = self.options;
        let mut commit = Commit {
            revision: self.revision,
            previous_compact_revision: state.compact_revision,
            records: self.records,
            ..Default::default()
        };
        for (key, entry) in self.overlay {
            match entry {
                Some(e) => commit.puts.push(e),
                None => commit.deletes.push(key),
            }
        }
        commit.compact_revision = retention::compact_target(state, options, self.revision, self.now_ms);

        // Sessions: remember the new outcomes, keep each session's window, bound the count.
        let dropped = retention::sessions_to_drop(state, options, &self.dedup, self.now_ms, housekeeping);
        for (session, added) in self.dedup {
            let committed = state.sessions.get(&session).map(|s| &s.records);
            let mut excess = retention::window_excess(options, committed.map_or(0, BTreeMap::len), added.len());
            // Forget the oldest sequences: the committed ones first (they are older).
            if let Some(committed) = committed {
                for seq in committed.keys() {
                    if excess == 0 {
                        break;
                    }
                    commit.dedup_removes.push((session.clone(), *seq));
                    excess -= 1;
                }
            }
            for (seq, rec) in added.into_iter().skip(excess) {
                commit.dedup_puts.push((session.clone(), seq, rec));
            }
            commit.session_touches.push((session, self.now_ms));
        }
        commit.session_drops = dropped.into_iter().collect();
        commit
    }
}
