//! The store's semantics, in one place for every backend: revision assignment,
//! compare-and-set, transaction evaluation, the event log and its compaction, and the
//! deduplication table of Sync sessions.
//!
//! [`State`] is the committed state, held in memory (the live keys, the retained event log,
//! the sessions). The single writer evaluates a group of writes against it with a
//! [`Batch`] (an overlay, so readers never see a write before it is durable), turns the
//! batch into a [`Commit`] for the backend to persist, and only then applies the commit to
//! the state with [`State::apply`]. Nothing in this module does I/O.
//!
//! - `types`: the vocabulary (events, records, writes, results, snapshot, commit);
//! - `state`: the committed state and its reads;
//! - `batch`: evaluating writes, Sync deduplication;
//! - `size`: whether what a write makes the service send fits in one message;
//! - `retention`: what compaction and session expiry let go.

mod batch;
mod retention;
mod size;
mod state;
mod types;

pub use self::batch::Batch;
pub use self::retention::HOUSEKEEPING_INTERVAL;
pub use self::state::State;
pub use self::types::*;
