//! The gateway's drain switch for graceful shutdown: flipped once by the listener, watched by
//! the stack's drain layer (`middleware::shutdown`) and by every WebSocket session. A module of
//! its own, depending on nothing in the crate, so that both can use it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tonic::Status;

/// The gateway's drain switch, shared by the listener (which flips it), the stack's
/// `DrainLayer` and the WebSocket sessions. Cloning is cheap. (Nominally `pub` only so that
/// the sealed `StackLayers` trait can take it; the module is private.)
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    draining: AtomicBool,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
}

impl Shutdown {
    /// Starts the drain: every registered waiter is woken. Idempotent.
    pub(crate) fn begin(&self) {
        if self.shared.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        let waiting = self.shared.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        for waker in waiting.values() {
            waker.wake();
        }
    }

    /// Whether the drain has begun.
    pub(crate) fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::SeqCst)
    }

    /// How many waiters are registered (for tests).
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        self.shared.waiting.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// A handle that can wait for the drain.
    pub(crate) fn watch(&self) -> DrainWatch {
        DrainWatch { shared: self.shared.clone(), waiter: None }
    }
}

/// Waits for the drain to begin, registered with [`Shutdown`] from its first wait until it
/// is dropped.
#[derive(Debug)]
pub(crate) struct DrainWatch {
    shared: Arc<Shared>,
    waiter: Option<(u64, Arc<AtomicWaker>)>,
}

impl DrainWatch {
    /// Ready once the drain has begun.
    pub(crate) fn poll_draining(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.draining.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let shared = &self.shared;
        let (_, waker) = self.waiter.get_or_insert_with(|| {
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
            let waker = Arc::new(AtomicWaker::new());
            shared.waiting.lock().unwrap_or_else(PoisonError::into_inner).insert(id, waker.clone());
            (id, waker)
        });
        waker.register(cx.waker());
        // `begin` sets the flag before it wakes the registered: either it saw this waker, or
        // this sees the flag.
        if self.shared.draining.load(Ordering::SeqCst) { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Resolves once the drain has begun.
    pub(crate) async fn draining(&mut self) {
        std::future::poll_fn(|cx| self.poll_draining(cx)).await;
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::SeqCst)
    }
}

impl Drop for DrainWatch {
    fn drop(&mut self) {
        if let Some((id, _)) = self.waiter.take() {
            self.shared.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        }
    }
}

/// The status a drained call ends with.
pub(crate) fn drained_status() -> Status {
    Status::unavailable("the server is shutting down")
}
