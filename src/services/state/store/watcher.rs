//! One watch: first the log from its start revision, then live commits from the broadcast
//! channel; and the slot that counts it against `max_watchers`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast;

use super::{Published, Shared};
use crate::services::state::engine::{Event, KeyFilter, RecordRef};
use crate::services::state::error::StoreError;

/// Counts open watches against `max_watchers`.
pub(super) struct WatcherSlot(Arc<Shared>);

impl WatcherSlot {
    pub(super) fn claim(shared: &Arc<Shared>) -> Result<Self, StoreError> {
        let max = shared.options.max_watchers;
        let prev = shared.watchers.fetch_add(1, Ordering::AcqRel);
        if prev >= max {
            shared.watchers.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Limit {
                limit: "max_watchers",
                what: "open watches",
                max: i64::try_from(max).unwrap_or(i64::MAX),
                actual: i64::try_from(prev + 1).unwrap_or(i64::MAX),
                exhausted: true,
            });
        }
        Ok(Self(shared.clone()))
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How many log records a catching-up watcher copies per step.
const CATCH_UP_CHUNK: usize = 256;

/// One watch: first the log from its start revision, then live commits.
pub struct Watcher {
    pub(super) shared: Arc<Shared>,
    pub(super) filter: KeyFilter,
    pub(super) next: i64,
    pub(super) head: i64,
    pub(super) live: Option<broadcast::Receiver<Published>>,
    pub(super) _slot: WatcherSlot,
}

impl Watcher {
    /// The store revision when the watch started.
    pub fn start_head(&self) -> i64 {
        self.head
    }

    /// The next revision this watcher will deliver events of (resume point).
    pub fn next_revision(&self) -> i64 {
        self.next
    }

    fn matching(&self, records: &[RecordRef], into: &mut Vec<Event>) -> i64 {
        let mut last = 0;
        for r in records.iter().filter(|r| r.revision >= self.next) {
            for e in r.events.iter().filter(|e| self.filter.matches(e.key())) {
                into.push(e.clone());
                last = r.revision;
            }
        }
        last
    }

    /// The next events (whole revisions, in order), with the revision of the last one.
    /// Waits for a commit when caught up.
    pub async fn next_events(&mut self) -> Result<(Vec<Event>, i64), StoreError> {
        loop {
            let Some(live) = self.live.as_mut() else {
                // Catching up from the log, a chunk at a time.
                let state = self.shared.read();
                if self.next > state.revision() {
                    self.live = Some(self.shared.hub.subscribe());
                    continue;
                }
                let records = state.records(self.next, state.revision(), CATCH_UP_CHUNK)?;
                drop(state);
                let mut events = Vec::new();
                let last = self.matching(&records, &mut events);
                if let Some(r) = records.last() {
                    self.next = r.revision + 1;
                }
                if !events.is_empty() {
                    return Ok((events, last));
                }
                continue;
            };
            match live.recv().await {
                Ok(records) => {
                    let mut events = Vec::new();
                    let last = self.matching(&records, &mut events);
                    if let Some(r) = records.last() {
                        self.next = self.next.max(r.revision + 1);
                    }
                    if !events.is_empty() {
                        return Ok((events, last));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(StoreError::Lagged { resume: self.next, buffer: self.shared.options.watch_buffer });
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(StoreError::Unavailable("the state store is shut down".into()));
                }
            }
        }
    }
}
