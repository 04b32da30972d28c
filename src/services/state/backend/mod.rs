//! Storage backends: where commits are made durable.
//!
//! The trait is deliberately narrow. The semantics (revisions, compare-and-set,
//! transactions, the event log, compaction, watch fan-out, session deduplication) live
//! above it in [`super::engine`] and [`super::store`]; a backend only has to give the state
//! back at start-up ([`Backend::load`]) and persist each [`Commit`] atomically
//! ([`Backend::commit`]). The single writer calls `commit` once per group of writes, so a
//! backend sees one commit at a time, in order.
//!
//! A backend shared by several gateways (etcd) will implement the same two calls: `commit`
//! as one conditional transaction on the backend's own revision key (so that a commit based
//! on a stale revision fails instead of overwriting another gateway's), `load` as a read of
//! the keyspace and the log; a third call to follow the other gateways' commits will join
//! then.

mod memory;
mod redb;

pub use self::memory::MemoryBackend;
pub use self::redb::RedbBackend;
#[cfg(feature = "fuzzing")]
pub(crate) use self::redb::decode_record;
#[cfg(test)]
pub(crate) use self::redb::log_record_decodes;

use super::engine::{Commit, Snapshot};

/// A form in which a backend stores values: `message`, wrapped in `wrappers` more
/// messages. The value depth limit is derived from these and the API's messages (see
/// `depth.rs`), so that every stored value decodes again.
#[derive(Debug, Clone, Copy)]
pub struct StoredForm {
    /// What it is, for people.
    pub what: &'static str,
    /// The API message stored (fully qualified, `.portway.state.v1.Entry`).
    pub message: &'static str,
    /// How many messages the stored form wraps it in.
    pub wrappers: usize,
}

/// Every form any backend stores values in.
pub const STORED_FORMS: &[StoredForm] = self::redb::STORED_FORMS;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] ::redb::Error),
    /// The database file cannot be opened; the sentence names it and says what to do.
    #[error("{0}")]
    Open(String),
    /// What was read back does not make sense.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Where commits are made durable.
pub trait Backend: Send + Sync + 'static {
    /// Reads everything back (at start-up).
    fn load(&self) -> Result<Snapshot, BackendError>;

    /// Persists `commit`, all or nothing; returns once it survives a crash (for a durable
    /// backend: after fsync).
    fn commit(&self, commit: &Commit) -> Result<(), BackendError>;

    /// Whether [`Backend::commit`] blocks on I/O (and so runs off the async threads).
    fn blocking(&self) -> bool {
        true
    }
}
