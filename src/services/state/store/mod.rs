//! The store handle: reads from the committed state, writes through one group-committing
//! writer task, watches fanned out through a bounded broadcast channel.
//!
//! Group commit: writers queue their writes; the writer task takes everything queued (up
//! to `max_batch`), evaluates it against the committed state, persists the result as ONE
//! backend commit (one redb transaction, one fsync), then applies it to the in-memory state,
//! publishes its records to the watchers and answers every writer. While a commit is being
//! fsynced the next writes queue up and form the next group, so durable throughput grows
//! with the number of concurrent writers.
//!
//! Watch fan-out: committed records go into a `tokio::sync::broadcast` channel of
//! `watch_buffer` commits. Publishing never waits for a watcher; a watcher more than
//! `watch_buffer` commits behind is told so (RESOURCE_EXHAUSTED with the revision to resume
//! from). The channel holds `Arc`s shared with the log, so slow watchers pin at most
//! `watch_buffer` commits' worth of records.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use tokio::sync::{broadcast, mpsc, oneshot};

use super::backend::{Backend, BackendError, MemoryBackend, RedbBackend};
use super::engine::{DedupKey, KeyFilter, ListPage, RecordRef, SessionOutcome, State, WriteOp, WriteOutput};
use super::error::StoreError;
use super::load::{self, OpenReport};
use super::options::{StateOptions, StorageKind};
use crate::pb::portway::state::v1 as api;

mod watcher;
mod writer;

pub use self::watcher::Watcher;
use self::watcher::WatcherSlot;
use self::writer::{Outcome, WriteRequest, WriterMsg, run_writer};

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The backend failed to open or to load.
    #[error("opening the state store: {0}")]
    Backend(#[from] BackendError),
    /// An option is out of its range.
    #[error("{0}")]
    Options(String),
    /// The blocking open task failed.
    #[error("opening the state store: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// The current revision.
    pub revision: i64,
    /// Events at or below this revision have been compacted.
    pub compact_revision: i64,
    /// Live keys.
    pub keys: usize,
    /// Open watches.
    pub watchers: usize,
    /// Records that could not be read back at start-up and are not served (see
    /// [`Store::open_report`]).
    pub skipped_records: usize,
}

/// Commits published to watchers: the records of one backend commit.
type Published = Arc<[RecordRef]>;

