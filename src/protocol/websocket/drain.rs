//! A socket at shutdown: once the gateway drains, the stack ends each streaming call with
//! `UNAVAILABLE` (its `status` frame goes out as any other), unary calls finish, new calls
//! are refused with `UNAVAILABLE`, and when no call is left the socket closes with 1001
//! ("going away"), so the client knows to reconnect elsewhere or later rather than seeing an
//! abnormal close (1006).

use axum::extract::ws::{CloseFrame, Utf8Bytes, close_code};
use tonic::Status;

use crate::drain::{DrainWatch, Shutdown, drained_status};

/// The session's view of the drain.
pub(super) struct SessionDrain {
    watch: DrainWatch,
}

impl SessionDrain {
    pub(super) fn new(shutdown: &Shutdown) -> Self {
        Self { watch: shutdown.watch() }
    }

    /// Whether the drain has begun.
    pub(super) fn is_draining(&self) -> bool {
        self.watch.is_draining()
    }

    /// Resolves when the drain begins; never again after that (the session then checks
    /// [`Self::is_draining`] on every turn).
    pub(super) async fn begun(&mut self) {
        if self.watch.is_draining() {
            return std::future::pending().await;
        }
        self.watch.draining().await;
    }
}

/// The close frame once every call has ended.
pub(super) fn going_away() -> CloseFrame {
    CloseFrame { code: close_code::AWAY, reason: Utf8Bytes::from_static("the server is shutting down") }
}

/// The status of a call opened while the gateway drains.
pub(super) fn refused() -> Status {
    drained_status()
}
