//! Connection admission: a semaphore permit per open connection, a count per client address,
//! and the reserve.
//!
//! # The reserve
//!
//! A fixed connection limit alone lets anyone who opens `max_connections` sockets and keeps
//! them quiet (or trickles bytes, or never reads) lock every other client out. The timeouts in
//! [`super::connection`] bound how long each phase may stall, but a patient attacker can stay
//! just inside them. So when every permit is taken, a new connection *reclaims* a slot: the
//! connection that has gone longest without progress is closed (HTTP/2: GOAWAY first) and the
//! new one takes its permit as soon as it is released.
//!
//! - *Progress* is what a real client does: a request begun, request body bytes delivered,
//!   response bytes taken by the client (after an HTTP/1.1 upgrade: any bytes either way).
//!   Keepalive pings, SETTINGS and other frames a client sends to look alive do not count.
//! - Connections without an open request (idle keep-alive, or still before their first
//!   request) are reclaimed before connections with one; within a class, the stalest first.
//! - A connection is only reclaimed once it has been without progress for
//!   [`HttpConfig::reclaim_after`]; when every connection is busier than that, the gateway is
//!   genuinely full and the new connection is refused (closed at once).
//!
//! An attacker therefore holds at most `max_connections_per_address` slots per address, and
//! whatever it holds is taken back, one slot per new client, the moment someone else needs
//! it. Clients making progress are never reclaimed.
//!
//! [`HttpConfig::reclaim_after`]: crate::config::HttpConfig::reclaim_after

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::address::AddressKey;
use crate::config::HttpConfig;
use crate::metrics::{ConnectionGuard, Metrics};

/// How long a connection that reclaimed a slot waits for the evicted connection's permit.
/// The victim gets [`super::connection::EVICTION_GRACE`] to write its GOAWAY and is then
/// dropped, so this is ample.
const RECLAIM_WAIT: Duration = Duration::from_secs(2);

/// Milliseconds since the process's first connection: the clock of every progress stamp
/// (atomics hold numbers, not `Instant`s).
pub(crate) fn now_ms() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    EPOCH.elapsed().as_millis() as u64
}

const UPGRADED: u8 = 1;
const TUNNEL: u8 = 2;
const EVICTING: u8 = 4;

/// What the gateway knows about one open connection; shared by its task, its IO wrapper and
/// the wrappers of its requests. Updated with relaxed atomics: every reader only compares
/// times and counts, so no ordering between fields is needed.
#[derive(Debug)]
pub(crate) struct ConnState {
    id: u64,
    /// Last progress (see the module docs), in [`now_ms`].
    last_progress: AtomicU64,
    /// Requests (HTTP/1.1) or streams (HTTP/2) whose response has not ended.
    open: AtomicUsize,
    /// Responses holding a chunk the client's connection has not taken yet.
    waiting: AtomicUsize,
    flags: AtomicU8,
    /// HTTP/1.1: what became of the current request's body (see [`H1Body`]).
    h1_body: AtomicU8,
    /// Wakes the connection's task: it went idle, a response started waiting, or it is
    /// being evicted.
    pub(crate) changed: Notify,
    /// Set to close the socket from below (an upgraded connection has no task to tell).
    aborted: AtomicBool,
    pub(crate) abort_waker: AtomicWaker,
}

/// The fate of an HTTP/1.1 request body, for the early-answer rule in [`super::service`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum H1Body {
    /// No body being read, or it was read to the end.
    Done = 0,
    /// The handler still holds an unfinished body.
    Reading = 1,
    /// Dropped unfinished; the rest is being read and discarded.
    Draining = 2,
    /// Dropped unfinished and too long (or of unknown length) to drain: close after the
    /// response, and say so.
    MustClose = 3,
}

impl ConnState {
    fn new(id: u64) -> Self {
        Self {
            id,
            last_progress: AtomicU64::new(now_ms()),
            open: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            flags: AtomicU8::new(0),
            h1_body: AtomicU8::new(H1Body::Done as u8),
            changed: Notify::new(),
            aborted: AtomicBool::new(false),
            abort_waker: AtomicWaker::new(),
        }
    }

