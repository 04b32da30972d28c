//! The store's semantics, in one place for every backend: revision assignment,
//! compare-and-set, transaction evaluation, the event log and its compaction, and the
//! deduplication table of Sync sessions.
//!
//! [`State`] is the committed state, held in memory (the live keys, the retained event log,
//! the sessions). The single writer evaluates a group of writes against it with a
//! [`Batch`] (an overlay, so readers never see a write before it is durable), turns the
//! batch into a [`Commit`] for the backend to persist, and only then applies the commit to
//! the state with [`State::apply`]. Nothing in this file does I/O.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use pbjson_types::Value;

use super::error::StoreError;
use super::options::StateOptions;
use crate::pb::google::rpc::Status as RpcStatus;
use crate::pb::portway::state::v1 as api;

/// An entry, shared between the live keys, the log and the responses being built.
pub type EntryRef = Arc<api::Entry>;
/// A revision's record, shared between the log and the watchers.
pub type RecordRef = Arc<RevisionRecord>;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated a key.
    Put,
    /// Deleted a key.
    Delete,
}

/// A change to one key.
#[derive(Debug, Clone)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The new entry; for a delete, a tombstone with the key and the deletion's revision.
    pub entry: EntryRef,
    /// The entry before the change, if the key existed.
    pub prev: Option<EntryRef>,
}

impl Event {
    /// The key changed.
    pub fn key(&self) -> &str {
        &self.entry.key
    }

    /// The API form of this event.
    pub fn to_api(&self, with_prev: bool) -> api::Event {
        api::Event {
            r#type: match self.kind {
                EventKind::Put => api::event::Type::Put as i32,
                EventKind::Delete => api::event::Type::Delete as i32,
            },
            entry: Some((*self.entry).clone()),
            prev_entry: if with_prev { self.prev.as_deref().cloned() } else { None },
        }
    }
}

/// All changes of one revision.
#[derive(Debug)]
pub struct RevisionRecord {
    /// The revision.
    pub revision: i64,
    /// When it was committed (Unix milliseconds); drives compaction by age.
    pub time_ms: i64,
    /// Its changes, one per key.
    pub events: Vec<Event>,
}

/// Which keys a watch or a replay is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFilter {
    /// The key or the prefix.
    pub key: String,
    /// Match every key that starts with `key`.
    pub prefix: bool,
}

impl KeyFilter {
    /// Whether `key` matches.
    pub fn matches(&self, key: &str) -> bool {
        if self.prefix { key.starts_with(&self.key) } else { key == self.key }
    }
}

/// What a comparison looks at, with the operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Whether the key exists.
    Exists(bool),
    /// The value.
    Value(Value),
    /// The version (0: absent).
    Version(i64),
    /// The mod revision (0: absent).
    ModRevision(i64),
    /// The create revision (0: absent).
    CreateRevision(i64),
}

/// How a comparison compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// ==
    Equal,
    /// !=
    NotEqual,
    /// <
    Less,
    /// >
    Greater,
}

/// One condition of a transaction (already validated).
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    /// The key.
    pub key: String,
    /// What to compare, with the operand.
    pub target: Target,
    /// How.
    pub operator: Operator,
}

/// One operation of a transaction branch (already validated).
#[derive(Debug, Clone, PartialEq)]
pub enum TxnOp {
    /// Write a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Value,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
}

/// A put with its optional compare-and-set.
#[derive(Debug, Clone, PartialEq)]
pub struct PutSpec {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Write only if the key's mod revision is this (0: absent).
    pub expected: Option<i64>,
}

/// A write, validated (see `convert.rs`): what the writer evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// One put.
    Put(PutSpec),
    /// One delete.
    Delete {
        /// The key.
        key: String,
        /// Delete only if the key's mod revision is this (0: absent).
        expected: Option<i64>,
    },
    /// A transaction.
    Txn {
        /// The conditions.
        compare: Vec<Compare>,
        /// Run if all hold.
        success: Vec<TxnOp>,
        /// Run otherwise.
        failure: Vec<TxnOp>,
    },
    /// Puts applied together (keys distinct).
    PutMany(Vec<PutSpec>),
}

/// The result of one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum OpOutput {
    /// A put: the new entry and the previous one.
    Put {
        /// The entry written.
        entry: EntryRef,
        /// The entry before, if any.
        prev: Option<EntryRef>,
    },
    /// A delete.
    Delete {
        /// The entry deleted, if the key existed.
        prev: Option<EntryRef>,
    },
    /// A read.
    Get {
        /// The entry, if the key exists.
        entry: Option<EntryRef>,
    },
}

