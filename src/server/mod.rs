//! The listener: accepts TCP connections on any number of bound sockets ([`bind`]), admits
//! them ([`admission`]: a semaphore, a limit per client address, and a reserve that reclaims
//! stale slots, one table for every socket), optionally speaks TLS ([`tls`]), and serves
//! HTTP/1.1 and HTTP/2 on each, with upgrades and HTTP/2 extended CONNECT, until a graceful
//! shutdown ([`Server::serve`]).
//!
//! Every phase of a connection is bounded (`docs/robustness.md`):
//!
//! | phase | bound | where |
//! |---|---|---|
//! | accept → first byte (TLS or cleartext) | `first_byte_timeout` | [`connection`] |
//! | TLS handshake | `tls_handshake_timeout` | [`connection`] |
//! | (after it) → protocol known | `first_byte_timeout` | [`connection`] |
//! | request head / HTTP/2 header block | `header_read_timeout` | hyper; [`h2scan`] + [`io`] |
//! | request body | `body_timeout` without a byte | [`service::RequestBody`] |
//! | response | `write_timeout` without the client taking a byte | [`io`], [`connection`] |
//! | between requests | `idle_timeout` (and HTTP/1.1: `header_read_timeout`) | [`connection`] |
//! | HTTP/2 liveness | keepalive pings | hyper |
//! | close | `close_linger` | [`io`] |

mod admission;
mod bind;
mod connection;

mod h2scan;
mod io;
mod service;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

pub use self::bind::{BindError, bind};
use self::tls::Tls;
use crate::gateway::Gateway;
use admission::{Admission, Admitted};

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listener failed in a way that accepting again cannot fix.
    #[error("listener failed: {0}")]
    Listener(#[source] std::io::Error),
    /// [`Server::serve`] was given no listener.
    #[error("no listener to serve on")]
    NoListener,
}

/// Serves `gateway` on an already-bound `listener` (cleartext) until `shutdown` completes,
/// then shuts down gracefully (see [`Server::serve`]).
///
/// Binding is the caller's job, so tests bind port 0 and read the address first.
pub async fn serve<F>(listener: TcpListener, gateway: Gateway, shutdown: F) -> Result<(), Error>
where
    F: Future<Output = ()> + Send,
{
    Server::new(gateway).serve([listener], shutdown).await
}

/// A gateway with its listener settings: TLS, and any number of bound listeners served by one
/// connection table (the connection limits count all of them together) and one shutdown.
///
/// ```no_run
/// # async fn run(gateway: portway::Gateway) -> Result<(), Box<dyn std::error::Error>> {
/// let tls = portway::tls::Tls::load(&portway::config::TlsConfig::self_signed())?;
/// let listeners = portway::bind(&["localhost:8443"]).await?; // 127.0.0.1 and ::1
/// portway::Server::new(gateway).tls(tls).serve(listeners, std::future::pending()).await?;
/// # Ok(()) }
/// ```
pub struct Server {
    gateway: Gateway,
    tls: Option<Tls>,
}

impl Server {
    /// A server for `gateway`, cleartext until [`Server::tls`] says otherwise.
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway, tls: None }
    }

    /// Serves TLS on every listener (and, if the configuration allows it, cleartext beside it
    /// on the same port). Keep a clone of `tls` to reload its certificate while serving.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Serves on `listeners` until `shutdown` completes, then shuts down gracefully: stops
    /// accepting, closes every connection after its current response (HTTP/2: GOAWAY), ends
    /// streams in progress with `UNAVAILABLE` in each protocol's own form (WebSockets then
    /// close with 1001), lets unary calls finish, and returns as soon as the last connection
    /// has closed, or once `shutdown_grace` has passed.
    pub async fn serve<I, F>(self, listeners: I, shutdown: F) -> Result<(), Error>
    where
        I: IntoIterator<Item = TcpListener>,
        F: Future<Output = ()> + Send,
    {
        let listeners: Vec<TcpListener> = listeners.into_iter().collect();
        if listeners.is_empty() {
            return Err(Error::NoListener);
        }
        let http = self.gateway.config().http.clone();
        let admission = Admission::new(&http, self.gateway.metrics().clone());
        let cx = Arc::new(connection::Context::new(&http, self.tls));
        let drain = self.gateway.shutdown().clone();
        let service = self.gateway.into_service();
        let (stop, stopped) = watch::channel(false);
        let tasks = Arc::new(TaskCount::default());

        let mut shutdown = std::pin::pin!(shutdown);
        let mut next = 0;
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = accept_any(&listeners, &mut next) => match accepted {
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
        drop(listeners);
        // Streams end first, then every connection is told to close after what it is doing.
        drain.begin();
        let _ = stop.send(true);
        let closed = async {
            tasks.all_done().await;
            admission.all_closed().await;
        };
        let timed_out = tokio::time::timeout(http.shutdown_grace, closed).await.is_err();
        if timed_out || cx.cut_at_shutdown() > 0 {
            tracing::warn!("shutdown grace period over; closing open connections");
        }
        if timed_out {
            admission.abort_upgraded();
        }
        Ok(())
    }
}

/// The next connection on any of `listeners`, starting the search after the one that
/// accepted last, so that a busy listener cannot starve the others.
async fn accept_any(listeners: &[TcpListener], next: &mut usize) -> std::io::Result<(TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| {
        let n = listeners.len();
        for i in 0..n {
            let at = (*next + i) % n;
            if let Poll::Ready(accepted) = listeners[at].poll_accept(cx) {
                *next = (at + 1) % n;
                return Poll::Ready(accepted);
            }
        }
        Poll::Pending
    })
    .await
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
