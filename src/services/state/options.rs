//! The state store's settings: plain structs with documented defaults. `main.rs` fills
//! them from flags and environment variables.

use std::path::PathBuf;
use std::time::Duration;

/// Where the state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageKind {
    /// An embedded redb database under [`StateOptions::data_dir`]; an acknowledged write
    /// has been fsynced and survives a crash. The default.
    #[default]
    Durable,
    /// Memory only: fast, and gone when the process exits. For tests and scratch use.
    Memory,
}

/// Everything the state store can be told. Start from [`StateOptions::default`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StateOptions {
    /// Durable (redb) or memory. Default: [`StorageKind::Memory`], so that a program embedding
    /// the library never writes files it did not ask for; the `portway` binary defaults to
    /// durable (`--storage durable`).
    pub storage: StorageKind,
    /// The directory of the durable store (created if missing; the database is
    /// `state.redb` inside). Default: `./portway-data`.
    pub data_dir: PathBuf,
    /// Longest key, in bytes. Default: 4 KiB.
    pub max_key_bytes: usize,
    /// Largest value, in bytes of its protobuf encoding (about its JSON size). Default: 1 MiB.
    pub max_value_bytes: usize,
    /// Deepest nesting of arrays and objects in a value (a scalar is 0, `[1]` is 1,
    /// `{"a": [1]}` is 2); deeper values are refused with INVALID_ARGUMENT before anything
    /// is written. Default: 31, derived from the protos: the deepest nesting that every
    /// stored record and every response carrying a value can decode again (protobuf
    /// decoders stop at 100 nested messages; see `docs/state-store.md`). A higher setting
    /// is refused by [`super::Store::open`].
    pub max_value_depth: usize,
    /// The largest message the state service sends (its `max_message_bytes`;
    /// [`crate::services::mount`] sets it from [`crate::services::ServiceOptions`]). A
    /// write whose revision (its events with their previous entries: a Watch, History or
    /// Sync message never splits a revision) or whose transaction answer would be larger is
    /// refused with INVALID_ARGUMENT before anything is written. Default: 4 MiB.
    pub max_message_bytes: usize,
    /// Most operations in one transaction branch, comparisons in one transaction, or puts
    /// in one PutMany. Default: 1,024.
    pub max_txn_ops: usize,
    /// Most watches open at once (Watch calls plus Sync watches). Default: 10,000.
    pub max_watchers: usize,
    /// How many commits a watcher may fall behind before it is cut off with
    /// RESOURCE_EXHAUSTED (and told where to resume). Bounds the memory slow watchers can
    /// pin. Default: 1,024.
    pub watch_buffer: usize,
    /// Keep the events of at least the last this-many revisions; older ones are compacted.
    /// `0`: no bound by count. Default: 100,000.
    pub history_revisions: u64,
    /// Compact events older than this. `None`: no bound by age. Default: 24 hours.
    pub history_age: Option<Duration>,
    /// How many sequence numbers of each Sync session are remembered for deduplication.
    /// Default: 1,024.
    pub session_window: usize,
    /// A Sync session not heard from for this long is forgotten (its resends would then
    /// apply again). Default: 24 hours.
    pub session_ttl: Duration,
    /// Most Sync sessions remembered; beyond it the least recently active is forgotten.
    /// Default: 10,000.
    pub max_sessions: usize,
    /// Most writes committed together in one transaction (one fsync). Default: 1,024.
    pub max_batch: usize,
    /// Writes waiting for the committer beyond this make writers wait. Default: 8,192.
    pub write_queue: usize,
}

impl Default for StateOptions {
    fn default() -> Self {
        Self {
            storage: StorageKind::Memory,
            data_dir: PathBuf::from("portway-data"),
            max_key_bytes: 4 * 1024,
            max_value_bytes: 1024 * 1024,
            max_value_depth: super::depth::default_max_value_depth(),
            max_message_bytes: 4 * 1024 * 1024,
            max_txn_ops: 1024,
            max_watchers: 10_000,
            watch_buffer: 1024,
            history_revisions: 100_000,
            history_age: Some(Duration::from_secs(24 * 3600)),
            session_window: 1024,
            session_ttl: Duration::from_secs(24 * 3600),
            max_sessions: 10_000,
            max_batch: 1024,
            write_queue: 8192,
        }
    }
}

impl StateOptions {
    /// Options for an ephemeral in-memory store (tests, scratch use).
    pub fn memory() -> Self {
        Self::default()
    }

    /// Options for a durable store in `dir`.
    pub fn durable(dir: impl Into<PathBuf>) -> Self {
        Self { storage: StorageKind::Durable, data_dir: dir.into(), ..Self::default() }
    }
}