/// The result of a write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutput {
    /// The write's revision, or the current one if it changed nothing.
    pub revision: i64,
    /// For a transaction: whether its conditions held (always true otherwise).
    pub succeeded: bool,
    /// One result per operation (Put, Delete: one; PutMany: one per put; Txn: per op).
    pub results: Vec<OpOutput>,
}

/// What a Sync session remembers of one write: enough to answer a resend exactly as the
/// first time. Stored as protobuf by the durable backend.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DedupRecord {
    /// The write's revision.
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// For a transaction: whether its conditions held.
    #[prost(bool, tag = "2")]
    pub succeeded: bool,
    /// The error, if the write failed (nothing was written).
    #[prost(message, optional, tag = "3")]
    pub error: Option<RpcStatus>,
}

/// A Sync write's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey {
    /// The session id.
    pub session: String,
    /// The write's sequence number.
    pub sequence: u64,
}

/// The outcome of a write in a session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOutcome {
    /// Evaluated now (applied, or failed and remembered as failed).
    Fresh(Result<WriteOutput, StoreError>),
    /// Seen before: the remembered outcome; nothing was applied now.
    Duplicate(DedupRecord),
}

/// What the store remembers of one Sync session.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// When it last wrote (Unix milliseconds).
    pub last_active_ms: i64,
    /// Outcomes of its last `session_window` writes, by sequence.
    pub records: BTreeMap<u64, DedupRecord>,
}

/// Everything a backend gives back at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The current revision.
    pub revision: i64,
    /// Events at or below this revision have been compacted.
    pub compact_revision: i64,
    /// The live entries.
    pub entries: Vec<EntryRef>,
    /// The retained log, in revision order: `compact_revision + 1 ..= revision`.
    pub records: Vec<RecordRef>,
    /// The sessions.
    pub sessions: HashMap<String, Session>,
}

/// One group of writes as the backend must persist it, all or nothing.
#[derive(Debug, Default)]
pub struct Commit {
    /// The revision after the commit.
    pub revision: i64,
    /// The compact revision after the commit.
    pub compact_revision: i64,
    /// The compact revision before (log records in `(previous, compact_revision]` go).
    pub previous_compact_revision: i64,
    /// New log records, in revision order.
    pub records: Vec<RecordRef>,
    /// Keys written (their final entries).
    pub puts: Vec<EntryRef>,
    /// Keys deleted.
    pub deletes: Vec<String>,
    /// Session writes to remember.
    pub dedup_puts: Vec<(String, u64, DedupRecord)>,
    /// Session writes to forget (out of the window).
    pub dedup_removes: Vec<(String, u64)>,
    /// Sessions' new last-activity times.
    pub session_touches: Vec<(String, i64)>,
    /// Sessions to forget entirely.
    pub session_drops: Vec<String>,
}

impl Commit {
    /// Whether there is nothing to persist.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.compact_revision == self.previous_compact_revision
            && self.dedup_puts.is_empty()
            && self.dedup_removes.is_empty()
            && self.session_touches.is_empty()
            && self.session_drops.is_empty()
    }
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// The entries, in key order.
    pub entries: Vec<EntryRef>,
    /// The revision they are read at.
    pub revision: i64,
    /// Whether more entries follow.
    pub more: bool,
    /// Where the next page starts, if `more`.
    pub next_key: String,
}

/// The committed state.
#[derive(Debug, Default)]
pub struct State {
    revision: i64,
    compact_revision: i64,
    keys: BTreeMap<String, EntryRef>,
    /// Records `compact_revision + 1 ..= revision`, one per revision.
    log: VecDeque<RecordRef>,
    sessions: HashMap<String, Session>,
}

