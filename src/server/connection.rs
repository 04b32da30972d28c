//! One connection, from accept to close: protocol detection under `first_byte_timeout`,
//! hyper's HTTP/1.1 or HTTP/2 server with the gateway's limits, and a watchdog for what hyper
//! does not bound itself (idle connections, clients that take no response bytes, eviction and
//! shutdown, each ending with a graceful close: HTTP/2 GOAWAY, HTTP/1.1 after the current
//! response).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tonic::transport::server::TcpConnectInfo;

use super::admission::{ConnState, Slot, now_ms};
use super::io::{IoLimits, Rewind, Watched};
use super::service::{BodyLimits, ConnService};
use crate::config::HttpConfig;
use crate::gateway::GatewayService;
use crate::metrics::Metrics;
use crate::metrics::connections::Timeout;

/// How long a connection being closed to free its slot (or for a timeout) gets to write its
/// GOAWAY and finish what is in flight before it is dropped.
pub(crate) const EVICTION_GRACE: Duration = Duration::from_millis(250);

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What every connection of one listener shares: hyper's builders and the limits.
pub(crate) struct Context {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    io: IoLimits,
    body: BodyLimits,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    shutdown_grace: Duration,
}

impl Context {
    pub(crate) fn new(http: &HttpConfig) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(http.header_read_timeout)
            .max_header_size(http.max_header_list_bytes as usize);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .enable_connect_protocol()
            .max_concurrent_streams(http.http2_max_concurrent_streams)
            .max_header_list_size(http.max_header_list_bytes)
            .keep_alive_interval(http.http2_keepalive_interval)
            .keep_alive_timeout(http.http2_keepalive_timeout)
            .max_pending_accept_reset_streams(http.http2_max_pending_accept_reset_streams)
            .max_local_error_reset_streams(http.http2_max_local_error_reset_streams)
            .max_send_buf_size(http.http2_max_send_buf_bytes);
        Self {
            h1,
            h2,
            io: IoLimits {
                write_timeout: http.write_timeout,
                header_read_timeout: http.header_read_timeout,
                close_linger: http.close_linger,
            },
            body: BodyLimits { body_timeout: http.body_timeout, max_drain_bytes: http.http1_max_drain_bytes },
            first_byte_timeout: http.first_byte_timeout,
            idle_timeout: http.idle_timeout,
            write_timeout: http.write_timeout,
            shutdown_grace: http.shutdown_grace,
        }
    }
}

/// Serves one accepted connection until it closes.
pub(crate) async fn run(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    slot: Slot,
    service: GatewayService,
    cx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let info = TcpConnectInfo { local_addr: stream.local_addr().ok(), remote_addr: Some(peer) };
    let state = slot.state().clone();
    let metrics = slot.metrics().clone();
    // TLS slots in here, before anything is read: a handshake bounded by its own timeout,
    // whose ALPN result then picks the protocol instead of the preface sniffing below.
    let mut io = Watched::new(stream, slot, cx.io);
    let sniffed = tokio::select! {
        biased;
        _ = shutdown.changed() => return,
        () = evicted(&state) => return,
        sniffed = tokio::time::timeout(cx.first_byte_timeout, sniff(&mut io)) => sniffed,
    };
    let (http2, prefix, len) = match sniffed {
        Ok(Ok(found)) => found,
        Ok(Err(_)) => return,
        Err(_) => {
            metrics.connection_events.timed_out(Timeout::FirstByte);
            return;
        }
    };
    if http2 {
        io.scan_http2();
    }
    let io = TokioIo::new(Rewind::new(&prefix[..len], io));
    let service = TowerToHyperService::new(ConnService::new(service, state.clone(), metrics.clone(), info, cx.body));
    if http2 {
        drive(cx.h2.serve_connection(io, service), &state, &metrics, &cx, shutdown).await;
    } else {
        drive(cx.h1.serve_connection(io, service).with_upgrades(), &state, &metrics, &cx, shutdown).await;
    }
}

/// Reads until the bytes are either the whole HTTP/2 preface (`true`) or differ from it
/// (`false`: HTTP/1.1), never past the preface's 24 bytes.
async fn sniff<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<(bool, [u8; 24], usize)> {
    let mut buf = [0u8; 24];
    let mut n = 0;
    loop {
        let read = io.read(&mut buf[n..]).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n += read;
        if buf[..n] != PREFACE[..n] {
            return Ok((false, buf, n));
        }
        if n == PREFACE.len() {
            return Ok((true, buf, n));
        }
    }
}

async fn evicted(state: &ConnState) {
    while !state.is_evicting() {
        state.changed.notified().await;
    }
}

/// A hyper connection that can be asked to close gracefully.
trait Graceful: Future<Output = hyper::Result<()>> + Unpin {
    fn close_gracefully(&mut self);
}

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    Self: Future<Output = hyper::Result<()>> + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn close_gracefully(&mut self) {
        Pin::new(self).graceful_shutdown();
    }
}

impl<I, S, B, E> Graceful for http2::Connection<I, S, E>
where
    Self: Future<Output = hyper::Result<()>> + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn close_gracefully(&mut self) {
        Pin::new(self).graceful_shutdown();
    }
}

/// Runs `conn` until it ends, closing it gracefully when it has been idle for
/// `idle_timeout`, when a response has waited for the client for `write_timeout` with no
/// progress, when it is evicted, or at shutdown.
async fn drive<C: Graceful>(
    mut conn: C,
    state: &ConnState,
    metrics: &Metrics,
    cx: &Context,
    mut shutdown: watch::Receiver<bool>,
) {
    let grace = loop {
        if *shutdown.borrow() {
            break cx.shutdown_grace;
        }
        if state.is_evicting() {
            break EVICTION_GRACE;
        }
        let now = now_ms();
        let stale = state.stale_ms();
        let mut next: Option<u64> = None;
        if state.responses_waiting() > 0 {
            let limit = cx.write_timeout.as_millis() as u64;
            if stale >= limit {
                metrics.connection_events.timed_out(Timeout::Write);
                break EVICTION_GRACE;
            }
            next = Some(now + (limit - stale));
        }
        if state.open_requests() == 0 && !state.has_tunnel() && !state.is_upgraded() {
            let limit = cx.idle_timeout.as_millis() as u64;
            if stale >= limit {
                metrics.connection_events.timed_out(Timeout::Idle);
                break EVICTION_GRACE;
            }
            next = Some(next.map_or(now + (limit - stale), |n| n.min(now + (limit - stale))));
        }
        let wake = async {
            match next {
                Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = &mut conn => return log_end(ended, metrics),
            () = state.changed.notified() => {}
            () = wake => {}
            changed = shutdown.changed() => if changed.is_err() { break cx.shutdown_grace },
        }
    };
    conn.close_gracefully();
    if let Ok(ended) = tokio::time::timeout(grace, &mut conn).await {
        log_end(ended, metrics);
    }
}

fn log_end(ended: hyper::Result<()>, metrics: &Metrics) {
    if let Err(e) = ended {
        if e.is_timeout() {
            // hyper's own HTTP/1.1 header read timeout.
            metrics.connection_events.timed_out(Timeout::Header);
        }
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
