//! The engine's vocabulary: changes and records, the validated writes the writer
//! evaluates and their results, what a Sync session remembers, and what passes between
//! the engine and a backend (a [`Snapshot`] at start-up, a [`Commit`] per group of writes).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::protojson::Value;

use crate::pb::google::rpc::Status as RpcStatus;
use crate::pb::portway::state::v1 as api;
use crate::services::state::error::StoreError;

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
    /// The retained log, in revision order: `compact_revision + 1 ..= revision`, less any
    /// record that could not be read back (see [`State::from_snapshot`]).
    ///
    /// [`State::from_snapshot`]: super::State::from_snapshot
    pub records: Vec<RecordRef>,
    /// The sessions.
    pub sessions: HashMap<String, Session>,
    /// Records that could not be read back, left out of the above.
    pub skipped: Vec<SkippedRecord>,
    /// Other things an operator should know about what was loaded (sentences).
    pub notes: Vec<String>,
}

/// A stored record that could not be read back at start-up and was left out: the store
/// starts without it and serves the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    /// Which record, in words: `the entry of key "a"`, `the log record of revision 7`.
    pub record: String,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for SkippedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.record, self.problem)
    }
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
