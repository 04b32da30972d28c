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
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, oneshot};

use super::backend::{Backend, BackendError, MemoryBackend, RedbBackend};
use super::engine::{
    Batch, DedupKey, Event, HOUSEKEEPING_INTERVAL, KeyFilter, ListPage, RecordRef, SessionOutcome, State, WriteOp,
    WriteOutput,
};
use super::error::StoreError;
use super::options::{StateOptions, StorageKind};
use crate::pb::portway::state::v1 as api;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The backend failed to open or to load.
    #[error("opening the state store: {0}")]
    Backend(#[from] BackendError),
    /// The loaded state is inconsistent.
    #[error("the state store on disk is inconsistent: {0}")]
    Inconsistent(String),
    /// An option is out of its range.
    #[error("{0}")]
    Options(String),
    /// The blocking open task failed.
    #[error("opening the state store: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Commits published to watchers: the records of one backend commit.
type Published = Arc<[RecordRef]>;

struct Shared {
    state: RwLock<State>,
    options: StateOptions,
    hub: broadcast::Sender<Published>,
    watchers: AtomicUsize,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

enum Outcome {
    Write(Result<WriteOutput, StoreError>),
    Session(Result<SessionOutcome, StoreError>),
}

struct WriteRequest {
    op: WriteOp,
    session: Option<DedupKey>,
    reply: oneshot::Sender<Outcome>,
}

enum WriterMsg {
    Write(WriteRequest),
    Shutdown(oneshot::Sender<()>),
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

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
        let state = State::from_snapshot(snapshot).map_err(OpenError::Inconsistent)?;
        tracing::info!(
            storage = ?options.storage,
            data_dir = %options.data_dir.display(),
            revision = state.revision(),
            keys = state.len(),
            "state store open"
        );
        let (hub, _) = broadcast::channel(options.watch_buffer.max(1));
        let (tx, rx) = mpsc::channel(options.write_queue.max(1));
        let shared = Arc::new(Shared { state: RwLock::new(state), options, hub, watchers: AtomicUsize::new(0) });
        let task = tokio::spawn(run_writer(shared.clone(), backend, rx));
        Ok(Self { shared, writer: tx, writer_task: Arc::new(Mutex::new(Some(task))) })
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

/// Counts open watches against `max_watchers`.
struct WatcherSlot(Arc<Shared>);

impl WatcherSlot {
    fn claim(shared: &Arc<Shared>) -> Result<Self, StoreError> {
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
    shared: Arc<Shared>,
    filter: KeyFilter,
    next: i64,
    head: i64,
    live: Option<broadcast::Receiver<Published>>,
    _slot: WatcherSlot,
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

/// The writer task: group commit.
async fn run_writer(shared: Arc<Shared>, backend: Arc<dyn Backend>, mut rx: mpsc::Receiver<WriterMsg>) {
    let max_batch = shared.options.max_batch.max(1);
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed: Option<String> = None;
    let mut shutdown: Option<oneshot::Sender<()>> = None;
    loop {
        let mut batch: Vec<WriteRequest> = Vec::new();
        let mut housekeeping = false;
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(WriterMsg::Write(w)) => batch.push(w),
                Some(WriterMsg::Shutdown(done)) => shutdown = Some(done),
                None => break,
            },
            _ = tick.tick() => housekeeping = true,
        }
        while shutdown.is_none() && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(WriterMsg::Write(w)) => batch.push(w),
                Ok(WriterMsg::Shutdown(done)) => shutdown = Some(done),
                Err(_) => break,
            }
        }
        if let Some(reason) = &failed {
            for w in batch {
                let e = StoreError::Unavailable(format!("the state store stopped taking writes after: {reason}"));
                let _ =
                    w.reply.send(if w.session.is_some() { Outcome::Session(Err(e)) } else { Outcome::Write(Err(e)) });
            }
        } else if (!batch.is_empty() || housekeeping)
            && let Err(e) = commit_batch(&shared, &backend, batch, housekeeping).await
        {
            tracing::error!(error = %e, "state store commit failed; refusing further writes until restart");
            failed = Some(e);
        }
        if let Some(done) = shutdown.take() {
            drop(backend);
            let _ = done.send(());
            return;
        }
    }
}

/// Evaluates, persists, applies and publishes one group; answers every writer. Returns the
/// storage error (already reported to the writers) if the commit failed.
async fn commit_batch(
    shared: &Arc<Shared>,
    backend: &Arc<dyn Backend>,
    batch: Vec<WriteRequest>,
    housekeeping: bool,
) -> Result<(), String> {
    let now = now_ms();
    let mut answers = Vec::with_capacity(batch.len());
    let commit = {
        let state = shared.read();
        let mut b = Batch::new(&state, &shared.options, now);
        for w in batch {
            let outcome = match &w.session {
                Some(key) => Outcome::Session(b.apply_in_session(key, &w.op)),
                None => Outcome::Write(b.apply(&w.op)),
            };
            answers.push((w.reply, outcome));
        }
        b.finish(housekeeping)
    };
    if !commit.is_empty() {
        let persisted = if backend.blocking() {
            let backend = backend.clone();
            tokio::task::spawn_blocking(move || backend.commit(&commit).map(|()| commit))
                .await
                .map_err(|e| BackendError::Corrupt(format!("commit task failed: {e}")))
                .and_then(|r| r)
        } else {
            backend.commit(&commit).map(|()| commit)
        };
        let commit = match persisted {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                for (reply, outcome) in answers {
                    let err = StoreError::Storage(msg.clone());
                    let _ = reply.send(match outcome {
                        Outcome::Session(_) => Outcome::Session(Err(err)),
                        Outcome::Write(_) => Outcome::Write(Err(err)),
                    });
                }
                return Err(msg);
            }
        };
        let mut state = shared.state.write().unwrap_or_else(PoisonError::into_inner);
        state.apply(&commit);
        if !commit.records.is_empty() {
            // No receivers is fine: nobody is watching.
            let _ = shared.hub.send(commit.records.into());
        }
        drop(state);
    }
    for (reply, outcome) in answers {
        let _ = reply.send(outcome);
    }
    Ok(())
}
