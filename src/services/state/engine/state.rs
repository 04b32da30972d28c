//! The committed state and every read of it: the live keys, the retained event log and
//! the sessions; reads at the latest or a past revision; applying a durable commit.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;

use super::types::{Commit, EntryRef, ListPage, RecordRef, Session, Snapshot};
use crate::services::state::error::StoreError;

/// The committed state.
#[derive(Debug, Default)]
pub struct State {
    pub(super) revision: i64,
    pub(super) compact_revision: i64,
    pub(super) keys: BTreeMap<String, EntryRef>,
    /// Records `compact_revision + 1 ..= revision`, one per revision.
    pub(super) log: VecDeque<RecordRef>,
    pub(super) sessions: HashMap<String, Session>,
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