impl State {
    /// The state a backend loaded. Fails if the log is not contiguous.
    pub fn from_snapshot(s: Snapshot) -> Result<Self, String> {
        if s.compact_revision > s.revision || s.compact_revision < 0 {
            return Err(format!("compact revision {} is beyond revision {}", s.compact_revision, s.revision));
        }
        for (i, r) in s.records.iter().enumerate() {
            let want = s.compact_revision + 1 + i as i64;
            if r.revision != want {
                return Err(format!("event log has revision {} where {want} was expected", r.revision));
            }
        }
        let last = s.records.last().map_or(s.compact_revision, |r| r.revision);
        if last != s.revision {
            return Err(format!("event log ends at revision {last}, the store is at {}", s.revision));
        }
        Ok(Self {
            revision: s.revision,
            compact_revision: s.compact_revision,
            keys: s.entries.into_iter().map(|e| (e.key.clone(), e)).collect(),
            log: s.records.into(),
            sessions: s.sessions,
        })
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Events at or below this revision are gone.
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key exists.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The highest sequence remembered for `session` (0: none).
    pub fn last_sequence(&self, session: &str) -> u64 {
        self.sessions.get(session).and_then(|s| s.records.keys().next_back().copied()).unwrap_or(0)
    }

    fn compacted(&self, requested: i64) -> StoreError {
        StoreError::Compacted { requested, oldest: self.compact_revision + 1, current: self.revision }
    }

    /// The revision a read at `requested` (0: latest) is served at.
    fn read_revision(&self, requested: i64) -> Result<i64, StoreError> {
        if requested == 0 || requested == self.revision {
            return Ok(self.revision);
        }
        if requested < 0 {
            return Err(StoreError::Invalid(format!("revision {requested} is negative")));
        }
        if requested > self.revision {
            return Err(StoreError::FutureRevision { requested, current: self.revision });
        }
        if requested <= self.compact_revision {
            return Err(self.compacted(requested));
        }
        Ok(requested)
    }

    /// The records after revision `after`, oldest first (`after` must be in the log).
    fn records_after(&self, after: i64) -> impl DoubleEndedIterator<Item = &RecordRef> {
        let start = usize::try_from(after - self.compact_revision).unwrap_or(0);
        self.log.range(start.min(self.log.len())..)
    }

    /// `key` at revision `requested` (0: latest), with the revision read at.
    pub fn get(&self, key: &str, requested: i64) -> Result<(Option<EntryRef>, i64), StoreError> {
        let at = self.read_revision(requested)?;
        if at == self.revision {
            return Ok((self.keys.get(key).cloned(), at));
        }
        // The key's state at `at` is the `prev` of its first change after `at`, or its
        // current state if it has not changed since.
        for record in self.records_after(at) {
            if let Some(e) = record.events.iter().find(|e| e.key() == key) {
                return Ok((e.prev.clone(), at));
            }
        }
        Ok((self.keys.get(key).cloned(), at))
    }

    /// Up to `limit` (0: all) entries with `prefix`, from `start_key`, at `requested`.
    pub fn list(&self, prefix: &str, start_key: &str, requested: i64, limit: usize) -> Result<ListPage, StoreError> {
        let at = self.read_revision(requested)?;
        if !start_key.is_empty() && !start_key.starts_with(prefix) {
            return Err(StoreError::Invalid(format!("start_key {start_key:?} does not start with prefix {prefix:?}")));
        }
        let from = if start_key.is_empty() { prefix } else { start_key };
        let in_range = |k: &str| k >= from && k.starts_with(prefix);
        let limit = if limit == 0 { usize::MAX } else { limit };
        let range = self.keys.range::<str, _>((Bound::Included(from), Bound::Unbounded));
        let mut entries: Vec<EntryRef> = Vec::new();
        let mut more = false;
        let mut next_key = String::new();
        if at == self.revision {
            for (k, e) in range {
                if !k.starts_with(prefix) {
                    break;
                }
                if entries.len() == limit {
                    more = true;
                    next_key = k.clone();
                    break;
                }
                entries.push(e.clone());
            }
            return Ok(ListPage { entries, revision: at, more, next_key });
        }
        // A past revision: undo the later changes, newest first, so that each key ends at
        // the `prev` of its earliest change after `at`.
        let mut then: BTreeMap<&str, Option<&EntryRef>> = BTreeMap::new();
        for record in self.records_after(at).rev() {
            for e in record.events.iter().filter(|e| in_range(e.key())) {
                then.insert(e.key(), e.prev.as_ref());
            }
        }
        let mut merged: BTreeMap<&str, &EntryRef> = BTreeMap::new();
        for (k, e) in range {
            if !k.starts_with(prefix) {
                break;
            }
            if !then.contains_key(k.as_str()) {
                merged.insert(k, e);
            }
        }
        for (k, e) in then {
            if let Some(e) = e {
                merged.insert(k, e);
            }
        }
        for (k, e) in merged {
            if entries.len() == limit {
                more = true;
                next_key = k.to_string();
                break;
            }
            entries.push(e.clone());
        }
        Ok(ListPage { entries, revision: at, more, next_key })
    }

    /// Up to `max` records from revision `from` to `to` (inclusive, clamped to the
    /// current revision). `from` must not be compacted.
    pub fn records(&self, from: i64, to: i64, max: usize) -> Result<Vec<RecordRef>, StoreError> {
        if from <= self.compact_revision {
            return Err(self.compacted(from));
        }
        let to = to.min(self.revision);
        if from > to {
            return Ok(Vec::new());
        }
        let start = usize::try_from(from - self.compact_revision - 1).unwrap_or(0);
        let count = usize::try_from(to - from + 1).unwrap_or(0).min(max);
        Ok(self.log.range(start..).take(count).cloned().collect())
    }

    /// Checks that a watch or replay may start at `start` (> 0).
    pub fn check_start(&self, start: i64) -> Result<(), StoreError> {
        if start <= self.compact_revision { Err(self.compacted(start)) } else { Ok(()) }
    }

    /// Applies a commit the backend has made durable.
    pub fn apply(&mut self, c: &Commit) {
        for e in &c.puts {
            self.keys.insert(e.key.clone(), e.clone());
        }
        for k in &c.deletes {
            self.keys.remove(k);
        }
        self.log.extend(c.records.iter().cloned());
        self.revision = c.revision;
        self.compact_revision = c.compact_revision;
        while self.log.front().is_some_and(|r| r.revision <= self.compact_revision) {
            self.log.pop_front();
        }
        for s in &c.session_drops {
            self.sessions.remove(s);
        }
        for (s, at) in &c.session_touches {
            self.sessions.entry(s.clone()).or_default().last_active_ms = *at;
        }
        for (s, seq, rec) in &c.dedup_puts {
            self.sessions.entry(s.clone()).or_default().records.insert(*seq, rec.clone());
        }
        for (s, seq) in &c.dedup_removes {
            if let Some(session) = self.sessions.get_mut(s) {
                session.records.remove(seq);
            }
        }
    }
}

/// A group of writes evaluated against the committed state, in order, each seeing the
/// ones before it.
pub struct Batch<'a> {
    state: &'a State,
    options: &'a StateOptions,
    now_ms: i64,
    time: pbjson_types::Timestamp,
    revision: i64,
    overlay: HashMap<String, Option<EntryRef>>,
    records: Vec<RecordRef>,
    dedup: HashMap<String, BTreeMap<u64, DedupRecord>>,
}