    /// Records progress now.
    pub(crate) fn progress(&self) {
        self.last_progress.store(now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the last progress.
    pub(crate) fn stale_ms(&self) -> u64 {
        now_ms().saturating_sub(self.last_progress.load(Ordering::Relaxed))
    }

    pub(crate) fn request_started(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.progress();
    }

    pub(crate) fn request_ended(&self) {
        self.progress();
        if self.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.changed.notify_one();
        }
    }

    pub(crate) fn open_requests(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub(crate) fn response_waiting(&self) {
        if self.waiting.fetch_add(1, Ordering::Relaxed) == 0 {
            self.changed.notify_one();
        }
    }

    pub(crate) fn response_taken(&self) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn responses_waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn has(&self, flag: u8) -> bool {
        self.flags.load(Ordering::Relaxed) & flag != 0
    }

    /// The connection was handed to an HTTP/1.1 upgrade (a WebSocket): from now on its bytes
    /// are its progress, and no task watches it.
    pub(crate) fn mark_upgraded(&self) {
        self.flags.fetch_or(UPGRADED, Ordering::Relaxed);
    }

    pub(crate) fn is_upgraded(&self) -> bool {
        self.has(UPGRADED)
    }

    /// An HTTP/2 stream became a tunnel (extended CONNECT: a WebSocket). hyper does not say
    /// when a tunnel ends, so such a connection never counts as idle again.
    pub(crate) fn mark_tunnel(&self) {
        self.flags.fetch_or(TUNNEL, Ordering::Relaxed);
    }

    pub(crate) fn has_tunnel(&self) -> bool {
        self.has(TUNNEL)
    }

    /// Whether a new connection is taking this one's slot.
    pub(crate) fn is_evicting(&self) -> bool {
        self.has(EVICTING)
    }

    /// Whether the socket must be closed from below.
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    pub(crate) fn set_h1_body(&self, fate: H1Body) {
        self.h1_body.store(fate as u8, Ordering::Relaxed);
    }

    pub(crate) fn h1_body(&self) -> H1Body {
        match self.h1_body.load(Ordering::Relaxed) {
            1 => H1Body::Reading,
            2 => H1Body::Draining,
            3 => H1Body::MustClose,
            _ => H1Body::Done,
        }
    }

    /// Starts closing this connection so that another can have its slot: its task shuts it
    /// down gracefully; an upgraded socket, which has no task, is aborted from below.
    fn evict(&self) {
        self.flags.fetch_or(EVICTING, Ordering::Relaxed);
        self.changed.notify_one();
        if self.is_upgraded() {
            self.aborted.store(true, Ordering::Relaxed);
            self.abort_waker.wake();
        }
    }
}

/// The connection table: who is open, and how many from each address.
#[derive(Debug, Default)]
struct Table {
    open: HashMap<u64, Arc<ConnState>>,
    per_address: HashMap<AddressKey, usize>,
}

/// Admits connections. One per listener.
#[derive(Debug)]
pub(crate) struct Admission {
    permits: Arc<Semaphore>,
    /// The permits there are (`max_connections`, capped at what a semaphore holds).
    capacity: u32,
    table: Mutex<Table>,
    next_id: AtomicU64,
    per_address: usize,
    reclaim_after: Option<Duration>,
    metrics: Arc<Metrics>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its address already has `max_connections_per_address` open.
    PerAddress,
    /// Every slot is taken by a connection that made progress recently.
    Full,
}

/// The outcome of [`Admission::admit`].
pub(crate) enum Admitted {
    /// A slot, now.
    Now(Slot),
    /// A victim is being evicted; await its permit with [`Reclaim::wait`].
    Reclaim(Reclaim),
    /// Close the connection at once.
    Refused(Refused),
}

/// A connection's place in the table: its permit, its address count and its state. Dropping
/// it (when the socket is dropped) frees all three.
#[derive(Debug)]
pub(crate) struct Slot {
    state: Arc<ConnState>,
    address: AddressCount,
    _permit: OwnedSemaphorePermit,
    _gauge: ConnectionGuard,
}

impl Slot {
    pub(crate) fn state(&self) -> &Arc<ConnState> {
        &self.state
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.address.admission.metrics
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.address.admission.table.lock().unwrap_or_else(|e| e.into_inner());
        table.open.remove(&self.state.id);
    }
}

/// One unit of an address's connection count, given back on drop.
#[derive(Debug)]
struct AddressCount {
    admission: Arc<Admission>,
    key: AddressKey,
}

impl Drop for AddressCount {
    fn drop(&mut self) {
        let mut table = self.admission.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = table.per_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                table.per_address.remove(&self.key);
            }
        }
    }
}

