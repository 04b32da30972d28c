//! The listener: accepts TCP connections, admits them ([`admission`]: a semaphore, a limit per
//! client address, and a reserve that reclaims stale slots), and serves HTTP/1.1 and HTTP/2
//! (prior knowledge) on each, with upgrades and HTTP/2 extended CONNECT, until shutdown.
//!
//! Every phase of a connection is bounded (`docs/robustness.md`):
//!
//! | phase | bound | where |
//! |---|---|---|
//! | accept → protocol known | `first_byte_timeout` | [`connection`] |
//! | (TLS handshake) | its own timeout, when TLS arrives | [`connection::run`] |
//! | request head / HTTP/2 header block | `header_read_timeout` | hyper; [`h2scan`] + [`io`] |
//! | request body | `body_timeout` without a byte | [`service::RequestBody`] |
//! | response | `write_timeout` without the client taking a byte | [`io`], [`connection`] |
//! | between requests | `idle_timeout` (and HTTP/1.1: `header_read_timeout`) | [`connection`] |
//! | HTTP/2 liveness | keepalive pings | hyper |
//! | close | `close_linger` | [`io`] |

mod admission;
mod connection;

mod h2scan;
mod io;
mod service;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::gateway::Gateway;
use admission::{Admission, Admitted};

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listener failed in a way that accepting again cannot fix.
    #[error("listener failed: {0}")]
    Listener(#[source] std::io::Error),
}

/// Serves `gateway` on an already-bound `listener` until `shutdown` completes, then stops
/// accepting, lets open calls finish for `shutdown_grace`, and returns.
///
/// Binding is the caller's job, so tests bind port 0 and read the address first.
pub async fn serve<F>(listener: TcpListener, gateway: Gateway, shutdown: F) -> Result<(), Error>
where
    F: Future<Output = ()> + Send,
{
    let http = gateway.config().http.clone();
    let admission = Admission::new(&http, gateway.metrics().clone());
    let cx = Arc::new(connection::Context::new(&http));
    let service = gateway.into_service();
    let (stop, stopped) = watch::channel(false);
    let tasks = Arc::new(TaskCount::default());

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if is_transient(&e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(Error::Listener(e)),
            },
        };
        let slot = match admission.admit(peer) {
            Admitted::Now(slot) => Ok(slot),
            Admitted::Reclaim(reclaim) => Err(reclaim),
            Admitted::Refused(why) => {
                tracing::debug!(%peer, ?why, "connection refused");
                continue;
            }
        };
        let (service, cx, stopped, task) = (service.clone(), cx.clone(), stopped.clone(), tasks.start());
        tokio::spawn(async move {
            let slot = match slot {
                Ok(slot) => slot,
                // The evicted connection frees its permit within its grace period.
                Err(reclaim) => match reclaim.wait().await {
                    Some(slot) => slot,
                    None => return,
                },
            };
            connection::run(stream, peer, slot, service, cx, stopped).await;
            drop(task);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    if tokio::time::timeout(http.shutdown_grace, tasks.all_done()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing open connections");
    }
    Ok(())
}

/// Counts live connection tasks, for graceful shutdown.
#[derive(Default)]
struct TaskCount {
    live: AtomicUsize,
    done: Notify,
}

struct TaskToken(Arc<TaskCount>);

impl TaskCount {
    fn start(self: &Arc<Self>) -> TaskToken {
        self.live.fetch_add(1, Ordering::Relaxed);
        TaskToken(self.clone())
    }

    async fn all_done(&self) {
        loop {
            let notified = self.done.notified();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TaskToken {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.done.notify_waiters();
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut)
        || e.raw_os_error().is_some_and(|code| code == 23 || code == 24) // ENFILE, EMFILE
}
