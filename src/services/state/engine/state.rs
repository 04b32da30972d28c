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
    /// The state a backend loaded. What does not fit together is repaired rather than
    /// refused, and each repair is described in the returned sentences:
    /// - the revision is at least every revision seen (no revision is handed out twice);
    /// - the compact revision lies within `0..=revision`;
    /// - the log is contiguous: before a gap (a record missing, or skipped because it could
    ///   not be read back) everything is treated as compacted, so reads and watches from
    ///   those revisions answer OUT_OF_RANGE as for any compacted revision.
    pub fn from_snapshot(s: Snapshot) -> (Self, Vec<String>) {
        let mut notes = Vec::new();
        let seen =
            s.records.iter().map(|r| r.revision).chain(s.entries.iter().map(|e| e.mod_revision)).max().unwrap_or(0);
        let mut revision = s.revision.max(0);
        if seen > revision {
            notes.push(format!(
                "the store was at revision {revision}, but holds records of revision {seen}: it continues from {seen}"
            ));
            revision = seen;
        }
        let mut compact = s.compact_revision.clamp(0, revision);
        if compact != s.compact_revision {
            notes.push(format!(
                "the compact revision {} was outside 0..={revision}: it is {compact} now",
                s.compact_revision
            ));
        }
        let mut records: Vec<RecordRef> =
            s.records.into_iter().filter(|r| r.revision > compact && r.revision <= revision).collect();
        records.sort_by_key(|r| r.revision);
        records.dedup_by_key(|r| r.revision);
        // Every run of missing revisions, and the compact revision that leaves no gap.
        // In i128: a damaged file may hold a revision of i64::MAX, one past which overflows.
        let mut missing: Vec<(i64, i64)> = Vec::new();
        let mut expected = i128::from(compact) + 1;
        for r in records.iter().map(|r| i128::from(r.revision)).chain(std::iter::once(i128::from(revision) + 1)) {
            if r > expected {
                // Both ends lie in compact + 1 ..= revision.
                let clamp = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
                missing.push((clamp(expected), clamp(r - 1)));
            }
            expected = r + 1;
        }
        if let Some(&(_, last_missing)) = missing.last() {
            let runs: Vec<String> = missing
                .iter()
                .take(5)
                .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a} to {b}") })
                .collect();
            let more = if missing.len() > 5 { format!(" and {} more runs", missing.len() - 5) } else { String::new() };
            notes.push(format!(
                "the event log has no readable record of revision {}{more}: history up to revision {last_missing} is \
                 treated as compacted (reads and watches from before revision {} answer out_of_range)",
                runs.join(", "),
                last_missing.saturating_add(1)
            ));
            compact = last_missing;
            records.retain(|r| r.revision > compact);
        }
        let state = Self {
            revision,
            compact_revision: compact,
            keys: s.entries.into_iter().map(|e| (e.key.clone(), e)).collect(),
            log: records.into(),
            sessions: s.sessions,
        };
        (state, notes)
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
        StoreError::Compacted { requested, oldest: self.compact_revision.saturating_add(1), current: self.revision }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::services::state::engine::RevisionRecord;

    fn snapshot(revision: i64, compact: i64, log: &[i64]) -> Snapshot {
        let records =
            log.iter().map(|&r| Arc::new(RevisionRecord { revision: r, time_ms: 0, events: Vec::new() })).collect();
        Snapshot { revision, compact_revision: compact, records, ..Default::default() }
    }

    fn load(s: Snapshot) -> (i64, i64, Vec<i64>, Vec<String>) {
        let (state, notes) = State::from_snapshot(s);
        (state.revision, state.compact_revision, state.log.iter().map(|r| r.revision).collect(), notes)
    }

    #[test]
    fn a_contiguous_log_loads_as_it_is() {
        assert_eq!(load(snapshot(5, 2, &[3, 4, 5])), (5, 2, vec![3, 4, 5], vec![]));
        assert_eq!(load(snapshot(0, 0, &[])), (0, 0, vec![], vec![]));
    }

    #[test]
    fn history_before_the_last_gap_is_compacted() {
        let (revision, compact, log, notes) = load(snapshot(9, 2, &[3, 5, 6, 8, 9]));
        assert_eq!((revision, compact, log), (9, 7, vec![8, 9]));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("revision 4, 7: history up to revision 7"), "{notes:?}");
        // Missing at the end: nothing is left to replay.
        let (_, compact, log, notes) = load(snapshot(9, 2, &[3, 4]));
        assert_eq!((compact, log), (9, vec![]));
        assert!(notes[0].contains("revision 5 to 9"), "{notes:?}");
    }

    #[test]
    fn a_revision_at_the_end_of_the_range_loads() {
        // Found by the state_records fuzz target: one past i64::MAX overflowed.
        assert_eq!(
            load(snapshot(i64::MAX, i64::MAX - 1, &[i64::MAX])),
            (i64::MAX, i64::MAX - 1, vec![i64::MAX], vec![])
        );
        let (revision, compact, log, notes) = load(snapshot(i64::MAX, 0, &[1]));
        assert_eq!((revision, compact, log), (i64::MAX, i64::MAX, vec![]));
        assert!(notes[0].contains(&format!("revision 2 to {}", i64::MAX)), "{notes:?}");
    }

    #[test]
    fn revisions_are_never_handed_out_twice() {
        // Records beyond the stored revision: continue after them.
        let (revision, compact, log, notes) = load(snapshot(3, 0, &[1, 2, 3, 4]));
        assert_eq!((revision, compact, log), (4, 0, vec![1, 2, 3, 4]));
        assert!(notes[0].contains("continues from 4"), "{notes:?}");
        // A compact revision beyond the revision is brought back into range.
        let (revision, compact, _, notes) = load(snapshot(3, 7, &[]));
        assert_eq!((revision, compact), (3, 3));
        assert!(notes[0].contains("outside 0..=3"), "{notes:?}");
    }
}
