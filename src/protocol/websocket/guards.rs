//! Admission and gauges. Admission is by semaphores (sockets in total, calls per socket);
//! the gauges beside them only observe, so changing what `/metrics` shows cannot change
//! who is let in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// Counts a live session task (reader, writer, call) in `websocket_tasks` until dropped.
pub(super) struct TaskGuard(Arc<Metrics>);

impl TaskGuard {
    pub(super) fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.websocket_tasks.fetch_add(1, Ordering::Relaxed);
        Self(metrics.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.websocket_tasks.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Adds one to a gauge until dropped.
struct Gauge(Arc<Metrics>, fn(&Metrics) -> &AtomicU64);

impl Gauge {
    fn new(metrics: &Arc<Metrics>, gauge: fn(&Metrics) -> &AtomicU64) -> Self {
        gauge(metrics).fetch_add(1, Ordering::Relaxed);
        Self(metrics.clone(), gauge)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::Relaxed);
    }
}

/// One of the gateway's `max_sockets` socket permits, taken before the handshake (so the
/// limit also covers upgrades in progress) and held until the session ends.
pub(super) struct SocketPermit {
    _permit: OwnedSemaphorePermit,
    _open: Gauge,
}

impl SocketPermit {
    /// A permit, unless every one is taken.
    pub(super) fn try_acquire(sockets: &Arc<Semaphore>, metrics: &Arc<Metrics>) -> Option<Self> {
        let permit = sockets.clone().try_acquire_owned().ok()?;
        Some(Self { _permit: permit, _open: Gauge::new(metrics, |m| &m.websockets_open) })
    }
}

/// The calls of one socket: `max_calls` permits, each held by a call's task until the task
/// has ended, and the number of calls the client still sees open.
///
/// The two differ while an ended call's last frame waits for the writer: its task still
/// holds a permit (so a client that never reads cannot pile up tasks by opening and
/// cancelling calls), but the client, which has not seen the status, may count the call
/// as open. An `open` is refused when the client already has `max_calls` open; otherwise
/// it waits, if need be, for an ending call's task to let its permit go.
pub(super) struct CallSlots {
    permits: Arc<Semaphore>,
    open: AtomicUsize,
    max: usize,
}

impl CallSlots {
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { permits: Arc::new(Semaphore::new(max)), open: AtomicUsize::new(0), max })
    }

    /// A slot for a new call: `None` when `max_calls` calls are open; waits while the
    /// permits are held by calls that are ending.
    pub(super) async fn acquire(self: &Arc<Self>, metrics: &Arc<Metrics>) -> Option<CallSlot> {
        if self.open.load(Ordering::Acquire) >= self.max {
            return None;
        }
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            // Closed never: the semaphore lives as long as the slots.
            Err(_) => self.permits.clone().acquire_owned().await.ok()?,
        };
        self.open.fetch_add(1, Ordering::AcqRel);
        Some(CallSlot {
            slots: self.clone(),
            _permit: permit,
            counted: true,
            _gauge: Gauge::new(metrics, |m| &m.websocket_calls_open),
        })
    }
}

/// A call's hold on its socket's [`CallSlots`]; the call task owns it.
pub(super) struct CallSlot {
    slots: Arc<CallSlots>,
    _permit: OwnedSemaphorePermit,
    counted: bool,
    _gauge: Gauge,
}

impl CallSlot {
    /// The call is over for the client (its status is about to be queued): it no longer
    /// counts as open, though its task (and permit) lives until the frame is queued.
    pub(super) fn ending(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.slots.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.ending();
    }
}