impl<'a> Batch<'a> {
    /// Starts a batch at `now_ms` (Unix milliseconds; entries' update time).
    pub fn new(state: &'a State, options: &'a StateOptions, now_ms: i64) -> Self {
        let time = pbjson_types::Timestamp {
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
        self.overlay.insert(key.to_string(), Some(entry.clone()));
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
            self.overlay.insert(key.to_string(), None);
            events.push(Event { kind: EventKind::Delete, entry: tombstone, prev: prev.clone() });
        }
        OpOutput::Delete { prev }
    }

    /// Evaluates one write. On error nothing of it is applied.
    pub fn apply(&mut self, op: &WriteOp) -> Result<WriteOutput, StoreError> {
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
        commit.compact_revision = compact_target(state, options, self.revision, self.now_ms);

        // Sessions: remember the new outcomes, keep each session's window, bound the count.
        let mut dropped: HashSet<String> = HashSet::new();
        if housekeeping {
            let ttl_ms = i64::try_from(options.session_ttl.as_millis()).unwrap_or(i64::MAX);
            for (id, s) in &state.sessions {
                if !self.dedup.contains_key(id) && s.last_active_ms < self.now_ms.saturating_sub(ttl_ms) {
                    dropped.insert(id.clone());
                }
            }
        }
        let new_sessions = self.dedup.keys().filter(|s| !state.sessions.contains_key(*s)).count();
        let total = (state.sessions.len() - dropped.len()) + new_sessions;
        if total > options.max_sessions {
            let mut idle: Vec<(&String, i64)> = state
                .sessions
                .iter()
                .filter(|(id, _)| !self.dedup.contains_key(*id) && !dropped.contains(*id))
                .map(|(id, s)| (id, s.last_active_ms))
                .collect();
            idle.sort_by_key(|(_, at)| *at);
            for (id, _) in idle.into_iter().take(total - options.max_sessions) {
                dropped.insert(id.clone());
            }
        }
        for (session, added) in self.dedup {
            let committed = state.sessions.get(&session).map(|s| &s.records);
            let keep = options.session_window.max(1);
            let len = committed.map_or(0, BTreeMap::len) + added.len();
            let mut excess = len.saturating_sub(keep);
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

/// The compact revision the retention asks for once the store is at `revision`.
fn compact_target(state: &State, options: &StateOptions, revision: i64, now_ms: i64) -> i64 {
    let mut target = state.compact_revision;
    if options.history_revisions > 0 {
        let keep = i64::try_from(options.history_revisions).unwrap_or(i64::MAX);
        target = target.max(revision.saturating_sub(keep));
    }
    if let Some(age) = options.history_age {
        let cutoff = now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        // Records are in time order; the batch's own records are never older than `now`.
        if let Some(last_old) = state.log.iter().take_while(|r| r.time_ms < cutoff).last() {
            target = target.max(last_old.revision);
        }
    }
    target.min(revision)
}

/// How long the writer waits between housekeeping passes (age compaction, session expiry).
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