struct Shared {
    state: RwLock<State>,
    options: StateOptions,
    hub: broadcast::Sender<Published>,
    watchers: AtomicUsize,
    report: OpenReport,
    /// How long each backend commit took (see [`Store::metrics`]).
    commit_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle to the state store. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    writer: mpsc::Sender<WriterMsg>,
    writer_task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("storage", &self.shared.options.storage).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store `options` describe (creating the data directory if needed) and
    /// starts its writer task. Must be called within a tokio runtime.
    pub async fn open(options: StateOptions) -> Result<Self, OpenError> {
        check_options(&options)?;
        let backend: Arc<dyn Backend> = match options.storage {
            StorageKind::Memory => Arc::new(MemoryBackend),
            StorageKind::Durable => {
                let dir = options.data_dir.clone();
                Arc::new(tokio::task::spawn_blocking(move || RedbBackend::open(&dir)).await??)
            }
        };
        let loader = backend.clone();
        let snapshot = tokio::task::spawn_blocking(move || loader.load()).await??;
        let (state, report) = load::state(snapshot);
        match options.storage {
            // A memory store has no directory: naming one would suggest data is kept there.
            StorageKind::Memory => tracing::info!(
                storage = "memory",
                revision = state.revision(),
                keys = state.len(),
                "state store open (in memory: nothing is kept after the process ends)"
            ),
            StorageKind::Durable => tracing::info!(
                storage = "durable",
                data_dir = %std::path::absolute(&options.data_dir).unwrap_or_else(|_| options.data_dir.clone()).display(),
                revision = state.revision(),
                keys = state.len(),
                skipped_records = report.skipped.len(),
                "state store open"
            ),
        }
        let (hub, _) = broadcast::channel(options.watch_buffer.max(1));
        let (tx, rx) = mpsc::channel(options.write_queue.max(1));
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            options,
            hub,
            watchers: AtomicUsize::new(0),
            report,
            commit_seconds: super::metrics::commit_histogram(),
        });
        let task = tokio::spawn(run_writer(shared.clone(), backend, rx));
        Ok(Self { shared, writer: tx, writer_task: Arc::new(Mutex::new(Some(task))) })
    }

    /// What the store found wrong when it opened (records it could not read back and
    /// left out, an unclean shutdown, ...): empty after a clean start.
    pub fn open_report(&self) -> &OpenReport {
        &self.shared.report
    }

    /// Counters for operators.
    pub fn stats(&self) -> StoreStats {
        let state = self.shared.read();
        StoreStats {
            revision: state.revision(),
            compact_revision: state.compact_revision(),
            keys: state.len(),
            watchers: self.shared.watchers.load(Ordering::Relaxed),
            skipped_records: self.shared.report.skipped.len(),
        }
    }

    /// The store's metrics (revision, keys, watchers, commit latency), to register with
    /// [`crate::metrics::Metrics::register`].
    pub fn metrics(&self) -> super::metrics::StoreMetrics {
        super::metrics::StoreMetrics::new(self.clone(), self.shared.commit_seconds.clone())
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StateOptions {
        &self.shared.options
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.shared.read().revision()
    }

    /// Events at or below this revision have been compacted.
    pub fn compact_revision(&self) -> i64 {
        self.shared.read().compact_revision()
    }

    /// Reads `key` at `revision` (0: latest): the entry (if any) and the revision read at.
    pub fn get(&self, key: &str, revision: i64) -> Result<(Option<Arc<api::Entry>>, i64), StoreError> {
        self.shared.read().get(key, revision)
    }

    /// Lists up to `limit` (0: all) entries under `prefix` from `start_key` at `revision`.
    pub fn list(&self, prefix: &str, start_key: &str, revision: i64, limit: usize) -> Result<ListPage, StoreError> {
        self.shared.read().list(prefix, start_key, revision, limit)
    }

    /// Up to `max` log records from `from` to `to` (inclusive).
    pub fn records(&self, from: i64, to: i64, max: usize) -> Result<Vec<RecordRef>, StoreError> {
        self.shared.read().records(from, to, max)
    }

    /// The highest sequence the store remembers applying for `session` (0: none).
    pub fn last_sequence(&self, session: &str) -> u64 {
        self.shared.read().last_sequence(session)
    }

    async fn submit(&self, op: WriteOp, session: Option<DedupKey>) -> Result<oneshot::Receiver<Outcome>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(WriterMsg::Write(WriteRequest { op, session, reply }))
            .await
            .map_err(|_| StoreError::Unavailable("the state store is shut down".into()))?;
        Ok(rx)
    }

    /// Applies a write once it is durable; returns its result.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutput, StoreError> {
        let rx = self.submit(op, None).await?;
        match rx.await {
            Ok(Outcome::Write(r)) => r,
            Ok(Outcome::Session(_)) => Err(StoreError::Storage("writer answered a write as a session write".into())),
            Err(_) => Err(StoreError::Unavailable("the state store is shut down".into())),
        }
    }

    /// Queues a write of a Sync session. Writes queued in order are committed in order;
    /// the returned future resolves once this one is durable (or known to be a duplicate).
    pub async fn write_in_session(
        &self,
        key: DedupKey,
        op: WriteOp,
    ) -> Result<impl Future<Output = Result<SessionOutcome, StoreError>> + Send + 'static, StoreError> {
        let rx = self.submit(op, Some(key)).await?;
        Ok(async move {
            match rx.await {
                Ok(Outcome::Session(r)) => r,
                Ok(Outcome::Write(_)) => Err(StoreError::Storage("writer answered a session write as a write".into())),
                Err(_) => Err(StoreError::Unavailable("the state store is shut down".into())),
            }
        })
    }

    /// Starts a watch on `filter` from `start_revision` (0: from now).
    pub fn watch(&self, filter: KeyFilter, start_revision: i64) -> Result<Watcher, StoreError> {
        let slot = WatcherSlot::claim(&self.shared)?;
        if start_revision < 0 {
            return Err(StoreError::Invalid(format!("start_revision {start_revision} is negative")));
        }
        let state = self.shared.read();
        let head = state.revision();
        let (next, live) = if start_revision == 0 || start_revision > head {
            // Subscribing under the read lock: every commit after `head` is published
            // after this point (the writer publishes under the write lock).
            (if start_revision == 0 { head + 1 } else { start_revision }, Some(self.shared.hub.subscribe()))
        } else {
            state.check_start(start_revision)?;
            (start_revision, None)
        };
        drop(state);
        Ok(Watcher { shared: self.shared.clone(), filter, next, head, live, _slot: slot })
    }

    /// Stops the writer after the writes already queued, and closes the backend (the
    /// database file is released once every handle's pending work is done). Later writes
    /// fail with UNAVAILABLE.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(WriterMsg::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let task = self.writer_task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Refuses options the store cannot honour.
fn check_options(options: &StateOptions) -> Result<(), OpenError> {
    let derived = super::depth::derivation()
        .map_err(|e| OpenError::Options(format!("cannot derive the state store's value depth limit: {e}")))?;
    if options.max_value_depth > derived.ceiling {
        let deepest = derived.deepest().map_or("", |c| c.what.as_str());
        return Err(OpenError::Options(format!(
            "max_value_depth {} is too deep: values can nest at most {ceiling} levels of arrays and objects and \
             still be decoded in every message that carries them (the deepest is {deepest}); set it to {ceiling} \
             or less",
            options.max_value_depth,
            ceiling = derived.ceiling
        )));
    }
    Ok(())
}