/// A new connection waiting for the permit of the connection it evicted.
pub(crate) struct Reclaim {
    address: AddressCount,
}

impl Reclaim {
    /// The slot, once the victim has let go of its permit (`None` if that took too long).
    pub(crate) async fn wait(self) -> Option<Slot> {
        let admission = self.address.admission.clone();
        let permit = tokio::time::timeout(RECLAIM_WAIT, admission.permits.clone().acquire_owned()).await;
        match permit {
            Ok(Ok(permit)) => Some(admission.insert(permit, self.address)),
            _ => {
                admission.metrics.connection_refused();
                None
            }
        }
    }
}

impl Admission {
    pub(crate) fn new(config: &HttpConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        let capacity = config.max_connections.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity: capacity as u32,
            table: Mutex::new(Table::default()),
            next_id: AtomicU64::new(0),
            per_address: config.max_connections_per_address,
            reclaim_after: config.reclaim_after,
            metrics,
        })
    }

    /// Open connections in the table now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).open.len()
    }

    /// Resolves once every connection has closed (every permit is back), upgraded sockets
    /// included: what a graceful shutdown waits for.
    pub(crate) async fn all_closed(&self) {
        let _ = self.permits.acquire_many(self.capacity).await;
    }

    /// At the end of the shutdown grace: closes every upgraded socket from below (the
    /// others end with their connection tasks).
    pub(crate) fn abort_upgraded(&self) {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        for conn in table.open.values().filter(|c| c.is_upgraded()) {
            conn.aborted.store(true, Ordering::Relaxed);
            conn.abort_waker.wake();
        }
    }

    /// Decides about a connection just accepted from `peer`.
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Admitted {
        let key = AddressKey::of(peer.ip());
        {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let count = table.per_address.entry(key).or_insert(0);
            if *count >= self.per_address {
                drop(table);
                self.metrics.connection_events.refused_per_address.fetch_add(1, Ordering::Relaxed);
                return Admitted::Refused(Refused::PerAddress);
            }
            *count += 1;
        }
        let address = AddressCount { admission: self.clone(), key };
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Admitted::Now(self.insert(permit, address));
        }
        if self.evict_stalest() {
            self.metrics.connection_events.reclaimed.fetch_add(1, Ordering::Relaxed);
            return Admitted::Reclaim(Reclaim { address });
        }
        self.metrics.connection_refused();
        Admitted::Refused(Refused::Full)
    }

    fn insert(&self, permit: OwnedSemaphorePermit, address: AddressCount) -> Slot {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(id));
        self.table.lock().unwrap_or_else(|e| e.into_inner()).open.insert(id, state.clone());
        Slot { state, address, _permit: permit, _gauge: self.metrics.connection() }
    }

    /// Picks the connection to reclaim (see the module docs) and starts evicting it. A scan
    /// of the whole table, but only when it is full: at 10,000 connections that is a few
    /// microseconds per accept, against an accept that would otherwise be refused.
    fn evict_stalest(&self) -> bool {
        let Some(min_stale) = self.reclaim_after else { return false };
        let min_stale = min_stale.as_millis() as u64;
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        // Idle before busy, then the oldest progress stamp.
        let victim = table
            .open
            .values()
            .filter(|c| !c.is_evicting())
            .map(|c| {
                let busy = c.open_requests() > 0 || c.is_upgraded() || c.has_tunnel();
                (busy, c.last_progress.load(Ordering::Relaxed), c)
            })
            .filter(|(_, stamp, _)| now.saturating_sub(*stamp) >= min_stale)
            .min_by_key(|(busy, stamp, _)| (*busy, *stamp));
        match victim {
            Some((_, _, c)) => {
                c.evict();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
