//! Start-up: what the backend gives back becomes the committed state, and nothing the store
//! then serves is unreadable. A record that cannot be read back is reported and left out;
//! the store starts and serves the rest. What was left out, and why, stays in the
//! [`OpenReport`] (and in the log), so an operator can see it.

use super::convert;
use super::depth;
use super::engine::{EntryRef, Event, SkippedRecord, Snapshot, State};

/// What the store found wrong when it opened, and stepped over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Records that could not be read back and are not served.
    pub skipped: Vec<SkippedRecord>,
    /// Other things to know (sentences): an unclean shutdown, history treated as compacted
    /// because of a skipped record, an empty database file.
    pub notes: Vec<String>,
}

impl OpenReport {
    /// Whether the store opened with nothing to report.
    pub fn is_clean(&self) -> bool {
        self.skipped.is_empty() && self.notes.is_empty()
    }
}

/// Builds the committed state from `snapshot`, leaving out what cannot be read back.
pub(crate) fn state(mut snapshot: Snapshot) -> (State, OpenReport) {
    let mut skipped = std::mem::take(&mut snapshot.skipped);
    screen_depth(&mut snapshot, &mut skipped);
    let mut notes = std::mem::take(&mut snapshot.notes);
    let (state, repairs) = State::from_snapshot(snapshot);
    notes.extend(repairs);
    for note in &notes {
        tracing::warn!(note = %note, "state store");
    }
    (state, OpenReport { skipped, notes })
}

/// Leaves out entries and log records holding a value nested deeper than every response
/// can carry (written before the limit existed): serving one would fail every read that
/// touches it, a watch, a listing. The derived ceiling is the bound, not the configured
/// limit, so that lowering the limit never hides what was stored.
fn screen_depth(snapshot: &mut Snapshot, skipped: &mut Vec<SkippedRecord>) {
    let Ok(derived) = depth::derivation() else { return };
    let ceiling = derived.ceiling;
    let mut skip = |record: String, depth: usize| {
        let problem = format!(
            "its value nests {depth} levels of arrays and objects, deeper than the {ceiling} every response can carry"
        );
        tracing::error!(record = %record, problem = %problem, "state store record skipped");
        skipped.push(SkippedRecord { record, problem });
    };
    let deepest = |e: &EntryRef| e.value.as_ref().map_or(0, convert::depth);
    snapshot.entries.retain(|e| {
        let depth = deepest(e);
        if depth > ceiling {
            skip(format!("the entry of key {:?}", e.key), depth);
        }
        depth <= ceiling
    });
    snapshot.records.retain(|r| {
        let deep = |ev: &Event| std::iter::once(&ev.entry).chain(&ev.prev).map(deepest).max().unwrap_or(0);
        let depth = r.events.iter().map(deep).max().unwrap_or(0);
        if depth > ceiling {
            skip(format!("the log record of revision {}", r.revision), depth);
        }
        depth <= ceiling
    });
}
