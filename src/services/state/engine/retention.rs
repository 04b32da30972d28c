//! Retention: which log records compaction lets go (by count and by age), and which Sync
//! sessions and sequences are forgotten (idle too long, too many sessions, beyond the
//! deduplication window).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::state::State;
use super::types::DedupRecord;
use crate::services::state::options::StateOptions;

/// How long the writer waits between housekeeping passes (age compaction, session expiry).
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// The compact revision the retention asks for once the store is at `revision`.
pub(super) fn compact_target(state: &State, options: &StateOptions, revision: i64, now_ms: i64) -> i64 {
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

/// The sessions to forget once the sessions in `active` have written at `now_ms`: with
/// `housekeeping`, those idle for longer than the session TTL; and, if there would be more
/// than `max_sessions`, the least recently active others.
pub(super) fn sessions_to_drop(
    state: &State,
    options: &StateOptions,
    active: &HashMap<String, BTreeMap<u64, DedupRecord>>,
    now_ms: i64,
    housekeeping: bool,
) -> HashSet<String> {
    let mut dropped: HashSet<String> = HashSet::new();
    if housekeeping {
        let ttl_ms = i64::try_from(options.session_ttl.as_millis()).unwrap_or(i64::MAX);
        for (id, s) in &state.sessions {
            if !active.contains_key(id) && s.last_active_ms < now_ms.saturating_sub(ttl_ms) {
                dropped.insert(id.clone());
            }
        }
    }
    let new_sessions = active.keys().filter(|s| !state.sessions.contains_key(*s)).count();
    let total = (state.sessions.len() - dropped.len()) + new_sessions;
    if total > options.max_sessions {
        let mut idle: Vec<(&String, i64)> = state
            .sessions
            .iter()
            .filter(|(id, _)| !active.contains_key(*id) && !dropped.contains(*id))
            .map(|(id, s)| (id, s.last_active_ms))
            .collect();
        idle.sort_by_key(|(_, at)| *at);
        for (id, _) in idle.into_iter().take(total - options.max_sessions) {
            dropped.insert(id.clone());
        }
    }
    dropped
}

/// How many of a session's oldest sequences to forget so that `committed` plus `added`
/// fit the deduplication window.
pub(super) fn window_excess(options: &StateOptions, committed: usize, added: usize) -> usize {
    (committed + added).saturating_sub(options.session_window.max(1))
}
